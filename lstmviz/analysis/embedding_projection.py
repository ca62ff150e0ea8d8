r"""2-D maps of an embedding table: PCA, and UMAP when ``umap-learn`` is installed (``lstmviz[umap]``).

Both map the unit rows (the analogy methods compare directions, so the map shows directions too).

PCA: with the centred unit rows :math:`X = \hat E - \bar{\hat E}` and the SVD :math:`X = U S V^\top`, the
coordinates are :math:`X V_{:, :2} = U_{:, :2} S_{:2}`; each axis's sign is fixed so that its
largest-magnitude coordinate is positive (a reproducible picture); ``explained`` is
:math:`S_j^2 / \sum S^2`.

UMAP (McInnes, Healy & Melville 2018) with the cosine metric, ``n_neighbors = min(15, rows - 1)`` and a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstmviz.analysis.embedding_tables import EmbeddingTable

PROJECTIONS = ("pca", "umap")
UMAP_HINT = "UMAP needs the optional package umap-learn: pip install 'lstmviz[umap]'"


@dataclass(frozen=True)
class Projection:
    """``xy`` float64 ``[rows, 2]`` of ``method``; ``explained``: PCA's share of variance per axis (else None)."""

    method: str
    xy: np.ndarray
    explained: tuple[float, float] | None = None


def umap_available() -> bool:
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def pca_2d(vectors: np.ndarray) -> Projection:
    x = np.asarray(vectors, np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    u, s, _vt = np.linalg.svd(x, full_matrices=False)
    xy = np.zeros((len(x), 2))
    k = min(2, len(s))
    xy[:, :k] = u[:, :k] * s[:k]
    for j in range(k):
        if xy[np.argmax(np.abs(xy[:, j])), j] < 0:
            xy[:, j] *= -1
    total = float((s ** 2).sum())
    explained = tuple(float(s[j] ** 2 / total) if total > 0 and j < k else 0.0 for j in range(2))
    return Projection("pca", xy, explained)  # type: ignore[arg-type]


def project(table: EmbeddingTable, method: str = "pca", *, seed: int = 0) -> Projection:
    """The table's unit rows mapped to 2-D by ``method`` (``"pca"`` or ``"umap"``)."""
    if method == "pca":
        return pca_2d(table.unit)
    if method != "umap":
        raise ValueError(f"unknown projection {method!r}; use one of {', '.join(PROJECTIONS)}")
    try:
        import umap
    except ImportError:
        raise ValueError(UMAP_HINT) from None
    if len(table) < 4:
        raise ValueError(f"UMAP needs at least 4 rows, the table has {len(table)}; use PCA")
    reducer = umap.UMAP(n_components=2, metric="cosine", n_neighbors=min(15, len(table) - 1), random_state=seed,
                        n_jobs=1)
    xy = reducer.fit_transform(table.unit.astype(np.float64))
    return Projection("umap", np.asarray(xy, np.float64))


__all__ = ["PROJECTIONS", "Projection", "UMAP_HINT", "pca_2d", "project", "umap_available"]
