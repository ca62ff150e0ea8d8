"""Entry points of the GUI: ``run`` (the desktop application) and ``screenshot`` (an offscreen PNG).

Qt is imported inside the functions, so ``import lstmviz.qt.app`` stays cheap (the CLI imports it to
parse arguments before it knows whether a window is wanted).
"""

from __future__ import annotations

import contextlib
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


class ScreenshotError(Exception):
    """The screenshot was not written: a bad target, or the window did not show what was asked for."""


#: the image files ``screenshot`` writes (QImage picks the encoder from the suffix)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
#: what the offscreen platform says for every top-level window; not a problem of the picture
_HARMLESS_QT_MESSAGES = ("This plugin does not support propagateSizeHints",)


def screenshot(png: str, path: str | None, *, size: tuple[int, int] = (1400, 850), units: str | None = None,
               workspace: str | None = None, timeout_s: float = 120.0) -> list[str]:
    """Render the main window on ``path`` (the demo when None) offscreen into ``png`` and return.

    With ``workspace``, its panes, selections and window are restored first (on ``path`` when given,
    else on the recording it names), and background work they start (z-score statistics) is waited
    for. Returns the sentences about parts of the workspace that did not fit. Runs no blocking event
    loop and opens no dialog: a problem the window would show in a dialog is collected instead.

    Raises ``ScreenshotError`` (one line) and writes nothing when ``png`` cannot be written (checked
    before the window is built: a folder, not a regular file, an unknown suffix, a folder that cannot
    be written) or when the picture is not what was asked for: any notification the window raised, an
    exception in a slot, a read of the recording that failed, background work that did not finish. A
    file that cannot be opened raises (RecordingError / WorkspaceFileError / OSError), so the caller
    can print the message. The image replaces ``png`` only once it is complete.
    """
    temp = _image_target(Path(png))
    try:
        problems = _render(temp, path, size=size, units=units, workspace=workspace, timeout_s=timeout_s)
        os.replace(temp, png)
    finally:
        temp.unlink(missing_ok=True)
    return problems


def _image_target(png: Path) -> Path:
    """A new empty temporary file beside ``png`` to render into; ScreenshotError when ``png`` cannot be
    written (before any window exists)."""
    import stat
    import tempfile

    if png.suffix.lower() not in IMAGE_SUFFIXES:
        raise ScreenshotError(f"{png}: a screenshot is a {', '.join(IMAGE_SUFFIXES)} file; "
                              f"give the file name one of these suffixes")
    try:
        mode = os.stat(png).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise ScreenshotError(f"{png}: cannot be written ({exc.strerror or exc})") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise ScreenshotError(f"{png}: is a folder; give the screenshot a file name")
    if mode is not None and not stat.S_ISREG(mode):
        raise ScreenshotError(f"{png}: exists and is not a regular file (a device, FIFO or socket); "
                              f"give another file name")
    try:
        png.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{png.name}.", suffix=f".tmp{png.suffix}", dir=png.parent)
    except OSError as exc:
        raise ScreenshotError(f"{png}: cannot be written in {png.parent} ({exc.strerror or exc})") from None
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)  # as a newly written file (mkstemp makes it 0600, which the rename keeps)
    return Path(name)


def _render(image_path: Path, path: str | None, *, size, units, workspace, timeout_s) -> list[str]:
    """Build the window offscreen, restore what is asked for and save its picture to ``image_path``."""
    if os.environ.get("QT_QPA_PLATFORM") is None and not _has_application():
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from lstmviz.qt.errors import notifications_to
    from lstmviz.qt.main_window import MainWindow

    failures: list[str] = []

    def note(title: str, message: str) -> None:
        failures.append(f"{title}: {' '.join(message.split(chr(10) * 2)[0].split())}")  # its first paragraph

    app = _application(None)
    with notifications_to(note), _exceptions_noted(failures), _quiet_qt_messages():
        window = MainWindow(settings=None)
        try:
            window.resize(*size)
            problems: list[str] = []
            if workspace is not None:
                from lstmviz.workspace.file import load_workspace

                problems = window.workspace.restore(load_workspace(workspace), path)
            else:
                target = path if path is not None else demo_path()
                if target is not None:
                    window.workspace.open(target)
            if units:
                from lstmviz.qt.main_window import parse_units

                window.workspace.set_highlighted_units(parse_units(units, window.workspace.tap_info()))
            window.show()
            _settle(app, window, timeout_s)
            if workspace is not None:  # what the saved workspace showed: e.g. its selection's matches
                for panel in window.panels.values():
                    restore_work = getattr(panel, "restore_work", None)
                    if restore_work is not None:
                        restore_work()
                _settle(app, window, timeout_s)
                for name, panel in window.panels.items():  # in front as saved, whichever finished last
                    in_front = getattr(panel, "in_front", None)
                    if in_front is not None and in_front():
                        window.show_panel(name)
            if _busy(window):
                failures.append(f"background work did not finish within {timeout_s:g} s")
            image = window.grab().toImage()
            app.processEvents()  # a read that failed while painting is stated by a queued notification
        finally:
            window.workspace.shutdown()
            window.workspace.close()
            window.close()
            window.deleteLater()
            app.processEvents()
    if failures:
        more = f" (and {len(failures) - 1} more problem{'s' if len(failures) > 2 else ''})" if len(failures) > 1 else ""
        raise ScreenshotError(f"the window did not show what was asked for, so no screenshot was written: "
                              f"{failures[0]}{more}")
    if not image.save(str(image_path)):
        raise ScreenshotError(f"{image_path}: could not write the screenshot")
    return problems


def _busy(window) -> bool:
    """Whether background work is running: on the workspace's worker threads, where every panel and the
    statistics run theirs."""
    return window.workspace.runner.busy


@contextlib.contextmanager
def _exceptions_noted(failures: list[str]):
    """Exceptions that escape a slot (or a thread) are noted in ``failures`` instead of printed."""
    import threading

    def hook(exc_type, exc_value, exc_traceback):
        text = str(exc_value).strip()
        failures.append(f"{exc_type.__name__}: {text}" if text else exc_type.__name__)

    previous = sys.excepthook, threading.excepthook
    sys.excepthook = hook
    threading.excepthook = lambda args: hook(args.exc_type, args.exc_value, args.exc_traceback)
    try:
        yield
    finally:
        sys.excepthook, threading.excepthook = previous


@contextlib.contextmanager
def _quiet_qt_messages():
    """Leave out the offscreen platform's note about every window; pass every other Qt message on."""
    from PySide6 import QtCore

    def handler(mode, context, message):
        if message.startswith(_HARMLESS_QT_MESSAGES):
            return
        if previous is not None:
            previous(mode, context, message)
        else:
            sys.stderr.write(message + "\n")

    previous = QtCore.qInstallMessageHandler(handler)
    try:
        yield
    finally:
        QtCore.qInstallMessageHandler(previous)


def _settle(app, window, timeout_s: float) -> None:
    """Process events until background work is done (or ``timeout_s``) and layouts have settled."""
    import time

    deadline = time.monotonic() + timeout_s
    while _busy(window) and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    for _ in range(3):  # let layouts settle: docks, toolbar and the plot's graphics layout
        app.processEvents()


def _has_application() -> bool:
    if "PySide6.QtWidgets" not in sys.modules:
        return False
    from PySide6 import QtWidgets

    return QtWidgets.QApplication.instance() is not None
