"""``karate``, ``lesmis``, ``florentine``: networkx's bundled social graphs as node-classification tasks.

Each dataset is one graph (built in code by networkx, nothing downloaded); every split holds that same
graph and differs only in which nodes carry a target (``node_target`` is -1 elsewhere):

* the classes are the karate club's two factions (node attribute ``club``: ``Mr. Hi`` / ``Officer``),
  or, for ``lesmis`` and ``florentine``, communities found by networkx: ``community="greedy"``
  (Clauset–Newman–Moore greedy modularity maximisation, deterministic) or ``"louvain"`` (Louvain with
  ``seed``), on the edge weights where the graph has them; communities are numbered ``c0, c1, ...`` by
  decreasing size (ties: smallest node first);
* semi-supervised split, per class: a permutation of the class's nodes drawn with ``seed`` gives the
  first ``min(labelled_per_class, size - 1)`` nodes to train, then alternately to valid and test (so
  every class keeps a node for evaluation; the three node sets are disjoint and cover the graph).

Nodes are in networkx's node order; ``tokens`` are the node indices into ``vocab`` = the node names.
Features: option ``features`` (see :func:`.common.node_features`), default ``onehot``. Edge weights
(co-occurrence counts of ``karate`` and ``lesmis``) are kept only with ``weighted=True``.
Annotations: ``community`` (the class of every node, all splits), ``split`` (which split targets the
node), and ``degree``, ``wl``, ``hops`` (:mod:`.common`).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..base import AnnotationSpec, DatasetSpec, check_int, check_split
from ..graph_base import GraphItem
from .common import (
    SPLITS,
    GraphListDataset,
    WLIndex,
    check_bool,
    check_choice,
    check_options,
    check_hop_root,
    degree_bucket,
    degrees_of,
    freeze,
    graph_edges,
    hops,
    make_geometry,
    networkx,
    node_annotation_specs,
    node_features,
    wl_hashes,
)

FEATURES = ("onehot", "spectral")
COMMUNITIES = ("greedy", "louvain")


def communities(G, order: list, method: str, seed: int) -> np.ndarray:
    """Community id of every node of ``order`` (see the module docstring)."""
    from networkx.algorithms import community as nxc

    weight = "weight" if all("weight" in d for _, _, d in G.edges(data=True)) else None
    if method == "greedy":
        found = nxc.greedy_modularity_communities(G, weight=weight)
    else:
        found = nxc.louvain_communities(G, weight=weight, seed=seed)
    index = {node: i for i, node in enumerate(order)}
    groups = sorted((sorted(index[v] for v in c) for c in found), key=lambda g: (-len(g), g[0]))
    out = np.full(len(order), -1, dtype=np.int64)
    for c, members in enumerate(groups):
        out[members] = c
    return out


def split_nodes(classes: np.ndarray, labelled_per_class: int, seed: int) -> np.ndarray:
    """Split id (0 train, 1 valid, 2 test) of every node; see the module docstring."""
    rng = np.random.default_rng(seed)
    out = np.empty(len(classes), dtype=np.int64)
    for c in range(int(classes.max()) + 1):
        members = rng.permutation(np.flatnonzero(classes == c))
        take = min(labelled_per_class, len(members) - 1)
        out[members[:take]] = 0
        rest = members[take:]
        out[rest[0::2]] = 1
        out[rest[1::2]] = 2
    return out


class SocialGraphDataset(GraphListDataset):
    """One split of a bundled social graph (see the module docstring)."""

    def __init__(self, *, name: str, split: str, graph: Callable, class_of: Callable, class_names: Callable,
                 source: str, options: dict[str, Any], community_text: str):
        check_split(name, split, SPLITS)
        features = check_choice("features", options["features"], FEATURES)
        spectral_k = check_int("spectral_k", options["spectral_k"], minimum=1)
        per_class = check_int("labelled_per_class", options["labelled_per_class"], minimum=1)
        weighted = check_bool("weighted", options["weighted"])
        seed = check_int("seed", options["seed"], minimum=0)
        G = graph()
        order = list(G.nodes)
        n = len(order)
        hop_root = check_hop_root(options["hop_root"], n, f"the {name} graph")
        edges, weights = graph_edges(G, order)
        geometry = make_geometry(n, edges, weights=weights if weighted else None,
                                 node_names=[str(v) for v in order])
        classes = class_of(G, order)
        names = class_names(classes)
        split_of = split_nodes(classes, per_class, seed)
        target = np.where(split_of == SPLITS.index(split), classes, -1)
        wl_index = WLIndex()
        wl = wl_index.add(wl_hashes(n, geometry.edges))
        annotations = {
            "community": freeze(classes.copy()),
            "split": freeze(split_of),
            "degree": freeze(degree_bucket(degrees_of(n, geometry.edges))),
            "wl": freeze(wl),
            "hops": freeze(hops(geometry, hop_root)),
        }
        x = node_features(geometry, features, spectral_k)
        item = GraphItem(geometry=geometry, features=x, tokens=np.arange(n, dtype=np.int64), node_target=target,
                         annotations=annotations)
        specs = [
            AnnotationSpec("community", "categorical", labels=names, description=community_text),
            AnnotationSpec("split", "categorical", labels=SPLITS,
                           description="the split whose node_target holds this node's class (semi-supervised split)"),
            *node_annotation_specs(wl_index.labels, hop_root),
        ]
        effective = {"features": features, "spectral_k": spectral_k, "labelled_per_class": per_class,
                     "hop_root": hop_root, "weighted": weighted, "seed": seed}
        for key in ("community",):
            if key in options:
                effective[key] = options[key]
        super().__init__(name=name, split=split, items=[item], vocab=[str(v) for v in order],
                         annotation_specs=specs, options=effective, source=source, task="node",
                         num_features=int(x.shape[1]), class_names=names,
                         extra={"nodes": n, "edges": int(len(geometry.edges)),
                                "split_nodes": int((split_of == SPLITS.index(split)).sum())})
        self.wl_hashes = wl_index.hashes


# --- karate -------------------------------------------------------------------------------------------

KARATE_CLASSES = ("Mr. Hi", "Officer")
KARATE_SOURCE = ("networkx.karate_club_graph(): Zachary, 'An Information Flow Model for Conflict and Fission in "
                 "Small Groups', J. Anthropological Research 33 (1977); factions from the node attribute 'club'")
KARATE_OPTIONS = {"features": "onehot", "spectral_k": 4, "labelled_per_class": 2, "hop_root": 0,
                  "weighted": False, "seed": 0}


def _karate_graph():
    return networkx().karate_club_graph()


def _karate_classes(G, order) -> np.ndarray:
    return np.asarray([KARATE_CLASSES.index(G.nodes[v]["club"]) for v in order], dtype=np.int64)


def build_karate(split: str = "train", **options: Any) -> SocialGraphDataset:
    """Zachary's karate club: classify the faction each member joined (see the module docstring)."""
    check_options("karate", options, KARATE_OPTIONS)
    return SocialGraphDataset(name="karate", split=split, graph=_karate_graph, class_of=_karate_classes,
                              class_names=lambda classes: KARATE_CLASSES, source=KARATE_SOURCE,
                              options={**KARATE_OPTIONS, **options},
                              community_text="the faction the member joined after the split (attribute 'club')")


KARATE = DatasetSpec(
    name="karate",
    description="Zachary's karate club (34 nodes, 78 edges): node classification of the two factions",
    build=build_karate,
    splits=SPLITS,
    options=dict(KARATE_OPTIONS),
    annotations=("community", "split", "degree", "wl", "hops"),
    source=KARATE_SOURCE,
)


# --- lesmis and florentine: classes are detected communities --------------------------------------------

def _community_build(name: str, graph_name: str, source: str, defaults: dict[str, Any]):
    def build(split: str = "train", **options: Any) -> SocialGraphDataset:
        check_options(name, options, defaults)
        opts = {**defaults, **options}
        method = check_choice("community", opts["community"], COMMUNITIES)
        seed = check_int("seed", opts["seed"], minimum=0)
        text = ("community found by networkx's greedy modularity maximisation (Clauset-Newman-Moore), "
                "numbered by decreasing size" if method == "greedy" else
                f"community found by networkx's Louvain method with seed {seed}, numbered by decreasing size")
        return SocialGraphDataset(
            name=name, split=split, graph=lambda: getattr(networkx(), graph_name)(),
            class_of=lambda G, order: communities(G, order, method, seed),
            class_names=lambda classes: tuple(f"c{c}" for c in range(int(classes.max()) + 1)),
            source=source, options=opts, community_text=text)

    build.__doc__ = f"The {name} graph with detected communities as classes (see the module docstring)."
    return build


LESMIS_SOURCE = ("networkx.les_miserables_graph(): co-appearance of characters in Victor Hugo's Les Misérables "
                 "(Knuth, The Stanford GraphBase, 1993); classes are detected communities")
LESMIS_OPTIONS = {**KARATE_OPTIONS, "community": "greedy"}
build_lesmis = _community_build("lesmis", "les_miserables_graph", LESMIS_SOURCE, LESMIS_OPTIONS)

LESMIS = DatasetSpec(
    name="lesmis",
    description="Les Misérables co-appearance graph (77 nodes, 254 edges): node classification of communities",
    build=build_lesmis,
    splits=SPLITS,
    options=dict(LESMIS_OPTIONS),
    annotations=("community", "split", "degree", "wl", "hops"),
    source=LESMIS_SOURCE,
)

FLORENTINE_SOURCE = ("networkx.florentine_families_graph(): marriage ties of Renaissance Florentine families "
                     "(Breiger & Pattison, 'Cumulated social roles', Social Networks 8, 1986); classes are "
                     "detected communities")
FLORENTINE_OPTIONS = {**LESMIS_OPTIONS, "labelled_per_class": 1}
build_florentine = _community_build("florentine", "florentine_families_graph", FLORENTINE_SOURCE, FLORENTINE_OPTIONS)

FLORENTINE = DatasetSpec(
    name="florentine",
    description="Florentine families marriage graph (15 nodes, 20 edges): node classification of communities",
    build=build_florentine,
    splits=SPLITS,
    options=dict(FLORENTINE_OPTIONS),
    annotations=("community", "split", "degree", "wl", "hops"),
    source=FLORENTINE_SOURCE,
)
