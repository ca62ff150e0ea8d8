"""The image family's objective: cross-entropy over a batch of images (``class`` task) or per-class binary
cross-entropy with logits (``multilabel`` task).

Each step takes the next ``batch_size`` images of the training split (a new seeded shuffle every epoch;
all images stacked once in :meth:`ImageObjective.prepare`, each checked with ``check_image``), runs
``model(images [B, C, H, W])`` and returns the mean loss over the images:

- class: ``(1/B) Σ_b −log softmax(z_b)[y_b]``;
- multilabel: ``(1/(B K)) Σ_b Σ_k BCEWithLogits(z_bk, t_bk)`` with ``t = item.targets`` (0/1 per class).

An engine with its own ``model.loss(images, batch) -> (loss, count)`` (``batch``: the items' dict
``{"target": [B] int64, "targets": [B, K] float or None}``) is trained and validated by it instead.
Validation runs over the whole validation split in chunks of 512 images, eval mode, and also measures
``valid_accuracy``: class — the share of images whose arg-max class is the target; multilabel — the
**exact-set** accuracy, the share of images whose predicted set ``{k : z_k > 0}`` equals the target set.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.datasets.image_base import check_image

from . import describe_dataset

EVAL_CHUNK = 512


def stack_split(dataset, data, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(images [N, C, H, W] float32, target [N] int64, targets [N, K] float32 or None)`` of a split, every
    image checked (one sentence naming the item on bad input)."""
    n = len(dataset)
    images = np.empty((n, data.channels, data.height, data.width), np.float32)
    target = np.zeros(n, np.int64)
    targets = np.zeros((n, data.num_classes), np.float32) if data.task == "multilabel" else None
    for i in range(n):
        item = dataset[i]
        images[i] = check_image(item.image, channels=data.channels, height=data.height, width=data.width,
                                what=f"{what} image {i}")
        if targets is not None:
            if item.targets is None or np.shape(item.targets) != (data.num_classes,):
                raise ValueError(f"{what} image {i}: a multilabel image needs targets, one 0/1 value per class "
                                 f"({data.num_classes})")
            targets[i] = item.targets
        elif item.target is None or not 0 <= int(item.target) < data.num_classes:
            raise ValueError(f"{what} image {i}: its target {item.target!r} is not a class id in "
                             f"0 .. {data.num_classes - 1}")
        else:
            target[i] = int(item.target)
    return images, target, targets


class ImageObjective:
    """The :class:`~lstmviz.engines.families.family.Objective` of the image family (module docstring)."""

    count_name = "images"
    rate_unit = "images/s"
    reports_perplexity = False  # a classification loss: exp(loss) is no perplexity

    @staticmethod
    def check_settings(s: dict, need: Callable[[str, bool, str], None], is_int: Callable[[Any], bool]) -> None:
        """The image family adds no settings (``batch_size`` counts images)."""

    def prepare(self, dataset_train, dataset_valid, settings: dict, device) -> None:
        data = describe_dataset(dataset_train)
        self.task, self.num_classes = data.task, data.num_classes
        if len(dataset_train) == 0:
            raise ValueError("training data: no images")
        self.train = stack_split(dataset_train, data, "training")
        self.valid = None
        if dataset_valid is not None and len(dataset_valid):
            valid = describe_dataset(dataset_valid)
            if valid != data:
                raise ValueError(f"validation data: expected {data} like the training data, got {valid}")
            self.valid = stack_split(dataset_valid, data, "validation")
        self.batch_size = min(int(settings["batch_size"]), len(self.train[0]))
        self.rng = np.random.default_rng(int(settings["seed"]))
        self.device = device
        self.order = np.zeros(0, np.int64)
        self.last_accuracy: float | None = None

    def _next_batch(self) -> np.ndarray:
        parts, need = [], self.batch_size
        while need:
            if not len(self.order):
                self.order = self.rng.permutation(len(self.train[0]))
            take, self.order = self.order[:need], self.order[need:]
            parts.append(take)
            need -= len(take)
        return np.concatenate(parts)

    def _tensors(self, split, indices, dtype) -> tuple[Tensor, dict]:
        images, target, targets = split
        x = torch.from_numpy(images[indices]).to(self.device, dtype)
        batch = {"target": torch.from_numpy(target[indices]).to(self.device),
                 "targets": None if targets is None else torch.from_numpy(targets[indices]).to(self.device, dtype)}
        return x, batch

    def _loss(self, logits: Tensor, batch: dict, reduction: str) -> Tensor:
        if self.task == "multilabel":
            loss = F.binary_cross_entropy_with_logits(logits, batch["targets"], reduction="none").mean(1)
            return loss.sum() if reduction == "sum" else loss.mean()
        return F.cross_entropy(logits, batch["target"], reduction=reduction)

    def _hits(self, logits: Tensor, batch: dict) -> int:
        if self.task == "multilabel":
            return int(((logits > 0) == (batch["targets"] > 0.5)).all(dim=1).sum())
        return int((logits.argmax(dim=1) == batch["target"]).sum())

    @staticmethod
    def _dtype(model: nn.Module) -> torch.dtype:
        p = next(model.parameters(), None)
        return torch.float32 if p is None or not p.is_floating_point() else p.dtype

    def train_step(self, model: nn.Module) -> tuple[Tensor, int]:
        x, batch = self._tensors(self.train, self._next_batch(), self._dtype(model))
        if hasattr(model, "loss"):
            return model.loss(x, batch)
        return self._loss(model(x), batch, "mean"), len(x)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> float | None:
        if self.valid is None:
            return None
        was_training = model.training
        model.eval()
        total, hits, n = 0.0, 0, len(self.valid[0])
        dtype = self._dtype(model)
        try:
            for start in range(0, n, EVAL_CHUNK):
                x, batch = self._tensors(self.valid, np.arange(start, min(n, start + EVAL_CHUNK)), dtype)
                if hasattr(model, "loss"):
                    loss, count = model.loss(x, batch)
                    total += float(loss) * len(x)
                    continue
                logits = model(x)
                total += float(self._loss(logits, batch, "sum"))
                hits += self._hits(logits, batch)
        finally:
            model.train(was_training)
        if not hasattr(model, "loss"):
            self.last_accuracy = hits / n
        return total / n

    def metrics(self) -> dict:
        """What the shared loop adds to the metrics: the last validation accuracy (None before one)."""
        return {"valid_accuracy": self.last_accuracy}
