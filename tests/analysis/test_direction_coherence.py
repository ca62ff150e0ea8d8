"""Units vs random directions (Szegedy et al.): top-k positions, annotation purity, the comparison."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from lstmviz.analysis import direction_coherence as dc
from lstmviz.errors import is_expected
from lstmviz.recording import RecordingWriter, open_recording

CLASSES = ["a", "b", "c", "d"]
NOISE_UNITS = 12
UNITS = len(CLASSES) + NOISE_UNITS


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """60 items of 20..40 tokens; ``tag`` (4 classes, ~15% missing) independent of the tokens.

    - tap ``aligned``: units 0..3 are 2 * one-hot(tag) exactly (0 where the tag is missing), units
      4..15 are N(0, 1) noise. Units 0..3 fire on one class only (purity 1); a random direction mixes
      in the noise units, whose tails dominate its top positions (purity far lower).
    - tap ``distributed``: 5 * R @ one-hot(tag) + 0.05 noise for a random orthogonal R: every class is
      a direction of norm 5, so every direction (unit or random) ranks one class on top: both pure.
    - tap ``spike``: unit 0 is 100 at positions whose tag is missing, else the class id.
    Written in float16 (``aligned_f16`` holds ``aligned`` again) to exercise the conversion.
    """
    rng = np.random.default_rng(3)
    rotation, _ = np.linalg.qr(rng.standard_normal((UNITS, UNITS)))
    path = tmp_path_factory.mktemp("coherence") / "planted.h5"
    with RecordingWriter(path, vocab=[f"w{i}" for i in range(7)]) as w:
        for name in ("aligned", "distributed", "spike"):
            w.add_tap(name, UNITS)
        w.add_tap("aligned_f16", UNITS, dtype="float16")
        w.add_annotation("tag", kind="categorical", labels=CLASSES)
        w.add_annotation("count", kind="numeric")
        for _ in range(60):
            n = int(rng.integers(20, 41))
            tag = rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1])
            tag[rng.random(n) < 0.15] = -1
            onehot = np.zeros((n, len(CLASSES)), np.float32)
            onehot[tag >= 0, tag[tag >= 0]] = 1.0
            aligned = np.concatenate([2.0 * onehot, rng.standard_normal((n, NOISE_UNITS))], axis=1)
            full = np.concatenate([onehot, np.zeros((n, NOISE_UNITS), np.float32)], axis=1)
            distributed = 5.0 * full @ rotation.T + 0.05 * rng.standard_normal((n, UNITS))
            spike = rng.standard_normal((n, UNITS)).astype(np.float32)
            spike[:, 0] = np.where(tag < 0, 100.0, tag)
            w.append_item(rng.integers(0, 7, n), {"aligned": aligned, "distributed": distributed, "spike": spike,
                                                   "aligned_f16": aligned},
                          annotations={"tag": tag, "count": rng.random(n)})
    return path


@pytest.fixture
def rec(planted):
    with open_recording(planted) as r:
        yield r


def _brute_top(values: np.ndarray, v: np.ndarray, k: int, candidates: np.ndarray) -> np.ndarray:
    """Independent reference: a full stable sort of the scores (ties: earlier position first)."""
    scores = (values @ v.astype(np.float32)).astype(np.float64)
    scores[~candidates] = -np.inf
    return np.argsort(-scores, kind="stable")[:k]


def _brute_purity(labels) -> float:
    return Counter(labels.tolist()).most_common(1)[0][1] / len(labels)


def test_top_positions_are_the_largest_projections_exactly(rec):
    values = rec.states("aligned")
    tag = rec.annotation("tag")
    candidates = tag >= 0
    directions = dc.random_directions(UNITS, 5, seed=11)
    top = dc.top_positions_many(rec, "aligned", directions, 15, candidates=candidates, chunk_rows=37)
    for v, got in zip(directions, top):
        np.testing.assert_array_equal(got, _brute_top(values, v, 15, candidates))
    # a unit direction reproduces the unit's own ranking (guards indexing), one chunk or many
    e3 = dc.unit_directions(UNITS, [3])[0]
    one = dc.top_positions(rec, "aligned", e3, 15)
    np.testing.assert_array_equal(one, _brute_top(values, e3, 15, np.ones(rec.n_positions, bool)))
    np.testing.assert_array_equal(dc.top_positions(rec, "aligned", e3, 15, chunk_rows=5), one)


def test_float16_taps_rank_as_their_values_chunked_or_not(rec):
    directions = dc.random_directions(UNITS, 4, seed=2)
    values16 = rec.states("aligned_f16")  # float32 of the stored float16 values
    whole = dc.top_positions_many(rec, "aligned_f16", directions, 12)
    chunked = dc.top_positions_many(rec, "aligned_f16", directions, 12, chunk_rows=50)
    np.testing.assert_array_equal(whole, chunked)
    for v, got in zip(directions, whole):
        np.testing.assert_array_equal(got, _brute_top(values16, v, 12, np.ones(rec.n_positions, bool)))


def test_missing_labels_are_never_candidates(rec):
    tag = rec.annotation("tag")
    e0 = dc.unit_directions(UNITS, [0])[0]
    unrestricted = dc.top_positions(rec, "spike", e0, 10)
    assert (tag[unrestricted] == -1).all()  # the spikes sit where the tag is missing
    restricted = dc.top_positions(rec, "spike", e0, 10, candidates=tag >= 0)
    assert (tag[restricted] == 3).all()  # then the largest class id wins


def test_purity_base_rate_and_correction_by_hand():
    assert dc.purity(np.array([1, 1, 2, 3])) == 0.5
    np.testing.assert_allclose(dc.purity(np.array([[0, 0, 0, 1], [2, 2, 2, 2], [1, -1, -1, 2]])), [0.75, 1.0, 0.25])
    assert dc.base_rate(np.array([0, 0, 1, -1, 2, 0])) == 0.6
    np.testing.assert_allclose(dc.corrected_purity([0.6, 1.0, 0.3], 0.6), [0.0, 1.0, -0.75])
    # five balanced classes: k random positions are purer than the base rate (0.2)
    labels = np.repeat(np.arange(5), 200)
    chance = dc.chance_purity(labels, 10, n_draws=4000, seed=1)
    assert 0.33 < chance < 0.41


def test_context_labels_join_the_window_within_each_item():
    labels = np.array([0, 1, 1, 0, 1, -1, 1])
    offsets = np.array([0, 3, 7])  # items [0, 3) and [3, 7)
    np.testing.assert_array_equal(dc.context_labels(labels, offsets, 0), labels)
    codes = dc.context_labels(labels, offsets, 1)
    # windows: (B,0) (0,1) (1,1) | (B,0) (0,1) (1,-1)->missing (-1,1)   (B: before the item)
    assert codes[5] == -1
    assert codes[0] == codes[3] and codes[1] == codes[4]
    assert len({codes[0], codes[1], codes[2], codes[6]}) == 4


def test_units_that_fire_on_one_class_are_pure_and_random_directions_are_not(rec):
    tag = rec.annotation("tag")
    k, n_random = 10, 40
    c = dc.coherence_comparison(rec, "aligned", "tag", k=k, n_random=n_random, seed=5, units=[0, 1, 2, 3],
                                n_boot=2000)
    np.testing.assert_array_equal(c.unit_purity, 1.0)
    for u, top in zip(c.units, c.unit_top):
        assert (tag[top] == u).all()
    # every per-direction purity matches an independent computation
    values = rec.states("aligned")
    for v, p in zip(dc.random_directions(UNITS, n_random, seed=5), c.random_purity):
        assert p == _brute_purity(tag[_brute_top(values, v, k, tag >= 0)])
    assert c.random_mean < 0.75
    assert c.random_ci[0] <= c.random_mean <= c.random_ci[1] < c.unit_ci[0] == 1.0
    assert c.mann_whitney_p < 0.01  # 4 units against 40 directions
    labelled = tag[tag >= 0]
    assert c.base_rate == pytest.approx(np.bincount(labelled).max() / labelled.size)
    assert c.n_candidates == labelled.size
    assert c.unit_corrected_mean == pytest.approx(1.0)
    assert c.random_corrected_mean == pytest.approx((c.random_mean - c.base_rate) / (1 - c.base_rate))
    summary = c.summary()
    assert summary["n_units"] == 4 and summary["n_random"] == n_random
    assert summary["difference"] == pytest.approx(1.0 - c.random_mean)


def test_a_distributed_code_makes_random_directions_as_pure_as_units(rec):
    c = dc.coherence_comparison(rec, "distributed", "tag", k=10, n_random=40, seed=5, n_boot=2000)
    assert c.units.size == UNITS
    # a direction about as close to two class vectors may mix them in its top 10, rarely
    assert c.unit_mean > 0.95 and c.random_mean > 0.95
    assert abs(c.difference) < 0.05
    assert c.mann_whitney_p > 0.05
    assert c.unit_corrected_mean > 0.9 and c.random_corrected_mean > 0.9


def test_context_purity_in_the_comparison(rec):
    tag = rec.annotation("tag")
    c = dc.coherence_comparison(rec, "aligned", "tag", k=10, n_random=5, units=[0], context=1, n_boot=200)
    codes = dc.context_labels(tag, rec.item_offsets, 1)
    assert c.unit_purity[0] == _brute_purity(codes[c.unit_top[0]])
    assert c.unit_purity[0] < 1.0  # the previous tag is independent of this one


@pytest.mark.parametrize("call, words", [
    (lambda r: dc.coherence_comparison(r, "nope", "tag"), "no tap 'nope'"),
    (lambda r: dc.coherence_comparison(r, "aligned", "nope"), "no annotation 'nope'"),
    (lambda r: dc.coherence_comparison(r, "aligned", "count"), "categorical annotation per position"),
    (lambda r: dc.coherence_comparison(r, "aligned", "tag", k=10 ** 6), "k must be between"),
    (lambda r: dc.coherence_comparison(r, "aligned", "tag", n_random=0), "n_random"),
    (lambda r: dc.top_positions(r, "aligned", np.ones(3), 5), "needs 16 values"),
    (lambda r: dc.top_positions(r, "aligned", np.full(UNITS, np.nan), 5), "finite"),
])
def test_bad_requests_get_one_sentence(rec, call, words):
    with pytest.raises(dc.CoherenceError, match=words) as info:
        call(rec)
    assert is_expected(info.value)
