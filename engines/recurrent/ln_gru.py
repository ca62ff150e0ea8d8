"""Engine ``ln-gru``: the layer-normalised GRU of Ba, Kiros & Hinton (2016), "Layer Normalization".

As in Kiros's reference code (``lngru_layer``), four sites are normalised separately, per example and
step: the input terms of the two gates (2H units) and of the candidate (H), and the recurrent terms
of the two gates (2H) and of the candidate (H). The cell is otherwise our ``gru`` (PyTorch's
formulation: the reset gate multiplies the candidate's recurrent term after the matrix, and z weights
the old state). Consequence tested in tests/engines/test_engine_ln_gru.py: the outputs do not change
when ``W_x`` is scaled or re-centred.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmviz.hooks.taps import TapDecl

from ..spec import EngineSpec
from ._lnmi import LN_EPS, LNLanguageModel, layer_norm, offset_parameter
from .base import GatedLayer, State
from .language_model import LANGUAGE_MODEL_TRAIN_DEFAULTS
from .ln_lstm import PAPER


class LNGRULayer(GatedLayer):
    r"""One layer-normalised GRU layer (gate order r, z, n; parameters as ``nn.GRU`` plus LN gains).

    .. math::
        [r, z]_t &= \sigma(\mathrm{LN}(W_{x,rz} x_t;\ \gamma_{x,rz}) + \mathrm{LN}(W_{h,rz} h_{t-1};\ \gamma_{h,rz})
            + b_{rz}) \\
        n_t &= \tanh(\mathrm{LN}(W_{x,n} x_t;\ \gamma_{x,n}) + b_{in}
            + r_t \odot (\mathrm{LN}(W_{h,n} h_{t-1};\ \gamma_{h,n}) + b_{hn})) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    ``LN(z; g) = g * (z - mean(z)) / sqrt(var(z) + eps)`` over the units of one site (2H for the gates,
    H for the candidate), per example and step; the paper's LN shifts are folded into the biases
    (``b_rz = b_ir + b_hr``, ``b_in``, ``b_hn`` as in ``gru``). Gains are offsets from the initial 1:
    ``gamma_x = 1 + ln_gain_x`` [3H], ``gamma_h = 1 + ln_gain_h`` [3H].

    Taps (per step, ``[batch, H]``): ``ln_x/{r,z,n}``, ``ln_h/{r,z,n}`` (normalised input and recurrent
    terms, gain applied, before biases and r), ``gates/{r,z,n}``, ``h``.
    """

    gate_count = 3
    state_names = ("h",)
    taps = (
        *(TapDecl(f"ln_x/{k}", f"normalised input term of {k}, LN(W_x x_t) rows of {k} (gain applied, no bias)",
                  signal=f"x_{k}") for k in "rzn"),
        *(TapDecl(f"ln_h/{k}", f"normalised recurrent term of {k}, LN(W_h h_(t-1)) rows of {k} (gain applied, "
                  "no bias)", signal=f"h_{k}") for k in "rzn"),
        TapDecl("gates/r", "reset gate r_t = sigmoid(ln_x/r + ln_h/r + b_r), in (0, 1)"),
        TapDecl("gates/z", "update gate z_t = sigmoid(ln_x/z + ln_h/z + b_z), in (0, 1); the weight of h_(t-1)"),
        TapDecl("gates/n", "candidate n_t = tanh(ln_x/n + b_in + r_t * (ln_h/n + b_hn)), in (-1, 1)"),
        TapDecl("h", "hidden state h_t = (1 - z_t) * n_t + z_t * h_(t-1), in (-1, 1); the layer's output"),
    )

    eps: float = LN_EPS

    def __init__(self, input_size: int, hidden_size: int, *, layer: int):
        super().__init__(input_size, hidden_size, layer=layer)
        self.ln_gain_x = offset_parameter(3 * hidden_size)
        self.ln_gain_h = offset_parameter(3 * hidden_size)

    def _normalise(self, z: Tensor, offsets: Tensor) -> Tensor:
        """LN of the gates' 2H units and of the candidate's H units separately."""
        split = 2 * self.hidden_size
        gain = 1 + offsets
        return torch.cat([layer_norm(z[..., :split], gain[:split], self.eps),
                          layer_norm(z[..., split:], gain[split:], self.eps)], dim=-1)

    def project_input(self, x: Tensor) -> Tensor:
        return self._normalise(F.linear(x, self.weight_ih), self.ln_gain_x)

    def step(self, x_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        (h_prev,) = state
        a_h = self._normalise(F.linear(h_prev, self.weight_hh), self.ln_gain_h)
        xr, xz, xn = x_t.chunk(3, dim=1)
        hr, hz, hn = a_h.chunk(3, dim=1)
        b_r, b_z, b_in = self.bias_ih.chunk(3)
        c_r, c_z, b_hn = self.bias_hh.chunk(3)
        xr, xz, xn = self.x_r_tap(xr, step=t), self.x_z_tap(xz, step=t), self.x_n_tap(xn, step=t)
        hr, hz, hn = self.h_r_tap(hr, step=t), self.h_z_tap(hz, step=t), self.h_n_tap(hn, step=t)
        r = self.r_tap(torch.sigmoid(xr + hr + (b_r + c_r)), step=t)
        z = self.z_tap(torch.sigmoid(xz + hz + (b_z + c_z)), step=t)
        n = self.n_tap(torch.tanh(xn + b_in + r * (hn + b_hn)), step=t)
        h = self.h_tap(torch.lerp(n, h_prev, z), step=t)  # (1 - z) * n + z * h_prev
        return h, (h,)


class LNGRULanguageModel(LNLanguageModel):
    r"""Stacked layer-normalised GRU language model (Ba et al. 2016), head and dropout as ``gru``.

    .. math::
        [r, z]^l_t &= \sigma(\mathrm{LN}(W^l_{x,rz} D(h^{l-1}_t)) + \mathrm{LN}(W^l_{h,rz} h^l_{t-1}) + b^l_{rz}) \\
        n^l_t &= \tanh(\mathrm{LN}(W^l_{x,n} D(h^{l-1}_t)) + b^l_{in} + r^l_t \odot (\mathrm{LN}(W^l_{h,n} h^l_{t-1})
            + b^l_{hn})) \\
        h^l_t &= (1 - z^l_t) \odot n^l_t + z^l_t \odot h^l_{t-1}

    State ``(h,)``. ``ln_eps`` (a number > 0, default 1e-5) is the eps of every LN site.
    """

    layer_class = LNGRULayer


SPEC = EngineSpec(
    name="ln-gru",
    description="Layer-normalised GRU language model: LN of the input and recurrent terms per step (Ba et al. 2016)",
    family="language-model",
    paper=PAPER,
    build=LNGRULanguageModel,
    default_config={"embedding_dim": 128, "hidden_size": 128, "num_layers": 2, "init_range": 0.1},
    taps=LNGRULayer.tap_patterns(),
    default_dataset="parens",
    train_defaults=LANGUAGE_MODEL_TRAIN_DEFAULTS,
)
