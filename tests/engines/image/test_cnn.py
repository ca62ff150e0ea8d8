"""The cnn baseline: its equations (checked against a functional re-implementation), its axes, its taps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lstmviz.engines.families.image.api import cell_box
from lstmviz.engines.vision.cnn import build
from lstmviz.hooks import HookScope, find_taps


def taps_of(model, x):
    out = {}
    with HookScope() as hooks, torch.no_grad():
        for tap in find_taps(model).values():
            hooks.read(tap, lambda module, args, kwargs, value: out.__setitem__(module.name, value.clone()))
        logits = model(x)
    return logits, out


def test_forward_is_the_docstrings_equations():
    torch.manual_seed(0)
    model = build(2, 8, 8, 5, hidden_size=3, num_layers=4).double().eval()
    x = torch.rand(3, 2, 8, 8, dtype=torch.float64)
    logits, taps = taps_of(model, x)
    h = x
    for i, conv in enumerate(model.convs):
        a = F.relu(F.conv2d(h, conv.weight, conv.bias, padding=1))
        torch.testing.assert_close(taps[f"conv{i}"], a)
        h = F.max_pool2d(a, 2) if i < 2 else a
    p = h.mean(dim=(2, 3))
    torch.testing.assert_close(taps["pooled"], p)
    torch.testing.assert_close(logits, p @ model.head.weight.T + model.head.bias)
    torch.testing.assert_close(taps["logits"], logits)
    assert [tuple(taps[f"conv{i}"].shape[1:]) for i in range(4)] == [(3, 8, 8), (6, 4, 4), (12, 2, 2), (12, 2, 2)]


def test_image_axes_match_the_maps_and_their_receptive_fields():
    model = build(1, 16, 12, 3, num_layers=3)
    axes = model.image_axes(16, 12)
    assert set(axes) == {"conv0", "conv1", "conv2", "image"}
    assert [(axes[f"conv{i}"].size.height, axes[f"conv{i}"].size.width) for i in range(3)] == [(16, 12), (8, 6), (4, 3)]
    assert axes["conv0"].geometry.receptive_field == (3, 3) and axes["conv0"].geometry.stride == (1, 1)
    # conv3 -> pool2 -> conv3 -> pool2 -> conv3: rf 3, 4, 8, 10, 18; stride 1, 2, 4
    assert axes["conv2"].geometry.receptive_field == (18, 18) and axes["conv2"].geometry.stride == (4, 4)
    assert axes["image"].num_positions == 1


def test_a_pixel_outside_a_cells_box_does_not_change_it():
    """The stored receptive field is the cell's true dependence (gradient support) on the input."""
    torch.manual_seed(1)
    model = build(1, 16, 16, 3, hidden_size=2, num_layers=3).double().eval()
    axis = model.image_axes(16, 16)["conv2"]
    x = torch.rand(1, 1, 16, 16, dtype=torch.float64, requires_grad=True)
    _, taps = {}, {}
    with HookScope() as hooks:
        for tap in find_taps(model).values():
            hooks.read(tap, lambda module, args, kwargs, value: taps.__setitem__(module.name, value))
        model(x)
    y, xx = 1, 2
    taps["conv2"][0, :, y, xx].sum().backward()
    support = (x.grad[0, 0] != 0).nonzero()
    y0, x0, y1, x1 = cell_box(axis, y, xx)
    assert support[:, 0].min() >= y0 and support[:, 0].max() < y1
    assert support[:, 1].min() >= x0 and support[:, 1].max() < x1


def test_too_small_an_input_is_refused_in_words():
    with pytest.raises(ValueError, match="too small"):
        build(1, 2, 2, 3, num_layers=3)
