r"""The model-agnostic core of the input-side attacks: the ``c`` search, the box L-BFGS-B solve, the PGD loop.

Shared by :mod:`lstmviz.perturb.adversarial` (token embeddings) and :mod:`lstmviz.perturb.image_attack`
(images). Nothing here knows what a model or an input is: the callers hand in closures over a
perturbation ``r`` (a tensor of any shape) and per-coordinate bounds on it.

**c search** (Szegedy et al. 2013, §4.1), with the penalty written ``c * |r|_2^2 + loss(x + r, l)``: a
larger ``c`` weighs the distance more, so the minimiser is smaller and, past some ``c``, no longer reaches
the target. :func:`search_c` solves at the grid's ``c`` from the largest down to the first that reaches the
target (``c_ok``), then bisects ``bisect_steps`` times in ``log c`` between ``c_ok`` and the next larger grid
value (which does not), keeping the larger ``c`` that still reaches it. A fixed number of bisection steps,
not a tolerance: with few steps the distance exceeds the minimal one (a ``c`` too small pushes past the
boundary). Each solve starts from the solution of the nearest ``c`` (in ``log c``) solved before.

**Box L-BFGS-B** (:func:`lbfgs_b`): ``scipy.optimize.minimize(method="L-BFGS-B")`` on a torch closure
``loss(r) -> scalar`` (gradient by autograd, handed to scipy as float64 numpy), bounds ``lo <= r <= hi``
per coordinate; ``maxiter`` iterations, ``2 * maxiter`` evaluations at most.

**Projected gradient** (:func:`pgd`, Madry et al. 2018): ``steps`` times

.. math::
    r \leftarrow \Pi_{\mathrm{box}}\,\Pi_{\lVert r\rVert\le\varepsilon}\big(r + \eta\, s(\nabla_r J)\big)

with ``s(g) = g/|g|_2`` (``"l2"``) or ``sign(g)`` (``"linf"``); gradient components that push a coordinate
through a face of the box it already lies on are dropped before ``s`` (else they eat the l2 step). The
iterate with the largest objective ``J`` is returned (the start and the last iterate included).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from .errors import PerturbError

__all__ = ["best_flip", "check_grid", "eval_mode", "lbfgs_b", "pgd", "project_ball", "search_c"]


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module):
    """Eval mode inside the block (no dropout), each module's own training flag restored after."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def check_grid(c_grid: Sequence[float]) -> list[float]:
    """The grid of ``c`` values, ascending; refuses an empty grid or a non-positive value."""
    grid = sorted(float(c) for c in c_grid)
    if not grid or any(not np.isfinite(c) or c <= 0 for c in grid):
        raise PerturbError("c_grid must hold positive finite numbers")
    return grid


def search_c(solve: Callable[[float, Tensor | None], tuple[Tensor, bool]], grid: Sequence[float],
             bisect_steps: int) -> dict[float, tuple[Tensor, bool]]:
    """Scan ``grid`` (ascending) from its largest ``c`` down to the first that reaches the target, then bisect
    in ``log c`` towards the next larger grid value ``bisect_steps`` times (module docstring).

    ``solve(c, start) -> (r, reached)`` minimises at ``c`` from ``start`` (``None``: from 0). Returns every
    solution by ``c``; :func:`best_flip` picks the smallest that reaches the target.
    """
    if isinstance(bisect_steps, bool) or not isinstance(bisect_steps, (int, np.integer)) or bisect_steps < 0:
        raise PerturbError(f"bisect_steps must be a whole number >= 0, got {bisect_steps!r}")
    solutions: dict[float, tuple[Tensor, bool]] = {}

    def run(c: float) -> bool:
        near = min(solutions, key=lambda s: abs(np.log(s / c)), default=None)
        r, ok = solve(c, None if near is None else solutions[near][0])
        solutions[c] = (r, bool(ok))
        return bool(ok)

    c_ok = next((c for c in reversed(list(grid)) if run(c)), None)  # largest first, up to the first flip
    if c_ok is None:
        return solutions
    larger = [c for c in grid if c > c_ok]
    if larger:
        c_bad = larger[0]
        for _ in range(int(bisect_steps)):
            mid = float(np.sqrt(c_ok * c_bad))
            if run(mid):
                c_ok = mid
            else:
                c_bad = mid
    return solutions


def best_flip(solutions: dict[float, tuple[Tensor, bool]]) -> tuple[float, Tensor] | None:
    """The ``(c, r)`` of smallest ``|r|_2`` among the solutions that reach the target; None if none does."""
    best = None
    for c, (r, ok) in solutions.items():
        if ok and (best is None or float(r.norm()) < float(best[1].norm())):
            best = (c, r)
    return best


def lbfgs_b(loss: Callable[[Tensor], Tensor], shape: Sequence[int], lo: Tensor, hi: Tensor, *, maxiter: int,
            dtype: torch.dtype = torch.float64, start: Tensor | None = None, task=None) -> tuple[Tensor, int, int]:
    """Minimise ``loss(r)`` (a scalar tensor; ``r`` of ``shape`` and ``dtype``, requiring grad) over
    ``lo <= r <= hi`` by scipy's L-BFGS-B from ``start`` (clipped into the bounds; default 0).

    Returns ``(r float64, iterations, evaluations)``. ``task.check()`` runs at every evaluation.
    """
    from scipy.optimize import minimize

    shape = tuple(int(s) for s in shape)

    def fun(flat):
        if task is not None:
            task.check()
        r = torch.tensor(flat.reshape(shape), dtype=dtype, requires_grad=True)
        with torch.enable_grad():
            value = loss(r)
            (grad,) = torch.autograd.grad(value, r)
        return float(value.detach()), grad.double().cpu().numpy().ravel()

    bounds = np.stack([lo.double().expand(shape).cpu().numpy().ravel(),
                       hi.double().expand(shape).cpu().numpy().ravel()], axis=1)
    n = bounds.shape[0]
    x0 = np.zeros(n) if start is None else np.clip(start.double().cpu().numpy().ravel(), bounds[:, 0], bounds[:, 1])
    res = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": maxiter, "maxfun": 2 * maxiter})
    return torch.tensor(res.x.reshape(shape), dtype=torch.float64), int(res.nit), int(res.nfev)


def project_ball(r: Tensor, eps: float, norm: str) -> Tensor:
    """``r`` projected onto ``|r|_2 <= eps`` (``"l2"``, all coordinates together) or ``|r|_inf <= eps``."""
    if norm == "l2":
        n = r.norm()
        return r * (eps / n) if n > eps else r
    return r.clamp(-eps, eps)


def pgd(objective: Callable[[Tensor], Tensor], r0: Tensor, project: Callable[[Tensor], Tensor], lo: Tensor,
        hi: Tensor, *, steps: int, step_size: float, norm: str, mask: Tensor | None = None,
        task=None) -> tuple[Tensor, float]:
    """Projected gradient ascent on ``objective(r)`` (a scalar tensor) from ``r0`` (module docstring).

    ``project`` maps a step into the feasible set (ball and box; ``lo``/``hi`` are the box on ``r``, used
    for the face masking); ``mask`` zeroes the gradient of coordinates that may not move. Returns the
    iterate with the largest objective and that objective.
    """
    r = r0
    best_r, best_j = r, -float("inf")
    for step in range(steps):
        if task is not None:
            task.progress(step, steps, "projected gradient steps")
        x = r.clone().requires_grad_(True)
        with torch.enable_grad():
            j = objective(x)
            (g,) = torch.autograd.grad(j, x)
        if float(j.detach()) > best_j:
            best_j, best_r = float(j.detach()), r
        if mask is not None:
            g = g * mask
        # coordinates already at a face of the box that the step would push through do not move
        g = torch.where(((r >= hi) & (g > 0)) | ((r <= lo) & (g < 0)), torch.zeros_like(g), g)
        if norm == "l2":
            g = g / g.norm().clamp_min(1e-30)
        else:
            g = g.sign()
        r = project(r + step_size * g)
    with torch.no_grad():
        j = float(objective(r))
    if j > best_j:
        best_j, best_r = j, r
    return best_r, best_j
