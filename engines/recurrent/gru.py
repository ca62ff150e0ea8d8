"""Engine ``gru``: a stacked GRU language model (Cho et al. 2014), in PyTorch's formulation.

The gated recurrent unit was introduced in "Learning Phrase Representations using RNN
Encoder-Decoder for Statistical Machine Translation" (arXiv:1406.1078). The paper applies the reset
gate before the recurrent matrix, ``n_t = tanh(W x_t + U (r_t * h_{t-1}))``; this engine uses
PyTorch's (and cuDNN's) formulation, which applies it after: ``r_t * (W_hn h_{t-1} + b_hn)``, so
that it equals ``nn.GRU`` and recordings of ``nn.GRU`` models mean the same thing. The two differ only
in where ``r`` multiplies; both are GRUs. Dropout is placed as in Zaremba et al. (embedding output,
between layers, top output; never the recurrent state), a choice of lstmviz, not of the GRU paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmviz.hooks.taps import TapDecl

from ..spec import EngineSpec, Paper
from .base import GatedLayer, State
from .language_model import LANGUAGE_MODEL_TRAIN_DEFAULTS, RecurrentLanguageModel


class GRULayer(GatedLayer):
    r"""One GRU layer, with PyTorch's parameter layout (gate order r, z, n).

    .. math::
        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    The reset gate multiplies ``W_hn h_{t-1} + b_hn`` (PyTorch / cuDNN), not ``h_{t-1}`` before the
    product (Cho et al.'s paper). ``weight_ih`` [3H, input_size], ``weight_hh`` [3H, H], ``bias_ih``
    and ``bias_hh`` [3H] are laid out as in ``nn.GRU``. ``W_x x + b`` (with ``b_hr``, ``b_hz`` folded
    in) is computed for all steps in one GEMM.

    Taps (one call per step, ``[batch, H]``, ``step=t``): ``layer{l}/gates/{r,z,n}`` (post-activation)
    and ``layer{l}/h``. A hook that replaces a tap's value changes the rest of the recurrence.
    """

    gate_count = 3
    state_names = ("h",)
    taps = (
        TapDecl("gates/r", "reset gate after the sigmoid, r_t = sigmoid(W_ir x_t + W_hr h_{t-1} + b_r), in (0, 1)"),
        TapDecl("gates/z", "update gate after the sigmoid, z_t = sigmoid(W_iz x_t + W_hz h_{t-1} + b_z), in (0, 1); "
                           "the weight of the old state h_{t-1}"),
        TapDecl("gates/n", "candidate state after the tanh, n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn)), "
                           "in (-1, 1)"),
        TapDecl("h", "hidden state h_t = (1 - z_t) * n_t + z_t * h_{t-1}, in (-1, 1); the layer's output"),
    )

    def project_input(self, x: Tensor) -> Tensor:
        hidden = self.hidden_size
        # b_hr and b_hz add outside the gates' nonlinearity like b_ir, b_iz; b_hn must stay inside r_t * (...)
        folded = torch.cat([self.bias_hh[: 2 * hidden], self.bias_hh.new_zeros(hidden)])
        return F.linear(x, self.weight_ih, self.bias_ih + folded)

    def step(self, x_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        (h_prev,) = state
        hidden = self.hidden_size
        x_rz, x_n = x_t[:, : 2 * hidden], x_t[:, 2 * hidden :]
        w_rz, w_n = self.weight_hh[: 2 * hidden], self.weight_hh[2 * hidden :]
        pre_r, pre_z = torch.addmm(x_rz, h_prev, w_rz.t()).chunk(2, dim=1)
        r = self.r_tap(torch.sigmoid(pre_r), step=t)
        z = self.z_tap(torch.sigmoid(pre_z), step=t)
        n = self.n_tap(torch.tanh(x_n + r * torch.addmm(self.bias_hh[2 * hidden :], h_prev, w_n.t())), step=t)
        h = self.h_tap(torch.lerp(n, h_prev, z), step=t)  # (1 - z) * n + z * h_prev
        return h, (h,)


class GRULanguageModel(RecurrentLanguageModel):
    r"""Stacked GRU language model (Cho et al. 2014, arXiv:1406.1078; PyTorch's formulation).

    With D ordinary dropout (fresh mask per step) and ``h^0_t = E[x_t]`` the word embedding:

    .. math::
        r^l_t &= \sigma(W^l_{ir} D(h^{l-1}_t) + W^l_{hr} h^l_{t-1} + b^l_r) \\
        z^l_t &= \sigma(W^l_{iz} D(h^{l-1}_t) + W^l_{hz} h^l_{t-1} + b^l_z) \\
        n^l_t &= \tanh(W^l_{in} D(h^{l-1}_t) + b^l_{in} + r^l_t \odot (W^l_{hn} h^l_{t-1} + b^l_{hn})) \\
        h^l_t &= (1 - z^l_t) \odot n^l_t + z^l_t \odot h^l_{t-1} \\
        \mathrm{logits}_t &= W_{dec} D(h^L_t) + b_{dec}

    D is never applied to ``h^l_{t-1}``. State: ``(h,)``, ``[num_layers, batch, hidden_size]`` (a bare
    tensor is accepted as input). Each layer equals ``nn.GRU`` with the same weights (see
    :class:`GRULayer`).
    """

    layer_class = GRULayer


SPEC = EngineSpec(
    name="gru",
    description="Stacked GRU language model (Cho et al. 2014; PyTorch's reset-gate placement)",
    family="language-model",
    paper=Paper(
        title="Learning Phrase Representations using RNN Encoder-Decoder for Statistical Machine Translation",
        authors="Kyunghyun Cho, Bart van Merriënboer, Caglar Gulcehre, Dzmitry Bahdanau, Fethi Bougares, "
        "Holger Schwenk, Yoshua Bengio",
        arxiv="1406.1078",
        year=2014,
    ),
    build=GRULanguageModel,
    default_config={"embedding_dim": 128, "hidden_size": 128, "num_layers": 2, "init_range": 0.1},
    taps=GRULayer.tap_patterns(),
    default_dataset="parens",
    train_defaults=LANGUAGE_MODEL_TRAIN_DEFAULTS,
)
