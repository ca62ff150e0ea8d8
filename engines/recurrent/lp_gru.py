"""Engine ``lp-gru``: a GRU language model with limited-precision weights (Ott et al. 2016).

The GRU of :mod:`.gru` (PyTorch's reset-gate placement) whose input and recurrent weights are
binarised, ternarised or pow2-ternarised in every forward, with full-precision shadow weights updated
by the optimiser (see :mod:`._quant`). The paper's own GRU experiments are on PTB; the finding is that
binarisation fails for RNNs while ternarisation works.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lstmviz.hooks.taps import TapDecl

from ..spec import EngineSpec
from ._quant import LimitedPrecisionLanguageModel, ShadowWeightLayer, TernaryLayerMixin
from .base import State
from .language_model import LANGUAGE_MODEL_TRAIN_DEFAULTS
from .lp_lstm import PAPER, pre_activation_taps

_GATES = ("r", "z", "n")


class LPGRULayer(TernaryLayerMixin, ShadowWeightLayer):
    r"""One GRU layer whose weights are quantised in every forward (Ott et al.), gate order r, z, n.

    With ``W^q = Q(W)`` as in :class:`~.lp_lstm.LPLSTMLayer`:

    .. math::
        a_r &= W^q_{ir} x_t + W^q_{hr} h_{t-1} + b_r, \quad a_z = W^q_{iz} x_t + W^q_{hz} h_{t-1} + b_z \\
        r_t &= \sigma(a_r),\quad z_t = \sigma(a_z) \\
        a_n &= W^q_{in} x_t + b_{in} + r_t \odot (W^q_{hn} h_{t-1} + b_{hn}),\quad n_t = \tanh(a_n) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    Taps (``[batch, H]`` per step): ``pre/{r,z,n}`` (``a`` with ``W^q``), ``latent/{r,z,n}`` (the same
    with the shadow ``W``, and the cell's own ``r_t`` in ``a_n``), ``gates/{r,z,n}``, ``h``.
    """

    gate_count = 3
    state_names = ("h",)
    taps = pre_activation_taps(_GATES) + (
        TapDecl("gates/r", "reset gate after the sigmoid, r_t = sigmoid(a_r), in (0, 1)"),
        TapDecl("gates/z", "update gate after the sigmoid, z_t = sigmoid(a_z), in (0, 1); the weight of h_{t-1}"),
        TapDecl("gates/n", "candidate state after the tanh, n_t = tanh(a_n), in (-1, 1)"),
        TapDecl("h", "hidden state h_t = (1 - z_t) * n_t + z_t * h_{t-1}, in (-1, 1); the layer's output"),
    )

    def input_bias(self) -> Tensor:
        hidden = self.hidden_size
        # b_hr and b_hz add outside the nonlinearity like b_ir, b_iz; b_hn stays inside r_t * (...)
        return self.bias_ih + torch.cat([self.bias_hh[: 2 * hidden], self.bias_hh.new_zeros(hidden)])

    def _pre(self, x_t: Tensor, h_prev: Tensor, w_hh: Tensor):
        hidden = self.hidden_size
        x_rz, x_n = x_t[:, : 2 * hidden], x_t[:, 2 * hidden :]
        pre_r, pre_z = torch.addmm(x_rz, h_prev, w_hh[: 2 * hidden].t()).chunk(2, dim=1)
        recurrent_n = torch.addmm(self.bias_hh[2 * hidden :], h_prev, w_hh[2 * hidden :].t())
        return pre_r, pre_z, x_n, recurrent_n

    def step(self, x_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        (h_prev,) = state
        x_q, x_latent = x_t.chunk(2, dim=1)
        pre_r, pre_z, x_n, rec_n = self._pre(x_q, h_prev, self.recurrent_weight())
        pre_r = self.pre_r_tap(pre_r, step=t)
        pre_z = self.pre_z_tap(pre_z, step=t)
        with torch.no_grad():
            lat_r, lat_z, lat_x_n, lat_rec_n = self._pre(x_latent, h_prev, self.weight_hh)
            self.latent_r_tap(lat_r, step=t)
            self.latent_z_tap(lat_z, step=t)
        r = self.r_tap(torch.sigmoid(pre_r), step=t)
        z = self.z_tap(torch.sigmoid(pre_z), step=t)
        pre_n = self.pre_n_tap(x_n + r * rec_n, step=t)
        with torch.no_grad():
            self.latent_n_tap(lat_x_n + r * lat_rec_n, step=t)
        n = self.n_tap(torch.tanh(pre_n), step=t)
        h = self.h_tap(torch.lerp(n, h_prev, z), step=t)  # (1 - z) * n + z * h_prev
        return h, (h,)


class LPGRULanguageModel(LimitedPrecisionLanguageModel):
    r"""Stacked GRU language model with quantised recurrent-layer weights (Ott et al. 2016, arXiv:1608.06902).

    .. math::
        r^l_t &= \sigma(Q(W^l_{ir}) D(h^{l-1}_t) + Q(W^l_{hr}) h^l_{t-1} + b^l_r),\quad
        z^l_t = \sigma(Q(W^l_{iz}) D(h^{l-1}_t) + Q(W^l_{hz}) h^l_{t-1} + b^l_z) \\
        n^l_t &= \tanh(Q(W^l_{in}) D(h^{l-1}_t) + b^l_{in} + r^l_t \odot (Q(W^l_{hn}) h^l_{t-1} + b^l_{hn})),\quad
        h^l_t = (1 - z^l_t) \odot n^l_t + z^l_t \odot h^l_{t-1}

    ``quantization`` as for ``lp-lstm``: ``float``, ``binary``, ``stochastic-binary``, ``ternary``,
    ``stochastic-ternary``, ``pow2-ternary``.
    """

    layer_class = LPGRULayer
    engine_name = "lp-gru"


SPEC = EngineSpec(
    name="lp-gru",
    description="GRU language model with binary/ternary/pow2 weights and full-precision shadow weights (Ott et al. 2016)",
    family="language-model",
    paper=PAPER,
    build=LPGRULanguageModel,
    default_config={"embedding_dim": 128, "hidden_size": 128, "num_layers": 2, "init_range": 0.1,
                    "quantization": "ternary"},
    taps=LPGRULayer.tap_patterns(),
    default_dataset="parens",
    train_defaults=LANGUAGE_MODEL_TRAIN_DEFAULTS,
)
