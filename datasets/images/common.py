"""Shared pieces of the image datasets: an in-memory dataset over stacked arrays, splits, resizing."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..base import AnnotationSpec, DatasetError
from ..image_base import ImageDataset, ImageItem

SPLITS = ("train", "valid", "test")
TRAIN_FRACTION, VALID_FRACTION = 0.6, 0.2


def check_options(name: str, options: dict, defaults: dict) -> None:
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise DatasetError(f"dataset {name!r} has no option {unknown[0]!r}; options: {', '.join(defaults)}")


def split_indices(n: int, seed: int) -> dict[str, np.ndarray]:
    """A seeded permutation of ``n`` items: 60 % train, 20 % valid, the rest test."""
    perm = np.random.default_rng(seed).permutation(n)
    a = int(round(TRAIN_FRACTION * n))
    b = a + int(round(VALID_FRACTION * n))
    return {"train": perm[:a], "valid": perm[a:b], "test": perm[b:]}


def resize(images: np.ndarray, size: int, mode: str) -> np.ndarray:
    """``images [N, C, h, w]`` resized to ``size × size`` (numpy only): ``nearest`` repeats pixels
    (``size`` a multiple of ``h``), ``bilinear`` interpolates between pixel centres (edges clamped)."""
    n, c, h, w = images.shape
    if size == h and size == w:
        return images
    if mode == "nearest":
        ys = (np.arange(size) * h) // size
        xs = (np.arange(size) * w) // size
        return images[:, :, ys][:, :, :, xs]
    if mode != "bilinear":
        raise DatasetError(f"option 'resize' must be 'nearest' or 'bilinear', got {mode!r}")

    def coords(n_in: int):
        t = np.clip((np.arange(size) + 0.5) * n_in / size - 0.5, 0, n_in - 1)
        lo = np.floor(t).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (t - lo).astype(np.float32)

    y0, y1, fy = coords(h)
    x0, x1, fx = coords(w)
    rows = images[:, :, y0] * (1 - fy)[:, None] + images[:, :, y1] * fy[:, None]
    return (rows[:, :, :, x0] * (1 - fx) + rows[:, :, :, x1] * fx).astype(np.float32)


class ArrayImageDataset(ImageDataset):
    """One split held as stacked arrays; items are views built on access.

    ``images [N, C, H, W]`` float32 in [0, 1]; ``targets [N]`` class ids; ``multi [N, K]`` 0/1 (multilabel
    only); ``masks [N, H, W]`` int64 pixel class ids, -1 = ignored (segmentation only); ``target_maps [N, Ct, H, W]`` float32 (regression only, ``Ct = len(class_names)``);
    ``tokens [N, H*W]``;
    ``position [name] -> [N, H*W]``; ``item [name] -> [N]``.
    """

    def __init__(self, *, name: str, split: str, images: np.ndarray, targets: np.ndarray, tokens: np.ndarray,
                 vocab: list[str], class_names: tuple[str, ...], annotation_specs: list[AnnotationSpec],
                 position: dict[str, np.ndarray], item: dict[str, np.ndarray], options: dict[str, Any],
                 source: str, task: str = "class", multi: np.ndarray | None = None,
                 masks: np.ndarray | None = None, target_maps: np.ndarray | None = None):
        self.name, self.split, self.vocab, self.class_names = name, split, list(vocab), tuple(class_names)
        self.annotation_specs, self.options, self.source, self.task = annotation_specs, options, source, task
        self.images = np.ascontiguousarray(images, dtype=np.float32)
        self.channels, self.height, self.width = (int(s) for s in self.images.shape[1:])
        self.targets = np.asarray(targets, dtype=np.int64)
        self.multi = None if multi is None else np.asarray(multi, dtype=np.float32)
        self.masks = None if masks is None else np.ascontiguousarray(masks, dtype=np.int64)
        if self.masks is not None:
            if self.masks.shape != (len(self.images), self.height, self.width):
                raise ValueError(f"masks: expected shape {(len(self.images), self.height, self.width)}, "
                                 f"got {self.masks.shape}")
            self.masks.flags.writeable = False
        self.target_maps = None if target_maps is None else np.ascontiguousarray(target_maps, dtype=np.float32)
        if self.target_maps is not None:
            want = (len(self.images), len(self.class_names), self.height, self.width)
            if self.target_maps.shape != want:
                raise ValueError(f"target_maps: expected shape {want}, got {self.target_maps.shape}")
            self.target_maps.flags.writeable = False
        self.tokens = np.asarray(tokens, dtype=np.int64)
        self.position = position
        self.item = item
        for a in (self.images, self.targets, self.tokens, *position.values(), *item.values()):
            a.flags.writeable = False

    def __len__(self) -> int:
        return len(self.images)

    def _item(self, i: int) -> ImageItem:
        item_values = {}
        for name, values in self.item.items():
            v = values[i]
            item_values[name] = int(v) if np.issubdtype(values.dtype, np.integer) else float(v)
        return ImageItem(image=self.images[i], tokens=self.tokens[i], target=int(self.targets[i]),
                         targets=None if self.multi is None else self.multi[i],
                         mask=None if self.masks is None else self.masks[i],
                         target_map=None if self.target_maps is None else self.target_maps[i],
                         annotations={k: v[i] for k, v in self.position.items()}, item_annotations=item_values)
