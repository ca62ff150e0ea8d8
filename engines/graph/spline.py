r"""Cubic B-spline basis over the normalised Laplacian's spectrum, for smooth spectral multipliers.

Bruna et al. (arXiv:1312.6203, §4.2) make a spectral filter's multipliers smooth in frequency,
:math:`\theta = B \alpha`, with :math:`B` a fixed cubic-spline basis and :math:`\alpha \in
\mathbb{R}^q` the learned coefficients; smoothness in frequency gives spatial decay of the filter.

Here the basis is tied to the eigenvalue :math:`\lambda \in [0, 2]` (the normalised Laplacian's range),
not to the eigen-index, so the same :math:`\alpha` means the same filter :math:`\theta(L)` on every graph,
and a filter is unchanged by the choice of eigenvectors inside a degenerate eigenspace. ``q`` clamped
cubic B-splines on uniform knots over :math:`[0, 2]`:

.. math::
    t = (0, 0, 0, 0, t_1, \dots, t_{q-4}, 2, 2, 2, 2), \quad t_m = \frac{2m}{q-3}, \qquad
    B_{\lambda, s} = N_{s,3}(\lambda)\ \ (s = 0 \dots q-1),

with :math:`N_{s,3}` the Cox-de Boor B-splines (:meth:`scipy.interpolate.BSpline.design_matrix`). Each
row sums to 1 (partition of unity), every entry is in :math:`[0, 1]`, ``q >= 4``. Numpy/scipy only.
"""

from __future__ import annotations

import numpy as np

LAMBDA_MAX = 2.0
"""The normalised Laplacian's eigenvalues lie in ``[0, 2]``; the basis covers exactly that range."""

DEGREE = 3


def spline_knots(q: int, lo: float = 0.0, hi: float = LAMBDA_MAX) -> np.ndarray:
    """The clamped uniform knot vector of ``q`` cubic B-splines over ``[lo, hi]`` (``q + 4`` knots)."""
    if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or q < DEGREE + 1:
        raise ValueError(f"expected spline_knots to be an int >= {DEGREE + 1} (the number of cubic B-spline "
                         f"coefficients per filter), got {q!r}")
    inner = np.linspace(lo, hi, int(q) - DEGREE + 1)
    return np.concatenate([[lo] * DEGREE, inner, [hi] * DEGREE]).astype(np.float64)


def bspline_basis(lam, q: int, lo: float = 0.0, hi: float = LAMBDA_MAX) -> np.ndarray:
    """``B`` float64 ``[len(lam), q]``: the ``q`` cubic B-splines over ``[lo, hi]`` at the eigenvalues ``lam``.

    Eigenvalues a rounding error outside ``[lo, hi]`` (``eigh`` gives ``-1e-16`` or ``2 + 1e-15``) are
    clipped into it.
    """
    from scipy.interpolate import BSpline

    knots = spline_knots(q, lo, hi)
    x = np.clip(np.asarray(lam, dtype=np.float64).reshape(-1), lo, hi)
    if len(x) == 0:
        return np.zeros((0, int(q)))
    return BSpline.design_matrix(x, knots, DEGREE).toarray()


__all__ = ["DEGREE", "LAMBDA_MAX", "bspline_basis", "spline_knots"]
