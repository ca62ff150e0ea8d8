"""Stock nn.LSTM / nn.GRU: an intervention runs the module step by step (for that run only), exact to the
fused kernel when nothing is changed, and the recurrence carries an edit of c or a gate forward."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from lstmviz.hooks import Edit, intervene, list_signals
from lstmviz.hooks.rnn_point import RNNPoint
from lstmviz.recording.recorder import Recorder

NEVER = 10_000  # a position no test sequence reaches: the edit selects nothing, the per-step path still runs


class Wrapper(nn.Module):
    def __init__(self, rnn: nn.Module, packed_lengths=None):
        super().__init__()
        self.rnn = rnn
        self.packed_lengths = packed_lengths

    def forward(self, x, hx=None):
        if self.packed_lengths is not None:
            x = pack_padded_sequence(x, self.packed_lengths, batch_first=self.rnn.batch_first, enforce_sorted=False)
        return self.rnn(x, hx)


def _flat(value):
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _flat(v)]
    return [value.data if hasattr(value, "batch_sizes") else value]


CASES = {
    "lstm-batch-first": (nn.LSTM, dict(batch_first=True), None, False),
    "lstm-bidirectional-packed": (nn.LSTM, dict(bidirectional=True), torch.tensor([9, 4, 7]), False),
    "lstm-projection-hx": (nn.LSTM, dict(proj_size=3), None, True),
    "lstm-no-bias-unbatched": (nn.LSTM, dict(bias=False), None, False),
    "gru-batch-first-hx": (nn.GRU, dict(batch_first=True), None, True),
    "gru-bidirectional-packed": (nn.GRU, dict(bidirectional=True, batch_first=True), torch.tensor([3, 9, 6]), False),
}


def _setup(name):
    cls, options, lengths, with_hx = CASES[name]
    torch.manual_seed(0)
    rnn = cls(4, 5, num_layers=2, **options).eval()
    model = Wrapper(rnn, lengths)
    shape = (3, 9, 4) if rnn.batch_first else (9, 3, 4)
    x = torch.randn(*shape)
    if name.endswith("unbatched"):
        x = x[:, 0] if not rnn.batch_first else x[0]
    hx = None
    if with_hx:
        directions = 2 if rnn.bidirectional else 1
        out_size = getattr(rnn, "proj_size", 0) or rnn.hidden_size
        h0 = torch.randn(2 * directions, 3, out_size)
        hx = (h0, torch.randn(2 * directions, 3, rnn.hidden_size)) if cls is nn.LSTM else h0
    return model, x, hx


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")  # torch's, harmless
@pytest.mark.parametrize("name", list(CASES))
def test_the_per_step_path_equals_the_fused_module_when_no_edit_applies(name):
    model, x, hx = _setup(name)
    signals = list_signals(model)
    with torch.no_grad():
        with Recorder(model, "rnn/*") as rec:
            fused = model(x, hx)
            fused_states = rec.collect() if not name.endswith("unbatched") else None
        edit = Edit(signals[-1 if "unbatched" not in name else 0], "add", 1.0, positions=[NEVER])
        with intervene(model, edit) as active, Recorder(model, "rnn/*") as rec:
            assert RNNPoint.of(model.rnn).edited  # the per-step path is taken
            stepped = model(x, hx)
            stepped_states = rec.collect() if not name.endswith("unbatched") else None
    assert active.applied == [0]
    for a, b in zip(_flat(fused), _flat(stepped)):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6)
    if fused_states is not None:  # every layer's h, c and gates, recovered vs computed step by step
        assert list(stepped_states) == list(fused_states)
        for key, value in fused_states.items():
            torch.testing.assert_close(stepped_states[key], value, rtol=0, atol=1e-6, msg=key)
    assert "forward" not in model.rnn.__dict__  # the module is stock again


def test_an_edit_of_c_is_carried_by_the_recurrence_and_recorded_as_used():
    model, x, _ = _setup("lstm-batch-first")
    with torch.no_grad():
        with Recorder(model, "rnn/*") as rec:
            base_out, _ = model(x)
            base = rec.collect()
            with intervene(model, Edit("rnn/layer0/c", "replace", 0.5, positions=[4], units=[1, 3])):
                out, _ = model(x)
            edited = rec.collect()
    c, o, h = edited["rnn/layer0/c"], edited["rnn/layer0/gates/o"], edited["rnn/layer0/h"]
    assert torch.equal(c[:, 4, [1, 3]], torch.full((3, 2), 0.5))
    torch.testing.assert_close(h[:, 4], o[:, 4] * torch.tanh(c[:, 4]))  # h is made from the edited c
    for key in base:
        torch.testing.assert_close(edited[key][:, :4], base[key][:, :4], rtol=0, atol=1e-6, msg=key)
    f, i, g = (edited[f"rnn/layer0/gates/{k}"] for k in "fig")
    torch.testing.assert_close(c[:, 5], f[:, 5] * c[:, 4] + i[:, 5] * g[:, 5])  # step 5 starts from the edit
    assert not torch.allclose(edited["rnn/layer0/c"][:, 5], base["rnn/layer0/c"][:, 5])
    assert not torch.allclose(edited["rnn/layer1/h"][:, 4], base["rnn/layer1/h"][:, 4])  # into the next layer
    assert torch.allclose(out[:, :4], base_out[:, :4], atol=1e-6) and not torch.allclose(out[:, 4:], base_out[:, 4:])
    assert "forward" not in model.rnn.__dict__


def test_a_gate_of_a_gru_scaled_in_the_reverse_direction():
    model, x, _ = _setup("gru-bidirectional-packed")
    with torch.no_grad(), Recorder(model, "rnn/layer0_reverse/*") as rec:
        model(x)
        base = rec.collect()
        with intervene(model, Edit("rnn/layer0_reverse/gates/z", "scale", 0.0, positions=[2])):
            model(x)
        edited = rec.collect()
    assert not edited["rnn/layer0_reverse/gates/z"][:, 2].any()
    # the reverse direction runs from the end: steps after 2 are computed before it and do not change
    for key in base:
        torch.testing.assert_close(edited[key][:, 3:], base[key][:, 3:], rtol=0, atol=1e-6, msg=key)
    assert not torch.allclose(edited["rnn/layer0_reverse/h"][:, :2], base["rnn/layer0_reverse/h"][:, :2])


def test_a_module_whose_forward_is_patched_by_someone_else_is_refused():
    model, x, _ = _setup("lstm-batch-first")
    model.rnn.forward = lambda *a, **k: None
    with pytest.raises(ValueError, match=r"cannot intervene inside LSTM at 'rnn': its forward is already replaced "
                                         r"on the instance by a patch that is not lstmviz's"):
        with intervene(model, Edit("rnn/layer0/c", "add", 1.0)):
            pass
    assert model.rnn.__dict__["forward"] is not None  # the foreign patch is left as it was


def test_units_beyond_the_rnn_are_refused_before_running():
    model, _, _ = _setup("lstm-batch-first")
    with pytest.raises(ValueError, match=r"edit of 'rnn/layer1/gates/f': unit 5 does not exist; the signal has 5 units"):
        intervene(model, Edit("rnn/layer1/gates/f", "add", 1.0, units=[5]))
