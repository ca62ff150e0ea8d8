r"""Rényi-DP accountant of the Poisson-subsampled Gaussian mechanism (DP-SGD's privacy cost).

One DP-SGD step (Abadi et al. 2016) releases the sum of the clipped per-example gradients of a lot drawn by
Poisson sampling (every example independently with probability :math:`q`) plus :math:`N(0, \sigma^2 C^2 I)`.
Its Rényi differential privacy of order :math:`\alpha` (Mironov, Talwar & Zhang 2019, "Rényi Differential
Privacy of the Sampled Gaussian Mechanism") is :math:`\varepsilon_\alpha = \log A_\alpha / (\alpha - 1)` with

.. math::
    A_\alpha = \mathbb{E}_{z \sim \mu_0}\big[(\mu(z)/\mu_0(z))^\alpha\big],\quad
    \mu_0 = N(0, \sigma^2),\ \mu_1 = N(1, \sigma^2),\ \mu = (1-q)\mu_0 + q\mu_1 .

- integer :math:`\alpha` (their Section 3.3, the binomial expansion):

  .. math:: A_\alpha = \sum_{k=0}^{\alpha} \binom{\alpha}{k} (1-q)^{\alpha-k} q^k \exp\Big(\frac{k^2 - k}{2\sigma^2}\Big)

- fractional :math:`\alpha`: split the integral at :math:`z_0 = \sigma^2 \log(1/q - 1) + 1/2`, where
  :math:`\mu_0 = \mu_1`-weighted terms swap roles, and expand both halves as convergent binomial series
  (:math:`\binom{\alpha}{i}` for real :math:`\alpha`, alternating sign beyond :math:`i > \alpha`):

  .. math::
      A_\alpha = \sum_{i \ge 0} \binom{\alpha}{i}\Big[ q^i (1-q)^{\alpha-i} e^{(i^2-i)/(2\sigma^2)}\,
      \tfrac12\operatorname{erfc}\big(\tfrac{i - z_0}{\sqrt2\sigma}\big)
      + q^{\alpha-i} (1-q)^{i} e^{((\alpha-i)^2-(\alpha-i))/(2\sigma^2)}\,
      \tfrac12\operatorname{erfc}\big(\tfrac{z_0 - (\alpha-i)}{\sqrt2\sigma}\big)\Big]

  summed in log space until both terms fall below :math:`e^{-30}`.

RDP composes by addition over the :math:`T` steps; the :math:`(\varepsilon, \delta)` guarantee is the best
over the orders of the conversion of Balle et al. 2020 (the one opacus and TF-privacy use):

.. math::
    \varepsilon = \min_\alpha\; T\varepsilon_\alpha + \log\frac{\alpha-1}{\alpha}
    - \frac{\log\delta + \log\alpha}{\alpha - 1}

Special cases: :math:`q = 0` costs nothing; :math:`q = 1` is the plain Gaussian mechanism,
:math:`\varepsilon_\alpha = \alpha / (2\sigma^2)`; :math:`\sigma = 0` gives :math:`\varepsilon = \infty`.
The accountant assumes Poisson sampling: a run that draws fixed-size shuffled batches is not covered by it.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
from scipy import special

#: the orders searched (the same grid as opacus's RDPAccountant, so the two agree to rounding)
DEFAULT_ORDERS: tuple[float, ...] = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)))


def _log_add(a: float, b: float) -> float:
    hi, lo = max(a, b), min(a, b)
    if hi == -math.inf:
        return -math.inf
    return hi + math.log1p(math.exp(lo - hi))


def _log_sub(a: float, b: float) -> float:
    """log(exp(a) - exp(b)) for a >= b."""
    if b == -math.inf:
        return a
    if a <= b:
        return -math.inf  # rounding: the difference is (numerically) zero
    return a + math.log1p(-math.exp(b - a))


def _log_a_int(q: float, sigma: float, alpha: int) -> float:
    terms = [
        math.log(special.binom(alpha, k)) + k * math.log(q) + (alpha - k) * math.log1p(-q)
        + (k * k - k) / (2 * sigma ** 2)
        for k in range(alpha + 1)
    ]
    return float(special.logsumexp(terms))


def _log_a_frac(q: float, sigma: float, alpha: float) -> float:
    log_a0 = log_a1 = -math.inf
    z0 = sigma ** 2 * math.log(1 / q - 1) + 0.5
    i = 0
    while True:
        coef = special.binom(alpha, i)
        log_coef = math.log(abs(coef))
        j = alpha - i
        log_t0 = log_coef + i * math.log(q) + j * math.log1p(-q)
        log_t1 = log_coef + j * math.log(q) + i * math.log1p(-q)
        # log(erfc(x / (sqrt 2 sigma)) / 2) = log Phi(-x / sigma)
        log_e0 = float(special.log_ndtr((z0 - i) / sigma))
        log_e1 = float(special.log_ndtr((j - z0) / sigma))
        log_s0 = log_t0 + (i * i - i) / (2 * sigma ** 2) + log_e0
        log_s1 = log_t1 + (j * j - j) / (2 * sigma ** 2) + log_e1
        if coef > 0:
            log_a0, log_a1 = _log_add(log_a0, log_s0), _log_add(log_a1, log_s1)
        else:
            log_a0, log_a1 = _log_sub(log_a0, log_s0), _log_sub(log_a1, log_s1)
        i += 1
        if max(log_s0, log_s1) < -30:
            break
    return _log_add(log_a0, log_a1)


def rdp_of_step(q: float, sigma: float, order: float) -> float:
    """The Rényi DP of order ``order`` (> 1) of one step of the Poisson-subsampled Gaussian mechanism."""
    if not 0 <= q <= 1:
        raise ValueError(f"sampling rate q: expected a number in [0, 1], got {q}")
    if order <= 1:
        raise ValueError(f"RDP order: expected a number > 1, got {order}")
    if q == 0:
        return 0.0
    if sigma <= 0:
        return math.inf
    if q == 1:
        return order / (2 * sigma ** 2)
    if float(order).is_integer():
        log_a = _log_a_int(q, sigma, int(order))
    else:
        log_a = _log_a_frac(q, sigma, float(order))
    return log_a / (order - 1)


def rdp(q: float, sigma: float, steps: int, orders: Sequence[float] = DEFAULT_ORDERS) -> np.ndarray:
    """The RDP of ``steps`` composed steps at every order (``[len(orders)]``)."""
    return np.array([steps * rdp_of_step(q, sigma, a) if steps else 0.0 for a in orders])


def epsilon_from_rdp(rdp_values: Iterable[float], delta: float, orders: Sequence[float] = DEFAULT_ORDERS
                     ) -> tuple[float, float]:
    """``(ε, the best order)`` at ``delta`` from RDP values at ``orders`` (module docstring's conversion)."""
    if not 0 < delta < 1:
        raise ValueError(f"delta: expected a number in (0, 1), got {delta}")
    a = np.asarray(orders, dtype=np.float64)
    r = np.asarray(list(rdp_values), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        eps = r - (math.log(delta) + np.log(a)) / (a - 1) + np.log((a - 1) / a)
    if np.isnan(eps).all():
        return math.inf, math.nan
    best = int(np.nanargmin(eps))
    return float(eps[best]), float(a[best])


def epsilon(q: float, sigma: float, steps: int, delta: float, orders: Sequence[float] = DEFAULT_ORDERS) -> float:
    """ε of ``steps`` DP-SGD steps at sampling rate ``q``, noise multiplier ``sigma``, at ``delta``."""
    return epsilon_from_rdp(rdp(q, sigma, steps, orders), delta, orders)[0]


class Accountant:
    """ε over a run of fixed ``(q, σ)``: the per-step RDP is computed once and scaled by the step count."""

    def __init__(self, q: float, sigma: float, delta: float, orders: Sequence[float] = DEFAULT_ORDERS):
        self.q, self.sigma, self.delta, self.orders = float(q), float(sigma), float(delta), tuple(orders)
        self._per_step = rdp(self.q, self.sigma, 1, self.orders)

    def epsilon(self, steps: int) -> float:
        if steps <= 0:
            return 0.0
        return epsilon_from_rdp(self._per_step * steps, self.delta, self.orders)[0]
