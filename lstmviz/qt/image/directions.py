"""The Image panel's "random direction" for the top images (Szegedy et al.: units against random directions).

A row beside "Find top images": a tap (the feature map the panel shows, or a tap with one row per image)
and a "Random direction" button. Each click draws a new direction, uniform on the unit sphere of the tap's
units (``image_directions.random_directions`` with the next seed, so a session's directions are
reproducible: seed 1, 2, ...), ranks every image of the recording by its projection on it
(``image_directions.top_along``, max or mean over cells as the panel's "Rank by" says) in the panel's worker,
and shows the top images in the panel's top-images grid: on a feature map each thumbnail has the
projection's heatmap over it (one scale for the shown images) and its peak cell's receptive field outlined;
on a one-row-per-image tap, just the images. A thumbnail's click goes to that image as for the unit ranking.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtWidgets

from lstmviz.qt.image import data
from lstmviz.qt.task_panel import duration, labelled

SHOWN = None  # the combo's data for "the feature map the panel shows"


class RandomDirectionBox(QtWidgets.QWidget):
    """Draw a random direction of a tap and show the images along it in ``panel``'s top-images grid.

    ``ready(DirectionTop)`` when the grid shows a direction's images.
    """

    ready = QtCore.Signal(object)

    def __init__(self, panel, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.panel = panel
        self.seed = 0
        self.result = None
        self.tap_combo = QtWidgets.QComboBox()
        self.tap_combo.setToolTip("The layer whose random direction ranks the images: the feature map shown "
                                  "above, or a tap with one row per image")
        self.button = QtWidgets.QPushButton("Random direction")
        self.button.setToolTip("Draw a new random unit-length direction in the tap's units and show the images "
                               "whose states project most on it (Szegedy et al.: compare with a unit's top images)")
        self.button.clicked.connect(self.draw)
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(labelled("Direction in", self.tap_combo))
        row.addWidget(self.button)
        panel.workspace.recording_changed.connect(self.refresh)
        self.refresh()

    def refresh(self, *_) -> None:
        """The taps of the panel's recording (a new recording starts the seeds again)."""
        recording = self.panel.workspace.recording
        self.seed = 0
        self.result = None
        self.tap_combo.clear()
        self.tap_combo.addItem("the map shown", SHOWN)
        if recording is not None and data.has_images(recording):
            for tap in data.scalar_taps(recording):
                self.tap_combo.addItem(tap, tap)

    def tap(self) -> str | None:
        chosen = self.tap_combo.currentData()
        return self.panel.tap_name if chosen is SHOWN else chosen

    def draw(self) -> bool:
        """Draw the next direction and rank the images along it (a worker); False, with a sentence, if
        there is nothing to rank."""
        panel = self.panel
        recording = panel.workspace.recording
        tap = self.tap()
        if recording is None or not panel.has_images or tap is None:
            panel.set_status("Open a recording of an image model to rank its images along a random direction.",
                             problem=True)
            return False
        self.seed += 1
        seed = self.seed
        reduce, limit, lut = panel.reduce_combo.currentData() or "max", panel.top_spin.value(), panel._lut
        units = int(recording.taps[tap].units)
        on_map = data.axis_kind(recording, recording.taps[tap].axis) == "image"

        def job(task):
            import time

            from lstmviz.analysis.image_directions import cell_projections, random_directions, top_along

            t0 = time.perf_counter()
            direction = random_directions(units, 1, seed)[0]
            top = top_along(recording, tap, direction, limit=limit, reduce=reduce, task=task,
                            label=f"random direction {seed} of {tap}")
            seconds = time.perf_counter() - t0
            maps = []
            if on_map:
                axis = recording.taps[tap].axis
                geometry = recording.axis_geometry(axis)
                for item in top.items:
                    task.check()
                    size = recording.item_geometry(int(item), axis)
                    a, b = recording.item_range(int(item), axis)
                    proj = cell_projections(recording.states(tap, a, b), direction[None])[:, 0]
                    maps.append((size, proj.reshape(size.height, size.width)))
            finite = np.concatenate([m[np.isfinite(m)] for _, m in maps]) if maps else np.zeros(0)
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            entries = []
            for rank, (item, score, cell) in enumerate(zip(top.items, top.scores, top.cells)):
                task.check()
                image, _ = data.input_image(recording, int(item))
                caption = f"#{rank + 1} image {int(item)}: {score:.3g}"
                if on_map:
                    size, heat = maps[rank]
                    box = data.receptive_box(geometry, int(cell), size) if cell >= 0 else None
                    t = (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat)
                    entries.append((image, box, caption, (t, data.cell_rect(geometry, size), lut)))
                else:
                    entries.append((image, None, caption))
            return top, entries, seconds

        panel.submit("image-top", job, on_finished=lambda result: self._shown(recording, on_map, result),
                     what="rank the images along a random direction", title="Cannot rank along a random direction",
                     stage="random direction",
                     on_cancelled=lambda: panel.set_status("Random-direction ranking cancelled."))
        panel.tabs.setCurrentIndex(0)
        panel.set_status(f"Ranking every image along random direction {seed} of {tap}…")
        return True

    def _shown(self, recording, on_map: bool, result) -> None:
        top, entries, seconds = result
        panel = self.panel
        if recording is not panel.workspace.recording:
            return
        self.result = top
        # the panel's thumbnail clicks go to top.items[i] and mark top.cells[i] on the shown map; a
        # one-row-per-image tap has no cell there to mark
        panel.top = top if on_map else type(top)(**{**top.__dict__, "cells": np.full(len(top), -1, np.int64)})
        panel.top_grid.set_thumbnails(entries)
        where = "max over cells" if top.reduce == "max" else "mean over cells"
        panel.set_status(f"The {len(top)} images whose {top.tap} states project most on {top.label} "
                         f"({len(top.direction)} units, unit length{', ' + where if on_map else ''}), of "
                         f"{recording.n_items} in {duration(seconds)}. Draw again for a new direction; compare "
                         "with a unit's top images (one unit, Find top images).")
        self.ready.emit(top)
