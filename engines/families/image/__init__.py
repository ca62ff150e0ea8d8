"""Family ``image``: models that read a batch of images and classify each one, or each of its pixels, or
predict real values per pixel.

- data description: :class:`ImageData` (``channels``, ``height``, ``width``, ``num_classes``, ``task``),
  from an :class:`~lstmviz.datasets.image_base.ImageDataset` or from a checkpoint (its ``data`` entry);
- inputs: float32 ``[B, C, H, W]`` tensors in ``[0, 1]`` (:func:`sample_inputs`); outputs ``[B, classes]``
  logits (``class``, ``multilabel``) or ``[B, classes, H, W]`` per-pixel logits (``segmentation``:
  ``num_classes`` counts the pixel classes) or ``[B, Ct, H, W]`` real values (``regression``: ``num_classes``
  counts the target channels ``Ct``); taps are feature maps (``IMAGE``) or vectors (``SCALAR``) on axes the model describes
  (:mod:`.api`);
- training (:mod:`.objective`): cross-entropy over the images (``class`` task) or per-class binary
  cross-entropy (``multilabel``) or per-pixel cross-entropy over the non-ignored pixels
  (``segmentation``) or the mean squared error over every target value (``regression``), ``batch_size``
  images per step; an engine with its own ``loss``
  is trained by it instead;
- contract: :mod:`.contract`.

Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from lstmviz.datasets.base import AnnotationSpec
from lstmviz.datasets.image_base import TASKS, ImageDataset, ImageItem

from ..family import Family


@dataclass(frozen=True)
class ImageData:
    """What an image model needs to know about its data."""

    channels: int = field(metadata={"meaning": "the number of image channels"})
    height: int = field(metadata={"meaning": "the image height in pixels"})
    width: int = field(metadata={"meaning": "the image width in pixels"})
    num_classes: int = field(metadata={"meaning": "the number of target classes (segmentation: pixel classes; "
                                                  "regression: target channels Ct)"})
    task: str = field(default="class", metadata={"meaning": "the task (class, multilabel, segmentation or "
                                                            "regression)"})

    def __post_init__(self) -> None:
        for name in ("channels", "height", "width", "num_classes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"expected {name} to be a positive int, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.task not in TASKS:
            raise ValueError(f"expected task to be one of {', '.join(TASKS)}, got {self.task!r}")


def describe_dataset(dataset: Any) -> ImageData:
    for attribute in ("channels", "height", "width", "class_names", "task"):
        if not hasattr(dataset, attribute):
            raise TypeError(f"expected an image dataset (with .channels, .height, .width, .class_names and .task), "
                            f"got {type(dataset).__name__}")
    return ImageData(channels=int(dataset.channels), height=int(dataset.height), width=int(dataset.width),
                     num_classes=len(dataset.class_names), task=str(dataset.task))


def describe_checkpoint(payload: Mapping[str, Any]) -> ImageData:
    data = payload.get("data")
    if not isinstance(data, Mapping):
        raise ValueError("bad 'data': an image checkpoint records its data description (channels, height, width, "
                         "num_classes, task); this one has none")
    try:
        return ImageData(channels=data["channels"], height=data["height"], width=data["width"],
                         num_classes=data["num_classes"], task=data.get("task", "class"))
    except KeyError as e:
        raise ValueError(f"bad 'data': missing {e.args[0]}") from None


def random_image_item(data: ImageData, rng: np.random.Generator) -> ImageItem:
    """A random image of the data's size: a bright random rectangle on noise, its class random. For the
    ``segmentation`` task the mask is 0 (background) off the rectangle and ``1 + class % (K - 1)`` on it
    (``K = 1``: all 0), with the top-left pixel ignored (-1) so that the ignore rule is exercised. For the
    ``regression`` task the target map ``[Ct, H, W]`` is channel ``k`` = ``0.5 * image[k % C] + 0.25 * (k + 1) /
    Ct`` (a per-pixel function of the image, so a per-pixel model can learn it)."""
    c, h, w = data.channels, data.height, data.width
    image = (0.1 * rng.random((c, h, w))).astype(np.float32)
    y0, x0 = int(rng.integers(0, max(1, h // 2))), int(rng.integers(0, max(1, w // 2)))
    image[:, y0:y0 + max(1, h // 3), x0:x0 + max(1, w // 3)] += 0.8
    np.clip(image, 0.0, 1.0, out=image)
    on = (image.max(0) > 0.5).reshape(-1)
    target = int(rng.integers(0, data.num_classes))
    targets = None
    if data.task == "multilabel":
        targets = (rng.random(data.num_classes) < 0.4).astype(np.float32)
        targets[target] = 1.0
    mask = None
    if data.task == "segmentation":
        k = data.num_classes
        mask = np.where(on.reshape(h, w), 1 + target % (k - 1) if k > 1 else 0, 0).astype(np.int64)
        mask[0, 0] = -1
    target_map = None
    if data.task == "regression":
        ct = data.num_classes
        target_map = np.stack([0.5 * image[k % c] + 0.25 * (k + 1) / ct for k in range(ct)]).astype(np.float32)
    return ImageItem(image=image, tokens=on.astype(np.int64), target=target, targets=targets,
                     annotations={"stroke": on.astype(np.float32)}, item_annotations={"class": target}, mask=mask,
                     target_map=target_map)


def sample_inputs(data: ImageData, *, batch: int = 3, length: int | None = None, seed: int = 0):
    """A float32 tensor ``[batch, C, H, W]`` of :func:`random_image_item` images, reproducible by ``seed``
    (``length`` is ignored: the size is the data's)."""
    import torch

    rng = np.random.default_rng(seed)
    return torch.from_numpy(np.stack([random_image_item(data, rng).image for _ in range(batch)]))


class SampleImages(ImageDataset):
    """An :class:`ImageDataset` of :func:`random_image_item` images (tests, contract checks)."""

    def __init__(self, data: ImageData, *, images: int = 4, seed: int = 0, split: str = "train"):
        self.name = "sample-images"
        self.split = split
        self.vocab = ["background", "stroke"]
        self.class_names = tuple(f"class{i}" for i in range(data.num_classes))
        if data.task == "segmentation":
            self.class_names = ("background",) + self.class_names[1:]
        if data.task == "regression":
            self.class_names = tuple(f"c{k}" for k in range(data.num_classes))
        self.annotation_specs = [
            AnnotationSpec(name="stroke", kind="numeric", level="position",
                           description="1 on the bright rectangle, 0 on the background"),
            AnnotationSpec(name="class", kind="categorical", level="item", labels=self.class_names,
                           description="the image's class"),
        ]
        self.options = {"images": images, "seed": seed}
        self.source = "random images (lstmviz.engines.families.image.random_image_item)"
        self.task = data.task
        self.channels, self.height, self.width = data.channels, data.height, data.width
        rng = np.random.default_rng(seed)
        self._items = [random_image_item(data, rng) for _ in range(images)]

    def __len__(self) -> int:
        return len(self._items)

    def _item(self, i: int) -> ImageItem:
        return self._items[i]


FAMILY = Family(
    name="image",
    description="a batch of images in, class logits out (per image, or per pixel for segmentation) or real values "
                "per pixel (regression); trained by cross-entropy over the images (or their pixels) or the mean "
                "squared error",
    data=ImageData,
    describe_dataset=describe_dataset,
    describe_checkpoint=describe_checkpoint,
    sample_inputs=sample_inputs,
    objective="lstmviz.engines.families.image.objective:ImageObjective",
    contract="lstmviz.engines.families.image.contract",
    train_settings={},
    default_dataset="digits",
)

__all__ = ["FAMILY", "TASKS", "ImageData", "SampleImages", "describe_checkpoint", "describe_dataset", "random_image_item",
           "sample_inputs"]
