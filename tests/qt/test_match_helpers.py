"""Shared helpers of the Match view tests: a recording with planted units and a workspace with the
API the Match panel relies on (recording, active_pane, panel_state, runner, show_match ...).

No tests here; test_match_panel.py, test_match_view.py and test_match_export.py import these.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from lstmviz.analysis.selection_types import Selection
from lstmviz.recording import RecordingWriter

VOCAB = ["<pad>", "(", ")", "0", "1", "2", "3", "word"]
TAP = "layer0/c"
UNITS = 16
PLANTED = (3, 5, 7)
THRESHOLD = 0.5
ITEM_LENGTH = 80
N_ITEMS = 6


def write_planted_recording(path, *, n_items: int = N_ITEMS, item_length: int = ITEM_LENGTH, seed: int = 0):
    """A recording whose units 3, 5, 7 of ``layer0/c`` are on (1.0, else |noise| < 0.3) together over
    planted runs, with annotations ``depth`` (categorical, 3 at every planted run start, 1 right before),
    ``signal`` (numeric, crossing 0), ``kind`` (categorical per item).

    Planted per item i: all three units on over [10, 10 + 3 + i % 3); units 3 and 5 only over [40, 44);
    units 3, 5, 7 and 9 over [60, 64). Returns (path, full runs [(start, length)]).
    """
    rng = np.random.default_rng(seed)
    runs = []
    with RecordingWriter(path, vocab=VOCAB, provenance={"engine": "test", "dataset": "planted"}) as writer:
        writer.add_tap(TAP, UNITS, layer=0, signal="c", description="planted cell state")
        writer.add_tap("layer0/h", 8, layer=0, signal="h", description="unused")
        writer.add_annotation("depth", kind="categorical", labels=["0", "1", "2", "3"], description="test depth")
        writer.add_annotation("signal", kind="numeric", description="a numeric track crossing zero")
        writer.add_annotation("kind", kind="categorical", level="item", labels=["even", "odd"],
                              description="item parity")
        offset = 0
        for i in range(n_items):
            n = item_length
            states = rng.uniform(-0.3, 0.3, size=(n, UNITS)).astype(np.float32)
            depth = rng.integers(0, 3, n)
            length = 3 + i % 3
            states[10:10 + length, list(PLANTED)] = 1.0
            depth[10] = 3
            depth[9] = 1
            runs.append((offset + 10, length))
            states[40:44, [3, 5]] = 1.0
            states[60:64, [3, 5, 7, 9]] = 1.0
            tokens = rng.integers(1, len(VOCAB), n)
            signal = np.sin(np.arange(n) / 5.0) * 2.0
            signal[::7] = np.nan
            writer.append_item(tokens, {TAP: states, "layer0/h": rng.normal(size=(n, 8)).astype(np.float32)},
                               annotations={"depth": depth, "signal": signal},
                               item_annotations={"kind": i % 2})
            offset += n
    return path, runs


class FakePane(QObject):
    """A pane with the attributes the Match panel reads."""

    selection_changed = Signal(object)

    def __init__(self, tap: str = TAP, transform: str = "raw", threshold: float = THRESHOLD):
        super().__init__()
        self.tap, self.transform, self.threshold = tap, transform, threshold
        self.pad_left, self.pad_right = 1, 0
        self.brush = None
        self.selection = None

    def select(self, units, signs=None, brush=(10, 13)) -> None:
        units = np.asarray(units, dtype=np.int64)
        signs = np.ones(len(units), np.int8) if signs is None else np.asarray(signs, np.int8)
        self.brush = brush
        self.selection = Selection(units, signs)
        self.selection_changed.emit(self.selection)

    def clear(self) -> None:
        self.brush = None
        self.selection = None
        self.selection_changed.emit(None)


class FakeWorkspace(QObject):
    """Exactly the workspace API the Match panel uses (as lstmviz.qt.workspace.Workspace has it);
    records show_match calls."""

    recording_changed = Signal(object)
    active_pane_changed = Signal(object)
    panel_state_changed = Signal(str, object)
    visible_annotations_changed = Signal(list)
    error_occurred = Signal(str, str)

    def __init__(self, recording, runner, pane: FakePane | None = None, visible=("depth",)):
        super().__init__()
        self.recording = recording
        self.runner = runner
        self.active_pane = pane if pane is not None else FakePane()
        self.panel_states = {}
        self.visible_annotations = list(visible)
        self.shown: list[tuple[int, int]] = []

    def panel_state(self, name: str):
        return self.panel_states.get(name)

    def set_panel_state(self, name: str, state) -> None:
        if state != self.panel_states.get(name):
            self.panel_states[name] = state
            self.panel_state_changed.emit(name, state)

    def set_visible_annotations(self, names) -> None:
        self.visible_annotations = list(names)
        self.visible_annotations_changed.emit(list(names))

    def show_match(self, start: int, length: int) -> None:
        self.shown.append((start, length))

    def notify(self, title: str, message: str) -> None:
        self.error_occurred.emit(title, message)

    def set_recording(self, recording) -> None:
        self.recording = recording
        self.recording_changed.emit(recording)


def image_colors(image) -> int:
    """The number of distinct RGB colours of a QImage."""
    from PySide6 import QtGui

    image = image.convertToFormat(QtGui.QImage.Format.Format_RGB32)
    pixels = np.frombuffer(image.constBits(), dtype=np.uint32).reshape(image.height(), image.bytesPerLine() // 4)
    return len(np.unique(pixels[:, : image.width()] & 0xFFFFFF))  # one 0xRRGGBB number per pixel


def index_for(recording, key):
    """The match index the panel uses (``bitindex.open_index``), for computing expected results."""
    from lstmviz.analysis.bitindex import open_index

    return open_index(recording, key)
