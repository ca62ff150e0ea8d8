"""Hubara et al. (2016), engine qnn-lstm: k-bit weights and activations with straight-through estimators.

The defining properties: forward weights take at most 2^k values on the power-of-two grid; the
quantised hidden state (tap ``h_q``) takes at most 2^k levels, all exact in float16; the forward is
the LSTM with those weights and quantised matrix inputs (checked against a hand-written step); the
gradient reaches the full-precision shadow weights as the identity (straight-through, zero outside
the clip range), and those are what the optimiser updates and the checkpoint stores; 32 bits is the
plain LSTM.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lstmviz.engines import registry
from lstmviz.engines.checkpoint import load_checkpoint, save_checkpoint
from lstmviz.engines.families.language_model import TokenData
from lstmviz.engines.quantizers import quantize_signed, ste
from lstmviz.engines.recurrent._quant import quantize_unsigned
from lstmviz.engines.spec import ConfigError
from lstmviz.hooks import HookScope, find_taps


def _tokens(seed=0, batch=3, steps=6):
    return torch.randint(0, 7, (batch, steps), generator=torch.Generator().manual_seed(seed))


def _record(model, names, x):
    taps, seen = find_taps(model), {n: [] for n in names}
    with torch.no_grad(), HookScope() as hooks:
        for n in names:
            hooks.read(taps[n], lambda m, a, k, out: seen[m.name].append(out.clone()))
        model(x)
    return {n: torch.stack(v) for n, v in seen.items()}


def _reference(model, x, weights=None):
    """A hand-written unroll: W^q from the shadow weights (or ``weights``), Q(h) into every matrix product."""
    k = model.activation_bits
    # straight-through (identity inside [-1, 1]) as the paper's backward; torch.round alone has zero gradient
    q = (lambda v: ste(v, quantize_signed(v.detach(), k), -1.0, 1.0)) if k < 32 else (lambda v: v)
    inputs = model.embedding(x)
    for index, layer in enumerate(model.layers):
        w_ih, w_hh = weights[index] if weights else layer.quantized_weights()
        if index > 0:
            inputs = q(inputs)
        h = c = inputs.new_zeros(x.shape[0], layer.hidden_size)
        outs = []
        for t in range(x.shape[1]):
            a = inputs[:, t] @ w_ih.t() + h @ w_hh.t() + layer.bias_ih + layer.bias_hh
            i, f, g, o = a.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            out = torch.sigmoid(o) * torch.tanh(c)
            h = q(out)
            outs.append(out)
        inputs = torch.stack(outs, dim=1)
    return model.decoder(inputs)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_weights_take_at_most_2_to_the_k_values_on_a_power_of_two_grid(bits, tiny_model):
    model, _ = tiny_model("qnn-lstm", weight_bits=bits)
    for layer in model.layers:
        for w, q in zip((layer.weight_ih, layer.weight_hh), layer.quantized_weights()):
            q = q.detach()
            assert q.unique().numel() <= 2 ** bits
            scale = 2.0 ** torch.ceil(torch.log2(w.detach().abs().max())).item()
            assert scale / 2 < w.detach().abs().max() <= scale
            step = scale if bits == 1 else scale / 2 ** (bits - 1)
            assert torch.equal(torch.round(q / step) * step, q) and q.abs().max() <= scale
            assert torch.equal(q.half().double(), q)
            if bits >= 4:  # rounding to the nearest level
                assert (q - w.detach()).abs().max() <= step / 2 + 1e-12


@pytest.mark.parametrize("bits", [1, 2, 4, 11])
def test_the_quantised_hidden_state_has_at_most_2_to_the_k_levels_exact_in_float16(bits, tiny_model):
    model, _ = tiny_model("qnn-lstm", activation_bits=bits, init_range=1.5)  # large h: several levels occur
    seen = _record(model, ["layer0/h", "layer0/h_q", "layer1/h_q"], _tokens(seed=3, batch=4, steps=12))
    for name in ("layer0/h_q", "layer1/h_q"):
        values = seen[name]
        assert values.unique().numel() <= 2 ** bits
        assert torch.equal(values.half().double(), values)  # a float16 recording stores them exactly
        assert values.unique().numel() >= min(2, 2 ** bits)
    torch.testing.assert_close(seen["layer0/h_q"], quantize_signed(seen["layer0/h"], bits), rtol=0, atol=0)
    assert not torch.equal(seen["layer0/h"], seen["layer0/h_q"])  # the pre-quantisation tap is not quantised


@pytest.mark.parametrize(("weight_bits", "activation_bits"), [(4, 4), (2, 3), (32, 4), (4, 32)])
def test_the_forward_is_the_lstm_with_quantised_weights_and_quantised_matrix_inputs(weight_bits, activation_bits,
                                                                                   tiny_model):
    model, _ = tiny_model("qnn-lstm", weight_bits=weight_bits, activation_bits=activation_bits)
    x = _tokens(seed=5)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], _reference(model, x), rtol=0, atol=1e-12)


def test_32_bits_is_the_plain_lstm(tiny_model):
    model, config = tiny_model("qnn-lstm", weight_bits=32, activation_bits=32)
    spec = registry.get("lstm")
    plain = spec.build_model(TokenData(vocab_size=7), **{k: v for k, v in config.items() if k in spec.config_keys()})
    plain.double().eval().load_state_dict(model.state_dict())
    x = _tokens(seed=6)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], plain(x)[0], rtol=0, atol=1e-12)


def test_quantisers_and_the_straight_through_gradient_clipped_to_the_range():
    x = torch.tensor([-1.5, -1.0, -0.3, 0.0, 0.2, 0.9375, 1.0, 3.0], dtype=torch.float64, requires_grad=True)
    q = quantize_signed(x.detach(), 4)  # levels m/8, m in [-8, 7]
    assert q.tolist() == [-1.0, -1.0, -0.25, 0.0, 0.25, 0.875, 0.875, 0.875]
    assert quantize_unsigned(torch.tensor([0.0, 0.49, 0.5, 0.97, 1.0]), 2).tolist() == [0.0, 0.5, 0.5, 0.75, 0.75]
    y = ste(x, q, -1.0, 1.0)
    assert torch.equal(y, q)
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]  # identity inside [-1, 1], zero outside


def test_the_gradient_reaches_the_shadow_weights_as_the_gradient_of_the_quantised_ones(tiny_model):
    model, _ = tiny_model("qnn-lstm", weight_bits=3, activation_bits=4)
    x, y = _tokens(1), _tokens(2)
    leaves = [tuple(w.detach().clone().requires_grad_() for w in layer.quantized_weights()) for layer in model.layers]
    F.cross_entropy(_reference(model, x, leaves).flatten(0, 1), y.flatten()).backward()
    model.zero_grad()
    F.cross_entropy(model(x)[0].flatten(0, 1), y.flatten()).backward()
    for layer, (g_ih, g_hh) in zip(model.layers, leaves):
        # the weight range s >= max|W| holds every shadow weight, so the STE is the identity for all of them
        torch.testing.assert_close(layer.weight_ih.grad, g_ih.grad, rtol=0, atol=1e-12)
        torch.testing.assert_close(layer.weight_hh.grad, g_hh.grad, rtol=0, atol=1e-12)
        assert layer.weight_hh.grad.abs().sum() > 0


def test_shadow_weights_are_what_the_optimiser_updates_and_the_checkpoint_stores(tiny_model, tmp_path):
    model, config = tiny_model("qnn-lstm", weight_bits=2, activation_bits=4)
    layer = model.layers[1]
    before = layer.weight_hh.detach().clone()
    optimiser = torch.optim.SGD(model.parameters(), lr=1e-3)
    F.cross_entropy(model(_tokens(1))[0].flatten(0, 1), _tokens(2).flatten()).backward()
    optimiser.step()
    assert 0 < (layer.weight_hh.detach() - before).abs().max() < 1e-2
    assert layer.weight_hh.detach().unique().numel() > 4  # full precision, not the 2-bit levels
    path = save_checkpoint(tmp_path / "qnn.pt", model, engine="qnn-lstm", config=config,
                           vocab=[str(i) for i in range(7)], dataset="tiny", step=1, metrics={}, family="language-model")
    loaded, meta = load_checkpoint(path)
    assert meta["config"]["weight_bits"] == 2 and meta["config"]["activation_bits"] == 4
    assert torch.equal(loaded.layers[1].weight_hh.double(), layer.weight_hh.detach())
    assert torch.equal(loaded.layers[1].quantized_weights()[1].double(), layer.quantized_weights()[1].detach())


@pytest.mark.parametrize("key", ["weight_bits", "activation_bits"])
@pytest.mark.parametrize("bad", [0, 33, 12, -4, 4.0, "4", True])
def test_a_bad_bit_width_is_one_sentence_naming_the_setting_and_the_allowed_values(key, bad):
    with pytest.raises(ConfigError) as caught:
        registry.get("qnn-lstm").build_model(TokenData(vocab_size=7), **{key: bad})
    message = str(caught.value)
    assert key in message and "1 to 11" in message and "32" in message and repr(bad) in message
    assert "\n" not in message and message.count(". ") == 0
