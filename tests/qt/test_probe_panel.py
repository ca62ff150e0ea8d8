"""The Probes panel on a real workspace: pick a label, Run on a worker, the chart shows run_probes's
report ordered by layer, a click opens a probe, clicking a top unit selects it in the active pane;
cancel leaves nothing; errors go to the workspace's error path; exports parse and are not blank."""

import csv
import math
import re
import threading
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from conftest import send_mouse
from PySide6 import QtCore, QtGui, QtWidgets
from probe_recordings import (
    NOISE_TAP,
    PLANTED_TAP,
    PLANTED_UNIT,
    TAGS,
    TAPS_BY_LAYER,
    Checkpoint,
    WithCheckpoints,
    image_colors,
    write_probe_recording,
    write_unlabelled_recording,
)

from lstmviz.analysis.probe_report import ProbeCurves, run_probes
from lstmviz.analysis.probes import INPUT_TAP
from lstmviz.qt.probes import panel as probe_panel
from lstmviz.qt.probes.curves_view import ProbeCurvesView
from lstmviz.qt.probes.panel import ProbePanel
from lstmviz.qt.widget_export import export_widget
from lstmviz.recording import open_recording

TIMEOUT = 120000  # ms: a run fits 7 probes; the first one imports torch


@pytest.fixture(scope="module")
def probe_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe-panel")
    return {"planted": write_probe_recording(root / "planted.h5"), "cache": root / "cache"}


@pytest.fixture(autouse=True)
def cache_dir(probe_files, monkeypatch):
    """Probe reports are cached in one directory for this module (a later test may find an earlier
    test's report, as a user re-running the same settings does), never beside the test data."""
    monkeypatch.setenv("LSTMVIZ_CACHE_DIR", str(probe_files["cache"]))
    return probe_files["cache"]


def make_workspace(qtbot, path, opener=None):
    from lstmviz.qt.workspace import Workspace

    owner = QtWidgets.QWidget()  # the workspace lives and dies with a widget, as in the main window
    qtbot.addWidget(owner)
    ws = Workspace(opener=opener, parent=owner)
    ws.owner = owner  # qtbot keeps only a weak reference to the widget
    ws.open(path)
    return ws


def make_panel(qtbot, ws):
    panel = ProbePanel(ws)
    qtbot.addWidget(panel)
    panel.resize(1400, 420)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


@pytest.fixture
def workspace(qtbot, probe_files):
    ws = make_workspace(qtbot, probe_files["planted"])
    yield ws
    ws.shutdown()
    ws.close()


@pytest.fixture
def panel(qtbot, workspace):
    p = make_panel(qtbot, workspace)
    yield p
    p.shutdown()


@pytest.fixture
def reported(workspace):
    seen = []
    workspace.error_occurred.connect(lambda title, message: seen.append((title, message)))
    return seen


def run(qtbot, panel):
    """Press Run and wait for the results."""
    with qtbot.waitSignal(panel.results_ready, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(panel.run_button, QtCore.Qt.MouseButton.LeftButton)
    assert not panel.busy and not panel.progress.isVisible()
    return blocker.args[0]


@pytest.fixture
def probed(qtbot, panel):
    """The panel after running the planted tag on every tap."""
    panel.set_label("tag")
    run(qtbot, panel)
    return panel


def click_scene(widget, point):
    """A left click (press, release) on a pyqtgraph view's viewport."""
    viewport = widget.viewport()
    send_mouse(viewport, "press", QtCore.QPointF(point))
    send_mouse(viewport, "release", QtCore.QPointF(point))


# ------------------------------------------------------------------------------------------ controls


def test_controls_offer_categorical_labels_with_their_level_and_taps_by_layer(panel):
    texts = [panel.label_combo.itemText(i) for i in range(panel.label_combo.count())]
    assert texts == ["tag (position)", "kind (item)"]  # the numeric annotation is not offered
    assert panel.taps() == TAPS_BY_LAYER  # declared layer1/h, layer0/h, layer1/c
    assert panel.checked_taps() == TAPS_BY_LAYER  # all by default
    assert panel.run_button.isEnabled() and panel.run_action.isEnabled()
    panel.set_label("tag")
    assert panel.at_combo.currentData() == "all" and panel.shift_spin.isEnabled()
    panel.shift_spin.setValue(1)
    assert "t+1" in panel.shift_label.text() and "next" in panel.shift_label.text()
    panel.set_label("kind")  # an item's label: the last position of each item, no shift
    assert panel.at_combo.currentData() == "last"
    assert not panel.shift_spin.isEnabled() and panel.shift_spin.value() == 0
    s = panel.settings()
    assert (s.annotation, s.at, s.shift, s.taps, s.control, s.baseline) == ("kind", "last", 0, tuple(TAPS_BY_LAYER),
                                                                           True, True)
    panel.set_checked_taps([])
    assert not panel.run_button.isEnabled()
    assert panel.run() is False and "at least one tap" in panel.status_text()
    panel.set_checked_taps(None)
    assert panel.run_button.isEnabled()
    assert not panel.curves_check.isVisibleTo(panel) and not panel.curves_offered  # one model state only


def test_recording_without_categorical_annotations_disables_run(qtbot, tmp_path):
    ws = make_workspace(qtbot, write_unlabelled_recording(tmp_path / "plain.h5"))
    try:
        p = make_panel(qtbot, ws)
        assert p.label_combo.count() == 0 and not p.label_combo.isEnabled()
        assert not p.run_button.isEnabled() and not p.run_action.isEnabled()
        assert "no categorical annotation" in p.status_text()
        assert "no categorical annotation" in p.status_label.text()
        assert p.run() is False
        assert p.report is None and not p.busy
        p.shutdown()
    finally:
        ws.shutdown()
        ws.close()


# ------------------------------------------------------------------------------------------- results


def test_run_draws_one_entry_per_tap_with_the_planted_tap_decoded(qtbot, probed, probe_files):
    panel = probed
    report = panel.report
    entries = panel.chart.entries()
    assert [e["tap"] for e in entries] == TAPS_BY_LAYER
    by_tap = {e["tap"]: e for e in entries}
    assert by_tap[PLANTED_TAP]["accuracy"] > 0.9
    assert abs(by_tap[NOISE_TAP]["accuracy"] - report.majority_accuracy) < 0.1
    for e in entries:  # every bar has its interval and its control probe
        assert e["ci_low"] <= e["accuracy"] <= e["ci_high"]
        assert math.isfinite(e["control_accuracy"])
        assert e["selectivity"] == pytest.approx(e["accuracy"] - e["control_accuracy"])
    assert by_tap[PLANTED_TAP]["selectivity"] > 0.4
    # the chart shows exactly what run_probes computes for these settings
    with open_recording(probe_files["planted"]) as rec:
        expected = run_probes(rec, "tag", TAPS_BY_LAYER)
    for tap in TAPS_BY_LAYER:
        assert by_tap[tap]["accuracy"] == expected.probes[tap].accuracy
    assert report.baseline.tap == INPUT_TAP
    legend = panel.chart.legend_text()
    for word in ("probe", "control task", "majority class", "input tokens", "selectivity"):
        assert word in legend
    # the best tap is open, and the status line says what happened in words
    assert panel.detail.tap == PLANTED_TAP and panel.chart.current == PLANTED_TAP
    status = panel.status_text()
    assert "Probed tag on 3 taps" in status and f"best {PLANTED_TAP}" in status and "majority class" in status


def test_same_settings_again_come_from_the_cache(qtbot, probed):
    first = probed.report
    again = run(qtbot, probed)
    assert "from the cache" in probed.status_text()
    assert again.probes[PLANTED_TAP].accuracy == first.probes[PLANTED_TAP].accuracy


def test_click_a_tap_then_a_unit_selects_it_in_the_active_pane(qtbot, probed, workspace):
    panel = probed
    pane = workspace.active_pane
    pane.set_tap("layer1/c")  # another tap than the probe's (layer1/h), so that the switch below shows
    # open the noise tap's probe by clicking its column, then the planted one
    with qtbot.waitSignal(panel.probe_opened) as opened:
        click_scene(panel.chart.view, panel.chart.tap_point(NOISE_TAP))
    assert opened.args == [NOISE_TAP] and panel.detail.tap == NOISE_TAP and panel.chart.current == NOISE_TAP
    with qtbot.waitSignal(panel.probe_opened) as opened:
        click_scene(panel.chart.view, panel.chart.tap_point(PLANTED_TAP))
    assert opened.args == [PLANTED_TAP]
    detail = panel.detail
    result = panel.report.probes[PLANTED_TAP]
    assert detail.confusion_model.rowCount() == len(TAGS)
    assert detail.confusion_model.columnCount() == len(TAGS) + 2  # n and per-class accuracy
    # the planted unit of each class is among (in fact leads) its top units
    for tag, unit in PLANTED_UNIT.items():
        assert detail.top_units(tag)[0][1] == unit
    row = detail.unit_row("B", PLANTED_UNIT["B"])
    rect = detail.units_view.visualRect(detail.units_model.index(row, 2))
    with qtbot.waitSignal(panel.unit_selected) as selected:
        qtbot.mouseClick(detail.units_view.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=rect.center())
    assert selected.args == [PLANTED_TAP, PLANTED_UNIT["B"]]
    assert pane.tap == PLANTED_TAP  # the pane switched to the probe's tap
    assert PLANTED_UNIT["B"] in pane.selection.units.tolist()
    assert (PLANTED_UNIT["B"], 1) in pane.added
    assert f"Unit {PLANTED_UNIT['B']} of {PLANTED_TAP} is selected" in detail.note_text()
    # a second unit of the same tap joins the first
    detail.activate_row(detail.unit_row("C", PLANTED_UNIT["C"]))
    assert {PLANTED_UNIT["B"], PLANTED_UNIT["C"]} <= set(pane.selection.units.tolist())
    # the confusion matrix is the probe's, shown as row shares, or counts
    model = detail.confusion_model
    assert model.data(model.index(0, 0)) == f"{100 * result.confusion[0, 0] / result.confusion[0].sum():.0f}%"
    detail.cells_combo.setCurrentIndex(detail.cells_combo.findData(True))
    assert model.data(model.index(1, 1)) == f"{int(result.confusion[1, 1]):,}"
    acc = model.data(model.index(2, len(TAGS) + 1))
    assert acc == f"{100 * result.per_class_accuracy[2]:.0f}%"


def test_the_detail_lists_every_probe_and_the_baseline(qtbot, probed):
    detail = probed.detail
    taps = [detail.probe_combo.itemData(i) for i in range(detail.probe_combo.count())]
    assert taps == [*TAPS_BY_LAYER, INPUT_TAP]
    with qtbot.waitSignal(probed.probe_opened):
        detail.probe_combo.setCurrentIndex(taps.index(INPUT_TAP))
    assert detail.result is probed.report.baseline
    assert detail.units_model.rowCount() == 0 and not detail.units_view.isEnabled()
    assert "Input tokens" in detail.header.text()
    with qtbot.waitSignal(probed.probe_opened):
        detail.probe_combo.setCurrentIndex(taps.index("layer1/c"))
    assert probed.chart.current == "layer1/c"
    assert "selectivity" in detail.header.text()


def test_item_label_uses_the_last_position(qtbot, panel):
    panel.set_label("kind")
    panel.set_checked_taps([PLANTED_TAP, NOISE_TAP])
    report = run(qtbot, panel)
    assert report.at == "last" and report.annotation == "kind"
    assert [e["tap"] for e in panel.chart.entries()] == [NOISE_TAP, PLANTED_TAP]
    assert report.probes[PLANTED_TAP].n_test == report.split_sizes[2]  # one position per test item
    assert "last position of each item" in panel.status_text()


def test_without_control_task_the_chart_has_no_control_bars(qtbot, panel):
    panel.set_label("tag")
    panel.control_check.setChecked(False)
    panel.baseline_check.setChecked(False)
    report = run(qtbot, panel)
    assert report.controls == {} and report.baseline is None
    entries = panel.chart.entries()
    assert len(entries) == len(TAPS_BY_LAYER)
    assert all(math.isnan(e["control_accuracy"]) and math.isnan(e["selectivity"]) for e in entries)
    legend = panel.chart.legend_text()
    assert "control task" not in legend and "input tokens" not in legend and "majority class" in legend
    assert INPUT_TAP not in [panel.detail.probe_combo.itemData(i) for i in range(panel.detail.probe_combo.count())]


# --------------------------------------------------------------------------------- cancel and errors


def _blocking_run(started: threading.Event):
    """A stand-in for run_probes that reports progress until it is cancelled."""

    def fake(recording, annotation, taps, task, **options):
        started.set()
        i = 0
        while True:  # task.progress raises Cancelled once Cancel was pressed
            task.progress(i % 100, 100, f"Probe {taps[0]}")
            threading.Event().wait(0.002)
            i += 1

    return fake


def test_cancel_leaves_no_result_and_says_so(qtbot, probed, monkeypatch):
    panel = probed
    assert panel.report is not None
    monkeypatch.setattr(probe_panel, "_run_probes", _blocking_run(threading.Event()))
    with qtbot.waitSignal(panel.workspace.runner.progress, timeout=TIMEOUT):
        assert panel.run()
    assert panel.busy and panel.cancel_button.isVisible() and panel.cancel_action.isEnabled()
    assert panel.report is None  # a run shows no stale result while it works
    with qtbot.waitSignal(panel.run_cancelled, timeout=TIMEOUT):
        qtbot.mouseClick(panel.cancel_button, QtCore.Qt.MouseButton.LeftButton)
    assert not panel.busy and not panel.cancel_button.isVisible()
    assert panel.report is None and panel.chart.entries() == [] and panel.detail.result is None
    assert "cancelled" in panel.status_text().lower()
    assert not panel.export_data_action.isEnabled()
    with pytest.raises(ValueError, match="press Run"):
        panel.export_table("/nonexistent/probes.csv")


def test_worker_errors_go_to_the_workspace_error_path(qtbot, panel, reported, monkeypatch):
    def broken(recording, annotation, taps, task, **options):
        raise ValueError("The label has no positions in one of the train/validation/test items.")

    monkeypatch.setattr(probe_panel, "_run_probes", broken)
    panel.set_label("tag")
    with qtbot.waitSignal(panel.run_failed, timeout=TIMEOUT):
        panel.run()
    assert reported == [("Cannot run the probes",
                         "The label has no positions in one of the train/validation/test items.")]
    assert "Could not run the probes" in panel.status_text()
    assert panel.report is None and not panel.busy


def test_a_new_recording_clears_the_results(qtbot, probed, workspace, tmp_path):
    path = write_unlabelled_recording(tmp_path / "other.h5")
    with qtbot.waitSignal(probed.report_changed) as changed:
        workspace.open(path)
    assert changed.args == [None]
    assert probed.report is None and probed.chart.entries() == []
    assert probed.taps() == ["layer0/h"] and not probed.run_button.isEnabled()


# ------------------------------------------------------------------------------------------- exports


@pytest.mark.parametrize("part", ["chart", "detail"])
def test_view_exports_parse_and_are_not_blank(probed, tmp_path, part):
    png = probed.export_view(tmp_path / f"{part}.png", part)
    image = QtGui.QImage(str(png))
    if part == "chart":
        assert image.width() == 2 * probed.chart.width() and image.height() == 2 * probed.chart.height()
    else:  # a figure of the whole probe: at least every row of top units (20 px each, at scale 2)
        assert image.height() >= 2 * 20 * len(probed.detail.top_units())
    assert image_colors(image) > 20
    svg = probed.export_view(tmp_path / f"{part}.svg", part)
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    texts = " ".join("".join(el.itertext()) for el in root.iter() if el.tag.endswith("text"))
    drawn = sum(el.tag.rsplit("}", 1)[-1] in ("path", "rect", "polyline", "polygon", "line") for el in root.iter())
    assert drawn > 10
    if part == "chart":
        assert all(tap in texts for tap in TAPS_BY_LAYER)  # tick labels stay text
    else:
        assert all(tag in texts for tag in TAGS)
    pdf = probed.export_view(tmp_path / f"{part}.pdf", part).read_bytes()
    assert pdf.startswith(b"%PDF") and (b"/Type /Page" in pdf or b"/Type/Page" in pdf) and len(pdf) > 1024
    with pytest.raises(ValueError, match="PNG/SVG/PDF"):
        probed.export_view(tmp_path / f"{part}.bmp", part)


def test_the_detail_export_is_the_whole_probe_whatever_the_dock_shows(probed, tmp_path, qtbot):
    """The export drew the dock as scrolled: 12 rows of the units list, with its scroll bar."""
    probed.resize(1000, 260)  # a short dock: a few rows of units on screen
    qtbot.waitUntil(lambda: probed.detail.units_view.verticalScrollBar().isVisible())
    rows = probed.detail.top_units()
    assert len(rows) > 12
    svg = probed.export_view(tmp_path / "detail.svg", "detail")
    root = ET.parse(svg).getroot()
    texts = ["".join(el.itertext()).strip() for el in root.iter() if el.tag.endswith("text")]
    weights = re.compile(r"^[+−]\d+\.\d{3}$")  # a cell of the weight column
    assert sorted(filter(weights.match, texts)) == sorted(f"{w:+.3f}".replace("-", "−") for _, _, w in rows)
    for tag in TAGS:  # every class is a row and a column of the matrix
        assert texts.count(tag) >= 2
    assert any("held-out accuracy" in t for t in texts)
    probed.detail.class_combo.setCurrentIndex(probed.detail.class_combo.findData(TAGS[1]))
    svg = probed.export_view(tmp_path / "one-class.svg", "detail")
    texts = ["".join(el.itertext()).strip() for el in ET.parse(svg).getroot().iter() if el.tag.endswith("text")]
    assert len(list(filter(weights.match, texts))) == len(probed.detail.top_units(TAGS[1]))


def test_table_has_a_row_per_tap_and_the_baseline(probed, tmp_path):
    with open(probed.export_table(tmp_path / "probes.csv"), encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["tap"] for r in rows] == [*TAPS_BY_LAYER, INPUT_TAP]
    report = probed.report
    for r in rows[:-1]:
        assert float(r["accuracy"]) == report.probes[r["tap"]].accuracy
        assert float(r["selectivity"]) == pytest.approx(report.selectivity(r["tap"]))
    table = np.load(probed.export_table(tmp_path / "probes.npy"))
    assert table["tap"].tolist() == [*TAPS_BY_LAYER, INPUT_TAP]
    with pytest.raises(ValueError, match=r"\.csv, \.npy"):
        probed.export_table(tmp_path / "probes.xlsx")


def test_export_actions_use_the_file_dialog(probed, tmp_path, monkeypatch):
    answers = iter([
        (str(tmp_path / "chart"), "SVG vector image (*.svg)"),
        (str(tmp_path / "table"), "Probe table, NumPy array (*.npy)"),
        ("", ""),
    ])
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *a, **k: next(answers))
    probed.export_chart_action.trigger()
    assert (tmp_path / "chart.svg").exists()
    probed.export_data_action.trigger()
    assert np.load(tmp_path / "table.npy")["tap"].tolist()[-1] == INPUT_TAP
    assert probed.choose_and_export_view("detail") is False  # the dialog was cancelled
    assert "Exported to" in probed.status_text()


# -------------------------------------------------------------------------------- curves over training


@pytest.fixture(scope="module")
def curves(tmp_path_factory, probe_files):
    """ProbeCurves built by hand from two recordings standing in for an early and a late checkpoint."""
    import os

    root = tmp_path_factory.mktemp("curves")
    early_path = write_probe_recording(root / "early.h5", strength=0.3)
    old = os.environ.get("LSTMVIZ_CACHE_DIR")
    os.environ["LSTMVIZ_CACHE_DIR"] = str(probe_files["cache"])
    try:
        reports = []
        for path in (early_path, probe_files["planted"]):
            with open_recording(path) as rec:
                reports.append(run_probes(rec, "tag", TAPS_BY_LAYER))
    finally:
        if old is None:
            os.environ.pop("LSTMVIZ_CACHE_DIR")
        else:
            os.environ["LSTMVIZ_CACHE_DIR"] = old
    return ProbeCurves(annotation="tag", labels=TAGS, shift=0, at="all", taps=TAPS_BY_LAYER,
                       checkpoints=["early", "late"], steps=[100, 5000], reports=reports)


def test_curves_view_draws_accuracy_per_tap_against_step(qtbot, curves, tmp_path):
    view = ProbeCurvesView()
    qtbot.addWidget(view)
    view.resize(700, 400)
    view.show()
    qtbot.waitExposed(view)
    view.set_curves(curves)
    planted = view.series(PLANTED_TAP)
    assert planted["x"].tolist() == [100.0, 5000.0]
    assert planted["accuracy"][1] > 0.9 and planted["accuracy"][1] > planted["accuracy"][0] + 0.1
    np.testing.assert_array_equal(planted["control"], curves.control_accuracy(PLANTED_TAP))
    # coloured by signal, marked by layer: layer0/h and layer1/h share a colour and differ by marker;
    # layer1/c has its own colour and layer 1's marker
    noise, cell = view.series(NOISE_TAP), view.series("layer1/c")
    assert noise["color"] == planted["color"] and noise["symbol"] != planted["symbol"]
    assert cell["color"] != planted["color"] and cell["symbol"] == planted["symbol"]
    assert view.plot.getAxis("bottom").labelText == "training step"
    legend = view.legend_text()
    assert all(entry in legend for entry in ("■ h", "■ c", "layer 0", "layer 1", "control task"))
    image = QtGui.QImage(str(export_widget(view, tmp_path / "curves.png")))
    assert image_colors(image) > 20
    # without steps, the checkpoints are named on the axis, in order
    view.set_curves(ProbeCurves(**{**curves.__dict__, "steps": [None, None]}))
    assert view.series(PLANTED_TAP)["x"].tolist() == [0.0, 1.0]
    assert view.plot.getAxis("bottom").labelText.startswith("checkpoint")


def test_panel_offers_curves_only_for_several_checkpoints(qtbot, probe_files, curves, monkeypatch, tmp_path):
    def opener(path):
        return WithCheckpoints(open_recording(path), [Checkpoint("early", 100), Checkpoint("late", 5000)])

    asked = []

    def fake_curves(recording, annotation, taps, task, **options):
        asked.append((annotation, tuple(taps), options))
        task.progress(1, 1, "Probe curves done")
        return curves

    monkeypatch.setattr(probe_panel, "_probe_curves", fake_curves)
    ws = make_workspace(qtbot, probe_files["planted"], opener=opener)
    try:
        p = make_panel(qtbot, ws)
        assert p.curves_offered and p.curves_check.isVisibleTo(p)
        assert "2 checkpoints" in p.curves_check.text()
        p.set_label("tag")
        p.curves_check.setChecked(True)
        with qtbot.waitSignal(p.results_ready, timeout=TIMEOUT):
            p.run()
        assert asked == [("tag", tuple(TAPS_BY_LAYER), {"shift": 0, "at": "all", "control": True})]
        assert p.curves is curves and p.curves_view.curves is curves
        assert "curves over steps 100–5,000" in p.status_text()
        with open(p.export_curves_table(tmp_path / "curves.csv"), encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == 2 * (len(TAPS_BY_LAYER) + 1)  # per checkpoint: the taps, then the baseline
        image = QtGui.QImage(str(p.export_curves(tmp_path / "curves.png")))
        assert image_colors(image) > 20
        p.shutdown()
    finally:
        ws.shutdown()
        ws.close()
