r"""Pruning: rank the units of a tap or the weights of a parameter by saliency, prune, and compare the loss
change that a local model of the loss predicts with the change measured by re-running the model.

The loss ``L`` is the mean next-token negative log-likelihood over a chosen item set (token batches;
``ignore_index`` skips padding targets), or any ``loss(model, batch)`` given. Two things can be pruned:

- **weights** of a parameter ``w`` (unstructured): pruning ``w_i`` sets it to 0, a step ``δ_i = -w_i``;
- **units** of a tap (structured): the tap's output ``a`` is multiplied by a mask ``m`` (``m = 1``; pruning
  unit ``i`` sets ``m_i = 0``, a step ``δ_i = -1``) by a :class:`~lstmviz.hooks.scope.HookScope` writer
  (:func:`lstmviz.hooks.intervene`, action ``scale``), so the recurrence carries the pruned state
  forward. ``θ`` below is ``w`` or ``m``, ``g = ∂L/∂θ`` and ``h_ii = ∂²L/∂θ_i²`` at the unpruned model.

Saliencies (the lowest ``fraction`` of them is pruned; one shot, all ranked at the unpruned model):

- ``magnitude``: ``|w_i|`` for weights; for units the mean absolute activation ``mean_{b,t} |a_{b,t,i}|``
  over the item set (not the norm of its weights);
- ``taylor`` (Molchanov et al. 2017, first order): ``|g_i θ_i|`` — for a unit ``|g_{m_i}| =
  |Σ_{b,t} a_{b,t,i} ∂L/∂a_{b,t,i}|`` (summed over the whole set, then the absolute value);
- ``qm`` (Laurent et al. 2020's quadratic model, Optimal Brain Damage with the gradient term kept):
  ``|-g_i θ_i + ½ h_ii θ_i²|``;
- ``obd`` (LeCun et al. 1990, Optimal Brain Damage): ``½ h_ii θ_i²`` — it assumes ``g = 0`` at a minimum,
  which a model not trained to convergence does not satisfy.

These are the definitions of :mod:`.loss_models` (MP, LM, QM, OBD over global masks of a whole model), for
one tap's units or one parameter. Before issue 20 ``obd`` named what is now ``qm``; it was renamed so that
one name means one saliency everywhere (docs/analysis.md).

Predicted change of the loss when the set ``S`` is pruned (diagonal models: cross terms between pruned
elements are ignored, which is OBD's approximation and one reason both fail at large fractions):

.. math::
    \Delta L_\mathrm{linear} = \sum_{i\in S} -g_i\theta_i, \qquad
    \Delta L_\mathrm{quadratic} = \sum_{i\in S} \big(-g_i\theta_i + \tfrac12 h_{ii}\theta_i^2\big)

The Hessian diagonal is ``exact`` (one more backward pass per coordinate, through ``∂L/∂θ_i``: fine for
the units of a tap or a small parameter) or Hutchinson's estimator ``diag(H) ≈ mean_k v_k ⊙ H v_k``
with seeded Rademacher ``v_k`` (``hutchinson``; exact when ``H`` is diagonal). The measured change is
``L(pruned) - L(unpruned)`` from real forwards. Laurent et al. ("Revisiting loss modelling for
unstructured pruning", 2020) find both models valid only locally: see :func:`pruning_curve`.

:func:`prune` is a context manager: weights are restored (units unmasked) on exit, also on errors; no
checkpoint file is touched and no ``.grad`` of a parameter is written.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from lstmviz.hooks import Edit, intervene

from .adversarial import _eval_mode, _logits
from .errors import PerturbError

__all__ = ["METHODS", "Pruned", "PruningCurve", "Saliency", "prune", "pruning_curve", "pruning_curve_items",
           "saliency"]

METHODS = ("magnitude", "taylor", "qm", "obd")
Loss = Callable[[nn.Module, Tensor], Tensor]
Forward = Callable[[nn.Module, Tensor], Any]


# ---------------------------------------------------------------------------------------------- what is pruned


class _Target:
    """The units of a tap (``tap``) or the elements of a parameter (``parameter``) of ``model``."""

    def __init__(self, model: nn.Module, tap: str | None, parameter: str | None):
        if (tap is None) == (parameter is None):
            raise PerturbError("name either a tap (units are pruned) or a parameter (weights are pruned), not both")
        self.model = model
        if parameter is not None:
            params = dict(model.named_parameters())
            if parameter not in params:
                shown = ", ".join(list(params)[:40])
                raise PerturbError(f"the model has no parameter {parameter!r}; its parameters are {shown}")
            self.kind, self.name, self.param = "weights", parameter, params[parameter]
            self.size = self.param.numel()
        else:
            from lstmviz.hooks import list_signals

            names = list_signals(model)
            if tap not in names:
                shown = ", ".join(names[:40])
                raise PerturbError(f"the model has no tap {tap!r}; its signals are {shown}")
            self.kind, self.name, self.param = "units", tap, None
            self.size = 0  # known after the first forward (see saliency)
        if self.kind == "weights" and self.size == 0:
            raise PerturbError(f"parameter {parameter!r} has no elements to prune")

    def values(self) -> Tensor:
        """θ: the weights (flat) or the unit mask (ones)."""
        if self.kind == "weights":
            return self.param.detach().flatten().double()
        return torch.ones(self.size, dtype=torch.float64)

    @contextlib.contextmanager
    def pruned(self, indices: Tensor):
        """Inside the block, the elements ``indices`` (flat) are pruned; everything is restored on exit."""
        if self.kind == "weights":
            saved = self.param.detach().clone()
            try:
                with torch.no_grad():
                    self.param.view(-1)[indices] = 0
                yield
            finally:
                with torch.no_grad():
                    self.param.copy_(saved)
        else:
            mask = torch.ones(self.size)
            mask[indices] = 0
            with intervene(self.model, Edit(self.name, "scale", mask)):
                yield

    @contextlib.contextmanager
    def differentiable(self):
        """Inside the block, ``theta`` is a leaf the loss depends on (the mask at 1, or the parameter)."""
        if self.kind == "weights":
            flag = self.param.requires_grad
            self.param.requires_grad_(True)
            try:
                yield self.param
            finally:
                self.param.requires_grad_(flag)
        else:
            m = torch.ones(self.size, dtype=torch.float64, requires_grad=True)
            with intervene(self.model, Edit(self.name, "scale", m)):
                yield m


# ---------------------------------------------------------------------------------------------- the loss


def _batches(batches) -> list[tuple[Tensor, Tensor | None]]:
    """``(tokens [B, T], lengths [B] or None)`` per batch, from tensors/arrays or ``(tokens, lengths)`` pairs
    (right padding: positions ``>= length`` are neither inputs that count nor targets)."""
    if isinstance(batches, (Tensor, np.ndarray)):
        batches = [batches]
    out = []
    for b in batches:
        lengths = None
        if isinstance(b, tuple):
            b, lengths = b
        t = torch.as_tensor(b)
        if t.dim() == 1:
            t = t[None]
        if t.dim() != 2 or t.dtype.is_floating_point or t.dtype == torch.bool or t.numel() == 0:
            raise PerturbError(f"expected token batches [batch, time] of token ids, got shape {tuple(t.shape)}")
        if lengths is not None:
            lengths = torch.as_tensor(lengths, dtype=torch.long).reshape(-1)
            if lengths.shape[0] != t.shape[0] or lengths.min() < 1 or lengths.max() > t.shape[1]:
                raise PerturbError("the lengths of a padded batch must be one per row, between 1 and its width")
        out.append((t.long(), lengths))
    if not out:
        raise PerturbError("no items to measure the loss on; choose at least one item")
    return out


def _valid(batch: tuple[Tensor, Tensor | None]) -> Tensor | None:
    """[B, T] True at real (unpadded) positions, or None when nothing is padded."""
    tokens, lengths = batch
    if lengths is None:
        return None
    return torch.arange(tokens.shape[1])[None, :] < lengths[:, None]


class _LossTerms:
    """``L = Σ_b s_b / Σ_b n_b``: per batch the summed loss ``s_b`` and the count ``n_b`` it averages over."""

    def __init__(self, model, batches, loss: Loss | None, forward: Forward | None, ignore_index: int | None):
        self.model = model
        self.batches = _batches(batches)
        self.loss = loss
        self.forward = forward or (lambda m, t: m(t))
        self.ignore_index = ignore_index
        counts = [self._count(b) for b in self.batches]
        self.total = float(sum(counts))
        if self.total <= 0:
            raise PerturbError("the items have no next-token targets (one token each, or all padding)")

    def _targets(self, batch) -> Tensor:
        tokens = batch[0]
        targets = tokens[:, 1:].clone()
        valid = _valid(batch)
        if valid is not None:
            targets[~valid[:, 1:]] = -100
        if self.ignore_index is not None:
            targets[tokens[:, 1:] == self.ignore_index] = -100
        return targets

    def _count(self, batch) -> int:
        if self.loss is not None:
            return 1
        return int((self._targets(batch) != -100).sum())

    def term(self, batch) -> Tensor:
        """``s_b / Σ n``: this batch's share of ``L`` (differentiable)."""
        tokens = batch[0]
        if self.loss is not None:
            return self.loss(self.model, tokens) / self.total
        logits = _logits(self.forward(self.model, tokens))
        if tokens.shape[1] < 2:
            return logits.sum() * 0.0
        nll = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).double(),
                                          self._targets(batch).reshape(-1), ignore_index=-100, reduction="sum")
        return nll / self.total

    def value(self) -> float:
        with torch.no_grad():
            return float(sum(float(self.term(b)) for b in self.batches))


# ---------------------------------------------------------------------------------------------- saliency


@dataclass
class Saliency:
    """Everything the rankings and the predictions need, at the unpruned model (flat, float64)."""

    kind: str  # "units" | "weights"
    name: str
    theta: np.ndarray  # w, or the mask (ones)
    gradient: np.ndarray  # g = dL/dθ
    hessian_diag: np.ndarray | None  # h_ii (None when not computed)
    magnitude: np.ndarray  # |w| or mean |activation|
    baseline: float  # L
    hessian: str = ""  # how h was computed

    def scores(self, method: str) -> np.ndarray:
        """The saliency of every element under ``method`` (lower = pruned first)."""
        if method == "magnitude":
            return self.magnitude
        if method == "taylor":
            return np.abs(self.linear_terms())
        if method == "qm":
            return np.abs(self.quadratic_terms())
        if method == "obd":
            return self.quadratic_terms() - self.linear_terms()
        raise PerturbError(f"pruning method {method!r} is not known; use one of {', '.join(METHODS)}")

    def linear_terms(self) -> np.ndarray:
        return -self.gradient * self.theta

    def quadratic_terms(self) -> np.ndarray:
        if self.hessian_diag is None:
            raise PerturbError("the quadratic (QM) and OBD models need the Hessian diagonal; compute it (hessian=)")
        return -self.gradient * self.theta + 0.5 * self.hessian_diag * self.theta ** 2

    def order(self, method: str) -> np.ndarray:
        """Element indices, least salient first (ties broken by index)."""
        return np.argsort(self.scores(method), kind="stable")

    def count(self, fraction: float) -> int:
        if not (isinstance(fraction, (int, float, np.floating)) and 0.0 <= float(fraction) <= 1.0):
            raise PerturbError(f"the fraction to prune must be between 0 and 1, got {fraction!r}")
        return int(np.floor(float(fraction) * len(self.theta) + 0.5))

    def predict(self, indices: np.ndarray) -> tuple[float, float | None]:
        """(linear, quadratic) predicted ΔL for pruning ``indices``."""
        lin = float(self.linear_terms()[indices].sum())
        quad = float(self.quadratic_terms()[indices].sum()) if self.hessian_diag is not None else None
        return lin, quad


def _unit_activity(target: _Target, terms: _LossTerms) -> np.ndarray:
    """Mean |a| per unit of the tap over the item set (and sets ``target.size``)."""
    from lstmviz.recording.recorder_context import Recorder

    total, count = None, 0
    with torch.no_grad(), Recorder(terms.model, [target.name]) as rec:
        for batch in terms.batches:
            terms.forward(terms.model, batch[0])
            a = rec.collect()[target.name].double()  # [B, T, U]
            valid = _valid(batch)
            a = a.reshape(-1, a.shape[-1]) if valid is None else a[valid]
            s = a.abs().sum(0)
            total = s if total is None else total + s
            count += a.shape[0]
    target.size = int(total.shape[0])
    return (total / max(count, 1)).numpy()


def saliency(model: nn.Module, batches, *, tap: str | None = None, parameter: str | None = None,
             hessian: str | None = "auto", samples: int = 16, seed: int = 0, loss: Loss | None = None,
             forward: Forward | None = None, ignore_index: int | None = None, task=None) -> Saliency:
    """θ, ``g``, the Hessian diagonal (``hessian``: "exact", "hutchinson", None to skip; "auto" = exact for
    units and parameters of at most 256 elements, else Hutchinson with ``samples`` Rademacher vectors) and
    the magnitudes of the units of ``tap`` or the weights of ``parameter`` on ``batches``."""
    if hessian not in ("auto", "exact", "hutchinson", None):
        raise PerturbError(f"hessian {hessian!r} is not known; use 'exact', 'hutchinson' or None")
    target = _Target(model, tap, parameter)
    with _eval_mode(model):
        terms = _LossTerms(model, batches, loss, forward, ignore_index)
        magnitude = (_unit_activity(target, terms) if target.kind == "units"
                     else target.param.detach().abs().flatten().double().numpy())
        n = target.size
        mode = hessian if hessian != "auto" else ("exact" if target.kind == "units" or n <= 256 else "hutchinson")
        if mode == "hutchinson" and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
            raise PerturbError(f"samples must be a positive whole number, got {samples!r}")
        gen = torch.Generator().manual_seed(seed)
        g_sum = torch.zeros(n, dtype=torch.float64)
        h_sum = torch.zeros(n, dtype=torch.float64) if mode else None
        baseline = 0.0
        steps = len(terms.batches) * (1 + (n if mode == "exact" else samples if mode else 0))
        done = 0
        with target.differentiable() as theta:
            for batch in terms.batches:
                with torch.enable_grad():
                    value = terms.term(batch)
                    (g,) = torch.autograd.grad(value, theta, create_graph=mode is not None)
                    g = g.flatten()
                    baseline += float(value.detach())
                    g_sum += g.detach().double()
                    done += 1
                    if mode == "exact":
                        for i in range(n):
                            (row,) = torch.autograd.grad(g[i], theta, retain_graph=True)
                            h_sum[i] += float(row.flatten()[i])
                            done += 1
                            if task is not None and i % 8 == 0:
                                task.progress(done, steps, "Hessian diagonal")
                    elif mode == "hutchinson":
                        for _ in range(samples):
                            v = (torch.randint(0, 2, (n,), generator=gen) * 2 - 1).to(g.dtype)
                            (hv,) = torch.autograd.grad(g @ v, theta, retain_graph=True)
                            h_sum += (v * hv.flatten()).double().detach()
                            done += 1
                        if task is not None:
                            task.progress(done, steps, "Hessian diagonal (Hutchinson)")
                if task is not None:
                    task.progress(done, steps, "gradients")
        if mode == "hutchinson":
            h_sum /= samples
    return Saliency(kind=target.kind, name=target.name, theta=target.values().numpy(), gradient=g_sum.numpy(),
                    hessian_diag=None if h_sum is None else h_sum.numpy(), magnitude=magnitude, baseline=baseline,
                    hessian=mode or "")


# ---------------------------------------------------------------------------------------------- prune


@dataclass
class Pruned:
    """What :func:`prune` pruned: flat element indices, and the predicted ΔL of the two loss models."""

    method: str
    fraction: float
    indices: np.ndarray
    predicted_linear: float
    predicted_quadratic: float | None
    saliency: Saliency = field(repr=False)

    def measure(self, model, batches, *, loss=None, forward=None, ignore_index=None) -> float:
        """The measured ΔL: the loss now (inside :func:`prune`) minus the unpruned baseline."""
        with _eval_mode(model):
            return _LossTerms(model, batches, loss, forward, ignore_index).value() - self.saliency.baseline


@contextlib.contextmanager
def prune(model: nn.Module, batches, *, tap: str | None = None, parameter: str | None = None,
          method: str = "taylor", fraction: float = 0.1, sal: Saliency | None = None, **options):
    """``with prune(model, batches, tap=... or parameter=..., method=..., fraction=...) as pruned:`` runs the
    block with the ``fraction`` least salient units (tap) or weights (parameter) pruned; restored on exit.

    ``options`` go to :func:`saliency` (``hessian``, ``samples``, ``seed``, ``loss``, ``forward``,
    ``ignore_index``); a precomputed ``sal`` skips that. Yields a :class:`Pruned`.
    """
    if method not in METHODS:
        raise PerturbError(f"pruning method {method!r} is not known; use one of {', '.join(METHODS)}")
    target = _Target(model, tap, parameter)
    if sal is None:
        if method not in ("qm", "obd"):
            options.setdefault("hessian", None)
        sal = saliency(model, batches, tap=tap, parameter=parameter, **options)
    target.size = len(sal.theta)
    indices = sal.order(method)[:sal.count(fraction)]
    lin, quad = sal.predict(indices)
    with target.pruned(torch.as_tensor(indices, dtype=torch.long)):
        yield Pruned(method, float(fraction), indices, lin, quad, sal)


# ---------------------------------------------------------------------------------------------- the curve


@dataclass
class PruningCurve:
    """Predicted and measured ΔL when the lowest ``fractions`` are pruned, for each ranking method.

    ``measured[m]``, ``linear[m]`` and ``quadratic[m]`` are ``[F]`` arrays for the set that method ``m``
    prunes; ``predicted[m]`` is method ``m``'s own loss model (taylor: linear; qm and magnitude:
    quadratic; obd: the quadratic term alone, ``Σ ½ h θ²``).
    """

    kind: str
    name: str
    size: int
    fractions: np.ndarray
    counts: np.ndarray
    baseline: float
    measured: dict[str, np.ndarray]
    linear: dict[str, np.ndarray]
    quadratic: dict[str, np.ndarray]
    hessian: str = ""

    @property
    def methods(self) -> list[str]:
        return list(self.measured)

    @property
    def predicted(self) -> dict[str, np.ndarray]:
        own = {"taylor": lambda m: self.linear[m], "obd": lambda m: self.quadratic[m] - self.linear[m]}
        return {m: own.get(m, lambda m: self.quadratic[m])(m) for m in self.measured}

    def to_table(self) -> list[dict]:
        """One row per (method, fraction), for CSV."""
        rows = []
        for m in self.measured:
            for k, f in enumerate(self.fractions):
                rows.append({"method": m, "fraction": float(f), "pruned": int(self.counts[k]),
                             "predicted": float(self.predicted[m][k]), "linear": float(self.linear[m][k]),
                             "quadratic": float(self.quadratic[m][k]), "measured": float(self.measured[m][k])})
        return rows


def pruning_curve(model: nn.Module, batches, *, tap: str | None = None, parameter: str | None = None,
                  methods: Sequence[str] = METHODS, fractions: Iterable[float] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5),
                  task=None, **options) -> PruningCurve:
    """Prune each fraction by each method (one shot from the unpruned model) and record the linear and
    quadratic predictions and the measured ΔL (see the module docstring; ``options`` go to :func:`saliency`)."""
    methods = list(methods)
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise PerturbError(f"pruning method {', '.join(map(repr, bad)) or 'list'} is not known; use some of "
                           f"{', '.join(METHODS)}")
    fractions = np.asarray(list(fractions), dtype=np.float64)
    if fractions.size == 0 or not np.all(np.isfinite(fractions)) or fractions.min() < 0 or fractions.max() > 1:
        raise PerturbError("the fractions to prune must be numbers between 0 and 1")
    sal_options = {k: options.pop(k) for k in ("hessian", "samples", "seed") if k in options}
    sal = saliency(model, batches, tap=tap, parameter=parameter, task=task, **sal_options, **options)
    target = _Target(model, tap, parameter)
    target.size = len(sal.theta)
    counts = np.array([sal.count(f) for f in fractions])
    measured, linear, quadratic = {}, {}, {}
    total, done = len(methods) * len(fractions), 0
    with _eval_mode(model):
        terms = _LossTerms(model, batches, options.get("loss"), options.get("forward"), options.get("ignore_index"))
        for m in methods:
            order = sal.order(m)
            meas, lin, quad = (np.zeros(len(fractions)) for _ in range(3))
            for k, n in enumerate(counts):
                indices = order[:n]
                lin[k], q = sal.predict(indices)
                quad[k] = np.nan if q is None else q
                with target.pruned(torch.as_tensor(indices, dtype=torch.long)):
                    meas[k] = terms.value() - sal.baseline
                done += 1
                if task is not None:
                    task.progress(done, total, f"pruning by {m}")
            measured[m], linear[m], quadratic[m] = meas, lin, quad
    return PruningCurve(kind=sal.kind, name=sal.name, size=len(sal.theta), fractions=fractions, counts=counts,
                        baseline=sal.baseline, measured=measured, linear=linear, quadratic=quadratic,
                        hessian=sal.hessian)


# ---------------------------------------------------------------------------------------------- live models


def pruning_curve_items(live, recording, items, target: str, methods: Sequence[str] = METHODS,
                        fractions: Iterable[float] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5), task=None,
                        batch_size: int = 32, **options) -> PruningCurve:
    """:func:`pruning_curve` of ``live``'s model (a :class:`~lstmviz.perturb.live_model.LiveModel`) on
    ``items`` of ``recording`` (None: all), run in right-padded batches whose padding is masked out of the
    loss. ``target`` is a tap name (its units are pruned) or a parameter name (its weights)."""
    from .adversarial import live_forward
    from .run import item_tokens, pad

    if not isinstance(target, str) or not target:
        raise PerturbError("name the tap or the parameter to prune")
    params = {n for n, _ in live.model.named_parameters()}
    where = {"parameter": target} if target in params else {"tap": target}
    items = list(range(recording.n_items)) if items is None else [int(i) for i in items]
    if not items:
        raise PerturbError("no items to measure the loss on; choose at least one item")
    seqs = [item_tokens(recording, i) for i in items]
    batches = []
    for start in range(0, len(seqs), batch_size):
        chunk = seqs[start:start + batch_size]
        batches.append((pad(chunk), torch.as_tensor([len(s) for s in chunk])))
    options.setdefault("forward", live_forward(live))
    return pruning_curve(live.model, batches, methods=methods, fractions=fractions, task=task, **where, **options)
