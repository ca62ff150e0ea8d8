"""Helpers for cells whose structure depends on a hyperparameter (RHN's depth, Array-LSTM's lanes).

:class:`~.stack.RecurrentStack` builds every layer as ``layer_class(input_size, hidden_size, layer=l)``
and reads the layer's ``state_names``, ``taps`` and ``gate_count`` from the class. A cell with a
structural hyperparameter therefore gets a subclass per value, made by :func:`configured_layer` (cached,
so equal settings give the same class), and an engine's model sets it as ``self.layer_class`` before
the base head builds the stack.

Such a cell has several taps of one kind (``micro0/t``, ``micro1/t``; ``lane0/c``, ``lane1/c``), which
:class:`IndexedTapDecl` keeps apart: the attribute gets the index (``t0_tap``, ``c1_tap``) while the
signal kind stays ``t`` or ``c``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lstmviz.hooks.taps import TapDecl


@dataclass(frozen=True)
class IndexedTapDecl(TapDecl):
    """A tap row of the ``index``-th micro-layer or lane: attribute ``{kind}{index}_tap``."""

    index: int = 0

    @property
    def attribute(self) -> str:
        return f"{self.kind}{self.index}_tap"


@lru_cache(maxsize=None)
def _subclass(base: type, options: tuple[tuple[str, Any], ...]) -> type:
    namespace = dict(options)
    namespace.update(__module__=base.__module__, __qualname__=base.__qualname__, __doc__=base.__doc__)
    return type(base.__name__, (base,), namespace)


def configured_layer(base: type, **options: Any) -> type:
    """``base`` with the class attributes ``options`` (a subclass per distinct setting, cached).

    ``base.configure(**options)`` must return the class attributes the setting implies (taps,
    state names, ...); they are set on the subclass together with ``options``.
    """
    attributes = dict(options)
    attributes.update(base.configure(**options))
    return _subclass(base, tuple(sorted(attributes.items())))


def check_positive_int(name: str, value: Any, allowed: str) -> int:
    """``value`` if it is an int >= 1, else a ValueError naming ``name`` and the allowed values."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected {name} to be a positive int ({allowed}), got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: tuple) -> Any:
    """``value`` if it is one of ``choices``, else a ValueError naming ``name`` and the choices."""
    if type(value) not in {type(c) for c in choices} or value not in choices:
        raise ValueError(f"expected {name} to be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
