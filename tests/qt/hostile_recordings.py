"""A recording whose every name is markup that would open a local file, and a FIFO that says whether
anything opened it (no tests here).

Qt reads ``<img src=x.fifo>`` as an image to load when it takes a string for rich text; opening a FIFO
for reading blocks until a writer comes, so a window that did so would hang. ``FifoWatch`` is that
writer: another process polls the FIFO with a non-blocking open for writing, which succeeds only while
a reader has it open, counts the opening and closes again, so the reader gets an empty file and the
test goes on to fail instead of hanging.
"""

import os
import subprocess
import sys

import numpy as np

from lstmviz.recording import RecordingWriter

#: relative to the working directory, where ``FifoWatch`` makes the FIFO
FIFO_NAME = "x.fifo"
HOSTILE = f"<img src={FIFO_NAME}>"
HOSTILE_TAP = f"{HOSTILE}/c"
#: the token that is markup, and one whose "&amp;" must stay four characters
VOCAB = ["<pad>", HOSTILE, "a", "b&amp;c"]
#: units of HOSTILE_TAP on exactly over positions 10-14 of item 0
PLANTED_UNITS = (3, 5)


def write_hostile_recording(path, *, n_items=3, item_length=40):
    """Taps ``<img src=x.fifo>/c`` and ``layer1/h``; a categorical per-position annotation named
    ``<img src=x.fifo>`` with that label, a numeric one and one per item; provenance and descriptions
    ``<img src=x.fifo>``; token 1 is ``<img src=x.fifo>``."""
    rng = np.random.default_rng(7)
    provenance = {"engine": HOSTILE, "dataset": HOSTILE, "checkpoint": HOSTILE, HOSTILE: HOSTILE}
    with RecordingWriter(path, vocab=VOCAB, provenance=provenance) as w:
        w.add_tap(HOSTILE_TAP, 8, layer=0, signal="c", description=HOSTILE)
        w.add_tap("layer1/h", 8, layer=1, signal="h", description=HOSTILE)
        w.add_annotation(HOSTILE, kind="categorical", labels=[HOSTILE, "b"], description=HOSTILE)
        w.add_annotation("score", kind="numeric", description=HOSTILE)
        w.add_annotation("kind", kind="categorical", level="item", labels=[HOSTILE, "k1"], description=HOSTILE)
        for item in range(n_items):
            n = item_length
            c = rng.uniform(-0.2, 0.2, (n, 8)).astype(np.float32)
            h = rng.uniform(-0.2, 0.2, (n, 8)).astype(np.float32)
            labels = (np.arange(n) // 3) % 2
            h[:, 2] += labels  # layer1/h unit 2 follows the label, so a probe of it is not empty
            if item == 0:
                c[10:15, list(PLANTED_UNITS)] = 1.0
            w.append_item(np.arange(n) % len(VOCAB), {HOSTILE_TAP: c, "layer1/h": h},
                          annotations={HOSTILE: labels, "score": np.arange(n) / 10.0},
                          item_annotations={"kind": item % 2})
    return path


class FifoWatch:
    """A FIFO named ``FIFO_NAME`` in ``folder``; ``stop()`` says how many times a reader opened it.

    The watcher is another process: a GUI thread blocked in ``open()`` may hold the interpreter's lock,
    so a thread of this process could not come to release it.
    """

    def __init__(self, folder):
        self.path = os.path.join(folder, FIFO_NAME)
        os.mkfifo(self.path)
        self._process = subprocess.Popen([sys.executable, "-c", _WATCH, self.path], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True)
        assert self._process.stdout.readline() == "watching\n"
        self._opened: int | None = None

    def stop(self) -> int:
        """Stop watching (once); the number of times the FIFO was opened for reading."""
        if self._opened is None:
            out, _ = self._process.communicate("stop\n", timeout=30)
            self._opened = int(out)
        return self._opened


# polls with a non-blocking open for writing (ENXIO while no reader has the FIFO open), until stdin says stop
_WATCH = """
import errno, os, select, sys
path, opened = sys.argv[1], 0
print("watching", flush=True)
while not select.select([sys.stdin], [], [], 0.001)[0]:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno != errno.ENXIO:
            raise
    else:
        opened += 1
        os.close(fd)  # the reader sees the end of an empty file and is not left hanging
print(opened)
"""
