"""DoReFa and QNN quantisers (engines/vision/quantize.py): levels, straight-through gradients, the unbiased
stochastic gradient quantiser."""

import pytest
import torch

import numpy as np

from lstmviz.engines.vision import quantize as quantize_module
from lstmviz.engines.vision.quantize import (binary_sign, dorefa_activations, dorefa_weights, popcount_rows,
                                             qnn_quantize, quantize_gradient, quantize_gradient_values, quantize_k,
                                             stochastic_sign)


def _levels(k):
    n = 2 ** k - 1
    return torch.arange(n + 1, dtype=torch.float64) / n


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_quantize_k_has_exactly_2_to_the_k_levels_and_is_idempotent(k):
    r = torch.rand(20000, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
    q = quantize_k(r, k)
    assert torch.equal(torch.unique(q), _levels(k))
    assert torch.equal(quantize_k(q, k), q)
    assert (q - r).abs().max() <= 0.5 / (2 ** k - 1) + 1e-12


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_dorefa_weights_take_exactly_2_to_the_k_levels(k):
    w = torch.randn(20000, generator=torch.Generator().manual_seed(10 + k), dtype=torch.float64)
    q = dorefa_weights(w, k)
    values = torch.unique(q)
    assert len(values) == 2 ** k
    if k == 1:  # sign(w) E|w|
        assert torch.allclose(values, torch.tensor([-1.0, 1.0], dtype=torch.float64) * w.abs().mean())
    else:  # 2 i / (2^k - 1) - 1
        assert torch.allclose(values, 2 * _levels(k) - 1)


def test_one_bit_weights_map_zero_to_plus():
    w = torch.tensor([0.0, -2.0, 1.0])
    assert dorefa_weights(w, 1).tolist() == [1.0, -1.0, 1.0]


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_dorefa_activations_take_exactly_2_to_the_k_levels_in_0_1(k):
    a = torch.rand(20000, generator=torch.Generator().manual_seed(20 + k), dtype=torch.float64) * 2 - 0.5
    assert torch.equal(torch.unique(dorefa_activations(a, k)), _levels(k))


def test_full_precision_is_the_identity_after_the_clip():
    a = torch.linspace(-1, 2, 101, dtype=torch.float64)
    assert torch.equal(dorefa_activations(a, 32), a.clamp(0, 1))
    assert torch.equal(dorefa_weights(a, 32), a)


def test_ste_passes_the_gradient_where_the_paper_says():
    # quantize_k: the identity
    r = torch.rand(50, dtype=torch.float64, requires_grad=True)
    g = torch.randn(50, dtype=torch.float64)
    quantize_k(r, 2).backward(g)
    assert torch.equal(r.grad, g)
    # activations: clip's derivative 1[0 <= a <= 1] times the identity
    a = torch.tensor([-0.7, -0.1, 0.2, 0.5, 0.9, 1.3, 2.0], dtype=torch.float64, requires_grad=True)
    dorefa_activations(a, 2).backward(torch.ones_like(a))
    assert a.grad.tolist() == [0, 0, 1, 1, 1, 0, 0]
    # k-bit weights (k > 1): the chain rule through tanh and the max normalisation, straight through the
    # rounding: the gradient of 2 (tanh w / (2 max|tanh w|) + 1/2) - 1 = tanh w / max|tanh w|
    w = torch.randn(30, dtype=torch.float64, requires_grad=True)
    up = torch.randn(30, dtype=torch.float64)
    dorefa_weights(w, 3).backward(up)
    w_ref = w.detach().clone().requires_grad_(True)
    (torch.tanh(w_ref) / torch.tanh(w_ref).abs().max()).backward(up)
    assert torch.allclose(w.grad, w_ref.grad)
    assert not torch.allclose(w.grad, up)  # not a plain identity
    # 1-bit weights: sign(w) E|w| with E|w| detached; the identity STE
    w1 = torch.randn(30, dtype=torch.float64, requires_grad=True)
    dorefa_weights(w1, 1).backward(up)
    assert torch.equal(w1.grad, up)


def test_stochastic_gradient_quantiser_is_unbiased_and_rounding_without_noise_is_not():
    gen = torch.Generator().manual_seed(0)
    dr = torch.randn(2, 60, dtype=torch.float64, generator=gen) * torch.tensor([[1.0], [1e-3]], dtype=torch.float64)
    draws = 20000
    k = 2
    tiled = dr.repeat(draws, 1)  # the scale is per batch element, so every copy has its own row's scale
    q = quantize_gradient_values(tiled, k, noise=True, generator=gen).reshape(draws, 2, 60)
    # every draw lies on the 2^k levels 2 max|dr| (i / (2^k - 1) - 1/2) of its image
    scale = 2 * dr.abs().amax(dim=1, keepdim=True)
    steps = (q / scale + 0.5) * (2 ** k - 1)
    assert torch.allclose(steps, steps.round(), atol=1e-9) and steps.min() >= 0 and steps.max() <= 2 ** k - 1
    mean, se = q.mean(0), q.std(0) / draws ** 0.5
    exact = se == 0  # the element at max|dr| sits on a level: never rounded, no spread
    assert torch.allclose(mean[exact], dr[exact], rtol=1e-12, atol=0)
    z = (mean - dr)[~exact] / se[~exact]
    assert z.abs().max() < 5.0  # 118 elements within 5 standard errors
    assert (mean - dr).abs().max() < 0.02 * (scale / (2 ** k - 1)).max()  # well inside one level
    # deterministic rounding (the paper's ablation) is biased: small gradients round to a level
    det = quantize_gradient_values(dr, k, noise=False)
    assert ((det - dr)[~exact].abs() / se[~exact]).max() > 50


def test_gradient_quantiser_is_an_identity_forward_that_quantises_the_backward():
    x = torch.randn(3, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    y = quantize_gradient(x, 2)
    assert torch.equal(y, x)
    up = torch.randn(3, 4, 5, 5, dtype=torch.float64)
    y.backward(up)
    for b in range(3):  # at most 2^k values per image (one scale per image)
        assert len(torch.unique(x.grad[b])) <= 4
    assert not torch.equal(x.grad, up)
    x.grad = None
    quantize_gradient(x, 32).backward(up)
    assert torch.equal(x.grad, up)


def test_binary_sign_uses_the_hard_tanh_ste_and_maps_zero_to_plus():
    x = torch.tensor([-2.0, -1.0, -0.3, 0.0, 0.4, 1.0, 1.5], dtype=torch.float64, requires_grad=True)
    y = binary_sign(x)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1]
    y.backward(torch.full_like(x, 3.0))
    assert x.grad.tolist() == [0, 3, 3, 3, 3, 3, 0]


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_qnn_quantiser_has_exactly_2_to_the_k_levels(bits):
    x = torch.rand(20000, generator=torch.Generator().manual_seed(bits), dtype=torch.float64) * 3 - 1.5
    values = torch.unique(qnn_quantize(x, bits))
    n = 2 ** (bits - 1)
    expected = torch.tensor([-1.0, 1.0], dtype=torch.float64) if bits == 1 else (
        torch.arange(-n, n, dtype=torch.float64) / n)
    assert torch.equal(values, expected)


def test_stochastic_sign_is_unbiased_inside_minus_one_one_and_uses_the_hard_tanh_ste():
    x = torch.tensor([-1.5, -1.0, -0.6, -0.1, 0.0, 0.3, 0.9, 1.0, 2.0], dtype=torch.float64)
    draws = 40000
    b = stochastic_sign(x.repeat(draws, 1), generator=torch.Generator().manual_seed(3))
    assert torch.equal(torch.unique(b), torch.tensor([-1.0, 1.0], dtype=torch.float64))
    mean, se = b.mean(0), b.std(0) / draws ** 0.5
    target = x.clamp(-1, 1)
    saturated = target.abs() == 1
    assert torch.equal(mean[saturated], target[saturated])
    assert ((mean - target)[~saturated].abs() / se[~saturated]).max() < 5.0
    xg = x.clone().requires_grad_(True)
    stochastic_sign(xg).backward(torch.ones_like(x))
    assert xg.grad.tolist() == [0, 1, 1, 1, 1, 1, 1, 1, 0]


def test_popcount_fallback_for_old_numpy_counts_the_same_bits(monkeypatch):
    words = np.random.default_rng(0).integers(0, 2 ** 63, size=(5, 3), dtype=np.int64).view(np.uint64) * 3
    fast = popcount_rows(words)
    monkeypatch.delattr(quantize_module.np, "bitwise_count", raising=False)
    assert np.array_equal(popcount_rows(words), fast)
    assert np.array_equal(fast, [sum(bin(int(w)).count("1") for w in row) for row in words])
