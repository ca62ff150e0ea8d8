"""The recording file format: names, constants and the small rules shared by writer and reader.

``docs/format.md`` is the specification; this module is its executable half. Every HDF5 path and
attribute name used by the writer, the reader, validation and migrations is defined here, so the
layout is changed in one place (and a change of layout means a new ``FORMAT_VERSION`` and a
migration, see ``upgrades.py``).

Layout of format version 2 (``N`` positions on the main axis, ``I`` items)::

    /                      attrs: lstmviz = "recording", format_version = 2
    /axes/positions/item_offsets     int64 [I + 1]
    /axes/<axis>/item_offsets        int64 [I + 1]     (extra axes)
    /tokens                int32 [N]
    /vocab                 UTF-8 string [V]
    /provenance            UTF-8 string, scalar (JSON)
    /taps/<tap name>       float32|float16 [rows of its axis, units]   attrs: layer, signal, axis, description
    /annotations/<name>/values   int32 [N or I] (categorical) | float64 [N or I] (numeric)
    /annotations/<name>/labels   UTF-8 string [L] (categorical only)
    /derived               empty group reserved for rebuildable caches
    /checkpoints           attrs: order = names in training order (may be empty), main = name or ""
    /checkpoints/<name>    attrs: step (int64, -1 = unknown), path, sha256, metrics (JSON object)
    /checkpoints/<name>/taps/<tap name>   same shape and dtype as /taps/<tap name>; for the main
                           checkpoint an HDF5 hard link to /taps/<tap name> (the same dataset)

Version 2 added ``/checkpoints`` (several checkpoints of one training run in one recording); a v1
file is upgraded by ``upgrades._v1_to_v2`` (an empty ``/checkpoints``).

Version 3 adds position geometry (``lstmviz.geometry``) under every ``/axes/<axis>``::

    /axes/<axis>           attrs: geometry = "tokens" | "graph" | "image" | "set" | "scalar"
      graph:  attrs directed (int64 0/1), pooled_from ("" = none)
              edge_offsets int64 [I + 1]   edges of item i: rows edge_offsets[i]:edge_offsets[i + 1]
              edges        int32 [E, 2]    item-local node indices (0 .. nodes of the item - 1)
              edge_weights float32 [E]     optional (absent: every weight 1)
              coordinates  float32 [rows, 2]  optional fixed layout (x, y), finite
              node_names   UTF-8 string [rows]  optional
              filler       uint8 [rows]    optional (absent: no filler)
              pooling_map  int32 [rows of pooled_from]  iff pooled_from: item-local node of this axis
                           each finer node pools into (-1: none)
      image:  attrs stride, receptive_field int64 [2], offset float64 [2] (y, x)
              height, width  int32 [I]     height * width == rows of the item
      set:    members      UTF-8 string [M];  member int32 [rows] (0 .. M - 1)
      scalar: one row per item;  tokens: nothing more

Every 1-D dataset above and ``edges`` carry a ``crc32`` attribute; a v2 file is upgraded by
``upgrades._v2_to_v3`` (geometry "tokens" on every axis, metadata only).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstmviz.errors import ExpectedError


class RecordingError(ExpectedError):
    """A recording file cannot be used: ``str(e) == f"{e.path}: {e.problem}"``.

    Raised by ``open_recording`` and by ``Recording`` methods instead of any h5py or OS error, so a
    user always reads which file is at fault and what is wrong with it.
    """

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # picklable across worker processes despite the two-argument constructor
        return (type(self), (self.path, self.problem))


@dataclass(frozen=True)
class TapInfo:
    """One tap of a recording: a ``[rows of its axis, units]`` dataset."""

    name: str
    units: int
    dtype: str  # storage dtype, "float32" or "float16"; reads always return float32
    axis: str
    layer: int | None
    signal: str
    description: str
    units_are: str = ""  # "positions": unit j = main-axis position j of the item (UNITS_ARE_ATTR)


@dataclass(frozen=True)
class AnnotationInfo:
    """One annotation: categorical (label ids, -1 = missing) or numeric (NaN = missing)."""

    name: str
    kind: str  # "categorical" | "numeric"
    level: str  # "position" | "item"
    labels: list[str] | None
    description: str


@dataclass(frozen=True)
class CheckpointInfo:
    """One checkpoint of a multi-checkpoint recording (format v2 ``/checkpoints/<name>``).

    ``is_main`` is True for exactly one checkpoint: the one whose states are the recording's main
    ``/taps`` (the last one in training order when lstmviz wrote the file).
    """

    name: str  # a single HDF5 name without "/", e.g. "step-000200"; unique in the file
    step: int | None  # the training step, None when unknown
    path: str  # the checkpoint file it was loaded from ("" when unknown)
    sha256: str  # hex sha256 of that file ("" when unknown)
    metrics: dict  # the checkpoint's training metrics ({} when unknown)
    is_main: bool


FORMAT_VERSION = 3
"""The version this lstmviz writes; it reads this one and, through migrations, older ones."""

# --- root attributes -------------------------------------------------------------------------
MARKER_ATTR = "lstmviz"
MARKER_VALUE = "recording"
VERSION_ATTR = "format_version"
INCOMPLETE_ATTR = "lstmviz_incomplete"
"""Set while a writer is filling a temporary file; a finished recording never carries it."""

TEXT_CHECKSUM_ATTR = "attributes_crc32"
SHARDS_ATTR = "lstmviz_shards"  # the shard table of a logical file (lstmviz/recording/shards.py)
"""Root attribute (int64): the CRC-32 of the format's text attributes (:func:`crc32_of_text_attributes`).
HDF5 keeps variable-length strings outside the checksummed object headers. Optional, verified on open."""
CHECKSUM_ATTR = "crc32"
"""Attribute (int64) of ``/tokens``, every ``item_offsets``, every annotation's ``values`` and
``labels``, ``/vocab`` and ``/provenance``: the CRC-32 of the stored values (see :func:`crc32_of_array`
and :func:`crc32_of_strings`), verified on open. Optional: files written before it have none."""

# --- groups and datasets ---------------------------------------------------------------------
AXES = "axes"
MAIN_AXIS = "positions"
OFFSETS = "item_offsets"
TOKENS = "tokens"
VOCAB = "vocab"
PROVENANCE = "provenance"
TAPS = "taps"
ANNOTATIONS = "annotations"
VALUES = "values"
LABELS = "labels"
DERIVED = "derived"
CHECKPOINTS = "checkpoints"
MAIN_ATTR = "main"
"""Attribute of ``/checkpoints``: the name of the checkpoint whose states are ``/taps`` ("" if none)."""
CHECKPOINT_ATTRS = ("step", "path", "sha256", "metrics")
NO_STEP = -1
ORDER_ATTR = "order"
"""Attribute of ``/taps`` and ``/annotations`` (names in declaration order; HDF5 sorts links) and of
``/checkpoints`` (names in training order)."""

# --- position geometry (format v3, lstmviz.geometry) ------------------------------------------
GEOMETRY_ATTR = "geometry"
"""Attribute (text) of every ``/axes/<axis>``: the kind of its positions (``lstmviz.geometry.KINDS``)."""
DIRECTED_ATTR = "directed"
POOLED_FROM_ATTR = "pooled_from"
"""Graph axes: the finer graph axis whose nodes this axis's nodes pool ("" = none)."""
STRIDE_ATTR, RECEPTIVE_FIELD_ATTR, OFFSET_ATTR = "stride", "receptive_field", "offset"
EDGE_OFFSETS = "edge_offsets"
EDGES = "edges"
EDGE_WEIGHTS = "edge_weights"
COORDINATES = "coordinates"
NODE_NAMES = "node_names"
FILLER = "filler"
POOLING_MAP = "pooling_map"
HEIGHT, WIDTH = "height", "width"
MEMBERS, MEMBER = "members", "member"
EDGE_DTYPE = np.dtype(np.int32)
WEIGHT_DTYPE = np.dtype(np.float32)
COORDINATE_DTYPE = np.dtype(np.float32)
FILLER_DTYPE = np.dtype(np.uint8)
POOLING_DTYPE = np.dtype(np.int32)
SIZE_DTYPE = np.dtype(np.int32)
MEMBER_DTYPE = np.dtype(np.int32)


def axis_path(axis: str, name: str | None = None) -> str:
    """``axes/<axis>`` or ``axes/<axis>/<name>`` (a geometry dataset of the axis)."""
    return f"{AXES}/{axis}" if name is None else f"{AXES}/{axis}/{name}"


# --- attributes of taps, axes and annotations ------------------------------------------------
TAP_ATTRS = ("layer", "signal", "axis", "description")
UNITS_ARE_ATTR = "units_are"
"""Optional tap attribute (text): what the tap's units are when they are not neurons. ``"positions"``:
unit ``j`` of an item's row is main-axis position ``j`` of the same item (item-local), e.g. an attention
distribution over the source tokens; units past the item's length are 0. Absent or "": units are units."""
UNITS_ARE = ("positions",)
AXIS_TOKENS = TOKENS
"""Optional dataset ``/axes/<axis>/tokens`` (int32 [rows of the axis], ``crc32``) of an extra axis of
geometry ``tokens``: the token id at each of its positions, in the recording's one vocabulary (a
decoder's tokens beside the source tokens of the main axis)."""
NO_LAYER = -1
KIND, LEVEL, DESCRIPTION = "kind", "level", "description"

CATEGORICAL, NUMERIC = "categorical", "numeric"
KINDS = (CATEGORICAL, NUMERIC)
POSITION, ITEM = "position", "item"
LEVELS = (POSITION, ITEM)
MISSING_LABEL = -1

# --- dtypes ----------------------------------------------------------------------------------
TAP_DTYPES = ("float32", "float16")
OFFSET_DTYPE = np.dtype(np.int64)
TOKEN_DTYPE = np.dtype(np.int32)
CATEGORICAL_DTYPE = np.dtype(np.int32)
NUMERIC_DTYPE = np.dtype(np.float64)

# --- limits checked on open, before anything is read (docs/format.md, "Reading and validation") --
MAX_VOCAB = 1 << 24
"""Entries of ``/vocab`` (and labels of one annotation): read whole into Python strings on open."""
MAX_UNITS = 1 << 24
"""Units of one tap: one row of 2^24 float32 units is 64 MiB, and reads work on whole rows."""

# --- chunking (see docs/format.md, "Chunk shape") ----------------------------------------------
CHUNK_TARGET_BYTES = 64 * 1024
"""Upper bound for one chunk; a random row read pays for its whole chunk, so chunks stay small."""
LIBVER = ("v110", "latest")
"""HDF5 >= 1.10 file format: an extensible-array chunk index, O(1) chunk lookup while appending."""


def tap_chunk_rows(units: int, itemsize: int) -> int:
    """Rows per chunk of a tap: the largest power of two whose chunk (all units) fits the target.

    A chunk always spans every unit, so one row lives in exactly one chunk.
    """
    row_bytes = max(1, units * itemsize)
    rows = 1
    while rows * 2 * row_bytes <= CHUNK_TARGET_BYTES:
        rows *= 2
    return rows


def vector_chunk_len(itemsize: int) -> int:
    """Elements per chunk of a 1-D dataset (tokens, offsets, annotations)."""
    return tap_chunk_rows(1, itemsize)


def check_tap_name(name: str) -> None:
    """A tap name is ``/``-separated (``layer0/gates/f``) without empty parts."""
    if not isinstance(name, str) or not name or name.startswith("/") or name.endswith("/") or "//" in name:
        raise ValueError(f"tap name must be a non-empty, '/'-separated name without empty parts, got {name!r}")
    if any(part in (".", "..") for part in name.split("/")):
        raise ValueError(f"tap name must not contain '.' or '..' parts, got {name!r}")


def check_plain_name(name: str, what: str) -> None:
    """Axis and annotation names are single HDF5 link names: non-empty, no ``/``."""
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ValueError(f"{what} name must be a non-empty string without '/', got {name!r}")


def tap_path(name: str) -> str:
    return f"{TAPS}/{name}"


def axis_offsets_path(axis: str) -> str:
    return f"{AXES}/{axis}/{OFFSETS}"


def annotation_path(name: str) -> str:
    return f"{ANNOTATIONS}/{name}"


def checkpoint_path(name: str) -> str:
    return f"{CHECKPOINTS}/{name}"


def checkpoint_tap_path(checkpoint: str, tap: str) -> str:
    """``checkpoints/<checkpoint>/taps/<tap>``: the states of ``tap`` computed by that checkpoint."""
    return f"{CHECKPOINTS}/{checkpoint}/{TAPS}/{tap}"


def step_checkpoint_name(step: int) -> str:
    """The name lstmviz gives the checkpoint of training step ``step``: ``step-000200``."""
    return f"step-{int(step):06d}"


# --- checksums -----------------------------------------------------------------------------------


def crc32_of_array(values: np.ndarray, crc: int = 0) -> int:
    """CRC-32 of ``values``' little-endian bytes in row order, continuing from ``crc`` (for blocks)."""
    values = np.asarray(values)
    a = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))  # no copy on little-endian machines
    return zlib.crc32(a.view(np.uint8).reshape(-1), crc)


def crc32_of_strings(strings, crc: int = 0) -> int:
    """CRC-32 of each string's UTF-8 bytes followed by one NUL byte (for string datasets)."""
    for s in strings:
        crc = zlib.crc32(s.encode("utf-8", "surrogateescape") + b"\0", crc)
    return crc


def text_attributes(f) -> list[tuple[str, str]]:
    """``(object path, attribute name)`` of every text attribute the format defines, in a fixed order.

    ``f`` is an open ``h5py.File`` with the layout of this version (call after validating it).
    """
    def order(group: str) -> list[str]:
        raw = f[group].attrs.get(ORDER_ATTR)
        return [] if raw is None else [_text(x) for x in np.atleast_1d(raw)]

    out = [("/", MARKER_ATTR)]
    out += [(f"/{AXES}/{axis}", DESCRIPTION) for axis in sorted(f[AXES])]
    out.append((f"/{TAPS}", ORDER_ATTR))
    out += [(f"/{tap_path(t)}", a) for t in order(TAPS) for a in ("signal", "axis", DESCRIPTION)]
    out.append((f"/{ANNOTATIONS}", ORDER_ATTR))
    out += [(f"/{annotation_path(n)}", a) for n in order(ANNOTATIONS) for a in (KIND, LEVEL, DESCRIPTION)]
    if CHECKPOINTS in f:
        out += [(f"/{CHECKPOINTS}", ORDER_ATTR), (f"/{CHECKPOINTS}", MAIN_ATTR)]
        out += [(f"/{checkpoint_path(c)}", a) for c in order(CHECKPOINTS) for a in ("path", "sha256", "metrics")]
    # v3, last: a v2 file's checksum continues over them when it is upgraded (upgrades._v2_to_v3)
    out += [(f"/{AXES}/{axis}", a) for axis in sorted(f[AXES]) for a in (GEOMETRY_ATTR, POOLED_FROM_ATTR)]
    out.append(("/", SHARDS_ATTR))  # a logical file over shards (docs/format.md, "Sharded recordings")
    return out


def crc32_of_text_attributes(f) -> int:
    """CRC-32 of ``path NUL name NUL value NUL`` for every :func:`text_attributes` entry that exists
    (a list of strings: its items joined by NUL)."""
    crc = 0
    for path, name in text_attributes(f):
        raw = f[path].attrs.get(name)
        if raw is None:
            continue
        value = "\0".join(_text(x) for x in np.atleast_1d(raw)) if np.ndim(raw) else _text(raw)
        crc = crc32_of_strings([path, name, value], crc)
    return crc


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value.item())
    return str(value)


# --- temporary files of a writer -----------------------------------------------------------------

TEMP_SUFFIX = ".tmp.h5"
_TEMP_NAME = re.compile(r"^\.(?P<final>.+?)\.(?:w(?P<pid>[0-9]+)\.(?P<host>[A-Za-z0-9-]*)\.)?"
                        r"(?P<token>[0-9a-f]{8})\.tmp\.h5$", re.DOTALL)


@dataclass(frozen=True)
class TempName:
    """What the name of a writer's temporary file says: the final name, and the writer's process."""

    final: str
    pid: int | None  # None: an older lstmviz did not put the process id in the name
    host: str | None


def temp_name(final: str, pid: int, host: str, token: str) -> str:
    """``.<final>.w<pid>.<host>.<token>.tmp.h5``: hidden, beside the final name, naming its writer."""
    return f".{final}.w{pid}.{host}.{token}{TEMP_SUFFIX}"


def parse_temp_name(name: str) -> TempName | None:
    """The parts of a writer's temporary file name, or None when ``name`` is not one."""
    m = _TEMP_NAME.match(name)
    if m is None:
        return None
    pid = m.group("pid")
    return TempName(m.group("final"), None if pid is None else int(pid), m.group("host"))
