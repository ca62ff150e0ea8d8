"""Engine ``ln-lstm``: the layer-normalised LSTM of Ba, Kiros & Hinton (2016), "Layer Normalization".

Layer normalisation normalises the summed inputs of a layer over its units, separately for every
example and time step, so the statistics need no batch and training equals inference. In the LSTM
the input term ``W_x x_t`` and the recurrent term ``W_h h_{t-1}`` are normalised separately (each over
all 4H gate pre-activations jointly, as in Kiros's reference code ``lnlstm_layer``), and the cell is
normalised before the output nonlinearity. Consequence tested in tests/engines/test_engine_ln_lstm.py:
the outputs do not change when ``W_x`` is scaled or re-centred (a vector added to all its rows).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmviz.hooks.taps import TapDecl

from ..spec import EngineSpec, Paper
from ._lnmi import LN_EPS, LNLanguageModel, layer_norm, offset_parameter
from .base import GatedLayer, State
from .language_model import LANGUAGE_MODEL_TRAIN_DEFAULTS

PAPER = Paper(title="Layer Normalization", authors="Jimmy Lei Ba, Jamie Ryan Kiros, Geoffrey E. Hinton",
              arxiv="1607.06450", year=2016)

_GATES = ("i", "f", "g", "o")


class LNLSTMLayer(GatedLayer):
    r"""One layer-normalised LSTM layer (gate order i, f, g, o; parameters as ``nn.LSTM`` plus LN gains).

    .. math::
        a^x_t &= \mathrm{LN}(W_x x_t;\ \gamma_x) \qquad a^h_t = \mathrm{LN}(W_h h_{t-1};\ \gamma_h)
            \qquad (\text{each over all } 4H) \\
        [i, f, g, o]_t &= a^x_t + a^h_t + b \\
        c_t &= \sigma(f_t) \odot c_{t-1} + \sigma(i_t) \odot \tanh(g_t) \\
        h_t &= \sigma(o_t) \odot \tanh(\mathrm{LN}(c_t;\ \gamma_c, \beta_c))

    with ``LN(z; g, s) = g * (z - mean(z)) / sqrt(var(z) + eps) + s`` over the units of one example
    and step. The paper's shifts of the two pre-activation sites add to ``b`` and are folded into it
    (``b = bias_ih + bias_hh``). Gains are stored as offsets from the paper's initial 1:
    ``gamma_x = 1 + ln_gain_x`` [4H], ``gamma_h = 1 + ln_gain_h`` [4H], ``gamma_c = 1 + ln_gain_c`` [H];
    ``beta_c = ln_shift_c`` [H]. ``a^x`` is computed for all steps at once (:meth:`project_input`).

    Taps (per step, ``[batch, H]``): ``ln_x/{i,f,g,o}`` and ``ln_h/{i,f,g,o}`` (the normalised input and
    recurrent terms of each gate, gain applied, before the bias), ``gates/{i,f,g,o}`` (after the
    nonlinearity), ``c``, ``ln_c`` (the normalised cell), ``h``.
    """

    gate_count = 4
    state_names = ("h", "c")
    taps = (
        *(TapDecl(f"ln_x/{k}", f"normalised input term of gate {k}, LN(W_x x_t) rows of {k} (gain applied, no bias)",
                  signal=f"x_{k}") for k in _GATES),
        *(TapDecl(f"ln_h/{k}", f"normalised recurrent term of gate {k}, LN(W_h h_(t-1)) rows of {k} "
                  "(gain applied, no bias)", signal=f"h_{k}") for k in _GATES),
        TapDecl("gates/i", "input gate i_t = sigmoid(ln_x/i + ln_h/i + b_i), in (0, 1)"),
        TapDecl("gates/f", "forget gate f_t = sigmoid(ln_x/f + ln_h/f + b_f), in (0, 1)"),
        TapDecl("gates/g", "candidate g_t = tanh(ln_x/g + ln_h/g + b_g), in (-1, 1)"),
        TapDecl("gates/o", "output gate o_t = sigmoid(ln_x/o + ln_h/o + b_o), in (0, 1)"),
        TapDecl("c", "cell state c_t = f_t * c_(t-1) + i_t * g_t (unbounded, not normalised)"),
        TapDecl("ln_c", "normalised cell LN(c_t; gamma_c, beta_c), the input of the output tanh"),
        TapDecl("h", "hidden state h_t = o_t * tanh(LN(c_t)), in (-1, 1); the layer's output"),
    )

    eps: float = LN_EPS

    def __init__(self, input_size: int, hidden_size: int, *, layer: int):
        super().__init__(input_size, hidden_size, layer=layer)
        self.ln_gain_x = offset_parameter(4 * hidden_size)
        self.ln_gain_h = offset_parameter(4 * hidden_size)
        self.ln_gain_c = offset_parameter(hidden_size)
        self.ln_shift_c = offset_parameter(hidden_size)

    def project_input(self, x: Tensor) -> Tensor:
        return layer_norm(F.linear(x, self.weight_ih), 1 + self.ln_gain_x, self.eps)

    def step(self, x_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        h_prev, c_prev = state
        a_h = layer_norm(F.linear(h_prev, self.weight_hh), 1 + self.ln_gain_h, self.eps)
        bias = (self.bias_ih + self.bias_hh).chunk(4)
        pre = []
        for k, (ax, ah, b) in enumerate(zip(x_t.chunk(4, dim=1), a_h.chunk(4, dim=1), bias)):
            name = _GATES[k]
            pre.append(getattr(self, f"x_{name}_tap")(ax, step=t) + getattr(self, f"h_{name}_tap")(ah, step=t) + b)
        i = self.i_tap(torch.sigmoid(pre[0]), step=t)
        f = self.f_tap(torch.sigmoid(pre[1]), step=t)
        g = self.g_tap(torch.tanh(pre[2]), step=t)
        o = self.o_tap(torch.sigmoid(pre[3]), step=t)
        c = self.c_tap(f * c_prev + i * g, step=t)
        c_norm = self.ln_c_tap(layer_norm(c, 1 + self.ln_gain_c, self.eps, self.ln_shift_c), step=t)
        h = self.h_tap(o * torch.tanh(c_norm), step=t)
        return h, (h, c)


class LNLSTMLanguageModel(LNLanguageModel):
    r"""Stacked layer-normalised LSTM language model (Ba et al. 2016), head and dropout as ``lstm``.

    .. math::
        [i, f, g, o]^l_t &= \mathrm{LN}(W^l_x D(h^{l-1}_t)) + \mathrm{LN}(W^l_h h^l_{t-1}) + b^l \\
        c^l_t &= \sigma(f^l_t) \odot c^l_{t-1} + \sigma(i^l_t) \odot \tanh(g^l_t) \\
        h^l_t &= \sigma(o^l_t) \odot \tanh(\mathrm{LN}(c^l_t)) \\
        \mathrm{logits}_t &= W_{dec} D(h^L_t) + b_{dec}

    State ``(h, c)``. ``ln_eps`` (a number > 0, default 1e-5) is the eps of every LN site.
    """

    layer_class = LNLSTMLayer


SPEC = EngineSpec(
    name="ln-lstm",
    description="Layer-normalised LSTM language model: LN of the input and recurrent terms and of c (Ba et al. 2016)",
    family="language-model",
    paper=PAPER,
    build=LNLSTMLanguageModel,
    default_config={"embedding_dim": 128, "hidden_size": 128, "num_layers": 2, "init_range": 0.1},
    taps=LNLSTMLayer.tap_patterns(),
    default_dataset="parens",
    train_defaults=LANGUAGE_MODEL_TRAIN_DEFAULTS,
)
