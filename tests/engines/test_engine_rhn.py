"""Recurrent Highway Networks (Zilly et al.): depth-1 coupled RHN is a known cell; the highway micro-layers."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lstmviz.engines import registry
from lstmviz.engines.families.language_model import TokenData
from lstmviz.engines.families.language_model import contract
from lstmviz.engines.recurrent._configured import configured_layer
from lstmviz.engines.recurrent.rhn import RHNLayer
from lstmviz.hooks import HookScope, find_taps

B, T, V = 3, 6, 7


def _model(seed=0, **config):
    torch.manual_seed(seed)
    config = {"embedding_dim": 5, "hidden_size": 4, "num_layers": 1, "init_range": 0.5, **config}
    return registry.get("rhn").build_model(TokenData(vocab_size=V), **config).double().eval()


def _tokens(seed=0):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def _record(model, tokens, state=None):
    """{tap name: [T, B, H]} of one forward pass."""
    taps = find_taps(model)
    seen = {name: [] for name in taps}
    with torch.no_grad(), HookScope() as hooks:
        for name, tap in taps.items():
            hooks.read(tap, lambda module, args, kwargs, out: seen[module.name].append(out.clone()))
        model(tokens, state)
    return {name: torch.stack(values) for name, values in seen.items()}


def test_depth_one_with_coupled_gates_is_the_written_out_highway_cell_and_a_gru_without_reset():
    """L = 1, c = 1 - t:  s_t = (1 - t) * s_{t-1} + t * tanh(W_H x + R_H s_{t-1} + b_H),
    t = sigmoid(W_T x + R_T s_{t-1} + b_T + beta): a GRU whose reset gate is pinned open and z = 1 - t."""
    model = _model(depth=1, coupled=True, transform_bias=-2.0)
    layer, H = model.layers[0], 4
    tokens = _tokens()
    with torch.no_grad():
        x = model.embedding(tokens)
        W_H, W_T = layer.weight_ih[:H], layer.weight_ih[H:]
        R_H, R_T = layer.weight_hh[0][:H], layer.weight_hh[0][H:]
        b_H, b_T = layer.bias[0][:H], layer.bias[0][H:]
        s, written = torch.zeros(B, H, dtype=torch.float64), []
        for t in range(T):
            gate = torch.sigmoid(x[:, t] @ W_T.T + s @ R_T.T + b_T - 2.0)
            s = (1 - gate) * s + gate * torch.tanh(x[:, t] @ W_H.T + s @ R_H.T + b_H)
            written.append(s)
        written = torch.stack(written, dim=1)

        gru = torch.nn.GRU(5, H, batch_first=True).double()
        zeros = torch.zeros(H, 5, dtype=torch.float64)
        gru.weight_ih_l0.copy_(torch.cat([zeros, -W_T, W_H]))
        gru.weight_hh_l0.copy_(torch.cat([torch.zeros(H, H, dtype=torch.float64), -R_T, R_H]))
        gru.bias_ih_l0.copy_(torch.cat([torch.full((H,), 1e3, dtype=torch.float64), -(b_T - 2.0), b_H]))
        gru.bias_hh_l0.zero_()  # reset gate sigmoid(1000) == 1.0 exactly in float64: r * (W_hn h) = W_hn h
        as_gru, _ = gru(x)

        recorded = _record(model, tokens)
    ours = recorded["layer0/h"].transpose(0, 1)
    assert set(recorded) == {"layer0/micro0/candidate", "layer0/micro0/t", "layer0/micro0/c", "layer0/h"}
    torch.testing.assert_close(ours, written, rtol=0, atol=1e-12)
    torch.testing.assert_close(ours, as_gru, rtol=0, atol=1e-12)
    assert (ours - written).abs().max() < 1e-12 < ours.abs().min()  # not trivially equal (all-zero)
    logits, _ = model(tokens)
    torch.testing.assert_close(logits, model.decoder(written), rtol=0, atol=1e-12)


@pytest.mark.parametrize("coupled", [True, False])
def test_every_micro_layer_is_a_highway_step_recorded_per_step(coupled):
    depth = 3
    model = _model(seed=1, depth=depth, coupled=coupled)
    tokens = _tokens(1)
    rec = _record(model, tokens)
    state = torch.zeros(B, 4, dtype=torch.float64)
    for t in range(T):
        s = state
        for m in range(depth):
            cand, gate, carry = (rec[f"layer0/micro{m}/{k}"][t] for k in ("candidate", "t", "c"))
            new = rec[f"layer0/micro{m}/s"][t] if m < depth - 1 else rec["layer0/h"][t]
            assert torch.equal(new, cand * gate + s * carry)
            if coupled:
                assert torch.equal(carry, 1.0 - gate)
            else:
                assert (carry - (1.0 - gate)).abs().max() > 1e-3  # a gate of its own
            s = new
        state = s
    # only the first micro-layer sees x_t: one input matrix, one recurrent matrix and bias per micro-layer
    layer = model.layers[0]
    assert [name for name, _ in layer.named_parameters() if "ih" in name] == ["weight_ih"]
    assert len(layer.weight_hh) == len(layer.bias) == depth
    rows = (2 if coupled else 3) * 4
    assert layer.weight_ih.shape == (rows, 5) and all(w.shape == (rows, 4) for w in layer.weight_hh)


def test_a_closed_transform_gate_carries_the_state_unchanged():
    """transform_bias = -30: t ~ 1e-13 at every micro-layer, so s_t == s_{t-1} for any input."""
    model = _model(seed=2, depth=2, transform_bias=-30.0)
    start = (torch.rand(1, B, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) - 0.5,)
    h = _record(model, _tokens(2), start)["layer0/h"]
    torch.testing.assert_close(h, start[0].expand(T, B, 4), rtol=0, atol=1e-6)
    moving = _record(_model(seed=2, depth=2, transform_bias=0.0), _tokens(2), start)["layer0/h"]
    assert (moving[-1] - start[0][0]).abs().max() > 0.05  # an open gate moves it


def test_depth_adds_micro_layers_and_their_taps():
    deep, shallow = _model(depth=4), _model(depth=1)
    assert len(find_taps(deep)) == 4 * 4 - 1 + 1 and len(find_taps(shallow)) == 3 + 1
    assert "depth=4" in deep.extra_repr() and "coupled=True" in deep.extra_repr()


@pytest.mark.parametrize("options", [{"depth": 1}, {"depth": 2, "coupled": False}])
@pytest.mark.parametrize("check", [contract.every_declared_tap_fires_once_per_step_with_batch_by_units,
                                   contract.one_step_at_a_time_equals_one_unrolled_call,
                                   contract.checkpoint_round_trip_gives_identical_outputs,
                                   contract.replacing_a_tap_value_changes_the_rest_of_the_recurrence])
def test_the_contract_holds_for_other_depths_and_uncoupled_gates(options, check, tmp_path):
    spec = registry.get("rhn")
    config = {**spec.default_config, **options}
    taps = configured_layer(RHNLayer, depth=config["depth"], coupled=config["coupled"],
                            transform_bias=config["transform_bias"]).tap_patterns()
    check(dataclasses.replace(spec, default_config=config, taps=taps), tmp_path)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("depth", 0, r"expected depth to be a positive int \(the recurrence depth, micro-layers per step: 1 to 64\), "
                 r"got 0"),
    ("depth", 2.0, r"expected depth to be a positive int .*got 2.0"),
    ("depth", 65, r"expected depth to be at most 64"),
    ("coupled", "yes", r"expected coupled to be one of True, False, got 'yes'"),
    ("coupled", 1, r"expected coupled to be one of True, False, got 1"),
    ("transform_bias", float("nan"), r"expected transform_bias to be a finite number"),
])
def test_bad_config_names_the_setting_and_its_allowed_values(key, value, message):
    with pytest.raises(ValueError, match=message):
        registry.get("rhn").build_model(TokenData(vocab_size=V), **{key: value})
