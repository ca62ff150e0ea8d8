"""Wu et al. (2016): with alpha = 0 and beta1 = beta2 = 1 the MI-GRU is our additive gru (to float64 rounding;
see test_engine_mi_lstm.py for why not bit for bit)."""

from __future__ import annotations

import pytest
import torch

from lnmi_fixtures import additive_pair, assert_rounding_equal, random_state, run, tiny, tokens, trace
from lstmviz.engines.spec import ConfigError

NAME, ADDITIVE = "mi-gru", "gru"


@pytest.mark.parametrize("with_state", [False, True])
def test_alpha_0_beta_1_equals_the_additive_gru(with_state):
    model, reference = additive_pair(NAME, ADDITIVE)
    x = tokens()
    state = random_state(model) if with_state else None
    logits, (h,) = run(model, x, state)
    expected, (expected_h,) = run(reference, x, state)
    assert_rounding_equal(logits, expected)
    assert_rounding_equal(h, expected_h)
    names = ["layer0/gates/r", "layer0/gates/n", "layer1/gates/z", "layer1/h"]
    got, want = trace(model, x, names), trace(reference, x, names)
    for n in names:
        assert_rounding_equal(got[n], want[n])


def test_with_alpha_not_0_the_candidate_differs_from_the_additive_gru():
    model, reference = additive_pair(NAME, ADDITIVE)
    hidden = model.hidden_size
    with torch.no_grad():
        model.layers[0].mi_alpha[2 * hidden :].fill_(2.0)  # alpha of the candidate only
    x = tokens()
    got, want = trace(model, x, ["layer0/gates/r", "layer0/gates/n"]), trace(reference, x, ["layer0/gates/r", "layer0/gates/n"])
    assert_rounding_equal(got["layer0/gates/r"][:1], want["layer0/gates/r"][:1])  # r at step 0 untouched
    assert not torch.allclose(got["layer0/gates/n"][1:], want["layer0/gates/n"][1:], atol=1e-6)


def test_the_candidate_jacobian_is_diag_gain_times_the_reset_recurrent_term():
    """d pre_n / d m = diag(alpha_n * W_n x + beta1_n) for m = r * (U_n h + b_hn): n = tanh(pre_n)."""
    model = tiny(NAME, seed=2)
    layer = model.layers[0]
    hidden = model.hidden_size
    g = torch.Generator().manual_seed(0)
    x_t = layer.project_input(torch.randn(1, 1, layer.input_size, generator=g, dtype=torch.float64))[:, 0]
    h = torch.randn(1, hidden, generator=g, dtype=torch.float64)
    with torch.no_grad():
        gain = (layer.alpha * x_t + layer.beta1)[0, 2 * hidden :]
        seen = trace_step(layer, x_t, h)
    r, n = seen["r"], seen["n"]
    m = r * torch.nn.functional.linear(h, layer.weight_hh[2 * hidden :], layer.bias_hh[2 * hidden :])
    wx_n = x_t[:, 2 * hidden :]
    alpha, beta1, beta2 = (v[2 * hidden :] for v in (layer.alpha, layer.beta1, layer.beta2))
    pre = alpha * wx_n * m + beta1 * m + beta2 * wx_n + layer.bias_ih[2 * hidden :]  # the paper's form
    torch.testing.assert_close(torch.atanh(n), pre.detach(), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(gain, (alpha * wx_n + beta1)[0].detach(), rtol=0, atol=0)


def trace_step(layer, x_t, h):
    seen = {}
    handles = [getattr(layer, f"{k}_tap").register_forward_hook(lambda m, a, out, k=k: seen.setdefault(k, out))
               for k in "rn"]
    try:
        layer.step(x_t, (h,), 0)
    finally:
        for handle in handles:
            handle.remove()
    return seen


@pytest.mark.parametrize(("key", "bad"), [("alpha_init", float("inf")), ("beta_init", [1.0])])
def test_bad_alpha_or_beta_init_names_the_setting_and_the_allowed_values(key, bad):
    with pytest.raises(ConfigError, match=rf"hyperparameter '{key}' must be a finite number, got"):
        tiny(NAME, **{key: bad})
