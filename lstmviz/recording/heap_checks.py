"""Refuse a damaged HDF5 global heap before HDF5 reads it: a damaged one can make HDF5 loop forever.

Variable-length strings (every text attribute, the vocabulary, labels, provenance, node names) live in
HDF5 *global heap collections*: ``"GCOL"``, version 1, three reserved bytes, the collection size (8
bytes, at least 4096), then objects ``index (2) | references (2) | reserved (4) | size (8) | data``
padded to 8 bytes, the free space being object 0. HDF5 (2.0 and older) walks the objects of a
collection when it loads it and steps ``size`` bytes past a free-space object: a free-space object
of size 0 (one flipped bit) never moves the walk, and the read of the first text attribute hangs
in C code that nothing in Python can interrupt.

:func:`check_global_heaps` walks every collection the same way first and refuses an object that would
not move the walk forward or would step past the end of its collection (HDF5 never writes either).
Collections are found by their signature in the bytes of the file outside the raw data of numeric
datasets (taps, offsets, ...: their chunk addresses come from HDF5's chunk index, nothing of them is
read), so the check reads the file's metadata and heaps only. If the datasets cannot be listed (a
damaged file), the whole file is searched.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

import h5py
from h5py import h5d, h5l, h5o, h5t

from lstmviz.recording.format import RecordingError

_SIGNATURE = b"GCOL\x01\x00\x00\x00"
_MIN_COLLECTION = 4096  # H5HG_MINSIZE: HDF5 never makes a smaller collection
_OBJECT_HEADER = 16


def check_global_heaps(f: h5py.File, path: str | Path) -> None:
    """Raise ``RecordingError`` if a global heap collection of ``f`` would make HDF5 loop or overrun."""
    try:
        fd = f.id.get_vfd_handle()
        size = os.fstat(fd).st_size
    except Exception:
        return  # not a plain file on disk: HDF5 will say what is wrong
    if size == 0:
        return
    skip = _raw_data_ranges(f)
    with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mm:
        for start, stop in _gaps(skip, size):
            at = mm.find(_SIGNATURE, start, stop)
            while at >= 0:
                problem = _collection_problem(mm, at, size)
                if problem is not None:
                    raise RecordingError(path, f"the file is damaged: the HDF5 global heap (where HDF5 keeps the "
                                               f"file's texts) at byte {at:,} {problem}; HDF5 would never finish "
                                               f"reading it. Copy the file again from a good source or record it again")
                at = mm.find(_SIGNATURE, at + 1, stop)


def _collection_problem(mm: mmap.mmap, at: int, file_size: int) -> str | None:
    if at + _OBJECT_HEADER > file_size:
        return None
    (collection,) = struct.unpack_from("<Q", mm, at + 8)
    end = at + collection
    if collection < _MIN_COLLECTION or end > file_size:
        return None  # not a collection HDF5 made; HDF5 refuses it on its own if it is ever read
    p = at + _OBJECT_HEADER
    while p + _OBJECT_HEADER <= end:
        (index,) = struct.unpack_from("<H", mm, p)
        (size,) = struct.unpack_from("<Q", mm, p + 8)
        need = size if index == 0 else _OBJECT_HEADER + (size + 7) // 8 * 8
        if need == 0:
            return f"holds an empty free-space entry at byte {p:,}"
        if need > end - p:
            return f"holds an entry at byte {p:,} that runs past the end of its {collection:,}-byte collection"
        p += need
    return None


def _raw_data_ranges(f: h5py.File) -> list[tuple[int, int]]:
    """``(start, stop)`` byte ranges of the raw values of numeric datasets; ``[]`` when they cannot be listed."""
    ranges: list[tuple[int, int]] = []

    def add(info) -> None:
        if info.byte_offset is not None and info.size:
            ranges.append((info.byte_offset, info.byte_offset + info.size))

    def visit(name: bytes, info) -> None:
        if info.type != h5l.TYPE_HARD:
            return None
        oid = h5o.open(f.id, name)
        try:
            if not isinstance(oid, h5d.DatasetID) or oid.get_type().get_class() in (h5t.VLEN, h5t.STRING, h5t.REFERENCE):
                return None
            layout = oid.get_create_plist().get_layout()
            if layout == h5d.CHUNKED:
                oid.chunk_iter(add)
            elif layout == h5d.CONTIGUOUS:
                offset = oid.get_offset()
                if offset is not None:
                    ranges.append((offset, offset + oid.get_storage_size()))
        finally:
            oid.close()
        return None

    try:
        f.id.links.visit(visit, info=True)
    except Exception:
        return []
    return sorted(ranges)


def _gaps(ranges: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """The parts of ``[0, size)`` outside ``ranges`` (sorted by start, may overlap)."""
    gaps, at = [], 0
    for start, stop in ranges:
        if start > at:
            gaps.append((at, min(start, size)))
        at = max(at, stop)
    if at < size:
        gaps.append((at, size))
    return [(a, b) for a, b in gaps if b > a]
