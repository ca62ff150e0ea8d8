"""Taps: named identity modules that every recordable tensor of an engine passes through.

A tap does nothing to its input. Readers (the recorder) and writers (interventions) attach to it
through a :class:`~lstmviz.hooks.scope.HookScope`, so recording and intervention share one mechanism.
Every tap declares its :class:`~lstmviz.hooks.layout.TapLayout`: recurrent engines call a step tap
(:data:`~lstmviz.hooks.layout.STEP`) once per time step with a ``[batch, units]`` tensor and the step
index; whole-sequence signals are passed once as ``[batch, time, units]`` with ``step=None``.

An engine declares its taps as a table of :class:`TapDecl` (one row per signal) that its base class
expands into :class:`Tap` modules (see ``engines/recurrent/base.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from .layout import STEP, TOKENS, TapLayout


class Tap(nn.Module):
    """Identity module with a stable name such as ``layer0/c`` or ``layer1/gates/f``.

    Args:
        name: the signal's name in recordings; ``/`` separates layer, group and signal.
        signal: the kind of signal (``h``, ``c``, ``i``, ``f``, ``g``, ``o``, ``r``, ``z``, ``n`` ...).
        layer: the layer index, if the signal belongs to one.
        description: a sentence saying what the values are (stored in recordings).
        layout: which axes of the value are batch, positions and units (default: ``[batch, units]`` per
            step or ``[batch, time, units]``).
        axis: the recording axis whose rows the tap's positions are (``positions``, the main axis, or e.g.
            ``level1`` for a pooled graph level; docs/format.md "Axes").
    """

    def __init__(self, name: str, *, signal: str = "", layer: int | None = None, description: str = "",
                 layout: TapLayout = TOKENS, axis: str = "positions"):
        super().__init__()
        if not name or name.startswith("/") or name.endswith("/") or "//" in name:
            raise ValueError(f"tap name must be non-empty and '/'-separated without empty parts, got {name!r}")
        if not isinstance(layout, TapLayout):
            raise TypeError(f"expected layout to be a TapLayout, got {type(layout).__name__}")
        self.name = name
        self.signal = signal or name.rsplit("/", 1)[-1]
        self.layer = layer
        self.description = description
        self.layout = layout
        if not isinstance(axis, str) or not axis or "/" in axis:
            raise ValueError(f"a tap's axis must be a single name without '/', got {axis!r}")
        self.axis = axis

    def forward(self, x: Tensor, step: int | None = None) -> Tensor:
        return x

    def extra_repr(self) -> str:
        return f"{self.name!r}"


@dataclass(frozen=True)
class TapDecl:
    """One row of an engine's tap table: a signal of a layer, expanded into a :class:`Tap` per layer.

    ``name`` is the part after ``layer{l}/`` (``"gates/f"``, ``"c"``); ``signal`` defaults to its last
    part; the module attribute holding the tap is ``{signal}_tap``.
    """

    name: str
    description: str
    layout: TapLayout = STEP
    signal: str = ""

    @property
    def kind(self) -> str:
        return self.signal or self.name.rsplit("/", 1)[-1]

    @property
    def attribute(self) -> str:
        return f"{self.kind}_tap"

    def pattern(self) -> str:
        """The tap's name pattern with ``{layer}`` for the layer index, as ``EngineSpec.taps`` lists it."""
        return f"layer{{layer}}/{self.name}"

    def make(self, layer: int) -> Tap:
        return Tap(self.pattern().format(layer=layer), signal=self.kind, layer=layer, description=self.description,
                   layout=self.layout)


def find_taps(model: nn.Module) -> dict[str, Tap]:
    """All taps inside ``model`` by tap name, in module order; duplicate names are an error."""
    taps: dict[str, Tap] = {}
    for path, module in model.named_modules():
        if isinstance(module, Tap):
            if module.name in taps:
                raise ValueError(f"two taps are named {module.name!r} (second at module path {path!r})")
            taps[module.name] = module
    return taps
