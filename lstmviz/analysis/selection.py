"""Hypothesis selection: which units are on over a brushed range and off on the padding around it.

Everything here works on one block of already transformed values ``[n, units]`` (the window the user
sees, a few hundred positions), so it runs on every mouse move: plain vectorised numpy, no file access.

The rule (see ``SelectionSpec``): a signed unit ``(u, +1)`` is selected when its value is >= threshold at
no fewer than ``ceil(tolerance * range length)`` positions of the brushed range and is not on (< threshold)
at any padding position; ``(u, -1)`` is the mirror image (<= -threshold on the range, > -threshold on the
padding). With tolerance 1.0 and direction "positive" this is LSTMVis's exact signature rule.

Padding is clipped: only padding positions inside the given values block and inside
``[item_start, item_stop)`` are checked, so padding that would fall in the previous item or outside the
data simply does not constrain anything (LSTMVis has no items, and wraps around at the window edge).
On and off follow the one rule of ``transforms.is_on`` (value as float32 >= threshold rounded to
float32), the rule the match index implements exactly, so a value on the threshold is treated alike in
Select and Match. A NaN value is never on, so it counts as off on the padding and as not on in the range.
"""

from __future__ import annotations

import math

import numpy as np

from lstmviz.analysis.selection_types import CandidateRanking, Selection, SelectionSpec
from lstmviz.analysis.transforms import is_on

#: up to this many units of one sign, active_counts gathers their columns instead of a product
_FEW_UNITS = 16
#: guards ceil(tolerance * length) against binary rounding (0.7 * 10 == 7.000000000000001)
_TOLERANCE_EPS = 1e-9


def required_on(spec: SelectionSpec) -> int:
    """How many positions of the range must be on: ``ceil(tolerance * length)``, at least 1."""
    return max(1, math.ceil(spec.tolerance * spec.length - _TOLERANCE_EPS))


def _signs_of(direction: str) -> tuple[int, ...]:
    return {"positive": (1,), "negative": (-1,), "both": (1, -1)}[direction]


def _windows(values, values_start: int, spec: SelectionSpec, item_start, item_stop):
    """The range rows and the padding rows of ``values`` (both views), and the padding bounds used."""
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"values must be [positions, units], got shape {values.shape}")
    n = values.shape[0]
    lo, hi = int(values_start), int(values_start) + n
    if spec.brush_start < lo or spec.brush_stop > hi:
        raise ValueError(f"the brushed range [{spec.brush_start}, {spec.brush_stop}) is not inside the values "
                         f"given for positions [{lo}, {hi})")
    if item_start is not None:
        if spec.brush_start < item_start:
            raise ValueError(f"the brushed range [{spec.brush_start}, {spec.brush_stop}) starts before its item "
                             f"(which begins at position {item_start}); brush inside one item")
        lo = max(lo, int(item_start))
    if item_stop is not None:
        if spec.brush_stop > item_stop:
            raise ValueError(f"the brushed range [{spec.brush_start}, {spec.brush_stop}) runs past the end of its "
                             f"item (position {item_stop}); brush inside one item")
        hi = min(hi, int(item_stop))
    left = (max(lo, spec.brush_start - spec.pad_left), spec.brush_start)
    right = (spec.brush_stop, min(hi, spec.brush_stop + spec.pad_right))
    base = int(values_start)
    rng = values[spec.brush_start - base:spec.brush_stop - base]
    pads = [values[a - base:b - base] for a, b in (left, right) if b > a]
    if len(pads) == 2:
        pad = np.concatenate(pads)
    elif pads:
        pad = pads[0]
    else:
        pad = values[:0]
    return values, rng, pad, left, right




def select_units(values, values_start: int, spec: SelectionSpec, *, item_start: int | None = None,
                 item_stop: int | None = None) -> Selection:
    """The signed units that ``spec`` selects, then ``spec.removed`` taken out, then ``spec.added`` put in.

    ``values``: transformed float ``[n, units]`` for positions ``[values_start, values_start + n)``; it
    must contain the brush. ``item_start`` / ``item_stop`` bound the padding that is checked (the item
    that holds the brush, which must not cross them). ``extra`` of the result holds ``required_on`` and
    the padding actually checked, ``padding_left`` / ``padding_right`` as ``(start, stop)``.
    Raises ``ValueError`` (a sentence) for a brush outside the values or its item, or an added unit
    outside ``0 .. units - 1`` or with a sign other than +1 / -1.
    """
    values, rng, pad, left, right = _windows(values, values_start, spec, item_start, item_stop)
    n_units = values.shape[1]
    need = required_on(spec)
    chosen = np.zeros((n_units, 2), dtype=bool)  # column 0: sign +1, column 1: sign -1
    for sign in _signs_of(spec.direction):
        on_range = is_on(rng, sign, spec.threshold)
        ok = on_range.all(axis=0) if need == spec.length else np.count_nonzero(on_range, axis=0) >= need
        if pad.shape[0]:
            ok &= ~is_on(pad, sign, spec.threshold).any(axis=0)
        chosen[:, 0 if sign > 0 else 1] = ok
    for u, s in spec.removed:
        _check_sign(s, "removed")
        if 0 <= u < n_units:
            chosen[u, 0 if s > 0 else 1] = False
    for u, s in spec.added:
        _check_sign(s, "added")
        if not 0 <= u < n_units:
            raise ValueError(f"cannot add unit {u}: the tap has units 0-{n_units - 1}")
        chosen[u, 0 if s > 0 else 1] = True
    flat = np.flatnonzero(chosen.ravel())  # row-major order is already (unit, +1 before -1)
    units = (flat // 2).astype(np.int64)
    signs = np.where(flat % 2 == 0, 1, -1).astype(np.int8)
    extra = {"required_on": need, "padding_left": left, "padding_right": right}
    return Selection(units, signs, spec, extra)


def _check_sign(sign: int, what: str) -> None:
    if sign not in (1, -1):
        raise ValueError(f"{what} units need sign +1 or -1, got {sign}")


def rank_candidates(values, values_start: int, spec: SelectionSpec, *, item_start: int | None = None,
                    item_stop: int | None = None) -> CandidateRanking:
    """Every signed unit of ``spec.direction`` ranked by its margin (see ``CandidateRanking``), best first.

    Ties are broken by the larger on-fraction difference (range minus padding; no padding counts as 0),
    then by the lower unit, then +1 before -1. Tolerance, added and removed units play no part here;
    the padding is clipped exactly as in ``select_units``. A unit with NaN values ranks last.
    """
    values, rng, pad, _, _ = _windows(values, values_start, spec, item_start, item_stop)
    n_units = values.shape[1]
    parts = []
    for sign in _signs_of(spec.direction):
        signed_rng = rng if sign > 0 else -rng
        low = signed_rng.min(axis=0).astype(np.float64)
        frac_rng = np.count_nonzero(is_on(rng, sign, spec.threshold), axis=0) / rng.shape[0]
        if pad.shape[0]:
            high = (pad if sign > 0 else -pad).max(axis=0).astype(np.float64)
            margin = low - high
            frac_pad = np.count_nonzero(is_on(pad, sign, spec.threshold), axis=0) / pad.shape[0]
        else:
            margin = low - float(spec.threshold)
            frac_pad = np.full(n_units, np.nan)
        parts.append((np.arange(n_units, dtype=np.int64), np.full(n_units, sign, np.int8), margin,
                      frac_rng.astype(np.float64), frac_pad.astype(np.float64)))
    units, signs, margin, frac_rng, frac_pad = (np.concatenate(col) for col in zip(*parts))
    gap = frac_rng - np.nan_to_num(frac_pad, nan=0.0)
    key_margin = np.where(np.isnan(margin), np.inf, -margin)
    order = np.lexsort((-signs, units, -gap, key_margin))
    return CandidateRanking(units[order], signs[order], margin[order], frac_rng[order], frac_pad[order])


def active_counts(values, units, signs, threshold: float) -> np.ndarray:
    """int32 ``[n]``: how many of the signed units ``(units[i], signs[i])`` are on at each row of ``values``."""
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"values must be [positions, units], got shape {values.shape}")
    units = np.asarray(units, dtype=np.int64).reshape(-1)
    signs = np.asarray(signs).reshape(-1)
    if signs.shape != units.shape:
        raise ValueError(f"{units.size} units but {signs.size} signs")
    bad = ~np.isin(signs, (1, -1))
    if bad.any():
        raise ValueError(f"signs must be +1 or -1, got {signs[bad][0]}")
    if units.size and (units.min() < 0 or units.max() >= values.shape[1]):
        bad = units.min() if units.min() < 0 else units.max()
        raise ValueError(f"unit {bad} is outside 0-{values.shape[1] - 1}")
    counts = np.zeros(values.shape[0], np.int32)
    for sign in (1, -1):
        cols = units[signs == sign]
        if cols.size <= _FEW_UNITS:
            if cols.size:
                counts += np.count_nonzero(is_on(values[:, cols], sign, threshold), axis=1).astype(np.int32)
        else:
            # many units: one comparison of the whole block and a matrix-vector product with the
            # per-unit multiplicities is ~10x faster than gathering columns (exact below 2**24)
            weights = np.bincount(cols, minlength=values.shape[1]).astype(np.float32)
            counts += np.rint(is_on(values, sign, threshold) @ weights).astype(np.int32)
    return counts
