"""The match index: which units are on at which positions, as packed bits, in two layouts.

A unit is *on* by the one rule of ``lstmviz.analysis.transforms`` (its transformed value as float32 >=
the threshold rounded to float32; <= its negative in the negative direction), the rule of the Select
view. The file is never transformed: ``transforms.stored_bounds`` gives per unit the smallest stored
value that is on (and the largest that is on in the negative direction), exactly, so the index
compares raw values: on(+1) ⇔ x >= low[u], on(-1) ⇔ x <= high[u].

Layouts (bit order ``little``: bit i of byte j is element 8*j + i, as ``np.packbits(bitorder="little")``):

- row-major ``rows[sign]``: uint8 ``[n_positions, ceil(n_units / 8)]``; row t holds the units on at t.
  Used to re-score candidates (every unit over a few positions).
- unit-major ``units[sign]``: uint8 ``[n_units, ceil(n_positions / 8)]``; row u holds the positions where
  unit u is on. Used to count the selected units per position (only the selected rows are read).

``sign`` is +1 (positive direction) or -1 (negative direction). ``row_counts[sign]`` holds the number
of units on per position (uint16, uint32 beyond 65535 units), so a Jaccard union is |P| + |q| - |P∧q|.

Building (``build_index`` in memory, ``open_index`` cached on disk) reads the tap once, slab by slab
(``_index_stream``), and packs both signs and both layouts in the same pass (``_index_kernels``);
float16 taps are compared as integer order keys against thresholds rounded exactly to float16.

Cache file (``open_index``): ``<cache dir>/index-<tap>-<transform>-<threshold>-<hash>.h5``, an HDF5
file written under a temporary name and renamed when complete::

    /                      attrs: lstmviz_cache = "bitindex", cache_version, fingerprint (of the
                           recording), tap, transform, threshold, tap_dtype, n_positions, n_units
    /item_offsets          int64 [I + 1]   the tap's axis offsets
    /thresholds/pos, /neg  float64 [D]     the stored bounds per unit (low, high)
    /rows/pos, /rows/neg   uint8 [N, ceil(D/8)]          contiguous, uncompressed
    /units/pos, /units/neg uint8 [D, ceil(N/8)]          contiguous, uncompressed
    /counts/pos, /neg      uint16|uint32 [N]             contiguous, uncompressed
    /checksums/rows/pos, /neg    uint32 [ceil(N/R)]  CRC-32 of the rows of each block of R positions
    /checksums/counts/pos, /neg  uint32 [ceil(N/R)]  CRC-32 of the counts of each block of R positions
    /checksums/units/pos, /neg   uint32 [D]          CRC-32 of each unit's row
                           root attrs also: checksum_rows = R, small_crc = CRC-32 of item_offsets,
                           thresholds/pos and thresholds/neg (their bytes, in that order)

The six large arrays are memory-mapped (read-only) at ``ds.id.get_offset()``. The checksums are
computed while the bits are written (on the writer thread) and verified, on several threads, every
time an existing file is opened (``_verify``; a fraction of a read of a float16 tap), so a flipped bit
anywhere in the bits, counts, offsets or thresholds is found before any match is computed from it. A file whose fingerprint, key, version or checksums differ, or that
cannot be read, is a cache miss (``cache.load_cached``): discarded, noted in the log and rebuilt.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import queue
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from lstmviz.analysis import cache as _cache
from lstmviz.analysis._index_kernels import CHUNK_ROWS, pack_slab
from lstmviz.analysis._index_stream import SlabReader, slab_rows
from lstmviz.analysis._parallel import KERNEL_LOCK
from lstmviz.analysis.transforms import (
    UnitStats,
    check_threshold,
    stored_bounds,
    tap_stats,
)
from lstmviz.tasks import ensure_task

SIGNS = (1, -1)
CACHE_VERSION = 2  # 2: checksums; bounds from the one on/off rule (transforms.stored_bounds)
_SIGN_NAMES = {1: "pos", -1: "neg"}
_UNITS_BUFFER_BYTES = 16 * 1024 * 1024
"""Unit-major bits are collected per sign in a buffer of about this size and written out in runs."""



@dataclass(frozen=True)
class IndexKey:
    """What an index was built from: the tap, the view transform and the threshold in that transform."""

    tap: str
    transform: str
    threshold: float


@dataclass
class BitIndex:
    n_positions: int
    n_units: int
    item_offsets: np.ndarray  # int64 [n_items + 1]
    rows: dict[int, np.ndarray]  # sign -> uint8 [n_positions, ceil(n_units/8)]
    units: dict[int, np.ndarray]  # sign -> uint8 [n_units, ceil(n_positions/8)]
    key: IndexKey | None = None
    #: raw thresholds per unit that produced the bits: sign -> float64 [n_units]
    thresholds: dict[int, np.ndarray] = field(default_factory=dict)
    #: units on per position: sign -> uint16 (uint32 beyond 65535 units) [n_positions]
    row_counts: dict[int, np.ndarray] = field(default_factory=dict)
    #: the cache file the arrays are memory-mapped from; None for an index in memory
    path: Path | None = None

    @classmethod
    def from_bool(cls, on_pos: np.ndarray, on_neg: np.ndarray | None = None, item_offsets=None,
                  key: IndexKey | None = None) -> BitIndex:
        """An in-memory index from boolean matrices ``[n_positions, n_units]`` (tests, small data)."""
        on_pos = np.asarray(on_pos, dtype=bool)
        if on_pos.ndim != 2:
            raise ValueError(f"on_pos must be [positions, units], got shape {on_pos.shape}")
        if on_neg is None:
            on_neg = np.zeros_like(on_pos)
        on_neg = np.asarray(on_neg, dtype=bool)
        if on_neg.shape != on_pos.shape:
            raise ValueError(f"on_neg has shape {on_neg.shape}, on_pos {on_pos.shape}")
        n, d = on_pos.shape
        if item_offsets is None:
            item_offsets = np.array([0, n], dtype=np.int64)
        item_offsets = np.asarray(item_offsets, dtype=np.int64)
        if item_offsets[0] != 0 or item_offsets[-1] != n or np.any(np.diff(item_offsets) < 0):
            raise ValueError("item_offsets must rise from 0 to n_positions")
        rows, units, counts = {}, {}, {}
        for sign, on in ((1, on_pos), (-1, on_neg)):
            rows[sign] = np.packbits(on, axis=1, bitorder="little")
            units[sign] = np.packbits(np.ascontiguousarray(on.T), axis=1, bitorder="little")
            counts[sign] = on.sum(axis=1).astype(_count_dtype(d))
        return cls(n_positions=n, n_units=d, item_offsets=item_offsets, rows=rows, units=units, key=key,
                   row_counts=counts)

    def on(self, sign: int, start: int, stop: int, units=None) -> np.ndarray:
        """bool ``[stop - start, len(units)]``: which units are on at positions ``[start, stop)``."""
        bits = np.unpackbits(self.rows[sign][start:stop], axis=1, count=self.n_units, bitorder="little")
        bits = bits.astype(bool)
        return bits if units is None else bits[:, units]

    @property
    def n_items(self) -> int:
        return len(self.item_offsets) - 1


def build_index(recording, key: IndexKey, *, task=None, stats: UnitStats | None = None) -> BitIndex:
    """Build the index of ``key`` in memory, in one streaming pass over the tap.

    A z-score key needs the tap's statistics: ``stats``, or ``tap_stats`` (cached) is run first.
    Progress: ``task.progress(positions_done, positions, "Indexing <tap>")``; ``task.cancel()`` stops
    it within one slab (``Cancelled``).
    """
    task = ensure_task(task)
    info, pos, neg = _thresholds(recording, key, task, stats)
    n, d = recording.axis_length(info.axis), info.units
    sink = _MemorySink(n, d)
    _pack_tap(recording, info, pos, neg, sink, task)
    return BitIndex(n_positions=n, n_units=d, item_offsets=recording.axis_offsets(info.axis).copy(),
                    rows=sink.rows, units=sink.units, key=_canonical(key),
                    thresholds={1: pos, -1: neg}, row_counts=sink.counts)


def open_index(recording, key: IndexKey, *, task=None, cache: bool = True,
               stats: UnitStats | None = None) -> BitIndex:
    """The index of ``key``: loaded from the cache if it was built from this very recording file and
    key, else built in one streaming pass straight into the cache file and memory-mapped from it.

    ``cache=False`` (or a cache directory that cannot be written) builds it in memory instead. A
    cancelled build leaves no cache file behind. ``stats``: the statistics a z-score key uses instead
    of the file's own (a shard of a larger recording is indexed with the statistics of the whole,
    ``sharded``); such an index is cached under a name of its own and checked against its bounds.
    """
    task = ensure_task(task)
    if not cache:
        return build_index(recording, key, task=task, stats=stats)
    key = _canonical(key)
    info = _tap_info(recording, key.tap)
    check_threshold(key.threshold, key.transform)
    bounds = None
    if stats is not None:
        info, pos, neg = _thresholds(recording, key, task, stats)
        bounds = (pos, neg)
    path = index_path(recording, key, bounds=bounds)
    fingerprint = _cache.recording_fingerprint(recording)
    n = recording.axis_length(info.axis)
    offsets = recording.axis_offsets(info.axis)
    index = _cache.load_cached(path, lambda p: _load(p, key, fingerprint, info, n, offsets, bounds=bounds),
                               "match index")
    if index is not None:
        return index
    if bounds is None:
        info, pos, neg = _thresholds(recording, key, task, None)
    _cache.remove_stale_temps(path.parent)
    try:
        with _cache.atomic_path(path) as temp:
            sink = _FileSink(temp, recording, key, info, pos, neg, fingerprint)
            try:
                _pack_tap(recording, info, pos, neg, sink, task)
            finally:
                sink.close()
            sink.write_checksums()
    except OSError:  # the cache cannot be written (read-only, disk full): keep this index in memory
        return build_index(recording, key, task=task, stats=stats)
    # just written from the checksums' own data: map it without reading it all back
    index = _cache.load_cached(path, lambda p: _load(p, key, fingerprint, info, n, offsets, verify=False,
                                                     bounds=bounds), "match index")
    if index is None:
        return build_index(recording, key, task=task, stats=stats)
    return index


def index_path(recording, key: IndexKey, *, bounds=None) -> Path:
    """The cache file of ``key`` for ``recording`` (it may not exist); ``bounds`` ``(pos, neg)``: of an
    index built with statistics other than the file's own (``open_index(stats=)``)."""
    key = _canonical(key)
    extra = () if bounds is None else (f"bounds={_bounds_digest(*bounds)}",)
    name = _cache.cache_name("index", key.tap, key.transform, key.threshold, *_cache.view_parts(recording),
                             *extra, suffix=".h5")
    return _cache.cache_dir_for(recording.path) / name


def _bounds_digest(pos, neg) -> str:
    data = np.ascontiguousarray(pos, np.float64).tobytes() + np.ascontiguousarray(neg, np.float64).tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


def key_thresholds(pos: np.ndarray, neg: np.ndarray, dtype) -> tuple[np.ndarray, ...]:
    """Per-unit key ranges for ``pack_slab``: ``(lo_pos, range_pos, hi_neg, range_neg)``.

    ``x >= pos[u]`` ⇔ ``x >= ceil_dtype(pos[u])`` and ``x <= neg[u]`` ⇔ ``x <= floor_dtype(neg[u])``
    exactly, for every value of the storage dtype; a zero threshold also admits the zero of the other
    sign; the range stops at the infinity, so NaN is never on.
    """
    ftype = np.dtype(dtype).type
    itype = {np.float16: np.int16, np.float32: np.int32}[ftype]
    pos = np.asarray(pos, np.float64)
    neg = np.asarray(neg, np.float64)
    if np.isnan(pos).any() or np.isnan(neg).any():
        raise ValueError("The thresholds are not numbers (NaN); the tap's statistics may be broken.")
    with np.errstate(over="ignore"):
        up = pos.astype(ftype)
        low = up < pos
        up[low] = np.nextafter(up[low], ftype(np.inf))
        down = neg.astype(ftype)
        high = down > neg
        down[high] = np.nextafter(down[high], ftype(-np.inf))
    lo = _keys(up, itype)
    hi = _keys(down, itype)
    lo[up == 0] = _keys(np.array([-0.0], ftype), itype)[0]
    hi[down == 0] = _keys(np.array([0.0], ftype), itype)[0]
    key_inf, key_ninf = _keys(np.array([np.inf, -np.inf], ftype), itype)
    utype = np.uint16 if itype is np.int16 else np.uint32
    return lo.astype(itype), (key_inf - lo).astype(utype), hi.astype(itype), (hi - key_ninf).astype(utype)


def _keys(values: np.ndarray, itype) -> np.ndarray:
    """Order keys of float values (as ``_index_kernels.order_key``), as int64."""
    bits = np.dtype(itype).itemsize * 8
    v = values.view(itype).astype(np.int64)
    return v ^ ((v >> (bits - 1)) & ((1 << (bits - 1)) - 1))


def _count_dtype(n_units: int):
    return np.uint16 if n_units <= np.iinfo(np.uint16).max else np.uint32


def _canonical(key: IndexKey) -> IndexKey:
    return IndexKey(str(key.tap), str(key.transform), float(key.threshold))


def _tap_info(recording, tap: str):
    info = recording.taps.get(tap)
    if info is None:  # the reader's error names the taps the file has
        recording.raw_states(tap, 0, 0)
        raise KeyError(tap)
    if np.dtype(info.dtype) not in (np.dtype(np.float16), np.dtype(np.float32)):
        raise ValueError(f"tap {tap!r} is stored as {info.dtype}; the match index needs float16 or float32")
    return info


def _thresholds(recording, key: IndexKey, task, stats):
    check_threshold(key.threshold, key.transform)
    info = _tap_info(recording, key.tap)
    if key.transform == "zscore" and stats is None:
        stats = tap_stats(recording, key.tap, task=task)
    t = stored_bounds(key.threshold, key.transform, info.dtype, info.units, stats)
    return info, t[1], t[-1]


def _slab_rows(info) -> int:
    """Positions per slab of the build pass (also the checksum block of the row-major arrays)."""
    return slab_rows(info.units, np.dtype(info.dtype).itemsize, CHUNK_ROWS)


def _pack_tap(recording, info, pos, neg, sink, task) -> None:
    """The one streaming pass: slabs are read on one helper thread, packed here (both signs, both
    layouts) and handed to ``sink`` on another helper thread, so reading, packing and writing overlap."""
    n, d = recording.axis_length(info.axis), info.units
    dtype = np.dtype(info.dtype)
    bits_view = np.int16 if dtype == np.float16 else np.int32
    lo_pos, range_pos, hi_neg, range_neg = key_thresholds(pos, neg, dtype)
    nb = (d + 7) // 8
    bit_of = (1 << (np.arange(8 * nb) % 8)).astype(np.uint8)
    rows = _slab_rows(info)
    # positions per unit-major flush: a multiple of the slab, about _UNITS_BUFFER_BYTES per sign
    flush = max(rows, (_UNITS_BUFFER_BYTES * 8 // max(1, d)) // rows * rows)
    row_pool: queue.Queue = queue.Queue()
    for _ in range(3):
        row_pool.put(sink.row_buffers(rows))
    word_pool: queue.Queue = queue.Queue()
    for _ in range(2):
        # 8 spare words (one cache line) per unit row: a power-of-two stride would map every row
        # onto the same few cache sets
        word_pool.put({s: np.zeros((d, flush // 64 + 8), np.uint64) for s in SIGNS})
    message = f"Indexing {info.name}"
    task.progress(0, n, message)
    flushed = 0
    words = word_pool.get()
    with _Writer() as writer, SlabReader(recording, info.name, rows) as slabs:
        for a, b, x in slabs:
            if a - flushed >= flush:
                writer.submit(sink.write_units, (flushed, a, words), word_pool.put, words)
                words = word_pool.get()
                flushed = a
            buffers = row_pool.get()
            rp, rn, cp, cn = sink.row_targets(a, b, buffers)
            with KERNEL_LOCK:
                pack_slab(x.view(bits_view), lo_pos, range_pos, hi_neg, range_neg, bit_of, rp, rn,
                          words[1], words[-1], cp, cn, (a - flushed) // CHUNK_ROWS)
            writer.submit(sink.write_rows, (a, b, buffers), row_pool.put, buffers)
            writer.check()
            task.progress(b, n, message)
        writer.submit(sink.write_units, (flushed, n, words), word_pool.put, words)


class _Writer:
    """Runs write jobs in order on one helper thread (``pwrite`` and numpy copies release the GIL).

    Each job comes with a release callback that returns its buffers to their pool; it runs even after
    an error, so the producer never waits forever. Leaving the ``with`` block normally waits for every
    job and raises the first error; leaving it by an exception drops the pending writes.
    """

    def __init__(self):
        self._jobs: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._skip = False
        self._thread = threading.Thread(target=self._run, name="index writer", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._skip = exc_type is not None
        self._jobs.put(None)
        self._thread.join()
        if exc_type is None:
            self.check()

    def submit(self, fn, args: tuple, release, item) -> None:
        self.check()
        self._jobs.put((fn, args, release, item))

    def check(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, args, release, item = job
            try:
                if self._error is None and not self._skip:
                    fn(*args)
            except BaseException as e:  # noqa: BLE001 - raised in the producer by check()
                self._error = e
            finally:
                release(item)


class _MemorySink:
    """Bits straight into numpy arrays."""

    def __init__(self, n: int, d: int):
        nb, nbytes = (d + 7) // 8, (n + 7) // 8
        self.rows = {s: np.zeros((n, nb), np.uint8) for s in SIGNS}
        self.units = {s: np.zeros((d, nbytes), np.uint8) for s in SIGNS}
        self.counts = {s: np.zeros(n, _count_dtype(d)) for s in SIGNS}

    def row_buffers(self, rows: int):
        return None

    def row_targets(self, a: int, b: int, buffers):
        return self.rows[1][a:b], self.rows[-1][a:b], self.counts[1][a:b], self.counts[-1][a:b]

    def write_rows(self, a: int, b: int, buffers) -> None:
        pass

    def write_units(self, start: int, stop: int, words: dict) -> None:
        byte0, nbytes = start // 8, (stop - start + 7) // 8
        for s in SIGNS:
            self.units[s][:, byte0:byte0 + nbytes] = words[s].view(np.uint8)[:, :nbytes]



class _FileSink:
    """Bits into a new cache file: HDF5 metadata first, then the contiguous datasets by ``pwrite``;
    the CRC-32 of every block is computed as it is written and stored by ``write_checksums``."""

    def __init__(self, path: Path, recording, key: IndexKey, info, pos, neg, fingerprint: str):
        n, d = recording.axis_length(info.axis), info.units
        nb, nbytes = (d + 7) // 8, (n + 7) // 8
        shapes = {"rows": ((n, nb), np.uint8), "units": ((d, nbytes), np.uint8), "counts": ((n,), _count_dtype(d))}
        self._offsets: dict[tuple[str, int], int | None] = {}
        self._path = path
        self._block = _slab_rows(info)
        n_blocks = -(-n // self._block)
        self._crc = {(group, s): np.zeros(d if group == "units" else n_blocks, np.uint32)
                     for group in ("rows", "counts", "units") for s in SIGNS}
        item_offsets = np.asarray(recording.axis_offsets(info.axis), np.int64)
        pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
        with h5py.File(path, "w") as f:
            f.attrs.update(lstmviz_cache="bitindex", cache_version=CACHE_VERSION, fingerprint=fingerprint,
                           tap=key.tap, transform=key.transform, threshold=float(key.threshold),
                           tap_dtype=str(info.dtype), n_positions=n, n_units=d, checksum_rows=self._block,
                           small_crc=_small_crc(item_offsets, pos, neg))
            f["item_offsets"] = item_offsets
            f["thresholds/pos"] = pos
            f["thresholds/neg"] = neg
            for group, (shape, dtype) in shapes.items():
                for s in SIGNS:
                    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
                    dcpl.set_layout(h5py.h5d.CONTIGUOUS)
                    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
                    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
                    ds = f.create_dataset(f"{group}/{_SIGN_NAMES[s]}", shape=shape, dtype=dtype, dcpl=dcpl)
                    self._offsets[group, s] = ds.id.get_offset()
        self._d, self._nb, self._nbytes, self._n = d, nb, nbytes, n
        self._file = open(path, "r+b", buffering=0)  # noqa: SIM115 - closed by close()

    def row_buffers(self, rows: int):
        count = _count_dtype(self._d)
        return {s: (np.zeros((rows, self._nb), np.uint8), np.zeros(rows, count)) for s in SIGNS}

    def row_targets(self, a: int, b: int, buffers):
        m = b - a
        return buffers[1][0][:m], buffers[-1][0][:m], buffers[1][1][:m], buffers[-1][1][:m]

    def write_rows(self, a: int, b: int, buffers) -> None:
        m = b - a
        block, rest = divmod(a, self._block)
        if rest or (m != self._block and b != self._n):  # the checksum blocks are the build's slabs
            raise RuntimeError(f"rows [{a}, {b}) are not one checksum block of {self._block}")
        for s in SIGNS:
            bits, counts = buffers[s]
            self._crc["rows", s][block] = zlib.crc32(bits[:m])
            self._crc["counts", s][block] = zlib.crc32(counts[:m])
            self._write(bits[:m], self._offsets["rows", s] + a * self._nb)
            self._write(counts[:m], self._offsets["counts", s] + a * counts.itemsize)

    def write_units(self, start: int, stop: int, words: dict) -> None:
        nbytes = (stop - start + 7) // 8
        if nbytes == 0:
            return
        for s in SIGNS:
            data = words[s].view(np.uint8)
            base = self._offsets["units", s] + start // 8
            crc = self._crc["units", s]
            for u in range(self._d):
                row = data[u, :nbytes]
                crc[u] = zlib.crc32(row, int(crc[u]))  # a unit's row is written in position order
                self._write(row, base + u * self._nbytes)

    def close(self) -> None:
        self._file.close()

    def write_checksums(self) -> None:
        """Store the checksums of everything written (after ``close``, when the build succeeded)."""
        with h5py.File(self._path, "r+") as f:
            for (group, s), values in self._crc.items():
                f[f"checksums/{group}/{_SIGN_NAMES[s]}"] = values

    def _write(self, data: np.ndarray, offset: int) -> None:
        view = memoryview(data).cast("B")
        fd = self._file.fileno()
        while len(view):
            if hasattr(os, "pwrite"):
                written = os.pwrite(fd, view, offset)
            else:  # Windows
                self._file.seek(offset)
                written = self._file.write(view)
            view = view[written:]
            offset += written


def _load(path: Path, key: IndexKey, fingerprint: str, info, n_positions: int, item_offsets, *,
          verify: bool = True, bounds=None) -> BitIndex | None:
    """The cached index at ``path`` if it was built from these inputs (None: stale); raises if the file
    is damaged (unreadable, a shape or a checksum that does not match). Used through ``load_cached``.
    ``verify=False`` skips the checksums of the large arrays (for the file this process just wrote)."""
    with h5py.File(path, "r") as f:
        a = f.attrs
        expected = {"lstmviz_cache": "bitindex", "cache_version": CACHE_VERSION, "fingerprint": fingerprint,
                    "tap": key.tap, "transform": key.transform, "threshold": float(key.threshold),
                    "tap_dtype": str(info.dtype), "n_units": info.units, "n_positions": n_positions}
        if any(_attr(a.get(k)) != v for k, v in expected.items()):
            return None
        n, d = int(a["n_positions"]), int(a["n_units"])
        block = int(a["checksum_rows"])
        if block < 1:
            raise _cache.CacheDamaged(f"checksum block of {block} rows")
        nb, nbytes, n_blocks = (d + 7) // 8, (n + 7) // 8, -(-n // block)
        shapes = {"rows": (n, nb), "units": (d, nbytes), "counts": (n,)}
        layout = {}
        for group, shape in shapes.items():
            for s in SIGNS:
                ds = f[f"{group}/{_SIGN_NAMES[s]}"]
                dtype = _count_dtype(d) if group == "counts" else np.uint8
                if ds.shape != shape or ds.dtype != dtype or ds.chunks is not None or ds.compression:
                    raise _cache.CacheDamaged(f"{group}/{_SIGN_NAMES[s]} has shape {ds.shape}, {ds.dtype}")
                layout[group, s] = (ds.id.get_offset(), shape, np.dtype(dtype))
        # shapes are checked before anything is read, so a damaged header cannot make us allocate much
        small = {"item_offsets": (len(item_offsets),), **{f"thresholds/{_SIGN_NAMES[s]}": (d,) for s in SIGNS}}
        small.update({f"checksums/{g}/{_SIGN_NAMES[s]}": ((d,) if g == "units" else (n_blocks,))
                      for g in ("rows", "counts", "units") for s in SIGNS})
        for name, shape in small.items():
            if f[name].shape != shape:
                raise _cache.CacheDamaged(f"{name} has shape {f[name].shape}, expected {shape}")
        offsets = f["item_offsets"][:].astype(np.int64, copy=False)
        thresholds = {s: f[f"thresholds/{_SIGN_NAMES[s]}"][:].astype(np.float64, copy=False) for s in SIGNS}
        checksums = {(g, s): f[f"checksums/{g}/{_SIGN_NAMES[s]}"][:] for g in ("rows", "counts", "units")
                     for s in SIGNS}
        if int(_attr(a.get("small_crc"))) != _small_crc(offsets, thresholds[1], thresholds[-1]):
            raise _cache.CacheDamaged("the offsets or thresholds do not match their checksum")
    if not np.array_equal(offsets, item_offsets):
        raise _cache.CacheDamaged("item offsets differ from the recording's")
    if bounds is not None and not (np.array_equal(thresholds[1], bounds[0])
                                   and np.array_equal(thresholds[-1], bounds[1])):
        return None  # built from other statistics
    arrays = _map_arrays(path, layout)
    if verify:
        _verify(arrays, checksums, block)
    return BitIndex(n_positions=n, n_units=d, item_offsets=offsets,
                    rows={s: arrays["rows", s] for s in SIGNS}, units={s: arrays["units", s] for s in SIGNS},
                    key=key, thresholds=thresholds, row_counts={s: arrays["counts", s] for s in SIGNS},
                    path=path)


def _small_crc(item_offsets, pos, neg) -> int:
    crc = 0
    for array in (item_offsets, pos, neg):
        crc = zlib.crc32(np.ascontiguousarray(array).tobytes(), crc)
    return crc


def _verify(arrays: dict, checksums: dict, block: int) -> None:
    """Check every block of the mapped arrays against its CRC-32 (``CacheDamaged`` on a mismatch).

    zlib releases the GIL, so blocks are checked on several threads.
    """
    jobs = []  # (array, start, stop, expected crc)
    for (group, s), expected in checksums.items():
        array = arrays[group, s]
        if group == "units":
            jobs += [(array, u, u + 1, int(expected[u])) for u in range(len(expected))]
        else:
            jobs += [(array, k * block, (k + 1) * block, int(expected[k])) for k in range(len(expected))]

    def bad(job) -> bool:
        array, start, stop, expected = job
        return zlib.crc32(array[start:stop]) != expected

    workers = max(1, min(8, os.cpu_count() or 1))
    if workers == 1 or len(jobs) < 2:
        failed = any(bad(job) for job in jobs)
    else:
        with ThreadPoolExecutor(workers) as pool:
            failed = any(pool.map(bad, jobs, chunksize=max(1, len(jobs) // (workers * 8))))
    if failed:
        raise _cache.CacheDamaged("the bits do not match their checksums")


def _attr(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _map_arrays(path: Path, layout: dict) -> dict:
    """Read-only arrays over the contiguous datasets of ``path``, sharing one memory map."""
    size = os.path.getsize(path)
    for offset, shape, dtype in layout.values():
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if nbytes and (offset is None or offset + nbytes > size):
            raise ValueError("truncated")  # mapping past the end would crash on access
    mapped = None
    if any(int(np.prod(shape)) for _, shape, _ in layout.values()):
        with open(path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    out = {}
    for name, (offset, shape, dtype) in layout.items():
        count = int(np.prod(shape))
        if count == 0:
            out[name] = np.zeros(shape, dtype)
        else:
            out[name] = np.frombuffer(mapped, dtype=dtype, count=count, offset=offset).reshape(shape)
    return out
