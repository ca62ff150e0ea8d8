"""What the command line prints: strings from files made safe for a terminal, and progress lines.

``printable(text)`` is the one helper every CLI message that shows a string taken from a file
(provenance, checkpoint paths, tap, annotation and label names, the vocabulary, error messages that
quote file content) goes through: control characters (C0 such as ESC, BEL, CR; DEL; C1), Unicode
format characters (bidi overrides and isolates, zero-width characters), line and paragraph
separators and lone surrogates (undecodable bytes of a file name) are written as Python escapes
(``\\x1b``, ``\\u202e``), so a file can neither drive the terminal (set its title, clear the
screen, move the cursor) nor reorder or hide what is shown. Everything else is kept as it is.

``progress_task(desc, unit=..., quiet=...)`` is the progress reporter of the long commands: a tqdm
bar when stderr is a terminal, otherwise (a log file, a pipe, CI) one line every few seconds
(``ProgressLines``), so that long work is never silent.
"""

from __future__ import annotations

import sys
import time
import unicodedata

from lstmviz.tasks import Task, TqdmTask

_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text) -> str:
    """``str(text)`` with every character a terminal could act on written as an escape (one line)."""
    text = str(text)
    if text.isascii() and text.isprintable():  # the common case: nothing to do
        return text
    return "".join(_escape(ch) if unicodedata.category(ch) in _ESCAPED_CATEGORIES else ch for ch in text)


def printable_lines(text) -> str:
    """Like ``printable`` but keeps the line breaks of multi-line text that lstmviz itself laid out."""
    return "\n".join(printable(line) for line in str(text).split("\n"))


def stream_is_terminal(stream) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


class ProgressLines(Task):
    """Progress as plain lines on a stream: the first report, then at most one every ``every`` seconds,
    and the last one.

    ``train lstm on parens: 120/1000 steps (12%), loss 2.345 | 41,200 tok/s, 0:00:31 elapsed``
    """

    def __init__(self, desc: str = "", unit: str = "it", every: float = 5.0, stream=None,
                 clock=time.monotonic):
        super().__init__()
        self._desc = desc
        self._unit = unit
        self._every = float(every)
        self._stream = stream
        self._clock = clock
        self._started = clock()
        self._last_line = None  # time of the last line; None: none yet
        self._last_done = None

    def progress(self, done: int, total: int | None = None, message: str = "") -> None:
        super().progress(done, total, message)  # raises Cancelled first when cancelled
        now = self._clock()
        finished = self.total is not None and done >= self.total
        due = self._last_line is None or now - self._last_line >= self._every  # the first at once
        if (due or finished) and done != self._last_done:
            self._last_line, self._last_done = now, done
            self._write(done, message, now)

    def _write(self, done: int, message: str, now: float) -> None:
        if self.total:
            count = f"{done:,}/{self.total:,} {self._unit} ({100 * done / self.total:.0f}%)"
        else:
            count = f"{done:,} {self._unit}"
        elapsed = int(now - self._started)
        text = f"{self._desc}: {count}" + (f", {message}" if message and message != self._desc else "")
        text += f", {elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d} elapsed"
        stream = self._stream if self._stream is not None else sys.stderr
        print(printable(text), file=stream, flush=True)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class _SafeTqdmTask(TqdmTask):
    """A tqdm bar whose messages (tap names from a file) are escaped."""

    def progress(self, done: int, total: int | None = None, message: str = "") -> None:
        super().progress(done, total, printable(message))


def progress_task(desc: str, *, unit: str = "it", quiet: bool = False, stream=None) -> Task:
    """The progress reporter of a CLI command: silent when ``quiet``, a tqdm bar on a terminal,
    else ``ProgressLines`` on ``stream`` (stderr)."""
    stream = sys.stderr if stream is None else stream
    if quiet:
        return _Silent()
    if stream_is_terminal(stream):
        return _SafeTqdmTask(desc=printable(desc), unit=unit, disable=False)
    return ProgressLines(printable(desc), unit=unit, stream=stream)


class _Silent(Task):
    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
