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
SELECTED_UNITS = (214, 39, 40)
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
    return int(round(255 * min(1.0, max(alpha, 0.04))))


def category_color(label: int) -> tuple[int, int, int]:
    """The colour of categorical label id ``label`` (ids past the palette wrap around)."""
    return CATEGORICAL[int(label) % len(CATEGORICAL)]


def categorical_lut(n_labels: int) -> np.ndarray:
    """An RGBA lookup table ``[n_labels + 1, 4]``: entry 0 is "missing" (transparent), entry i+1 is label i."""
    lut = np.zeros((n_labels + 1, 4), dtype=np.ubyte)
    lut[0] = MISSING
    for i in range(n_labels):
        lut[i + 1, :3] = category_color(i)
        lut[i + 1, 3] = 255
    return lut
