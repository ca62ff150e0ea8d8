"""``graph-families``: graph classification of synthetic graphs from networkx's random generators.

Classes (option ``families``):

* ``"sbm"``: stochastic block models with 2 (``sbm-2``) against 3 (``sbm-3``) blocks. ``n`` nodes in
  ``b`` blocks as equal as possible (sizes ``s_i``); with ``s = n / b`` the edge probabilities are
  ``p_in = min(1, 4 / (s - 1))`` inside a block and ``p_out = 1 / (n - s)`` between blocks, so both
  classes have the same expected degree (about 4 inside + 1 across): density does not give the class away.
* ``"ws-ba"``: Watts–Strogatz small worlds (``k = 4`` ring neighbours, rewiring ``p = 0.1``) against
  Barabási–Albert preferential attachment (``m = 2``): both mean degree about 4.
* ``"all"``: the four classes together.

Every graph has ``n`` nodes drawn uniformly in ``min_nodes .. max_nodes`` (15–30). Graph ``j`` of
family ``f`` comes from ``numpy.random.default_rng(SeedSequence([seed, f, j]))`` (its size and the seed
given to the networkx generator), so a graph does not depend on the other options' values. A generator
may give a disconnected graph (an SBM, rarely WS): it is kept (hop distances are NaN across components).

Splits, per class: a permutation drawn from ``seed`` sends ``round(0.2 g)`` graphs to valid, as many to
test and the rest to train (``g = graphs_per_class``); each split's items are then shuffled (seeded).
Node features: one-hot of the capped degree ``min(deg, degree_cap)`` (``degree_cap + 1`` columns)
and a constant 1; tokens: the capped degree label ``d0 .. d{cap}+``.
Annotations per node: ``community`` (the SBM block ``b0``.., -1 for the other families),
``graph_class`` (the graph's class on every node), ``degree``, ``wl``, ``hops`` (:mod:`.common`); per
graph: ``class``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from ..base import AnnotationSpec, DatasetError, DatasetSpec, check_int, check_split
from ..graph_base import GraphItem
from .common import (
    SPLITS,
    GraphListDataset,
    WLIndex,
    check_choice,
    check_options,
    degree_bucket,
    degrees_of,
    freeze,
    graph_edges,
    hops,
    make_geometry,
    networkx,
    node_annotation_specs,
    wl_hashes,
)

ALL_CLASSES = ("sbm-2", "sbm-3", "watts-strogatz", "barabasi-albert")
FAMILIES = {"sbm": ALL_CLASSES[:2], "ws-ba": ALL_CLASSES[2:], "all": ALL_CLASSES}
MAX_BLOCKS = 3
SMALLEST = 6  # BA with m = 2 and WS with k = 4 need more than 4 nodes; 6 keeps every SBM block >= 2
VALID_FRACTION = TEST_FRACTION = 0.2


def block_sizes(n: int, blocks: int) -> list[int]:
    return [n // blocks + (1 if i < n % blocks else 0) for i in range(blocks)]


def _sbm(n: int, seed: int, blocks: int):
    sizes = block_sizes(n, blocks)
    s = n / blocks
    p_in, p_out = min(1.0, 4.0 / (s - 1.0)), 1.0 / (n - s)
    probs = [[p_in if a == b else p_out for b in range(blocks)] for a in range(blocks)]
    return networkx().stochastic_block_model(sizes, probs, seed=seed)


GENERATORS: dict[str, Callable] = {
    "sbm-2": lambda n, seed: _sbm(n, seed, 2),
    "sbm-3": lambda n, seed: _sbm(n, seed, 3),
    "watts-strogatz": lambda n, seed: networkx().watts_strogatz_graph(n, 4, 0.1, seed=seed),
    "barabasi-albert": lambda n, seed: networkx().barabasi_albert_graph(n, 2, seed=seed),
}
"""family -> ``(n, seed) -> networkx.Graph`` (a module attribute so tests can substitute one)."""


def split_counts(graphs_per_class: int) -> tuple[int, int, int]:
    valid = int(round(VALID_FRACTION * graphs_per_class))
    test = int(round(TEST_FRACTION * graphs_per_class))
    return graphs_per_class - valid - test, valid, test


def _blocks_of(G, order: list) -> np.ndarray:
    """SBM block of every node (networkx's node attribute ``block``), -1 for other graphs."""
    return np.asarray([G.nodes[v].get("block", -1) for v in order], dtype=np.int64)


@functools.lru_cache(maxsize=8)
def generate(families: str, graphs_per_class: int, min_nodes: int, max_nodes: int, degree_cap: int, hop_root: int,
             seed: int) -> tuple[dict[str, list[GraphItem]], tuple[str, ...]]:
    """Every split's items and the WL labels (see the module docstring); cached per option set."""
    classes = FAMILIES[families]
    rng = np.random.default_rng(seed)
    counts = split_counts(graphs_per_class)
    assigned: dict[str, list[tuple[int, int]]] = {s: [] for s in SPLITS}
    for c in range(len(classes)):
        perm = rng.permutation(graphs_per_class)
        bounds = np.cumsum((0,) + counts)
        for s, split in enumerate(SPLITS):
            assigned[split] += [(c, int(j)) for j in perm[bounds[s]:bounds[s + 1]]]
    wl_index = WLIndex()
    out: dict[str, list[GraphItem]] = {}
    for split in SPLITS:
        order = rng.permutation(len(assigned[split]))
        out[split] = [_graph_item(classes, *assigned[split][i], min_nodes=min_nodes, max_nodes=max_nodes,
                                  degree_cap=degree_cap, hop_root=hop_root, seed=seed, wl_index=wl_index)
                      for i in order]
    return out, wl_index.labels


def _graph_item(classes, c: int, j: int, *, min_nodes: int, max_nodes: int, degree_cap: int, hop_root: int,
                seed: int, wl_index: WLIndex) -> GraphItem:
    family = classes[c]
    rng = np.random.default_rng(np.random.SeedSequence([seed, ALL_CLASSES.index(family), j]))
    n = int(rng.integers(min_nodes, max_nodes + 1))
    G = GENERATORS[family](n, int(rng.integers(2**31)))
    order = list(G.nodes)
    if not order:
        raise DatasetError(f"the {family} generator gave a graph with no nodes (graph {j}); "
                           "choose larger min_nodes")
    if hop_root >= len(order):
        raise DatasetError(f"option 'hop_root' is {hop_root} but a {family} graph has only {len(order)} nodes; "
                           "choose a smaller hop_root")
    edges, _ = graph_edges(G, order)
    geometry = make_geometry(len(order), edges)
    degree = degrees_of(geometry.num_nodes, geometry.edges)
    capped = np.minimum(degree, degree_cap)
    x = np.zeros((geometry.num_nodes, degree_cap + 2), dtype=np.float32)
    x[np.arange(geometry.num_nodes), capped] = 1.0
    x[:, -1] = 1.0
    return GraphItem(
        geometry=geometry, features=x, tokens=capped.astype(np.int64), graph_target=c,
        annotations={
            "community": freeze(_blocks_of(G, order)),
            "graph_class": freeze(np.full(geometry.num_nodes, c, dtype=np.int64)),
            "degree": freeze(degree_bucket(degree)),
            "wl": freeze(wl_index.add(wl_hashes(geometry.num_nodes, geometry.edges))),
            "hops": freeze(hops(geometry, hop_root)),
        },
        item_annotations={"class": c},
    )


OPTIONS = {"families": "sbm", "graphs_per_class": 60, "min_nodes": 15, "max_nodes": 30, "degree_cap": 5,
           "hop_root": 0, "seed": 0}
SOURCE = ("synthetic; networkx generators stochastic_block_model, watts_strogatz_graph, barabasi_albert_graph "
          "(classes as in the subgraph2vec experiments, Narayanan et al., arXiv:1606.08928)")


def build(split: str = "train", **options: Any) -> GraphListDataset:
    """One split of the synthetic graph families (see the module docstring)."""
    check_split("graph-families", split, SPLITS)
    check_options("graph-families", options, OPTIONS)
    opts = {**OPTIONS, **options}
    families = check_choice("families", opts["families"], tuple(FAMILIES))
    per_class = check_int("graphs_per_class", opts["graphs_per_class"], minimum=3)
    lo = check_int("min_nodes", opts["min_nodes"], minimum=SMALLEST)
    hi = check_int("max_nodes", opts["max_nodes"], minimum=SMALLEST)
    if hi < lo:
        raise DatasetError(f"option 'max_nodes' ({hi}) must be at least 'min_nodes' ({lo})")
    cap = check_int("degree_cap", opts["degree_cap"], minimum=1)
    hop_root = check_int("hop_root", opts["hop_root"], minimum=0)
    if hop_root >= lo:
        raise DatasetError(f"option 'hop_root' is {hop_root} but the smallest graphs have min_nodes={lo} nodes "
                           f"(0 .. {lo - 1}); choose a node index in that range")
    seed = check_int("seed", opts["seed"], minimum=0)
    items, wl_labels = generate(families, per_class, lo, hi, cap, hop_root, seed)
    classes = FAMILIES[families]
    specs = [
        AnnotationSpec("community", "categorical", labels=tuple(f"b{b}" for b in range(MAX_BLOCKS)),
                       description="the node's block in a stochastic block model; -1 in the other families"),
        AnnotationSpec("graph_class", "categorical", labels=classes,
                       description="the class (generator) of the node's graph"),
        *node_annotation_specs(wl_labels, hop_root),
        AnnotationSpec("class", "categorical", level="item", labels=classes,
                       description="the generator the graph came from"),
    ]
    effective = {"families": families, "graphs_per_class": per_class, "min_nodes": lo, "max_nodes": hi,
                 "degree_cap": cap, "hop_root": hop_root, "seed": seed}
    vocab = [f"d{d}" for d in range(cap)] + [f"d{cap}+"]
    return GraphListDataset(name="graph-families", split=split, items=list(items[split]), vocab=vocab,
                            annotation_specs=specs, options=effective, source=SOURCE, task="graph",
                            num_features=cap + 2, class_names=classes)


SPEC = DatasetSpec(
    name="graph-families",
    description="synthetic graphs (15-30 nodes) to classify by generator: SBM 2 vs 3 blocks, or "
    "Watts-Strogatz vs Barabasi-Albert",
    build=build,
    splits=SPLITS,
    options=dict(OPTIONS),
    annotations=("community", "graph_class", "degree", "wl", "hops", "class"),
    source=SOURCE,
)
