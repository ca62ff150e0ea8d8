"""LSTMVis's "precise" matcher, re-implemented from its description, as the baseline for checks.

This follows ``query_similar_activations(query_mode="precise")`` of LSTMVis (HendrikStrobelt/LSTMVis,
``lstmdata/data_handler.py``) as described in ``shared/reference/lstmvis.md`` §3.3-3.4; it is written
here from that description, for the tests and the benchmark that compare ``matching.match(mode=
"lstmvis")`` with it. One stream, no item boundaries, raw values in, a tanh-space threshold:

1. threshold -> raw artanh(threshold); a value is on iff it is not < that (NaN counts as on, as theirs).
2. c[t] = selected cells on at t, read from the dataset in column batches of max(1, floor(5e6 / N))
   columns (column slices of the h5py dataset, as theirs; h5py wants increasing column indices, so the
   batches follow the sorted cell list, which does not change the sum).
3. For m = k down to 1, while fewer than ``candidate_cap`` (10,000) distinct candidates are collected:
   clip c at m, run-length encode it, keep the runs with value m and length >= 2 (== phrase_length if
   > 0); score2 = 0 without constraints, m - prev with constrain_left, m - next with
   constrain_right, and m - next - prev with both (prev, next: the values of the preceding and the
   following run; theirs: ``test_cell_number - value[indices + 1] - value[indices - 1]``, so m is
   counted once, not once per side). Candidates are keyed by (length, start); the first (strictest
   m) wins.
4. Stable sort by score2 descending; keep the first ``candidate_cap``.
5. Skip candidates with pos < 1 or pos + length + 1 > N. For the others read rows pos-1 .. pos+length
   of every cell, binarise to +-1, dot with the mask (-1 or 0 on the two boundary rows, +1 on the run):
   a cell is active iff the dot equals length + number of constraints. I = |A & S|, U = |A | S|,
   jaccard = I / U, missing = k - I.
6. Stable sort by (-I, U, -length); return the first ``no_of_results``.

Choices where their code leaves something to chance or fails (documented, not hidden):

- **Order inside a level.** Theirs iterates a Python ``set`` of (length, start, score2) tuples, so the
  candidates of one level enter the list in CPython's hash order, which only matters for ties in
  score2 at the ``candidate_cap`` cut. We use start order (``candidate_order="start"``, the order
  ``matching.match`` uses); ``candidate_order="set"`` reproduces their set iteration.
- **Preceding run of the first run.** Their ``value[indices - 1]`` reads index -1, i.e. the *last* run
  of the stream, for a run starting at position 0. We do the same (wrap-around). Such a candidate is
  skipped in step 5 anyway (pos < 1); its score2 only affects the cap cut.
- **Following run of the last run.** Their ``value[indices + 1]`` raises IndexError when the last run
  of the stream qualifies and constrain_right is set. We wrap to the first run instead (mirroring the
  left side); that candidate ends at N and is skipped in step 5.
- **N > 5e6.** Their batch is then a single column and they skip the sum over the batch, keeping an
  [N, 1] array whose 2-D run-length encoding mixes row and column indices; the counts we compute are
  the intended ones (sum over the selected cells).
"""

from __future__ import annotations

import numpy as np

__all__ = ["boundary_score", "lstmvis_precise"]


def boundary_score(level, prev, nxt, left: bool, right: bool):
    """LSTMVis's score2 of candidate runs at ``level`` (m) with neighbouring counts ``prev`` / ``nxt``,
    line by line as ``query_similar_activations``: 0 without constraints, ``m - prev`` (left only),
    ``m - next`` (right only), ``m - next - prev`` (both: m is counted once)."""
    level = np.asarray(level, np.int64)
    if left and right:
        return level - nxt - prev
    if left:
        return level - prev
    if right:
        return level - nxt
    return np.zeros(np.broadcast(level, prev, nxt).shape, np.int64)


def _rle(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run-length encoding: (lengths, starts, values) of the runs of equal values."""
    n = len(values)
    if n == 0:
        e = np.zeros(0, np.int64)
        return e, e.copy(), values[:0]
    ends = np.append(np.flatnonzero(values[1:] != values[:-1]), n - 1)  # last index of every run
    starts = np.concatenate(([0], ends[:-1] + 1))
    return ends - starts + 1, starts, values[ends]


def lstmvis_precise(states, cells, threshold, *, constrain_left=False, constrain_right=False,
                    no_of_results=50, phrase_length=0, candidate_cap=10000,
                    candidate_order="start") -> list[dict]:
    """The top ``no_of_results`` matches of LSTMVis's precise mode, best first.

    ``states``: [N, D] raw values (an h5py dataset or an array); ``cells``: the selected columns;
    ``threshold``: in tanh space, strictly inside (-1, 1). Each result is a dict with ``pos``, ``length``,
    ``intersection``, ``union``, ``jaccard`` and ``missing`` (k - intersection).
    """
    if not -1.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie strictly inside (-1, 1) (tanh space), got {threshold}")
    if candidate_order not in ("start", "set"):
        raise ValueError(f"candidate_order must be 'start' or 'set', got {candidate_order!r}")
    n, _d = states.shape
    cells = [int(x) for x in cells]
    if len(set(cells)) != len(cells):
        raise ValueError("a cell appears twice in the selection")  # h5py (theirs) fails on that too
    k = len(cells)
    raw = np.arctanh(np.float64(threshold))

    # 1-2. count vector, column batches
    per_batch = max(1, int(np.floor(5e6 / n))) if n else 1
    read_order = sorted(cells)
    counts = np.zeros(n, np.int64)
    for b in range(0, len(read_order), per_batch):
        cols = read_order[b:b + per_batch]
        block = np.asarray(states[:, cols])
        counts += np.count_nonzero(~(block < raw), axis=1)

    # 3. candidate runs, strictest level first
    collected: dict[tuple[int, int], tuple[int, int, int]] = {}
    m = k
    while m > 0 and len(collected) < candidate_cap:
        lengths, starts, values = _rle(np.minimum(counts, m))
        if phrase_length > 0:
            idx = np.flatnonzero((values == m) & (lengths == phrase_length))
        else:
            idx = np.flatnonzero((values == m) & (lengths >= 2))
        prev = values[idx - 1].astype(np.int64)  # idx 0 wraps to the last run, as theirs
        nxt = values[(idx + 1) % len(values)].astype(np.int64)  # theirs: IndexError for the last run
        score2 = boundary_score(m, prev, nxt, constrain_left, constrain_right)
        triples = zip(lengths[idx].tolist(), starts[idx].tolist(), score2.tolist())
        if candidate_order == "set":
            triples = set(triples)
        for cand in triples:
            collected.setdefault((cand[0], cand[1]), cand)
        m -= 1

    # 4. sharpest boundaries first, then the cap
    candidates = sorted(collected.values(), key=lambda x: -x[2])[:candidate_cap]

    # 5. exact re-scoring over all cells
    selected = np.array(read_order, np.int64)
    n_constraints = int(bool(constrain_left)) + int(bool(constrain_right))
    results = []
    for length, pos, _score2 in candidates:
        if pos < 1 or pos + length + 1 > n:
            continue
        rows = np.asarray(states[pos - 1:pos + length + 1, :])
        signed = np.where(rows < raw, -1, 1)
        mask = np.ones(length + 2, np.int64)
        mask[0] = -1 if constrain_left else 0
        mask[-1] = -1 if constrain_right else 0
        active = np.flatnonzero(mask @ signed == length + n_constraints)
        inter = len(np.intersect1d(active, selected))
        union = len(np.union1d(active, selected))
        results.append({"pos": int(pos), "length": int(length), "intersection": inter, "union": union,
                        "jaccard": inter / union, "missing": k - inter})

    # 6. rank
    results.sort(key=lambda r: (-r["intersection"], r["union"], -r["length"]))
    return results[:no_of_results]
