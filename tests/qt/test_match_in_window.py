"""The whole loop in the main window: brush a range, match the corpus, click a result, the view moves."""

from conftest import drag_tokens
from PySide6 import QtCore

from lstmviz.analysis.bitindex import IndexKey, build_index
from lstmviz.analysis.matching import match
from lstmviz.recording import open_recording


def test_brush_match_click_moves_the_select_view(qtbot, planted, planted_path):
    ws = planted.workspace
    pane = ws.active_pane
    with qtbot.waitSignal(pane.selection_changed):
        drag_tokens(planted, 10, 14)
    assert pane.brush == (10, 15)
    assert sorted(pane.selection.units.tolist()) == [3, 7, 9, 12]

    panel = planted.panels["match"]
    assert not planted.docks["match"].isVisible()  # closed until there is something to show
    with qtbot.waitSignals([panel.results_changed, panel.aggregate_changed], timeout=20000):
        panel.match_action.trigger()
    assert planted.docks["match"].isVisible()
    results = panel.results
    with open_recording(planted_path) as rec:
        expected = match(build_index(rec, IndexKey(pane.tap, pane.transform, pane.threshold)), panel.build_query())
    assert results.starts.tolist() == expected.starts.tolist()
    assert results.lengths.tolist() == expected.lengths.tolist()
    assert (int(results.starts[0]), int(results.lengths[0])) == (10, 5)  # the brushed range itself ranks first

    ws.go_to_item(2)  # look elsewhere, then click the best match: the select view comes back to it
    assert ws.window_start >= 80
    row = 0
    start, length = int(results.starts[row]), int(results.lengths[row])
    rect = panel.view.visualRect(panel.model.index(row, panel.model.column_of_offset(0)))
    with qtbot.waitSignal(ws.window_changed):
        qtbot.mouseClick(panel.view.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=rect.center())
    assert ws.window_start <= start and start + length <= ws.window_start + ws.window_width
    assert pane.brush == (start, start + length)
