"""hershey-strokes: glyphs of the Hershey fonts as (dx, dy, pen_up) steps."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("HersheyFonts")

from lstmviz.datasets import registry  # noqa: E402
from lstmviz.datasets.base import MissingDependency  # noqa: E402
from lstmviz.datasets.hershey_strokes import (  # noqa: E402
    HersheyStrokes, glyph_strokes, resample, steps_to_strokes, strokes_to_steps)


def test_registered_and_shaped():
    d = registry.get("hershey-strokes").build(split="valid", per_font=1)
    assert len(d) == 10 * 12 and d.vocab == ["·", "↑"] and d.class_names == tuple("0123456789")
    for item in d:
        assert item.steps.shape == (len(item.tokens), 3) and item.steps.dtype == np.float32
        assert np.array_equal(item.tokens, item.steps[:, 2].astype(np.int64))
        assert item.steps[-1, 2] == 1.0 and item.item_annotations["class"] == item.target
        assert len(item.annotations["stroke"]) == len(item)
        # pen-down steps have length about one resampling spacing (the normalisation)
        down = np.r_[False, item.steps[:-1, 2] < 0.5]
        lengths = np.hypot(item.steps[down, 0], item.steps[down, 1])
        assert 0.3 < np.median(lengths) < 1.7


def test_steps_rebuild_the_glyph_and_splits_differ():
    strokes = [resample(s, 0.1) for s in glyph_strokes("futural", "4")]
    back = steps_to_strokes(strokes_to_steps(strokes, 0.1), 0.1)
    assert len(back) == len(strokes) == 2  # the Hershey '4' is drawn in two strokes
    for a, b in zip(back, strokes):
        np.testing.assert_allclose(a, b, atol=1e-5)
    one = glyph_strokes("futural", "1")
    assert max(np.ptp(np.concatenate(one), axis=0)) == pytest.approx(1.0)  # larger side of the box is 1
    train, test = HersheyStrokes("train", per_font=1), HersheyStrokes("test", per_font=1)
    assert not np.array_equal(train[0].steps, test[0].steps)
    assert np.array_equal(train[0].steps, HersheyStrokes("train", per_font=1)[0].steps)  # reproducible


def test_missing_package_names_the_extra(monkeypatch):
    from lstmviz.datasets import hershey_strokes

    hershey_strokes._font.cache_clear()
    monkeypatch.setitem(sys.modules, "HersheyFonts", None)
    with pytest.raises(MissingDependency, match=r'pip install "lstmviz\[strokes\]"'):
        HersheyStrokes("train", per_font=1)
    hershey_strokes._font.cache_clear()
