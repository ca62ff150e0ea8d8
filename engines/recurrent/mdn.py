r"""Mixture density outputs for pen strokes (Graves 2013) and stochastic backpropagation through a
mixture (Graves 2016).

**Bivariate mixture density head** ("Generating Sequences With Recurrent Neural Networks", Alex Graves,
arXiv:1308.0850, eqs. 15-26). A raw output vector ``ŷ`` of size ``6M + 1`` is split into
``(ê, π̂_{1..M}, μ̂_{1..M,1..2}, σ̂_{1..M,1..2}, ρ̂_{1..M})`` and mapped to

.. math::
    e = \sigma(ê)\ \text{(pen-up probability)},\quad \pi_j = \mathrm{softmax}(\hat\pi (1 + b))_j,\quad
    \mu_j = \hat\mu_j,\quad \sigma_j = \exp(\hat\sigma_j - b) + \sigma_{min},\quad \rho_j = (1-\epsilon)\tanh(\hat\rho_j)

with sampling bias ``b`` (0 for training and the density), ``σ_min = 1e-3`` and ``ε = 1e-5`` (floors
against σ collapse and ρ → ±1, §16 (f)). The density of an offset ``d = (Δx, Δy)`` and pen state ``s``
(1: the pen lifts after this point) is

.. math::
    p(d, s) = \Big[\sum_j \pi_j\, \mathcal N(d;\ \mu_j, \sigma_j, \rho_j)\Big]\ e^{s} (1-e)^{1-s},\qquad
    \mathcal N = \frac{1}{2\pi\sigma_1\sigma_2\sqrt{1-\rho^2}}
      \exp\Big(-\frac{z}{2(1-\rho^2)}\Big),\
    z = \tfrac{(d_1-\mu_1)^2}{\sigma_1^2} + \tfrac{(d_2-\mu_2)^2}{\sigma_2^2}
        - \tfrac{2\rho(d_1-\mu_1)(d_2-\mu_2)}{\sigma_1\sigma_2}

and the loss of a step is ``−log p(d, s)`` (:func:`mdn_nll`). ``M = 1`` is the unimodal Gaussian head
(the baseline of ``benchmarks/mdn_claims.py``).

**Stochastic backpropagation through a mixture** ("Stochastic Backpropagation through Mixture Density
Distributions", Alex Graves, arXiv:1607.05690). A sample is drawn by the quantile transform
``x̂ = F^{-1}(u; θ)`` with ``u ~ U(0, 1)`` held fixed; by the implicit function theorem on ``F(x̂; θ) = u``

.. math::
    \frac{\partial \hat x}{\partial\theta} = -\frac{1}{f(\hat x)} \frac{\partial F(\hat x;\theta)}{\partial\theta}
    = -\frac{1}{f(\hat x)}\int_{-\infty}^{\hat x} \frac{\partial f(t;\theta)}{\partial\theta}\,dt

which for a 1-D Gaussian mixture (``F = Σ π_j Φ_j``, ``f = Σ π_j N_j``, ``π = softmax(a)``) is

.. math::
    \frac{\partial \hat x}{\partial a_j} = -\frac{\pi_j(\Phi_j(\hat x) - F(\hat x))}{f(\hat x)},\quad
    \frac{\partial \hat x}{\partial \mu_j} = \frac{\pi_j N_j(\hat x)}{f(\hat x)},\quad
    \frac{\partial \hat x}{\partial \sigma_j} = \frac{\pi_j N_j(\hat x)}{f(\hat x)}\,\frac{\hat x-\mu_j}{\sigma_j}.

:class:`MixtureQuantile` computes ``x̂`` by bisection (no gradient through the search) and returns
exactly these derivatives in its backward. A multivariate mixture is sampled dimension by dimension
(the multivariate quantile transform, Graves 2016 §3): for the bivariate head, ``x̂_1`` from the marginal
mixture ``Σ π_j N(μ_j1, σ_j1)``, then ``x̂_2`` from the conditional mixture with weights
``π_j N_j(x̂_1) / Σ_k π_k N_k(x̂_1)`` (logits ``log π_j + log N_j(x̂_1)``) and components
``N(μ_j2 + ρ_j σ_j2 (x̂_1 − μ_j1)/σ_j1, σ_j2 \sqrt{1−ρ_j^2})`` (:func:`rsample_bivariate`); the gradient
flows into the second stage's parameters and, through them, through ``x̂_1`` (autograd composes the two).

Choices left open by the papers, made here: the bisection runs in the tensors' dtype for 60 halvings of
the bracket ``[min μ − 12 max σ, max μ + 12 max σ]``; the pen state's Bernoulli is sampled without a
gradient (it is discrete).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

SIGMA_MIN = 1e-3
RHO_EPS = 1e-5
LOG_2PI = math.log(2 * math.pi)


@dataclass
class MixtureParams:
    """Parameters of a bivariate mixture + Bernoulli pen state, each ``[..., M]`` (``mu``/``sigma`` ``[..., M, 2]``)."""

    log_pi: Tensor
    mu: Tensor
    sigma: Tensor
    rho: Tensor
    pen_logit: Tensor  # [...]: logit of the pen-up probability e

    @property
    def components(self) -> int:
        return self.log_pi.shape[-1]


def raw_size(components: int) -> int:
    """Size of the raw output vector of an ``M``-component head: ``6M + 1``."""
    return 6 * components + 1


def mixture_params(raw: Tensor, components: int, *, bias: float = 0.0) -> MixtureParams:
    """Split a raw output ``[..., 6M + 1]`` into :class:`MixtureParams` (the module docstring's map)."""
    if raw.shape[-1] != raw_size(components):
        raise ValueError(f"expected a last dimension of 6M+1 = {raw_size(components)} for M={components}, "
                         f"got {raw.shape[-1]}")
    m = components
    pen_logit = raw[..., 0]
    pi_hat = raw[..., 1:1 + m]
    mu = raw[..., 1 + m:1 + 3 * m].unflatten(-1, (m, 2))
    sigma_hat = raw[..., 1 + 3 * m:1 + 5 * m].unflatten(-1, (m, 2))
    rho_hat = raw[..., 1 + 5 * m:1 + 6 * m]
    return MixtureParams(log_pi=F.log_softmax(pi_hat * (1 + bias), dim=-1), mu=mu,
                         sigma=torch.exp(sigma_hat - bias) + SIGMA_MIN,
                         rho=(1 - RHO_EPS) * torch.tanh(rho_hat), pen_logit=pen_logit)


def component_log_density(d: Tensor, p: MixtureParams) -> Tensor:
    """``log N(d; μ_j, σ_j, ρ_j)`` for every component: ``d`` ``[..., 2]`` -> ``[..., M]``."""
    z = (d.unsqueeze(-2) - p.mu) / p.sigma  # [..., M, 2]
    one_minus = 1 - p.rho ** 2
    q = z[..., 0] ** 2 + z[..., 1] ** 2 - 2 * p.rho * z[..., 0] * z[..., 1]
    return -q / (2 * one_minus) - LOG_2PI - torch.log(p.sigma).sum(-1) - 0.5 * torch.log(one_minus)


def offset_log_density(d: Tensor, p: MixtureParams) -> Tensor:
    """``log Σ_j π_j N(d; μ_j, σ_j, ρ_j)``: ``[..., 2]`` -> ``[...]``."""
    return torch.logsumexp(p.log_pi + component_log_density(d, p), dim=-1)


def mdn_nll(raw: Tensor, target: Tensor, components: int) -> Tensor:
    """``−log p(d, s)`` per step: ``raw [..., 6M+1]``, ``target [..., 3]`` = ``(Δx, Δy, pen_up)`` -> ``[...]``."""
    p = mixture_params(raw, components)
    pen = F.binary_cross_entropy_with_logits(p.pen_logit, target[..., 2], reduction="none")
    return -offset_log_density(target[..., :2], p) + pen


# ---- Graves 2016: the quantile transform of a 1-D mixture, with its analytic gradient ----------------------

def _normal_cdf(x: Tensor) -> Tensor:
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def mixture_cdf(x: Tensor, logits: Tensor, mu: Tensor, sigma: Tensor) -> Tensor:
    """``F(x) = Σ π_j Φ((x − μ_j)/σ_j)`` with ``π = softmax(logits)``: ``x [...]``, the rest ``[..., K]``."""
    return (torch.softmax(logits, -1) * _normal_cdf((x.unsqueeze(-1) - mu) / sigma)).sum(-1)


def mixture_pdf(x: Tensor, logits: Tensor, mu: Tensor, sigma: Tensor) -> Tensor:
    """``f(x) = Σ π_j N(x; μ_j, σ_j)``."""
    z = (x.unsqueeze(-1) - mu) / sigma
    return (torch.softmax(logits, -1) * torch.exp(-0.5 * z ** 2) / (sigma * math.sqrt(2 * math.pi))).sum(-1)


def mixture_quantile_search(u: Tensor, logits: Tensor, mu: Tensor, sigma: Tensor, iterations: int = 60) -> Tensor:
    """``F^{-1}(u)`` by bisection, without gradient."""
    with torch.no_grad():
        lo = (mu - 12 * sigma).amin(-1).expand(u.shape).clone()
        hi = (mu + 12 * sigma).amax(-1).expand(u.shape).clone()
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            below = mixture_cdf(mid, logits, mu, sigma) < u
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        return 0.5 * (lo + hi)


class MixtureQuantile(torch.autograd.Function):
    """``x̂ = F^{-1}(u; a, μ, σ)`` of a 1-D Gaussian mixture, differentiable in ``a`` (logits), ``μ``, ``σ`` by
    Graves' (2016) formula (module docstring); ``u`` gets no gradient."""

    @staticmethod
    def forward(ctx, u: Tensor, logits: Tensor, mu: Tensor, sigma: Tensor) -> Tensor:
        x = mixture_quantile_search(u, logits, mu, sigma)
        ctx.save_for_backward(x, logits, mu, sigma)
        return x

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, logits, mu, sigma = ctx.saved_tensors
        pi = torch.softmax(logits, -1)
        z = (x.unsqueeze(-1) - mu) / sigma
        comp_pdf = torch.exp(-0.5 * z ** 2) / (sigma * math.sqrt(2 * math.pi))  # N_j(x̂)
        comp_cdf = _normal_cdf(z)  # Φ_j(x̂)
        f = (pi * comp_pdf).sum(-1, keepdim=True)
        cdf = (pi * comp_cdf).sum(-1, keepdim=True)
        g = grad.unsqueeze(-1)
        d_logits = -pi * (comp_cdf - cdf) / f
        d_mu = pi * comp_pdf / f
        d_sigma = d_mu * z
        return None, _sum_to(g * d_logits, logits), _sum_to(g * d_mu, mu), _sum_to(g * d_sigma, sigma)


def _sum_to(t: Tensor, like: Tensor) -> Tensor:
    while t.dim() > like.dim():
        t = t.sum(0)
    for i, n in enumerate(like.shape):
        if n == 1 and t.shape[i] != 1:
            t = t.sum(i, keepdim=True)
    return t


def rsample_mixture_1d(u: Tensor, logits: Tensor, mu: Tensor, sigma: Tensor) -> Tensor:
    """A reparameterised sample of a 1-D mixture (Graves 2016): ``u [...]`` uniform, params ``[..., K]``."""
    shape = torch.broadcast_shapes(u.shape, logits.shape[:-1], mu.shape[:-1], sigma.shape[:-1])
    k = logits.shape[-1]
    return MixtureQuantile.apply(u.expand(shape), logits.expand(*shape, k), mu.expand(*shape, k),
                                 sigma.expand(*shape, k))


def rsample_bivariate(u: Tensor, p: MixtureParams) -> Tensor:
    """A reparameterised offset ``[..., 2]`` from the bivariate mixture of ``p`` by the multivariate quantile
    transform (module docstring); ``u [..., 2]`` uniform."""
    mu1, mu2 = p.mu[..., 0], p.mu[..., 1]
    s1, s2 = p.sigma[..., 0], p.sigma[..., 1]
    x1 = rsample_mixture_1d(u[..., 0], p.log_pi, mu1, s1)
    z1 = (x1.unsqueeze(-1) - mu1) / s1
    log_n1 = -0.5 * z1 ** 2 - torch.log(s1) - 0.5 * LOG_2PI
    cond_logits = p.log_pi + log_n1
    cond_mu = mu2 + p.rho * s2 * z1
    cond_sigma = s2 * torch.sqrt(1 - p.rho ** 2)
    x2 = rsample_mixture_1d(u[..., 1], cond_logits, cond_mu, cond_sigma)
    return torch.stack([x1, x2], -1)


def sample_step(p: MixtureParams, generator: torch.Generator | None = None) -> Tensor:
    """One ``(Δx, Δy, pen_up)`` per batch row (no gradient): component by ``π``, Gaussian with correlation, pen ``~ e``."""
    with torch.no_grad():
        j = torch.multinomial(p.log_pi.exp().reshape(-1, p.components), 1, generator=generator).reshape(p.log_pi.shape[:-1])
        idx = j[..., None, None].expand(*j.shape, 1, 2)
        mu = p.mu.gather(-2, idx).squeeze(-2)
        sigma = p.sigma.gather(-2, idx).squeeze(-2)
        rho = p.rho.gather(-1, j[..., None]).squeeze(-1)
        n = torch.randn(*mu.shape, generator=generator, dtype=mu.dtype)
        d1 = mu[..., 0] + sigma[..., 0] * n[..., 0]
        d2 = mu[..., 1] + sigma[..., 1] * (rho * n[..., 0] + torch.sqrt(1 - rho ** 2) * n[..., 1])
        pen = (torch.rand(j.shape, generator=generator, dtype=mu.dtype) < torch.sigmoid(p.pen_logit)).to(mu.dtype)
        return torch.stack([d1, d2, pen], -1)
