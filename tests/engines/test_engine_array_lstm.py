"""Array-LSTM (Rocki 2016): K = 1 is our LSTM exactly; the lanes are separate memories; stochastic pooling."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lstmviz.engines import registry
from lstmviz.engines.families.language_model import TokenData
from lstmviz.engines.families.language_model import contract
from lstmviz.engines.recurrent._configured import configured_layer
from lstmviz.engines.recurrent.array_lstm import ArrayLSTMLayer
from lstmviz.hooks import Edit, HookScope, find_taps, intervene

B, T, V, H = 3, 6, 7, 4


def _model(name="array-lstm", seed=0, **config):
    torch.manual_seed(seed)
    config = {"embedding_dim": 5, "hidden_size": H, "num_layers": 2, "init_range": 0.5, **config}
    return registry.get(name).build_model(TokenData(vocab_size=V), **config).double().eval()


def _tokens(seed=0, batch=B, steps=T):
    return torch.randint(0, V, (batch, steps), generator=torch.Generator().manual_seed(seed))


def _record(model, tokens, state=None):
    """{tap name: [T, B, H]} of one forward pass, and the model's output."""
    taps = find_taps(model)
    seen = {name: [] for name in taps}
    with torch.no_grad(), HookScope() as hooks:
        for name, tap in taps.items():
            hooks.read(tap, lambda module, args, kwargs, out: seen[module.name].append(out.clone()))
        out = model(tokens, state)
    return {name: torch.stack(values) for name, values in seen.items()}, out


@pytest.mark.parametrize("variant", ["deterministic", "stochastic-pooling"])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_one_lane_is_our_lstm_exactly_with_copied_weights(variant, mode):
    lstm = _model("lstm", seed=1)
    array = _model(seed=2, lanes=1, variant=variant)
    array.load_state_dict(lstm.state_dict())  # same parameter names and layout
    getattr(lstm, mode)(), getattr(array, mode)()
    tokens = _tokens(1)
    rec_lstm, (logits_lstm, (h_lstm, c_lstm)) = _record(lstm, tokens)
    rec_array, (logits_array, (h_array, c_array)) = _record(array, tokens)
    assert torch.equal(logits_array, logits_lstm)
    assert torch.equal(h_array, h_lstm) and torch.equal(c_array, c_lstm)
    for layer in (0, 1):
        for part in ("gates/i", "gates/f", "gates/g", "gates/o", "c"):
            assert torch.equal(rec_array[f"layer{layer}/lane0/{part}"], rec_lstm[f"layer{layer}/{part}"])
        assert torch.equal(rec_array[f"layer{layer}/h"], rec_lstm[f"layer{layer}/h"])
    assert not torch.equal(_model(seed=2, lanes=1, variant=variant)(tokens)[0], logits_lstm)  # the copy mattered


def test_each_lane_is_its_own_memory_and_h_sums_the_lanes():
    model = _model(seed=3, lanes=3)
    rec, (_, state) = _record(model, _tokens(3))
    for layer in (0, 1):
        c_prev = [torch.zeros(B, H, dtype=torch.float64)] * 3
        for t in range(T):
            out = 0
            for k in range(3):
                i, f, g, o, c = (rec[f"layer{layer}/lane{k}/{p}"][t] for p in ("gates/i", "gates/f", "gates/g",
                                                                              "gates/o", "c"))
                assert torch.equal(c, f * c_prev[k] + i * g)  # written by lane k's own gates from lane k's past
                c_prev[k] = c
                out = out + o * torch.tanh(c)
            torch.testing.assert_close(rec[f"layer{layer}/h"][t], out, rtol=0, atol=1e-15)
        lanes = [rec[f"layer{layer}/lane{k}/c"] for k in range(3)]
        assert all((a - b).abs().max() > 1e-2 for a, b in [(lanes[0], lanes[1]), (lanes[1], lanes[2])])
        for k in range(3):  # the state carries every lane separately
            assert torch.equal(state[1 + k][layer], lanes[k][-1])
    assert model.state_names == ("h", "c0", "c1", "c2")


def test_editing_one_lane_leaves_another_lane_untouched():
    """Lane 1 of layer 0 made to read only x_t: zeroing lane 0's cell changes h but not lane 1's memory."""
    model = _model(seed=4, lanes=2)
    layer = model.layers[0]
    with torch.no_grad():
        for gate in range(4):  # rows of lane 1 in the blocks (i, f, g, o) x (lane 0, lane 1)
            layer.weight_hh[(2 * gate + 1) * H:(2 * gate + 2) * H] = 0.0
    tokens = _tokens(4)
    base, _ = _record(model, tokens)
    with intervene(model, Edit("layer0/lane0/c", "replace", 0.0, positions=[2])):
        edited, _ = _record(model, tokens)
    assert not edited["layer0/lane0/c"][2].any()
    assert torch.equal(edited["layer0/lane1/c"], base["layer0/lane1/c"])
    assert not torch.allclose(edited["layer0/lane0/c"][3:], base["layer0/lane0/c"][3:])
    assert not torch.allclose(edited["layer0/h"][2:], base["layer0/h"][2:])
    with intervene(model, Edit("layer0/lane1/c", "replace", 0.0, positions=[2])):
        other, _ = _record(model, tokens)
    assert not torch.allclose(other["layer0/lane0/c"][3:], base["layer0/lane0/c"][3:])  # through h only


def test_stochastic_pooling_is_the_expectation_in_eval_and_one_drawn_lane_in_training():
    model = _model(seed=5, lanes=2, variant="stochastic-pooling", num_layers=1)
    tokens = _tokens(5, batch=400, steps=2)
    rec, _ = _record(model, tokens)
    p0, p1 = rec["layer0/lane0/p"], rec["layer0/lane1/p"]
    torch.testing.assert_close(p0 + p1, torch.ones_like(p0), rtol=0, atol=1e-15)
    outs = [rec[f"layer0/lane{k}/gates/o"] * torch.tanh(rec[f"layer0/lane{k}/c"]) for k in (0, 1)]
    torch.testing.assert_close(rec["layer0/h"], p0 * outs[0] + p1 * outs[1], rtol=0, atol=1e-15)
    assert torch.equal(_record(model, tokens)[0]["layer0/h"], rec["layer0/h"])  # eval is deterministic

    model.train()
    torch.manual_seed(0)
    drawn, _ = _record(model, tokens)
    h = drawn["layer0/h"]
    outs = [drawn[f"layer0/lane{k}/gates/o"] * torch.tanh(drawn[f"layer0/lane{k}/c"]) for k in (0, 1)]
    lane0, lane1 = h == outs[0], h == outs[1]
    assert (lane0 | lane1).all() and not (lane0 & lane1).any()  # exactly one lane's output, per (row, unit)
    expected, n = drawn["layer0/lane0/p"].sum(), h.numel()
    spread = (drawn["layer0/lane0/p"] * (1 - drawn["layer0/lane0/p"])).sum().sqrt()
    assert abs(lane0.sum() - expected) < 5 * spread and 0.05 * n < lane0.sum() < 0.95 * n


def test_stochastic_pooling_backpropagates_through_the_drawn_lane_only():
    model = _model(seed=6, lanes=2, variant="stochastic-pooling", num_layers=1).train()
    taps = find_taps(model)
    gates = {}

    def keep(module, args, kwargs, out):
        out.retain_grad()
        gates[module.name] = out

    with HookScope() as hooks:
        for k in (0, 1):
            hooks.read(taps[f"layer0/lane{k}/gates/o"], keep)
            hooks.read(taps[f"layer0/lane{k}/c"], keep)
        torch.manual_seed(1)
        h_seen = []
        hooks.read(taps["layer0/h"], lambda module, args, kwargs, out: h_seen.append(out))
        model(_tokens(6, batch=50, steps=1))
        h_seen[0].sum().backward()
    for k in (0, 1):
        o, c = gates[f"layer0/lane{k}/gates/o"], gates[f"layer0/lane{k}/c"]
        chosen = h_seen[0].detach() == (o * torch.tanh(c)).detach()
        assert torch.equal(o.grad, torch.where(chosen, torch.tanh(c).detach(), torch.zeros_like(o)))
        assert chosen.any() and not chosen.all()


@pytest.mark.parametrize("options", [{"lanes": 1}, {"lanes": 3, "variant": "stochastic-pooling"}])
@pytest.mark.parametrize("check", [contract.every_declared_tap_fires_once_per_step_with_batch_by_units,
                                   contract.one_step_at_a_time_equals_one_unrolled_call,
                                   contract.checkpoint_round_trip_gives_identical_outputs,
                                   contract.output_and_state_shapes])
def test_the_contract_holds_for_other_lane_counts_and_stochastic_pooling(options, check, tmp_path):
    spec = registry.get("array-lstm")
    config = {**spec.default_config, **options}
    taps = configured_layer(ArrayLSTMLayer, lanes=config["lanes"], variant=config["variant"]).tap_patterns()
    check(dataclasses.replace(spec, default_config=config, taps=taps), tmp_path)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("lanes", 0, r"expected lanes to be a positive int \(memory cells per unit: 1 to 64\), got 0"),
    ("lanes", 65, r"expected lanes to be at most 64"),
    ("variant", "max-pooling", r"expected variant to be one of 'deterministic', 'stochastic-pooling', "
                               r"got 'max-pooling'"),
])
def test_bad_config_names_the_setting_and_its_allowed_values(key, value, message):
    with pytest.raises(ValueError, match=message):
        registry.get("array-lstm").build_model(TokenData(vocab_size=V), **{key: value})
