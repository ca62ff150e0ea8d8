"""Attach annotations to an existing recording (``lstmviz annotate FILE --from labels.csv``).

``annotate(path, {"pos": [...], "length": [...]})`` adds annotations to a finished recording: one
value per position (the main axis) or one per item, categorical (label names; ``None`` or ``""`` =
missing) or numeric (floats; NaN = missing), laid out exactly as the writer lays out the annotations
it records (``docs/format.md``, "Annotations"). ``read_table(csv)`` reads the columns of a CSV file
for it.

The recording is never half-written: the file is copied beside itself under a hidden temporary name
(``.<name>.<random>.tmp.h5``, the writer's pattern, marked ``lstmviz_incomplete`` while it is
changed), the annotations are added to the copy, the copy is opened and validated like any
recording, and only then renamed over the original (``os.replace``, atomic; fsync'd). Any failure
or interruption leaves the original as it was and removes the copy. Existing annotations are kept;
a name that exists already is refused unless ``replace=True``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import secrets
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from lstmviz.recording import format as fmt
from lstmviz.recording.reader import open_recording
from lstmviz.recording.writer import fsync_directory, fsync_path

_STR = h5py.string_dtype("utf-8")


@dataclass(frozen=True)
class NewAnnotation:
    """One annotation as it will be stored: ``values`` int32 label ids or float64, of ``level``."""

    name: str
    kind: str
    level: str
    values: np.ndarray
    labels: tuple[str, ...] | None
    description: str

    def summary(self) -> str:
        what = f"{self.kind}, {len(self.labels)} labels" if self.labels is not None else self.kind
        missing = int((self.values < 0).sum()) if self.labels is not None else int(np.isnan(self.values).sum())
        return f"{self.name} ({what}, per {self.level}" + (f", {missing:,} missing" if missing else "") + ")"


def read_table(path: str | os.PathLike, columns: Sequence[str] | None = None) -> dict[str, list[str]]:
    """The columns of a CSV file (a header row of names, then one row per value), as strings.

    Tab-separated when the name ends in ``.tsv`` or ``.tab``. ``columns`` picks some of them (in that
    order). Raises ValueError naming the line of a row with the wrong number of fields.
    """
    path = Path(path)
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise ValueError(f"{path}: the first row must name the columns (one annotation per column); "
                             "the file is empty")
        names = [h.strip() for h in header]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"{path}: column {duplicates[0]!r} appears more than once in the header")
        cells: list[list[str]] = [[] for _ in names]
        for row in reader:
            if not row:  # a blank line (e.g. at the end) is not a value
                continue
            if len(row) != len(names):
                raise ValueError(f"{path}, line {reader.line_num}: {len(row)} fields, but the header names "
                                 f"{len(names)} columns")
            for column, value in zip(cells, row):
                column.append(value.strip())
    table = dict(zip(names, cells))
    if columns is not None:
        missing = [c for c in columns if c not in table]
        if missing:
            raise ValueError(f"{path} has no column {missing[0]!r}; it has {', '.join(map(repr, names))}")
        table = {c: table[c] for c in columns}
    return table


def annotate(path: str | os.PathLike, annotations: Mapping[str, Sequence], *, level: str | None = None,
             kinds: Mapping[str, str] | None = None, labels: Mapping[str, Sequence[str]] | None = None,
             replace: bool = False, source: str = "") -> list[NewAnnotation]:
    """Add ``annotations`` (name -> one value per position, or one per item) to the recording at
    ``path``; returns what was added. See the module docstring for how the file is replaced.

    Args:
        level: ``"position"`` or ``"item"`` for every annotation; None: decided by the number of
            values (the recording's positions or items; refused when both are equal).
        kinds: name -> ``"categorical"`` or ``"numeric"``; default: numeric for float values and for
            strings that all read as numbers (CSV cells), else categorical.
        labels: name -> label names, when the values are label ids (ints, -1 = missing) into them.
        replace: replace annotations of the same name (else a name that exists is refused).
        source: where the values came from (stored in the descriptions and the provenance).

    Raises ValueError (a sentence) for values that do not fit the recording, RecordingError for a
    recording that cannot be read; the file is then unchanged.
    """
    path = Path(path)
    kinds = dict(kinds or {})
    labels = dict(labels or {})
    for name in [*kinds, *labels]:
        if name not in annotations:
            raise ValueError(f"{name!r} is not one of the annotations given ({', '.join(map(repr, annotations))})")
    if not annotations:
        raise ValueError("no annotations given")
    with open_recording(path) as rec:
        n_positions, n_items = rec.n_positions, rec.n_items
        existing = dict(rec.annotations)
        where = f"{path} has {n_positions:,} positions in {n_items:,} items"
    new = []
    for name, values in annotations.items():
        fmt.check_plain_name(name, "annotation")
        if name in existing and not replace:
            raise ValueError(f"{path} already has an annotation {name!r}; choose another name, or replace it "
                             "(--replace)")
        new.append(_convert(name, values, level, kinds.get(name), labels.get(name), n_positions, n_items,
                            where, source))
    _rewrite(path, new, existing, source)
    return new


def _convert(name, values, level, kind, labels, n_positions, n_items, where, source) -> NewAnnotation:
    array = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if array.ndim != 1:
        raise ValueError(f"annotation {name!r}: expected one value per position or item, got shape "
                         f"{list(array.shape)}")
    n = len(array)
    if level is None:
        if n_positions == n_items and n == n_items:
            raise ValueError(f"annotation {name!r}: every item of the recording has one position, so "
                             f"{n:,} values could be per position or per item; say which (--level)")
        level = fmt.POSITION if n == n_positions else fmt.ITEM if n == n_items else None
    elif level not in fmt.LEVELS:
        raise ValueError(f"level must be one of {', '.join(fmt.LEVELS)}, got {level!r}")
    expected = n_positions if level == fmt.POSITION else n_items
    if level is None or n != expected:
        wanted = (f"one per {level} ({expected:,})" if level is not None
                  else f"one per position ({n_positions:,}) or one per item ({n_items:,})")
        raise ValueError(f"annotation {name!r} has {n:,} values, but {where}: give {wanted}, in the "
                         f"recording's order")
    if kind is None:
        kind = fmt.CATEGORICAL if labels is not None else _infer_kind(array)
    if kind not in fmt.KINDS:
        raise ValueError(f"annotation {name!r}: kind must be one of {', '.join(fmt.KINDS)}, got {kind!r}")
    description = f"imported from {source}" if source else "added with lstmviz annotate"
    if kind == fmt.NUMERIC:
        if labels is not None:
            raise ValueError(f"annotation {name!r}: a numeric annotation has no labels")
        return NewAnnotation(name, kind, level, _numbers(name, array), None, description)
    ids, names = _categories(name, array, labels)
    return NewAnnotation(name, kind, level, ids, names, description)


def _missing(value) -> bool:
    return value is None or (isinstance(value, str) and value == "") or \
        (isinstance(value, (float, np.floating)) and math.isnan(value))


def _infer_kind(array: np.ndarray) -> str:
    if array.dtype.kind == "f":
        return fmt.NUMERIC
    if array.dtype.kind in "iub":
        return fmt.CATEGORICAL
    present = [v for v in array if not _missing(v)]
    if present and all(isinstance(v, str) for v in present):
        try:
            for v in present:
                float(v)
        except ValueError:
            return fmt.CATEGORICAL
        return fmt.NUMERIC
    if present and all(isinstance(v, (float, np.floating)) for v in present):
        return fmt.NUMERIC
    return fmt.CATEGORICAL


def _numbers(name: str, array: np.ndarray) -> np.ndarray:
    out = np.empty(len(array), np.float64)
    for i, v in enumerate(array):
        if _missing(v):
            out[i] = np.nan
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"annotation {name!r} is numeric but value {i} is {v!r}, not a number (leave the "
                             f"cell empty for a missing value, or make it categorical)") from None
    return out


def _categories(name: str, array: np.ndarray, labels) -> tuple[np.ndarray, tuple[str, ...]]:
    if labels is not None:  # label ids into the given names
        names = tuple(str(x) for x in labels)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"annotation {name!r}: labels must be distinct names, got {list(labels)!r}")
        try:
            ids = np.array([-1 if _missing(v) else int(v) for v in array], np.int64)
        except (TypeError, ValueError):
            raise ValueError(f"annotation {name!r}: with labels, the values must be label ids (ints)") from None
        bad = (ids < -1) | (ids >= len(names))
        if bad.any():
            raise ValueError(f"annotation {name!r}: value {int(np.argmax(bad))} is label id "
                             f"{ids[bad][0]}, outside 0..{len(names) - 1} (-1 = missing)")
        return ids.astype(fmt.CATEGORICAL_DTYPE), names
    text = ["" if _missing(v) else (str(v) if not isinstance(v, (bool, np.bool_)) else str(bool(v))) for v in array]
    distinct = sorted(set(text) - {""}, key=_label_order)
    if not distinct:
        raise ValueError(f"annotation {name!r} has no values (every value is missing)")
    index = {label: i for i, label in enumerate(distinct)}
    ids = np.fromiter((index.get(t, -1) for t in text), dtype=fmt.CATEGORICAL_DTYPE, count=len(text))
    return ids, tuple(distinct)


def _label_order(label: str):
    """Numbers in numeric order before other labels, which sort as text."""
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


def _rewrite(path: Path, new: list[NewAnnotation], existing: dict, source: str) -> None:
    """Copy, add, validate, rename; the original is untouched until the rename."""
    size = path.stat().st_size
    free = shutil.disk_usage(path.parent).free
    if free < size + (1 << 20):
        raise OSError(f"{path.parent}: not enough free space to write the annotated copy of {path.name} "
                      f"({size / 1e9:.2f} GB needed, {free / 1e9:.2f} GB free)")
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp.h5")
    try:
        shutil.copyfile(path, temp)
        shutil.copymode(path, temp)
        os.chmod(temp, os.stat(temp).st_mode | 0o200)  # the copy must be writable even if the original is not
        with h5py.File(temp, "r+") as f:
            f.attrs[fmt.INCOMPLETE_ATTR] = True  # a copy left by a crash is "an unfinished recording"
            _add(f, new, existing, source)
            del f.attrs[fmt.INCOMPLETE_ATTR]
        with open_recording(temp) as check:  # the copy must be a valid recording with what was asked
            for a in new:
                info = check.annotations[a.name]
                if (info.kind, info.level) != (a.kind, a.level):
                    raise RuntimeError(f"annotation {a.name!r} was not stored as asked")
        shutil.copymode(path, temp)
        fsync_path(temp)
        os.replace(temp, path)
        fsync_directory(path.parent)
    except BaseException:
        try:
            temp.unlink()
        except OSError:
            pass
        raise


def _add(f: h5py.File, new: list[NewAnnotation], existing: dict, source: str) -> None:
    group = f[fmt.ANNOTATIONS]
    order = list(existing)
    for a in new:
        path = fmt.annotation_path(a.name)
        if a.name in f[fmt.ANNOTATIONS]:
            del f[path]
        g = f.create_group(path)
        g.attrs[fmt.KIND] = a.kind
        g.attrs[fmt.LEVEL] = a.level
        g.attrs[fmt.DESCRIPTION] = a.description
        dtype = fmt.CATEGORICAL_DTYPE if a.kind == fmt.CATEGORICAL else fmt.NUMERIC_DTYPE
        chunk = max(1, min(fmt.vector_chunk_len(dtype.itemsize), len(a.values)))
        values = a.values.astype(dtype)
        ds = g.create_dataset(fmt.VALUES, data=values, maxshape=(None,), chunks=(chunk,))
        ds.attrs[fmt.CHECKSUM_ATTR] = np.int64(fmt.crc32_of_array(values))
        if a.labels is not None:
            ds = g.create_dataset(fmt.LABELS, data=np.array(a.labels, dtype=object), dtype=_STR)
            ds.attrs[fmt.CHECKSUM_ATTR] = np.int64(fmt.crc32_of_strings(a.labels))
        if a.name not in order:
            order.append(a.name)
    del group.attrs[fmt.ORDER_ATTR]
    group.attrs.create(fmt.ORDER_ATTR, np.array(order, dtype=object), dtype=_STR)
    provenance = json.loads(f[fmt.PROVENANCE].asstr()[()])
    provenance.setdefault("annotations_added", []).append({
        "names": [a.name for a in new], "source": source,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    del f[fmt.PROVENANCE]
    text = json.dumps(provenance, ensure_ascii=False)
    ds = f.create_dataset(fmt.PROVENANCE, data=text, dtype=_STR)
    ds.attrs[fmt.CHECKSUM_ATTR] = np.int64(fmt.crc32_of_strings([text]))
    # the names, kinds and order changed: the checksum over the format's text attributes is made anew
    f.attrs[fmt.TEXT_CHECKSUM_ATTR] = np.int64(fmt.crc32_of_text_attributes(f))
