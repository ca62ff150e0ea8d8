"""The Probes panel in saved workspaces: its settings are saved with the workspace; reopening the
workspace in a fresh window restores them, runs the probes again on the worker (from the cache) and
reopens the probe that was open; settings that do not fit the recording are said in words and the
rest of the workspace is restored."""

import json

import pytest
from conftest import make_window
from probe_recordings import (
    NOISE_TAP,
    PLANTED_TAP,
    TAPS_BY_LAYER,
    write_probe_recording,
)

from lstmviz.analysis.probes import INPUT_TAP
from lstmviz.qt.probes.state import ProbeState
from lstmviz.workspace.file import load_workspace

TIMEOUT = 120000  # ms: the first run imports torch


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LSTMVIZ_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def opened(window, tmp_path):
    assert window.open_file(write_probe_recording(tmp_path / "probes.h5"))
    return window


def probe_and_save(qtbot, window, path):
    """Label tag, shift 1, two taps, no baseline; run; open the noise tap's probe; save."""
    panel = window.panels["probes"]
    ws = window.workspace
    panel.set_label("tag")
    panel.shift_spin.setValue(1)
    panel.set_checked_taps([PLANTED_TAP, NOISE_TAP])
    panel.baseline_check.setChecked(False)
    with qtbot.waitSignal(panel.results_ready, timeout=TIMEOUT):
        assert panel.run()
    assert panel.detail.tap == panel.report.best_tap()  # the best probe opens first (shift 1: both are noise)
    panel.open_probe(NOISE_TAP)
    ws.active_pane.set_brush(5, 9)
    ws.set_window_start(15)
    assert window.save_workspace(path)
    return ws.state()


def test_a_saved_workspace_reruns_the_probes_and_reopens_the_probe(qtbot, opened, tmp_path):
    path = tmp_path / "session.lstmviz.json"
    saved = probe_and_save(qtbot, opened, path)
    first = opened.panels["probes"].report
    expected = ProbeState(label="tag", shift=1, at="all", taps=(NOISE_TAP, PLANTED_TAP), control=True,
                          baseline=False, curves=False, shown=True, open_probe=NOISE_TAP)
    assert saved.panels["probes"] == expected and opened.workspace.panel_state("probes") == expected
    assert json.loads(path.read_text())["panels"]["probes"] == {"version": 1,
        "label": "tag", "shift": 1, "at": "all", "taps": [NOISE_TAP, PLANTED_TAP], "control": True,
        "baseline": False, "curves": False, "shown": True, "open_probe": NOISE_TAP}
    assert load_workspace(path) == saved

    other = make_window(qtbot)
    panel = other.panels["probes"]
    assert panel.report is None and panel.label_combo.count() == 0 and other.workspace.panel_state("probes") is None
    with qtbot.waitSignal(panel.results_ready, timeout=TIMEOUT) as ready:
        assert other.open_workspace(path)
        # the probes run on the worker: open_workspace returned before any result was shown
        assert panel.busy and panel.report is None and panel.progress.isVisible()
        assert other.workspace.panel_state("probes") == expected  # saving now would keep the same
    report = ready.args[0]
    # the controls are back
    assert panel.label_combo.currentData() == "tag" and panel.shift_spin.value() == 1
    assert panel.at_combo.currentData() == "all"
    assert panel.checked_taps() == [NOISE_TAP, PLANTED_TAP] and panel.taps() == TAPS_BY_LAYER
    assert panel.control_check.isChecked() and not panel.baseline_check.isChecked()
    # the same report, straight from the cache
    assert report is panel.report and "from the cache" in panel.status_text()
    assert (report.annotation, report.shift, report.taps, report.baseline) == ("tag", 1, [NOISE_TAP, PLANTED_TAP], None)
    for tap in (NOISE_TAP, PLANTED_TAP):
        assert report.probes[tap].accuracy == first.probes[tap].accuracy
    assert [e["tap"] for e in panel.chart.entries()] == [NOISE_TAP, PLANTED_TAP]
    # the probe that was open is open again, in the detail and shaded in the chart
    assert panel.detail.tap == NOISE_TAP and panel.chart.current == NOISE_TAP
    assert not panel.busy and not panel.progress.isVisible()
    assert other.docks["probes"].isVisible() and not other.docks["probes"].visibleRegion().isEmpty()  # raised
    # the whole workspace, probes included, is what was saved
    assert other.workspace.state() == saved
    assert other.workspace.active_pane.brush == (5, 9) and other.workspace.window_start == 15


def test_the_open_baseline_probe_is_reopened_and_settings_without_a_result_do_not_run(qtbot, opened, tmp_path):
    panel = opened.panels["probes"]
    panel.set_label("tag")
    with qtbot.waitSignal(panel.results_ready, timeout=TIMEOUT):
        panel.run()
    with qtbot.waitSignal(panel.probe_opened):
        panel.detail.probe_combo.setCurrentIndex(panel.detail.probe_combo.findData(INPUT_TAP))
    assert opened.workspace.panel_state("probes").open_probe == INPUT_TAP
    path = tmp_path / "baseline.json"
    assert opened.save_workspace(path)

    other = make_window(qtbot)
    with qtbot.waitSignal(other.panels["probes"].results_ready, timeout=TIMEOUT):
        assert other.open_workspace(path)
    assert other.panels["probes"].detail.tap == INPUT_TAP
    assert other.panels["probes"].detail.result is other.panels["probes"].report.baseline

    # settings saved with no result shown come back without running anything
    with qtbot.waitSignal(panel.report_changed):
        opened.workspace.open(opened.workspace.recording.path)  # a reopened recording shows no result
    panel.set_label("kind")
    panel.set_checked_taps([PLANTED_TAP])
    assert not opened.workspace.panel_state("probes").shown
    assert opened.save_workspace(path)
    with qtbot.assertNotEmitted(other.panels["probes"].results_ready):
        assert other.open_workspace(path)
        assert not other.panels["probes"].busy
    assert other.panels["probes"].report is None
    assert other.panels["probes"].label_combo.currentData() == "kind" and other.panels["probes"].at_combo.currentData() == "last"
    assert other.panels["probes"].checked_taps() == [PLANTED_TAP]


def test_probe_settings_that_do_not_fit_are_said_in_words_and_the_rest_restores(qtbot, opened, tmp_path,
                                                                               captured_errors):
    path = tmp_path / "session.lstmviz.json"
    probe_and_save(qtbot, opened, path)
    data = json.loads(path.read_text())
    panel = opened.panels["probes"]
    ws = opened.workspace

    # a label that is not categorical and a tap the recording lacks: no run, the rest restores
    bad = json.loads(json.dumps(data))
    bad["panels"]["probes"].update(label="count", taps=[PLANTED_TAP, "layer9/h"])
    path.write_text(json.dumps(bad))
    with qtbot.assertNotEmitted(panel.results_ready):
        assert opened.open_workspace(path)
        assert not panel.busy
    title, message = captured_errors[-1]
    assert title == "Parts of the workspace were left out"
    assert "the annotation 'count' is not categorical, so it cannot be probed" in message
    assert "no tap 'layer9/h' over positions to probe; it was left out" in message
    assert "was not computed again" in message and "press Run in the Probes panel" in message
    assert "Traceback" not in message
    assert ws.active_pane.brush == (5, 9) and ws.window_start == 15  # the rest of the workspace
    assert panel.label_combo.currentData() == "tag"  # the panel's default label
    assert panel.shift_spin.value() == 1 and not panel.baseline_check.isChecked()
    assert panel.checked_taps() == [PLANTED_TAP] and panel.report is None
    assert ws.panel_state("probes") == ProbeState(label="tag", shift=1, taps=(PLANTED_TAP,), baseline=False)

    # only the open probe's tap is missing: the probes run on the taps that are there, the best opens
    bad = json.loads(json.dumps(data))
    bad["panels"]["probes"].update(taps=[PLANTED_TAP, "layer9/h"], open_probe="layer9/h")
    path.write_text(json.dumps(bad))
    with qtbot.waitSignal(panel.results_ready, timeout=TIMEOUT) as ready:
        assert opened.open_workspace(path)
    _, message = captured_errors[-1]
    assert "no tap 'layer9/h'" in message and "the probe of 'layer9/h' cannot be reopened" in message
    assert ready.args[0].taps == [PLANTED_TAP] and panel.detail.tap == PLANTED_TAP

    # a wrong type in the probe settings: the file is refused in words and nothing changes
    bad = json.loads(json.dumps(data))
    bad["panels"]["probes"]["taps"] = PLANTED_TAP
    path.write_text(json.dumps(bad))
    before = ws.state()
    assert not opened.open_workspace(path)
    title, message = captured_errors[-1]
    assert title == "Cannot open workspace" and "probes taps must be a list" in message
    assert ws.state() == before and panel.report is not None


def test_a_probe_state_set_on_the_workspace_is_followed_by_the_panel(qtbot, opened):
    """The panel follows its state in the workspace (``panel_state("probes")``) like the match panel,
    and keeps it equal to what it shows."""
    panel = opened.panels["probes"]
    ws = opened.workspace
    assert ws.panel_state("probes") == ProbeState(label="tag", taps=tuple(TAPS_BY_LAYER))
    panel.control_check.setChecked(False)
    assert ws.panel_state("probes").control is False
    with qtbot.waitSignal(ws.panel_state_changed) as changed:
        panel.shift_spin.setValue(-1)
    assert changed.args[0] == "probes" and changed.args[1].shift == -1
    ws.set_panel_state("probes", ProbeState(label="kind", at="all", taps=(PLANTED_TAP,), baseline=False))
    assert panel.label_combo.currentData() == "kind" and panel.at_combo.currentData() == "all"
    assert panel.checked_taps() == [PLANTED_TAP] and not panel.baseline_check.isChecked()
    assert panel.control_check.isChecked() and not panel.busy  # nothing was shown, nothing runs
    with qtbot.waitSignal(panel.results_ready, timeout=TIMEOUT):
        ws.set_panel_state("probes", ProbeState(label="tag", taps=(NOISE_TAP, PLANTED_TAP), shown=True, open_probe=NOISE_TAP))
    assert panel.detail.tap == NOISE_TAP and ws.panel_state("probes").open_probe == NOISE_TAP
    with qtbot.waitSignal(panel.probe_opened):  # a click on another tap is kept by the workspace
        panel.detail.probe_combo.setCurrentIndex(panel.detail.probe_combo.findData(PLANTED_TAP))
    assert ws.panel_state("probes").open_probe == PLANTED_TAP
    ws.close()
    assert ws.panel_state("probes") is None and panel.state() is None
