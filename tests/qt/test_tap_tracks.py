"""Taps with one integer label per position (hm-lstm's boundaries z and operations op) are offered and
shown as tracks under the tokens, like annotations; state taps are not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmviz.engines import registry
from lstmviz.engines.families.language_model import TokenData
from lstmviz.recording import open_recording
from lstmviz.recording.recorder import record
from lstmviz.recording.tap_tracks import TRACK_PREFIX, tap_tracks

VOCAB = ["<pad>", "(", ")", "a", "b", " "]
H = 6


@pytest.fixture
def hm_recording(tmp_path):
    """A tiny hm-lstm (z~ biases 0, so boundaries fire on some characters) recorded over 3 items."""
    torch.manual_seed(0)
    model = registry.get("hm-lstm").build_model(TokenData(vocab_size=len(VOCAB)), embedding_dim=4, hidden_size=H,
                                                 num_layers=3, init_range=0.5)
    with torch.no_grad():
        for cell in model.layers.layers:
            cell.bias[4 * H] = 0.0
    rng = np.random.default_rng(0)
    items = [rng.integers(1, len(VOCAB), 50) for _ in range(3)]
    return record(model.eval(), items, tmp_path / "hm.h5", vocab=VOCAB)


def test_only_taps_with_one_integer_label_per_position_become_tracks(hm_recording):
    with open_recording(hm_recording) as rec:
        tracks = tap_tracks(rec)
        # the top layer has no boundary detector: its z (and z~) are 0 everywhere, which is not worth a track
        expected = [f"layer{l}/{s}" for l in range(2) for s in ("z", "op")] + ["layer2/op"]
        assert sorted(tracks) == sorted(TRACK_PREFIX + name for name in expected)
        assert not np.any(rec.states("layer2/z")) and not np.any(rec.states("layer2/z_soft"))
        z = tracks[TRACK_PREFIX + "layer0/z"]
        assert (z.kind, z.level, z.labels) == ("categorical", "position", ["0", "1"])
        assert tracks[TRACK_PREFIX + "layer1/op"].labels == ["0", "1", "2"]  # COPY, UPDATE, FLUSH all occur
        assert "boundary" in z.description


def test_the_window_shows_the_boundaries_as_a_track_and_the_dialog_offers_them(window, hm_recording, qtbot):
    from lstmviz.qt.annotations_dialog import AnnotationsDialog

    window.open_file(hm_recording)
    ws = window.workspace
    names = [t.name for t in window.state_plot.tracks]
    assert TRACK_PREFIX + "layer0/z" in names and TRACK_PREFIX + "layer1/op" in names
    track = window.state_plot.tracks[names.index(TRACK_PREFIX + "layer0/z")]
    start, stop = ws.window_range()
    with open_recording(hm_recording) as rec:
        z = rec.states("layer0/z", start, stop)[:, 0]
    np.testing.assert_array_equal(track.values, z.astype(int))
    assert set(np.unique(track.values)) == {0, 1}

    dialog = AnnotationsDialog(ws, window)
    qtbot.addWidget(dialog)
    offered = [dialog.list.item(i).data(0x0100) for i in range(dialog.list.count())]
    assert TRACK_PREFIX + "layer0/z" in offered and TRACK_PREFIX + "layer0/h" not in offered
    dialog.set_checked([TRACK_PREFIX + "layer0/z"])
    with qtbot.waitSignal(ws.visible_annotations_changed):
        dialog.accept()
    assert [t.name for t in window.state_plot.tracks] == [TRACK_PREFIX + "layer0/z"]

    from lstmviz.workspace.hover import _labels_at

    assert _labels_at(ws, start + 1) == {TRACK_PREFIX + "layer0/z": str(int(z[1]))}


def test_a_saved_workspace_keeps_a_tap_track(hm_recording):
    from dataclasses import replace

    from lstmviz.workspace.file import restore_valid
    from lstmviz.workspace.state import WorkspaceState

    with open_recording(hm_recording) as rec:
        state = WorkspaceState(recordings={"r0": str(hm_recording)}, shown="r0", window_start=0, window_width=40,
                               panes=[], active_pane=0, annotations=[], panels={})
        state = replace(state, annotations=[TRACK_PREFIX + "layer0/z", TRACK_PREFIX + "layer0/h"])
        valid, problems = restore_valid(state, rec)
    assert valid.annotations == [TRACK_PREFIX + "layer0/z"]
    assert len(problems) == 1 and "layer0/h" in problems[0]
