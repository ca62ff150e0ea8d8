"""The Graph panel: opens on a graph recording, brushes nodes (click, shift-click, lasso, k-hop ball),
selects units by the node-set rule, matches in every graph and goes to a match, switches to a pooled
level; says when there is no graph. The recordings are v3 files (tests/qt/graph_recordings.py)."""

import networkx as nx
import numpy as np
import pytest

from window_helpers import send_mouse, write_recording
from graph_recordings import PLANTED, write_karate_recording


@pytest.fixture
def graph_window(window, tmp_path):
    assert window.open_file(write_karate_recording(tmp_path / "karate.h5"))
    window.workspace.set_transform("raw")
    window.workspace.active_pane.set_threshold(0.5)
    window.show_panel("graph")
    return window


def shown_canvas(qtbot, panel):
    """Wait until the canvas is laid out in its dock, then fit the graph into it."""
    qtbot.waitUntil(lambda: panel.canvas.plot.isVisible() and panel.canvas.plot.width() > 150
                    and panel.canvas.plot.height() > 120)
    panel.canvas.plot.autoRange(padding=0.08)


def panel_of(window):
    return window.panels["graph"]


def click_node(qtbot, panel, node, shift=False):
    from PySide6 import QtCore

    viewport = panel.canvas.plot.viewport()
    point = QtCore.QPointF(panel.canvas.node_point(node))
    mods = QtCore.Qt.KeyboardModifier.ShiftModifier if shift else None
    with qtbot.waitSignal(panel.brushed_changed):
        send_mouse(viewport, "press", point, modifiers=mods)
        send_mouse(viewport, "release", point, modifiers=mods)


def test_panel_draws_the_current_graph(graph_window, monkeypatch):
    from lstmviz.qt.graph import data

    panel = panel_of(graph_window)
    assert panel.stack.currentIndex() == 1 and panel.has_graph
    assert panel.geometry.num_nodes == 34
    assert len(panel.canvas.shown) == 34
    assert len(panel.canvas._labels) == 34  # names of a small graph are drawn
    # the spring layout is cached: no second layout for the same graph
    monkeypatch.setattr(data, "spring_layout", lambda *a, **k: pytest.fail("laid out twice"))
    assert np.shares_memory(panel.layouts.layout(graph_window.workspace.recording, 0), panel.canvas.coords)


def test_click_and_shift_click_select_units_by_the_rule(qtbot, graph_window):
    panel = panel_of(graph_window)
    shown_canvas(qtbot, panel)
    for i, node in enumerate(PLANTED[0]):
        click_node(qtbot, panel, node, shift=i > 0)
    assert list(panel.brushed) == sorted(PLANTED[0])
    # units 2 and 3 are on at the set and off on its ring; 5 is on on the ring; 0 is not on at all of it
    assert panel.selection.pairs() == [(2, 1), (3, 1)]
    assert graph_window.workspace.highlighted_units == [2, 3]
    click_node(qtbot, panel, 16, shift=True)  # shift-click on a brushed node takes it out
    assert 16 not in panel.brushed


def test_k_hop_ball_and_lasso(qtbot, graph_window):
    from lstmviz.analysis.graph_selection import k_hop_ball

    panel = panel_of(graph_window)
    panel.ball_check.setChecked(True)
    panel.k_spin.setValue(1)
    assert graph_window.workspace.panel_state("graph").ball
    with qtbot.waitSignal(panel.brushed_changed):
        panel.canvas.node_clicked.emit(33, False)
    assert list(panel.brushed) == list(k_hop_ball(panel.geometry, 33, 1))
    # lasso: a square around three nodes' layout positions
    coords = panel.canvas.coords
    box = coords[[0, 1, 2]]
    lo, hi = box.min(0) - 1e-3, box.max(0) + 1e-3
    polygon = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
    inside = np.flatnonzero((coords >= lo).all(1) & (coords <= hi).all(1))
    with qtbot.waitSignal(panel.brushed_changed):
        panel.canvas.lasso_finished.emit(polygon, False)
    assert list(panel.brushed) == list(inside)


def test_lasso_drag_on_the_canvas(qtbot, graph_window):
    import pyqtgraph as pg
    from PySide6 import QtCore

    panel = panel_of(graph_window)
    shown_canvas(qtbot, panel)
    centre = QtCore.QPointF(panel.canvas.node_point(0))
    viewport = panel.canvas.plot.viewport()
    corners = [centre + QtCore.QPointF(dx, dy) for dx, dy in ((-6, -6), (6, -6), (6, 6), (-6, 6), (-6, -5))]
    limit = pg.getConfigOption("mouseRateLimit")
    pg.setConfigOption("mouseRateLimit", -1)
    try:
        with qtbot.waitSignal(panel.brushed_changed):
            send_mouse(viewport, "press", corners[0])
            for p in corners[1:]:
                send_mouse(viewport, "move", p)
            send_mouse(viewport, "release", corners[-1])
    finally:
        pg.setConfigOption("mouseRateLimit", limit)
    assert 0 in panel.brushed


def test_match_finds_the_planted_sets_and_a_thumbnail_goes_there(qtbot, graph_window):
    panel = panel_of(graph_window)
    panel.set_brushed(PLANTED[0])
    assert panel.selection.pairs() == [(2, 1), (3, 1)]
    with qtbot.waitSignal(panel.matches_ready, timeout=20000):
        assert panel.match()
    res = panel.results
    found = {(int(res.items[i]), tuple(int(v) for v in res.match_nodes(i))) for i in range(len(res))}
    assert found == {(item, tuple(sorted(nodes))) for item, nodes in PLANTED.items()}
    assert list(res.sizes) == [6, 5, 4, 3]  # every ring is off: score = size
    assert len(panel.thumbnails.thumbnails) == 4
    assert "faction" in panel.aggregate_title.text() and panel.aggregate_view.rowCount() >= 1
    with qtbot.waitSignal(panel.graph_shown):
        panel.thumbnails.thumbnails[1].clicked.emit(1)
    assert panel.item == 2 and graph_window.workspace.item == 2
    assert list(panel.brushed) == sorted(PLANTED[2])
    assert panel.item_spin.value() == 2


def test_a_running_match_can_be_cancelled(qtbot, graph_window, monkeypatch):
    """The match runs in a worker: busy, Cancel stops it and the status line says so."""
    from lstmviz.analysis import graph_match as gm

    def held(index, corpus, query, task=None):
        task._cancel.wait(20)  # until Cancel (a worker thread, not the GUI's)
        task.check()

    monkeypatch.setattr(gm, "graph_match", held)
    panel = panel_of(graph_window)
    panel.set_brushed(PLANTED[0])
    assert panel.match() and panel.busy and panel.cancel_button.isVisibleTo(panel)
    with qtbot.waitSignal(panel.busy_changed, timeout=20000) as blocker:
        panel.cancel()
    assert blocker.args == [False]
    assert panel.status_text() == "Graph match cancelled." and panel.results is None


def test_item_navigation_moves_the_graph(qtbot, graph_window):
    panel = panel_of(graph_window)
    with qtbot.waitSignal(panel.graph_shown):
        graph_window.workspace.go_to_item(3)
    assert panel.item == 3 and panel.geometry.num_nodes == 12
    assert panel.canvas.coords.shape == (12, 2) and np.abs(panel.canvas.coords).max() == pytest.approx(1.0)
    with qtbot.waitSignal(panel.graph_shown):
        panel.item_spin.setValue(1)
    assert graph_window.workspace.item == 1


def test_colour_by_annotation_and_units(graph_window):
    panel = panel_of(graph_window)
    panel.colour_combo.setCurrentIndex(panel.colour_combo.findData("faction"))
    assert "Mr. Hi" in panel.legend_label.text() and "Officer" in panel.legend_label.text()
    colours = [c.name() for c in panel.canvas.node_colours()]
    assert len(set(colours)) == 2
    club = [0 if g == "Mr. Hi" else 1 for g in nx.get_node_attributes(nx.karate_club_graph(), "club").values()]
    assert [colours[i] == colours[0] for i in range(34)] == [c == club[0] for c in club]
    panel.colour_combo.setCurrentIndex(0)
    panel.set_brushed(PLANTED[0])
    assert "mean of units 2, 3" in panel.legend_label.text()


def test_match_without_units_says_so(graph_window):
    panel = panel_of(graph_window)
    graph_window.workspace.set_highlighted_units([])
    assert not panel.match()
    assert "Select units first" in panel.status_text()


def test_the_graph_dock_opens_for_a_graph_recording_only(window, tmp_path):
    assert window.open_file(write_recording(tmp_path / "tokens.h5", n_items=2, item_length=20))
    assert not window.docks["graph"].isVisible()
    assert window.open_file(write_karate_recording(tmp_path / "karate.h5"))
    assert window.docks["graph"].isVisible()
    assert window.state_plot.isVisible()  # the unit-lines view stays


def test_a_recording_without_a_graph_is_said_in_words(window, tmp_path):
    assert window.open_file(write_recording(tmp_path / "tokens.h5", n_items=2, item_length=20))
    panel = panel_of(window)
    assert panel.stack.currentIndex() == 0
    assert "has no graph" in panel.message_label.text() and "tokens" in panel.message_label.text()
    assert not panel.match()


def test_hover_names_the_node_its_annotations_and_units(graph_window):
    panel = panel_of(graph_window)
    panel.set_brushed(PLANTED[0])
    panel.canvas.node_hovered.emit(16)
    text = panel.hover_label.text()
    assert text.startswith("node 16 «16»") and "faction: Mr. Hi" in text and "degree: 2" in text
    assert "2: 1.00" in text and "3: 1.00" in text
    panel.canvas.node_hovered.emit(-1)
    assert panel.hover_label.text().strip() == ""


def test_ring_setting_changes_the_selection(graph_window):
    """Unit 5 is on everywhere: only without a ring is it selected."""
    panel = panel_of(graph_window)
    panel.set_brushed(PLANTED[0])
    panel.ring_spin.setValue(0)
    assert graph_window.workspace.panel_state("graph").ring == 0
    assert (5, 1) in panel.selection.pairs()
    panel.ring_spin.setValue(1)
    assert (5, 1) not in panel.selection.pairs()


def test_pooled_level_is_drawn_on_its_clusters(qtbot, graph_window):
    from lstmviz.qt.graph import data

    panel = panel_of(graph_window)
    fine = panel.canvas.coords.copy()
    with qtbot.waitSignal(panel.graph_shown):
        panel.level_combo.setCurrentIndex(panel.level_combo.findData("level1"))
    assert panel.level == "level1" and panel.geometry.num_nodes == 17
    assert panel.tap() == "level1/h"
    centroids = data.normalise(fine.reshape(17, 2, 2).mean(1))
    assert np.allclose(panel.canvas.coords, centroids)
    panel.set_brushed([0, 1])  # the Select rule runs on the level's own tap
    assert panel.selection is not None and panel.selection.extra["nodes"].tolist() == [0, 1]


def test_selection_dock_points_to_the_graph_panel_on_a_graph_recording(window, tmp_path):
    assert window.open_file(write_recording(tmp_path / "tokens.h5", n_items=2, item_length=20))
    header = window.panels["selection"].header
    assert "tokens of a pane" in header.text() and "Graph panel" not in header.text()
    assert window.open_file(write_karate_recording(tmp_path / "karate.h5"))
    assert "brush nodes in the Graph panel" in header.text()
