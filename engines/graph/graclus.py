"""Graclus coarsening and the binary-tree ordering that makes graph pooling 1-D pooling of size 2.

Graclus (Dhillon, Guan, Kulis 2007), one level, as Defferrard et al. (2016) use it: visit the nodes in a
seeded random order; an unmarked node ``i`` is marked and matched with the unmarked neighbour ``j``
that maximises the local normalised cut ``W_ij (1/d_i + 1/d_j)`` (``j`` is marked too), or stays alone
when every neighbour is marked. Every coarse node is one such pair or singleton; the coarse weights are
the sums ``W' = P^T W P`` (``P`` the ``n x n'`` assignment), whose diagonal (the pair's inner weight)
counts in the next level's degrees ``d_i = sum_j W_ij`` (a cluster's volume) but is no edge. Each level
roughly halves the node count. Ties go to the neighbour listed first (lowest index).

Binary-tree ordering: the ``L``-th (coarsest) level keeps its ``n_L`` nodes as positions ``0 .. n_L-1``.
Going one level finer, the position ``p`` of a coarse node becomes positions ``2p`` and ``2p+1``, holding
its one or two children; a missing child, and both children of a filler position, are *filler* ("fake")
positions: isolated nodes with no input. Level ``k`` then has ``n_L 2^(L-k)`` positions, the nodes a
level-``k+1`` position pools are the contiguous pair ``2p, 2p+1``, and pooling over the parent map
equals pairwise pooling of the ordered signal. Fillers hold 0 (the ChebNet masks them after each ReLU),
so a max over a pair is a max over its real nodes.

:func:`graph_levels` gives the engine's :class:`~lstmviz.engines.families.graph.api.GraphLevel` tuple:
level 0 on axis ``positions`` (the input nodes in tree order, ``source_node`` the input node of each
position or -1, the filler mask), level ``k`` on axis ``level{k}`` with the pooling map from level
``k-1`` (position ``q`` pools into ``q // 2``); every level's edges in its own position order, fillers
isolated. This module is numpy/scipy only (re-derived from the papers, no code taken from elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from lstmviz.engines.families.graph.api import GraphLevel
from lstmviz.geometry import GraphGeometry

from .ops import adjacency

FILLER_NAME = "<filler>"


@dataclass(frozen=True, eq=False)
class Coarsening:
    """Graclus levels of one graph (node ids in each level's own numbering, before any ordering).

    Attributes:
        graphs: ``W_0 .. W_L`` (float64 CSR, symmetric; ``W_0`` without self-loops, coarser ones with
            the clusters' inner weight on the diagonal).
        parents: ``parents[k]``: int64 ``[nodes of level k]``, the level-``k+1`` node each pools into.
    """

    graphs: tuple[sparse.csr_matrix, ...]
    parents: tuple[np.ndarray, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(W.shape[0] for W in self.graphs)


def graclus_level(W: sparse.spmatrix, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """One Graclus level: ``(parent [n], n_coarse)``; see the module docstring."""
    W = sparse.csr_matrix(W, dtype=np.float64)
    n = W.shape[0]
    degree = np.asarray(W.sum(axis=1)).reshape(-1)
    indptr, indices, data = W.indptr, W.indices, W.data
    marked = np.zeros(n, dtype=bool)
    parent = np.full(n, -1, dtype=np.int64)
    count = 0
    for i in rng.permutation(n):
        if marked[i]:
            continue
        marked[i] = True
        best, best_value = -1, -np.inf
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if j == i or marked[j] or data[p] <= 0:
                continue
            value = data[p] * (1.0 / degree[i] + 1.0 / degree[j])
            if value > best_value:
                best, best_value = j, value
        parent[i] = count
        if best >= 0:
            marked[best] = True
            parent[best] = count
        count += 1
    return parent, count


def coarsen(W: sparse.spmatrix, levels: int, seed: int = 0) -> Coarsening:
    """``levels`` Graclus levels of ``W`` (visit orders drawn from ``numpy.random.default_rng(seed)``)."""
    if levels < 0:
        raise ValueError(f"the number of coarsening levels must be >= 0, got {levels}")
    rng = np.random.default_rng(seed)
    graphs = [sparse.csr_matrix(W, dtype=np.float64)]
    parents = []
    for _ in range(levels):
        parent, count = graclus_level(graphs[-1], rng)
        P = sparse.csr_matrix((np.ones(len(parent)), (np.arange(len(parent)), parent)), shape=(len(parent), count))
        coarse = (P.T @ graphs[-1] @ P).tocsr()
        coarse.eliminate_zeros()
        graphs.append(coarse)
        parents.append(parent)
    return Coarsening(tuple(graphs), tuple(parents))


def tree_orders(coarsening: Coarsening) -> list[np.ndarray]:
    """Per level ``k``: int64 ``[positions]``, the level-``k`` node at each position (-1: filler)."""
    L = len(coarsening.parents)
    order = np.arange(coarsening.sizes[-1], dtype=np.int64)
    orders = [order]
    for k in range(L, 0, -1):
        parent = coarsening.parents[k - 1]
        children: list[list[int]] = [[] for _ in range(coarsening.sizes[k])]
        for node, p in enumerate(parent):
            children[p].append(node)
        finer = np.full(2 * len(order), -1, dtype=np.int64)
        for position, node in enumerate(order):
            if node >= 0:
                kids = children[node]
                assert 1 <= len(kids) <= 2, "a Graclus cluster has one or two children"
                finer[2 * position : 2 * position + len(kids)] = kids
        order = finer
        orders.append(order)
    return orders[::-1]


def _level_edges(W: sparse.spmatrix, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The edges (``i < j``, no diagonal) of ``W`` in position numbering, with their weights."""
    position = np.full(W.shape[0], -1, dtype=np.int64)
    real = order >= 0
    position[order[real]] = np.flatnonzero(real)
    upper = sparse.triu(W, k=1).tocoo()
    edges = np.stack([position[upper.row], position[upper.col]], axis=1) if upper.nnz else np.zeros((0, 2), np.int64)
    return edges, upper.data.astype(np.float64)


def graph_levels(geometry: GraphGeometry, levels: int, seed: int = 0) -> tuple[GraphLevel, ...]:
    """The positions of every level of a graph coarsened ``levels`` times (see the module docstring).

    With ``levels == 0`` the positions are the input nodes in order (one level, ``source_node=None``).
    """
    if levels == 0:
        return (GraphLevel("positions", geometry, None),)
    W0 = adjacency(geometry.num_nodes, geometry.edges, geometry.weights)
    coarsening = coarsen(W0, levels, seed)
    orders = tree_orders(coarsening)
    out = []
    # level 0: the input's own edges (weights, self-loops as given), node names and layout, permuted
    order0 = orders[0]
    real = order0 >= 0
    position = np.full(geometry.num_nodes, -1, dtype=np.int64)
    position[order0[real]] = np.flatnonzero(real)
    edges0 = position[geometry.edges] if len(geometry.edges) else np.zeros((0, 2), np.int64)
    coordinates = None
    if geometry.coordinates is not None:
        coordinates = np.empty((len(order0), 2), dtype=np.float64)
        coordinates[:] = geometry.coordinates.astype(np.float64).mean(axis=0)
        coordinates[real] = geometry.coordinates[order0[real]]
    names = None
    if geometry.node_names is not None:
        names = [FILLER_NAME if node < 0 else geometry.node_names[node] for node in order0]
    out.append(GraphLevel(
        "positions",
        GraphGeometry.from_edges(len(order0), edges0, weights=geometry.weights, coordinates=coordinates,
                                 node_names=names, filler=~real),
        order0.copy(),
    ))
    for k in range(1, levels + 1):
        edges, weights = _level_edges(coarsening.graphs[k], orders[k])
        finer = len(orders[k - 1])
        out.append(GraphLevel(
            f"level{k}",
            GraphGeometry.from_edges(len(orders[k]), edges, weights=weights, filler=orders[k] < 0,
                                     pooling_map=np.arange(finer) // 2, finer_nodes=finer),
            None,
        ))
    return tuple(out)


__all__ = ["Coarsening", "FILLER_NAME", "coarsen", "graclus_level", "graph_levels", "tree_orders"]
