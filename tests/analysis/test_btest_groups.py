"""B-tests between groups of recorded states, one vector per item (``btest_groups``)."""

import numpy as np
import pytest
from image_recordings import write_image_recording

from lstmviz.analysis.btest import bh_adjust
from lstmviz.analysis.btest_groups import (
    annotation_groups,
    compare_groups,
    item_samples,
    match_groups,
    row_groups,
)
from lstmviz.analysis.match_types import MatchQuery, MatchResults
from lstmviz.recording import RecordingWriter, open_recording


def _token_recording(path, n_items=80, shift=2.0, seed=0):
    """Items of 5..14 positions, 3 units on taps ``h`` (item class c1 shifts unit 0 by ``shift``) and
    ``z`` (no signal). Position annotation ``side`` (a/b alternating), item annotation ``cls``."""
    rng = np.random.default_rng(seed)
    with RecordingWriter(path, vocab=["<pad>", "x"]) as w:
        w.add_tap("h", 3)
        w.add_tap("z", 3)
        w.add_annotation("side", kind="categorical", labels=["a", "b"])
        w.add_annotation("cls", kind="categorical", level="item", labels=["c0", "c1"])
        w.add_annotation("depth", kind="numeric")
        for i in range(n_items):
            n = int(rng.integers(5, 15))
            h = rng.normal(size=(n, 3)).astype(np.float32)
            if i % 2:
                h[:, 0] += shift
            w.append_item(np.ones(n, np.int64), {"h": h, "z": rng.normal(size=(n, 3)).astype(np.float32)},
                          annotations={"side": np.arange(n) % 2, "depth": np.zeros(n)},
                          item_annotations={"cls": i % 2})
    return open_recording(path)


@pytest.fixture
def rec(tmp_path):
    r = _token_recording(tmp_path / "tokens.h5")
    yield r
    r.close()


def test_item_classes_reject_where_the_states_differ_and_bh_is_over_taps(rec):
    g = annotation_groups(rec, "cls", "c0", "c1")
    assert g.item_level and len(g.a) == len(g.b) == 40
    c = compare_groups(rec, ["h", "z"], g)
    h, z = c.tests
    assert h.result.reject and h.result.p_value < 1e-3
    assert not z.result.reject
    assert h.items_a == h.items_b == 40
    assert np.allclose([h.adjusted_p, z.adjusted_p], bh_adjust([h.result.p_value, z.result.p_value]))
    assert h.reject_bh and not z.reject_bh
    # restricted to the units without signal, h looks like z
    assert not compare_groups(rec, ["h"], g, units=[1, 2]).tests[0].result.reject


def test_one_vector_per_item_from_the_items_own_rows(rec):
    g = annotation_groups(rec, "cls", "c0", "c1")
    s = item_samples(rec, "h", g, seed=3)
    assert len(np.unique(s.items_x)) == len(s.items_x) == 40
    assert np.all(s.items_x % 2 == 0) and np.all(s.items_y % 2 == 1)
    for vec, item in zip(s.x, s.items_x):
        rows = rec.item_states("h", int(item))
        assert np.any(np.all(rows == vec.astype(np.float32), axis=1))
    m = item_samples(rec, "h", g, per_item="mean")
    for vec, item in zip(m.x, m.items_x):
        assert np.allclose(vec, rec.item_states("h", int(item)).astype(np.float64).mean(axis=0))
    # seeded: same seed, same rows; another seed, other rows
    again = item_samples(rec, "h", g, seed=3)
    assert np.array_equal(again.x, s.x)
    assert not np.array_equal(item_samples(rec, "h", g, seed=4).x, s.x)


def test_position_groups_sample_within_the_group_from_disjoint_items(rec):
    g = annotation_groups(rec, "side", "a", "b")
    assert g.axis == "positions"
    side = rec.annotation("side")
    s = item_samples(rec, "h", g, seed=1)
    # every item has both labels: each goes to one side only, and the sides are balanced
    assert not set(s.items_x) & set(s.items_y)
    assert len(s.items_x) + len(s.items_y) == rec.n_items and abs(len(s.items_x) - len(s.items_y)) <= 1
    states = rec.states("h")
    for vecs, items, label in ((s.x, s.items_x, 0), (s.y, s.items_y, 1)):
        for vec, item in zip(vecs, items):
            a, b = rec.item_range(int(item))
            hit = np.flatnonzero(np.all(states[a:b] == vec.astype(np.float32), axis=1))
            assert hit.size and side[a + hit[0]] == label
    # the labels alternate with no effect on the states
    assert not compare_groups(rec, ["h"], g).tests[0].result.reject


def test_matches_against_the_background(rec):
    # "matches": the first 3 rows of every c1 item (unit 0 shifted), background: every row outside them
    items = np.arange(1, rec.n_items, 2)
    starts = rec.item_offsets[items]
    q = MatchQuery(units=(0,))
    n = len(items)
    res = MatchResults(q, starts.astype(np.int64), np.full(n, 3, np.int64), items.astype(np.int64),
                       np.ones(n, np.int32), np.ones(n, np.int32), np.ones(n, np.int32), np.ones(n),
                       np.ones(n), np.ones(n))
    g = match_groups(rec, res)
    assert len(g.a) == 3 * n and len(g.a) + len(g.b) == rec.n_positions
    assert not set(g.a) & set(g.b)
    s = item_samples(rec, "h", g)
    assert not set(s.items_x) & set(s.items_y)
    # the match side can only hold matched items; the background gets the unmatched (c0) items and
    # shares of the matched ones (whose other rows are background) until the sides balance
    assert set(s.items_x) <= set(items)
    assert abs(len(s.items_x) - len(s.items_y)) <= 1
    r = compare_groups(rec, ["h", "z"], g).tests
    # the shifted tap is far beyond any chance value; the tap without signal is not
    assert r[0].result.p_value < 1e-6 and r[1].result.p_value > 1e-3


def test_explicit_rows(rec):
    a = np.concatenate([np.arange(*rec.item_range(i)) for i in range(0, 40)])
    b = np.concatenate([np.arange(*rec.item_range(i)) for i in range(40, 80)])
    c = compare_groups(rec, ["h"], row_groups(a, b))
    assert c.tests[0].items_a == c.tests[0].items_b == 40
    assert not c.tests[0].result.reject


def test_errors_in_words(rec):
    with pytest.raises(ValueError, match="no annotation 'nope'"):
        annotation_groups(rec, "nope", "a", "b")
    with pytest.raises(ValueError, match="no label 'q'.*labels: a, b"):
        annotation_groups(rec, "side", "a", "q")
    with pytest.raises(ValueError, match="numeric, not categorical"):
        annotation_groups(rec, "depth", "a", "b")
    g = annotation_groups(rec, "cls", "c0", "c1")
    with pytest.raises(ValueError, match="no tap 'k'"):
        compare_groups(rec, ["k"], g)
    few = row_groups(np.arange(*rec.item_range(0)), np.arange(*rec.item_range(1)))
    with pytest.raises(ValueError, match="too few items.*A has 1 item"):
        compare_groups(rec, ["h"], few)
    with pytest.raises(ValueError, match="per_item"):
        compare_groups(rec, ["h"], g, per_item="median")


def test_image_taps_with_item_classes_and_position_groups_on_another_axis(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    kinds = np.arange(n) % 2
    maps = []
    for i in range(n):
        m = rng.normal(size=(4, 4, 3)).astype(np.float32)
        m[..., 1] += 1.5 * kinds[i]
        maps.append(m)
    path = write_image_recording(tmp_path / "img.h5", maps, item_labels=kinds, item_label_names=["p", "q"])
    with open_recording(path) as r:
        g = annotation_groups(r, "kind", "p", "q")
        c = compare_groups(r, ["conv0", "logits"], g)
        assert c.tests[0].result.reject  # one random location per image, unit 1 shifted everywhere
        assert c.tests[0].items_a == c.tests[0].items_b == 30
        pos = annotation_groups(r, "label", "background", "object")
        with pytest.raises(ValueError, match="rows of axis 'positions' but tap 'conv0' lives on axis 'conv0'"):
            compare_groups(r, ["conv0"], pos)


def test_graphs_with_filler_nodes_and_a_pooled_axis(tmp_path):
    """Many small graphs (items); the last node of each is a filler (never sampled); node annotation
    ``role`` (hub/leaf) and item annotation ``family``; family b shifts unit 0 of every real node."""
    from lstmviz.geometry import AxisGeometry, GraphGeometry

    rng = np.random.default_rng(0)
    path = tmp_path / "graphs.h5"
    fill_value = 50.0  # a filler row that entered a sample would make every test reject
    with RecordingWriter(path, vocab=["<pad>", "node"]) as w:
        w.set_geometry("positions", "graph")
        w.add_axis("level1", description="pairs", geometry=AxisGeometry("graph", pooled_from="positions"))
        w.add_tap("h", 3)
        w.add_tap("level1/h", 2, axis="level1")
        w.add_annotation("role", kind="categorical", labels=["hub", "leaf"])
        w.add_annotation("family", kind="categorical", level="item", labels=["a", "b"])
        for i in range(80):
            n = 6
            g = GraphGeometry.from_edges(n, [(0, k) for k in range(1, n - 1)], filler=[0] * (n - 1) + [1])
            coarse = GraphGeometry.from_edges(3, [(0, 1), (0, 2)], pooling_map=np.arange(n) // 2, finer_nodes=n)
            h = rng.normal(size=(n, 3))
            h[:, 0] += 3.0 * (i % 2)
            h[n - 1] = fill_value if i % 2 == 0 else 0.0
            w.append_item(np.ones(n, np.int64), {"h": h, "level1/h": rng.normal(size=(3, 2))},
                          annotations={"role": [0] + [1] * (n - 1)}, item_annotations={"family": i % 2},
                          geometry={"positions": g, "level1": coarse})
    with open_recording(path) as r:
        fam = annotation_groups(r, "family", "a", "b")
        s = item_samples(r, "h", fam)
        assert not np.any(s.x == fill_value)
        c = compare_groups(r, ["h", "level1/h"], fam)
        assert c.tests[0].result.p_value < 1e-4 and c.tests[1].result.p_value > 1e-3
        # hubs against leaves (position classes; every graph has both): disjoint items, no filler
        roles = compare_groups(r, ["h"], annotation_groups(r, "role", "hub", "leaf"))
        assert roles.tests[0].items_a + roles.tests[0].items_b == 80
        assert roles.tests[0].result.p_value > 1e-3


def test_one_item_recordings_are_refused_with_the_reason(tmp_path, write_recording):
    path = write_recording([np.random.default_rng(0).normal(size=(200, 2))])
    with open_recording(path) as r:
        g = row_groups(np.arange(100), np.arange(100, 200), "positions")
        with pytest.raises(ValueError, match="the recording has 1 item.*one vector per item"):
            compare_groups(r, ["h"], g)
