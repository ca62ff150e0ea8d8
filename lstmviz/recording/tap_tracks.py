"""Taps that are one small integer per position, offered as tracks under the tokens like annotations.

A tap whose every row repeats one value over all its units, and whose values are integers in
``[0, MAX_LEVELS)``, carries a label per position rather than a state vector: HM-LSTM's boundary
``layer{l}/z`` (0/1, a natural hypothesis range) and its operation ``layer{l}/op`` (0 COPY, 1 UPDATE,
2 FLUSH). :func:`tap_tracks` finds them from the first :data:`SAMPLE` positions of each tap over the
main axis (a tap holding one value over all of them is left out) and describes each as a categorical, per-position :class:`~.format.AnnotationInfo` named
``TRACK_PREFIX + tap`` (labels ``"0"``, ``"1"``, ...); :func:`tap_track_values` reads its label ids
(column 0, rounded; a value outside the labels reads as -1, missing). Nothing is written to the file.
"""

from __future__ import annotations

import numpy as np

from .format import AnnotationInfo, RecordingError

#: the name of a tap's track is this prefix + the tap's name ("tap layer0/z")
TRACK_PREFIX = "tap "
#: the most distinct values a tap shown as a track may take
MAX_LEVELS = 8
#: positions read from each tap to decide whether it is a track
SAMPLE = 4096


def tap_tracks(recording) -> dict[str, AnnotationInfo]:
    """Track name -> description of every tap over the main axis that holds one integer label per position."""
    found = {}
    n = min(SAMPLE, int(recording.n_positions))
    if n == 0:
        return found
    for name, info in recording.taps.items():
        if getattr(info, "axis", "positions") != "positions":
            continue
        try:
            values = np.asarray(recording.states(name, 0, n), dtype=np.float64)
        except (RecordingError, OSError):
            continue  # a damaged tap is not offered as a track (reading it where it is shown says why)
        if values.ndim != 2 or values.shape[1] == 0 or not np.all(values == values[:, :1]):
            continue
        column = values[:, 0]
        if column.min() == column.max():
            continue  # one value everywhere (HM-LSTM's top layer never sets a boundary): nothing to show
        if not np.all((column >= 0) & (column < MAX_LEVELS) & (column == np.round(column))):
            continue
        levels = max(2, int(column.max()) + 1)
        description = (f"tap {name}, one value per position (every unit repeats it; shown as a track): "
                       f"{info.description}")
        found[TRACK_PREFIX + name] = AnnotationInfo(TRACK_PREFIX + name, "categorical", "position",
                                                    [str(v) for v in range(levels)], description)
    return found


def tap_track_values(recording, track: str, levels: int, start: int, stop: int) -> np.ndarray:
    """int32 label ids of the tap behind ``track`` over positions ``[start, stop)`` (-1: not a label)."""
    column = np.asarray(recording.states(track[len(TRACK_PREFIX):], start, stop, units=[0]),
                        dtype=np.float64).reshape(-1)
    ids = np.round(column)
    ok = np.isfinite(ids) & (ids >= 0) & (ids < levels)
    return np.where(ok, ids, -1).astype(np.int32)
