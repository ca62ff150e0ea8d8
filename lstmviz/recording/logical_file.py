"""Write the logical file of a sharded recording: one recording over its shards (``shards.py``).

Every dataset of the shards is classified by its place in the format (``docs/format.md``):

* taps (``/taps/<tap>``, ``/checkpoints/<name>/taps/<tap>``): an HDF5 virtual dataset whose block of rows
  ``k`` maps shard ``k``'s dataset of the same name, read by HDF5 from the shard file named relative to the
  logical file (HDF5 looks for a relative source name beside the file holding the virtual dataset, so the
  pair opens from any working directory and after the folder is moved); hard links stay hard links;
* ``item_offsets`` and ``edge_offsets``: concatenated, each shard's shifted by the rows before it;
* ``/vocab``, annotation ``labels``, set ``members``: the same in every shard (checked), copied once;
* ``/provenance``: shard 0's, with the ``shard`` entry replaced by ``sharded`` (ranks, and per shard its file,
  items, sha256, rows per axis and provenance CRC-32);
* everything else (tokens, annotation values, geometry: per row, per item or per edge, item-local by design)
  concatenated as it is.

The CRC-32 attributes are computed again over what the logical file holds. Like ``RecordingWriter``, the
file is filled under a temporary name and renamed into place when complete, so there is never a logical
file that looks complete and is not.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import h5py
import numpy as np

from lstmviz.recording import format as fmt
from lstmviz.recording.shards import (
    SHARD_PROVENANCE,
    SHARDS_ATTR,
    SHARDS_PROVENANCE,
    ShardEntry,
    is_tap_path,
    rows_per_axis,
    shard_table_json,
)
from lstmviz.recording.writer import HOST_TAG, fsync_directory, fsync_path, remove_stale_temp_files

_STR = h5py.string_dtype("utf-8")
_SHIFTED = (fmt.OFFSETS, fmt.EDGE_OFFSETS)
_COPY_BLOCK_ROWS = 1 << 20


class ShardMismatch(ValueError):
    """The shards are not parts of one recording (other taps, vocabulary, annotations, settings)."""


def write_logical(out: str | os.PathLike, entries: list[ShardEntry], extra: dict | None = None) -> Path:
    """Write the logical file ``out`` over the shards ``entries`` (in corpus order, sha256 already checked).

    ``extra``: more ``provenance["sharded"]`` keys. Returns ``out``. ``ShardMismatch`` when the shards differ in
    anything but their items.
    """
    out = Path(out)
    remove_stale_temp_files(out)
    temp = out.with_name(fmt.temp_name(out.name, os.getpid(), HOST_TAG, secrets.token_hex(4)))
    with contextlib.ExitStack() as stack:
        shards = [stack.enter_context(h5py.File(e.path, "r")) for e in entries]
        _check_alike(shards, entries)
        try:
            with h5py.File(temp, "w", libver=fmt.LIBVER) as f:
                f.attrs[fmt.INCOMPLETE_ATTR] = True
                _fill(f, shards, entries, out.parent, extra or {})
                del f.attrs[fmt.INCOMPLETE_ATTR]
                f.attrs[fmt.MARKER_ATTR] = fmt.MARKER_VALUE
                f.attrs[fmt.VERSION_ATTR] = np.int64(shards[0].attrs[fmt.VERSION_ATTR])
                f.attrs[fmt.TEXT_CHECKSUM_ATTR] = np.int64(fmt.crc32_of_text_attributes(f))
            fsync_path(temp)
            os.replace(temp, out)
            fsync_directory(out.parent)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temp)
            raise
    return out


def _fill(f: h5py.File, shards: list[h5py.File], entries: list[ShardEntry], directory: Path, extra: dict) -> None:
    first = shards[0]
    for key, value in first.attrs.items():
        if key not in (fmt.MARKER_ATTR, fmt.VERSION_ATTR, fmt.TEXT_CHECKSUM_ATTR, fmt.INCOMPLETE_ATTR):
            f.attrs[key] = value
    f.attrs.create(SHARDS_ATTR, shard_table_json(entries, directory), dtype=_STR)
    names = [e.path for e in entries]
    sources = [PurePosixPath(Path(os.path.relpath(p, directory))).as_posix() for p in names]
    seen: dict = {}  # object id in shard 0 -> its first path (hard links)
    links: list[bytes] = []
    first.id.links.visit(links.append)
    for raw in links:
        name = raw.decode("utf-8")
        obj = first[name]
        if isinstance(obj, h5py.Group):
            group = f.require_group(name)
            for key, value in obj.attrs.items():
                group.attrs[key] = value
            continue
        if obj.id in seen:
            f[name] = f[seen[obj.id]]
            continue
        seen[obj.id] = name
        where = "/" + name
        if is_tap_path(where):
            _virtual(f, name, shards, sources)
        elif name == fmt.PROVENANCE:
            _provenance(f, shards, entries, directory, extra)
        elif name.rsplit("/", 1)[-1] in _SHIFTED:
            _concatenate(f, name, shards, shift=True)
        elif _is_global(name):
            _copy(f, name, first)
        else:
            _concatenate(f, name, shards, shift=False)


def _is_global(name: str) -> bool:
    parts = name.split("/")
    return (name == fmt.VOCAB or (parts[0] == fmt.ANNOTATIONS and parts[-1] == fmt.LABELS)
            or (parts[0] == fmt.AXES and parts[-1] == "members"))


def _attrs(target: h5py.Dataset, source: h5py.Dataset) -> None:
    for key, value in source.attrs.items():
        if key != fmt.CHECKSUM_ATTR:
            target.attrs[key] = value


def _virtual(f: h5py.File, name: str, shards: list[h5py.File], sources: list[str]) -> None:
    datasets = [s[name] for s in shards]
    tail = datasets[0].shape[1:]
    total = sum(d.shape[0] for d in datasets)
    layout = h5py.VirtualLayout(shape=(total, *tail), dtype=datasets[0].dtype)
    row = 0
    for source, d in zip(sources, datasets):
        layout[row:row + d.shape[0]] = h5py.VirtualSource(source, "/" + name, shape=d.shape, dtype=d.dtype)
        row += d.shape[0]
    # NaN where a source cannot be read: never silently zero (the reader refuses missing shards before that)
    ds = f.create_virtual_dataset(name, layout, fillvalue=np.nan)
    _attrs(ds, datasets[0])


def _copy(f: h5py.File, name: str, first: h5py.File) -> None:
    source = first[name]
    ds = f.create_dataset(name, data=source[()], dtype=source.dtype)
    for key, value in source.attrs.items():
        ds.attrs[key] = value


def _concatenate(f: h5py.File, name: str, shards: list[h5py.File], *, shift: bool) -> None:
    datasets = [s[name] for s in shards]
    first = datasets[0]
    lengths = [d.shape[0] - (1 if shift and k else 0) for k, d in enumerate(datasets)]
    ds = f.create_dataset(name, shape=(sum(lengths), *first.shape[1:]), dtype=first.dtype)
    _attrs(ds, first)
    crc, row, base = 0, 0, 0
    strings = first.dtype.kind == "O" or h5py.check_string_dtype(first.dtype) is not None
    for k, d in enumerate(datasets):
        skip = 1 if shift and k else 0
        for a in range(skip, d.shape[0], _COPY_BLOCK_ROWS):
            values = d[a:min(d.shape[0], a + _COPY_BLOCK_ROWS)]
            if strings:
                values = np.array([v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v for v in values],
                                  dtype=object)
            elif shift:
                values = values + base
            ds[row:row + len(values)] = values
            row += len(values)
            if fmt.CHECKSUM_ATTR in first.attrs:
                crc = (fmt.crc32_of_strings(values, crc) if strings
                       else fmt.crc32_of_array(np.asarray(values, dtype=ds.dtype), crc))
        if shift:
            base += int(d[-1])
    if fmt.CHECKSUM_ATTR in first.attrs:
        ds.attrs[fmt.CHECKSUM_ATTR] = np.int64(crc)


def _provenance(f: h5py.File, shards: list[h5py.File], entries: list[ShardEntry], directory: Path,
                extra: dict) -> None:
    meta = _read_provenance(shards[0])
    meta.pop(SHARD_PROVENANCE, None)
    details = []
    for s, e in zip(shards, entries):
        details.append({
            "file": PurePosixPath(Path(os.path.relpath(e.path, directory))).as_posix(),
            "items": [int(e.items[0]), int(e.items[1])],
            "sha256": e.sha256,
            "rows": rows_per_axis(s),
            "provenance_crc32": int(s[fmt.PROVENANCE].attrs[fmt.CHECKSUM_ATTR]),
        })
    meta[SHARDS_PROVENANCE] = {"ranks": len(entries), **extra, "shards": details}
    meta["created"] = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    text = json.dumps(meta, ensure_ascii=False)
    ds = f.create_dataset(fmt.PROVENANCE, data=text, dtype=_STR)
    ds.attrs[fmt.CHECKSUM_ATTR] = np.int64(fmt.crc32_of_strings([text]))


def _read_provenance(s: h5py.File) -> dict:
    raw = s[fmt.PROVENANCE][()]
    return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))


def _structure(s: h5py.File) -> dict[str, tuple]:
    """Everything of a shard that must be the same in every shard: objects, dtypes, widths, attributes."""
    out: dict[str, tuple] = {"/": tuple(sorted((k, _plain(v)) for k, v in s.attrs.items()
                                             if k not in (fmt.TEXT_CHECKSUM_ATTR,)))}
    links: list[bytes] = []
    s.id.links.visit(links.append)
    for raw in links:
        name = raw.decode("utf-8")
        obj = s[name]
        attrs = tuple(sorted((k, _plain(v)) for k, v in obj.attrs.items() if k != fmt.CHECKSUM_ATTR))
        if isinstance(obj, h5py.Group):
            out[name] = ("group", attrs)
        else:
            out[name] = ("dataset", str(obj.dtype), obj.shape[1:] if obj.shape else None, attrs)
    return out


def _plain(value):
    if isinstance(value, np.ndarray):
        return tuple(_plain(x) for x in value.tolist()) if value.ndim else _plain(value.item())
    if isinstance(value, (list, tuple)):
        return tuple(_plain(x) for x in value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _check_alike(shards: list[h5py.File], entries: list[ShardEntry]) -> None:
    reference = _structure(shards[0])
    settings = _read_provenance(shards[0]).get(SHARD_PROVENANCE, {}).get("settings")
    for k, s in enumerate(shards[1:], 1):
        other = _structure(s)
        if other != reference:
            names = sorted(set(reference) ^ set(other)) or [n for n in reference if reference[n] != other[n]]
            raise ShardMismatch(f"shard {k} ({entries[k].path.name}) and shard 0 are not parts of one recording: "
                                f"they differ in {names[0]!r} (other taps, annotations, vocabulary or layout)")
        for name in [n for n in reference if _is_global(n)]:
            if not np.array_equal(np.asarray(shards[0][name][()], dtype=object), np.asarray(s[name][()], dtype=object)):
                raise ShardMismatch(f"shard {k} ({entries[k].path.name}) and shard 0 have a different {name!r}; they "
                                    f"are not parts of one recording")
        theirs = _read_provenance(s).get(SHARD_PROVENANCE, {}).get("settings")
        if theirs != settings:
            raise ShardMismatch(f"shard {k} ({entries[k].path.name}) was recorded with other settings than shard 0; "
                                f"record again")
