"""The Qt-free workspace model: events announce every change, several recordings can be open, panes
name the recording they show, a saved state of several recordings restores, nothing is lost when a
recording of a workspace cannot be opened. No Qt is imported here."""

import numpy as np
import pytest

from lstmviz.recording import RecordingWriter
from lstmviz.workspace.model import WorkspaceModel
from lstmviz.workspace.state import PaneState, WorkspaceState


def write(path, units=4, n_items=2, length=20, seed=0):
    rng = np.random.default_rng(seed)
    with RecordingWriter(path, vocab=["a", "b", "c"]) as w:
        w.add_tap("layer0/h", units, layer=0, signal="h")
        w.add_tap("layer0/c", units + 2, layer=0, signal="c")
        w.add_annotation("depth", kind="categorical", labels=["0", "1"])
        for _ in range(n_items):
            w.append_item(rng.integers(0, 3, length),
                          {"layer0/h": rng.uniform(-1, 1, (length, units)).astype(np.float32),
                           "layer0/c": rng.uniform(-1, 1, (length, units + 2)).astype(np.float32)},
                          annotations={"depth": rng.integers(0, 2, length)})
    return path


@pytest.fixture
def paths(tmp_path):
    return write(tmp_path / "clean.h5"), write(tmp_path / "other.h5", units=8, seed=1)


@pytest.fixture
def model():
    m = WorkspaceModel()
    yield m
    m.close()


def heard(model, *names):
    """Every event of ``names`` the model emits, in order."""
    seen = []
    for name in names:
        getattr(model.events, name).connect(lambda *args, n=name: seen.append((n, *args)))
    return seen


def test_events_announce_every_change(model, paths):
    seen = heard(model, "recording_changed", "panes_changed", "window_changed", "active_pane_changed",
                 "panel_state_changed")
    model.open(paths[0])
    assert [e[0] for e in seen][:2] == ["recording_changed", "panes_changed"]
    assert model.current == "r0" and model.recording is model.recordings["r0"]
    pane = model.active_pane
    assert pane.recording_id == "r0" and pane.tap == "layer0/h"  # the hidden state first
    seen.clear()
    model.set_window_width(10)
    assert seen == [("window_changed", 0, 10)]
    changed = []
    pane.events.selection_changed.connect(changed.append)
    pane.set_transform("raw")
    pane.set_brush(2, 6)
    assert changed and changed[-1] is pane.selection
    model.set_panel_state("notes", {"text": "depth units"})  # a panel without a registered format
    model.set_panel_state("notes", {"text": "depth units"})  # unchanged: no event
    assert [e for e in seen if e[0] == "panel_state_changed"] == [("panel_state_changed", "notes",
                                                                   {"text": "depth units"})]


def test_several_recordings_are_open_and_panes_name_theirs(model, paths):
    model.open(paths[0])
    other = model.add_recording(paths[1])
    assert other == "r1" and list(model.recordings) == ["r0", "r1"]
    assert model.current == "r0"  # the window keeps showing its recording
    assert model.position_taps("r1") == ["layer0/h", "layer0/c"]
    state = model.state()
    assert state.recordings == {"r0": str(paths[0].resolve()), "r1": str(paths[1].resolve())}
    assert [p.recording for p in state.panes] == ["r0"]


def test_a_workspace_of_two_recordings_restores_each_pane_on_its_own(model, paths):
    state = WorkspaceState({"clean": str(paths[0]), "corrupted": str(paths[1])}, shown="clean",
                           panes=[PaneState("layer0/h", recording="clean", transform="raw", brush=(1, 5)),
                                  PaneState("layer0/h", recording="corrupted", transform="raw", added=((7, 1),))],
                           active_pane=0, annotations=["depth"])
    assert model.restore(state) == []
    assert list(model.recordings) == ["clean", "corrupted"] and model.current == "clean"
    clean, corrupted = model.panes
    assert (clean.recording_id, corrupted.recording_id) == ("clean", "corrupted")
    assert clean.recording.path == paths[0] and corrupted.recording.path == paths[1]
    assert corrupted.n_units == 8 and corrupted.selection.units.tolist() == [7]  # unit 7 exists only there
    saved = model.state()
    assert saved.recordings == {"clean": str(paths[0].resolve()), "corrupted": str(paths[1].resolve())}
    assert (saved.shown, saved.active_pane, saved.annotations) == ("clean", 0, ["depth"])
    assert [(p.recording, p.tap, p.brush, p.added) for p in saved.panes] == [
        ("clean", "layer0/h", (1, 5), ()), ("corrupted", "layer0/h", None, ((7, 1),))]


def test_a_recording_that_cannot_be_opened_leaves_the_open_ones(model, paths, tmp_path):
    model.open(paths[0])
    before = model.state()
    missing = tmp_path / "gone.h5"
    state = WorkspaceState({"a": str(paths[1]), "b": str(missing)}, shown="a", panes=[PaneState("layer0/h", recording="a")])
    with pytest.raises(Exception) as e:
        model.restore(state)
    assert "gone.h5" in str(e.value)
    assert model.state() == before and not model.recording.closed  # still open, still shown


def test_statistics_are_computed_when_asked_without_qt(model, paths):
    model.open(paths[0])
    pane = model.active_pane
    pane.set_transform("zscore")
    assert pane.effective_transform == "zscore"  # no worker thread: computed at once
    values = pane.values()
    assert np.allclose(values.mean(axis=0), 0, atol=0.6)  # z-scored against the whole corpus


def test_closing_keeps_what_of_a_panels_state_outlives_the_recording(model, paths):
    from lstmviz.qt.match.state import MATCH_STATE, MatchSettings
    from lstmviz.workspace.panel_state import register_panel_state

    register_panel_state(MATCH_STATE)
    model.open(paths[0])
    model.set_panel_state("match", MatchSettings(mode="scored", aggregate_annotation="depth"))
    model.open(paths[1])
    assert model.panel_state("match") == MatchSettings(mode="scored")  # the annotation was the other file's


@pytest.mark.parametrize("items, length, width", [(1, 34, 34), (1, 4, 10), (3, 40, 100)])
def test_the_first_window_is_the_default_or_the_whole_recording_when_shorter(model, tmp_path, items, length, width):
    # one 34-node graph fills the plot instead of a third of a 100-position window; never below the minimum
    model.open(write(tmp_path / "short.h5", n_items=items, length=length))
    assert model.window_width == width
    assert model.window_range() == (0, min(width, items * length))
