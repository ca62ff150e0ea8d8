"""The live model re-runs a recording's items exactly, and edits of gated cells are carried by the recurrence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmviz.perturb import Perturbation, load_live_model, reproduces, run_item


def _scale(rec, tap, item):
    return max(1.0, float(np.abs(rec.item_states(tap, item)).max()))


def _check_reproduces(live, rec):
    for item in range(rec.n_items):
        diffs = reproduces(live, rec, item)
        assert set(diffs) == set(rec.taps)  # every tap of the recording
        for tap, diff in diffs.items():
            # 1e-6 of the values' scale: float32 rounding of a batch of one against the recorded batch
            assert diff <= 1e-6 * _scale(rec, tap, item), (item, tap, diff)


@pytest.mark.parametrize("engine", ["lstm", "gru"])
def test_a_cli_recording_is_reproduced_on_every_tap(engine, request):
    from lstmviz.recording import open_recording

    ckpt, path = request.getfixturevalue(f"{engine}_files")
    with open_recording(path) as rec:
        assert rec.taps[next(iter(rec.taps))].dtype == "float32"
        live = load_live_model(rec)
        assert live.checkpoint == ckpt and live.source == f"checkpoint {ckpt}"
        _check_reproduces(live, rec)


def test_a_script_recording_of_a_stock_lstm_is_reproduced_on_every_tap(script_live, script_rec):
    assert "lstm/layer1/c" in script_rec.taps
    _check_reproduces(script_live, script_rec)


def test_a_run_gives_logits_and_the_next_token_nll(lstm_live, lstm_rec):
    run = run_item(lstm_live, lstm_rec, 1, taps=["layer1/h"])
    a, b = lstm_rec.item_range(1)
    assert np.array_equal(run.tokens, lstm_rec.token_ids(a, b))
    assert run.logits.shape == (b - a, len(lstm_rec.vocab)) and list(run.states) == ["layer1/h"]
    logp = torch.log_softmax(torch.from_numpy(run.logits).double(), -1).numpy()
    expected = -logp[np.arange(b - a - 1), run.tokens[1:]]
    assert np.allclose(run.nll[:-1], expected, atol=1e-5) and np.isnan(run.nll[-1])


def _reference(weights, x, edit):
    """Hand-stepped LSTM stack in float64; ``edit = (layer, step, unit, value)`` sets that c before it is used."""
    layer_e, step_e, unit_e, value_e = edit
    out = {}
    for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(weights):
        H = w_hh.shape[1]
        h, c = np.zeros(H), np.zeros(H)
        hs, cs = [], []
        for t in range(len(x)):
            z = w_ih @ x[t] + b_ih + w_hh @ h + b_hh
            i, f, g, o = (1 / (1 + np.exp(-z[:H])), 1 / (1 + np.exp(-z[H:2 * H])), np.tanh(z[2 * H:3 * H]),
                          1 / (1 + np.exp(-z[3 * H:])))
            c = f * c + i * g
            if layer == layer_e and t == step_e:
                c = c.copy()
                c[unit_e] = value_e
            h = o * np.tanh(c)
            hs.append(h)
            cs.append(c)
        out[layer] = (np.array(hs), np.array(cs))
        x = np.array(hs)
    return out


def _np(t):
    return t.detach().double().numpy()


def _check_carried(live, rec, item, prefix, weights, embed):
    p = Perturbation(f"{prefix}layer0/c", "clamp", units=(2,), positions=(5,), value=1.5)
    taps = [f"{prefix}layer0/c", f"{prefix}layer0/h", f"{prefix}layer1/c", f"{prefix}layer1/h"]
    clean = run_item(live, rec, item, taps=taps)
    edited = run_item(live, rec, item, [p], taps=taps)
    ref = _reference(weights, embed(clean.tokens), (0, 5, 2, 1.5))
    for tap in taps:
        before, after = clean.states[tap], edited.states[tap]
        # nothing before the edited step changes (a stock nn.LSTM runs its per-step path when edited: float rounding)
        assert np.allclose(before[:5], after[:5], rtol=0, atol=1e-6), tap
        assert np.abs(after[6:] - before[6:]).max() > 1e-4, tap  # the recurrence carries the edit on
        layer, kind = int(tap[len(prefix) + 5]), tap.rsplit("/", 1)[1]
        expected = ref[layer][0 if kind == "h" else 1]
        assert np.allclose(after, expected, atol=2e-5), tap
    assert edited.states[f"{prefix}layer0/c"][5, 2] == np.float32(1.5)


def test_an_edit_of_c_in_our_lstm_engine_is_carried_forward(lstm_live, lstm_rec):
    m = lstm_live.model
    weights = [tuple(_np(getattr(layer, n)) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
               for layer in m.layers]
    _check_carried(lstm_live, lstm_rec, 0, "", weights, lambda toks: _np(m.embedding(torch.from_numpy(toks))))


def test_an_edit_of_c_in_a_stock_nn_lstm_is_carried_forward(script_live, script_rec):
    m = script_live.model
    weights = [tuple(_np(getattr(m.lstm, f"{n}_l{layer}")) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
               for layer in range(2)]
    _check_carried(script_live, script_rec, 2, "lstm/", weights, lambda toks: _np(m.emb(torch.from_numpy(toks))))
    assert "forward" not in m.lstm.__dict__  # the per-step path is gone after the run


def test_an_edit_of_a_gru_gate_is_carried_forward(gru_files):
    from lstmviz.recording import open_recording

    with open_recording(gru_files[1]) as rec:
        live = load_live_model(rec)
        p = Perturbation("layer0/gates/z", "clamp", units=(0, 1, 2), positions=(5,), value=0.0)
        clean = run_item(live, rec, 0, taps=["layer0/h", "layer1/h"])
        edited = run_item(live, rec, 0, [p], taps=["layer0/h", "layer1/h"])
    for tap in ("layer0/h", "layer1/h"):
        assert np.array_equal(clean.states[tap][:5], edited.states[tap][:5])
        assert np.abs(clean.states[tap][6:] - edited.states[tap][6:]).max() > 1e-4
