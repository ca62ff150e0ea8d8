"""Phrase and regex search over small real recordings: item boundaries, case, mapping back, limit, cancel."""

import re

import numpy as np
import pytest

from lstmviz.analysis import token_search
from lstmviz.analysis.token_search import (
    SearchError,
    default_joiner,
    find_phrase,
    find_regex,
    is_character_vocab,
)
from lstmviz.recording import RecordingWriter, open_recording
from lstmviz.tasks import Cancelled, Task

WORDS = ["<pad>", "The", "the", "cat", "sat", "on", "mat", ".", "banana"]
CHARS = ["<pad>", "<unk>", "a", "b", "(", ")", " "]


def write(path, items, vocab):
    """A recording of ``items`` (lists of token strings, or of ids when ``vocab`` is None), one 2-unit tap."""
    index = {t: i for i, t in enumerate(vocab or [])}
    with RecordingWriter(path, vocab=vocab) as w:
        w.add_tap("layer0/h", 2)
        for item in items:
            ids = [index[t] for t in item] if vocab else list(item)
            w.append_item(np.array(ids), {"layer0/h": np.zeros((len(ids), 2), np.float32)})
    return open_recording(path)


@pytest.fixture
def words(tmp_path):
    items = [
        ["The", "cat", "sat", "on", "the", "mat", "."],
        ["the", "cat"],
        ["sat", "on", "the"],  # ends with "the"
        ["cat", "sat", "on", "the", "cat"],  # starts with "cat": "the cat" across items 2|3 must not match
        ["banana"],
    ]
    rec = write(tmp_path / "words.h5", items, WORDS)
    yield rec
    rec.close()


@pytest.fixture
def chars(tmp_path):
    items = [list("ab(ab)"), list("(a b)"), list("b"), list("ab")]
    rec = write(tmp_path / "chars.h5", items, CHARS)
    yield rec
    rec.close()


# ------------------------------------------------------------------------------ phrases

def test_phrase_case_insensitive_by_default(words):
    # positions: item0 0-6, item1 7-8, item2 9-11, item3 12-16, item4 17
    assert find_phrase(words, "the cat").tolist() == [0, 7, 15]
    assert find_phrase(words, "THE CAT").tolist() == [0, 7, 15]
    assert find_phrase(words, "the cat", case_sensitive=True).tolist() == [7, 15]
    assert find_phrase(words, "The cat", case_sensitive=True).tolist() == [0]
    assert find_phrase(words, ["sat", "on", "the"]).tolist() == [2, 9, 13]
    result = find_phrase(words, "cat")
    assert result.dtype == np.int64 and result.tolist() == [1, 8, 12, 16]


def test_phrase_never_crosses_an_item_boundary(words):
    # "the" ends item 2 (position 11) and "cat" starts item 3 (position 12)
    assert 11 not in find_phrase(words, "the cat").tolist()
    assert find_phrase(words, "mat . the").tolist() == []  # would run from item 0 into item 1
    assert find_phrase(words, "the mat .").tolist() == [4]  # ends exactly at the item end


def test_unknown_token_gives_an_empty_result_and_empty_phrase_an_error(words):
    assert find_phrase(words, "the dog").tolist() == []
    with pytest.raises(SearchError, match="empty"):
        find_phrase(words, "   ")
    with pytest.raises(SearchError, match="empty"):
        find_phrase(words, [])


def test_phrase_limit_keeps_the_first_in_corpus_order(words, monkeypatch):
    monkeypatch.setattr(token_search, "BLOCK_POSITIONS", 3)  # several blocks, stops early
    assert find_phrase(words, "cat", limit=2).tolist() == [1, 8]
    assert find_phrase(words, "cat", limit=None).tolist() == [1, 8, 12, 16]


@pytest.mark.parametrize("block", [1, 4, 7, 1 << 20])
def test_phrase_matches_brute_force_on_random_corpora(tmp_path, monkeypatch, block):
    monkeypatch.setattr(token_search, "BLOCK_POSITIONS", block)
    rng = np.random.default_rng(block)
    vocab = ["<pad>", "x", "y", "z", "X"]
    items = [list(rng.choice(vocab[1:], size=int(rng.integers(1, 12)))) for _ in range(30)]
    rec = write(tmp_path / "r.h5", items, vocab)
    offsets = rec.item_offsets
    flat = [t for item in items for t in item]
    for phrase in (["x"], ["x", "y"], ["y", "x", "z"], ["z", "z"]):
        for case in (True, False):
            norm = (lambda t: t) if case else str.lower
            expected = [p for p in range(len(flat) - len(phrase) + 1)
                        if [norm(t) for t in flat[p:p + len(phrase)]] == [norm(t) for t in phrase]
                        and rec.item_of(p) == rec.item_of(p + len(phrase) - 1)]
            got = find_phrase(rec, phrase, case_sensitive=case, limit=None)
            assert got.tolist() == expected, (phrase, case)
    assert offsets[-1] == len(flat)
    rec.close()


def test_phrase_search_by_id_without_a_vocabulary(tmp_path):
    rec = write(tmp_path / "ids.h5", [[5, 6, 7], [7, 5, 6]], None)
    assert find_phrase(rec, "5 6").tolist() == [0, 4]
    assert find_phrase(rec, "9").tolist() == []
    assert find_regex(rec, "7 5") == [(3, 5)]
    rec.close()


def test_phrase_search_reports_progress_and_cancels(words, monkeypatch):
    monkeypatch.setattr(token_search, "BLOCK_POSITIONS", 3)
    reports = []
    task = Task(on_progress=lambda done, total, message: reports.append((done, total)))
    find_phrase(words, "cat", limit=None, task=task)
    assert reports[0] == (0, 18) and reports[-1] == (18, 18)
    assert [d for d, _ in reports] == sorted(d for d, _ in reports)

    task = Task()
    task._on_progress = lambda done, total, message: task.cancel() if done > 0 else None
    with pytest.raises(Cancelled):
        find_phrase(words, "cat", limit=None, task=task)
    assert task.done < 18  # stopped after the first block


# ------------------------------------------------------------------------------ regular expressions

def test_joiner_follows_the_vocabulary():
    assert is_character_vocab(CHARS) and default_joiner(CHARS) == ""
    assert not is_character_vocab(WORDS) and default_joiner(WORDS) == " "
    assert default_joiner(["<pad>", "</s>", "ab", "c"]) == " "


def test_regex_over_characters_maps_back_to_positions(chars):
    # item0 "ab(ab)" 0-5, item1 "(a b)" 6-10, item2 "b" 11, item3 "ab" 12-13
    assert find_regex(chars, r"\(a") == [(2, 4), (6, 8)]
    assert find_regex(chars, r"a b") == [(7, 10)]
    assert find_regex(chars, r"b\)") == [(4, 6), (9, 11)]
    # "b" + "ab" would join across items 2 and 3
    assert find_regex(chars, "bab") == []
    assert find_regex(chars, "ba") == []
    assert find_regex(chars, r"\)$") == [(5, 6), (10, 11)]  # anchors are per item


def test_regex_over_words_covers_every_token_it_touches(words):
    assert find_regex(words, "cat sat") == [(1, 3), (12, 14)]
    assert find_regex(words, "at s") == [(1, 3), (12, 14)]  # touches "cat" and "sat"
    assert find_regex(words, "(?i)^the") == [(0, 1), (7, 8)]
    assert find_regex(words, "^the") == [(7, 8)]
    # three hits inside "banana" are one range; a match on the joiner alone touches no token
    assert find_regex(words, "an") == [(17, 18)]
    assert find_regex(words, " ") == []
    # zero-length matches are skipped
    assert find_regex(words, "q*") == []
    assert find_regex(words, r"\.") == [(6, 7)]
    assert find_regex(words, "mat .", joiner="_") == []
    assert find_regex(words, "mat_.", joiner="_") == [(5, 7)]


def test_regex_limit_and_errors(words):
    assert find_regex(words, "cat", limit=2) == [(1, 2), (8, 9)]
    assert len(find_regex(words, "cat", limit=None)) == 4
    with pytest.raises(SearchError, match=re.escape("missing ), unterminated subpattern")):
        find_regex(words, "(cat")
    assert issubclass(SearchError, ValueError)


def test_regex_cancels_and_stops_reading_at_the_limit(words, monkeypatch):
    monkeypatch.setattr(token_search, "BLOCK_POSITIONS", 2)
    reads = []
    original = type(words).token_ids

    def counting(self, start, stop):
        reads.append((start, stop))
        return original(self, start, stop)

    monkeypatch.setattr(type(words), "token_ids", counting)
    assert find_regex(words, "cat", limit=1) == [(1, 2)]
    assert reads == [(0, 7)]  # the first block is item 0 (an item is never split); nothing after it
    task = Task()
    task.cancel()
    with pytest.raises(Cancelled):
        find_regex(words, "cat", task=task)


@pytest.mark.parametrize("seed", range(4))
def test_regex_matches_brute_force_on_random_characters(tmp_path, seed):
    rng = np.random.default_rng(seed)
    items = [list(rng.choice(CHARS[2:], size=int(rng.integers(1, 15)))) for _ in range(25)]
    rec = write(tmp_path / "c.h5", items, CHARS)
    for pattern in ("ab", r"\(.*?\)", "a+", "b a", r"[()]{2}"):
        expected = []
        start = 0
        for item in items:
            for m in re.finditer(pattern, "".join(item)):
                if m.end() > m.start():
                    span = (start + m.start(), start + m.end())  # one character per token
                    if not expected or expected[-1] != span:
                        expected.append(span)
            start += len(item)
        assert find_regex(rec, pattern, limit=None) == expected, pattern
    rec.close()
