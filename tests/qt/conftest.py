"""Qt fixtures: small real recordings written with the project's writer."""

import numpy as np
import pytest

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


@pytest.fixture
def recording_path(tmp_path):
    return write_recording(tmp_path / "small.h5")


@pytest.fixture
def other_recording_path(tmp_path):
    return write_recording(tmp_path / "other.h5", n_items=2, units=(16, 16, 16), seed=1)


@pytest.fixture
def window(qtbot):
    from lstmviz.qt.main_window import MainWindow

    win = MainWindow(settings=None)
    qtbot.addWidget(win)
    win.resize(1200, 760)
    win.show()
    qtbot.waitExposed(win)
    return win


@pytest.fixture
def captured_errors(monkeypatch):
    """Error dialogs are recorded instead of shown (a modal dialog would block the test)."""
    shown = []
    from lstmviz.qt import main_window

    monkeypatch.setattr(main_window, "show_error", lambda parent, title, message, details="": shown.append((title, message)))
    return shown
