"""The parenthesis language: LSTMVis's grammar, uniform choices, depth annotation, items, splits."""

import numpy as np
import pytest

from lstmviz.datasets import DatasetError, load_dataset
from lstmviz.datasets.parens import ParensDataset


def allowed(depth):
    """The notebook's rule, written out independently of the module under test."""
    if depth == 0:
        return {"(", "0"}
    if depth == 4:
        return {")", "4"}
    return {"(", ")", str(depth)}


def replay(words):
    """Check every step against the grammar; return the depth after each token."""
    depth, out = 0, []
    for t, w in enumerate(words):
        assert w in allowed(depth), f"token {w!r} at position {t} is not allowed at depth {depth}"
        if w.isdigit():
            assert int(w) == depth
        depth += 1 if w == "(" else -1 if w == ")" else 0
        assert 0 <= depth <= 4
        out.append(depth)
    return np.array(out)


@pytest.fixture(scope="module")
def valid():
    return load_dataset("parens", "valid", tokens=30_000, item_length=100)


def test_every_step_obeys_the_grammar_and_depth_is_the_depth_after_the_token(valid):
    stream = valid.decode(valid.token_stream())
    replay(stream)  # the whole stream is one LSTMVis stream
    for item in valid:
        words = valid.decode(item.tokens)
        depths = replay(words)  # every item starts at depth 0
        assert np.array_equal(item.annotations["depth"], depths)
        assert valid.annotation_spec("depth").labels[item.item_annotations["max_depth"]] == str(depths.max())


def test_choices_are_uniform_among_the_allowed_tokens():
    ds = load_dataset("parens", "train", tokens=200_000, item_length=None)
    words = ds.decode(ds.token_stream())
    counts = {d: {} for d in range(5)}
    depth = 0
    for w in words:
        counts[depth][w] = counts[depth].get(w, 0) + 1
        depth += 1 if w == "(" else -1 if w == ")" else 0
    for d, c in counts.items():
        assert set(c) == allowed(d)
        total = sum(c.values())
        assert total > 10_000
        for w, k in c.items():
            assert abs(k / total - 1 / len(c)) < 0.015, (d, c)


def test_items_start_at_depth_zero_and_are_cut_only_where_depth_is_zero(valid):
    lengths = [len(it) for it in valid]
    assert sum(lengths) == 30_000
    assert np.array_equal(np.concatenate([it.tokens for it in valid]), valid.token_stream())
    for item in list(valid)[:-1]:
        assert len(item) >= 100
        assert item.annotations["depth"][-1] == 0
    whole = load_dataset("parens", "valid", tokens=30_000, item_length=None)
    assert len(whole) == 1 and np.array_equal(whole[0].tokens, valid.token_stream())


def test_default_sizes_follow_lstmvis():
    assert len(load_dataset("parens", "train").token_stream()) == 1_000_000
    assert len(load_dataset("parens", "test").token_stream()) == 100_000


def test_token_class_and_match_distance(valid):
    item = valid[3]
    words = valid.decode(item.tokens)
    labels = valid.annotation_spec("token_class").labels
    assert [labels[c] for c in item.annotations["token_class"]] == [
        "open" if w == "(" else "close" if w == ")" else "digit" for w in words
    ]
    expected = np.full(len(words), np.nan)
    stack = []
    for t, w in enumerate(words):
        if w == "(":
            stack.append(t)
        elif w == ")":
            o = stack.pop()
            expected[o] = expected[t] = t - o
    np.testing.assert_array_equal(item.annotations["match_distance"], expected)
    assert np.isfinite(expected).any()


def test_deterministic_and_splits_and_seeds_differ():
    a = load_dataset("parens", "valid", tokens=5000).token_stream()
    assert np.array_equal(a, load_dataset("parens", "valid", tokens=5000).token_stream())
    others = [
        load_dataset("parens", "test", tokens=5000).token_stream(),
        load_dataset("parens", "train", tokens=5000).token_stream(),
        load_dataset("parens", "valid", tokens=5000, seed=1).token_stream(),
    ]
    for b in others:
        assert not np.array_equal(a, b)


def test_bad_options_are_rejected():
    with pytest.raises(DatasetError, match="tokens"):
        ParensDataset("valid", tokens=0)
    with pytest.raises(DatasetError, match="item_length"):
        ParensDataset("valid", item_length=-3)
