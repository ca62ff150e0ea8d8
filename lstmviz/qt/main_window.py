"""The main window: menus, the navigation toolbar, the state plot, the info dock and the status bar.

It owns the workspace and wires the views to it; it opens recordings (command line, File > Open,
Open Recent, drag-and-drop) and reports a file that cannot be opened in a dialog while the previous
recording stays open.
"""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.qt.errors import describe_exception, show_error
from lstmviz.qt.export import FORMATS, export_graphics
from lstmviz.qt.info_panel import InfoPanel
from lstmviz.qt.navigation import NavigationBar
from lstmviz.qt.position_scroller import PositionScroller
from lstmviz.qt.recent_files import RecentFiles
from lstmviz.qt.state_plot import StatePlot
from lstmviz.qt.status_bar import StatusBar
from lstmviz.qt.workspace import TRANSFORMS, Workspace

RECORDING_FILTER = "lstmviz recordings (*.h5 *.hdf5);;All files (*)"
EMPTY_MESSAGE = (
    "<h2 style='color:#444'>No recording open</h2>"
    "<p style='color:#666'>Open a recording with <b>File &gt; Open…</b> (Ctrl+O),<br>"
    "or drop an <tt>.h5</tt> file onto this window.</p>"
    "<p style='color:#888'>Make one with <tt>lstmviz record ENGINE --dataset NAME --out FILE.h5</tt>.</p>"
)


def expected_open_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "this file cannot be opened" (reported in words, not as a crash)."""
    try:
        from lstmviz.recording import RecordingError
    except ImportError:  # the reader is not importable: every open fails with an OSError or worse
        return (OSError,)
    return (RecordingError, OSError)


class MainWindow(QtWidgets.QMainWindow):
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

        self.info_panel = InfoPanel(ws)
        self.info_dock = QtWidgets.QDockWidget("Recording", self)
        self.info_dock.setObjectName("info")
        self.info_dock.setWidget(self.info_panel)
        self.info_dock.setFeatures(
            QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetClosable
            | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable
        )
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, self.info_dock)
        self.resizeDocks([self.info_dock], [300], QtCore.Qt.Orientation.Horizontal)

        self.setStatusBar(StatusBar(ws))
        self._build_menus()
        ws.recording_changed.connect(self._recording_changed)
        self._recording_changed(ws.recording)

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
        file_menu.addSeparator()
        self.export_action = self._action(file_menu, "&Export Plot…", self.choose_and_export, "Ctrl+E",
                                          "Save the state plot as PNG, SVG or PDF")
        self.close_action = self._action(file_menu, "&Close", ws.close, QtGui.QKeySequence.StandardKey.Close)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, "Ctrl+Q")

        view_menu = bar.addMenu("&View")
        group = QtGui.QActionGroup(self)
        self.transform_actions = {}
        for name in TRANSFORMS:
            action = view_menu.addAction("Raw values" if name == "raw" else "tanh of values")
            action.setCheckable(True)
            action.setChecked(name == ws.transform)
            action.triggered.connect(lambda _=False, n=name: ws.set_transform(n))
            group.addAction(action)
            self.transform_actions[name] = action
        ws.transform_changed.connect(lambda n: self.transform_actions[n].setChecked(True))
        view_menu.addSeparator()
        self.units_action = self._action(view_menu, "&Highlight Units…", self.choose_units, "Ctrl+U",
                                         "Draw chosen units of the tap in colour")
        view_menu.addSeparator()
        view_menu.addAction(self.info_dock.toggleViewAction())

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

        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&About lstmviz", self._about)

    def highlight_units(self, text: str) -> bool:
        """Highlight the units named in ``text`` ("3, 17, 40-42"); report a bad list in a dialog."""
        try:
            self.workspace.set_highlighted_units(parse_units(text))
        except ValueError as exc:
            show_error(self, "Cannot highlight units", describe_exception(exc))
            return False
        return True

    def choose_units(self) -> None:
        ws = self.workspace
        if ws.recording is None:
            return
        current = ", ".join(map(str, ws.highlighted_units))
        text, ok = QtWidgets.QInputDialog.getText(
            self, "Highlight units", f"Units of {ws.tap} to draw in colour (e.g. 3, 17, 40-42):", text=current
        )
        if ok:
            self.highlight_units(text)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        paths = self.recent_files.paths()
        for path in paths:
            action = self.recent_menu.addAction(Path(path).name)
            action.setStatusTip(path)
            action.setToolTip(path)
            action.triggered.connect(lambda _=False, p=path: self.open_file(p))
        if not paths:
            self.recent_menu.addAction("(none)").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear List", self.recent_files.clear)

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
        self.export_action.setEnabled(has)
        self.close_action.setEnabled(has)
        self.units_action.setEnabled(has)
        for action in self.navigation_actions:
            action.setEnabled(has)
        self.setWindowTitle(f"{Path(recording.path).name} — lstmviz" if has else "lstmviz")

    # ------------------------------------------------------------------ opening
    def open_file(self, path: str | Path) -> bool:
        """Open a recording; on failure show why in a dialog and keep the open one. True on success."""
        try:
            self.workspace.open(path)
        except expected_open_errors() as exc:
            show_error(
                self,
                "Cannot open recording",
                f"lstmviz could not open “{Path(path).name}”.\n\n{describe_exception(exc)}",
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

    # ------------------------------------------------------------------ export
    def export_plot(self, path: str | Path) -> bool:
        """Export the state plot (with tokens and tracks) to PNG, SVG or PDF; report failures in a dialog."""
        try:
            written = export_graphics(self.state_plot.export_item(), path)
        except (ValueError, OSError) as exc:
            show_error(self, "Cannot export", describe_exception(exc))
            return False
        self.statusBar().showMessage(f"Exported the plot to {written}", 6000)
        return True

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


def parse_units(text: str) -> list[int]:
    """Unit indices from text such as ``"3, 17 40-42"``; ValueError says which part is not a unit."""
    units: list[int] = []
    for part in text.replace(",", " ").split():
        low, dash, high = part.partition("-")
        try:
            if dash:
                units.extend(range(int(low), int(high) + 1))
            else:
                units.append(int(part))
        except ValueError:
            raise ValueError(f"{part!r} is not a unit number or a range like 40-42") from None
    return units


def _dropped_file(mime: QtCore.QMimeData) -> str | None:
    """The first local file among dropped URLs, or None."""
    if not mime.hasUrls():
        return None
    for url in mime.urls():
        if url.isLocalFile():
            return url.toLocalFile()
    return None
