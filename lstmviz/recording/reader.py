"""Open a recording lazily: metadata and offsets on open, tap values only for the slices asked for.

``open_recording`` validates the file (see ``validation.py``) and never lets an h5py or OS error
through: every problem is a ``RecordingError`` whose text names the file and the problem.
Argument mistakes (a position outside the file, an unknown unit) are ``IndexError``/``ValueError``.
"""

from __future__ import annotations

import contextlib
import operator
import os
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from lstmviz.geometry import AxisGeometry, GraphGeometry, ImageGeometry, ItemGeometry, SetGeometry
from lstmviz.recording import format as fmt
from lstmviz.recording import heap_checks, shards, storage_checks, upgrades, validation
from lstmviz.recording.format import (
    AnnotationInfo,
    CheckpointInfo,
    RecordingError,
    TapInfo,
)
from lstmviz.regular_files import input_problem

_READ_BLOCK_BYTES = 8 * 1024 * 1024
"""Tap reads go through blocks of about this many stored bytes, so column selections stay bounded."""


def open_recording(path: str | os.PathLike) -> Recording:
    """Open and validate a recording; raises ``RecordingError`` naming the file and the problem."""
    p = Path(path)
    f = open_h5(p)
    view = f
    try:
        version = validation.check_root(f, p)
        storage_checks.check_objects(f, p)  # on the file itself: the overlay of an old file maps onto it
        if shards.SHARDS_ATTR in f.attrs:  # a logical file: its shards must be there before anything is read
            shards.check_shards(f, p)
        view = upgrades.for_reading(f, p)
        header = validation.read_header(view, p, version)
    except BaseException as e:
        if view is not f:
            view.close()
        f.close()
        if isinstance(e, RecordingError) or not isinstance(e, Exception):
            raise
        raise RecordingError(p, f"the file is damaged and cannot be read ({storage_checks.hdf5_reason(e)})") from None
    return Recording(p, f, view, header)


def open_h5(path: Path) -> h5py.File:
    """Open ``path`` read-only as HDF5, or say in words why it cannot be (``RecordingError``).

    Only a regular file is opened: a FIFO would block the open forever, a device never ends.
    """
    problem = input_problem(path, "recording")
    if problem is not None:
        raise RecordingError(path, problem)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise RecordingError(path, _why_not_hdf5(path, e)) from None
    try:
        heap_checks.check_global_heaps(f, path)  # before the first text is read: a damaged heap hangs HDF5
    except BaseException:
        f.close()
        raise
    return f


def _why_not_hdf5(path: Path, error: OSError) -> str:
    size = path.stat().st_size
    if size == 0:
        return "the file is empty (0 bytes); it is not a recording"
    locked = "unable to lock file" in str(error)  # a live writer in another process holds HDF5's lock
    if locked or "already open for write" in str(error):  # and marks the file open for write until closed
        if fmt.parse_temp_name(path.name) is not None:
            return validation.unfinished_problem(path)
        if locked:
            return ("another program has the file open for writing (HDF5 locked it); open it when that program "
                    "has finished")
        return ("an unfinished recording, or a file another program is still writing (HDF5 marks it as open for "
                "write); if nothing is writing it, the program that wrote it was killed: delete it and record again")
    try:
        signature = h5py.is_hdf5(path)
    except Exception:
        signature = False
    if not signature:
        return f"not an HDF5 file ({size} bytes without the HDF5 signature); it is not an lstmviz recording"
    if "truncated" in str(error).lower():
        return (f"the file is truncated ({size} bytes on disk, fewer than HDF5 expects); it was cut short "
                f"while copying or writing — copy or record it again")
    return f"an HDF5 file that cannot be opened; it is damaged ({error})"


class Recording:
    """A recording opened for reading. Never loads a whole tap; every read returns a new array.

    Positions are main-axis indices ``0 <= p < n_positions``; ranges are half-open ``[start, stop)``.

    A recording of several checkpoints of one training run lists them in :attr:`checkpoints`;
    :meth:`at_checkpoint` gives a view whose tap reads return one checkpoint's states. The recording
    itself reads the main states (``/taps``, the last checkpoint) and has ``checkpoint is None``.
    """

    checkpoint: str | None = None
    """The checkpoint whose states the tap reads return: None for the main states, else a name from
    :attr:`checkpoints` (a view made by :meth:`at_checkpoint`)."""

    def __init__(self, path: Path, file: h5py.File, view: h5py.File, header: validation.Header):
        self.path = path
        self._file = file
        self._view_file = view
        self._parent: Recording | None = None  # set on views made by at_checkpoint
        self._closed = False
        self._tap_prefix = fmt.TAPS
        self._header = header
        self.format_version: int = header.format_version
        """The version written in the file (older files are upgraded on read, see upgrades.py)."""
        self.item_offsets: np.ndarray = header.offsets[fmt.MAIN_AXIS]
        self.n_items: int = header.n_items
        self.n_positions: int = header.n_positions
        self.vocab: list[str] = header.vocab
        self.taps: dict[str, TapInfo] = header.taps
        self.annotations: dict[str, AnnotationInfo] = header.annotations
        self.provenance: dict = header.provenance
        self.axes: dict[str, str] = dict(header.axis_descriptions)
        """axis name -> description, main axis (``"positions"``) first; iterating gives the names."""

    # --- checkpoints -------------------------------------------------------------------------

    @property
    def checkpoints(self) -> list[CheckpointInfo]:
        """The checkpoints whose states the file holds, in training order (ascending step, ties in the
        order written); ``[]`` for a recording of one model state (every format v1 file)."""
        return list(self._header.checkpoints)

    def at_checkpoint(self, name: str) -> Recording:
        """A view of this file whose tap reads return the states of checkpoint ``name``.

        Tokens, vocabulary, items, annotations, provenance and ``path`` are those of the recording;
        ``taps`` describes the same taps (every checkpoint has the same taps, rows and units). The
        view has ``checkpoint == name``. It shares the open file: closing the recording closes its
        views (their reads then raise ``ValueError``), while closing a view leaves the recording and
        other views open. Raises ``RecordingError`` for a name the file does not have.
        """
        root = self._parent or self
        names = [c.name for c in self._header.checkpoints]
        if name not in names:
            has = ", ".join(names) if names else "none: it holds the states of one model"
            raise RecordingError(self.path, f"has no checkpoint {name!r} (checkpoints: {has})")
        view = object.__new__(Recording)
        view.__dict__.update(root.__dict__)
        view._parent = root
        view._closed = False
        view.checkpoint = name
        view._tap_prefix = f"{fmt.checkpoint_path(name)}/{fmt.TAPS}"
        return view

    # --- positions and items ---------------------------------------------------------------

    def axis_offsets(self, axis: str = fmt.MAIN_AXIS) -> np.ndarray:
        """int64 ``[n_items + 1]``: item ``i`` covers rows ``[offsets[i], offsets[i + 1])`` of ``axis``."""
        try:
            return self._header.offsets[axis]
        except KeyError:
            raise RecordingError(self.path, f"has no axis {axis!r} (axes: {', '.join(self._header.offsets)})") from None

    def axis_length(self, axis: str = fmt.MAIN_AXIS) -> int:
        """Rows on ``axis`` (``n_positions`` for the main axis)."""
        return int(self.axis_offsets(axis)[-1])

    def item_range(self, item: int, axis: str = fmt.MAIN_AXIS) -> tuple[int, int]:
        """``(start, stop)`` of ``item`` on ``axis``."""
        offsets = self.axis_offsets(axis)
        i = _index(item, "item")
        if not 0 <= i < self.n_items:
            raise IndexError(f"item {i} is outside 0..{self.n_items - 1} ({self.n_items} items)")
        return int(offsets[i]), int(offsets[i + 1])

    def item_of(self, position: int | np.ndarray) -> int | np.ndarray:
        """The item holding main-axis ``position`` (an int, or an int64 array for an array)."""
        scalar = np.ndim(position) == 0
        p = np.asarray(position)
        if p.dtype.kind not in "iu":
            raise TypeError(f"positions must be integers, got dtype {p.dtype}")
        if p.size and (p.min() < 0 or p.max() >= self.n_positions):
            bad = p.min() if p.min() < 0 else p.max()
            raise IndexError(f"position {bad} is outside 0..{self.n_positions - 1} ({self.n_positions} positions)")
        items = np.searchsorted(self.item_offsets, p, side="right") - 1
        return int(items) if scalar else items.astype(np.int64)

    # --- position geometry (format v3) ------------------------------------------------------

    def axis_geometry(self, axis: str = fmt.MAIN_AXIS) -> AxisGeometry:
        """What the positions of ``axis`` are (kind ``tokens`` for every axis of a v1/v2 file)."""
        return self._layout(axis).geometry

    def item_geometry(self, item: int, axis: str = fmt.MAIN_AXIS) -> ItemGeometry | None:
        """The geometry of one item on ``axis``, read now: ``None`` on a tokens or scalar axis.

        Graph: a :class:`~lstmviz.geometry.GraphGeometry` with item-local node indices (edges int64,
        optional weights, coordinates, node names, filler), and on a pooled axis the item-local
        pooling map (one entry per node of the item on ``pooled_from``). Image: height and width.
        Set: the member id of each position.
        """
        layout = self._layout(axis)
        start, stop = self.item_range(item, axis)
        i = _index(item, "item")
        g = layout.geometry
        if g.kind == "image":
            return ImageGeometry(int(layout.heights[i]), int(layout.widths[i]))
        if g.kind not in ("graph", "set"):
            return None
        with self._reading(f"the geometry of item {i} on axis {axis!r}"):
            if g.kind == "set":
                return SetGeometry(self._view[fmt.axis_path(axis, fmt.MEMBER)][start:stop].astype(np.int64))
            e0, e1 = int(layout.edge_offsets[i]), int(layout.edge_offsets[i + 1])
            group = self._view[fmt.axis_path(axis)]
            has = layout.optional
            weights = group[fmt.EDGE_WEIGHTS][e0:e1].astype(np.float32) if fmt.EDGE_WEIGHTS in has else None
            coords = group[fmt.COORDINATES][start:stop].astype(np.float32) if fmt.COORDINATES in has else None
            names = tuple(str(s) for s in group[fmt.NODE_NAMES].asstr()[start:stop]) if fmt.NODE_NAMES in has else None
            filler = group[fmt.FILLER][start:stop].astype(bool) if fmt.FILLER in has else None
            pmap = None
            if g.pooled_from is not None:
                f0, f1 = self.item_range(i, g.pooled_from)
                pmap = group[fmt.POOLING_MAP][f0:f1].astype(np.int64)
            edges = group[fmt.EDGES][e0:e1].astype(np.int64).reshape(-1, 2)
        return GraphGeometry(stop - start, edges, weights, coords, names, filler, pmap)

    def edge_offsets(self, axis: str = fmt.MAIN_AXIS) -> np.ndarray:
        """int64 ``[n_items + 1]`` of a graph axis: item ``i``'s edges are ``edge_offsets[i]:edge_offsets[i + 1]``
        (kept from open; nothing is read)."""
        return self._graph_layout(axis, "edge_offsets").edge_offsets

    def graph_edges(self, axis: str = fmt.MAIN_AXIS) -> tuple[np.ndarray, np.ndarray]:
        """Every edge of a graph axis in one read: ``(edges, edge_offsets)``.

        ``edges``: int64 ``[E, 2]`` absolute rows of the axis (item ``i``'s node ``a`` is row
        ``axis_offsets(axis)[i] + a``); item ``i``'s edges are ``edges[edge_offsets[i]:edge_offsets[i + 1]]``.
        """
        layout = self._graph_layout(axis, "graph_edges")
        eo = layout.edge_offsets
        with self._reading(f"the edges of axis {axis!r}"):
            local = self._view[fmt.axis_path(axis, fmt.EDGES)][()]
        base = np.repeat(self.axis_offsets(axis)[:-1], np.diff(eo))
        return local.astype(np.int64).reshape(-1, 2) + base[:, None], eo.copy()

    def filler(self, axis: str = fmt.MAIN_AXIS) -> np.ndarray:
        """bool ``[rows of axis]``: positions that are no node of the input (all False when none are)."""
        layout = self._layout(axis)
        if fmt.FILLER not in layout.optional:
            return np.zeros(self.axis_length(axis), dtype=bool)
        with self._reading(f"the filler mask of axis {axis!r}"):
            return self._view[fmt.axis_path(axis, fmt.FILLER)][()].astype(bool)

    def pooling_map(self, axis: str) -> np.ndarray:
        """int64 ``[rows of pooled_from]``: the absolute row of ``axis`` each finer row pools into (-1: none)."""
        layout = self._graph_layout(axis, "pooling_map")
        finer = layout.geometry.pooled_from
        if finer is None:
            raise RecordingError(self.path, f"axis {axis!r} is not pooled from another axis; it has no pooling map")
        with self._reading(f"the pooling map of axis {axis!r}"):
            local = self._view[fmt.axis_path(axis, fmt.POOLING_MAP)][()].astype(np.int64)
        base = np.repeat(self.axis_offsets(axis)[:-1], np.diff(self.axis_offsets(finer)))
        return np.where(local < 0, -1, local + base)

    def _layout(self, axis: str):
        try:
            return self._header.layouts[axis]
        except KeyError:
            raise RecordingError(self.path, f"has no axis {axis!r} (axes: {', '.join(self._header.offsets)})") from None

    def _graph_layout(self, axis: str, what: str):
        layout = self._layout(axis)
        if layout.geometry.kind != "graph":
            raise RecordingError(self.path, f"{what}: axis {axis!r} is a {layout.geometry.kind} axis, not a graph")
        return layout

    # --- tokens ----------------------------------------------------------------------------

    def axis_has_tokens(self, axis: str = fmt.MAIN_AXIS) -> bool:
        """Whether ``axis`` has token ids: the main axis always, an extra axis with ``/axes/<axis>/tokens``."""
        self._layout(axis)  # an unknown axis is refused
        return axis == fmt.MAIN_AXIS or axis in self._header.axis_tokens

    def token_ids(self, start: int, stop: int, axis: str = fmt.MAIN_AXIS) -> np.ndarray:
        """int64 token ids of positions ``[start, stop)`` of ``axis`` (the main axis, or an extra axis that stores
        tokens: :meth:`axis_has_tokens`)."""
        if axis == fmt.MAIN_AXIS:
            a, b = _range(start, stop, self.n_positions, "position")
            with self._reading(f"tokens {a}..{b}"):
                return self._view[fmt.TOKENS][a:b].astype(np.int64)
        if not self.axis_has_tokens(axis):
            raise KeyError(f"axis {axis!r} has no tokens of its own (axes with tokens: "
                           f"{', '.join([fmt.MAIN_AXIS, *sorted(self._header.axis_tokens)])})")
        a, b = _range(start, stop, self.axis_length(axis), "position")
        with self._reading(f"tokens {a}..{b} of axis {axis!r}"):
            return self._view[fmt.axis_path(axis, fmt.AXIS_TOKENS)][a:b].astype(np.int64)

    def item_token_ids(self, item: int, axis: str = fmt.MAIN_AXIS) -> np.ndarray:
        """int64 token ids of item ``item`` on ``axis``."""
        a, b = self.item_range(item, axis)
        return self.token_ids(a, b, axis)

    def tokens(self, start: int, stop: int, axis: str = fmt.MAIN_AXIS) -> list[str]:
        """Token strings of positions ``[start, stop)`` of ``axis`` (the ids as text if the file has no vocabulary)."""
        ids = self.token_ids(start, stop, axis)
        if not self.vocab:
            return [str(i) for i in ids]
        if ids.size and ids.max() >= len(self.vocab):
            i = int(np.argmax(ids >= len(self.vocab)))
            raise RecordingError(self.path, f"token id {ids[i]} at position {start + i} is outside the vocabulary "
                                            f"({len(self.vocab)} entries); the file is damaged")
        vocab = self.vocab
        return [vocab[i] for i in ids]

    # --- states ----------------------------------------------------------------------------

    def states(self, tap: str, start: int | None = None, stop: int | None = None, units=None) -> np.ndarray:
        """float32 ``[stop - start, k]`` values of ``tap`` over rows ``[start, stop)`` of its axis.

        ``units``: ``None`` (all), a ``slice``, or a list/array of unit indices in any order (the
        columns come back in that order; negative indices count from the end), or a boolean mask.
        """
        info = self._tap(tap)
        a, b = _range(start, stop, self.axis_length(info.axis), f"row of tap {tap!r}")
        cols = _units(units, info.units, tap)
        k = info.units if cols is None else len(range(info.units)[cols]) if isinstance(cols, slice) else len(cols)
        out = np.empty((b - a, k), dtype=np.float32)
        with self._reading(f"tap {tap!r} rows {a}..{b}"):
            ds = self._tap_dataset(tap)
            step = _block_rows(ds)
            for lo in range(a, b, step):
                hi = min(b, lo + step)
                block = ds[lo:hi]  # whole rows: a chunk spans all units, so this costs no extra I/O
                out[lo - a:hi - a] = block if cols is None else block[:, cols]
        return out

    def raw_states(self, tap: str, start: int | None = None, stop: int | None = None,
                   out: np.ndarray | None = None) -> np.ndarray:
        """All units of ``tap`` over rows ``[start, stop)`` in the stored dtype (float16 or float32).

        For streaming passes that handle float16 themselves (the match index): no conversion and,
        with ``out`` (C-contiguous, shape ``[stop - start, units]``, the stored dtype), no allocation.
        Returns ``out`` when given.
        """
        info = self._tap(tap)
        a, b = _range(start, stop, self.axis_length(info.axis), f"row of tap {tap!r}")
        dtype = np.dtype(info.dtype)
        if out is None:
            out = np.empty((b - a, info.units), dtype=dtype)
        elif out.shape != (b - a, info.units) or out.dtype != dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous {dtype} array of shape {(b - a, info.units)}, "
                             f"got {out.dtype} {out.shape}")
        if b > a:
            with self._reading(f"tap {tap!r} rows {a}..{b}"):
                self._tap_dataset(tap).read_direct(out, np.s_[a:b])
        return out

    def item_states(self, tap: str, item: int, units=None) -> np.ndarray:
        """float32 ``[rows of item, k]`` values of ``tap`` for one item (on the tap's own axis)."""
        start, stop = self.item_range(item, self._tap(tap).axis)
        return self.states(tap, start, stop, units)

    # --- annotations -----------------------------------------------------------------------

    def annotation(self, name: str, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """Values of annotation ``name``: positions ``[start, stop)`` (per position) or items (per item).

        Categorical: int32 label ids into ``annotations[name].labels`` (-1 = missing);
        numeric: float64 (NaN = missing).
        """
        info = self.annotations.get(name)
        if info is None:
            raise RecordingError(self.path, f"has no annotation {name!r} "
                                            f"(annotations: {', '.join(self.annotations) or 'none'})")
        n = self.n_positions if info.level == fmt.POSITION else self.n_items
        a, b = _range(start, stop, n, info.level)
        with self._reading(f"annotation {name!r} {a}..{b}"):
            return self._view[f"{fmt.annotation_path(name)}/{fmt.VALUES}"][a:b]

    # --- life cycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the file (and every view of it); later reads raise ``ValueError``.

        On a view made by :meth:`at_checkpoint`, closes only that view.
        """
        self._closed = True
        if self._parent is not None:
            return
        for f in {id(self._view_file): self._view_file, id(self._file): self._file}.values():
            if f is not None:
                with contextlib.suppress(Exception):
                    f.close()
        self._view_file = self._file = None

    @property
    def closed(self) -> bool:
        return self._closed or (self._parent is not None and self._parent.closed)

    @property
    def _view(self) -> h5py.File | None:
        """The HDF5 file read from (the upgraded overlay of an older file); None once closed."""
        if self.closed:
            return None
        return self._parent._view_file if self._parent is not None else self._view_file

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        at = "" if self.checkpoint is None else f", checkpoint={self.checkpoint!r}"
        return (f"Recording({str(self.path)!r}, items={self.n_items}, positions={self.n_positions}, "
                f"taps={list(self.taps)}{at})")

    # --- internals -------------------------------------------------------------------------

    def _tap_dataset(self, tap: str) -> h5py.Dataset:
        """The dataset of ``tap`` for this recording's checkpoint (call inside ``_reading``)."""
        return self._view[f"{self._tap_prefix}/{tap}"]

    def _tap(self, name: str) -> TapInfo:
        info = self.taps.get(name)
        if info is None:
            raise RecordingError(self.path, f"has no tap {name!r} (taps: {', '.join(self.taps) or 'none'})")
        return info

    @contextlib.contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        if self._view is None:
            raise ValueError(f"read of {what} from a closed recording ({self.path})")
        try:
            yield
        except (OSError, RuntimeError, KeyError, ValueError, TypeError, UnicodeError) as e:
            raise RecordingError(self.path, f"cannot read {what}: the file is damaged "
                                            f"({storage_checks.hdf5_reason(e)})") from None


def _index(value, what: str) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, got {value!r}") from None


def _range(start, stop, n: int, what: str) -> tuple[int, int]:
    a = 0 if start is None else _index(start, "start")
    b = n if stop is None else _index(stop, "stop")
    if not 0 <= a <= b <= n:
        raise IndexError(f"{what} range [{a}, {b}) is outside [0, {n}) or reversed")
    return a, b


def _units(units, n_units: int, tap: str) -> slice | np.ndarray | None:
    """Normalise a unit selection to None (all), a slice, or an int64 index array in request order."""
    if units is None:
        return None
    if isinstance(units, slice):
        return units
    idx = np.asarray(units)
    if idx.dtype == bool:
        if idx.shape != (n_units,):
            raise IndexError(f"tap {tap!r}: a boolean unit mask needs shape ({n_units},), got {idx.shape}")
        return np.flatnonzero(idx)
    if idx.ndim == 0:
        idx = idx.reshape(1)
    if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
        raise TypeError(f"tap {tap!r}: units must be None, a slice, or a 1-D list of ints, got {units!r}")
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < -n_units or idx.max() >= n_units):
        bad = idx.min() if idx.min() < -n_units else idx.max()
        raise IndexError(f"tap {tap!r}: unit {bad} is outside 0..{n_units - 1} ({n_units} units)")
    return np.where(idx < 0, idx + n_units, idx)


def _block_rows(ds: h5py.Dataset) -> int:
    row_bytes = max(1, ds.shape[1] * ds.dtype.itemsize)
    rows = max(1, _READ_BLOCK_BYTES // row_bytes)
    chunk = ds.chunks[0] if ds.chunks else 1
    return max(chunk, rows // chunk * chunk)
