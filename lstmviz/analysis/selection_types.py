"""What a hypothesis selection asks for and what it selects (shared by selection, matching and views)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DIRECTIONS = ("positive", "negative", "both")


@dataclass(frozen=True)
class SelectionSpec:
    """A brushed range ``[brush_start, brush_stop)`` (absolute positions) and how to select units on it.

    A unit is selected in the positive direction when its (transformed) value is >= threshold at least at
    ``ceil(tolerance * range length)`` positions of the range and < threshold at every padding position
    (``pad_left`` before, ``pad_right`` after; padding outside the range's item is not checked). The
    negative direction is the mirror image: <= -threshold on the range, > -threshold on the padding.
    With tolerance 1.0 and direction "positive" this is exactly LSTMVis's rule.
    ``added`` / ``removed`` are (unit, sign) pairs the user forced in or out.
    """

    brush_start: int
    brush_stop: int
    threshold: float = 0.3
    pad_left: int = 1
    pad_right: int = 0
    tolerance: float = 1.0
    direction: str = "positive"
    added: tuple[tuple[int, int], ...] = ()
    removed: tuple[tuple[int, int], ...] = ()

    def __post_init__(self):
        if self.brush_stop <= self.brush_start:
            raise ValueError("the brushed range is empty")
        if self.pad_left < 0 or self.pad_right < 0:
            raise ValueError("off-padding must be >= 0 positions")
        if not 0.0 < self.tolerance <= 1.0:
            raise ValueError("tolerance must be in (0, 1]")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {self.direction!r}; choose one of {', '.join(DIRECTIONS)}")
        object.__setattr__(self, "added", tuple((int(u), int(s)) for u, s in self.added))
        object.__setattr__(self, "removed", tuple((int(u), int(s)) for u, s in self.removed))

    @property
    def length(self) -> int:
        return self.brush_stop - self.brush_start


@dataclass(frozen=True)
class Selection:
    """The selected signed units, sorted by (unit, -sign)."""

    units: np.ndarray  # int64 [k]
    signs: np.ndarray  # int8 [k], +1 or -1
    spec: SelectionSpec | None = None
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.units)

    def pairs(self) -> list[tuple[int, int]]:
        return [(int(u), int(s)) for u, s in zip(self.units, self.signs)]


@dataclass(frozen=True)
class CandidateRanking:
    """Every (unit, sign), ranked by how cleanly it separates the range from the padding, best first.

    ``margin`` = min over the range of sign*value - max over the padding of sign*value (with no padding
    positions: min over the range of sign*value - threshold); > 0 means some threshold separates them.
    """

    units: np.ndarray  # int64
    signs: np.ndarray  # int8
    margin: np.ndarray  # float64
    on_fraction_range: np.ndarray  # float64: fraction of range positions on at the threshold
    on_fraction_padding: np.ndarray  # float64: fraction of padding positions on (nan if none)

    def __len__(self) -> int:
        return len(self.units)
