"""Annotation aggregation around anchors: planted enrichment, item edges, item-level and numeric, p-values."""

import math
from fractions import Fraction

import numpy as np
import pytest

from lstmviz.analysis import aggregate as agg
from lstmviz.analysis.aggregate import (
    EXACT_MAX_N,
    LabelTable,
    NumericTable,
    aggregate,
    binomial_tail,
    describe_enrichment,
    top_enrichments,
)
from lstmviz.recording import RecordingWriter, open_recording
from lstmviz.tasks import Cancelled, Task

LABELS = ["open", "close", "digit"]


def write(path, lengths, *, seed=0, kind=None, item_kind=None, depth=None, item_score=None):
    """Items of the given lengths with annotations ``kind`` (categorical per position), ``item_kind``
    (categorical per item), ``depth`` (numeric per position) and ``item_score`` (numeric per item)."""
    rng = np.random.default_rng(seed)
    with RecordingWriter(path, vocab=["<pad>", "x"]) as w:
        w.add_tap("layer0/h", 2)
        w.add_annotation("kind", kind="categorical", labels=LABELS)
        w.add_annotation("item_kind", kind="categorical", level="item", labels=["short", "long"])
        w.add_annotation("depth", kind="numeric")
        w.add_annotation("item_score", kind="numeric", level="item")
        start = 0
        for i, n in enumerate(lengths):
            sl = slice(start, start + n)
            w.append_item(
                np.ones(n, np.int64), {"layer0/h": rng.normal(size=(n, 2)).astype(np.float32)},
                annotations={"kind": kind[sl], "depth": depth[sl]},
                item_annotations={"item_kind": item_kind[i], "item_score": item_score[i]},
            )
            start += n
    return open_recording(path)


@pytest.fixture
def corpus(tmp_path):
    """10 items; "open" is rare (about 6%) and planted right before every anchor."""
    agg.clear_cache()
    rng = np.random.default_rng(1)
    lengths = [int(x) for x in rng.integers(25, 60, size=10)]
    n = sum(lengths)
    kind = rng.choice([1, 2, -1], size=n, p=[0.45, 0.45, 0.10]).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    anchors = []
    for i in range(10):
        for p in range(int(offsets[i]) + 2, int(offsets[i + 1]) - 1, 16):
            anchors.append(p)
            kind[p - 1] = 0  # "open" right before each anchor
    anchors = np.array(anchors + [int(offsets[3])])  # one anchor at an item start: offset -1 leaves the item
    kind[rng.choice(n, size=8, replace=False)] = 0  # a few opens elsewhere
    depth = rng.normal(size=n)
    depth[rng.choice(n, size=20, replace=False)] = np.nan
    item_kind = [0, 1, 1, None, 0, 1, 0, 0, 1, 0]
    item_score = [float(x) for x in rng.normal(size=10)]
    item_score[2] = None
    rec = write(tmp_path / "agg.h5", lengths, kind=kind, item_kind=item_kind, depth=depth, item_score=item_score)
    yield rec, anchors, {"kind": kind, "depth": depth, "item_kind": item_kind, "item_score": item_score,
                         "offsets": offsets, "lengths": lengths}
    rec.close()


def brute_values(rec, values_at, anchors, offsets):
    """Per offset: the values at anchor + offset that lie inside the anchor's item (a plain loop)."""
    out = []
    for o in offsets:
        vals = []
        for a in anchors:
            s, e = rec.item_range(rec.item_of(int(a)))
            if s <= a + o < e:
                vals.append(values_at(int(a + o)))
        out.append(vals)
    return out


def test_label_table_against_a_loop(corpus):
    rec, anchors, data = corpus
    offs = list(range(-3, 6))
    table = aggregate(rec, "kind", anchors, offsets=offs)
    assert isinstance(table, LabelTable) and table.labels == LABELS
    assert table.offsets.tolist() == offs and table.n_anchors == len(anchors)
    per_offset = brute_values(rec, lambda p: int(data["kind"][p]), anchors, offs)
    for i, vals in enumerate(per_offset):
        labelled = [v for v in vals if v >= 0]
        assert table.n[i] == len(labelled)
        assert table.counts[i].tolist() == [labelled.count(k) for k in range(3)]
    kind = data["kind"]
    base = np.array([np.sum(kind == k) for k in range(3)]) / np.sum(kind >= 0)
    np.testing.assert_allclose(table.baseline, base)
    np.testing.assert_allclose(table.fraction, table.counts / table.n[:, None])
    np.testing.assert_allclose(table.enrichment, table.fraction / base)
    for i in range(len(offs)):
        for k in range(3):
            assert table.p_value[i, k] == pytest.approx(binomial_tail(table.counts[i, k], table.n[i], base[k]))


def test_planted_enrichment_is_found_and_described(corpus):
    rec, anchors, _ = corpus
    table = aggregate(rec, "kind", anchors)
    minus1 = list(table.offsets).index(-1)
    # every anchor but the one at an item start has "open" right before it
    assert table.n[minus1] == len(anchors) - 1
    assert table.counts[minus1, 0] == len(anchors) - 1
    assert table.fraction[minus1, 0] == 1.0
    rows = top_enrichments(table)
    top = rows[0]
    assert (top.offset, top.label, top.count, top.n) == (-1, "open", len(anchors) - 1, len(anchors) - 1)
    assert top.baseline == pytest.approx(table.baseline[0]) and table.baseline[0] < 0.15
    assert top.enrichment == pytest.approx(1 / table.baseline[0])
    assert top.p < 1e-20
    assert all(r.enrichment > 1 and r.count >= 5 for r in rows)
    assert [r.p for r in rows] == sorted(r.p for r in rows)
    sentence = describe_enrichment(top, "kind")
    b = table.baseline[0]
    pct = f"{100 * b:.0f}%" if b >= 0.1 else f"{100 * b:.1f}%"
    assert sentence.startswith(f'100% of matches start right after a position labelled "open" in kind '
                               f"({top.count} of {top.n}), against {pct} of all positions")
    assert "p = " in sentence
    at_zero = top._replace(offset=0)
    assert "start on a position" in describe_enrichment(at_zero, "kind")
    assert "2 positions after their start" in describe_enrichment(top._replace(offset=2), "kind")
    assert "start 3 positions after" in describe_enrichment(top._replace(offset=-3), "kind")
    assert "lie in an item" in describe_enrichment(top, rec.annotations["item_kind"])
    # subnormal p-values (2.7e-310) have lost their digits: said as a bound, like an underflow to 0
    assert describe_enrichment(top._replace(p=2.7e-310), "kind").endswith("p < 1e-300).")
    assert describe_enrichment(top._replace(p=0.0), "kind").endswith("p < 1e-300).")
    assert describe_enrichment(top._replace(p=3.1e-45), "kind").endswith("p = 3.1e-45).")


def test_offsets_outside_the_item_are_not_counted(corpus):
    rec, _, data = corpus
    first, second = int(data["offsets"][0]), int(data["offsets"][1])
    table = aggregate(rec, "kind", [first, second - 1], offsets=[-1, 0, 1])
    labelled = data["kind"] >= 0
    # offset -1 of the item's first position and +1 of its last position lie in other items
    assert table.n.tolist() == [int(labelled[second - 2]), int(labelled[first]) + int(labelled[second - 1]),
                                int(labelled[first + 1])]
    empty = aggregate(rec, "kind", [first], offsets=[-5])
    assert empty.n.tolist() == [0] and np.isnan(empty.fraction).all() and np.isnan(empty.p_value).all()


def test_item_level_labels_and_their_length_weighted_baseline(corpus):
    rec, anchors, data = corpus
    table = aggregate(rec, "item_kind", anchors, offsets=[-1, 0])
    items = rec.item_of(anchors)
    per_offset = brute_values(rec, lambda p: data["item_kind"][rec.item_of(p)], anchors, [-1, 0])
    for i, vals in enumerate(per_offset):
        labelled = [v for v in vals if v is not None]
        assert table.n[i] == len(labelled)
        assert table.counts[i].tolist() == [labelled.count(0), labelled.count(1)]
    assert table.n[1] == sum(data["item_kind"][i] is not None for i in items)
    lengths = np.array(data["lengths"])
    weights = [sum(lengths[i] for i, k in enumerate(data["item_kind"]) if k == lab) for lab in (0, 1)]
    np.testing.assert_allclose(table.baseline, np.array(weights) / sum(weights))
    assert table.level == "item"


def test_numeric_position_and_item_annotations(corpus):
    rec, anchors, data = corpus
    offs = [-2, 0, 3]
    table = aggregate(rec, "depth", anchors, offsets=offs)
    assert isinstance(table, NumericTable)
    for i, vals in enumerate(brute_values(rec, lambda p: data["depth"][p], anchors, offs)):
        vals = np.array([v for v in vals if not np.isnan(v)])
        assert table.n[i] == len(vals)
        assert table.mean[i] == pytest.approx(vals.mean())
        assert table.std[i] == pytest.approx(vals.std())
    depth = data["depth"][~np.isnan(data["depth"])]
    assert table.baseline_mean == pytest.approx(depth.mean())
    assert table.baseline_std == pytest.approx(depth.std())

    table = aggregate(rec, "item_score", anchors, offsets=[0])
    scores = [data["item_score"][i] for i in rec.item_of(anchors)]
    scores = np.array([s for s in scores if s is not None])
    assert table.n[0] == len(scores) and table.mean[0] == pytest.approx(scores.mean())
    per_position = np.concatenate([np.full(n, np.nan if s is None else s)
                                   for n, s in zip(data["lengths"], data["item_score"])])
    per_position = per_position[~np.isnan(per_position)]
    assert table.baseline_mean == pytest.approx(per_position.mean())
    assert table.baseline_std == pytest.approx(per_position.std())


def test_bad_input(corpus):
    rec, _, _ = corpus
    with pytest.raises(ValueError, match="no annotation 'pos'.*kind, item_kind"):
        aggregate(rec, "pos", [0])
    with pytest.raises(IndexError):
        aggregate(rec, "kind", [rec.n_positions])
    with pytest.raises(TypeError, match="categorical"):
        top_enrichments(aggregate(rec, "depth", [0]))


def test_baseline_is_cached_and_follows_a_rewritten_file(corpus, tmp_path, monkeypatch):
    rec, anchors, data = corpus
    calls = []
    original = agg._summarise
    monkeypatch.setattr(agg, "_summarise", lambda *a: calls.append(1) or original(*a))
    aggregate(rec, "kind", anchors)
    first = len(calls)
    aggregate(rec, "kind", anchors[:3])
    assert first > 0 and len(calls) == first  # the second call reuses the corpus baseline

    path = rec.path
    rec.close()
    kind = np.zeros(sum(data["lengths"]), np.int64)  # every position "open" now
    rec2 = write(path, data["lengths"], kind=kind, item_kind=data["item_kind"], depth=data["depth"],
                 item_score=data["item_score"])
    table = aggregate(rec2, "kind", anchors)
    np.testing.assert_allclose(table.baseline, [1, 0, 0])
    rec2.close()


def test_progress_and_cancel(corpus):
    rec, anchors, _ = corpus
    agg.clear_cache()
    task = Task()
    task.cancel()
    with pytest.raises(Cancelled):
        aggregate(rec, "kind", anchors, task=task)
    table = aggregate(rec, "kind", anchors)  # nothing half-computed was cached
    assert table.baseline.sum() == pytest.approx(1.0)


# ------------------------------------------------------------------------------ p-values

def exact_tail(k, n, p):
    p = Fraction(p)
    return float(sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)))


@pytest.mark.parametrize("k,n,p", [(0, 10, 0.3), (1, 10, 0.3), (5, 10, 0.3), (10, 10, 0.3), (11, 10, 0.3),
                                   (3, 50, 0.01), (40, 50, 0.06), (120, 300, 0.5), (299, 300, 0.99),
                                   (1, 1, 0.5), (7, 200, 0.02)])
def test_binomial_tail_matches_the_exact_sum(k, n, p):
    assert binomial_tail(k, n, p) == pytest.approx(exact_tail(k, n, p), rel=1e-9, abs=1e-300)


def test_binomial_tail_edges_and_normal_approximation():
    assert binomial_tail(0, 0, 0.5) == 1.0
    assert binomial_tail(1, 10, 0.0) == 0.0
    assert binomial_tail(3, 10, 1.0) == 1.0
    assert binomial_tail(400, 400, 0.01) == pytest.approx(0.0, abs=1e-300)  # underflows, no error
    n = EXACT_MAX_N + 1000
    for k in (1750, 1800, 1850, 1900):
        # the exact tail, summed term by term with math.lgamma (independent of the implementation)
        terms = [math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                          + i * math.log(0.3) + (n - i) * math.log(0.7)) for i in range(k, n + 1)]
        assert binomial_tail(k, n, 0.3) == pytest.approx(sum(terms), rel=0.05)
    assert binomial_tail(EXACT_MAX_N, EXACT_MAX_N, 0.999) == pytest.approx(0.999**EXACT_MAX_N, rel=1e-9)
