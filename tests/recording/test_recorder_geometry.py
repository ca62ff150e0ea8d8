"""The recorder lays values out as their taps declare and refuses what it cannot lay out (never guesses)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lstmviz.hooks import Tap, TapLayout
from lstmviz.recording.recorder import Recorder, record


class ConvNet(nn.Module):
    """Token ids -> [B, C, 1, T] feature map through a conv, a declared image tap and an undeclared output."""

    def __init__(self, vocab=5, channels=3):
        super().__init__()
        self.embedding = nn.Embedding(vocab, channels)
        self.conv = nn.Conv2d(channels, channels, 1)
        self.map_tap = Tap("conv/map", layout=TapLayout(geometry="image", positions=(2, 3), units=1))

    def forward(self, tokens):  # [B, T]
        x = self.embedding(tokens).transpose(1, 2)[:, :, None, :]  # [B, C, 1, T]
        return self.map_tap(self.conv(x))


def test_a_feature_map_of_a_module_is_refused_not_read_as_time_equals_channels():
    model = ConvNet()
    with Recorder(model, ["conv"]) as rec:
        model(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"module 'conv' produced a tensor of shape \(2, 3, 1, 4\); .* expects a "
                                         r"2-D or 3-D tensor; declare the tap's layout"):
        rec.collect()


def test_a_declared_image_tap_is_recorded_as_positions_by_channels():
    model = ConvNet()
    tokens = torch.tensor([[0, 1, 2, 3], [4, 3, 2, 1]])
    with torch.no_grad(), Recorder(model, ["conv/map"]) as rec:
        out = model(tokens)
    states = rec.collect()["conv/map"]
    assert states.shape == (2, 4, 3)  # [batch, 1 x 4 locations, 3 channels]
    assert torch.equal(states, out[:, :, 0, :].transpose(1, 2))


def test_record_refuses_positions_that_are_not_tokens_in_one_sentence(tmp_path):
    with pytest.raises(ValueError, match=r"signal 'conv/map' declares 'image' positions .*; record\(\) runs "
                                         r"sequence models over token items"):
        record(ConvNet(), [[0, 1, 2], [3, 4]], tmp_path / "r.h5", signals=["conv/map"], progress=False)
    assert not any(tmp_path.iterdir())
