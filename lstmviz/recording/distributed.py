"""Record under ``torchrun``: each process records its block of the items into a shard, rank 0 writes the logical file.

``torchrun --nproc-per-node N -m lstmviz record ...`` and ``lstmviz.record(..., distributed=True)`` in a script
started by torchrun both come here (``docs/scale.md``). torchrun's environment (``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT``) names the process; a gloo process group (CPU) coordinates them:

1. rank 0 removes an old logical file of the same name (its shards are about to change), and every rank
   waits for that;
2. each rank keeps its shard when the shard, its checksum file and its settings match this run (resume),
   else records it (``RecordingWriter``: atomic) and then writes the checksum file;
3. every rank waits for the others (gloo's monitored barrier, which names the ranks that did not arrive);
4. rank 0 hashes every shard again, compares it with its checksum file and settings, and writes the logical
   file (atomic, last); every rank returns its path or raises the same error.

A rank that dies leaves at most finished shards and never a logical file; torchrun stops the other ranks,
and a rank that waits longer than the timeout for another fails with a sentence. Running the same command
again keeps every finished shard that matches and records the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from lstmviz.errors import ExpectedError
from lstmviz.recording import shards as sh
from lstmviz.recording.format import RecordingError
from lstmviz.tasks import Task, ensure_task

DEFAULT_TIMEOUT_S = 1800.0
"""How long a rank waits for the others at a meeting point (``LSTMVIZ_DIST_TIMEOUT`` seconds overrides it);
at the meeting after recording, at least twice this rank's own recording time."""

CRASH_HOOK_ENV = "_LSTMVIZ_TEST_CRASH"
"""Test hook, not a feature: ``"RANK:BATCHES"`` makes that rank leave with ``os._exit(1)`` right after it has
reported ``BATCHES`` recorded batches, as a killed process would (tests/recording/test_shards.py)."""

RecordShard = Callable[[Path, tuple[int, int], dict, Callable[[Task | None], Task]], Path]
"""``record_shard(shard_path, (start, stop), provenance, wrap_task)``: record items ``[start, stop)`` into
``shard_path`` with ``provenance`` added to the recording's, reporting progress to ``wrap_task(task)``."""


class ShardingError(ExpectedError, RuntimeError):
    """A sharded recording could not be finished; the text says why and what to do."""


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int


def torchrun_world() -> World | None:
    """This process's place among torchrun's processes, from its environment; None outside torchrun."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    try:
        rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError:
        raise ShardingError(f"RANK={os.environ['RANK']!r} and WORLD_SIZE={os.environ['WORLD_SIZE']!r} must be "
                            f"integers (torchrun sets them)") from None
    if size < 1 or not 0 <= rank < size:
        raise ShardingError(f"RANK={rank} is not in 0..WORLD_SIZE-1 (WORLD_SIZE={size})")
    return World(rank, size, local)


def _timeout() -> float:
    text = os.environ.get("LSTMVIZ_DIST_TIMEOUT")
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ShardingError(f"LSTMVIZ_DIST_TIMEOUT must be a positive number of seconds, got {text!r}")
    return value


def _say(world: World, text: str) -> None:
    print(f"lstmviz record [rank {world.rank}/{world.size}]: {text}", file=sys.stderr, flush=True)


def record_sharded(out: str | os.PathLike, total: int, record_shard: RecordShard, settings: dict) -> Path:
    """Record ``total`` items into shards of ``out`` and write the logical file ``out`` (module docstring).

    ``settings``: everything that makes a shard's values what they are (model checkpoint sha256, dataset,
    signals, dtype, ...), JSON-serialisable; a shard recorded with other settings is recorded again.
    """
    import torch.distributed as dist

    world = torchrun_world()
    if world is None:
        raise ShardingError("distributed recording runs under torchrun (torchrun --nproc-per-node N -m lstmviz "
                            "record ...), which sets RANK and WORLD_SIZE; they are not set")
    out = Path(out).absolute()
    timeout = _timeout()
    settings = json.loads(json.dumps(settings, default=str))  # as stored and read back
    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group("gloo", timeout=timedelta(seconds=timeout))
    elif dist.get_world_size() != world.size or dist.get_rank() != world.rank:
        raise ShardingError(f"the process group has rank {dist.get_rank()} of {dist.get_world_size()}, but torchrun "
                            f"says rank {world.rank} of {world.size}")
    try:
        return _record(out, total, record_shard, settings, world, timeout)
    finally:
        if owns_group:
            dist.destroy_process_group()


def _record(out: Path, total: int, record_shard: RecordShard, settings: dict, world: World, timeout: float) -> Path:
    items = sh.item_block(total, world.rank, world.size)  # the same error on every rank when N > items
    problem = _prepare(out, world) if world.rank == 0 else None
    _share(world, problem, "start")  # no rank writes a shard before the old logical file is gone
    shard = sh.shard_path(out, world.rank, world.size)
    expected = {"rank": world.rank, "world_size": world.size, "items": list(items), "total_items": total,
                "settings": settings}
    reason = reuse_problem(shard, expected)
    started = time.monotonic()
    if reason is None:
        _say(world, f"kept {shard.name} (items {items[0]}..{items[1] - 1}; its checksum and settings match)")
    else:
        if shard.exists():
            _say(world, f"recording {shard.name} again: {reason}")
        sh.checksum_path(shard).unlink(missing_ok=True)  # first: no checksum file ever vouches for a new shard
        record_shard(shard, items, {sh.SHARD_PROVENANCE: expected}, _crash_hook(world))
        sh.write_checksum(shard, sh.file_sha256(shard))
        _say(world, f"recorded {shard.name} (items {items[0]}..{items[1] - 1}) in {time.monotonic() - started:.2f} s")
    elapsed = time.monotonic() - started
    _meet(world, max(timeout, 2 * elapsed), "finish their shards")
    problem = _write_logical(out, total, world, settings) if world.rank == 0 else None
    _share(world, problem, "write the logical file")
    return out


def _prepare(out: Path, world: World) -> str | None:
    """Rank 0, before any shard is written: remove an old logical file of ``out`` and make the shards folder."""
    directory = sh.shard_directory(out)
    try:
        if out.exists() or out.is_symlink():
            if not out.is_file() or not sh.read_shard_table(out):
                return (f"{out} exists and is not a logical file over shards; a sharded recording does not replace "
                        f"it: remove it or give another --out")
            out.unlink()  # it describes shards that are about to change
            _say(world, f"removed the old logical file {out.name}; it is written again when every shard is done")
        directory.mkdir(parents=True, exist_ok=True)
    except RecordingError as e:
        return f"{out} exists and is not a logical file over shards ({e.problem}); remove it or give another --out"
    except OSError as e:
        return f"cannot prepare {directory} for the shards ({e.strerror or e})"
    return None


def _share(world: World, problem: str | None, what: str) -> None:
    """Rank 0 tells every rank whether ``what`` went well; every rank raises the same error if not."""
    import torch.distributed as dist

    box = [problem]
    try:
        dist.broadcast_object_list(box, src=0)
    except Exception as e:
        raise ShardingError(f"rank {world.rank} waited for rank 0 to {what} and lost it ({_why(e)}); run the same "
                            f"command again to resume (finished shards are kept)") from None
    if box[0] is not None:
        raise ShardingError(box[0])


def _meet(world: World, timeout: float, what: str) -> None:
    import torch.distributed as dist

    try:
        dist.monitored_barrier(timeout=timedelta(seconds=timeout), wait_all_ranks=True)
    except Exception as e:
        raise ShardingError(f"rank {world.rank} waited up to {timeout:.0f} s for the other processes to {what} and "
                            f"they did not ({_why(e)}): a process died or hangs. Run the same command again to resume "
                            f"(finished shards are kept); LSTMVIZ_DIST_TIMEOUT=SECONDS sets how long to wait") from None


def _why(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:300] if text else type(e).__name__


def reuse_problem(shard: Path, expected: dict) -> str | None:
    """Why the existing ``shard`` cannot be kept for a run with ``expected`` shard provenance; None if it can."""
    if not shard.is_file():
        return "it does not exist"
    stored = sh.read_checksum(shard)
    if stored is None:
        return f"it has no checksum file {sh.checksum_path(shard).name} (its process stopped before it finished)"
    if sh.file_sha256(shard) != stored:
        return f"its sha256 differs from its checksum file {sh.checksum_path(shard).name} (it changed after it was written)"
    from lstmviz.recording.reader import open_recording

    try:
        with open_recording(shard) as rec:
            have = rec.provenance.get(sh.SHARD_PROVENANCE)
    except RecordingError as e:
        return f"it cannot be read ({e})"
    if not isinstance(have, dict):
        return "it is not a shard (its provenance has no shard entry)"
    differ = [k for k in ("rank", "world_size", "items", "total_items") if have.get(k) != expected[k]]
    old, new = have.get("settings") or {}, expected["settings"]
    differ += [f"{k} ({old.get(k)!r} then, {new.get(k)!r} now)" for k in sorted(set(old) | set(new), key=str)
               if old.get(k) != new.get(k)]
    if differ:
        return f"it was recorded with other settings: {', '.join(differ)[:500]}"
    return None


def _write_logical(out: Path, total: int, world: World, settings: dict) -> str | None:
    """Rank 0: check every shard and write the logical file; the problem in words, or None."""
    from lstmviz.recording.logical_file import ShardMismatch, write_logical

    entries = []
    for rank in range(world.size):
        shard = sh.shard_path(out, rank, world.size)
        items = sh.item_block(total, rank, world.size)
        expected = {"rank": rank, "world_size": world.size, "items": list(items), "total_items": total,
                    "settings": settings}
        reason = reuse_problem(shard, expected)
        if reason is not None:
            return (f"shard {shard.name} of rank {rank} cannot be used: {reason}; no logical file was written. Run "
                    f"the same command again: it records that shard again and keeps the others")
        entries.append(sh.ShardEntry(shard, items, sh.read_checksum(shard)))
    try:
        write_logical(out, entries)
    except ShardMismatch as e:
        return f"{e}; no logical file was written"
    except OSError as e:
        return f"the logical file {out} could not be written ({e.strerror or e}); the shards are kept"
    _say(world, f"wrote {out} over {world.size} shards in {sh.shard_directory(out).name}/")
    return None


class _CrashAfter(Task):
    """The test hook: forwards progress to ``inner`` and leaves the process after ``batches`` batches."""

    def __init__(self, inner: Task, batches: int):
        super().__init__()
        self.inner, self.batches, self.seen = inner, batches, 0

    def progress(self, done: int, total: int | None = None, message: str = "") -> None:
        self.inner.progress(done, total, message)
        if done > 0:
            self.seen += 1
            if self.seen >= self.batches:
                os._exit(1)

    def cancel(self) -> None:
        self.inner.cancel()

    @property
    def cancelled(self) -> bool:
        return self.inner.cancelled

    def check(self) -> None:
        self.inner.check()


def _crash_hook(world: World) -> Callable[[Task | None], Task]:
    text = os.environ.get(CRASH_HOOK_ENV, "")
    try:
        rank, batches = (int(x) for x in text.split(":")) if text else (-1, 0)
    except ValueError:
        rank, batches = -1, 0
    if rank != world.rank:
        return ensure_task
    return lambda task: _CrashAfter(ensure_task(task), batches)


# --- lstmviz.record(..., distributed=True) ----------------------------------------------------------

def weights_sha256(model) -> str:
    """A sha256 of a model's state_dict (names, dtypes, shapes, bytes): which weights made a shard."""
    import torch

    digest = hashlib.sha256()
    for name, value in model.state_dict().items():
        digest.update(name.encode())
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()


def _data_identity(data) -> dict:
    if all(hasattr(data, a) for a in ("vocab", "annotation_specs", "__len__", "__getitem__")) and hasattr(data, "provenance"):
        return {"dataset": data.provenance()}
    import numpy as np

    digest = hashlib.sha256()
    for seq in data:
        a = np.ascontiguousarray(np.asarray(getattr(seq, "tokens", seq)), dtype=np.int64)
        digest.update(np.int64(len(a)).tobytes())
        digest.update(a.tobytes())
    return {"data_sha256": digest.hexdigest()}


def _checkpoint_identity(given) -> str:
    """A checkpoint of ``record(checkpoints=...)`` in the settings: its sha256 when given, else its step or name."""
    sha = getattr(given, "sha256", "") or ""
    if sha:
        return sha
    if isinstance(given, tuple) and given:
        return repr(given[0])
    return repr((getattr(given, "name", None), getattr(given, "step", None)))


def record_distributed_call(record, model, data, out, *, task=None, provenance=None, max_items=None, items=None,
                            **options) -> Path:
    """``record(..., distributed=True)``: the same call, once per rank on its block (module docstring)."""
    if items is not None:
        raise ValueError("record(distributed=True) splits the items among the processes itself; leave items=None")
    if not hasattr(data, "__len__") or not hasattr(data, "__getitem__"):
        raise ValueError(f"record(distributed=True) splits the items into blocks by index, so data must be a dataset or "
                         f"a list, got a {type(data).__name__}")
    total = len(data) if max_items is None else min(len(data), int(max_items))
    checkpoints = options.get("checkpoints")
    settings = {
        "api": "lstmviz.record",
        "model": f"{type(model).__module__}.{type(model).__qualname__}",
        "weights_sha256": weights_sha256(model),
        **_data_identity(data),
        "max_items": max_items,
        "signals": options.get("signals"),
        "dtype": options.get("dtype", "float32"),
        "batch_size": options.get("batch_size", 32),
        "checkpoints": None if not checkpoints else [_checkpoint_identity(c) for c in checkpoints],
        "provenance": provenance,
    }

    def record_shard(shard: Path, block, extra: dict, wrap) -> Path:
        return record(model, data, shard, task=wrap(task), provenance={**(provenance or {}), **extra},
                      max_items=max_items, items=block, **options)

    return record_sharded(out, total, record_shard, settings)
