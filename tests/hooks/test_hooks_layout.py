"""Tap layouts: every value becomes [batch, positions, units] as declared, and back; nothing is guessed."""

from __future__ import annotations

import pytest
import torch

from lstmviz.hooks import SEQUENCE, STEP, TOKENS, TOKENS_TIME_MAJOR, TapLayout

IMAGE = TapLayout(geometry="image", positions=(2, 3), units=1)


def test_a_step_value_is_one_position_and_a_sequence_value_keeps_its_order():
    step = torch.arange(6.0).reshape(2, 3)
    assert torch.equal(STEP.to_series(step), step[:, None, :])
    seq = torch.arange(24.0).reshape(2, 4, 3)
    assert torch.equal(SEQUENCE.to_series(seq), seq)
    assert torch.equal(TOKENS.to_series(step), step[:, None, :]) and torch.equal(TOKENS.to_series(seq), seq)
    assert torch.equal(TOKENS_TIME_MAJOR.to_series(seq), seq.transpose(0, 1))  # [T, B, U] -> [B, T, U]


def test_an_image_map_is_laid_out_in_raster_order_with_channels_as_units():
    batch, channels, height, width = 2, 3, 4, 5
    b, c, y, x = torch.meshgrid(*(torch.arange(n) for n in (batch, channels, height, width)), indexing="ij")
    value = (b * 1000 + c * 100 + y * 10 + x).double()  # every entry says where it came from
    series = IMAGE.to_series(value)
    assert series.shape == (batch, height * width, channels)
    for position in (0, 7, height * width - 1):
        row, col = divmod(position, width)
        assert series[1, position].tolist() == [1000 + ch * 100 + row * 10 + col for ch in range(channels)]
    assert torch.equal(IMAGE.from_series(series, like=value), value)


@pytest.mark.parametrize("layout, shape", [(STEP, (2, 3)), (SEQUENCE, (2, 4, 3)), (TOKENS_TIME_MAJOR, (4, 2, 3)),
                                           (IMAGE, (2, 3, 4, 5))])
def test_from_series_inverts_to_series(layout, shape):
    value = torch.randn(*shape)
    series = layout.to_series(value)
    assert torch.equal(layout.from_series(series * 2, like=value), value * 2)


def test_a_feature_map_is_refused_by_the_token_rule_not_read_as_time_equals_channels():
    with pytest.raises(ValueError, match=r"tap 'conv' produced a tensor of shape \(2, 3, 4, 5\); its layout .* "
                                         r"expects a 2-D or 3-D tensor; declare the tap's layout"):
        TOKENS.to_series(torch.zeros(2, 3, 4, 5), "tap 'conv'")
    with pytest.raises(ValueError, match="expects a 4-D tensor"):
        IMAGE.to_series(torch.zeros(2, 3, 4), "tap 'conv'")


def test_bad_layouts_are_refused():
    with pytest.raises(ValueError, match="expected a geometry in tokens, graph, image, set, scalar, got 'video'"):
        TapLayout(geometry="video")
    with pytest.raises(ValueError, match="does not name each of 3 axes once"):
        TapLayout(positions=(1,), units=1).to_series(torch.zeros(2, 3, 4))
