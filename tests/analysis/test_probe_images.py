"""Probes on image recordings (lstmviz.analysis.probe_images, run_probes on a format v3 image recording).

A synthetic recording (``image_recordings.write_image_recording``) of 8x8 inputs with two feature maps:
``conv0`` (stride 2, a 4x4 map) carries a planted *class* signal (unit 2 + class is raised on every cell,
so its per-image mean decodes the class), ``conv1`` (stride 1, an 8x8 map) a planted per-cell *stroke*
signal (unit 0 is +1 where the pixel under the cell is stroke, -1 elsewhere). Every other tap is noise.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from image_recordings import STRIDE2, random_maps, write_image_recording

from lstmviz.analysis.probe_images import cell_labels, pooled_rows, probe_rows
from lstmviz.analysis.probe_report import run_probes
from lstmviz.geometry import AxisGeometry
from lstmviz.recording import open_recording

N = 150
STRIDE1 = AxisGeometry(kind="image", stride=1, receptive_field=3, offset=0.0)
CLASSES = ("a", "b", "c")


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    rng = np.random.default_rng(7)
    kinds = rng.integers(0, 3, N)
    conv0 = random_maps(N, size=(4, 4), units=6, seed=1)
    for m, k in zip(conv0, kinds):
        m[..., 2 + k] += 2.0  # the planted class signal, in units 2..4 (logits read units 0, 1: noise)
    strokes = [(rng.random((8, 8)) < 0.35).astype(np.int32) for _ in range(N)]
    conv1 = random_maps(N, size=(8, 8), units=4, seed=2)
    for m, s in zip(conv1, strokes):
        m[..., 0] = np.where(s == 1, 1.0, -1.0) + 0.3 * rng.standard_normal((8, 8))
    path = write_image_recording(
        tmp_path_factory.mktemp("vprobe") / "img.h5", conv0, geometry=STRIDE2, input_size=(8, 8),
        pixel_labels=strokes, labels=("background", "stroke"),
        more_taps=[("conv1", "conv1", STRIDE1, conv1)], item_labels=kinds, item_label_names=CLASSES)
    with open_recording(path) as rec:
        yield rec


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LSTMVIZ_CACHE_DIR", str(tmp_path / "cache"))


def test_item_label_probes_every_tap_on_one_row_per_image(recording):
    report = run_probes(recording, "kind", at="last", cache=False)
    assert report.taps == ["image", "conv0", "logits", "conv1"]  # the input first, then declaration order
    assert report.rows == {"image": "pixels flattened", "conv0": "mean over cells",
                           "conv1": "mean over cells", "logits": "one row per image"}
    assert report.axes == {"image": "positions", "conv0": "conv0", "conv1": "conv1", "logits": "scalar"}
    assert report.baseline is None and not report.skipped
    acc = {t: report.probes[t].accuracy for t in report.taps}
    assert acc["conv0"] >= 0.9, acc  # the planted signal decodes
    for t in ("image", "conv1", "logits"):  # noise (constant pixels, random maps): near chance
        assert acc[t] <= 0.6, acc
    assert report.controls["conv0"].accuracy <= 0.6  # random labels per image do not carry to test images
    # items are the split unit: one row per test image
    n_test = report.split_sizes[2]
    assert all(report.probes[t].n_test == n_test for t in report.taps)
    table = report.table()
    assert table["rows"] == ["pixels flattened", "mean over cells", "one row per image", "mean over cells"]


def test_max_pooling(recording):
    report = run_probes(recording, "kind", taps=["conv0"], at="last", cache=False, pool="max", control=False)
    assert report.rows == {"conv0": "max over cells"} and report.pool == "max"
    assert report.probes["conv0"].accuracy >= 0.9


@pytest.mark.parametrize("slab", [None, 7])  # 7 rows: items split across slabs
def test_pooled_rows_equal_numpy(recording, slab, monkeypatch):
    from lstmviz.analysis import probe_images

    if slab is not None:
        monkeypatch.setattr(probe_images, "slab_rows", lambda *a, **k: slab)
    x = recording.raw_states("conv0").astype(np.float64)
    off = recording.axis_offsets("conv0")
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.stack([np.nanmean(x[a:b], 0) for a, b in zip(off[:-1], off[1:])])
            top = np.stack([np.nanmax(x[a:b], 0) for a, b in zip(off[:-1], off[1:])])
    np.testing.assert_allclose(pooled_rows(recording, "conv0"), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pooled_rows(recording, "conv0", pool="max"), top, rtol=1e-6)


def test_position_label_on_cells(recording):
    report = run_probes(recording, "label", cache=False)
    assert report.rows["conv1"].startswith("cells") and report.rows["conv0"].startswith("cells")
    assert report.rows["image"] == "positions"
    assert "logits" in report.skipped and "logits" not in report.taps
    conv1, conv0 = report.probes["conv1"], report.probes["conv0"]
    assert conv1.accuracy >= 0.95  # the planted per-cell signal
    assert conv0.accuracy <= conv0.majority_accuracy + 0.05  # noise: no better than the majority class
    # conv1 (stride 1): one row per pixel; conv0 (stride 2): cells on pixel corners, ties dropped
    test_items = report.split_sizes[2]
    assert conv1.n_test == test_items * 64
    assert conv0.n_test < test_items * 16
    assert report.mixed_rows()


def _reference_cell_labels(recording, axis, pixel_labels):
    """Brute force: each cell's centre, the pixels whose unit square overlaps the unit box around it, their
    most frequent label (ties and no pixel: -1)."""
    g = recording.axis_geometry(axis)
    out = []
    for item in range(recording.n_items):
        size = recording.item_geometry(item, axis)
        inp = recording.item_geometry(item)
        a, _ = recording.item_range(item)
        for y in range(size.height):
            for x in range(size.width):
                cy = g.offset[0] + y * g.stride[0] + 0.5
                cx = g.offset[1] + x * g.stride[1] + 0.5
                votes = Counter()
                for py in range(inp.height):
                    for px in range(inp.width):
                        if py < cy + 0.5 and py + 1 > cy - 0.5 and px < cx + 0.5 and px + 1 > cx - 0.5:
                            votes[int(pixel_labels[a + py * inp.width + px])] += 1
                common = votes.most_common()
                if not common or (len(common) > 1 and common[0][1] == common[1][1]):
                    out.append(-1)
                else:
                    out.append(common[0][0])
    return np.array(out)


@pytest.mark.parametrize("axis", ["conv0", "conv1"])
def test_cell_labels_equal_brute_force(recording, axis):
    from lstmviz.analysis.probes import probe_labels

    pixel = probe_labels(recording, "label")
    got = cell_labels(recording, "label", axis)
    ref = _reference_cell_labels(recording, axis, pixel)
    np.testing.assert_array_equal(got, ref)
    if axis == "conv0":  # 2x2 pixels per cell: some ties, some majorities
        assert np.any(got == -1) and np.any(got == 1) and np.any(got == 0)


def test_cell_labels_with_padding_and_odd_offsets(tmp_path):
    """A map whose centres fall outside the input (padding) or on pixel edges in one direction only."""
    geometry = AxisGeometry(kind="image", stride=(3, 2), receptive_field=5, offset=(-1.0, 0.5))
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 3, (7, 6)) for _ in range(3)]
    labels[1][0, 0] = -1
    maps = random_maps(3, size=(3, 4), units=2)
    path = write_image_recording(tmp_path / "p.h5", maps, geometry=geometry, input_size=(7, 6),
                                 pixel_labels=labels, labels=("x", "y", "z"))
    from lstmviz.analysis.probes import probe_labels

    with open_recording(path) as rec:
        pixel = probe_labels(rec, "label")
        got = cell_labels(rec, "label", "conv0")
        np.testing.assert_array_equal(got, _reference_cell_labels(rec, "conv0", pixel))
        assert got[0] == -1  # cell (0, 0): centre above the input


def test_shift_is_refused_on_pooled_rows(recording):
    with pytest.raises(ValueError, match="shift"):
        run_probes(recording, "label", taps=["conv1"], shift=1, cache=False)


def test_last_position_is_refused_on_cells(recording):
    with pytest.raises(ValueError, match="main axis only"):
        run_probes(recording, "label", taps=["conv1"], at="last", cache=False)


def test_scalar_tap_for_a_pixel_label_says_why(recording):
    why = probe_rows(recording, "logits", "label")
    assert isinstance(why, str) and "scalar" in why
    with pytest.raises(ValueError, match="No tap can be probed"):
        run_probes(recording, "label", taps=["logits"], cache=False)


def test_report_cache_keeps_the_rows(recording):
    first = run_probes(recording, "kind", taps=["conv0", "logits"], at="last", control=False)
    again = run_probes(recording, "kind", taps=["conv0", "logits"], at="last", control=False)
    assert again.from_cache and again.rows == first.rows and again.axes == first.axes
    other = run_probes(recording, "kind", taps=["conv0", "logits"], at="last", control=False, pool="max")
    assert not other.from_cache and other.rows["conv0"] == "max over cells"
