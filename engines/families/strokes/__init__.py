"""Family ``strokes``: models that read pen trajectories (real-valued steps) with a class per item.

Why a family of its own: a pen point is a real vector ``(Δx, Δy, pen_up)``, not a token id, so the
``language-model`` family (token ids in, next-token logits out, truncated BPTT over a token stream) cannot
feed it; and the image family's inputs are pixel grids. The family is kept minimal:

- data description: :class:`StrokeData` (``num_classes``), from a dataset's ``class_names`` or a checkpoint;
- inputs: ``steps`` float32 ``[B, T, 3]`` (``Δx, Δy, pen_up``), ``mask`` bool ``[B, T]`` (real steps; items
  are padded at the end) and ``classes`` int64 ``[B]`` (:func:`sample_inputs` gives ``(steps, mask, classes)``);
- a model is called ``model(steps, classes, mask) -> (class_logits [B, K], per_step [B, T, F])`` and owns
  its loss: ``model.loss(steps, mask, classes) -> (loss, count)`` (:mod:`.objective` shuffles items into
  padded batches of ``batch_size`` and reports ``valid_accuracy`` from the class logits);
- every tap is per step on the main axis (one row per pen point);
- contract: :mod:`.contract`.

Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from lstmviz.datasets.base import AnnotationSpec, SequenceDataset

from ..family import Family

VOCAB = ["·", "↑"]


@dataclass(frozen=True)
class StrokeData:
    """What a strokes model needs to know about its data."""

    num_classes: int = field(metadata={"meaning": "the number of character classes"})

    def __post_init__(self) -> None:
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, (int, np.integer)) \
                or self.num_classes < 1:
            raise ValueError(f"expected num_classes to be a positive int, got {self.num_classes!r}")
        object.__setattr__(self, "num_classes", int(self.num_classes))


def describe_dataset(dataset: Any) -> StrokeData:
    names = getattr(dataset, "class_names", None)
    if names is None or not len(dataset) or not hasattr(dataset[0], "steps"):
        raise TypeError(f"expected a strokes dataset (items with .steps and .target, and .class_names), "
                        f"got {type(dataset).__name__}")
    return StrokeData(num_classes=len(names))


def describe_checkpoint(payload: Mapping[str, Any]) -> StrokeData:
    data = payload.get("data")
    if not isinstance(data, Mapping) or "num_classes" not in data:
        raise ValueError("bad 'data': a strokes checkpoint records its data description (num_classes); this one has none")
    return StrokeData(num_classes=data["num_classes"])


def random_steps(rng: np.random.Generator, length: int) -> np.ndarray:
    """``[length, 3]`` float32: a random walk of unit-ish steps, pen up about every 8th point and at the end."""
    steps = np.concatenate([rng.normal(0, 1, (length, 2)), (rng.random((length, 1)) < 0.125)], 1).astype(np.float32)
    steps[-1, 2] = 1.0
    return steps


def sample_inputs(data: StrokeData, *, batch: int = 3, length: int = 5, seed: int = 0):
    """``(steps [batch, length, 3] float32, mask [batch, length] bool, classes [batch] int64)``, reproducible."""
    import torch

    rng = np.random.default_rng(seed)
    steps = torch.from_numpy(np.stack([random_steps(rng, length) for _ in range(batch)]))
    classes = torch.from_numpy(rng.integers(0, data.num_classes, batch).astype(np.int64))
    return steps, torch.ones(batch, length, dtype=torch.bool), classes


class SampleStrokes(SequenceDataset):
    """A strokes dataset of random walks of varied lengths with random classes (tests, contract checks)."""

    def __init__(self, data: StrokeData, *, items: int = 6, seed: int = 0, split: str = "train"):
        from lstmviz.datasets.hershey_strokes import StrokeItem

        self.name, self.split = "sample-strokes", split
        self.vocab = list(VOCAB)
        self.class_names = tuple(f"c{i}" for i in range(data.num_classes))
        self.annotation_specs = [AnnotationSpec("class", "categorical", level="item", labels=self.class_names,
                                                description="the item's class")]
        self.options = {"items": items, "seed": seed}
        self.source = "random walks (lstmviz.engines.families.strokes.random_steps)"
        rng = np.random.default_rng(seed)
        self._items = []
        for _ in range(items):
            steps = random_steps(rng, int(rng.integers(3, 12)))
            c = int(rng.integers(0, data.num_classes))
            self._items.append(StrokeItem(tokens=steps[:, 2].astype(np.int64), item_annotations={"class": c},
                                          steps=steps, target=c))

    def __len__(self) -> int:
        return len(self._items)

    def _item(self, i: int):
        return self._items[i]


FAMILY = Family(
    name="strokes",
    description="pen trajectories (Δx, Δy, pen-up) with a class per item in; class logits and per-step outputs out; "
                "trained by the engine's own loss over padded batches of items",
    data=StrokeData,
    describe_dataset=describe_dataset,
    describe_checkpoint=describe_checkpoint,
    sample_inputs=sample_inputs,
    objective="lstmviz.engines.families.strokes.objective:StrokesObjective",
    contract="lstmviz.engines.families.strokes.contract",
    train_settings={},
    default_dataset="hershey-strokes",
)

__all__ = ["FAMILY", "VOCAB", "SampleStrokes", "StrokeData", "describe_checkpoint", "describe_dataset", "random_steps",
           "sample_inputs"]
