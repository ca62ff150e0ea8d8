"""``depth-synth``: synthetic piecewise-planar depth maps with an aligned colour image, as a per-pixel
``regression`` task (depth super-resolution ×4, the ``depth-sr`` engine's data).

Every image ``i`` is drawn from its own generator ``default_rng([seed, i])`` (so an image does not depend on
``images``), ``size × size`` pixels (``size`` 16, 32 or 64; default 32), coordinates ``u = x / size``,
``v = y / size``:

- **depth** (high resolution, the target): a slanted background plane ``a + b u + c v`` with ``a ~ U(0.45,
  0.75)`` and ``b, c ~ U(−0.2, 0.2)``, then 2–5 objects painted over it in order (a later one occludes an
  earlier one), each an axis-aligned rectangle or a disc (½ each) of side / diameter ``U(size/5, size/2)`` at
  a uniform position, at a constant depth ``U(0.05, 0.95)`` kept at least 0.1 from the plane's mean ``a`` (so
  every object is a real depth step); clipped to ``[0, 1]``. The target map is ``[1, size, size]``.
- **colour** (the guide, RGB in ``[0, 1]``): one colour per region (the background and each object), uniform
  in ``[0.1, 0.9]³`` and at least 0.3 (Euclidean) from every earlier region's colour, so that colour edges
  align with depth edges; with ``texture=True`` each region also gets stripes that are **not** in the depth:
  ``0.2 sin(2π (u' cos θ + v' sin θ) / P)`` added to all three channels, ``θ ~ U(0, π)``, period ``P ~ U(3,
  6)`` pixels (``u', v'`` in pixels), clipped to ``[0, 1]`` (tests texture copying by a colour-guided method).
- **low-resolution depth**: the depth averaged over ``4 × 4`` blocks (``size/4 × size/4``), plus Gaussian noise
  of std ``noise`` (default 0.01), clipped to ``[0, 1]``.
- **input image** ``[4, size, size]``: channels 0–2 the colour, channel 3 the low-resolution depth replicated
  ×4 (nearest: every ``4 × 4`` block holds its block's value), so the family's one-tensor input holds both; a
  model recovers the low-resolution depth exactly by averaging (or reading) each block of channel 3.

Per pixel: ``region`` (categorical: ``background``, ``object1`` .. ``object5``, the region painted last at the
pixel) and ``edge`` (categorical ``flat`` / ``edge``: within 2 pixels, Chebyshev distance, of a depth
discontinuity, a 4-neighbour pair whose depths differ by more than :data:`STEP` = 0.02 — a plane's slope
changes depth by at most 0.2 / 16 per pixel, so only object boundaries count). Per image: ``objects``
(categorical ``2`` .. ``5``). Tokens: the low-resolution depth's fifth (``0-0.2`` .. ``0.8-1``). There is no
image-level class (``target`` −1); ``class_names`` = ``("depth",)``, the one target channel. Splits: 60 / 20 /
20 % of ``images`` (default 1000) by a seeded permutation.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..base import AnnotationSpec, DatasetError, DatasetSpec, check_int, check_split
from .common import SPLITS, ArrayImageDataset, check_options, split_indices

OPTIONS = {"images": 1000, "size": 32, "texture": False, "noise": 0.01, "seed": 0}
FACTOR = 4
STEP = 0.02
EDGE_RADIUS = 2
REGIONS = ("background", "object1", "object2", "object3", "object4", "object5")
DEPTH_BUCKETS = ("0-0.2", "0.2-0.4", "0.4-0.6", "0.6-0.8", "0.8-1")
SOURCE = "synthetic (lstmviz.datasets.images.depth): piecewise-planar depth with an aligned colour image"


def block_mean(depth: np.ndarray, factor: int = FACTOR) -> np.ndarray:
    """``[..., H, W]`` averaged over ``factor × factor`` blocks: ``[..., H/f, W/f]``."""
    *lead, h, w = depth.shape
    return depth.reshape(*lead, h // factor, factor, w // factor, factor).mean(axis=(-3, -1))


def near_discontinuity(depth: np.ndarray, radius: int = EDGE_RADIUS, step: float = STEP) -> np.ndarray:
    """``[H, W]`` bool: pixels within ``radius`` (Chebyshev) of a depth discontinuity of ``depth [H, W]`` (both
    pixels of every 4-neighbour pair whose depths differ by more than ``step``)."""
    h, w = depth.shape
    jump = np.zeros((h, w), bool)
    dy = np.abs(np.diff(depth, axis=0)) > step
    dx = np.abs(np.diff(depth, axis=1)) > step
    jump[:-1] |= dy
    jump[1:] |= dy
    jump[:, :-1] |= dx
    jump[:, 1:] |= dx
    out = np.zeros_like(jump)
    padded = np.pad(jump, radius)
    for oy in range(2 * radius + 1):
        for ox in range(2 * radius + 1):
            out |= padded[oy:oy + h, ox:ox + w]
    return out


def scene(rng: np.random.Generator, size: int, texture: bool, noise: float):
    """One scene: ``(depth [H, W], colour [3, H, W], low-resolution depth [H/4, W/4], region ids [H, W])``."""
    v, u = np.mgrid[0:size, 0:size].astype(np.float64) / size
    a = rng.uniform(0.45, 0.75)
    depth = a + rng.uniform(-0.2, 0.2) * u + rng.uniform(-0.2, 0.2) * v
    region = np.zeros((size, size), np.int64)
    n_objects = int(rng.integers(2, 6))
    for k in range(1, n_objects + 1):
        extent = rng.uniform(size / 5, size / 2)
        cy, cx = rng.uniform(0, size, 2)
        yy, xx = v * size + 0.5, u * size + 0.5
        if rng.random() < 0.5:
            inside = (np.abs(yy - cy) <= extent / 2) & (np.abs(xx - cx) <= extent / 2)
        else:
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= (extent / 2) ** 2
        d = rng.uniform(0.05, 0.95)
        while abs(d - a) < 0.1:
            d = rng.uniform(0.05, 0.95)
        depth = np.where(inside, d, depth)
        region[inside] = k
    depth = np.clip(depth, 0.0, 1.0)
    colours: list[np.ndarray] = []
    while len(colours) < n_objects + 1:
        c = rng.uniform(0.1, 0.9, 3)
        if all(np.linalg.norm(c - o) >= 0.3 for o in colours):
            colours.append(c)
    colour = np.stack(colours)[region].transpose(2, 0, 1)  # [3, H, W]
    if texture:
        stripes = np.zeros((size, size))
        for k in range(n_objects + 1):
            theta, period = rng.uniform(0, np.pi), rng.uniform(3, 6)
            wave = 0.2 * np.sin(2 * np.pi * (u * size * np.cos(theta) + v * size * np.sin(theta)) / period)
            stripes = np.where(region == k, wave, stripes)
        colour = colour + stripes[None]
    colour = np.clip(colour, 0.0, 1.0)
    low = np.clip(block_mean(depth) + noise * rng.standard_normal((size // FACTOR, size // FACTOR)), 0.0, 1.0)
    return depth, colour, low, region


@functools.lru_cache(maxsize=8)
def _generate(images: int, size: int, texture: bool, noise: float, seed: int):
    depth = np.empty((images, 1, size, size), np.float32)
    pixels = np.empty((images, 4, size, size), np.float32)
    regions = np.empty((images, size * size), np.int64)
    edges = np.empty((images, size * size), np.int64)
    objects = np.empty(images, np.int64)
    for i in range(images):
        d, colour, low, region = scene(np.random.default_rng([seed, i]), size, texture, noise)
        depth[i, 0] = d
        pixels[i, :3] = colour
        pixels[i, 3] = np.repeat(np.repeat(low, FACTOR, axis=0), FACTOR, axis=1)
        regions[i] = region.reshape(-1)
        edges[i] = near_discontinuity(d).reshape(-1)
        objects[i] = int(region.max()) - 2
    for a in (depth, pixels, regions, edges, objects):
        a.flags.writeable = False
    return depth, pixels, regions, edges, objects


def build(split: str = "train", **options: Any) -> ArrayImageDataset:
    """One split of ``depth-synth`` (module docstring)."""
    name = "depth-synth"
    check_split(name, split, SPLITS)
    check_options(name, options, OPTIONS)
    opts = {**OPTIONS, **options}
    images = check_int("images", opts["images"], minimum=5)
    size = check_int("size", opts["size"], minimum=1)
    if size not in (16, 32, 64):
        raise DatasetError(f"option 'size' must be 16, 32 or 64, got {size}")
    if not isinstance(opts["texture"], (bool, np.bool_)):
        raise DatasetError(f"option 'texture' must be true or false, got {opts['texture']!r}")
    noise = opts["noise"]
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise <= 0.5:
        raise DatasetError(f"option 'noise' must be a number in [0, 0.5], got {noise!r}")
    seed = check_int("seed", opts["seed"], minimum=0)
    depth, pixels, regions, edges, objects = _generate(images, size, bool(opts["texture"]), float(noise), seed)
    chosen = split_indices(images, seed)[split]
    low = pixels[chosen, 3].reshape(len(chosen), -1)
    tokens = np.minimum((low * 5).astype(np.int64), 4)
    specs = [AnnotationSpec("region", "categorical", labels=REGIONS,
                            description="the region painted last at the pixel (background plane or object k)"),
             AnnotationSpec("edge", "categorical", labels=("flat", "edge"),
                            description=f"within {EDGE_RADIUS} px (Chebyshev) of a depth discontinuity "
                                        f"(a 4-neighbour depth step > {STEP})"),
             AnnotationSpec("objects", "categorical", level="item", labels=("2", "3", "4", "5"),
                            description="the number of objects over the background plane")]
    return ArrayImageDataset(name=name, split=split, images=pixels[chosen], targets=np.full(len(chosen), -1),
                             tokens=tokens, vocab=list(DEPTH_BUCKETS), class_names=("depth",),
                             annotation_specs=specs, position={"region": regions[chosen], "edge": edges[chosen]},
                             item={"objects": objects[chosen]}, options={k: opts[k] for k in OPTIONS},
                             source=SOURCE, task="regression", target_maps=depth[chosen])


DEPTH_SYNTH = DatasetSpec(name="depth-synth", description="synthetic piecewise-planar depth with an aligned colour "
                          "image: RGB + the x4 low-resolution depth in, the high-resolution depth out (regression)",
                          build=build, splits=SPLITS, options=dict(OPTIONS), annotations=("region", "edge", "objects"),
                          source=SOURCE)
