"""Units against random directions: projections, rankings and label purity against brute-force numpy."""

from __future__ import annotations

import numpy as np
import pytest
from image_recordings import STRIDE2, random_maps, write_image_recording

from lstmviz.analysis import image_top
from lstmviz.analysis.direction_coherence import purity as label_purity
from lstmviz.analysis.image_directions import (direction_scores, item_labels, purity_units_vs_random,
                                               random_directions, top_along, unit_direction)
from lstmviz.analysis.image_top import top_activating
from lstmviz.recording import open_recording
from lstmviz.tasks import Cancelled, Task

CLASSES = ("zero", "one", "two", "three")


@pytest.fixture
def recording(tmp_path):
    """30 images, 4x4 maps of 6 units with values in {-1, 0, 1}, ties and the odd NaN, 4 classes."""
    sizes = [(4, 4), (3, 2), (2, 5), (1, 1), (4, 3)] * 6
    maps = random_maps(30, units=6, seed=3, sizes=sizes)
    kinds = np.arange(30) % 4
    path = write_image_recording(tmp_path / "d.h5", maps, input_size=(8, 10), item_labels=kinds,
                                 item_label_names=CLASSES, geometry=STRIDE2)
    return open_recording(path), maps


@pytest.mark.parametrize("reduce", ["max", "mean"])
@pytest.mark.parametrize("unit", [0, 3, 5])
def test_a_unit_direction_reproduces_the_units_own_ranking(recording, monkeypatch, reduce, unit):
    monkeypatch.setattr(image_top, "SLAB_ROWS", 13)  # many slabs (both rankings slice through image_top)
    rec, _ = recording
    own = top_activating(rec, "conv0", [unit], limit=30, reduce=reduce)
    along = top_along(rec, "conv0", unit_direction(6, unit), limit=30, reduce=reduce)
    assert list(along.items) == list(own.items)
    np.testing.assert_array_equal(along.scores, own.scores)
    np.testing.assert_array_equal(along.cells, own.cells)
    np.testing.assert_array_equal(along.peaks, own.peaks)


def test_a_negated_unit_direction_is_the_units_negative_sign(recording):
    rec, _ = recording
    own = top_activating(rec, "conv0", [2], [-1], limit=30)
    along = top_along(rec, "conv0", -unit_direction(6, 2), limit=30)
    assert list(along.items) == list(own.items)


@pytest.mark.parametrize("reduce", ["max", "mean"])
def test_random_direction_scores_equal_numpy(recording, reduce):
    rec, maps = recording
    dirs = random_directions(6, 3, seed=5)
    scores, cells, _ = direction_scores(rec, "conv0", dirs, reduce=reduce)
    for k, v in enumerate(dirs):
        for i, m in enumerate(maps):
            flat = m.reshape(-1, 6).astype(np.float64)
            s = flat @ v  # NaN anywhere in a row poisons that cell (every weight is non-zero)
            finite = s[np.isfinite(s)]
            if not finite.size:
                assert np.isnan(scores[k, i]) and cells[k, i] == -1
                continue
            want = finite.max() if reduce == "max" else finite.mean()
            assert scores[k, i] == pytest.approx(want, abs=1e-9)
            assert cells[k, i] == int(np.flatnonzero(s == finite.max())[0])
    top = top_along(rec, "conv0", dirs[1], limit=5, reduce=reduce)
    order = sorted(range(30), key=lambda i: (-scores[1, i] if np.isfinite(scores[1, i]) else np.inf, i))
    assert list(top.items) == order[:5]


def test_random_directions_are_seeded_unit_vectors():
    a, b, c = random_directions(7, 20, seed=1), random_directions(7, 20, seed=1), random_directions(7, 20, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0)
    assert np.abs(a.mean(axis=0)).max() < 0.5  # not all in one orthant


def test_purity_of_class_units_against_random_directions(tmp_path):
    """Unit u is on exactly for class u: its top images are pure; a random mixture of them is not."""
    rng = np.random.default_rng(0)
    kinds = np.arange(80) % 4
    maps = []
    for kind in kinds:
        m = rng.normal(scale=0.05, size=(2, 2, 4)).astype(np.float32)
        m[rng.integers(2), rng.integers(2), kind] += 1.0
        maps.append(m)
    rec = open_recording(write_image_recording(tmp_path / "p.h5", maps, item_labels=kinds, item_label_names=CLASSES))
    out = purity_units_vs_random(rec, "conv0", "kind", n=4, k=10, seed=0)
    assert sorted(out.units.tolist()) == [0, 1, 2, 3]
    np.testing.assert_array_equal(out.unit_purity, 1.0)
    assert out.chance == 0.25
    assert 0.25 < out.random_images_purity < 0.6
    # each purity is that of the brute-force top-k
    labels, _ = item_labels(rec, "kind")
    for v, p in zip(out.directions, out.random_purity):
        proj = np.array([(m.reshape(-1, 4).astype(np.float64) @ v).max() for m in maps])
        top = sorted(range(80), key=lambda i: (-proj[i], i))[:10]
        assert p == pytest.approx(label_purity(labels[top]))
    # (random directions are pure here too: with max over cells, the class of the largest weight wins)
    assert out.summary()["unit_purity"] == 1.0 and out.constant_units == 0 and out.mean_live_unit == 1.0


def test_a_dead_unit_is_counted_and_left_out_of_the_live_mean(tmp_path):
    rng = np.random.default_rng(1)
    kinds = np.arange(40) % 4
    maps = []
    for kind in kinds:
        m = np.zeros((1, 1, 4), np.float32)
        m[0, 0, kind] = 1.0 + rng.random()
        m[0, 0, 3] = 0.0  # unit 3 is dead: its top images are the first ones by index
        maps.append(m)
    rec = open_recording(write_image_recording(tmp_path / "q.h5", maps, item_labels=kinds, item_label_names=CLASSES))
    out = purity_units_vs_random(rec, "conv0", "kind", n=4, k=4, seed=0)
    assert out.constant.tolist() == [False, False, False, True] and out.constant_units == 1
    assert out.unit_purity[3] == 0.25  # items 0-3: one of each class
    assert out.mean_live_unit == 1.0 and out.mean_unit == pytest.approx((3 + 0.25) / 4)


def test_bad_requests_progress_and_cancel(recording):
    rec, _ = recording
    with pytest.raises(ValueError, match="6 values"):
        top_along(rec, "conv0", np.ones(5))
    with pytest.raises(ValueError, match="reduce"):
        top_along(rec, "conv0", np.ones(6), reduce="median")
    with pytest.raises(ValueError, match="no annotation"):
        item_labels(rec, "nope")
    with pytest.raises(ValueError, match="numeric"):
        item_labels(rec, "class")
    with pytest.raises(ValueError, match="0..5"):
        unit_direction(6, 6)
    seen = []
    top_along(rec, "conv0", np.ones(6), task=Task(lambda d, t, m: seen.append((d, t))))
    assert seen[-1][0] == seen[-1][1] == int(rec.axis_offsets("conv0")[-1])
    task = Task()
    task.cancel()
    with pytest.raises(Cancelled):
        top_along(rec, "conv0", np.ones(6), task=task)


def test_scalar_axis_tap(recording):
    """A tap with one row per image: the score is the projection itself, the peak cell 0."""
    rec, maps = recording
    v = random_directions(2, 1, seed=4)[0]
    top = top_along(rec, "logits", v, limit=30)
    logits = rec.states("logits").astype(np.float64) @ v
    assert list(top.items) == sorted(range(30), key=lambda i: (-logits[i], i))
    assert set(top.cells.tolist()) == {0}
    assert image_top.rank(logits, 3).tolist() == list(top.items[:3])
