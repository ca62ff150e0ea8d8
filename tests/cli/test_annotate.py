"""`lstmviz annotate FILE --from labels.csv` and `lstmviz.annotate(...)` (issue 11.5)."""

import numpy as np
import pytest

import lstmviz
from lstmviz.cli import main
from lstmviz.recording import RecordingWriter, open_recording
from lstmviz.recording import annotate as annotate_module

LENGTHS = (4, 3, 5)  # 12 positions in 3 items


@pytest.fixture
def recording(tmp_path):
    path = tmp_path / "rec.h5"
    rng = np.random.default_rng(0)
    with RecordingWriter(path, vocab=["<pad>", "a", "b"]) as w:
        w.add_tap("h", 2)
        w.add_annotation("depth", kind="categorical", labels=["0", "1"])
        for n in LENGTHS:
            w.append_item(np.ones(n, np.int64), {"h": rng.standard_normal((n, 2))}, {"depth": np.arange(n) % 2})
    return path


def _csv(path, text):
    path.write_text(text)
    return str(path)


def _unchanged(path, before):
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temporary copy left


def test_one_column_per_annotation_per_position(recording, tmp_path, capsys):
    rows = ["pos,score"] + [f"{'NV'[i % 2]},{'' if i == 5 else i / 10}" for i in range(12)]
    assert main(["annotate", str(recording), "--from", _csv(tmp_path / "l.csv", "\n".join(rows) + "\n")]) == 0
    out = capsys.readouterr()
    assert "pos (categorical, 2 labels, per position); score (numeric, per position, 1 missing)" in out.out
    assert "score read as numeric" in out.err
    with open_recording(recording) as rec:
        assert list(rec.annotations) == ["depth", "pos", "score"]  # the existing one is kept, first
        assert rec.annotations["pos"].labels == ["N", "V"]
        assert rec.annotation("pos").tolist() == [i % 2 for i in range(12)]
        score = rec.annotation("score")
        assert np.isnan(score[5]) and score[11] == pytest.approx(1.1)
        assert rec.annotation("depth").tolist() == [i % 2 for n in LENGTHS for i in range(n)]
        assert rec.provenance["annotations_added"][0]["names"] == ["pos", "score"]
        assert rec.provenance["annotations_added"][0]["source"] == "l.csv"


def test_one_row_per_item_and_overridden_kinds(recording, tmp_path):
    table = _csv(tmp_path / "items.csv", "topic,stars\nsports,1\npolitics,3\n,2\n")
    assert main(["annotate", str(recording), "--from", table, "--kind", "stars=categorical"]) == 0
    with open_recording(recording) as rec:
        topic, stars = rec.annotations["topic"], rec.annotations["stars"]
        assert (topic.level, topic.kind, topic.labels) == ("item", "categorical", ["politics", "sports"])
        assert rec.annotation("topic").tolist() == [1, 0, -1]
        assert (stars.kind, stars.labels) == ("categorical", ["1", "2", "3"])  # numbers sort as numbers


def test_a_wrong_number_of_rows_is_one_sentence_and_changes_nothing(recording, tmp_path, capsys):
    before = recording.read_bytes()
    table = _csv(tmp_path / "l.csv", "pos\n" + "N\n" * 7)
    assert main(["annotate", str(recording), "--from", table]) == 1
    err = capsys.readouterr().err
    assert (f"annotation 'pos' has 7 values, but {recording} has 12 positions in 3 items: give one per position "
            f"(12) or one per item (3), in the recording's order") in err
    assert main(["annotate", str(recording), "--from", table, "--level", "item"]) == 1
    assert "give one per item (3)" in capsys.readouterr().err
    bad = _csv(tmp_path / "bad.csv", "a,b\n1,2\n3\n")
    assert main(["annotate", str(recording), "--from", bad]) == 2
    assert "bad.csv, line 3: 1 fields, but the header names 2 columns" in capsys.readouterr().err
    _unchanged(recording, before)


def test_a_name_that_exists_is_refused_unless_replaced(recording, tmp_path, capsys):
    before = recording.read_bytes()
    table = _csv(tmp_path / "d.csv", "depth\n" + "".join(f"{i % 3}\n" for i in range(12)))
    assert main(["annotate", str(recording), "--from", table, "--kind", "depth=categorical"]) == 1
    assert f"{recording} already has an annotation 'depth'; choose another name, or replace it (--replace)" in \
        capsys.readouterr().err
    _unchanged(recording, before)
    assert main(["annotate", str(recording), "--from", table, "--kind", "depth=categorical", "--replace"]) == 0
    with open_recording(recording) as rec:
        assert list(rec.annotations) == ["depth"] and rec.annotations["depth"].labels == ["0", "1", "2"]
        assert rec.annotation("depth").tolist() == [i % 3 for i in range(12)]


@pytest.mark.parametrize("failure", [RuntimeError("disk trouble"), KeyboardInterrupt()])
def test_a_failure_midway_leaves_the_original_whole(recording, monkeypatch, failure):
    before = recording.read_bytes()
    real = annotate_module._add

    def add_then_fail(f, *args):
        real(f, *args)  # the copy already holds the new annotation when it fails
        raise failure

    monkeypatch.setattr(annotate_module, "_add", add_then_fail)
    with pytest.raises(type(failure)):
        lstmviz.annotate(recording, {"x": np.zeros(12)})
    _unchanged(recording, before)


def test_the_api_takes_arrays_and_label_ids(recording):
    added = lstmviz.annotate(recording, {"parity": np.arange(12) % 2, "rank": np.linspace(0, 1, 12),
                                         "tag": [0, 1, -1]}, labels={"tag": ["x", "y"]})
    assert [(a.name, a.kind, a.level) for a in added] == [
        ("parity", "categorical", "position"), ("rank", "numeric", "position"), ("tag", "categorical", "item")]
    with open_recording(recording) as rec:
        assert rec.annotation("tag").tolist() == [0, 1, -1] and rec.annotations["tag"].labels == ["x", "y"]
    with pytest.raises(ValueError, match="label id 5, outside 0..1"):
        lstmviz.annotate(recording, {"bad": [5, 0, 0]}, labels={"bad": ["x", "y"]})


def test_one_position_per_item_needs_a_level(tmp_path):
    path = tmp_path / "single.h5"
    with RecordingWriter(path) as w:
        w.add_tap("h", 1)
        for _ in range(3):
            w.append_item([1], {"h": np.zeros((1, 1))})
    with pytest.raises(ValueError, match="could be per position or per item; say which"):
        lstmviz.annotate(path, {"x": ["a", "b", "a"]})
    lstmviz.annotate(path, {"x": ["a", "b", "a"]}, level="item")
    with open_recording(path) as rec:
        assert rec.annotations["x"].level == "item"
