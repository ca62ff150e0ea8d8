r"""Closed-form tangent kernels of a two-layer ReLU network on the sphere (Bietti & Mairal, "On the
Inductive Bias of Neural Tangent Kernels", NeurIPS 2019), and their spectrum on the circle.

The network and its parametrisation (the "NTK parametrisation"):

.. math::
    f(x) = \frac{1}{\sqrt m} \sum_{j=1}^m v_j\, [w_j^\top x + \beta\, b_j]_+ ,\qquad
    w_j \sim \mathcal N(0, I_d),\; v_j, b_j \sim \mathcal N(0, 1),

with ``β = 0`` (no bias) or ``β = 1`` (a bias, i.e. the input :math:`\tilde x = (x, 1)`). For unit-norm
inputs and :math:`u = x^\top x'`, the arc-cosine kernels of degree 0 and 1 are

.. math::
    \kappa_0(u) = \frac{\pi - \arccos u}{\pi}, \qquad
    \kappa_1(u) = \frac{u(\pi - \arccos u) + \sqrt{1 - u^2}}{\pi},

:math:`E_w[\mathbf 1\{w^\top x > 0\}\mathbf 1\{w^\top x' > 0\}] = \tfrac12\kappa_0(u)` and
:math:`E_w[(w^\top x)_+ (w^\top x')_+] = \tfrac12\kappa_1(u)`. The tangent kernel
:math:`\langle\nabla_\theta f(x), \nabla_\theta f(x')\rangle` of the (v, w) parameters therefore
converges, as :math:`m \to \infty`, to

.. math::
    K(x, x') = \tfrac12 \big(u\, \kappa_0(u) + \kappa_1(u)\big) = \tfrac12 \kappa_{NTK}(u),

the ``½`` coming from the Gaussian expectations with this parametrisation (other parametrisations change
the scale, never the shape). With the bias the same holds for :math:`\tilde x`, whose norm is
:math:`\sqrt 2`: with :math:`\tilde u = (1 + u)/2`,

.. math::
    K_b(x, x') = \tilde u\, \kappa_0(\tilde u) + \kappa_1(\tilde u) = \kappa_{NTK}(\tilde u).

:math:`\kappa_1` alone is the random-features kernel (only ``v`` trained).

On the circle (:math:`d = 2`, :math:`u = \cos\theta`) the Mercer eigenvalues of a dot-product kernel
are its Fourier coefficients :math:`\mu_k = \frac{1}{2\pi}\int \kappa(\cos\theta) e^{-ik\theta}d\theta`
(:func:`circle_spectrum`, by FFT). Bietti & Mairal: :math:`\mu_k \sim k^{-d}` for
:math:`\kappa_{NTK}`, :math:`k^{-d-2}` for :math:`\kappa_1`, and without a bias the odd
:math:`\mu_k`, :math:`k \ge 3`, are zero (the odd part of both kernels is the linear term ``u``), so odd
harmonics of degree ≥ 3 cannot be learnt; the bias (:math:`\tilde u = (1+u)/2`) breaks that parity.
"""

from __future__ import annotations

import numpy as np

KERNELS = ("ntk", "kappa1", "kappa0")


def _clip(u) -> np.ndarray:
    return np.clip(np.asarray(u, dtype=np.float64), -1.0, 1.0)


def kappa0(u) -> np.ndarray:
    """Arc-cosine kernel of degree 0: :math:`(\\pi - \\arccos u)/\\pi` (``u`` clipped to [−1, 1])."""
    u = _clip(u)
    return (np.pi - np.arccos(u)) / np.pi


def kappa1(u) -> np.ndarray:
    """Arc-cosine kernel of degree 1: :math:`(u(\\pi - \\arccos u) + \\sqrt{1 - u^2})/\\pi`."""
    u = _clip(u)
    return (u * (np.pi - np.arccos(u)) + np.sqrt(np.maximum(0.0, 1.0 - u * u))) / np.pi


def kappa_ntk(u) -> np.ndarray:
    """:math:`\\kappa_{NTK}(u) = u\\,\\kappa_0(u) + \\kappa_1(u)` (without the ½ of the parametrisation)."""
    u = _clip(u)
    return u * kappa0(u) + kappa1(u)


def _with_bias(u) -> np.ndarray:
    return (1.0 + _clip(u)) / 2.0


def dot_product_kernel(u, kernel: str = "ntk", *, bias: bool = False) -> np.ndarray:
    """The limit kernel of the module's network at :math:`u = x^\\top x'` (unit-norm inputs).

    ``kernel``: ``"ntk"`` (every weight trained: ½ κ_NTK(u) without bias, κ_NTK((1+u)/2) with one),
    ``"kappa1"`` (only the output layer: ½ κ_1(u), or κ_1((1+u)/2)), ``"kappa0"`` (½ κ_0 / κ_0 of
    ũ, the first layer's gradient factor). The scale is that of the module's parametrisation.
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel: expected one of {', '.join(KERNELS)}, got {kernel!r}")
    fn = {"ntk": kappa_ntk, "kappa1": kappa1, "kappa0": kappa0}[kernel]
    if bias:
        return fn(_with_bias(u))
    return 0.5 * fn(u)


def gram(x, y=None, kernel: str = "ntk", *, bias: bool = False) -> np.ndarray:
    """The Gram matrix of :func:`dot_product_kernel` on unit-norm rows ``x`` ``[n, d]`` (and ``y``).

    Raises ValueError when a row is not of unit norm (the closed forms hold on the sphere)."""
    x = np.asarray(x, dtype=np.float64)
    y = x if y is None else np.asarray(y, dtype=np.float64)
    for name, a in (("x", x), ("y", y)):
        if a.ndim != 2:
            raise ValueError(f"{name}: expected a 2-D array [points, dimensions], got shape {a.shape}")
        norms = np.linalg.norm(a, axis=1)
        if a.size and np.max(np.abs(norms - 1.0)) > 1e-6:
            raise ValueError(f"{name}: the closed forms hold on the unit sphere; row norms range "
                             f"{norms.min():.4g}..{norms.max():.4g} (divide each row by its norm)")
    return dot_product_kernel(x @ y.T, kernel, bias=bias)


def circle_points(n: int, *, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``(theta [n], x [n, 2])``: ``n`` equally spaced points of the unit circle."""
    theta = offset + 2 * np.pi * np.arange(int(n)) / int(n)
    return theta, np.stack([np.cos(theta), np.sin(theta)], axis=1)


def circle_spectrum(kernel: str = "ntk", *, bias: bool = False, grid: int = 4096) -> np.ndarray:
    """Mercer eigenvalues ``μ_k`` (k = 0 .. grid/2) of the kernel on the circle: the Fourier
    coefficients of :math:`\\theta \\mapsto \\kappa(\\cos\\theta)` on ``grid`` points (real: the
    function is even)."""
    if int(grid) < 16:
        raise ValueError(f"grid: expected at least 16 points, got {grid}")
    theta = 2 * np.pi * np.arange(int(grid)) / int(grid)
    values = dot_product_kernel(np.cos(theta), kernel, bias=bias)
    return np.fft.rfft(values).real / int(grid)


def decay_slope(mu: np.ndarray, ks) -> float:
    """The least-squares slope of :math:`\\log|\\mu_k|` against :math:`\\log k` over ``ks``."""
    ks = np.asarray(list(ks), dtype=np.int64)
    if ks.size < 2 or ks.min() < 1:
        raise ValueError("ks: expected at least two degrees k >= 1")
    mu = np.abs(np.asarray(mu, dtype=np.float64))
    values = mu[ks]
    if np.any(values <= 1e-12 * mu.max()):  # a zero coefficient up to FFT round-off
        raise ValueError("a coefficient over ks is zero; fit the slope over degrees the kernel has (even k without bias)")
    return float(np.polyfit(np.log(ks), np.log(values), 1)[0])


def kernel_ridge(train_x, train_y, test_x, kernel: str = "ntk", *, bias: bool = False,
                 ridge: float = 1e-6) -> np.ndarray:
    """Kernel ridge regression with the closed-form kernel: :math:`\\hat f(x) = k(x, X)(K + \\lambda n
    I)^{-1} y` (``λ = ridge``), predicted at ``test_x``."""
    train_x = np.asarray(train_x, dtype=np.float64)
    k = gram(train_x, kernel=kernel, bias=bias)
    n = len(train_x)
    alpha = np.linalg.solve(k + ridge * n * np.eye(n), np.asarray(train_y, dtype=np.float64))
    return gram(np.asarray(test_x, dtype=np.float64), train_x, kernel=kernel, bias=bias) @ alpha


__all__ = ["KERNELS", "circle_points", "circle_spectrum", "decay_slope", "dot_product_kernel", "gram", "kappa0",
           "kappa1", "kappa_ntk", "kernel_ridge"]
