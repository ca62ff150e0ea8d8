"""The hook point of a stock ``nn.LSTM`` / ``nn.GRU``: one replacement of its ``forward``, shared by
a reader and any number of editors.

A torch forward hook sees only what the module returns (the top layer's ``h``); every layer's states
and gates are inside the fused kernel. While anything is subscribed, :class:`RNNPoint` replaces the
module's ``forward`` on the instance (and restores it when the last subscription is removed):

- with no editor, by :func:`~.rnn_layerwise.forward_layerwise`: the same fused kernel, one layer at a
  time, bit-identical to the module's own forward; the reader gets each layer's
  :class:`~.rnn_layerwise.LayerTrace` and recovers gates and cells from the weights (exact and fast);
- with an editor, for that run only, by :func:`~.rnn_steps.forward_steps`: a per-step path where each
  signal passes through the editors before the recurrence uses it; the reader gets each layer's
  :class:`~.rnn_steps.StepTrace`, i.e. the values the model really computed, edits included.

Subscriptions are made through a :class:`~lstmviz.hooks.scope.HookScope`, which removes them on exit.
"""

from __future__ import annotations

import weakref
from typing import Callable

from torch import Tensor, nn

from .rnn_layerwise import forward_layerwise, is_recoverable_rnn
from .rnn_steps import forward_steps


class _Subscription:
    def __init__(self, point: "RNNPoint", item):
        self._point = point
        self._item = item

    def remove(self) -> None:
        if self._point is not None:
            self._point._remove(self._item)
            self._point = None


class RNNPoint:
    """The shared ``forward`` replacement of one ``nn.LSTM``/``nn.GRU`` (get it with :meth:`of`)."""

    _points: "weakref.WeakKeyDictionary[nn.Module, RNNPoint]" = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, module: nn.Module) -> "RNNPoint":
        if not is_recoverable_rnn(module):
            raise TypeError(f"expected an nn.LSTM or nn.GRU with its stock forward, got {type(module).__name__}")
        point = cls._points.get(module)
        if point is None:
            point = cls._points[module] = cls(module)
        return point

    def __init__(self, module: nn.Module):
        self._module = weakref.ref(module)
        self._reader: Callable | None = None
        self._editors: list[tuple[str, Callable[[Tensor, int], Tensor | None]]] = []
        self._installed = False

    @property
    def module(self) -> nn.Module:
        module = self._module()
        if module is None:  # pragma: no cover - a point is only used while its module is alive
            raise RuntimeError("the module of this RNNPoint no longer exists")
        return module

    @property
    def edited(self) -> bool:
        """Whether the next forward takes the per-step path."""
        return bool(self._editors)

    def add_reader(self, on_layer: Callable, what: str = "") -> _Subscription:
        """Subscribe ``on_layer(trace)``, called once per layer of every forward. One reader at a time."""
        if self._reader is not None:
            raise ValueError(self._taken("record", what))
        self._install("record", what)
        self._reader = on_layer
        return _Subscription(self, ("reader", on_layer))

    def add_editor(self, local: str, fn: Callable[[Tensor, int], Tensor | None], what: str = "") -> _Subscription:
        """Subscribe ``fn(value [batch, units], step)`` for signal ``local`` (``layer0/c``); it returns the
        replacement or ``None`` to keep the value. Editors of one signal run in the order they were added."""
        self._install("intervene", what)
        item = ("editor", (local, fn))
        self._editors.append((local, fn))
        return _Subscription(self, item)

    def _taken(self, verb: str, what: str) -> str:
        where = what or type(self.module).__name__
        if verb == "record":
            return (f"cannot record inside {where}: its forward is already replaced on the instance (by another "
                    f"Recorder or a patch); record it from one Recorder")
        return (f"cannot intervene inside {where}: its forward is already replaced on the instance by a patch "
                f"that is not lstmviz's; remove the patch first")

    def _install(self, verb: str, what: str) -> None:
        if self._installed:
            return
        if "forward" in self.module.__dict__:
            raise ValueError(self._taken(verb, what))
        self.module.forward = self._forward
        self._installed = True

    def _remove(self, item) -> None:
        kind, value = item
        if kind == "reader":
            if self._reader is value:
                self._reader = None
        else:
            for k, entry in enumerate(self._editors):
                if entry[0] == value[0] and entry[1] is value[1]:
                    del self._editors[k]
                    break
        if self._reader is None and not self._editors and self._installed:
            module = self._module()
            if module is not None and module.__dict__.get("forward") == self._forward:
                del module.forward
            self._installed = False

    def _forward(self, input, hx=None):
        on_layer = self._reader
        if self._editors:
            return forward_steps(self.module, input, hx, self._edit, on_layer)
        return forward_layerwise(self.module, input, hx, on_layer)

    def _edit(self, local: str, value: Tensor, step: int) -> Tensor:
        for name, fn in self._editors:
            if name == local:
                result = fn(value, step)
                if result is not None:
                    value = result
        return value
