"""Four synthetic "modalities" of scikit-learn's digits, for hetero-modal segmentation (HeMIS, issue 17).

Pure numpy/scipy functions; nothing is registered here (the lead wires a ``segmentation`` dataset on top once
the image family has that task).

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


__all__ = ["MASK_CLASSES", "MODALITIES", "NUM_CLASSES", "STROKE", "make_modalities", "modality_split",
           "stroke_mask"]
