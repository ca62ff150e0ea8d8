"""The Graph panel's drawing and data: filler nodes hidden, colours per node, picking, layouts (stored,
pooled, spring, cached), its saved state."""

from types import SimpleNamespace

import numpy as np
import pytest

from lstmviz.geometry import AxisGeometry, GraphGeometry
from lstmviz.qt.graph import data
from lstmviz.qt.graph.state import GRAPH_STATE, GraphSettings


@pytest.fixture
def canvas(qtbot):
    from lstmviz.qt.graph.canvas import GraphCanvas

    c = GraphCanvas()
    qtbot.addWidget(c)
    c.resize(400, 300)
    c.show()
    qtbot.waitExposed(c)
    return c


def test_filler_nodes_and_their_edges_are_hidden(canvas):
    coords = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    edges = np.array([[0, 1], [1, 2], [2, 3], [3, 0], [0, 0]])
    canvas.set_graph(coords, edges, hidden=[False, False, True, False])
    assert list(canvas.shown) == [0, 1, 3]
    x, _ = canvas.edges.getData()
    assert len(x) == 2 * 2  # 0-1 and 3-0; the self-loop and the edges of node 2 are not drawn
    canvas.set_colour_index([0, 1, 2, 3], [(255, 0, 0), (0, 255, 0), (0, 0, 255), (9, 9, 9)])
    assert [c.name() for c in canvas.node_colours()] == ["#ff0000", "#00ff00", "#090909"]
    canvas.set_node_colours([(1, 2, 3), (1, 2, 3), (7, 7, 7), (4, 5, 6)])
    assert [c.name() for c in canvas.node_colours()] == ["#010203", "#010203", "#040506"]


def test_nearest_node_picks_within_pixels(canvas):
    canvas.set_graph(np.array([[0, 0], [1, 0]], float), np.array([[0, 1]]))
    canvas.plot.autoRange()
    assert canvas.nearest_node(0.0, 0.0) == 0 and canvas.nearest_node(1.0, 0.0) == 1
    assert canvas.nearest_node(0.5, 0.0) == -1  # half way: far from both on screen


def test_node_dots_paint_every_colour(canvas):
    """The atlas draws each node in its colour (the rendered image holds them)."""
    canvas.set_graph(np.array([[0, 0], [1, 0], [0.5, 1]], float), np.zeros((0, 2)))
    canvas.set_colour_index([0, 1, 2], [(255, 0, 0), (0, 200, 0), (0, 0, 255)])
    image = canvas.plot.grab().toImage()
    found = set()
    for node in range(3):
        p = canvas.node_point(node)
        found.add(image.pixelColor(p.x(), p.y()).name())
    assert found == {"#ff0000", "#00c800", "#0000ff"}


def test_normalise_keeps_the_aspect():
    out = data.normalise(np.array([[0, 0], [4, 0], [4, 2]], float))
    assert out.min() == -1 and out.max() == 1
    assert np.allclose(out[:, 1], [-0.5, -0.5, 0.5])


def test_pooled_level_sits_on_its_clusters():
    finer = np.array([[0, 0], [2, 0], [10, 10], [12, 10]], float)
    assert np.allclose(data.pooled_layout(finer, [0, 0, 1, 1], 2), [[1, 0], [11, 10]])
    assert data.pooled_layout(finer, [0, 0, 0, -1], 2) is None  # a pooled node with no member


class _Reader:
    """A reader with two graph levels: 'positions' (4 nodes, no layout) and 'level1' pooling them."""

    def __init__(self):
        self.calls = 0
        self.fine = GraphGeometry.from_edges(4, [(0, 1), (1, 2), (2, 3)])
        self.coarse = GraphGeometry.from_edges(2, [(0, 1)], pooling_map=[0, 0, 1, 1], finer_nodes=4)
        self.axes = ["positions", "level1"]

    def axis_geometry(self, axis):
        return AxisGeometry(kind="graph", pooled_from="positions" if axis == "level1" else None)

    def item_geometry(self, item, axis):
        self.calls += 1
        return self.fine if axis == "positions" else self.coarse


def test_layout_cache_spring_once_and_pooled_from_it(monkeypatch):
    reader = _Reader()
    cache = data.LayoutCache()
    spring = []
    real = data.spring_layout
    monkeypatch.setattr(data, "spring_layout", lambda g, seed=data.LAYOUT_SEED: spring.append(1) or real(g, seed))
    fine = cache.layout(reader, 0, "positions")
    coarse = cache.layout(reader, 0, "level1")
    assert len(spring) == 1  # the pooled level reuses the finer layout
    centroids = data.normalise(np.array([fine[:2].mean(0), fine[2:].mean(0)]))
    assert np.allclose(coarse, centroids)
    assert cache.layout(reader, 0, "positions") is fine and len(spring) == 1
    assert data.graph_axes(reader) == ["positions", "level1"]


def test_stored_coordinates_are_used():
    g = GraphGeometry.from_edges(3, [(0, 1)], coordinates=[[0, 0], [2, 0], [2, 1]])
    reader = SimpleNamespace(item_geometry=lambda item, axis: g, axis_geometry=lambda axis: AxisGeometry("graph"))
    assert np.allclose(data.LayoutCache().layout(reader, 0), [[-1, -0.5], [1, -0.5], [1, 0.5]])


def test_graph_axes_of_recordings_without_graphs():
    assert data.graph_axes(None) == []
    assert data.graph_axes(SimpleNamespace(taps={})) == []  # a v2 reader: no geometry
    tokens = SimpleNamespace(axis_geometry=lambda axis: AxisGeometry(), item_geometry=None, axes=["positions"])
    assert data.graph_axes(tokens) == []


def test_saved_state_round_trip_and_fit():
    s = GraphSettings(level="level1", color="faction", ring=2, ball=True, k=3, min_size=4, thumbnails=12)
    assert GRAPH_STATE.read(GRAPH_STATE.write(s), "graph") == s
    recording = SimpleNamespace(annotations={"depth": None}, axes=["positions"])
    problems = []
    fitted = GRAPH_STATE.fit(s, recording, problems)
    assert fitted.color is None and fitted.level == "positions" and len(problems) == 2
    with pytest.raises(Exception, match="ring"):
        GRAPH_STATE.read({"version": 1, "ring": 99}, "graph")


def test_large_graphs_are_laid_out_spectrally(monkeypatch):
    import networkx as nx

    g = nx.grid_2d_graph(21, 21)  # 441 nodes
    nodes = {v: i for i, v in enumerate(g)}
    geometry = GraphGeometry.from_edges(len(nodes), [(nodes[a], nodes[b]) for a, b in g.edges()])
    monkeypatch.setattr(data, "spring_layout", lambda *a, **k: pytest.fail("a force layout of 441 nodes"))
    coords = data.auto_layout(geometry)
    assert coords.shape == (441, 2) and np.isfinite(coords).all()
    # neighbours are close: a grid edge is much shorter than the layout's extent
    d = np.hypot(*(coords[geometry.edges[:, 0]] - coords[geometry.edges[:, 1]]).T)
    assert np.median(d) < 0.1 * np.ptp(coords, axis=0).max()
