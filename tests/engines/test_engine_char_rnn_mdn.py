"""Defining properties of the mixture-density head (Graves 2013), stochastic backpropagation through a mixture
(Graves 2016) and the char-rnn-mdn recogniser / conditional generator (Zhang et al. 2016)."""

from __future__ import annotations

import math

import pytest
import torch

from lstmviz.engines.recurrent import mdn
from lstmviz.engines.recurrent.char_rnn_mdn import StrokeGenerator, StrokeRecogniser, pad_items
from lstmviz.hooks.taps import find_taps

D = torch.float64


def _random_params(m: int, seed: int, *, batch=()) -> mdn.MixtureParams:
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(*batch, mdn.raw_size(m), generator=g, dtype=D)
    return mdn.mixture_params(raw, m)


def test_mdn_loss_equals_torch_distributions_mixture():
    m = 4
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(5, mdn.raw_size(m), generator=g, dtype=D)
    target = torch.cat([torch.randn(5, 2, generator=g, dtype=D), torch.tensor([[0.], [1.], [1.], [0.], [0.]], dtype=D)], 1)
    p = mdn.mixture_params(raw, m)
    s1, s2, rho = p.sigma[..., 0], p.sigma[..., 1], p.rho
    cov = torch.stack([torch.stack([s1 ** 2, rho * s1 * s2], -1), torch.stack([rho * s1 * s2, s2 ** 2], -1)], -2)
    mix = torch.distributions.MixtureSameFamily(torch.distributions.Categorical(logits=p.log_pi),
                                                torch.distributions.MultivariateNormal(p.mu, covariance_matrix=cov))
    bern = torch.distributions.Bernoulli(logits=p.pen_logit)
    expected = -(mix.log_prob(target[:, :2]) + bern.log_prob(target[:, 2]))
    torch.testing.assert_close(mdn.mdn_nll(raw, target, m), expected)


def test_mdn_density_integrates_to_one():
    p = _random_params(3, seed=1)
    lo = (p.mu - 8 * p.sigma).amin(0)
    hi = (p.mu + 8 * p.sigma).amax(0)
    n = 801
    xs = torch.linspace(float(lo[0]), float(hi[0]), n, dtype=D)
    ys = torch.linspace(float(lo[1]), float(hi[1]), n, dtype=D)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="ij"), -1)
    dens = mdn.offset_log_density(grid, p).exp()
    total = torch.trapezoid(torch.trapezoid(dens, ys, dim=1), xs)
    assert abs(float(total) - 1.0) < 1e-4
    pen = torch.sigmoid(p.pen_logit)
    assert abs(float(pen + (1 - pen)) - 1) < 1e-12


def test_sampling_bias_sharpens():
    raw = torch.randn(mdn.raw_size(3), generator=torch.Generator().manual_seed(2), dtype=D)
    p0, p2 = mdn.mixture_params(raw, 3), mdn.mixture_params(raw, 3, bias=2.0)
    assert (p2.sigma < p0.sigma).all()
    assert p2.log_pi.max() > p0.log_pi.max()


def _one_d(seed=3, k=3):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(k, generator=g, dtype=D), 2 * torch.randn(k, generator=g, dtype=D),
            0.3 + torch.rand(k, generator=g, dtype=D))


def test_graves_gradient_matches_finite_differences_of_the_inverse_cdf():
    logits, mu, sigma = _one_d()
    u = torch.tensor([0.07, 0.4, 0.81], dtype=D)
    params = [t.clone().requires_grad_(True) for t in (logits, mu, sigma)]
    x = mdn.rsample_mixture_1d(u, *params)
    assert torch.allclose(mdn.mixture_cdf(x.detach(), logits, mu, sigma), u, atol=1e-12)
    for i in range(len(u)):
        grads = torch.autograd.grad(x[i], params, retain_graph=True)
        for which, (base, grad) in enumerate(zip((logits, mu, sigma), grads)):
            for j in range(len(base)):
                eps = 1e-6
                plus = [t.clone() for t in (logits, mu, sigma)]
                minus = [t.clone() for t in (logits, mu, sigma)]
                plus[which][j] += eps
                minus[which][j] -= eps
                fd = (mdn.mixture_quantile_search(u[i:i + 1], *plus) - mdn.mixture_quantile_search(u[i:i + 1], *minus)) / (2 * eps)
                assert abs(float(grad[j]) - float(fd)) < 1e-5, (which, j, float(grad[j]), float(fd))


def _expectation(f_logits, f_mu, f_sigma, g, lo=-30.0, hi=30.0, n=20001):
    xs = torch.linspace(lo, hi, n, dtype=D)
    return torch.trapezoid(g(xs) * mdn.mixture_pdf(xs, f_logits, f_mu, f_sigma), xs)


def test_graves_gradient_is_unbiased_and_beats_the_score_function():
    """The pathwise (Graves) estimator of d/dθ E[g(x)] matches the exact gradient (quadrature) in expectation,
    as does the score-function estimator from the same draws; the pathwise one has the lower variance."""
    logits, mu, sigma = _one_d(seed=4)
    params = [t.clone().requires_grad_(True) for t in (logits, mu, sigma)]
    g = lambda x: torch.sin(x) + 0.1 * x ** 2  # noqa: E731
    exact = torch.autograd.grad(_expectation(*params, g), params)
    n = 40000
    u = torch.rand(n, generator=torch.Generator().manual_seed(5), dtype=D)
    # one copy of the parameters per draw: the gradient of the sum is every draw's own gradient [n, K]
    rows = [t.detach().repeat(n, 1).requires_grad_(True) for t in (logits, mu, sigma)]
    x = mdn.rsample_mixture_1d(u, *rows)
    per_path = torch.autograd.grad(g(x).sum(), rows)
    xd = x.detach()
    per_score = torch.autograd.grad((g(xd) * torch.log(mdn.mixture_pdf(xd, *rows))).sum(), rows)
    for e, pw, sf in zip(exact, per_path, per_score):
        se_path = pw.std(0) / math.sqrt(n)
        se_score = sf.std(0) / math.sqrt(n)
        assert ((pw.mean(0) - e).abs() < 4 * se_path + 1e-9).all(), (pw.mean(0), e)
        assert ((sf.mean(0) - e).abs() < 4 * se_score + 1e-9).all(), (sf.mean(0), e)
    var_path = sum(float(t.var(0).sum()) for t in per_path)
    var_score = sum(float(t.var(0).sum()) for t in per_score)
    assert var_path < var_score


def test_bivariate_reparameterised_sample_has_the_mixture_distribution_and_gradient():
    p = _random_params(3, seed=6)
    u = torch.rand(20000, 2, generator=torch.Generator().manual_seed(7), dtype=D)
    xy = mdn.rsample_bivariate(u, p)
    # the sample's first two moments are the mixture's
    pi = p.log_pi.exp()
    mean = (pi[:, None] * p.mu).sum(0)
    torch.testing.assert_close(xy.mean(0), mean, atol=0.06, rtol=0)
    cross = (pi * (p.mu[:, 0] * p.mu[:, 1] + p.rho * p.sigma[:, 0] * p.sigma[:, 1])).sum()
    assert abs(float((xy[:, 0] * xy[:, 1]).mean() - cross)) < 0.15
    # the pathwise gradient of E[x1 x2] = Σ π_j (μ_j1 μ_j2 + ρ_j σ_j1 σ_j2) matches the exact one for every raw output
    raw0 = torch.randn(mdn.raw_size(3), generator=torch.Generator().manual_seed(6), dtype=D)
    n = len(u)
    rows = raw0.repeat(n, 1).requires_grad_(True)  # one copy per draw: per-draw gradients [n, 6M+1]
    s = mdn.rsample_bivariate(u, mdn.mixture_params(rows, 3))
    per = torch.autograd.grad((s[:, 0] * s[:, 1]).sum(), rows)[0]
    raw = raw0.clone().requires_grad_(True)
    q = mdn.mixture_params(raw, 3)
    exact = torch.autograd.grad((q.log_pi.exp() * (q.mu[:, 0] * q.mu[:, 1] + q.rho * q.sigma[:, 0] * q.sigma[:, 1])).sum(),
                                raw)[0]
    assert per.mean(0)[1 + 5 * 3:].abs().max() > 0.01  # the correlations receive a gradient
    z = (per.mean(0) - exact)[1:] / (per.std(0)[1:] / math.sqrt(n))
    assert z.abs().max() < 4.5, z


def test_generator_embedding_changes_the_output_and_taps_fire():
    torch.manual_seed(0)
    gen = StrokeGenerator(num_classes=4, hidden_size=16, components=3)
    steps = torch.randn(1, 6, 3)
    a, b = gen(steps, torch.tensor([0])), gen(steps, torch.tensor([1]))
    assert not torch.allclose(a, b)
    assert set(find_taps(gen)) >= {"layer0/h", "layer0/gates/z", "mdn/pi", "mdn/sigma", "mdn/rho", "mdn/pen"}
    # teacher-forced output at t depends only on steps < t (causal)
    changed = steps.clone()
    changed[0, 4] += 1.0
    c = gen(changed, torch.tensor([0]))
    torch.testing.assert_close(c[:, :5], a[:, :5])
    assert not torch.allclose(c[:, 5], a[:, 5])
    s = gen.sample(torch.tensor([0, 3]), 7, generator=torch.Generator().manual_seed(0))
    assert s.shape == (2, 7, 3) and set(s[..., 2].unique().tolist()) <= {0.0, 1.0}


def test_recogniser_ignores_padding():
    torch.manual_seed(0)
    rec = StrokeRecogniser(num_classes=3, hidden_size=8)
    short = torch.randn(4, 3)
    x, mask = pad_items([short.numpy(), torch.randn(9, 3).numpy()])
    alone = rec(short[None])
    torch.testing.assert_close(rec(x, mask)[0], alone[0])


def test_unimodal_head_is_one_gaussian():
    raw = torch.randn(mdn.raw_size(1), dtype=D)
    p = mdn.mixture_params(raw, 1)
    assert float(p.log_pi.exp()) == pytest.approx(1.0)
