"""What every graph dataset shares: networkx graph -> :class:`GraphItem`, node annotations, features.

Node annotations (one value per node, the same definitions on every graph dataset):

* ``degree`` (categorical): the node's degree (neighbours; a self-loop counts twice, as in networkx)
  in the buckets :data:`DEGREE_BUCKETS` ``0, 1, 2, 3-4, 5-8, 9-16, 17+``.
* ``wl`` (categorical): the Weisfeiler–Lehman label of the node after two iterations, starting from its
  degree::

      l_0(v) = deg(v),   l_t(v) = hash(l_{t-1}(v), sorted multiset {l_{t-1}(u) : u in N(v)})

  computed with ``networkx.weisfeiler_lehman_subgraph_hashes(G, node_attr=<degree>, iterations=2)``
  (its second hash; called without node attributes, networkx >= 3.5 counts the degree itself as
  iteration 1, so the same hash is its entry 2 of ``iterations=3``). ``l_2`` is the same for two
  nodes iff their 2-hop unfoldings (rooted subtrees of depth 2) with degrees are the same. The hashes are mapped to ids ``wl0, wl1, ...`` per dataset in first-seen order
  (graphs in split order train, valid, test, then item order; nodes in node order), so the same rooted
  subgraph has the same id in every split of one dataset (:class:`WLIndex`).
* ``hops`` (numeric): the hop distance (unweighted shortest path) from the node ``hop_root``; NaN where
  unreachable (another connected component).

Features for a graph without node features (:func:`node_features`):

* ``onehot``: the identity ``I_n`` (node id one-hot; ``n`` features);
* ``spectral``: ``[u_1 .. u_k, deg / max deg]`` where ``u_i`` are eigenvectors of the symmetric
  normalised Laplacian ``L = I - D^{-1/2} A D^{-1/2}`` of the unweighted graph (isolated nodes: row and
  column 0 of ``D^{-1/2} A D^{-1/2}``) for the eigenvalues ``λ_1 <= .. <= λ_k`` after the smallest
  ``λ_0`` (the constant-like one), each signed so that its entry of largest magnitude is positive.

This module imports networkx lazily (:func:`networkx`), so the datasets package loads without it.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from lstmviz.geometry import GeometryError, GraphGeometry

from ..base import AnnotationSpec, DatasetError, MissingDependency, check_int
from ..graph_base import GraphDataset, GraphItem

SPLITS = ("train", "valid", "test")
INSTALL_HINT = "pip install 'lstmviz[graphs]'  (or: pip install networkx scikit-learn)"
DEGREE_BUCKETS = ("0", "1", "2", "3-4", "5-8", "9-16", "17+")
_DEGREE_EDGES = np.array([1, 2, 3, 5, 9, 17])  # bucket b holds degrees in [edge[b-1], edge[b])
WL_ITERATIONS = 2


def networkx():
    """The networkx module, or a ``MissingDependency`` that names the pip command."""
    try:
        import networkx as nx
    except ImportError as exc:
        raise MissingDependency(f"the graph datasets need the package 'networkx': {INSTALL_HINT}") from exc
    return nx


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise DatasetError(f"option {name!r} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_options(dataset: str, options: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Refuse options ``dataset`` does not have (``load_dataset`` does the same before building)."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        known = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
        raise DatasetError(f"dataset {dataset!r} has no option {', '.join(map(repr, unknown))}; "
                           f"options (with defaults): {known}")


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise DatasetError(f"option {name!r} must be True or False, got {value!r}")
    return bool(value)


def degree_bucket(degrees: np.ndarray) -> np.ndarray:
    """Bucket ids into :data:`DEGREE_BUCKETS` (int64)."""
    return np.searchsorted(_DEGREE_EDGES, np.asarray(degrees), side="right").astype(np.int64)


def graph_edges(G, order: Sequence) -> tuple[np.ndarray, np.ndarray | None]:
    """``G``'s edges as int64 ``[E, 2]`` indices into ``order`` (its nodes), with ``weight`` attributes
    as float weights when every edge has one (else ``None``)."""
    index = {node: i for i, node in enumerate(order)}
    pairs, weights = [], []
    for a, b, data in G.edges(data=True):
        pairs.append((index[a], index[b]))
        weights.append(data.get("weight"))
    edges = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    has_weights = bool(weights) and all(w is not None for w in weights)
    return edges, (np.asarray(weights, dtype=np.float64) if has_weights else None)


def degrees_of(num_nodes: int, edges: np.ndarray) -> np.ndarray:
    """Node degrees of an undirected edge list (a self-loop counts twice, as in networkx)."""
    return (np.bincount(edges[:, 0], minlength=num_nodes) + np.bincount(edges[:, 1], minlength=num_nodes)
            ).astype(np.int64)


def wl_hashes(num_nodes: int, edges: np.ndarray) -> list[str]:
    """The iteration-2 Weisfeiler–Lehman hash of every node (degree as the initial label)."""
    nx = networkx()
    G = nx.Graph()
    G.add_nodes_from(range(num_nodes))
    G.add_edges_from(map(tuple, edges.tolist()))
    degree = degrees_of(num_nodes, edges)
    nx.set_node_attributes(G, {v: str(int(degree[v])) for v in range(num_nodes)}, "wl_degree")
    with warnings.catch_warnings():  # networkx warns that hashes changed in 3.5; ours come from one version
        warnings.simplefilter("ignore", UserWarning)
        hashes = nx.weisfeiler_lehman_subgraph_hashes(G, node_attr="wl_degree", iterations=WL_ITERATIONS)
    return [hashes[v][WL_ITERATIONS - 1] for v in range(num_nodes)]


class WLIndex:
    """WL hashes -> ids ``0, 1, ...`` in first-seen order (see the module docstring)."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def add(self, hashes: Sequence[str]) -> np.ndarray:
        out = np.empty(len(hashes), dtype=np.int64)
        for i, h in enumerate(hashes):
            out[i] = self.ids.setdefault(h, len(self.ids))
        return out

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(f"wl{i}" for i in range(len(self.ids)))

    @property
    def hashes(self) -> tuple[str, ...]:
        """The networkx hash of each id."""
        return tuple(self.ids)


def check_hop_root(hop_root: Any, num_nodes: int, what: str) -> int:
    root = check_int("hop_root", hop_root, minimum=0)
    if root >= num_nodes:
        raise DatasetError(f"option 'hop_root' is {root} but {what} has only {num_nodes} nodes "
                           f"(0 .. {num_nodes - 1}); choose a node index in that range")
    return root


def hops(geometry: GraphGeometry, root: int) -> np.ndarray:
    """Hop distance of every node from ``root`` (float64; NaN where unreachable)."""
    d = geometry.hops_from(root).astype(np.float64)
    d[d < 0] = np.nan
    return d


def make_geometry(num_nodes: int, edges: np.ndarray, *, weights=None, coordinates=None,
                  node_names=None) -> GraphGeometry:
    """:meth:`GraphGeometry.from_edges` with its refusals as ``DatasetError`` sentences."""
    try:
        return GraphGeometry.from_edges(num_nodes, edges, weights=weights, coordinates=coordinates,
                                        node_names=node_names)
    except GeometryError as exc:
        raise DatasetError(f"the dataset produced a graph that cannot be used: {exc}") from exc


def node_features(geometry: GraphGeometry, kind: str, k: int) -> np.ndarray:
    """float32 ``[n, F]`` features for a graph without its own (see the module docstring)."""
    n = geometry.num_nodes
    if kind == "onehot":
        return np.eye(n, dtype=np.float32)
    if k > n - 1:
        raise DatasetError(f"option 'spectral_k' is {k} but the graph has {n} nodes, so at most {n - 1} "
                           "non-trivial Laplacian eigenvectors; choose a smaller spectral_k")
    a = geometry.adjacency().toarray()
    a = (a != 0).astype(np.float64)
    deg = a.sum(axis=1)
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.where(deg > 0, deg, 1.0)), 0.0)
    lap = np.eye(n) - inv[:, None] * a * inv[None, :]
    _, vectors = np.linalg.eigh(lap)
    u = vectors[:, 1:k + 1]
    peak = u[np.abs(u).argmax(axis=0), np.arange(u.shape[1])]
    u = u * np.where(peak < 0, -1.0, 1.0)
    degree = degrees_of(n, geometry.edges).astype(np.float64)
    top = degree.max()
    return np.column_stack([u, degree / top if top > 0 else degree]).astype(np.float32)


def freeze(array: np.ndarray) -> np.ndarray:
    """``array`` made read-only (annotations shared between items of one graph must not be edited)."""
    array.setflags(write=False)
    return array


def node_annotation_specs(wl_labels: tuple[str, ...], hop_root: int) -> list[AnnotationSpec]:
    """The ``degree``, ``wl`` and ``hops`` specs (see the module docstring)."""
    return [
        AnnotationSpec("degree", "categorical", labels=DEGREE_BUCKETS,
                       description="the node's degree (number of neighbours), bucketed"),
        AnnotationSpec("wl", "categorical", labels=wl_labels or ("wl0",),
                       description=f"Weisfeiler–Lehman label after {WL_ITERATIONS} iterations from the degree "
                       "(networkx.weisfeiler_lehman_subgraph_hashes), ids in first-seen order over the "
                       "dataset: equal ids = isomorphic 2-hop unfoldings"),
        AnnotationSpec("hops", "numeric",
                       description=f"hop distance from node {hop_root} (option hop_root); NaN if unreachable"),
    ]


class GraphListDataset(GraphDataset):
    """A split held as a list of :class:`GraphItem` (every graph dataset here is small)."""

    def __init__(self, *, name: str, split: str, items: list[GraphItem], vocab: list[str],
                 annotation_specs: list[AnnotationSpec], options: dict[str, Any], source: str, task: str,
                 num_features: int, class_names: tuple[str, ...], extra: dict[str, Any] | None = None):
        self.name, self.split = name, split
        self.items = items
        self.vocab = vocab
        self.annotation_specs = annotation_specs
        self.options = options
        self.source = source
        self.task = task
        self.num_features = num_features
        self.class_names = class_names
        self.extra = dict(extra or {})

    def __len__(self) -> int:
        return len(self.items)

    def _item(self, i: int) -> GraphItem:
        return self.items[i]

    def provenance(self) -> dict[str, Any]:
        prov = super().provenance()
        prov.update(self.extra)
        return prov
