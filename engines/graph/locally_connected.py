r"""Bruna et al.'s spatial construction: a multiscale clustering, locally connected layers, cluster pooling.

"Spectral Networks and Locally Connected Networks on Graphs" (arXiv:1312.6203, §3). A hierarchy of
clusterings :math:`\Omega_0 \to \Omega_1 \to \dots \to \Omega_K` of the graph's nodes, with coarse weights
:math:`W_{k+1} = P_k^\top W_k P_k` (:math:`P_k` the 0/1 membership matrix, self-weights dropped), gives
each level the neighbourhoods

.. math::
    N_k(j) = \{j\} \cup \{\, i \ne j : W_k[i, j] > \delta \,\},

and one layer computes, with non-shared weights :math:`F_{k,j,s} \in \mathbb{R}^{f_{in} \times f_{out}}`
on the neighbourhood's slots,

.. math::
    y_{k,j} = \sum_{s} F_{k,j,s}^\top\, x_{k, N_k(j)_s} + b, \qquad x_{k+1} = L_k\, h(y_k),

:math:`L_k` pooling (max or mean) over the clusters of :math:`\Omega_{k+1}`. Slot ``s`` of node ``j`` is
its ``s``-th neighbour: ``j`` itself first, then the others by decreasing :math:`W_k[i, j]` (ties: lower
position), at most ``S - 1`` of them (the strongest), so a layer has exactly
:math:`|\Omega_k| \cdot S \cdot f_{in} f_{out} + f_{out}` parameters (:func:`locally_connected_parameters`)
instead of :math:`|\Omega_k|^2 f_{in} f_{out}` for a dense layer. The weights of slot ``(j, s)`` belong to
position ``j``: the construction assumes one fixed graph (or graphs sharing a node order), as in the paper.

The clustering (:func:`cluster_hierarchy`) is agglomerative (Ward linkage, :mod:`scipy.cluster.hierarchy`)
on node coordinates (nodes sorted by coordinates first, so ties break the same way whatever the input's
node numbering), re-run on the cluster centroids for each coarser level, so levels nest. Positions
are ordered by the clustering tree: the coarsest level by its dendrogram's leaf order, every finer level
by (its cluster's position, its own leaf order), so the members of every cluster are contiguous
positions at every level (the 1-D pattern view's ranges are clusters).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn


@dataclass(frozen=True, eq=False)
class Hierarchy:
    """A multiscale clustering in position order (see the module docstring).

    Attributes:
        order: int64 ``[n_0]``: the input node at each level-0 position.
        weights: per level ``k``, the dense float64 ``[n_k, n_k]`` weights in position order (level 0:
            the input graph's, permuted; coarser: summed over clusters, zero diagonal).
        parents: per pooling ``k`` (``K`` of them), int64 ``[n_k]``: the level-``k+1`` position each
            level-``k`` position pools into.
        centroids: per level, float64 ``[n_k, c]``: the mean coordinates of the members (position order).
    """

    order: np.ndarray
    weights: tuple[np.ndarray, ...]
    parents: tuple[np.ndarray, ...]
    centroids: tuple[np.ndarray, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(w) for w in self.weights)


def _leaf_order(points: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(rank of each point in the Ward dendrogram's leaf order, the linkage) — identity below 3 points."""
    from scipy.cluster.hierarchy import leaves_list, linkage

    n = len(points)
    if n < 3:
        return np.arange(n), (linkage(points, method="ward") if n == 2 else None)
    z = linkage(points, method="ward")
    rank = np.empty(n, dtype=np.int64)
    rank[leaves_list(z)] = np.arange(n)
    return rank, z


def cluster_hierarchy(weights: np.ndarray, coordinates: np.ndarray, sizes) -> Hierarchy:
    """Cluster ``weights`` (dense symmetric ``[n, n]``, input order) level by level into at most ``sizes[k]``
    clusters (Ward linkage on ``coordinates [n, c]``, then on the cluster centroids), ordered by the tree."""
    from scipy.cluster.hierarchy import fcluster

    points = np.asarray(coordinates, dtype=np.float64)
    # cluster the nodes sorted by their coordinates, so that Ward's ties (a grid has many) are broken the
    # same way however the input numbers its nodes: the hierarchy is a function of the coordinates
    canonical = np.lexsort(points.T[::-1]) if points.ndim == 2 and points.shape[1] else np.arange(len(points))
    points = points[canonical]
    w = np.asarray(weights, dtype=np.float64)[np.ix_(canonical, canonical)]
    labels, ranks, level_points, level_weights = [], [], [points], [w]
    for size in sizes:
        pts = level_points[-1]
        rank, z = _leaf_order(pts)
        ranks.append(rank)
        if z is None or len(pts) <= size:
            lab = np.arange(len(pts))
        else:
            lab = np.unique(fcluster(z, t=int(size), criterion="maxclust"), return_inverse=True)[1].reshape(-1)
        labels.append(lab)
        m = int(lab.max()) + 1
        member = np.zeros((len(pts), m))
        member[np.arange(len(pts)), lab] = 1.0
        level_points.append((member.T @ pts) / member.sum(0)[:, None])
        coarse = member.T @ level_weights[-1] @ member
        np.fill_diagonal(coarse, 0.0)
        level_weights.append(coarse)
    ranks.append(_leaf_order(level_points[-1])[0])
    # positions top-down: the coarsest by its leaf order, each finer level by (parent position, leaf rank)
    position = [None] * len(level_points)
    position[-1] = ranks[-1]
    for k in range(len(sizes) - 1, -1, -1):
        key = np.lexsort((ranks[k], position[k + 1][labels[k]]))  # nodes in position order
        pos = np.empty(len(key), dtype=np.int64)
        pos[key] = np.arange(len(key))
        position[k] = pos
    orders = [np.argsort(p) for p in position]  # node at each position
    return Hierarchy(
        order=canonical[orders[0]].astype(np.int64),
        weights=tuple(lw[np.ix_(o, o)] for lw, o in zip(level_weights, orders)),
        parents=tuple(position[k + 1][labels[k][orders[k]]].astype(np.int64) for k in range(len(sizes))),
        centroids=tuple(lp[o] for lp, o in zip(level_points, orders)),
    )


def neighbour_slots(weights: np.ndarray, slots: int, threshold: float = 0.0) -> np.ndarray:
    """int64 ``[n, slots]``: ``N(j)`` laid out in slots (``j`` first, then by decreasing weight); -1: empty."""
    w = np.asarray(weights, dtype=np.float64)
    n = len(w)
    out = np.full((n, slots), -1, dtype=np.int64)
    for j in range(n):
        col = w[:, j].copy()
        col[j] = -np.inf
        others = np.flatnonzero(col > threshold)
        others = others[np.lexsort((others, -col[others]))][: slots - 1]
        out[j, 0] = j
        out[j, 1:1 + len(others)] = others
    return out


def locally_connected_parameters(positions: int, slots: int, f_in: int, f_out: int) -> int:
    """:math:`|\\Omega_k| \\cdot S \\cdot f_{in} f_{out} + f_{out}`: the parameters of one locally connected layer."""
    return positions * slots * f_in * f_out + f_out


class LocallyConnected(nn.Module):
    r"""One locally connected layer: :math:`y_j = \sum_s F_{j,s}^\top x_{N(j)_s} + b` (no weight sharing).

    ``weight`` ``[positions, slots, f_in, f_out]`` (``positions``: the most nodes a level may have),
    ``bias`` ``[f_out]``. :meth:`forward` takes ``x [..., n, f_in]`` (``n <= positions``) and the level's
    :func:`neighbour_slots` ``[n, slots]``.
    """

    def __init__(self, positions: int, slots: int, in_features: int, out_features: int):
        super().__init__()
        self.positions, self.slots = int(positions), int(slots)
        self.weight = nn.Parameter(torch.empty(self.positions, self.slots, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / np.sqrt(self.slots * self.weight.shape[2])
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, slots: Tensor) -> Tensor:
        n = x.shape[-2]
        if n > self.positions:
            raise ValueError(f"a level with {n} nodes is larger than the {self.positions} positions the locally "
                             f"connected layer was built for; rebuild with a larger num_nodes")
        padded = torch.cat([x, x.new_zeros(*x.shape[:-2], 1, x.shape[-1])], dim=-2)
        index = torch.where(slots < 0, torch.full_like(slots, n), slots)
        gathered = padded[..., index, :]  # [..., n, S, f_in]
        return torch.einsum("...nsi,nsio->...no", gathered, self.weight[:n]) + self.bias


def pool_clusters(x: Tensor, parents: Tensor, clusters: int, mode: str = "max") -> Tensor:
    """``x [..., n, f]`` pooled over clusters: ``[..., clusters, f]``, the max or mean of each cluster's members."""
    index = parents.view(*([1] * (x.dim() - 2)), -1, 1).expand_as(x)
    out = x.new_zeros(*x.shape[:-2], clusters, x.shape[-1])
    return out.scatter_reduce(-2, index, x, reduce="amax" if mode == "max" else "mean", include_self=False)


__all__ = ["Hierarchy", "LocallyConnected", "cluster_hierarchy", "locally_connected_parameters",
           "neighbour_slots", "pool_clusters"]
