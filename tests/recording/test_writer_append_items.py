"""RecordingWriter.append_items: n items of one geometry in one call give the same file as n append_item calls."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from lstmviz.geometry import AxisGeometry, ImageGeometry
from lstmviz.recording import format as fmt
from lstmviz.recording.writer import RecordingWriter

N, H, W = 5, 3, 4


def _declare(w: RecordingWriter) -> None:
    w.set_geometry("positions", AxisGeometry("image", stride=(1, 1), receptive_field=(1, 1), offset=(0.0, 0.0)))
    w.add_axis("small", geometry=AxisGeometry("image", stride=(2, 2), receptive_field=(2, 2), offset=(0.5, 0.5)))
    w.add_axis("image", geometry=AxisGeometry("scalar"))
    w.add_tap("input", 2)
    w.add_tap("conv", 3, axis="small")
    w.add_tap("logits", 4, axis="image")
    w.add_annotation("stroke", kind="categorical", labels=["bg", "fg"])
    w.add_annotation("row", kind="numeric")
    w.add_annotation("class", kind="categorical", level="item", labels=["a", "b", "c"])
    w.add_annotation("score", kind="numeric", level="item")


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return dict(
        tokens=rng.integers(0, 3, (N, H * W)),
        states={"input": rng.random((N, H * W, 2), dtype=np.float32),
                "conv": rng.standard_normal((N, 2 * 2, 3)).astype(np.float32),
                "logits": rng.standard_normal((N, 1, 4))},
        annotations={"stroke": rng.integers(0, 2, (N, H * W)), "row": rng.random((N, H * W))},
        items={"class": [0, 2, None, 1, 1], "score": [0.5, None, 1.5, 2.0, -1.0]},
        geometry={"positions": ImageGeometry(H, W), "small": ImageGeometry(2, 2)},
    )


def _datasets(path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and name != "provenance":
                out[name] = obj[()]
        f.visititems(visit)
    return out


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_append_items_writes_what_append_item_writes(tmp_path, dtype):
    d = _data()
    with RecordingWriter(tmp_path / "one.h5", vocab=["x", "y", "z"], dtype=dtype) as w:
        _declare(w)
        for k in range(N):
            w.append_item(d["tokens"][k], {n: a[k] for n, a in d["states"].items()},
                          {n: a[k] for n, a in d["annotations"].items()},
                          {n: v[k] for n, v in d["items"].items()}, geometry=d["geometry"])
    with RecordingWriter(tmp_path / "batch.h5", vocab=["x", "y", "z"], dtype=dtype) as w:
        _declare(w)
        assert w.append_items(d["tokens"][:2], {n: a[:2] for n, a in d["states"].items()},
                              {n: a[:2] for n, a in d["annotations"].items()},
                              {n: v[:2] for n, v in d["items"].items()}, geometry=d["geometry"]) == 0
        assert w.append_items(d["tokens"][2:], {n: a[2:] for n, a in d["states"].items()},
                              {n: a[2:] for n, a in d["annotations"].items()},
                              {n: v[2:] for n, v in d["items"].items()}, geometry=d["geometry"]) == 2
    one, batch = _datasets(tmp_path / "one.h5"), _datasets(tmp_path / "batch.h5")
    assert set(one) == set(batch) and "axes/small/height" in one
    for name in one:
        np.testing.assert_array_equal(batch[name], one[name], err_msg=name)
    with h5py.File(tmp_path / "one.h5") as a, h5py.File(tmp_path / "batch.h5") as b:
        for name in one:  # checksums too
            assert dict(a[name].attrs).keys() == dict(b[name].attrs).keys()
            for key in a[name].attrs:
                assert np.array_equal(a[name].attrs[key], b[name].attrs[key]), (name, key)


def test_a_bad_batch_is_refused_and_leaves_the_writer_as_it_was(tmp_path):
    d = _data()
    with RecordingWriter(tmp_path / "r.h5", vocab=["x", "y", "z"]) as w:
        _declare(w)
        bad = dict(d["states"], conv=d["states"]["conv"][:, :3])
        with pytest.raises(ValueError, match="small"):
            w.append_items(d["tokens"], bad, d["annotations"], d["items"], geometry=d["geometry"])
        with pytest.raises(ValueError, match="label ids"):
            w.append_items(d["tokens"], d["states"], d["annotations"], dict(d["items"], **{"class": [0, 1, 5, 0, 0]}),
                           geometry=d["geometry"])
        assert w.n_items == 0
        w.append_items(d["tokens"], d["states"], d["annotations"], d["items"], geometry=d["geometry"])
    with h5py.File(tmp_path / "r.h5") as f:
        assert f[fmt.axis_offsets_path("positions")][()].tolist() == [H * W * k for k in range(N + 1)]


def test_graph_axes_take_one_item_at_a_time(tmp_path):
    w = RecordingWriter(tmp_path / "g.h5", vocab=["x"])
    w.set_geometry("positions", AxisGeometry("graph"))
    w.add_tap("h", 2)
    with pytest.raises(ValueError, match="append_item"):
        w.append_items(np.zeros((2, 3), int), {"h": np.zeros((2, 3, 2))})
    w.abort()
    assert not (tmp_path / "g.h5").exists()


def test_a_channels_first_block_is_laid_out_as_positions_by_units(tmp_path):
    """A [items, positions, channels] view of a channels-first map (strided) is stored like its contiguous copy."""
    rng = np.random.default_rng(1)
    maps = rng.standard_normal((N, 3, 2, 2)).astype(np.float32)  # [items, channels, y, x]
    strided = maps.reshape(N, 3, 4).transpose(0, 2, 1)
    assert not strided.flags.c_contiguous
    d = _data()
    paths = []
    for name, conv in (("strided", strided), ("copy", np.ascontiguousarray(strided))):
        with RecordingWriter(tmp_path / f"{name}.h5", vocab=["x", "y", "z"], dtype="float16") as w:
            _declare(w)
            w.append_items(d["tokens"], dict(d["states"], conv=conv), d["annotations"], d["items"],
                           geometry=d["geometry"])
        paths.append(tmp_path / f"{name}.h5")
    with h5py.File(paths[0]) as a, h5py.File(paths[1]) as b:
        np.testing.assert_array_equal(a["taps/conv"][()], b["taps/conv"][()])
        np.testing.assert_array_equal(a["taps/conv"][()], maps.transpose(0, 2, 3, 1).reshape(-1, 3).astype(np.float16))


def test_float16_overflow_next_to_a_nan_is_refused(tmp_path):
    d = _data()
    with RecordingWriter(tmp_path / "r.h5", vocab=["x", "y", "z"], dtype="float16") as w:
        _declare(w)
        conv = d["states"]["conv"].copy()
        conv[0, 0, 0], conv[1, 0, 0] = np.nan, 1e6
        with pytest.raises(ValueError, match="overflows float16"):
            w.append_items(d["tokens"], dict(d["states"], conv=conv), d["annotations"], d["items"],
                           geometry=d["geometry"])
        conv[1, 0, 0] = np.inf  # inf and NaN themselves are stored as they are
        w.append_items(d["tokens"], dict(d["states"], conv=conv), d["annotations"], d["items"], geometry=d["geometry"])
    with h5py.File(tmp_path / "r.h5") as f:
        stored = f["taps/conv"][()]
        assert np.isnan(stored[0, 0]) and np.isposinf(stored[4, 0])

