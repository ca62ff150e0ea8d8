"""Per-shard tasks on local processes and on a Dask cluster give the single file's results."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import shard_corpus as sc

from lstmviz.analysis import shard_exec, sharded
from lstmviz.analysis.bitindex import IndexKey, open_index
from lstmviz.analysis.match_types import MatchQuery
from lstmviz.analysis.matching import match
from lstmviz.recording import open_recording

KEY = IndexKey("h", "zscore", 0.4)
QUERIES = [
    MatchQuery(units=(1, 2, 3), candidate_cap=40),
    MatchQuery(units=(3, 7, 9, 11), mode="scored", limit=25, candidate_cap=300, pad_right=1),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return sc.write_corpus(tmp_path_factory.mktemp("backends"), dtype="float16")


def check_backend(backend, corpus):
    single, shards = corpus
    s = sharded.open_shards(shards)
    built = sharded.build_indices(s, KEY, backend)
    assert all(b["cache"] for b in built)  # each shard's index went to its own cache file
    with open_recording(single) as rec:
        one = open_index(rec, KEY)
        for q in QUERIES:
            expected, got = match(one, q), sharded.match(s, KEY, q, backend)
            for f in ("starts", "lengths", "items", "levels", "intersection", "union", "score"):
                np.testing.assert_array_equal(getattr(got, f), getattr(expected, f), err_msg=f)
            assert got.extra["shards"] == len(shards)


def test_local_processes(corpus):
    with sharded.ProcessBackend(2) as backend:
        check_backend(backend, corpus)


def test_dask_local_cluster(corpus):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, processes=False, threads_per_worker=1, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        backend = sharded.DaskBackend(client=client)
        assert backend.workers == 2
        check_backend(backend, corpus)


class ForgetfulBackend(sharded.InlineBackend):
    """A worker that loses its kept state before every call (as a restarted Dask worker would)."""

    def _submit(self, fn, args, slot):
        shard_exec.drop_state(lambda k: k[0] == "query")
        return super()._submit(fn, args, slot)


def test_results_do_not_depend_on_state_kept_in_workers(corpus):
    check_backend(ForgetfulBackend(), corpus)


def test_without_dask_the_default_is_local_processes(monkeypatch):
    monkeypatch.setattr(shard_exec, "have_dask", lambda: False)
    with shard_exec.make_backend(shards=2, workers=1) as backend:
        assert isinstance(backend, sharded.ProcessBackend)
    assert isinstance(shard_exec.make_backend(shards=1), sharded.InlineBackend)


def test_a_scheduler_without_dask_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(sharded.BackendError, match=r"pip install 'lstmviz\[scale\]'"):
        shard_exec.make_backend(scheduler="tcp://127.0.0.1:8786")
