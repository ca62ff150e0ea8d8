"""``digits-graph``: scikit-learn's 8x8 digits, each image a signal on a k-NN graph of its 64 pixels.

Following Bruna et al. (the "subsampled MNIST" domain) and Defferrard et al.'s graph construction, the
graph is built from the pixel coordinates only and is the same for every image:

* pixel ``p = 8 y + x`` sits at ``z_p = (x, y)``; its ``k`` nearest other pixels (Euclidean distance,
  ties broken by the smaller pixel index) are its neighbours, and the graph is the union of these
  k-NN relations (an edge if either end chose the other), so degrees are ``>= k``;
* edge weights are Gaussian: ``w_pq = exp(-|z_p - z_q|^2 / sigma^2)`` with ``sigma`` the mean over
  pixels of the distance to their ``k``-th neighbour (Defferrard et al.'s choice);
* the stored layout is ``(x, -y)``, so the graph view draws the image upright.

Node feature: the pixel's intensity / 16 (``[64, 1]``); tokens: the intensity bucket
``0, 1-4, 5-8, 9-12, 13-16``. Splits: a permutation of the 1,797 images drawn from ``seed`` gives 60 %
to train, 20 % to valid and the rest to test; ``max_images`` keeps the first images of each split.
Annotations per node: ``intensity`` (numeric 0..16), ``graph_class`` (the image's digit on every
node), ``degree``, ``wl``, ``hops`` (:mod:`.common`, the same for every image); per graph: ``class``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..base import AnnotationSpec, DatasetError, DatasetSpec, MissingDependency, check_int, check_split
from ..graph_base import GraphItem
from .common import (
    INSTALL_HINT,
    SPLITS,
    GraphListDataset,
    WLIndex,
    check_hop_root,
    check_options,
    degree_bucket,
    degrees_of,
    freeze,
    hops,
    make_geometry,
    node_annotation_specs,
    wl_hashes,
)

SIDE = 8
PIXELS = SIDE * SIDE
INTENSITY_BUCKETS = ("0", "1-4", "5-8", "9-12", "13-16")
CLASSES = tuple(str(d) for d in range(10))
TRAIN_FRACTION, VALID_FRACTION = 0.6, 0.2


def pixel_coordinates() -> np.ndarray:
    """``(x, y)`` of pixel ``p = 8 y + x`` (float64 ``[64, 2]``)."""
    y, x = np.divmod(np.arange(PIXELS), SIDE)
    return np.column_stack([x, y]).astype(np.float64)


def knn_graph(points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetrised k-NN graph with Gaussian weights (see the module docstring): edges ``[E, 2]``
    (``a < b``, sorted) and weights ``[E]``."""
    n = len(points)
    dist = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=-1))
    np.fill_diagonal(dist, np.inf)
    nearest = np.argsort(dist, axis=1, kind="stable")[:, :k]
    sigma = dist[np.arange(n), nearest[:, -1]].mean()
    chosen = np.zeros((n, n), dtype=bool)
    chosen[np.repeat(np.arange(n), k), nearest.ravel()] = True
    a, b = np.nonzero(np.triu(chosen | chosen.T, 1))
    weights = np.exp(-dist[a, b] ** 2 / sigma**2)
    return np.column_stack([a, b]).astype(np.int64), weights


@functools.lru_cache(maxsize=1)
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits: images ``[1797, 64]`` (0..16) and labels ``[1797]``."""
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError as exc:
        raise MissingDependency(f"the digits-graph dataset needs the package 'scikit-learn': {INSTALL_HINT}") from exc
    bunch = sklearn_load_digits()
    return bunch.data.astype(np.int64), bunch.target.astype(np.int64)


@functools.lru_cache(maxsize=4)
def _split_indices(seed: int) -> dict[str, np.ndarray]:
    _, labels = load_digits()
    perm = np.random.default_rng(seed).permutation(len(labels))
    a = int(round(TRAIN_FRACTION * len(labels)))
    b = a + int(round(VALID_FRACTION * len(labels)))
    return {"train": perm[:a], "valid": perm[a:b], "test": perm[b:]}


OPTIONS = {"k": 8, "max_images": None, "hop_root": 0, "seed": 0}
SOURCE = ("scikit-learn's load_digits (UCI optdigits, 1,797 8x8 images, CC BY 4.0) on a pixel k-NN graph with "
          "Gaussian weights (Bruna et al. arXiv:1312.6203; Defferrard et al. arXiv:1606.09375)")


def build(split: str = "train", **options: Any) -> GraphListDataset:
    """One split of the digits on the pixel graph (see the module docstring)."""
    check_split("digits-graph", split, SPLITS)
    check_options("digits-graph", options, OPTIONS)
    opts = {**OPTIONS, **options}
    k = check_int("k", opts["k"], minimum=1)
    if k >= PIXELS:
        raise DatasetError(f"option 'k' is {k} but a pixel has only {PIXELS - 1} other pixels; choose k < {PIXELS}")
    max_images = check_int("max_images", opts["max_images"], minimum=1, allow_none=True)
    hop_root = check_hop_root(opts["hop_root"], PIXELS, "the 8x8 pixel graph")
    seed = check_int("seed", opts["seed"], minimum=0)
    images, labels = load_digits()
    chosen = _split_indices(seed)[split][:max_images]
    xy = pixel_coordinates()
    edges, weights = knn_graph(xy, k)
    geometry = make_geometry(PIXELS, edges, weights=weights, coordinates=xy * [1.0, -1.0] + 0.0,
                             node_names=[f"({int(x)},{int(y)})" for x, y in xy])
    wl_index = WLIndex()
    shared = {
        "degree": freeze(degree_bucket(degrees_of(PIXELS, edges))),
        "wl": freeze(wl_index.add(wl_hashes(PIXELS, edges))),
        "hops": freeze(hops(geometry, hop_root)),
    }
    items = []
    for i in chosen.tolist():
        pixels = images[i]
        digit = int(labels[i])
        items.append(GraphItem(
            geometry=geometry,
            features=(pixels / 16.0).astype(np.float32)[:, None],
            tokens=np.searchsorted([1, 5, 9, 13], pixels, side="right").astype(np.int64),
            graph_target=digit,
            annotations={"intensity": freeze(pixels.astype(np.float64)),
                         "graph_class": freeze(np.full(PIXELS, digit, dtype=np.int64)), **shared},
            item_annotations={"class": digit},
        ))
    specs = [
        AnnotationSpec("intensity", "numeric", description="the pixel's intensity, 0 (white) .. 16 (black)"),
        AnnotationSpec("graph_class", "categorical", labels=CLASSES, description="the image's digit"),
        *node_annotation_specs(wl_index.labels, hop_root),
        AnnotationSpec("class", "categorical", level="item", labels=CLASSES, description="the image's digit"),
    ]
    return GraphListDataset(name="digits-graph", split=split, items=items, vocab=list(INTENSITY_BUCKETS),
                            annotation_specs=specs,
                            options={"k": k, "max_images": max_images, "hop_root": hop_root, "seed": seed},
                            source=SOURCE, task="graph", num_features=1, class_names=CLASSES,
                            extra={"edges": int(len(edges)), "images_in_split": int(len(_split_indices(seed)[split]))})


SPEC = DatasetSpec(
    name="digits-graph",
    description="scikit-learn's 8x8 digits as signals on a k-NN graph of the 64 pixels (graph classification)",
    build=build,
    splits=SPLITS,
    options=dict(OPTIONS),
    annotations=("intensity", "graph_class", "degree", "wl", "hops", "class"),
    source=SOURCE,
)
