"""Ba et al. (2016): the layer-normalised LSTM is invariant to scaling and re-centring of W_x."""

from __future__ import annotations

import pytest
import torch

from lnmi_fixtures import random_state, run, tiny, tokens, trace
from lstmviz.engines.spec import ConfigError

NAME = "ln-lstm"


def _with_input_weights(model, change):
    with torch.no_grad():
        for layer in model.layers:
            layer.weight_ih.copy_(change(layer.weight_ih))
    return model


def _exact_model(name=NAME):
    """eps = 0 in every LN site, so that LN(a z) == LN(z) holds without the eps term."""
    model = tiny(name)
    for layer in model.layers:
        layer.eps = 0.0
    return model


@pytest.mark.parametrize("scale", [2.0, 0.25])
def test_scaling_w_x_by_a_power_of_two_leaves_every_output_bit_identical(scale):
    model, x = _exact_model(), tokens()
    state = random_state(model)
    logits, final = run(model, x, state)
    scaled_logits, scaled_final = run(_with_input_weights(model, lambda w: scale * w), x, state)
    assert torch.equal(scaled_logits, logits)
    assert all(torch.equal(a, b) for a, b in zip(scaled_final, final))


def test_scaling_w_x_by_3_leaves_outputs_unchanged_and_with_the_default_eps_nearly():
    model, x = _exact_model(), tokens()
    state = random_state(model)
    logits, _ = run(model, x, state)
    torch.testing.assert_close(run(_with_input_weights(model, lambda w: 3 * w), x, state)[0], logits,
                               rtol=0, atol=1e-13)
    default = tiny(NAME)  # eps = 1e-5: the invariance holds up to about eps / var(W_x x) (~2e-3 here)
    logits, _ = run(default, x)
    scaled, _ = run(_with_input_weights(default, lambda w: 3 * w), x)
    torch.testing.assert_close(scaled, logits, rtol=0, atol=1e-2)


def test_an_lstm_without_layer_norm_fails_the_same_test():
    model, x = tiny("lstm"), tokens()
    logits, _ = run(model, x)
    assert not torch.allclose(run(_with_input_weights(model, lambda w: 2 * w), x)[0], logits, atol=1e-3)


def test_re_centring_w_x_leaves_outputs_unchanged():
    """W_x + 1 v^T shifts all 4H input pre-activations by v.x; LN removes the common shift."""
    model, x = tiny(NAME), tokens()
    logits, final = run(model, x)
    g = torch.Generator().manual_seed(3)
    recentred = _with_input_weights(model, lambda w: w + torch.randn(w.shape[1], generator=g, dtype=w.dtype))
    got, got_final = run(recentred, x)
    torch.testing.assert_close(got, logits, rtol=0, atol=1e-12)
    for a, b in zip(got_final, final):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_the_statistics_are_joint_over_all_four_gates_re_centring_one_gate_changes_outputs():
    model, x = tiny(NAME), tokens()
    logits, _ = run(model, x)
    hidden = model.hidden_size

    def shift_gate_i(w):
        w = w.clone()
        w[:hidden] += 0.5
        return w

    assert not torch.allclose(run(_with_input_weights(model, shift_gate_i), x)[0], logits, atol=1e-3)


def test_the_normalised_terms_have_zero_mean_and_unit_variance_over_4h_per_example_and_step():
    model, x = _exact_model(), tokens()
    with torch.no_grad():
        for layer in model.layers:
            layer.ln_gain_x.zero_()
            layer.ln_gain_h.zero_()  # gains exactly 1
    names = [f"layer1/ln_{site}/{k}" for site in "xh" for k in "ifgo"]
    seen = trace(model, x, names, random_state(model))
    for site in "xh":
        joint = torch.cat([seen[f"layer1/ln_{site}/{k}"] for k in "ifgo"], dim=-1)  # [T, B, 4H]
        torch.testing.assert_close(joint.mean(-1), torch.zeros(joint.shape[:2], dtype=joint.dtype), atol=1e-12, rtol=0)
        torch.testing.assert_close(joint.var(-1, unbiased=False), torch.ones(joint.shape[:2], dtype=joint.dtype),
                                   atol=1e-12, rtol=0)


@pytest.mark.parametrize("bad", [0, -1e-5, float("nan"), "small", True])
def test_bad_ln_eps_names_the_setting_and_the_allowed_values(bad):
    with pytest.raises(ConfigError, match=r"hyperparameter 'ln_eps' must be a number > 0, got"):
        tiny(NAME, ln_eps=bad)
