"""What the axes of a tap's value mean: which is the batch, which hold positions, which holds units.

Every reader of a tap (the recorder, an intervention, a perturbation panel to come) works on one
view of a value, its *series* ``[batch, positions, units]``. A :class:`TapLayout` says how a value
becomes that view and back, so nothing downstream guesses from the number of dimensions (a CNN's
``[B, C, H, W]`` map read as ``[B, T, units]`` would make time out of channels).

The *geometry* says what a position is, once laid out: ``tokens`` (a step of a sequence, today's
recordings), ``graph`` (a node), ``image`` (a pixel of a feature map, in raster order), ``set`` (a
named member, e.g. a modality) or ``scalar`` (one position per item); the recording format (v3) stores
each axis's geometry (:mod:`lstmviz.geometry`).

Built-in layouts:

- :data:`STEP`: one call per step with ``[B, units]``; the step index is the call's ``step=`` (or the
  call's order); the recurrent engines' taps.
- :data:`SEQUENCE`: ``[B, T, units]``, batch first.
- :data:`TOKENS` (a :class:`~lstmviz.hooks.taps.Tap`'s default): either of the two, told apart by the
  number of dimensions; anything else is refused with a sentence asking for a declared layout.
- :data:`GRAPH`: ``[1, nodes, units]``, one graph per call (engines of the ``graph`` family).
- ``TapLayout(geometry="image", positions=(2, 3), units=1)``: ``[B, C, H, W]`` feature maps, positions
  in raster order (H then W).
- :data:`SET`: ``[B, M, units]``, one position per member of a set (an image engine's modalities or branches),
  members in the order of the axis's member names.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

GEOMETRIES = ("tokens", "graph", "image", "set", "scalar")
"""What a position is: a token (sequence step), a graph node, an image location, a set member, an item."""


@dataclass(frozen=True)
class TapLayout:
    """How a value's axes map to ``[batch, positions, units]``.

    Args:
        geometry: one of :data:`GEOMETRIES`.
        positions: the axes holding positions, in the order they are flattened (row-major); ``()``
            for a value that is one position (``[B, units]``); ``None`` for the token rule: ``[B, units]``
            is one position, ``[B, T, units]`` is ``T``.
        units: the axis holding units (negative counts from the end).
        batch: the axis holding the batch (with the token rule: of a 3-D value; ``1`` reads ``[T, B, units]``).
    """

    geometry: str = "tokens"
    positions: tuple[int, ...] | None = None
    units: int = -1
    batch: int = 0

    def __post_init__(self) -> None:
        if self.geometry not in GEOMETRIES:
            raise ValueError(f"expected a geometry in {', '.join(GEOMETRIES)}, got {self.geometry!r}")
        if self.positions is not None:
            object.__setattr__(self, "positions", tuple(int(a) for a in self.positions))
        object.__setattr__(self, "_axes_of", {})  # ndim -> _axes(ndim): taps are laid out at every step

    def dims(self) -> tuple[int, ...]:
        """The numbers of dimensions a value of this layout may have."""
        return (2, 3) if self.positions is None else (len(self.positions) + 2,)

    def _axes(self, ndim: int) -> tuple[int, tuple[int, ...], int]:
        axes = self._axes_of.get(ndim)
        if axes is None:
            axes = self._axes_of[ndim] = self._find_axes(ndim)
        return axes

    def _find_axes(self, ndim: int) -> tuple[int, tuple[int, ...], int]:
        if self.positions is None and ndim == 2:  # the token rule: one position, [B, units]
            return 0, (), 1
        batch, units = self.batch % ndim, self.units % ndim
        if self.positions is None:  # the token rule: [B, T, units] or, with batch=1, [T, B, units]
            positions = tuple(a for a in range(ndim) if a not in (batch, units))
        else:
            positions = tuple(a % ndim for a in self.positions)
        if len({batch, units, *positions}) != ndim:
            raise ValueError(f"a layout with batch axis {self.batch}, position axes {self.positions} and units axis "
                             f"{self.units} does not name each of {ndim} axes once")
        return batch, positions, units

    def check(self, value: Tensor, what: str) -> None:
        """``ValueError`` (one sentence) when ``value`` cannot be laid out this way."""
        if value.dim() not in self.dims():
            expected = " or ".join(f"{d}-D" for d in self.dims())
            hint = ("; declare the tap's layout (lstmviz.hooks.TapLayout: which axes are positions and which are "
                    "units) so that it can be laid out" if self.positions is None else "")
            raise ValueError(f"{what} produced a tensor of shape {tuple(value.shape)}; its layout ({self.describe()}) "
                             f"expects a {expected} tensor{hint}")

    def to_series(self, value: Tensor, what: str = "the tap") -> Tensor:
        """``value`` as ``[batch, positions, units]`` (a view when the axes allow it)."""
        self.check(value, what)
        batch, positions, units = self._axes(value.dim())
        if batch == 0 and units == value.dim() - 1 and positions == tuple(range(1, value.dim() - 1)):
            # already [batch, ..., units] (every recurrent tap, every batch-first sequence): no permute
            return value.unsqueeze(1) if value.dim() == 2 else value.flatten(1, -2) if value.dim() > 3 else value
        moved = value.permute(batch, *positions, units)
        return moved.reshape(moved.shape[0], -1, moved.shape[-1])

    def from_series(self, series: Tensor, like: Tensor) -> Tensor:
        """The inverse of :meth:`to_series`: ``series`` back in the layout (and shape) of ``like``."""
        batch, positions, units = self._axes(like.dim())
        order = (batch, *positions, units)
        if order == tuple(range(like.dim())):  # [batch, ..., units] already: no permute
            return series.reshape(like.shape)
        moved_shape = [like.shape[a] for a in order]
        moved = series.reshape(moved_shape)
        inverse = [order.index(a) for a in range(like.dim())]
        return moved.permute(*inverse)

    def describe(self) -> str:
        if self.positions is None:
            return f"{self.geometry}: [batch, units] per step or [batch, time, units]"
        if not self.positions:
            return f"{self.geometry}: [batch, units], one position per call"
        return (f"{self.geometry}: batch axis {self.batch}, position axes {list(self.positions)}, "
                f"units axis {self.units}")


TOKENS = TapLayout()
TOKENS_TIME_MAJOR = TapLayout(batch=1)
STEP = TapLayout(positions=())
SEQUENCE = TapLayout(positions=(1,))
GRAPH = TapLayout(geometry="graph", positions=(1,))
"""``[1, nodes, units]``: one graph's node states (graph engines run one graph per call)."""
IMAGE = TapLayout(geometry="image", positions=(2, 3), units=1)
"""``[B, C, H, W]``: feature maps, channels are units, positions in raster order (y, then x)."""
SCALAR = TapLayout(geometry="scalar", positions=())
"""``[B, units]``: one position per item (a fully connected layer, a pooled feature vector, the logits)."""
SET = TapLayout(geometry="set", positions=(1,))
"""``[B, M, units]``: one position per member of a set (row ``m`` = member ``m`` of the axis's names)."""
