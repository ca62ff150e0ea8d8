"""The NTK spectrum panel (see the package docstring).

Controls: the label (a categorical annotation; an item's label or its last position's), the number of
items (a seeded choice, at most 256 by default), whether the label columns are centred. **Run** calls
``lstmviz.analysis.ntk_recording.kernel_spectrum`` on the worker channel "kernel" (progress, Cancel; the
result is cached with the recording's derived data). It needs the recording's checkpoint file.

Shows ``SpectrumView`` and, in the status line, the per-layer alignment and effective rank. Exports:
``export_view`` (PNG/SVG/PDF), ``export_table`` (the spectrum: one row per eigendirection, CSV/NPY) and
``export_layer_table`` (alignment and effective rank per layer).
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from lstmviz.errors import describe
from lstmviz.qt.kernel.views import SpectrumView
from lstmviz.qt.plain_text import literal
from lstmviz.qt.task_panel import TaskPanel, duration, labelled
from lstmviz.qt.widget_export import VIEW_FORMATS, ask_table_path, export_table, export_widget, with_suffix

CHANNEL = "kernel"
NO_RECORDING = "Open a recording to see the tangent-kernel spectrum of its model."
NO_LABELS = ("This recording has no categorical annotation of its items, so there is no label to align the "
             "kernel with.")


def spectrum_job(recording, annotation: str, items: int, center: bool, task):
    from lstmviz.analysis.ntk_recording import kernel_spectrum

    t0 = time.perf_counter()
    result = kernel_spectrum(recording, annotation, items=items, center_labels=center, task=task)
    return result, time.perf_counter() - t0, recording


class KernelPanel(TaskPanel):
    """Label, items, Run, the spectrum view (module docstring)."""

    #: a result is shown (a KernelSpectrum) or cleared (None)
    result_changed = QtCore.Signal(object)
    #: a run failed (the sentence)
    run_failed = QtCore.Signal(str)
    wants_dock = QtCore.Signal()

    SUPERSEDED = "The spectrum was superseded by another request; press Run again."

    def __init__(self, workspace, parent=None):
        super().__init__(workspace, parent)
        self.result = None
        self.status_label = QtWidgets.QLabel("")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label_combo = QtWidgets.QComboBox()
        self.label_combo.setToolTip("The categorical annotation whose one-hot labels the kernel is compared with "
                                    "(a position label is taken at each item's last position)")
        self.items_spin = QtWidgets.QSpinBox()
        self.items_spin.setRange(2, 4096)
        self.items_spin.setValue(256)
        self.items_spin.setToolTip("At most this many items (a seeded choice): the kernel is items × items")
        self.center_check = QtWidgets.QCheckBox("centre labels")
        self.center_check.setToolTip("Centre each class's indicator column before measuring its energy per "
                                     "eigendirection (removes the share carried by the constant direction)")
        self.run_button = QtWidgets.QPushButton("Run")
        self.run_button.setToolTip("Compute the tangent kernel of the recording's model on its items")
        self.run_button.clicked.connect(self.run)
        self.build_task_controls("Cancel NTK Spectrum", "Stop the running tangent-kernel computation")
        self.export_button = QtWidgets.QToolButton()
        self.export_button.setText("Export")
        self.export_button.setPopupMode(QtWidgets.QToolButton.ToolButtonPopupMode.InstantPopup)
        self.run_action = self.make_action("Compute NTK &Spectrum", self.run, None,
                                           "Tangent-kernel spectrum of the recording's model, with the label energy")
        self.export_view_action = self.make_action("Export NTK Spectrum &Figure…", self.choose_and_export_view, None,
                                                   "Save the spectrum view as PNG, SVG or PDF")
        self.export_data_action = self.make_action("Export NTK Spectrum &Table…", self.choose_and_export_data, None,
                                                   "Save the spectrum (one row per eigendirection) or the per-layer "
                                                   "alignment as CSV or NPY")
        self.fill_menu(self.export_button, (self.export_view_action, self.export_data_action))
        self.view = SpectrumView()
        row = QtWidgets.QHBoxLayout()
        row.setSpacing(10)
        row.addWidget(labelled("Label", self.label_combo))
        row.addWidget(labelled("Items", self.items_spin))
        row.addWidget(self.center_check)
        row.addStretch(1)
        for w in (self.run_button, self.progress, self.cancel_button, self.export_button):
            row.addWidget(w)
        self.build_page([row], self.view, NO_RECORDING)
        workspace.recording_changed.connect(self._recording_changed)
        self._recording_changed(workspace.recording)

    def menu_actions(self) -> list:
        return [self.run_action, self.cancel_action, None, self.export_view_action, self.export_data_action]

    # ------------------------------------------------------------------ recording
    def _recording_changed(self, recording=None) -> None:
        recording = self.workspace.recording
        self.abandon()
        self._show(None)
        self.label_combo.clear()
        if recording is None:
            self.stack.setCurrentIndex(0)
            self._update_enabled()
            return
        self.stack.setCurrentIndex(1)
        for name, info in recording.annotations.items():
            if info.kind == "categorical" and info.labels:
                level = "item" if info.level == "item" else "last position"
                self.label_combo.addItem(f"{name} ({level})", name)
                self.label_combo.setItemData(self.label_combo.count() - 1, literal(info.description or name),
                                             QtCore.Qt.ItemDataRole.ToolTipRole)
        items = [i for i in range(self.label_combo.count())
                 if recording.annotations[self.label_combo.itemData(i)].level == "item"]
        if items:
            self.label_combo.setCurrentIndex(items[0])  # an item's own label first
        if self.label_combo.count() == 0:
            self.set_status(NO_LABELS, problem=True)
        else:
            self.set_status("Pick a label and press Run (needs the recording's checkpoint file).")
        self._update_enabled()

    def _update_enabled(self) -> None:
        ok = self.workspace.recording is not None and self.label_combo.count() > 0
        self.run_button.setEnabled(ok)
        self.run_action.setEnabled(ok)
        self.export_view_action.setEnabled(self.result is not None)
        self.export_data_action.setEnabled(self.result is not None)

    # ------------------------------------------------------------------ running
    def run(self) -> bool:
        recording = self.workspace.recording
        annotation = self.label_combo.currentData()
        if recording is None or annotation is None:
            self.set_status(NO_RECORDING if recording is None else NO_LABELS, problem=True)
            return False
        items, center = int(self.items_spin.value()), self.center_check.isChecked()
        self._show(None, "Computing the tangent kernel…")

        def job(task, recording=recording):
            return spectrum_job(recording, annotation, items, center, task)

        self.submit(CHANNEL, job, on_finished=self._finished, what="compute the NTK spectrum",
                    title="Cannot compute the NTK spectrum", on_failed=self._failed, on_cancelled=self._cancelled)
        self.set_status(f"Tangent kernel of the model on at most {items} items, against {annotation}…")
        self.wants_dock.emit()
        return True

    def _finished(self, answer) -> None:
        result, seconds, recording = answer
        if recording is not self.workspace.recording:
            return
        self._show(result)
        how = "from the cache" if result.from_cache else f"in {duration(seconds)}"
        layers = "; ".join(f"{layer}: A {a:.3f}, rank {r:.1f}" for layer, a, r in
                           zip(result.layers, result.alignment, result.effective_rank))
        need = result.spectrum.directions_for(0.9)
        self.set_status(f"NTK on {result.items} items vs {result.annotation} {how} ({result.output}). Per layer — "
                        f"{layers}. 90% of each class's label energy lies on its top {int(need.min())}–"
                        f"{int(need.max())} eigendirections.")
        self.wants_dock.emit()

    def _failed(self, exc) -> None:
        self._show(None, "The tangent kernel could not be computed; see the status line.")
        self.run_failed.emit(describe(exc))

    def _cancelled(self) -> None:
        self._show(None, "Cancelled: no result.")
        self.set_status("Cancelled; no result was kept. Press Run to start again.")

    def _show(self, result, message: str = "") -> None:
        self.result = result
        self.view.set_result(result, message)
        self._update_enabled()
        self.result_changed.emit(result)

    # ------------------------------------------------------------------ export
    def _need_result(self):
        if self.result is None:
            raise ValueError("There is no spectrum to export yet: press Run first.")
        return self.result

    def export_view(self, path: str | Path) -> Path:
        self._need_result()
        if not self.view.isVisible():
            self.view.resize(QtCore.QSize(720, 420))
            self.view.ensurePolished()
        return export_widget(self.view, path)

    def export_table(self, path: str | Path) -> Path:
        return export_table(path, self._need_result().table())

    def export_layer_table(self, path: str | Path) -> Path:
        return export_table(path, self._need_result().layer_table())

    def choose_and_export_view(self) -> bool:
        path, chosen = QtWidgets.QFileDialog.getSaveFileName(self, "Export NTK spectrum",
                                                             self.default_path("ntk-spectrum.png"),
                                                             ";;".join(VIEW_FORMATS.values()))
        if not path:
            return False
        return self.export_guarded("Cannot export", lambda: self.export_view(with_suffix(path, chosen, VIEW_FORMATS)))

    def choose_and_export_data(self) -> bool:
        filters = {"Spectrum with label energy, CSV (*.csv)": ("spectrum", ".csv"),
                   "Spectrum with label energy, NumPy array (*.npy)": ("spectrum", ".npy"),
                   "Alignment per layer, CSV (*.csv)": ("layers", ".csv")}
        answer = ask_table_path(self, "Export NTK spectrum data", self.default_path("ntk-spectrum.csv"), filters)
        if answer is None:
            return False
        path, what = answer
        export = self.export_layer_table if what == "layers" else self.export_table
        return self.export_guarded("Cannot export", lambda: export(path))
