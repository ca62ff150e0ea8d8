"""Engine ``hm-lstm``: the hierarchical multiscale LSTM of Chung, Ahn & Bengio (2016).

"Hierarchical Multiscale Recurrent Neural Networks" (arXiv:1609.01704) gives every layer a binary
boundary detector ``z^l_t``. Whether layer ``l`` COPYs its state, UPDATEs it (an LSTM step) or FLUSHes
it (starts a new segment) is decided by the layer below's boundary ``z^{l-1}_t`` and its own previous
boundary ``z^l_{t-1}``; a layer above only moves when the layer below closes a segment, so upper
layers run on a slower, learned time scale. The boundary is a step function in the forward pass and
is trained with the straight-through estimator of a hard sigmoid whose slope is annealed upwards.

Because layer ``l`` reads ``h^{l+1}_{t-1}`` (top-down) and ``z^{l-1}_t`` (bottom-up) the unroll is
step-major (all layers of step t, then step t+1): :class:`HMStack` replaces the layer-major
:class:`~.stack.RecurrentStack` and also holds the paper's output module.

Choices the paper leaves open, made here and documented:

- the top layer has no boundary detector: ``z^L_t = 0`` always (it never FLUSHes; it UPDATEs when the
  layer below fires and COPYs otherwise); its ``z``/``z_soft`` taps record zeros;
- the boundary ``z^l_t`` is one scalar per layer and example; every tap is ``[batch, hidden_size]``
  (the family's contract), so ``z``, ``z_soft``, ``op`` and ``out_gate`` repeat the scalar in every unit,
  and the state carries ``z^l_{t-1}`` the same way (state ``(h, c, z)``);
- slope annealing counts optimisation steps: every forward in training mode with gradients enabled
  (the shared loop calls the model once per step) adds one; ``a = min(slope_max, slope + slope_anneal
  * steps)``. The forward pass does not depend on ``a`` (``z = 1[u > 0]`` for every ``a > 0``), only
  the straight-through gradient does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.hooks.taps import TapDecl

from ..spec import ConfigError, EngineSpec, Paper
from .base import RecurrentLayer, State
from .language_model import LANGUAGE_MODEL_TRAIN_DEFAULTS, RecurrentLanguageModel
from .stack import RecurrentStack

COPY, UPDATE, FLUSH = 0, 1, 2
"""The values of the ``op`` tap."""


def hard_sigmoid(u: Tensor, slope: float) -> Tensor:
    """``max(0, min(1, (a u + 1) / 2))``: the soft boundary ``z~`` (its gradient is ``a/2`` where ``|u| < 1/a``)."""
    return torch.clamp((slope * u + 1.0) / 2.0, 0.0, 1.0)


def straight_through_boundary(soft: Tensor) -> Tensor:
    """``1[soft > 0.5]`` forward; the backward pass is the identity into ``soft`` (straight-through)."""
    hard = (soft > 0.5).to(soft.dtype)
    return soft + (hard - soft).detach()


class HMLSTMLayer(RecurrentLayer):
    r"""One HM-LSTM layer ``l`` (Chung et al. 2016, eqs. 5-9), ``[f; i; o; g; z~]`` stacked as 4H+1 rows.

    .. math::
        s^{rec}_t &= U^l_l h^l_{t-1} \\
        s^{td}_t  &= z^l_{t-1} \, U^l_{l+1} h^{l+1}_{t-1}          \quad (\text{none for the top layer}) \\
        s^{bu}_t  &= z^{l-1}_t \, W^l_{l-1} h^{l-1}_t              \quad (z^0_t = 1,\ h^0_t = x_t) \\
        [f; i; o; g; \tilde z] &= [\sigma; \sigma; \sigma; \tanh; \mathrm{hardsig}_a](s^{rec} + s^{td} + s^{bu} + b) \\
        c^l_t &= \begin{cases} f \odot c^l_{t-1} + i \odot g & \text{UPDATE: } z^l_{t-1}=0,\ z^{l-1}_t=1 \\
                               c^l_{t-1} & \text{COPY: } z^l_{t-1}=0,\ z^{l-1}_t=0 \\
                               i \odot g & \text{FLUSH: } z^l_{t-1}=1 \end{cases} \\
        h^l_t &= h^l_{t-1} \text{ on COPY, else } o \odot \tanh(c^l_t) \\
        z^l_t &= 1[\tilde z > 0.5] \text{ forward, straight-through } \partial z / \partial \tilde z = 1

    with ``hardsig_a(u) = max(0, min(1, (a u + 1)/2))``. The three cases are written as masks
    (``copy = (1-z_{t-1})(1-z^{l-1}_t)``, ``update = (1-z_{t-1}) z^{l-1}_t``, ``flush = z_{t-1}``), so a
    COPY returns ``(h, c)`` bit for bit and gradients reach the boundary detectors below.

    Parameters: ``weight_bu`` [4H+1, input_size] (W, bottom-up), ``weight_rec`` [4H+1, H] (U_l),
    ``weight_td`` [4H+1, H] (U_{l+1}, not on the top layer), ``bias`` [4H+1].

    Taps (per step, ``[batch, H]``): ``gates/{f,i,o,g}``, ``z_soft`` (``z~``), ``z`` (the binary
    boundary), ``op`` (0 COPY, 1 UPDATE, 2 FLUSH; a record of the operation, replacing it changes
    nothing), ``c``, ``h``. Scalars per example are repeated over the H units. Replacing ``z`` changes
    the layer above's operation at this step and this layer's at the next.
    """

    state_names = ("h", "c", "z")
    taps = (
        TapDecl("gates/f", "forget gate f_t = sigmoid(s_rec + s_td + s_bu + b_f), used by UPDATE, in (0, 1)"),
        TapDecl("gates/i", "input gate i_t = sigmoid(s_rec + s_td + s_bu + b_i), in (0, 1)"),
        TapDecl("gates/o", "output gate o_t = sigmoid(s_rec + s_td + s_bu + b_o), in (0, 1)"),
        TapDecl("gates/g", "candidate g_t = tanh(s_rec + s_td + s_bu + b_g), in (-1, 1)"),
        TapDecl("z_soft", "soft boundary z~_t = hard_sigmoid_a(s_rec + s_td + s_bu + b_z), in [0, 1] "
                          "(one scalar per layer, repeated in every unit; 0 on the top layer)"),
        TapDecl("z", "boundary z_t = 1[z~_t > 0.5], 0 or 1 (one scalar per layer, repeated in every unit; "
                     "0 on the top layer): this layer ends a segment at t"),
        TapDecl("op", "operation taken at t: 0 COPY (z_{t-1}=0, z below=0), 1 UPDATE (z_{t-1}=0, z below=1), "
                      "2 FLUSH (z_{t-1}=1) (repeated in every unit)"),
        TapDecl("c", "cell state: c_{t-1} on COPY, f*c_{t-1} + i*g on UPDATE, i*g on FLUSH"),
        TapDecl("h", "hidden state: h_{t-1} on COPY, else o*tanh(c_t), in (-1, 1); the layer's output"),
    )

    def __init__(self, input_size: int, hidden_size: int, *, layer: int, top: bool = False):
        super().__init__(input_size, hidden_size, layer=layer)
        self.top = bool(top)
        rows = 4 * hidden_size + 1
        self.weight_bu = nn.Parameter(torch.empty(rows, input_size))
        self.weight_rec = nn.Parameter(torch.empty(rows, hidden_size))
        self.weight_td = None if self.top else nn.Parameter(torch.empty(rows, hidden_size))
        self.bias = nn.Parameter(torch.empty(rows))
        bound = hidden_size ** -0.5
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-bound, bound)

    def project_input(self, x: Tensor) -> Tensor:
        """``W x`` for every step ([B, T, 4H+1]); the bias is added in the step (the bottom-up term is gated)."""
        return F.linear(x, self.weight_bu)

    def hm_step(self, bottom_up: Tensor, z_below: Tensor, h_above: Tensor | None, state: State, t: int,
                slope: float) -> tuple[Tensor, Tensor, State]:
        """One step: ``(h_t, z_t [B, 1], (h, c, z) state)`` from ``W h^{l-1}_t`` ([B, 4H+1]) and ``z^{l-1}_t`` [B, 1].

        ``h_above`` is ``h^{l+1}_{t-1}`` (None on the top layer); ``state`` is ``(h, c, z)`` of t-1, each
        ``[B, H]`` (``z`` repeated over units).
        """
        h_prev, c_prev, z_prev_units = state
        z_prev = z_prev_units[:, :1]
        H = self.hidden_size
        pre = torch.addmm(self.bias, h_prev, self.weight_rec.t()) + z_below * bottom_up
        if not self.top:
            pre = pre + z_prev * F.linear(h_above, self.weight_td)
        f = self.f_tap(torch.sigmoid(pre[:, :H]), step=t)
        i = self.i_tap(torch.sigmoid(pre[:, H:2 * H]), step=t)
        o = self.o_tap(torch.sigmoid(pre[:, 2 * H:3 * H]), step=t)
        g = self.g_tap(torch.tanh(pre[:, 3 * H:4 * H]), step=t)
        if self.top:
            soft = pre.new_zeros(pre.shape[0], 1)
            z = soft
        else:
            soft = hard_sigmoid(pre[:, 4 * H:], slope)
            z = straight_through_boundary(soft)
        self.z_soft_tap(soft.expand(-1, H), step=t)
        z = self.z_tap(z.expand(-1, H), step=t)[:, :1]
        flush = z_prev
        update = (1.0 - z_prev) * z_below
        copy = (1.0 - z_prev) * (1.0 - z_below)
        self.op_tap((update + 2.0 * flush).expand(-1, H), step=t)
        ig = i * g
        c = self.c_tap(copy * c_prev + update * (f * c_prev + ig) + flush * ig, step=t)
        h = self.h_tap(copy * h_prev + (1.0 - copy) * (o * torch.tanh(c)), step=t)
        return h, z, (h, c, z.expand(-1, H))

    def extra_repr(self) -> str:
        return super().extra_repr() + (", top=True" if self.top else "")


class HMStack(nn.Module):
    r"""The HM-LSTM layers unrolled step-major, and the output module (Chung et al. eq. 11).

    .. math::
        g^l_t &= \sigma(w_l^\top [h^1_t; \dots; h^L_t]) \\
        h^e_t &= \mathrm{ReLU}\Big(\sum_l g^l_t \, W^e_l h^l_t\Big)

    ``forward(x [B, T, input_size], state) -> (h^e [B, T, H], (h, c, z) [L, B, H] each)``; the head
    decodes ``h^e``. Dropout (fresh mask per step) acts on the bottom-up input of layers 2..L, never
    on ``h^l_{t-1}``, ``c^l_{t-1}`` or the top-down ``h^{l+1}_{t-1}``. Taps: ``layer{l}/out_gate`` (``g^l_t``,
    repeated over units) besides the layers' own.
    """

    state_names = HMLSTMLayer.state_names
    init_state = RecurrentStack.init_state
    check_state = RecurrentStack.check_state

    def __init__(self, *, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.0,
                 slope: float = 1.0, slope_max: float = 5.0, slope_anneal: float = 0.0):
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.dropout_p = float(dropout)
        self.slope, self.slope_max, self.slope_anneal = float(slope), float(slope_max), float(slope_anneal)
        self.layers = nn.ModuleList(
            HMLSTMLayer(input_size if layer == 0 else hidden_size, hidden_size, layer=layer,
                        top=layer == num_layers - 1)
            for layer in range(num_layers))
        self.out_gates = nn.ModuleList(_OutGateTaps(layer) for layer in range(num_layers))
        self.gate_weight = nn.Parameter(torch.empty(num_layers, num_layers * hidden_size))
        self.embed_weight = nn.Parameter(torch.empty(num_layers, hidden_size, hidden_size))
        self.register_buffer("trained_steps", torch.zeros((), dtype=torch.long))

    def current_slope(self) -> float:
        """``a = min(slope_max, slope + slope_anneal * trained_steps)``."""
        return min(self.slope_max, self.slope + self.slope_anneal * int(self.trained_steps))

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        batch, steps = x.shape[0], x.shape[1]
        if state is None:
            state = self.init_state(batch, x)
        if self.training and torch.is_grad_enabled():
            self.trained_steps += 1
        slope = self.current_slope()
        L, H = self.num_layers, self.hidden_size
        layer_states = [tuple(part[layer] for part in state) for layer in range(L)]
        bottom = self.layers[0].project_input(x)
        one = x.new_ones(batch, 1)
        outputs = []
        for t in range(steps):
            previous_h = [s[0] for s in layer_states]  # h^{l}_{t-1}, read top-down
            below, z_below = bottom[:, t], one
            hs = []
            for layer, cell in enumerate(self.layers):
                if layer > 0:
                    below = cell.project_input(F.dropout(hs[-1], self.dropout_p, self.training))
                above = previous_h[layer + 1] if layer + 1 < L else None
                h, z_below, layer_states[layer] = cell.hm_step(below, z_below, above, layer_states[layer], t, slope)
                hs.append(h)
            gates = torch.sigmoid(F.linear(torch.cat(hs, dim=1), self.gate_weight))  # [B, L]
            mixed = 0
            for layer, h in enumerate(hs):
                g = self.out_gates[layer].out_gate_tap(gates[:, layer:layer + 1].expand(-1, H), step=t)[:, :1]
                mixed = mixed + g * F.linear(h, self.embed_weight[layer])
            outputs.append(torch.relu(mixed))
        final = tuple(torch.stack([s[k] for s in layer_states]) for k in range(len(self.state_names)))
        return torch.stack(outputs, dim=1), final


class _OutGateTaps(RecurrentLayer):
    """Holds the tap ``layer{l}/out_gate`` of the output module (no cell of its own)."""

    taps = (TapDecl("out_gate", "output-module gate g^l_t = sigmoid(w_l . [h^1_t; ...; h^L_t]), in (0, 1): "
                                "how much layer l's h feeds the prediction (repeated in every unit)"),)

    def __init__(self, layer: int):
        super().__init__(0, 0, layer=layer)


class HMLSTMLanguageModel(RecurrentLanguageModel):
    r"""Chung et al.'s HM-LSTM language model: embedding -> :class:`HMStack` -> output module -> decoder.

    With D dropout (fresh mask per step) and ``h^0_t = D(E[x_t])``, per layer (:class:`HMLSTMLayer`)

    .. math::
        [f; i; o; g; \tilde z]^l_t &= [\sigma; \sigma; \sigma; \tanh; \mathrm{hardsig}_a](U_l h^l_{t-1}
            + z^l_{t-1} U_{l+1} h^{l+1}_{t-1} + z^{l-1}_t W h^{l-1}_t + b) \\
        c^l_t, h^l_t &= \text{COPY / UPDATE / FLUSH chosen by } (z^l_{t-1}, z^{l-1}_t) \\
        h^e_t &= \mathrm{ReLU}(\textstyle\sum_l \sigma(w_l^\top [h^1_t;\dots;h^L_t]) W^e_l h^l_t) \\
        \mathrm{logits}_t &= W_{dec} D(h^e_t) + b_{dec}

    State ``(h, c, z)``, each ``[num_layers, batch, hidden_size]`` (``z`` is ``z^l_{t-1}`` repeated over units).

    Args besides the LSTM model's: ``slope`` (initial hard-sigmoid slope a > 0), ``slope_max`` (cap,
    >= slope), ``slope_anneal`` (increase of a per optimisation step, >= 0). ``num_layers`` >= 2.
    """

    layer_class = HMLSTMLayer

    def __init__(self, *, vocab_size: int, embedding_dim: int = 128, hidden_size: int = 128, num_layers: int = 2,
                 dropout: float = 0.0, init_range: float = 0.1, slope: float = 1.0, slope_max: float = 5.0,
                 slope_anneal: float = 0.002):
        if isinstance(num_layers, int) and not isinstance(num_layers, bool) and num_layers == 1:
            raise ConfigError("hm-lstm needs num_layers >= 2 (boundaries of layer l steer layer l+1); got 1")

        def number(v) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool)

        if not (number(slope) and slope > 0):
            raise ConfigError(f"expected slope (the hard sigmoid's initial slope a) to be a number > 0, got {slope!r}")
        if not (number(slope_max) and slope_max >= slope):
            raise ConfigError(f"expected slope_max to be a number >= slope ({slope!r}), got {slope_max!r}")
        if not (number(slope_anneal) and slope_anneal >= 0):
            raise ConfigError(f"expected slope_anneal (increase of the slope per step) to be a number >= 0, "
                              f"got {slope_anneal!r}")
        super().__init__(vocab_size=vocab_size, embedding_dim=embedding_dim, hidden_size=hidden_size,
                         num_layers=num_layers, dropout=dropout, init_range=init_range)
        self.layers = HMStack(input_size=self.embedding_dim, hidden_size=self.hidden_size,
                              num_layers=self.num_layers, dropout=self.dropout_p, slope=slope,
                              slope_max=slope_max, slope_anneal=slope_anneal)
        self.reset_parameters()

    @property
    def config(self) -> dict:
        return {**super().config, "slope": self.layers.slope, "slope_max": self.layers.slope_max,
                "slope_anneal": self.layers.slope_anneal}


SPEC = EngineSpec(
    name="hm-lstm",
    description="Hierarchical multiscale LSTM: learned boundaries, COPY/UPDATE/FLUSH (Chung et al. 2016)",
    family="language-model",
    paper=Paper(
        title="Hierarchical Multiscale Recurrent Neural Networks",
        authors="Junyoung Chung, Sungjin Ahn, Yoshua Bengio",
        arxiv="1609.01704",
        year=2016,
    ),
    build=HMLSTMLanguageModel,
    default_config={"embedding_dim": 64, "hidden_size": 128, "num_layers": 2, "init_range": 0.1,
                    "slope": 1.0, "slope_max": 5.0, "slope_anneal": 0.002},
    taps=HMLSTMLayer.tap_patterns() + _OutGateTaps.tap_patterns(),
    default_dataset="parens",
    train_defaults=LANGUAGE_MODEL_TRAIN_DEFAULTS,
)
