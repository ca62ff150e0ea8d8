"""render_strokes_png draws each sample's strokes where they are, with y up."""

from __future__ import annotations

import numpy as np
from PySide6 import QtGui

from lstmviz.qt.strokes_png import render_strokes_png, strokes_of


def test_strokes_split_where_the_pen_lifts():
    steps = np.array([[0, 0, 0], [1, 0, 1], [0, 1, 0], [1, 0, 1]], np.float32)
    parts = strokes_of(steps)
    assert [len(p) for p in parts] == [2, 2]
    np.testing.assert_allclose(parts[1], [[1, 1], [2, 1]])


def test_png_draws_ink_in_the_upper_half_for_an_upper_stroke(qapp, tmp_path):
    # an L: a long vertical stroke going up, then (pen up) a short horizontal stroke at the top
    up = np.array([[0, 0, 0]] + [[0, 1, 0]] * 9 + [[0, 1, 1]], np.float32)
    bar = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 1]], np.float32)
    path = render_strokes_png([np.concatenate([up, bar])], tmp_path / "s.png", cell=64, labels=["x"])
    image = QtGui.QImage(str(path))
    assert image.width() == 64 and image.height() == 64 + 14
    ink = np.array([[QtGui.QColor(image.pixel(x, y)).blue() > QtGui.QColor(image.pixel(x, y)).red() + 40
                     for x in range(64)] for y in range(64)])
    ys, xs = np.nonzero(ink)
    assert len(ys) > 40
    bar_rows = ys[xs > 30]  # the stem is at x ≈ 24, the bar reaches x ≈ 40  # the bar lies right of the vertical stroke, and at the top (y up in the drawing)
    assert len(bar_rows) and bar_rows.max() < 16
