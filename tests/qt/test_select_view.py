"""The select view driven through real widgets on a recording with planted units (see conftest)."""

import numpy as np
import pytest
from conftest import PLANTED_BRUSH, drag_tokens, send_mouse, token_row_point
from PySide6 import QtCore

from lstmviz.recording import open_recording


def _selected(pane):
    return [] if pane.selection is None else pane.selection.pairs()


def _curve_units(curve, n):
    """The lines of a NaN-separated curve as [lines, n] y values."""
    _, y = curve.getData()
    if y is None or len(y) == 0:
        return np.zeros((0, n))
    return y.reshape(-1, n + 1)[:, :n]


def test_dragging_over_the_tokens_brushes_a_range_and_selects_the_planted_units(planted, qtbot):
    ws = planted.workspace
    pane = ws.active_pane
    with qtbot.waitSignal(pane.selection_changed):
        drag_tokens(planted, 10, 14)
    assert pane.brush == PLANTED_BRUSH
    assert _selected(pane) == [(3, 1), (7, 1), (9, 1), (12, 1)]
    plot = planted.state_plot.pane_plots[0]
    assert plot.bands.bands() == (PLANTED_BRUSH, [(9, 10)])  # the brush and one position of left padding
    assert plot.token_axis.handle_boundaries() == (8.5, 14.5)
    # the selected units are one extra curve holding exactly their values
    start, stop = ws.window_range()
    with open_recording(ws.recording.path) as rec:
        expected = rec.states("layer0/c", start, stop, units=[3, 7, 9, 12])
    np.testing.assert_allclose(_curve_units(plot.selected_curve, stop - start), expected.T, rtol=1e-6)
    # token backgrounds count the selected units that are on: all four on 10-14, none elsewhere
    counts = pane.active_counts()
    assert counts[10:15].tolist() == [4, 4, 4, 4, 4] and counts[:10].sum() == 0 and counts[16] == 1
    # dragging the other way round gives the same brush; the selection dock lists the units
    with qtbot.waitSignal(pane.selection_changed):
        drag_tokens(planted, 14.2, 9.8)
    assert pane.brush == PLANTED_BRUSH
    model = planted.panels["selection"].selected_model
    assert [model.pair(r) for r in range(model.rowCount())] == [(3, 1), (7, 1), (9, 1), (12, 1)]


def test_a_click_on_a_token_brushes_that_token(planted, qtbot):
    pane = planted.workspace.active_pane
    viewport = planted.state_plot.viewport()
    point = token_row_point(planted, 10)
    with qtbot.waitSignal(pane.selection_changed):
        send_mouse(viewport, "press", point)
        send_mouse(viewport, "release", point)
    assert pane.brush == (10, 11)  # on at 10, off at 9: 5 is on at 9 too
    assert _selected(pane) == [(3, 1), (7, 1), (9, 1), (12, 1), (13, 1)]


def test_a_brush_stays_inside_the_item_where_it_started(planted, qtbot):
    pane = planted.workspace.active_pane
    with qtbot.waitSignal(pane.selection_changed):
        drag_tokens(planted, 35, 45)  # item 0 ends at 40
    assert pane.brush == (35, 40)
    with pytest.raises(ValueError, match="one item"):
        pane.set_brush(35, 45)


def test_the_threshold_spin_box_and_line_reselect(planted, qtbot):
    pane = planted.workspace.active_pane
    strip = planted.state_plot.strips[0]
    pane.set_brush(*PLANTED_BRUSH)
    assert strip.threshold_spin.singleStep() == pytest.approx(0.001) and strip.threshold_spin.decimals() == 3
    with qtbot.waitSignal(pane.selection_changed):
        strip.threshold_spin.setValue(0.6)
    assert pane.threshold == pytest.approx(0.6)
    assert _selected(pane) == [(3, 1), (7, 1), (9, 1)]  # unit 12 peaks at 0.5
    plot = planted.state_plot.pane_plots[0]
    assert plot.threshold_line.value() == pytest.approx(0.6) and not plot.mirror_line.isVisible()
    # dragging the line is the same request
    with qtbot.waitSignal(pane.selection_changed):
        plot.threshold_line.setValue(0.45)
        plot.threshold_line.sigDragged.emit(plot.threshold_line)
    assert pane.threshold == pytest.approx(0.45) and strip.threshold_spin.value() == pytest.approx(0.45)
    assert (12, 1) in _selected(pane)


def test_padding_widths_from_the_spin_boxes_and_the_handles(planted, qtbot):
    pane = planted.workspace.active_pane
    strip = planted.state_plot.strips[0]
    pane.set_brush(*PLANTED_BRUSH)
    strip.pad_left_spin.setValue(0)
    assert (pane.pad_left, pane.pad_right) == (0, 0)
    assert _selected(pane) == [(3, 1), (5, 1), (7, 1), (9, 1), (12, 1)]  # 5 was on in the left padding
    strip.pad_left_spin.setValue(1)
    # drag the right handle (at the brush's right edge while pad_right is 0) two positions out
    handle = pane.brush[1] - 0.5
    assert planted.state_plot.pane_plots[0].token_axis.handle_at(handle) == "right"
    with qtbot.waitSignal(pane.selection_changed):
        drag_tokens(planted, handle, handle + 2.1)
    assert pane.brush == PLANTED_BRUSH and (pane.pad_left, pane.pad_right) == (1, 2)
    assert strip.pad_right_spin.value() == 2
    assert _selected(pane) == [(3, 1), (7, 1), (12, 1)]  # 9 is on at 16, inside the right padding
    assert planted.state_plot.pane_plots[0].bands.bands() == (PLANTED_BRUSH, [(9, 10), (15, 17)])
    # and the left handle three positions out
    with qtbot.waitSignal(pane.selection_changed):
        drag_tokens(planted, 8.5, 6.4)
    assert (pane.pad_left, pane.pad_right) == (3, 2)


def test_negative_direction_selects_falling_units_and_mirrors_the_line(planted, qtbot):
    pane = planted.workspace.active_pane
    strip = planted.state_plot.strips[0]
    pane.set_brush(*PLANTED_BRUSH)
    with qtbot.waitSignal(pane.selection_changed):
        strip.direction_combo.activated.emit(strip.direction_combo.findData("negative"))
    assert pane.direction == "negative"
    assert _selected(pane) == [(11, -1)]
    plot = planted.state_plot.pane_plots[0]
    assert plot.mirror_line.isVisible() and not plot.threshold_line.isVisible()
    assert plot.mirror_line.value() == pytest.approx(-0.3)
    pane.set_direction("both")
    assert _selected(pane) == [(3, 1), (7, 1), (9, 1), (11, -1), (12, 1)]
    assert plot.mirror_line.isVisible() and plot.threshold_line.isVisible()


def test_tolerance_lets_a_unit_miss_part_of_the_range(planted, qtbot):
    pane = planted.workspace.active_pane
    strip = planted.state_plot.strips[0]
    pane.set_brush(*PLANTED_BRUSH)
    assert (13, 1) not in _selected(pane)
    with qtbot.waitSignal(pane.selection_changed):
        strip.tolerance_spin.setValue(80)
    assert pane.tolerance == pytest.approx(0.8)
    assert (13, 1) in _selected(pane)


def test_units_added_and_removed_by_hand_persist(planted, qtbot):
    pane = planted.workspace.active_pane
    panel = planted.panels["selection"]
    pane.set_brush(*PLANTED_BRUSH)
    # remove unit 7 with the ✕ cell of its row
    model = panel.selected_model
    row = [model.pair(r) for r in range(model.rowCount())].index((7, 1))
    table = panel.selected_table
    rect = table.visualRect(model.index(row, model.REMOVE_COLUMN))
    with qtbot.waitSignal(pane.selection_changed):
        qtbot.mouseClick(table.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=rect.center())
    assert (7, 1) not in _selected(pane) and pane.removed == ((7, 1),)
    # add unit 5 by double-clicking its candidate row
    candidates = panel.candidates_model
    row = [candidates.pair(r) for r in range(candidates.rowCount())].index((5, 1))
    with qtbot.waitSignal(pane.selection_changed):
        panel.candidates_table.doubleClicked.emit(candidates.index(row, 0))
    assert (5, 1) in _selected(pane) and pane.added == ((5, 1),)
    # both survive a new threshold and a new brush
    pane.set_threshold(0.4)
    pane.set_brush(10, 14)
    assert (5, 1) in _selected(pane) and (7, 1) not in _selected(pane)
    rows = {(u, s): by for u, s, *_, by in panel.selected_model.rows}
    assert rows[(5, 1)] == "added" and rows[(3, 1)] == "rule"
    # clearing drops the brush and the hand-picked units
    planted.state_plot.strips[0].clear_button.click()
    assert pane.brush is None and pane.added == () and pane.removed == () and pane.selection is None


def test_hovering_a_listed_unit_highlights_its_line(planted, qtbot):
    pane = planted.workspace.active_pane
    pane.set_brush(*PLANTED_BRUSH)
    panel = planted.panels["selection"]
    row = [panel.selected_model.pair(r) for r in range(panel.selected_model.rowCount())].index((12, 1))
    with qtbot.waitSignal(pane.emphasis_changed):
        panel.selected_table.hovered_row.emit(row)
    _, y = planted.state_plot.pane_plots[0].highlight_curve.getData()
    np.testing.assert_allclose(y, pane.values()[:, 12])
    panel.selected_table.hovered_row.emit(-1)
    assert pane.emphasized is None


def test_hover_prefers_a_selected_line_near_the_pointer(planted, qtbot):
    ws = planted.workspace
    pane = ws.active_pane
    pane.set_brush(*PLANTED_BRUSH)
    pane.set_threshold(0.6)  # selected: 3, 7, 9 (1.0 at position 12); unit 12 (0.5) is not
    ws.set_hover(12, 0.6, pane=0, tolerance=0.5)
    assert ws.hover.unit == 3 and ws.hover.selected and ws.hover.value == pytest.approx(1.0)
    ws.set_hover(12, 0.6, pane=0, tolerance=0.2)  # no selected line that close: the nearest line
    assert ws.hover.unit == 12 and not ws.hover.selected


def test_two_panes_on_different_taps_keep_separate_selections(planted, qtbot):
    ws = planted.workspace
    first = ws.active_pane
    with qtbot.waitSignal(ws.panes_changed):
        planted.navigation.add_pane_button.click()
    assert len(ws.panes) == 2 and len(planted.state_plot.pane_plots) == 2 and len(planted.state_plot.strips) == 2
    second = ws.panes[1]
    assert ws.active_pane is second and second.tap == "layer1/c"  # a tap not shown yet
    with qtbot.waitSignal(second.selection_changed):
        drag_tokens(planted, 30, 32, pane=1)
    with qtbot.waitSignal(first.selection_changed):
        drag_tokens(planted, 10, 14, pane=0)
    assert ws.active_pane is first  # brushing a pane makes it active
    assert second.brush == (30, 33) and _selected(second) == [(2, 1), (4, 1)]
    assert first.brush == PLANTED_BRUSH and _selected(first) == [(3, 1), (7, 1), (9, 1), (12, 1)]
    # each pane has its own threshold; the selection dock follows the active pane
    planted.state_plot.strips[1].threshold_spin.setValue(0.9)
    assert first.threshold == pytest.approx(0.3) and ws.active_pane is second
    panel = planted.panels["selection"].selected_model
    assert [panel.pair(r) for r in range(panel.rowCount())] == [(2, 1), (4, 1)]
    # the panes share the window
    ws.scroll_by(3)
    assert [p.getViewBox().viewRange()[0][0] for p in planted.state_plot.pane_plots] == [2.5, 2.5]
    # removing a pane keeps the other's selection
    planted.state_plot.strips[1].remove_button.click()
    assert ws.panes == [first] and _selected(first) == [(3, 1), (7, 1), (9, 1), (12, 1)]


def test_show_match_moves_the_window_and_brushes_the_active_pane(planted, qtbot):
    ws = planted.workspace
    pane = ws.active_pane
    pane.set_padding(2, 1)
    ws.set_window_start(60)
    with qtbot.waitSignal(pane.selection_changed):
        ws.show_match(10, 5)
    assert ws.window_start == 7  # 3 positions of left context
    assert pane.brush == PLANTED_BRUSH and (pane.pad_left, pane.pad_right) == (2, 1)


def test_annotation_tracks_numeric_ramp_visibility_and_mask(planted, qtbot):
    ws = planted.workspace
    view = planted.state_plot
    assert [t.name for t in view.tracks] == ["depth", "score"]
    score = view.tracks[1]
    assert score.kind == "numeric"
    rgba = score.rgba()
    values = score.values
    assert (rgba[np.isnan(values), 3] == 0).all()  # missing: transparent
    finite = np.flatnonzero(np.isfinite(values))
    darkness = rgba[finite, :3].astype(int).sum(axis=1)
    assert np.all(np.diff(darkness[values[finite].argsort()]) <= 0)  # larger values are darker
    # choose the visible tracks
    with qtbot.waitSignal(ws.visible_annotations_changed):
        ws.set_visible_annotations(["score"])
    assert [t.name for t in view.tracks] == ["score"]
    ws.set_visible_annotations(["depth", "score"])
    # mask by activity: faded where no selected unit is on, opaque where all are
    ws.active_pane.set_brush(*PLANTED_BRUSH)
    alpha = view.tracks[0].rgba()[:, 3]
    assert alpha[10:15].tolist() == [255] * 5 and alpha[0] == round(255 * 0.2)
    planted.mask_action.setChecked(False)
    assert not ws.mask_annotations and (view.tracks[0].rgba()[:, 3] == 255).all()


def test_the_annotations_dialog_sets_the_visible_tracks(planted):
    from lstmviz.qt.annotations_dialog import AnnotationsDialog

    dialog = AnnotationsDialog(planted.workspace, planted)
    dialog.set_checked(["score"])
    dialog.accept()
    assert planted.workspace.visible_annotations == ["score"]
    assert [t.name for t in planted.state_plot.tracks] == ["score"]


def test_the_candidate_ranking_fits_the_selection_dock_beside_its_scroll_bar(window, recording_path, qtbot):
    """Six columns and a vertical scroll bar at the dock's opening width: no horizontal scroll bar and
    no column cut off (the last one, "selected"/"add", was)."""
    assert window.open_file(recording_path)
    window.workspace.active_pane.set_brush(10, 15)
    table = window.panels["selection"].candidates_table
    qtbot.waitUntil(lambda: table.verticalScrollBar().isVisible())  # a long ranking: it scrolls
    assert table.model().rowCount() > 20
    assert not table.horizontalScrollBar().isVisible()
    assert table.horizontalHeader().length() <= table.viewport().width()
    metrics = table.fontMetrics()
    header = table.horizontalHeader()
    for column in range(table.model().columnCount()):  # every cell's text has room in its column
        widest = max(metrics.horizontalAdvance(str(table.model().index(r, column).data() or ""))
                     for r in range(min(30, table.model().rowCount())))
        assert widest + 6 <= header.sectionSize(column), column
