"""Quantisers with straight-through gradients, and the shadow-weight layer of the quantised engines.

Shared by ``lp-lstm``, ``lp-gru`` (Ott et al. 2016, weights only) and ``qnn-lstm`` (Hubara et al. 2016,
weights and activations). Every quantiser returns values on a fixed set of levels that are exactly
representable in float16 (and therefore in float32/float64): powers of two times small integers, or a
bound ``W0`` rounded to float16.

Straight-through estimator (:func:`ste`, from :mod:`lstmviz.engines.quantizers`, shared with the
image engines): the forward returns the quantised value ``q(x)``, the backward
passes the incoming gradient unchanged where ``lo <= x <= hi`` and zeroes it outside (the "hard-tanh"
STE of BinaryConnect / QNN)::

    forward:  y = q(x)          backward:  dL/dx = dL/dy * 1[lo <= x <= hi]

Shadow weights (:class:`ShadowWeightLayer`): the layer's parameters ``weight_ih``, ``weight_hh`` are
the full-precision ("latent") weights the optimiser updates and a checkpoint stores; each forward
quantises them once (a fresh draw per forward in stochastic modes) and the recurrence uses only the
quantised copy. The gradient with respect to the quantised copy reaches the latent weights through
the STE. Biases, the embedding and the decoder stay in full precision.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..quantizers import FULL_PRECISION_BITS, ste
from ..spec import ConfigError
from .base import GatedLayer
from .language_model import RecurrentLanguageModel

#: the weight quantisations of Ott et al. (``float``: none, the baseline)
LP_MODES = ("float", "binary", "stochastic-binary", "ternary", "stochastic-ternary", "pow2-ternary")
#: bit widths whose levels are exact in float16 (11 significant bits), and 32 = full precision
MAX_EXACT_BITS = 11


# ---------------------------------------------------------------------------------------------- levels


def float16_exact(value: float) -> float:
    """``value`` rounded to the nearest float16 (so levels built from it survive a float16 round trip)."""
    return float(torch.tensor(value, dtype=torch.float16))


def binarize(w: Tensor, w0: float, stochastic: bool = False) -> Tensor:
    """BinaryConnect: ``+W0 if w >= 0 else -W0``; stochastic: ``+W0`` with p = clip((w/W0 + 1)/2, 0, 1)."""
    if stochastic:
        plus = torch.bernoulli(((w / w0 + 1) / 2).clamp(0, 1)).bool()
    else:
        plus = w >= 0
    return torch.where(plus, w.new_tensor(w0), w.new_tensor(-w0))


def ternarize(w: Tensor, w0: float, stochastic: bool = False) -> Tensor:
    """TernaryConnect: ``W0 sign(w)`` where ``|w| > W0/2`` else 0; stochastic: ``W0 sign(w) Bernoulli(clip(|w|/W0))``.

    The stochastic draw is unbiased for ``|w| <= W0``: ``E[q] = W0 sign(w) |w|/W0 = w``.
    """
    if stochastic:
        keep = torch.bernoulli((w.abs() / w0).clamp(0, 1))
    else:
        keep = (w.abs() > w0 / 2).to(w.dtype)
    return w0 * torch.sign(w) * keep


def pow2_ternarize(w: Tensor, integer_bits: int = 0, fraction_bits: int = 1) -> Tensor:
    """Fixed-point rounding ``clip(round(w 2^f), +-(2^(i+f) - 1)) / 2^f``; i=0, f=1 gives {-0.5, 0, 0.5}."""
    top = 2 ** (integer_bits + fraction_bits) - 1
    return torch.round(w * 2 ** fraction_bits).clamp(-top, top) / 2 ** fraction_bits


def quantize_unsigned(x: Tensor, bits: int) -> Tensor:
    """k-bit uniform quantiser on ``[0, 1)``: ``clip(round(x 2^k), 0, 2^k - 1) / 2^k``; k = 1 is ``1[x >= 1/2]``."""
    if bits >= FULL_PRECISION_BITS:
        return x
    if bits == 1:
        return (x >= 0.5).to(x.dtype)
    n = 2 ** bits
    return torch.round(x * n).clamp(0, n - 1) / n


def pow2_ceil(value: float) -> float:
    """The smallest power of two >= ``value`` (1.0 for 0)."""
    return 2.0 ** math.ceil(math.log2(value)) if value > 0 else 1.0


# ---------------------------------------------------------------------------------------------- config


def check_quantization(engine: str, value) -> str:
    if not isinstance(value, str) or value not in LP_MODES:
        raise ConfigError(f"unknown quantization {value!r} for engine {engine!r}; allowed: {', '.join(LP_MODES)}")
    return value


def check_bits(engine: str, name: str, value) -> int:
    allowed = isinstance(value, int) and not isinstance(value, bool) and (
        1 <= value <= MAX_EXACT_BITS or value == FULL_PRECISION_BITS)
    if not allowed:
        raise ConfigError(
            f"expected {name} of engine {engine!r} to be an int from 1 to {MAX_EXACT_BITS} (levels exact in "
            f"float16) or {FULL_PRECISION_BITS} (full precision), got {value!r}")
    return value


# ---------------------------------------------------------------------------------------------- layer


class ShadowWeightLayer(GatedLayer):
    """A gated layer whose recurrence uses a quantised copy of its full-precision (shadow) weights.

    :meth:`project_input` quantises ``weight_ih`` and ``weight_hh`` once per forward
    (:meth:`quantized_weights`, through the STE) and returns, side by side, the input half of the
    pre-activations with the quantised weights and (without gradient, for the ``latent/*`` taps) with
    the shadow weights: ``[W_ih^q x + b, W_ih x + b]`` ([B, T, 2 G H]). Subclasses split it in
    :meth:`step` and add ``W_hh^q h_{t-1}`` (used) and ``W_hh h_{t-1}`` (recorded only).
    """

    def input_bias(self) -> Tensor:
        """The biases added to the input projection (both biases for an LSTM)."""
        return self.bias_ih + self.bias_hh

    def quantized_weights(self) -> tuple[Tensor, Tensor]:
        """``(W_ih^q, W_hh^q)`` with straight-through gradients to the shadow weights."""
        raise NotImplementedError

    def project_input(self, x: Tensor) -> Tensor:
        w_ih, w_hh = self.quantized_weights()
        self._recurrent_weight = w_hh  # the same draw for every step of this forward
        bias = self.input_bias()
        quantized = F.linear(x, w_ih, bias)
        with torch.no_grad():
            latent = F.linear(x, self.weight_ih, bias)
        return torch.cat([quantized, latent], dim=-1)

    def recurrent_weight(self) -> Tensor:
        weight = getattr(self, "_recurrent_weight", None)
        return self.quantized_weights()[1] if weight is None else weight


class TernaryLayerMixin:
    """Ott et al.'s weight quantisation (attribute ``quantization``, one of :data:`LP_MODES`).

    Deterministic modes in eval; stochastic modes draw afresh each training forward and use their
    deterministic counterpart in eval. The shadow weights are clipped to the largest level
    (``[-W0, W0]``, or ``[-0.5, 0.5]`` for pow2) at the start of every training forward (BinaryConnect's
    clip after each update), and the STE passes the gradient inside that range.
    """

    quantization: str = "ternary"
    weight_bound: float = float16_exact(0.1)
    gate_count: ClassVar[int]

    def weight_bounds(self) -> tuple[float, float]:
        """``W0`` of ``weight_ih`` and ``weight_hh``: the bound of the initial shadow weights (``init_range``).

        Ott et al. take ``W0`` = the Glorot bound, which is also the bound of their initialisation; here
        the shadow weights start in ``U(-init_range, init_range)``, so ``W0 = init_range`` (float16-exact).
        """
        return self.weight_bound, self.weight_bound

    def quantize(self, w: Tensor, w0: float) -> Tensor:
        mode = self.quantization
        stochastic = self.training and mode.startswith("stochastic")
        if mode == "float":
            return w
        if mode.endswith("binary"):
            return binarize(w, w0, stochastic)
        if mode.endswith("pow2-ternary"):
            return pow2_ternarize(w)
        return ternarize(w, w0, stochastic)

    def clip_bound(self, w0: float) -> float:
        return 0.5 if self.quantization == "pow2-ternary" else w0

    def quantized_weights(self) -> tuple[Tensor, Tensor]:
        if self.quantization == "float":
            return self.weight_ih, self.weight_hh
        out = []
        for w, w0 in zip((self.weight_ih, self.weight_hh), self.weight_bounds()):
            bound = self.clip_bound(w0)
            if self.training and torch.is_grad_enabled():
                with torch.no_grad():
                    w.clamp_(-bound, bound)
            out.append(ste(w, self.quantize(w.detach(), w0), -bound, bound))
        return out[0], out[1]


class LimitedPrecisionLanguageModel(RecurrentLanguageModel):
    """The language-model head of an Ott engine: build keyword and config entry ``quantization``."""

    engine_name: ClassVar[str]

    def __init__(self, *, vocab_size: int, embedding_dim: int = 128, hidden_size: int = 128, num_layers: int = 2,
                 dropout: float = 0.0, init_range: float = 0.1, quantization: str = "ternary"):
        quantization = check_quantization(self.engine_name, quantization)
        super().__init__(vocab_size=vocab_size, embedding_dim=embedding_dim, hidden_size=hidden_size,
                         num_layers=num_layers, dropout=dropout, init_range=init_range)
        self.quantization = quantization
        for layer in self.layers:
            layer.quantization = quantization
            layer.weight_bound = float16_exact(self.init_range)

    @property
    def config(self) -> dict:
        return {**super().config, "quantization": self.quantization}
