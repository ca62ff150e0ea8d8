"""Engine ``rhn``: Recurrent Highway Networks of Zilly, Srivastava, Koutník & Schmidhuber (2016/17).

"Recurrent Highway Networks" (arXiv:1607.03474) makes the step from ``s_{t-1}`` to ``s_t`` deep: L
highway micro-layers ("recurrence depth") run inside every time step, each with a candidate ``h``, a
transform gate ``t`` and a carry gate ``c``. Only the first micro-layer sees the input ``x_t``; every
micro-layer has its own recurrent weights and biases. The reference code couples the carry gate,
``c = 1 - t``; the uncoupled form (``c`` a gate of its own, as in highway networks) is the option
``coupled=False``.

Choices of lstmviz (documented, not the paper's): dropout is the stack's (Zaremba placement: embedding
output, between stacked layers, top output; never the recurrent state) instead of the paper's variational
dropout; the negative initial transform bias is a constant offset ``transform_bias`` added to the learnt
bias (which is drawn from U(-init_range, init_range) like every parameter), so the gates start closed
("carry") while ``reset_parameters`` stays the shared one. The uncoupled carry gate gets the opposite
offset, ``-transform_bias``, so it starts open.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.hooks.taps import TapDecl

from ..spec import EngineSpec, Paper
from ._configured import IndexedTapDecl, check_choice, check_positive_int, configured_layer
from .base import RecurrentLayer, State
from .language_model import LANGUAGE_MODEL_TRAIN_DEFAULTS, RecurrentLanguageModel

MAX_DEPTH = 64
"""Micro-layers per step a model may have (the paper goes to 10; every one costs a step's worth of work)."""


def _micro_taps(depth: int) -> tuple[TapDecl, ...]:
    rows: list[TapDecl] = []
    for m in range(depth):
        where = "x_t and s^{0} = s_{t-1}" if m == 0 else f"s^{m} (micro-layer {m - 1}'s state)"
        rows += [
            IndexedTapDecl(f"micro{m}/candidate", f"micro-layer {m}'s candidate (the paper's h_ell), "
                           f"tanh of {where} through its own weights, in (-1, 1)", index=m),
            IndexedTapDecl(f"micro{m}/t", f"micro-layer {m}'s transform gate t = sigmoid(...), in (0, 1); "
                           "the weight of the candidate", index=m),
            IndexedTapDecl(f"micro{m}/c", f"micro-layer {m}'s carry gate, in (0, 1) (1 - t when coupled); "
                           "the weight of the previous micro-state", index=m),
        ]
        if m < depth - 1:
            rows.append(IndexedTapDecl(f"micro{m}/s", f"micro-layer {m}'s state s^{m + 1} = candidate * t + "
                                       f"s^{m} * c, in (-1, 1) from a zero start", index=m))
    rows.append(TapDecl("h", f"the layer's output and state s_t = s^{depth} (micro-layer {depth - 1}'s state "
                             "candidate * t + s * c); the next step starts from it"))
    return tuple(rows)


class RHNLayer(RecurrentLayer):
    r"""One recurrent highway layer of recurrence depth L (micro-layers :math:`\ell = 1..L`).

    .. math::
        s^0_t &= s^L_{t-1} \\
        h^\ell_t &= \tanh(\mathbb{1}[\ell = 1] W_H x_t + R_{H\ell} s^{\ell-1}_t + b_{H\ell}) \\
        t^\ell_t &= \sigma(\mathbb{1}[\ell = 1] W_T x_t + R_{T\ell} s^{\ell-1}_t + b_{T\ell} + \beta) \\
        c^\ell_t &= 1 - t^\ell_t \quad\text{(coupled)} \quad\text{or}\quad
                    \sigma(\mathbb{1}[\ell = 1] W_C x_t + R_{C\ell} s^{\ell-1}_t + b_{C\ell} - \beta) \\
        s^\ell_t &= h^\ell_t \odot t^\ell_t + s^{\ell-1}_t \odot c^\ell_t \\
        y_t &= s^L_t

    with :math:`\beta` = ``transform_bias`` (a constant, -2 as in the paper's PTB runs). Parameters:
    ``weight_ih`` [G*H, input_size] (the first micro-layer's input weights, G = 2 coupled, 3 not, in
    the order H, T[, C]); ``weight_hh[m]`` [G*H, H] and ``bias[m]`` [G*H] for every micro-layer m. The
    input half ``W x_t + b_1`` is computed for all steps in one GEMM.

    Taps (one call per step, ``[batch, H]``): for each micro-layer m = 0..L-1 ``layer{l}/micro{m}/
    candidate``, ``micro{m}/t``, ``micro{m}/c`` and, except the last, ``micro{m}/s``; the last
    micro-layer's state is ``layer{l}/h``.
    """

    state_names = ("h",)
    depth: int = 1
    coupled: bool = True
    transform_bias: float = -2.0
    taps = _micro_taps(1)

    @classmethod
    def configure(cls, *, depth: int, coupled: bool, transform_bias: float) -> dict:
        return {"taps": _micro_taps(depth)}

    def __init__(self, input_size: int, hidden_size: int, *, layer: int):
        super().__init__(input_size, hidden_size, layer=layer)
        rows = self.blocks * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.ParameterList(nn.Parameter(torch.empty(rows, hidden_size)) for _ in range(self.depth))
        self.bias = nn.ParameterList(nn.Parameter(torch.empty(rows)) for _ in range(self.depth))
        self._micro = [
            (getattr(self, f"candidate{m}_tap"), getattr(self, f"t{m}_tap"), getattr(self, f"c{m}_tap"),
             getattr(self, f"s{m}_tap") if m < self.depth - 1 else self.h_tap)
            for m in range(self.depth)
        ]
        self.reset_parameters()

    @property
    def blocks(self) -> int:
        """Weight blocks per micro-layer: candidate and transform gate (and carry gate when uncoupled)."""
        return 2 if self.coupled else 3

    def reset_parameters(self) -> None:
        """U(-1/sqrt(H), 1/sqrt(H)) (PyTorch's RNN default); the language model re-draws with its init_range."""
        bound = self.hidden_size ** -0.5
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-bound, bound)

    def project_input(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias[0])

    def step(self, x_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        (s,) = state
        for m, (candidate_tap, t_tap, c_tap, s_tap) in enumerate(self._micro):
            into = x_t if m == 0 else self.bias[m]
            pre = torch.addmm(into, s, self.weight_hh[m].t()).chunk(self.blocks, dim=1)
            candidate = candidate_tap(torch.tanh(pre[0]), step=t)
            transform = t_tap(torch.sigmoid(pre[1] + self.transform_bias), step=t)
            if self.coupled:
                carry = c_tap(1.0 - transform, step=t)
            else:
                carry = c_tap(torch.sigmoid(pre[2] - self.transform_bias), step=t)
            s = s_tap(candidate * transform + s * carry, step=t)
        return s, (s,)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, depth={self.depth}, coupled={self.coupled}"


class RHNLanguageModel(RecurrentLanguageModel):
    r"""Recurrent Highway Network language model (Zilly et al., arXiv:1607.03474).

    With D ordinary dropout and ``x_t = E[token_t]``, per stacked layer (usually one) and step:

    .. math::
        s^0_t &= s^L_{t-1} \\
        s^\ell_t &= \tanh(\mathbb{1}[\ell=1] W_H x_t + R_{H\ell} s^{\ell-1}_t + b_{H\ell}) \odot t^\ell_t
                    + s^{\ell-1}_t \odot c^\ell_t, \quad \ell = 1..L \\
        t^\ell_t &= \sigma(\mathbb{1}[\ell=1] W_T x_t + R_{T\ell} s^{\ell-1}_t + b_{T\ell} + \beta),
                    \quad c^\ell_t = 1 - t^\ell_t \ \text{(coupled)} \\
        h_t &= s^L_t, \qquad \mathrm{logits}_t = W_{dec} D(h_t) + b_{dec}

    Keyword arguments besides the shared ones: ``depth`` (recurrence depth L, an int in 1..64),
    ``coupled`` (True: c = 1 - t; False: c is its own gate), ``transform_bias`` (the constant beta
    added to the transform gate's pre-activation, a finite number; negative = start as carry).
    State: ``(h,)``, ``[num_layers, batch, hidden_size]``.
    """

    layer_class = RHNLayer

    def __init__(self, *, vocab_size: int, embedding_dim: int = 128, hidden_size: int = 128, num_layers: int = 1,
                 dropout: float = 0.0, init_range: float = 0.1, depth: int = 3, coupled: bool = True,
                 transform_bias: float = -2.0):
        check_positive_int("depth", depth, f"the recurrence depth, micro-layers per step: 1 to {MAX_DEPTH}")
        if depth > MAX_DEPTH:
            raise ValueError(f"expected depth to be at most {MAX_DEPTH} micro-layers per step, got {depth}")
        check_choice("coupled", coupled, (True, False))
        if isinstance(transform_bias, bool) or not isinstance(transform_bias, (int, float)) \
                or not math.isfinite(transform_bias):
            raise ValueError(f"expected transform_bias to be a finite number (e.g. -2), got {transform_bias!r}")
        self.layer_class = configured_layer(RHNLayer, depth=depth, coupled=coupled,
                                            transform_bias=float(transform_bias))
        super().__init__(vocab_size=vocab_size, embedding_dim=embedding_dim, hidden_size=hidden_size,
                         num_layers=num_layers, dropout=dropout, init_range=init_range)
        self.depth = depth
        self.coupled = coupled
        self.transform_bias = transform_bias

    @property
    def config(self) -> dict:
        return {**super().config, "depth": self.depth, "coupled": self.coupled, "transform_bias": self.transform_bias}


SPEC = EngineSpec(
    name="rhn",
    description="Recurrent Highway Network language model: L highway micro-layers per step (Zilly et al. 2016)",
    family="language-model",
    paper=Paper(
        title="Recurrent Highway Networks",
        authors="Julian Georg Zilly, Rupesh Kumar Srivastava, Jan Koutník, Jürgen Schmidhuber",
        arxiv="1607.03474",
        year=2016,
    ),
    build=RHNLanguageModel,
    default_config={"embedding_dim": 128, "hidden_size": 128, "num_layers": 1, "init_range": 0.1, "depth": 3,
                    "coupled": True, "transform_bias": -2.0},
    taps=configured_layer(RHNLayer, depth=3, coupled=True, transform_bias=-2.0).tap_patterns(),
    default_dataset="parens",
    train_defaults=LANGUAGE_MODEL_TRAIN_DEFAULTS,
)
