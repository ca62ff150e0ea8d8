"""Ba et al. (2016): the layer-normalised GRU is invariant to scaling and re-centring of W_x."""

from __future__ import annotations

import pytest
import torch

from lnmi_fixtures import random_state, run, tiny, tokens, trace
from lstmviz.engines.spec import ConfigError

NAME = "ln-gru"


def _with_input_weights(model, change):
    with torch.no_grad():
        for layer in model.layers:
            layer.weight_ih.copy_(change(layer.weight_ih))
    return model


def _exact_model():
    model = tiny(NAME)
    for layer in model.layers:
        layer.eps = 0.0  # LN(a z) == LN(z) without the eps term
    return model


@pytest.mark.parametrize("scale", [2.0, 0.25])
def test_scaling_w_x_by_a_power_of_two_leaves_every_output_bit_identical(scale):
    model, x = _exact_model(), tokens()
    state = random_state(model)
    logits, (h,) = run(model, x, state)
    scaled_logits, (scaled_h,) = run(_with_input_weights(model, lambda w: scale * w), x, state)
    assert torch.equal(scaled_logits, logits) and torch.equal(scaled_h, h)


def test_scaling_w_x_by_3_leaves_outputs_unchanged():
    model, x = _exact_model(), tokens()
    state = random_state(model)
    logits, _ = run(model, x, state)
    torch.testing.assert_close(run(_with_input_weights(model, lambda w: 3 * w), x, state)[0], logits,
                               rtol=0, atol=1e-13)


def test_a_gru_without_layer_norm_fails_the_same_test():
    model, x = tiny("gru"), tokens()
    logits, _ = run(model, x)
    assert not torch.allclose(run(_with_input_weights(model, lambda w: 2 * w), x)[0], logits, atol=1e-3)


def test_re_centring_each_site_of_w_x_leaves_outputs_unchanged():
    """Sites [r; z] (2H rows) and n (H rows) are normalised separately: each may shift by its own v.x."""
    model, x = tiny(NAME), tokens()
    logits, _ = run(model, x)
    hidden = model.hidden_size
    g = torch.Generator().manual_seed(3)

    def recentre(w):
        w = w.clone()
        w[: 2 * hidden] += torch.randn(w.shape[1], generator=g, dtype=w.dtype)
        w[2 * hidden :] += torch.randn(w.shape[1], generator=g, dtype=w.dtype)
        return w

    torch.testing.assert_close(run(_with_input_weights(model, recentre), x)[0], logits, rtol=0, atol=1e-12)


def test_re_centring_the_rows_of_r_alone_changes_outputs():
    model, x = tiny(NAME), tokens()
    logits, _ = run(model, x)
    hidden = model.hidden_size

    def shift_r(w):
        w = w.clone()
        w[:hidden] += 0.5
        return w

    assert not torch.allclose(run(_with_input_weights(model, shift_r), x)[0], logits, atol=1e-3)


def test_the_normalised_sites_have_zero_mean_and_unit_variance_per_example_and_step():
    model, x = _exact_model(), tokens()
    with torch.no_grad():
        for layer in model.layers:
            layer.ln_gain_x.zero_()
            layer.ln_gain_h.zero_()
    names = [f"layer1/ln_{site}/{k}" for site in "xh" for k in "rzn"]
    seen = trace(model, x, names, random_state(model))
    for site in "xh":
        for parts in (("r", "z"), ("n",)):
            joint = torch.cat([seen[f"layer1/ln_{site}/{k}"] for k in parts], dim=-1)
            shape = joint.shape[:2]
            torch.testing.assert_close(joint.mean(-1), torch.zeros(shape, dtype=joint.dtype), atol=1e-12, rtol=0)
            torch.testing.assert_close(joint.var(-1, unbiased=False), torch.ones(shape, dtype=joint.dtype),
                                       atol=1e-12, rtol=0)


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), None])
def test_bad_ln_eps_names_the_setting_and_the_allowed_values(bad):
    with pytest.raises(ConfigError, match=r"hyperparameter 'ln_eps' must be a number > 0, got"):
        tiny(NAME, ln_eps=bad)
