"""Image datasets: items that are images, with a target and per-pixel and per-image annotations.

An image dataset is a fixed split of images of one size. Each :class:`ImageItem` is one image whose
pixels are the item's positions on the main axis (raster order: row ``y`` then column ``x``, so
position ``p`` is pixel ``(p // width, p % width)``). ``annotations`` hold one value per pixel
(``[height * width]``, raster order: stroke/background, quadrant ...), ``item_annotations`` one per
image (its class ...). Models read ``image`` (float32 ``[channels, height, width]``, finite, in
``[0, 1]``); training reads ``target`` (a class id) or, for a multi-label dataset, ``targets`` (a
0/1 vector over the classes), or, for a segmentation dataset, ``mask`` (int64 ``[height, width]``: the
class id ``0 .. K-1`` of every pixel, ``-1`` = an ignored pixel; ``K`` = the number of pixel classes,
``class_names`` naming them), or, for a regression dataset, ``target_map`` (float32 ``[Ct, height, width]``,
finite: ``Ct`` target values per pixel, ``Ct = len(class_names)``, ``class_names`` naming the target
channels, e.g. ``("depth",)``). ``tokens`` are what the window's text strip shows per pixel (ids
into the dataset's ``vocab``). Nothing here imports torch.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lstmviz.errors import ExpectedError

from .base import AnnotationSpec, ItemDataset

TASKS = ("class", "multilabel", "segmentation", "regression")
"""``class``: one class per image (cross-entropy); ``multilabel``: a set of classes per image;
``segmentation``: one class per pixel (``ImageItem.mask``; the model returns logits ``[B, K, H, W]``);
``regression``: ``Ct`` real values per pixel (``ImageItem.target_map [Ct, H, W]``; the model returns
``[B, Ct, H, W]``; ``ImageData.num_classes`` and ``len(class_names)`` count the target channels ``Ct``)."""

IGNORE = -1
"""The mask value of an ignored pixel (no loss, no metric, stored as a missing annotation)."""


class ImageError(ExpectedError, ValueError):
    """An image that a model or the recorder cannot take (shape, channels, non-finite pixels); one sentence."""


def check_image(image: Any, *, channels: int | None = None, height: int | None = None,
                width: int | None = None, what: str = "the image") -> np.ndarray:
    """``image`` as float32 ``[C, H, W]``, or :class:`ImageError` saying what is wrong with it."""
    a = np.asarray(image)
    if a.ndim != 3:
        raise ImageError(f"{what} has shape {tuple(a.shape)}; expected [channels, height, width]")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise ImageError(f"{what} holds {a.dtype} values; expected real numbers")
    a = a.astype(np.float32, copy=False)
    expected = (channels, height, width)
    names = ("channels", "height", "width")
    for got, want, name in zip(a.shape, expected, names):
        if want is not None and got != want:
            raise ImageError(f"{what} has {got} {name if name != 'channels' else 'channel(s)'} "
                             f"(shape {tuple(a.shape)}); the model takes {want}")
    if not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).sum())
        raise ImageError(f"{what} has {bad} non-finite pixel value(s) (NaN or inf); fix or drop the image")
    return a


def check_mask(mask: Any, *, height: int | None = None, width: int | None = None, num_classes: int | None = None,
               what: str = "the mask") -> np.ndarray:
    """``mask`` as int64 ``[H, W]`` pixel class ids in ``0 .. num_classes - 1`` or :data:`IGNORE` (-1), or
    :class:`ImageError` saying what is wrong with it (one sentence)."""
    if mask is None:
        raise ImageError(f"{what} is missing; a segmentation image needs a mask, one class id per pixel")
    a = np.asarray(mask)
    if a.ndim != 2:
        raise ImageError(f"{what} has shape {tuple(a.shape)}; expected [height, width], one class id per pixel")
    for got, want, name in zip(a.shape, (height, width), ("height", "width")):
        if want is not None and got != want:
            raise ImageError(f"{what} has {name} {got} (shape {tuple(a.shape)}); the image's is {want}")
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        raise ImageError(f"{what} holds {a.dtype} values; expected integer pixel class ids (-1 = ignored)")
    a = a.astype(np.int64, copy=False)
    if a.size:
        low, high = int(a.min()), int(a.max())
        top = None if num_classes is None else int(num_classes) - 1
        if low < IGNORE or (top is not None and high > top):
            bad = low if low < IGNORE else high
            span = "a class id of at least 0" if top is None else f"a class id in 0 .. {top}"
            raise ImageError(f"{what} has pixel class {bad}; expected -1 (ignored) or {span}")
    return a


def check_target_map(target_map: Any, *, channels: int | None = None, height: int | None = None,
                     width: int | None = None, what: str = "the target map") -> np.ndarray:
    """``target_map`` as float32 ``[Ct, H, W]`` with every value finite, or :class:`ImageError` saying what is
    wrong with it (one sentence: its shape or its finiteness)."""
    if target_map is None:
        raise ImageError(f"{what} is missing; a regression image needs a target map, [channels, height, width] "
                         f"real values")
    a = np.asarray(target_map)
    if a.ndim != 3:
        raise ImageError(f"{what} has shape {tuple(a.shape)}; expected [target channels, height, width]")
    for got, want, name in zip(a.shape, (channels, height, width), ("target channels", "height", "width")):
        if want is not None and got != want:
            raise ImageError(f"{what} has {got} {name} (shape {tuple(a.shape)}); expected {want}")
    if a.dtype == bool or not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise ImageError(f"{what} holds {a.dtype} values; expected real numbers")
    a = a.astype(np.float32, copy=False)
    if not np.isfinite(a).all():
        raise ImageError(f"{what} has {int((~np.isfinite(a)).sum())} non-finite value(s) (NaN or inf); every "
                         f"target value must be finite")
    return a


@dataclass
class ImageItem:
    """One image (see the module docstring). A ``mask`` is checked on construction (shape ``[H, W]`` of the
    image, integer ids >= -1; the upper bound needs the dataset's classes: :func:`check_mask`); a ``target_map``
too (float32 ``[Ct, H, W]`` of the image's size, finite: :func:`check_target_map`)."""

    image: np.ndarray
    tokens: np.ndarray
    target: int | None = None
    targets: np.ndarray | None = None
    annotations: dict[str, np.ndarray] = field(default_factory=dict)
    item_annotations: dict[str, int | float] = field(default_factory=dict)
    mask: np.ndarray | None = None
    target_map: np.ndarray | None = None

    def __post_init__(self) -> None:
        shape = np.shape(self.image)
        h, w = (shape[1], shape[2]) if len(shape) == 3 else (None, None)
        if self.mask is not None:
            self.mask = check_mask(self.mask, height=h, width=w, what="the image's mask")
        if self.target_map is not None:
            self.target_map = check_target_map(self.target_map, height=h, width=w, what="the image's target map")

    @property
    def height(self) -> int:
        return int(self.image.shape[1])

    @property
    def width(self) -> int:
        return int(self.image.shape[2])

    def __len__(self) -> int:
        return self.height * self.width


class ImageDataset(ItemDataset):
    """One split of an image dataset.

    Subclasses set ``name``, ``split``, ``vocab``, ``annotation_specs``, ``options``, ``source``,
    ``task`` (:data:`TASKS`), ``channels``, ``height``, ``width``, ``class_names`` (for ``segmentation``:
    the pixel classes; for ``regression``: the target channels) and implement ``__len__`` and ``_item``. Every split of one dataset has the same image size and classes.
    """

    name: str
    split: str
    vocab: list[str]
    annotation_specs: list[AnnotationSpec]
    options: dict[str, Any]
    source: str
    task: str
    channels: int
    height: int
    width: int
    class_names: tuple[str, ...]

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of images."""

    @abc.abstractmethod
    def _item(self, i: int) -> ImageItem:
        """Image ``i``, with ``0 <= i < len(self)``."""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def provenance(self) -> dict[str, Any]:
        """JSON-serialisable description: name, split, options, source, task, size, classes, annotations."""
        return {
            "name": self.name,
            "split": self.split,
            "options": dict(self.options),
            "source": self.source,
            "task": self.task,
            "channels": int(self.channels),
            "height": int(self.height),
            "width": int(self.width),
            "classes": list(self.class_names),
            "vocab_size": len(self.vocab),
            "items": len(self),
            "annotations": {s.name: s.to_dict() for s in self.annotation_specs},
        }

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name}/{self.split}: {len(self)} images of "
                f"{self.channels}x{self.height}x{self.width}, {self.task} task, {self.num_classes} classes>")
