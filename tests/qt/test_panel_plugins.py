"""Panels as plug-ins: a panel is one description; registering it is all the window, its menus, closing
and the workspace file need. A test panel (defined here) is registered, used and saved, then removed."""

from dataclasses import dataclass

import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.qt.panel_description import PanelDescription
from lstmviz.qt.panels import BUILT_IN, panels, register_panel, unregister_panel
from lstmviz.workspace.file import load_workspace
from lstmviz.workspace.panel_state import PanelStateFormat, panel_state_formats
from lstmviz.workspace.schema import Record, Whole


@dataclass(frozen=True)
class Count:
    clicks: int = 0


class CountFormat(PanelStateFormat):
    name = "counter"
    title = "the Counter panel"
    version = 1
    schema = Record({"clicks": (Whole(0, 1000), 0)})

    def from_values(self, values):
        return Count(values["clicks"])

    def to_values(self, state):
        return {"clicks": state.clicks}


class CounterPanel(QtWidgets.QLabel):
    """Counts presses of its action; the count is its state in the workspace."""

    wants_dock = QtCore.Signal()
    shut_down = []

    def __init__(self, workspace):
        super().__init__()
        self.workspace = workspace
        self.action = QtGui.QAction("Count", self)
        self.action.triggered.connect(self.count)
        workspace.panel_state_changed.connect(self._state_changed)

    def count(self):
        state = self.workspace.panel_state("counter") or Count()
        self.workspace.set_panel_state("counter", Count(state.clicks + 1))
        self.wants_dock.emit()

    def _state_changed(self, name, state):
        if name == "counter":
            self.setText(str(0 if state is None else state.clicks))

    def menu_actions(self):
        return [self.action]

    def shutdown(self):
        CounterPanel.shut_down.append(self)


COUNTER = PanelDescription(name="counter", title="Counter", widget=f"{__name__}:CounterPanel", area="bottom",
                           order=70, menu="&Tools", state=CountFormat())


@pytest.fixture
def counter_registered():
    register_panel(COUNTER)
    yield COUNTER
    unregister_panel("counter")


def test_the_built_in_panels_are_registered_in_order():
    names = [d.name for d in panels()]
    assert names[:len(BUILT_IN)] == ["selection", "info", "find", "match", "probes", "perturb", "graph", "image",
                          "attention", "kernel", "embedding"] == [d.name for d in BUILT_IN]
    assert {"match", "probes", "perturb", "graph", "image", "embedding"} <= set(panel_state_formats())
    with pytest.raises(ValueError, match="area must be one of right, bottom"):
        register_panel(PanelDescription(name="x", title="X", widget="m:C", area="top"))
    with pytest.raises(ValueError, match="saves its state as 'counter'"):
        register_panel(PanelDescription(name="y", title="Y", widget="m:C", state=CountFormat()))


def test_a_registered_panel_gets_a_dock_a_menu_a_part_of_the_workspace_file_and_is_shut_down(
        qtbot, counter_registered, recording_path, tmp_path, captured_errors):
    from conftest import make_window

    window = make_window(qtbot)
    assert window.open_file(recording_path)
    dock, panel = window.docks["counter"], window.panels["counter"]
    assert isinstance(panel, CounterPanel) and dock.windowTitle() == "Counter" and dock.isHidden()
    menus = {m.title(): m for m in window.menuBar().findChildren(QtWidgets.QMenu)}
    assert [a.text() for a in menus["&Tools"].actions()] == ["Count"]
    assert dock.toggleViewAction() in menus["&View"].actions()
    panel.action.trigger()
    assert dock.isVisible() and panel.text() == "1"  # it asked for its dock
    panel.action.trigger()
    path = tmp_path / "counted.lstmviz.json"
    assert window.save_workspace(path), captured_errors
    assert load_workspace(path).panels["counter"] == Count(2)

    other = make_window(qtbot)
    assert other.open_workspace(path), captured_errors
    assert other.workspace.panel_state("counter") == Count(2) and other.panels["counter"].text() == "2"
    other.close()
    assert other.panels["counter"] in CounterPanel.shut_down


def test_without_its_panel_a_part_of_the_file_is_kept_and_written_back(qtbot, counter_registered, recording_path,
                                                                       tmp_path, captured_errors):
    from conftest import make_window

    window = make_window(qtbot)
    assert window.open_file(recording_path)
    window.workspace.set_panel_state("counter", Count(5))
    path = tmp_path / "with-counter.lstmviz.json"
    assert window.save_workspace(path)
    unregister_panel("counter")  # an lstmviz without that plug-in
    plain = make_window(qtbot)
    assert "counter" not in plain.docks
    assert plain.open_workspace(path), captured_errors
    again = tmp_path / "again.lstmviz.json"
    assert plain.save_workspace(again)
    assert load_workspace(again, formats={"counter": CountFormat()}).panels["counter"] == Count(5)
