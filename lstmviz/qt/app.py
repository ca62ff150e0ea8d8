"""Entry points of the GUI: ``run`` (the desktop application) and ``screenshot`` (an offscreen PNG).

Qt is imported inside the functions, so ``import lstmviz.qt.app`` stays cheap (the CLI imports it to
parse arguments before it knows whether a window is wanted).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "lstmviz"


def demo_path() -> Path | None:
    """The bundled demo recording, or None if this installation has none."""
    from importlib.resources import files

    try:
        candidate = files("lstmviz.assets") / "demo" / "parens-lstm.h5"
    except ModuleNotFoundError:
        return None
    return Path(str(candidate)) if candidate.is_file() else None


def _application(argv: list[str] | None):
    """The running QApplication, or a new one named lstmviz."""
    from PySide6 import QtWidgets

    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(list(argv) if argv is not None else sys.argv[:1])
        app.setOrganizationName(APP_NAME)
        app.setApplicationName(APP_NAME)
    return app


def run(path: str | None, *, argv: list[str] | None = None, units: str | None = None,
        workspace: str | None = None) -> int:
    """Open the main window on ``path`` (the bundled demo when None) and run the event loop.

    With ``workspace`` (a saved workspace file), its panes, selections and window are restored, on
    ``path`` when given, else on the recording the workspace names. Returns the application's exit
    code. A file that cannot be opened is reported in a dialog; the window stays open and empty.
    """
    from PySide6 import QtCore

    from lstmviz.qt.errors import ErrorReporter
    from lstmviz.qt.main_window import MainWindow

    app = _application(argv)
    window = MainWindow(settings=QtCore.QSettings(APP_NAME, APP_NAME))
    reporter = ErrorReporter(window).install()
    window.show()
    target = path if path is not None or workspace is not None else demo_path()

    def open_target():
        if workspace is not None:
            opened = window.open_workspace(workspace, path)
        else:
            opened = target is not None and window.open_file(target)
        if opened and units:
            window.highlight_units(units)

    QtCore.QTimer.singleShot(0, open_target)
    try:
        return int(app.exec())
    finally:
        window.workspace.shutdown()
        reporter.uninstall()


def screenshot(png: str, path: str | None, *, size: tuple[int, int] = (1400, 850), units: str | None = None,
               workspace: str | None = None, timeout_s: float = 120.0) -> list[str]:
    """Render the main window on ``path`` (the demo when None) offscreen into ``png`` and return.

    With ``workspace``, its panes, selections and window are restored first (on ``path`` when given,
    else on the recording it names), and background work they start (z-score statistics) is waited
    for. Returns the sentences about parts of the workspace that did not fit. Runs no blocking event
    loop. A file that cannot be opened raises (RecordingError / WorkspaceFileError / OSError), so the
    caller can print the message.
    """
    if os.environ.get("QT_QPA_PLATFORM") is None and not _has_application():
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from lstmviz.qt.main_window import MainWindow

    app = _application(None)
    window = MainWindow(settings=None)
    try:
        window.resize(*size)
        problems: list[str] = []
        if workspace is not None:
            from lstmviz.analysis.workspace_file import load_workspace

            problems = window.workspace.restore(load_workspace(workspace), path)
        else:
            target = path if path is not None else demo_path()
            if target is not None:
                window.workspace.open(target)
        if units:
            from lstmviz.qt.main_window import parse_units

            window.workspace.set_highlighted_units(parse_units(units))
        window.show()
        _settle(app, window, timeout_s)
        pane = window.workspace.active_pane
        if workspace is not None and pane is not None and pane.selection is not None and len(pane.selection):
            _settle_match(app, window, timeout_s)  # a saved selection is shown with its matches
        if workspace is not None:
            _settle_probes(app, window, timeout_s)  # a saved probe result is recomputed (or read from cache)
        image = window.grab().toImage()
        Path(png).parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(png)):
            raise OSError(f"{png}: could not write the screenshot")
        return problems
    finally:
        window.workspace.shutdown()
        window.workspace.close()
        window.close()
        window.deleteLater()
        app.processEvents()


def _settle_match(app, window, timeout_s: float) -> None:
    """Run the match panel on the active pane's selection and process events until it is done."""
    import time

    panel = window.match_panel
    if not panel.match():
        return
    runner = window.workspace.runner
    deadline = time.monotonic() + timeout_s
    while (panel.busy or runner.is_busy("aggregate")) and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    _settle(app, window, timeout_s)


def _settle_probes(app, window, timeout_s: float) -> None:
    """Process events while the Probes panel re-runs the probes a restored workspace showed."""
    import time

    deadline = time.monotonic() + timeout_s
    while window.probe_panel.busy and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    _settle(app, window, timeout_s)


def _settle(app, window, timeout_s: float) -> None:
    """Process events until background work is done (or ``timeout_s``) and layouts have settled."""
    import time

    deadline = time.monotonic() + timeout_s
    while window.workspace.tap_stats.busy and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    for _ in range(3):  # let layouts settle: docks, toolbar and the plot's graphics layout
        app.processEvents()


def _has_application() -> bool:
    if "PySide6.QtWidgets" not in sys.modules:
        return False
    from PySide6 import QtWidgets

    return QtWidgets.QApplication.instance() is not None
