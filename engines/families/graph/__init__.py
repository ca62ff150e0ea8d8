"""Family ``graph``: models that read one graph at a time and classify its nodes or the whole graph.

- data description: :class:`GraphData` (``num_features``, ``num_classes``, ``task``), from a
  :class:`~lstmviz.datasets.graph_base.GraphDataset` or from a checkpoint (its ``data`` entry);
- inputs: :class:`~lstmviz.datasets.graph_base.GraphItem` objects; a model turns one into a
  :class:`~.api.PreparedGraph` (``model.prepare(item)``) and returns logits for it (``model(prepared)``:
  ``[nodes, classes]`` in the input's node order for the ``node`` task, ``[1, classes]`` for ``graph``);
  its taps are ``[1, positions of a level, units]`` on the level's axis (:mod:`.api`);
- training (:mod:`.objective`): cross-entropy over the nodes with a target (``node_target >= 0``, the
  semi-supervised node task on full graphs) or over the graphs (the graph task), ``batch_size`` graphs
  per step; an engine with its own ``loss`` (subgraph2vec's skip-gram) is trained by it instead;
- contract: :mod:`.contract`.

Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from lstmviz.datasets.graph_base import TASKS, GraphDataset, GraphItem
from lstmviz.geometry import GraphGeometry

from ..family import Family


@dataclass(frozen=True)
class GraphData:
    """What a graph model needs to know about its data."""

    num_features: int = field(metadata={"meaning": "the number of node features"})
    num_classes: int = field(metadata={"meaning": "the number of target classes"})
    task: str = field(metadata={"meaning": "the task (node or graph classification)"})

    def __post_init__(self) -> None:
        for name in ("num_features", "num_classes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"expected {name} to be a positive int, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.task not in TASKS:
            raise ValueError(f"expected task to be one of {', '.join(TASKS)}, got {self.task!r}")


def describe_dataset(dataset: Any) -> GraphData:
    for attribute in ("num_features", "class_names", "task"):
        if not hasattr(dataset, attribute):
            raise TypeError(f"expected a graph dataset (with .num_features, .class_names and .task), "
                            f"got {type(dataset).__name__}")
    return GraphData(num_features=int(dataset.num_features), num_classes=len(dataset.class_names),
                     task=str(dataset.task))


def describe_checkpoint(payload: Mapping[str, Any]) -> GraphData:
    data = payload.get("data")
    if not isinstance(data, Mapping):
        raise ValueError("bad 'data': a graph checkpoint records its data description (num_features, num_classes, "
                         "task); this one has none")
    try:
        return GraphData(num_features=data["num_features"], num_classes=data["num_classes"], task=data["task"])
    except KeyError as e:
        raise ValueError(f"bad 'data': missing {e.args[0]}") from None


def random_graph_item(data: GraphData, num_nodes: int, rng: np.random.Generator) -> GraphItem:
    """A small random connected graph (a path plus random chords) with random features and targets."""
    n = int(num_nodes)
    edges = [(i, i + 1) for i in range(n - 1)]
    for _ in range(n // 2):
        a, b = rng.integers(0, n, size=2)
        if a != b:
            edges.append((int(a), int(b)))
    geometry = GraphGeometry.from_edges(n, np.array(edges, dtype=np.int64).reshape(-1, 2),
                                        node_names=[f"v{i}" for i in range(n)])
    return GraphItem(
        geometry=geometry,
        features=rng.normal(size=(n, data.num_features)).astype(np.float32),
        tokens=np.arange(n, dtype=np.int64) % 4,
        node_target=rng.integers(0, data.num_classes, size=n).astype(np.int64) if data.task == "node" else None,
        graph_target=int(rng.integers(0, data.num_classes)) if data.task == "graph" else None,
        annotations={"degree": np.bincount(geometry.edges.reshape(-1), minlength=n).astype(np.float32)},
        item_annotations={},
    )


def sample_inputs(data: GraphData, *, batch: int = 3, length: int = 6, seed: int = 0) -> list[GraphItem]:
    """``batch`` random connected graphs of ``length .. length+2`` nodes, reproducible by ``seed``."""
    rng = np.random.default_rng(seed)
    items = [random_graph_item(data, length + int(rng.integers(0, 3)), rng) for _ in range(batch)]
    for item in items:
        item.item_annotations["graph_class"] = item.graph_target if item.graph_target is not None else 0
    return items


class SampleGraphs(GraphDataset):
    """A :class:`GraphDataset` of :func:`sample_inputs` graphs (tests, contract checks, the recorder's checks)."""

    def __init__(self, data: GraphData, *, graphs: int = 4, nodes: int = 6, seed: int = 0, split: str = "train"):
        self.name = "sample-graphs"
        self.split = split
        self.vocab = ["a", "b", "c", "d"]
        from lstmviz.datasets.base import AnnotationSpec

        self.class_names = tuple(f"class{i}" for i in range(data.num_classes))
        self.annotation_specs = [
            AnnotationSpec(name="degree", kind="numeric", level="position", description="the node's degree"),
            AnnotationSpec(name="graph_class", kind="categorical", level="item", labels=self.class_names,
                           description="the graph's class (0 for the node task)"),
        ]
        self.options = {"graphs": graphs, "nodes": nodes, "seed": seed}
        self.source = "random graphs (lstmviz.engines.families.graph.sample_inputs)"
        self.task = data.task
        self.num_features = data.num_features
        self._items = sample_inputs(data, batch=graphs, length=nodes, seed=seed)

    def __len__(self) -> int:
        return len(self._items)

    def _item(self, i: int) -> GraphItem:
        return self._items[i]


FAMILY = Family(
    name="graph",
    description="one graph in, node or graph class logits out; trained by cross-entropy over labelled nodes or graphs",
    data=GraphData,
    describe_dataset=describe_dataset,
    describe_checkpoint=describe_checkpoint,
    sample_inputs=sample_inputs,
    objective="lstmviz.engines.families.graph.objective:GraphObjective",
    contract="lstmviz.engines.families.graph.contract",
    train_settings={},
    default_dataset="karate",
)

__all__ = ["FAMILY", "GraphData", "SampleGraphs", "describe_checkpoint", "describe_dataset", "random_graph_item",
           "sample_inputs"]
