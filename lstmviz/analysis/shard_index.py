"""Per-shard match indices built in parallel, with the statistics of the whole recording.

**Statistics, exactly.** A z-score threshold depends on each unit's mean and standard deviation over
the whole corpus, so every shard's index must be built with the *global* statistics, or its bits
would differ from the single file's. ``transforms.tap_stats`` folds blocks of ``STATS_BLOCK_ROWS``
rows (starting at row 0) one after another with Chan, Golub and LeVeque's pairwise update

    n = n_a + n_b,   mean = mean_a + δ·n_b/n,   M2 = M2_a + M2_b + δ²·n_a·n_b/n,   δ = mean_b − mean_a,

and floating-point addition is not associative, so merging per-shard totals would agree only to
rounding. Instead each shard task returns the (count, mean, M2, min, max) of every block that lies
wholly inside it, at the same global rows as the single file's blocks, plus its raw rows before its
first and after its last block boundary (less than one block each). The coordinator rebuilds the
blocks that straddle shards from those rows and folds all blocks in global order: the same numbers
in the same order as the single file, so the statistics, the thresholds and the bits are identical.
The result is cached beside the logical file (or the first shard), keyed by every shard's fingerprint.

**Indices.** Each shard's index is ``bitindex.open_index`` of that shard (cached in the shard's own
cache folder), given the global statistics for a z-score key; raw and tanh keys need none.
"""

from __future__ import annotations

import hashlib

import numpy as np

from lstmviz.analysis import cache as _cache
from lstmviz.analysis._index_kernels import STATS_BLOCK_ROWS
from lstmviz.analysis._index_stream import SlabReader, slab_rows
from lstmviz.analysis.bitindex import IndexKey, open_index
from lstmviz.analysis.shard_exec import worker_state
from lstmviz.analysis.transforms import (
    StatsFold,
    UnitStats,
    _load_stats,
    _save_stats,
    block_stats,
    check_threshold,
)
from lstmviz.tasks import ensure_task


def shard_stats_part(path: str, tap: str, row_offset: int) -> dict:
    """One shard's share of the global statistics (module docstring): ``head`` and ``tail`` raw rows,
    and the block statistics of the whole blocks between them. Runs in a worker."""
    rec = open_shard(path)
    info = rec.taps[tap]
    n = rec.axis_length(info.axis)
    head = min(n, (-int(row_offset)) % STATS_BLOCK_ROWS)
    whole = (n - head) // STATS_BLOCK_ROWS * STATS_BLOCK_ROWS
    fold_parts = []
    rows = slab_rows(info.units, np.dtype(info.dtype).itemsize, STATS_BLOCK_ROWS)
    with SlabReader(rec, tap, rows, start=head, stop=head + whole) as slabs:
        for _, _, x in slabs:
            fold_parts.append(block_stats(x))
    parts = [np.concatenate([p[i] for p in fold_parts]) if fold_parts else
             np.zeros((0, info.units), np.int64 if i == 0 else np.float64) for i in range(5)]
    return {"head": rec.raw_states(tap, 0, head), "tail": rec.raw_states(tap, head + whole, n),
            "blocks": tuple(parts), "rows": n}


def merge_stats_parts(parts: list[dict], units: int) -> UnitStats:
    """The global statistics from every shard's ``shard_stats_part``, in shard order (module docstring)."""
    fold = StatsFold(units)
    pending: list[np.ndarray] = []  # raw rows of the block being assembled across shards
    have = 0

    def flush():
        nonlocal pending, have
        if have:
            fold.add(*block_stats(np.concatenate(pending)))
        pending, have = [], 0

    total = 0
    for p in parts:
        if len(p["head"]):
            pending.append(p["head"])
            have += len(p["head"])
        if have == STATS_BLOCK_ROWS:  # the head completed the block that straddles the shard's start
            flush()
        fold.add(*p["blocks"])
        if len(p["tail"]):
            pending.append(p["tail"])
            have += len(p["tail"])
        total += p["rows"]
    flush()
    return fold.result(total)


def global_stats(shards, tap: str, backend, *, task=None, cache: bool = True) -> UnitStats:
    """Per-unit statistics of ``tap`` over all shards, equal to those of the concatenated file."""
    task = ensure_task(task)
    info = shards.tap(tap)
    path = None
    fingerprint = shards.fingerprint()
    if cache:
        path = _cache.cache_dir_for(shards.cache_home()) / _cache.cache_name("shard-stats", tap, suffix=".npz")
        stats = _cache.load_cached(path, lambda p: _load_stats(p, fingerprint, tap, info.units), "statistics")
        if stats is not None:
            return stats
    offsets = shards.position_offsets(info.axis)
    calls = [(shard_stats_part, (s.path, tap, int(offsets[j]))) for j, s in enumerate(shards.shards)]
    parts = backend.run(calls, task=task, message=f"Statistics of {tap} over {len(shards)} shards")
    stats = merge_stats_parts(parts, info.units)
    if path is not None:
        _save_stats(path, stats, fingerprint, tap)
    return stats


def index_stats(shards, key: IndexKey, backend, *, task=None) -> UnitStats | None:
    """The statistics a key's shard indices are built with: global ones for a z-score key over several
    shards; else None (a single file's own statistics are the global ones, and its index is then the
    very cache file the window uses)."""
    check_threshold(key.threshold, key.transform)
    if key.transform != "zscore" or len(shards) == 1:
        return None
    return global_stats(shards, key.tap, backend, task=task)


def shard_index_task(path: str, key: IndexKey, stats: UnitStats | None, fingerprint: str) -> dict:
    """Build (or load) one shard's index in its cache folder and keep it open in this worker."""
    index = shard_index(path, key, stats, fingerprint)
    return {"path": path, "positions": int(index.n_positions), "cache": str(index.path or "")}


def shard_index(path: str, key: IndexKey, stats: UnitStats | None, fingerprint: str):
    """One shard's index, opened once per worker (the checksums are verified on the first open only)."""
    digest = None if stats is None else hashlib.sha256(stats.mean.tobytes() + stats.std.tobytes()).hexdigest()
    return worker_state(("index", path, fingerprint, key, digest),
                        lambda: open_index(open_shard(path, fingerprint), key, stats=stats))


def open_shard(path: str, fingerprint: str | None = None):
    """The shard recording, opened once per worker; ``ShardError`` when it changed since ``fingerprint``."""
    from lstmviz.analysis.shard_set import ShardError
    from lstmviz.recording import open_recording

    rec = worker_state(("recording", path, fingerprint), lambda: open_recording(path))
    if fingerprint is not None and _cache.recording_fingerprint(rec) != fingerprint:
        raise ShardError(f"{path} changed after the shards were opened; open them again")
    return rec


def build_indices(shards, key: IndexKey, backend, *, task=None) -> list[dict]:
    """Build every shard's index of ``key`` in parallel on ``backend`` (each cached beside its shard)."""
    task = ensure_task(task)
    stats = index_stats(shards, key, backend, task=task)
    calls = [(shard_index_task, (s.path, key, stats, s.fingerprint)) for s in shards.shards]
    return backend.run(calls, task=task, message=f"Indexing {key.tap} in {len(shards)} shards")
