"""The main window's file actions on workspaces and exports (File menu): save / open a workspace,
export the select view as a figure, export the active pane's selection as a table.

``FileActions`` is mixed into ``MainWindow`` (it uses its ``workspace``, ``recent_files`` and status
bar). Every failure is stated in a dialog and returns False; nothing is half-written.
"""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtWidgets

from lstmviz.errors import describe, expected_errors
from lstmviz.qt.errors import show_error
from lstmviz.qt.export import FORMATS, export_graphics
from lstmviz.qt.selection_export import FILTERS as TABLE_FILTERS
from lstmviz.qt.selection_export import export_selection, pane_to_export
from lstmviz.workspace.file import load_workspace, save_workspace

WORKSPACE_FILTER = "lstmviz workspaces (*.lstmviz.json *.json);;All files (*)"


class FileActions:
    """Workspace files and exports of a main window."""

    def open_workspace(self, path: str | Path, recording: str | Path | None = None) -> bool:
        """Open a saved workspace (on ``recording`` instead of the file it names, if given).

        A file that cannot be read or a recording that cannot be opened is reported in a dialog and
        changes nothing; parts that do not fit the recording are left out and listed in a dialog. A panel
        that shows again what the workspace showed (the Probes panel runs its probes again on its
        worker) has its dock brought to the front.
        """
        try:
            state = load_workspace(path)
            problems = self.workspace.restore(state, recording)
        except expected_errors() as exc:
            show_error(self, "Cannot open workspace",
                       f"lstmviz could not open the workspace “{Path(path).name}”.\n\n{describe(exc)}")
            return False
        self.recent_files.add(self.workspace.recording.path)
        for name, panel in self.panels.items():  # e.g. the probes that were shown, running again
            in_front = getattr(panel, "in_front", None)
            if in_front is not None and in_front():
                self.show_panel(name)
        if problems:
            show_error(self, "Parts of the workspace were left out",
                       "The workspace does not fully fit this recording:\n\n" + "\n".join(f"• {p}" for p in problems))
        self.statusBar().showMessage(f"Opened the workspace {path}", 6000)
        return True

    def save_workspace(self, path: str | Path) -> bool:
        """Save the workspace (recording, panes, window, match and probe settings) to ``path``; failures
        in a dialog."""
        try:
            written = save_workspace(path, self.workspace.state())
        except expected_errors() as exc:
            show_error(self, "Cannot save workspace", describe(exc))
            return False
        self.statusBar().showMessage(f"Saved the workspace to {written}", 6000)
        return True

    def choose_and_open_workspace(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open workspace", "", WORKSPACE_FILTER)
        if path:
            self.open_workspace(path)

    def choose_and_save_workspace(self) -> None:
        ws = self.workspace
        if ws.recording is None:
            return
        default = Path(ws.recording.path).with_suffix(".lstmviz.json")
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save workspace", str(default), WORKSPACE_FILTER)
        if path:
            self.save_workspace(path)

    def export_plot(self, path: str | Path) -> bool:
        """Export the select view (every pane, tokens and tracks) to PNG, SVG or PDF; failures in a dialog."""
        try:
            written = export_graphics(self.state_plot.export_item(), path)
        except expected_errors() as exc:
            show_error(self, "Cannot export", describe(exc))
            return False
        self.statusBar().showMessage(f"Exported the plot to {written}", 6000)
        return True

    def export_selection_data(self, path: str | Path) -> bool:
        """Save a pane's selected units (and candidate ranking beside them) as CSV or NPY: the active
        pane's, else the one pane that has a selection (``selection_export.pane_to_export``)."""
        ws = self.workspace
        try:
            index = pane_to_export(ws.panes, ws.active_index)
            written = export_selection(ws.panes[index], path)
        except expected_errors() as exc:
            show_error(self, "Cannot export the selection", describe(exc))
            return False
        self.statusBar().showMessage(f"Saved Pane {index + 1}'s selection to "
                                     + " and ".join(str(p) for p in written), 6000)
        return True

    def choose_and_export_data(self) -> None:
        ws = self.workspace
        if ws.recording is None:
            return
        try:
            tap = ws.panes[pane_to_export(ws.panes, ws.active_index)].tap
        except ValueError as exc:
            show_error(self, "Cannot export the selection", describe(exc))
            return
        default = Path(ws.recording.path).with_name(
            f"{Path(ws.recording.path).stem}-{tap.replace('/', '-')}-selection.csv"
        )
        path, chosen = QtWidgets.QFileDialog.getSaveFileName(self, "Export selection data", str(default),
                                                             ";;".join(TABLE_FILTERS.values()))
        if not path:
            return
        if Path(path).suffix.lower() not in TABLE_FILTERS:
            path += next((s for s, f in TABLE_FILTERS.items() if f == chosen), ".csv")
        self.export_selection_data(path)

    def choose_and_export(self) -> None:
        ws = self.workspace
        if ws.recording is None:
            return
        default = Path(ws.recording.path).with_name(
            f"{Path(ws.recording.path).stem}-{(ws.tap or 'plot').replace('/', '-')}-{ws.window_start}.png"
        )
        path, chosen = QtWidgets.QFileDialog.getSaveFileName(self, "Export plot", str(default), ";;".join(FORMATS.values()))
        if not path:
            return
        if Path(path).suffix.lower() not in FORMATS:
            suffix = next((s for s, f in FORMATS.items() if f == chosen), ".png")
            path += suffix
        self.export_plot(path)
