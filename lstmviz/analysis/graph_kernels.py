"""numba kernels of the graph match (``graph_match``), over the filler-free corpus adjacency (CSR).

- ``components``: the connected components of the subgraph induced by the on nodes, by a depth-first
  search from each on node not yet reached, in ascending order; each on node's adjacency row is read
  once (a query with few on nodes reads only their rows). A component's first node (where its search
  starts) is its smallest, so components come in the order of their smallest nodes.
- ``score_candidates``: for each scored candidate, its nodes (searched again from its smallest node)
  and its ring (size, and the selected units on there, counted from the row-major bits), by a
  breadth-first expansion that marks the nodes it has seen with the candidate's id in a scratch array;
  its cost is that of the candidate's own neighbourhood, however large the corpus.
- ``gather_sorted``: the nodes of the chosen matches, each match's sorted.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def components(indptr, indices, on, idx):
    """(roots int64 [m]: each component's smallest node, ascending; sizes int64 [m]) of the on nodes
    ``idx`` (ascending, ``on[idx]`` all True)."""
    state = on.view(np.uint8).copy()  # 1: on and not reached yet, 0: off or reached
    roots = np.empty(idx.shape[0], np.int64)
    sizes = np.empty(idx.shape[0], np.int64)
    stack = np.empty(idx.shape[0] + 1, np.int64)
    m = 0
    for i in range(idx.shape[0]):
        v = idx[i]
        if state[v] == 0:
            continue
        state[v] = 0
        roots[m] = v
        stack[0] = v
        top = 1
        size = 0
        while top:
            top -= 1
            u = stack[top]
            size += 1
            for j in range(indptr[u], indptr[u + 1]):
                w = indices[j]
                f = state[w]  # branch-free push: written always, kept when w is on and new
                stack[top] = w
                top += f
                state[w] = 0
        sizes[m] = size
        m += 1
    return roots[:m].copy(), sizes[:m].copy()


@njit(nogil=True, cache=True)
def _grown(buf, used, need):
    out = np.empty(max(need, 2 * buf.shape[0]), buf.dtype)
    out[:used] = buf[:used]
    return out


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
    """The nodes next to ``source[lo:hi]`` not yet seen for ``cid``, appended to ``out`` from ``rc`` (room
    made by the caller); ``count`` += the selected units on at them."""
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
def score_candidates(indptr, indices, on, roots, sizes, ring, mark, first_id,
                     pos_rows, pos_byte, pos_mask, neg_rows, neg_byte, neg_mask):
    """For candidate i (the component of on node ``roots[i]``, ``sizes[i]`` nodes): its nodes
    ``members[offsets[i]:offsets[i + 1]]`` (unsorted), its ring size (the nodes 1 .. ``ring`` hops from it,
    not in it) and its ring count (the selected units on at its ring nodes, summed: unit ``s`` of a sign
    is on at row w when ``rows[w, byte[s]] & mask[s]``, row-major bits). ``mark`` (int32 [n]) is scratch:
    a node is seen for candidate i when ``mark[v] == first_id + i``; ids must not repeat within one
    array's life. Returns (members, offsets, ring sizes, ring counts)."""
    n_cand = roots.shape[0]
    offsets = np.zeros(n_cand + 1, np.int64)
    for i in range(n_cand):
        offsets[i + 1] = offsets[i] + sizes[i]
    members = np.empty(offsets[n_cand], np.int64)
    ring_size = np.zeros(n_cand, np.int64)
    ring_count = np.zeros(n_cand, np.int64)
    frontier = np.empty(1024, np.int64)  # this candidate's ring nodes, hop after hop
    for i in range(n_cand):
        cid = first_id + i
        a = offsets[i]
        v = roots[i]
        mark[v] = cid
        members[a] = v
        mc = a + 1
        q = a
        while q < mc:  # breadth first over the on nodes: the component (sizes[i] nodes)
            u = members[q]
            q += 1
            for j in range(indptr[u], indptr[u + 1]):
                w = indices[j]
                if on[w] and mark[w] != cid:
                    mark[w] = cid
                    members[mc] = w
                    mc += 1
        # the ring: hop 1 from the members, hop h + 1 from hop h's new nodes
        lo, hi = a, mc
        rc = 0
        count = 0
        for h in range(ring):
            start = rc
            reach = 0  # at most this many new nodes in this hop: room for them first
            for q in range(lo, hi):
                u = members[q] if h == 0 else frontier[q]
                reach += indptr[u + 1] - indptr[u]
            if rc + reach > frontier.shape[0]:
                frontier = _grown(frontier, rc, rc + reach)
            rc, count = _hop(indptr, indices, mark, cid, members if h == 0 else frontier, lo, hi, frontier, rc,
                             count, pos_rows, pos_byte, pos_mask, neg_rows, neg_byte, neg_mask)
            if rc == start:
                break
            lo, hi = start, rc
        ring_size[i] = rc
        ring_count[i] = count
    return members, offsets, ring_size, ring_count


@njit(nogil=True, cache=True)
def gather_sorted(members, starts, counts):
    """The segments ``members[starts[i]:starts[i] + counts[i]]`` one after another, each sorted:
    (nodes int64, offsets int64 [len(starts) + 1])."""
    offsets = np.zeros(starts.shape[0] + 1, np.int64)
    for i in range(starts.shape[0]):
        offsets[i + 1] = offsets[i] + counts[i]
    out = np.empty(offsets[-1], np.int64)
    for i in range(starts.shape[0]):
        a, m, s = offsets[i], counts[i], starts[i]
        if m > 32:
            out[a:a + m] = np.sort(members[s:s + m])
            continue
        for p in range(m):  # insertion sort (most components are small)
            x = members[s + p]
            q = a + p
            while q > a and out[q - 1] > x:
                out[q] = out[q - 1]
                q -= 1
            out[q] = x
    return out, offsets
