"""What a model of the ``graph`` family reads and how it says where its states live.

A graph model works on one graph at a time:

- ``model.prepare(item) -> PreparedGraph``: everything that depends on the graph and the model's
  configuration but not on its weights (the rescaled Laplacian of each level, a Graclus coarsening and
  its binary-tree order, eigenvectors, Weisfeiler-Lehman labels ...), computed once per graph and cached
  by the training objective and the recorder. ``item`` is a :class:`lstmviz.datasets.graph_base.GraphItem`.
- ``model(prepared) -> logits``: ``[num_input_nodes, classes]`` in the input's node order for the node
  task, ``[1, classes]`` for the graph task.
- taps: :class:`lstmviz.hooks.Tap` with ``layout=lstmviz.hooks.GRAPH`` (a value ``[1, positions, units]``)
  and ``axis=`` the :attr:`GraphLevel.axis` of the level whose positions the rows are.
- optionally ``model.loss(prepared_list, items) -> (loss, count)`` for an engine trained by its own
  objective (subgraph2vec's skip-gram) instead of the family's cross-entropy.

:attr:`PreparedGraph.levels` says what the positions of each level are, so the recorder stores them
(format v3, ``graph`` axes) without guessing: level 0 is the axis ``positions`` (the input graph, maybe
reordered and padded with filler nodes), level ``k`` an axis ``level{k}`` pooled from level ``k-1``.
Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lstmviz.geometry import GraphGeometry


@dataclass(frozen=True, eq=False)
class GraphLevel:
    """The positions of one level.

    Attributes:
        axis: ``"positions"`` for level 0, ``"level1"``, ``"level2"`` ... for pooled levels.
        geometry: the level's graph in position order (filler mask, and for a pooled level the pooling
            map from the previous level's positions).
        source_node: level 0 only: int64 ``[positions]``, the input node at each position (-1: filler);
            ``None`` when the positions are the input nodes in order.
    """

    axis: str
    geometry: GraphGeometry
    source_node: np.ndarray | None = None


@dataclass(eq=False)
class PreparedGraph:
    """One graph, ready for a model (see the module docstring). ``tensors`` is engine-specific."""

    levels: tuple[GraphLevel, ...]
    features: Any  # torch.Tensor [num_input_nodes, F]
    num_input_nodes: int
    tensors: dict[str, Any] = field(default_factory=dict)
