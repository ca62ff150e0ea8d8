"""Re-select + redraw time of the select view against the 60 fps frame budget (16.7 ms).

    python benchmarks/select_redraw.py                    # 1024 units x 200 positions, 1600 x 900 window
    python benchmarks/select_redraw.py --units 512 --width 400 --repeats 60

Builds a recording (random-walk states, some units planted on over a range), opens the real main
window offscreen (QT_QPA_PLATFORM=offscreen, software raster) with one pane showing ``--width``
positions of ``--units`` units (all units one curve item), brushes a range and then measures, as the
median of ``--repeats`` runs, the time from a request to the end of the painted frame:

* threshold moved (spin box / line drag): re-select (select_units, rank_candidates, active_counts),
  redraw the selected-units curve, token shading, threshold line, annotation mask, Selection dock;
* brush moved (a drag over the tokens): the same, for a new range;
* the same threshold move and scroll with the grey all-units curve drawn anew every frame (what
  ``CachedCurve`` saves, and what it costs when the data change);
* a full repaint of an unchanged view, and a scroll by one position (the grey curve rebuilt), for scale.

The selection computation alone is timed too. Each result is printed as milliseconds and as a share of
the 16.7 ms frame; nothing passes or fails on time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

FRAME_MS = 1000.0 / 60.0


def make_recording(path: Path, units: int, items: int, length: int) -> Path:
    from lstmviz.recording import RecordingWriter

    rng = np.random.default_rng(0)
    vocab = ["<pad>", "(", ")", "0", "1", "2", "3", "4"]
    with RecordingWriter(path, vocab=vocab, dtype="float16") as writer:
        writer.add_tap("layer0/c", units, layer=0, signal="c")
        writer.add_annotation("depth", kind="categorical", labels=["0", "1", "2", "3", "4"])
        for _ in range(items):
            walk = np.cumsum(rng.normal(0, 0.15, (length, units)), axis=0)
            states = np.tanh(walk).astype(np.float32)
            planted = rng.choice(units, 24, replace=False)
            states[50:56, planted] = 0.9
            states[49, planted] = -0.5
            writer.append_item(rng.integers(1, len(vocab), length), {"layer0/c": states},
                               annotations={"depth": rng.integers(0, 5, length)})
    return path


class PaintTimer:
    """Counts paint events of a widget (to make sure a frame was really drawn)."""

    def __init__(self, widget):
        from PySide6 import QtCore

        class Filter(QtCore.QObject):
            def __init__(self):
                super().__init__()
                self.paints = 0

            def eventFilter(self, obj, event):
                if event.type() == QtCore.QEvent.Type.Paint:
                    self.paints += 1
                return False

        self.filter = Filter()
        widget.installEventFilter(self.filter)

    @property
    def paints(self) -> int:
        return self.filter.paints


def timed(app, timer: PaintTimer, action, repeats: int) -> tuple[float, int]:
    """Median ms of ``action(i)`` followed by processing events until the frame is painted."""
    times = []
    missed = 0
    for i in range(repeats):
        before = timer.paints
        t0 = time.perf_counter()
        action(i)
        app.processEvents()
        times.append((time.perf_counter() - t0) * 1000)
        missed += timer.paints == before
    return statistics.median(times), missed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--units", type=int, default=1024)
    p.add_argument("--width", type=int, default=200, help="positions shown")
    p.add_argument("--repeats", type=int, default=40)
    p.add_argument("--size", default="1600x900", help="window size in pixels")
    args = p.parse_args(argv)

    from PySide6 import QtWidgets

    from lstmviz.analysis.selection import active_counts, rank_candidates, select_units
    from lstmviz.qt.main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        path = make_recording(Path(tmp) / "bench.h5", args.units, items=4, length=max(400, args.width + 100))
        window = MainWindow(settings=None)
        window.resize(*(int(v) for v in args.size.split("x")))
        window.show()
        assert window.open_file(path)
        ws = window.workspace
        ws.set_window_width(args.width)
        pane = ws.active_pane
        pane.set_brush(50, 56)
        for _ in range(5):
            app.processEvents()
        viewport = window.state_plot.viewport()
        timer = PaintTimer(viewport)
        n_selected = len(pane.selection)

        thresholds = [0.32, 0.30]  # each run changes the threshold (it starts at 0.30)
        brushes = [(51, 56), (50, 56)]  # each run moves the brush (it starts at 50-55)
        results = {}
        results["threshold moved"] = timed(app, timer, lambda i: pane.set_threshold(thresholds[i % 2]), args.repeats)
        results["brush moved"] = timed(app, timer, lambda i: pane.set_brush(*brushes[i % 2]), args.repeats)

        def repaint(_):
            viewport.repaint()

        results["full repaint, nothing changed"] = timed(app, timer, repaint, args.repeats)
        results["scroll by one position"] = timed(app, timer, lambda i: ws.scroll_by(1 if i % 2 == 0 else -1),
                                                  args.repeats)
        curve = window.state_plot.pane_plots[0].curve
        curve.cache_enabled = False
        results["threshold moved, grey curve not cached"] = timed(
            app, timer, lambda i: pane.set_threshold(thresholds[i % 2]), args.repeats)
        results["scroll by one position, not cached"] = timed(
            app, timer, lambda i: ws.scroll_by(1 if i % 2 == 0 else -1), args.repeats)
        curve.cache_enabled = True

        # the selection computation alone (what the pane runs on every change)
        block = pane._transformed(49, 56)
        spec = pane.spec()
        values = pane.values()
        t = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            sel = select_units(block, 49, spec)
            rank_candidates(block, 49, spec)
            active_counts(values, sel.units, sel.signs, spec.threshold)
            t.append((time.perf_counter() - t0) * 1000)
        compute_ms = statistics.median(t)

        print(f"select view: {args.units} units x {args.width} positions in one curve item, window {args.size}, "
              f"{n_selected} units selected; median of {args.repeats}; frame budget {FRAME_MS:.1f} ms (60 fps)")
        print(f"  {'selection compute only (select + rank + counts)':48s} {compute_ms:7.2f} ms  "
              f"{compute_ms / FRAME_MS:5.2f} frames")
        for name, (ms, missed) in results.items():
            note = "" if not missed else f"  ({missed} runs painted nothing)"
            print(f"  {name:48s} {ms:7.2f} ms  {ms / FRAME_MS:5.2f} frames{note}")
        cached, uncached = results["threshold moved"][0], results["threshold moved, grey curve not cached"][0]
        print(f"  keeping the grey curve's pixels makes a threshold move {uncached / cached:.1f}x faster")
        window.close()
        window.workspace.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
