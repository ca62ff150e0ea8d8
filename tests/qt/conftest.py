"""Qt fixtures: small real recordings written with the project's writer."""

import gc

import numpy as np
import pytest

from lstmviz.recording import RecordingWriter
from window_helpers import send_mouse, write_recording  # noqa: F401  (re-exported for the tests)



@pytest.fixture
def recording_path(tmp_path):
    return write_recording(tmp_path / "small.h5")


@pytest.fixture
def other_recording_path(tmp_path):
    return write_recording(tmp_path / "other.h5", n_items=2, units=(16, 16, 16), seed=1)


def make_window(qtbot):
    """A shown main window of 1200 x 760, closed by qtbot at the end of the test."""
    from lstmviz.qt.main_window import MainWindow

    win = MainWindow(settings=None)
    qtbot.addWidget(win)
    win.resize(1200, 760)
    win.show()
    qtbot.waitExposed(win)
    return win


@pytest.fixture
def window(qtbot):
    return make_window(qtbot)


@pytest.fixture
def captured_errors(monkeypatch):
    """Error dialogs are recorded instead of shown (a modal dialog would block the test)."""
    shown = []
    from lstmviz.qt import file_actions, main_window

    def record(parent, title, message, details=""):
        shown.append((title, message))

    monkeypatch.setattr(main_window, "show_error", record)
    monkeypatch.setattr(file_actions, "show_error", record)
    return shown


#: planted units of ``write_planted_recording``'s layer0/c over the brush [10, 15) of item 0
PLANTED_BRUSH = (10, 15)


def write_planted_recording(path, *, item_length=40, n_items=3):
    """Units that are on exactly where the tests expect them (values near 0 elsewhere).

    layer0/c (16 units) over positions 10-14 of item 0, threshold 0.3:
      3, 7: 1.0 on 10-14 only           -> selected with any padding
      5: 1.0 on 9-14                    -> on in the default left padding (excluded unless pad_left = 0)
      9: 1.0 on 10-14 and at 16         -> excluded once pad_right >= 2
      11: -1.0 on 10-14                 -> the negative direction's unit
      12: 0.5 on 10-14                  -> excluded at threshold 0.6
      13: 1.0 on 10-13, 0 at 14         -> selected only with tolerance <= 0.8
    layer1/c (12 units): 2 and 4 are 1.0 on positions 30-32. Annotations: depth (categorical),
    score (numeric, the position divided by 10, NaN at every 7th position).
    """
    rng = np.random.default_rng(3)
    vocab = ["<pad>", "(", ")", "0", "1", "2", "a b", "\n"]
    with RecordingWriter(path, vocab=vocab, provenance={"engine": "test", "dataset": "planted"}) as writer:
        writer.add_tap("layer0/c", 16, layer=0, signal="c")
        writer.add_tap("layer1/c", 12, layer=1, signal="c")
        writer.add_annotation("depth", kind="categorical", labels=["0", "1", "2", "3"])
        writer.add_annotation("score", kind="numeric", description="position / 10")
        for item in range(n_items):
            n = item_length
            tokens = np.tile([1, 3, 4, 2, 5, 6, 7], n)[:n] if item else np.tile([1, 1, 2, 3, 4, 5, 2], n)[:n]
            c0 = rng.uniform(-0.2, 0.2, size=(n, 16)).astype(np.float32)
            c1 = rng.uniform(-0.2, 0.2, size=(n, 12)).astype(np.float32)
            if item == 0:
                c0[10:15, [3, 7, 9, 11, 12, 13]] = [1.0, 1.0, 1.0, -1.0, 0.5, 1.0]
                c0[9:15, 5] = 1.0
                c0[16, 9] = 1.0
                c0[14, 13] = 0.0
                c1[30:33, [2, 4]] = 1.0
            score = (np.arange(n) + item * n) / 10.0
            score[::7] = np.nan
            writer.append_item(tokens, {"layer0/c": c0, "layer1/c": c1},
                               annotations={"depth": rng.integers(0, 4, n), "score": score})
    return path


@pytest.fixture
def planted_path(tmp_path):
    return write_planted_recording(tmp_path / "planted.h5")


@pytest.fixture
def planted(window, planted_path):
    """The main window on the planted recording (window 0-99, one pane on layer0/c, raw values: the
    planted values and thresholds are raw; a cell state opens in tanh otherwise)."""
    assert window.open_file(planted_path)
    window.workspace.set_transform("raw")
    return window


def token_row_point(window, x, pane=0):
    """Viewport pixel over data x on a pane's token row."""
    from PySide6 import QtCore

    view = window.state_plot
    plot = view.pane_plots[pane]
    scene_x = plot.view_box.mapViewToScene(QtCore.QPointF(x, 0.0)).x()
    scene_y = plot.token_axis.sceneBoundingRect().center().y()
    return view.mapFromScene(QtCore.QPointF(scene_x, scene_y))


def drag_tokens(window, x0, x1, pane=0):
    """Press on the token row at data x0, move to x1 and release there.

    pyqtgraph drops mouse moves that come less than 10 ms after the previous one (a throttle for
    real mice); synthetic events come faster, so the throttle is off while they are delivered.
    """
    import pyqtgraph as pg

    viewport = window.state_plot.viewport()
    start, end = token_row_point(window, x0, pane), token_row_point(window, x1, pane)
    limit = pg.getConfigOption("mouseRateLimit")
    pg.setConfigOption("mouseRateLimit", -1)
    try:
        send_mouse(viewport, "press", start)
        send_mouse(viewport, "move", (start + end) / 2)
        send_mouse(viewport, "move", end)
        send_mouse(viewport, "release", end)
    finally:
        pg.setConfigOption("mouseRateLimit", limit)


@pytest.fixture(autouse=True)
def _collect_qt_garbage_on_the_gui_thread():
    """Collect cyclic garbage after each test on the GUI thread.

    A test's Workspace or panel can end up in a reference cycle; if Python's cyclic collector first
    runs on a worker thread (the next test's analysis job), PySide destroys those QObjects there
    while the GUI thread still has events posted for them, and the process segfaults.
    """
    yield
    from PySide6 import QtCore

    QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete.value)
    gc.collect()
