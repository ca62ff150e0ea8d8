"""Recordings for the Probes panel tests (no tests here).

``write_probe_recording``: 40 items of 15–29 tokens, three taps with layers, declared out of layer
order so that the panel must sort them:

- ``layer1/h`` (layer 1): 2.0 · one-hot(tag) in units 3..5 plus noise, and 2.0 · kind in unit 7 at the
  last position of each item — the tag and the item's kind are linearly decodable;
- ``layer0/h`` (layer 0) and ``layer1/c`` (layer 1): pure noise.

Annotations: ``tag`` (per position, 3 classes A/B/C with frequencies 0.5/0.3/0.2, independent of the
token), ``kind`` (per item, k0/k1), ``count`` (numeric: not offered to probes).
"""

import numpy as np

from lstmviz.recording import RecordingWriter

UNITS = 12
TAGS = ["A", "B", "C"]
PLANTED_TAP = "layer1/h"
NOISE_TAP = "layer0/h"
#: the unit that carries tag class i is 3 + i
PLANTED_UNIT = {"A": 3, "B": 4, "C": 5}
TAPS_BY_LAYER = ["layer0/h", "layer1/h", "layer1/c"]


def write_probe_recording(path, *, n_items=40, strength=2.0, seed=1):
    rng = np.random.default_rng(seed)
    with RecordingWriter(path, vocab=[f"w{i}" for i in range(30)],
                         provenance={"engine": "test", "dataset": "planted probes"}) as w:
        w.add_tap("layer1/h", UNITS, layer=1, signal="h")
        w.add_tap("layer0/h", UNITS, layer=0, signal="h")
        w.add_tap("layer1/c", UNITS, layer=1, signal="c")
        w.add_annotation("tag", kind="categorical", labels=TAGS, description="planted tag")
        w.add_annotation("kind", kind="categorical", level="item", labels=["k0", "k1"])
        w.add_annotation("count", kind="numeric")
        for _ in range(n_items):
            n = int(rng.integers(15, 30))
            tag = rng.choice(3, n, p=[0.5, 0.3, 0.2])
            kind = int(rng.integers(0, 2))
            planted = 0.5 * rng.standard_normal((n, UNITS)).astype(np.float32)
            planted[np.arange(n), 3 + tag] += strength
            planted[-1, 7] += strength * kind
            w.append_item(rng.integers(0, 30, n),
                          {"layer1/h": planted, "layer0/h": rng.standard_normal((n, UNITS)).astype(np.float32),
                           "layer1/c": rng.standard_normal((n, UNITS)).astype(np.float32)},
                          annotations={"tag": tag, "count": np.arange(n, dtype=float)},
                          item_annotations={"kind": kind})
    return path


def write_unlabelled_recording(path):
    """Two taps, a numeric annotation only: nothing to probe."""
    rng = np.random.default_rng(0)
    with RecordingWriter(path, vocab=["a", "b"]) as w:
        w.add_tap("layer0/h", 4, layer=0, signal="h")
        w.add_annotation("count", kind="numeric")
        for _ in range(4):
            w.append_item(rng.integers(0, 2, 10), {"layer0/h": rng.standard_normal((10, 4)).astype(np.float32)},
                          annotations={"count": np.arange(10, dtype=float)})
    return path


class Checkpoint:
    """What ``Recording.checkpoints`` lists: a name and a training step."""

    def __init__(self, name, step):
        self.name, self.step = name, step


class WithCheckpoints:
    """A recording that says it holds several checkpoints (the reader gains ``checkpoints`` separately)."""

    def __init__(self, recording, checkpoints):
        self._recording = recording
        self.checkpoints = checkpoints

    def __getattr__(self, name):
        return getattr(self._recording, name)


def image_colors(image) -> int:
    """How many distinct colours an image holds (a blank export has one or two)."""
    from PySide6 import QtGui

    image = image.convertToFormat(QtGui.QImage.Format.Format_RGB32)
    arr = np.frombuffer(image.constBits(), dtype=np.uint8).reshape(image.height(), image.bytesPerLine() // 4, 4)
    return len(np.unique(arr[:, : image.width(), :3].reshape(-1, 3), axis=0))
