"""What a new user sees first: the default tap and transform, docks that open when they have something
to show (and no stale tab bar), every word of a sentence under the plot, the Match dock tied to the pane
whose selection it shows, and figures whose colours say which line is which."""

import csv
import types

import numpy as np
import pytest
from conftest import PLANTED_BRUSH, drag_tokens
from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.qt import app as app_module
from lstmviz.workspace.pane_defaults import default_tap, default_transform
from lstmviz.recording import RecordingWriter

TIMEOUT = 60000


def _info(name, signal, description="", layer=None):
    return types.SimpleNamespace(name=name, signal=signal, description=description, layer=layer)


LSTM_TAPS = [_info(f"layer{n}/{s}", s.rsplit("/", 1)[-1], layer=n)
             for n in (0, 1) for s in ("gates/i", "gates/f", "gates/g", "gates/o", "c", "h")]
GRU_TAPS = [_info(f"layer{n}/{s}", s.rsplit("/", 1)[-1], layer=n)
            for n in (0, 1) for s in ("gates/r", "gates/z", "gates/n", "h")]
MODULE_TAPS = [_info("embed", "output", "output of Embedding at 'embed'"),
               _info("rnn", "output", "output of RNN at 'rnn'"),
               _info("out", "output", "output of Linear at 'out'")]


def test_the_state_tap_is_chosen_from_tap_signals_for_lstm_gru_and_module_outputs():
    assert default_tap(LSTM_TAPS) == "layer0/h"
    assert default_tap(LSTM_TAPS, taken=("layer0/h",)) == "layer1/h"  # + Pane: the next layer's state
    assert default_tap(GRU_TAPS) == "layer0/h"  # not the first tap, gates/r
    assert default_tap([t for t in LSTM_TAPS if t.signal != "h"]) == "layer0/c"
    assert default_tap(MODULE_TAPS) == "rnn"  # the recurrent module's output, not the embedding
    # the metadata decides, not the names: a hidden state called "memory" wins over a tap named ".../c"
    assert default_tap([_info("cells/c", "output", "output of Linear at 'cells'"), _info("memory", "h")]) == "memory"
    assert default_tap([_info("a", "f"), _info("b", "output", "output of Linear at 'b'")]) == "b"  # no gate first
    assert default_tap([]) is None


def test_the_transform_makes_the_threshold_meaningful_for_the_tap():
    assert default_transform(_info("layer0/c", "c")) == "tanh"  # unbounded cell state, as LSTMVis
    assert default_transform(_info("layer0/h", "h")) == "raw"  # already in (-1, 1)
    assert default_transform(_info("layer0/gates/r", "r")) == "raw"
    logits = np.linspace(-12, 12, 50, dtype=np.float32).reshape(10, 5)
    assert default_transform(MODULE_TAPS[2], logits) == "tanh"  # unknown range, large values
    assert default_transform(MODULE_TAPS[1], logits / 20) == "raw"  # unknown range, within (-1, 1)


def _write(path, taps, *, values=None, n_items=3, length=60, vocab=None, seed=0):
    """A recording with ``taps`` = [(name, signal, description)], 8 units each."""
    rng = np.random.default_rng(seed)
    vocab = vocab or ["a", "b", "c", "d"]
    with RecordingWriter(path, vocab=vocab) as writer:
        for name, signal, description in taps:
            layer = int(name[5]) if name.startswith("layer") else None
            writer.add_tap(name, 8, layer=layer, signal=signal, description=description)
        for _ in range(n_items):
            states = {name: (values if values is not None else rng.normal(size=(length, 8))).astype(np.float32)
                      for name, _, _ in taps}
            writer.append_item(rng.integers(0, len(vocab), length), states)
    return path


@pytest.mark.parametrize("taps, tap, transform", [
    ([(f"layer0/{s}", s[-1], "") for s in ("gates/i", "gates/f", "gates/g", "gates/o", "c", "h")], "layer0/h", "raw"),
    ([(f"layer0/{s}", s[-1], "") for s in ("gates/r", "gates/z", "gates/n", "h")], "layer0/h", "raw"),
    ([("layer0/gates/f", "f", ""), ("layer0/c", "c", "")], "layer0/c", "tanh"),
    ([("embed", "output", "output of Embedding at 'embed'"), ("rnn", "output", "output of RNN at 'rnn'")],
     "rnn", "tanh"),
], ids=["lstm", "gru", "lstm-cells-only", "module-outputs"])
def test_a_recording_opens_on_its_state_in_a_meaningful_transform(window, tmp_path, taps, tap, transform):
    values = np.random.default_rng(1).normal(scale=4.0, size=(60, 8))  # beyond (-1, 1): tanh for unknown range
    assert window.open_file(_write(tmp_path / "r.h5", taps, values=values))
    pane = window.workspace.active_pane
    assert (pane.tap, pane.transform) == (tap, transform)


def test_a_new_pane_takes_the_active_panes_transform(window, recording_path):
    assert window.open_file(recording_path)
    ws = window.workspace
    assert (ws.active_pane.tap, ws.transform) == ("layer0/h", "raw")
    ws.set_transform("tanh")
    second = ws.add_pane()
    assert second.tap == "layer0/c" and second.transform == "tanh"  # the next state tap, shown the same way
    ws.set_transform("raw")
    assert ws.add_pane().transform == "raw"


def test_another_tap_brings_its_own_default_until_a_transform_is_chosen(window, recording_path):
    assert window.open_file(recording_path)
    ws = window.workspace
    pane = ws.active_pane
    strip = window.state_plot.strips[0]
    ws.set_tap("layer0/c")
    assert pane.transform == "tanh" and strip.transform_combo.currentData() == "tanh"
    ws.set_tap("layer0/h")
    assert pane.transform == "raw"
    ws.set_transform("zscore")  # chosen: it stays whatever the tap
    ws.set_tap("layer1/c")
    assert pane.transform == "zscore"


def test_the_value_axis_and_the_threshold_speak_the_same_units(window, tmp_path):
    small = np.random.default_rng(2).uniform(-0.004, 0.004, size=(60, 8))
    assert window.open_file(_write(tmp_path / "small.h5", [("layer0/h", "h", "")], values=small))
    pane = window.workspace.active_pane
    pane.set_threshold(0.002)
    window.state_plot.redraw()
    plot = window.state_plot.pane_plots[0]
    axis = plot.getAxis("left")
    assert axis.autoSIPrefixScale == 1.0 and "x0.001" not in axis.labelString()  # no rescaled ticks
    low, high = plot.view_box.viewRange()[1]
    assert low < 0.002 < high  # θ lies on the axis at the value it reads
    assert "0.002" in plot.threshold_line.label.toPlainText()


# ------------------------------------------------------------------ docks and the stale tab bar
def _stray_tab_bars(window) -> list:
    """Tab bars drawn inside the window that do not belong to a group of open, tabbed docks."""
    docks = {d.windowTitle(): d for d in window.findChildren(QtWidgets.QDockWidget)}
    stray = []
    for bar in window.findChildren(QtWidgets.QTabBar):
        if bar.parent() is not window or not bar.isVisible() or not bar.geometry().intersects(window.rect()):
            continue
        titles = [bar.tabText(i) for i in range(bar.count())]
        if len(titles) < 2 or not all(t in docks and docks[t].isVisible() for t in titles):
            stray.append(titles)
        elif bar.geometry().intersects(window.statusBar().geometry()):
            stray.append(titles)
    return stray


def _status_bar_drawn_alone(window) -> bool:
    """Whether the window's pixels over the status bar are exactly the status bar's own rendering."""
    bar = window.statusBar()
    in_window = window.grab(bar.geometry()).toImage().convertToFormat(QtGui.QImage.Format.Format_RGB32)
    alone = bar.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB32)
    return in_window == alone


def test_screenshot_path_has_no_stale_tab_bar_and_no_empty_dock(qtbot, qapp, recording_path):
    """What ``lstmviz --screenshot`` does (open before show, at the default size), checked before the grab."""
    from lstmviz.qt.main_window import MainWindow

    window = MainWindow(settings=None)
    qtbot.addWidget(window)
    window.resize(1400, 850)
    window.workspace.open(recording_path)
    window.show()
    qtbot.waitExposed(window)
    app_module._settle(qapp, window, 10)
    assert not window.docks["match"].isVisible() and not window.docks["probes"].isVisible()  # nothing to show yet
    assert _stray_tab_bars(window) == []
    assert _status_bar_drawn_alone(window)
    # a plot with no dock under it takes the window's height
    assert window.state_plot.height() > 0.6 * window.height()


def _probe_workspace(tmp_path) -> str:
    """A workspace file whose selection is matched and whose probes are shown: both bottom docks open."""
    import json

    from probe_recordings import write_probe_recording

    path = write_probe_recording(tmp_path / "probes.h5")
    state = {"lstmviz_workspace": 1, "recording": {"path": str(path), "absolute": str(path)},
             "window": {"start": 0, "width": 60},
             "panes": [{"tap": "layer1/h", "transform": "raw", "threshold": 0.3, "brush": None, "pad_left": 1,
                        "pad_right": 0, "tolerance": 1.0, "direction": "positive", "added": [[3, 1]], "removed": []}],
             "active_pane": 0, "annotations": ["tag"], "aggregate_annotation": None,
             "probes": {"label": "tag", "shift": 0, "at": "all", "taps": ["layer1/h"], "control": False,
                        "baseline": False, "curves": False, "shown": True, "open_probe": "layer1/h"}}
    workspace = tmp_path / "both-docks.lstmviz.json"
    workspace.write_text(json.dumps(state))
    return str(workspace)


@pytest.mark.parametrize("with_workspace", [False, True], ids=["recording", "workspace-both-docks"])
def test_lstmviz_screenshot_draws_no_stale_tab_bar(qapp, tmp_path, monkeypatch, recording_path, with_workspace):
    """Through ``lstmviz --screenshot`` itself (app.screenshot): the window is checked when it is grabbed."""
    from lstmviz.qt.main_window import MainWindow

    monkeypatch.setenv("LSTMVIZ_CACHE_DIR", str(tmp_path / "cache"))
    seen = {}
    grab = MainWindow.grab

    def checked_grab(self, *args):
        if not args:  # the screenshot's grab of the whole window (the checks grab parts of it)
            seen["docks"] = (self.docks["match"].isVisible(), self.docks["probes"].isVisible())
            seen["probes in front"] = not self.docks["probes"].visibleRegion().isEmpty()
            seen["stray"] = _stray_tab_bars(self)
            seen["status bar alone"] = _status_bar_drawn_alone(self)
        return grab(self, *args)

    monkeypatch.setattr(MainWindow, "grab", checked_grab)
    png = tmp_path / "shot.png"
    workspace = _probe_workspace(tmp_path) if with_workspace else None
    for _ in range(2 if with_workspace else 1):  # the second time, the probes come from the cache before the match
        app_module.screenshot(str(png), None if with_workspace else str(recording_path), size=(1400, 850),
                              workspace=workspace)
    assert png.is_file()
    assert seen["docks"] == ((True, True) if with_workspace else (False, False))
    assert seen["probes in front"] == with_workspace  # the workspace showed its probes: they stay in front
    assert seen["stray"] == [] and seen["status bar alone"]


def test_match_and_probe_docks_open_with_results_and_tab_together(planted, qtbot):
    window = planted
    pane = window.workspace.active_pane
    pane.set_brush(*PLANTED_BRUSH)
    with qtbot.waitSignal(window.panels["match"].results_changed, timeout=TIMEOUT):
        window.panels["match"].match()  # as the --workspace screenshot does: no menu action
    assert window.docks["match"].isVisible() and _stray_tab_bars(window) == []
    assert window.docks["match"].height() > 0.3 * window.height()  # room for the results when it opens
    window.show_panel("probes")
    assert window.tabifiedDockWidgets(window.docks["match"]) == [window.docks["probes"]]

    def tab_bars():
        return [b for b in window.findChildren(QtWidgets.QTabBar) if b.isVisible()
                and b.geometry().intersects(window.rect()) and "Probes" in [b.tabText(i) for i in range(b.count())]]

    qtbot.waitUntil(lambda: len(tab_bars()) > 0)
    assert len(tab_bars()) == 1 and _stray_tab_bars(window) == []
    assert _status_bar_drawn_alone(window)


def test_three_panes_keep_readable_lines_when_the_match_dock_opens(planted, qtbot):
    """At 1400 x 850 the Match dock took 45% of the window and left three panes ~10 px of lines each."""
    from lstmviz.qt.state_plot import PANE_DATA_MIN_HEIGHT

    window = planted
    window.resize(1400, 850)
    ws = window.workspace
    ws.active_pane.set_brush(*PLANTED_BRUSH)
    ws.add_pane()
    ws.add_pane()
    ws.set_active_pane(0)
    with qtbot.waitSignal(window.panels["match"].results_changed, timeout=TIMEOUT):
        window.panels["match"].match()
    assert window.docks["match"].isVisible()
    plots = window.state_plot.pane_plots
    qtbot.waitUntil(lambda: all(p.view_box.height() >= PANE_DATA_MIN_HEIGHT - 1 for p in plots))
    assert window.docks["match"].height() > 100 and window.height() == 850  # the dock gave up room, not the window


def test_docks_opened_from_the_view_menu_are_tabbed_too(window, recording_path, qtbot):
    assert window.open_file(recording_path)
    window.docks["match"].toggleViewAction().trigger()
    window.docks["probes"].toggleViewAction().trigger()
    assert window.docks["match"].isVisible() and window.docks["probes"].isVisible()
    assert window.tabifiedDockWidgets(window.docks["probes"]) == [window.docks["match"]]  # not side by side
    qtbot.waitUntil(lambda: _stray_tab_bars(window) == [] and _status_bar_drawn_alone(window))


# ------------------------------------------------------------------ every word under the plot
WORDS = ("the", "market", "investors", "said", "a", "of", "stock", "exchange", "to", "n't", "in", "shares",
         "company", "traders", "were", "N", "$", "and", "its", "<unk>", "reported", "quarter", "analysts", "by")


def test_every_word_of_a_sentence_is_drawn_at_the_default_window(qtbot, tmp_path):
    from lstmviz.qt.main_window import MainWindow

    rng = np.random.default_rng(4)
    path = tmp_path / "words.h5"
    with RecordingWriter(path, vocab=list(WORDS)) as writer:
        writer.add_tap("layer0/h", 16, layer=0, signal="h")
        for _ in range(6):
            writer.append_item(rng.integers(0, len(WORDS), 30), {"layer0/h": rng.normal(size=(30, 16)).astype(np.float32)})
    window = MainWindow(settings=None)  # the window's own default size
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.open_file(path)
    ws = window.workspace
    assert ws.window_width == 100
    axis = window.state_plot.pane_plots[0].token_axis
    window.grab()  # paint
    qtbot.waitUntil(lambda: len(axis.drawn_labels) > 0)
    shown = [t for t in axis.tokens()]
    assert len(shown) == 100
    assert axis.drawn_labels == shown  # every token, in order: none thinned out


def test_a_rare_long_token_among_digits_reads_as_its_beginning(qtbot, tmp_path):
    """Parity-like text: columns sized for '0'/'1'; 'odd' and 'even' show their first letter (with '…' when
    it fits), never their clipped middle drawn over the neighbouring digits."""
    from lstmviz.qt.main_window import MainWindow
    from lstmviz.qt.token_axis import fit_prefix

    vocab = ["0", "1", "=", "odd", "even"]
    ids = [0, 1, 1, 0, 1, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 0, 2, 3] * 3 + [0, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1, 0, 0, 2, 4]
    path = tmp_path / "parity.h5"
    rng = np.random.default_rng(0)
    with RecordingWriter(path, vocab=vocab) as writer:
        writer.add_tap("layer0/h", 8, layer=0, signal="h")
        for start in range(0, len(ids), 18):
            item = ids[start:start + 18]
            writer.append_item(np.array(item), {"layer0/h": rng.normal(size=(18, 8)).astype(np.float32)})
    window = MainWindow(settings=None)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.open_file(path)
    axis = window.state_plot.pane_plots[0].token_axis
    window.grab()
    qtbot.waitUntil(lambda: len(axis.drawn_text) > 0)
    assert axis.drawn_labels == axis.tokens()  # every token has its column
    words = {label: text for label, text in zip(axis.drawn_labels, axis.drawn_text)}
    assert words["0"] == "0" and words["="] == "="
    assert words["odd"] in ("o", "o…", "od…") and words["even"] in ("e", "e…", "ev…", "eve…")
    metrics = QtGui.QFontMetricsF(QtGui.QFont())
    assert fit_prefix(metrics, "even", 1e6) == "even"
    assert fit_prefix(metrics, "even", 1.0) == "e"


# ------------------------------------------------------------------ the Match dock and its pane
def test_the_match_dock_stays_with_the_pane_whose_selection_it_shows(planted, qtbot, tmp_path, captured_errors):
    window = planted
    ws = window.workspace
    first = ws.active_pane
    with qtbot.waitSignal(first.selection_changed):
        drag_tokens(window, 10, 14)
    panel = window.panels["match"]
    with qtbot.waitSignal(panel.results_changed, timeout=TIMEOUT):
        panel.match_action.trigger()
    results = panel.results
    second = ws.add_pane()  # + Pane: the new pane is active and has no selection
    assert ws.active_pane is second and second.selection is None
    assert panel.source_pane is first
    header = panel.selection_label.text()
    assert "Pane 1" in header and "3, 7, 9, 12" in header and "no units selected</i> of" not in header
    assert "Pane 2, the active pane, has no selected units" in header
    assert "Pane 1's units" in panel.status_text() and panel.results is results
    # Match again matches pane 1's selection
    with qtbot.waitSignal(panel.results_changed, timeout=TIMEOUT):
        panel.match_action.trigger()
    assert sorted(panel.results.query.units) == [3, 7, 9, 12]
    # Export Selection Data saves pane 1's selection and says so
    path = tmp_path / "sel.csv"
    assert window.export_selection_data(path) and captured_errors == []
    with path.open() as f:
        assert [int(r["unit"]) for r in csv.DictReader(f)] == [3, 7, 9, 12]
    assert "Pane 1" in window.statusBar().currentMessage()
    # clicking a result brushes it in its own pane
    row = 1
    start, length = panel.model.match(row)
    rect = panel.view.visualRect(panel.model.index(row, panel.model.column_of_offset(0)))
    qtbot.mouseClick(panel.view.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=rect.center())
    assert ws.active_pane is first and first.brush == (start, start + length) and second.brush is None
    # a pane that gets a selection of its own takes the dock over
    second.set_brush(30, 33)
    ws.set_active_pane(1)
    second.set_tap("layer1/c")
    assert panel.source_pane is second and "Pane 2" in panel.selection_label.text()


def test_export_selection_data_names_the_panes_to_choose_from(planted, tmp_path, captured_errors):
    ws = planted.workspace
    ws.active_pane.set_brush(*PLANTED_BRUSH)
    ws.add_pane("layer1/c").set_brush(30, 33)
    ws.add_pane("layer0/c")
    assert not planted.export_selection_data(tmp_path / "x.csv")
    title, message = captured_errors[-1]
    assert "Pane 3, the active pane, has no selection" in message and "Pane 1 and Pane 2" in message
    assert not (tmp_path / "x.csv").exists()


# ------------------------------------------------------------------ figures a reader can decode
def test_selected_and_highlighted_units_are_numbered_on_screen_and_in_the_export(planted, tmp_path):
    import xml.etree.ElementTree as ET

    ws = planted.workspace
    ws.active_pane.set_brush(*PLANTED_BRUSH)
    ws.set_highlighted_units([5, 13])
    labels = planted.state_plot.pane_plots[0].unit_labels
    assert sorted(labels.texts(), key=int) == ["3", "5", "7", "9", "12", "13"]
    colours = dict(labels.labelled)
    assert colours[3] != colours[5]  # selected red, highlighted purple
    assert labels.legend.isVisible()
    path = tmp_path / "plot.svg"
    assert planted.export_plot(path)
    texts = {"".join(el.itertext()).strip() for el in ET.parse(path).getroot().iter() if el.tag.endswith("text")}
    assert {"3", "7", "9", "12", "5", "13"} <= texts
    assert any("selected units" in t for t in texts) and any("highlighted units" in t for t in texts)


def _labels_apart_and_inside(plot) -> bool:
    boxes = sorted((item.sceneBoundingRect() for item in plot.unit_labels.items()), key=lambda r: r.top())
    inside = plot.view_box.sceneBoundingRect().adjusted(0, -0.5, 0, 0.5)
    return (all(a.bottom() <= b.top() + 0.5 for a, b in zip(boxes, boxes[1:]))
            and all(inside.top() <= r.top() and r.bottom() <= inside.bottom() for r in boxes))


def test_unit_labels_stay_apart_and_inside_the_plot_when_it_is_laid_out_or_resized(qtbot, qapp, planted_path):
    """Labels were spread for the plot's size when they were set: set before the window was shown (as
    --screenshot and a restored workspace do) they lay over each other and beyond the plot."""
    from lstmviz.qt.main_window import MainWindow

    window = MainWindow(settings=None)
    qtbot.addWidget(window)
    window.resize(1200, 760)
    ws = window.workspace
    ws.open(planted_path)
    ws.set_transform("raw")
    ws.active_pane.set_brush(*PLANTED_BRUSH)
    ws.set_highlighted_units([0, 1, 2, 4, 6, 8])  # 10 labels ending near the same value
    window.show()
    qtbot.waitExposed(window)
    app_module._settle(qapp, window, 10)
    plot = window.state_plot.pane_plots[0]
    assert len(plot.unit_labels.items()) == 10
    assert _labels_apart_and_inside(plot)
    for height in (420, 1000):  # 10 labels still fit at 420 (a view box of ~190 px)
        old = plot.view_box.height()
        window.resize(window.width(), height)
        qtbot.waitUntil(lambda old=old: plot.view_box.height() != old)
        assert _labels_apart_and_inside(plot)


def test_track_names_are_shown_whole_and_tracks_stay_aligned_with_the_panes(window, tmp_path):
    """The demo's "match_distance" track was labelled "match_dist…" at every window size."""
    from lstmviz.qt.annotation_track import MAX_LABEL_WIDTH

    long_name = "x" * 80
    path = tmp_path / "tracks.h5"
    rng = np.random.default_rng(5)
    with RecordingWriter(path, vocab=["a", "b"]) as writer:
        writer.add_tap("layer0/h", 8, layer=0, signal="h")
        writer.add_annotation("depth", kind="categorical", labels=["0", "1"])
        writer.add_annotation("match_distance", kind="numeric")
        writer.add_annotation(long_name, kind="numeric")
        writer.append_item(rng.integers(0, 2, 40), {"layer0/h": rng.normal(size=(40, 8)).astype(np.float32)},
                           annotations={"depth": rng.integers(0, 2, 40), "match_distance": rng.normal(size=40),
                                        long_name: rng.normal(size=40)})
    assert window.open_file(path)
    ws = window.workspace
    ws.set_visible_annotations(["depth", "match_distance"])
    view = window.state_plot
    shown = {track.name: track.getAxis("left")._tickLevels[0][0][1] for track in view.tracks}
    assert shown == {"depth": "depth", "match_distance": "match_distance"}
    window.grab()
    lefts = {round(item.vb.sceneBoundingRect().left()) for item in [*view.pane_plots, *view.tracks]}
    assert len(lefts) == 1  # every row's data starts at the same x
    ws.set_visible_annotations(["depth", long_name])  # a name beyond the widest axis is elided, not the layout
    track = view.tracks[1]
    assert track.getAxis("left").width() == MAX_LABEL_WIDTH
    assert track.getAxis("left")._tickLevels[0][0][1].endswith("…") and long_name in track.toolTip()


def test_labels_that_would_overlap_are_pushed_apart():
    from lstmviz.qt.unit_labels import _spread

    ys = _spread([0.50, 0.51, 0.52, -0.9], 0.1, (-1.0, 1.0))
    assert sorted(ys) == pytest.approx(sorted(ys))
    ordered = sorted(ys)
    assert all(b - a >= 0.1 - 1e-9 for a, b in zip(ordered, ordered[1:]))
    assert ys[3] == pytest.approx(-0.9) and ys[0] < ys[1] < ys[2]  # the order of the lines is kept
    assert max(_spread([0.95, 0.97, 0.99], 0.1, (-0.95, 0.95))) <= 0.95  # kept inside the view
    squeezed = _spread([0.9] * 5, 1.0, (-1.0, 1.0))  # more than fit: evenly inside the view, in order
    assert squeezed == pytest.approx([-1.0, -0.5, 0.0, 0.5, 1.0])


def test_many_labels_share_a_grey_other_beyond_a_dozen_distinct_colours():
    from lstmviz.qt.palette import MAX_DISTINCT, OTHER, grouped_legend, label_colors

    tags = [f"T{i}" for i in range(45)]
    counts = np.arange(45)[::-1] * 10  # T0 most frequent
    colours = label_colors(tags, counts)
    own = [c for c in colours if c != OTHER]
    assert len(own) == MAX_DISTINCT - 1 and len(set(own)) == len(own)  # distinct colours, no repeats
    assert all(colours[i] != OTHER for i in range(MAX_DISTINCT - 1))  # the frequent ones keep a colour
    assert colours[44] == OTHER
    legend = grouped_legend(tags, colours)
    assert legend[-1] == (f"other ({45 - (MAX_DISTINCT - 1)} labels)", OTHER) and len(legend) == MAX_DISTINCT
    assert label_colors(["B-NP", "I-NP", "O"]) == label_colors(["B-NP", "I-NP", "O"], [1, 2, 3])  # few: as before


def test_the_probe_chart_names_every_tap_of_a_two_layer_lstm_whole_at_the_default_window(qtbot):
    """At the chart's width in a 1400 x 850 window, two staggered rows elided both layers' gates to
    "layer…tes/i"."""
    from lstmviz.analysis.probe_report import ProbeReport
    from lstmviz.qt.probes.chart import ProbeChart

    taps = [f"layer{n}/{s}" for n in (0, 1) for s in ("gates/i", "gates/f", "gates/g", "gates/o", "c", "h")]

    def result(acc):
        return types.SimpleNamespace(accuracy=acc, ci_low=acc - 0.02, ci_high=acc + 0.02,
                                     majority_ci_low=0.28, majority_ci_high=0.32)

    report = ProbeReport(annotation="depth", labels=["a", "b"], shift=0, at="all", taps=taps,
                         layers={t: int(t[5]) for t in taps}, probes={t: result(0.9) for t in taps},
                         controls={t: result(0.5) for t in taps}, majority_accuracy=0.3)
    chart = ProbeChart()
    qtbot.addWidget(chart)
    chart.resize(570, 300)  # its width in the Probes dock of a 1400 x 850 window
    chart.show()
    qtbot.waitExposed(chart)
    chart.set_report(report)
    axis = chart.tap_axis
    qtbot.waitUntil(lambda: (chart.grab(), axis.drawn_labels)[1] == taps)  # every name whole, in order
    assert axis.rows == 3
    chart.resize(300, 300)  # too narrow even for three rows: elided, never overlapping the neighbours
    qtbot.waitUntil(lambda: (chart.grab(), axis.drawn_labels)[1] != taps)
    assert all("…" in label for label in axis.drawn_labels if label not in taps)


def test_curves_of_twelve_taps_have_distinct_styles_and_a_legend_that_never_breaks_a_name(qtbot):
    from lstmviz.analysis.probe_report import ProbeCurves, ProbeReport
    from lstmviz.qt.probes.curves_view import ProbeCurvesView

    signals = ("gates/i", "gates/f", "gates/g", "gates/o", "c", "h")
    taps = [f"layer{n}/{s}" for n in (0, 1) for s in signals]

    def result(acc):
        return types.SimpleNamespace(accuracy=acc, ci_low=acc - 0.02, ci_high=acc + 0.02)

    reports = [ProbeReport(annotation="pos", labels=["a", "b"], shift=0, at="all", taps=taps,
                           layers={t: int(t[5]) for t in taps},
                           probes={t: result(0.5 + 0.03 * i + 0.1 * k) for i, t in enumerate(taps)},
                           controls={t: result(0.4) for t in taps}, majority_accuracy=0.3)
               for k in range(3)]
    curves = ProbeCurves(annotation="pos", labels=["a", "b"], shift=0, at="all", taps=taps,
                         checkpoints=["a", "b", "c"], steps=[0, 100, 200], reports=reports)
    view = ProbeCurvesView()
    qtbot.addWidget(view)
    view.resize(900, 420)
    view.show()
    qtbot.waitExposed(view)
    view.set_curves(curves)
    styles = {(view.series(t)["color"], view.series(t)["symbol"]) for t in taps}
    assert len(styles) == 12  # every curve told apart
    assert len({view.series(t)["color"] for t in taps}) == 6 and len({view.series(t)["symbol"] for t in taps}) == 2
    QtWidgets.QApplication.processEvents()
    assert view.legend_label.height() < 0.2 * view.height()  # the legend does not take the figure
    # lay the legend out at its width: every signal name stays on one line
    document = QtGui.QTextDocument()
    document.setDefaultFont(view.legend_label.font())
    document.setHtml(view.legend_label.text())
    document.setTextWidth(view.legend_label.contentsRect().width())
    document.size()  # lays the text out
    lines = []
    block = document.begin()
    while block.isValid():
        layout = block.layout()
        for i in range(layout.lineCount()):
            line = layout.lineAt(i)
            lines.append(block.text()[line.textStart():line.textStart() + line.textLength()].replace("\u2060", ""))
        block = block.next()
    for name in (*signals, "layer 0", "layer 1", "majority class"):
        assert any(name in line.replace("\xa0", " ") for line in lines), (name, lines)
