"""The info panel: what the open recording is — file, provenance, taps and annotations (with legends)."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6 import QtWidgets

from lstmviz.qt.annotation_track import label_frequencies
from lstmviz.qt.palette import grouped_legend, label_colors
from lstmviz.qt.plain_text import escape as _esc
from lstmviz.qt.workspace import Workspace

#: Provenance keys shown first, in this order, with these names; other keys follow as they are.
_PROVENANCE_ORDER = [
    ("engine", "Engine"), ("dataset", "Dataset"), ("split", "Split"), ("checkpoint", "Checkpoint"),
    ("sha256", "Checkpoint sha256"), ("checkpoint_step", "Trained steps"), ("config", "Config"),
    ("created", "Created"),
]
_EMPTY_HTML = (
    "<p style='color:#666'>No recording is open.</p>"
    "<p style='color:#666'>Open one with <b>File &gt; Open</b> (Ctrl+O) or drop an <tt>.h5</tt> file onto the window.</p>"
)


#: Provenance keys not listed: their content is shown elsewhere in the panel (annotations, taps).
_PROVENANCE_HIDDEN = {"dataset_details", "signals", "vocab", "pruning"}
#: eight levels of a per-unit sparkline (0 .. 1)
_SPARKS = "▁▂▃▄▅▆▇█"
#: units per sparkline row (a row is prefixed with its first unit)
_SPARK_ROW = 32
#: Longer values are cut; `lstmviz info FILE` prints them whole.
_MAX_VALUE_CHARS = 90


def _format_value(value) -> str:
    if isinstance(value, dict):
        text = ", ".join(f"{k}={_short(v)}" for k, v in sorted(value.items()))
        return "<tt>" + _esc(_elide(text)) + "</tt>"
    if isinstance(value, list | tuple):
        return "<tt>" + _esc(_elide(json.dumps(value, default=str))) + "</tt>"
    text = str(value)
    if len(text) > 24 and all(c in "0123456789abcdef" for c in text):
        text = text[:12] + "…"
    return _esc(_elide(text))


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else json.dumps(value, default=str)


def _elide(text: str) -> str:
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + "…"


def _table(rows: list[tuple[str, str]]) -> str:
    cells = "".join(
        f"<tr><td style='color:#555; padding-right:8px; white-space:nowrap' valign='top'>{k}</td><td>{v}</td></tr>"
        for k, v in rows
    )
    return f"<table cellspacing='0' cellpadding='1'>{cells}</table>"


def recording_html(recording) -> str:
    """The panel's HTML for a recording."""
    path = Path(recording.path).resolve()
    out = [f"<h3 style='margin-bottom:2px'>{_esc(path.name)}</h3>", f"<p style='color:#666; margin-top:0'>{_esc(path.parent)}</p>"]
    out.append(
        _table([
            ("Items", f"{recording.n_items:,}"),
            ("Positions", f"{recording.n_positions:,}"),
            ("Vocabulary", f"{len(recording.vocab):,} tokens"),
            ("Format", f"version {recording.format_version}"),
        ])
    )

    provenance = {k: v for k, v in (recording.provenance or {}).items() if k not in _PROVENANCE_HIDDEN}
    rows = [(name, _format_value(provenance.pop(key))) for key, name in _PROVENANCE_ORDER if key in provenance]
    rows += [(_esc(key), _format_value(value)) for key, value in sorted(provenance.items())]
    out.append("<h4>Provenance</h4>")
    out.append(_table(rows) if rows else "<p style='color:#666'>none recorded</p>")

    pruning = (recording.provenance or {}).get("pruning")
    if isinstance(pruning, dict):
        out.append(pruning_html(pruning))

    out.append("<h4>Taps</h4>")
    tap_rows = []
    for info in recording.taps.values():
        details = [f"{info.units} units", info.dtype]
        if info.layer is not None:
            details.insert(1, f"layer {info.layer}")
        if info.axis != "positions":
            details.append(f"axis {info.axis}")
        text = ", ".join(_esc(d) for d in details)
        if info.description:
            text += f"<br><span style='color:#666'>{_esc(info.description)}</span>"
        tap_rows.append((f"<b>{_esc(info.name)}</b>", text))
    out.append(_table(tap_rows) if tap_rows else "<p style='color:#666'>none</p>")

    out.append("<h4>Annotations</h4>")
    if not recording.annotations:
        out.append("<p style='color:#666'>none</p>")
    for info in recording.annotations.values():
        out.append(f"<p style='margin-bottom:2px'><b>{_esc(info.name)}</b> <span style='color:#666'>"
                   f"({_esc(info.kind)}, per {_esc(info.level)})</span></p>")
        if info.description:
            out.append(f"<p style='color:#666; margin-top:0; margin-bottom:2px'>{_esc(info.description)}</p>")
        if info.kind == "categorical" and info.labels:
            swatches = []
            colors = label_colors(list(info.labels), label_frequencies(recording, info.name))
            for label, (r, g, b) in grouped_legend(list(info.labels), colors):
                swatches.append(f"<span style='color:rgb({r},{g},{b}); font-size:large'>■</span>&nbsp;{_esc(label)}")
            out.append("<p style='margin-top:0'>" + " &nbsp; ".join(swatches) + "</p>")
    return "\n".join(out)


def sparkline(values) -> str:
    """One character per value in 0 .. 1, from ▁ (0) to █ (1)."""
    chars = []
    for v in values:
        v = min(max(float(v), 0.0), 1.0)
        chars.append(_SPARKS[min(int(v * len(_SPARKS)), len(_SPARKS) - 1)])
    return "".join(chars)


def pruning_html(pruning: dict) -> str:
    """The Pruning section: scheme and share removed, and per LSTM layer which units keep their recurrent
    weights (``surviving_recurrent``: per unit, the share of its incoming recurrent weights not pruned) as a
    sparkline over the units, with the mean and the least-kept units."""
    removed = pruning.get("removed_fraction", pruning.get("fraction"))
    head = f"scheme <b>{_esc(str(pruning.get('scheme', '?')))}</b>"
    if isinstance(removed, int | float):
        head += f", {100 * float(removed):.1f}% of the prunable weights removed"
    out = ["<h4>Pruning</h4>", f"<p style='margin-top:0'>{head}</p>"]
    surviving = pruning.get("surviving_recurrent") or {}
    if surviving:
        out.append(f"<p style='color:#666; margin-bottom:2px'>per unit, {_SPARK_ROW} to a row (each row starts "
                   "with its first unit): the share of its incoming recurrent weights kept, ▁ none … █ all</p>")
    for layer, values in surviving.items():
        values = [float(v) for v in values]
        if not values:
            continue
        order = sorted(range(len(values)), key=lambda j: (values[j], j))[:5]
        least = ", ".join(f"{j} ({100 * values[j]:.0f}%)" for j in order)
        lines = "<br>".join(f"<tt>{j:>3} {sparkline(values[j : j + _SPARK_ROW])}</tt>".replace(" ", "&nbsp;")
                            for j in range(0, len(values), _SPARK_ROW))
        out.append(f"<p style='margin-bottom:0'><b>{_esc(layer)}</b>: mean {100 * sum(values) / len(values):.0f}% "
                   f"kept<br>{lines}<br><span style='color:#666'>fewest kept: {least}</span></p>")
    return "\n".join(out)


class InfoPanel(QtWidgets.QTextBrowser):
    """A read-only rich-text panel describing the workspace's recording."""

    def __init__(self, workspace: Workspace, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.workspace = workspace
        self.setOpenLinks(False)
        self.setMinimumWidth(240)
        workspace.recording_changed.connect(self._show)
        self._show(workspace.recording)

    def _show(self, recording) -> None:
        self.setHtml(_EMPTY_HTML if recording is None else recording_html(recording))
