"""The Qt face of the workspace model: model events arrive as Qt signals, a Pane adapter per model pane
(stable while the pane lives, detached when it goes), and everything else is the model's."""

from PySide6 import QtWidgets

from lstmviz.qt.workspace import Workspace


def make_workspace(qtbot):
    owner = QtWidgets.QWidget()  # the workspace lives and dies with a widget, as in the main window
    qtbot.addWidget(owner)
    ws = Workspace(parent=owner)
    ws.owner = owner
    return ws


def test_model_events_arrive_as_signals_and_state_is_the_models(qtbot, recording_path):
    ws = make_workspace(qtbot)
    with qtbot.waitSignals([ws.recording_changed, ws.panes_changed, ws.active_pane_changed]):
        ws.open(recording_path)
    assert ws.recording is ws.model.recording and ws.window_start == ws.model.window_start == 0
    with qtbot.waitSignal(ws.window_changed) as moved:
        ws.model.set_window_start(7)  # a change made on the model itself
    assert moved.args == [7, ws.window_width] and ws.window_start == 7
    with qtbot.waitSignal(ws.panel_state_changed) as changed:
        ws.set_panel_state("notes", {"text": "x"})
    assert changed.args == ["notes", {"text": "x"}] and ws.model.panel_state("notes") == {"text": "x"}
    with qtbot.waitSignal(ws.error_occurred) as said:
        ws.notify("Title", "A sentence.")
    assert said.args == ["Title", "A sentence."]
    ws.shutdown()


def test_each_model_pane_has_one_adapter_until_it_goes(qtbot, recording_path):
    ws = make_workspace(qtbot)
    ws.open(recording_path)
    first = ws.active_pane
    assert first.model is ws.model.panes[0] and ws.panes == [first] and ws.panes[0] is first
    second = ws.add_pane()
    assert ws.panes == [first, second] and ws.active_pane is second
    with qtbot.waitSignal(second.selection_changed):
        second.model.set_brush(2, 6)  # the model pane's event, as the adapter's signal
    assert second.brush == (2, 6) and second.selection is second.model.selection
    removed_model = second.model
    ws.remove_pane(1)
    assert ws.panes == [first]
    with qtbot.assertNotEmitted(second.changed):
        removed_model.set_brush(3, 7)  # a pane that left the workspace no longer reaches its adapter
    ws.shutdown()
