"""Engine ``mi-rnn``: the multiplicative-integration tanh RNN of Wu, Zhang, Zhang, Bengio & Salakhutdinov (2016).

"On Multiplicative Integration with Recurrent Neural Networks" (arXiv:1606.06630) replaces the sum
``W x_t + U h_{t-1} + b`` inside the nonlinearity by the general MI block
``alpha * Wx * Uh + beta1 * Uh + beta2 * Wx + b``: the current input rescales the recurrent term unit by
unit (``d pre / d h_{t-1} = diag(alpha * W x_t + beta1) U``, the "gating effect"). With alpha = 0 and
beta1 = beta2 = 1 it is the additive tanh RNN, exactly (tests/engines/test_engine_mi_rnn.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmviz.hooks.taps import TapDecl

from ..spec import EngineSpec, Paper
from ._lnmi import MILanguageModel, MILayerMixin
from .base import GatedLayer, State
from .language_model import LANGUAGE_MODEL_TRAIN_DEFAULTS

PAPER = Paper(
    title="On Multiplicative Integration with Recurrent Neural Networks",
    authors="Yuhuai Wu, Saizheng Zhang, Ying Zhang, Yoshua Bengio, Ruslan Salakhutdinov",
    arxiv="1606.06630",
    year=2016,
)


class MIRNNLayer(MILayerMixin, GatedLayer):
    r"""One multiplicative-integration tanh RNN layer (parameters as ``nn.RNN`` plus alpha, beta1, beta2).

    .. math::
        \mathrm{gain}_t &= \alpha \odot W x_t + \beta_1 \\
        h_t &= \tanh(\alpha \odot W x_t \odot U h_{t-1} + \beta_1 \odot U h_{t-1} + \beta_2 \odot W x_t + b)
             = \tanh(\mathrm{gain}_t \odot U h_{t-1} + \beta_2 \odot W x_t + b)

    ``W = weight_ih`` [H, input_size], ``U = weight_hh`` [H, H], ``b = bias_ih + bias_hh``;
    ``alpha = alpha_init + mi_alpha``, ``beta_k = beta_init + mi_beta_k`` [H]. ``W x`` is computed for
    all steps at once.

    Taps (per step, ``[batch, H]``): ``wx`` (``W x_t``), ``uh`` (``U h_{t-1}``), ``gain`` (the
    effective recurrent gain ``alpha * W x_t + beta1``), ``h``.
    """

    gate_count = 1
    state_names = ("h",)
    taps = (
        TapDecl("wx", "input term W x_t (no bias)"),
        TapDecl("uh", "recurrent term U h_(t-1) (no bias)"),
        TapDecl("gain", "effective recurrent gain alpha * W x_t + beta1: how much the input scales U h_(t-1)"),
        TapDecl("h", "hidden state h_t = tanh(gain * U h_(t-1) + beta2 * W x_t + b), in (-1, 1)"),
    )

    def __init__(self, input_size: int, hidden_size: int, *, layer: int):
        super().__init__(input_size, hidden_size, layer=layer)
        self._make_mi_parameters(hidden_size)

    def project_input(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih)

    def step(self, x_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        (h_prev,) = state
        wx = self.wx_tap(x_t, step=t)
        uh = self.uh_tap(F.linear(h_prev, self.weight_hh), step=t)
        pre = self.mi_preactivation(wx, uh, self.bias_ih + self.bias_hh, self.gain_tap, t)
        h = self.h_tap(torch.tanh(pre), step=t)
        return h, (h,)


class MIRNNLanguageModel(MILanguageModel):
    r"""Stacked multiplicative-integration tanh RNN language model (Wu et al. 2016), head and dropout as ``lstm``.

    .. math::
        h^l_t &= \tanh(\alpha^l \odot W^l D(h^{l-1}_t) \odot U^l h^l_{t-1} + \beta^l_1 \odot U^l h^l_{t-1}
            + \beta^l_2 \odot W^l D(h^{l-1}_t) + b^l) \\
        \mathrm{logits}_t &= W_{dec} D(h^L_t) + b_{dec}

    State ``(h,)``. ``alpha_init``, ``beta_init`` (finite numbers, default 1.0 and 1.0): the values
    alpha and beta1, beta2 start from.
    """

    layer_class = MIRNNLayer


SPEC = EngineSpec(
    name="mi-rnn",
    description="Multiplicative-integration tanh RNN language model (Wu et al. 2016)",
    family="language-model",
    paper=PAPER,
    build=MIRNNLanguageModel,
    default_config={"embedding_dim": 128, "hidden_size": 128, "num_layers": 2, "init_range": 0.1},
    taps=MIRNNLayer.tap_patterns(),
    default_dataset="parens",
    train_defaults=LANGUAGE_MODEL_TRAIN_DEFAULTS,
)
