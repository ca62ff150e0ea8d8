"""Quantisers shared by the recurrent and the image engines: the straight-through estimator and QNN's
signed k-bit uniform quantiser.

Straight-through estimator (:func:`ste`): the forward returns the quantised value ``q(x)``, the backward
passes the incoming gradient unchanged where ``lo <= x <= hi`` and zeroes it outside (the "hard-tanh"
STE of BinaryConnect / QNN)::

    forward:  y = q(x)          backward:  dL/dx = dL/dy * 1[lo <= x <= hi]

Used by ``lp-lstm``, ``lp-gru``, ``qnn-lstm`` (``engines/recurrent/_quant.py``) and the image engines
``dorefa-cnn``, ``bnn-cnn``, ``qnn-cnn`` (``engines/vision/quantize.py``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: a bit width that means "full precision" (no quantisation)
FULL_PRECISION_BITS = 32


class _StraightThrough(torch.autograd.Function):
    """``forward(x, q, lo, hi) = q``; ``backward = grad * 1[lo <= x <= hi]`` (to ``x``; none to ``q``)."""

    @staticmethod
    def forward(ctx, x, q, lo, hi):
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return q.detach().clone()

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        inside = (x >= ctx.lo) & (x <= ctx.hi)
        return grad * inside.to(grad.dtype), None, None, None


def ste(x: Tensor, q: Tensor, lo: float = -math.inf, hi: float = math.inf) -> Tensor:
    """``q`` exactly in the forward; the gradient of ``x`` passed straight through inside ``[lo, hi]``."""
    return _StraightThrough.apply(x, q, float(lo), float(hi))


def quantize_signed(x: Tensor, bits: int, scale: float = 1.0) -> Tensor:
    """k-bit uniform symmetric quantiser on ``[-scale, scale)`` (``scale`` a power of two).

    ``Q(x) = clip(round(x 2^(k-1) / s), -2^(k-1), 2^(k-1) - 1) s / 2^(k-1)`` (QNN); k = 1 is the sign,
    ``{-s, +s}``; k = 32 is the identity (full precision).
    """
    if bits >= FULL_PRECISION_BITS:
        return x
    if bits == 1:
        return torch.where(x >= 0, x.new_tensor(scale), x.new_tensor(-scale))
    n = 2 ** (bits - 1)
    return torch.round(x * (n / scale)).clamp(-n, n - 1) * (scale / n)


__all__ = ["FULL_PRECISION_BITS", "quantize_signed", "ste"]
