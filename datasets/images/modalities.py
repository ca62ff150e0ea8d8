"""Four synthetic "modalities" of scikit-learn's digits, for hetero-modal segmentation (HeMIS, issue 17).

Pure numpy/scipy functions, and the registered ``segmentation`` dataset ``digits-modalities`` built on them
(:data:`DIGITS_MODALITIES`: options ``max_images``, ``seed``; per pixel ``stroke`` (mask > 0), ``quadrant``,
``row``, ``col``; per image ``class``; the token of a pixel is the intensity bucket of its ``noisy`` channel).

Every digit of a split (the split is :func:`~lstmviz.datasets.images.common.split_indices`, the same 60/20/20
seeded permutation as the ``digits`` dataset) is upsampled from 8×8 to 16×16 with the digits datasets'
``resize(..., "bilinear")`` to a clean image ``v ∈ [0, 1]^{16×16}``. Four channels are derived from ``v``, each
in ``[0, 1]`` and each only partly informative (``rng = numpy.random.default_rng([seed, 17, split index])``):

0. ``noisy``:    ``clip(v + ε, 0, 1)``, ``ε ~ N(0, NOISE_SIGMA²)`` i.i.d. per pixel (strong noise: the shape is
   there, the exact stroke boundary is not).
1. ``blurred``:  ``g / max(g)`` with ``g = gaussian_filter(v, BLUR_SIGMA)`` (scipy.ndimage, mode ``nearest``):
   the location of the digit, little of its thin structure.
2. ``edges``:    ``e / max(e)`` with ``e = hypot(sobel_y(v), sobel_x(v))`` (scipy.ndimage.sobel, mode
   ``nearest``): stroke boundaries, bright on both sides of a stroke, dark inside thick strokes.
3. ``inverted``: ``(1 − v) · b``, a contrast-inverted copy times a smooth multiplicative bias field
   ``b = BIAS_LOW + (1 − BIAS_LOW) · (r − min r) / (max r − min r)``, where ``r`` is white noise smoothed by
   ``gaussian_filter(·, BIAS_SIGMA)``: the stroke is dark, the background's brightness drifts across the image
   (a bright stroke-free region in one corner can be as dark as a stroke in a dim corner).
   An image whose ``max`` is 0 (never happens on the digits) would keep 0 in channels 1 and 2.

Mask (``[16, 16]`` int64, ``NUM_CLASSES = 11`` pixel classes): ``0`` = background, ``1 + d`` on the **stroke**
pixels of a digit ``d``, where a stroke pixel is one whose clean upsampled intensity ``v > STROKE = 0.25`` (the
``stroke`` annotation's threshold of the ``digits`` dataset; about 45 % of the pixels of a 16×16 digit, so background is about 55 %). Nothing
is ignored (no −1): every pixel has a class.
"""

from __future__ import annotations

import numpy as np

from .common import SPLITS, resize, split_indices
from .digits import STROKE, load_digits

MODALITIES = ("noisy", "blurred", "edges", "inverted")
"""The channel names, in channel order."""
MASK_CLASSES = ("background",) + tuple(f"digit {d}" for d in range(10))
NUM_CLASSES = len(MASK_CLASSES)
SIZE = 16
NOISE_SIGMA = 0.35
BLUR_SIGMA = 1.5
BIAS_SIGMA = 4.0
BIAS_LOW = 0.3


def _normalise_max(a: np.ndarray) -> np.ndarray:
    peak = a.reshape(len(a), -1).max(axis=1)[:, None, None]
    return np.divide(a, peak, out=np.zeros_like(a), where=peak > 0)


def make_modalities(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The four channels ``[N, 4, H, W]`` float32 of clean images ``[N, H, W]`` in ``[0, 1]`` (module docstring)."""
    from scipy import ndimage

    v = np.asarray(clean, dtype=np.float64)
    n, h, w = v.shape
    noisy = np.clip(v + rng.normal(0.0, NOISE_SIGMA, v.shape), 0.0, 1.0)
    blurred = _normalise_max(ndimage.gaussian_filter(v, (0, BLUR_SIGMA, BLUR_SIGMA), mode="nearest"))
    edges = _normalise_max(np.hypot(ndimage.sobel(v, axis=1, mode="nearest"),
                                    ndimage.sobel(v, axis=2, mode="nearest")))
    r = ndimage.gaussian_filter(rng.standard_normal(v.shape), (0, BIAS_SIGMA, BIAS_SIGMA), mode="wrap")
    lo = r.reshape(n, -1).min(axis=1)[:, None, None]
    hi = r.reshape(n, -1).max(axis=1)[:, None, None]
    bias = BIAS_LOW + (1.0 - BIAS_LOW) * (r - lo) / np.maximum(hi - lo, 1e-12)
    inverted = (1.0 - v) * bias
    out = np.stack([noisy, blurred, edges, inverted], axis=1)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def stroke_mask(clean: np.ndarray, digits: np.ndarray) -> np.ndarray:
    """``[N, H, W]`` int64: 0 off the stroke, ``1 + digit`` where ``clean > STROKE``."""
    return np.where(np.asarray(clean) > STROKE, 1 + np.asarray(digits, np.int64)[:, None, None], 0).astype(np.int64)


def modality_split(split: str = "train", *, seed: int = 0,
                   max_images: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One split: ``(images [N, 4, 16, 16] float32 in [0, 1], masks [N, 16, 16] int64 in 0..10, targets [N] int64)``.

    ``targets`` are the digits; ``max_images`` keeps the first images of the split (as the digits datasets do).
    The same ``seed`` gives the same arrays; splits draw their noise from different streams.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    images, labels = load_digits()
    chosen = split_indices(len(labels), seed)[split][:max_images]
    clean = resize(images[chosen], SIZE, "bilinear")[:, 0]
    rng = np.random.default_rng([seed, 17, SPLITS.index(split)])
    return make_modalities(clean, rng), stroke_mask(clean, labels[chosen]), labels[chosen].astype(np.int64)


MODALITY_OPTIONS = {"max_images": None, "seed": 0}


def build_modalities(split: str = "train", **options):
    """One split of the 4-modality digits as a registered segmentation dataset (module docstring)."""
    from ..base import AnnotationSpec, check_int, check_split
    from .common import ArrayImageDataset, check_options
    from .digits import CLASSES, INTENSITY_BUCKETS, SOURCE, grid_specs, intensity_tokens, pixel_grid

    check_split("digits-modalities", split, SPLITS)
    check_options("digits-modalities", options, MODALITY_OPTIONS)
    opts = {**MODALITY_OPTIONS, **options}
    check_int("max_images", opts["max_images"], minimum=1, allow_none=True)
    check_int("seed", opts["seed"], minimum=0)
    images, masks, targets = modality_split(split, seed=opts["seed"], max_images=opts["max_images"])
    n = len(images)
    hw = SIZE * SIZE
    grid = pixel_grid(SIZE, SIZE)
    position = {"stroke": (masks.reshape(n, hw) > 0).astype(np.int64),
                "quadrant": np.broadcast_to(grid["quadrant"], (n, hw)),
                "row": np.broadcast_to(grid["row"], (n, hw)), "col": np.broadcast_to(grid["col"], (n, hw))}
    specs = [AnnotationSpec("stroke", "categorical", labels=("background", "stroke"),
                            description=f"stroke: clean intensity above {STROKE}"), *grid_specs(),
             AnnotationSpec("class", "categorical", level="item", labels=CLASSES, description="the image's digit")]
    return ArrayImageDataset(name="digits-modalities", split=split, images=images, targets=targets,
                             tokens=intensity_tokens(images[:, 0].reshape(n, hw)), vocab=list(INTENSITY_BUCKETS),
                             class_names=MASK_CLASSES, annotation_specs=specs, position=position,
                             item={"class": targets}, options={k: opts[k] for k in MODALITY_OPTIONS},
                             source=SOURCE + "; four synthetic modalities (lstmviz.datasets.images.modalities)",
                             task="segmentation", masks=masks)


def _spec():
    from ..base import DatasetSpec

    return DatasetSpec(name="digits-modalities", description="the digits as four partly informative modalities "
                       f"({', '.join(MODALITIES)}; 4 channels, 16 px) for per-pixel segmentation (11 pixel classes)",
                       build=build_modalities, splits=SPLITS, options=dict(MODALITY_OPTIONS),
                       annotations=("stroke", "quadrant", "row", "col", "class"), source="scikit-learn's load_digits")


DIGITS_MODALITIES = _spec()

__all__ = ["DIGITS_MODALITIES", "MASK_CLASSES", "MODALITIES", "NUM_CLASSES", "STROKE", "build_modalities",
           "make_modalities", "modality_split", "stroke_mask"]
