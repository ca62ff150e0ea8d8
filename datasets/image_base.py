"""Image datasets: items that are images, with a target and per-pixel and per-image annotations.

An image dataset is a fixed split of images of one size. Each :class:`ImageItem` is one image whose
pixels are the item's positions on the main axis (raster order: row ``y`` then column ``x``, so
position ``p`` is pixel ``(p // width, p % width)``). ``annotations`` hold one value per pixel
(``[height * width]``, raster order: stroke/background, quadrant ...), ``item_annotations`` one per
image (its class ...). Models read ``image`` (float32 ``[channels, height, width]``, finite, in
``[0, 1]``); training reads ``target`` (a class id) or, for a multi-label dataset, ``targets`` (a
0/1 vector over the classes). ``tokens`` are what the window's text strip shows per pixel (ids
into the dataset's ``vocab``). Nothing here imports torch.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lstmviz.errors import ExpectedError

from .base import AnnotationSpec, ItemDataset

TASKS = ("class", "multilabel")
"""``class``: one class per image (cross-entropy); ``multilabel``: a set of classes per image."""


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


@dataclass
class ImageItem:
    """One image (see the module docstring)."""

    image: np.ndarray
    tokens: np.ndarray
    target: int | None = None
    targets: np.ndarray | None = None
    annotations: dict[str, np.ndarray] = field(default_factory=dict)
    item_annotations: dict[str, int | float] = field(default_factory=dict)

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
    ``task`` (:data:`TASKS`), ``channels``, ``height``, ``width``, ``class_names`` and implement
    ``__len__`` and ``_item``. Every split of one dataset has the same image size and classes.
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
