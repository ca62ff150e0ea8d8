"""Ott et al. (2016), engines lp-lstm and lp-gru: quantised weights in the forward, shadow weights updated.

The defining properties: the quantised weights take only the mode's levels (float16-exact); the
forward is the stock cell run with the quantised weights; the straight-through gradient is the
identity inside the clip range (zero outside) and lands on the full-precision shadow weights, which
the optimiser updates and the checkpoint stores; stochastic ternarisation is unbiased and eval uses
the deterministic quantiser.
"""

from __future__ import annotations

import pytest
import torch

from lstmviz.engines import registry
from lstmviz.engines.checkpoint import load_checkpoint, save_checkpoint
from lstmviz.engines.spec import ConfigError
from lstmviz.engines.families.language_model import TokenData
from lstmviz.engines.recurrent._quant import LP_MODES, float16_exact, pow2_ternarize, ste, ternarize
from lstmviz.hooks import HookScope, find_taps

ENGINES = {"lp-lstm": "lstm", "lp-gru": "gru"}
W0 = float16_exact(0.3)  # tiny_model's init_range
LEVELS = {
    "binary": {-W0, W0}, "stochastic-binary": {-W0, W0},
    "ternary": {-W0, 0.0, W0}, "stochastic-ternary": {-W0, 0.0, W0},
    "pow2-ternary": {-0.5, 0.0, 0.5},
}


def _tokens(seed=0, batch=3, steps=6):
    return torch.randint(0, 7, (batch, steps), generator=torch.Generator().manual_seed(seed))


def _stock_twin(model, stock_name, quantized=True):
    """The stock engine (lstm/gru) with the same parameters, its layer weights replaced by W^q."""
    spec = registry.get(stock_name)
    config = {k: v for k, v in model.config.items() if k in spec.config_keys()}
    twin = spec.build_model(TokenData(vocab_size=model.vocab_size), **config).double().eval()
    twin.load_state_dict(model.state_dict())
    if quantized:
        with torch.no_grad():
            for mine, theirs in zip(model.layers, twin.layers):
                w_ih, w_hh = mine.quantized_weights()
                theirs.weight_ih.copy_(w_ih)
                theirs.weight_hh.copy_(w_hh)
    return twin


def _spread(model):
    """Shadow weights spread over the whole clip range, so every level occurs."""
    torch.manual_seed(1)
    with torch.no_grad():
        for layer in model.layers:
            for w in (layer.weight_ih, layer.weight_hh):
                w.uniform_(-W0, W0)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("mode", sorted(LEVELS))
def test_quantised_weights_take_only_the_modes_levels_and_survive_float16(engine, mode, tiny_model):
    model, _ = tiny_model(engine, quantization=mode)
    _spread(model)
    model.train()  # stochastic modes draw here
    for layer in model.layers:
        for q in layer.quantized_weights():
            values = set(q.detach().unique().tolist())
            assert values == LEVELS[mode], (mode, values)  # only the levels, and all of them occur
            assert torch.equal(q.detach().half().double(), q.detach())


@pytest.mark.parametrize("engine", ENGINES)
def test_deterministic_quantisers_follow_their_rules(engine, tiny_model):
    w = torch.tensor([-0.4, -0.2, -0.1, -0.05, 0.0, 0.07, 0.1, 0.2, 0.26, 0.6], dtype=torch.float64)
    assert ternarize(w, 0.2).tolist() == [-0.2, -0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2, 0.2, 0.2]  # |w| > W0/2
    assert pow2_ternarize(w).tolist() == [-0.5, -0.0, -0.0, -0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5]  # round(2w)/2
    model, _ = tiny_model(engine, quantization="binary")
    layer = model.layers[0]
    q, _ = layer.quantized_weights()
    assert torch.equal(q, torch.where(layer.weight_ih >= 0, W0, -W0).to(q.dtype))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("mode", ["binary", "ternary", "pow2-ternary", "float"])
def test_the_forward_is_the_stock_cell_with_the_quantised_weights(engine, mode, tiny_model):
    model, _ = tiny_model(engine, quantization=mode)
    _spread(model)
    twin = _stock_twin(model, ENGINES[engine])
    x = _tokens()
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], twin(x)[0], rtol=0, atol=1e-12)
        if mode != "float":  # and not the cell with the shadow weights
            assert not torch.allclose(model(x)[0], _stock_twin(model, ENGINES[engine], quantized=False)(x)[0])


@pytest.mark.parametrize("engine", ENGINES)
def test_stochastic_modes_draw_in_training_and_are_deterministic_in_eval(engine, tiny_model):
    stochastic, _ = tiny_model(engine, quantization="stochastic-ternary")
    _spread(stochastic)
    deterministic, _ = tiny_model(engine, quantization="ternary")
    deterministic.load_state_dict(stochastic.state_dict())
    x = _tokens()
    with torch.no_grad():
        assert torch.equal(stochastic(x)[0], deterministic(x)[0])  # eval: the deterministic quantiser
        stochastic.train()
        draws = [stochastic.layers[0].quantized_weights()[1] for _ in range(2)]
    assert not torch.equal(*draws)


def test_stochastic_ternarisation_is_unbiased_inside_the_range():
    torch.manual_seed(0)
    w = torch.linspace(-0.3, 0.3, 13, dtype=torch.float64)
    mean = torch.stack([ternarize(w, 0.3, stochastic=True) for _ in range(20000)]).mean(0)
    torch.testing.assert_close(mean, w, rtol=0, atol=0.012)  # 4 sigma of 20000 draws of at most +-0.3


def test_the_straight_through_gradient_is_the_identity_inside_the_clip_range_and_zero_outside():
    x = torch.tensor([-2.0, -1.0, -0.3, 0.0, 0.4, 1.0, 1.5], dtype=torch.float64, requires_grad=True)
    q = torch.sign(x.detach())
    y = ste(x, q, -1.0, 1.0)
    assert torch.equal(y, q)  # the forward is exactly the quantised value
    y.backward(torch.arange(1.0, 8.0, dtype=torch.float64))
    assert x.grad.tolist() == [0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("mode", ["binary", "ternary", "pow2-ternary"])
def test_the_gradient_on_the_shadow_weights_is_the_gradient_on_the_quantised_weights(engine, mode, tiny_model):
    model, _ = tiny_model(engine, quantization=mode)
    _spread(model)
    twin = _stock_twin(model, ENGINES[engine])
    x, y = _tokens(1), _tokens(2)
    for m in (model, twin):
        m.train()  # training forward: the shadow weights are clipped (already inside) and the STE passes
        torch.nn.functional.cross_entropy(m(x)[0].flatten(0, 1), y.flatten()).backward()
    for mine, theirs in zip(model.layers, twin.layers):
        torch.testing.assert_close(mine.weight_ih.grad, theirs.weight_ih.grad, rtol=0, atol=1e-12)
        torch.testing.assert_close(mine.weight_hh.grad, theirs.weight_hh.grad, rtol=0, atol=1e-12)
        assert mine.weight_hh.grad.abs().sum() > 0


@pytest.mark.parametrize("engine", ENGINES)
def test_shadow_weights_are_what_the_optimiser_updates_and_the_checkpoint_stores(engine, tiny_model, tmp_path):
    model, config = tiny_model(engine, quantization="ternary")
    layer = model.layers[0]
    names = {id(p) for p in model.parameters()}
    assert id(layer.weight_ih) in names and id(layer.weight_hh) in names  # the optimiser sees the shadow weights
    before_w, before_q = layer.weight_hh.detach().clone(), layer.quantized_weights()[1].detach().clone()
    optimiser = torch.optim.SGD(model.parameters(), lr=1e-3)
    model.train()
    torch.nn.functional.cross_entropy(model(_tokens(1))[0].flatten(0, 1), _tokens(2).flatten()).backward()
    optimiser.step()
    model.eval()
    step = layer.weight_hh.detach() - before_w
    assert 0 < step.abs().max() < 1e-2  # a small update of the full-precision values ...
    assert len(set(layer.weight_hh.detach().unique().tolist()) - LEVELS["ternary"]) > 10  # ... not levels
    after_q = layer.quantized_weights()[1].detach()
    assert set(after_q.unique().tolist()) <= LEVELS["ternary"]

    path = save_checkpoint(tmp_path / "lp.pt", model, engine=engine, config=config, vocab=[str(i) for i in range(7)],
                           dataset="tiny", step=1, metrics={}, family="language-model")
    loaded, _ = load_checkpoint(path)
    assert torch.equal(loaded.layers[0].weight_hh.double(), layer.weight_hh.detach())  # shadow, not quantised
    assert torch.equal(loaded.layers[0].quantized_weights()[1].double(), after_q)  # the forward uses their quantisation
    assert not torch.equal(after_q, before_q) or not torch.equal(layer.weight_hh.detach(), before_w)


@pytest.mark.parametrize("engine", ENGINES)
def test_training_clips_the_shadow_weights_to_the_largest_level(engine, tiny_model):
    model, _ = tiny_model(engine, quantization="ternary")
    with torch.no_grad():
        model.layers[0].weight_hh[0, 0] = 5.0
    model.eval()
    model(_tokens())
    assert model.layers[0].weight_hh[0, 0] == 5.0  # eval never writes
    model.train()
    model(_tokens())
    assert model.layers[0].weight_hh[0, 0] == W0


@pytest.mark.parametrize("engine", ENGINES)
def test_latent_taps_use_the_shadow_weights_and_pre_taps_the_quantised(engine, tiny_model):
    model, _ = tiny_model(engine, quantization="ternary")
    _spread(model)
    first = "i" if engine == "lp-lstm" else "r"
    taps = find_taps(model)
    seen = {}
    with torch.no_grad(), HookScope() as hooks:
        for name in (f"layer0/pre/{first}", f"layer0/latent/{first}"):
            hooks.read(taps[name], lambda m, a, k, out: seen.setdefault(m.name, out.clone()))
        model(_tokens())
    layer, emb = model.layers[0], model.embedding(_tokens())[:, 0]
    rows = slice(0, layer.hidden_size)
    w_ih_q = layer.quantized_weights()[0]
    bias = (layer.bias_ih + layer.bias_hh)[rows]  # step 0: h_{-1} = 0
    torch.testing.assert_close(seen[f"layer0/pre/{first}"], emb @ w_ih_q[rows].t() + bias, rtol=0, atol=1e-12)
    torch.testing.assert_close(seen[f"layer0/latent/{first}"], emb @ layer.weight_ih[rows].t() + bias,
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bad", ["quaternary", "", None, 3])
def test_an_unknown_quantization_is_one_sentence_naming_the_setting_and_the_allowed_values(engine, bad):
    with pytest.raises(ConfigError) as caught:
        registry.get(engine).build_model(TokenData(vocab_size=7), quantization=bad)
    message = str(caught.value)
    assert "quantization" in message and all(mode in message for mode in LP_MODES)
    assert message.count(". ") == 0 and "\n" not in message
