"""Colours shared by the views: unit lines, highlights, and the categorical palette of annotations."""

from __future__ import annotations

import math

import numpy as np

BACKGROUND = (255, 255, 255)
FOREGROUND = (40, 40, 40)
AXIS = (110, 110, 110)
UNIT_LINE = (30, 30, 30)
HIGHLIGHT = (31, 119, 180)
HOVER_LINE = (214, 39, 40)
#: units the user asked to see (View > Highlight Units, --units)
HIGHLIGHTED_UNITS = (148, 103, 189)
#: the units a pane's selection holds
SELECTION = (214, 39, 40)
#: the brushed range (translucent over the plot, outlined on the token row)
BRUSH = (31, 119, 180)
#: the off-padding bands and their handles (hatched)
PADDING = (110, 110, 110)
#: token backgrounds by how many selected units are on (white to this)
ACTIVE_SHADE = (31, 119, 180)
THRESHOLD = (20, 120, 60)
ZERO_LINE = (150, 150, 150)
ITEM_BOUNDARY = (230, 120, 20)
MISSING = (0, 0, 0, 0)

#: A qualitative palette (Tableau 10, then its light variants) for categorical annotations.
CATEGORICAL = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
    (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229),
]


def unit_line_alpha(units: int) -> int:
    """Opacity (0-255) of one unit's line: 1/sqrt(D) as in LSTMVis, kept visible for small D."""
    alpha = 1.0 / math.sqrt(max(units, 1))
    return round(255 * min(1.0, max(alpha, 0.04)))


#: Anchors of a sequential ramp (ColorBrewer YlGnBu) for ordered labels such as depth 0, 1, 2, ...
SEQUENTIAL = [(255, 255, 204), (161, 218, 180), (65, 182, 196), (44, 127, 184), (37, 52, 148), (8, 29, 88)]


def is_ordinal(labels: list[str] | None) -> bool:
    """Labels that are all integers (depth, count) are shown on an ordered ramp."""
    if not labels:
        return False
    try:
        [int(label) for label in labels]
    except ValueError:
        return False
    return True


def _ramp(t: float) -> tuple[int, int, int]:
    t = min(1.0, max(0.0, t)) * (len(SEQUENTIAL) - 1)
    i = min(int(t), len(SEQUENTIAL) - 2)
    f = t - i
    a, b = SEQUENTIAL[i], SEQUENTIAL[i + 1]
    return tuple(round(a[k] + (b[k] - a[k]) * f) for k in range(3))


#: beyond this many labels, colours cannot be told apart: the most frequent ``MAX_DISTINCT - 1`` labels
#: keep one each (``DISTINCT``) and the rest share ``OTHER`` (the label is named on hover)
MAX_DISTINCT = 12
#: the qualitative palette without its greys (grey is "other"), most distinct first
DISTINCT = [c for c in CATEGORICAL if len(set(c)) > 1][: MAX_DISTINCT - 1]
OTHER = (200, 200, 200)


def label_colors(labels: list[str], frequencies=None) -> list[tuple[int, int, int]]:
    """One colour per label: an ordered ramp for integer labels, else the qualitative palette; with more
    than ``MAX_DISTINCT`` labels only the most frequent (by ``frequencies``, one count per label; else
    the first ones) get their own colour and the rest are ``OTHER``."""
    n = len(labels)
    if is_ordinal(labels) and n > 1:
        return [_ramp(0.1 + 0.9 * i / (n - 1)) for i in range(n)]
    if n <= MAX_DISTINCT:
        return [CATEGORICAL[i % len(CATEGORICAL)] for i in range(n)]
    return [DISTINCT[rank] if rank < len(DISTINCT) else OTHER for rank in frequency_ranks(n, frequencies)]


def frequency_ranks(n: int, frequencies=None) -> list[int]:
    """The rank of each of ``n`` labels by frequency (0 = most frequent; ties and no counts: label order)."""
    counts = np.zeros(n) if frequencies is None or len(frequencies) != n else np.asarray(frequencies, float)
    order = np.argsort(-counts, kind="stable")
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(n)
    return ranks.tolist()


def grouped_legend(labels: list[str], colors: list[tuple[int, int, int]]) -> list[tuple[str, tuple[int, int, int]]]:
    """The legend entries of ``label_colors``: each label with a colour of its own (palette order),
    then one "other (n labels)" entry for the labels that share ``OTHER``."""
    own = [(label, color) for label, color in zip(labels, colors) if color != OTHER or len(labels) <= MAX_DISTINCT]
    if len(labels) > MAX_DISTINCT and not is_ordinal(labels):
        own.sort(key=lambda entry: DISTINCT.index(entry[1]) if entry[1] in DISTINCT else len(DISTINCT))
        others = sum(1 for color in colors if color == OTHER)
        if others:
            own.append((f"other ({others} labels)", OTHER))
    return own


def categorical_lut(labels: list[str], frequencies=None) -> np.ndarray:
    """An RGBA lookup table ``[len(labels) + 1, 4]``: entry 0 is "missing" (transparent), entry i+1 is label i."""
    lut = np.zeros((len(labels) + 1, 4), dtype=np.ubyte)
    lut[0] = MISSING
    for i, color in enumerate(label_colors(labels, frequencies)):
        lut[i + 1, :3] = color
        lut[i + 1, 3] = 255
    return lut


def ramp_lut(n: int = 256) -> np.ndarray:
    """An RGBA lookup table ``[n, 4]`` along the sequential ramp, for numeric annotations."""
    lut = np.zeros((n, 4), dtype=np.ubyte)
    for i in range(n):
        lut[i, :3] = _ramp(i / max(1, n - 1))
        lut[i, 3] = 255
    return lut
