"""Engine ``lp-lstm``: an LSTM language model with limited-precision weights (Ott et al. 2016).

"Recurrent Neural Networks With Limited Numerical Precision" (arXiv:1608.06902) trains RNNs whose
forward and backward passes use binarised, ternarised or pow2-ternarised weights, while the optimiser
updates a full-precision (shadow) copy; the rounding passes its gradient straight through. Their
finding: binarisation does not work for RNNs, ternarisation (deterministic or stochastic) and
pow2-ternarisation do. Activations stay in full precision; here biases, embedding and decoder do too.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lstmviz.hooks.taps import TapDecl

from ..spec import EngineSpec, Paper
from ._quant import LimitedPrecisionLanguageModel, ShadowWeightLayer, TernaryLayerMixin
from .base import State
from .language_model import LANGUAGE_MODEL_TRAIN_DEFAULTS

_GATES = ("i", "f", "g", "o")


def pre_activation_taps(gates) -> tuple[TapDecl, ...]:
    """``pre/<gate>`` (quantised weights: what the cell uses) and ``latent/<gate>`` (shadow weights)."""
    return tuple(
        TapDecl(f"pre/{g}", f"pre-activation of gate {g} with the quantised weights, W^q_x x_t + W^q_h h_{{t-1}} + b "
                            "(what the cell uses; post-quantisation)", signal=f"pre_{g}") for g in gates
    ) + tuple(
        TapDecl(f"latent/{g}", f"pre-activation of gate {g} with the full-precision shadow weights on the same "
                               "inputs, W_x x_t + W_h h_{t-1} + b (pre-quantisation; recorded only, not used)",
                signal=f"latent_{g}") for g in gates
    )


def quantized_lstm_step(layer, x_t: Tensor, h_prev: Tensor, c_prev: Tensor, t: int) -> tuple[Tensor, Tensor]:
    """One LSTM step of a shadow-weight layer: ``(h_t, c_t)``. ``x_t`` holds the input term with the
    quantised weights and, beside it, with the latent ones; the pre-activations go through the
    ``pre/*`` taps (what the cell uses) and, recorded only, the ``latent/*`` taps."""
    x_q, x_latent = x_t.chunk(2, dim=1)
    pre = torch.addmm(x_q, h_prev, layer.recurrent_weight().t()).chunk(4, dim=1)
    with torch.no_grad():
        latent = torch.addmm(x_latent, h_prev, layer.weight_hh.t()).chunk(4, dim=1)
    pre_i, pre_f, pre_g, pre_o = (getattr(layer, f"pre_{g}_tap")(a, step=t) for g, a in zip(_GATES, pre))
    for g, a in zip(_GATES, latent):
        getattr(layer, f"latent_{g}_tap")(a, step=t)
    i = layer.i_tap(torch.sigmoid(pre_i), step=t)
    f = layer.f_tap(torch.sigmoid(pre_f), step=t)
    g = layer.g_tap(torch.tanh(pre_g), step=t)
    o = layer.o_tap(torch.sigmoid(pre_o), step=t)
    c = layer.c_tap(f * c_prev + i * g, step=t)
    h = layer.h_tap(o * torch.tanh(c), step=t)
    return h, c


class LPLSTMLayer(TernaryLayerMixin, ShadowWeightLayer):
    r"""One LSTM layer whose weights are quantised in every forward (Ott et al.), PyTorch's gate order.

    With shadow weights ``W`` (updated by the optimiser, stored in checkpoints) and ``Q`` the
    configured quantiser (``W0 = init_range``, the bound of the initial shadow weights, rounded to float16;
    Ott et al. use the Glorot bound, which is also their initialisation bound):

    .. math::
        W^q &= Q(W):\ \text{binary } \pm W_0;\ \text{ternary } W_0 \operatorname{sign}(W) 1[|W| > W_0/2];
              \text{ stochastic ternary } W_0 \operatorname{sign}(W) \operatorname{Bernoulli}(|W|/W_0);
              \text{ pow2-ternary } \operatorname{clip}(\operatorname{round}(2W), \pm 1)/2 \\
        [a_i, a_f, a_g, a_o] &= W^q_x x_t + W^q_h h_{t-1} + b \\
        i_t = \sigma(a_i),\ f_t &= \sigma(a_f),\ g_t = \tanh(a_g),\ o_t = \sigma(a_o) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \tanh(c_t)

    Backward: ``dL/dW = dL/dW^q`` where ``|W|`` is inside the clip range (the largest level), 0 outside;
    the shadow weights are clipped to that range at the start of each training forward.

    Taps (``[batch, H]`` per step): ``pre/{i,f,g,o}`` (``a`` with ``W^q``), ``latent/{i,f,g,o}`` (the
    same with ``W``; their difference is the per-unit quantisation error), ``gates/{i,f,g,o}``, ``c``, ``h``.
    """

    gate_count = 4
    state_names = ("h", "c")
    taps = pre_activation_taps(_GATES) + (
        TapDecl("gates/i", "input gate after the sigmoid, i_t = sigmoid(a_i), in (0, 1)"),
        TapDecl("gates/f", "forget gate after the sigmoid, f_t = sigmoid(a_f), in (0, 1)"),
        TapDecl("gates/g", "candidate cell value after the tanh, g_t = tanh(a_g), in (-1, 1)"),
        TapDecl("gates/o", "output gate after the sigmoid, o_t = sigmoid(a_o), in (0, 1)"),
        TapDecl("c", "cell state c_t = f_t * c_{t-1} + i_t * g_t (unbounded)"),
        TapDecl("h", "hidden state h_t = o_t * tanh(c_t), in (-1, 1); the layer's output"),
    )

    def step(self, x_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        h, c = quantized_lstm_step(self, x_t, *state, t)
        return h, (h, c)


class LPLSTMLanguageModel(LimitedPrecisionLanguageModel):
    r"""Stacked LSTM language model with quantised recurrent-layer weights (Ott et al. 2016, arXiv:1608.06902).

    .. math::
        e_t &= D(E[x_t]),\quad [a_i, a_f, a_g, a_o]^l_t = Q(W^l_x) D(h^{l-1}_t) + Q(W^l_h) h^l_{t-1} + b^l \\
        c^l_t &= \sigma(a_f) \odot c^l_{t-1} + \sigma(a_i) \odot \tanh(a_g),\quad
        h^l_t = \sigma(a_o) \odot \tanh(c^l_t),\quad \mathrm{logits}_t = W_{dec} D(h^L_t) + b_{dec}

    ``quantization``: ``float`` (no quantisation, the baseline), ``binary``, ``stochastic-binary``,
    ``ternary``, ``stochastic-ternary``, ``pow2-ternary``. Stochastic modes draw once per training
    forward and use the deterministic quantiser in eval. Embedding, biases and decoder stay full precision.
    """

    layer_class = LPLSTMLayer
    engine_name = "lp-lstm"


PAPER = Paper(
    title="Recurrent Neural Networks With Limited Numerical Precision",
    authors="Joachim Ott, Zhouhan Lin, Ying Zhang, Shih-Chii Liu, Yoshua Bengio",
    arxiv="1608.06902",
    year=2016,
)

SPEC = EngineSpec(
    name="lp-lstm",
    description="LSTM language model with binary/ternary/pow2 weights and full-precision shadow weights (Ott et al. 2016)",
    family="language-model",
    paper=PAPER,
    build=LPLSTMLanguageModel,
    default_config={"embedding_dim": 128, "hidden_size": 128, "num_layers": 2, "init_range": 0.1,
                    "quantization": "ternary"},
    taps=LPLSTMLayer.tap_patterns(),
    default_dataset="parens",
    train_defaults=LANGUAGE_MODEL_TRAIN_DEFAULTS,
)
