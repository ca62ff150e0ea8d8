"""The cell layers every recurrent engine is built from, and the table of taps each declares.

A variant supplies a :class:`RecurrentLayer` subclass that implements only its cell:
:meth:`RecurrentLayer.project_input` (the input half of the pre-activations for all steps at once,
one GEMM per layer) and :meth:`RecurrentLayer.step` (one time step, which routes every recordable
tensor through a :class:`~lstmviz.hooks.taps.Tap`). Its taps are a table, :attr:`RecurrentLayer.taps`
(one :class:`~lstmviz.hooks.taps.TapDecl` per signal), that this base class expands into one tap
module per layer (``layer{l}/<name>``, attribute ``<signal>_tap``), in the table's order.

Layers are stacked and unrolled by :class:`~.stack.RecurrentStack`, which a head turns into a model:
:class:`~.language_model.RecurrentLanguageModel` (embedding -> stack -> decoder) today; an encoder or
a decoder of a sequence-to-sequence model is another head on the same stack.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from lstmviz.hooks.taps import TapDecl

State = tuple[Tensor, ...]


class RecurrentLayer(nn.Module):
    """One recurrent layer. Subclasses implement :meth:`step` and usually :meth:`project_input`.

    Args:
        input_size: features of the layer's input ``y^{l-1}_t``.
        hidden_size: units of the layer's output and of every state tensor.
        layer: the layer's index (used in tap names ``layer{layer}/...``).
    """

    #: names of the state tensors carried from step to step, e.g. ("h", "c"); the first is the output
    state_names: ClassVar[tuple[str, ...]] = ("h",)
    #: the layer's taps, in the order they are created (the order of signals in a recording)
    taps: ClassVar[tuple[TapDecl, ...]] = ()

    def __init__(self, input_size: int, hidden_size: int, *, layer: int):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.layer = layer
        for decl in self.taps:
            setattr(self, decl.attribute, decl.make(layer))

    @classmethod
    def tap_patterns(cls) -> tuple[str, ...]:
        """The tap names of one layer with ``{layer}`` for its index, as an engine spec lists them."""
        return tuple(decl.pattern() for decl in cls.taps)

    def project_input(self, x: Tensor) -> Tensor:
        """The part of the step's input that depends only on ``x`` ([B, T, input_size]), for all steps.

        The default passes ``x`` through; variants return ``W_x x + b`` computed in one GEMM.
        """
        return x

    def step(self, x_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        """One time step: ``(output [B, hidden_size], new_state)`` from ``project_input(x)[:, t]``."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, hidden_size={self.hidden_size}, layer={self.layer}"


class GatedLayer(RecurrentLayer):
    """A layer with ``nn.LSTM``/``nn.GRU``-style parameters: ``gate_count`` stacked gate blocks.

    ``weight_ih`` [G*H, input_size], ``weight_hh`` [G*H, H], ``bias_ih`` and ``bias_hh`` [G*H], laid
    out as in PyTorch's fused modules so weights copy over one to one.
    """

    gate_count: ClassVar[int] = 1

    def __init__(self, input_size: int, hidden_size: int, *, layer: int):
        super().__init__(input_size, hidden_size, layer=layer)
        rows = self.gate_count * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(rows))
        self.bias_hh = nn.Parameter(torch.empty(rows))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: U(-1/sqrt(H), 1/sqrt(H)); the language model re-draws with its init_range."""
        bound = self.hidden_size ** -0.5
        with torch.no_grad():
            for p in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh):
                p.uniform_(-bound, bound)
