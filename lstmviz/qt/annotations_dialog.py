"""View > Annotations…: which per-position annotations are shown as tracks, and in which order.

A checkable list of every per-position annotation of the recording (visible ones first, in their
order); drag rows to reorder. Accepting sets ``Workspace.visible_annotations``.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from lstmviz.qt.plain_text import literal
from lstmviz.qt.workspace import Workspace


class AnnotationsDialog(QtWidgets.QDialog):
    """Choose the visible annotation tracks of a workspace."""

    def __init__(self, workspace: Workspace, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.workspace = workspace
        self.setWindowTitle("Annotation tracks")
        self.list = QtWidgets.QListWidget()
        self.list.setDragDropMode(QtWidgets.QAbstractItemView.DragDropMode.InternalMove)
        infos = {info.name: info for info in workspace.position_annotations()}
        order = list(workspace.visible_annotations) + [n for n in infos if n not in workspace.visible_annotations]
        for name in order:
            info = infos[name]
            item = QtWidgets.QListWidgetItem(f"{name}  ({info.kind})")
            item.setData(QtCore.Qt.ItemDataRole.UserRole, name)
            item.setToolTip(literal(info.description))
            item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
            visible = name in workspace.visible_annotations
            item.setCheckState(QtCore.Qt.CheckState.Checked if visible else QtCore.Qt.CheckState.Unchecked)
            self.list.addItem(item)
        buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok | QtWidgets.QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        hint = QtWidgets.QLabel("Tick the annotations to show under the tokens; drag to reorder them.")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        layout.addWidget(self.list)
        layout.addWidget(buttons)
        if not infos:
            hint.setText("This recording has no per-position annotations.")

    def chosen(self) -> list[str]:
        """The ticked annotations, in list order."""
        items = (self.list.item(i) for i in range(self.list.count()))
        return [item.data(QtCore.Qt.ItemDataRole.UserRole) for item in items
                if item.checkState() == QtCore.Qt.CheckState.Checked]

    def set_checked(self, names) -> None:
        names = set(names)
        for i in range(self.list.count()):
            item = self.list.item(i)
            checked = item.data(QtCore.Qt.ItemDataRole.UserRole) in names
            item.setCheckState(QtCore.Qt.CheckState.Checked if checked else QtCore.Qt.CheckState.Unchecked)

    def accept(self) -> None:
        self.workspace.set_visible_annotations(self.chosen())
        super().accept()
