r"""Weisfeiler-Lehman relabelling: rooted subgraphs as integer ids of a fitted vocabulary (numpy only).

The WL relabelling of a graph with initial node labels :math:`\ell_0` is

.. math::
    \ell_d(n) = \mathrm{id}\big(d,\ \ell_{d-1}(n),\ \{\!\{\ell_{d-1}(m) : m \in N(n)\}\!\}\big),
    \qquad d = 1 .. D,

where :math:`\{\!\{\cdot\}\!\}` is the sorted multiset of the neighbours' labels and ``id`` maps a key to
an integer of a :class:`WLVocabulary`. :math:`\ell_d(n)` names the rooted subgraph of depth ``d``
around ``n`` (the "subgraph" of subgraph2vec, Narayanan et al. 2016), up to the WL test's power.

Conventions (pinned here, not borrowed from ``networkx``'s hash strings, which changed in 3.5):

- label 0 (:func:`initial_labels`): the node's degree capped at ``degree_cap`` (``"degree"``; a
  self-loop counts once, as one neighbour) or a label given per node (``"tokens"``: the item's tokens);
  the key is ``(0, label)``;
- neighbours are those of the undirected graph: a directed graph is collapsed to undirected (as the
  reference implementation does); edge weights are ignored; a self-loop makes a node its own
  neighbour (as in ``networkx.weisfeiler_lehman_subgraph_hashes``);
- a rooted subgraph is first named by a canonical 63-bit BLAKE2b digest of its key, with the digests
  of depth ``d-1`` in place of the ids (:func:`wl_digests`, the same in every graph, like networkx's
  hashes); two different subgraphs share a digest with probability about :math:`|V|^2 / 2^{64}`;
- a :class:`WLVocabulary` maps digests to small integer ids, handed out in the order they are first met
  while it grows; id :data:`UNSEEN` (0) is every rooted subgraph it does not know (met after it
  stopped growing, or beyond its capacity); a digest fixes the digests of the smaller subgraphs inside
  it, which were met (and given ids) first, so a subgraph with an unseen part is itself unseen; it is stored as its digests, so it fits fixed-shape tensors in a checkpoint
  (:meth:`WLVocabulary.to_arrays`).

The WL subtree kernel of two graphs is :math:`K(G, G') = \phi(G)^\top \phi(G')` with
:math:`\phi(G)_i` the number of (node, depth) pairs of ``G`` whose id is ``i`` (:func:`subgraph_counts`,
:func:`wl_kernel`; unseen ids are left out).
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np

from lstmviz.geometry import GraphGeometry

UNSEEN = 0
"""The id of every rooted subgraph that the vocabulary does not know."""
MAX_DEPTH = 3
"""The largest WL depth D allowed (the vocabulary explodes with D)."""
LABEL_SCHEMES = ("degree", "tokens")


def neighbours(geometry: GraphGeometry) -> tuple[np.ndarray, np.ndarray]:
    """CSR ``(indptr, indices)`` of the undirected graph (directed edges collapsed, weights dropped).

    ``indices[indptr[n]:indptr[n+1]]`` are the neighbours of ``n``, sorted, each once; a self-loop
    makes ``n`` its own neighbour.
    """
    n = geometry.num_nodes
    edges = np.asarray(geometry.edges, dtype=np.int64).reshape(-1, 2)
    a = np.concatenate([edges[:, 0], edges[:, 1]])
    b = np.concatenate([edges[:, 1], edges[:, 0]])
    pairs = np.unique(np.stack([a, b], axis=1), axis=0) if len(a) else np.zeros((0, 2), dtype=np.int64)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(pairs[:, 0], minlength=n), out=indptr[1:])
    return indptr, pairs[:, 1].copy()


def initial_labels(geometry: GraphGeometry, scheme: str = "degree", *, degree_cap: int = 8,
                   tokens: Any = None) -> np.ndarray:
    """Label 0 of every node (int64 ``[n]``): capped degree, or the given per-node ``tokens``."""
    if scheme == "degree":
        if isinstance(degree_cap, bool) or not isinstance(degree_cap, (int, np.integer)) or degree_cap < 1:
            raise ValueError(f"degree_cap must be a positive integer, got {degree_cap!r}")
        indptr, _ = neighbours(geometry)
        return np.minimum(np.diff(indptr), int(degree_cap)).astype(np.int64)
    if scheme == "tokens":
        labels = np.asarray(tokens if tokens is not None else ())
        if labels.shape != (geometry.num_nodes,) or labels.dtype.kind not in "iu":
            raise ValueError(f"label='tokens' needs one integer label per node ({geometry.num_nodes}), "
                             f"got {labels.dtype} {labels.shape}")
        return labels.astype(np.int64)
    raise ValueError(f"unknown initial label scheme {scheme!r}; choose one of {', '.join(LABEL_SCHEMES)}")


def key_digest(key: Sequence[int]) -> int:
    """The 63-bit digest of a key's integers (BLAKE2b), the form in which a vocabulary stores a key."""
    raw = hashlib.blake2b(np.asarray(key, dtype=np.int64).tobytes(), digest_size=8).digest()
    return int.from_bytes(raw, "little") >> 1


def wl_digests(geometry: GraphGeometry, labels0: Any, depth: int) -> np.ndarray:
    r"""The canonical digests ``[depth + 1, n]`` of every node's rooted subgraphs (no vocabulary needed).

    :math:`h_0(n) = \mathrm{digest}(0, \ell_0(n))`, :math:`h_d(n) = \mathrm{digest}(d, h_{d-1}(n),
    \mathrm{sorted}\{h_{d-1}(m) : m \in N(n)\})` (:func:`key_digest`): the same rooted subgraph has the
    same digest in every graph, so a graph's digests depend on nothing but the graph (and are what a
    model's ``prepare`` caches); a :class:`WLVocabulary` turns them into ids.
    """
    check_depth(depth)
    labels0 = np.asarray(labels0, dtype=np.int64).reshape(-1)
    n = geometry.num_nodes
    if len(labels0) != n:
        raise ValueError(f"{len(labels0)} initial labels for a graph of {n} nodes")
    indptr, indices = neighbours(geometry)
    out = np.zeros((depth + 1, n), dtype=np.int64)
    out[0] = [key_digest((0, int(label))) for label in labels0]
    for d in range(1, depth + 1):
        prev = out[d - 1]
        for node in range(n):
            around = np.sort(prev[indices[indptr[node]:indptr[node + 1]]])
            out[d, node] = key_digest((d, int(prev[node]), *around.tolist()))
    return out


class WLVocabulary:
    """Rooted-subgraph digests to integer ids (see the module docstring); id 0 is :data:`UNSEEN`.

    Ids are handed out in the order digests are first met while growing (depth by depth, then node
    order, within one call), so it holds a depth-``d`` subgraph only together with every smaller
    subgraph inside it: a subgraph with an unseen part is unseen.

    Args:
        capacity: the most ids, :data:`UNSEEN` included (``None``: unbounded); digests met when it is
            full are unseen (counted in :attr:`overflow`).

    Attributes:
        digest: int64 ``[len]``, the key digest of each id (0 for :data:`UNSEEN`).
        depth: int64 ``[len]``, the WL depth of each id (-1 for :data:`UNSEEN`).
        count: int64 ``[len]``, how often each id was met while growing (the skip-gram noise counts).
    """

    def __init__(self, capacity: int | None = None):
        if capacity is not None and (isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer))
                                     or capacity < 2):
            raise ValueError(f"a WL vocabulary needs room for at least one subgraph besides 'unseen', got {capacity!r}")
        self.capacity = None if capacity is None else int(capacity)
        self._ids: dict[int, int] = {}
        self._digest: list[int] = [0]
        self._depth: list[int] = [-1]
        self._count: list[int] = [0]
        self.overflow = 0  # digests refused because the vocabulary was full

    def __len__(self) -> int:
        return len(self._digest)

    @property
    def digest(self) -> np.ndarray:
        return np.asarray(self._digest, dtype=np.int64)

    @property
    def depth(self) -> np.ndarray:
        return np.asarray(self._depth, dtype=np.int64)

    @property
    def count(self) -> np.ndarray:
        return np.asarray(self._count, dtype=np.int64)

    def ids(self, digests: Any, *, grow: bool = False) -> np.ndarray:
        """The ids of ``digests`` ``[D + 1, n]`` (from :func:`wl_digests`); new ids and counts if ``grow``."""
        digests = np.asarray(digests, dtype=np.int64)
        flat = digests.reshape(-1).tolist()
        out = np.zeros(len(flat), dtype=np.int64)
        known = self._ids
        if not grow:
            out[:] = [known.get(h, UNSEEN) for h in flat]
            return out.reshape(digests.shape)
        n = digests.shape[-1] if digests.ndim == 2 else len(flat)
        for k, h in enumerate(flat):
            found = known.get(h)
            if found is None:
                if self.capacity is not None and len(self._digest) >= self.capacity:
                    self.overflow += 1
                    continue
                found = known[h] = len(self._digest)
                self._digest.append(h)
                self._depth.append(k // n if digests.ndim == 2 else 0)
                self._count.append(0)
            self._count[found] += 1
            out[k] = found
        return out.reshape(digests.shape)

    def relabel(self, geometry: GraphGeometry, labels0: Any, depth: int, *, grow: bool = False) -> np.ndarray:
        """The ids ``[depth + 1, n]`` of every node's rooted subgraphs at depths ``0 .. depth``."""
        return self.ids(wl_digests(geometry, labels0, depth), grow=grow)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """``digest``, ``depth`` and ``count`` (one entry per id), enough to rebuild it (:meth:`from_arrays`)."""
        return {"digest": self.digest, "depth": self.depth, "count": self.count}

    @classmethod
    def from_arrays(cls, digest: Any, depth: Any, count: Any, capacity: int | None = None) -> "WLVocabulary":
        vocabulary = cls(capacity)
        digest = np.asarray(digest, dtype=np.int64).reshape(-1)
        depth = np.asarray(depth, dtype=np.int64).reshape(-1)
        count = np.asarray(count, dtype=np.int64).reshape(-1)
        if not (len(digest) == len(depth) == len(count)) or len(digest) < 1:
            raise ValueError("a WL vocabulary's digest, depth and count arrays must have one equal, positive length")
        vocabulary._digest = [0] + digest[1:].tolist()
        vocabulary._depth = [-1] + depth[1:].tolist()
        vocabulary._count = [0] + count[1:].tolist()
        vocabulary._ids = {int(h): i for i, h in enumerate(vocabulary._digest) if i != UNSEEN}
        return vocabulary


def check_depth(depth: Any) -> int:
    """``depth`` as an int in ``0 .. MAX_DEPTH`` (``ValueError`` naming the allowed values otherwise)."""
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or not 0 <= depth <= MAX_DEPTH:
        raise ValueError(f"the WL depth must be an integer from 0 to {MAX_DEPTH}, got {depth!r}")
    return int(depth)


def radial_pairs(geometry: GraphGeometry, depth: int) -> tuple[np.ndarray, np.ndarray]:
    r"""subgraph2vec's radial skip-gram pairs of one graph as flat indices ``d * n + node`` (int64 ``[P]`` each).

    For node ``n`` at depth ``d`` the target is ``(d, n)`` and its contexts are

    .. math:: \{(d', m) : m \in N(n),\ m \ne n,\ d' \in \{d-1, d, d+1\} \cap [0, D]\}

    one pair per neighbour and depth: the neighbours' rooted subgraphs one depth below, at and above.
    No sliding window, no self-context (a self-loop is skipped).
    """
    check_depth(depth)
    n = geometry.num_nodes
    indptr, indices = neighbours(geometry)
    owner = np.repeat(np.arange(n), np.diff(indptr))
    keep = owner != indices
    owner, other = owner[keep], indices[keep]
    targets, contexts = [], []
    for d in range(depth + 1):
        for d2 in (d - 1, d, d + 1):
            if 0 <= d2 <= depth:
                targets.append(d * n + owner)
                contexts.append(d2 * n + other)
    return np.concatenate(targets).astype(np.int64), np.concatenate(contexts).astype(np.int64)


def radial_context(geometry: GraphGeometry, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The radial pairs (:func:`radial_pairs`) as ``(target ids, context ids)`` of ``ids`` ``[D + 1, n]``."""
    ids = np.asarray(ids, dtype=np.int64)
    targets, contexts = radial_pairs(geometry, ids.shape[0] - 1)
    return ids.reshape(-1)[targets], ids.reshape(-1)[contexts]


def subgraph_counts(ids_per_graph: Sequence[np.ndarray], size: int) -> np.ndarray:
    r""":math:`\phi(G)`: float64 ``[graphs, size]``, how many (node, depth) pairs of each graph have each id.

    Column :data:`UNSEEN` is zero: unseen subgraphs match nothing, not each other.
    """
    counts = np.zeros((len(ids_per_graph), int(size)), dtype=np.float64)
    for g, ids in enumerate(ids_per_graph):
        counts[g] = np.bincount(np.asarray(ids, dtype=np.int64).reshape(-1), minlength=int(size))[: int(size)]
    counts[:, UNSEEN] = 0.0
    return counts


def wl_kernel(counts_a: np.ndarray, counts_b: np.ndarray | None = None) -> np.ndarray:
    r"""The WL subtree kernel :math:`K = \Phi_a \Phi_b^\top` (``M = I``) of two count matrices."""
    counts_b = counts_a if counts_b is None else counts_b
    return np.asarray(counts_a, dtype=np.float64) @ np.asarray(counts_b, dtype=np.float64).T


__all__ = ["LABEL_SCHEMES", "MAX_DEPTH", "UNSEEN", "WLVocabulary", "check_depth", "initial_labels", "key_digest",
           "neighbours", "radial_context", "radial_pairs", "subgraph_counts", "wl_digests", "wl_kernel"]
