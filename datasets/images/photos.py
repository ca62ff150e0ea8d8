"""``photos``: square patches of scikit-learn's two bundled colour photos (``load_sample_images``).

``china.jpg`` and ``flower.jpg`` (427x640 RGB, CC BY 2.0 per scikit-learn) are cut into non-overlapping
``size × size`` patches (option ``size``, default 16); the class is which photo a patch comes from. The
patches are shuffled with ``seed`` and split 60/20/20 into train/valid/test; ``max_images`` keeps the first
patches of a split. Per pixel: ``dominant`` (categorical: the largest of R, G, B) and ``brightness``
(categorical: the mean of R, G, B in 4 buckets of 1/4); tokens: the brightness bucket. Needs Pillow
(extra ``vision``), which scikit-learn uses to read the JPEG files.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..base import AnnotationSpec, DatasetError, DatasetSpec, MissingDependency, check_int, check_split
from .common import SPLITS, ArrayImageDataset, check_options, split_indices
from .digits import grid_specs, pixel_grid

PHOTOS = ("china", "flower")
BRIGHTNESS = ("dark", "dim", "light", "bright")
OPTIONS = {"size": 16, "max_images": None, "seed": 0}
SOURCE = "scikit-learn's load_sample_images (china.jpg, flower.jpg; CC BY 2.0), cut into patches"
INSTALL_HINT = "pip install 'lstmviz[vision]'"


@functools.lru_cache(maxsize=1)
def load_photos() -> np.ndarray:
    """The two photos as float32 ``[2, 3, 427, 640]`` in ``[0, 1]``."""
    try:
        from PIL import Image  # scikit-learn reads the JPEG files with it
        from sklearn.datasets import load_sample_images
    except ImportError as exc:
        raise MissingDependency(f"the photos dataset needs scikit-learn and Pillow (the 'vision' extra): "
                                f"{INSTALL_HINT}") from exc
    del Image
    images = np.stack([np.asarray(im, dtype=np.float32) / 255.0 for im in load_sample_images().images])
    return images.transpose(0, 3, 1, 2)


def build(split: str = "train", **options: Any) -> ArrayImageDataset:
    """One split of the photo patches (module docstring)."""
    check_split("photos", split, SPLITS)
    check_options("photos", options, OPTIONS)
    opts = {**OPTIONS, **options}
    size = check_int("size", opts["size"], minimum=4)
    if size > 64:
        raise DatasetError(f"option 'size' must be at most 64 pixels, got {size}")
    check_int("max_images", opts["max_images"], minimum=1, allow_none=True)
    check_int("seed", opts["seed"], minimum=0)
    photos = load_photos()
    _, c, h, w = photos.shape
    ny, nx = h // size, w // size
    patches = photos[:, :, :ny * size, :nx * size].reshape(2, c, ny, size, nx, size)
    patches = patches.transpose(0, 2, 4, 1, 3, 5).reshape(2 * ny * nx, c, size, size)
    labels = np.repeat(np.arange(2), ny * nx)
    chosen = split_indices(len(labels), opts["seed"])[split][:opts["max_images"]]
    images = np.ascontiguousarray(patches[chosen])
    n = len(images)
    flat = images.reshape(n, c, size * size)
    brightness = np.minimum((flat.mean(1) * 4).astype(np.int64), 3)
    grid = pixel_grid(size, size)
    position = {"dominant": flat.argmax(1).astype(np.int64), "brightness": brightness,
                "quadrant": np.broadcast_to(grid["quadrant"], (n, size * size)),
                "row": np.broadcast_to(grid["row"], (n, size * size)),
                "col": np.broadcast_to(grid["col"], (n, size * size))}
    specs = [AnnotationSpec("dominant", "categorical", labels=("red", "green", "blue"),
                            description="the pixel's largest colour channel"),
             AnnotationSpec("brightness", "categorical", labels=BRIGHTNESS,
                            description="the mean of R, G, B in quarters"), *grid_specs(),
             AnnotationSpec("class", "categorical", level="item", labels=PHOTOS, description="which photo")]
    return ArrayImageDataset(name="photos", split=split, images=images, targets=labels[chosen], tokens=brightness,
                             vocab=list(BRIGHTNESS), class_names=PHOTOS, annotation_specs=specs, position=position,
                             item={"class": labels[chosen]}, options={k: opts[k] for k in OPTIONS}, source=SOURCE)


SPEC = DatasetSpec(name="photos", description="patches of scikit-learn's two bundled colour photos (which photo?)",
                   build=build, splits=SPLITS, options=dict(OPTIONS),
                   annotations=("dominant", "brightness", "quadrant", "row", "col", "class"), source=SOURCE)
