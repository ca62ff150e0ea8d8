"""bn-rnn (Laurent et al. 2016): sequence-wise batch norm of the input term only; the recurrence is not normalised."""

from __future__ import annotations

import pytest
import torch

from lstmviz.engines import registry
from lstmviz.engines.families.language_model import TokenData
from lstmviz.engines.recurrent.stack import RecurrentStack
from lstmviz.engines.spec import ConfigError

B, T, IN, H = 5, 6, 5, 4


def _model(**overrides):
    config = {"embedding_dim": IN, "hidden_size": H, "num_layers": 1, "init_range": 0.5, **overrides}
    torch.manual_seed(0)
    return registry.get("bn-rnn").build_model(TokenData(vocab_size=7), **config).double()


def _run(layer, x, state=None):
    """(outputs [B, T, H], {tap signal: [T, B, H]}) of one layer over features x [B, T, IN]."""
    seen: dict[str, list] = {}
    handles = [module.register_forward_hook(lambda m, a, out: seen.setdefault(m.signal, []).append(out.detach()))
               for module in layer.modules() if hasattr(module, "signal")]
    try:
        if state is None:
            state = tuple(x.new_zeros(x.shape[0], H) for _ in layer.state_names)
        out, _ = RecurrentStack.unroll(layer, x, state)
    finally:
        for h in handles:
            h.remove()
    return out, {k: torch.stack(v) for k, v in seen.items()}


def _x(seed, batch=B, steps=T):
    return torch.randn(batch, steps, IN, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_scaling_the_input_weights_changes_nothing_but_scaling_the_recurrent_weights_does():
    """Asymmetric invariance in training mode: only W_x x is normalised (Cooijmans' bn-lstm is invariant to
    both, a plain LSTM to neither)."""
    model = _model(bn_eps=1e-12).train()  # eps ~ 0: BN is exactly scale invariant
    tokens = torch.randint(0, 7, (B, T), generator=torch.Generator().manual_seed(1))
    layer = model.layers[0]
    with torch.no_grad():
        base, _ = model(tokens)
        layer.weight_ih.mul_(3.0)
        torch.testing.assert_close(model(tokens)[0], base, rtol=0, atol=1e-9)
        layer.weight_hh.mul_(3.0)
        assert not torch.allclose(model(tokens)[0], base, rtol=0, atol=1e-4)


def test_the_recurrent_term_is_raw_w_h_h_and_enters_the_gates_unnormalised():
    layer = _model().layers[0].train()
    x, h0, c0 = _x(2), _x(3, steps=1)[:, 0, :H] * 0.5, _x(4, steps=1)[:, 0, :H]
    _, taps = _run(layer, x, (h0, c0))
    h_prev = torch.cat([h0[None], taps["h"][:-1]])
    rec = torch.einsum("tbh,gh->tbg", h_prev, layer.weight_hh).chunk(4, dim=-1)
    for k, expected in zip("ifgo", rec):
        torch.testing.assert_close(taps[f"rec_{k}"], expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(taps["i"], torch.sigmoid(taps["norm_x_i"] + taps["rec_i"]), rtol=0, atol=1e-12)


def test_statistics_are_sequence_wise_one_set_over_batch_and_time():
    layer = _model().layers[0].train()
    assert layer.bn_x.running_mean.shape == (1, 4 * H) and not hasattr(layer, "bn_h")
    x = _x(5) * torch.arange(1.0, T + 1, dtype=torch.float64)[:, None] + torch.arange(T, dtype=torch.float64)[:, None]
    _, taps = _run(layer, x)
    normalised = torch.cat([taps[f"norm_x_{k}"] for k in "ifgo"], dim=-1)  # [T, B, 4H]; beta = 0, gamma = 1
    torch.testing.assert_close(normalised.mean(dim=(0, 1)), torch.zeros(4 * H, dtype=torch.float64), rtol=0,
                               atol=1e-12)
    torch.testing.assert_close(normalised.var(dim=(0, 1), unbiased=False), torch.ones(4 * H, dtype=torch.float64),
                               rtol=0, atol=1e-3)
    assert normalised.mean(dim=1).abs().max() > 0.5  # ... but not per step: the steps' means differ
    wx = (x @ layer.weight_ih.t()).reshape(-1, 4 * H)
    torch.testing.assert_close(layer.bn_x.running_mean[0], wx.mean(0).detach(), rtol=0, atol=1e-12)  # first update
    # a step alone is normalised differently (its own statistics) than inside the sequence
    _, alone = _run(layer, x[:, :1])
    assert not torch.allclose(alone["norm_x_i"][0], taps["norm_x_i"][0], atol=1e-3)


def test_eval_mode_uses_the_population_statistics_and_one_step_at_a_time_equals_the_whole_sequence():
    model = _model(num_layers=2)
    generator = torch.Generator().manual_seed(6)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randint(0, 7, (B, T), generator=generator))
    layer = model.layers[0]
    assert layer.bn_x.updates[0] == 3 and layer.bn_x.running_mean.abs().max() > 0
    model.eval()
    tokens = torch.randint(0, 7, (3, T), generator=generator)
    with torch.no_grad():
        whole, final = model(tokens)
        state, pieces = None, []
        for t in range(T):
            logits, state = model(tokens[:, t : t + 1], state)
            pieces.append(logits)
        _, taps = _run(layer, model.embedding(tokens))
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, rtol=0, atol=1e-12)
    for a, b in zip(state, final):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    wx = model.embedding(tokens) @ layer.weight_ih.t()
    expected = (wx - layer.bn_x.running_mean[0]) / torch.sqrt(layer.bn_x.running_var[0] + layer.bn_x.eps)
    expected = expected * layer.bn_x.weight + layer.bn_x.bias
    torch.testing.assert_close(taps["norm_x_o"], expected[..., 3 * H :].transpose(0, 1), rtol=0, atol=1e-12)
    assert layer.bn_x.updates[0] == 3  # evaluation does not update the statistics


def test_gamma_starts_at_one_and_beta_at_zero_and_beta_is_the_only_bias():
    model = _model(gamma_init=0.5)
    layer = model.layers[0]
    assert torch.allclose(layer.bn_x.weight, torch.full_like(layer.bn_x.weight, 0.5)) and not layer.bn_x.bias.any()
    assert {name for name, _ in layer.named_parameters()} == {"weight_ih", "weight_hh", "bn_x.weight", "bn_x.bias"}
    assert torch.all(_model().layers[0].bn_x.weight == 1.0)


def test_training_mode_needs_two_positions():
    with pytest.raises(ValueError, match=r"needs at least 2 positions \(batch x time\)"):
        _model().train()(torch.tensor([[3]]))


@pytest.mark.parametrize(("key", "value", "message"), [
    ("gamma_init", -1.0, r"bn-rnn: expected gamma_init .* to be a positive number, got -1.0"),
    ("bn_momentum", 0, r"expected bn_momentum to be a number in \(0, 1\], got 0"),
    ("bn_eps", "small", r"expected bn_eps to be a positive number, got 'small'"),
])
def test_bad_config_names_the_setting_and_its_allowed_values(key, value, message):
    with pytest.raises(ValueError, match=message):
        _model(**{key: value})
    with pytest.raises(ConfigError, match="unknown hyperparameter 'max_steps'"):  # no per-step statistics here
        registry.get("bn-rnn").resolve_config({"max_steps": 10})
