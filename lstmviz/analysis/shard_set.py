"""A recording split into shards: which files, which items, and where their positions go.

A *shard* is an ordinary, complete recording of a contiguous item range ``[start, stop)`` of a
corpus, by the same model over the same dataset; the shards in order concatenate to corpus order and
no item spans two shards. A *logical* recording names its shards in the root attribute
``lstmviz_shards``, a JSON list in corpus order::

    [{"file": "<path relative to the logical file's folder>", "items": [start, stop], "sha256": "..."}]

``open_shards`` takes a logical file, an ordinary file (one shard: itself) or an explicit list of
shard files in corpus order, and returns a ``ShardSet``: only paths and numbers (picklable, no open
file), so that tasks on other processes or machines get it as an argument and open what they read.

Global coordinates: shard ``j`` holds the items ``items[j]`` and, on every axis, the rows
``[position_offsets(axis)[j], position_offsets(axis)[j + 1])`` of the concatenation.

Checks before anything is used (``ShardError``, one sentence naming the file): a shard file that does
not exist; a shard whose sha256 differs from the table's (hashing a large file on every query would
cost more than the query, so a shard that hashed correctly once is remembered, keyed by its path,
size and modification time, in ``verified-sha256.json`` in its cache folder; a file changed since is
hashed again); a shard with other items than the table says; a shard recorded by another model, over
another dataset or vocabulary, or with other taps or annotations than the first shard.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstmviz.analysis import cache as _cache
from lstmviz.errors import ExpectedError
from lstmviz.recording import format as fmt
from lstmviz.recording.format import RecordingError
from lstmviz.recording.shards import file_sha256, read_shard_table

SHARDS_ATTR = fmt.SHARDS_ATTR
VERIFIED_NAME = "verified-sha256.json"
#: provenance entries that must agree between shards (those present in either)
_SAME_PROVENANCE = ("engine", "config", "model", "checkpoint", "sha256", "dataset", "split", "dataset_options",
                    "signals")


class ShardError(ExpectedError):
    """A shard cannot be used (missing, changed, or from another recording); the text says which and why."""


@dataclass(frozen=True)
class Shard:
    """One shard: its file, its items in the corpus, and its rows per axis."""

    path: str
    items: tuple[int, int]
    rows: dict  # axis -> rows of the shard on that axis
    item_offsets: dict  # axis -> int64 [n_items + 1], the shard's own offsets
    fingerprint: str  # cache.recording_fingerprint of the file when the set was opened

    @property
    def n_items(self) -> int:
        return self.items[1] - self.items[0]


@dataclass(frozen=True)
class ShardSet:
    """Shards in corpus order (module docstring); ``source`` is the logical file, or None for a list."""

    shards: tuple[Shard, ...]
    source: str | None
    taps: dict  # name -> TapInfo of the first shard (every shard has the same)

    def __len__(self) -> int:
        return len(self.shards)

    @property
    def paths(self) -> list[str]:
        return [s.path for s in self.shards]

    @property
    def n_items(self) -> int:
        return self.shards[-1].items[1]

    def position_offsets(self, axis: str = "positions") -> np.ndarray:
        """int64 ``[n_shards + 1]``: shard ``j`` holds rows ``[o[j], o[j + 1])`` of ``axis``."""
        return np.concatenate([[0], np.cumsum([s.rows[axis] for s in self.shards])]).astype(np.int64)

    def item_starts(self) -> np.ndarray:
        """int64 ``[n_shards + 1]``: shard ``j`` holds items ``[s[j], s[j + 1])``."""
        return np.array([s.items[0] for s in self.shards] + [self.n_items], np.int64)

    def axis_length(self, axis: str = "positions") -> int:
        return int(self.position_offsets(axis)[-1])

    def item_offsets(self, axis: str = "positions") -> np.ndarray:
        """int64 ``[n_items + 1]``: the item offsets of the concatenation on ``axis``."""
        base = self.position_offsets(axis)
        parts = [np.zeros(1, np.int64)]
        for j, s in enumerate(self.shards):
            parts.append(s.item_offsets[axis][1:] + base[j])
        return np.concatenate(parts)

    def tap(self, name: str):
        info = self.taps.get(name)
        if info is None:
            raise KeyError(f"the shards have no tap {name!r} (taps: {', '.join(self.taps) or 'none'})")
        return info

    def fingerprint(self) -> str:
        """Changes when any shard file changes (for caches derived from all shards)."""
        text = json.dumps([[s.path, s.fingerprint] for s in self.shards])
        return hashlib.sha256(text.encode()).hexdigest()

    def cache_home(self) -> str:
        """The file whose cache folder holds caches derived from all shards (the logical file, else
        the first shard)."""
        return self.source or self.shards[0].path


def read_table(path: str | os.PathLike) -> list[dict] | None:
    """The shard table of ``path`` (``[{"file", "items", "sha256"}]``, files resolved against its folder),
    or None for an ordinary file; the table is parsed and checked by the recording package
    (:func:`lstmviz.recording.shards.read_shard_table`: relative names below the logical file's folder,
    item blocks in order), whose ``RecordingError`` becomes a ``ShardError``."""
    try:
        entries = read_shard_table(path)
    except RecordingError as e:
        raise ShardError(str(e)) from None
    if not entries:
        return None
    return [{"file": str(e.path.resolve()), "items": tuple(e.items), "sha256": e.sha256.lower()} for e in entries]


def open_shards(source, *, verify: bool = True) -> ShardSet:
    """The ``ShardSet`` of a logical file, an ordinary file, or a list of shard files in corpus order.

    ``verify``: check each shard's sha256 against the logical file's table (remembered per file,
    module docstring). Raises ``ShardError`` / ``RecordingError`` naming the file and the problem.
    """
    if isinstance(source, (str, os.PathLike)):
        paths = [source]
    else:
        paths = list(source)
        if not paths:
            raise ShardError("no shard files given")
    for p in paths:
        if not Path(p).is_file():
            raise ShardError(f"no such file: {p}")
    entries = None
    logical = None
    if len(paths) == 1:
        entries = read_table(paths[0])
        if entries is not None:
            logical = str(Path(paths[0]).resolve())
    if entries is None:
        for p in paths if len(paths) > 1 else []:
            if read_table(p) is not None:
                raise ShardError(f"{p} is a logical recording (it names shards of its own); give it alone, or "
                                 f"give its shard files")
        entries = [{"file": str(Path(p).resolve()), "items": None, "sha256": ""} for p in paths]
    _check_table(entries, logical)
    for e in entries:
        if not Path(e["file"]).is_file():
            raise ShardError(f"the shard {e['file']} (items {_items(e['items'])}) named by {logical} does not "
                             f"exist; shards are looked up relative to the logical file's folder")
    if verify:
        for e in entries:
            if e["sha256"]:
                verify_sha256(e["file"], e["sha256"], logical)
    shards, taps, first = [], None, None
    start = 0
    for e in entries:
        shard, meta = _read_shard(e["file"], start)
        if e["items"] is not None and tuple(e["items"]) != shard.items:
            raise ShardError(f"{e['file']} holds {shard.n_items} items, but {logical} says it holds items "
                             f"{_items(e['items'])}; the shard does not belong to this recording")
        if first is None:
            first, taps = meta, meta["taps"]
        else:
            _check_same(first, meta)
        shards.append(shard)
        start = shard.items[1]
    return ShardSet(tuple(shards), logical, dict(taps))


def verify_sha256(path: str, expected: str, logical: str | None = None) -> None:
    """Check the sha256 of ``path`` (remembered by path, size and modification time; module docstring)."""
    st = os.stat(path)
    stamp = {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    record = _cache.cache_dir_for(path) / VERIFIED_NAME
    try:
        known = json.loads(record.read_text())
        if {k: known.get(k) for k in stamp} == stamp and known.get("sha256") == expected:
            return
    except (OSError, ValueError, AttributeError):
        pass
    got = file_sha256(path)
    if got != expected:
        raise ShardError(f"{path}: its sha256 is {got[:16]}..., but {logical or 'the shard table'} says "
                         f"{expected[:16]}...; the shard was changed or replaced after it was recorded")
    try:
        with _cache.atomic_path(record) as temp:
            temp.write_text(json.dumps({**stamp, "sha256": got}))
    except OSError:  # an unwritable cache folder costs a hash next time, nothing more
        pass


def _check_table(entries: list[dict], logical: str | None) -> None:
    expect = 0
    for e in entries:
        if e["items"] is None:
            continue
        a, b = e["items"]
        if a != expect or b <= a:
            raise ShardError(f"{logical}: the shard table must list item ranges in corpus order without gaps "
                             f"or overlaps (from 0), but {Path(e['file']).name} has items {_items(e['items'])} "
                             f"where {expect} was expected")
        expect = b


def _items(items) -> str:
    return "?" if items is None else f"{items[0]}..{items[1] - 1}"


def _read_shard(path: str, start: int) -> tuple[Shard, dict]:
    from lstmviz.recording import open_recording

    with open_recording(path) as rec:
        axes = list(rec.axes)
        offsets = {axis: np.asarray(rec.axis_offsets(axis), np.int64).copy() for axis in axes}
        shard = Shard(path=str(Path(path).resolve()), items=(start, start + rec.n_items),
                      rows={axis: int(o[-1]) for axis, o in offsets.items()}, item_offsets=offsets,
                      fingerprint=_cache.recording_fingerprint(rec))
        meta = {
            "path": path,
            "vocab": list(rec.vocab),
            "taps": dict(rec.taps),
            "tap_shapes": {t.name: (t.units, str(t.dtype), t.axis) for t in rec.taps.values()},
            "annotations": {a.name: (a.kind, a.level, tuple(a.labels or ())) for a in rec.annotations.values()},
            "axes": axes,
            "provenance": {k: rec.provenance.get(k) for k in _SAME_PROVENANCE},
            "checkpoints": [c.name for c in rec.checkpoints],
        }
    return shard, meta


def _check_same(first: dict, other: dict) -> None:
    """``ShardError`` when ``other`` was not recorded like ``first`` (module docstring)."""
    a, b = first["path"], other["path"]
    for key, field in (("provenance", None), ("vocab", "vocabulary"), ("tap_shapes", "taps"),
                       ("annotations", "annotations"), ("axes", "axes"), ("checkpoints", "checkpoints")):
        if first[key] == other[key]:
            continue
        if key == "provenance":
            name = next(k for k in _SAME_PROVENANCE if first[key].get(k) != other[key].get(k))
            raise ShardError(f"{b} was not recorded like {a}: its provenance {name!r} is "
                             f"{_short(other[key].get(name))}, not {_short(first[key].get(name))}; every shard "
                             f"must come from the same model over the same dataset")
        raise ShardError(f"{b} has other {field} than {a}; every shard must come from the same model over the "
                         f"same dataset")


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."

