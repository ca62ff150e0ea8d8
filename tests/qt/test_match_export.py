"""Export of the Match panel: views to PNG / SVG / PDF (parse, not blank), matches and the aggregated
table to CSV / NPY (read back equal), unknown formats refused in words."""

import csv
from dataclasses import replace
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets
from test_match_helpers import (
    PLANTED,
    FakeWorkspace,
    image_colors,
    write_planted_recording,
)

from lstmviz.qt import widget_export
from lstmviz.qt.match.panel import MatchPanel
from lstmviz.qt.widget_export import export_widget
from lstmviz.qt.workers import TaskRunner
from lstmviz.recording import open_recording

TIMEOUT = 60000


@pytest.fixture
def matched(qtbot, tmp_path):
    """A panel showing the matches of the planted units, with strips and the aggregate of depth."""
    path, _ = write_planted_recording(tmp_path / "planted.h5")
    recording = open_recording(path)
    runner = TaskRunner()
    ws = FakeWorkspace(recording, runner, visible=("depth", "signal"))
    panel = MatchPanel(ws)
    qtbot.addWidget(panel)
    panel.resize(1400, 800)
    panel.show()
    qtbot.waitExposed(panel)
    ws.active_pane.select(PLANTED, brush=(10, 13))
    with qtbot.waitSignals([panel.results_changed, panel.aggregate_changed], timeout=TIMEOUT):
        panel.match()
    panel.set_paint_strip("depth")
    yield panel
    panel.shutdown()
    assert runner.shutdown()
    recording.close()


def read_csv(path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_png_of_the_panel_is_the_panel_as_shown(matched, tmp_path):
    path = matched.export_view(tmp_path / "m.png", part="panel")
    image = QtGui.QImage(str(path))
    assert image.width() == 2 * matched.width() and image.height() == 2 * matched.height()
    assert image_colors(image) > 20  # tokens, strips, heat colours: far from a single colour


def test_png_of_the_views_is_the_whole_result_whatever_the_dock_shows(matched, tmp_path):
    matched.resize(900, 300)  # a short dock: one or two rows and a few aggregate rows on screen
    QtWidgets.QApplication.processEvents()
    assert len(matched.view.visible_rows()) < len(matched.results)
    image = QtGui.QImage(str(matched.export_view(tmp_path / "m.png")))
    row_height = matched.view.verticalHeader().defaultSectionSize()
    table_rows = matched.aggregate_view.model.rowCount()
    # every result row and every aggregate row fit: taller than they are, wider than the dock
    assert image.height() >= 2 * max(len(matched.results) * row_height, table_rows * 20)
    assert image.width() > 2 * matched.width()
    assert image_colors(image) > 20


def test_png_at_scale_1_is_grab(matched, tmp_path):
    path = export_widget(matched.results_widget, tmp_path / "r.png", scale=1.0)
    image = QtGui.QImage(str(path))
    assert image.size() == matched.results_widget.size()
    assert image_colors(image) > 20


def test_svg(matched, tmp_path):
    path = matched.export_view(tmp_path / "m.svg")
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    tags = [el.tag.rsplit("}", 1)[-1] for el in root.iter()]
    drawn = sum(t in ("path", "rect", "polyline", "polygon", "line", "image") for t in tags)
    texts = ["".join(el.itertext()) for el in root.iter() if el.tag.endswith("text")]
    assert drawn > 50
    assert any("match count" in t for t in texts) or any("corpus" in t for t in texts)
    assert len(texts) > 100  # the tokens stay text: vector output


def test_pdf(matched, tmp_path):
    path = matched.export_view(tmp_path / "m.pdf")
    data = path.read_bytes()
    assert data.startswith(b"%PDF")
    assert b"/Type /Page" in data or b"/Type/Page" in data
    assert len(data) > 1024


def test_unknown_format_is_refused(matched, tmp_path):
    with pytest.raises(ValueError, match="PNG/SVG/PDF"):
        matched.export_view(tmp_path / "m.bmp")
    assert not (tmp_path / "m.bmp").exists()
    with pytest.raises(ValueError, match="part"):
        matched.export_view(tmp_path / "m.png", part="everything")
    with pytest.raises(ValueError, match=r"\.csv, \.npy"):
        matched.export_matches(tmp_path / "m.xlsx")


def test_matches_csv_and_npy(matched, tmp_path):
    results = matched.results
    rows = read_csv(matched.export_matches(tmp_path / "m.csv"))
    assert len(rows) == len(results)
    assert [int(r["start"]) for r in rows] == results.starts.tolist()
    assert [int(r["length"]) for r in rows] == results.lengths.tolist()
    assert [float(r["jaccard"]) for r in rows] == results.jaccard.tolist()
    recording = matched.workspace.recording
    s, n = int(results.starts[0]), int(results.lengths[0])
    assert rows[0]["text"] == " ".join(recording.tokens(s, s + n))
    table = np.load(matched.export_matches(tmp_path / "m.npy"))
    np.testing.assert_array_equal(table["start"], results.starts)
    np.testing.assert_array_equal(table["intersection"], results.intersection)
    assert table["rank"][0] == 1


def test_aggregate_csv_and_npy(matched, tmp_path):
    agg = matched.aggregate_table
    rows = read_csv(matched.export_aggregate(tmp_path / "a.csv"))
    assert len(rows) == agg.counts.size
    counts = np.array([int(r["count"]) for r in rows]).reshape(agg.counts.shape)
    np.testing.assert_array_equal(counts, agg.counts)
    table = np.load(matched.export_aggregate(tmp_path / "a.npy"))
    np.testing.assert_allclose(table["fraction"].reshape(agg.fraction.shape), agg.fraction, equal_nan=True)
    assert set(table["label"].tolist()) == set(agg.labels)


def test_nothing_to_export_yet(qtbot, tmp_path):
    path, _ = write_planted_recording(tmp_path / "p.h5", n_items=2)
    with open_recording(path) as recording:
        runner = TaskRunner()
        panel = MatchPanel(FakeWorkspace(recording, runner))
        qtbot.addWidget(panel)
        with pytest.raises(ValueError, match="no matches"):
            panel.export_matches(tmp_path / "m.csv")
        with pytest.raises(ValueError, match="no aggregated table"):
            panel.export_aggregate(tmp_path / "a.csv")
        assert runner.shutdown()


def test_export_actions_use_the_chosen_filter(matched, tmp_path, monkeypatch):
    answers = iter([
        (str(tmp_path / "view"), "SVG vector image (*.svg)"),
        (str(tmp_path / "data"), "Aggregated annotation, NumPy array (*.npy)"),
        (str(tmp_path / "bad.txt"), "Matches, CSV table (*.csv)"),
    ])
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *a, **k: next(answers))
    errors = []
    monkeypatch.setattr(widget_export, "show_error", lambda parent, title, message, details="": errors.append(message))
    matched.export_view_action.trigger()
    assert ET.parse(tmp_path / "view.svg").getroot().tag.endswith("svg")
    matched.export_data_action.trigger()
    assert np.load(tmp_path / "data.npy")["offset"].size == matched.aggregate_table.counts.size
    assert matched.choose_and_export_data()  # a name without a table suffix gets the filter's
    assert (tmp_path / "bad.txt.csv").read_text(encoding="utf-8").startswith("rank,start,")
    assert errors == []
    assert matched.export_view_action.shortcut().toString() == "Ctrl+Alt+E"
    assert matched.export_data_action.shortcut() == QtGui.QKeySequence("Ctrl+Alt+D")
    assert QtCore.QFileInfo(str(tmp_path / "view.svg")).size() > 1000


def test_svg_has_no_rows_spilling_out_of_the_view(matched, tmp_path):
    """SVG cannot clip: the row cut by the viewport's bottom edge is left out, the rows above are there."""
    view, model = matched.view, matched.model
    height = view.viewport().height()
    row_height = view.verticalHeader().defaultSectionSize()
    if height % row_height == 0:  # make sure one row is cut
        matched.resize(matched.width(), matched.height() + row_height // 2)
        QtWidgets.QApplication.processEvents()
        height = view.viewport().height()
    rows = view.visible_rows()
    cut, whole = rows[-1], rows[-2]
    assert view.visualRect(model.index(cut, 0)).bottom() >= height > view.visualRect(model.index(whole, 0)).bottom()
    position = model.fixed_keys().index("position")
    path = export_widget(matched.results_widget, tmp_path / "r.svg")
    texts = {"".join(el.itertext()).strip() for el in ET.parse(path).getroot().iter() if el.tag.endswith("text")}
    assert model.data(model.index(whole, position)) in texts
    assert model.data(model.index(cut, position)) not in texts
    # the PNG keeps the cut row (clipped by Qt)
    assert QtGui.QImage(str(export_widget(matched.results_widget, tmp_path / "r.png"))).height() > 0


def test_the_figure_lays_out_a_wide_aggregate_table_above_its_sentences(qtbot, tmp_path):
    """With 40 labels (as PTB's 45 POS tags) the figure drew the enrichment sentences over the table."""
    from lstmviz.qt.match.figure import close_figure, match_figure
    from lstmviz.recording.annotate import annotate
    from test_match_helpers import ITEM_LENGTH, N_ITEMS

    path, _ = write_planted_recording(tmp_path / "planted.h5")
    tags = [f"TAG{(p % ITEM_LENGTH) % 40}" for p in range(N_ITEMS * ITEM_LENGTH)]  # runs start on TAG10
    annotate(path, {"tag": tags}, level="position")
    recording = open_recording(path)
    runner = TaskRunner()
    ws = FakeWorkspace(recording, runner, visible=("depth",))
    panel = MatchPanel(ws)
    qtbot.addWidget(panel)
    panel.resize(1200, 600)
    panel.show()
    qtbot.waitExposed(panel)
    ws.active_pane.select(PLANTED, brush=(10, 13))
    with qtbot.waitSignals([panel.results_changed, panel.aggregate_changed], timeout=TIMEOUT):
        panel.match()
    with qtbot.waitSignal(panel.aggregate_changed, timeout=TIMEOUT):
        ws.set_panel_state("match", replace(panel.settings, aggregate_annotation="tag"))
    assert panel.aggregate_view.sentences()  # there are sentences to lay out under the table
    figure = match_figure(panel)
    try:
        labels = {w.text(): w for w in figure.findChildren(QtWidgets.QLabel)}
        heading = labels["<b>Top enrichments</b>"]
        table = next(w for w in figure.findChildren(QtWidgets.QTableView) if w.model() is panel.aggregate_view.model)
        assert table.model().columnCount() > 40

        def box(widget):
            return QtCore.QRect(widget.mapTo(figure, QtCore.QPoint(0, 0)), widget.size())

        assert box(heading).top() >= box(table).bottom()
        sentences = next(w for w in labels.values() if w.text().startswith("• "))
        assert box(sentences).top() > box(heading).top()
        assert figure.rect().contains(box(table)) and figure.rect().contains(box(sentences))
    finally:
        close_figure(figure)
        panel.shutdown()
        assert runner.shutdown()
        recording.close()


def test_one_unit_is_called_a_unit_in_the_header_and_the_figure(qtbot, tmp_path):
    from lstmviz.qt.match.figure import title_html

    path, _ = write_planted_recording(tmp_path / "planted.h5")
    recording = open_recording(path)
    runner = TaskRunner()
    ws = FakeWorkspace(recording, runner)
    panel = MatchPanel(ws)
    qtbot.addWidget(panel)
    try:
        ws.active_pane.select((5,), brush=(10, 13))
        assert "unit <b>5</b> of" in panel.selection_label.text()
        with qtbot.waitSignal(panel.results_changed, timeout=TIMEOUT):
            panel.match()
        assert "matches of unit 5 of layer0/c" in title_html(panel, 10)
        ws.active_pane.select(PLANTED, brush=(10, 13))
        assert "units <b>3, 5, 7</b> of" in panel.selection_label.text()
    finally:
        panel.shutdown()
        assert runner.shutdown()
        recording.close()
