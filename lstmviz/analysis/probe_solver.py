"""The optimiser of the linear probes: L-BFGS with a Kronecker-factored preconditioner, to convergence.

It minimises, for each strength ``l2`` of a grid at once (one pass over the rows serves every l2),

    f(W, b) = mean_i [logsumexp(W z_i + b) - (W z_i + b)_{y_i}] + l2 · ||W||²

over ``W [k, d]``, ``b [k]`` (b not penalised), where the ``k`` classes are those present in the
training rows (an absent class has no finite optimum: its bias would run to -inf).

**Preconditioner** (as K-FAC; Martens & Grosse 2015). With ``z̃ = (z, 1)`` and ``p = softmax(W z + b)``
the Hessian of the data term is ``E[(diag p - p pᵀ) ⊗ z̃ z̃ᵀ]``; it is approximated by ``A ⊗ B`` with
``A = E[diag p - p pᵀ]`` (at the current point, from a sample of rows) and ``B = E[z̃ z̃ᵀ]`` (once),
plus the penalty's ``2·l2·I``. Its inverse applies in ``O(k²d + kd²)`` through the eigenvectors of A
and B: ``M⁻¹ G = U_A [(U_Aᵀ G U_B) / (λ_A λ_Bᵀ + 2·l2)] U_Bᵀ``. It is the initial inverse Hessian of
L-BFGS's two-loop recursion, and is rebuilt (with the memory cleared) after 3, 10, 30 and 100
iterations, as ``p`` moves. On correlated hidden states with many classes it cuts the iterations
tenfold (a PTB LSTM layer, 33 POS classes: 27 instead of 361 to reach 1e-3 of the optimum).

**Warm start.** A fit can start from another fit's solution (``init``) with its last A (``curvatures``)
and its L-BFGS correction pairs (``memories``, e.g. from a fit at another l2 or on a subset of the
rows): the pairs are moved to the new penalty (``y`` gains ``2 (l2 - l2_old) s`` on the weights), so
the first steps already use the curvature the other fit learned instead of rebuilding it.

**Line search.** Armijo backtracking (c₁ = 1e-4) from step 1, with quadratic interpolation.

**Convergence** (not a step budget): a problem stops when the estimated distance to the optimum,
the Newton decrement in the preconditioner's metric ``½ gᵀ M⁻¹ g``, is below ``tol`` times ``f``
(1e-6 by default in fit_probe: f within about 1e-6 relative of its minimum, three orders of magnitude
inside what the accuracy can resolve), or when ten accepted steps in a row lower ``f`` by less than
1e-12 relative (float32 passes cannot resolve more). ``max_iter`` iterations without either leave
``converged`` False, which the caller reports.

The rows come from ``chunks()``, an iterable of ``(z float32 [c, d], y int64 [c])`` over every training
row (y in 0..k-1) that can be iterated many times; each *pass* reads it once and evaluates the
objective and gradient of every open problem (one matrix product for all of them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

REFRESH_AT = (3, 10, 30, 100)
"""Iterations after which a problem's preconditioner is rebuilt at its current point."""
CURVATURE_ROWS = 32768
"""Rows of a pass that estimate A = E[diag p - p pᵀ] for a preconditioner."""
MEMORY = 10
"""Correction pairs L-BFGS keeps."""
STALL_STEPS = 10


@dataclass
class SolverResult:
    """Per problem g: ``weights[g]`` [k, d] and ``bias[g]`` [k] (float32), the objective, the number of
    accepted iterations, whether it converged, and its last decrement estimate; ``passes`` in all."""

    weights: np.ndarray
    bias: np.ndarray
    objective: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    decrement: np.ndarray
    passes: int
    curvatures: list  # per problem: the last A = E[diag p - p pᵀ] (float64 torch [k, k]), for a warm start
    memories: list = None  # per problem: (l2, its L-BFGS correction pairs), for a warm start


def second_moment(z, device_chunk: int = 16384):
    """``B = E[z̃ z̃ᵀ]`` ([d + 1, d + 1] float64) of rows ``z`` (a float32 torch tensor), z̃ = (z, 1)."""
    import torch

    n, d = z.shape
    b = torch.zeros(d + 1, d + 1, dtype=torch.float64)
    for s in range(0, n, device_chunk):
        c = z[s:s + device_chunk]
        b[:d, :d] += (c.T @ c).double()
        b[:d, d] += c.sum(0).double()
    b[d, :d] = b[:d, d]
    b[d, d] = n
    return b / max(1, n)


class _Problem:
    """One l2's L-BFGS state (float64 torch tensors of shape [k, d + 1]: W with b as the last column)."""

    def __init__(self, l2, theta, penalty_mask, eig_b, curvature=None, memory=None):
        self.l2 = float(l2)
        self.carried = self._carry(memory, penalty_mask) if memory is not None else None
        self.theta = theta
        self.mask = penalty_mask
        self.eig_b = eig_b
        self.f = math.inf
        self.g = None
        self.trial = theta.clone()
        self.step = 1.0
        self.direction = None
        self.gd = 0.0
        self.pairs: list = []
        self.precond = None
        self.want_curvature = curvature is None  # the next pass measures A at the trial point
        self.pending = curvature  # A measured (or given), applied at the next accepted point
        self.curvature = None  # the A in use
        # a warm start with its curvature given skips the early rebuilds
        self.refresh_at = REFRESH_AT if curvature is None else tuple(r for r in REFRESH_AT if r >= 10)
        self.iterations = 0
        self.converged = False
        self.decrement = math.inf
        self.stalled = 0
        self.done = False

    def _carry(self, memory, mask):
        """Correction pairs of another fit (at ``l2_old``) moved to this l2: only the penalty's part of
        ``y`` changes, by ``2 (l2 - l2_old) s`` on the penalised entries."""
        l2_old, pairs = memory
        out = []
        for s, y, _ in pairs:
            y = y + 2.0 * (self.l2 - l2_old) * mask * s
            sy = float((s * y).sum())
            if sy > 0.0:
                out.append((s, y, 1.0 / sy))
        return out

    # -- the preconditioner -----------------------------------------------------------------------

    def set_curvature(self, a):
        import torch

        self.curvature = a
        la, ua = torch.linalg.eigh(a)
        lb, ub = self.eig_b
        scale = la.clamp_min(0.0)[:, None] * lb.clamp_min(0.0)[None, :]
        floor = max(2.0 * self.l2, 1e-8 * float(scale.max()) if scale.numel() else 0.0, 1e-12)
        self.precond = (ua, ub, scale + floor)
        self.pairs.clear()

    def apply_inverse(self, g):
        ua, ub, den = self.precond
        return ua @ ((ua.T @ g @ ub) / den) @ ub.T

    # -- L-BFGS -----------------------------------------------------------------------------------

    def _direction(self):
        q = self.g.clone()
        alphas = []
        for s, y, rho in reversed(self.pairs):
            a = rho * float((s * q).sum())
            q -= a * y
            alphas.append(a)
        r = self.apply_inverse(q)
        if self.pairs:  # scale M⁻¹ to the curvature seen along the last step: sᵀy / yᵀM⁻¹y
            s, y, _ = self.pairs[-1]
            r *= float((s * y).sum()) / max(float((y * self.apply_inverse(y)).sum()), 1e-300)
        for (s, y, rho), a in zip(self.pairs, reversed(alphas)):
            b = rho * float((y * r).sum())
            r += (a - b) * s
        d = -r
        gd = float((self.g * d).sum())
        if not gd < 0.0:  # not a descent direction: restart from the preconditioned gradient
            self.pairs.clear()
            d = -self.apply_inverse(self.g)
            gd = float((self.g * d).sum())
        return d, gd

    def observe(self, f, g, tol, max_iter):
        """Take the objective and gradient at ``trial``; set the next trial (or finish)."""
        if self.g is None:  # the starting point
            self.f, self.g = f, g
            self._next(tol, max_iter, previous=None)
            return
        if f <= self.f + 1e-4 * self.step * self.gd:
            s = self.trial - self.theta
            y = g - self.g
            sy = float((s * y).sum())
            previous = self.f
            self.theta, self.f, self.g = self.trial, f, g
            self.iterations += 1
            if sy > 1e-12 * float((y * y).sum()) ** 0.5 * float((s * s).sum()) ** 0.5:
                self.pairs.append((s, y, 1.0 / sy))
                if len(self.pairs) > MEMORY:
                    self.pairs.pop(0)
            self._next(tol, max_iter, previous=previous)
        elif self.step < 1e-10:
            # no step lowers f measurably: the point is as good as float32 passes can tell apart
            self.done = True
            self.converged = self.decrement <= 100.0 * tol * max(abs(self.f), 1e-12)
        else:  # backtrack: the minimiser of the quadratic through f(0), f'(0) and f(step)
            denom = 2.0 * (f - self.f - self.gd * self.step)
            new = -self.gd * self.step * self.step / denom if denom > 0 else 0.5 * self.step
            self.step = min(0.5 * self.step, max(0.1 * self.step, new))
            self.trial = self.theta + self.step * self.direction

    def _next(self, tol, max_iter, previous):
        if self.pending is not None:
            self.set_curvature(self.pending)
            self.pending = None
        if self.carried is not None:
            self.pairs[:] = self.carried
            self.carried = None
        self.decrement = 0.5 * float((self.g * self.apply_inverse(self.g)).sum())
        if previous is not None:
            self.stalled = self.stalled + 1 if previous - self.f <= 1e-12 * abs(self.f) else 0
        if self.decrement <= tol * max(abs(self.f), 1e-12) or self.stalled >= STALL_STEPS:
            self.converged, self.done = True, True
            return
        if self.iterations >= max_iter:
            self.done = True
            return
        self.want_curvature = self.iterations in self.refresh_at
        self.direction, self.gd = self._direction()
        self.step = 1.0
        self.trial = self.theta + self.direction


def fit_softmax(chunks, n_rows: int, d: int, counts, l2s, *, init=None, curvatures=None, memories=None, second=None,
                tol: float = 1e-7, max_iter: int = 500, on_pass=None) -> SolverResult:
    """Minimise the objective of the module docstring for every l2 in ``l2s``.

    ``chunks``: re-iterable ``(z, y)`` batches of all ``n_rows`` training rows (module docstring);
    ``counts[c]``: the rows of class c (every class counted must occur: k = len(counts)). ``init``: ``(W [g, k, d], b [g, k])`` starting points (default W = 0, b = log of the class priors).
    ``second``: ``B = E[z̃ z̃ᵀ]`` (``second_moment``) of the rows or of a random sample of them, or its
    ``torch.linalg.eigh`` (eigenvalues, eigenvectors) when several fits share it (default: from the
    first pass's rows). ``on_pass(passes, open_problems)`` is called after every pass (for
    progress and cancellation).
    """
    import torch

    l2s = [float(v) for v in l2s]
    g_count = len(l2s)
    counts = torch.as_tensor(np.asarray(counts, np.float64))
    k = len(counts)
    if second is None:
        second = _first_rows_moment(chunks, d)
    lb, ub = second if isinstance(second, tuple) else torch.linalg.eigh(second.double())
    mask = torch.ones(k, d + 1, dtype=torch.float64)
    mask[:, d] = 0.0
    if init is None:
        prior = counts.clamp_min(1e-3)
        theta0 = torch.zeros(k, d + 1, dtype=torch.float64)
        theta0[:, d] = torch.log(prior / prior.sum())
        starts = [theta0.clone() for _ in l2s]
    else:
        w0, b0 = init
        starts = [torch.cat([torch.as_tensor(w0[i], dtype=torch.float64),
                             torch.as_tensor(b0[i], dtype=torch.float64)[:, None]], 1) for i in range(g_count)]
    curvatures = curvatures if curvatures is not None else [None] * g_count
    memories = memories if memories is not None else [None] * g_count
    problems = [_Problem(l2, th, mask, (lb, ub), a, m) for l2, th, a, m in zip(l2s, starts, curvatures, memories)]
    passes = 0
    while True:
        open_ = [p for p in problems if not p.done]
        if not open_:
            break
        f, grads, curv = _evaluate(chunks, n_rows, d, k, open_)
        passes += 1
        for i, p in enumerate(open_):
            if p.want_curvature:
                p.pending = curv[i]
                p.want_curvature = False
            p.observe(f[i] + p.l2 * float((p.trial[:, :d] ** 2).sum()), grads[i] + 2.0 * p.l2 * p.trial * mask,
                      tol, max_iter)
        if on_pass is not None:
            on_pass(passes, sum(1 for p in problems if not p.done))
    weights = np.stack([p.theta[:, :d].numpy() for p in problems]).astype(np.float32)
    bias = np.stack([p.theta[:, d].numpy() for p in problems]).astype(np.float32)
    return SolverResult(weights=weights, bias=bias, objective=np.array([p.f for p in problems]),
                        iterations=np.array([p.iterations for p in problems]),
                        converged=np.array([p.converged for p in problems]),
                        decrement=np.array([p.decrement for p in problems]), passes=passes,
                        curvatures=[p.curvature for p in problems],
                        memories=[(p.l2, list(p.pairs)) for p in problems])


def _evaluate(chunks, n_rows, d, k, problems):
    """One pass: the mean data loss and its gradient ([k, d + 1], float64) at every problem's trial
    point, and A = E[diag p - p pᵀ] from the first ``CURVATURE_ROWS`` rows for those that want it."""
    import torch

    g = len(problems)
    w = torch.cat([p.trial[:, :d].T for p in problems], 1).float().contiguous()  # [d, g*k]
    b = torch.cat([p.trial[:, d] for p in problems]).float()
    loss = torch.zeros(g, dtype=torch.float64)
    grad_w = torch.zeros(g * k, d, dtype=torch.float64)
    grad_b = torch.zeros(g * k, dtype=torch.float64)
    want = [i for i, p in enumerate(problems) if p.want_curvature]
    curv_sum = torch.zeros(g, k, k, dtype=torch.float64)
    curv_rows = 0
    for z, y in chunks:
        c = len(y)
        s = torch.addmm(b, z, w).view(c, g, k)
        top = s.amax(-1, keepdim=True)
        p = torch.exp(s - top)
        total = p.sum(-1, keepdim=True)
        lse = (total.log() + top).squeeze(-1)  # [c, g]; fewer kernels than logsumexp and a second exp
        picked = s.gather(-1, y.view(c, 1, 1).expand(c, g, 1)).squeeze(-1)
        loss += (lse - picked).sum(0, dtype=torch.float64)
        p.div_(total)  # softmax, [c, g, k]
        if want and curv_rows < CURVATURE_ROWS:
            take = min(c, CURVATURE_ROWS - curv_rows)
            for i in want:
                pi = p[:take, i, :].double()
                curv_sum[i] += torch.diag(pi.sum(0)) - pi.T @ pi
            curv_rows += take
        p.scatter_add_(-1, y.view(c, 1, 1).expand(c, g, 1), torch.full((c, g, 1), -1.0))  # P - Y
        p2 = p.view(c, g * k)
        grad_w += (p2.T @ z).double()
        grad_b += p2.sum(0, dtype=torch.float64)
    n = max(1, n_rows)
    grads = [torch.cat([grad_w[i * k:(i + 1) * k], grad_b[i * k:(i + 1) * k, None]], 1) / n for i in range(g)]
    curv = [curv_sum[i] / max(1, curv_rows) for i in range(g)]
    return (loss / n).tolist(), grads, curv


def _first_rows_moment(chunks, d, rows: int = 100_000):
    import torch

    parts, got = [], 0
    for z, _ in chunks:
        parts.append(z[: rows - got].clone())
        got += len(parts[-1])
        if got >= rows:
            break
    z = torch.cat(parts) if parts else torch.zeros(0, d)
    return second_moment(z)
