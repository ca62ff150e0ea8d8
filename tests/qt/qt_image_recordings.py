"""Image recordings for the Image panel's tests, written with the v3 writer.

``write_image_recording``: ``n_items`` images of 12 × 12 pixels, 3 channels, stored as the tap ``input``
(3 units) on the main axis ``positions`` (one row per pixel), the pixel's grey level as its token
(16 levels) and a per-pixel annotation ``bright`` (categorical: dark / bright). ``with_input=False``:
no ``input`` tap; a one-unit main-axis tap ``edges`` instead.

Axis ``conv0`` (``CONV0``: a 3 × 3 conv with padding 1, then a 2 × 2 max pool: stride 2, receptive
field 4, offset 0.5, a 6 × 6 map), tap ``conv0`` (8 units, values near 0 except):
  units 2, 3: 1.0 on the cells of ``PLANTED_BOX`` (rows 1-2, columns 1-3) of item 0, 0 elsewhere;
  unit 5: 1.0 at every cell (on everywhere: never selected with a ring);
  unit 6: ``PEAK[item]`` at the cell ``PEAK_CELL[item]`` (a known top-activating order), 0 elsewhere.
Axis ``image`` (scalar), tap ``fc`` (5 units): item i's unit j is ``i + j / 10``.
``with_set=True`` adds axis ``modality`` (set, members ``SET_MEMBERS``, rows 0 .. 3 in order) and tap
``modalities`` (6 units): item i's member m, unit u is ``1 + i + m / 10 + u / 100``, except member 1 of item
``SET_ABSENT_ITEM``: zeros (a modality the input lacks).
"""

from __future__ import annotations

import numpy as np

from lstmviz.engines.families.image.api import ConvStep, conv_chain
from lstmviz.geometry import AxisGeometry, ImageGeometry, SetGeometry
from lstmviz.recording import RecordingWriter

SIZE = 12
CONV0 = conv_chain(SIZE, SIZE, [ConvStep(3, 1, 1), ConvStep(2, 2)])
#: (y0, x0, y1, x1) half-open, cells of conv0 where units 2 and 3 are on in item 0
PLANTED_BOX = (1, 1, 3, 4)
PEAK = (0.5, 2.0, 1.5, 3.0, 0.25, 2.5)
PEAK_CELL = (0, 7, 14, 21, 28, 35)
SET_MEMBERS = ("noisy", "blurred", "edges", "inverted")
SET_ABSENT_ITEM = 2


def set_values(item: int) -> np.ndarray:
    """float32 ``[4 members, 6 units]``: the ``modalities`` rows of ``item`` (module docstring)."""
    values = (1 + item + np.arange(4)[:, None] / 10 + np.arange(6)[None, :] / 100).astype(np.float32)
    if item == SET_ABSENT_ITEM:
        values[1] = 0.0
    return values


def write_image_recording(path, *, n_items=6, seed=3, with_input=True, with_set=False):
    rng = np.random.default_rng(seed)
    h, w = CONV0.size.height, CONV0.size.width
    with RecordingWriter(path, vocab=[f"g{i}" for i in range(16)],
                         provenance={"engine": "test", "dataset": "images"}) as writer:
        writer.set_geometry("positions", "image")
        writer.add_axis("conv0", description="first conv block", geometry=CONV0.geometry)
        writer.add_axis("image", description="one row per image", geometry="scalar")
        if with_input:
            writer.add_tap("input", 3, signal="input", description="the input pixels (RGB)")
        else:  # a main-axis tap that is not the input (the panel then shows the token ids)
            writer.add_tap("edges", 1, signal="edges")
        writer.add_tap("conv0", 8, axis="conv0", layer=0, signal="conv")
        writer.add_tap("fc", 5, axis="image", layer=1, signal="fc")
        if with_set:
            writer.add_axis("modality", description="one row per modality", geometry=AxisGeometry(
                kind="set", members=SET_MEMBERS))
            writer.add_tap("modalities", 6, axis="modality", signal="modalities",
                           description="per modality: a pooled embedding")
        writer.add_annotation("bright", kind="categorical", labels=["dark", "bright"])
        for item in range(n_items):
            image = 0.1 * rng.random((SIZE, SIZE, 3))
            y0 = item % 6
            image[y0:y0 + 4, 2:8, item % 3] += 0.85
            image = np.clip(image, 0, 1).astype(np.float32)
            grey = image.mean(2)
            conv = rng.uniform(-0.05, 0.05, size=(h * w, 8)).astype(np.float32)
            conv[:, 5] = 1.0
            conv[:, 6] = 0.0
            conv[PEAK_CELL[item % len(PEAK_CELL)], 6] = PEAK[item % len(PEAK)]
            if item == 0:
                by0, bx0, by1, bx1 = PLANTED_BOX
                cells = [y * w + x for y in range(by0, by1) for x in range(bx0, bx1)]
                conv[:, 2:4] = 0.0
                conv[cells, 2] = 1.0
                conv[cells, 3] = 1.0
            fc = (item + np.arange(5) / 10).astype(np.float32)[None, :]
            pixels = {"input": image.reshape(-1, 3)} if with_input else {"edges": grey.reshape(-1, 1)}
            sets, set_geometry = {}, {}
            if with_set:
                sets = {"modalities": set_values(item)}
                set_geometry = {"modality": SetGeometry(np.arange(4))}
            writer.append_item(np.minimum(15, (grey * 16).astype(np.int64)).reshape(-1),
                               {**pixels, "conv0": conv, "fc": fc, **sets},
                               annotations={"bright": (grey > 0.5).astype(np.int64).reshape(-1)},
                               geometry={"positions": ImageGeometry(SIZE, SIZE), "conv0": ImageGeometry(h, w),
                                         **set_geometry})
    return path
