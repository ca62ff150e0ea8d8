"""A set axis in an image recording: a tap of layout SET ([B, M, units]) on an axis that image_axes() describes
as a set of named members is stored with M rows per image, member ids 0 .. M-1 on every image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lstmviz.engines.families.image import ImageData, SampleImages
from lstmviz.engines.families.image.api import SCALAR_AXIS, ImageAxis, set_axis
from lstmviz.geometry import AxisGeometry, SetGeometry
from lstmviz.hooks import SCALAR, SET, Tap
from lstmviz.recording.image_recorder import record_images
from lstmviz.recording.reader import open_recording
from lstmviz.recording.writer import RecordingWriter

DATA = ImageData(channels=3, height=5, width=4, num_classes=2)
NAMES = ("red", "green", "blue")


class PerChannel(nn.Module):
    """One set member per input channel: its mean, max and a constant marking the member (unit 2 = 10 m)."""

    def __init__(self, members=NAMES, axis_members=NAMES):
        super().__init__()
        self.members, self.axis_members = members, axis_members
        self.tap = Tap("channels", layout=SET, axis="channel", description="per channel: mean, max, 10 m")
        self.out = Tap("logits", layout=SCALAR, axis="image")
        self.weight = nn.Parameter(torch.ones(()))

    def image_axes(self, h, w):
        return {"channel": set_axis(self.axis_members), "image": SCALAR_AXIS}

    def forward(self, x):
        flat = x.flatten(2)  # [B, C, HW]
        marks = 10.0 * torch.arange(len(self.members), dtype=x.dtype).expand(len(x), -1)
        rows = torch.stack([flat.mean(2), flat.amax(2), marks], dim=2)  # [B, M=C, 3]
        rows = self.tap(rows)
        return self.out(rows[:, :, 0] * self.weight)[:, :2]


def test_set_tap_rows_are_the_members_in_order_for_every_image(tmp_path):
    data = SampleImages(DATA, images=5, seed=2)
    path = record_images(PerChannel(), data, tmp_path / "r.h5", chunk=2)  # chunks that do not divide the items
    with open_recording(path) as rec:
        assert rec.axis_geometry("channel") == AxisGeometry(kind="set", members=NAMES)
        assert rec.taps["channels"].axis == "channel" and rec.taps["channels"].units == 3
        for i in range(5):
            g = rec.item_geometry(i, "channel")
            assert isinstance(g, SetGeometry) and g.member.tolist() == [0, 1, 2]
            a, b = rec.item_range(i, "channel")
            assert b - a == 3
            rows = rec.item_states("channels", i)
            image = data[i].image.reshape(3, -1)
            np.testing.assert_allclose(rows[:, 0], image.mean(1), rtol=1e-6)
            np.testing.assert_allclose(rows[:, 1], image.max(1), rtol=1e-6)
            assert rows[:, 2].tolist() == [0.0, 10.0, 20.0]  # row m is member m
            assert rec.item_range(i, "image")[1] - rec.item_range(i, "image")[0] == 1


def test_a_set_tap_with_the_wrong_number_of_members_is_refused_and_nothing_is_written(tmp_path):
    data = SampleImages(DATA, images=2, seed=2)
    with pytest.raises(ValueError, match="channel.*2 positions per image"):
        record_images(PerChannel(axis_members=("a", "b")), data, tmp_path / "r.h5")
    assert list(tmp_path.iterdir()) == []


def test_a_set_axis_has_no_map_size_and_its_items_are_members_in_order():
    axis = set_axis(["x", "y"])
    assert axis.num_positions == 2 and axis.set_geometry().member.tolist() == [0, 1]
    with pytest.raises(ValueError, match="no feature-map size"):
        ImageAxis(AxisGeometry(kind="set", members=("x",)), size=axis.set_geometry())
    with pytest.raises(ValueError, match="no set members"):
        SCALAR_AXIS.set_geometry()


def test_append_items_tiles_a_set_items_members_and_still_refuses_graphs(tmp_path):
    w = RecordingWriter(tmp_path / "w.h5", vocab=["a"])
    w.add_axis("m", geometry=AxisGeometry(kind="set", members=("p", "q", "r")))
    w.add_tap("t", 2, axis="m")
    states = np.arange(4 * 3 * 2, dtype=np.float32).reshape(4, 3, 2)
    w.append_items(np.zeros((4, 1), np.int64), {"t": states}, geometry={"m": SetGeometry(np.array([2, 0, 1]))})
    path = w.close()
    with open_recording(path) as rec:
        for i in range(4):
            assert rec.item_geometry(i, "m").member.tolist() == [2, 0, 1]
            np.testing.assert_array_equal(rec.item_states("t", i), states[i])
    g = RecordingWriter(tmp_path / "g.h5", vocab=["a"])
    g.add_axis("n", geometry="graph")
    g.add_tap("t", 2, axis="n")
    with pytest.raises(ValueError, match="graph axis"):
        g.append_items(np.zeros((2, 1), np.int64), {"t": np.zeros((2, 1, 2), np.float32)})
    g.abort()
