"""The image family's objective: cross-entropy over a batch of images (``class`` task), per-class binary
cross-entropy with logits (``multilabel`` task), per-pixel cross-entropy (``segmentation`` task) or the mean
squared error over every target value (``regression`` task).

Each step takes the next ``batch_size`` images of the training split (a new seeded shuffle every epoch;
all images stacked once in :meth:`ImageObjective.prepare`, each checked with ``check_image``), runs
``model(images [B, C, H, W])`` and returns the mean loss over the images:

- class: ``(1/B) Σ_b −log softmax(z_b)[y_b]``;
- multilabel: ``(1/(B K)) Σ_b Σ_k BCEWithLogits(z_bk, t_bk)`` with ``t = item.targets`` (0/1 per class);
- segmentation: with logits ``z [B, K, H, W]`` and ``m = item.mask [H, W]`` (class ids, -1 = ignored),
  ``(1/|V|) Σ_{(b,y,x) ∈ V} −log softmax(z_{b,:,y,x})[m_byx]`` over the non-ignored pixels
  ``V = {m ≠ −1}`` of the batch (``F.cross_entropy(..., ignore_index=-1)``; a batch without one
  non-ignored pixel gives 0 with a zero gradient, not NaN);
- regression: with the prediction ``ŷ [B, Ct, H, W]`` and ``t = item.target_map [Ct, H, W]`` (finite, checked),
  ``(1/(B Ct H W)) Σ (ŷ − t)²`` (``F.mse_loss``).

The model's output shape is checked against the task at every step (``[B, K]``, or ``[B, K, H, W]`` for
segmentation and regression) and refused in one sentence: a classifier trained on a segmentation dataset says so.

An engine with its own loss (below) whose outputs are not class scores in the dataset's class order (``tagger``'s
exchangeable groups) may define ``model.item_measures(images, batch) -> {name: float array [B]}`` (per-image measures, NaN = not
defined for that image): validation then reports the mean of each over the split's images where it is finite as
``valid_<name>`` (None where it is nowhere finite) **instead of** the task's accuracy (``valid_accuracy`` and
``valid_dice`` are None: an arg-max over exchangeable groups is no class).

An engine with its own ``model.loss(images, batch) -> (loss, count)`` (``batch``: the items' dict
``{"target": [B] int64, "targets": [B, K] float or None, "mask": [B, H, W] int64 or None, "target_map":
[B, Ct, H, W] float or None}``; ``mask`` only for segmentation, ``target_map`` only for regression, where
``target`` is the item's image-level class or -1) is trained and validated
by it instead (its validation loss: the mean of its loss over the images; a class model's accuracy and a
segmentation model's pixel accuracy and Dice and a regression model's ``valid_rmse`` are still measured from
``model(images)``, its class scores, logits or per-pixel values; a multilabel model with its own loss decides its label sets its own way, so it gets no
``valid_accuracy``). Validation runs over the whole validation split in chunks of 512 images, eval mode; its
loss is the mean over images (segmentation: over the split's non-ignored pixels), and it also measures
``valid_accuracy``: class — the share of images whose arg-max class is the target; multilabel — the
**exact-set** accuracy, the share of images whose predicted set ``{k : z_k > 0}`` equals the target set;
segmentation — the **pixel accuracy**, the share of non-ignored pixels whose arg-max class is the mask's,
plus ``valid_dice`` (:func:`mean_dice`): the mean over the non-background classes ``k = 1 .. K-1`` of
``Dice_k = 2 |P_k ∩ T_k| / (|P_k| + |T_k|)``, with ``P_k`` / ``T_k`` the predicted / true pixels of class
``k`` pooled over the whole validation split (non-ignored pixels only). A class absent from both the
prediction and the mask (``|P_k| + |T_k| = 0``) is **skipped** (neither 1 nor 0); with every class skipped
``valid_dice`` is None. Class 0 is the background by convention (the datasets name it so); regression —
``valid_accuracy`` is None and ``valid_rmse`` = ``sqrt((1/(N Ct H W)) Σ (ŷ − t)²)`` over the whole split (the
root of the split's mean squared error, not a mean of per-chunk roots); the validation loss is that mean squared
error (or the engine's own loss).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.datasets.image_base import IGNORE, check_image, check_mask, check_target_map

from . import describe_dataset

EVAL_CHUNK = 512


def stack_split(dataset, data, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(images [N, C, H, W] float32, target [N] int64, targets [N, K] float32 or None)`` of a split, every
    image checked (one sentence naming the item on bad input). For a segmentation or regression split ``target`` is the
    items' image-level class where they have one (else -1, unchecked: the loss reads the masks,
    :func:`stack_masks`)."""
    n = len(dataset)
    dense = data.task in ("segmentation", "regression")  # per-pixel targets: no class is required per image
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
        elif dense:
            target[i] = -1 if item.target is None else int(item.target)
        elif item.target is None or not 0 <= int(item.target) < data.num_classes:
            raise ValueError(f"{what} image {i}: its target {item.target!r} is not a class id in "
                             f"0 .. {data.num_classes - 1}")
        else:
            target[i] = int(item.target)
    return images, target, targets


def stack_masks(dataset, data, what: str) -> np.ndarray:
    """``[N, H, W]`` int64: the masks of a segmentation split, each checked (:func:`check_mask`: shape and
    class range, one sentence naming the item)."""
    n = len(dataset)
    masks = np.empty((n, data.height, data.width), np.int64)
    for i in range(n):
        masks[i] = check_mask(dataset[i].mask, height=data.height, width=data.width, num_classes=data.num_classes,
                              what=f"{what} image {i}'s mask")
    return masks


def stack_target_maps(dataset, data, what: str) -> np.ndarray:
    """``[N, Ct, H, W]`` float32: the target maps of a regression split, each checked (:func:`check_target_map`:
    shape and finiteness, one sentence naming the item)."""
    n = len(dataset)
    stored = getattr(dataset, "target_maps", None)
    if isinstance(stored, np.ndarray) and stored.shape == (n, data.num_classes, data.height, data.width) \
            and np.isfinite(stored).all():
        return np.asarray(stored, np.float32)
    maps = np.empty((n, data.num_classes, data.height, data.width), np.float32)
    for i in range(n):
        maps[i] = check_target_map(dataset[i].target_map, channels=data.num_classes, height=data.height,
                                   width=data.width, what=f"{what} image {i}'s target map")
    return maps


def check_logits(logits: Tensor, task: str, batch: int, num_classes: int, height: int, width: int) -> None:
    """Refuse, in one sentence, logits whose shape does not fit the task (``[B, K]``; segmentation:
    ``[B, K, H, W]``)."""
    shape = tuple(logits.shape)
    if task == "regression":
        want = (batch, num_classes, height, width)
        if shape != want:
            hint = " (one vector per image: this engine does not predict per pixel)" if len(shape) == 2 else ""
            raise ValueError(f"the model returned an output of shape {list(shape)}{hint}; the regression task needs "
                             f"per-pixel values [images, target channels, height, width] = {list(want)}")
    elif task == "segmentation":
        want = (batch, num_classes, height, width)
        if shape != want:
            hint = (" (one class per image: this engine classifies whole images, not pixels)"
                    if len(shape) == 2 else "")
            raise ValueError(f"the model returned logits of shape {list(shape)}{hint}; the segmentation task needs "
                             f"per-pixel logits [images, classes, height, width] = {list(want)}")
    elif shape != (batch, num_classes):
        raise ValueError(f"the model returned logits of shape {list(shape)}; the {task} task needs "
                         f"[images, classes] = {[batch, num_classes]}")


def segmentation_loss(logits: Tensor, mask: Tensor, reduction: str = "mean") -> Tensor:
    """Per-pixel cross-entropy of ``logits [B, K, H, W]`` against ``mask [B, H, W]`` over the non-ignored
    pixels: their mean (``"mean"``; 0 with a zero gradient when every pixel is ignored) or sum (``"sum"``)."""
    if reduction == "mean" and not bool((mask != IGNORE).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits, mask, ignore_index=IGNORE, reduction=reduction)


def segmentation_counts(logits: Tensor, mask: Tensor, num_classes: int) -> dict[str, Tensor]:
    """Counts over the non-ignored pixels of ``mask [B, H, W]`` with the prediction ``argmax_k logits
    [B, K, H, W]``: ``hits`` and ``pixels`` (scalars), and per class ``intersection``, ``predicted`` and
    ``actual`` (``[K]`` int64: |P_k ∩ T_k|, |P_k|, |T_k|). Counts of several chunks add up."""
    valid = mask != IGNORE
    predicted = logits.argmax(dim=1)[valid]
    actual = mask[valid]
    right = predicted == actual
    return {"hits": right.sum(), "pixels": valid.sum(),
            "intersection": torch.bincount(actual[right], minlength=num_classes),
            "predicted": torch.bincount(predicted, minlength=num_classes),
            "actual": torch.bincount(actual, minlength=num_classes)}


def mean_dice(intersection, predicted, actual, background: int | None = 0) -> float | None:
    """The mean over classes ``k ≠ background`` of ``2 |P_k ∩ T_k| / (|P_k| + |T_k|)``, skipping a class absent
    from both (``|P_k| + |T_k| = 0``); None when every class is skipped (module docstring)."""
    inter, pred, act = (np.asarray(torch.as_tensor(v).cpu(), dtype=np.float64) for v in (intersection, predicted,
                                                                                          actual))
    keep = (pred + act) > 0
    if background is not None:
        keep[int(background)] = False
    if not keep.any():
        return None
    return float(np.mean(2.0 * inter[keep] / (pred[keep] + act[keep])))


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
        self.height, self.width = data.height, data.width
        if len(dataset_train) == 0:
            raise ValueError("training data: no images")
        self.train = self._stack(dataset_train, data, "training")
        self.valid = None
        if dataset_valid is not None and len(dataset_valid):
            valid = describe_dataset(dataset_valid)
            if valid != data:
                raise ValueError(f"validation data: expected {data} like the training data, got {valid}")
            self.valid = self._stack(dataset_valid, data, "validation")
        self.batch_size = min(int(settings["batch_size"]), len(self.train[0]))
        self.rng = np.random.default_rng(int(settings["seed"]))
        self.device = device
        self.order = np.zeros(0, np.int64)
        self.last_accuracy: float | None = None
        self.last_dice: float | None = None
        self.last_rmse: float | None = None
        self.last_measures: dict[str, float | None] = {}

    @staticmethod
    def _stack(dataset, data, what: str) -> tuple:
        """``(images, target, targets, masks or None, target maps or None)`` of a split."""
        masks = stack_masks(dataset, data, what) if data.task == "segmentation" else None
        maps = stack_target_maps(dataset, data, what) if data.task == "regression" else None
        return (*stack_split(dataset, data, what), masks, maps)

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
        images, target, targets, masks, maps = split
        x = torch.from_numpy(images[indices]).to(self.device, dtype)
        batch = {"target": torch.from_numpy(target[indices]).to(self.device),
                 "targets": None if targets is None else torch.from_numpy(targets[indices]).to(self.device, dtype),
                 "mask": None if masks is None else torch.from_numpy(masks[indices]).to(self.device),
                 "target_map": None if maps is None else torch.from_numpy(maps[indices]).to(self.device, dtype)}
        return x, batch

    def _loss(self, logits: Tensor, batch: dict, reduction: str) -> Tensor:
        check_logits(logits, self.task, len(batch["target"]), self.num_classes, self.height, self.width)
        if self.task == "segmentation":
            return segmentation_loss(logits, batch["mask"], reduction)
        if self.task == "regression":
            return F.mse_loss(logits, batch["target_map"], reduction=reduction)
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

    # -- DP-SGD's example view (engines/dpsgd.py) and K-FAC's sampled Fisher (engines/ekfac.py) ------------------

    def dp_examples(self) -> tuple[tuple[Tensor, dict], str]:
        """Every training image with its targets (``(images [N, C, H, W], {key: [N, ...]})``): the privacy unit is
        an image."""
        x, batch = self._tensors(self.train, np.arange(len(self.train[0])), torch.float32)
        return (x, {k: v for k, v in batch.items() if v is not None}), "an image"

    def example_loss(self, call, example) -> Tensor:
        """The loss of one image (``call``: :class:`~lstmviz.engines.dpsgd.ModelCall`), as :meth:`train_step`'s
        mean over a batch of one."""
        x, batch = example
        dtype = self._dtype(call.module)
        one = {key: None for key in ("target", "targets", "mask", "target_map")}
        one.update({k: (v[None].to(dtype) if v.is_floating_point() else v[None]) for k, v in batch.items()})
        if hasattr(call.module, "loss"):
            return call.loss(x[None].to(dtype), one)[0]
        return self._loss(call(x[None].to(dtype)), one, "mean")

    def train_step(self, model: nn.Module) -> tuple[Tensor, int]:
        x, batch = self._tensors(self.train, self._next_batch(), self._dtype(model))
        self._last_x = x
        if hasattr(model, "loss"):
            return model.loss(x, batch)
        return self._loss(model(x), batch, "mean"), len(x)

    def fisher_sample_loss(self, model: nn.Module) -> Tensor:
        """The cross-entropy of classes drawn from the model's softmax on the batch just trained (the true Fisher's
        labels; class task only)."""
        if self.task != "class" or hasattr(model, "loss"):
            raise ValueError(f"only a class-task model trained by the family's cross-entropy can sample its labels "
                             f"(this is a {self.task} task{' with an engine-owned loss' if hasattr(model, 'loss') else ''})")
        from lstmviz.engines.ekfac import sampled_cross_entropy

        return sampled_cross_entropy(model(self._last_x))

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> float | None:
        if self.valid is None:
            return None
        was_training = model.training
        model.eval()
        total, hits, n = 0.0, 0, len(self.valid[0])
        counts: dict[str, Tensor] = {}
        squared, values = 0.0, 0
        dtype = self._dtype(model)
        own = hasattr(model, "loss")
        measured = own and callable(getattr(model, "item_measures", None))
        sums: dict[str, list[float]] = {}
        try:
            for start in range(0, n, EVAL_CHUNK):
                x, batch = self._tensors(self.valid, np.arange(start, min(n, start + EVAL_CHUNK)), dtype)
                if own:
                    loss, count = model.loss(x, batch)
                    total += float(loss) * len(x)
                if measured:
                    for name, values in model.item_measures(x, batch).items():
                        v = np.asarray(values, dtype=np.float64)
                        acc = sums.setdefault(name, [0.0, 0])
                        acc[0] += float(v[np.isfinite(v)].sum())
                        acc[1] += int(np.isfinite(v).sum())
                    continue  # the model's own measures replace the task's arg-max accuracy
                if own:
                    if self.task == "multilabel":
                        continue  # an own multilabel loss decides its sets its own way: no exact-set accuracy
                    logits = model(x)  # class scores or per-pixel logits: arg-max accuracy (and Dice) still apply
                    check_logits(logits, self.task, len(x), self.num_classes, self.height, self.width)
                else:
                    logits = model(x)
                    total += float(self._loss(logits, batch, "sum"))
                if self.task == "regression":
                    squared += float(F.mse_loss(logits, batch["target_map"], reduction="sum"))
                    values += logits.numel()
                elif self.task == "segmentation":
                    for key, value in segmentation_counts(logits, batch["mask"], self.num_classes).items():
                        counts[key] = counts[key] + value if key in counts else value
                else:
                    hits += self._hits(logits, batch)
        finally:
            model.train(was_training)
        if measured:
            self.last_measures = {name: (acc[0] / acc[1] if acc[1] else None) for name, acc in sums.items()}
            self.last_accuracy = self.last_dice = self.last_rmse = None
            return total / n
        if self.task == "regression":
            self.last_accuracy = None
            self.last_rmse = float(np.sqrt(squared / values)) if values else None
            return total / n if own else (squared / values if values else 0.0)
        if self.task == "segmentation":
            pixels = int(counts["pixels"])
            self.last_accuracy = int(counts["hits"]) / pixels if pixels else None
            self.last_dice = mean_dice(counts["intersection"], counts["predicted"], counts["actual"])
            if own:
                return total / n
            return total / pixels if pixels else 0.0
        if not (own and self.task == "multilabel"):
            self.last_accuracy = hits / n
        return total / n

    def metrics(self) -> dict:
        """What the shared loop adds to the metrics: the last validation accuracy (None before one); for
        segmentation the pixel accuracy and ``valid_dice``; for regression ``valid_accuracy`` None and
        ``valid_rmse``; for a model with ``item_measures``, ``valid_accuracy`` None and ``valid_<name>`` per measure."""
        own = {f"valid_{name}": value for name, value in self.last_measures.items()}
        if own:
            return {"valid_accuracy": None, **own}
        if self.task == "regression":
            return {"valid_accuracy": None, "valid_rmse": self.last_rmse}
        if self.task == "segmentation":
            return {"valid_accuracy": self.last_accuracy, "valid_dice": self.last_dice}
        return {"valid_accuracy": self.last_accuracy}
