"""Wu et al. (2016): with alpha = 0 and beta1 = beta2 = 1 the MI-LSTM is our additive lstm.

Equal to float64 rounding, not bit for bit: the lstm computes ``W_h h + (W_x x + b)`` in one fused
``addmm``, which rounds differently from the separate matmul and add of ``gain * U h + (beta2 * W x + b)``
(``gain`` is per example, so it cannot be folded into the matmul). The steps are otherwise the same
operations on the same values; the difference stays at a few ulps (checked: <= 1e-14 over 6 steps).
"""

from __future__ import annotations

import pytest
import torch

from lnmi_fixtures import additive_pair, assert_rounding_equal, random_state, run, tiny, tokens, trace
from lstmviz.engines.spec import ConfigError

NAME, ADDITIVE = "mi-lstm", "lstm"


@pytest.mark.parametrize("with_state", [False, True])
def test_alpha_0_beta_1_equals_the_additive_lstm_exactly(with_state):
    model, reference = additive_pair(NAME, ADDITIVE)
    x = tokens()
    state = random_state(model) if with_state else None
    logits, final = run(model, x, state)
    expected, expected_final = run(reference, x, state)
    assert_rounding_equal(logits, expected)
    for a, b in zip(final, expected_final):
        assert_rounding_equal(a, b)
    names = ["layer0/gates/f", "layer1/c", "layer1/h"]
    got, want = trace(model, x, names), trace(reference, x, names)
    for n in names:
        assert_rounding_equal(got[n], want[n])
    gains = trace(model, x, ["layer0/gain/i", "layer1/gain/o"])
    assert all(torch.equal(g, torch.ones_like(g)) for g in gains.values())  # gain = 0 * Wx + 1


def test_with_alpha_not_0_the_input_gates_the_recurrent_term():
    model, reference = additive_pair(NAME, ADDITIVE)
    with torch.no_grad():
        model.layers[0].mi_alpha.fill_(1.0)
    x = tokens()
    assert not torch.allclose(run(model, x)[0], run(reference, x)[0], atol=1e-6)
    gain = trace(model, x, ["layer0/gain/f"])["layer0/gain/f"]
    assert gain.std() > 1e-3  # alpha * Wx_t + beta1 varies with the input


def test_the_recurrent_jacobian_is_diag_gain_times_u():
    """d pre / d h_(t-1) = diag(alpha * Wx_t + beta1) U, checked through the input gate i = sigmoid(pre_i)."""
    model = tiny(NAME, seed=2)
    layer = model.layers[0]
    hidden = model.hidden_size
    g = torch.Generator().manual_seed(0)
    x_t = layer.project_input(torch.randn(2, 1, layer.input_size, generator=g, dtype=torch.float64))[:, 0]
    h = torch.randn(2, hidden, generator=g, dtype=torch.float64)
    c = torch.randn(2, hidden, generator=g, dtype=torch.float64)
    with torch.no_grad():
        gain = (layer.alpha * x_t + layer.beta1)[:, :hidden]
    for b in range(2):
        def pre_i(h_b, b=b):
            seen = {}
            handle = layer.i_tap.register_forward_hook(lambda m, a, out: seen.setdefault("i", out))
            try:
                layer.step(x_t[b : b + 1], (h_b[None], c[b : b + 1]), 0)
            finally:
                handle.remove()
            return torch.logit(seen["i"][0])
        jac = torch.autograd.functional.jacobian(pre_i, h[b])
        expected = gain[b][:, None] * layer.weight_hh[:hidden]
        torch.testing.assert_close(jac, expected.detach(), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(("key", "bad"), [("alpha_init", float("nan")), ("beta_init", "one"), ("alpha_init", None)])
def test_bad_alpha_or_beta_init_names_the_setting_and_the_allowed_values(key, bad):
    with pytest.raises(ConfigError, match=rf"hyperparameter '{key}' must be a finite number, got"):
        tiny(NAME, **{key: bad})
