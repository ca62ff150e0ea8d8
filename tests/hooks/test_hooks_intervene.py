"""Interventions: replace / add / scale a signal at chosen positions, units and rows; the model carries on."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lstmviz.engines import build_engine
from lstmviz.hooks import Edit, Tap, TapLayout, intervene
from lstmviz.recording.recorder import Recorder


class Accumulator(nn.Module):
    """h_t = h_{t-1} + x_t through a step tap, then a sequence tap and a decoder: easy to predict by hand."""

    def __init__(self):
        super().__init__()
        self.step_tap = Tap("acc/h", signal="h")
        self.seq_tap = Tap("acc/all", signal="all")
        self.decoder = nn.Identity()

    def forward(self, x):  # [B, T, U]
        h, outs = torch.zeros_like(x[:, 0]), []
        for t in range(x.shape[1]):
            h = self.step_tap(h + x[:, t], step=t)
            outs.append(h)
        return self.decoder(self.seq_tap(torch.stack(outs, 1), step=None))


def _ones(batch=2, steps=4, units=3):
    return torch.ones(batch, steps, units, dtype=torch.float64)


def test_replace_at_a_step_is_carried_forward_by_the_recurrence():
    model = Accumulator()
    with intervene(model, Edit("acc/h", "replace", 0.0, positions=[1], units=[2], items=[0])) as edit:
        out = model(_ones())
    assert edit.applied == [1]
    expected = torch.arange(1.0, 5.0).double().expand(2, 3, 4).transpose(1, 2).clone()  # [B, T, U]: 1, 2, 3, 4
    expected[0, 1:, 2] = torch.tensor([0.0, 1.0, 2.0]).double()  # zeroed at step 1, then accumulated again
    assert torch.equal(out, expected)
    assert torch.equal(model(_ones())[0, :, 2], torch.arange(1.0, 5.0).double())  # the edit is gone


def test_add_and_scale_on_a_sequence_tap_with_per_unit_values():
    model = Accumulator()
    base = model(_ones())
    direction = torch.tensor([1.0, -2.0, 0.5])
    edits = [Edit("acc/all", "add", direction.numpy(), positions=[0, 3]),  # e.g. a probe's weights
             Edit("acc/all", "scale", 3.0, positions=[3])]
    with intervene(model, edits) as edit:
        out = model(_ones())
    assert edit.applied == [1, 1]
    expected = base.clone()
    expected[:, 0] += direction
    expected[:, 3] = (expected[:, 3] + direction) * 3  # edits of one signal apply in the order given
    assert torch.equal(out, expected)


def test_a_module_output_time_major_and_a_tuple_output():
    class Pair(nn.Module):  # returns (states [T, B, U], something else): the first element is edited
        def forward(self, x):
            return x * 2, x.sum()

    holder = nn.Sequential(Pair())
    x = torch.randn(5, 2, 3)
    base, total = holder(x)
    with intervene(holder, Edit("0", "replace", 7.0, positions=[4], items=[1]), batch_first=False):
        out, other = holder(x)
    assert torch.equal(out[4, 1], torch.full((3,), 7.0)) and torch.equal(out[:4], base[:4])
    assert torch.equal(out[4, 0], base[4, 0]) and torch.equal(other, total)


def test_an_engine_recorded_inside_an_intervention_records_the_edited_values():
    torch.manual_seed(0)
    model = build_engine("lstm", vocab_size=6, embedding_dim=4, hidden_size=5, num_layers=2).eval()
    tokens = torch.randint(0, 6, (2, 7), generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), Recorder(model, ["layer0/c", "layer1/h"]) as rec:
        base_logits, _ = model(tokens)
        base = rec.collect()
        with intervene(model, Edit("layer0/c", "replace", 0.0, positions=[3], units=[0, 4])):
            logits, _ = model(tokens)  # the intervention is entered after the recorder: it still runs first
        edited = rec.collect()
    assert not edited["layer0/c"][:, 3, [0, 4]].any()
    assert torch.equal(edited["layer0/c"][:, :3], base["layer0/c"][:, :3])
    assert not torch.allclose(edited["layer0/c"][:, 4], base["layer0/c"][:, 4])  # the cell carried the edit
    assert torch.equal(edited["layer1/h"][:, :3], base["layer1/h"][:, :3])
    assert not torch.allclose(edited["layer1/h"][:, 3], base["layer1/h"][:, 3])  # and the next layer saw it
    assert torch.equal(logits[:, :3], base_logits[:, :3]) and not torch.allclose(logits[:, 3:], base_logits[:, 3:])


def test_edits_only_while_active_and_no_hook_left():
    model = Accumulator()
    base = model(_ones())
    with pytest.raises(RuntimeError, match="boom"), intervene(model, Edit("acc/h", "scale", 0.0)):
        raise RuntimeError("boom")
    assert torch.equal(model(_ones()), base)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("make, message", [
    (lambda: Edit("acc/h", "ablate", 0.0), r"expected an action in replace, add, scale, got 'ablate'"),
    (lambda: Edit("acc/h", "add", math.nan), r"the value must be finite real numbers"),
    (lambda: Edit("acc/h", "add", torch.tensor([1.0, math.inf])), r"the value must be finite real numbers"),
    (lambda: Edit("acc/h", "add", "1"), r"expected the value as a number or a tensor .*, got str"),
    (lambda: Edit("acc/h", "add", [[1.0], [2.0, 3.0]]), r"expected the value as a number or a tensor .*, got list"),
    (lambda: Edit("acc/h", "add", 1.0, units=[-1]), r"expected units as whole numbers >= 0, got -1"),
    (lambda: Edit("acc/h", "add", 1.0, positions=[1.5]), r"expected positions as whole numbers >= 0, got 1.5"),
    (lambda: Edit("acc/h", "add", 1.0, items=[]), r"expected at least one of items"),
])
def test_bad_edits_are_refused_in_one_sentence(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_signal_or_unit_that_does_not_exist_is_named():
    model = Accumulator()
    with pytest.raises(ValueError, match=r"cannot intervene on 'acc/c': no such signal; available signals: acc/h"):
        intervene(model, Edit("acc/c", "add", 1.0))
    with pytest.raises(ValueError, match=r"edit of 'acc/h': unit 3 does not exist; the signal has 3 units"):
        with intervene(model, Edit("acc/h", "add", 1.0, units=[3])):
            model(_ones())
    with pytest.raises(ValueError, match=r"a value of shape \(2,\) does not fit the selection"):
        with intervene(model, Edit("acc/h", "add", torch.ones(2))):
            model(_ones())


def test_an_image_tap_is_edited_at_raster_positions():
    class Conv(nn.Module):
        def __init__(self):
            super().__init__()
            self.tap = Tap("conv", layout=TapLayout(geometry="image", positions=(2, 3), units=1))

        def forward(self, x):
            return self.tap(x)

    model, x = Conv(), torch.zeros(1, 2, 3, 4)
    with intervene(model, Edit("conv", "replace", 1.0, positions=[5], units=[1])):
        out = model(x)
    assert out.sum() == 1 and out[0, 1, 1, 1] == 1  # position 5 = row 1, column 1 of a 3 x 4 map
