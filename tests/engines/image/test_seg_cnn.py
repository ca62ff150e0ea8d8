"""seg-cnn: per-pixel logits, the docstring's equations, honest receptive fields, and `lstmviz train` +
`lstmviz record` on digits-seg writing the mask and the predicted mask as per-pixel annotations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lstmviz.cli import main
from lstmviz.datasets.registry import load_dataset
from lstmviz.engines.checkpoint import load_checkpoint
from lstmviz.engines.families.image.api import cell_box
from lstmviz.engines.vision.seg_cnn import build
from lstmviz.hooks import HookScope, find_taps
from lstmviz.recording.reader import open_recording


def test_output_is_per_pixel_logits_and_image_level_tasks_are_refused():
    model = build(3, 8, 10, 5, num_layers=3).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 8, 10))
    assert tuple(out.shape) == (2, 5, 8, 10)
    for task in ("class", "multilabel"):
        with pytest.raises(ValueError, match="expected the segmentation task"):
            build(3, 8, 10, 5, task=task)


def test_forward_is_the_docstrings_equations():
    torch.manual_seed(0)
    model = build(1, 9, 9, 4, hidden_size=3, num_layers=3).double().eval()
    x = torch.rand(2, 1, 9, 9, dtype=torch.float64)
    h = x
    for i, conv in enumerate(model.convs):
        d = 2 ** i
        h = F.conv2d(h, conv.weight, conv.bias, padding=d, dilation=d).relu()
    z = F.conv2d(h, model.head.weight, model.head.bias)
    with torch.no_grad():
        torch.testing.assert_close(model(x), z)


def test_image_axes_are_full_resolution_with_the_dilated_receptive_fields():
    model = build(1, 16, 12, 3, num_layers=4)
    axes = model.image_axes(16, 12)
    assert set(axes) == {"conv0", "conv1", "conv2", "conv3", "logits"}
    for name, rf in (("conv0", 3), ("conv1", 7), ("conv2", 15), ("conv3", 31), ("logits", 31)):
        g = axes[name].geometry
        assert (axes[name].size.height, axes[name].size.width) == (16, 12)
        assert g.stride == (1, 1) and g.offset == (0.0, 0.0) and g.receptive_field == (rf, rf), name
    plain = build(1, 16, 12, 3, num_layers=4, dilated=False).image_axes(16, 12)
    assert plain["conv3"].geometry.receptive_field == (9, 9)


def test_a_pixel_outside_a_cells_box_does_not_change_it():
    """The stored receptive field is the cell's true dependence (gradient support) on the input, and the
    dilation really widens it beyond an undilated stack's 7 pixels."""
    torch.manual_seed(1)
    model = build(1, 24, 24, 3, hidden_size=4, num_layers=3).double().eval()
    axes = model.image_axes(24, 24)
    x = torch.rand(1, 1, 24, 24, dtype=torch.float64, requires_grad=True)
    taps = {}
    with HookScope() as hooks:
        for tap in find_taps(model).values():
            hooks.read(tap, lambda module, args, kwargs, value: taps.__setitem__(module.name, value))
        model(x)
    for name in ("conv2", "logits"):
        x.grad = None
        y, xx = 12, 11
        taps[name][0, :, y, xx].sum().backward(retain_graph=True)
        support = (x.grad[0, 0] != 0).nonzero()
        y0, x0, y1, x1 = cell_box(axes[name], y, xx)
        assert support[:, 0].min() >= y0 and support[:, 0].max() < y1, name
        assert support[:, 1].min() >= x0 and support[:, 1].max() < x1, name
        assert support[:, 0].max() - support[:, 0].min() + 1 > 7, name


def test_cli_train_and_record_write_the_mask_and_the_predicted_mask(tmp_path, capsys):
    model_path, rec_path = tmp_path / "m.pt", tmp_path / "r.h5"
    options = ["--dataset-option", "max_images=40", "--dataset-option", "size=8"]
    assert main(["train", "seg-cnn", "--dataset", "digits-seg", "--out", str(model_path), "--steps", "5",
                 "--set", "hidden_size=4", "--set", "num_layers=2", "--quiet", *options]) == 0
    assert main(["record", str(model_path), "--split", "test", "--out", str(rec_path), "--quiet",
                 "--dataset-option", "size=8", "--max-items", "12"]) == 0
    capsys.readouterr()
    test = load_dataset("digits-seg", "test", size=8)
    model, meta = load_checkpoint(model_path)
    assert meta["data"]["task"] == "segmentation" and meta["data"]["num_classes"] == 11
    with torch.no_grad():
        predicted = model(torch.from_numpy(np.array(test.images[:12]))).argmax(1).numpy()
    with open_recording(rec_path) as rec:
        assert rec.n_items == 12
        for name in ("target", "prediction"):
            info = rec.annotations[name]
            assert info.level == "position" and list(info.labels) == ["background", *map(str, range(10))]
        target = rec.annotation("target").reshape(12, 8, 8)
        prediction = rec.annotation("prediction").reshape(12, 8, 8)
        assert np.array_equal(target, test.masks[:12])
        assert np.array_equal(prediction, predicted)
        assert rec.annotation("class").tolist() == test.targets[:12].tolist()  # the image's digit stays per image
        assert {"conv0", "conv1", "logits"} <= set(rec.taps)
