"""hm-lstm (Chung et al. 2016): COPY / UPDATE / FLUSH, the gating of the top-down and bottom-up terms,
the straight-through boundary gradient, slope annealing and the refused configurations.

Boundaries are forced through the ``z`` taps (an intervention replaces ``z^l_t``, which the layer above
reads at t and the layer itself at t+1), then the layers' taps are read.
"""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch

from lstmviz.engines import registry
from lstmviz.engines.families.language_model import TokenData
from lstmviz.engines.spec import ConfigError
from lstmviz.hooks import Edit, HookScope, find_taps, intervene

VOCAB, B, T, H = 7, 3, 8, 6
COPY, UPDATE, FLUSH = 0, 1, 2


def build(num_layers=2, seed=0, **config):
    spec = registry.get("hm-lstm")
    torch.manual_seed(seed)
    config = {"embedding_dim": 5, "hidden_size": H, "num_layers": num_layers, "init_range": 0.5, **config}
    return spec.build_model(TokenData(vocab_size=VOCAB), **config).double().eval()


def centre_boundaries(model):
    """The z~ rows' biases set to 0, so that boundaries fire on some steps and not on others."""
    with torch.no_grad():
        for cell in model.layers.layers:
            cell.bias[4 * H] = 0.0
    return model


def tokens(seed=1, steps=T):
    return torch.randint(0, VOCAB, (B, steps), generator=torch.Generator().manual_seed(seed))


def run(model, x, edits=()):
    """``(logits, {tap name: [T, B, H]})`` of every tap, with ``edits`` applied."""
    taps = find_taps(model)
    seen = {name: [] for name in taps}
    with torch.no_grad(), intervene(model, list(edits)) if edits else nullcontext(), HookScope() as hooks:
        for name, tap in taps.items():
            hooks.read(tap, lambda module, args, kwargs, out: seen[module.name].append(out.clone()))
        logits, _ = model(x)
    return logits, {name: torch.stack(values) for name, values in seen.items()}


def force(layer, step, value):
    return Edit(f"layer{layer}/z", "replace", float(value), positions=[step])


def test_copy_keeps_h_and_c_bit_for_bit_and_update_moves_them():
    model, x, t = build(), tokens(), 4
    _, copied = run(model, tokens(), [force(0, t, 0)])  # top layer: z_{t-1} = 0 always; below: z = 0
    assert torch.all(copied["layer1/op"][t] == COPY)
    assert torch.equal(copied["layer1/h"][t], copied["layer1/h"][t - 1])
    assert torch.equal(copied["layer1/c"][t], copied["layer1/c"][t - 1])
    _, updated = run(model, x, [force(0, t, 1)])
    assert torch.all(updated["layer1/op"][t] == UPDATE)
    assert not torch.allclose(updated["layer1/h"][t], updated["layer1/h"][t - 1])
    f, i, g = (updated[f"layer1/gates/{k}"][t] for k in "fig")
    assert torch.equal(updated["layer1/c"][t], f * updated["layer1/c"][t - 1] + i * g)  # the LSTM update
    o = updated["layer1/gates/o"][t]
    assert torch.equal(updated["layer1/h"][t], o * torch.tanh(updated["layer1/c"][t]))


@pytest.mark.parametrize("layer", [0, 1])
def test_flush_resets_c_to_i_times_g_whatever_c_was(layer):
    model, x, t = build(num_layers=3), tokens(), 3
    edits = [force(layer, t - 1, 1)]
    _, flushed = run(model, x, edits)
    assert torch.all(flushed[f"layer{layer}/op"][t] == FLUSH)
    i, g = flushed[f"layer{layer}/gates/i"][t], flushed[f"layer{layer}/gates/g"][t]
    assert torch.equal(flushed[f"layer{layer}/c"][t], i * g)
    assert not torch.equal(i * g, flushed[f"layer{layer}/gates/f"][t] * flushed[f"layer{layer}/c"][t - 1] + i * g)


def test_bottom_up_term_is_gated_by_the_lower_boundary_and_top_down_by_the_own_previous_one():
    """Layer 1 of 3 at step t: with z^0_t = 0, h^0_t does not reach its gates; with z^1_{t-1} = 0, h^2_{t-1}
    does not (the reverse gating, a bug of a public port, fails both)."""
    model, x, t = build(num_layers=3), tokens(), 4
    noise = torch.randn(B, 1, H, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

    def gates(extra, z_below, z_own_prev):
        edits = [force(0, t, z_below), force(1, t - 1, z_own_prev), *extra]
        return run(model, x, edits)[1]["layer1/gates/f"][t]

    perturb_below = [Edit("layer0/h", "add", noise, positions=[t])]
    perturb_above = [Edit("layer2/h", "add", noise, positions=[t - 1])]
    assert torch.equal(gates(perturb_below, 0, 1), gates([], 0, 1))
    assert not torch.allclose(gates(perturb_below, 1, 1), gates([], 1, 1))
    assert torch.equal(gates(perturb_above, 1, 0), gates([], 1, 0))
    assert not torch.allclose(gates(perturb_above, 1, 1), gates([], 1, 1))


def test_boundaries_are_binary_and_all_three_operations_occur():
    model = centre_boundaries(build(num_layers=3))
    _, seen = run(model, tokens(steps=20))
    for layer in range(2):
        z = seen[f"layer{layer}/z"]
        assert set(z.unique().tolist()) == {0.0, 1.0}
        assert torch.equal(z, (seen[f"layer{layer}/z_soft"] > 0.5).double())
    assert not seen["layer2/z"].any()  # the top layer has no boundary detector
    assert set(seen["layer1/op"].unique().tolist()) == {COPY, UPDATE, FLUSH}
    assert set(seen["layer0/op"].unique().tolist()) == {UPDATE, FLUSH}  # z^0 = 1: the bottom layer never copies


def test_one_step_at_a_time_equals_the_whole_sequence_with_boundaries_firing():
    model, x = centre_boundaries(build(num_layers=3)), tokens(steps=12)
    with torch.no_grad():
        whole, final = model(x)
        state, pieces, boundaries = None, [], []
        for t in range(x.shape[1]):
            logits, state = model(x[:, t:t + 1], state)
            pieces.append(logits)
            boundaries.append(state[2][:2, :, 0])
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, rtol=0, atol=1e-12)
    for a, b in zip(state, final):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    boundaries = torch.stack(boundaries)  # [T, 2 lower layers, B]
    assert boundaries.any() and not boundaries.all()  # the state carried boundaries on and off


def test_straight_through_gradient_reaches_the_boundary_detector_and_scales_with_the_slope():
    """One step: layer 0's z reaches the loss only through layer 1, so dL/du = (a/2) dL/dz exactly."""
    x = tokens(steps=1)

    def z_bias_grad(slope):
        model = build(num_layers=2, init_range=0.02, slope=slope, slope_max=slope)
        logits, _ = model(x)
        logits.square().sum().backward()
        return logits.detach(), model.layers.layers[0].bias.grad[4 * H]  # the row of z~

    out1, grad1 = z_bias_grad(1.0)
    out2, grad2 = z_bias_grad(2.0)
    assert torch.equal(out1, out2)  # the forward pass does not depend on the slope
    assert grad1 != 0
    torch.testing.assert_close(grad2, 2 * grad1, rtol=1e-12, atol=0)


def test_slope_is_annealed_per_training_step_up_to_its_cap():
    model = build(slope=1.0, slope_max=1.25, slope_anneal=0.1).train()
    x = tokens()
    with torch.no_grad():
        model(x)  # no gradient: not a training step
    model.eval()
    model(x)  # eval mode: not a training step
    assert model.layers.current_slope() == 1.0
    model.train()
    model(x)
    model(x)
    assert model.layers.current_slope() == pytest.approx(1.2)
    model(x)
    assert model.layers.current_slope() == 1.25
    assert int(model.state_dict()["layers.trained_steps"]) == 3  # saved with the checkpoint


@pytest.mark.parametrize(("config", "pattern"), [
    ({"num_layers": 1}, r"num_layers >= 2"),
    ({"slope": 0.0}, r"slope .* > 0, got 0.0"),
    ({"slope": 2.0, "slope_max": 1.0}, r"slope_max to be a number >= slope"),
    ({"slope_anneal": -1}, r"slope_anneal .* >= 0, got -1"),
])
def test_bad_config_names_the_setting_and_its_allowed_values(config, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build(**config)
