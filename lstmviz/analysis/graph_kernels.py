"""numba kernels of the graph match (``graph_match``), over the filler-free corpus adjacency (CSR).

- ``components``: the connected components of the subgraph induced by the on nodes, by a breadth-first
  search from each on node not yet reached, in ascending order; each on node's adjacency row is read
  once (a query with few on nodes reads only their rows). A component's first node (where its search
  starts) is its smallest, so components come in the order of their smallest nodes; the search queue,
  kept whole, lists every component's nodes.
- ``score_candidates``: for each scored candidate, its ring (size, and the selected units on there,
  counted from the row-major bits), by a breadth-first expansion from its nodes that marks the nodes it
  has seen with the candidate's id in a scratch array; its cost is that of the candidate's own
  neighbourhood, however large the corpus.
- ``gather_sorted``: the nodes of the chosen matches, match after match, each match's sorted (when many
  are chosen, ``by_component`` sorts every component's nodes first, by a counting sort).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def components(indptr, indices, on, idx):
    """(roots int64 [m]: each component's smallest node, ascending; sizes int64 [m]; nodes (of the
    adjacency's index dtype): component after component, ``sizes[c]`` each, unsorted) of the on nodes
    ``idx`` (ascending, ``on[idx]`` all True)."""
    state = on.view(np.uint8).copy()  # 1: on and not reached yet, 0: off or reached
    roots = np.empty(idx.shape[0], np.int64)
    sizes = np.empty(idx.shape[0], np.int64)
    queue = np.empty(idx.shape[0] + 1, indices.dtype)
    m = 0
    head = 0
    tail = 0
    for i in range(idx.shape[0]):
        v = idx[i]
        if state[v] == 0:
            continue
        state[v] = 0
        roots[m] = v
        start = tail
        queue[tail] = v
        tail += 1
        while head < tail:  # breadth first: the queue is the component's nodes
            u = queue[head]
            head += 1
            for j in range(indptr[u], indptr[u + 1]):
                w = indices[j]
                f = state[w]  # branch-free push: written always, kept when w is on and new
                queue[tail] = w
                tail += f
                state[w] = 0
        sizes[m] = tail - start
        m += 1
    return roots[:m].copy(), sizes[:m].copy(), queue[:tail]


@njit(nogil=True, cache=True, inline="always")
def _units_on(w, pos_rows, pos_byte, pos_mask, neg_rows, neg_byte, neg_mask):
    c = 0
    for s in range(pos_byte.shape[0]):
        c += (pos_rows[w, pos_byte[s]] & pos_mask[s]) != 0
    for s in range(neg_byte.shape[0]):
        c += (neg_rows[w, neg_byte[s]] & neg_mask[s]) != 0
    return c


@njit(nogil=True, cache=True)
def _hop(indptr, indices, mark, cid, source, lo, hi, out, rc, count, pos_rows, pos_byte, pos_mask, neg_rows, neg_byte,
         neg_mask):
    """The nodes next to ``source[lo:hi]`` not yet seen for ``cid``, appended to ``out`` from ``rc``;
    ``count`` += the selected units on at them."""
    for q in range(lo, hi):
        u = source[q]
        for j in range(indptr[u], indptr[u + 1]):
            w = indices[j]
            if mark[w] != cid:
                mark[w] = cid
                out[rc] = w
                rc += 1
                count += _units_on(w, pos_rows, pos_byte, pos_mask, neg_rows, neg_byte, neg_mask)
    return rc, count


@njit(nogil=True, cache=True)
def score_candidates(indptr, indices, members, starts, sizes, ring, mark, first_id, room,
                     pos_rows, pos_byte, pos_mask, neg_rows, neg_byte, neg_mask):
    """For candidate i (the component whose nodes are ``members[starts[i]:starts[i] + sizes[i]]``): its ring
    size (the nodes 1 .. ``ring`` hops from it, not in it) and its ring count (the selected units on at
    its ring nodes, summed: unit ``s`` of a sign is on at row w when ``rows[w, byte[s]] & mask[s]``,
    row-major bits). ``mark`` (int32 [n]) is scratch: a node is seen for candidate i when ``mark[v] ==
    first_id + i``; ids must not repeat within one array's life. ``room``: the most nodes of one item (a
    ring never leaves its item). Returns (ring sizes, ring counts)."""
    n_cand = starts.shape[0]
    ring_size = np.zeros(n_cand, np.int64)
    ring_count = np.zeros(n_cand, np.int64)
    if ring == 0:
        return ring_size, ring_count
    frontier = np.empty(room, members.dtype)  # this candidate's ring nodes, hop after hop
    for i in range(n_cand):
        cid = first_id + i
        a = starts[i]
        for q in range(a, a + sizes[i]):
            mark[members[q]] = cid
        # hop 1 from the members, hop h + 1 from hop h's new nodes
        rc, count = _hop(indptr, indices, mark, cid, members, a, a + sizes[i], frontier, 0, 0,
                         pos_rows, pos_byte, pos_mask, neg_rows, neg_byte, neg_mask)
        lo = 0
        for _ in range(ring - 1):
            if rc == lo:
                break
            hi = rc
            rc, count = _hop(indptr, indices, mark, cid, frontier, lo, hi, frontier, rc, count,
                             pos_rows, pos_byte, pos_mask, neg_rows, neg_byte, neg_mask)
            lo = hi
        ring_size[i] = rc
        ring_count[i] = count
    return ring_size, ring_count


@njit(nogil=True, cache=True, inline="always")
def _sort_segment(a, lo, hi):
    if hi - lo > 32:
        a[lo:hi] = np.sort(a[lo:hi])
        return
    for p in range(lo + 1, hi):  # insertion sort (most components are small)
        x = a[p]
        q = p
        while q > lo and a[q - 1] > x:
            a[q] = a[q - 1]
            q -= 1
        a[q] = x


@njit(nogil=True, cache=True)
def by_component(nodes, sizes, idx, n):
    """``nodes`` (component after component, ``sizes`` each, as ``components`` gives them) with each
    component's nodes ascending: a counting sort of the on nodes ``idx`` by component."""
    labels = np.empty(n, np.int32)
    fill = np.empty(sizes.shape[0], np.int64)
    a = 0
    for c in range(sizes.shape[0]):
        fill[c] = a
        for q in range(a, a + sizes[c]):
            labels[nodes[q]] = c
        a += sizes[c]
    out = np.empty_like(nodes)
    for i in range(idx.shape[0]):
        v = idx[i]
        c = labels[v]
        out[fill[c]] = v
        fill[c] += 1
    return out


@njit(nogil=True, cache=True)
def gather_sorted(nodes, starts, counts, presorted):
    """The segments ``nodes[starts[i]:starts[i] + counts[i]]`` one after another, each sorted (unless
    ``presorted``): (nodes int64, offsets int64 [len(starts) + 1])."""
    offsets = np.zeros(starts.shape[0] + 1, np.int64)
    for i in range(starts.shape[0]):
        offsets[i + 1] = offsets[i] + counts[i]
    out = np.empty(offsets[-1], np.int64)
    for i in range(starts.shape[0]):
        a = offsets[i]
        for q in range(counts[i]):
            out[a + q] = nodes[starts[i] + q]
        if not presorted:
            _sort_segment(out, a, offsets[i + 1])
    return out, offsets
