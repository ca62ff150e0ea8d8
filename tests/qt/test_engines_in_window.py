"""Every registered language-model engine's recording opens in the window, on a tap of its own, with its values."""

import numpy as np
import pytest

from lstmviz.engines import registry
from lstmviz.engines.families.language_model.contract import VOCAB_SIZE, tiny_model, tokens
from lstmviz.recording.reader import open_recording
from lstmviz.recording.recorder import record

ENGINES = sorted(name for name, spec in registry.all().items() if spec.family == "language-model")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("engines")
    paths = {}
    for name in ENGINES:
        model, _ = tiny_model(registry.get(name))
        items = [tokens(seed=s, batch=1, steps=12 + s)[0] for s in range(2)]
        paths[name] = record(model.float(), items, folder / f"{name}.h5",
                             vocab=[f"w{i}" for i in range(VOCAB_SIZE)], progress=False)
    return paths


def test_every_engine_is_covered():
    assert {"lstm", "gru", "bn-lstm", "hm-lstm", "qnn-lstm"} <= set(ENGINES)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_recording_of_each_engine_opens_in_the_window(window, recordings, engine, captured_errors):
    assert window.open_file(recordings[engine])
    ws = window.workspace
    with open_recording(recordings[engine]) as rec:
        assert ws.tap in rec.taps
        start, stop = ws.window_range()
        expected = np.asarray(rec.states(ws.tap, start, stop), dtype=np.float32)
    shown = np.asarray(ws.values(), dtype=np.float32)
    assert shown.shape == expected.shape and np.isfinite(shown).all()
    assert ws.transform in ("raw", "tanh")  # the default of every tap the window opens on
    np.testing.assert_allclose(shown, expected if ws.transform == "raw" else np.tanh(expected), atol=1e-6)
    assert not window.state_plot.active_plot.problem_label.isVisible()
    assert captured_errors == []
