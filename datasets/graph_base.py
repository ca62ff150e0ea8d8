"""Graph datasets: items that are graphs, with node features, targets and per-node annotations.

A graph dataset is a fixed split of graphs. Each :class:`GraphItem` is one graph whose nodes are the
item's positions (in node order ``0 .. n-1``): its ``tokens`` are what the window's text strip shows
per node (ids into the dataset's ``vocab``: a node's name, or its degree label), its ``annotations``
hold one value per node, its ``item_annotations`` one per graph. Models read ``features`` and
``edges``; training reads ``node_target`` (node classification; ``-1``: not trained on in this split)
or ``graph_target`` (graph classification). Nothing here imports torch.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lstmviz.geometry import GraphGeometry

from .base import AnnotationSpec, ItemDataset

TASKS = ("node", "graph")


@dataclass
class GraphItem:
    """One graph (see the module docstring).

    ``geometry`` is the checked graph (:meth:`lstmviz.geometry.GraphGeometry.from_edges`: edges with
    item-local node indices, optional weights, fixed layout and node names); ``features`` is float32
    ``[n, F]``; ``tokens`` int64 ``[n]``.
    """

    geometry: GraphGeometry
    features: np.ndarray
    tokens: np.ndarray
    node_target: np.ndarray | None = None
    graph_target: int | None = None
    annotations: dict[str, np.ndarray] = field(default_factory=dict)
    item_annotations: dict[str, int | float] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.geometry.num_nodes


class GraphDataset(ItemDataset):
    """One split of a graph dataset.

    Subclasses set ``name``, ``split``, ``vocab``, ``annotation_specs``, ``options``, ``source``,
    ``task`` (``"node"`` or ``"graph"``), ``num_features``, ``class_names`` (the target classes) and
    implement ``__len__`` and ``_item``. Every split of one dataset has the same vocabulary, features
    and classes.
    """

    name: str
    split: str
    vocab: list[str]
    annotation_specs: list[AnnotationSpec]
    options: dict[str, Any]
    source: str
    task: str
    num_features: int
    class_names: tuple[str, ...]

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of graphs."""

    @abc.abstractmethod
    def _item(self, i: int) -> GraphItem:
        """Graph ``i``, with ``0 <= i < len(self)``."""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def provenance(self) -> dict[str, Any]:
        """JSON-serialisable description: name, split, options, source, task, classes, annotations, sizes."""
        return {
            "name": self.name,
            "split": self.split,
            "options": dict(self.options),
            "source": self.source,
            "task": self.task,
            "num_features": int(self.num_features),
            "classes": list(self.class_names),
            "vocab_size": len(self.vocab),
            "items": len(self),
            "annotations": {s.name: s.to_dict() for s in self.annotation_specs},
        }

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name}/{self.split}: {len(self)} graphs, {self.task} task, "
                f"{self.num_classes} classes>")
