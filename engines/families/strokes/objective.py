"""The strokes family's objective: the engine's own loss over padded batches of items.

Each step takes the next ``batch_size`` items of the training split (a new seeded shuffle every epoch),
pads their steps at the end into ``[B, T, 3]`` with a ``[B, T]`` mask of real steps, and returns
``model.loss(steps, mask, classes) -> (loss, count)``. Validation runs over the whole validation split in
chunks of 256 items, eval mode: the validation loss is the count-weighted mean of the model's loss, and
``valid_accuracy`` is the share of items whose arg-max class logit (``model(steps, classes, mask)[0]``)
is the item's class.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from . import describe_dataset

EVAL_CHUNK = 256


def _dtype(model: nn.Module) -> torch.dtype:
    p = next(model.parameters(), None)
    return torch.float32 if p is None or not p.is_floating_point() else p.dtype


def pad_steps(items, device=None, dtype=torch.float32) -> tuple[Tensor, Tensor, Tensor]:
    """``(steps [B, T, 3] float32, mask [B, T] bool, classes [B] int64)`` of items (padded at the end)."""
    t = max(len(it.steps) for it in items)
    steps = np.zeros((len(items), t, 3), np.float32)
    mask = np.zeros((len(items), t), bool)
    for i, it in enumerate(items):
        steps[i, :len(it.steps)] = it.steps
        mask[i, :len(it.steps)] = True
    classes = np.array([int(it.target) for it in items], np.int64)
    return (torch.from_numpy(steps).to(device, dtype), torch.from_numpy(mask).to(device),
            torch.from_numpy(classes).to(device))


def _check_items(dataset, num_classes: int, what: str) -> list:
    items = list(dataset)
    for i, it in enumerate(items):
        steps = np.asarray(it.steps)
        if steps.ndim != 2 or steps.shape[1] != 3 or len(steps) == 0 or not np.isfinite(steps).all():
            raise ValueError(f"{what} item {i}: expected finite steps [T >= 1, 3], got shape {list(steps.shape)}")
        if not 0 <= int(it.target) < num_classes:
            raise ValueError(f"{what} item {i}: its class {it.target!r} is not in 0 .. {num_classes - 1}")
    return items


class StrokesObjective:
    """The :class:`~lstmviz.engines.families.family.Objective` of the strokes family (module docstring)."""

    count_name = "points"
    rate_unit = "points/s"
    reports_perplexity = False

    @staticmethod
    def check_settings(s: dict, need: Callable[[str, bool, str], None], is_int: Callable[[Any], bool]) -> None:
        """No settings of its own (``batch_size`` counts items)."""

    def prepare(self, dataset_train, dataset_valid, settings: dict, device) -> None:
        data = describe_dataset(dataset_train)
        self.train = _check_items(dataset_train, data.num_classes, "training")
        self.valid = None
        if dataset_valid is not None and len(dataset_valid):
            if describe_dataset(dataset_valid) != data:
                raise ValueError(f"validation data: expected {data} like the training data")
            self.valid = _check_items(dataset_valid, data.num_classes, "validation")
        self.batch_size = min(int(settings["batch_size"]), len(self.train))
        self.rng = np.random.default_rng(int(settings["seed"]))
        self.device = device
        self.order = np.zeros(0, np.int64)
        self.last_accuracy: float | None = None

    def _next_batch(self) -> list:
        parts, need = [], self.batch_size
        while need:
            if not len(self.order):
                self.order = self.rng.permutation(len(self.train))
            take, self.order = self.order[:need], self.order[need:]
            parts.extend(int(i) for i in take)
            need -= len(take)
        return [self.train[i] for i in parts]

    def train_step(self, model: nn.Module) -> tuple[Tensor, int]:
        steps, mask, classes = pad_steps(self._next_batch(), self.device, _dtype(model))
        return model.loss(steps, mask, classes)

    def dp_examples(self) -> tuple[tuple[Tensor, Tensor, Tensor], str]:
        """Every training item, padded (``steps, mask, classes``): the privacy unit is a drawn character
        (DP-SGD, engines/dpsgd.py)."""
        return pad_steps(self.train, self.device), "a drawn character"

    def example_loss(self, call, example) -> Tensor:
        """The model's loss of one item."""
        steps, mask, classes = example
        dtype = _dtype(call.module)
        return call.loss(steps[None].to(dtype), mask[None], classes[None])[0]

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> float | None:
        if self.valid is None:
            return None
        was = model.training
        model.eval()
        total, counted, hits = 0.0, 0, 0
        try:
            for start in range(0, len(self.valid), EVAL_CHUNK):
                steps, mask, classes = pad_steps(self.valid[start:start + EVAL_CHUNK], self.device, _dtype(model))
                loss, count = model.loss(steps, mask, classes)
                total += float(loss) * int(count)
                counted += int(count)
                hits += int((model(steps, classes, mask)[0].argmax(1) == classes).sum())
        finally:
            model.train(was)
        self.last_accuracy = hits / len(self.valid)
        return total / max(counted, 1)

    def metrics(self) -> dict:
        return {"valid_accuracy": self.last_accuracy}
