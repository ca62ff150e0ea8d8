"""Dataset ``hershey-strokes``: characters as pen trajectories, from the Hershey vector fonts.

Source: the PyPI package ``Hershey-Fonts`` (MIT licence, 0.2 MB, offline), which carries the public-domain
Hershey glyphs (A. V. Hershey, 1967) as polylines. Optional: ``pip install "lstmviz[strokes]"``.

Each item is one character drawn by one font, after a random affine distortion:

1. the glyph's polylines (``HersheyFonts.strokes_for_text``) with y flipped to point up, centred on its
   bounding box and scaled so that the larger side of the box is 1;
2. a random affine map (seeded per item): rotation ``U(−rot, rot)`` (default 12°), shear ``U(−0.2, 0.2)``,
   per-axis scale ``U(0.85, 1.15)``;
3. each stroke resampled at equal arc length ``spacing`` (default 0.1; at least 2 points, both ends kept),
   plus Gaussian jitter ``N(0, jitter²)`` (default 0.01) on every point;
4. points -> steps ``(Δx, Δy, pen_up)``: ``Δ`` is the move from the previous point divided by ``spacing``
   (so a pen-down step has length ≈ 1; the first step is the move from (0, 0), the glyph's centre), and
   ``pen_up = 1`` on the last point of every stroke (the pen lifts after it; the last step of the item
   has ``pen_up = 1``).

Fonts (those with all ten digits and ten lowercase letters in the package): ``futural``, ``futuram``,
``rowmans``, ``rowmand``, ``rowmant``, ``timesr``, ``timesi``, ``timesrb``, ``timesib``, ``scripts``,
``scriptc``, ``cursive``. Every split draws every (class, font) pair ``per_font`` times with its own seeds
(train seeds ``0..``, valid ``10_000..``, test ``20_000..``), so splits share fonts but never a distortion.

Tokens: ``"·"`` (pen down: the pen stays on the paper after this point) and ``"↑"`` (pen up after this
point). Annotations: ``stroke`` (numeric, the stroke index of the point), ``progress`` (numeric, t/T) and
``class`` (categorical, per item: the character). Each item also carries ``steps`` (float32 ``[T, 3]``)
and ``target`` (the class id), which the ``strokes`` engines read.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import AnnotationSpec, DatasetSpec, MissingDependency, SequenceDataset, SequenceItem, check_int, check_split

FONTS = ("futural", "futuram", "rowmans", "rowmand", "rowmant", "timesr", "timesi", "timesrb", "timesib", "scripts",
         "scriptc", "cursive")
CHARSETS = {"digits": "0123456789", "lower": "abcdefghijklmnopqrstuvwxyz"}
VOCAB = ["·", "↑"]
SPLIT_SEED = {"train": 0, "valid": 10_000, "test": 20_000}
INSTALL_HINT = 'pip install "lstmviz[strokes]"'


def _hershey():
    try:
        from HersheyFonts import HersheyFonts
    except ImportError as exc:
        raise MissingDependency(f"the hershey-strokes dataset needs the package 'Hershey-Fonts': {INSTALL_HINT}") from exc
    return HersheyFonts


@functools.lru_cache(maxsize=None)
def _font(font: str):
    fonts = _hershey()()
    fonts.load_default_font(font)
    return fonts


def glyph_strokes(font: str, char: str) -> list[np.ndarray]:
    """The glyph's polylines, y up, centred, larger side 1: a list of ``[n, 2]`` float arrays."""
    fonts = _font(font)
    strokes = [np.array(s, dtype=np.float64) for s in fonts.strokes_for_text(char)]
    if not strokes:
        raise ValueError(f"font {font!r} has no glyph for {char!r}")
    for s in strokes:
        s[:, 1] = -s[:, 1]
    allp = np.concatenate(strokes)
    lo, hi = allp.min(0), allp.max(0)
    centre, size = (lo + hi) / 2, max((hi - lo).max(), 1e-9)
    return [(s - centre) / size for s in strokes]


def resample(stroke: np.ndarray, spacing: float) -> np.ndarray:
    """Points at equal arc length ``spacing`` along a polyline (both ends kept, at least 2 points)."""
    seg = np.linalg.norm(np.diff(stroke, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(2, int(round(arc[-1] / spacing)) + 1)
    at = np.linspace(0.0, arc[-1], n)
    return np.stack([np.interp(at, arc, stroke[:, k]) for k in range(2)], 1)


def strokes_to_steps(strokes: list[np.ndarray], spacing: float) -> np.ndarray:
    """``[T, 3]`` float32 ``(Δx, Δy, pen_up)`` from resampled strokes (offsets divided by ``spacing``)."""
    points = np.concatenate(strokes)
    pen = np.concatenate([np.r_[np.zeros(len(s) - 1), 1.0] for s in strokes])
    delta = np.diff(np.concatenate([np.zeros((1, 2)), points]), axis=0) / spacing
    return np.concatenate([delta, pen[:, None]], 1).astype(np.float32)


def steps_to_strokes(steps: np.ndarray, spacing: float = 1.0) -> list[np.ndarray]:
    """The inverse of :func:`strokes_to_steps`: absolute polylines from ``(Δx, Δy, pen_up)`` steps."""
    steps = np.asarray(steps, dtype=np.float64)
    points = np.cumsum(steps[:, :2], 0) * spacing
    strokes, start = [], 0
    for t in range(len(steps)):
        if steps[t, 2] > 0.5 or t == len(steps) - 1:
            strokes.append(points[start:t + 1])
            start = t + 1
    return [s for s in strokes if len(s)]


@dataclass
class StrokeItem(SequenceItem):
    """A character: tokens (pen state), ``steps`` ``[T, 3]`` and the class id ``target``."""

    steps: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))
    target: int = 0


class HersheyStrokes(SequenceDataset):
    def __init__(self, split: str = "train", *, charset: str = "digits", per_font: int = 4, spacing: float = 0.1,
                 rotation: float = 12.0, jitter: float = 0.01, fonts: tuple[str, ...] | None = None):
        check_split("split", split, tuple(SPLIT_SEED))
        if charset not in CHARSETS:
            raise ValueError(f"expected charset to be one of {', '.join(CHARSETS)}, got {charset!r}")
        check_int("per_font", per_font, minimum=1)
        self.name, self.split = "hershey-strokes", split
        self.vocab = list(VOCAB)
        self.class_names = tuple(CHARSETS[charset])
        self.fonts = tuple(fonts) if fonts else FONTS
        self.spacing = float(spacing)
        self.options = {"charset": charset, "per_font": per_font, "spacing": spacing, "rotation": rotation,
                        "jitter": jitter, "fonts": list(self.fonts)}
        self.source = "Hershey-Fonts (PyPI, MIT): public-domain Hershey glyphs, resampled with random affine + jitter"
        self.annotation_specs = [
            AnnotationSpec("stroke", "numeric", description="index of the stroke the point belongs to"),
            AnnotationSpec("progress", "numeric", description="t / T: how far through the character"),
            AnnotationSpec("class", "categorical", level="item", labels=self.class_names,
                           description="the character drawn"),
        ]
        glyphs = {(c, f): glyph_strokes(f, ch) for c, ch in enumerate(self.class_names) for f in self.fonts}
        self._items: list[StrokeItem] = []
        base = SPLIT_SEED[split]
        for c in range(len(self.class_names)):
            for fi, font in enumerate(self.fonts):
                for r in range(per_font):
                    rng = np.random.default_rng([base + r, c, fi])
                    self._items.append(self._make(glyphs[c, font], c, rng, rotation, jitter))

    def _make(self, strokes, c, rng, rotation, jitter) -> StrokeItem:
        a = np.deg2rad(rng.uniform(-rotation, rotation))
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        shear = np.array([[1.0, rng.uniform(-0.2, 0.2)], [0.0, 1.0]])
        scale = np.diag(rng.uniform(0.85, 1.15, 2))
        m = rot @ shear @ scale
        res = [resample(s @ m.T, self.spacing) for s in strokes]
        res = [s + rng.normal(0.0, jitter, s.shape) for s in res]
        steps = strokes_to_steps(res, self.spacing)
        stroke_index = np.concatenate([np.full(len(s), k, np.float32) for k, s in enumerate(res)])
        t = len(steps)
        return StrokeItem(tokens=steps[:, 2].astype(np.int64),
                          annotations={"stroke": stroke_index, "progress": (np.arange(t) / t).astype(np.float32)},
                          item_annotations={"class": c}, text=self.class_names[c], steps=steps, target=c)

    def __len__(self) -> int:
        return len(self._items)

    def _item(self, i: int) -> StrokeItem:
        return self._items[i]


def build(split: str = "train", **options: Any) -> HersheyStrokes:
    return HersheyStrokes(split, **options)


SPEC = DatasetSpec(
    name="hershey-strokes",
    description="characters as pen trajectories (Δx, Δy, pen-up) from the Hershey vector fonts, with random affine "
                "distortion; class = the character",
    build=build,
    options={"charset": "digits", "per_font": 4, "spacing": 0.1, "rotation": 12.0, "jitter": 0.01, "fonts": None},
    annotations=("stroke", "progress", "class"),
    source="PyPI Hershey-Fonts (MIT)",
)
