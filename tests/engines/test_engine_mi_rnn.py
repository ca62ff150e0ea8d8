"""Wu et al. (2016): the MI tanh RNN; alpha = 0, beta1 = beta2 = 1 is the additive tanh RNN (nn.RNN)."""

from __future__ import annotations

import pytest
import torch

from lnmi_fixtures import run, tiny, tokens, trace
from lstmviz.engines.spec import ConfigError

NAME = "mi-rnn"


def _additive_model():
    model = tiny(NAME, alpha_init=0.0, beta_init=1.0)
    with torch.no_grad():
        for layer in model.layers:
            for p in (layer.mi_alpha, layer.mi_beta1, layer.mi_beta2):
                p.zero_()
    return model


def _torch_rnn_logits(model, x):
    """The same weights in torch.nn.RNN (tanh, additive), with the model's embedding and decoder."""
    rnn = torch.nn.RNN(model.embedding_dim, model.hidden_size, num_layers=model.num_layers, nonlinearity="tanh",
                       batch_first=True).double()
    with torch.no_grad():
        for index, layer in enumerate(model.layers):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(rnn, f"{name}_l{index}").copy_(getattr(layer, name))
        out, _ = rnn(model.embedding(x))
        return model.decoder(out)


def test_alpha_0_beta_1_equals_the_additive_tanh_rnn():
    model, x = _additive_model(), tokens()
    torch.testing.assert_close(run(model, x)[0], _torch_rnn_logits(model, x), rtol=0, atol=1e-14)
    gain = trace(model, x, ["layer1/gain"])["layer1/gain"]
    assert torch.equal(gain, torch.ones_like(gain))


def test_with_its_own_alpha_and_beta_it_is_not_the_additive_rnn():
    model, x = tiny(NAME), tokens()
    assert not torch.allclose(run(model, x)[0], _torch_rnn_logits(model, x), atol=1e-4)


def test_with_beta_0_and_no_bias_a_zero_input_erases_the_memory():
    """Simple MI form: h_t = tanh(alpha * Wx * Uh); Wx = 0 gives h_t = 0 whatever h_(t-1) is."""
    model = tiny(NAME, alpha_init=1.0, beta_init=0.0)
    layer = model.layers[0]
    with torch.no_grad():
        layer.mi_beta1.zero_()
        layer.mi_beta2.zero_()
        layer.bias_ih.zero_()
        layer.bias_hh.zero_()
    h_prev = torch.rand(3, model.hidden_size, dtype=torch.float64) + 0.5
    zero_input = torch.zeros(3, model.hidden_size, dtype=torch.float64)  # W x_t for x_t = 0
    with torch.no_grad():
        h, _ = layer.step(zero_input, (h_prev,), 0)
        additive, _ = _additive_model().layers[0].step(zero_input, (h_prev,), 0)
    assert torch.equal(h, torch.zeros_like(h))
    assert additive.abs().min() > 0  # the additive RNN keeps a memory of h_(t-1)


def test_the_recurrent_jacobian_is_diag_of_tanh_derivative_and_gain_times_u():
    model = tiny(NAME, seed=3)
    layer = model.layers[0]
    g = torch.Generator().manual_seed(0)
    x_t = layer.project_input(torch.randn(1, 1, layer.input_size, generator=g, dtype=torch.float64))[:, 0]
    h_prev = torch.randn(model.hidden_size, generator=g, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda h: layer.step(x_t, (h[None],), 0)[0][0], h_prev)
    with torch.no_grad():
        h = layer.step(x_t, (h_prev[None],), 0)[0][0]
        gain = (layer.alpha * x_t[0] + layer.beta1)
        expected = ((1 - h ** 2) * gain)[:, None] * layer.weight_hh
    torch.testing.assert_close(jac, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("key", "bad"), [("alpha_init", float("nan")), ("beta_init", True)])
def test_bad_alpha_or_beta_init_names_the_setting_and_the_allowed_values(key, bad):
    with pytest.raises(ConfigError, match=rf"hyperparameter '{key}' must be a finite number, got"):
        tiny(NAME, **{key: bad})
