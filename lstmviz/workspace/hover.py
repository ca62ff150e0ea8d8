"""What lies under the pointer: a position, its token and labels, and the unit of a pane nearest to it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Hover:
    """What lies under the mouse: a position, its token, and the unit of a pane nearest to the pointer."""

    position: int
    token: str
    item: int
    unit: int | None = None
    value: float | None = None
    labels: dict[str, str] = field(default_factory=dict)  # visible annotation name -> label or value
    pane: int | None = None  # index of the pane the unit belongs to
    selected: bool = False  # whether the unit is in that pane's selection


def make_hover(ws, position, value, pane_index, tolerance) -> Hover | None:
    """The Hover of workspace ``ws`` for the pointer at data x ``position`` and y ``value`` over pane
    ``pane_index`` (see ``Workspace.set_hover``), or None off the window's data."""
    if ws.recording is None or position is None:
        return None
    start, stop = ws.window_range()
    index = round(position) - start
    if not 0 <= index < stop - start:
        return None
    pos = start + index
    if pane_index is None or not 0 <= pane_index < len(ws.panes):
        pane_index = ws.active_index if ws.panes else None
    unit = unit_value = None
    selected = False
    if value is not None and pane_index is not None:
        pane = ws.panes[pane_index]
        column = pane.values()[index]
        if column.size and np.isfinite(column).any():
            unit = int(np.nanargmin(np.abs(column - value)))
            if tolerance is not None and pane.selection is not None and len(pane.selection):
                chosen = np.unique(pane.selection.units)
                distance = np.abs(column[chosen] - value)
                if np.isfinite(distance).any() and np.nanmin(distance) <= tolerance:
                    unit = int(chosen[int(np.nanargmin(distance))])
            unit_value = float(column[unit])
            selected = pane.selection is not None and unit in set(pane.selection.units.tolist())
    return Hover(
        position=pos,
        token=ws.recording.tokens(pos, pos + 1)[0],
        item=int(ws.recording.item_of(pos)),
        unit=unit,
        value=unit_value,
        labels=_labels_at(ws, pos),
        pane=pane_index,
        selected=selected,
    )


def _labels_at(ws, pos: int) -> dict[str, str]:
    labels = {}
    for info in ws.annotation_tracks():
        raw = ws.annotation_values(info.name, pos, pos + 1)[0]
        if info.kind == "categorical":
            label_id = int(raw)
            names = info.labels or []
            labels[info.name] = names[label_id] if 0 <= label_id < len(names) else ("—" if label_id < 0 else str(label_id))
        else:
            labels[info.name] = "—" if not np.isfinite(raw) else f"{float(raw):.4g}"
    return labels
