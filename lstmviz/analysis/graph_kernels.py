"""numba kernels of the graph match for queries whose on nodes are many (``graph_match``): one pass over
the corpus edge columns instead of numpy gathers, sorts and a sparse matrix.

- ``on_components``: the connected components of the subgraph induced by the on nodes, by union-find
  over the edges with both ends on (path halving; the smaller root always becomes the parent, so a
  component's root is its smallest node). Labels are given in the order of those smallest nodes.
- ``first_ring``: for every off node, the scored components among its on neighbours, each once: the
  (candidate, node) pairs of the 1-hop rings, from the filler-free adjacency (CSR).
- ``component_nodes``: the nodes of the chosen components, each searched in its own item's rows.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True, inline="always")
def _find(parent, v):
    while parent[v] != v:
        parent[v] = parent[parent[v]]
        v = parent[v]
    return v


@njit(nogil=True, cache=True)
def on_components(first, second, on, n):
    """(labels int32 [n], -1 off; roots int64 [components]: each component's smallest node; sizes int64
    [components]; crossing: the edges with exactly one end on, a bound on the 1-hop ring pairs)."""
    parent = np.arange(n).astype(np.int32)
    crossing = 0
    for e in range(first.shape[0]):
        a = first[e]
        b = second[e]
        if on[a] and on[b]:
            ra = _find(parent, a)
            rb = _find(parent, b)
            if ra < rb:
                parent[rb] = ra
            elif rb < ra:
                parent[ra] = rb
        elif on[a] or on[b]:
            crossing += 1
    labels = np.full(n, -1, np.int32)
    roots = np.empty(n, np.int64)
    sizes = np.zeros(n, np.int64)
    m = 0
    for v in range(n):
        if on[v]:
            r = _find(parent, v)
            if r == v:
                labels[v] = m
                roots[m] = v
                m += 1
            else:
                labels[v] = labels[r]  # r < v: labelled already
            sizes[labels[v]] += 1
    return labels, roots[:m], sizes[:m], crossing


@njit(nogil=True, cache=True)
def first_ring(indptr, indices, on, labels, rank_of, bound):
    """(owner int64, node int64): every off node adjacent to a scored component (``rank_of[label] >= 0``),
    once per such component; at most ``bound`` pairs (the crossing edges)."""
    owner = np.empty(bound, np.int64)
    node = np.empty(bound, np.int64)
    count = 0
    seen = np.empty(64, np.int64)
    for v in range(on.shape[0]):
        if on[v]:
            continue
        k = 0
        for j in range(indptr[v], indptr[v + 1]):
            u = indices[j]
            if not on[u]:
                continue
            r = rank_of[labels[u]]
            if r < 0:
                continue
            dup = False
            for q in range(k):
                if seen[q] == r:
                    dup = True
                    break
            if dup:
                continue
            if k == seen.shape[0]:
                grown = np.empty(2 * k, np.int64)
                grown[:k] = seen
                seen = grown
            seen[k] = r
            k += 1
            owner[count] = r
            node[count] = v
            count += 1
    return owner[:count], node[:count]


@njit(nogil=True, cache=True)
def component_nodes(labels, starts, stops, wanted):
    """The nodes of component ``wanted[i]`` among rows ``[starts[i], stops[i])`` (its item), match after
    match: (nodes int64, offsets int64 [len(wanted) + 1])."""
    total = 0
    for i in range(wanted.shape[0]):
        for v in range(starts[i], stops[i]):
            if labels[v] == wanted[i]:
                total += 1
    nodes = np.empty(total, np.int64)
    offsets = np.zeros(wanted.shape[0] + 1, np.int64)
    c = 0
    for i in range(wanted.shape[0]):
        for v in range(starts[i], stops[i]):
            if labels[v] == wanted[i]:
                nodes[c] = v
                c += 1
        offsets[i + 1] = c
    return nodes, offsets
