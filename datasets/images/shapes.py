"""``shapes``: 20×20 binary images of three random outline shapes, with the object id of every pixel (Tagger's
perceptual-grouping data, issue 19; the "shapes" problem of Reichert & Serre 2014 that Greff et al. 2016 use).

Every image ``i`` is drawn from its own generator ``default_rng([seed, i])`` (so an image does not depend on
``images``). ``shapes`` (default 3) objects are painted in order, each a shape chosen uniformly from

- ``square``: a 7×7 outline two pixels thick (the 3×3 centre empty),
- ``up-triangle``: 7 rows × 12 columns; row ``r`` covers columns ``5 − r .. 6 + r`` (clipped to the 12 columns),
  and rows 3 and 4 leave their centre ``8 − r .. 3 + r`` empty, so the outline is about two pixels thick and
  the two bottom rows are solid,
- ``down-triangle``: the up-triangle flipped upside down,

at a uniform position that keeps it inside the image (top-left corner ``y ∈ 0 .. 20 − h``, ``x ∈ 0 .. 20 − w``).
The image is the **union** of the shapes (a pixel is 1 where any shape covers it: overlaps do not add up),
one channel, values 0 / 1.

Ground truth, per pixel (raster order):

- ``object`` (categorical ``background``, ``object 1`` .. ``object N``): the **top-most** (last painted) object
  covering the pixel, 0 where none does;
- ``overlap`` (categorical ``single`` / ``overlap``): covered by two or more objects;
- ``shape`` (categorical ``background``, ``square``, ``up-triangle``, ``down-triangle``): the top-most object's shape.

The segmentation **mask** (``ImageItem.mask``, what the image family's objective and the recorder's ``target``
read) is ``object`` with the overlap pixels set to ``-1`` (ignored): the pixels a grouping score scores are the
ones that belong to exactly one object, as in the Tagger reference code's shapes data, where overlaps and the
background are left unscored. Per image: ``visible`` (numeric: the number of objects with at least one pixel in
the mask). Tokens: ``off`` / ``on`` (the pixel's value). There is no image-level class (``target`` −1).
``class_names`` = ``background``, ``object 1`` .. ``object N``: the pixel classes, ``N + 1`` of them (the Tagger
engine takes that many groups). Splits: 60 / 20 / 20 % of ``images`` (default 5000) by a seeded permutation.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..base import AnnotationSpec, DatasetError, DatasetSpec, check_int, check_split
from .common import SPLITS, ArrayImageDataset, check_options, split_indices

SIZE = 20
OPTIONS = {"images": 5000, "shapes": 3, "seed": 0}
MAX_SHAPES = 5
SHAPE_NAMES = ("square", "up-triangle", "down-triangle")
SOURCE = ("synthetic (lstmviz.datasets.images.shapes): the shapes problem of Reichert & Serre 2014 as used by "
          "Greff et al. 2016 (Tagger)")


def _square() -> np.ndarray:
    s = np.ones((7, 7), bool)
    s[2:5, 2:5] = False
    return s


def _up_triangle() -> np.ndarray:
    t = np.zeros((7, 12), bool)
    for r in range(7):
        t[r, max(0, 5 - r):min(12, 7 + r)] = True
        if r in (3, 4):
            t[r, 8 - r:4 + r] = False
    return t


SHAPES = (_square(), _up_triangle(), _up_triangle()[::-1].copy())
"""The three shapes as bool arrays, in :data:`SHAPE_NAMES` order."""


def scene(rng: np.random.Generator, shapes: int = 3, size: int = SIZE):
    """One image: ``(image [size, size] float32 0/1, object [size, size] int64 (top-most, 0 = none),
    cover [size, size] int64 (how many objects cover the pixel), kind [size, size] int64 (0 = none, 1 + shape))``."""
    image = np.zeros((size, size), np.float32)
    obj = np.zeros((size, size), np.int64)
    cover = np.zeros((size, size), np.int64)
    kind = np.zeros((size, size), np.int64)
    for k in range(1, shapes + 1):
        which = int(rng.integers(0, len(SHAPES)))
        shape = SHAPES[which]
        h, w = shape.shape
        y, x = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
        region = (slice(y, y + h), slice(x, x + w))
        cover[region] += shape
        obj[region][shape] = k
        kind[region][shape] = 1 + which
    image[cover > 0] = 1.0
    return image, obj, cover, kind


@functools.lru_cache(maxsize=8)
def _generate(images: int, shapes: int, seed: int):
    n, hw = images, SIZE * SIZE
    pixels = np.empty((n, 1, SIZE, SIZE), np.float32)
    objects = np.empty((n, hw), np.int64)
    overlap = np.empty((n, hw), np.int64)
    kinds = np.empty((n, hw), np.int64)
    for i in range(n):
        image, obj, cover, kind = scene(np.random.default_rng([seed, i]), shapes)
        pixels[i, 0] = image
        objects[i] = obj.reshape(-1)
        overlap[i] = (cover > 1).reshape(-1)
        kinds[i] = kind.reshape(-1)
    masks = np.where(overlap > 0, -1, objects).reshape(n, SIZE, SIZE)
    visible = np.array([len(np.unique(m[m > 0])) for m in masks], np.float64)
    for a in (pixels, objects, overlap, kinds, masks, visible):
        a.flags.writeable = False
    return pixels, objects, overlap, kinds, masks, visible


def object_names(shapes: int) -> tuple[str, ...]:
    return ("background",) + tuple(f"object {k}" for k in range(1, shapes + 1))


def build(split: str = "train", **options: Any) -> ArrayImageDataset:
    """One split of ``shapes`` (module docstring)."""
    name = "shapes"
    check_split(name, split, SPLITS)
    check_options(name, options, OPTIONS)
    opts = {**OPTIONS, **options}
    images = check_int("images", opts["images"], minimum=5)
    shapes = check_int("shapes", opts["shapes"], minimum=1)
    if shapes > MAX_SHAPES:
        raise DatasetError(f"option 'shapes' must be at most {MAX_SHAPES} (a 20x20 image holds few more), got {shapes}")
    seed = check_int("seed", opts["seed"], minimum=0)
    pixels, objects, overlap, kinds, masks, visible = _generate(images, shapes, seed)
    chosen = split_indices(images, seed)[split]
    classes = object_names(shapes)
    specs = [AnnotationSpec("object", "categorical", labels=classes,
                            description="the top-most (last painted) object covering the pixel; background where none"),
             AnnotationSpec("overlap", "categorical", labels=("single", "overlap"),
                            description="whether two or more objects cover the pixel (unscored by the grouping AMI)"),
             AnnotationSpec("shape", "categorical", labels=("background",) + SHAPE_NAMES,
                            description="the shape of the top-most object covering the pixel"),
             AnnotationSpec("visible", "numeric", level="item",
                            description="the number of objects with at least one pixel covered by no other object")]
    tokens = pixels[chosen].reshape(len(chosen), -1).astype(np.int64)
    return ArrayImageDataset(name=name, split=split, images=pixels[chosen], targets=np.full(len(chosen), -1),
                             tokens=tokens, vocab=["off", "on"], class_names=classes, annotation_specs=specs,
                             position={"object": objects[chosen], "overlap": overlap[chosen], "shape": kinds[chosen]},
                             item={"visible": visible[chosen]}, options={k: opts[k] for k in OPTIONS},
                             source=SOURCE, task="segmentation", masks=masks[chosen])


SHAPES_SPEC = DatasetSpec(name="shapes", description="20x20 binary images of three random outline shapes (squares, "
                          "up/down triangles) with the object id of every pixel: perceptual grouping (Tagger)",
                          build=build, splits=SPLITS, options=dict(OPTIONS),
                          annotations=("object", "overlap", "shape", "visible"), source=SOURCE)

__all__ = ["OPTIONS", "SHAPES", "SHAPES_SPEC", "SHAPE_NAMES", "SIZE", "build", "object_names", "scene"]
