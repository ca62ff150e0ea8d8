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


def run(path: str | None, *, argv: list[str] | None = None, units: str | None = None) -> int:
    """Open the main window on ``path`` (the bundled demo when None) and run the event loop.

    Returns the application's exit code. A file that cannot be opened is reported in a dialog; the
    window stays open and empty.
    """
    from PySide6 import QtCore

    from lstmviz.qt.errors import ErrorReporter
    from lstmviz.qt.main_window import MainWindow

    app = _application(argv)
    window = MainWindow(settings=QtCore.QSettings(APP_NAME, APP_NAME))
    reporter = ErrorReporter(window).install()
    window.show()
    target = path if path is not None else demo_path()
    if target is not None:
        def open_target():
            if window.open_file(target) and units:
                window.highlight_units(units)

        QtCore.QTimer.singleShot(0, open_target)
    try:
        return int(app.exec())
    finally:
        reporter.uninstall()


def screenshot(png: str, path: str | None, *, size: tuple[int, int] = (1400, 850), units: str | None = None) -> None:
    """Render the main window on ``path`` (the demo when None) offscreen into ``png`` and return.

    Runs no blocking event loop. A file that cannot be opened raises (RecordingError / OSError), so
    the caller can print the message.
    """
    if os.environ.get("QT_QPA_PLATFORM") is None and not _has_application():
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from lstmviz.qt.main_window import MainWindow

    app = _application(None)
    window = MainWindow(settings=None)
    try:
        window.resize(*size)
        target = path if path is not None else demo_path()
        if target is not None:
            window.workspace.open(target)
            if units:
                from lstmviz.qt.main_window import parse_units

                window.workspace.set_highlighted_units(parse_units(units))
        window.show()
        for _ in range(3):  # let layouts settle: docks, toolbar and the plot's graphics layout
            app.processEvents()
        image = window.grab().toImage()
        Path(png).parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(png)):
            raise OSError(f"{png}: could not write the screenshot")
    finally:
        window.workspace.close()
        window.close()
        window.deleteLater()
        app.processEvents()


def _has_application() -> bool:
    if "PySide6.QtWidgets" not in sys.modules:
        return False
    from PySide6 import QtWidgets

    return QtWidgets.QApplication.instance() is not None
