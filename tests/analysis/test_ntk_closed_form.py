"""Closed-form two-layer ReLU tangent kernels on the circle (Bietti & Mairal): the empirical NTK of a wide
network matches them, odd modes k >= 3 vanish without a bias and not with one, and the spectra decay as
k^-2 (NTK) against k^-4 (kappa_1) on the circle (d = 2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lstmviz.analysis import ntk_closed_form as cf
from lstmviz.analysis.tangent_kernel import tangent_kernel


class TwoLayerReLU(nn.Module):
    """f(x) = (1/sqrt m) sum_j v_j relu(w_j.x [+ b_j]), every weight N(0, 1)."""

    def __init__(self, width: int, bias: bool, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.hidden = nn.Linear(2, width, bias=bias).double()
        self.out = nn.Linear(width, 1, bias=False).double()
        with torch.no_grad():
            self.hidden.weight.copy_(torch.randn(width, 2, generator=g, dtype=torch.float64))
            if bias:
                self.hidden.bias.copy_(torch.randn(width, generator=g, dtype=torch.float64))
            self.out.weight.copy_(torch.randn(1, width, generator=g, dtype=torch.float64))
        self.scale = width ** -0.5

    def forward(self, x):
        return self.out(self.hidden(x).relu()) * self.scale


@pytest.mark.parametrize("bias", [False, True])
def test_the_empirical_ntk_of_a_wide_network_matches_the_closed_form(bias):
    theta, x = cf.circle_points(7, offset=0.3)
    model = TwoLayerReLU(20000, bias)
    kernel = tangent_kernel(model, lambda call, e: call(e[None])[0], torch.as_tensor(x))
    assert kernel.factored[0] == bias  # with a bias the hidden layer takes the exact Linear shortcut
    expected = cf.gram(x, kernel="ntk", bias=bias)
    error = np.linalg.norm(kernel.total() - expected) / np.linalg.norm(expected)
    assert error < 0.03, error  # Monte Carlo error ~ 1/sqrt(m)
    # the random-features kernel is the output layer's block alone
    k1 = cf.gram(x, kernel="kappa1", bias=bias)
    assert np.linalg.norm(kernel.layer("out") - k1) / np.linalg.norm(k1) < 0.03
    # and the NTK is not kappa_1: the match above is not a coincidence of scale
    assert np.linalg.norm(kernel.total() - k1) / np.linalg.norm(expected) > 0.1


def test_odd_modes_vanish_without_bias_and_not_with_it():
    for kernel in ("ntk", "kappa1"):
        plain = cf.circle_spectrum(kernel, bias=False)
        biased = cf.circle_spectrum(kernel, bias=True)
        for k in (3, 5, 7):
            assert abs(plain[k]) < 1e-12, (kernel, k, plain[k])
            assert biased[k] > 1e-6, (kernel, k, biased[k])
        assert plain[1] > 0.1 and plain[2] > 1e-3 and plain[4] > 1e-4  # the linear and even modes are there


def test_decay_slopes_on_the_circle():
    even = range(2, 65, 2)
    ntk = cf.decay_slope(cf.circle_spectrum("ntk"), even)
    k1 = cf.decay_slope(cf.circle_spectrum("kappa1"), even)
    assert -2.6 < ntk < -1.8, ntk  # k^-d with d = 2 (pre-asymptotic over 2..64)
    assert -4.5 < k1 < -3.6, k1  # k^-(d+2)
    with pytest.raises(ValueError, match="zero"):
        cf.decay_slope(cf.circle_spectrum("ntk"), range(2, 9))  # odd k have no coefficient without bias


def test_closed_forms_at_known_points_and_input_checks():
    assert cf.kappa0(1.0) == pytest.approx(1.0) and cf.kappa0(-1.0) == pytest.approx(0.0)
    assert cf.kappa1(1.0) == pytest.approx(1.0) and cf.kappa1(0.0) == pytest.approx(1 / np.pi)
    assert cf.kappa_ntk(1.0) == pytest.approx(2.0)
    assert cf.kappa1(1.0 + 1e-12) == pytest.approx(1.0)  # clipped, no NaN
    with pytest.raises(ValueError, match="unit sphere"):
        cf.gram(np.array([[2.0, 0.0]]))
    with pytest.raises(ValueError, match="kernel: expected one of"):
        cf.dot_product_kernel(0.5, "rbf")


def test_regularised_ntk_ridge_learns_higher_frequencies_than_kappa1_and_odd_modes_need_a_bias():
    """With a ridge (1e-4) the NTK's slower spectral decay shrinks high frequencies less than kappa_1's.
    (Interpolating, ridge -> 0, kappa_1 fits these smooth targets as well or better: docs/analysis.md.)"""
    rng = np.random.default_rng(0)
    theta_test, test = cf.circle_points(400)

    def error(k, kernel, bias, n=40, ridge=1e-4):
        errors = []
        for _ in range(4):
            theta = rng.uniform(0, 2 * np.pi, n)
            x = np.stack([np.cos(theta), np.sin(theta)], axis=1)
            pred = cf.kernel_ridge(x, np.cos(k * theta), test, kernel, bias=bias, ridge=ridge)
            errors.append(np.mean((pred - np.cos(k * theta_test)) ** 2) / 0.5)
        return float(np.mean(errors))

    for k in (6, 8):
        assert error(k, "ntk", False) < 0.5 * error(k, "kappa1", False)
    for kernel in ("ntk", "kappa1"):
        assert error(3, kernel, False) > 0.9  # nothing of an odd k >= 3 is learnt without a bias
        assert error(3, kernel, True) < 0.5 * error(3, kernel, False)
