"""Engine ``mi-lstm``: the multiplicative-integration LSTM of Wu et al. (2016).

Every gate and the candidate use the general MI block ``alpha * Wx * Uh + beta1 * Uh + beta2 * Wx + b``
in place of ``Wx + Uh + b``, with the usual stacked W, U (see ``mi_rnn``). With alpha = 0 and
beta1 = beta2 = 1 it is our ``lstm``, bit for bit (tests/engines/test_engine_mi_lstm.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmviz.hooks.taps import TapDecl

from ..spec import EngineSpec
from ._lnmi import MILanguageModel, MILayerMixin
from .base import GatedLayer, State
from .language_model import LANGUAGE_MODEL_TRAIN_DEFAULTS
from .mi_rnn import PAPER

_GATES = ("i", "f", "g", "o")


class MILSTMLayer(MILayerMixin, GatedLayer):
    r"""One multiplicative-integration LSTM layer (gate order i, f, g, o; parameters as ``nn.LSTM`` plus MI).

    .. math::
        \mathrm{gain}_t &= \alpha \odot W x_t + \beta_1 \qquad (4H) \\
        [i, f, g, o]_t &= \mathrm{gain}_t \odot U h_{t-1} + \beta_2 \odot W x_t + b \\
        c_t &= \sigma(f_t) \odot c_{t-1} + \sigma(i_t) \odot \tanh(g_t) \\
        h_t &= \sigma(o_t) \odot \tanh(c_t)

    (``gain * Uh + beta2 * Wx + b = alpha * Wx * Uh + beta1 * Uh + beta2 * Wx + b``). ``W = weight_ih``
    [4H, input_size], ``U = weight_hh`` [4H, H], ``b = bias_ih + bias_hh``; ``alpha = alpha_init +
    mi_alpha``, ``beta_k = beta_init + mi_beta_k`` [4H].

    Taps (per step, ``[batch, H]``): ``gain/{i,f,g,o}`` (effective recurrent gain of each gate),
    ``gates/{i,f,g,o}`` (after the nonlinearity), ``c``, ``h``.
    """

    gate_count = 4
    state_names = ("h", "c")
    taps = (
        *(TapDecl(f"gain/{k}", f"effective recurrent gain of {k}, alpha * W x_t + beta1 (rows of {k})",
                  signal=f"gain_{k}") for k in _GATES),
        TapDecl("gates/i", "input gate after the sigmoid, in (0, 1)"),
        TapDecl("gates/f", "forget gate after the sigmoid, in (0, 1)"),
        TapDecl("gates/g", "candidate cell value after the tanh, in (-1, 1)"),
        TapDecl("gates/o", "output gate after the sigmoid, in (0, 1)"),
        TapDecl("c", "cell state c_t = f_t * c_(t-1) + i_t * g_t (unbounded)"),
        TapDecl("h", "hidden state h_t = o_t * tanh(c_t), in (-1, 1); the layer's output"),
    )

    def __init__(self, input_size: int, hidden_size: int, *, layer: int):
        super().__init__(input_size, hidden_size, layer=layer)
        self._make_mi_parameters(4 * hidden_size)

    def project_input(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih)

    def step(self, x_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        h_prev, c_prev = state
        hidden = self.hidden_size
        uh = F.linear(h_prev, self.weight_hh)
        bias = self.bias_ih + self.bias_hh
        pre = []
        for k, name in enumerate(_GATES):
            rows = slice(k * hidden, (k + 1) * hidden)
            pre.append(self.mi_preactivation(x_t[:, rows], uh[:, rows], bias[rows], getattr(self, f"gain_{name}_tap"),
                                             t, rows))
        i = self.i_tap(torch.sigmoid(pre[0]), step=t)
        f = self.f_tap(torch.sigmoid(pre[1]), step=t)
        g = self.g_tap(torch.tanh(pre[2]), step=t)
        o = self.o_tap(torch.sigmoid(pre[3]), step=t)
        c = self.c_tap(f * c_prev + i * g, step=t)
        h = self.h_tap(o * torch.tanh(c), step=t)
        return h, (h, c)


class MILSTMLanguageModel(MILanguageModel):
    r"""Stacked multiplicative-integration LSTM language model (Wu et al. 2016), head and dropout as ``lstm``.

    .. math::
        [i, f, g, o]^l_t &= \alpha^l \odot W^l D(h^{l-1}_t) \odot U^l h^l_{t-1} + \beta^l_1 \odot U^l h^l_{t-1}
            + \beta^l_2 \odot W^l D(h^{l-1}_t) + b^l \\
        c^l_t &= \sigma(f^l_t) \odot c^l_{t-1} + \sigma(i^l_t) \odot \tanh(g^l_t), \quad
        h^l_t = \sigma(o^l_t) \odot \tanh(c^l_t)

    State ``(h, c)``. ``alpha_init``, ``beta_init`` (finite numbers, default 1.0 and 1.0).
    """

    layer_class = MILSTMLayer


SPEC = EngineSpec(
    name="mi-lstm",
    description="Multiplicative-integration LSTM language model (Wu et al. 2016)",
    family="language-model",
    paper=PAPER,
    build=MILSTMLanguageModel,
    default_config={"embedding_dim": 128, "hidden_size": 128, "num_layers": 2, "init_range": 0.1},
    taps=MILSTMLayer.tap_patterns(),
    default_dataset="parens",
    train_defaults=LANGUAGE_MODEL_TRAIN_DEFAULTS,
)
