"""Engine ``mi-gru``: the multiplicative-integration GRU of Wu et al. (2016), on our ``gru``'s formulation.

The gates and the candidate use the general MI block ``alpha * Wx * Uh + beta1 * Uh + beta2 * Wx + b``.
For the candidate, ``Uh`` is the reset recurrent term of our ``gru`` (PyTorch's placement of r, after
the matrix): ``r_t * (U_n h_{t-1} + b_hn)``; the paper's GRU applies r before U. With alpha = 0 and
beta1 = beta2 = 1 it is our ``gru``, bit for bit (tests/engines/test_engine_mi_gru.py).
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


class MIGRULayer(MILayerMixin, GatedLayer):
    r"""One multiplicative-integration GRU layer (gate order r, z, n; parameters as ``nn.GRU`` plus MI).

    .. math::
        [r, z]_t &= \sigma(\mathrm{gain}_{rz} \odot U_{rz} h_{t-1} + \beta_{2,rz} \odot W_{rz} x_t + b_{rz}),
            \quad \mathrm{gain} = \alpha \odot W x_t + \beta_1 \\
        n_t &= \tanh(\mathrm{gain}_n \odot m_t + \beta_{2,n} \odot W_n x_t + b_{in}),
            \quad m_t = r_t \odot (U_n h_{t-1} + b_{hn}) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    (``gain * Uh + beta2 * Wx + b = alpha * Wx * Uh + beta1 * Uh + beta2 * Wx + b``, with ``Uh = m_t`` for
    the candidate). ``W = weight_ih`` [3H, input_size], ``U = weight_hh`` [3H, H], ``b_rz = b_ir + b_hr``
    etc. as in ``gru``; ``alpha = alpha_init + mi_alpha``, ``beta_k = beta_init + mi_beta_k`` [3H].

    Taps (per step, ``[batch, H]``): ``gain/{r,z,n}``, ``gates/{r,z,n}``, ``h``.
    """

    gate_count = 3
    state_names = ("h",)
    taps = (
        *(TapDecl(f"gain/{k}", f"effective recurrent gain of {k}, alpha * W x_t + beta1 (rows of {k})",
                  signal=f"gain_{k}") for k in "rzn"),
        TapDecl("gates/r", "reset gate after the sigmoid, in (0, 1)"),
        TapDecl("gates/z", "update gate after the sigmoid, in (0, 1); the weight of the old state h_(t-1)"),
        TapDecl("gates/n", "candidate state after the tanh, in (-1, 1)"),
        TapDecl("h", "hidden state h_t = (1 - z_t) * n_t + z_t * h_(t-1), in (-1, 1); the layer's output"),
    )

    def __init__(self, input_size: int, hidden_size: int, *, layer: int):
        super().__init__(input_size, hidden_size, layer=layer)
        self._make_mi_parameters(3 * hidden_size)

    def project_input(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih)

    def step(self, x_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        (h_prev,) = state
        hidden = self.hidden_size
        r_rows, z_rows, n_rows = (slice(k * hidden, (k + 1) * hidden) for k in range(3))
        rz = slice(0, 2 * hidden)
        uh_rz = F.linear(h_prev, self.weight_hh[rz])
        b_rz = self.bias_ih[rz] + self.bias_hh[rz]
        pre_r = self.mi_preactivation(x_t[:, r_rows], uh_rz[:, r_rows], b_rz[r_rows], self.gain_r_tap, t, r_rows)
        pre_z = self.mi_preactivation(x_t[:, z_rows], uh_rz[:, z_rows], b_rz[z_rows], self.gain_z_tap, t, z_rows)
        r = self.r_tap(torch.sigmoid(pre_r), step=t)
        z = self.z_tap(torch.sigmoid(pre_z), step=t)
        m = r * F.linear(h_prev, self.weight_hh[n_rows], self.bias_hh[n_rows])
        n = self.n_tap(torch.tanh(self.mi_preactivation(x_t[:, n_rows], m, self.bias_ih[n_rows], self.gain_n_tap,
                                                        t, n_rows)), step=t)
        h = self.h_tap(torch.lerp(n, h_prev, z), step=t)  # (1 - z) * n + z * h_prev
        return h, (h,)


class MIGRULanguageModel(MILanguageModel):
    r"""Stacked multiplicative-integration GRU language model (Wu et al. 2016), head and dropout as ``gru``.

    .. math::
        [r, z]^l_t &= \sigma(\alpha \odot W x \odot U h_{t-1} + \beta_1 \odot U h_{t-1} + \beta_2 \odot W x + b) \\
        n^l_t &= \tanh(\alpha \odot W_n x \odot m_t + \beta_1 \odot m_t + \beta_2 \odot W_n x + b_{in}),
            \quad m_t = r_t \odot (U_n h_{t-1} + b_{hn}) \\
        h^l_t &= (1 - z^l_t) \odot n^l_t + z^l_t \odot h^l_{t-1}

    with ``x = D(h^{l-1}_t)``. State ``(h,)``. ``alpha_init``, ``beta_init`` (finite numbers, default 1.0).
    """

    layer_class = MIGRULayer


SPEC = EngineSpec(
    name="mi-gru",
    description="Multiplicative-integration GRU language model (Wu et al. 2016; PyTorch's reset-gate placement)",
    family="language-model",
    paper=PAPER,
    build=MIGRULanguageModel,
    default_config={"embedding_dim": 128, "hidden_size": 128, "num_layers": 2, "init_range": 0.1},
    taps=MIGRULayer.tap_patterns(),
    default_dataset="parens",
    train_defaults=LANGUAGE_MODEL_TRAIN_DEFAULTS,
)
