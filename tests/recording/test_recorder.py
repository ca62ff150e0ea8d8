"""The Recorder context manager: hook lifetime, taps, module outputs, selection, unchanged outputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lstmviz.recording.recorder import Recorder, list_signals
from lstmviz.recording.taps import Tap


class LM(nn.Module):
    """A user's plain language model: Embedding -> 2-layer LSTM -> Linear."""

    def __init__(self, vocab=11, emb=4, hidden=6, layers=2, batch_first=True):
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb)
        self.lstm = nn.LSTM(emb, hidden, num_layers=layers, batch_first=batch_first)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, tokens):
        out, _ = self.lstm(self.embedding(tokens))
        return self.decoder(out)


class TapNet(nn.Module):
    """A tiny hand-written recurrent engine routing its state through step taps and a sequence tap."""

    def __init__(self, units=3):
        super().__init__()
        self.w = nn.Linear(units, units)
        self.step_tap = Tap("cell/h", signal="h", layer=0, description="state")
        self.seq_tap = Tap("cell/all", signal="all")

    def forward(self, x):  # x: [B, T, U]
        h = torch.zeros(x.shape[0], x.shape[2])
        outs = []
        for t in range(x.shape[1]):
            h = torch.tanh(self.w(h) + x[:, t])
            h = self.step_tap(h, step=t)
            outs.append(h)
        seq = self.seq_tap(torch.stack(outs, 1) * 2, step=None)
        h.mul_(0)  # an engine reusing its buffer in place must not change what was recorded
        return seq


def _no_hooks_left(model: nn.Module) -> bool:
    for m in model.modules():
        if m._forward_hooks or m._forward_pre_hooks or "forward" in m.__dict__:
            return False
    return True


def test_tap_values_by_name_step_and_sequence():
    torch.manual_seed(0)
    net = TapNet()
    x = torch.randn(2, 5, 3)
    with torch.no_grad(), Recorder(net, ["cell/*"]) as rec:
        net(x)
    got = rec.collect()
    with torch.no_grad():
        h, ref = torch.zeros(2, 3), []
        for t in range(5):
            h = torch.tanh(net.w(h) + x[:, t])
            ref.append(h)
    ref = torch.stack(ref, 1)
    assert list(got) == ["cell/h", "cell/all"]
    torch.testing.assert_close(got["cell/h"], ref)
    torch.testing.assert_close(got["cell/all"], 2 * ref)
    assert rec.infos["cell/h"].layer == 0 and rec.infos["cell/h"].description == "state"


def test_collect_returns_only_the_last_forward():
    net = TapNet()
    with torch.no_grad(), Recorder(net, ["cell/h"]) as rec:
        net(torch.randn(2, 5, 3))
        net(torch.randn(4, 3, 3))
    assert rec.collect()["cell/h"].shape == (4, 3, 3)


def test_module_output_by_path_and_unchanged_model_output():
    torch.manual_seed(0)
    lm = LM().eval()
    tokens = torch.randint(0, 11, (3, 8))
    with torch.no_grad():
        plain = lm(tokens)
        with Recorder(lm, ["decoder", "embedding", "lstm/layer*/h"]) as rec:
            recorded = lm(tokens)
    assert torch.equal(plain, recorded)
    got = rec.collect()
    assert torch.equal(got["decoder"], plain)
    assert torch.equal(got["embedding"], lm.embedding(tokens))
    assert got["lstm/layer0/h"].shape == (3, 8, 6)
    with torch.no_grad():
        top, _ = lm.lstm(lm.embedding(tokens))
    assert torch.equal(got["lstm/layer1/h"], top)


def test_time_major_module_outputs():
    lm = LM(batch_first=False).eval()
    tokens = torch.randint(0, 11, (8, 3))  # [T, B]
    with torch.no_grad(), Recorder(lm, ["decoder", "lstm/layer1/c"], batch_first=False) as rec:
        logits = lm(tokens)
    got = rec.collect()
    assert torch.equal(got["decoder"], logits.transpose(0, 1))
    assert got["lstm/layer1/c"].shape == (3, 8, 6)


def test_hooks_removed_after_exit_and_after_an_exception():
    lm = LM()
    user_handle = lm.decoder.register_forward_hook(lambda m, i, o: None)
    with Recorder(lm, ["decoder", "lstm/layer0/c"]):
        assert "forward" in lm.lstm.__dict__ and len(lm.decoder._forward_hooks) == 2
    assert len(lm.decoder._forward_hooks) == 1  # exactly its own hook is gone, the user's stays
    user_handle.remove()
    assert _no_hooks_left(lm)
    with pytest.raises(ZeroDivisionError):
        with Recorder(lm):
            lm(torch.randint(0, 11, (2, 4)))
            1 / 0
    assert _no_hooks_left(lm)
    assert type(lm.lstm).forward is nn.LSTM.forward and lm.lstm.forward.__func__ is nn.LSTM.forward


def test_error_inside_the_forward_removes_hooks_too():
    lm = LM()
    with pytest.raises(IndexError):
        with Recorder(lm):
            lm(torch.tensor([[1, 99]]))
    assert _no_hooks_left(lm)


def test_unknown_names_list_what_exists():
    lm = LM()
    with pytest.raises(ValueError, match=r"'lstm/layer7/h'.*available signals: .*lstm/layer1/gates/o.*decoder"):
        Recorder(lm, ["lstm/layer7/h"])
    with pytest.raises(ValueError, match="matches nothing"):
        Recorder(lm, ["nope/*"])
    assert Recorder(lm, ["lstm/layer?/gates/[if]"]).signals == [
        "lstm/layer0/gates/i", "lstm/layer0/gates/f", "lstm/layer1/gates/i", "lstm/layer1/gates/f"]
    assert Recorder(lm).signals == [n for n in list_signals(lm) if n.startswith("lstm/")]


def test_default_selection_needs_taps_or_rnns():
    with pytest.raises(ValueError, match="no taps and no nn.LSTM"):
        Recorder(nn.Sequential(nn.Linear(2, 2)))


def test_a_signal_that_produced_nothing_is_an_error():
    lm = LM()
    with Recorder(lm, ["decoder", "lstm/layer0/h"]) as rec:
        lm.lstm(torch.randn(2, 3, 4))  # the decoder is never called
    with pytest.raises(ValueError, match="no values were recorded for 'decoder'"):
        rec.collect()


def test_two_recorders_on_one_lstm_are_refused_cleanly():
    lm = LM()
    with Recorder(lm, ["lstm/layer0/h"]):
        with pytest.raises(ValueError, match="already replaced"):
            with Recorder(lm, ["decoder", "lstm/layer1/h"]):
                pass
        assert "forward" in lm.lstm.__dict__ and not lm.decoder._forward_hooks
    assert _no_hooks_left(lm)


def test_keep_decides_what_is_stored_of_each_call():
    """``Recorder(keep=...)`` gets each call's [batch, positions, units] view and stores what it returns;
    an engine that overwrites its buffer after the tap does not change it; keep's ValueError stops the forward."""
    from lstmviz.hooks import IMAGE

    class Reuse(nn.Module):
        def __init__(self):
            super().__init__()
            self.tap = Tap("map", layout=IMAGE, axis="map")

        def forward(self, x):
            y = self.tap(x * 2)
            y.zero_()  # the buffer is reused in place after the tap
            return y

    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    seen = []

    def keep(name, series):
        seen.append((name, tuple(series.shape)))
        return series.to(torch.float16)

    with torch.no_grad(), Recorder(Reuse(), keep=keep) as rec:
        rec.model(x)
        value = rec.collect()["map"]
    assert seen == [("map", (2, 4, 3))] and value.dtype == torch.float16
    torch.testing.assert_close(value.float(), (x * 2).permute(0, 2, 3, 1).reshape(2, 4, 3))

    def refuse(name, series):
        raise ValueError(f"{name}: no")

    with torch.no_grad(), Recorder(Reuse(), keep=refuse) as rec, pytest.raises(ValueError, match="map: no"):
        rec.model(x)
