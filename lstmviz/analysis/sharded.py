"""Analysis over a recording split into shards: the entry points.

A recording too large for one machine is recorded as shards (``shard_set``: ordinary recordings of
contiguous item ranges, named by a logical file's ``lstmviz_shards`` table). Analyses run per shard,
in parallel, on a Dask cluster or local processes (``shard_exec``), and give exactly the single file's
results:

- ``build_indices``: every shard's match index, built in parallel, each cached beside its shard, with
  the statistics of the whole recording (``shard_index``: merged exactly, so the bits equal the single
  file's);
- ``match``: a whole-corpus match (``shard_match``: per-shard phases, global decisions from per-level
  counts that add across shards; same matches, scores and order as ``matching.match``);
- ``ShardedRecording``: the shards read as one recording, for probes (``probes.fit_probe``,
  ``probe_report.run_probes``), which stream rows shard after shard (``shard_view``).

Example::

    shards = open_shards("corpus.h5")            # a logical file, or a list of shard files
    with make_backend(scheduler="tcp://host:8786") as backend:   # or processes=True, or nothing
        build_indices(shards, IndexKey("layer1/c", "raw", 0.3), backend)
        results = match(shards, IndexKey("layer1/c", "raw", 0.3), MatchQuery(units=(3, 17)), backend)
"""

from __future__ import annotations

from lstmviz.analysis.bitindex import IndexKey
from lstmviz.analysis.match_types import MatchQuery, MatchResults
from lstmviz.analysis.shard_exec import (
    BackendError,
    DaskBackend,
    InlineBackend,
    ProcessBackend,
    have_dask,
    make_backend,
)
from lstmviz.analysis.shard_index import build_indices, global_stats, index_stats
from lstmviz.analysis.shard_match import match_shards
from lstmviz.analysis.shard_set import Shard, ShardError, ShardSet, open_shards, read_table, verify_sha256
from lstmviz.analysis.shard_view import ShardedRecording
from lstmviz.tasks import ensure_task

__all__ = [
    "BackendError", "DaskBackend", "IndexKey", "InlineBackend", "MatchQuery", "ProcessBackend", "Shard",
    "ShardError", "ShardSet", "ShardedRecording", "build_indices", "global_stats", "have_dask",
    "index_stats", "make_backend", "match", "open_shards", "read_table", "verify_sha256",
]


def match(shards: ShardSet, key: IndexKey, query: MatchQuery, backend, *, task=None) -> MatchResults:
    """``matching.match`` over all shards (indices built on first use), in global positions and items."""
    task = ensure_task(task)
    stats = index_stats(shards, key, backend, task=task)
    return match_shards(shards, key, query, backend, stats=stats, task=task)
