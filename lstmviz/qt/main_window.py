"""The main window: menus, the navigation toolbar, the select view, the panels' docks and the status bar.

It owns the workspace and wires the views to it; it opens recordings (command line, File > Open,
Open Recent, drag-and-drop) and workspaces (File > Open Workspace), and reports a file that cannot be
opened in a dialog while the previous recording stays open. Its docks are the registered panels
(``lstmviz.qt.panels``: Selection and Recording tabbed on the right, Find, Match and Probes at the
bottom, the last two tabbed and closed until they have something to show), each made from its
description, with its menu; ``panels`` and ``docks`` hold them by name.
"""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.analysis import unit_spec
from lstmviz.qt.annotations_dialog import AnnotationsDialog
from lstmviz.errors import describe, expected_errors
from lstmviz.qt.errors import show_error
from lstmviz.qt.file_actions import FileActions
from lstmviz.qt.navigation import NavigationBar
from lstmviz.qt.pane import TRANSFORM_NAMES
from lstmviz.qt.panel_description import PanelDescription
from lstmviz.qt.panels import panels
from lstmviz.qt.plain_text import literal
from lstmviz.qt.position_scroller import PositionScroller
from lstmviz.qt.recent_files import RecentFiles
from lstmviz.qt.state_plot import StatePlot
from lstmviz.qt.status_bar import StatusBar
from lstmviz.qt.workspace import TRANSFORMS, Workspace

#: the least height a bottom dock that opens with a share of the window's height takes
BOTTOM_DOCK_MIN = 300
_AREAS = {"right": QtCore.Qt.DockWidgetArea.RightDockWidgetArea,
          "bottom": QtCore.Qt.DockWidgetArea.BottomDockWidgetArea}
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

        self._descriptions: dict[str, PanelDescription] = {}
        #: the panels' widgets and docks, by panel name (``lstmviz.qt.panels``)
        self.panels: dict[str, QtWidgets.QWidget] = {}
        self.docks: dict[str, QtWidgets.QDockWidget] = {}
        for description in panels():
            self._add_panel(description)
        self._arrange_docks()
        self.navigation.find_button.clicked.connect(self.show_find)
        ws.error_occurred.connect(lambda title, message: show_error(self, title, message))

        self.setStatusBar(StatusBar(ws))
        self._build_menus()
        ws.recording_changed.connect(self._recording_changed)
        self._recording_changed(ws.recording)

    # ------------------------------------------------------------------ panels
    def _add_panel(self, description: PanelDescription) -> None:
        """Build a panel's widget and its dock (closed unless the description opens it)."""
        name = description.name
        panel = description.widget_class()(self.workspace)
        content = panel
        if description.scroll:  # a wide control row: scrolling it keeps a narrow window possible
            content = QtWidgets.QScrollArea()
            content.setWidgetResizable(True)
            content.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
            content.setWidget(panel)
        dock = QtWidgets.QDockWidget(description.title, self)
        dock.setObjectName(name)
        dock.setWidget(content)
        dock.setFeatures(
            QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetClosable
            | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable
        )
        self.addDockWidget(_AREAS[description.area], dock)
        self._descriptions[name], self.panels[name], self.docks[name] = description, panel, dock
        wants_dock = getattr(panel, "wants_dock", None)
        if wants_dock is not None:
            wants_dock.connect(lambda n=name: self.show_panel(n))
        if description.group:  # opened from the View menu: tabbed with its group and sized alike
            dock.toggleViewAction().triggered.connect(lambda on, n=name: on and self.show_panel(n))

    def _arrange_docks(self) -> None:
        """Tab the docks that open with the window by group (the first of a group in front, at its size),
        and close the others until they have something to show (``show_panel``). Closed docks are
        tabbed when they open: tabified while the window is hidden, Qt 6.10 leaves a second, stale tab
        bar over the status bar."""
        first_of_group: dict[str, QtWidgets.QDockWidget] = {}
        for name, description in self._descriptions.items():
            dock = self.docks[name]
            if not description.visible:
                dock.hide()
                continue
            first = first_of_group.setdefault(description.group, dock) if description.group else dock
            if first is not dock:
                self.tabifyDockWidget(first, dock)
        for group, dock in first_of_group.items():
            dock.raise_()
            self._size_dock(dock, self._descriptions[dock.objectName()])

    def _size_dock(self, dock: QtWidgets.QDockWidget, description: PanelDescription) -> None:
        if not description.size:
            return
        if description.area == "right":
            self.resizeDocks([dock], [int(description.size)], QtCore.Qt.Orientation.Horizontal)
        else:
            height = max(BOTTOM_DOCK_MIN, round(description.size * self.height()))
            self.resizeDocks([dock], [height], QtCore.Qt.Orientation.Vertical)

    def show_panel(self, name: str, *, focus: bool = False) -> None:
        """Show a panel's dock in front (tabbed with the open docks of its group; the first one opened
        takes its size); with ``focus``, the keyboard goes to the panel (``focus()``)."""
        description, dock = self._descriptions[name], self.docks[name]
        others = [self.docks[n] for n, d in self._descriptions.items()
                  if n != name and description.group and d.group == description.group and not self.docks[n].isHidden()]
        if others and dock not in self.tabifiedDockWidgets(others[0]):
            self.tabifyDockWidget(others[0], dock)
        dock.show()
        dock.raise_()
        if not others:
            self._size_dock(dock, description)
        panel_focus = getattr(self.panels[name], "focus", None)
        if focus and panel_focus is not None:
            panel_focus()

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
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())

        panel_menus: dict[str, QtWidgets.QMenu] = {}
        for name, description in self._descriptions.items():
            actions = getattr(self.panels[name], "menu_actions", None)
            if description.menu is None or actions is None:
                continue
            menu = panel_menus.get(description.menu) or panel_menus.setdefault(description.menu,
                                                                               bar.addMenu(description.menu))
            for action in actions():
                if action is None:
                    menu.addSeparator()
                else:
                    menu.addAction(action)

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
        self.show_panel("find", focus=True)

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

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        for panel in self.panels.values():  # their requests first, then the threads
            shutdown = getattr(panel, "shutdown", None)
            if shutdown is not None:
                shutdown()
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
