r"""Quantisers of the quantised image engines: DoReFa-Net (``dorefa-cnn``) and QNN/BNN (``bnn-cnn``, ``qnn-cnn``).

DoReFa-Net (Zhou, Wu, Ni, Zhou, Wen, Zou 2016, arXiv:1606.06160), for ``r`` in ``[0, 1]``:

.. math::
    \operatorname{quantize}_k(r) &= \frac{\operatorname{round}((2^k - 1)\, r)}{2^k - 1}
        \qquad\text{(STE: } \partial c / \partial r = \partial c / \partial r_o) \\
    w_q &= 2 \operatorname{quantize}_k\Bigl(\frac{\tanh w}{2 \max|\tanh w|} + \tfrac12\Bigr) - 1
        \quad (k > 1), \qquad w_q = \operatorname{sign}(w)\, \mathrm{E}|w| \quad (k = 1,\ \mathrm{E}|w| \text{ detached}) \\
    a_q &= \operatorname{quantize}_k(\operatorname{clip}(a, 0, 1)) \\
    \tilde{dr} &= 2 \max_0|dr| \Bigl[\operatorname{quantize}_k\Bigl(\frac{dr}{2 \max_0|dr|} + \tfrac12 + N(k)\Bigr)
        - \tfrac12\Bigr], \qquad N(k) \sim \frac{U(-\tfrac12, \tfrac12)}{2^k - 1}

``max_0`` is the maximum over every axis but the batch axis (one scale per image). The gradient
quantiser is the backward of an identity placed after a layer (:func:`quantize_gradient`); its
uniform noise makes the rounding stochastic and unbiased, ``E[dr~] = dr``. The weight gradient flows
through ``tanh`` and the ``max`` normalisation by the chain rule, and straight through the rounding;
the activation gradient is ``1[0 <= a <= 1]`` (clip's derivative) times the STE's identity.
``sign(0)`` is taken as ``+1``. A bit width of 32 means full precision (no quantiser).

QNN / BNN (Hubara, Courbariaux, Soudry, El-Yaniv, Bengio 2016, arXiv:1609.07061):

.. math::
    x_b = \operatorname{sign}(x) \in \{-1, +1\},\qquad g_x = g_{x_b}\, 1[|x| \le 1]
    \qquad\text{(the hard-tanh STE)}

and the k-bit linear quantiser ``Q_k(x) = clip(round(x 2^{k-1}), -2^{k-1}, 2^{k-1} - 1) / 2^{k-1}``
(:func:`lstmviz.engines.quantizers.quantize_signed`, shared with ``qnn-lstm``; k = 1 is the sign), with
the same STE. Binary dot products: for ``a, w`` in ``{-1, +1}^n`` packed as bits (1 for +1),
``a . w = 2 popcount(XNOR(a, w)) - n`` (:func:`pack_signs`, :func:`xnor_dot`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..quantizers import FULL_PRECISION_BITS, quantize_signed, ste
from ..spec import ConfigError

#: the largest bit width with its own levels (32 = full precision)
MAX_BITS = 16


def check_bit_width(engine: str, name: str, value) -> int:
    """``value`` if it is an int in ``1 .. MAX_BITS`` or 32 (full precision), else a :class:`ConfigError`."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and (
        1 <= value <= MAX_BITS or value == FULL_PRECISION_BITS)
    if not ok:
        raise ConfigError(f"expected {name} of engine {engine!r} to be an int from 1 to {MAX_BITS} or "
                          f"{FULL_PRECISION_BITS} (full precision), got {value!r}")
    return int(value)


# ---------------------------------------------------------------------------------------------- DoReFa


def quantize_k(r: Tensor, k: int) -> Tensor:
    """``round((2^k - 1) r) / (2^k - 1)`` in the forward, the identity in the backward (STE); k = 32: ``r``."""
    if k >= FULL_PRECISION_BITS:
        return r
    n = 2 ** k - 1
    return ste(r, torch.round(r.detach() * n) / n)


def dorefa_weights(w: Tensor, k: int) -> Tensor:
    """DoReFa's k-bit weights in ``[-1, 1]`` (2^k levels ``2 i / (2^k - 1) - 1``); k = 1: ``sign(w) E|w|``."""
    if k >= FULL_PRECISION_BITS:
        return w
    if k == 1:
        scale = w.detach().abs().mean()
        return ste(w, torch.where(w.detach() >= 0, scale, -scale))
    t = torch.tanh(w)
    return 2 * quantize_k(t / (2 * t.abs().max()) + 0.5, k) - 1


def dorefa_activations(a: Tensor, k: int) -> Tensor:
    """``quantize_k(clip(a, 0, 1))``: 2^k levels ``i / (2^k - 1)``; the gradient is ``1[0 <= a <= 1]``."""
    return quantize_k(a.clamp(0.0, 1.0), k)


def quantize_gradient_values(dr: Tensor, k: int, noise: bool = True, generator: torch.Generator | None = None
                             ) -> Tensor:
    """DoReFa's gradient quantiser ``f_G`` applied to ``dr`` (``[B, ...]``; scale per batch element).

    Values lie on ``2 max_0|dr| (i / (2^k - 1) - 1/2)``; with ``noise`` the rounding is stochastic and
    ``E[f_G(dr)] = dr``; without it the rounding is to the nearest level (biased towards 0 for small ``dr``).
    """
    if k >= FULL_PRECISION_BITS:
        return dr
    dims = tuple(range(1, dr.dim()))
    scale = 2 * dr.abs().amax(dim=dims, keepdim=True) if dims else 2 * dr.abs()
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    n = 2 ** k - 1
    x = dr / safe + 0.5
    if noise:
        x = x + (torch.rand(dr.shape, dtype=dr.dtype, device=dr.device, generator=generator) - 0.5) / n
    x = x.clamp(0.0, 1.0)
    return safe * (torch.round(x * n) / n - 0.5) * (scale > 0)


class _GradientQuantizer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, k, noise):
        ctx.k, ctx.noise = k, noise
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return quantize_gradient_values(grad, ctx.k, ctx.noise), None, None


def quantize_gradient(x: Tensor, k: int, noise: bool = True) -> Tensor:
    """The identity in the forward; the backward replaces the incoming gradient by ``f_G`` of it (k bits)."""
    if k >= FULL_PRECISION_BITS:
        return x
    return _GradientQuantizer.apply(x, int(k), bool(noise))


# ---------------------------------------------------------------------------------------------- QNN / BNN


def binary_sign(x: Tensor) -> Tensor:
    """``sign(x)`` in ``{-1, +1}`` (0 -> +1) with the hard-tanh STE: gradient ``1[|x| <= 1]``."""
    return ste(x, torch.where(x.detach() >= 0, 1.0, -1.0).to(x.dtype), -1.0, 1.0)


def stochastic_sign(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """BNN's stochastic binarisation: ``+1`` with probability ``clip((x + 1) / 2, 0, 1)``, else ``-1``, so that
    ``E[x_b] = clip(x, -1, 1)``; the hard-tanh STE ``1[|x| <= 1]`` in the backward."""
    p = ((x.detach() + 1) / 2).clamp(0.0, 1.0)
    plus = torch.rand(x.shape, dtype=x.dtype, device=x.device, generator=generator) < p
    return ste(x, torch.where(plus, 1.0, -1.0).to(x.dtype), -1.0, 1.0)


def qnn_quantize(x: Tensor, bits: int) -> Tensor:
    """QNN's k-bit linear quantiser on ``[-1, 1)`` (k = 1: the sign, ``{-1, +1}``) with the STE ``1[|x| <= 1]``;
    32 bits: ``hardtanh(x)`` (the float twin keeps the same bounded activation)."""
    if bits >= FULL_PRECISION_BITS:
        return x.clamp(-1.0, 1.0)
    return ste(x, quantize_signed(x.detach(), bits, 1.0), -1.0, 1.0)


def pack_signs(x) -> np.ndarray:
    """``{-1, +1}`` values ``[..., n]`` packed along the last axis into uint64 words ``[..., ceil(n / 64)]``
    (bit 1 for +1, 0 for -1 and for the padding bits beyond ``n``)."""
    a = np.asarray(x.detach().cpu().numpy() if isinstance(x, Tensor) else x)
    if not np.isin(a, (-1, 1)).all():
        raise ValueError("expected only -1 and +1 values to pack")
    n = a.shape[-1]
    words = -(-n // 64)
    bits = np.zeros(a.shape[:-1] + (words * 64,), dtype=np.uint8)
    bits[..., :n] = a > 0
    return np.packbits(bits, axis=-1, bitorder="little").view(np.uint64)


_BYTE_POPCOUNT = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1).astype(np.int64)


def popcount_rows(words: np.ndarray) -> np.ndarray:
    """The number of set bits of each row of uint64 words ``[..., words]`` (int64 ``[...]``);
    ``np.bitwise_count`` (numpy >= 2.0) or a byte table on older numpy."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words).sum(axis=-1, dtype=np.int64)
    return _BYTE_POPCOUNT[np.ascontiguousarray(words).view(np.uint8)].sum(axis=-1)


def xnor_dot(a_packed: np.ndarray, w_packed: np.ndarray, n: int) -> np.ndarray:
    """``A @ W.T`` for ``{-1, +1}`` matrices from their packed bits: ``2 popcount(XNOR(a, w)) - n`` (int64).

    ``a_packed``: ``[M, words]``, ``w_packed``: ``[O, words]`` (from :func:`pack_signs`, ``n`` values each);
    result ``[M, O]``. The padding bits beyond ``n`` (0 in both) are masked out of the XNOR.
    """
    words = a_packed.shape[-1]
    mask = np.full(words, np.uint64(0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
    if n % 64:
        mask[-1] = np.uint64((1 << (n % 64)) - 1)
    out = np.empty((a_packed.shape[0], w_packed.shape[0]), dtype=np.int64)
    for o in range(w_packed.shape[0]):
        same = ~(a_packed ^ w_packed[o]) & mask
        out[:, o] = popcount_rows(same)
    return 2 * out - n


__all__ = ["MAX_BITS", "binary_sign", "check_bit_width", "dorefa_activations", "dorefa_weights", "pack_signs",
           "popcount_rows", "qnn_quantize", "quantize_gradient", "quantize_gradient_values", "quantize_k",
           "stochastic_sign", "xnor_dot"]
