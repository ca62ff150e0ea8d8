"""``digits``, ``digits-color``, ``digits-multi``: scikit-learn's 8x8 digits as images.

* ``digits``: 1 channel, intensity / 16 in ``[0, 1]``; option ``size`` 8, 16 or 32 (upsampled with
  ``resize`` ``nearest`` or ``bilinear``, numpy only). Splits: a permutation of the 1,797 images drawn from
  ``seed`` gives 60 % to train, 20 % to valid, the rest to test; ``max_images`` keeps the first images of a
  split. Per pixel: ``stroke`` (categorical: background / stroke, intensity > 1/4), ``quadrant``
  (categorical, 4: which quarter of the image), ``row`` and ``col`` (numeric); per image: ``class``.
  Tokens: the pixel's intensity bucket (``0``, ``1-4``, ``5-8``, ``9-12``, ``13-16`` in 1/16 steps).
* ``digits-color``: 3 channels, the digit painted in a foreground colour on a background colour
  (``pixel = bg (1 - v) + fg v``), both drawn per image from 6 colours (fg != bg) with ``seed``; per image
  also ``fg_color`` and ``bg_color``.
* ``digits-multi``: multilabel 16x16 composites: 2 or 3 digits of the split placed in distinct cells of a
  2x2 grid (seeded); targets = the set of digits present (``task = multilabel``; ``target`` = the
  smallest); per pixel ``digit_here`` (categorical: the digit whose stroke covers it, or background).
  Every digit is drawn independently and uniformly from the split, so the labels carry no co-occurrence
  structure beyond "2-3 distinct cells" (their PMI is about the same for every pair of digits).
* ``digits-themes``: the same composites with labels that co-occur by a fixed rule: each image draws a
  theme from ``THEMES`` (``{0,6,8,9}``, ``{1,4,7}``, ``{2,3,5}``, uniformly) and each of its 2 or 3 digits
  is a digit of that theme (uniform over the theme), except with probability ``stray`` (option, default
  0.1) a digit of all ten; then an image of that digit from the split. Per image also ``theme``.
* ``digits-seg``: the ``digits`` images as a segmentation task (``task = segmentation``), upsampled to
  ``size`` (default 16) with ``resize`` (default ``bilinear``) as ``digits`` does; the mask gives every
  pixel a class: 0 ``background`` where the (resized) intensity is at most ``STROKE`` (1/4, the
  ``stroke`` annotation's rule), ``1 + digit`` on the stroke, so 11 pixel classes named ``background``,
  ``0`` .. ``9``; no pixel is ignored. Same splits, tokens and per-pixel / per-image annotations as
  ``digits`` (``target`` is the image's digit, kept as the item annotation ``class``).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..base import AnnotationSpec, DatasetError, DatasetSpec, MissingDependency, check_int, check_split
from .common import SPLITS, ArrayImageDataset, check_options, resize, split_indices

CLASSES = tuple(str(d) for d in range(10))
INTENSITY_BUCKETS = ("0", "1-4", "5-8", "9-12", "13-16")
QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")
COLORS = {"red": (1.0, 0.1, 0.1), "green": (0.1, 0.8, 0.1), "blue": (0.15, 0.2, 1.0),
          "yellow": (1.0, 0.9, 0.1), "white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}
STROKE = 0.25
SEG_CLASSES = ("background",) + CLASSES
SOURCE = "scikit-learn's load_digits (UCI optdigits, 1,797 8x8 images, CC BY 4.0)"
INSTALL_HINT = "pip install 'lstmviz[vision]' (or pip install scikit-learn)"


@functools.lru_cache(maxsize=1)
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The bundled digits as float32 ``[1797, 1, 8, 8]`` in ``[0, 1]`` and labels ``[1797]``."""
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError as exc:
        raise MissingDependency(f"the digits datasets need the package 'scikit-learn': {INSTALL_HINT}") from exc
    bunch = sklearn_load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]
    images.flags.writeable = False
    return images, bunch.target.astype(np.int64)


def pixel_grid(h: int, w: int) -> dict[str, np.ndarray]:
    """``row``, ``col`` and ``quadrant`` of every pixel, raster order."""
    y, x = np.divmod(np.arange(h * w), w)
    quadrant = (y >= h // 2).astype(np.int64) * 2 + (x >= w // 2)
    return {"row": y.astype(np.float64), "col": x.astype(np.float64), "quadrant": quadrant}


def intensity_tokens(gray: np.ndarray) -> np.ndarray:
    """Intensity bucket per pixel of ``gray [N, H*W]`` in [0, 1]."""
    return np.searchsorted(np.array([0.5, 4.5, 8.5, 12.5]) / 16, gray, side="right").astype(np.int64)


def grid_specs() -> list[AnnotationSpec]:
    return [
        AnnotationSpec("quadrant", "categorical", labels=QUADRANTS, description="which quarter of the image"),
        AnnotationSpec("row", "numeric", description="the pixel's row (0 = top)"),
        AnnotationSpec("col", "numeric", description="the pixel's column (0 = left)"),
    ]


DIGITS_OPTIONS = {"size": 8, "resize": "nearest", "max_images": None, "seed": 0}
COLOR_OPTIONS = dict(DIGITS_OPTIONS)
SEG_OPTIONS = {"size": 16, "resize": "bilinear", "max_images": None, "seed": 0}
MULTI_OPTIONS = {"max_images": None, "seed": 0}
THEMES_OPTIONS = {"max_images": None, "seed": 0, "stray": 0.1}
THEMES = ((0, 6, 8, 9), (1, 4, 7), (2, 3, 5))
"""The digit groups of ``digits-themes``: the digits of one image come from one group."""


def _common(name: str, split: str, options: dict, defaults: dict):
    check_split(name, split, SPLITS)
    check_options(name, options, defaults)
    opts = {**defaults, **options}
    if "size" in opts:
        size = check_int("size", opts["size"], minimum=1)
        if size not in (8, 16, 32):
            raise DatasetError(f"option 'size' must be 8, 16 or 32, got {size}")
        if opts["resize"] not in ("nearest", "bilinear"):
            raise DatasetError(f"option 'resize' must be 'nearest' or 'bilinear', got {opts['resize']!r}")
    check_int("max_images", opts["max_images"], minimum=1, allow_none=True)
    check_int("seed", opts["seed"], minimum=0)
    images, labels = load_digits()
    chosen = split_indices(len(labels), opts["seed"])[split][:opts["max_images"]]
    return opts, images, labels, chosen


def _gray_dataset(name: str, split: str, options: dict, defaults: dict, color: bool) -> ArrayImageDataset:
    opts, images, labels, chosen = _common(name, split, options, defaults)
    gray = resize(images[chosen], opts["size"], opts["resize"])
    n, _, h, w = gray.shape
    flat = gray.reshape(n, h * w)
    grid = pixel_grid(h, w)
    position = {"stroke": (flat > STROKE).astype(np.int64),
                "quadrant": np.broadcast_to(grid["quadrant"], (n, h * w)),
                "row": np.broadcast_to(grid["row"], (n, h * w)), "col": np.broadcast_to(grid["col"], (n, h * w))}
    item = {"class": labels[chosen]}
    specs = [AnnotationSpec("stroke", "categorical", labels=("background", "stroke"),
                            description=f"stroke: intensity above {STROKE}"), *grid_specs()]
    pixels = gray
    if color:
        palette = np.array(list(COLORS.values()), dtype=np.float32)
        rng = np.random.default_rng([opts["seed"], 1])  # per image of the whole set: the same in every split
        fg_all = rng.integers(0, len(palette), len(labels))
        bg_all = (fg_all + rng.integers(1, len(palette), len(labels))) % len(palette)
        fg, bg = fg_all[chosen], bg_all[chosen]
        pixels = (palette[bg][:, :, None, None] * (1 - gray) + palette[fg][:, :, None, None] * gray).astype(np.float32)
        item.update(fg_color=fg, bg_color=bg)
        names = tuple(COLORS)
        specs += [AnnotationSpec("fg_color", "categorical", level="item", labels=names,
                                 description="the digit's colour"),
                  AnnotationSpec("bg_color", "categorical", level="item", labels=names,
                                 description="the background colour")]
    specs.append(AnnotationSpec("class", "categorical", level="item", labels=CLASSES, description="the image's digit"))
    return ArrayImageDataset(name=name, split=split, images=pixels, targets=labels[chosen],
                             tokens=intensity_tokens(flat), vocab=list(INTENSITY_BUCKETS), class_names=CLASSES,
                             annotation_specs=specs, position=position, item=item,
                             options={k: opts[k] for k in defaults}, source=SOURCE)


def build_digits(split: str = "train", **options: Any) -> ArrayImageDataset:
    """One split of the digits, 1 channel (module docstring)."""
    return _gray_dataset("digits", split, options, DIGITS_OPTIONS, color=False)


def build_color(split: str = "train", **options: Any) -> ArrayImageDataset:
    """One split of the coloured digits, 3 channels (module docstring)."""
    return _gray_dataset("digits-color", split, options, COLOR_OPTIONS, color=True)


def build_seg(split: str = "train", **options: Any) -> ArrayImageDataset:
    """One split of the digits as a per-pixel segmentation task (module docstring)."""
    plain = _gray_dataset("digits-seg", split, options, SEG_OPTIONS, color=False)
    stroke = plain.position["stroke"].reshape(len(plain), plain.height, plain.width)
    masks = np.where(stroke > 0, 1 + plain.targets[:, None, None], 0).astype(np.int64)
    return ArrayImageDataset(name=plain.name, split=plain.split, images=plain.images, targets=plain.targets,
                             tokens=plain.tokens, vocab=plain.vocab, class_names=SEG_CLASSES,
                             annotation_specs=plain.annotation_specs, position=plain.position, item=plain.item,
                             options=plain.options, source=plain.source, task="segmentation", masks=masks)


def build_multi(split: str = "train", **options: Any) -> ArrayImageDataset:
    """One split of the 16x16 multi-digit composites (module docstring)."""
    return _composites("digits-multi", split, options, MULTI_OPTIONS)


def build_themes(split: str = "train", **options: Any) -> ArrayImageDataset:
    """One split of the 16x16 composites whose digits co-occur by theme (module docstring)."""
    return _composites("digits-themes", split, options, THEMES_OPTIONS)


def _composites(name: str, split: str, options: dict, defaults: dict) -> ArrayImageDataset:
    opts, images, labels, chosen = _common(name, split, options, defaults)
    themed = "stray" in defaults
    if themed:
        stray = opts["stray"]
        if isinstance(stray, bool) or not isinstance(stray, (int, float)) or not 0.0 <= stray <= 1.0:
            raise DatasetError(f"option 'stray' must be a probability in [0, 1], got {stray!r}")
    pool = split_indices(len(labels), opts["seed"])[split]  # digits of this split only
    n = len(chosen)
    rng = np.random.default_rng([opts["seed"], 2, SPLITS.index(split)] + ([3] if themed else []))
    out = np.zeros((n, 1, 16, 16), np.float32)
    here = np.full((n, 16, 16), 10, np.int64)
    multi = np.zeros((n, 10), np.float32)
    counts = rng.integers(2, 4, n)
    themes = rng.integers(0, len(THEMES), n) if themed else None
    by_class = [pool[labels[pool] == c] for c in range(10)]
    for k in range(n):  # building the set, not a hot path
        cells = rng.permutation(4)[:counts[k]]
        for cell in cells:
            if themed:
                group = THEMES[themes[k]]
                digit = int(rng.integers(0, 10)) if rng.random() < stray else group[int(rng.integers(0, len(group)))]
                j = by_class[digit][rng.integers(0, len(by_class[digit]))]
            else:
                j = pool[rng.integers(0, len(pool))]
            y, x = 8 * (cell // 2), 8 * (cell % 2)
            out[k, 0, y:y + 8, x:x + 8] = images[j, 0]
            here[k, y:y + 8, x:x + 8] = np.where(images[j, 0] > STROKE, labels[j], 10)
            multi[k, labels[j]] = 1.0
    flat = out.reshape(n, 256)
    grid = pixel_grid(16, 16)
    position = {"digit_here": here.reshape(n, 256), "stroke": (flat > STROKE).astype(np.int64),
                "quadrant": np.broadcast_to(grid["quadrant"], (n, 256)),
                "row": np.broadcast_to(grid["row"], (n, 256)), "col": np.broadcast_to(grid["col"], (n, 256))}
    specs = [AnnotationSpec("digit_here", "categorical", labels=CLASSES + ("background",),
                            description="the digit whose stroke covers the pixel, or background"),
             AnnotationSpec("stroke", "categorical", labels=("background", "stroke"),
                            description=f"stroke: intensity above {STROKE}"), *grid_specs(),
             AnnotationSpec("digits", "numeric", level="item", description="how many digits the image holds")]
    item = {"digits": counts.astype(np.int64)}
    if themed:
        item["theme"] = themes.astype(np.int64)
        specs.append(AnnotationSpec("theme", "categorical", level="item",
                                    labels=tuple("".join(map(str, g)) for g in THEMES),
                                    description="the digit group the image's digits were drawn from"))
    return ArrayImageDataset(name=name, split=split, images=out, targets=multi.argmax(1), multi=multi,
                             tokens=intensity_tokens(flat), vocab=list(INTENSITY_BUCKETS), class_names=CLASSES,
                             annotation_specs=specs, position=position, item=item,
                             options={k: opts[k] for k in defaults}, source=SOURCE, task="multilabel")


DIGITS = DatasetSpec(name="digits", description="scikit-learn's 8x8 digits as 1-channel images (8, 16 or 32 px)",
                     build=build_digits, splits=SPLITS, options=dict(DIGITS_OPTIONS),
                     annotations=("stroke", "quadrant", "row", "col", "class"), source=SOURCE)
DIGITS_COLOR = DatasetSpec(name="digits-color", description="the digits painted in a colour on a coloured background "
                           "(3 channels)", build=build_color, splits=SPLITS, options=dict(COLOR_OPTIONS),
                           annotations=("stroke", "quadrant", "row", "col", "fg_color", "bg_color", "class"),
                           source=SOURCE)
DIGITS_MULTI = DatasetSpec(name="digits-multi", description="2-3 digits in a 2x2 grid of a 16x16 image "
                           "(multilabel)", build=build_multi, splits=SPLITS, options=dict(MULTI_OPTIONS),
                           annotations=("digit_here", "stroke", "quadrant", "row", "col", "digits"), source=SOURCE)
DIGITS_THEMES = DatasetSpec(name="digits-themes", description="2-3 digits of one theme ({0,6,8,9}, {1,4,7}, "
                            "{2,3,5}) in a 2x2 grid of a 16x16 image (multilabel, co-occurring labels)",
                            build=build_themes, splits=SPLITS, options=dict(THEMES_OPTIONS),
                            annotations=("digit_here", "stroke", "quadrant", "row", "col", "digits", "theme"),
                            source=SOURCE)
DIGITS_SEG = DatasetSpec(name="digits-seg", description="the digits as per-pixel segmentation: background or "
                         "the stroke's digit (11 pixel classes; 16 px by default)", build=build_seg, splits=SPLITS,
                         options=dict(SEG_OPTIONS), annotations=("stroke", "quadrant", "row", "col", "class"),
                         source=SOURCE)
