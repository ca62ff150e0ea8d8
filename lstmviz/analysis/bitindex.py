"""The match index: which units are on at which positions, as packed bits, in two layouts.

A unit is *on* in the positive direction at position t when its raw value is >= its positive threshold,
and on in the negative direction when its raw value is <= its negative threshold (see
``lstmviz.analysis.transforms.raw_thresholds``: a threshold set in tanh or z-score space maps to raw
thresholds per unit, so the file is never transformed).

Layouts (bit order ``little``: bit i of byte j is element 8*j + i, as ``np.packbits(bitorder="little")``):

- row-major ``rows[sign]``: uint8 ``[n_positions, ceil(n_units / 8)]``; row t holds the units on at t.
  Used to re-score candidates (every unit over a few positions).
- unit-major ``units[sign]``: uint8 ``[n_units, ceil(n_positions / 8)]``; row u holds the positions where
  unit u is on. Used to count the selected units per position (only the selected rows are read).

``sign`` is +1 (positive direction) or -1 (negative direction).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SIGNS = (1, -1)


@dataclass(frozen=True)
class IndexKey:
    """What an index was built from: the tap, the view transform and the threshold in that transform."""

    tap: str
    transform: str
    threshold: float


@dataclass
class BitIndex:
    n_positions: int
    n_units: int
    item_offsets: np.ndarray  # int64 [n_items + 1]
    rows: dict[int, np.ndarray]  # sign -> uint8 [n_positions, ceil(n_units/8)]
    units: dict[int, np.ndarray]  # sign -> uint8 [n_units, ceil(n_positions/8)]
    key: IndexKey | None = None
    #: raw thresholds per unit that produced the bits: sign -> float64 [n_units]
    thresholds: dict[int, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_bool(cls, on_pos: np.ndarray, on_neg: np.ndarray | None = None, item_offsets=None,
                  key: IndexKey | None = None) -> "BitIndex":
        """An in-memory index from boolean matrices ``[n_positions, n_units]`` (tests, small data)."""
        on_pos = np.asarray(on_pos, dtype=bool)
        if on_pos.ndim != 2:
            raise ValueError(f"on_pos must be [positions, units], got shape {on_pos.shape}")
        if on_neg is None:
            on_neg = np.zeros_like(on_pos)
        on_neg = np.asarray(on_neg, dtype=bool)
        if on_neg.shape != on_pos.shape:
            raise ValueError(f"on_neg has shape {on_neg.shape}, on_pos {on_pos.shape}")
        n, d = on_pos.shape
        if item_offsets is None:
            item_offsets = np.array([0, n], dtype=np.int64)
        item_offsets = np.asarray(item_offsets, dtype=np.int64)
        if item_offsets[0] != 0 or item_offsets[-1] != n or np.any(np.diff(item_offsets) < 0):
            raise ValueError("item_offsets must rise from 0 to n_positions")
        rows, units = {}, {}
        for sign, on in ((1, on_pos), (-1, on_neg)):
            rows[sign] = np.packbits(on, axis=1, bitorder="little")
            units[sign] = np.packbits(np.ascontiguousarray(on.T), axis=1, bitorder="little")
        return cls(n_positions=n, n_units=d, item_offsets=item_offsets, rows=rows, units=units, key=key)

    def on(self, sign: int, start: int, stop: int, units=None) -> np.ndarray:
        """bool ``[stop - start, len(units)]``: which units are on at positions ``[start, stop)``."""
        bits = np.unpackbits(self.rows[sign][start:stop], axis=1, count=self.n_units, bitorder="little")
        bits = bits.astype(bool)
        return bits if units is None else bits[:, units]

    @property
    def n_items(self) -> int:
        return len(self.item_offsets) - 1
