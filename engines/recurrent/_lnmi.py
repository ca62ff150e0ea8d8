"""Pieces shared by the layer-normalised (``ln-lstm``, ``ln-gru``) and multiplicative-integration
(``mi-rnn``, ``mi-lstm``, ``mi-gru``) engines.

Layer normalisation (Ba, Kiros & Hinton 2016), over the feature axis of one site, per example and step:

    LN(z; g) = g * (z - mean(z)) / sqrt(var(z) + eps)          (torch.nn.functional.layer_norm)

Multiplicative integration (Wu et al. 2016) replaces ``Wx + Uh + b`` by

    pre = alpha * Wx * Uh + beta1 * Uh + beta2 * Wx + b  =  gain * Uh + (beta2 * Wx + b),
    gain = alpha * Wx + beta1                                  (the effective recurrent gain, d pre / d Uh)

computed in the second form (:meth:`MILayerMixin.mi_preactivation`), so that with alpha = 0 and
beta1 = beta2 = 1 it is ``Uh + (Wx + b)``, bit for bit what the additive cells compute.

Offset parameters. The language-model family draws *every* parameter from U(-init_range, init_range)
(``RecurrentLanguageModel.reset_parameters``), but the papers start LN gains, alpha and the betas at 1.
Such a value is stored as an offset from its starting value: ``gain = 1 + ln_gain_x``,
``alpha = alpha_init + mi_alpha``, so a freshly drawn model starts within init_range of the paper's
initialisation and the shared initialisation, checkpoints and weight decay apply unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..spec import ConfigError
from .language_model import RecurrentLanguageModel

#: eps of every layer-norm site (Kiros's reference code uses 1e-5)
LN_EPS = 1e-5


def offset_parameter(size: int) -> nn.Parameter:
    """A parameter holding the offset of a value from its starting value (drawn like every parameter)."""
    return nn.Parameter(torch.zeros(size))


def layer_norm(z: Tensor, gain: Tensor, eps: float, shift: Tensor | None = None) -> Tensor:
    """``gain * (z - mean) / sqrt(var + eps) (+ shift)`` over the last axis of ``z`` (biased variance)."""
    return F.layer_norm(z, (z.shape[-1],), gain, shift, eps)


def check_number(name: str, value, *, positive: bool = False) -> float:
    """``value`` as a float, or ConfigError naming the setting and the values it allows."""
    allowed = "a number > 0" if positive else "a finite number"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (positive and value <= 0):
        raise ConfigError(f"hyperparameter {name!r} must be {allowed}, got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------------------- heads
# (the language-model heads spell out the full signature: EngineSpec.config_keys() reads it)


class LNLanguageModel(RecurrentLanguageModel):
    """A language model whose layers normalise with ``eps = ln_eps`` (a number > 0, default 1e-5)."""

    def __init__(self, *, vocab_size: int, embedding_dim: int = 128, hidden_size: int = 128, num_layers: int = 2,
                 dropout: float = 0.0, init_range: float = 0.1, ln_eps: float = LN_EPS):
        eps = check_number("ln_eps", ln_eps, positive=True)
        super().__init__(vocab_size=vocab_size, embedding_dim=embedding_dim, hidden_size=hidden_size,
                         num_layers=num_layers, dropout=dropout, init_range=init_range)
        self.ln_eps = eps
        for layer in self.layers:
            layer.eps = eps

    @property
    def config(self) -> dict:
        return {**super().config, "ln_eps": self.ln_eps}


class MILanguageModel(RecurrentLanguageModel):
    """A language model whose layers start alpha at ``alpha_init`` and beta1, beta2 at ``beta_init``.

    ``alpha = alpha_init + mi_alpha``, ``beta1 = beta_init + mi_beta1``, ``beta2 = beta_init + mi_beta2``
    (the ``mi_*`` offsets are drawn from U(-init_range, init_range) like every parameter). Defaults
    1.0 and 1.0, the initialisation of the public reimplementations; ``alpha_init=0, beta_init=1``
    starts from the additive cell.
    """

    def __init__(self, *, vocab_size: int, embedding_dim: int = 128, hidden_size: int = 128, num_layers: int = 2,
                 dropout: float = 0.0, init_range: float = 0.1, alpha_init: float = 1.0, beta_init: float = 1.0):
        alpha = check_number("alpha_init", alpha_init)
        beta = check_number("beta_init", beta_init)
        super().__init__(vocab_size=vocab_size, embedding_dim=embedding_dim, hidden_size=hidden_size,
                         num_layers=num_layers, dropout=dropout, init_range=init_range)
        self.alpha_init, self.beta_init = alpha, beta
        for layer in self.layers:
            layer.alpha_init, layer.beta_init = alpha, beta

    @property
    def config(self) -> dict:
        return {**super().config, "alpha_init": self.alpha_init, "beta_init": self.beta_init}


class MILayerMixin:
    """alpha, beta1, beta2 of a multiplicative-integration layer: ``rows`` values each, as offsets."""

    alpha_init: float = 1.0
    beta_init: float = 1.0

    def _make_mi_parameters(self, rows: int) -> None:
        self.mi_alpha = offset_parameter(rows)
        self.mi_beta1 = offset_parameter(rows)
        self.mi_beta2 = offset_parameter(rows)

    @property
    def alpha(self) -> Tensor:
        return self.alpha_init + self.mi_alpha

    @property
    def beta1(self) -> Tensor:
        return self.beta_init + self.mi_beta1

    @property
    def beta2(self) -> Tensor:
        return self.beta_init + self.mi_beta2

    def mi_preactivation(self, wx: Tensor, uh: Tensor, bias: Tensor, gain_tap, step: int,
                         rows: slice = slice(None)) -> Tensor:
        """``gain * uh + (beta2 * wx + bias)``, with ``gain = alpha * wx + beta1`` routed through ``gain_tap``.

        ``rows`` selects the block of alpha, beta1, beta2 that ``wx`` and ``uh`` belong to.
        """
        gain = gain_tap(self.alpha[rows] * wx + self.beta1[rows], step=step)
        return gain * uh + (self.beta2[rows] * wx + bias)
