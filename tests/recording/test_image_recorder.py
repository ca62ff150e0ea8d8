"""record_images: an image model's taps in a v3 recording, rows in raster order, geometry stored, bad inputs
refused with nothing written."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

from lstmviz.datasets.image_base import ImageError
from lstmviz.engines.families.image import ImageData, SampleImages
from lstmviz.engines.families.image.api import SCALAR_AXIS, ConvStep, conv_chain
from lstmviz.engines.vision.cnn import build
from lstmviz.hooks import IMAGE, SCALAR, HookScope, Tap, find_taps
from lstmviz.recording.image_recorder import estimate_image_bytes, record_images
from lstmviz.recording.reader import open_recording

DATA = ImageData(channels=2, height=8, width=6, num_classes=3)


def model_and_data(images=5):
    torch.manual_seed(0)
    return build(2, 8, 6, 3, hidden_size=3, num_layers=3).eval(), SampleImages(DATA, images=images, seed=1)


def tap_values(model, images):
    """Every tap's raw output, by a hook of our own (not the recorder's)."""
    out = {}
    with HookScope() as hooks, torch.no_grad():
        for name, tap in find_taps(model).items():
            hooks.read(tap, lambda module, args, kwargs, value: out.__setitem__(module.name, value.clone()))
        model(images)
    return out


def test_rows_are_the_taps_values_in_raster_order_and_geometry_is_stored(tmp_path):
    model, data = model_and_data()
    path = record_images(model, data, tmp_path / "r.h5", chunk=2)  # chunks that do not divide the items
    images = torch.from_numpy(np.stack([data[i].image for i in range(len(data))]))
    raw = tap_values(model, images)
    with open_recording(path) as rec:
        assert rec.n_items == 5 and rec.n_positions == 5 * 48
        assert set(rec.taps) == {"input", "conv0", "conv1", "conv2", "pooled", "logits"}
        assert rec.axis_geometry().kind == "image"
        for i in (0, 3):
            assert (rec.item_geometry(i).height, rec.item_geometry(i).width) == (8, 6)
            start, stop = rec.item_range(i)
            stored = rec.states("input", start, stop)
            assert np.array_equal(stored, data[i].image.reshape(2, 48).T)
            for name in ("conv0", "conv1", "conv2"):
                value = raw[name][i]  # [C, H', W']
                expected = value.permute(1, 2, 0).reshape(-1, value.shape[0]).numpy()  # raster order
                a, b = rec.item_range(i, name)
                np.testing.assert_allclose(rec.states(name, a, b), expected, rtol=1e-6, atol=1e-7)
                g = rec.item_geometry(i, name)
                assert (g.height, g.width) == tuple(value.shape[1:])
            axes = model.image_axes(8, 6)
            assert rec.axis_geometry("conv1") == axes["conv1"].geometry
            assert rec.axis_geometry("image").kind == "scalar"
            a, b = rec.item_range(i, "image")
            assert b - a == 1
            np.testing.assert_allclose(rec.states("logits", a, b)[0], raw["logits"][i].numpy(), rtol=1e-6)
        logits = raw["logits"].numpy()
        assert np.array_equal(rec.annotation("prediction"), logits.argmax(1))
        assert np.array_equal(rec.annotation("target"), [data[i].target for i in range(5)])
        assert np.array_equal(rec.annotation("stroke"), np.concatenate([data[i].annotations["stroke"] for i in range(5)]))
        assert rec.provenance["dataset"] == "sample-images" and rec.provenance["dataset_options"]["images"] == 5


def test_float16_storage_and_signal_selection(tmp_path):
    model, data = model_and_data(3)
    path = record_images(model, data, tmp_path / "r.h5", signals=["conv1"], dtype="float16")
    with open_recording(path) as rec:
        assert set(rec.taps) == {"input", "conv1"}
        assert "conv0" not in rec.axes and "conv1" in rec.axes
        assert rec.raw_states("conv1").dtype == np.float16


class Unmapped(nn.Module):
    """A conv tap on an axis that image_axes() leaves out."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.tap = Tap("conv", layout=IMAGE, axis="mystery")
        self.out = Tap("logits", layout=SCALAR, axis="image")

    def image_axes(self, h, w):
        return {"image": SCALAR_AXIS, "conv": conv_chain(h, w, [ConvStep(3)])}

    def forward(self, x):
        return self.out(self.tap(self.conv(x)).mean(dim=(2, 3)))


def test_a_tap_on_an_undescribed_axis_is_refused_and_nothing_is_written(tmp_path):
    _, data = model_and_data(2)
    with pytest.raises(ValueError, match="mystery.*image_axes"):
        record_images(Unmapped(), data, tmp_path / "r.h5")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad, words", [
    (lambda im: np.where(np.arange(im.size).reshape(im.shape) == 5, np.nan, im), "image 2 has 1 non-finite"),
    (lambda im: im[:1], "image 2 has 1 channel"),
    (lambda im: im[:, :7], "image 2 has 7 height"),
])
def test_bad_images_are_refused_in_one_sentence_naming_the_item(tmp_path, bad, words):
    model, data = model_and_data(4)
    data._items[2].image = bad(data._items[2].image).astype(np.float32)
    with pytest.raises(ImageError, match=words):
        record_images(model, data, tmp_path / "r.h5", chunk=3)
    assert list(tmp_path.iterdir()) == []


def test_estimate_is_the_stored_state_bytes(tmp_path):
    model, data = model_and_data(4)
    estimate = estimate_image_bytes(model, data)
    per_image = 2 * 48 + 3 * 48 + 6 * 12 + 12 * 2 + 12 + 3  # input, conv0 8x6x3, conv1 4x3x6, conv2 2x1x12, pooled, logits
    assert estimate == per_image * 4 * 4


class Huge(nn.Module):
    """A scalar tap whose values overflow float16."""

    def __init__(self):
        super().__init__()
        self.tap = Tap("big", layout=SCALAR, axis="image")

    def image_axes(self, h, w):
        return {"image": SCALAR_AXIS}

    def forward(self, x):
        return self.tap(x.flatten(1)[:, :3] * 1e6)


class HugeNextToNaN(Huge):
    """The same overflowing values, with a NaN in the batch (NaN hides them from max and min)."""

    def forward(self, x):
        values = x.flatten(1)[:, :3] * 1e6
        values[0, 0] = float("nan")
        return self.tap(values)


def test_float16_overflow_next_to_a_nan_is_refused(tmp_path):
    _, data = model_and_data(2)
    with pytest.raises(ValueError, match="overflows float16"):
        record_images(HugeNextToNaN(), data, tmp_path / "r.h5", dtype="float16")
    assert list(tmp_path.iterdir()) == []


def test_float16_overflow_is_refused_and_float32_keeps_the_values(tmp_path):
    _, data = model_and_data(2)
    with pytest.raises(ValueError, match="overflows float16"):
        record_images(Huge(), data, tmp_path / "r.h5", dtype="float16")
    assert list(tmp_path.iterdir()) == []
    with open_recording(record_images(Huge(), data, tmp_path / "r.h5", dtype="float32")) as rec:
        np.testing.assert_allclose(rec.states("big")[0], data[0].image.reshape(-1)[:3] * 1e6, rtol=1e-6)


def test_background_writes_give_the_same_file_byte_for_byte(tmp_path, monkeypatch):
    from datetime import datetime, timezone

    from lstmviz.recording import writer

    class Frozen(datetime):  # both files get one creation time (provenance "created" is to the microsecond)
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 1, 1, tzinfo=timezone.utc)

    monkeypatch.setattr(writer, "datetime", Frozen)
    model, data = model_and_data(7)
    behind = record_images(model, data, tmp_path / "behind.h5", chunk=2, dtype="float16")
    inline = record_images(model, data, tmp_path / "inline.h5", chunk=2, dtype="float16", background_writes=False)
    assert behind.read_bytes() == inline.read_bytes()


@pytest.mark.parametrize("failing_call", [1, 3])
def test_a_write_that_fails_on_the_writer_thread_is_raised_and_leaves_no_file(tmp_path, monkeypatch, failing_call):
    """The write of batch k runs while batch k + 1 is computed: its error still reaches the caller (at the
    next batch, or at the end for the last one) and the half-written file is removed."""
    from lstmviz.recording.writer import RecordingWriter

    real = RecordingWriter.append_items
    calls = []

    def append_items(self, *args, **kwargs):
        calls.append(threading.current_thread().name)
        if len(calls) == failing_call:
            raise OSError("disk full (simulated)")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(RecordingWriter, "append_items", append_items)
    model, data = model_and_data(6)
    with pytest.raises(OSError, match="disk full"):
        record_images(model, data, tmp_path / "r.h5", chunk=2)
    assert list(tmp_path.iterdir()) == []
    assert len(calls) == failing_call and all(name.startswith("lstmviz-image-writer") for name in calls)


def test_cancel_while_a_write_is_in_flight_leaves_no_file(tmp_path):
    from lstmviz.tasks import Cancelled, Task

    seen = []

    def on_progress(done, total, message):
        seen.append(done)
        if done >= 4:
            task.cancel()

    task = Task(on_progress)
    model, data = model_and_data(8)
    with pytest.raises(Cancelled):
        record_images(model, data, tmp_path / "r.h5", chunk=2, task=task)
    assert seen == [2, 4] and list(tmp_path.iterdir()) == []
