"""The main window: menus, the navigation toolbar, the select view, the docks and the status bar.

It owns the workspace and wires the views to it; it opens recordings (command line, File > Open,
Open Recent, drag-and-drop) and workspaces (File > Open Workspace), and reports a file that cannot be
opened in a dialog while the previous recording stays open. Docks: Selection (the active pane's
selected units and candidates), Recording (what the file is), Find (token search, Ctrl+F), Match and
Probes (linear probes per tap, Analysis > Run Probes, Ctrl+Shift+P), the last two tabbed at the bottom
and closed until they have something to show (a match, a probe run).
"""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.analysis import unit_spec
from lstmviz.qt.annotations_dialog import AnnotationsDialog
from lstmviz.errors import describe, expected_errors
from lstmviz.qt.errors import show_error
from lstmviz.qt.file_actions import FileActions
from lstmviz.qt.find_panel import FindPanel
from lstmviz.qt.info_panel import InfoPanel
from lstmviz.qt.match_panel import MatchPanel
from lstmviz.qt.navigation import NavigationBar
from lstmviz.qt.pane_model import TRANSFORM_NAMES
from lstmviz.qt.plain_text import literal
from lstmviz.qt.position_scroller import PositionScroller
from lstmviz.qt.probe_panel import ProbePanel
from lstmviz.qt.recent_files import RecentFiles
from lstmviz.qt.selection_panel import SelectionPanel
from lstmviz.qt.state_plot import StatePlot
from lstmviz.qt.status_bar import StatusBar
from lstmviz.qt.workspace import TRANSFORMS, Workspace

#: the share of the window's height a Match or Probes dock takes when it opens (at least BOTTOM_DOCK_MIN px)
BOTTOM_DOCK_SHARE = 0.45
BOTTOM_DOCK_MIN = 300
RECORDING_FILTER = "lstmviz recordings (*.h5 *.hdf5);;All files (*)"
EMPTY_MESSAGE = (
    "<h2 style='color:#444'>No recording open</h2>"
    "<p style='color:#666'>Open a recording with <b>File &gt; Open…</b> (Ctrl+O),<br>"
    "or drop an <tt>.h5</tt> file onto this window.</p>"
    "<p style='color:#888'>Make one with <tt>lstmviz record ENGINE --dataset NAME --out FILE.h5</tt>.</p>"
)


class MainWindow(FileActions, QtWidgets.QMainWindow):
    """The lstmviz main window over one workspace."""

    def __init__(
        self,
        workspace: Workspace | None = None,
        settings: QtCore.QSettings | None = None,
        parent: QtWidgets.QWidget | None = None,
    ):
        super().__init__(parent)
        self.workspace = workspace if workspace is not None else Workspace(parent=self)
        self.recent_files = RecentFiles(settings)
        self.setWindowTitle("lstmviz")
        self.setAcceptDrops(True)
        self.resize(1400, 850)

        ws = self.workspace
        self.state_plot = StatePlot(ws)
        self.scroller = PositionScroller(ws)
        self.empty_label = QtWidgets.QLabel(EMPTY_MESSAGE)
        self.empty_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        plot_page = QtWidgets.QWidget()
        plot_layout = QtWidgets.QVBoxLayout(plot_page)
        plot_layout.setContentsMargins(0, 0, 0, 0)
        plot_layout.setSpacing(0)
        plot_layout.addWidget(self.state_plot, 1)
        plot_layout.addWidget(self.scroller)
        self.pages = QtWidgets.QStackedWidget()
        self.pages.addWidget(self.empty_label)
        self.pages.addWidget(plot_page)
        self.setCentralWidget(self.pages)

        self.navigation = NavigationBar(ws)
        toolbar = QtWidgets.QToolBar("Navigation", self)
        toolbar.setObjectName("navigation")
        toolbar.setMovable(False)
        toolbar.addWidget(self.navigation)
        self.addToolBar(QtCore.Qt.ToolBarArea.TopToolBarArea, toolbar)

        self.selection_panel = SelectionPanel(ws)
        self.selection_dock = self._dock("Selection", "selection", self.selection_panel,
                                         QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        self.info_panel = InfoPanel(ws)
        self.info_dock = self._dock("Recording", "info", self.info_panel, QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.selection_dock, self.info_dock)
        self.selection_dock.raise_()
        self.resizeDocks([self.selection_dock], [330], QtCore.Qt.Orientation.Horizontal)
        self.find_panel = FindPanel(ws)
        self.find_dock = self._dock("Find", "find", self.find_panel, QtCore.Qt.DockWidgetArea.BottomDockWidgetArea)
        self.find_dock.hide()
        self.match_panel = MatchPanel(ws)
        # the panel's control row is wide; scrolling it keeps a narrow window possible
        match_scroller = QtWidgets.QScrollArea()
        match_scroller.setWidgetResizable(True)
        match_scroller.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        match_scroller.setWidget(self.match_panel)
        self.match_dock = self._dock("Match", "match", match_scroller, QtCore.Qt.DockWidgetArea.BottomDockWidgetArea)
        self.probe_panel = ProbePanel(ws)
        probe_scroller = QtWidgets.QScrollArea()
        probe_scroller.setWidgetResizable(True)
        probe_scroller.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        probe_scroller.setWidget(self.probe_panel)
        self.probe_dock = self._dock("Probes", "probes", probe_scroller, QtCore.Qt.DockWidgetArea.BottomDockWidgetArea)
        # Match and Probes open when they have something to show (a match or a probe run), not empty; they
        # are tabbed together when both are open (``_open_bottom_dock``: tabified while the window is
        # hidden, Qt 6.10 leaves a second, stale "Match | Probes" tab bar over the status bar)
        self.match_dock.hide()
        self.probe_dock.hide()
        self.match_panel.results_changed.connect(lambda results: results is not None and self._show_match_dock())
        self.probe_panel.results_ready.connect(lambda _report: self.show_probe_dock())
        for dock in (self.match_dock, self.probe_dock):  # opened from the View menu: tabbed and sized alike
            dock.toggleViewAction().triggered.connect(lambda on, d=dock: on and self._open_bottom_dock(d))
        self.navigation.find_button.clicked.connect(self.show_find)
        ws.error_occurred.connect(lambda title, message: show_error(self, title, message))

        self.setStatusBar(StatusBar(ws))
        self._build_menus()
        ws.recording_changed.connect(self._recording_changed)
        self._recording_changed(ws.recording)

    def _dock(self, title: str, name: str, widget: QtWidgets.QWidget, area) -> QtWidgets.QDockWidget:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(
            QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetClosable
            | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable
        )
        self.addDockWidget(area, dock)
        return dock

    # ------------------------------------------------------------------ menus and shortcuts
    def _action(self, menu: QtWidgets.QMenu, text: str, slot, shortcut=None, tip: str = "") -> QtGui.QAction:
        action = menu.addAction(text)
        action.triggered.connect(slot)
        if shortcut is not None:
            action.setShortcut(QtGui.QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
        return action

    def _build_menus(self) -> None:
        ws = self.workspace
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self._action(file_menu, "&Open…", self.choose_and_open, QtGui.QKeySequence.StandardKey.Open)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._action(file_menu, "Open &Workspace…", self.choose_and_open_workspace, "Ctrl+Shift+O",
                     "Open a saved workspace: its recording, panes, selections and window")
        self.save_workspace_action = self._action(file_menu, "&Save Workspace…", self.choose_and_save_workspace,
                                                  QtGui.QKeySequence.StandardKey.Save,
                                                  "Save the panes, selections, window and settings to a file")
        file_menu.addSeparator()
        self.export_action = self._action(file_menu, "&Export Plot…", self.choose_and_export, "Ctrl+E",
                                          "Save the select view (every pane) as PNG, SVG or PDF")
        self.export_data_action = self._action(file_menu, "Export Selection &Data…", self.choose_and_export_data,
                                               "Ctrl+Shift+E",
                                               "Save the active pane's selected units and candidate ranking as CSV or NPY")
        self.close_action = self._action(file_menu, "&Close", ws.close, QtGui.QKeySequence.StandardKey.Close)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, "Ctrl+Q")

        view_menu = bar.addMenu("&View")
        group = QtGui.QActionGroup(self)
        self.transform_actions = {}
        for name in TRANSFORMS:
            action = view_menu.addAction(f"Active Pane: {TRANSFORM_NAMES[name].capitalize()}")
            action.setCheckable(True)
            action.setChecked(name == ws.transform)
            action.triggered.connect(lambda _=False, n=name: ws.set_transform(n))
            group.addAction(action)
            self.transform_actions[name] = action
        ws.transform_changed.connect(lambda n: n in self.transform_actions and self.transform_actions[n].setChecked(True))
        view_menu.addSeparator()
        self.pane_actions = [
            self._action(view_menu, "Add &Pane", lambda: ws.add_pane(), "Ctrl+Shift+N",
                         "Add a pane under the others: another tap over the same positions"),
            self._action(view_menu, "Remove Active Pane", self._remove_active_pane, None, "Remove the active pane"),
        ]
        view_menu.addSeparator()
        self.annotations_action = self._action(view_menu, "&Annotations…", self.choose_annotations, None,
                                               "Choose which annotation tracks are shown under the tokens")
        self.mask_action = view_menu.addAction("&Mask Annotations by Activity")
        self.mask_action.setCheckable(True)
        self.mask_action.setChecked(ws.mask_annotations)
        self.mask_action.setStatusTip("Fade annotation colours where few of the active pane's selected units are on")
        self.mask_action.toggled.connect(ws.set_mask_annotations)
        ws.mask_annotations_changed.connect(self.mask_action.setChecked)
        self.units_action = self._action(view_menu, "&Highlight Units…", self.choose_units, "Ctrl+U",
                                         "Draw chosen units of the active pane's tap in colour")
        view_menu.addSeparator()
        for dock in (self.selection_dock, self.info_dock, self.find_dock, self.match_dock, self.probe_dock):
            view_menu.addAction(dock.toggleViewAction())

        match_menu = bar.addMenu("&Match")
        panel = self.match_panel
        for action in (panel.match_action, panel.cancel_action, None, panel.export_view_action,
                       panel.export_data_action):
            if action is None:
                match_menu.addSeparator()
            else:
                match_menu.addAction(action)
        panel.match_action.triggered.connect(self._show_match_dock)

        analysis_menu = bar.addMenu("&Analysis")
        probes = self.probe_panel
        for action in (probes.run_action, probes.cancel_action, None, probes.export_chart_action,
                       probes.export_detail_action, probes.export_curves_action, probes.export_data_action):
            if action is None:
                analysis_menu.addSeparator()
            else:
                analysis_menu.addAction(action)
        probes.run_action.triggered.connect(self.show_probe_dock)

        nav = bar.addMenu("&Navigate")
        self.navigation_actions = [
            self._action(nav, "Previous Item", lambda: ws.go_to_item(ws.item - 1), "PgUp"),
            self._action(nav, "Next Item", lambda: ws.go_to_item(ws.item + 1), "PgDown"),
            self._action(nav, "Start of Item", lambda: ws.go_to_item(ws.item), "Home"),
            self._action(nav, "Scroll Left", lambda: ws.scroll_by(-1), "Left"),
            self._action(nav, "Scroll Right", lambda: ws.scroll_by(1), "Right"),
            self._action(nav, "Scroll Left by a Window", lambda: ws.scroll_by(-ws.window_width), "Shift+Left"),
            self._action(nav, "Scroll Right by a Window", lambda: ws.scroll_by(ws.window_width), "Shift+Right"),
            self._action(nav, "Wider Window", lambda: ws.set_window_width(ws.window_width + 20), "Ctrl+="),
            self._action(nav, "Narrower Window", lambda: ws.set_window_width(ws.window_width - 20), "Ctrl+-"),
        ]
        nav.addSeparator()
        self.navigation_actions.append(self._action(nav, "Go to Position…", self._focus_jump, "Ctrl+G"))
        self.navigation_actions.append(self._action(nav, "&Find…", self.show_find, QtGui.QKeySequence.StandardKey.Find,
                                                    "Find a phrase or a regular expression in the tokens"))

        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&About lstmviz", self._about)

    def highlight_units(self, text: str) -> bool:
        """Highlight the units of the active pane's tap named in ``text`` ("3, 17, 40-42"; empty: none);
        report a bad list in a dialog."""
        try:
            self.workspace.set_highlighted_units(parse_units(text, self.workspace.tap_info()))
        except ValueError as exc:
            show_error(self, "Cannot highlight units", describe(exc))
            return False
        return True

    def choose_units(self) -> None:
        ws = self.workspace
        if ws.recording is None:
            return
        current = ", ".join(map(str, ws.highlighted_units))
        text, ok = QtWidgets.QInputDialog.getText(
            self, "Highlight units", literal(f"Units of {ws.tap} to draw in colour (e.g. 3, 17, 40-42):"), text=current
        )
        if ok:
            self.highlight_units(text)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        paths = self.recent_files.paths()
        for path in paths:
            action = self.recent_menu.addAction(Path(path).name)
            action.setStatusTip(path)
            action.setToolTip(literal(path))
            action.triggered.connect(lambda _=False, p=path: self.open_file(p))
        if not paths:
            self.recent_menu.addAction("(none)").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear List", self.recent_files.clear)

    def _remove_active_pane(self) -> None:
        ws = self.workspace
        if len(ws.panes) > 1:
            ws.remove_pane(ws.active_index)

    def choose_annotations(self) -> None:
        if self.workspace.recording is None:
            return
        AnnotationsDialog(self.workspace, self).exec()

    def show_find(self) -> None:
        """Show the Find dock and put the cursor in its search field (Ctrl+F)."""
        self.find_dock.show()
        self.find_dock.raise_()
        self.find_panel.edit.setFocus()
        self.find_panel.edit.selectAll()

    def _focus_jump(self) -> None:
        self.navigation.jump_edit.setFocus()
        self.navigation.jump_edit.selectAll()

    def _about(self) -> None:
        import lstmviz

        QtWidgets.QMessageBox.about(
            self,
            "About lstmviz",
            f"<b>lstmviz {lstmviz.__version__}</b><p>Visual analysis of the hidden states of recurrent "
            "networks: record a model's states over a corpus, then look at them here.</p>",
        )

    def _recording_changed(self, recording) -> None:
        has = recording is not None
        self.pages.setCurrentIndex(1 if has else 0)
        for action in (self.export_action, self.export_data_action, self.close_action, self.units_action,
                       self.save_workspace_action, self.annotations_action, self.mask_action,
                       *self.navigation_actions, *self.pane_actions, *self.transform_actions.values()):
            action.setEnabled(has)
        self.setWindowTitle(f"{Path(recording.path).name} — lstmviz" if has else "lstmviz")

    # ------------------------------------------------------------------ opening
    def open_file(self, path: str | Path) -> bool:
        """Open a recording; on failure show why in a dialog and keep the open one. True on success."""
        try:
            self.workspace.open(path)
        except expected_errors() as exc:
            show_error(
                self,
                "Cannot open recording",
                f"lstmviz could not open “{Path(path).name}”.\n\n{describe(exc)}",
            )
            return False
        self.recent_files.add(path)
        return True

    def choose_and_open(self) -> None:
        start = str(Path(self.workspace.recording.path).parent) if self.workspace.recording is not None else ""
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open recording", start, RECORDING_FILTER)
        if path:
            self.open_file(path)

    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:
        if _dropped_file(event.mimeData()) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QtGui.QDragMoveEvent) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event: QtGui.QDropEvent) -> None:
        path = _dropped_file(event.mimeData())
        if path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        # open after the drop returns: a modal error dialog must not block the drag source
        QtCore.QTimer.singleShot(0, lambda: self.open_file(path))

    def _show_match_dock(self) -> None:
        self._open_bottom_dock(self.match_dock)

    def show_probe_dock(self) -> None:
        """Show the Probes dock (in front of the Match dock it shares the bottom with)."""
        self._open_bottom_dock(self.probe_dock)

    def _open_bottom_dock(self, dock: QtWidgets.QDockWidget) -> None:
        """Show a bottom dock in front; the first one opened takes ``BOTTOM_DOCK_SHARE`` of the window."""
        others = [d for d in (self.match_dock, self.probe_dock) if d is not dock and not d.isHidden()]
        if others and dock not in self.tabifiedDockWidgets(others[0]):
            self.tabifyDockWidget(others[0], dock)
        bottom_open = bool(others)
        dock.show()
        dock.raise_()
        if not bottom_open:
            height = max(BOTTOM_DOCK_MIN, round(BOTTOM_DOCK_SHARE * self.height()))
            self.resizeDocks([dock], [height], QtCore.Qt.Orientation.Vertical)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.match_panel.shutdown()
        self.probe_panel.shutdown()
        self.workspace.shutdown()
        super().closeEvent(event)


def parse_units(text: str, tap_info) -> list[int]:
    """The unit numbers of ``text`` (``"3, 17 40-42"``) for a tap ``tap_info`` (``.name``, ``.units``);
    empty text is no units. ValueError says which part is not a unit, or which unit the tap lacks,
    before any list is built (``0-999999999`` is a sentence, not a billion integers)."""
    if not str(text).strip():
        return []
    if tap_info is None:
        raise ValueError("there is no tap to highlight units of: open a recording first")
    return unit_spec.parse_units(text, int(tap_info.units), str(tap_info.name))


def _dropped_file(mime: QtCore.QMimeData) -> str | None:
    """The first local file among dropped URLs, or None."""
    if not mime.hasUrls():
        return None
    for url in mime.urls():
        if url.isLocalFile():
            return url.toLocalFile()
    return None
