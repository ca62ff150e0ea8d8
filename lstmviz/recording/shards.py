"""Sharded recordings: names, the shard table, checksums, and the checks made when a logical file is opened.

A recording made by N processes (``torchrun ... -m lstmviz record``, ``docs/scale.md``) is N *shards* plus
one *logical file*:

* shard ``r`` is an ordinary, complete recording (``RecordingWriter``, atomic) of the items
  ``[start, stop)`` of block ``r`` (contiguous blocks in rank order, so the shards in rank order are the
  items in corpus order), stored as ``<out stem>.shards/shard-<r:05d>-of-<N:05d>.h5`` beside the logical
  file, with a checksum file ``<shard>.sha256`` (``sha256sum`` format) written after the shard was renamed
  into place: a shard without it is one whose rank did not finish;
* the logical file is itself a recording: its tap datasets are HDF5 virtual datasets over the shards'
  tap datasets (no copy), its small datasets (offsets, tokens, annotations, geometry) are copied, and its
  root attribute ``lstmviz_shards`` is the JSON shard table
  ``[{"file": <path relative to the logical file's directory>, "items": [start, stop], "sha256": <hex>}, ...]``
  in corpus order (:func:`read_shard_table`).

This module is Qt-free and torch-free; the logical file is written by :mod:`.logical_file`, the
processes are coordinated by :mod:`.distributed`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import h5py
import numpy as np

from lstmviz.recording import format as fmt
from lstmviz.recording.format import RecordingError

SHARDS_ATTR = fmt.SHARDS_ATTR
"""Root attribute of a logical file: the JSON shard table."""

SHARDS_PROVENANCE = "sharded"
"""Provenance key of a logical file: ranks, and per shard its file, items, sha256, rows and provenance CRC-32."""

SHARD_PROVENANCE = "shard"
"""Provenance key of a shard: its rank, the number of ranks, its items and the settings of the run."""

CHECKSUM_SUFFIX = ".sha256"
_SHARD_NAME = re.compile(r"^shard-(?P<rank>[0-9]{5})-of-(?P<world>[0-9]{5})\.h5$")


@dataclass(frozen=True)
class ShardEntry:
    """One shard of a logical file: its absolute path, its items ``(start, stop)`` and its hex sha256."""

    path: Path
    items: tuple[int, int]
    sha256: str


# --- names -----------------------------------------------------------------------------------------

def shard_directory(out: str | os.PathLike) -> Path:
    """``<out stem>.shards`` beside the logical file ``out`` (``run/F.h5`` -> ``run/F.shards``)."""
    out = Path(out)
    return out.with_name(out.stem + ".shards")


def shard_name(rank: int, world: int) -> str:
    return f"shard-{rank:05d}-of-{world:05d}.h5"


def shard_path(out: str | os.PathLike, rank: int, world: int) -> Path:
    return shard_directory(out) / shard_name(rank, world)


def checksum_path(shard: str | os.PathLike) -> Path:
    """The checksum file of a shard: ``<shard>.sha256``."""
    shard = Path(shard)
    return shard.with_name(shard.name + CHECKSUM_SUFFIX)


def item_block(total: int, rank: int, world: int) -> tuple[int, int]:
    """Items ``[start, stop)`` of rank ``rank`` of ``world``: contiguous blocks whose sizes differ by at most one."""
    if world > total:
        raise ValueError(f"{world} processes for {total} items: each process records at least one item, so use "
                         f"at most {total} processes (--nproc-per-node) or record more items")
    return rank * total // world, (rank + 1) * total // world


# --- checksums -------------------------------------------------------------------------------------

def file_sha256(path: str | os.PathLike, block: int = 8 << 20) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksum(shard: Path, sha256: str) -> Path:
    """Write ``<shard>.sha256`` (``sha256sum -c`` reads it) atomically; returns its path."""
    target = checksum_path(shard)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with open(temp, "w", encoding="utf-8") as f:
        f.write(f"{sha256}  {shard.name}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, target)
    return target


def read_checksum(shard: Path) -> str | None:
    """The sha256 in ``<shard>.sha256``, or None when there is none (or it is not one)."""
    try:
        text = checksum_path(shard).read_text(encoding="utf-8")
    except (OSError, UnicodeError):
        return None
    parts = text.split()
    if len(parts) != 2 or parts[1] != shard.name or not re.fullmatch(r"[0-9a-f]{64}", parts[0]):
        return None
    return parts[0]


# --- the shard table -------------------------------------------------------------------------------

def shard_table_json(entries: list[ShardEntry], directory: Path) -> str:
    """The ``lstmviz_shards`` attribute for a logical file in ``directory``."""
    rows = [{"file": PurePosixPath(Path(os.path.relpath(e.path, directory))).as_posix(),
             "items": [int(e.items[0]), int(e.items[1])], "sha256": e.sha256} for e in entries]
    return json.dumps(rows)


def parse_shard_table(text, path: str | os.PathLike) -> list[ShardEntry]:
    """The entries of a shard table read from the logical file ``path``, checked; ``RecordingError`` if malformed.

    A file name must be relative, without ``..``: a logical file refers only to files below its own folder.
    """
    path = Path(path)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        rows = json.loads(str(text))
    except ValueError:
        rows = None
    if not isinstance(rows, list) or not rows:
        raise RecordingError(path, f"its {SHARDS_ATTR!r} attribute is not a non-empty JSON list of shards; the file "
                                   f"is damaged")
    entries, expected = [], 0
    for k, row in enumerate(rows):
        ok = (isinstance(row, dict) and isinstance(row.get("file"), str) and isinstance(row.get("sha256"), str)
              and isinstance(row.get("items"), list) and len(row["items"]) == 2
              and all(isinstance(x, int) and not isinstance(x, bool) for x in row["items"]))
        if not ok:
            raise RecordingError(path, f"shard {k} of its {SHARDS_ATTR!r} table is not "
                                       f'{{"file": ..., "items": [start, stop], "sha256": ...}}; the file is damaged')
        name = PurePosixPath(row["file"])
        if name.is_absolute() or ".." in name.parts or not name.parts:
            raise RecordingError(path, f"shard {k} is {row['file']!r}; a logical file names its shards by paths "
                                       f"below its own folder (no absolute path, no '..'), so it is refused")
        start, stop = row["items"]
        if start != expected or stop <= start:
            raise RecordingError(path, f"shard {k} holds items {start}..{stop}, expected a block starting at item "
                                       f"{expected}; the shards must cover the items in order, the file is damaged")
        expected = stop
        entries.append(ShardEntry((path.parent / Path(*name.parts)).absolute(), (start, stop), row["sha256"]))
    return entries


def read_shard_table(path: str | os.PathLike) -> list[ShardEntry]:
    """The shards of the logical file ``path`` in corpus order; ``[]`` for an ordinary recording."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get(SHARDS_ATTR)
    except OSError as e:
        raise RecordingError(path, f"cannot be opened as HDF5 ({e})") from None
    return [] if raw is None else parse_shard_table(raw, path)


def is_sharded(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a logical file over shards."""
    return bool(read_shard_table(path))


def source_names(f: h5py.File, path: str | os.PathLike) -> set[str] | None:
    """The file names virtual datasets of ``f`` may read (as its shard table stores them); None if not sharded.
    ``RecordingError`` for a malformed table or one naming a file outside the logical file's folder."""
    raw = f.attrs.get(SHARDS_ATTR)
    if raw is None:
        return None
    parse_shard_table(raw, path)
    return {row["file"] for row in json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))}


def is_tap_path(where: str) -> bool:
    """``/taps/<tap>`` or ``/checkpoints/<name>/taps/<tap>``: the datasets a logical file maps onto its shards."""
    parts = where.strip("/").split("/")
    return (len(parts) >= 2 and parts[0] == fmt.TAPS) or (
        len(parts) >= 4 and parts[0] == fmt.CHECKPOINTS and parts[2] == fmt.TAPS)


# --- opening a logical file ------------------------------------------------------------------------

def check_shards(f: h5py.File, path: str | os.PathLike) -> None:
    """On open of a logical file: every shard is there, is a finished recording, is the one the logical file
    was made from (its provenance's CRC-32) and has the rows its virtual datasets map; ``RecordingError`` if not.

    HDF5 reads a missing source of a virtual dataset as fill values without an error, so nothing is read from
    a logical file before this passed. The shards' bytes are not hashed here (that is a read of the whole
    recording); :func:`verify_shards` does it.
    """
    path = Path(path)
    if os.environ.get("HDF5_VDS_PREFIX"):
        raise RecordingError(path, "is a logical file over shards, and HDF5_VDS_PREFIX is set, which makes HDF5 look "
                                   "for the shards elsewhere; unset HDF5_VDS_PREFIX to open it")
    entries = parse_shard_table(f.attrs[SHARDS_ATTR], path)
    details = _sharded_provenance(f, path)
    if len(details) != len(entries):
        raise RecordingError(path, f"its provenance describes {len(details)} shards and its shard table "
                                   f"{len(entries)}; the file is damaged")
    from lstmviz.regular_files import input_problem

    for k, (entry, detail) in enumerate(zip(entries, details)):
        where = f"shard {k} ({_shown(entry.path, path)})"
        problem = input_problem(entry.path, "shard")
        if problem is not None:
            raise RecordingError(path, f"is a logical file over shards, and {where}: {problem}; put the shards folder "
                                       f"back beside it (it must move with the logical file) or record again")
        try:
            with h5py.File(entry.path, "r") as s:
                _check_shard(s, detail, where, f)
        except RecordingError:
            raise
        except _ShardProblem as e:
            raise RecordingError(path, f"is a logical file over shards, and {where} {e}") from None
        except Exception as e:
            raise RecordingError(path, f"is a logical file over shards, and {where} cannot be opened ({e}); "
                                       f"record again") from None


class _ShardProblem(Exception):
    pass


def _check_shard(s: h5py.File, detail: dict, where: str, f: h5py.File) -> None:
    if s.attrs.get(fmt.MARKER_ATTR) not in (fmt.MARKER_VALUE, fmt.MARKER_VALUE.encode()) or fmt.INCOMPLETE_ATTR in s.attrs:
        raise _ShardProblem("is not a finished recording; record again")
    crc = s[fmt.PROVENANCE].attrs.get(fmt.CHECKSUM_ATTR) if fmt.PROVENANCE in s else None
    if crc is None or int(crc) != int(detail.get("provenance_crc32", -1)):
        raise _ShardProblem("is not the shard this logical file was made from (it was recorded again or replaced "
                            "since); run the recording again to rebuild the logical file")
    for axis, rows in (detail.get("rows") or {}).items():
        offsets = s.get(fmt.axis_offsets_path(axis))
        if offsets is None or offsets.shape != (detail["items"][1] - detail["items"][0] + 1,) or int(offsets[-1]) != rows:
            raise _ShardProblem(f"does not have the items and rows on axis {axis!r} the logical file maps; record again")


def _sharded_provenance(f: h5py.File, path: Path) -> list[dict]:
    try:
        raw = f[fmt.PROVENANCE][()]
        meta = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))
        shards = meta[SHARDS_PROVENANCE]["shards"]
        if isinstance(shards, list) and all(isinstance(x, dict) for x in shards):
            return shards
    except Exception:
        pass
    raise RecordingError(path, f"has a shard table but no provenance[{SHARDS_PROVENANCE!r}] describing its shards; the "
                               f"file is damaged")


def _shown(shard: Path, logical: Path) -> str:
    try:
        return os.path.relpath(shard, logical.parent)
    except ValueError:
        return str(shard)


def verify_shards(path: str | os.PathLike) -> list[str]:
    """Hash every shard of the logical file ``path``; the problems in words (``[]``: every shard is intact)."""
    problems = []
    for k, entry in enumerate(read_shard_table(path)):
        try:
            actual = file_sha256(entry.path)
        except OSError as e:
            problems.append(f"shard {k} ({entry.path}) cannot be read: {e.strerror or e}")
            continue
        if actual != entry.sha256:
            problems.append(f"shard {k} ({entry.path}) has sha256 {actual[:12]}..., the logical file recorded "
                            f"{entry.sha256[:12]}...: it changed since the logical file was written")
    return problems


def parse_shard_name(name: str) -> tuple[int, int] | None:
    """``(rank, world)`` of a shard file name, or None."""
    m = _SHARD_NAME.match(name)
    return None if m is None else (int(m["rank"]), int(m["world"]))


def rows_per_axis(s: h5py.File) -> dict[str, int]:
    """Rows of every axis of an open recording (the last item offset)."""
    return {axis: int(np.asarray(s[fmt.axis_offsets_path(axis)][-1])) for axis in s[fmt.AXES]}
