"""Graph view redraw: 2,000 nodes / 10,000 edges, a colour change and a full redraw, offscreen.

A layout-like graph (nodes scattered in a square, each joined to its 5 nearest neighbours). The Graph
panel's canvas (``lstmviz.qt.graph.canvas.GraphCanvas``: edges as one ``PlotCurveItem``
with ``connect="pairs"``, nodes as one scatter whose brushes come from a table of 256) at --width x
--height, against a baseline in the same run: a bare pyqtgraph ``PlotWidget`` with one
``ScatterPlotItem`` of the same nodes and no edges (the least any pyqtgraph view of the nodes costs).

Timed, median of --repeats (each includes painting the widget into an image, ``QWidget.grab``, so the
time is what the screen would cost, offscreen):

  colour change: new colour per node (a new unit's mean), then paint;
  full redraw:   a new graph (coordinates, edges, colours), then paint — what moving to another item costs;
  paint only:    painting the unchanged view (the floor).

Goal: colour change and full redraw <= 16 ms (one frame at 60 Hz). Measured numbers only. The cost of
the edges is the pixels they cover: a drawing of long edges crossing the whole view costs more.

    QT_QPA_PLATFORM=offscreen python benchmarks/graph_view.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def random_graph(rng, nodes: int, edges: int):
    """Nodes scattered in [-1, 1]^2, each joined to its nearest neighbours (edges // nodes of them):
    short edges, as a force-directed layout draws a sparse graph."""
    from scipy.spatial import cKDTree

    coords = rng.random((nodes, 2)) * 2 - 1
    k = max(1, edges // nodes)
    _, near = cKDTree(coords).query(coords, k + 1)
    pairs = np.stack([np.repeat(np.arange(nodes), k), near[:, 1:].reshape(-1)], 1)
    return coords, pairs[:edges]


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=2000)
    parser.add_argument("--edges", type=int, default=10000)
    parser.add_argument("--width", type=int, default=900)
    parser.add_argument("--height", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    import pyqtgraph as pg
    from PySide6 import QtGui, QtWidgets

    from lstmviz.qt.graph.canvas import GraphCanvas, colour_table

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    rng = np.random.default_rng(0)
    coords, edges = random_graph(rng, args.nodes, args.edges)
    table = colour_table()

    canvas = GraphCanvas()
    canvas.resize(args.width, args.height)
    canvas.show()
    canvas.set_graph(coords, edges)
    canvas.set_colour_index(rng.integers(0, 256, args.nodes), table)
    app.processEvents()
    canvas.grab()

    def canvas_colour():
        canvas.set_colour_index(rng.integers(0, 256, args.nodes), table)
        canvas.grab()

    graphs = [random_graph(rng, args.nodes, args.edges) for _ in range(4)]

    def canvas_full():
        c, e = graphs[rng.integers(len(graphs))]
        canvas.set_graph(c, e)
        canvas.set_colour_index(rng.integers(0, 256, args.nodes), table)
        canvas.grab()

    brushes = [QtGui.QBrush(c) for c in table]  # the bare scatter's fastest form: ready QBrushes
    bare = pg.PlotWidget(background="w")
    bare.resize(args.width, args.height)
    bare.show()
    scatter = pg.ScatterPlotItem(pos=coords, size=13, pen=pg.mkPen(60, 60, 60, 200), pxMode=True)
    bare.addItem(scatter)
    app.processEvents()
    bare.grab()

    def bare_colour():
        index = rng.integers(0, 256, args.nodes)
        scatter.setBrush([brushes[i] for i in index])
        bare.grab()

    def bare_full():
        c, _ = graphs[rng.integers(len(graphs))]
        index = rng.integers(0, 256, args.nodes)
        scatter.setData(pos=c, brush=[brushes[i] for i in index])
        bare.autoRange()
        bare.grab()

    rows = [
        ("colour change", timed(canvas_colour, args.repeats), timed(bare_colour, args.repeats)),
        ("full redraw", timed(canvas_full, args.repeats), timed(bare_full, args.repeats)),
        ("paint only", timed(canvas.grab, args.repeats), timed(bare.grab, args.repeats)),
    ]
    print(f"{args.nodes:,} nodes, {args.edges:,} edges, {args.width}x{args.height} offscreen "
          f"(Qt platform {app.platformName()}), median of {args.repeats}")
    print(f"{'':>14} {'graph view ms':>14} {'bare scatter ms':>16} {'ratio':>6}  goal<=16ms")
    for name, ours, base in rows:
        goal = "" if name == "paint only" else ("met" if ours <= 0.016 else "MISSED")
        print(f"{name:>14} {1000 * ours:>14.1f} {1000 * base:>16.1f} {ours / base:>6.2f}  {goal}")
    canvas.close()
    bare.close()


if __name__ == "__main__":
    main()
