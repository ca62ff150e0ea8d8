"""HDF5-level checks of a recording before its layout is read: links, storage and declared sizes.

HDF5 can make a reader open other files: external links, virtual datasets (values mapped from other
files) and external raw storage (a dataset's bytes kept in any file by name, a FIFO included). The
recording format defines one of them: the taps of a logical file over shards are virtual datasets
whose sources are the shards named in its shard table (``shards.py``); any other is refused, as are
soft links (the format names every object by a hard link). HDF5 also lets a chunked dataset declare a shape far beyond the
bytes stored (unwritten chunks read as zeros): a dataset must store what it declares.

One visit of every link in the file, with low-level h5py calls: nothing is followed, no data is read.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import h5py
from h5py import h5d, h5l, h5o

from lstmviz.recording import shards
from lstmviz.recording.format import RecordingError


def check_objects(f: h5py.File, path: str | Path) -> None:
    """Raise ``RecordingError`` for a link, virtual dataset, external storage or sparse dataset in ``f``."""
    file_size = _file_size(f, path)
    problems: list[str] = []
    shard_files = shards.source_names(f, path)  # None: not a logical file, no virtual dataset is allowed

    def visit(name: bytes, info) -> int | None:
        where = "/" + name.decode("utf-8", "replace")
        try:  # an exception must not escape into HDF5's C iteration
            problem = _link_problem(f, name, where, info)
            if problem is None and info.type == h5l.TYPE_HARD:
                problem = _object_problem(f, name, where, file_size, shard_files)
        except Exception as e:
            problem = f"the object {where!r} cannot be read ({hdf5_reason(e)}); the file is damaged"
        if problem is not None:
            problems.append(problem)
            return 1  # stop the visit: one problem is enough to refuse the file
        return None

    f.id.links.visit(visit, info=True)
    if problems:
        raise RecordingError(path, problems[0])


def _link_problem(f: h5py.File, name: bytes, where: str, info) -> str | None:
    if info.type == h5l.TYPE_HARD:
        return None
    if info.type == h5l.TYPE_SOFT:
        target = f.id.links.get_val(name).decode("utf-8", "replace")
        return (f"{where!r} is a soft link (to {target!r}); a recording names its objects only by hard links, "
                f"so the file is refused")
    if info.type == h5l.TYPE_EXTERNAL:
        other, obj = (x.decode("utf-8", "replace") for x in f.id.links.get_val(name))
        return (f"{where!r} is an external link to {obj!r} in the file {other!r}; a recording never refers to "
                f"other files (such a link could make lstmviz read any file on this machine), so it is refused")
    return (f"{where!r} is a user-defined HDF5 link (type {info.type}); a recording has only hard links, so the "
            f"file is refused")


def _object_problem(f: h5py.File, name: bytes, where: str, file_size: int | None,
                    shard_files: set[str] | None = None) -> str | None:
    try:
        oid = h5o.open(f.id, name)
    except Exception as e:  # a hard link to a damaged object header
        return f"the object {where!r} cannot be opened ({hdf5_reason(e)}); the file is damaged"
    try:
        if not isinstance(oid, h5d.DatasetID):
            return None
        return _dataset_problem(oid, where, file_size, shard_files)
    finally:
        if hasattr(oid, "close"):
            oid.close()


def _dataset_problem(dsid: h5d.DatasetID, where: str, file_size: int | None,
                     shard_files: set[str] | None = None) -> str | None:
    dcpl = dsid.get_create_plist()
    layout = dcpl.get_layout()
    if layout == h5d.VIRTUAL:
        count = dcpl.get_virtual_count()
        sources = sorted({dcpl.get_virtual_filename(i) for i in range(count)})
        if shard_files is not None and shards.is_tap_path(where):
            if all(dcpl.get_virtual_filename(i) in shard_files and shards.is_tap_path(dcpl.get_virtual_dsetname(i))
                   for i in range(count)):
                return None  # a logical file's tap over its shards; shards.check_shards checks them on open
            return (f"{where!r} is a virtual dataset over {', '.join(map(repr, sources[:3]))}, which are not the "
                    f"shards its shard table names (or not their taps); the file is refused")
        return (f"{where!r} is a virtual dataset whose values come from {', '.join(map(repr, sources[:3]))}; "
                f"a recording stores its own values and never refers to other files, so it is refused")
    if dcpl.get_external_count() > 0:
        files = sorted({dcpl.get_external(i)[0].decode("utf-8", "replace") for i in range(dcpl.get_external_count())})
        return (f"{where!r} keeps its values in the external file {', '.join(map(repr, files[:3]))}; a recording "
                f"stores its own values and never refers to other files, so it is refused")
    shape = dsid.shape
    if not shape:
        return None
    declared = math.prod(shape) * dsid.get_type().get_size()
    if declared == 0 or layout == h5d.COMPACT:
        return None  # compact data lives in the object header, whose size HDF5 checks
    if layout == h5d.CONTIGUOUS:
        offset = dsid.get_offset()
        if offset is None:
            return _sparse(where, shape, declared, 0)
        if file_size is not None and offset + declared > file_size:
            return (f"{where!r} declares {_bytes(declared)} (shape {shape}) stored beyond the end of the "
                    f"{_bytes(file_size)} file; the file is truncated or damaged")
        return None
    if layout == h5d.CHUNKED:
        stored = dsid.get_storage_size()
        if dcpl.get_nfilters() == 0:
            if stored < declared:
                return _sparse(where, shape, declared, stored)
        else:  # compressed: count the chunks instead of the bytes
            chunks = dcpl.get_chunk()
            expected = math.prod(-(-n // c) for n, c in zip(shape, chunks))
            if dsid.get_num_chunks() < expected:
                return _sparse(where, shape, declared, stored)
        if file_size is not None and stored > file_size:
            return (f"{where!r} claims {_bytes(stored)} of storage in a {_bytes(file_size)} file; the file is damaged")
    return None


def hdf5_reason(error: BaseException) -> str:
    """The words HDF5 gives for a failure, without h5py's wrapping ("Unable to synchronously ... (why)")."""
    if isinstance(error, UnicodeError):
        return "a name or text in it is not valid UTF-8"
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    found = re.findall(r"\(([^()]+)\)", text)
    return found[-1] if found else (text or type(error).__name__)


def _sparse(where: str, shape, declared: int, stored: int) -> str:
    return (f"{where!r} declares shape {shape} ({_bytes(declared)}) but only {_bytes(stored)} of it are stored; "
            f"a recording stores every value it declares (the file is damaged or was made to look larger)")


def _bytes(n: int) -> str:
    from lstmviz.memory import format_bytes

    return format_bytes(n)


def _file_size(f: h5py.File, path) -> int | None:
    try:
        return os.fstat(f.id.get_vfd_handle()).st_size
    except Exception:
        try:
            return os.stat(path).st_size
        except OSError:
            return None
