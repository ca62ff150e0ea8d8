"""The Match panel's significance row: B-tests (``lstmviz.analysis.btest_groups``) run on a worker.

- The **badge** tests the current matches against the background (the rows outside every match, one
  vector per item, disjoint items: ``match_groups``) on the matched tap, restricted to the selected
  units: "B-test vs background: p = … (n items, B = …)". It is refreshed whenever the matches change
  and cleared with them.
- **Test classes…** opens a small dialog (a categorical annotation and two of its labels, selected units
  or all units) and tests the two classes on the source pane's tap (``annotation_groups``); the answer
  is shown beside the badge.

Both run on the runner's channel "btest" (a newer test supersedes an older one; Cancel stops it).
Expected problems (too few items, position classes on a tap of another axis) are said in the row, not
as errors. ``badge_changed`` / ``classes_changed`` carry the ``GroupComparison`` (or None) shown.
"""

from __future__ import annotations

import math

from PySide6 import QtCore, QtWidgets

from lstmviz.errors import describe
from lstmviz.qt.errors import report_exception
from lstmviz.qt.plain_text import escape

CHANNEL = "btest"
BADGE_IDLE = "B-test vs background: match first."


def _match_job(recording, tap, results, units, task):
    from lstmviz.analysis.btest_groups import compare_groups, match_groups

    groups = match_groups(recording, results, recording.taps[tap].axis)
    return compare_groups(recording, [tap], groups, units=units, task=task)


def _classes_job(recording, tap, annotation, label_a, label_b, units, task):
    from lstmviz.analysis.btest_groups import annotation_groups, compare_groups

    groups = annotation_groups(recording, annotation, label_a, label_b)
    return compare_groups(recording, [tap], groups, units=units, task=task)


#: smaller p-values are shown as "p < 1e-6" (the normal approximation over a few blocks cannot back
#: more digits; the tooltip has the computed value)
P_FLOOR = 1e-6


def _p_text(p: float) -> str:
    if not math.isfinite(p):
        return "p n/a (one block)"
    if p < P_FLOOR:
        return f"p < {P_FLOOR:g}"
    return f"p = {p:.2g}" if p < 0.01 else f"p = {p:.3f}"


def summary(comparison, what: str) -> tuple[str, str]:
    """The one-line text and the tooltip of a comparison of one tap."""
    t = comparison.tests[0]
    r = t.result
    verdict = "differ" if r.reject else "no difference"
    text = (f"{what}: {_p_text(r.p_value)} ({r.n} items a side, B = {r.block_size}) — {verdict} "
            f"at α = {r.alpha:g}")
    units = comparison.units
    units_text = "all units" if units is None else (
        f"units {', '.join(map(str, units[:12]))}" + (f", … ({len(units)})" if len(units) > 12 else ""))
    tip = (f"{comparison.groups.description}\n"
           f"tap {t.tap}, {units_text}; one {'random row' if comparison.per_item == 'sample' else 'mean'} "
           f"per item, each item on one side only\n"
           f"items: {comparison.groups.name_a} {t.items_a}, {comparison.groups.name_b} {t.items_b}; "
           f"paired n = {r.n} in {r.n_blocks} blocks of {r.block_size}\n"
           f"statistic η̂ = {r.statistic:.4g} (mean block MMD²), std. error {r.std_error:.3g}, "
           f"p = {r.p_value:.3g} (one-sided, normal approximation), "
           f"kernel width σ = {r.bandwidth:.3g} (median heuristic)")
    if r.n_blocks < 10:
        tip += f"\nonly {r.n_blocks} blocks: the normal approximation of p is rough"
    return text, tip


class ClassesDialog(QtWidgets.QDialog):
    """Choose a categorical annotation, two of its labels and the units to test."""

    def __init__(self, recording, tap: str, n_selected: int, parent=None):
        super().__init__(parent)
        self.setWindowTitle("B-test: two annotation classes")
        self.recording = recording
        self.annotation_combo = QtWidgets.QComboBox()
        for name, info in recording.annotations.items():
            if info.kind == "categorical" and info.labels and len(info.labels) >= 2:
                self.annotation_combo.addItem(f"{name} (per {info.level})", name)
        self.a_combo = QtWidgets.QComboBox()
        self.b_combo = QtWidgets.QComboBox()
        self.selected_check = QtWidgets.QCheckBox(f"selected units only ({n_selected})")
        self.selected_check.setChecked(n_selected > 0)
        self.selected_check.setEnabled(n_selected > 0)
        self.annotation_combo.currentIndexChanged.connect(self._annotation_changed)
        form = QtWidgets.QFormLayout(self)
        form.addRow(QtWidgets.QLabel(f"Tap <b>{escape(tap)}</b>: do the states of two classes differ in distribution?"))
        form.addRow("Annotation", self.annotation_combo)
        form.addRow("Class A", self.a_combo)
        form.addRow("Class B", self.b_combo)
        form.addRow("", self.selected_check)
        self.buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok).setText("Test")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form.addRow(self.buttons)
        self._annotation_changed()

    def _annotation_changed(self, *_) -> None:
        name = self.annotation_combo.currentData()
        labels = [] if name is None else list(self.recording.annotations[name].labels)
        for combo, pick in ((self.a_combo, 0), (self.b_combo, 1)):
            combo.clear()
            combo.addItems(labels)
            combo.setCurrentIndex(min(pick, len(labels) - 1))
        ok = self.buttons if hasattr(self, "buttons") else None
        if ok is not None:
            ok.button(QtWidgets.QDialogButtonBox.StandardButton.Ok).setEnabled(len(labels) >= 2)

    def choice(self) -> tuple[str, str, str, bool]:
        return (self.annotation_combo.currentData(), self.a_combo.currentText(), self.b_combo.currentText(),
                self.selected_check.isChecked())


class BTestRow(QtWidgets.QWidget):
    """The badge, the classes result, Test classes… and Cancel (see the module docstring)."""

    #: the matches-vs-background comparison now shown (GroupComparison), or None (cleared / failed)
    badge_changed = QtCore.Signal(object)
    #: the two-classes comparison now shown, or None
    classes_changed = QtCore.Signal(object)

    def __init__(self, runner, notify, parent=None):
        super().__init__(parent)
        self.runner = runner
        self.notify = notify
        self.comparison = None
        self.classes_comparison = None
        self._request = None
        self._kind = None  # "badge" | "classes": what the running request answers
        self.dialog: ClassesDialog | None = None
        #: a callable giving (recording, tap, selected units or None) for Test classes…, or None when
        #: there is nothing to test; set by the panel
        self.source = lambda: None

        self.badge = QtWidgets.QLabel(BADGE_IDLE)
        self.badge.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.badge.setStyleSheet("color: #444")
        self.classes_label = QtWidgets.QLabel("")
        self.classes_label.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.classes_label.setStyleSheet("color: #444")
        self.classes_button = QtWidgets.QPushButton("Test classes…")
        self.classes_button.setToolTip("B-test between two classes of a categorical annotation on the pane's tap")
        self.classes_button.clicked.connect(self.open_classes_dialog)
        self.cancel_button = QtWidgets.QPushButton("Cancel test")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(10)
        # fixed shares of the row, so that a new text never waits for a relayout to be seen whole
        for label in (self.badge, self.classes_label):
            label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        layout.addWidget(self.badge, 1)
        layout.addWidget(self.classes_label, 1)
        layout.addWidget(self.cancel_button)
        layout.addWidget(self.classes_button)

    # ------------------------------------------------------------------ requests
    @property
    def busy(self) -> bool:
        return self._request is not None

    def _submit(self, kind: str, job) -> None:
        self.cancel()
        request = self.runner.submit(CHANNEL, job)
        self._request, self._kind = request, kind
        request.finished.connect(self._finished)
        request.failed.connect(self._failed)
        request.cancelled.connect(self._cancelled)
        request.superseded.connect(self._superseded)
        self.cancel_button.setVisible(True)

    def _answer(self) -> str | None:
        if self._request is None or self.sender() is not self._request:
            return None
        kind, self._request, self._kind = self._kind, None, None
        self.cancel_button.setVisible(False)
        return kind

    def _label(self, kind: str) -> QtWidgets.QLabel:
        return self.badge if kind == "badge" else self.classes_label

    def _finished(self, comparison) -> None:
        kind = self._answer()
        if kind is None:
            return
        if kind == "badge":
            text, tip = summary(comparison, "B-test vs background")
            self.comparison = comparison
            self.badge.setText(text)
            self.badge.setToolTip(tip)
            self.badge_changed.emit(comparison)
        else:
            g = comparison.groups
            text, tip = summary(comparison, f"{g.name_a} vs {g.name_b.split('=', 1)[-1]}")
            self.classes_comparison = comparison
            self.classes_label.setText(text)
            self.classes_label.setToolTip(tip)
            self.classes_changed.emit(comparison)

    def _failed(self, exc) -> None:
        kind = self._answer()
        if kind is None:
            return
        label = self._label(kind)
        what = "B-test vs background" if kind == "badge" else "B-test of the classes"
        if isinstance(exc, ValueError):  # too few items, groups on another axis: said in the row
            label.setText(f"{what}: {describe(exc)}")
        else:
            label.setText(f"{what} failed: {describe(exc)}")
            report_exception(exc, "Cannot run the B-test", self.notify)
        label.setToolTip(label.text())
        self._emit_none(kind)

    def _cancelled(self) -> None:
        kind = self._answer()
        if kind is not None:
            self._label(kind).setText("B-test cancelled.")
            self._emit_none(kind)

    def _superseded(self) -> None:
        kind = self._answer()
        if kind is not None:
            self._label(kind).setText("B-test superseded by another request.")
            self._emit_none(kind)

    def _emit_none(self, kind: str) -> None:
        if kind == "badge":
            self.comparison = None
            self.badge_changed.emit(None)
        else:
            self.classes_comparison = None
            self.classes_changed.emit(None)

    def cancel(self) -> None:
        """Stop the running test (it answers "cancelled")."""
        if self._request is not None:
            self._request.cancel()

    # ------------------------------------------------------------------ what the panel asks
    def test_matches(self, recording, tap: str, results, units) -> None:
        """Refresh the badge for ``results`` (matches on ``tap``) restricted to ``units``."""
        if results is None or len(results) == 0:
            self.clear_badge("B-test vs background: no matches." if results is not None else BADGE_IDLE)
            return
        units = None if units is None else [int(u) for u in units]
        self.badge.setText(f"B-test vs background: testing {len(results):,} matches…")
        self.badge.setToolTip("")

        def job(task, recording=recording, tap=tap, results=results, units=units):
            return _match_job(recording, tap, results, units, task)

        self._submit("badge", job)

    def clear_badge(self, text: str = BADGE_IDLE) -> None:
        if self._kind == "badge":
            request, self._request, self._kind = self._request, None, None
            request.cancel()
            self.cancel_button.setVisible(False)
        self.badge.setText(text)
        self.badge.setToolTip("")
        if self.comparison is not None:
            self.comparison = None
            self.badge_changed.emit(None)

    def test_classes(self, recording, tap: str, annotation: str, label_a: str, label_b: str, units) -> None:
        units = None if units is None else [int(u) for u in units]
        self.classes_label.setText(f"B-test of {annotation} {label_a} vs {label_b} on {tap}…")

        def job(task):
            return _classes_job(recording, tap, annotation, label_a, label_b, units, task)

        self._submit("classes", job)

    def open_classes_dialog(self) -> ClassesDialog | None:
        """Open the dialog (non-blocking); its Test runs ``test_classes`` on ``source``."""
        source = self.source()
        if source is None:
            self.classes_label.setText("Open a recording and a pane to test classes.")
            return None
        recording, tap, units = source
        dialog = ClassesDialog(recording, tap, 0 if units is None else len(units), self)
        if dialog.annotation_combo.count() == 0:
            self.classes_label.setText("The recording has no categorical annotation with two labels.")
            dialog.deleteLater()
            return None

        def accepted():
            name, a, b, selected = dialog.choice()
            if a == b:
                self.classes_label.setText("Choose two different classes.")
                return
            self.test_classes(recording, tap, name, a, b, units if selected else None)

        dialog.accepted.connect(accepted)
        dialog.finished.connect(dialog.deleteLater)
        self.dialog = dialog
        dialog.open()
        return dialog

    def reset(self) -> None:
        """Another recording: stop any test and clear both results."""
        self.clear_badge()
        if self._request is not None:
            request, self._request, self._kind = self._request, None, None
            request.cancel()
            self.cancel_button.setVisible(False)
        self.classes_label.setText("")
        self.classes_label.setToolTip("")
        if self.classes_comparison is not None:
            self.classes_comparison = None
            self.classes_changed.emit(None)

    def shutdown(self) -> None:
        self.cancel()
