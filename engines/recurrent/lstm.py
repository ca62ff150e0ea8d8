"""Engine ``lstm``: the LSTM language model of Zaremba, Sutskever & Vinyals (2014).

"Recurrent Neural Network Regularization" (arXiv:1409.2329) regularises a stacked LSTM with dropout
on the non-recurrent connections only: the embedding output, the inputs between stacked layers and
the top layer's output before the decoder. The recurrent connections ``h_{t-1}`` and ``c_{t-1}`` are
never dropped, so the memory is not erased by noise at every step. The mask is ordinary dropout,
drawn afresh at every time step (not the tied "variational" mask of Gal & Ghahramani).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmviz.hooks.taps import TapDecl

from ..spec import EngineSpec, Paper
from .base import GatedLayer, State
from .language_model import LANGUAGE_MODEL_TRAIN_DEFAULTS, RecurrentLanguageModel


class LSTMLayer(GatedLayer):
    r"""One LSTM layer, with PyTorch's parameter layout (gate order i, f, g, o).

    .. math::
        i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
        f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
        g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t &= o_t \odot \tanh(c_t)

    ``weight_ih`` [4H, input_size], ``weight_hh`` [4H, H], ``bias_ih`` and ``bias_hh`` [4H] are laid
    out as in ``nn.LSTM`` (the two biases sum to Zaremba's single bias), so weights copy over 1:1.
    ``W_x x + b`` is computed for all steps in one GEMM (:meth:`project_input`).

    Taps (one call per step, ``[batch, H]``, ``step=t``): ``layer{l}/gates/{i,f,g,o}`` (post-activation),
    ``layer{l}/c``, ``layer{l}/h``. A hook that replaces a tap's value changes the rest of the recurrence.
    """

    gate_count = 4
    state_names = ("h", "c")
    taps = (
        TapDecl("gates/i", "input gate after the sigmoid, i_t = sigmoid(W_ii x_t + W_hi h_{t-1} + b_i), in (0, 1)"),
        TapDecl("gates/f", "forget gate after the sigmoid, f_t = sigmoid(W_if x_t + W_hf h_{t-1} + b_f), in (0, 1)"),
        TapDecl("gates/g", "candidate cell value after the tanh, g_t = tanh(W_ig x_t + W_hg h_{t-1} + b_g), in (-1, 1)"),
        TapDecl("gates/o", "output gate after the sigmoid, o_t = sigmoid(W_io x_t + W_ho h_{t-1} + b_o), in (0, 1)"),
        TapDecl("c", "cell state c_t = f_t * c_{t-1} + i_t * g_t (unbounded)"),
        TapDecl("h", "hidden state h_t = o_t * tanh(c_t), in (-1, 1); the layer's output"),
    )

    def project_input(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih + self.bias_hh)

    def step(self, x_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        h_prev, c_prev = state
        pre_i, pre_f, pre_g, pre_o = torch.addmm(x_t, h_prev, self.weight_hh.t()).chunk(4, dim=1)
        i = self.i_tap(torch.sigmoid(pre_i), step=t)
        f = self.f_tap(torch.sigmoid(pre_f), step=t)
        g = self.g_tap(torch.tanh(pre_g), step=t)
        o = self.o_tap(torch.sigmoid(pre_o), step=t)
        c = self.c_tap(f * c_prev + i * g, step=t)
        h = self.h_tap(o * torch.tanh(c), step=t)
        return h, (h, c)


class LSTMLanguageModel(RecurrentLanguageModel):
    r"""Zaremba et al.'s stacked LSTM language model (arXiv:1409.2329).

    With D ordinary dropout (fresh mask per step) and ``h^0_t = E[x_t]`` the word embedding:

    .. math::
        [i, f, g, o]^l_t &= W^l_x D(h^{l-1}_t) + W^l_h h^l_{t-1} + b^l \\
        c^l_t &= \sigma(f^l_t) \odot c^l_{t-1} + \sigma(i^l_t) \odot \tanh(g^l_t) \\
        h^l_t &= \sigma(o^l_t) \odot \tanh(c^l_t) \\
        \mathrm{logits}_t &= W_{dec} D(h^L_t) + b_{dec}

    D acts on the embedding output, between layers and on the top output; never on ``h^l_{t-1}`` or
    ``c^l_{t-1}``. State: ``(h, c)``, each ``[num_layers, batch, hidden_size]``. Every parameter is
    initialised from U(-init_range, init_range) (the paper: 0.1 small, 0.05 medium, 0.04 large).
    Each layer equals ``nn.LSTM`` with the same weights (see :class:`LSTMLayer`).
    """

    layer_class = LSTMLayer


SPEC = EngineSpec(
    name="lstm",
    description="Stacked LSTM language model with dropout on non-recurrent connections (Zaremba et al. 2014)",
    family="language-model",
    paper=Paper(
        title="Recurrent Neural Network Regularization",
        authors="Wojciech Zaremba, Ilya Sutskever, Oriol Vinyals",
        arxiv="1409.2329",
        year=2014,
    ),
    build=LSTMLanguageModel,
    default_config={"embedding_dim": 128, "hidden_size": 128, "num_layers": 2, "init_range": 0.1},
    taps=LSTMLayer.tap_patterns(),
    default_dataset="parens",
    train_defaults=LANGUAGE_MODEL_TRAIN_DEFAULTS,
)
