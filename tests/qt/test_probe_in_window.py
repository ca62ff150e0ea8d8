"""The probes loop in the main window: Analysis > Run Probes, the chart appears in the Probes dock, a
click on a tap opens its probe, a click on a unit selects it in the Select view."""

import threading

import pytest
from conftest import send_mouse
from PySide6 import QtCore
from probe_recordings import (
    PLANTED_TAP,
    PLANTED_UNIT,
    TAPS_BY_LAYER,
    write_probe_recording,
)

from lstmviz.qt.probes import panel as probe_panel

TIMEOUT = 120000


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LSTMVIZ_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def opened(window, tmp_path):
    assert window.open_file(write_probe_recording(tmp_path / "probes.h5"))
    return window


def _menu_action(window, menu_title, text):
    for action in window.menuBar().actions():
        if action.text().replace("&", "") == menu_title:
            for item in action.menu().actions():
                if item.text().replace("&", "") == text:
                    return item
    raise AssertionError(f"no {menu_title} > {text} in the menus")


def test_pick_a_label_run_click_a_tap_and_a_unit_selects_it(qtbot, opened):
    window = opened
    panel = window.panels["probes"]
    ws = window.workspace
    assert not window.docks["probes"].isVisible()  # closed until probes run
    panel.label_combo.setCurrentIndex(panel.label_combo.findData("tag"))
    run = _menu_action(window, "Analysis", "Run Probes")
    assert run.shortcut().toString() == "Ctrl+Shift+P"
    with qtbot.waitSignal(panel.results_ready, timeout=TIMEOUT):
        run.trigger()
    assert window.docks["probes"].isVisible() and not window.docks["probes"].visibleRegion().isEmpty()  # raised
    assert [e["tap"] for e in panel.chart.entries()] == TAPS_BY_LAYER

    chart = panel.chart
    point = QtCore.QPointF(chart.tap_point(PLANTED_TAP))
    with qtbot.waitSignal(panel.probe_opened):
        send_mouse(chart.view.viewport(), "press", point)
        send_mouse(chart.view.viewport(), "release", point)
    detail = panel.detail
    assert detail.tap == PLANTED_TAP
    unit = PLANTED_UNIT["A"]
    row = detail.unit_row("A", unit)
    rect = detail.units_view.visualRect(detail.units_model.index(row, 2))
    pane = ws.active_pane
    with qtbot.waitSignal(pane.selection_changed):
        qtbot.mouseClick(detail.units_view.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=rect.center())
    # the Select view shows the probe's tap with the unit selected, and the Selection dock lists it
    assert pane.tap == PLANTED_TAP and window.state_plot.active_plot.pane is pane
    assert unit in pane.selection.units.tolist()
    assert window.panels["selection"].selected_model.pair(0) == (unit, 1)


def test_closing_the_window_while_probing_stops_the_worker(qtbot, opened, monkeypatch):
    panel = opened.panels["probes"]
    stopped = threading.Event()

    def endless(recording, annotation, taps, task, **options):
        try:
            while True:
                task.progress(0, 10, "Probe")
                threading.Event().wait(0.002)
        finally:
            stopped.set()

    monkeypatch.setattr(probe_panel, "_run_probes", endless)
    with qtbot.waitSignal(opened.workspace.runner.progress, timeout=TIMEOUT):
        assert panel.run()
    opened.close()
    assert stopped.is_set()  # closeEvent cancelled the run and waited for the worker
