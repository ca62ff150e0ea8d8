r"""Input-side perturbations of a token model: adversarial embeddings and token substitutions.

All three attacks act on the output of the model's ``nn.Embedding`` (the ``embedding`` attribute, else
the first ``nn.Embedding`` module): a perturbation ``r`` [T, E] is added to the embedded input
``x = E[tokens]`` through a :class:`~lstmviz.hooks.scope.HookScope` writer that exists only while the
attack runs (removed on exit, also on errors). The weights of the model are never changed and no
``.grad`` of a parameter is written. The objective is the next-token prediction at one item-local
position ``p``: ``z = logits_p(x + r)`` and ``loss_f(x + r, l) = -log softmax(z)_l``. A next-token model is
causal, so by default (``causal=True``) the objective runs the model on tokens ``0..p`` only; the hidden-state
deltas returned are those of the whole item.

**Box-constrained L-BFGS** (Szegedy et al. 2013, "Intriguing properties of neural networks", §4.1):

.. math::
    \min_r \; c\,\lVert r\rVert_2^2 + \mathrm{loss}_f(x + r, l)
    \quad\text{subject to}\quad x + r \in [\mathrm{lo}, \mathrm{hi}]

solved by ``scipy.optimize.minimize(method="L-BFGS-B")`` with per-coordinate bounds
``lo_d - x_{t,d} <= r_{t,d} <= hi_d - x_{t,d}`` (``lo``/``hi``: the per-dimension minimum/maximum over the
embedding table, so ``x + r`` stays in the box of real embeddings), ``r_t = 0`` at positions outside the
allowed set (default: all positions ``<= p``). A line search over ``c`` looks for the *largest* ``c`` (the
strongest distance penalty, i.e. the smallest perturbation) whose minimiser still gives ``argmax z = l``:
a geometric scan over ``c_grid`` then bisection in ``log c`` between the largest ``c`` that flips and the
next one that does not. The distance term ``+c|r|^2`` is *always added*, also untargeted (advertorch's
L-BFGS attack flips its sign in untargeted mode, which maximises the distance instead). Untargeted,
the target ``l`` is each of the ``n_targets`` runner-up classes of the clean prediction in turn (default the
first) and the smallest flip wins (the closest decision boundary among them). Each solve starts from the
solution for the nearest ``c`` solved before.

**Projected gradient** (Madry et al. 2018): ``r_0`` = 0 or uniform in the ball (``random_start``), then
``steps`` times

.. math::
    r \leftarrow \Pi_{\mathrm{box}}\,\Pi_{\lVert r\rVert\le\varepsilon}\big(r + \eta\, s(\nabla_r J)\big)

with ``J = loss_f(x + r, y)`` (untargeted, ``y`` the clean argmax; ascent) or ``J = -loss_f(x + r, l)``
(targeted), ``s(g) = g/|g|_2`` for ``norm="l2"`` and ``sign(g)`` for ``"linf"``. The box ``[lo - x, hi - x]``
contains 0, so clipping to it after the ball projection only shrinks coordinates and stays in the ball;
gradient components that push a coordinate through a face of the box it already lies on are dropped
before the step is normalised (else they eat the l2 step). The iterate with the best objective is returned.

**HotFlip** (Ebrahimi et al. 2018): the first-order estimate of the change in ``J`` (as in PGD) when
token ``x_i`` is replaced by ``v`` is

.. math::
    \widehat{\Delta J}_{i,v} = (E[v] - E[x_i]) \cdot \nabla_{e_i} J

over every allowed position ``i`` and candidate ``v``; the top ``k`` estimates are verified by a real
forward each (one batch), and the substitution whose *measured* ``ΔJ`` is largest is returned, with the
estimated and measured changes of all verified candidates.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from lstmviz.hooks.scope import HookScope

from .attack_core import best_flip, check_grid, lbfgs_b, pgd, project_ball, search_c
from .attack_core import eval_mode as _eval_mode
from .errors import PerturbError

__all__ = ["InputPerturbation", "METHODS", "attack_item", "embedding_box", "find_embedding", "hotflip",
           "lbfgs_attack", "live_forward", "pgd_attack"]

Forward = Callable[[nn.Module, Tensor], Any]


# ---------------------------------------------------------------------------------------------- result


@dataclass
class InputPerturbation:
    """One input-side perturbation of one item, measured at position ``position``.

    ``delta`` is ``r`` [T, E] added to the embedded input (for a token substitution ``E[v] - E[x_i]`` at the
    substituted position), its norms total and per position; ``top_*`` are the k most probable next tokens
    at ``position`` before/after, with probabilities; ``hidden_delta`` maps each tap asked for to its
    ``[T, U]`` perturbed minus clean states (empty when no taps were asked for).
    """

    method: str
    position: int
    target: int | None  # the class aimed at (None: untargeted)
    clean_tokens: np.ndarray  # [T]
    perturbed_tokens: np.ndarray  # [T] (equal to clean_tokens for embedding attacks)
    delta: np.ndarray  # [T, E]
    l2: float
    linf: float
    l2_per_position: np.ndarray  # [T]
    linf_per_position: np.ndarray  # [T]
    prediction_before: int
    prediction_after: int
    top_before: np.ndarray  # [k] token ids
    top_before_p: np.ndarray  # [k] probabilities
    top_after: np.ndarray
    top_after_p: np.ndarray
    loss_before: float  # -log p(target or clean argmax) at position
    loss_after: float
    flipped: bool
    hidden_delta: dict[str, np.ndarray] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # method specific (c, candidates, steps, ...)

    def summary(self) -> dict:
        """A flat dict for a table row or a status line."""
        return {"method": self.method, "position": self.position, "target": self.target,
                "flipped": self.flipped, "l2": self.l2, "linf": self.linf,
                "prediction_before": self.prediction_before, "prediction_after": self.prediction_after,
                "loss_before": self.loss_before, "loss_after": self.loss_after,
                "positions_changed": int(np.count_nonzero(self.l2_per_position))}


# ---------------------------------------------------------------------------------------------- plumbing


def find_embedding(model: nn.Module) -> nn.Embedding:
    """The model's input embedding: its ``embedding`` attribute, else its first ``nn.Embedding``."""
    emb = getattr(model, "embedding", None)
    if isinstance(emb, nn.Embedding):
        return emb
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            return module
    raise PerturbError(f"the model ({type(model).__name__}) has no nn.Embedding, so its input cannot be perturbed "
                       "in embedding space; input-side attacks need a token model with an embedding layer")


def embedding_box(model: nn.Module) -> tuple[Tensor, Tensor]:
    """Per embedding dimension, the minimum and maximum over the embedding table ([E] each)."""
    table = find_embedding(model).weight.detach()
    return table.min(dim=0).values, table.max(dim=0).values


def _default_forward(model: nn.Module, tokens: Tensor):
    return model(tokens)


def _logits(output, what: str = "the model") -> Tensor:
    out = output[0] if isinstance(output, (tuple, list)) and output else output
    if not isinstance(out, Tensor) or out.dim() != 3:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise PerturbError(f"{what}'s output has no logits [batch, time, vocab] (got {shape}); give a forward "
                           "function that returns them")
    return out


@contextlib.contextmanager
def _added_to_embedding(embedding: nn.Embedding, delta_ref: list):
    """A scope whose writer adds ``delta_ref[0]`` ([T, E] or [B, T, E], or None) to ``embedding``'s output."""

    def write(module, args, kwargs, output):
        r = delta_ref[0]
        if r is None:
            return None
        r = r.to(output.dtype)
        if r.dim() == 2:
            if output.dim() == 3 and output.shape[1] == r.shape[0]:
                r = r[None]  # [B, T, E]
            elif output.dim() == 3 and output.shape[0] == r.shape[0]:
                r = r[:, None]  # time-major [T, B, E]
        try:
            return output + r
        except RuntimeError:
            raise PerturbError(f"the embedding output has shape {tuple(output.shape)}, which a perturbation of shape "
                               f"{tuple(r.shape)} does not fit; perturb the item the model is run on") from None

    with HookScope() as scope:
        scope.write(embedding, write)
        yield


def _as_tokens(tokens) -> Tensor:
    t = torch.as_tensor(np.asarray(tokens) if not isinstance(tokens, Tensor) else tokens)
    if t.dim() == 2 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 1 or t.numel() == 0 or t.dtype.is_floating_point or t.dtype == torch.bool:
        raise PerturbError(f"expected the item's tokens as one sequence of token ids, got shape {tuple(t.shape)}")
    return t.long()


def _check_position(position, length: int) -> int:
    if isinstance(position, bool) or not isinstance(position, (int, np.integer)) or not 0 <= position < length:
        raise PerturbError(f"position {position!r} is not in the item; it has {length} tokens (0 to {length - 1})")
    return int(position)


def _allowed(positions, obj: "_Objective") -> np.ndarray:
    """The positions r may change: default all <= p; beyond the positions the objective runs, none."""
    if positions is None:
        return np.arange(obj.position + 1)
    out = np.unique(np.asarray(list(positions), dtype=np.int64))
    if out.size == 0 or out.min() < 0 or out.max() >= obj.full_length:
        raise PerturbError(f"the positions to perturb must be in the item (0 to {obj.full_length - 1}), "
                           f"got {list(positions)}")
    out = out[out < obj.length]
    if out.size == 0:
        raise PerturbError(f"none of the positions to perturb comes before position {obj.position}, so none can "
                           "change the prediction there; choose earlier positions")
    return out


class _Objective:
    """The model at one item with an additive embedding perturbation: logits at ``position`` as a function of r."""

    def __init__(self, model, tokens, position, forward=None, causal=True):
        self.model = model
        self.forward = forward or _default_forward
        self.embedding = find_embedding(model)
        self.full_tokens = _as_tokens(tokens).to(self.embedding.weight.device)
        self.full_length = int(self.full_tokens.shape[0])
        self.position = _check_position(position, self.full_length)
        # a causal (next-token) model's prediction at p depends on tokens <= p only: run just those
        self.tokens = self.full_tokens[:self.position + 1] if causal else self.full_tokens
        self.length = int(self.tokens.shape[0])
        self.dim = self.embedding.embedding_dim
        self._ref: list = [None]
        self.vocab = self.embedding.num_embeddings

    @contextlib.contextmanager
    def active(self):
        with _eval_mode(self.model), _added_to_embedding(self.embedding, self._ref):
            yield self

    def logits_all(self, r: Tensor | None, tokens: Tensor | None = None) -> Tensor:
        """Logits [B, T, V] for tokens [B, T] (default: the item) with r added."""
        self._ref[0] = r
        try:
            toks = self.tokens[None] if tokens is None else tokens
            return _logits(self.forward(self.model, toks))
        finally:
            self._ref[0] = None

    def logits_at(self, r: Tensor | None) -> Tensor:
        return self.logits_all(r)[0, self.position]


def _loss(z: Tensor, label: int) -> Tensor:
    return -torch.log_softmax(z, dim=-1)[..., label]


def _topk(z: Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    p = torch.softmax(z.detach().double(), dim=-1)
    k = min(k, p.shape[-1])
    values, ids = p.topk(k)
    return ids.cpu().numpy(), values.cpu().numpy()


def _hidden_delta(model, forward, tokens_clean: Tensor, tokens_after: Tensor, r: Tensor | None, embedding,
                  taps) -> dict[str, np.ndarray]:
    if not taps:
        return {}
    from lstmviz.recording.recorder_context import Recorder

    ref: list = [None]
    with _eval_mode(model), torch.no_grad(), _added_to_embedding(embedding, ref), \
            Recorder(model, list(taps)) as rec:
        forward(model, tokens_clean[None])
        clean = rec.collect()
        ref[0] = r
        forward(model, tokens_after[None])
        after = rec.collect()
    return {name: (after[name][0] - clean[name][0]).double().cpu().numpy() for name in clean}


def _result(method, obj: _Objective, r: Tensor, substitution, label, target, taps, k, details,
            flipped_fn) -> InputPerturbation:
    """``r`` [obj.length, E] added to the embedding, or (``substitution`` = (i, v)) token i replaced by v."""
    after = obj.full_tokens.clone()
    with torch.no_grad(), obj.active():
        z0 = obj.logits_at(None)
        if substitution is None:
            z1 = obj.logits_at(r)
        else:
            after[substitution[0]] = substitution[1]
            z1 = obj.logits_all(None, after[None, :obj.length])[0, obj.position]
    full = torch.zeros(obj.full_length, obj.dim, dtype=r.dtype)
    full[:obj.length] = r.detach()
    r = full
    r_np = r.double().cpu().numpy()
    l2_pos = np.sqrt((r_np ** 2).sum(axis=1))
    linf_pos = np.abs(r_np).max(axis=1) if r_np.size else np.zeros(obj.length)
    tb, tbp = _topk(z0, k)
    ta, tap_ = _topk(z1, k)
    pred_after = int(z1.argmax())
    r_run = r if substitution is None else None
    hidden = _hidden_delta(obj.model, obj.forward, obj.full_tokens, after, r_run, obj.embedding, taps)
    return InputPerturbation(
        method=method, position=obj.position, target=target,
        clean_tokens=obj.full_tokens.cpu().numpy(), perturbed_tokens=after.cpu().numpy(),
        delta=r_np, l2=float(np.sqrt((r_np ** 2).sum())), linf=float(np.abs(r_np).max()) if r_np.size else 0.0,
        l2_per_position=l2_pos, linf_per_position=linf_pos,
        prediction_before=int(z0.argmax()), prediction_after=pred_after,
        top_before=tb, top_before_p=tbp, top_after=ta, top_after_p=tap_,
        loss_before=float(_loss(z0.double(), label)), loss_after=float(_loss(z1.double(), label)),
        flipped=bool(flipped_fn(pred_after)), hidden_delta=hidden, details=details)


def _check_target(target, vocab: int) -> int | None:
    if target is None:
        return None
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not 0 <= target < vocab:
        raise PerturbError(f"target class {target!r} is not a token id of the model (0 to {vocab - 1})")
    return int(target)


def _box_bounds(obj: _Objective, box) -> tuple[Tensor, Tensor]:
    """Bounds on r [T, E] from a box on x + r: "table" (the embedding table's range), None, or (lo, hi)."""
    x = obj.embedding.weight.detach()[obj.tokens].double()  # [T, E]
    if box is None:
        inf = torch.full_like(x, float("inf"))
        return -inf, inf
    if isinstance(box, str):
        if box != "table":
            raise PerturbError(f"box {box!r} is not known; use 'table', None or (low, high)")
        lo, hi = embedding_box(obj.model)
    else:
        try:
            lo, hi = box
        except (TypeError, ValueError):
            raise PerturbError("the box must be 'table', None or a pair (low, high)") from None
    lo = torch.as_tensor(lo, dtype=torch.float64).expand(obj.dim)
    hi = torch.as_tensor(hi, dtype=torch.float64).expand(obj.dim)
    if bool((lo > hi).any()):
        raise PerturbError("the box's low bound exceeds its high bound in some dimension")
    return (lo - x).clamp(max=0.0), (hi - x).clamp(min=0.0)  # the clean input counts as inside


# ---------------------------------------------------------------------------------------------- L-BFGS


def _solve_lbfgs(obj: _Objective, label: int, c: float, lo: Tensor, hi: Tensor, mask: Tensor, maxiter: int,
                 start: Tensor | None = None, task=None):
    shape = (obj.length, obj.dim)

    def loss(r: Tensor) -> Tensor:
        rm = r * mask
        return _loss(obj.logits_at(rm), label) + c * (rm.double() ** 2).sum()

    inside = mask.expand(shape) > 0  # positions outside the allowed set are fixed at r = 0
    r, nit, nfev = lbfgs_b(loss, shape, torch.where(inside, lo, 0.0), torch.where(inside, hi, 0.0),
                           maxiter=maxiter, dtype=obj.embedding.weight.dtype, start=start, task=task)
    return r * mask, nit, nfev


def lbfgs_attack(model: nn.Module, tokens, position: int, target: int | None = None, *,
                 c_grid: Sequence[float] = tuple(10.0 ** np.arange(-5, 2)), bisect_steps: int = 8,
                 box="table", positions=None, n_targets: int = 1, maxiter: int = 100,
                 forward: Forward | None = None, taps=None, k: int = 5, causal: bool = True,
                 task=None) -> InputPerturbation:
    """Szegedy et al.'s box-constrained L-BFGS attack at ``position`` (see the module docstring).

    Args:
        target: the class ``l`` the prediction should become; ``None`` = untargeted (any other class).
        c_grid: the scan of the distance weight ``c`` (ascending); bisection refines between the largest
            ``c`` that flips and the next that does not (``bisect_steps`` halvings in ``log c``).
        box: ``"table"`` (per dimension [min, max] over the embedding table), ``None`` or ``(low, high)``.
        positions: the positions whose embedding may change (default all ``<= position``).
        n_targets: untargeted: how many runner-up classes are tried (the smallest flip is kept).
        maxiter: L-BFGS-B iterations per solve.
        causal: run the objective on tokens ``0..position`` only (a next-token model cannot look ahead).
        forward: ``forward(model, tokens [B, T]) -> logits [B, T, V]`` (default ``model(tokens)[0]`` or
            ``model(tokens)``).
        taps: signals whose hidden-state change is returned in ``hidden_delta``.
        task: a :class:`lstmviz.tasks.Task` (progress per solve; cancel raises ``Cancelled``).

    Returns an :class:`InputPerturbation`; ``flipped`` is False when no ``c`` in the grid flips (``delta``
    is then the solution at the smallest ``c``). ``details`` holds ``c`` and the search trace.
    """
    obj = _Objective(model, tokens, position, forward, causal)
    target = _check_target(target, obj.vocab)
    grid = check_grid(c_grid)
    allowed = _allowed(positions, obj)
    mask = torch.zeros(obj.length, 1, dtype=torch.float64)
    mask[torch.as_tensor(allowed)] = 1.0
    lo, hi = _box_bounds(obj, box)
    with obj.active(), torch.no_grad():
        z0 = obj.logits_at(None)
    clean = int(z0.argmax())
    if target is None:
        order = torch.argsort(z0, descending=True).tolist()
        labels = [c for c in order if c != clean][:max(1, n_targets)]
    else:
        labels = [target]

    def flips(r_pred: int, label: int) -> bool:
        return r_pred == label if target is not None else r_pred != clean

    trace: list[dict] = []
    best = None  # (l2, r, c, label)
    with obj.active():
        for label in labels:

            def solve(c: float, start: Tensor | None) -> tuple[Tensor, bool]:
                r, nit, nfev = _solve_lbfgs(obj, label, c, lo, hi, mask, maxiter, start, task)
                if task is not None:
                    task.progress(len(trace) + 1, len(labels) * (len(grid) + bisect_steps), f"L-BFGS at c = {c:.3g}")
                with torch.no_grad():
                    pred = int(obj.logits_at(r.to(obj.embedding.weight.dtype)).argmax())
                ok = flips(pred, label)
                trace.append({"label": label, "c": c, "l2": float(r.norm()), "flipped": ok, "iterations": nit,
                              "evaluations": nfev})
                return r, ok

            found = best_flip(search_c(solve, grid, bisect_steps))
            if found is not None and (best is None or float(found[1].norm()) < best[0]):
                best = (float(found[1].norm()), found[1], found[0], label)
    if best is None:
        r = torch.zeros(obj.length, obj.dim, dtype=torch.float64)
        smallest = [t for t in trace if t["c"] == grid[0]]
        details = {"c": None, "trace": trace, "note": "no c in the grid flips the prediction" if smallest else ""}
        label = labels[0]
    else:
        _, r, c, label = best
        details = {"c": c, "trace": trace}
    details["clean_prediction"] = clean
    details["aimed_at"] = label
    return _result("lbfgs", obj, r.to(obj.embedding.weight.dtype), None,
                   label if target is not None else clean, target, taps, k, details,
                   lambda pred: flips(pred, label))


# ---------------------------------------------------------------------------------------------- PGD


def pgd_attack(model: nn.Module, tokens, position: int, *, eps: float, norm: str = "l2", steps: int = 40,
               step_size: float | None = None, target: int | None = None, random_start: bool = False,
               seed: int = 0, box="table", positions=None, forward: Forward | None = None, taps=None,
               k: int = 5, causal: bool = True, objective: str = "ce", task=None) -> InputPerturbation:
    """Projected gradient attack (Madry et al.) within ``|r| <= eps`` (``norm`` "l2" over all allowed
    positions, or "linf" per coordinate) and the box; see the module docstring.

    ``step_size`` defaults to ``2.5 * eps / steps``. ``random_start`` draws ``r_0`` uniformly in the ball
    (seeded). ``objective`` "ce" is the loss above; "margin" is Carlini & Wagner's logit margin
    ``J = max_{j != y} z_j - z_y`` (untargeted) or ``z_l - max_{j != l} z_j`` (targeted), which keeps pushing
    where the softmax is flat. Returns the iterate with the best objective as an :class:`InputPerturbation`.
    """
    obj = _Objective(model, tokens, position, forward, causal)
    target = _check_target(target, obj.vocab)
    if norm not in ("l2", "linf"):
        raise PerturbError(f"norm {norm!r} is not known; use 'l2' or 'linf'")
    if objective not in ("ce", "margin"):
        raise PerturbError(f"objective {objective!r} is not known; use 'ce' or 'margin'")
    if not np.isfinite(eps) or eps <= 0:
        raise PerturbError(f"eps must be a positive finite number, got {eps!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise PerturbError(f"steps must be a positive whole number, got {steps!r}")
    step_size = 2.5 * eps / steps if step_size is None else float(step_size)
    if not np.isfinite(step_size) or step_size <= 0:
        raise PerturbError(f"step_size must be a positive finite number, got {step_size!r}")
    allowed = _allowed(positions, obj)
    dtype = obj.embedding.weight.dtype
    mask = torch.zeros(obj.length, 1, dtype=dtype)
    mask[torch.as_tensor(allowed)] = 1.0
    lo, hi = (torch.where(mask > 0, b, 0.0).to(dtype) for b in _box_bounds(obj, box))

    def project(r: Tensor) -> Tensor:
        return torch.maximum(torch.minimum(project_ball(r * mask, eps, norm), hi), lo)

    with obj.active(), torch.no_grad():
        z0 = obj.logits_at(None)
    clean = int(z0.argmax())
    label = clean if target is None else target
    sign = 1.0 if target is None else -1.0  # ascend the clean class's loss / descend the target's

    def objective_of(z: Tensor) -> Tensor:
        if objective == "ce":
            return sign * _loss(z, label)
        others = z.clone()
        others[label] = -float("inf")
        return sign * (others.max() - z[label])

    r = torch.zeros(obj.length, obj.dim, dtype=dtype)
    if random_start:
        gen = torch.Generator().manual_seed(seed)
        if norm == "linf":
            r = (torch.rand(r.shape, generator=gen, dtype=dtype) * 2 - 1) * eps
        else:
            d = torch.randn(r.shape, generator=gen, dtype=dtype) * mask
            radius = eps * float(torch.rand((), generator=gen)) ** (1.0 / max(1, int(mask.sum()) * obj.dim))
            r = d / d.norm().clamp_min(1e-30) * radius
        r = project(r)
    with obj.active():
        best_r, best_j = pgd(lambda x: objective_of(obj.logits_at(x)), r, project, lo, hi, steps=steps,
                             step_size=step_size, norm=norm, mask=mask, task=task)
    details = {"eps": float(eps), "norm": norm, "objective_kind": objective, "steps": steps, "step_size": step_size, "objective": best_j,
               "clean_prediction": clean}

    def flipped(pred: int) -> bool:
        return pred != clean if target is None else pred == target

    return _result("pgd", obj, best_r, None, label, target, taps, k, details, flipped)


# ---------------------------------------------------------------------------------------------- HotFlip


def hotflip(model: nn.Module, tokens, position: int, *, positions=None, candidates=None, k: int | None = 10,
            target: int | None = None, forward: Forward | None = None, taps=None,
            top: int = 5, causal: bool = True, batch_size: int = 256, task=None) -> InputPerturbation:
    """The single token substitution that moves the prediction at ``position`` most (Ebrahimi et al.).

    Ranks every (position ``i`` in ``positions`` (default all ``<= position``), token ``v`` in ``candidates``
    (default the whole vocabulary), ``v != x_i``) by the first-order estimate ``(E[v] - E[x_i]) . grad_{e_i} J``
    and verifies the top ``k`` by real forwards (``k=None``: every substitution, batched by ``batch_size`` --
    exact, and cheap for short items and small vocabularies); returns the verified best (largest measured ``ΔJ``).
    ``J`` is the clean argmax's loss (untargeted) or minus the target's loss. ``details["candidates"]``
    lists ``(position, token, estimated, measured)`` for the verified ones, best first.
    """
    obj = _Objective(model, tokens, position, forward, causal)
    target = _check_target(target, obj.vocab)
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise PerturbError(f"k must be a positive whole number (or None for every substitution), got {k!r}")
    allowed = _allowed(positions, obj)
    if candidates is None:
        cand = np.arange(obj.vocab)
    else:
        cand = np.unique(np.asarray(list(candidates), dtype=np.int64))
        if cand.size == 0 or cand.min() < 0 or cand.max() >= obj.vocab:
            raise PerturbError(f"candidate tokens must be token ids of the model (0 to {obj.vocab - 1})")
    table = obj.embedding.weight.detach()
    dtype = table.dtype
    with obj.active(), torch.no_grad():
        z0 = obj.logits_at(None)
    clean = int(z0.argmax())
    label = clean if target is None else target
    sign = 1.0 if target is None else -1.0
    with obj.active():
        r = torch.zeros(obj.length, obj.dim, dtype=dtype, requires_grad=True)
        with torch.enable_grad():
            j0 = sign * _loss(obj.logits_at(r), label)
            (g,) = torch.autograd.grad(j0, r)  # grad_{e_i} J at the clean input, [T, E]
    cand_t = torch.as_tensor(cand)
    pos_t = torch.as_tensor(allowed)
    diff = table[cand_t][None, :, :] - table[obj.tokens[pos_t]][:, None, :]  # [P, C, E]
    est = (diff * g[pos_t][:, None, :]).sum(-1)  # [P, C]
    same = cand_t[None, :] == obj.tokens[pos_t][:, None]
    est = est.masked_fill(same, -float("inf"))
    n_options = int((~same).sum())
    if n_options == 0:
        raise PerturbError("no substitution is possible: every candidate token equals the token it would replace")
    order = torch.argsort(est.flatten(), descending=True)[:n_options if k is None else min(k, n_options)]
    pairs = [(int(pos_t[i // len(cand)]), int(cand_t[i % len(cand)]), float(est.flatten()[i])) for i in order]
    measured: list[float] = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        batch = obj.tokens[None].repeat(len(chunk), 1)
        for row, (i, v, _) in enumerate(chunk):
            batch[row, i] = v
        with obj.active(), torch.no_grad():
            z = obj.logits_all(None, batch)[:, obj.position]  # [rows, V]
            measured += (sign * _loss(z, label) - j0.detach()).tolist()
        if task is not None:
            task.progress(start + len(chunk), len(pairs), "verifying substitutions")
    verified = sorted(((i, v, e, m) for (i, v, e), m in zip(pairs, measured)), key=lambda t: -t[3])
    i, v, _, _ = verified[0]
    r_sub = torch.zeros(obj.length, obj.dim, dtype=dtype)
    r_sub[i] = table[v] - table[obj.tokens[i]]
    details = {"candidates": verified, "substituted_position": i, "substituted_token": v,
               "replaced_token": int(obj.tokens[i]), "estimated": verified[0][2], "measured": verified[0][3],
               "clean_prediction": clean, "searched": n_options}

    def flipped(pred: int) -> bool:
        return pred != clean if target is None else pred == target

    return _result("hotflip", obj, r_sub, (i, v), label, target, taps, top, details, flipped)


# ---------------------------------------------------------------------------------------------- live models

METHODS = {"lbfgs": lbfgs_attack, "pgd": pgd_attack, "hotflip": hotflip}


def live_forward(live) -> Forward:
    """A forward of ``live`` (a :class:`~lstmviz.perturb.live_model.LiveModel`) that returns checked logits
    ``[B, T, V]`` (batch first, on its device), with autograd on (attacks need gradients)."""
    from .live_model import check_logits

    def forward(model, tokens):
        return check_logits(live.raw_output(tokens), tokens.shape, live.vocab)

    return forward


def attack_item(live, recording, item: int, position: int, *, method: str = "lbfgs", taps=None,
                **options) -> InputPerturbation:
    """Run attack ``method`` ("lbfgs", "pgd" or "hotflip") on ``item`` of ``recording`` with ``live``'s model
    (a :class:`~lstmviz.perturb.live_model.LiveModel`) at item-local ``position``; ``taps`` whose Δ is returned
    (None: every tap of the recording the model has; ``()``: none). ``options`` go to the attack function."""
    from .run import _taps, item_tokens

    if method not in METHODS:
        raise PerturbError(f"attack {method!r} is not known; use one of {', '.join(METHODS)}")
    tokens = item_tokens(recording, item)
    taps = _taps(live, recording, taps)
    return METHODS[method](live.model, tokens, position, forward=live_forward(live), taps=taps, **options)
