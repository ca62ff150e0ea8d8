"""Where derived data (unit statistics, match indices) is cached, and how cache files are written.

A recording is never opened for writing: users' files may be read-only, and a crash while writing a
cache must not be able to damage them. Caches live in a directory of their own (``cache_dir_for``),
each file records the ``recording_fingerprint`` of the recording it was built from, and a file whose
fingerprint or inputs differ, or that cannot be read, is rebuilt. Files are written under a temporary
name in the same directory and renamed into place when complete (``atomic_path``), so a reader sees a
whole cache file or none.

Every cache kind is read through ``load_cached`` (the one loader policy): a file that is missing,
stale (built from another recording, key or version) or unreadable in any way (empty, truncated,
bit-flipped, a checksum that does not match, arrays of the wrong shape) is a cache *miss*: it is
deleted, a note goes to the ``lstmviz.cache`` log, and the caller rebuilds it. Nothing a damaged cache
file holds can raise past ``load_cached`` or reach a result.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

CACHE_ENV = "LSTMVIZ_CACHE_DIR"
"""If set, every recording's cache lives in ``$LSTMVIZ_CACHE_DIR/<file name>-<hash of its path>/``."""

BESIDE_SUFFIX = ".lstmviz-cache"
TEMP_SUFFIX = ".tmp"
log = logging.getLogger("lstmviz.cache")
T = TypeVar("T")

STALE_TEMP_SECONDS = 3600.0
"""A temporary cache file untouched this long was left by a killed process (a build rewrites it
continuously) and may be removed."""


def cache_dir_for(recording_path: str | os.PathLike) -> Path:
    """The directory for the caches of the recording at ``recording_path`` (created if possible).

    ``$LSTMVIZ_CACHE_DIR/<name>-<hash>/`` if that variable is set; else ``<file>.lstmviz-cache/``
    beside the recording when its directory is writable; else
    ``$XDG_CACHE_HOME/lstmviz/<name>-<hash>/`` (``~/.cache`` without ``XDG_CACHE_HOME``). ``<hash>``
    is derived from the absolute path of the recording. If no candidate can be created, the last one
    is returned anyway; writing there fails and callers keep the data in memory instead.
    """
    path = Path(recording_path).expanduser().resolve()
    sub = f"{_safe(path.name)}-{_path_hash(path)}"
    env = os.environ.get(CACHE_ENV)
    if env:
        target = Path(env).expanduser() / sub
        _make_dir(target)
        return target
    beside = path.with_name(path.name + BESIDE_SUFFIX)
    if _make_dir(beside):
        return beside
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    target = base / "lstmviz" / sub
    _make_dir(target)
    return target


def recording_fingerprint(recording) -> str:
    """A hex digest that changes when the recording file changes.

    Built from the file's size and modification time (ns), the writer's ``created`` time, the number
    of positions, each tap's name, units, dtype and axis, and the checkpoint whose states the recording
    object reads (``Recording.at_checkpoint``; none for the main states). Cheap: one ``stat``, no data
    read.
    """
    st = os.stat(recording.path)
    taps = [[t.name, int(t.units), str(t.dtype), t.axis] for t in recording.taps.values()]
    parts = {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "created": str(recording.provenance.get("created", "")),
        "n_positions": int(recording.n_positions),
        "taps": taps,
    }
    checkpoint = getattr(recording, "checkpoint", None)
    if checkpoint is not None:  # so that the main states keep the fingerprints of caches already built
        parts["checkpoint"] = str(checkpoint)
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def view_parts(recording) -> tuple:
    """Extra ``cache_name`` parts for a recording object that reads one checkpoint's states
    (``Recording.at_checkpoint``), so that checkpoints keep caches of their own; none for the main
    states."""
    checkpoint = getattr(recording, "checkpoint", None)
    return () if checkpoint is None else (f"checkpoint={checkpoint}",)


def cache_name(prefix: str, *parts, suffix: str) -> str:
    """A file name ``<prefix>-<readable parts>-<hash of parts><suffix>`` safe on every platform."""
    readable = "-".join(_safe(str(p)) for p in parts)[:80]
    digest = hashlib.sha256(json.dumps([repr(p) for p in parts]).encode()).hexdigest()[:12]
    return f"{prefix}-{readable}-{digest}{suffix}" if readable else f"{prefix}-{digest}{suffix}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block succeeds.

    On any exception (including ``Cancelled``) the temporary file is removed and ``path`` is left as
    it was. The file is not fsync'd: it is a cache, and an incomplete one only costs a rebuild.
    """
    final = Path(path)
    temp = final.with_name(f".{final.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    try:
        yield temp
        os.replace(temp, final)
    except BaseException:
        discard(temp)
        raise


class CacheDamaged(ValueError):
    """A cache file that cannot be trusted (a checksum or shape does not match); a loader raises it."""


def load_cached(path: str | os.PathLike, read: Callable[[Path], T | None], what: str) -> T | None:
    """The one loader policy for every cache kind: ``read(path)`` or a miss (None).

    ``read`` returns the cached value, None when the file is *stale* (built from other inputs), or
    raises anything when the file is damaged. A stale or damaged file is removed and noted in the
    ``lstmviz.cache`` log (a damaged one as a warning); the caller then rebuilds it. ``what`` names the
    cache kind in the note (``"match index"``).
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        value = read(path)
    except Exception as exc:  # noqa: BLE001 - whatever a damaged file makes a reader raise is a miss
        log.warning("%s cache %s cannot be read (%s); it is rebuilt", what, path, _reason(exc))
        discard(path)
        return None
    if value is None:
        log.info("%s cache %s was built from other inputs; it is rebuilt", what, path)
        discard(path)
    return value


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def discard(path: str | os.PathLike) -> None:
    """Remove a cache file that is stale, corrupt or half-written; never raises."""
    with contextlib.suppress(OSError):
        os.unlink(path)


def remove_stale_temps(directory: str | os.PathLike, max_age: float = STALE_TEMP_SECONDS) -> None:
    """Remove temporary cache files in ``directory`` left behind by killed processes."""
    now = time.time()
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(OSError):
                    if now - entry.stat().st_mtime > max_age:
                        os.unlink(entry.path)


def _make_dir(path: Path) -> bool:
    """Create ``path`` if needed; True if it is a directory this process can write into."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def _path_hash(path: Path) -> str:
    return hashlib.sha256(os.fsencode(path)).hexdigest()[:16]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+=-]+", "_", text).strip("._") or "x"
