"""The image family's geometry rule (conv_chain) against torch's own layers, and the image checks."""

import numpy as np
import pytest
import torch
from torch import nn

from lstmviz.datasets.image_base import ImageError, check_image
from lstmviz.engines.families.image.api import ConvStep, cell_box, conv_chain


def _cells_that_see(steps, modules, height, width, y, x):
    """Input pixels whose value changes output cell (y, x) of a random conv stack (by the gradient)."""
    torch.manual_seed(0)
    image = torch.rand(1, 1, height, width, requires_grad=True)
    out = image
    for m in modules:
        out = m(out)
    out[0, :, y, x].sum().backward()
    return np.argwhere(image.grad[0, 0].abs().numpy() > 0)


@pytest.mark.parametrize("layers", [
    [(3, 1, 1, 1)],
    [(3, 1, 1, 1), (2, 2, 0, 1), (3, 1, 1, 1), (2, 2, 0, 1)],
    [(5, 2, 2, 1), (3, 1, 0, 2)],
    [(3, 2, 0, 1), (3, 2, 1, 1)],
])
def test_conv_chain_gives_torch_sizes_and_the_pixels_a_cell_sees(layers):
    steps = [ConvStep(k, s, p, d) for k, s, p, d in layers]
    modules = [nn.Conv2d(1, 1, k, s, p, d) for k, s, p, d in layers]
    for m in modules:
        nn.init.constant_(m.weight, 1.0)
    height, width = 23, 19
    axis = conv_chain(height, width, steps)
    out = torch.zeros(1, 1, height, width)
    for m in modules:
        out = m(out)
    assert (axis.size.height, axis.size.width) == tuple(out.shape[2:])
    for y, x in [(0, 0), (axis.size.height - 1, axis.size.width - 1), (axis.size.height // 2, 1)]:
        seen = _cells_that_see(steps, modules, height, width, y, x)
        y0, x0, y1, x1 = cell_box(axis, y, x)
        # every pixel that reaches the cell lies in its box; the box clipped to the image is tight
        assert seen[:, 0].min() >= y0 and seen[:, 0].max() < y1 and seen[:, 1].min() >= x0 and seen[:, 1].max() < x1
        if all(d == 1 for *_, d in layers):
            assert seen[:, 0].min() == max(0, y0) and seen[:, 0].max() == min(height, y1) - 1
            assert seen[:, 1].min() == max(0, x0) and seen[:, 1].max() == min(width, x1) - 1


def test_conv_chain_refuses_an_input_too_small():
    with pytest.raises(ValueError, match="too small"):
        conv_chain(4, 4, [ConvStep(5)])


def test_check_image_says_what_is_wrong():
    good = np.zeros((1, 8, 8), np.float32)
    assert check_image(good, channels=1, height=8, width=8).dtype == np.float32
    with pytest.raises(ImageError, match=r"shape \(8, 8\)"):
        check_image(np.zeros((8, 8)))
    with pytest.raises(ImageError, match="3 channel"):
        check_image(np.zeros((3, 8, 8)), channels=1)
    with pytest.raises(ImageError, match="height"):
        check_image(good, height=16)
    bad = good.copy()
    bad[0, 1, 2] = np.nan
    with pytest.raises(ImageError, match="1 non-finite"):
        check_image(bad)
