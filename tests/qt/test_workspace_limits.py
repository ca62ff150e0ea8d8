"""The workspace file's limits and the window's controls agree (issue 10.14): whatever the window can be
set to saves and loads back, and what the file refuses the window cannot reach."""

from lstmviz.qt.match.state import MATCH_RANGES
from lstmviz.workspace.file import (
    MAX_PANES,
    PADDING_RANGE,
    THRESHOLD_RANGE,
    WINDOW_WIDTH_RANGE,
    load_workspace,
)
from lstmviz.qt.workspace import MAX_WINDOW_WIDTH, MIN_WINDOW_WIDTH


def test_every_control_at_its_limits_saves_and_loads_back(qtbot, planted, tmp_path, captured_errors):
    window = planted
    ws = window.workspace
    strip = window.state_plot.strips[0]
    panel = window.panels["match"]
    assert WINDOW_WIDTH_RANGE[0] <= MIN_WINDOW_WIDTH and MAX_WINDOW_WIDTH <= WINDOW_WIDTH_RANGE[1]
    assert (strip.pad_left_spin.minimum(), strip.pad_left_spin.maximum()) == PADDING_RANGE
    assert (strip.pad_right_spin.minimum(), strip.pad_right_spin.maximum()) == PADDING_RANGE
    assert THRESHOLD_RANGE[0] == strip.threshold_spin.minimum() and strip.threshold_spin.maximum() <= THRESHOLD_RANGE[1]
    spins = {"limit": panel.limit_spin, "min_length": panel.min_length_spin, "length_weight": panel.weight_spin,
             "candidate_cap": panel.cap_spin, "left": panel.left_spin, "right": panel.right_spin}
    for name, spin in spins.items():
        low, high = MATCH_RANGES[name]
        assert spin.maximum() == high, name
        assert spin.minimum() in (low, 0), name  # 0: "all" / "none", saved as null

    for extreme in ("maximum", "minimum"):
        for spin in [strip.threshold_spin, strip.pad_left_spin, strip.pad_right_spin, *spins.values()]:
            spin.setValue(getattr(spin, extreme)())
        ws.set_window_width(MAX_WINDOW_WIDTH if extreme == "maximum" else MIN_WINDOW_WIDTH)
        path = tmp_path / f"{extreme}.lstmviz.json"
        assert window.save_workspace(path), captured_errors
        loaded = load_workspace(path)
        assert loaded.panels["match"] == ws.panel_state("match") and loaded.window_width == ws.window_width
        assert loaded.panes == [ws.panes[0].state()]


def test_the_window_adds_no_more_panes_than_a_file_holds(qtbot, planted_path, tmp_path):
    from PySide6 import QtWidgets

    from lstmviz.workspace.file import save_workspace
    from lstmviz.qt.workspace import Workspace

    owner = QtWidgets.QWidget()  # a workspace without views: adding panes draws nothing
    qtbot.addWidget(owner)
    ws = Workspace(parent=owner)
    said = []
    ws.error_occurred.connect(lambda title, message: said.append((title, message)))
    ws.open(planted_path)
    while len(ws.panes) < MAX_PANES:
        assert ws.add_pane() is not None
    assert ws.add_pane() is None and len(ws.panes) == MAX_PANES
    assert said == [("Cannot add a pane", f"The window shows at most {MAX_PANES} panes; remove one "
                                          "(View > Remove Active Pane) first.")]
    assert len(load_workspace(save_workspace(tmp_path / "full.json", ws.state())).panes) == MAX_PANES
    ws.shutdown()
