"""Engine ``array-lstm``: the Array-LSTM of Rocki (2016), "Recurrent Memory Array Structures".

The report (arXiv:1607.03085) gives every hidden unit K memory cells ("lanes") instead of one. Each
lane has its own input, forget and output gates and candidate, computed from the shared ``x_t`` and
``h_{t-1}``, and its own cell ``c_k`` that only its own gates write; the unit's output pools the lanes.
Two of the report's variants are implemented (``variant``):

- ``"deterministic"`` (the plain Array-LSTM): ``h_t = sum_k o_k * tanh(c_k)``; with K = 1 it is the
  LSTM exactly;
- ``"stochastic-pooling"`` (stochastic output pooling): the output gates' pre-activations, through a
  softmax over the lanes, give each (example, unit) a distribution ``p_k`` over lanes; in training one
  lane ``j ~ p`` is drawn per (example, unit) and step and ``h_t = o_j * tanh(c_j)`` (all lanes still
  update; the gradient flows through the drawn lane only, not into the draw); in eval mode
  (``model.eval()``, and so in recordings) ``h_t`` is its expectation ``sum_k p_k * o_k * tanh(c_k)``,
  deterministic. The report does not say what to do at test time (the reference code keeps sampling);
  using the expectation is lstmviz's choice. Reading "softmax of the output gates" as a softmax of their
  pre-activations is also ours (a softmax of values in (0, 1) would be close to uniform).

Dropout is the stack's (Zaremba placement), never on the recurrent state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmviz.hooks.taps import TapDecl

from ..spec import EngineSpec, Paper
from ._configured import IndexedTapDecl, check_choice, check_positive_int, configured_layer
from .base import GatedLayer, State
from .language_model import LANGUAGE_MODEL_TRAIN_DEFAULTS, RecurrentLanguageModel

VARIANTS = ("deterministic", "stochastic-pooling")
MAX_LANES = 64
"""Memory cells per unit a model may have (the report uses 2 to 4)."""


def _lane_taps(lanes: int, variant: str) -> tuple[TapDecl, ...]:
    rows: list[TapDecl] = []
    for k in range(lanes):
        rows += [
            IndexedTapDecl(f"lane{k}/gates/i", f"lane {k}'s input gate after the sigmoid, in (0, 1)", index=k),
            IndexedTapDecl(f"lane{k}/gates/f", f"lane {k}'s forget gate after the sigmoid, in (0, 1)", index=k),
            IndexedTapDecl(f"lane{k}/gates/g", f"lane {k}'s candidate cell value after the tanh, in (-1, 1)",
                           index=k),
            IndexedTapDecl(f"lane{k}/gates/o", f"lane {k}'s output gate after the sigmoid, in (0, 1)", index=k),
            IndexedTapDecl(f"lane{k}/c", f"lane {k}'s memory cell c_k = f_k * c_k(t-1) + i_k * g_k (unbounded); "
                           "written by lane k's gates only", index=k),
        ]
        if variant == "stochastic-pooling":
            rows.append(IndexedTapDecl(f"lane{k}/p", f"probability that lane {k} is read, softmax over lanes of the "
                                       "output gates' pre-activations, in (0, 1]", index=k))
    pooled = ("sum_k o_k * tanh(c_k)" if variant == "deterministic" else
              "o_j * tanh(c_j) of a drawn lane j ~ p in training, sum_k p_k * o_k * tanh(c_k) in eval")
    rows.append(TapDecl("h", f"hidden state h_t = {pooled}; the layer's output"))
    return tuple(rows)


class ArrayLSTMLayer(GatedLayer):
    r"""One Array-LSTM layer: K lanes (memory cells) per unit, pooled into one output.

    .. math::
        i_{k,t} &= \sigma(W_{ik} x_t + U_{ik} h_{t-1} + b_{ik}), \quad
        f_{k,t} = \sigma(W_{fk} x_t + U_{fk} h_{t-1} + b_{fk}) \\
        g_{k,t} &= \tanh(W_{gk} x_t + U_{gk} h_{t-1} + b_{gk}), \quad
        o_{k,t} = \sigma(\tilde o_{k,t}),\ \tilde o_{k,t} = W_{ok} x_t + U_{ok} h_{t-1} + b_{ok} \\
        c_{k,t} &= f_{k,t} \odot c_{k,t-1} + i_{k,t} \odot g_{k,t} \qquad k = 1..K \\
        h_t &= \textstyle\sum_k o_{k,t} \odot \tanh(c_{k,t}) \quad\text{(deterministic)} \\
        p_{k,t} &= \mathrm{softmax}_k(\tilde o_{k,t}), \quad
        h_t = o_{j,t} \odot \tanh(c_{j,t}),\ j \sim p_t \ \text{(train)}, \quad
        h_t = \textstyle\sum_k p_{k,t} o_{k,t} \odot \tanh(c_{k,t}) \ \text{(eval)} \quad\text{(stochastic-pooling)}

    ``weight_ih`` [4KH, input_size], ``weight_hh`` [4KH, H], ``bias_ih``, ``bias_hh`` [4KH] in blocks of
    H rows ordered gate-major (i of lanes 0..K-1, then f, g, o): with K = 1 the layout is ``nn.LSTM``'s
    and of :class:`~.lstm.LSTMLayer`, whose weights copy over 1:1. State: ``(h, c0, .., c{K-1})``.

    Taps (one call per step, ``[batch, H]``): ``layer{l}/lane{k}/gates/{i,f,g,o}``, ``layer{l}/lane{k}/c``
    (and ``layer{l}/lane{k}/p`` for stochastic pooling) for every lane k, then ``layer{l}/h``.
    """

    lanes: int = 1
    variant: str = "deterministic"
    gate_count = 4
    state_names = ("h", "c0")
    taps = _lane_taps(1, "deterministic")

    @classmethod
    def configure(cls, *, lanes: int, variant: str) -> dict:
        return {"gate_count": 4 * lanes, "state_names": ("h", *(f"c{k}" for k in range(lanes))),
                "taps": _lane_taps(lanes, variant)}

    def __init__(self, input_size: int, hidden_size: int, *, layer: int):
        super().__init__(input_size, hidden_size, layer=layer)
        def tap(name):
            return getattr(self, name)

        self._lane_taps = [(tap(f"i{k}_tap"), tap(f"f{k}_tap"), tap(f"g{k}_tap"), tap(f"o{k}_tap"), tap(f"c{k}_tap"))
                           for k in range(self.lanes)]
        self._p_taps = [tap(f"p{k}_tap") for k in range(self.lanes)] if self.variant == "stochastic-pooling" else []

    def project_input(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih + self.bias_hh)

    def step(self, x_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        h_prev, *c_prev = state
        lanes = self.lanes
        pre = torch.addmm(x_t, h_prev, self.weight_hh.t()).chunk(4 * lanes, dim=1)
        cells, outputs = [], []
        for k, (i_tap, f_tap, g_tap, o_tap, c_tap) in enumerate(self._lane_taps):
            i = i_tap(torch.sigmoid(pre[k]), step=t)
            f = f_tap(torch.sigmoid(pre[lanes + k]), step=t)
            g = g_tap(torch.tanh(pre[2 * lanes + k]), step=t)
            o = o_tap(torch.sigmoid(pre[3 * lanes + k]), step=t)
            c = c_tap(f * c_prev[k] + i * g, step=t)
            cells.append(c)
            outputs.append(o * torch.tanh(c))
        if self.variant == "deterministic":
            h = outputs[0]
            for out in outputs[1:]:
                h = h + out
        else:
            h = self._pool(torch.stack(pre[3 * lanes:], dim=-1), torch.stack(outputs, dim=-1), t)
        h = self.h_tap(h, step=t)
        return h, (h, *cells)

    def _pool(self, logits: Tensor, outputs: Tensor, t: int) -> Tensor:
        """Stochastic output pooling of ``outputs`` [B, H, K] with lane probabilities softmax(``logits``)."""
        p = torch.softmax(logits, dim=-1)
        p = torch.stack([p_tap(p[..., k], step=t) for k, p_tap in enumerate(self._p_taps)], dim=-1)
        if not self.training:
            return (p * outputs).sum(dim=-1)
        with torch.no_grad():
            drawn = torch.multinomial(p.reshape(-1, self.lanes), 1).reshape(*p.shape[:-1], 1)
        return outputs.gather(-1, drawn).squeeze(-1)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, lanes={self.lanes}, variant={self.variant!r}"


class ArrayLSTMLanguageModel(RecurrentLanguageModel):
    r"""Stacked Array-LSTM language model (Rocki 2016, arXiv:1607.03085).

    With D ordinary dropout and ``h^0_t = E[x_t]``, per layer l, lane k = 1..K and step t:

    .. math::
        [i, f, g, o]^l_{k,t} &= W^l_{k} D(h^{l-1}_t) + U^l_{k} h^l_{t-1} + b^l_{k} \\
        c^l_{k,t} &= \sigma(f^l_{k,t}) \odot c^l_{k,t-1} + \sigma(i^l_{k,t}) \odot \tanh(g^l_{k,t}) \\
        h^l_t &= \textstyle\sum_k \sigma(o^l_{k,t}) \odot \tanh(c^l_{k,t}) \quad\text{(deterministic;
                 stochastic pooling: one drawn lane in training, the expectation in eval)} \\
        \mathrm{logits}_t &= W_{dec} D(h^L_t) + b_{dec}

    Keyword arguments besides the shared ones: ``lanes`` (K, memory cells per unit, an int in 1..64) and
    ``variant`` ("deterministic" or "stochastic-pooling"). State: ``(h, c0, .., c{K-1})``, each
    ``[num_layers, batch, hidden_size]``.
    """

    layer_class = ArrayLSTMLayer

    def __init__(self, *, vocab_size: int, embedding_dim: int = 128, hidden_size: int = 128, num_layers: int = 2,
                 dropout: float = 0.0, init_range: float = 0.1, lanes: int = 2, variant: str = "deterministic"):
        check_positive_int("lanes", lanes, f"memory cells per unit: 1 to {MAX_LANES}")
        if lanes > MAX_LANES:
            raise ValueError(f"expected lanes to be at most {MAX_LANES} memory cells per unit, got {lanes}")
        check_choice("variant", variant, VARIANTS)
        self.layer_class = configured_layer(ArrayLSTMLayer, lanes=lanes, variant=variant)
        super().__init__(vocab_size=vocab_size, embedding_dim=embedding_dim, hidden_size=hidden_size,
                         num_layers=num_layers, dropout=dropout, init_range=init_range)
        self.lanes = lanes
        self.variant = variant

    @property
    def config(self) -> dict:
        return {**super().config, "lanes": self.lanes, "variant": self.variant}


SPEC = EngineSpec(
    name="array-lstm",
    description="Array-LSTM language model: K memory cells per unit, summed or stochastically pooled (Rocki 2016)",
    family="language-model",
    paper=Paper(
        title="Recurrent Memory Array Structures",
        authors="Kamil Rocki",
        arxiv="1607.03085",
        year=2016,
    ),
    build=ArrayLSTMLanguageModel,
    default_config={"embedding_dim": 128, "hidden_size": 128, "num_layers": 2, "init_range": 0.1, "lanes": 2,
                    "variant": "deterministic"},
    taps=configured_layer(ArrayLSTMLayer, lanes=2, variant="deterministic").tap_patterns(),
    default_dataset="parens",
    train_defaults=LANGUAGE_MODEL_TRAIN_DEFAULTS,
)
