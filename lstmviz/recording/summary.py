"""``summarize(recording)``: the text that ``lstmviz info FILE`` prints.

Every string that comes from the file (names, labels, descriptions, provenance, paths) is passed
through ``lstmviz.console.printable``, so a file cannot send escape sequences to the terminal.
"""

from __future__ import annotations

import json
import os

import numpy as np

from lstmviz.console import printable
from lstmviz.recording import format as fmt
from lstmviz.recording.reader import Recording

MAX_LABELS = 12
"""Label lists longer than this are cut: the first 12, then "… (45 labels)"."""
_MAX_VALUE_CHARS = 100


def summarize(recording: Recording) -> str:
    """A human-readable, multi-line description of a recording (no trailing newline)."""
    rec = recording
    lines = [
        _row("File", str(rec.path)),
        _row("Format", f"lstmviz recording, format version {rec.format_version}"
             + ("" if rec.format_version == fmt.FORMAT_VERSION else f" (upgraded to {fmt.FORMAT_VERSION} on read)")),
        _row("Size", _size(rec.path)),
        *_shards(rec),
        _row("Items", f"{rec.n_items:,}"),
        _row("Positions", _positions(rec)),
        _row("Vocabulary", f"{len(rec.vocab):,} tokens" if rec.vocab else "none (token ids only)"),
    ]
    lines += ["", f"Taps ({len(rec.taps)})"]
    lines += _table(
        ["name", "shape", "dtype", "axis", "layer", "signal", "description"],
        [[t.name, f"{rec.axis_length(t.axis):,} × {t.units:,}", t.dtype, t.axis,
          "-" if t.layer is None else str(t.layer), t.signal, _cut(t.description, 60)]
         for t in rec.taps.values()],
    ) or ["  none"]
    extra_axes = [a for a in rec.axes if a != fmt.MAIN_AXIS]
    if extra_axes or rec.axis_geometry().kind != "tokens":
        lines += ["", f"Axes ({len(rec.axes)})"]
        lines += _table(["name", "rows", "geometry", "description"],
                        [[a, f"{rec.axis_length(a):,}", _geometry(rec, a), _cut(rec.axes[a], 60)] for a in rec.axes])
    lines += ["", f"Annotations ({len(rec.annotations)})"]
    lines += _table(
        ["name", "kind", "level", "labels / description"],
        [[a.name, a.kind, f"per {a.level}", _labels(a.labels) if a.labels is not None else _cut(a.description, 60)]
         for a in rec.annotations.values()],
    ) or ["  none"]
    checkpoints = rec.checkpoints
    if checkpoints:
        lines += ["", f"Checkpoints ({len(checkpoints)}, in training order; the main one's states are the taps above)"]
        lines += _table(
            ["name", "step", "main", "file", "metrics"],
            [[c.name, "?" if c.step is None else f"{c.step:,}", "main" if c.is_main else "",
              os.path.basename(c.path), _metrics(c.metrics)] for c in checkpoints],
        )
    lines += ["", "Provenance"]
    lines += _provenance(rec.provenance) or ["  none"]
    return "\n".join(lines)


def _shards(rec: Recording) -> list[str]:
    """A logical file over shards: how many, where, and their size (the logical file itself is small)."""
    sharded = rec.provenance.get("sharded")
    if not isinstance(sharded, dict) or not isinstance(sharded.get("shards"), list):
        return []
    files = [s.get("file", "") for s in sharded["shards"] if isinstance(s, dict)]
    total = 0
    for name in files:
        try:
            total += os.path.getsize(os.path.join(os.path.dirname(os.fspath(rec.path)), name))
        except (OSError, TypeError):
            pass
    folder = os.path.dirname(files[0]) if files else ""
    return [_row("Shards", f"{len(files)} in {folder or '.'}/ ({_bytes(total)}), read through HDF5 virtual datasets")]


_SHOWN_METRICS = ("train_loss", "valid_loss", "valid_ppl")


def _metrics(metrics: dict) -> str:
    shown = [(k, metrics[k]) for k in _SHOWN_METRICS if isinstance(metrics.get(k), (int, float))]
    return ", ".join(f"{k} {v:.4g}" for k, v in shown)


def _row(key: str, value: str) -> str:
    return f"{key:<12}{printable(value)}"


def _size(path) -> str:
    try:
        n = os.path.getsize(path)
    except OSError:
        return "unknown"
    return _bytes(n)


def _bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def _geometry(rec: Recording, axis: str) -> str:
    """``graph, 7 edges, pooled from positions`` / ``image, stride 2×2, field 3×5`` / ``set of 3: a, b, c``."""
    g = rec.axis_geometry(axis)
    if g.kind == "graph":
        edges = int(rec.edge_offsets(axis)[-1])
        text = f"graph, {edges:,} edge{'' if edges == 1 else 's'}" + (", directed" if g.directed else "")
        if g.pooled_from is not None:
            text += f", pooled from {g.pooled_from}"
        filler = int(rec.filler(axis).sum())
        return text + (f", {filler:,} filler" if filler else "")
    if g.kind == "image":
        return f"image, stride {g.stride[0]}×{g.stride[1]}, field {g.receptive_field[0]}×{g.receptive_field[1]}"
    if g.kind == "set":
        return _cut(f"set of {len(g.members)}: {', '.join(g.members)}", 60)
    return g.kind


def _positions(rec: Recording) -> str:
    if rec.n_items == 0:
        return "0"
    lengths = np.diff(rec.item_offsets)
    return (f"{rec.n_positions:,} (item length min {int(lengths.min()):,} / median "
            f"{_num(float(np.median(lengths)))} / max {int(lengths.max()):,})")


def _num(x: float) -> str:
    return f"{int(x):,}" if x == int(x) else f"{x:,.1f}"


def _labels(labels: list[str]) -> str:
    shown = ", ".join(labels[:MAX_LABELS])
    if len(labels) > MAX_LABELS:
        return f"{shown}, … ({len(labels)} labels)"
    return f"{shown} ({len(labels)} labels)"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return []
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    # drop all-empty trailing columns (e.g. no tap has a description)
    while len(header) > 1 and all(not r[len(header) - 1] for r in rows):
        header, widths, rows = header[:-1], widths[:-1], [r[:-1] for r in rows]

    def line(cells):
        return ("  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths))).rstrip()

    return [line(header)] + [line(r) for r in rows]


def _provenance(p: dict) -> list[str]:
    p = dict(p)
    out: list[tuple[str, str]] = []
    engine = p.pop("engine", None)
    config = p.pop("config", None)
    if engine is not None or config is not None:
        text = str(engine) if engine is not None else "?"
        if config:
            text += f"  ({_mapping(config)})"
        out.append(("engine", text))
    dataset = p.pop("dataset", None)
    split = p.pop("split", None)
    options = p.pop("dataset_options", None)
    if isinstance(dataset, dict):
        dataset = dict(dataset)
        name = dataset.pop("name", "?")
        split = dataset.pop("split", split)
        options = dataset.pop("options", options)
        rest = dataset
    else:
        name, rest = dataset, {}
    if name is not None or split is not None:
        text = str(name if name is not None else "?")
        if split is not None:
            text += f", split {split}"
        if options:
            text += f"  ({_mapping(options)})"
        out.append(("dataset", text))
        for key, value in rest.items():
            out.append((f"  {key}", _value(value)))
    checkpoint = p.pop("checkpoint", None)
    sha = p.pop("sha256", None)
    if checkpoint is not None or sha is not None:
        text = str(checkpoint) if checkpoint is not None else "-"
        if sha:
            text += f"  (sha256 {str(sha)[:12]}…)"
        out.append(("checkpoint", text))
    versions = p.pop("versions", None)
    created = p.pop("created", None)
    for key, value in p.items():
        out.append((key, _value(value)))
    if versions:
        out.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items()) if isinstance(versions, dict) else _value(versions)))
    if created is not None:
        out.append(("created", str(created)))
    out = [(printable(k), printable(v)) for k, v in out]
    width = max(len(k) for k, _ in out) + 2 if out else 0
    return [f"  {k:<{width}}{v}" for k, v in out]


def _mapping(d) -> str:
    if not isinstance(d, dict):
        return _value(d)
    return _cut(", ".join(f"{k}={_compact(v)}" for k, v in d.items()), _MAX_VALUE_CHARS)


def _compact(v) -> str:
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def _value(v) -> str:
    return _cut(_compact(v), _MAX_VALUE_CHARS)


def _cut(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"
