"""Colour digits for colourisation: the grey level cannot tell which of two colours a stroke has.

Pure functions (no registration yet: the ``regression`` task of the image family lands on another branch;
the lead wires a dataset ``digits-chroma`` onto :func:`chroma_split` then).

Colour space: JPEG's full-range YCbCr (ITU-R BT.601 as in JFIF, the conversion Pillow's ``convert("YCbCr")``
and every JPEG encoder use), on a ``[0, 1]`` scale (the 8-bit value / 255)::

    Y  =       0.299    R + 0.587    G + 0.114    B
    Cb = 0.5 − 0.168736 R − 0.331264 G + 0.5      B
    Cr = 0.5 + 0.5      R − 0.418688 G − 0.081312 B

so ``(Cb, Cr) = (0.5, 0.5)`` is colourless and every RGB colour in ``[0, 1]³`` has ``Y, Cb, Cr ∈ [0, 1]``.
Input ``[1, H, W]`` = ``Y``; target map ``[2, H, W]`` = ``(Cb, Cr)``, same scale (no rescaling, so a chroma PSNR
here is the PSNR of JPEG's 8-bit chroma planes with peak 255 ↔ 1).

**Digits** (:func:`colour_digits`): scikit-learn's 8×8 digits upsampled to 16×16 (bilinear, as ``digits-seg``),
intensity ``v ∈ [0, 1]``. Class ``d`` owns a pair of colours of **equal luminance** ``Y* = 0.5`` and opposite
chroma: ``(Cb, Cr) = 0.5 ± ρ (cos θ_d, sin θ_d)`` with ``θ_d = π d / 10`` (the ten pairs' axes are spread over
half a turn, so no two classes share a colour) and ``ρ = 0.25`` (inside the RGB gamut for every angle at
``Y* = 0.5``: the tightest channel, ``B = Y + 1.772 (Cb − 0.5)``, needs ``ρ ≤ 0.282``). Each image picks one of
its class's two colours (``sign``, a fair coin from ``seed``). The stroke is painted on a black background,
``RGB = v · RGB_colour``, which is linear, so ``Y = v Y*`` and ``(Cb, Cr) − 0.5 = v (± ρ (cos θ_d, sin θ_d))``:
the input ``Y`` of the two colour choices is *identical*, only the chroma differs. A regressor that sees ``Y``
alone can at best predict the pair's mean, which is colourless (the "muddy average").

**Photos** (:func:`photo_patches`, optional second source): random ``size × size`` patches of scikit-learn's
china photo (train) or flower photo (test), converted with the same formulas.
"""

from __future__ import annotations

import numpy as np

from .common import resize, split_indices
from .digits import load_digits

LUMA = 0.5
RADIUS = 0.25
SIZE = 16
RGB_TO_YCBCR = np.array([[0.299, 0.587, 0.114],
                         [-0.168736, -0.331264, 0.5],
                         [0.5, -0.418688, -0.081312]], dtype=np.float64)
OFFSET = np.array([0.0, 0.5, 0.5])


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """``[..., 3, H, W]`` RGB in ``[0, 1]`` → ``[..., 3, H, W]`` (Y, Cb, Cr) in ``[0, 1]`` (module docstring)."""
    rgb = np.asarray(rgb, dtype=np.float64)
    out = np.einsum("ij,...jhw->...ihw", RGB_TO_YCBCR, rgb) + OFFSET[:, None, None]
    return np.clip(out, 0.0, 1.0)


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """The inverse of :func:`rgb_to_ycbcr` (clipped to ``[0, 1]``)."""
    inv = np.linalg.inv(RGB_TO_YCBCR)
    ycc = np.asarray(ycc, dtype=np.float64) - OFFSET[:, None, None]
    return np.clip(np.einsum("ij,...jhw->...ihw", inv, ycc), 0.0, 1.0)


def class_colours(luma: float = LUMA, radius: float = RADIUS) -> np.ndarray:
    """``[10, 2, 3]``: for every digit its two colours as RGB in ``[0, 1]`` (same Y, opposite chroma)."""
    theta = np.pi * np.arange(10) / 10
    out = np.empty((10, 2, 3))
    for s, sign in enumerate((1.0, -1.0)):
        ycc = np.stack([np.full(10, luma), 0.5 + sign * radius * np.cos(theta), 0.5 + sign * radius * np.sin(theta)], 1)
        out[:, s] = ycbcr_to_rgb(ycc[:, :, None, None])[:, :, 0, 0]
    return out


def colour_digits(seed: int = 0, size: int = SIZE) -> dict[str, np.ndarray]:
    """All 1,797 digits coloured (module docstring): ``rgb [N, 3, S, S]``, ``y [N, 1, S, S]``,
    ``chroma [N, 2, S, S]`` (float32, JPEG YCbCr on ``[0, 1]``), ``label [N]``, ``sign [N]`` (0/1: which colour
    of the pair), ``intensity [N, S, S]``."""
    images, labels = load_digits()
    v = resize(np.asarray(images), size, "bilinear")[:, 0].astype(np.float64)
    sign = np.random.default_rng(seed).integers(0, 2, len(labels))
    colours = class_colours()[labels, sign]  # [N, 3]
    rgb = v[:, None] * colours[:, :, None, None]
    ycc = rgb_to_ycbcr(rgb)
    return {"rgb": rgb.astype(np.float32), "y": ycc[:, :1].astype(np.float32),
            "chroma": ycc[:, 1:].astype(np.float32), "label": labels, "sign": sign.astype(np.int64),
            "intensity": v.astype(np.float32)}


def chroma_split(split: str, seed: int = 0, size: int = SIZE) -> dict[str, np.ndarray]:
    """One split of :func:`colour_digits` with the digits datasets' 60/20/20 permutation (``seed``):
    ``images`` = Y ``[n, 1, S, S]`` (the model's input), ``target_maps`` = CbCr ``[n, 2, S, S]`` and the other
    arrays of :func:`colour_digits` restricted to the split."""
    data = colour_digits(seed, size)
    idx = split_indices(len(data["label"]), seed)[split]
    out = {k: v[idx] for k, v in data.items()}
    out["images"], out["target_maps"] = out["y"], out["chroma"]
    return out


def photo_patches(split: str = "train", *, count: int = 256, size: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """``count`` random ``size × size`` patches of the china photo (``train``) or the flower photo (``test``):
    ``rgb``, ``images`` (Y ``[n, 1, s, s]``), ``target_maps`` (CbCr ``[n, 2, s, s]``), float32."""
    from .photos import load_photos

    photo = load_photos()[0 if split == "train" else 1]
    _, h, w = photo.shape
    rng = np.random.default_rng(seed)
    ys, xs = rng.integers(0, h - size + 1, count), rng.integers(0, w - size + 1, count)
    rgb = np.stack([photo[:, y:y + size, x:x + size] for y, x in zip(ys, xs)])
    ycc = rgb_to_ycbcr(rgb)
    return {"rgb": rgb.astype(np.float32), "images": ycc[:, :1].astype(np.float32),
            "target_maps": ycc[:, 1:].astype(np.float32)}


OPTIONS = {"size": SIZE, "max_images": None, "seed": 0}
SOURCE = ("scikit-learn's load_digits (UCI optdigits, CC BY 4.0), upsampled and painted in one of two "
          "equal-luminance colours per class (lstmviz.datasets.images.colour_digits)")


def build(split: str = "train", **options):
    """One split of ``digits-chroma``: the colour digits as a per-pixel regression dataset (JPEG's Y in, CbCr
    out); per pixel ``stroke``, per image ``class`` and which colour of its class's pair it has."""
    from ..base import AnnotationSpec, DatasetError, check_int, check_split
    from .common import SPLITS, ArrayImageDataset, check_options
    from .digits import CLASSES, INTENSITY_BUCKETS, STROKE

    check_split("digits-chroma", split, SPLITS)
    check_options("digits-chroma", options, OPTIONS)
    opts = {**OPTIONS, **options}
    size = check_int("size", opts["size"], minimum=8)
    if size not in (8, 16, 32):
        raise DatasetError(f"option 'size' must be 8, 16 or 32, got {size}")
    check_int("max_images", opts["max_images"], minimum=1, allow_none=True)
    seed = check_int("seed", opts["seed"], minimum=0)
    d = chroma_split(split, seed, size)
    d = {k: v[:opts["max_images"]] for k, v in d.items()}
    n = len(d["label"])
    v = d["intensity"].reshape(n, -1)
    tokens = np.minimum(np.ceil(v * 16 / 4).astype(np.int64), 4)
    specs = [AnnotationSpec("stroke", "categorical", labels=("background", "stroke"),
                            description=f"resized intensity > {STROKE}"),
             AnnotationSpec("class", "categorical", level="item", labels=CLASSES, description="the digit"),
             AnnotationSpec("colour", "categorical", level="item", labels=("first", "second"),
                            description="which colour of its class's equal-luminance pair the image has")]
    return ArrayImageDataset(name="digits-chroma", split=split, images=d["images"], targets=d["label"],
                             tokens=tokens, vocab=list(INTENSITY_BUCKETS), class_names=("Cb", "Cr"),
                             annotation_specs=specs, position={"stroke": (v > STROKE).astype(np.int64)},
                             item={"class": d["label"], "colour": d["sign"]}, options={k: opts[k] for k in OPTIONS},
                             source=SOURCE, task="regression", target_maps=d["target_maps"])


def _spec():
    from ..base import DatasetSpec
    from .common import SPLITS

    return DatasetSpec(name="digits-chroma", description="digits in one of two equal-luminance colours per class: "
                       "JPEG Y in, CbCr out (regression; colourisation)", build=build, splits=SPLITS,
                       options=dict(OPTIONS), annotations=("stroke", "class", "colour"), source=SOURCE)


DIGITS_CHROMA = _spec()

__all__ = ["DIGITS_CHROMA", "LUMA", "RADIUS", "build", "chroma_split", "class_colours", "colour_digits", "photo_patches", "rgb_to_ycbcr",
           "ycbcr_to_rgb"]
