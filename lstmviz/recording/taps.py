"""Taps: named identity modules that every recordable tensor of an engine passes through.

A tap does nothing to its input. The recorder attaches forward hooks to taps to read their values,
and perturbation attaches hooks that return a replacement value, so recording and intervention share
one mechanism. Recurrent engines call a step tap once per time step with a ``[batch, units]`` tensor
and the step index; whole-sequence signals are passed once as ``[batch, time, units]`` with
``step=None``.
"""

from __future__ import annotations

from torch import Tensor, nn


class Tap(nn.Module):
    """Identity module with a stable name such as ``layer0/c`` or ``layer1/gates/f``.

    Args:
        name: the signal's name in recordings; ``/`` separates layer, group and signal.
        signal: the kind of signal (``h``, ``c``, ``i``, ``f``, ``g``, ``o``, ``r``, ``z``, ``n`` ...).
        layer: the layer index, if the signal belongs to one.
        description: a sentence saying what the values are (stored in recordings).
    """

    def __init__(self, name: str, *, signal: str = "", layer: int | None = None, description: str = ""):
        super().__init__()
        if not name or name.startswith("/") or name.endswith("/") or "//" in name:
            raise ValueError(f"tap name must be non-empty and '/'-separated without empty parts, got {name!r}")
        self.name = name
        self.signal = signal or name.rsplit("/", 1)[-1]
        self.layer = layer
        self.description = description

    def forward(self, x: Tensor, step: int | None = None) -> Tensor:
        return x

    def extra_repr(self) -> str:
        return f"{self.name!r}"


def find_taps(model: nn.Module) -> dict[str, Tap]:
    """All taps inside ``model`` by tap name, in module order; duplicate names are an error."""
    taps: dict[str, Tap] = {}
    for path, module in model.named_modules():
        if isinstance(module, Tap):
            if module.name in taps:
                raise ValueError(f"two taps are named {module.name!r} (second at module path {path!r})")
            taps[module.name] = module
    return taps
