"""Helpers the Qt tests import by module name (tests/qt is on sys.path): a small recording and a mouse event.

They live here, not only in conftest.py, because ``from tests.qt.conftest import ...`` breaks where another
installed package ships a top-level ``tests`` package (Hershey-Fonts does)."""

import numpy as np
from lstmviz.recording import RecordingWriter

VOCAB = ["<pad>", "(", ")", "0", "1", "2", "a b", "\n"]


def write_recording(path, *, n_items=4, item_length=60, units=(48, 48, 64), seed=0):
    """Taps layer0/h, layer0/c, layer1/c; layer1/c unit 0 follows the depth annotation exactly."""
    rng = np.random.default_rng(seed)
    names = ["layer0/h", "layer0/c", "layer1/c"]
    with RecordingWriter(path, vocab=VOCAB, provenance={"engine": "test", "dataset": "synthetic"}) as writer:
        for name, n in zip(names, units):
            writer.add_tap(name, n, layer=int(name[5]), signal=name[-1], description=f"test {name}")
        writer.add_annotation("depth", kind="categorical", labels=["0", "1", "2", "3"], description="nesting depth")
        for _ in range(n_items):
            tokens = rng.integers(1, len(VOCAB), item_length)
            depth = rng.integers(0, 4, item_length)
            states = {name: rng.normal(size=(item_length, n)).astype(np.float32) for name, n in zip(names, units)}
            states["layer1/c"][:, 0] = depth * 2.0
            writer.append_item(tokens, states, annotations={"depth": depth})
    return path


def send_mouse(widget, kind, pos, buttons=None, modifiers=None):
    """Deliver one mouse event to ``widget`` (QTest's mouseMove carries no pressed button, and its
    press/release warn when the graphics view leaves them unaccepted, which is normal there)."""
    from PySide6 import QtCore, QtGui, QtWidgets

    left = QtCore.Qt.MouseButton.LeftButton
    types = {"press": QtCore.QEvent.Type.MouseButtonPress, "move": QtCore.QEvent.Type.MouseMove,
             "release": QtCore.QEvent.Type.MouseButtonRelease}
    button = QtCore.Qt.MouseButton.NoButton if kind == "move" else left
    held = buttons if buttons is not None else (QtCore.Qt.MouseButton.NoButton if kind == "release" else left)
    pos = QtCore.QPointF(pos)
    event = QtGui.QMouseEvent(types[kind], pos, widget.mapToGlobal(pos), button, held,
                              modifiers or QtCore.Qt.KeyboardModifier.NoModifier)
    QtWidgets.QApplication.sendEvent(widget, event)
