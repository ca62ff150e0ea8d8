"""File > Export Selection Data…: a pane's selected units and its candidate ranking as CSV or NPY.

The chosen file gets the selected units (``selection_columns``: unit, sign, rank, margin, on
fractions); a second file beside it, ``<name>-candidates.<suffix>``, gets the whole ranking. Both are
written by ``lstmviz.analysis.export_data.write_table`` (temp file + rename).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstmviz.qt.pane import Pane

FILTERS = {".csv": "CSV table (*.csv)", ".npy": "NumPy structured array (*.npy)"}


def candidates_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(f"{path.stem}-candidates{path.suffix}")


def ranking_columns(ranking) -> dict:
    """rank, unit, sign, margin, on_fraction_range, on_fraction_padding of every candidate."""
    return {
        "rank": np.arange(1, len(ranking) + 1, dtype=np.int64),
        "unit": np.asarray(ranking.units, dtype=np.int64),
        "sign": np.asarray(ranking.signs, dtype=np.int64),
        "margin": np.asarray(ranking.margin, dtype=np.float64),
        "on_fraction_range": np.asarray(ranking.on_fraction_range, dtype=np.float64),
        "on_fraction_padding": np.asarray(ranking.on_fraction_padding, dtype=np.float64),
    }


def pane_to_export(panes: list[Pane], active: int) -> int:
    """The index of the pane whose selection File > Export Selection Data writes: the active pane when
    it has a selection, else the only pane that has one. ValueError (a sentence naming the panes to
    choose from) when no pane, or several other panes, have one."""
    if not panes:
        raise ValueError("no recording is open")
    if panes[active].selection is not None:
        return active
    having = [i for i, pane in enumerate(panes) if pane.selection is not None]
    if len(having) == 1:
        return having[0]
    if not having:
        raise ValueError("nothing is selected in any pane: brush a range over a pane's tokens first")
    names = ", ".join(f"Pane {i + 1}" for i in having[:-1]) + f" and Pane {having[-1] + 1}"
    raise ValueError(f"Pane {active + 1}, the active pane, has no selection; {names} have one: click the pane "
                     "whose selection you want to save, then export again")


def export_selection(pane: Pane, path: str | Path) -> list[Path]:
    """Write the pane's selection (and ranking, if any) and return the files written.

    ValueError (a sentence) when there is nothing selected or the suffix is not .csv / .npy.
    """
    from lstmviz.analysis.export_data import selection_columns, write_table

    if pane.selection is None:
        raise ValueError("nothing is selected in the active pane: brush a range over its tokens first")
    if Path(path).suffix.lower() not in FILTERS:
        raise ValueError(f"cannot save a table as {Path(path).name!r}: use a file name ending in .csv or .npy")
    written = [write_table(path, selection_columns(pane.selection, pane.ranking))]
    if pane.ranking is not None and len(pane.ranking):
        written.append(write_table(candidates_path(path), ranking_columns(pane.ranking)))
    return written
