"""Synthetic image recordings (format v3) for tests: an input-pixel main axis and one feature-map axis.

Not a test module (no ``test_`` prefix): import it from tests with ``from image_recordings import ...``
(tests/analysis is on ``sys.path`` under pytest's rootdir-relative imports) or by path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstmviz.geometry import AxisGeometry, ImageGeometry
from lstmviz.recording import RecordingWriter

#: the map after a 3x3 conv (padding 1) and a 2x2 pool: stride 2, receptive field 4, centre offset 0.5
STRIDE2 = AxisGeometry(kind="image", stride=2, receptive_field=4, offset=0.5)
LABELS = ("background", "object")


def write_image_recording(path, maps, *, geometry: AxisGeometry = STRIDE2, input_size=(8, 8), images=None,
                          pixel_labels=None, labels=LABELS, tap: str = "conv0", axis: str = "conv0",
                          dtype: str = "float32", more_taps=(), item_labels=None,
                          item_label_names=None) -> Path:
    """Write a recording of ``len(maps)`` images and return its path.

    ``maps[i]``: float ``[h, w, units]``, item i's feature map on ``axis`` (sizes may differ per item);
    ``geometry``: that axis's ``AxisGeometry(kind="image", ...)``; ``input_size``: ``(H, W)`` of every
    input, or one pair per item; ``images[i]``: ``[H, W, channels]`` pixels (tap ``image`` on the main
    axis; default zeros, one channel); ``pixel_labels[i]``: int ``[H, W]`` ids into ``labels`` for the
    categorical position annotation ``label`` (default: all 0). The main axis ``positions`` is the
    input's pixels (stride 1, receptive field 1). Taps: ``image`` (main axis), ``tap`` (on ``axis``) and
    ``logits`` (2 units, one row per image on the scalar axis ``scalar``: the mean of the map's first
    two units, NaN taken as 0); item annotation ``class`` (numeric: the item index mod 3).
    ``more_taps``: further ``(tap, axis, geometry, maps)`` feature maps, each on its own image axis;
    ``item_labels``: int per item, ids into ``item_label_names``, the categorical item annotation ``kind``.
    """
    maps = [np.asarray(m, dtype=np.float32) for m in maps]
    units = maps[0].shape[2]
    sizes = [tuple(input_size)] * len(maps) if np.ndim(input_size) == 1 else [tuple(s) for s in input_size]
    channels = 1 if images is None else np.asarray(images[0]).shape[2]
    with RecordingWriter(path, dtype=dtype, provenance={"dataset": "synthetic images"}) as w:
        w.set_geometry("positions", AxisGeometry(kind="image"))
        w.add_axis(axis, description="a synthetic feature map", geometry=geometry)
        w.add_tap("image", channels, signal="pixels")
        w.add_axis("scalar", description="one row per image", geometry="scalar")
        w.add_tap(tap, units, axis=axis)
        w.add_tap("logits", 2, axis="scalar")
        w.add_annotation("label", kind="categorical", labels=list(labels))
        w.add_annotation("class", kind="numeric", level="item")
        for extra_tap, extra_axis, extra_geometry, extra_maps in more_taps:
            w.add_axis(extra_axis, description="another synthetic feature map", geometry=extra_geometry)
            w.add_tap(extra_tap, np.asarray(extra_maps[0]).shape[2], axis=extra_axis)
        if item_labels is not None:
            w.add_annotation("kind", kind="categorical", level="item", labels=list(item_label_names))
        for i, m in enumerate(maps):
            h, w_, k = m.shape
            if k != units:
                raise ValueError(f"map {i} has {k} units, map 0 {units}")
            H, W = sizes[i]
            pixels = np.zeros((H, W, channels), np.float32) if images is None else np.asarray(images[i], np.float32)
            lab = np.zeros((H, W), np.int32) if pixel_labels is None else np.asarray(pixel_labels[i], np.int32)
            logits = np.nan_to_num(m[..., :2]).reshape(-1, min(2, units)).mean(axis=0)
            logits = np.resize(logits, 2).reshape(1, 2)
            taps = {"image": pixels.reshape(H * W, channels), tap: m.reshape(h * w_, units), "logits": logits}
            geometry = {"positions": ImageGeometry(H, W), axis: ImageGeometry(h, w_)}
            for extra_tap, extra_axis, _, extra_maps in more_taps:
                e = np.asarray(extra_maps[i], np.float32)
                taps[extra_tap] = e.reshape(-1, e.shape[2])
                geometry[extra_axis] = ImageGeometry(e.shape[0], e.shape[1])
            item_annotations = {"class": i % 3}
            if item_labels is not None:
                item_annotations["kind"] = int(item_labels[i])
            w.append_item(np.zeros(H * W, np.int64), taps, annotations={"label": lab.reshape(-1)},
                          item_annotations=item_annotations, geometry=geometry)
    return Path(path)


def random_maps(n_items: int, size=(4, 4), units: int = 6, *, seed: int = 0, p_on: float = 0.4, sizes=None):
    """Random maps ``[h, w, units]`` with values in {-1, 0, 1} (on at threshold 0.5 with probability
    ``p_on`` each side) and the odd NaN. ``sizes``: one (h, w) per item instead of ``size``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_items):
        h, w = size if sizes is None else sizes[i]
        u = rng.random((h, w, units))
        m = np.where(u < p_on, 1.0, np.where(u > 1 - p_on, -1.0, 0.0)).astype(np.float32)
        m[rng.random((h, w, units)) < 0.02] = np.nan
        out.append(m)
    return out
