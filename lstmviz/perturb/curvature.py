r"""The gradient and a diagonal curvature of :class:`~.loss_data.LossData`'s loss, for loss-model pruning.

With per-example gradients :math:`g_i = \nabla_\theta \ell_i` (:func:`lstmviz.engines.func_grads.per_example_grads`,
``vmap`` over examples, a loop as fallback) and :math:`L = \frac1n\sum_i \ell_i`:

.. math::
    g &= \frac1n \sum_i g_i \\
    \texttt{fisher}:\ h &= \frac1n \sum_i g_i \odot g_i
        \quad\text{(empirical Fisher: the true labels)} \\
    \texttt{ggn}:\ h &= \frac1n \sum_i \sum_k p_{ik}\,
        \big(\nabla_\theta \log p_{ik}\big)^{\odot 2}
        \quad\text{(true Fisher = Gauss-Newton of softmax cross-entropy, exact sum over classes;}\\
        &\qquad\text{one prediction per example)} \\
    \texttt{sampled-fisher}:\ h &= \frac1{nS} \sum_{s=1}^{S} \sum_i \big(\nabla_\theta\ell_i(\tilde y^{(s)}_i)\big)^{\odot 2},
        \quad \tilde y^{(s)}_{ip} \sim \mathrm{softmax}(z_{ip})
        \quad\text{(Monte-Carlo true Fisher; unbiased also for sequences)} \\
    \texttt{hessian}:\ h_j &= \partial^2 L / \partial\theta_j^2
        \quad\text{(exact: one more backward per weight; small models)} \\
    \texttt{hutchinson}:\ h &= \frac1S \sum_s v_s \odot H v_s,\quad v_s \in \{\pm1\}^P
        \quad\text{(seeded Rademacher vectors)}

For a token sequence :math:`\ell_i` sums the next-token losses of the sequence, so ``fisher``'s
:math:`g_i` is per sequence, not per token (cross terms between a sequence's tokens stay in it); the
sampled true Fisher has no such bias (the score of each sampled token has mean zero). The Fisher / GGN
equal the Hessian only for a loss that is linear-Gaussian in the logits: QM with them is an approximation;
:class:`LocalModel` records which curvature was used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.engines import func_grads
from lstmviz.tasks import ensure_task

from .errors import PerturbError
from .loss_data import IGNORE, LossData

CURVATURES = ("fisher", "ggn", "sampled-fisher", "hessian", "hutchinson")
CURVATURE_NAMES = {"fisher": "empirical Fisher (true labels)", "ggn": "GGN / true Fisher (sum over classes)",
                   "sampled-fisher": "true Fisher (sampled labels)", "hessian": "exact Hessian diagonal",
                   "hutchinson": "Hutchinson Hessian diagonal"}
#: the most weights the exact Hessian diagonal takes (one backward pass each)
EXACT_HESSIAN_LIMIT = 4096
#: the most classes the exact GGN sums over (one pass of per-example gradients each)
GGN_CLASS_LIMIT = 100


@dataclass
class LocalModel:
    """The gradient and diagonal curvature of ``L`` at the current weights (float64, by parameter name)."""

    gradient: dict[str, Tensor]
    curvature: dict[str, Tensor] | None
    kind: str | None  # one of CURVATURES, None when not computed
    loss: float
    grads_method: str = ""  # how per-example gradients ran ("vmap" / "loop"), "" when not used


def check_curvature(kind) -> str | None:
    if kind is None:
        return None
    if kind not in CURVATURES:
        raise PerturbError(f"curvature {kind!r} is not known; use one of {', '.join(CURVATURES)}")
    return kind


def local_model(model: nn.Module, data: LossData, params: list[str], curvature: str | None = "fisher", *,
                samples: int = 1, seed: int = 0, chunk: int = 64, method: str = "auto", task=None) -> LocalModel:
    """``g`` and the diagonal ``curvature`` of ``data``'s loss over the parameters ``params`` (see the module
    docstring); ``model`` is run in eval mode and given back unchanged (no ``.grad`` written)."""
    check_curvature(curvature)
    task = ensure_task(task)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise PerturbError(f"samples must be a whole number of at least 1, got {samples!r}")
    was = model.training
    model.eval()
    try:
        if curvature in ("hessian", "hutchinson"):
            return _second_order(model, data, params, curvature, samples, seed, chunk, task)
        return _first_order(model, data, params, curvature, samples, seed, chunk, method, task)
    finally:
        model.train(was)


def _zeros(model, params):
    named = dict(model.named_parameters())
    return {n: torch.zeros(named[n].shape, dtype=torch.float64) for n in params}


def _chunks(n: int, chunk: int):
    return [(s, min(n, s + chunk)) for s in range(0, n, chunk)]


def _first_order(model, data, params, curvature, samples, seed, chunk, method, task) -> LocalModel:
    n = len(data)
    g_sum, h_sum = _zeros(model, params), (_zeros(model, params) if curvature else None)
    parts = _chunks(n, chunk)
    passes = 1 + (_classes(model, data) if curvature == "ggn" else samples if curvature == "sampled-fisher" else 0)
    total, done = len(parts) * passes, 0
    loss = 0.0
    gen = torch.Generator().manual_seed(int(seed))
    for s, e in parts:
        x, y = data.inputs[s:e], data.targets[s:e]
        grads = func_grads.per_example_grads(model, data.loss_of, (x, y), params=params, chunk=None, method=method)
        for name in params:
            gi = grads[name].double()
            g_sum[name] += gi.sum(0)
            if curvature == "fisher":
                h_sum[name] += (gi ** 2).sum(0)
        done += 1
        task.progress(done, total, "gradients")
        if curvature in ("ggn", "sampled-fisher"):
            with torch.no_grad():
                z = data.checked_logits(model, x)
            loss += float(F.cross_entropy(z.reshape(-1, z.shape[-1]).double(), y.reshape(-1), ignore_index=IGNORE,
                                          reduction="sum"))
            probs = torch.softmax(z.double(), -1)
            if curvature == "ggn":
                done = _ggn_chunk(model, data, params, x, y, probs, h_sum, method, task, done, total)
            else:
                for _ in range(samples):
                    drawn = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=gen).reshape(y.shape)
                    sampled = torch.where(y == IGNORE, y, drawn)
                    gs = func_grads.per_example_grads(model, data.loss_of, (x, sampled), params=params, chunk=None,
                                                      method=method)
                    for name in params:
                        h_sum[name] += (gs[name].double() ** 2).sum(0) / samples
                    done += 1
                    task.progress(done, total, "true Fisher (sampled labels)")
        else:
            with torch.no_grad():
                loss += float(data.summed_loss(model, s, e).double())
    used = func_grads.last_method()
    gradient = {k: v / data.total for k, v in g_sum.items()}
    curv = None if h_sum is None else {k: v / data.total for k, v in h_sum.items()}
    return LocalModel(gradient, curv, curvature, loss / data.total, used)


def _classes(model, data) -> int:
    if data.targets.shape[1] != 1:
        raise PerturbError("the exact GGN sums over the classes of one prediction per example; these examples have "
                           f"{data.targets.shape[1]} predictions each (a sequence): use sampled-fisher")
    with torch.no_grad():
        k = int(data.checked_logits(model, data.inputs[:1]).shape[-1])
    if k > GGN_CLASS_LIMIT:
        raise PerturbError(f"the exact GGN needs one pass per class and the model has {k} classes (at most "
                           f"{GGN_CLASS_LIMIT}); use sampled-fisher")
    return k


def _ggn_chunk(model, data, params, x, y, probs, h_sum, method, task, done, total) -> int:
    """Σ_i Σ_k p_ik (∇ log p_ik)², one pass of per-example gradients of √p_ik log p_ik per class k (one
    prediction per example). One vmapped gradient per class is several times faster on CPU than vmapping
    ``jacrev`` over the K outputs."""
    counted = (y[:, 0] != IGNORE).double()
    for k in range(probs.shape[-1]):
        weight = probs[:, 0, k].sqrt() * counted

        def weighted_log_p(call, example, k=k):
            xi, wi = example
            z = data.checked_logits(call, xi[None])[0, 0]
            return -wi.to(z.dtype) * torch.log_softmax(z, -1)[k]

        gs = func_grads.per_example_grads(model, weighted_log_p, (x, weight), params=params, chunk=None, method=method)
        for name in params:
            h_sum[name] += (gs[name].double() ** 2).sum(0)
        done += 1
        task.progress(done, total, f"GGN (class {k + 1} of {probs.shape[-1]})")
    return done


def _second_order(model, data, params, curvature, samples, seed, chunk, task) -> LocalModel:
    named = dict(model.named_parameters())
    leaves = [named[n] for n in params]
    flags = [p.requires_grad for p in leaves]
    size = sum(p.numel() for p in leaves)
    if curvature == "hessian" and size > EXACT_HESSIAN_LIMIT:
        raise PerturbError(f"the exact Hessian diagonal takes one backward pass per weight and there are {size:,} "
                           f"(at most {EXACT_HESSIAN_LIMIT:,}); use hutchinson, fisher or ggn")
    try:
        for p in leaves:
            p.requires_grad_(True)
        with torch.enable_grad():
            value = sum(data.summed_loss(model, s, e) for s, e in _chunks(len(data), chunk)) / data.total
            grads = torch.autograd.grad(value, leaves, create_graph=True)
            flat = torch.cat([g.reshape(-1) for g in grads])
            h = torch.zeros(size, dtype=torch.float64)
            if curvature == "hessian":
                for i in range(size):
                    row = torch.autograd.grad(flat[i], leaves, retain_graph=True, allow_unused=True)
                    h[i] = float(_flat(row, leaves)[i])
                    if i % 16 == 0:
                        task.progress(i + 1, size, "Hessian diagonal")
            else:
                gen = torch.Generator().manual_seed(int(seed))
                for s in range(samples):
                    v = (torch.randint(0, 2, (size,), generator=gen) * 2 - 1).to(flat.dtype)
                    hv = torch.autograd.grad(flat @ v, leaves, retain_graph=True, allow_unused=True)
                    h += (v * _flat(hv, leaves)).double() / samples
                    task.progress(s + 1, samples, "Hessian diagonal (Hutchinson)")
    finally:
        for p, f in zip(leaves, flags):
            p.requires_grad_(f)
    gradient, curv, start = {}, {}, 0
    for name, p, g in zip(params, leaves, grads):
        gradient[name] = g.detach().double().clone()
        curv[name] = h[start:start + p.numel()].reshape(p.shape).clone()
        start += p.numel()
    return LocalModel(gradient, curv, curvature, float(value.detach()), "")


def _flat(grads, leaves) -> Tensor:
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, leaves)])
