"""Every per-step signal of stock nn.LSTM / nn.GRU, recovered by the Recorder, against a float64
step-by-step reference computed here from the module's weights (one sequence at a time, so padding,
packing and batch order cannot leak into the reference)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from lstmviz.recording.recorder import Recorder, list_signals

TOL = 1e-5
I, H, T, B, L = 3, 5, 7, 3, 2


def _w(module, name, layer, reverse):
    t = getattr(module, f"{name}_l{layer}{'_reverse' if reverse else ''}", None)
    return None if t is None else t.detach().double()


def reference(module, x, lengths, h0=None, c0=None):
    """Per sequence b (its own length), per layer and direction: {signal name: [len_b, units]} float64.

    x: [B, T, I] batch-first float; h0/c0: [L*D, B, *] or None.
    """
    lstm = isinstance(module, nn.LSTM)
    dirs = 2 if module.bidirectional else 1
    proj = getattr(module, "proj_size", 0)
    hsize = proj or module.hidden_size
    out = []
    for b in range(x.shape[0]):
        n = int(lengths[b])
        inp = x[b, :n].double()
        sig = {}
        for layer in range(module.num_layers):
            dir_outputs = []
            for d in range(dirs):
                k = layer * dirs + d
                stem = f"layer{layer}{'_reverse' if d else ''}"
                w_ih, w_hh = _w(module, "weight_ih", layer, d), _w(module, "weight_hh", layer, d)
                zeros = torch.zeros(w_ih.shape[0], dtype=torch.double)
                b_ih = _w(module, "bias_ih", layer, d) if module.bias else zeros
                b_hh = _w(module, "bias_hh", layer, d) if module.bias else zeros
                w_hr = _w(module, "weight_hr", layer, d)
                h = torch.zeros(hsize, dtype=torch.double) if h0 is None else h0[k, b].double()
                c = torch.zeros(module.hidden_size, dtype=torch.double) if c0 is None else c0[k, b].double()
                rows = {s: [None] * n for s in (["h", "c", "i", "f", "g", "o"] if lstm else ["h", "r", "z", "n"])}
                for t in (range(n - 1, -1, -1) if d else range(n)):
                    xt = inp[t]
                    gi, gh = w_ih @ xt + b_ih, w_hh @ h + b_hh
                    if lstm:
                        a = gi + gh
                        hs = module.hidden_size
                        i_, f_, g_, o_ = (torch.sigmoid(a[:hs]), torch.sigmoid(a[hs:2 * hs]),
                                          torch.tanh(a[2 * hs:3 * hs]), torch.sigmoid(a[3 * hs:]))
                        c = f_ * c + i_ * g_
                        h = o_ * torch.tanh(c)
                        if w_hr is not None:
                            h = w_hr @ h
                        vals = dict(h=h, c=c, i=i_, f=f_, g=g_, o=o_)
                    else:
                        hs = module.hidden_size
                        r_ = torch.sigmoid(gi[:hs] + gh[:hs])
                        z_ = torch.sigmoid(gi[hs:2 * hs] + gh[hs:2 * hs])
                        n_ = torch.tanh(gi[2 * hs:] + r_ * gh[2 * hs:])
                        h = (1 - z_) * n_ + z_ * h
                        vals = dict(h=h, r=r_, z=z_, n=n_)
                    for s, v in vals.items():
                        rows[s][t] = v
                for s, v in rows.items():
                    name = f"{stem}/{s}" if s in ("h", "c") else f"{stem}/gates/{s}"
                    sig[name] = torch.stack(v)
                dir_outputs.append(sig[f"{stem}/h"])
            inp = torch.cat(dir_outputs, dim=-1)
        out.append(sig)
    return out


def check(recorded: dict, ref: list, lengths, prefix="rnn/"):
    names = {k[len(prefix):] for k in recorded}
    assert names == set(ref[0]), (sorted(names), sorted(ref[0]))
    for b, sig in enumerate(ref):
        n = int(lengths[b])
        for name, expected in sig.items():
            got = recorded[prefix + name][b, :n].double()
            err = (got - expected).abs().max().item()
            assert err < TOL, f"{name} of sequence {b}: max error {err:.2e}"


class Net(nn.Module):
    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x, hx=None):
        return self.rnn(x, hx)


def _make(cls, **kw):
    torch.manual_seed(0)
    return Net(cls(I, H, num_layers=L, **kw)).eval()


def _initial(module, batch):
    dirs = 2 if module.bidirectional else 1
    hsize = getattr(module, "proj_size", 0) or module.hidden_size
    h0 = torch.randn(L * dirs, batch, hsize)
    if isinstance(module, nn.LSTM):
        return (h0, torch.randn(L * dirs, batch, module.hidden_size))
    return h0


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("with_hx", [False, True])
def test_full_length_batches(cls, batch_first, bidirectional, with_hx):
    net = _make(cls, batch_first=batch_first, bidirectional=bidirectional)
    x = torch.randn(B, T, I)
    hx = _initial(net.rnn, B) if with_hx else None
    with torch.no_grad():
        plain = net(x if batch_first else x.transpose(0, 1), hx)
        with Recorder(net) as rec:
            recorded_out = net(x if batch_first else x.transpose(0, 1), hx)
    lengths = [T] * B
    h0, c0 = (hx if cls is nn.LSTM else (hx, None)) if with_hx else (None, None)
    check(rec.collect(), reference(net.rnn, x, lengths, h0, c0), lengths)
    assert torch.equal(plain[0], recorded_out[0])
    states = (plain[1], recorded_out[1]) if cls is nn.LSTM else ([plain[1]], [recorded_out[1]])
    for a, b in zip(*states):
        assert torch.equal(a, b)


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("lengths", [[4, T, 2], [T, 4, 2]], ids=["unsorted", "sorted"])
def test_packed_variable_lengths(cls, batch_first, bidirectional, lengths):
    """The reverse direction starts at each sequence's true end, from its own initial state."""
    net = _make(cls, batch_first=batch_first, bidirectional=bidirectional)
    lengths = torch.tensor(lengths)
    x = torch.randn(B, T, I)
    hx = _initial(net.rnn, B)
    packed = pack_padded_sequence(x if batch_first else x.transpose(0, 1), lengths, batch_first=batch_first,
                                  enforce_sorted=bool((lengths[:-1] >= lengths[1:]).all()))
    with torch.no_grad():
        plain = net(packed, hx)
        with Recorder(net) as rec:
            recorded_out = net(packed, hx)
    assert torch.equal(plain[0].data, recorded_out[0].data)
    h0, c0 = hx if cls is nn.LSTM else (hx, None)
    got = rec.collect()
    check(got, reference(net.rnn, x, lengths, h0, c0), lengths)
    for name, value in got.items():  # padding is zero, never a stale value
        assert value.shape[:2] == (B, T)
        for b, n in enumerate(lengths.tolist()):
            assert torch.all(value[b, n:] == 0), name


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
def test_padded_batch_without_packing(cls):
    """A causal model over a right-padded batch: every true position equals that item run alone."""
    net = _make(cls, batch_first=True)
    lengths = [T, 3, 5]
    x = torch.randn(B, T, I)
    for b, n in enumerate(lengths):
        x[b, n:] = 0.0
    with torch.no_grad(), Recorder(net) as rec:
        net(x)
    check(rec.collect(), reference(net.rnn, x, lengths), lengths)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")
def test_lstm_projection():
    net = _make(nn.LSTM, batch_first=True, bidirectional=True, proj_size=2)
    x = torch.randn(B, T, I)
    hx = _initial(net.rnn, B)
    with torch.no_grad(), Recorder(net) as rec:
        net(x, hx)
    got = rec.collect()
    assert got["rnn/layer1/h"].shape == (B, T, 2) and got["rnn/layer1/c"].shape == (B, T, H)
    check(got, reference(net.rnn, x, [T] * B, *hx), [T] * B)


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
def test_without_biases(cls):
    net = _make(cls, batch_first=True, bias=False)
    x = torch.randn(B, T, I)
    with torch.no_grad(), Recorder(net) as rec:
        net(x)
    check(rec.collect(), reference(net.rnn, x, [T] * B), [T] * B)


def test_unbatched_input_and_float64():
    net = _make(nn.GRU).double()
    x = torch.randn(T, I, dtype=torch.double)  # 2-D: one sequence, time-major
    with torch.no_grad():
        plain, _ = net(x)
        with Recorder(net) as rec:
            out, _ = net(x)
    assert torch.equal(plain, out)
    check(rec.collect(), reference(net.rnn, x[None], [T]), [T])


def test_training_mode_dropout_is_reproduced_exactly():
    """In training mode the recorded run is the run the model made: same dropout masks, same output,
    and layer 1's recovered gates and cells reproduce its hidden states (they used the dropped input)."""
    torch.manual_seed(0)
    net = Net(nn.LSTM(I, H, num_layers=L, dropout=0.5)).train()
    x = torch.randn(T, B, I)
    torch.manual_seed(1)
    plain, _ = net(x)
    torch.manual_seed(1)
    with Recorder(net) as rec:
        out, _ = net(x)
    assert torch.equal(plain, out) and out.requires_grad
    plain.sum().backward()  # gradients flow through the layer-by-layer run exactly as through the module
    expected = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    out.sum().backward()
    assert all(torch.equal(p.grad, e) for p, e in zip(net.parameters(), expected))
    got = rec.collect()
    o, c, h = got["rnn/layer1/gates/o"], got["rnn/layer1/c"], got["rnn/layer1/h"]
    assert (o * torch.tanh(c) - h).abs().max() < TOL
    assert torch.equal(h, out.detach().transpose(0, 1))


def test_step_by_step_calls_are_joined_along_time():
    """An LSTM called once per token (state carried by the caller) gives the same [B, T, H] signals."""
    net = _make(nn.LSTM, batch_first=True)
    x = torch.randn(B, T, I)
    with torch.no_grad(), Recorder(net.rnn, accumulate=True) as rec:
        state = None
        for t in range(T):
            _, state = net.rnn(x[:, t:t + 1], state)
    got = rec.collect()
    check({"rnn/" + k: v for k, v in got.items()}, reference(net.rnn, x, [T] * B), [T] * B)


def test_list_signals_names_every_layer_direction_and_gate():
    net = nn.Sequential(nn.Embedding(10, I), nn.GRU(I, H, num_layers=2, bidirectional=True))
    names = list_signals(net)
    assert "1/layer1_reverse/gates/n" in names and "1/layer0/h" in names and "0" in names
    assert not any(n.endswith("/c") for n in names)
    lstm_names = list_signals(nn.LSTM(I, H))
    assert lstm_names == ["layer0/h", "layer0/c"] + [f"layer0/gates/{g}" for g in "ifgo"]


@pytest.mark.parametrize("selection", [["rnn/layer1/c"], ["rnn/layer0/gates/o", "rnn/layer1/gates/g"],
                                       ["rnn/layer0_reverse/c", "rnn/layer1/gates/f"]])
def test_subsets_of_signals_are_exact(selection):
    """Only the needed gates are computed (c needs i, f, g; o alone needs only o): still exact."""
    net = _make(nn.LSTM, batch_first=True, bidirectional=True)
    x = torch.randn(B, T, I)
    with torch.no_grad(), Recorder(net, selection) as rec:
        net(x)
    got = rec.collect()
    assert list(got) == selection
    ref = reference(net.rnn, x, [T] * B)
    for name in selection:
        for b in range(B):
            assert (got[name][b].double() - ref[b][name[len("rnn/"):]]).abs().max() < TOL, name
