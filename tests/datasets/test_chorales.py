"""The chorales dataset: note tokens named by pitch and duration, annotations per note, from one real chorale.

Parsing the whole corpus takes a minute, so these tests extract one chorale (bwv1.6) through the same
code path; the full build is exercised through a stubbed corpus list.
"""

from __future__ import annotations

import numpy as np
import pytest

from lstmviz.datasets import chorales as ch

music21 = pytest.importorskip("music21")


@pytest.fixture(scope="module")
def bwv1_6():
    from music21 import corpus

    return ch._extract_score(corpus.parse("bach/bwv1.6"), music21)


def test_vocabulary_is_a_readable_pitch_by_duration_grid():
    assert len(ch.VOCAB) == len(ch.PITCH_NAMES) * len(ch.DURATIONS) == len(set(ch.VOCAB))
    assert ch.VOCAB[ch.note_id(ch.PITCH_NAMES.index("E4"), ch.DURATIONS.index(1.0))] == "E4:1"
    assert ch.VOCAB[ch.note_id(ch.REST, ch.DURATIONS.index(0.5))] == "rest:½"
    assert ch.VOCAB[ch.END_ID] == "end" and ch.VOCAB[0] == "<pad>"
    assert ch.duration_index(1.75) == ch.DURATIONS.index(2.0) and ch.duration_index(0.25) == 1
    assert ch.pitch_index(24) == ch.PITCH_NAMES.index("C2") and ch.pitch_index(None) == ch.REST


def test_one_chorale_is_transposed_to_c_and_keeps_its_rhythm(bwv1_6):
    assert set(bwv1_6) == set(ch.VOICES)
    soprano = bwv1_6["soprano"]
    # bwv1.6 is in F major: transposed down 5 semitones to C, its first soprano note F4 becomes C4
    assert soprano[0][0] == 60 and soprano[0][1] == 1.0
    # the durations of a voice add up to whole bars (of 4 beats) apart from the pickup
    total = sum(q for _, q, _ in soprano)
    assert total % 4 in (0.0, 1.0)
    item = ch.ChoralesDataset._encode(0, "soprano", soprano)
    names = [ch.VOCAB[t] for t in item.tokens]
    assert names[0] == "C4:1" and names[-1] == "end"
    pc = item.annotations["pitch_class"]
    assert ch.PITCH_CLASS_LABELS[pc[0]] == "C" and ch.PITCH_CLASS_LABELS[pc[-1]] == "end"
    assert [ch.DURATION_LABELS[d] for d in item.annotations["duration"][:1]] == ["1"]
    beats = item.annotations["beat"]
    assert beats[0] == 4.0 and np.isnan(beats[-1]) and np.all(beats[:-1] >= 1)
    assert set(item.annotations["voice"]) == {0}


def test_splits_voices_and_cache(monkeypatch, tmp_path, bwv1_6):
    monkeypatch.setattr(ch, "_chorales", lambda: tuple({"source": f"c{i}", "voices": bwv1_6} for i in range(10)))
    train, valid = ch.ChoralesDataset("train"), ch.ChoralesDataset("valid", voices="all")
    assert len(train) == 8 and len(valid) == 4
    assert [it.annotations["voice"][0] for it in valid] == [0, 1, 2, 3]
    assert train.token_stream().max() < len(train.vocab)
    with pytest.raises(ch.DatasetError, match="voices"):
        ch.ChoralesDataset("train", voices="sopranos")
    monkeypatch.setenv("LSTMVIZ_CACHE_DIR", str(tmp_path))
    assert ch.cache_dir() == tmp_path / "datasets"


def test_missing_music21_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_music21(name, *args, **kwargs):
        if name == "music21":
            raise ImportError("no music21")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_music21)
    with pytest.raises(ch.MissingDependency, match=r'pip install "lstmviz\[music\]"'):
        ch._music21()
