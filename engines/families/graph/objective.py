"""The graph family's objective: cross-entropy over labelled nodes (node task) or graphs (graph task).

Each step takes the next ``batch_size`` graphs of the training split (all of them when there are fewer;
a new seeded shuffle every epoch), runs the model on each graph (``model(model.prepare(item))``,
prepared graphs cached per item) and returns the mean cross-entropy:

- node task: ``sum_{graphs} sum_{v : node_target[v] >= 0} -log softmax(logits_v)[target_v]`` over the
  number of labelled nodes (full-graph, semi-supervised: unlabelled nodes are read, not trained on);
- graph task: ``-log softmax(logits)[graph_target]`` averaged over the graphs of the batch.

An engine with its own ``model.loss(prepared_list, items) -> (loss, count)`` (subgraph2vec's skip-gram)
is trained and validated by it instead. Validation runs over the whole validation split with dropout
off; for the cross-entropy it also measures the accuracy (``valid_accuracy`` in the metrics, the share
of labelled validation nodes / graphs whose arg-max class is the target).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import describe_dataset


def _targets(item, task: str, what: str, num_classes: int) -> np.ndarray:
    """The item's targets as int64 (node task: ``[n]`` with -1 for none; graph task: ``[1]``), checked."""
    if task == "node":
        target = item.node_target
        if target is None:
            return np.full(len(item), -1, dtype=np.int64)
        target = np.asarray(target, dtype=np.int64).reshape(-1)
        if len(target) != len(item):
            raise ValueError(f"{what}: {len(target)} node targets for {len(item)} nodes; give one per node (-1: none)")
    else:
        if item.graph_target is None:
            raise ValueError(f"{what}: a graph without a graph_target in a graph-classification dataset")
        target = np.array([int(item.graph_target)], dtype=np.int64)
    if (target >= num_classes).any() or (target < -1).any():
        raise ValueError(f"{what}: targets must be class ids in 0 .. {num_classes - 1} (or -1: none), "
                         f"got {int(target.min())} .. {int(target.max())}")
    return target


class GraphObjective:
    """The :class:`~lstmviz.engines.families.family.Objective` of the graph family (module docstring)."""

    count_name = "graphs"
    rate_unit = "graphs/s"
    reports_perplexity = False  # a classification loss: exp(loss) is no perplexity

    @staticmethod
    def check_settings(s: dict, need: Callable[[str, bool, str], None], is_int: Callable[[Any], bool]) -> None:
        """The graph family adds no settings (``batch_size`` counts graphs)."""

    def prepare(self, dataset_train, dataset_valid, settings: dict, device) -> None:
        data = describe_dataset(dataset_train)
        self.task, self.num_classes = data.task, data.num_classes
        if self.task == "node":
            self.count_name, self.rate_unit = "nodes", "nodes/s"
        self.train_items = list(dataset_train)
        if not self.train_items:
            raise ValueError("training data: no graphs")
        self.train_targets = [_targets(it, self.task, f"training graph {i}", self.num_classes)
                              for i, it in enumerate(self.train_items)]
        if not any((t >= 0).any() for t in self.train_targets):
            raise ValueError("training data: no node has a target (node_target >= 0), so there is nothing to train on")
        self.valid_items, self.valid_targets = [], []
        if dataset_valid is not None:
            valid = describe_dataset(dataset_valid)
            if valid != data:
                raise ValueError(f"validation data: expected {data} like the training data, got {valid}")
            self.valid_items = list(dataset_valid)
            self.valid_targets = [_targets(it, self.task, f"validation graph {i}", self.num_classes)
                                  for i, it in enumerate(self.valid_items)]
        self.batch_size = min(int(settings["batch_size"]), len(self.train_items))
        self.rng = np.random.default_rng(int(settings["seed"]))
        self.device = device
        self.order: list[int] = []
        self._cache: dict[tuple[str, int], Any] = {}
        self._model_id: int | None = None
        self.last_accuracy: float | None = None

    def _prepared(self, model: nn.Module, split: str, index: int, item) -> Any:
        if self._model_id != id(model):  # prepared graphs depend on the model's configuration
            self._cache.clear()
            self._model_id = id(model)
        key = (split, index)
        prepared = self._cache.get(key)
        if prepared is None:
            prepared = self._cache[key] = model.prepare(item)
        return prepared

    def _next_batch(self) -> list[int]:
        batch = []
        while len(batch) < self.batch_size:
            if not self.order:
                self.order = list(self.rng.permutation(len(self.train_items)))
            batch.append(int(self.order.pop()))
        return batch

    def _cross_entropy(self, model: nn.Module, split: str, indices: list[int], items: list, targets: list
                       ) -> tuple[Tensor, int, int]:
        """Summed cross-entropy, how many targets, how many arg-max hits, over the given graphs."""
        total: Tensor | None = None
        count = hits = 0
        for i in indices:
            target = targets[i]
            mask = target >= 0
            if not mask.any():
                continue
            logits = model(self._prepared(model, split, i, items[i]))
            y = torch.from_numpy(target[mask]).to(logits.device)
            chosen = logits[torch.from_numpy(mask).to(logits.device)] if self.task == "node" else logits
            loss = F.cross_entropy(chosen, y, reduction="sum")
            total = loss if total is None else total + loss
            count += int(mask.sum())
            hits += int((chosen.argmax(dim=1) == y).sum())
        if total is None:
            total = torch.zeros((), requires_grad=True)
        return total, count, hits

    def train_step(self, model: nn.Module) -> tuple[Tensor, int]:
        indices = self._next_batch()
        if hasattr(model, "loss"):
            prepared = [self._prepared(model, "train", i, self.train_items[i]) for i in indices]
            return model.loss(prepared, [self.train_items[i] for i in indices])
        total, count, _ = self._cross_entropy(model, "train", indices, self.train_items, self.train_targets)
        return total / max(count, 1), max(count, 1)

    # -- DP-SGD's example view (engines/dpsgd.py) ------------------------------------------------------------

    dp_method = "loop"  # graphs of different sizes, prepared by the model: one example at a time

    def dp_examples(self) -> tuple[Tensor, str]:
        """The training graphs' indices (graph task: the privacy unit is a graph). The node task is refused:
        message passing mixes the nodes of a graph, so one node's gradient is not its own."""
        if self.task == "node":
            raise ValueError("the node task trains on the nodes of shared graphs and message passing mixes them, "
                             "so a node's gradient depends on its neighbours and per-node clipping bounds nothing; "
                             "DP-SGD here protects whole graphs: use a graph-classification dataset")
        return torch.arange(len(self.train_items)), "a graph"

    def example_loss(self, call, index: Tensor) -> Tensor:
        """The cross-entropy of one training graph (or the engine's own loss of it)."""
        i = int(index)
        prepared = self._prepared(call.module, "train", i, self.train_items[i])
        if hasattr(call.module, "loss"):
            return call.loss([prepared], [self.train_items[i]])[0]
        logits = call(prepared)
        y = torch.from_numpy(self.train_targets[i]).to(logits.device)
        return F.cross_entropy(logits, y)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> float | None:
        if not self.valid_items:
            return None
        was_training = model.training
        model.eval()
        try:
            indices = list(range(len(self.valid_items)))
            if hasattr(model, "loss"):
                prepared = [self._prepared(model, "valid", i, self.valid_items[i]) for i in indices]
                loss, _ = model.loss(prepared, self.valid_items)
                return float(loss)
            total, count, hits = self._cross_entropy(model, "valid", indices, self.valid_items, self.valid_targets)
        finally:
            model.train(was_training)
        if count == 0:
            return None
        self.last_accuracy = hits / count
        return float(total) / count

    def metrics(self) -> dict:
        """What the shared loop adds to the metrics: the last validation accuracy (None before one)."""
        return {"valid_accuracy": self.last_accuracy}
