"""Tables of analysis results as CSV or NPY files, and the columns of each kind of result.

A table is a dict ``column name -> 1-D array or list``, all of one length. ``write_table`` picks the
format by suffix: ``.csv`` (a header row, then one row per entry; floats written so that they read back
exactly, NaN as ``nan``) or ``.npy`` (a numpy structured array with one field per column, strings as
unicode, loadable with ``np.load(path)`` without pickle). Files are written to a temporary name beside
the target and renamed, so a failed export never leaves a half-written file.
"""

from __future__ import annotations

import csv
import os
import secrets
from pathlib import Path

import numpy as np

from lstmviz.analysis.aggregate import LabelTable, NumericTable
from lstmviz.analysis.token_search import default_joiner

SUFFIXES = (".csv", ".npy")


def _column(name: str, values) -> np.ndarray:
    if isinstance(values, np.ndarray):
        a = values
    else:
        values = list(values)
        strings = [isinstance(v, str) for v in values]
        if any(strings) and not all(strings):
            raise ValueError(f"column {name!r} mixes strings and other values; give one type per column")
        a = np.array(values, dtype=str) if any(strings) else np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"column {name!r} must be 1-D, got shape {a.shape}")
    if a.dtype == object:
        if all(isinstance(v, str) for v in a):
            a = a.astype(str)
        else:
            raise ValueError(f"column {name!r} mixes strings and other values; give one type per column")
    if a.dtype.kind == "U" and a.dtype.itemsize == 0:
        a = a.astype("U1")
    return a


def _columns(columns: dict) -> dict[str, np.ndarray]:
    if not columns:
        raise ValueError("a table needs at least one column")
    cols = {str(k): _column(str(k), v) for k, v in columns.items()}
    lengths = {k: len(v) for k, v in cols.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError("columns differ in length: " + ", ".join(f"{k} {n}" for k, n in lengths.items()))
    return cols


def _cell(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def write_table(path, columns: dict) -> Path:
    """Write ``columns`` to ``path`` as ``.csv`` or ``.npy`` (by suffix) and return the path.

    Raises ``ValueError`` for another suffix (naming the allowed ones), columns of different lengths,
    a column that is not 1-D or mixes strings with numbers.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"cannot save a table as {path.name!r}: use a file name ending in "
                         f"{' or '.join(SUFFIXES)}")
    cols = _columns(columns)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        if suffix == ".csv":
            with open(temp, "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(list(cols))
                lists = [c.tolist() for c in cols.values()]
                writer.writerows([_cell(v) for v in row] for row in zip(*lists))
        else:
            n = len(next(iter(cols.values())))
            table = np.empty(n, dtype=[(k, v.dtype) for k, v in cols.items()])
            for k, v in cols.items():
                table[k] = v
            with open(temp, "wb") as f:
                np.save(f, table, allow_pickle=False)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path


def selection_columns(selection, ranking=None) -> dict:
    """unit, sign of each selected unit; with a ``CandidateRanking`` also its rank (1 = best; -1 when the
    pair is not in the ranking), margin, on_fraction_range and on_fraction_padding."""
    cols = {"unit": np.asarray(selection.units, dtype=np.int64), "sign": np.asarray(selection.signs, dtype=np.int64)}
    if ranking is not None:
        where = {(int(u), int(s)): i for i, (u, s) in enumerate(zip(ranking.units, ranking.signs))}
        idx = np.array([where.get(p, -1) for p in selection.pairs()], dtype=np.int64)
        found = idx >= 0

        def pick(a):
            out = np.full(len(idx), np.nan)
            out[found] = np.asarray(a, dtype=np.float64)[idx[found]]
            return out

        cols["rank"] = np.where(found, idx + 1, -1)
        cols["margin"] = pick(ranking.margin)
        cols["on_fraction_range"] = pick(ranking.on_fraction_range)
        cols["on_fraction_padding"] = pick(ranking.on_fraction_padding)
    return cols


def match_columns(results, recording, *, left: int = 3, right: int = 20) -> dict:
    """One row per match, best first: rank (1-based), start, stop, item, length, level, intersection,
    union, jaccard, length_factor, score, and the text.

    The text uses the window of the match view (as LSTMVis): ``left_context`` is up to ``left`` tokens
    before the start, ``text`` the matched tokens, ``right_context`` the tokens after the match up to
    position ``start + right`` (empty for a match that long); context stays inside the match's item.
    Tokens are joined with "" for a character vocabulary, else " ".
    """
    starts = np.asarray(results.starts, dtype=np.int64)
    lengths = np.asarray(results.lengths, dtype=np.int64)
    stops = starts + lengths
    items = np.asarray(results.items, dtype=np.int64)
    offsets = np.asarray(recording.item_offsets, dtype=np.int64)
    joiner = default_joiner(list(recording.vocab)) if len(recording.vocab) else " "
    before, text, after = [], [], []
    for s, e, item in zip(starts.tolist(), stops.tolist(), items.tolist()):
        lo = max(int(offsets[item]), s - left)
        hi = min(int(offsets[item + 1]), max(e, s + right))
        tokens = recording.tokens(lo, hi)
        before.append(joiner.join(tokens[:s - lo]))
        text.append(joiner.join(tokens[s - lo:e - lo]))
        after.append(joiner.join(tokens[e - lo:]))
    return {
        "rank": np.arange(1, len(starts) + 1, dtype=np.int64),
        "start": starts,
        "stop": stops,
        "item": items,
        "length": lengths,
        "level": np.asarray(results.levels, dtype=np.int64),
        "intersection": np.asarray(results.intersection, dtype=np.int64),
        "union": np.asarray(results.union, dtype=np.int64),
        "jaccard": np.asarray(results.jaccard, dtype=np.float64),
        "length_factor": np.asarray(results.length_factor, dtype=np.float64),
        "score": np.asarray(results.score, dtype=np.float64),
        "left_context": np.array(before, dtype=str),
        "text": np.array(text, dtype=str),
        "right_context": np.array(after, dtype=str),
    }


def label_table_columns(table) -> dict:
    """A ``LabelTable`` in long format (offset, label, count, n, fraction, baseline, enrichment, p_value:
    one row per offset and label), or a ``NumericTable`` (offset, n, mean, std, baseline_mean,
    baseline_std: one row per offset)."""
    if isinstance(table, LabelTable):
        n_off, n_lab = table.counts.shape
        return {
            "offset": np.repeat(np.asarray(table.offsets, dtype=np.int64), n_lab),
            "label": np.array([str(label) for _ in range(n_off) for label in table.labels], dtype=str),
            "count": table.counts.reshape(-1).astype(np.int64),
            "n": np.repeat(np.asarray(table.n, dtype=np.int64), n_lab),
            "fraction": table.fraction.reshape(-1).astype(np.float64),
            "baseline": np.tile(np.asarray(table.baseline, dtype=np.float64), n_off),
            "enrichment": table.enrichment.reshape(-1).astype(np.float64),
            "p_value": table.p_value.reshape(-1).astype(np.float64),
        }
    if isinstance(table, NumericTable):
        n_off = len(table.offsets)
        return {
            "offset": np.asarray(table.offsets, dtype=np.int64),
            "n": np.asarray(table.n, dtype=np.int64),
            "mean": np.asarray(table.mean, dtype=np.float64),
            "std": np.asarray(table.std, dtype=np.float64),
            "baseline_mean": np.full(n_off, table.baseline_mean, dtype=np.float64),
            "baseline_std": np.full(n_off, table.baseline_std, dtype=np.float64),
        }
    raise TypeError(f"expected a LabelTable or NumericTable, got {type(table).__name__}")
