"""Where per-shard tasks run: a Dask cluster, local processes, or this process.

Every backend runs a list of calls ``(function, args)`` and returns their results in order. A call
is a plain module-level function whose arguments are paths, numbers and small dataclasses, never an
open file, so it pickles to another process or machine. Each call names a *slot* (the shard's
number); calls of one slot always go to the same worker, so that a worker keeps the shard's index
open (``worker_state``) and a query's per-shard counts between the phases of one query. Where that
affinity is lost (a Dask worker restarted), the task recomputes what it needs: results never depend
on it, only speed.

- ``DaskBackend``: ``dask.distributed`` (optional, the ``scale`` extra): ``Client(address)`` for a
  running scheduler, or a ``LocalCluster`` started for the run. Slots map onto the workers in order.
- ``ProcessBackend``: without dask; one single-process ``ProcessPoolExecutor`` (``spawn``) per worker,
  slot ``j`` on worker ``j % workers``.
- ``InlineBackend``: this process, one call after another (one shard, tests, debugging).

Each call runs with its numba threads limited to the cores a worker owns (``threads``), so parallel
kernels in several workers do not oversubscribe the machine.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import threading
from collections import OrderedDict

from lstmviz.errors import ExpectedError
from lstmviz.tasks import ensure_task

_POLL_S = 0.2


class BackendError(ExpectedError):
    """The cluster or the worker processes cannot be used; the text says why and what to do."""


def _call(threads: int, fn, args):
    """Run ``fn(*args)`` in a worker with numba limited to ``threads`` (thread-local in numba)."""
    import numba

    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    return fn(*args)


class _Backend:
    name = ""
    workers = 1

    def run(self, calls, slots=None, *, task=None, message: str = "", wait: bool = True):
        """Results of ``calls`` (``[(fn, args)]``) in order; ``slots[i]`` picks call i's worker. Progress:
        ``task.progress(calls done, calls, message)``; a cancelled task cancels what has not started.
        ``wait=False``: submit and return None at once (clean-up whose result nobody needs)."""
        task = ensure_task(task)
        slots = list(range(len(calls))) if slots is None else list(slots)
        futures = [self._submit(fn, args, slot) for (fn, args), slot in zip(calls, slots)]
        if not wait:
            self._pending = [f for f in getattr(self, "_pending", []) if not f.done()] + futures
            return None
        try:
            return self._gather(futures, task, message)
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    def _gather(self, futures, task, message):
        pending = set(futures)
        while pending:
            task.progress(len(futures) - len(pending), len(futures), message)
            _, pending = cf.wait(pending, timeout=_POLL_S, return_when=cf.FIRST_COMPLETED)
        task.progress(len(futures), len(futures), message)
        return [f.result() for f in futures]

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class InlineBackend(_Backend):
    """This process, in order (numba keeps all of its threads)."""

    name = "inline"

    def _submit(self, fn, args, slot):
        f = cf.Future()
        try:
            f.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - raised by result()
            f.set_exception(e)
        return f


class ProcessBackend(_Backend):
    """``workers`` local processes (``spawn``), one pool of one process each, for slot affinity."""

    name = "processes"

    def __init__(self, workers: int):
        workers = int(workers)
        if workers < 1:
            raise BackendError(f"the number of worker processes must be at least 1, got {workers}")
        self.workers = workers
        self.threads = max(1, (os.cpu_count() or 1) // workers)
        context = multiprocessing.get_context("spawn")
        self._pools = [cf.ProcessPoolExecutor(1, mp_context=context) for _ in range(workers)]

    def _submit(self, fn, args, slot):
        return self._pools[slot % self.workers].submit(_call, self.threads, fn, args)

    def close(self) -> None:
        for pool in self._pools:
            pool.shutdown(wait=True, cancel_futures=True)


class DaskBackend(_Backend):
    """Tasks on a ``dask.distributed`` cluster: at ``address``, or a ``LocalCluster`` of ``workers``
    worker processes (``processes=False``: threads of this process) started here and stopped by
    ``close``."""

    name = "dask"

    def __init__(self, address: str | None = None, *, workers: int | None = None, processes: bool = True,
                 client=None):
        distributed = _import_distributed()
        self._cluster = None
        if client is not None:
            self.client = client
            self._own_client = False
        elif address:
            try:
                self.client = distributed.Client(address, timeout="10s")
            except (OSError, TimeoutError) as e:
                raise BackendError(f"cannot reach the Dask scheduler at {address!r} ({e}); start one with "
                                   f"`dask scheduler` and workers with `dask worker {address}`, on machines "
                                   f"that see the shard files under the same paths") from None
            self._own_client = True
        else:
            n = max(1, int(workers or 1))
            self._cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                                                     dashboard_address=None)
            self.client = distributed.Client(self._cluster)
            self._own_client = True
        info = self.client.scheduler_info()
        self._workers = sorted(info.get("workers", {}))
        if not self._workers:
            self.close()
            raise BackendError("the Dask cluster has no workers; start some with `dask worker ADDRESS`")
        self.workers = len(self._workers)
        threads = [w.get("nthreads", 1) for w in info["workers"].values()]
        self.threads = max(1, min(threads)) if address or client is not None else max(
            1, (os.cpu_count() or 1) // self.workers)

    def _submit(self, fn, args, slot):
        worker = self._workers[slot % len(self._workers)]
        return self.client.submit(_call, self.threads, fn, args, workers=[worker], pure=False)

    def _gather(self, futures, task, message):
        from distributed import wait

        pending = list(futures)
        while True:
            done = sum(f.done() for f in pending)
            task.progress(done, len(futures), message)
            if done == len(futures):
                break
            try:
                wait(pending, timeout=_POLL_S, return_when="FIRST_COMPLETED")
            except TimeoutError:
                pass
        return self.client.gather(futures)

    def close(self) -> None:
        if self._own_client:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise BackendError("a Dask cluster needs dask.distributed, which is not installed: "
                           "pip install 'lstmviz[scale]' (or run on local processes)") from None
    return distributed


def have_dask() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def make_backend(*, scheduler: str | None = None, workers: int | None = None, processes: bool = False,
                 shards: int = 1) -> _Backend:
    """The backend for a run: a Dask cluster at ``scheduler``; else ``processes`` (local processes,
    even with dask installed); else, for several shards, a Dask ``LocalCluster`` when dask.distributed
    is installed and local processes when not; one shard runs in this process. ``workers`` defaults to
    one per shard, at most one per core."""
    if scheduler:
        return DaskBackend(scheduler)
    n = int(workers) if workers is not None else max(1, min(int(shards), os.cpu_count() or 1))
    if n < 1:
        raise BackendError(f"the number of workers must be at least 1, got {n}")
    if processes:
        return ProcessBackend(n)
    if shards <= 1 and workers is None:
        return InlineBackend()
    if have_dask():
        return DaskBackend(workers=n)
    return ProcessBackend(n)


# --- state kept in a worker between calls ------------------------------------------------------------

_STATE_LOCK = threading.RLock()
_STATE: OrderedDict = OrderedDict()
_STATE_ITEMS = 64
"""Open indices and per-query states kept per worker process (least recently used dropped first)."""


def worker_state(key, make):
    """The value kept under ``key`` in this worker, made by ``make()`` on a miss."""
    with _STATE_LOCK:
        if key in _STATE:
            _STATE.move_to_end(key)
            return _STATE[key]
    value = make()
    with _STATE_LOCK:
        _STATE[key] = value
        _STATE.move_to_end(key)
        while len(_STATE) > _STATE_ITEMS:
            _STATE.popitem(last=False)
    return value


def drop_state(predicate) -> int:
    """Forget the kept values whose key satisfies ``predicate``; returns how many."""
    with _STATE_LOCK:
        gone = [k for k in _STATE if predicate(k)]
        for k in gone:
            del _STATE[k]
    return len(gone)
