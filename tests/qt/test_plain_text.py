"""Names from a file are shown as the characters they are, never as markup (issue 10.3).

A recording whose file name, tap names, tokens, annotation names and labels, descriptions and
provenance are all ``<img src=x.fifo>`` (a real FIFO in the working directory) is opened in the window
and driven through brushing, hovering, matching, probing, every tooltip, every label, the info dock,
error dialogs and exports. Qt opening the FIFO would mean it read a name as HTML; the watcher counts
every opening (and releases the reader, so a regression fails instead of hanging).
"""

import pyqtgraph as pg
import pytest
from conftest import drag_tokens, send_mouse, token_row_point
from hostile_recordings import HOSTILE, HOSTILE_TAP, PLANTED_UNITS, FifoWatch, write_hostile_recording
from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.qt import errors
from lstmviz.qt.plain_text import escape, literal, plain_label, set_plain
from lstmviz.qt.token_text import display_token

TIMEOUT = 120000
Role = QtCore.Qt.ItemDataRole


@pytest.fixture
def fifo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # Qt resolves <img src=x.fifo> against the working directory
    monkeypatch.setenv("LSTMVIZ_CACHE_DIR", str(tmp_path / "cache"))
    watch = FifoWatch(tmp_path)
    yield watch
    watch.stop()


def shown(text: str, text_format=QtCore.Qt.TextFormat.AutoText) -> str:
    """What Qt shows for ``text``: itself when read as plain text, else the HTML's text."""
    rich = text_format == QtCore.Qt.TextFormat.RichText or (
        text_format == QtCore.Qt.TextFormat.AutoText and QtGui.Qt.mightBeRichText(text))
    return QtGui.QTextDocumentFragment.fromHtml(text).toPlainText() if rich else text


def tooltips(window) -> list[str]:
    """Every tooltip the window can show: widgets, combo items, list and table cells and headers,
    actions given one, and graphics items."""
    texts = [w.toolTip() for w in window.findChildren(QtWidgets.QWidget)]
    for combo in window.findChildren(QtWidgets.QComboBox):
        texts += [combo.itemData(i, Role.ToolTipRole) for i in range(combo.count())]
    for view in window.findChildren(QtWidgets.QAbstractItemView):
        model = view.model()
        if model is None:
            continue
        root = QtCore.QModelIndex()
        columns = 1 if isinstance(model, QtCore.QAbstractListModel) else min(model.columnCount(root), 40)
        rows = min(model.rowCount(root), 40)
        texts += [model.data(model.index(r, c), Role.ToolTipRole) for r in range(rows) for c in range(columns)]
        texts += [model.headerData(c, QtCore.Qt.Orientation.Horizontal, Role.ToolTipRole) for c in range(columns)]
        texts += [model.headerData(r, QtCore.Qt.Orientation.Vertical, Role.ToolTipRole) for r in range(rows)]
    for action in window.findChildren(QtGui.QAction):
        if action.toolTip() != action.text().replace("&", ""):  # Qt's default tooltip is the text
            texts.append(action.toolTip())
    for view in window.findChildren(QtWidgets.QGraphicsView):
        texts += [item.toolTip() for item in view.scene().items()]
    return [t for t in texts if isinstance(t, str) and t]


def label_texts(window) -> list[str]:
    return [shown(label.text(), label.textFormat()) for label in window.findChildren(QtWidgets.QLabel)]


def test_hostile_names_are_shown_literally_and_no_file_they_name_is_opened(qtbot, window, tmp_path, fifo, monkeypatch):
    path = write_hostile_recording(tmp_path / f"{HOSTILE}.h5")
    assert window.open_file(path)
    ws = window.workspace
    assert ws.tap == "layer1/h"  # the window opens on the hidden state; show the hostile-named tap
    ws.set_tap(HOSTILE_TAP)
    assert ws.tap == HOSTILE_TAP and ws.visible_annotations == [HOSTILE, "score"]

    # brush the planted units, hover a token and a line (the hover card and the status bar)
    pane = ws.active_pane
    with qtbot.waitSignal(pane.selection_changed):
        drag_tokens(window, 10, 14)
    assert set(pane.selection.units.tolist()) == set(PLANTED_UNITS)
    plot = window.state_plot.active_plot
    monkeypatch.setattr(pg, "CONFIG_OPTIONS", {**pg.CONFIG_OPTIONS, "mouseRateLimit": -1})  # synthetic moves are fast
    over_line = plot.view_box.mapViewToScene(QtCore.QPointF(13, 1.0))  # token 13 is <img src=x.fifo>
    send_mouse(window.state_plot.viewport(), "move", window.state_plot.mapFromScene(over_line))
    assert ws.hover is not None and ws.hover.token == HOSTILE and ws.hover.unit in PLANTED_UNITS
    card = plot.hover_label.textItem.toPlainText()
    assert f"token {display_token(HOSTILE)}" in card and f"{HOSTILE}: {HOSTILE}" in card  # spaces shown as ·
    assert f"token {display_token(HOSTILE)}" in shown(window.statusBar().hover_label.text(), window.statusBar().hover_label.textFormat())
    send_mouse(window.state_plot.viewport(), "move", token_row_point(window, 11))
    assert ws.hover.token == "b&amp;c"

    # match the selection (strips of the hostile annotation) and probe the hostile label
    panel = window.panels["match"]
    with qtbot.waitSignals([panel.results_changed, panel.aggregate_changed], timeout=TIMEOUT):
        panel.match_action.trigger()
    assert len(panel.results) > 0
    panel.set_strips([HOSTILE, "kind"])
    probes = window.panels["probes"]
    probes.set_label(HOSTILE)
    with qtbot.waitSignal(probes.results_ready, timeout=TIMEOUT):
        probes.run()
    probes.open_probe("layer1/h")
    assert probes.detail.tap == "layer1/h"
    assert probes.select_unit(HOSTILE_TAP, 7)

    # every label and every tooltip shows the names as they are; Qt renders each one
    labels = label_texts(window)
    for dock in (window.docks["info"], window.docks["probes"], window.docks["match"]):
        dock.raise_()
        window.grab()
    assert any(f"{HOSTILE}.h5" == text for text in labels)  # the status bar
    assert any(f"{HOSTILE_TAP} ({ws.active_pane.transform}, threshold" in text for text in labels)  # the match panel
    assert any(text.startswith(f"{HOSTILE} around") for text in labels)  # the aggregate view
    assert any(f"of {HOSTILE_TAP} is selected" in text for text in labels)  # the probe detail's note
    assert any(f"Pane 1 · {HOSTILE_TAP}" in text for text in labels)  # the selection dock
    assert all(HOSTILE in text for text in labels if "x.fifo" in text)
    info = window.panels["info"].toPlainText()
    assert f"{HOSTILE}.h5" in info and f"Engine\n{HOSTILE}" in info and f"{HOSTILE} (categorical" in info
    assert plot.titleLabel.item.toPlainText().startswith(f"Pane 1 · {HOSTILE_TAP} · 8 units")
    tips = tooltips(window)
    hostile_tips = [t for t in tips if "x.fifo" in shown(t)]
    assert len(hostile_tips) >= 10
    assert all(HOSTILE in shown(t) for t in hostile_tips)
    for tip in tips:  # as QToolTip lays one out (a QLabel guessing the format); showText itself warns offscreen
        label = QtWidgets.QLabel(tip)
        label.setWordWrap(QtGui.Qt.mightBeRichText(tip))
        label.grab()
    track = window.state_plot.tracks[0]
    assert shown(track.toolTip()).startswith(HOSTILE) and track.getAxis("left")._tickLevels is not None

    # a dialog quoting a name (as the window's error messages do) shows it as text
    boxes = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "exec", lambda box: boxes.append(box) or 0)
    errors.show_error(window, "Cannot open recording", f"lstmviz could not open “{HOSTILE}.h5”.")
    assert boxes[0].textFormat() == QtCore.Qt.TextFormat.PlainText
    boxes[0].grab()

    # exports carry the names as text
    assert window.export_plot(tmp_path / "plot.svg") and window.export_plot(tmp_path / "plot.png")
    svg = (tmp_path / "plot.svg").read_text(encoding="utf-8")
    assert f"Pane 1 · {escape(HOSTILE_TAP)}" in svg.replace("&#160;", " ")
    panel.export_view(tmp_path / "match.png")
    probes.export_detail(tmp_path / "detail.png")
    assert fifo.stop() == 0  # nothing opened the FIFO


def test_the_helpers_keep_every_character():
    assert escape("<img src=a> & 'b'") == "&lt;img src=a&gt; &amp; &#x27;b&#x27;"
    for text in (HOSTILE, "a &amp; b", "line one\n<b>two</b>"):
        tip = literal(text)
        assert QtGui.Qt.mightBeRichText(tip) and shown(tip) == text
    assert literal("") == ""
    label = plain_label("<b>x</b>")
    assert label.textFormat() == QtCore.Qt.TextFormat.PlainText and label.text() == "<b>x</b>"
    set_plain(label, HOSTILE)
    assert label.text() == HOSTILE and label.textFormat() == QtCore.Qt.TextFormat.PlainText
