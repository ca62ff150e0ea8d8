"""bn-lstm (Cooijmans et al. 2016): batch-norm statistics per time step, population statistics in eval, gamma 0.1."""

from __future__ import annotations

import pytest
import torch

from lstmviz.engines import registry
from lstmviz.engines.families.language_model import TokenData
from lstmviz.engines.recurrent.stack import RecurrentStack
from lstmviz.engines.spec import ConfigError

B, T, IN, H, T_MAX = 6, 6, 5, 4, 5


def _model(**overrides):
    config = {"embedding_dim": IN, "hidden_size": H, "num_layers": 1, "init_range": 0.5, "max_steps": T_MAX,
              **overrides}
    torch.manual_seed(0)
    return registry.get("bn-lstm").build_model(TokenData(vocab_size=7), **config).double()


def _run(layer, x):
    """(outputs [B, T, H], {tap signal: [T, B, H]}) of one layer over features x [B, T, IN], from a zero state."""
    seen: dict[str, list] = {}
    handles = [module.register_forward_hook(lambda m, a, out: seen.setdefault(m.signal, []).append(out.detach()))
               for module in layer.modules() if hasattr(module, "signal")]
    try:
        state = tuple(x.new_zeros(x.shape[0], H) for _ in layer.state_names)
        out, _ = RecurrentStack.unroll(layer, x, state)
    finally:
        for h in handles:
            h.remove()
    return out, {k: torch.stack(v) for k, v in seen.items()}


def _buffers(layer):
    return {f"{site}.{b}": getattr(getattr(layer, site), b).clone()
            for site in ("bn_x", "bn_h", "bn_c") for b in ("running_mean", "running_var")}


def test_gammas_start_at_one_tenth_and_the_cell_shift_at_zero_also_after_reset():
    model = _model()
    layer = model.layers[0]
    for _ in range(2):
        for site in (layer.bn_x, layer.bn_h, layer.bn_c):
            assert torch.allclose(site.weight, torch.full_like(site.weight, 0.1), rtol=0, atol=1e-8)
        assert layer.bn_x.bias is None and layer.bn_h.bias is None  # the transitions' shift is fixed at 0
        assert torch.all(layer.bn_c.bias == 0)
        assert layer.bias.abs().max() > 0  # the single bias b is drawn like every weight
        with torch.no_grad():
            layer.bn_c.weight.fill_(3.0)
        model.reset_parameters()


def test_scaling_the_step_3_inputs_changes_only_the_step_3_input_statistics():
    """Per-step statistics: a batch whose step-3 inputs are scaled by 5 changes bn_x's step-3 set (mean x5,
    variance x25) and nothing else; BN's scale invariance leaves every output as it was. Statistics pooled
    over time (one shared set, or sequence-wise) would move other steps' sets and outputs."""
    layer = _model(bn_eps=1e-12).layers[0].train()  # eps ~ 0: BN is exactly scale invariant
    x = torch.randn(B, T, IN, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    scaled = x.clone()
    scaled[:, 3] *= 5.0
    out, taps = _run(layer, x)
    plain = _buffers(layer)
    layer = _model(bn_eps=1e-12).layers[0].train()
    out_scaled, taps_scaled = _run(layer, scaled)
    changed = _buffers(layer)
    torch.testing.assert_close(out_scaled, out, rtol=0, atol=1e-6)
    torch.testing.assert_close(taps_scaled["norm_x_i"], taps["norm_x_i"], rtol=0, atol=1e-6)
    torch.testing.assert_close(changed["bn_x.running_mean"][3], 5.0 * plain["bn_x.running_mean"][3])
    torch.testing.assert_close(changed["bn_x.running_var"][3], 25.0 * plain["bn_x.running_var"][3])
    assert not torch.allclose(changed["bn_x.running_var"][3], plain["bn_x.running_var"][3])
    others = [s for s in range(T_MAX) if s != 3]
    for name in plain:
        rows = others if name.startswith("bn_x") else list(range(T_MAX))
        torch.testing.assert_close(changed[name][rows], plain[name][rows], rtol=0, atol=1e-6, msg=name)


def test_eval_mode_normalises_with_the_population_statistics_of_each_step_and_the_last_beyond_t_max():
    model = _model()
    layer = model.layers[0].train()
    generator = torch.Generator().manual_seed(2)
    for _ in range(3):  # the per-step statistics sets learn different values
        _run(layer, torch.randn(B, T, IN, generator=generator, dtype=torch.float64) * torch.arange(1.0, T + 1)[:, None])
    assert not torch.allclose(layer.bn_x.running_var[0], layer.bn_x.running_var[T_MAX - 1])
    layer.eval()
    long = T_MAX + 3
    x = torch.randn(3, long, IN, generator=generator, dtype=torch.float64)
    _, taps = _run(layer, x)
    wx = x @ layer.weight_ih.t()
    for t in range(long):
        s = min(t, T_MAX - 1)
        expected = (wx[:, t] - layer.bn_x.running_mean[s]) / torch.sqrt(layer.bn_x.running_var[s] + layer.bn_x.eps)
        expected = expected * layer.bn_x.weight
        torch.testing.assert_close(taps["norm_x_i"][t], expected[:, :H], rtol=0, atol=1e-12, msg=f"step {t}")
    alone, taps_alone = _run(layer, x[:1])  # population statistics: a row alone is normalised the same
    torch.testing.assert_close(taps_alone["norm_c"][:, 0], taps["norm_c"][:, 0], rtol=0, atol=1e-12)
    assert layer.bn_x.updates[0] == 3 and layer.bn_x.updates[T_MAX - 1] == 3 * (T - T_MAX + 1)


def test_one_step_at_a_time_equals_the_whole_sequence_in_eval_mode_with_distinct_step_statistics():
    model = _model(num_layers=2, embedding_dim=5)
    generator = torch.Generator().manual_seed(3)
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randint(0, 7, (B, T), generator=generator))
    assert not torch.allclose(model.layers[1].bn_h.running_var[1], model.layers[1].bn_h.running_var[T_MAX - 1])
    model.eval()
    tokens = torch.randint(0, 7, (3, T + 2), generator=generator)
    with torch.no_grad():
        whole, final = model(tokens)
        state, pieces, restarted = None, [], []
        for t in range(tokens.shape[1]):
            if state is not None:  # the same step with its time count cleared would use step 0's statistics
                restarted.append(model(tokens[:, t : t + 1], (*state[:2], torch.zeros_like(state[2])))[0])
            logits, state = model(tokens[:, t : t + 1], state)
            pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, rtol=0, atol=1e-12)
    for a, b in zip(state, final):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    assert torch.all(final[2] == T_MAX)  # the count stops at max_steps
    assert not torch.allclose(torch.cat(restarted, dim=1), whole[:, 1:])


def test_both_transitions_are_normalised_so_scaling_either_weight_changes_nothing_in_training_mode():
    model = _model(bn_eps=1e-12).train()  # eps ~ 0: BN is exactly scale invariant
    tokens = torch.randint(0, 7, (B, T), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        base, _ = model(tokens)
        for weight in (model.layers[0].weight_hh, model.layers[0].weight_ih):
            weight.mul_(3.0)
            scaled, _ = model(tokens)
            torch.testing.assert_close(scaled, base, rtol=0, atol=1e-6)
        plain = registry.get("lstm").build_model(TokenData(vocab_size=7), embedding_dim=IN, hidden_size=H,
                                                 num_layers=1).double().train()
        before, _ = plain(tokens)
        plain.layers[0].weight_hh.mul_(3.0)
        assert not torch.allclose(plain(tokens)[0], before, rtol=0, atol=1e-6)  # an LSTM without BN is not invariant


def test_training_mode_needs_two_rows_and_rows_at_one_step():
    model = _model().train()
    with pytest.raises(ValueError, match="needs at least 2 rows.*batch_size >= 2 or evaluation mode"):
        model(torch.tensor([[1, 2, 3]]))
    state = model.init_state(2)
    state[2][:, 1] = 1.0
    with pytest.raises(ValueError, match="every row at the same time step"):
        model(torch.tensor([[1, 2], [3, 4]]), state)
    model.eval()
    model(torch.tensor([[1, 2], [3, 4]]), state)  # evaluation mode: each row its own step


@pytest.mark.parametrize(("key", "value", "message"), [
    ("max_steps", 0, r"expected max_steps \(T_max.*\) to be an int in \[1, 100000\], got 0"),
    ("gamma_init", 0.0, r"expected gamma_init .* to be a positive number, got 0.0"),
    ("bn_momentum", 1.5, r"expected bn_momentum to be a number in \(0, 1\], got 1.5"),
    ("bn_eps", -1e-5, r"expected bn_eps to be a positive number"),
])
def test_bad_config_names_the_setting_and_its_allowed_values(key, value, message):
    with pytest.raises(ValueError, match=message):
        _model(**{key: value})
    with pytest.raises(ConfigError, match="unknown hyperparameter 'momentum'.*known: .*bn_momentum"):
        registry.get("bn-lstm").resolve_config({"momentum": 0.1})
