"""Image panel redraw: the heatmap of a 64 × 64 feature map of 512 channels over a 256 × 256 input,
offscreen.

A one-image recording (tap ``conv`` on an image axis of stride 4: 4,096 cells × 512 units, float32;
the input as the tap ``input``, 3 channels) opened in the main window; the Image panel
(``lstmviz.qt.image.panel.ImagePanel``) at its dock's size. Against a baseline in the same run: a bare
pyqtgraph ``PlotWidget`` with one ``ImageItem`` (row-major, the same lookup table and fixed levels) of
the same 64 × 64 size, as large on screen.

Timed, median of --repeats:

  redraw:        ``ImagePanel.redraw()``: the signed mean of k selected units recomputed from the item's
                 cached ``[cells, units]`` block, the fixed levels looked up, ``setImage``;
  bare setImage: the baseline's ``setImage`` of a new 64 × 64 array of the same values;
  ... + paint:   the same, then the view painted into an image (``QWidget.grab`` of the plot), which is
                 what the screen pays, offscreen.

k = 1, 16 and 512 (every channel) selected units, a different set each repeat (so the fixed colour
scale, the mean of the units' ranges from the tap's statistics, changes too; the statistics are computed
before timing starts). Goal: redraw + paint
<= 16 ms (one frame at 60 Hz). Measured numbers only.

    QT_QPA_PLATFORM=offscreen python benchmarks/image_view.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def timed(fn, repeats: int) -> float:
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def write(path: Path, side: int, channels: int, stride: int) -> None:
    from lstmviz.geometry import AxisGeometry, ImageGeometry
    from lstmviz.recording import RecordingWriter

    rng = np.random.default_rng(0)
    h = side * stride
    with RecordingWriter(path, vocab=["p"]) as writer:
        writer.set_geometry("positions", "image")
        writer.add_axis("conv", geometry=AxisGeometry(kind="image", stride=stride, receptive_field=2 * stride + 1,
                                                      offset=(stride - 1) / 2))
        writer.add_tap("input", 3)
        writer.add_tap("conv", channels, axis="conv")
        writer.append_item(np.zeros(h * h, np.int64),
                           {"input": rng.random((h * h, 3), dtype=np.float32),
                            "conv": rng.normal(size=(side * side, channels)).astype(np.float32)},
                           geometry={"positions": ImageGeometry(h, h), "conv": ImageGeometry(side, side)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()

    import pyqtgraph as pg
    from PySide6 import QtCore, QtWidgets

    from lstmviz.qt.image.canvas import overlay_lut
    from lstmviz.qt.main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "image.h5"
        write(path, args.side, args.channels, args.stride)
        win = MainWindow(settings=None)
        win.resize(1400, 900)
        win.show()
        assert win.open_file(path)
        win.show_panel("image")
        app.processEvents()
        panel = win.panels["image"]
        panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("unit"))
        panel.item_values()  # the block is read once, then cached
        deadline = time.monotonic() + 120
        while win.workspace.tap_stats.get("conv") is None and time.monotonic() < deadline:
            app.processEvents()  # the tap's statistics (a worker) give the fixed colour scale; timed without it
            time.sleep(0.01)
        plot = panel.canvas.plot
        app.processEvents()

        bare = pg.PlotWidget()
        bare.resize(plot.size())
        bare.show()
        item = pg.ImageItem(axisOrder="row-major")
        item.setLookupTable(overlay_lut())
        bare.addItem(item)
        block = panel.item_values()
        rng = np.random.default_rng(1)
        frames = [np.ascontiguousarray(block[:, u].reshape(args.side, args.side)) for u in range(8)]
        item.setImage(frames[0], levels=(-3.0, 3.0), autoLevels=False)
        item.setRect(QtCore.QRectF(0, 0, args.side * args.stride, args.side * args.stride))
        app.processEvents()

        def bare_set(i):
            item.setImage(frames[i % len(frames)], levels=(-3.0, 3.0), autoLevels=False)

        def bare_paint(i):
            bare_set(i)
            bare.grab()

        print(f"{args.side}x{args.side} cells x {args.channels} channels over a {args.side * args.stride}px input; "
              f"plot {plot.width()}x{plot.height()} px; median of {args.repeats}")
        t_bare = timed(bare_set, args.repeats)
        t_bare_paint = timed(bare_paint, args.repeats)
        print(f"  bare ImageItem setImage          {1000 * t_bare:7.2f} ms")
        print(f"  bare ImageItem setImage + paint  {1000 * t_bare_paint:7.2f} ms")
        panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("mean"))
        for k in (1, 16, args.channels):
            sets = [np.sort(rng.choice(args.channels, k, replace=False)) for _ in range(8)]

            def select(i, sets=sets):
                units = sets[i % len(sets)]
                panel.colour_units = lambda units=units: (units, np.ones(len(units), np.int64))

            def redraw(i):
                select(i)
                panel.redraw()

            def redraw_paint(i):
                redraw(i)
                plot.grab()

            t = timed(redraw, args.repeats)
            tp = timed(redraw_paint, args.repeats)
            print(f"  redraw, {k:4d} units               {1000 * t:7.2f} ms  ({t / t_bare:5.1f}x bare setImage)")
            print(f"  redraw + paint, {k:4d} units       {1000 * tp:7.2f} ms  ({tp / t_bare_paint:5.2f}x bare + paint)"
                  f"{'  <= 16 ms' if tp <= 0.016 else '  > 16 ms'}")
        win.close()
        bare.close()


if __name__ == "__main__":
    main()
