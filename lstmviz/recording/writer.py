"""Stream items into a recording file, in bounded memory, never leaving a half-written file behind.

The writer fills a temporary file beside the final name (same directory, so the final
``os.replace`` is atomic) and renames it only when ``close()`` has written, flushed and fsync'd
everything. Items are small (a 20-token sentence), so appends are buffered and written in blocks of
about ``FLUSH_BYTES`` into resizable, row-chunked datasets; memory stays bounded however long the
recording grows.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import secrets
import socket
import sys
from array import array
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np
from h5py import h5s

from lstmviz.geometry import AxisGeometry
from lstmviz.recording import format as fmt
from lstmviz.recording.geometry_writer import GeometryWriter, check_pooling
from lstmviz.regular_files import output_problem

log = logging.getLogger(__name__)

FLUSH_BYTES = 16 * 1024 * 1024
"""Buffered bytes that trigger a write to the file; a few of these are the writer's whole footprint."""

WRITE_CHUNK_CACHE = 4 * fmt.CHUNK_TARGET_BYTES
"""HDF5's chunk cache per dataset while writing: a few chunks (the partly filled last one stays cached)."""

_STR = h5py.string_dtype("utf-8")
_INT32_MAX = int(np.iinfo(np.int32).max)
_FLOAT16_OVERFLOW = 65520.0  # the smallest magnitude that rounds to inf in float16 (65504 is the largest finite)
HOST_TAG = re.sub(r"[^A-Za-z0-9-]", "", socket.gethostname())[:32]
"""This machine in temporary file names: a folder shared over the network may hold other machines' writers."""


@dataclass(frozen=True)
class _TapSpec:
    units: int
    dtype: np.dtype
    axis: str
    layer: int | None
    signal: str
    description: str
    units_are: str = ""


@dataclass(frozen=True)
class _DatasetPlan:
    """A resizable dataset created at the first write, when its chunk size can fit its data."""

    dtype: np.dtype
    units: int | None  # None: 1-D
    chunk_rows: int
    attrs: dict
    checksum: bool = False  # a crc32 attribute of the values (1-D datasets and geometry; not taps)


class _Stage:
    """The rows of one dataset waiting to be written: one buffer of the storage dtype that grows to the
    flush size and is then reused, so an append is one copy (cast and any transpose included) and a flush
    writes one contiguous block. String datasets keep a list of parts."""

    __slots__ = ("dtype", "buf", "n", "parts")

    def __init__(self, dtype: np.dtype):
        self.dtype = np.dtype(dtype)
        self.buf: np.ndarray | None = None
        self.n = 0
        self.parts: list[np.ndarray] | None = [] if self.dtype == object else None

    def __bool__(self) -> bool:
        return bool(self.parts) if self.parts is not None else self.n > 0

    def reserve(self, rows: int, tail: tuple[int, ...], capacity: int = 0) -> np.ndarray:
        """``rows`` fresh rows of shape ``tail`` at the end, to be filled by the caller; a buffer that must
        grow takes at least ``capacity`` rows (the rows expected before the next flush: no regrowth)."""
        need = self.n + rows
        if self.buf is None or len(self.buf) < need:
            old = 0 if self.buf is None else len(self.buf)
            grown = np.empty((max(need, 2 * old, capacity), *tail), self.dtype)
            if self.n:
                grown[:self.n] = self.buf[:self.n]
            self.buf = grown
        view = self.buf[self.n:need]
        self.n = need
        return view

    def push(self, data: np.ndarray, capacity: int = 0) -> None:
        if self.parts is not None:
            self.parts.append(data)
        else:
            self.reserve(len(data), data.shape[1:], capacity)[...] = data

    def take(self) -> np.ndarray | None:
        """The waiting rows (a view, valid until the next push) and forget them; ``None`` when empty."""
        if self.parts is not None:
            parts, self.parts = self.parts, []
            return None if not parts else parts[0] if len(parts) == 1 else np.concatenate(parts)
        if not self.n:
            return None
        data, self.n = self.buf[:self.n], 0
        return data


@dataclass(frozen=True)
class _AnnotationSpec:
    kind: str
    level: str
    labels: tuple[str, ...] | None
    description: str


@dataclass(frozen=True)
class _CheckpointSpec:
    step: int | None
    path: str
    sha256: str
    metrics_json: str


class RecordingWriter:
    """Write a recording: declare axes, taps and annotations, append items, then ``close()``.

    Several checkpoints of one training run (format v2 ``/checkpoints``): declare each with
    :meth:`add_checkpoint`. The states passed to :meth:`append_item` are those of the *main*
    checkpoint (:attr:`main_checkpoint`, the last in training order); the states of every other
    checkpoint for the same items, in the same order, go through :meth:`append_checkpoint_item`
    (item ``k`` of a checkpoint after item ``k`` was appended). ``close()`` refuses (and removes the
    temporary file) unless every checkpoint has the states of every item.

    Position geometry (format v3, ``lstmviz.geometry``): :meth:`set_geometry` and ``add_axis(...,
    geometry=)`` say what an axis's positions are (tokens by default; graph nodes, image locations,
    set members, one row per item); :meth:`append_item` then takes each item's graph, image or set
    geometry (``geometry={axis: ...}``), checked against the item's rows before anything is stored
    (``geometry_writer.py``).

    Args:
        path: the final file name. Nothing is written under it before ``close()`` succeeds; an
            existing file there is replaced atomically at that moment and not touched before. A path
            that exists and is not a regular file (a directory, device, FIFO, socket, or a symlink to
            one) is refused at once. Temporary files of earlier writers of ``path`` that were killed
            (their process is gone) are removed, with a warning on the ``lstmviz.recording.writer`` logger.
        vocab: token id -> token string (UTF-8); ``None`` for data without a vocabulary.
        provenance: a JSON-serialisable dict (engine, config, dataset, split, checkpoint, sha256,
            versions, ...). The writer adds ``versions`` of lstmviz, h5py and numpy and ``created``.
        dtype: storage dtype of taps, ``"float32"`` or ``"float16"`` (``add_tap`` may override).

    Use it as a context manager: ``close()`` on success, ``abort()`` on an exception.
    """

    def __init__(self, path: str | os.PathLike, *, vocab: list[str] | None = None,
                 provenance: dict | None = None, dtype: str = "float32"):
        self.path = Path(path)
        self._dtype = _storage_dtype(dtype, "dtype")
        if self.path.is_dir():
            raise IsADirectoryError(f"recording path {str(self.path)!r} is a directory; give a file name")
        _check_output(self.path)
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"directory {str(self.path.parent)!r} for the recording does not exist")
        self._vocab = _check_vocab(vocab)
        provenance_text = provenance_to_json(provenance)

        self._axes: dict[str, str] = {fmt.MAIN_AXIS: ""}
        self._axis_tokens: list[str] = []  # extra tokens axes that store /axes/<axis>/tokens
        self._geometry = GeometryWriter()
        self._geometry.declare(fmt.MAIN_AXIS, None)
        self._taps: dict[str, _TapSpec] = {}
        self._annotations: dict[str, _AnnotationSpec] = {}
        self._checkpoints: dict[str, _CheckpointSpec] = {}
        self._checkpoint_order: list[str] = []  # training order, fixed by _begin()
        self._checkpoint_items: dict[str, int] = {}  # non-main checkpoint -> items appended
        self._item_ends: dict[str, array] = {}  # axis -> end row of every item (only with checkpoints)
        self._n_items = 0
        self._axis_rows: dict[str, int] = {}
        self._plans: dict[str, _DatasetPlan] = {}
        self._datasets: dict[str, h5py.Dataset] = {}
        self._arrays: dict[str, _Stage] = {}
        self._scalars: dict[str, list[int | float]] = {}
        self._buffered_bytes = 0
        self._flush_bytes = FLUSH_BYTES
        self._appends_per_flush = 1  # append_items: batches of its size until a flush (sizes the buffers)
        self._crc: dict[str, int] = {}  # 1-D dataset -> CRC-32 of the values written so far
        self._state = "declaring"  # -> "appending" -> "closed" | "aborted"

        remove_stale_temp_files(self.path)
        # hidden, same directory: os.replace stays atomic and `ls` does not show work in progress;
        # the process id in the name lets a later writer tell a killed writer's leftover from a live one
        self.temp_path = self.path.with_name(fmt.temp_name(self.path.name, os.getpid(), HOST_TAG, secrets.token_hex(4)))
        self._file: h5py.File | None = None
        # a small chunk cache: HDF5 2.0 keeps up to 8 MiB per dataset by default, so most of a recording
        # would stay in memory until close() and reach the disk only then; written chunks go out first
        self._file = h5py.File(self.temp_path, "w", libver=fmt.LIBVER, rdcc_nbytes=WRITE_CHUNK_CACHE, rdcc_w0=1.0)
        try:
            f = self._file
            f.attrs[fmt.INCOMPLETE_ATTR] = True  # marker and version are only set by close()
            vocab_ds = f.create_dataset(fmt.VOCAB, data=np.array(self._vocab, dtype=object), dtype=_STR,
                                        shape=(len(self._vocab),))
            vocab_ds.attrs[fmt.CHECKSUM_ATTR] = np.int64(fmt.crc32_of_strings(self._vocab))
            provenance_ds = f.create_dataset(fmt.PROVENANCE, data=provenance_text, dtype=_STR)
            provenance_ds.attrs[fmt.CHECKSUM_ATTR] = np.int64(fmt.crc32_of_strings([provenance_text]))
        except BaseException:
            self.abort()
            raise

    # --- declaration -----------------------------------------------------------------------

    def add_axis(self, name: str, *, description: str = "", geometry: AxisGeometry | str | None = None,
                 tokens: bool = False) -> None:
        """Declare an extra position axis (e.g. a layer at another resolution) with its own offsets.

        ``geometry``: what its positions are (:class:`lstmviz.geometry.AxisGeometry` or a kind name;
        default ``"tokens"``); a pooled graph level is ``AxisGeometry("graph", pooled_from=<finer axis>)``.
        ``tokens``: the axis (of geometry ``tokens``) stores a token id per position
        (``/axes/<axis>/tokens``, e.g. a decoder's tokens): every :meth:`append_item` then gives them
        (``axis_tokens={name: ids}``).
        """
        self._check_declaring("add_axis")
        fmt.check_plain_name(name, "axis")
        if name in self._axes:
            raise ValueError(f"axis {name!r} is already declared")
        if tokens and AxisGeometry.of(geometry).kind != "tokens":
            raise ValueError(f"axis {name!r}: only an axis of geometry 'tokens' stores tokens, this one is "
                             f"{AxisGeometry.of(geometry).kind!r}")
        self._geometry.declare(name, geometry)
        self._axes[name] = str(description)
        if tokens:
            self._axis_tokens.append(name)

    def set_geometry(self, axis: str, geometry: AxisGeometry | str) -> None:
        """Set the geometry of a declared axis (the main axis ``"positions"`` is ``"tokens"`` until set).

        Before the first item. Every item then gives its item geometry on that axis to
        :meth:`append_item` (graph, image and set axes; tokens and scalar axes need none).
        """
        self._check_declaring("set_geometry")
        if axis not in self._axes:
            raise ValueError(f"axis {axis!r} is not declared (declared: {list(self._axes)}); call add_axis first")
        self._geometry.declare(axis, geometry)

    @property
    def geometries(self) -> dict[str, AxisGeometry]:
        """The declared geometry of every axis (main axis first)."""
        return dict(self._geometry.geometries)

    def add_tap(self, name: str, units: int, *, axis: str = fmt.MAIN_AXIS, layer: int | None = None,
                signal: str = "", description: str = "", dtype: str | None = None, units_are: str = "") -> None:
        """Declare a tap: a ``[rows of axis, units]`` dataset filled by every ``append_item``.

        ``units_are="positions"``: unit ``j`` is main-axis position ``j`` of the same item (an attention
        distribution over the source); ``units`` must then cover the longest item (checked per item)."""
        if units_are not in ("", *fmt.UNITS_ARE):
            raise ValueError(f"tap {name!r}: units_are must be '' or one of {', '.join(fmt.UNITS_ARE)}, "
                             f"got {units_are!r}")
        self._check_declaring("add_tap")
        fmt.check_tap_name(name)
        if name in self._taps:
            raise ValueError(f"tap {name!r} is already declared")
        for other in self._taps:
            if other.startswith(name + "/") or name.startswith(other + "/"):
                raise ValueError(f"tap {name!r} clashes with tap {other!r}: one name may not be a group of the other")
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"tap {name!r}: units must be a positive integer, got {units!r}")
        if axis not in self._axes:
            raise ValueError(f"tap {name!r}: axis {axis!r} is not declared (declared: {list(self._axes)}); call add_axis first")
        if layer is not None and (isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or layer < 0):
            raise ValueError(f"tap {name!r}: layer must be None or a non-negative integer, got {layer!r}")
        storage = self._dtype if dtype is None else _storage_dtype(dtype, f"tap {name!r}: dtype")
        self._taps[name] = _TapSpec(int(units), storage, axis, None if layer is None else int(layer),
                                    str(signal or name.rsplit("/", 1)[-1]), str(description), units_are)

    def add_annotation(self, name: str, *, kind: str, level: str = fmt.POSITION,
                       labels: list[str] | None = None, description: str = "") -> None:
        """Declare an annotation.

        ``kind="categorical"``: int label ids into ``labels`` (-1 = missing); ``kind="numeric"``:
        floats (NaN = missing). ``level="position"``: one value per main-axis position;
        ``level="item"``: one value per item.
        """
        self._check_declaring("add_annotation")
        fmt.check_plain_name(name, "annotation")
        if name in self._annotations:
            raise ValueError(f"annotation {name!r} is already declared")
        if kind not in fmt.KINDS:
            raise ValueError(f"annotation {name!r}: kind must be one of {fmt.KINDS}, got {kind!r}")
        if level not in fmt.LEVELS:
            raise ValueError(f"annotation {name!r}: level must be one of {fmt.LEVELS}, got {level!r}")
        if kind == fmt.CATEGORICAL:
            if labels is None or isinstance(labels, str) or len(labels) == 0:
                raise ValueError(f"annotation {name!r}: a categorical annotation needs a non-empty list of labels, got {labels!r}")
            bad = [x for x in labels if not isinstance(x, str)]
            if bad:
                raise ValueError(f"annotation {name!r}: labels must be strings, got {bad[0]!r}")
            labels = tuple(labels)
        elif labels is not None:
            raise ValueError(f"annotation {name!r}: a numeric annotation has no labels, got {labels!r}")
        self._annotations[name] = _AnnotationSpec(kind, level, labels, str(description))

    def add_checkpoint(self, name: str, *, step: int | None = None, path: str | os.PathLike = "",
                       sha256: str = "", metrics: Mapping | None = None) -> None:
        """Declare a checkpoint of the training run whose states this recording holds.

        ``name``: a single name without ``/`` (``"step-000200"``), unique. ``step``: the training step
        (``None`` = unknown; either every checkpoint has a step or none does). ``path``, ``sha256``:
        the checkpoint file and its hex sha256; ``metrics``: its training metrics (JSON-serialisable).

        Training order is ascending step (declaration order among equal steps, or when no checkpoint
        has a step); the last checkpoint in that order is the main one: its states are the ones given
        to :meth:`append_item` and stored in ``/taps``. Every other checkpoint needs
        :meth:`append_checkpoint_item` for every item.
        """
        self._check_declaring("add_checkpoint")
        fmt.check_plain_name(name, "checkpoint")
        if name in self._checkpoints:
            raise ValueError(f"checkpoint {name!r} is already declared")
        if step is not None and (isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0):
            raise ValueError(f"checkpoint {name!r}: step must be None or a non-negative integer, got {step!r}")
        if self._checkpoints:
            others_have_steps = next(iter(self._checkpoints.values())).step is not None
            if others_have_steps != (step is not None):
                raise ValueError(f"checkpoint {name!r}: either every checkpoint has a step or none does "
                                 f"(training order is by step); got step={step!r} after "
                                 f"{'checkpoints with steps' if others_have_steps else 'checkpoints without steps'}")
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"checkpoint {name!r}: path must be a string, got {type(path).__name__}")
        if not isinstance(sha256, str):
            raise ValueError(f"checkpoint {name!r}: sha256 must be a hex string, got {type(sha256).__name__}")
        if metrics is None:
            metrics = {}
        if not isinstance(metrics, Mapping):
            raise ValueError(f"checkpoint {name!r}: metrics must be a dict, got {type(metrics).__name__}")
        try:
            text = json.dumps(dict(metrics), ensure_ascii=False, default=_json_default)
        except (TypeError, ValueError) as e:
            raise ValueError(f"checkpoint {name!r}: metrics must be JSON-serialisable, {e}") from None
        self._checkpoints[name] = _CheckpointSpec(None if step is None else int(step), os.fspath(path),
                                                  str(sha256), text)

    @property
    def checkpoints(self) -> list[str]:
        """The declared checkpoints in training order (ascending step, ties in declaration order)."""
        if self._checkpoint_order:
            return list(self._checkpoint_order)
        names = list(self._checkpoints)
        return sorted(names, key=lambda n: self._checkpoints[n].step or 0)  # stable: ties keep their order

    @property
    def main_checkpoint(self) -> str | None:
        """The checkpoint whose states :meth:`append_item` takes (the last in training order), or None."""
        order = self.checkpoints
        return order[-1] if order else None

    # --- appending -------------------------------------------------------------------------

    @property
    def n_items(self) -> int:
        """Items appended so far."""
        return self._n_items

    @property
    def n_positions(self) -> int:
        """Main-axis positions appended so far."""
        return self._axis_rows.get(fmt.MAIN_AXIS, 0)

    def _push_rows(self, ids, extra_ids, converted, position_values) -> None:
        """Buffer the per-row data of one or more checked items: tokens, axis tokens, taps, position annotations."""
        self._push_array(fmt.TOKENS, ids)
        for axis, values in extra_ids.items():
            self._push_array(fmt.axis_path(axis, fmt.AXIS_TOKENS), values)
        for name, data in converted.items():
            self._push_array(fmt.tap_path(name), data)
        for name, values in position_values.items():
            self._push_array(f"{fmt.annotation_path(name)}/{fmt.VALUES}", values)

    def append_item(self, tokens, states: Mapping[str, Any],
                    annotations: Mapping[str, Any] | None = None,
                    item_annotations: Mapping[str, Any] | None = None,
                    geometry: Mapping[str, Any] | None = None,
                    axis_tokens: Mapping[str, Any] | None = None) -> int:
        """Append one item and return its index.

        ``tokens``: int ids ``[n]``; ``states[tap]``: ``[rows, units]`` with ``rows == n`` on the main
        axis; ``annotations[name]``: ``[n]`` for every position-level annotation;
        ``item_annotations[name]``: a scalar (or ``None`` = missing) for every item-level one.
        ``geometry[axis]``: the item's :class:`~lstmviz.geometry.GraphGeometry`,
        :class:`~lstmviz.geometry.ImageGeometry` or :class:`~lstmviz.geometry.SetGeometry` for every
        graph, image and set axis; its positions must equal the item's rows on that axis (graph:
        ``num_nodes``, image: ``height * width``, set: ``len(member)``; a scalar axis has 1 row).
        ``axis_tokens[axis]``: the token ids ``[rows on axis]`` of every axis declared with ``tokens=True``.
        Everything is checked before anything is stored, so a ``ValueError`` (a ``GeometryError``
        for geometry, naming the item and axis) leaves the writer as it was.
        """
        self._check_open("append_item")
        if self._state == "declaring":
            self._begin()
        ids = self._check_tokens(tokens)
        n = len(ids)
        rows, converted = self._check_states(states, n)
        self._check_units_are(converted, n)
        extra_ids = self._check_axis_tokens(axis_tokens, rows)
        position_values = self._check_position_annotations(annotations, n)
        item_values = self._check_item_annotations(item_annotations)
        geometry_values = self._geometry.check_item(self._n_items, rows, geometry)

        self._geometry.store(self, geometry_values, rows)
        self._push_rows(ids, extra_ids, converted, position_values)
        for name, value in item_values.items():
            self._push_scalar(f"{fmt.annotation_path(name)}/{fmt.VALUES}", value)
        for axis, count in rows.items():
            self._axis_rows[axis] += count
            self._push_scalar(fmt.axis_offsets_path(axis), self._axis_rows[axis])
            if axis in self._item_ends:
                self._item_ends[axis].append(self._axis_rows[axis])
        self._n_items += 1
        if self._buffered_bytes >= self._flush_bytes:
            self._flush(final=False)
        return self._n_items - 1

    def append_items(self, tokens, states: Mapping[str, Any],
                     annotations: Mapping[str, Any] | None = None,
                     item_annotations: Mapping[str, Any] | None = None,
                     geometry: Mapping[str, Any] | None = None) -> int:
        """Append ``n`` items of one size at once (the rows of every item alike: images of one size) and
        return the index of the first; the same file as ``n`` calls of :meth:`append_item`, without a Python
        call per item.

        ``tokens``: ``[n, L]``; ``states[tap]``: ``[n, rows, units]`` (``rows == L`` on the main axis);
        ``annotations[name]``: ``[n, L]``; ``item_annotations[name]``: ``[n]`` values (``None`` or NaN /
        -1 = missing); ``geometry[axis]``: one item geometry that every item has (an image, scalar or set
        axis: a set's member ids are the same for every item; graph axes, whose geometry differs per item,
        go through :meth:`append_item`).
        Everything is checked before anything is stored.
        """
        self._check_open("append_items")
        if self._axis_tokens or any(spec.units_are for spec in self._taps.values()):
            raise ValueError("append_items cannot store the tokens of an extra axis nor check taps whose units are "
                             "positions; append such items with append_item")
        if self._state == "declaring":
            self._begin()
        t = np.asarray(tokens)
        if t.ndim != 2 or t.shape[0] == 0:
            raise ValueError(f"tokens: expected [items, positions] token ids for append_items, got shape {list(t.shape)}")
        n, length = t.shape
        for axis, g in self._geometry.geometries.items():
            if g.kind == "graph":
                raise ValueError(f"append_items takes items of one geometry; axis {axis!r} is a {g.kind} axis, whose "
                                 f"items differ: append them with append_item")
        ids = self._check_tokens(t.reshape(-1))
        if not isinstance(states, Mapping):
            raise ValueError(f"states: expected a dict tap name -> array, got {type(states).__name__}")
        blocks, per_item = {}, {fmt.MAIN_AXIS: length}
        for name, value in states.items():
            a = np.asarray(value)
            if a.ndim != 3 or a.shape[0] != n:
                raise ValueError(f"tap {name!r}: expected [{n} items, rows, units] for append_items, got {list(a.shape)}")
            spec = self._taps.get(name)
            if spec is not None and spec.axis not in per_item:
                per_item[spec.axis] = a.shape[1]
            blocks[name] = a  # not reshaped: a strided block is laid out by the one copy into the buffer
        rows, converted = self._check_states(blocks, n * length, items=True)
        for name, a in states.items():
            axis = self._taps[name].axis
            if np.shape(a)[1] != per_item[axis]:
                raise ValueError(f"tap {name!r}: expected {per_item[axis]} rows per item on axis {axis!r}, "
                                 f"got {np.shape(a)[1]}")
        position = {k: np.asarray(v).reshape(-1) for k, v in (annotations or {}).items()}
        position_values = self._check_position_annotations(position, n * length)
        item_values = self._check_item_annotation_arrays(item_annotations, n)
        pending = self._geometry.check_item(self._n_items, per_item, geometry)

        stored = sum(a.size * self._taps[name].dtype.itemsize for name, a in converted.items())
        stored += ids.nbytes + sum(v.nbytes for v in position_values.values())
        self._appends_per_flush = max(1, -(-self._flush_bytes // max(1, stored)))
        self._geometry.store_repeated(self, pending, per_item, n)
        self._push_array(fmt.TOKENS, ids)
        for name, data in converted.items():
            self._push_block(fmt.tap_path(name), data)
        for name, values in position_values.items():
            self._push_array(f"{fmt.annotation_path(name)}/{fmt.VALUES}", values)
        for name, values in item_values.items():
            self._push_scalars(f"{fmt.annotation_path(name)}/{fmt.VALUES}", values)
        for axis, count in per_item.items():
            ends = self._axis_rows[axis] + count * np.arange(1, n + 1, dtype=np.int64)
            self._axis_rows[axis] = int(ends[-1])
            self._push_scalars(fmt.axis_offsets_path(axis), ends.tolist())
            if axis in self._item_ends:
                self._item_ends[axis].extend(ends.tolist())
        first = self._n_items
        self._n_items += n
        self._appends_per_flush = 1
        if self._buffered_bytes >= self._flush_bytes:
            self._flush(final=False)
        return first

    def append_ragged(self, tokens, lengths, states: Mapping[str, Any],
                      annotations: Mapping[str, Any] | None = None,
                      item_annotations: Mapping[str, Any] | None = None, *,
                      axis_lengths: Mapping[str, Any] | None = None,
                      axis_tokens: Mapping[str, Any] | None = None) -> int:
        """Append ``n`` items of different lengths at once and return the index of the first; the same file as
        ``n`` calls of :meth:`append_item`, checked as a whole (every axis must be a ``tokens`` axis).

        ``tokens``: the items' token ids concatenated; ``lengths``: ``[n]`` main-axis rows per item;
        ``axis_lengths[axis]``: ``[n]`` rows per item of every extra axis; ``states[tap]``: ``[rows of its
        axis, all items, units]``; ``annotations[name]``: ``[sum of lengths]``; ``item_annotations[name]``:
        ``[n]``; ``axis_tokens[axis]``: the ids of every axis declared with ``tokens=True``, concatenated.
        """
        self._check_open("append_ragged")
        for axis, g in self._geometry.geometries.items():
            if g.kind != "tokens":
                raise ValueError(f"append_ragged takes items of tokens axes only; axis {axis!r} is a {g.kind} axis: "
                                 f"append its items with append_item")
        if self._state == "declaring":
            self._begin()
        counts = {fmt.MAIN_AXIS: np.asarray(lengths)}
        given = {} if axis_lengths is None else dict(axis_lengths)
        _check_keys("axis_lengths", given, {a: None for a in self._axes if a != fmt.MAIN_AXIS}, "extra axis")
        counts.update({a: np.asarray(v) for a, v in given.items()})
        n = len(counts[fmt.MAIN_AXIS])
        for axis, c in counts.items():
            if c.ndim != 1 or c.dtype.kind not in "iu" or len(c) != n or n == 0 or (c < 1).any():
                raise ValueError(f"lengths of axis {axis!r}: expected {n or 'at least 1'} positive row counts (one per "
                                 f"item; zero-length items are not allowed), got {c.tolist()}")
        ids = self._check_tokens(tokens)
        total = int(counts[fmt.MAIN_AXIS].sum())
        if len(ids) != total:
            raise ValueError(f"tokens: expected {total} token ids (the sum of lengths), got {len(ids)}")
        rows, converted = self._check_states(states, total)
        for axis, c in counts.items():
            if rows.get(axis, int(c.sum())) != int(c.sum()):
                raise ValueError(f"axis {axis!r}: the taps have {rows[axis]} rows but the lengths sum to {int(c.sum())}")
        self._check_units_are(converted, int(counts[fmt.MAIN_AXIS].max()))
        extra_ids = self._check_axis_tokens(axis_tokens, rows)
        position_values = self._check_position_annotations(
            {k: np.asarray(v).reshape(-1) for k, v in (annotations or {}).items()}, total)
        item_values = self._check_item_annotation_arrays(item_annotations, n)

        self._push_rows(ids, extra_ids, converted, position_values)
        for name, values in item_values.items():
            self._push_scalars(f"{fmt.annotation_path(name)}/{fmt.VALUES}", values)
        for axis, c in counts.items():
            ends = self._axis_rows[axis] + np.cumsum(c.astype(np.int64))
            self._axis_rows[axis] = int(ends[-1])
            self._push_scalars(fmt.axis_offsets_path(axis), ends.tolist())
            if axis in self._item_ends:
                self._item_ends[axis].extend(ends.tolist())
        first = self._n_items
        self._n_items += n
        if self._buffered_bytes >= self._flush_bytes:
            self._flush(final=False)
        return first

    def append_checkpoint_item(self, checkpoint: str, states: Mapping[str, Any]) -> int:
        """Append the states of the next item of a (non-main) checkpoint and return the item's index.

        Item ``k`` of a checkpoint is the ``k``-th call for that checkpoint; it must already have been
        appended with :meth:`append_item`, and ``states`` must have exactly its rows (same taps,
        units, and rows on every axis as the main checkpoint's states of that item). Everything is
        checked before anything is stored, so a ``ValueError`` leaves the writer as it was.
        """
        self._check_open("append_checkpoint_item")
        if checkpoint not in self._checkpoints:
            declared = ", ".join(map(repr, self._checkpoints)) or "none"
            raise ValueError(f"checkpoint {checkpoint!r} is not declared (declared: {declared}); "
                             f"call add_checkpoint before the first item")
        if checkpoint == self.main_checkpoint:
            raise ValueError(f"checkpoint {checkpoint!r} is the main checkpoint (the last in training order): "
                             f"its states are the ones given to append_item")
        k = self._checkpoint_items.get(checkpoint, 0)
        if k >= self._n_items:
            raise ValueError(f"checkpoint {checkpoint!r}: item {k} has not been appended yet "
                             f"({self._n_items} items so far); append it with append_item first")
        expected = {axis: ends[k] - (ends[k - 1] if k else 0) for axis, ends in self._item_ends.items()}
        try:
            rows, converted = self._check_states(states, expected[fmt.MAIN_AXIS])
            for axis, count in rows.items():
                if count != expected[axis]:
                    first = next(n for n, spec in self._taps.items() if spec.axis == axis)
                    raise ValueError(f"tap {first!r}: expected {expected[axis]} rows on axis {axis!r} "
                                     f"(as the main checkpoint's item {k}), got {count}")
        except ValueError as e:
            raise ValueError(f"checkpoint {checkpoint!r}, item {k}: {e}") from None
        for name, data in converted.items():
            self._push_array(fmt.checkpoint_tap_path(checkpoint, name), data)
        self._checkpoint_items[checkpoint] = k + 1
        if self._buffered_bytes >= self._flush_bytes:
            self._flush(final=False)
        return k

    def flush(self) -> None:
        """Write buffered items into the temporary file (the final name is still untouched)."""
        self._flush(final=False)
        if self._file is not None:
            self._file.flush()

    def _flush(self, final: bool) -> None:
        self._check_open("flush")
        if self._state == "declaring":
            return
        try:
            for path, stage in self._arrays.items():
                if stage or (final and path not in self._datasets):
                    self._extend(path, stage.take(), final)
            for path, values in self._scalars.items():
                if values or (final and path not in self._datasets):
                    self._extend(path, np.asarray(values, dtype=self._plans[path].dtype), final)
                    values.clear()
            self._buffered_bytes = 0
            self._start_writeback()
        except BaseException:
            self.abort()  # a failed write (disk full) leaves nothing behind
            raise

    # --- finishing -------------------------------------------------------------------------

    def close(self) -> Path:
        """Write everything, fsync, and rename the temporary file to the final name; returns it."""
        if self._state == "closed":
            return self.path
        self._check_open("close")
        try:
            if self._state == "declaring":
                self._begin()
            self._check_checkpoints_complete()
            self._flush(final=True)
            f = self._file
            self._link_main_checkpoint()
            for path, ds in self._datasets.items():
                if self._plans[path].checksum:
                    ds.attrs[fmt.CHECKSUM_ATTR] = np.int64(self._crc.get(path, 0))
            del f.attrs[fmt.INCOMPLETE_ATTR]
            f.attrs[fmt.MARKER_ATTR] = fmt.MARKER_VALUE
            f.attrs[fmt.VERSION_ATTR] = np.int64(fmt.FORMAT_VERSION)
            f.attrs[fmt.TEXT_CHECKSUM_ATTR] = np.int64(fmt.crc32_of_text_attributes(f))
            f.flush()
            f.close()
            self._file = None
            fsync_path(self.temp_path)
            _check_output(self.path)  # again: the path may have been replaced by a device meanwhile
            os.replace(self.temp_path, self.path)
            fsync_directory(self.path.parent)
        except BaseException:
            self.abort()
            raise
        self._state = "closed"
        return self.path

    def abort(self) -> None:
        """Discard the recording: close and remove the temporary file. The final name is never touched."""
        if self._state in ("closed", "aborted"):
            return
        self._state = "aborted"
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.temp_path)
        self._arrays.clear()
        self._scalars.clear()

    def __enter__(self) -> "RecordingWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    def __del__(self):
        # a writer dropped without close() must not leave its temporary file behind
        with contextlib.suppress(Exception):
            if getattr(self, "_state", "aborted") not in ("closed", "aborted"):
                self.abort()

    def __repr__(self) -> str:
        return (f"RecordingWriter({str(self.path)!r}, taps={len(self._taps)}, items={self._n_items}, "
                f"positions={self.n_positions}, state={self._state!r})")

    # --- internals -------------------------------------------------------------------------

    def _start_writeback(self) -> None:
        """Let the disk start on what was just written (see :func:`start_writeback`): the ``fsync`` in
        ``close()`` then waits for the last block only, not for the whole file."""
        with contextlib.suppress(Exception):
            handle = self._file.id.get_vfd_handle()  # the file descriptor (HDF5's default sec2 driver)
            if isinstance(handle, int):
                start_writeback(handle)

    def _check_declaring(self, what: str) -> None:
        self._check_open(what)
        if self._state != "declaring":
            raise RuntimeError(f"{what}: declare axes, taps and annotations before the first append_item")

    def _check_open(self, what: str) -> None:
        if self._state in ("closed", "aborted"):
            raise RuntimeError(f"{what}: the writer for {str(self.path)!r} is already {self._state}")

    def _begin(self) -> None:
        """Freeze the declarations and create the (empty, resizable) datasets."""
        unused = [a for a in self._axes if a != fmt.MAIN_AXIS and not any(t.axis == a for t in self._taps.values())]
        if unused:
            raise ValueError(f"axis {unused[0]!r} has no taps; declare a tap on it (add_tap(..., axis={unused[0]!r})) or do not add it")
        check_pooling(self._geometry.geometries)  # before anything is created: the declarations stay open
        f = self._file
        for axis, description in self._axes.items():
            group = f.create_group(f"{fmt.AXES}/{axis}")
            group.attrs[fmt.DESCRIPTION] = description
            self._plan_vector(fmt.axis_offsets_path(axis), fmt.OFFSET_DTYPE, scalar=True)
            self._scalars[fmt.axis_offsets_path(axis)].append(0)
            self._axis_rows[axis] = 0
        self._geometry.begin(self, f)
        self._plan_vector(fmt.TOKENS, fmt.TOKEN_DTYPE)
        for axis in self._axis_tokens:
            self._plan_vector(fmt.axis_path(axis, fmt.AXIS_TOKENS), fmt.TOKEN_DTYPE)

        taps = f.create_group(fmt.TAPS)
        taps.attrs.create(fmt.ORDER_ATTR, np.array(list(self._taps), dtype=object), dtype=_STR)
        for name, spec in self._taps.items():
            attrs = {"layer": np.int64(fmt.NO_LAYER if spec.layer is None else spec.layer),
                     "signal": spec.signal, "axis": spec.axis, "description": spec.description}
            if spec.units_are:
                attrs[fmt.UNITS_ARE_ATTR] = spec.units_are
            self._plans[fmt.tap_path(name)] = _DatasetPlan(
                spec.dtype, spec.units, fmt.tap_chunk_rows(spec.units, spec.dtype.itemsize), attrs)
            self._arrays[fmt.tap_path(name)] = _Stage(spec.dtype)

        annotations = f.create_group(fmt.ANNOTATIONS)
        annotations.attrs.create(fmt.ORDER_ATTR, np.array(list(self._annotations), dtype=object), dtype=_STR)
        for name, spec in self._annotations.items():
            group = f.create_group(fmt.annotation_path(name))
            group.attrs[fmt.KIND] = spec.kind
            group.attrs[fmt.LEVEL] = spec.level
            group.attrs[fmt.DESCRIPTION] = spec.description
            dtype = fmt.CATEGORICAL_DTYPE if spec.kind == fmt.CATEGORICAL else fmt.NUMERIC_DTYPE
            self._plan_vector(f"{fmt.annotation_path(name)}/{fmt.VALUES}", dtype, scalar=spec.level == fmt.ITEM)
            if spec.labels is not None:
                labels = group.create_dataset(fmt.LABELS, data=np.array(spec.labels, dtype=object), dtype=_STR)
                labels.attrs[fmt.CHECKSUM_ATTR] = np.int64(fmt.crc32_of_strings(spec.labels))
        derived = f.create_group(fmt.DERIVED)
        derived.attrs[fmt.DESCRIPTION] = "reserved for caches that can always be rebuilt from the raw data; empty"
        self._begin_checkpoints()
        self._state = "appending"

    def _begin_checkpoints(self) -> None:
        """Create ``/checkpoints`` (always; empty without checkpoints) and plan the non-main states."""
        f = self._file
        self._checkpoint_order = order = self.checkpoints
        main = order[-1] if order else ""
        group = f.create_group(fmt.CHECKPOINTS)
        group.attrs.create(fmt.ORDER_ATTR, np.array(order, dtype=object), dtype=_STR)
        group.attrs[fmt.MAIN_ATTR] = main
        for name in order:
            spec = self._checkpoints[name]
            g = group.create_group(name)
            g.attrs["step"] = np.int64(fmt.NO_STEP if spec.step is None else spec.step)
            g.attrs["path"] = spec.path
            g.attrs["sha256"] = spec.sha256
            g.attrs["metrics"] = spec.metrics_json
            g.create_group(fmt.TAPS)
            if name == main:
                continue  # hard links to /taps, made by close()
            self._checkpoint_items[name] = 0
            for tap in self._taps:
                main_plan = self._plans[fmt.tap_path(tap)]
                self._plans[fmt.checkpoint_tap_path(name, tap)] = main_plan
                self._arrays[fmt.checkpoint_tap_path(name, tap)] = _Stage(main_plan.dtype)
        if len(order) > 1:
            self._item_ends = {axis: array("q") for axis in self._axes}

    def _check_checkpoints_complete(self) -> None:
        for name, count in self._checkpoint_items.items():
            if count != self._n_items:
                raise ValueError(
                    f"checkpoint {name!r} has the states of {count} of the {self._n_items} items; every "
                    f"checkpoint needs the states of every item (append_checkpoint_item) before close()")

    def _link_main_checkpoint(self) -> None:
        """The main checkpoint's states are /taps itself: hard links, no copy."""
        main = self.main_checkpoint
        if main is None:
            return
        for tap in self._taps:
            self._file[fmt.checkpoint_tap_path(main, tap)] = self._datasets[fmt.tap_path(tap)]

    def _plan_vector(self, path: str, dtype: np.dtype, *, scalar: bool = False) -> None:
        self._plans[path] = _DatasetPlan(dtype, None, fmt.vector_chunk_len(dtype.itemsize), {}, checksum=True)
        if scalar:
            self._scalars[path] = []
        else:
            self._arrays[path] = _Stage(dtype)

    def _plan_matrix(self, path: str, dtype: np.dtype, columns: int) -> None:
        """A checksummed ``[rows, columns]`` dataset of small rows (graph edges, node coordinates)."""
        self._plans[path] = _DatasetPlan(dtype, columns, fmt.tap_chunk_rows(columns, dtype.itemsize), {},
                                         checksum=True)
        self._arrays[path] = _Stage(dtype)

    def _extend(self, path: str, data: np.ndarray | None, final: bool) -> None:
        ds = self._datasets.get(path)
        if ds is None:
            ds = self._datasets[path] = self._create(path, 0 if data is None else len(data), final)
        if data is None or len(data) == 0:
            return
        n = ds.shape[0]
        plan = self._plans[path]
        if data.dtype == plan.dtype and data.dtype != object and data.flags.c_contiguous:
            # the buffers hold the dataset's dtype: HDF5's low-level write, without h5py's per-call
            # selection and conversion machinery (~40 us a call, a few hundred calls a recording)
            shape = data.shape
            ds.id.set_extent((n + shape[0], *shape[1:]))
            target = ds.id.get_space()
            target.select_hyperslab((n, *(0,) * (len(shape) - 1)), shape)
            ds.id.write(h5s.create_simple(shape), target, data)
        else:
            ds.resize(n + len(data), axis=0)
            ds[n:] = data
        if plan.checksum:  # tokens, offsets, annotation values, geometry (taps are not, see format.md)
            if data.dtype == object:
                self._crc[path] = fmt.crc32_of_strings(data, self._crc.get(path, 0))
            else:
                self._crc[path] = fmt.crc32_of_array(np.asarray(data, dtype=ds.dtype), self._crc.get(path, 0))

    def _create(self, path: str, rows: int, final: bool) -> h5py.Dataset:
        """Create a planned dataset; if its first write is also its last, the chunk just fits the data.

        (HDF5 allocates whole chunks, so a small recording would otherwise carry 64 KiB per dataset.)
        """
        plan = self._plans[path]
        chunk_rows = max(1, min(plan.chunk_rows, rows)) if final else plan.chunk_rows
        tail = () if plan.units is None else (plan.units,)
        ds = self._file.create_dataset(path, shape=(0, *tail), maxshape=(None, *tail),
                                       chunks=(chunk_rows, *tail), dtype=plan.dtype)
        for key, value in plan.attrs.items():
            ds.attrs[key] = value
        return ds

    def _push_array(self, path: str, data: np.ndarray) -> None:
        """Buffer ``data`` (copied: the caller may reuse its array; cast to the dataset's dtype)."""
        stage = self._arrays[path]
        stage.push(data, len(data) * self._appends_per_flush)
        self._buffered_bytes += data.nbytes if stage.parts is not None else data.size * stage.dtype.itemsize

    def _push_block(self, path: str, data: np.ndarray) -> None:
        """Buffer ``[items, rows, units]`` as ``items * rows`` rows in one copy (a strided block, e.g. a
        channels-first feature map seen as ``[items, positions, channels]``, is transposed by that copy)."""
        items, rows, units = data.shape
        stage = self._arrays[path]
        stage.reserve(items * rows, (units,), items * rows * self._appends_per_flush).reshape(items, rows, units)[...] = data
        self._buffered_bytes += data.size * stage.dtype.itemsize  # as stored, not as given

    def _push_scalars(self, path: str, values: list) -> None:
        self._scalars[path].extend(values)
        self._buffered_bytes += 8 * len(values)

    def _push_scalar(self, path: str, value) -> None:
        self._scalars[path].append(value)
        self._buffered_bytes += 8

    def _check_tokens(self, tokens) -> np.ndarray:
        t = np.asarray(tokens)
        if t.ndim != 1:
            raise ValueError(f"tokens: expected a 1-D array of token ids, got shape {t.shape}")
        if len(t) == 0:
            raise ValueError("tokens: expected at least 1 token, got an empty item (zero-length items are not allowed)")
        if t.dtype.kind == "f":
            bad = ~np.isfinite(t)
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(f"tokens: expected integer token ids, got {t[i]} at index {i}")
            frac = t != np.floor(t)
            if frac.any():
                i = int(np.argmax(frac))
                raise ValueError(f"tokens: expected integer token ids, got {t[i]} at index {i}")
        elif t.dtype.kind not in "iu":
            raise ValueError(f"tokens: expected integer token ids, got dtype {t.dtype}")
        lo, hi = t.min(), t.max()
        limit = len(self._vocab) if self._vocab else _INT32_MAX + 1
        if lo < 0 or hi >= limit:
            i = int(np.argmax(t < 0)) if lo < 0 else int(np.argmax(t >= limit))
            where = f"the vocabulary of {len(self._vocab)} entries" if self._vocab else "int32"
            raise ValueError(f"tokens: expected ids in 0..{limit - 1} ({where}), got {t[i]} at index {i}")
        return t.astype(fmt.TOKEN_DTYPE, copy=False)  # copied into the buffer by _push_array

    def _check_states(self, states: Mapping[str, Any], n: int,
                      items: bool = False) -> tuple[dict[str, int], dict[str, np.ndarray]]:
        """Check every tap's values; returns the rows per axis and the checked arrays, not yet copied
        (``_push_array`` / ``_push_block`` copy them into the buffers, cast to the storage dtype).

        ``items``: each value is a ``[items, rows, units]`` block (``append_items``), its rows are
        ``items * rows``; otherwise ``[rows, units]``."""
        if not isinstance(states, Mapping):
            raise ValueError(f"states: expected a dict tap name -> array, got {type(states).__name__}")
        _check_keys("states", states, self._taps, "tap")
        rows: dict[str, int] = {fmt.MAIN_AXIS: n}
        first_on_axis: dict[str, str] = {}
        checked: dict[str, np.ndarray] = {}
        for name, spec in self._taps.items():
            a = np.asarray(states[name])
            expected_rows = rows.get(spec.axis)
            shown = "n" if expected_rows is None else expected_rows
            flat = [a.shape[0] * a.shape[1], *a.shape[2:]] if items and a.ndim == 3 else list(a.shape)
            if len(flat) != 2 or flat[1] != spec.units:
                raise ValueError(f"tap {name!r}: expected shape [{shown}, {spec.units}], got {flat}")
            if a.dtype.kind not in "fiu":
                raise ValueError(f"tap {name!r}: expected floating-point values, got dtype {a.dtype}")
            if expected_rows is None:
                if flat[0] == 0:
                    raise ValueError(f"tap {name!r}: expected at least 1 row on axis {spec.axis!r}, got 0 (zero-length items are not allowed)")
                rows[spec.axis] = flat[0]
                first_on_axis[spec.axis] = name
            elif flat[0] != expected_rows:
                why = (f"one per token, {n} tokens" if spec.axis == fmt.MAIN_AXIS
                       else f"as many as tap {first_on_axis[spec.axis]!r} on axis {spec.axis!r}")
                raise ValueError(f"tap {name!r}: expected {expected_rows} rows ({why}), got {flat[0]}")
            # checked on the input: numpy's float16 comparisons are emulated and 10x slower
            # (float16 input is representable as it is; comparing it with 65520 would itself overflow)
            if spec.dtype == np.float16 and a.dtype.kind == "f" and a.dtype.itemsize > 2:
                _check_float16_range(name, a)
            checked[name] = a
        return rows, checked

    def _check_units_are(self, states: Mapping[str, np.ndarray], n: int) -> None:
        """A tap whose units are the item's positions has a unit for each of its ``n`` positions."""
        for name, spec in self._taps.items():
            if spec.units_are == "positions" and spec.units < n:
                raise ValueError(f"tap {name!r}: its units are the item's positions, but the item has {n} positions "
                                 f"and the tap {spec.units} units; declare it with units >= the longest item")

    def _check_axis_tokens(self, axis_tokens, rows: Mapping[str, int]) -> dict[str, np.ndarray]:
        given = {} if axis_tokens is None else axis_tokens
        if not isinstance(given, Mapping):
            raise ValueError(f"axis_tokens: expected a dict axis -> token ids, got {type(given).__name__}")
        _check_keys("axis_tokens", given, dict.fromkeys(self._axis_tokens), "axis with tokens")
        out = {}
        for axis in self._axis_tokens:
            try:
                ids = self._check_tokens(given[axis])
            except ValueError as e:
                raise ValueError(f"axis_tokens[{axis!r}]: {e}") from None
            if len(ids) != rows[axis]:
                raise ValueError(f"axis_tokens[{axis!r}]: expected {rows[axis]} token ids (one per row of the axis), "
                                 f"got {len(ids)}")
            out[axis] = ids
        return out

    def _check_position_annotations(self, annotations, n: int) -> dict[str, np.ndarray]:
        declared = {k: s for k, s in self._annotations.items() if s.level == fmt.POSITION}
        given = {} if annotations is None else annotations
        _check_keys("annotations", given, declared, "position-level annotation")
        out = {}
        for name, spec in declared.items():
            a = np.asarray(given[name])
            if a.shape != (n,):
                raise ValueError(f"annotation {name!r}: expected shape [{n}] (one value per token), got {list(a.shape)}")
            out[name] = _annotation_values(name, spec, a)
        return out

    def _check_item_annotations(self, item_annotations) -> dict[str, int | float]:
        declared = {k: s for k, s in self._annotations.items() if s.level == fmt.ITEM}
        given = {} if item_annotations is None else item_annotations
        _check_keys("item_annotations", given, declared, "item-level annotation")
        out = {}
        for name, spec in declared.items():
            value = given[name]
            if value is None:
                out[name] = fmt.MISSING_LABEL if spec.kind == fmt.CATEGORICAL else math.nan
                continue
            a = np.asarray(value)
            if a.shape != ():
                raise ValueError(f"item annotation {name!r}: expected one scalar per item, got shape {list(a.shape)}")
            out[name] = _annotation_values(name, spec, a.reshape(1))[0].item()
        return out

    def _check_item_annotation_arrays(self, item_annotations, n: int) -> dict[str, list]:
        """``append_items``: ``[n]`` values per declared item-level annotation (``None`` = missing), checked."""
        declared = {k: s for k, s in self._annotations.items() if s.level == fmt.ITEM}
        given = {} if item_annotations is None else item_annotations
        _check_keys("item_annotations", given, declared, "item-level annotation")
        out = {}
        for name, spec in declared.items():
            values = given[name]
            a = np.asarray(values)
            if a.dtype == object:  # None = missing
                fill = fmt.MISSING_LABEL if spec.kind == fmt.CATEGORICAL else math.nan
                a = np.asarray([fill if v is None else v for v in values])
            if a.shape != (n,):
                raise ValueError(f"item annotation {name!r}: expected [{n}] values (one per item), got shape "
                                 f"{list(a.shape)}")
            out[name] = _annotation_values(name, spec, a).tolist()
        return out


def _check_float16_range(name: str, a: np.ndarray) -> None:
    """Refuse a finite value that float16 would turn into inf (|x| >= 65520); inf and NaN themselves pass.

    The largest and smallest values come first (one vectorised pass each, no temporary); only when one of
    them is that large, or NaN (which hides the others from max and min), are the values looked at one by one."""
    if a.size == 0:
        return
    hi, lo = float(a.max()), float(a.min())
    if max(hi, -lo) < _FLOAT16_OVERFLOW:  # False for NaN too
        return
    overflow = np.abs(a) >= _FLOAT16_OVERFLOW
    if overflow.any() and np.isfinite(a[overflow]).any():
        big = float(np.abs(a[overflow & np.isfinite(a)]).max())
        raise ValueError(f"tap {name!r}: value {big:.4g} overflows float16 (largest 65504); "
                         f"store this tap as float32 (add_tap(..., dtype='float32'))")


def _annotation_values(name: str, spec: _AnnotationSpec, a: np.ndarray) -> np.ndarray:
    """Check and convert annotation values: label ids in range, or numbers."""
    if spec.kind == fmt.CATEGORICAL:
        if a.dtype.kind not in "iu":
            raise ValueError(f"annotation {name!r}: expected integer label ids (-1 = missing), got dtype {a.dtype}")
        n_labels = len(spec.labels)
        bad = (a < fmt.MISSING_LABEL) | (a >= n_labels)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"annotation {name!r}: expected label ids in -1..{n_labels - 1} "
                             f"({n_labels} labels, -1 = missing), got {a[i]} at index {i}")
        return a.astype(fmt.CATEGORICAL_DTYPE, copy=False)
    if a.dtype.kind not in "fiu":
        raise ValueError(f"annotation {name!r}: expected numbers (NaN = missing), got dtype {a.dtype}")
    return a.astype(fmt.NUMERIC_DTYPE, copy=False)


def _check_keys(what: str, given: Mapping, declared: Mapping, noun: str) -> None:
    missing = [k for k in declared if k not in given]
    extra = [k for k in given if k not in declared]
    if missing:
        raise ValueError(f"{what}: expected values for every declared {noun} {list(declared)}, missing {missing}")
    if extra:
        raise ValueError(f"{what}: got undeclared {noun}s {extra} (declared: {list(declared)}); declare them before the first item")


def _storage_dtype(dtype: str, what: str) -> np.dtype:
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in fmt.TAP_DTYPES:
        raise ValueError(f"{what}: expected one of {fmt.TAP_DTYPES}, got {dtype!r}")
    return np.dtype(name)


def _check_vocab(vocab) -> list[str]:
    if vocab is None:
        return []
    if isinstance(vocab, str):
        raise ValueError("vocab: expected a list of token strings, got a single string")
    vocab = list(vocab)
    for i, token in enumerate(vocab):
        if not isinstance(token, str):
            raise ValueError(f"vocab: expected strings, got {token!r} ({type(token).__name__}) at id {i}")
    return vocab


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} {value!r} cannot be stored as JSON")


def provenance_to_json(provenance: dict | None) -> str:
    """The provenance as stored: the caller's dict plus library versions and the creation time."""
    if provenance is None:
        provenance = {}
    if not isinstance(provenance, Mapping):
        raise ValueError(f"provenance: expected a dict, got {type(provenance).__name__}")
    import lstmviz

    record = dict(provenance)
    versions = record.get("versions") or {}
    if not isinstance(versions, Mapping):
        raise ValueError(f"provenance['versions']: expected a dict library -> version, got {versions!r}")
    versions = dict(versions)
    versions.update(lstmviz=lstmviz.__version__, h5py=h5py.__version__, numpy=np.__version__)
    record["versions"] = versions
    # microseconds: two recordings made in one second (a shard recorded again) keep distinct provenance
    record["created"] = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    try:
        return json.dumps(record, ensure_ascii=False, default=_json_default)
    except (TypeError, ValueError) as e:
        raise ValueError(f"provenance: expected JSON-serialisable values (dicts, lists, str, numbers), {e}") from None


def _check_output(path: Path) -> None:
    problem = output_problem(path)
    if problem is not None:
        if path.is_dir():
            raise IsADirectoryError(f"recording path {str(path)!r} is a directory; give a file name")
        raise ValueError(f"recording path {str(path)!r} {problem}")


def remove_stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of earlier writers of ``path`` that were killed; returns them.

    Only files whose name says they were written on this machine by a process that no longer runs
    are removed: a live writer's file (or one whose writer cannot be told) is never touched.
    """
    path = Path(path)
    removed: list[tuple[Path, int]] = []
    prefix = f".{path.name}."
    try:
        entries = [e for e in os.scandir(path.parent) if e.name.startswith(prefix)]
    except OSError:
        return []
    for entry in entries:
        parsed = fmt.parse_temp_name(entry.name)
        if parsed is None or parsed.final != path.name or parsed.pid is None or parsed.host != HOST_TAG:
            continue
        if process_is_alive(parsed.pid):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            size = entry.stat(follow_symlinks=False).st_size
            os.remove(entry.path)
        except OSError:  # removed by another writer meanwhile, or not ours to remove
            continue
        removed.append((Path(entry.path), size))
    if removed:
        from lstmviz.memory import format_bytes

        names = ", ".join(f"{p.name} ({format_bytes(size)})" for p, size in removed)
        log.warning("removed %d unfinished recording%s of %s left by killed writers: %s",
                    len(removed), "" if len(removed) == 1 else "s", path, names)
    return [p for p, _ in removed]


def process_is_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine; True when that cannot be told (never remove in doubt)."""
    if os.name != "posix" or pid <= 0:
        return True  # os.kill(pid, 0) is not a harmless probe on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    return True


_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writeback of the dirty pages, do not wait for it
_sync_file_range = None  # the libc function once looked up, False where there is none


def start_writeback(fd: int) -> None:
    """Ask the kernel to start writing ``fd``'s dirty pages to disk now, without waiting (Linux
    ``sync_file_range(SYNC_FILE_RANGE_WRITE)``; elsewhere nothing). Only a head start for the ``fsync``
    that ``close()`` still does: the disk writes while the model computes the next batches, so that
    ``fsync`` has little left to wait for. It promises nothing about durability and never fails."""
    global _sync_file_range
    if _sync_file_range is None:
        _sync_file_range = False
        if sys.platform.startswith("linux"):
            with contextlib.suppress(Exception):
                import ctypes

                fn = ctypes.CDLL(None, use_errno=True).sync_file_range
                fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
                fn.restype = ctypes.c_int
                _sync_file_range = fn
    if _sync_file_range:
        with contextlib.suppress(Exception):
            _sync_file_range(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(path: Path) -> None:
    """Make the rename durable; not every platform can open a directory, which is fine."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
