"""A stack of recurrent layers of one cell, unrolled over time: the body of every recurrent engine.

    y^0_t        = x_t
    y^l_t, s^l_t = cell_l(D(y^{l-1}_t), s^l_{t-1})       l = 1 .. L   (s = the layer's state; D between layers)

:class:`RecurrentStack` owns the loops over layers and time steps and the dropout between layers
(ordinary inverted dropout, a fresh mask at every step, never on the recurrent state). It takes
features ``[B, T, input_size]`` and returns the top layer's outputs and every layer's last state, so
the same stack serves a language model (with an embedding and a decoder around it), an encoder (its
last state) or a decoder (started from an encoder's state).

It is an ``nn.ModuleList`` of its layers, so a model holding it as ``layers`` keeps the parameter
names ``layers.<l>.weight_ih`` ... of checkpoints written before the stack existed.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import mollify
from .base import RecurrentLayer, State


class RecurrentStack(nn.ModuleList):
    """``num_layers`` layers of ``layer_class``: ``forward(x [B, T, input_size], state=None) -> (y [B, T, H], state)``.

    ``state`` is a tuple of tensors ``[num_layers, B, hidden_size]`` named by :attr:`state_names`
    (zeros when ``None``). Calling the stack T times with one step each, carrying the state, gives the
    same result as one call with T steps.
    """

    def __init__(self, layer_class: type[RecurrentLayer], *, input_size: int, hidden_size: int, num_layers: int,
                 dropout: float = 0.0):
        super().__init__(layer_class(input_size if layer == 0 else hidden_size, hidden_size, layer=layer)
                         for layer in range(num_layers))
        self.layer_class = layer_class
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout_p = float(dropout)

    @property
    def state_names(self) -> tuple[str, ...]:
        return self.layer_class.state_names

    def init_state(self, batch_size: int, like: Tensor) -> State:
        """Zero state of ``like``'s dtype and device: one ``[num_layers, batch_size, hidden_size]`` per name."""
        shape = (self.num_layers, batch_size, self.hidden_size)
        return tuple(like.new_zeros(shape) for _ in self.state_names)

    def check_state(self, state, batch: int, dtype: torch.dtype) -> State:
        """``state`` as a tuple, or ``TypeError``/``ValueError`` saying what was expected and what was got."""
        names = self.state_names
        if isinstance(state, Tensor) and len(names) == 1:
            state = (state,)
        if not isinstance(state, Sequence) or len(state) != len(names) or not all(isinstance(s, Tensor) for s in state):
            got = type(state).__name__ + (f" of length {len(state)}" if isinstance(state, Sequence) else "")
            raise TypeError(f"expected state as a tuple ({', '.join(names)}) of tensors, got {got}")
        expected = (self.num_layers, batch, self.hidden_size)
        for name, s in zip(names, state):
            if tuple(s.shape) != expected:
                raise ValueError(
                    f"expected state {name} of shape [num_layers, batch, hidden_size] = {expected}, "
                    f"got {tuple(s.shape)}"
                )
            if s.dtype != dtype:
                raise TypeError(f"expected state {name} of dtype {dtype} (the model's), got {s.dtype}")
        return tuple(state)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if state is None:
            state = self.init_state(x.shape[0], x)
        mollifier = mollify.current() if self.training else None
        if mollifier is not None and mollifier.off:
            mollifier = None  # p = 0 everywhere: exactly the plain code path below
        final: list[State] = []
        for index, layer in enumerate(self):
            if index > 0:
                x = F.dropout(x, self.dropout_p, self.training)
            layer_state = tuple(part[index] for part in state)
            if mollifier is None or mollifier.layer_p(index) == 0.0:
                x, layer_state = self.unroll(layer, x, layer_state)
            else:
                x, layer_state = self._mollified_unroll(layer, x, layer_state, mollifier.layer_p(index), mollifier.c)
            final.append(layer_state)
        return x, tuple(torch.stack([s[k] for s in final]) for k in range(len(self.state_names)))

    def _mollified_unroll(self, layer: RecurrentLayer, x: Tensor, state: State, p: float,
                          c: float) -> tuple[Tensor, State]:
        """Mollifying networks (``mollify.py``): noisy linearised sigmoid/tanh inside the layer's steps,
        then the stochastic skip ``y = pi * x + (1 - pi) * h``, ``pi ~ Bernoulli(p)`` per element; the
        layer's own state is carried along time (no skip along time)."""
        with mollify.NoisyActivations(p, c):
            out, state = self.unroll(layer, x, state)
        if x.shape[-1] == out.shape[-1]:  # no skip where the input has another size (layer 0, E != H)
            skip = torch.rand(out.shape, dtype=out.dtype, device=out.device) < p
            out = torch.where(skip, x, out)
        return out, state

    @staticmethod
    def unroll(layer: RecurrentLayer, x: Tensor, state: State) -> tuple[Tensor, State]:
        """Run ``layer`` over all steps of ``x`` [B, T, input_size]; ``(outputs [B, T, H], last state)``."""
        projected = layer.project_input(x)
        outputs = []
        for t in range(projected.shape[1]):
            out, state = layer.step(projected[:, t], state, t)
            outputs.append(out)
        return torch.stack(outputs, dim=1), state

