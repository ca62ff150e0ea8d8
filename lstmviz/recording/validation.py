"""Check an open HDF5 file against the recording format and turn it into a checked header.

Everything here is cheap on big files: offsets, shapes, dtypes and attributes are checked, tap data
is never read. The values scanned (in blocks) are the token ids and categorical annotation ids,
because an id out of range would otherwise surface much later as a wrong token or label, and every
dataset that carries a checksum (tokens, offsets, annotations, vocabulary, provenance: 4-8 bytes per
position), because a flipped bit there would otherwise give a wrong answer without a word. Sizes are
checked against hard limits and the memory available before anything is read whole.
Every problem is a ``RecordingError`` naming the file and saying what is wrong in words.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from lstmviz.recording import format as fmt
from lstmviz.recording import upgrades
from lstmviz.recording.geometry_checks import AxisLayout, check_geometry
from lstmviz.recording.format import (
    AnnotationInfo,
    CheckpointInfo,
    RecordingError,
    TapInfo,
)
from lstmviz.recording.writer import HOST_TAG, process_is_alive

_SCAN_BLOCK = 1 << 20


@dataclass(frozen=True)
class Header:
    """Everything small about a recording, checked: offsets, names, metadata."""

    format_version: int
    offsets: dict[str, np.ndarray]  # axis -> int64 [n_items + 1]
    axis_descriptions: dict[str, str]
    vocab: list[str]
    provenance: dict
    taps: dict[str, TapInfo]
    annotations: dict[str, AnnotationInfo]
    checkpoints: list[CheckpointInfo]  # training order; [] for a recording of one model state
    layouts: dict[str, AxisLayout] = field(default_factory=dict)  # axis -> checked geometry (format v3)
    axis_tokens: frozenset = frozenset()  # extra axes that store their own token ids (/axes/<axis>/tokens)

    @property
    def n_items(self) -> int:
        return len(self.offsets[fmt.MAIN_AXIS]) - 1

    @property
    def n_positions(self) -> int:
        return int(self.offsets[fmt.MAIN_AXIS][-1])


def check_root(f: h5py.File, path: str | Path) -> int:
    """The file's format version, after checking that it is a finished lstmviz recording."""
    attrs = f.attrs
    if fmt.INCOMPLETE_ATTR in attrs:
        raise RecordingError(path, unfinished_problem(path))
    marker = _as_str(attrs.get(fmt.MARKER_ATTR))
    if marker != fmt.MARKER_VALUE:
        raise RecordingError(path, f"an HDF5 file but not an lstmviz recording (no root attribute "
                                   f"{fmt.MARKER_ATTR!r} = {fmt.MARKER_VALUE!r})")
    raw = attrs.get(fmt.VERSION_ATTR)
    if raw is None:
        raise RecordingError(path, f"an lstmviz recording without a {fmt.VERSION_ATTR!r} attribute; the file is damaged")
    if not (isinstance(raw, (int, np.integer)) and not isinstance(raw, bool)):
        if not (isinstance(raw, np.ndarray) and raw.shape == () and raw.dtype.kind in "iu"):
            raise RecordingError(path, f"the {fmt.VERSION_ATTR!r} attribute is not an integer (got {raw!r}); the file is damaged")
    version = int(raw)
    current = fmt.FORMAT_VERSION
    if version > current:
        raise RecordingError(path, f"written by a newer lstmviz (format version {version}; this lstmviz reads "
                                   f"versions up to {current}); upgrade lstmviz to open it")
    if version < 1 or not upgrades.can_upgrade(version):
        raise RecordingError(path, f"unknown format version {version} (this lstmviz reads "
                                   f"{upgrades.readable_versions()})")
    return version


def unfinished_problem(path: str | Path) -> str:
    """What to say about a file a writer has not finished: its temporary name tells whose it is."""
    temp = fmt.parse_temp_name(Path(path).name)
    if temp is None or temp.pid is None:
        return ("an unfinished recording: the program writing it stopped before closing it (killed or crashed); "
                "delete it and record again")
    if temp.host != HOST_TAG:
        return (f"an unfinished recording: the temporary file of a recording of {temp.final!r} by process "
                f"{temp.pid} on the machine {temp.host!r}, which is still writing it or was killed; if nothing "
                f"is writing it, delete it and record again")
    if process_is_alive(temp.pid):
        return (f"an unfinished recording: the temporary file of a recording of {temp.final!r} that process "
                f"{temp.pid} is still writing; open {temp.final!r} when it has finished")
    return (f"an unfinished recording: the temporary file of a recording of {temp.final!r} by process {temp.pid}, "
            f"which was killed or crashed before it finished; delete it and record again (the next recording "
            f"of {temp.final!r} removes it)")


def read_header(f: h5py.File, path: str | Path, version: int) -> Header:
    """Check the layout of a current-version file and return its header."""
    crcs: list[tuple[h5py.Dataset, int, str]] = []  # (dataset, CRC-32 of what was read, what it holds)
    axis_group = _group(f, fmt.AXES, path, "position axes")
    if fmt.MAIN_AXIS not in axis_group:
        raise RecordingError(path, f"missing required group '/{fmt.AXES}/{fmt.MAIN_AXIS}' (the main position axis); "
                                   f"the file is damaged or not written by lstmviz")
    offsets: dict[str, np.ndarray] = {}
    descriptions: dict[str, str] = {}
    for axis in [fmt.MAIN_AXIS, *sorted(a for a in axis_group if a != fmt.MAIN_AXIS)]:
        group = _group(f, f"{fmt.AXES}/{axis}", path, f"axis {axis!r}")
        offsets[axis] = _offsets(f, axis, path, crcs)
        descriptions[axis] = _as_str(group.attrs.get(fmt.DESCRIPTION, ""))
    n_items = len(offsets[fmt.MAIN_AXIS]) - 1
    for axis, o in offsets.items():
        if len(o) - 1 != n_items:
            raise RecordingError(path, f"axis {axis!r} has offsets for {len(o) - 1} items but the main axis "
                                       f"{fmt.MAIN_AXIS!r} has {n_items}")

    layouts = check_geometry(f, path, offsets, crcs)

    tokens = _dataset(f, fmt.TOKENS, path, "token ids")
    if tokens.ndim != 1 or tokens.dtype.kind not in "iu":
        raise RecordingError(path, f"'/{fmt.TOKENS}' must be a 1-D integer dataset, got shape {tokens.shape} dtype {tokens.dtype}")
    n_positions = int(offsets[fmt.MAIN_AXIS][-1])
    if tokens.shape[0] != n_positions:
        raise RecordingError(path, f"the last item offset of axis {fmt.MAIN_AXIS!r} is {n_positions} but "
                                   f"'/{fmt.TOKENS}' has {tokens.shape[0]} positions")
    vocab = _vocab(f, path, crcs)
    _scan_tokens(tokens, len(vocab), path, crcs)
    axis_tokens = _axis_tokens(f, path, offsets, layouts, len(vocab), crcs)

    taps = _taps(f, path, offsets)
    header = Header(
        format_version=version,
        offsets=offsets,
        axis_descriptions=descriptions,
        vocab=vocab,
        provenance=_provenance(f, path, crcs),
        taps=taps,
        annotations=_annotations(f, path, n_positions, n_items, crcs),
        checkpoints=_checkpoints(f, path, taps),
        layouts=layouts,
        axis_tokens=axis_tokens,
    )
    for ds, computed, what in crcs:  # last: a problem of the layout says more than "damaged"
        _expect_checksum(ds, computed, what, path)
    _expect_text_checksum(f, path)
    return header


def _offsets(f: h5py.File, axis: str, path, crcs: list) -> np.ndarray:
    ds = _dataset(f, fmt.axis_offsets_path(axis), path, f"item offsets of axis {axis!r}")
    if ds.ndim != 1 or ds.dtype.kind not in "iu" or ds.shape[0] < 1:
        raise RecordingError(path, f"item offsets of axis {axis!r} must be a non-empty 1-D integer dataset, "
                                   f"got shape {ds.shape} dtype {ds.dtype}")
    _check_memory(ds.shape[0] * 8 * 2, f"the item offsets of axis {axis!r} ({ds.shape[0] - 1} items)", path)
    stored = ds[()]
    crcs.append((ds, fmt.crc32_of_array(stored), f"the item offsets of axis {axis!r}"))
    o = stored.astype(np.int64)
    if o[0] != 0:
        raise RecordingError(path, f"item offsets of axis {axis!r} must start at 0, got {o[0]}")
    steps = np.diff(o)
    if (steps <= 0).any():
        i = int(np.argmax(steps <= 0))
        raise RecordingError(path, f"item offsets of axis {axis!r} are not strictly increasing at item {i} "
                                   f"(offsets[{i}] = {o[i]}, offsets[{i + 1}] = {o[i + 1]}); every item needs at "
                                   f"least one position")
    o.flags.writeable = False
    return o


def _vocab(f: h5py.File, path, crcs: list) -> list[str]:
    ds = _dataset(f, fmt.VOCAB, path, "vocabulary")
    if ds.ndim != 1 or h5py.check_string_dtype(ds.dtype) is None:
        raise RecordingError(path, f"'/{fmt.VOCAB}' must be a 1-D string dataset, got shape {ds.shape} dtype {ds.dtype}")
    return _strings(ds, "the vocabulary", path, crcs)


def _strings(ds: h5py.Dataset, what: str, path, crcs: list) -> list[str]:
    """A 1-D string dataset (vocabulary, labels) as a list, after its size and checksum are checked."""
    if ds.shape[0] > fmt.MAX_VOCAB:
        raise RecordingError(path, f"{what} ('{ds.name}') declares {ds.shape[0]:,} entries, more than the "
                                   f"{fmt.MAX_VOCAB:,} lstmviz reads; the file is damaged or was not written by lstmviz")
    values = [str(s) for s in ds.asstr()[()]] if ds.shape[0] else []
    crcs.append((ds, fmt.crc32_of_strings(values), what))
    return values


def _provenance(f: h5py.File, path, crcs: list) -> dict:
    ds = _dataset(f, fmt.PROVENANCE, path, "provenance")
    if ds.shape != () or h5py.check_string_dtype(ds.dtype) is None:
        raise RecordingError(path, f"'/{fmt.PROVENANCE}' must be a scalar string (JSON), got shape {ds.shape} dtype {ds.dtype}")
    text = ds.asstr()[()]
    crcs.append((ds, fmt.crc32_of_strings([text]), "the provenance"))
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecordingError(path, f"'/{fmt.PROVENANCE}' is not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise RecordingError(path, f"'/{fmt.PROVENANCE}' must hold a JSON object, got {type(value).__name__}")
    return value


def _taps(f: h5py.File, path, offsets: dict[str, np.ndarray]) -> dict[str, TapInfo]:
    group = _group(f, fmt.TAPS, path, "taps")
    taps: dict[str, TapInfo] = {}
    for name in _order(group, path, "taps"):
        ds = f.get(fmt.tap_path(name))
        if not isinstance(ds, h5py.Dataset):
            raise RecordingError(path, f"tap {name!r} is listed in '/{fmt.TAPS}' but its dataset "
                                       f"'/{fmt.tap_path(name)}' is missing")
        if ds.ndim != 2 or ds.dtype.name not in fmt.TAP_DTYPES:
            raise RecordingError(path, f"tap {name!r} must be a 2-D float32 or float16 dataset [positions, units], "
                                       f"got shape {ds.shape} dtype {ds.dtype}")
        if ds.shape[1] > fmt.MAX_UNITS:
            raise RecordingError(path, f"tap {name!r} declares {ds.shape[1]:,} units, more than the {fmt.MAX_UNITS:,} "
                                       f"lstmviz reads; the file is damaged or was not written by lstmviz")
        axis = _as_str(ds.attrs.get("axis", ""))
        if axis not in offsets:
            raise RecordingError(path, f"tap {name!r} is on axis {axis!r}, which the file does not define "
                                       f"(axes: {', '.join(offsets)})")
        rows = int(offsets[axis][-1])
        if ds.shape[0] != rows:
            raise RecordingError(path, f"tap {name!r} has {ds.shape[0]} rows but axis {axis!r} has {rows} "
                                       f"positions (its last item offset)")
        raw_layer = ds.attrs.get("layer", fmt.NO_LAYER)
        if np.ndim(raw_layer) != 0 or np.asarray(raw_layer).dtype.kind not in "iu":
            raise RecordingError(path, f"tap {name!r} must have an integer 'layer' attribute (-1 = none), "
                                       f"got {raw_layer!r}")
        layer = int(raw_layer)
        units_are = _as_str(ds.attrs.get(fmt.UNITS_ARE_ATTR, "")) or ""
        if units_are and units_are not in fmt.UNITS_ARE:
            raise RecordingError(path, f"tap {name!r} has units_are = {units_are!r}; lstmviz knows "
                                       f"{', '.join(fmt.UNITS_ARE)} (or none)")
        if units_are == "positions":
            main = offsets[fmt.MAIN_AXIS]
            longest = int(np.diff(main).max()) if len(main) > 1 else 0
            if ds.shape[1] < longest:
                raise RecordingError(path, f"tap {name!r}: its units are the item's positions, but it has "
                                           f"{ds.shape[1]} units and the longest item {longest} positions")
        taps[name] = TapInfo(
            name=name, units=int(ds.shape[1]), dtype=ds.dtype.name, axis=axis,
            layer=None if layer < 0 else layer,
            signal=_as_str(ds.attrs.get("signal", "")) or name.rsplit("/", 1)[-1],
            description=_as_str(ds.attrs.get("description", "")),
            units_are=units_are,
        )
    return taps


def _annotations(f: h5py.File, path, n_positions: int, n_items: int, crcs: list) -> dict[str, AnnotationInfo]:
    group = _group(f, fmt.ANNOTATIONS, path, "annotations")
    out: dict[str, AnnotationInfo] = {}
    for name in _order(group, path, "annotations"):
        g = f.get(fmt.annotation_path(name))
        if not isinstance(g, h5py.Group):
            raise RecordingError(path, f"annotation {name!r} is listed in '/{fmt.ANNOTATIONS}' but its group "
                                       f"'/{fmt.annotation_path(name)}' is missing")
        kind, level = _as_str(g.attrs.get(fmt.KIND)), _as_str(g.attrs.get(fmt.LEVEL))
        if kind not in fmt.KINDS or level not in fmt.LEVELS:
            raise RecordingError(path, f"annotation {name!r} has kind {kind!r} and level {level!r}; "
                                       f"expected kind in {fmt.KINDS} and level in {fmt.LEVELS}")
        values = _dataset(f, f"{fmt.annotation_path(name)}/{fmt.VALUES}", path, f"values of annotation {name!r}")
        expected = n_positions if level == fmt.POSITION else n_items
        unit = "positions" if level == fmt.POSITION else "items"
        if values.ndim != 1 or values.shape[0] != expected:
            raise RecordingError(path, f"annotation {name!r} is per {level} and must have {expected} values "
                                       f"(one per {level}; the file has {expected} {unit}), got shape {values.shape}")
        labels = None
        if kind == fmt.CATEGORICAL:
            labels_ds = _dataset(f, f"{fmt.annotation_path(name)}/{fmt.LABELS}", path, f"labels of annotation {name!r}")
            if labels_ds.ndim != 1 or h5py.check_string_dtype(labels_ds.dtype) is None:
                raise RecordingError(path, f"labels of annotation {name!r} must be a 1-D string dataset")
            labels = _strings(labels_ds, f"the labels of annotation {name!r}", path, crcs)
            if values.dtype.kind not in "iu":
                raise RecordingError(path, f"categorical annotation {name!r} must store integer label ids, got dtype {values.dtype}")
            _check_label_range(values, len(labels), name, path, crcs)
        elif values.dtype.kind != "f":
            raise RecordingError(path, f"numeric annotation {name!r} must store floats, got dtype {values.dtype}")
        elif fmt.CHECKSUM_ATTR in values.attrs:
            crc = 0
            for start in range(0, values.shape[0], _SCAN_BLOCK):
                crc = fmt.crc32_of_array(values[start:start + _SCAN_BLOCK], crc)
            crcs.append((values, crc, f"the values of annotation {name!r}"))
        out[name] = AnnotationInfo(name=name, kind=kind, level=level, labels=labels,
                                   description=_as_str(g.attrs.get(fmt.DESCRIPTION, "")))
    return out


def _checkpoints(f: h5py.File, path, taps: dict[str, TapInfo]) -> list[CheckpointInfo]:
    """``/checkpoints``: names, training order, the main one, and states shaped like ``/taps``."""
    group = _group(f, fmt.CHECKPOINTS, path, "checkpoints")
    order = _order(group, path, "checkpoints")
    where = f"'/{fmt.CHECKPOINTS}'"
    seen: set[str] = set()
    for name in order:
        if not name or "/" in name or name in (".", ".."):
            raise RecordingError(path, f"{where} lists the checkpoint name {name!r}; a checkpoint name is a "
                                       f"single name without '/'")
        if name in seen:
            raise RecordingError(path, f"{where} lists the checkpoint {name!r} twice")
        seen.add(name)
    main = _as_str(group.attrs.get(fmt.MAIN_ATTR))
    if main is None:
        raise RecordingError(path, f"{where} has no {fmt.MAIN_ATTR!r} attribute naming the checkpoint whose "
                                   f"states are '/{fmt.TAPS}'; the file is damaged or not written by lstmviz")
    if order and main not in seen:
        raise RecordingError(path, f"the main checkpoint {main!r} (attribute {fmt.MAIN_ATTR!r} of {where}) is not "
                                   f"one of the checkpoints listed there ({', '.join(order)})")
    if not order and main:
        raise RecordingError(path, f"the main checkpoint {main!r} (attribute {fmt.MAIN_ATTR!r} of {where}) is "
                                   f"named but {where} lists no checkpoints")
    out: list[CheckpointInfo] = []
    for name in order:
        g = _group(f, fmt.checkpoint_path(name), path, f"checkpoint {name!r}")
        raw = g.attrs.get("step")
        if raw is None or np.ndim(raw) != 0 or np.asarray(raw).dtype.kind not in "iu" or int(raw) < fmt.NO_STEP:
            raise RecordingError(path, f"checkpoint {name!r} must have an integer 'step' attribute "
                                       f"(-1 = unknown), got {raw!r}")
        step = int(raw)
        text = _as_str(g.attrs.get("metrics", "{}"))
        try:
            metrics = json.loads(text)
        except json.JSONDecodeError as e:
            raise RecordingError(path, f"the 'metrics' attribute of checkpoint {name!r} is not valid JSON ({e})") from None
        if not isinstance(metrics, dict):
            raise RecordingError(path, f"the 'metrics' attribute of checkpoint {name!r} must hold a JSON object, "
                                       f"got {type(metrics).__name__}")
        _checkpoint_states(f, path, name, taps, name == main)
        out.append(CheckpointInfo(name=name, step=None if step == fmt.NO_STEP else step,
                                  path=_as_str(g.attrs.get("path", "")), sha256=_as_str(g.attrs.get("sha256", "")),
                                  metrics=metrics, is_main=name == main))
    known = [c.step is not None for c in out]
    if any(known) and not all(known):
        missing = next(c.name for c in out if c.step is None)
        raise RecordingError(path, f"checkpoint {missing!r} has no step (-1) but others have one; either every "
                                   f"checkpoint has a step or none does")
    for a, b in itertools.pairwise(out):
        if a.step is not None and b.step < a.step:
            raise RecordingError(path, f"checkpoint {b.name!r} (step {b.step}) is listed after {a.name!r} "
                                       f"(step {a.step}) in {where}; the order must be ascending step")
    return out


def _checkpoint_states(f: h5py.File, path, name: str, taps: dict[str, TapInfo], is_main: bool) -> None:
    """Every tap of ``/taps`` under ``/checkpoints/<name>/taps``, same shape and dtype, nothing else."""
    prefix = f"{fmt.checkpoint_path(name)}/{fmt.TAPS}"
    group = _group(f, prefix, path, f"states of checkpoint {name!r}")
    for tap in taps:
        own = f.get(fmt.tap_path(tap))
        ds = f.get(fmt.checkpoint_tap_path(name, tap))
        where = f"'/{fmt.checkpoint_tap_path(name, tap)}'"
        if not isinstance(ds, h5py.Dataset):
            raise RecordingError(path, f"checkpoint {name!r} has no states of tap {tap!r}: dataset {where} is missing")
        if ds.shape != own.shape or ds.dtype != own.dtype:
            raise RecordingError(path, f"checkpoint {name!r}: {where} has shape {ds.shape} dtype {ds.dtype} but "
                                       f"tap {tap!r} ('/{fmt.tap_path(tap)}') has shape {own.shape} dtype {own.dtype}; "
                                       f"every checkpoint needs the same rows and units")
        if is_main and ds.id != own.id:
            raise RecordingError(path, f"checkpoint {name!r} is the main checkpoint, but {where} is not the dataset "
                                       f"'/{fmt.tap_path(tap)}' (it must be a hard link to it)")
    extra: list[str] = []

    def visit(rel: str, obj) -> None:
        if isinstance(obj, h5py.Dataset) and rel not in taps:
            extra.append(rel)

    group.visititems(visit)
    if extra:
        raise RecordingError(path, f"checkpoint {name!r} has states of {', '.join(map(repr, sorted(extra)))}, "
                                   f"which '/{fmt.TAPS}' does not list (taps: {', '.join(taps) or 'none'})")


def _check_label_range(values: h5py.Dataset, n_labels: int, name: str, path, crcs: list) -> None:
    crc = 0
    for start in range(0, values.shape[0], _SCAN_BLOCK):
        block = values[start:start + _SCAN_BLOCK]
        crc = fmt.crc32_of_array(block, crc)
        bad = (block < fmt.MISSING_LABEL) | (block >= n_labels)
        if bad.any():
            i = int(np.argmax(bad))
            raise RecordingError(path, f"annotation {name!r} has label id {block[i]} at index {start + i}, outside "
                                       f"-1..{n_labels - 1} ({n_labels} labels, -1 = missing)")
    crcs.append((values, crc, f"the values of annotation {name!r}"))


def _axis_tokens(f: h5py.File, path, offsets: dict[str, np.ndarray], layouts: dict[str, AxisLayout], n_vocab: int,
                 crcs: list) -> frozenset:
    """The extra axes with an (optional) ``/axes/<axis>/tokens``, checked like ``/tokens``."""
    found = set()
    for axis, o in offsets.items():
        if axis == fmt.MAIN_AXIS:
            continue
        ds = f.get(fmt.axis_path(axis, fmt.AXIS_TOKENS))
        if ds is None:
            continue
        what = f"'/{fmt.axis_path(axis, fmt.AXIS_TOKENS)}'"
        if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or ds.dtype.kind not in "iu":
            raise RecordingError(path, f"{what} must be a 1-D integer dataset of token ids")
        kind = layouts[axis].geometry.kind if axis in layouts else "tokens"
        if kind != "tokens":
            raise RecordingError(path, f"{what}: only an axis of geometry 'tokens' stores tokens; axis {axis!r} is "
                                       f"a {kind} axis")
        if ds.shape[0] != int(o[-1]):
            raise RecordingError(path, f"{what} has {ds.shape[0]} token ids but axis {axis!r} has {int(o[-1])} "
                                       f"positions (its last item offset)")
        _scan_tokens(ds, n_vocab, path, crcs, what=f"the token ids of axis {axis!r}")
        found.add(axis)
    return frozenset(found)


def _scan_tokens(tokens: h5py.Dataset, n_vocab: int, path, crcs: list, what: str = "the token ids") -> None:
    """Every token id in ``0 .. n_vocab - 1`` (``>= 0`` without a vocabulary), and the checksum: one pass."""
    crc = 0
    for start in range(0, tokens.shape[0], _SCAN_BLOCK):
        block = tokens[start:start + _SCAN_BLOCK]
        crc = fmt.crc32_of_array(block, crc)
        if not block.size:
            continue
        low, high = block.min(), block.max()
        if low < 0 or (n_vocab and high >= n_vocab):
            i = int(np.argmax(block < 0)) if low < 0 else int(np.argmax(block >= n_vocab))
            where = (f"outside the vocabulary (ids 0..{n_vocab - 1}, {n_vocab} entries)" if n_vocab
                     else "negative (a token id is never negative)")
            prefix = "" if what == "the token ids" else f"{what}: "
            raise RecordingError(path, f"{prefix}token id {block[i]} at position {start + i} is {where}; the file is "
                                       f"damaged")
    crcs.append((tokens, crc, what))


def _expect_checksum(ds: h5py.Dataset, computed: int, what: str, path) -> None:
    """Compare with the dataset's ``crc32`` attribute when it has one (files of older lstmviz have none)."""
    raw = ds.attrs.get(fmt.CHECKSUM_ATTR)
    if raw is None:
        return
    if np.ndim(raw) != 0 or np.asarray(raw).dtype.kind not in "iu":
        raise RecordingError(path, f"the {fmt.CHECKSUM_ATTR!r} attribute of '{ds.name}' is not an integer "
                                   f"(got {raw!r}); the file is damaged")
    stored = int(raw) & 0xFFFFFFFF
    if stored != computed:
        raise RecordingError(path, f"{what} ('{ds.name}') do not match their checksum (stored {stored:08x}, "
                                   f"computed {computed:08x}): the file is damaged (bits changed on disk or in a "
                                   f"copy); copy it again from a good source or record it again")


def _expect_text_checksum(f: h5py.File, path) -> None:
    raw = f.attrs.get(fmt.TEXT_CHECKSUM_ATTR)
    if raw is None:
        return
    if np.ndim(raw) != 0 or np.asarray(raw).dtype.kind not in "iu":
        raise RecordingError(path, f"the {fmt.TEXT_CHECKSUM_ATTR!r} attribute is not an integer (got {raw!r}); "
                                   f"the file is damaged")
    stored, computed = int(raw) & 0xFFFFFFFF, fmt.crc32_of_text_attributes(f)
    if stored != computed:
        raise RecordingError(path, f"the text attributes (names, descriptions, geometry, checkpoint paths and metrics) do not "
                                   f"match their checksum (stored {stored:08x}, computed {computed:08x}): the file is "
                                   f"damaged (bits changed on disk or in a copy); copy it again from a good source or "
                                   f"record it again")


def _check_memory(nbytes: int, what: str, path) -> None:
    from lstmviz.memory import available_bytes, format_bytes

    available = available_bytes()
    if available is not None and nbytes > available:
        raise RecordingError(path, f"{what} need {format_bytes(nbytes)} of memory to read, more than the "
                                   f"{format_bytes(available)} available")


def _order(group: h5py.Group, path, what: str) -> list[str]:
    raw = group.attrs.get(fmt.ORDER_ATTR)
    if raw is None:
        raise RecordingError(path, f"'/{group.name.lstrip('/')}' has no {fmt.ORDER_ATTR!r} attribute listing its {what}; "
                                   f"the file is damaged or not written by lstmviz")
    return [_as_str(x) for x in np.atleast_1d(raw)]


def _dataset(f: h5py.File, name: str, path, what: str) -> h5py.Dataset:
    obj = f.get(name)
    if obj is None:
        raise RecordingError(path, f"missing required dataset '/{name}' ({what}); the file is damaged or "
                                   f"not written by lstmviz")
    if not isinstance(obj, h5py.Dataset):
        raise RecordingError(path, f"'/{name}' ({what}) must be a dataset, found a {type(obj).__name__}")
    return obj


def _group(f: h5py.File, name: str, path, what: str) -> h5py.Group:
    obj = f.get(name)
    if obj is None:
        raise RecordingError(path, f"missing required group '/{name}' ({what}); the file is damaged or "
                                   f"not written by lstmviz")
    if not isinstance(obj, h5py.Group):
        raise RecordingError(path, f"'/{name}' ({what}) must be a group, found a {type(obj).__name__}")
    return obj


def _as_str(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _as_str(value.item())
    return str(value)
