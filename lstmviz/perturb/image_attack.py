r"""Adversarial images for the image family: Szegedy et al.'s box L-BFGS and projected gradient.

A model of the image family maps images ``[B, C, H, W]`` to logits ``[B, K]``
(:mod:`lstmviz.engines.families.image.api`). For one image ``x`` [C, H, W] and a perturbation ``r`` of the
same shape, ``z = model(x + r)`` and ``loss_f(x + r, l) = -log softmax(z)_l``. The weights are never
changed; the model runs in eval mode (no dropout, batch norm on its running statistics), each module's
own training flag restored after.

**Box-constrained L-BFGS** (Szegedy et al. 2013, "Intriguing properties of neural networks", §4.1):

.. math::
    \min_r \; c\,\lVert r\rVert_2^2 + \mathrm{loss}_f(x + r, l)
    \quad\text{subject to}\quad x + r \in [\mathrm{lo}, \mathrm{hi}]^{C\times H\times W}

The paper writes the penalty ``c|r|``; like advertorch this uses the squared L2 norm (smooth at 0). Bounds
per pixel ``lo - x <= r <= hi - x`` (a clean pixel outside the box counts as inside: its bound is widened
to 0). Solved by ``scipy.optimize.minimize(method="L-BFGS-B")`` (gradient by torch, float64 to scipy,
``maxiter`` iterations per solve). The search over ``c`` (:func:`lstmviz.perturb.attack_core.search_c`):
a larger ``c`` gives a smaller minimiser, so the attack looks for the *largest* ``c`` whose minimiser is
classified as ``l`` (untargeted: any class but the clean prediction) -- a geometric scan of ``c_grid``
from its largest value down to the first that reaches it, then ``bisect_steps`` bisections in ``log c``
towards the next larger grid value. Of all solutions that reach ``l`` the one of smallest ``|r|_2`` is
returned. Untargeted (``target=None``), ``l`` is each of
the ``n_targets`` most probable other classes in turn and the smallest flip wins; the distance term is
always *added* (advertorch's untargeted mode negates the whole objective, distance included).

**Projected gradient** (Madry et al. 2018): from ``r_0 = 0`` (or uniform in the ball, ``random_start``),
``steps`` times ``r <- Pi_box Pi_{|r| <= eps}(r + eta s(grad_r J))`` with ``J = loss_f(x + r, y)``
(untargeted, ``y`` the clean prediction; ascent) or ``J = -loss_f(x + r, l)`` (targeted); ``s`` the l2-normalised
gradient or its sign (``"linf"``); box-face gradient masking and the best iterate as in
:func:`lstmviz.perturb.attack_core.pgd`.

The result's ``adversarial`` is ``clip(x + r, lo, hi)`` in the model's dtype and ``r`` is recomputed as
``adversarial - x``, so the box holds exactly and ``r`` is the perturbation the model saw. For each tap
asked for, ``deltas[tap]`` is the tap's ``[positions, units]`` state on the adversarial image minus the clean
one (one batch of two through :class:`lstmviz.recording.recorder_context.Recorder`), and
``amplification[tap] = |Δφ_l|_F / |r|_2`` (Szegedy et al. §4.3's measured counterpart of the layer's upper
Lipschitz bound).

Only ``class`` models: a ``multilabel`` model (one sigmoid per class) has no single prediction to flip, and
is refused in words; so is a ``segmentation`` model (one prediction per pixel) and a ``regression`` model
(values per pixel, no class).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .attack_core import best_flip, check_grid, lbfgs_b, pgd, project_ball, search_c
from .attack_core import eval_mode as _eval_mode
from .errors import PerturbError

__all__ = ["ImageAttack", "lbfgs_image_attack", "pgd_image_attack", "tap_deltas"]

DEFAULT_C_GRID = tuple(10.0 ** np.arange(-3, 3))


@dataclass
class ImageAttack:
    """One adversarial perturbation of one image.

    ``r``, ``image`` and ``adversarial`` are ``[C, H, W]`` float64 (``adversarial = image + r`` in the box);
    probabilities are the softmax of the logits ``[K]``; ``deltas`` maps each tap asked for to its
    ``[positions, units]`` adversarial minus clean state, ``amplification`` to ``|Δφ|_F / |r|_2``.
    """

    method: str
    target: int | None
    image: np.ndarray
    r: np.ndarray
    adversarial: np.ndarray
    clean_prediction: int
    adversarial_prediction: int
    clean_probabilities: np.ndarray
    adversarial_probabilities: np.ndarray
    flipped: bool
    l2: float
    linf: float
    details: dict[str, Any] = field(default_factory=dict)
    deltas: dict[str, np.ndarray] = field(default_factory=dict)
    amplification: dict[str, float] = field(default_factory=dict)

    @property
    def relative_l2(self) -> float:
        """``|r|_2 / |x|_2`` (the paper's "distortion" is this on its pixel scale)."""
        n = float(np.linalg.norm(self.image))
        return self.l2 / n if n > 0 else float("inf")

    def summary(self) -> dict:
        """A flat dict for a table row or a status line."""
        return {"method": self.method, "target": self.target, "flipped": self.flipped, "l2": self.l2,
                "linf": self.linf, "relative_l2": self.relative_l2, "clean_prediction": self.clean_prediction,
                "adversarial_prediction": self.adversarial_prediction,
                "clean_p": float(self.clean_probabilities[self.clean_prediction]),
                "adversarial_p": float(self.adversarial_probabilities[self.adversarial_prediction]),
                **{f"amplification/{k}": v for k, v in self.amplification.items()}}


# ---------------------------------------------------------------------------------------------- plumbing


def _dtype(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    p = next(iter(model.parameters()), None)
    return (p.dtype, p.device) if p is not None and p.dtype.is_floating_point else (torch.float32, torch.device("cpu"))


def _logits(model: nn.Module, images: Tensor) -> Tensor:
    out = model(images)
    out = out[0] if isinstance(out, (tuple, list)) and out else out
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != images.shape[0]:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise PerturbError(f"the model's output is not logits [batch, classes] (got {shape}); image attacks need a "
                           "model of the image family")
    return out


class _Image:
    """The clean image, the box on r and the model, with the helpers every attack needs."""

    def __init__(self, model: nn.Module, image, box):
        if getattr(model, "task", "class") == "multilabel":
            raise PerturbError("this model is multilabel (one yes/no per class), so there is no single prediction "
                               "to flip; adversarial images need a model trained for one class per image")
        if getattr(model, "task", "class") == "segmentation":
            raise PerturbError("this model segments (one class per pixel), so there is no single prediction to "
                               "flip; adversarial images need a model trained for one class per image")
        if getattr(model, "task", "class") == "regression":
            raise PerturbError("this model predicts values per pixel (regression), so there is no class to flip; "
                               "adversarial images need a model trained for one class per image")
        self.model = model
        self.dtype, self.device = _dtype(model)
        x = torch.as_tensor(np.asarray(image) if not isinstance(image, Tensor) else image.detach())
        if x.dim() == 4 and x.shape[0] == 1:
            x = x[0]
        if x.dim() != 3 or not x.dtype.is_floating_point or x.numel() == 0:
            raise PerturbError(f"expected one image [channels, height, width] of floats, got shape {tuple(x.shape)}")
        self.x64 = x.double().cpu()
        self.x = self.x64.to(self.dtype).to(self.device)
        self.shape = tuple(self.x64.shape)
        if box is None:
            self.lo = torch.full(self.shape, -float("inf"), dtype=torch.float64)
            self.hi = torch.full(self.shape, float("inf"), dtype=torch.float64)
        else:
            try:
                lo, hi = box
                lo = torch.as_tensor(np.asarray(lo, dtype=np.float64)).expand(self.shape)
                hi = torch.as_tensor(np.asarray(hi, dtype=np.float64)).expand(self.shape)
            except (TypeError, ValueError, RuntimeError):
                raise PerturbError(f"the box must be None or a pair (low, high) of numbers or arrays that fit the "
                                   f"image "
                                   f"{self.shape}") from None
            if bool((lo > hi).any()):
                raise PerturbError("the box's low bound exceeds its high bound")
            # a clean pixel outside the box counts as inside (r = 0 is always allowed)
            self.lo, self.hi = torch.minimum(lo, self.x64), torch.maximum(hi, self.x64)
        self.r_lo, self.r_hi = self.lo - self.x64, self.hi - self.x64

    def logits(self, r: Tensor | None) -> Tensor:
        """Logits [K] of x + r (r in any float dtype; run in the model's)."""
        inp = self.x if r is None else self.x + r.to(self.dtype).to(self.device)
        return _logits(self.model, inp[None])[0]

    def applied(self, r: Tensor) -> Tensor:
        """``clip(x + r)`` in the model's dtype: the adversarial image the model is run on."""
        return torch.minimum(torch.maximum(self.x64 + r.double().cpu(), self.lo), self.hi).to(self.dtype)

    def check_target(self, target, classes: int) -> int | None:
        if target is None:
            return None
        if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not 0 <= target < classes:
            raise PerturbError(f"target class {target!r} is not a class of the model (0 to {classes - 1})")
        return int(target)


def _ce(z: Tensor, label: int) -> Tensor:
    return -torch.log_softmax(z, dim=-1)[label]


def tap_deltas(model: nn.Module, clean: Tensor, adversarial: Tensor, taps: Sequence[str]) -> dict[str, np.ndarray]:
    """Per tap, its ``[positions, units]`` state on ``adversarial`` minus that on ``clean`` (images [C, H, W]).

    One forward of the batch ``[clean, adversarial]`` (eval mode) through the recorder; float64 numpy.
    """
    if not taps:
        return {}
    from lstmviz.recording.recorder_context import Recorder

    try:
        recorder = Recorder(model, list(taps))
    except ValueError as e:
        raise PerturbError(str(e)) from None
    dtype, device = _dtype(model)
    batch = torch.stack([clean.to(dtype), adversarial.to(dtype)]).to(device)
    with _eval_mode(model), torch.no_grad(), recorder as rec:
        model(batch)
        values = rec.collect()
    return {name: (v[1] - v[0]).double().cpu().numpy() for name, v in values.items()}


def _result(method: str, img: _Image, r: Tensor, target, flipped_fn, taps, details) -> ImageAttack:
    adv = img.applied(r)
    with _eval_mode(img.model), torch.no_grad():
        z0 = img.logits(None).double()
        z1 = _logits(img.model, adv[None].to(img.device))[0].double()
    r_seen = adv.double().cpu() - img.x64.to(img.dtype).double()
    r_np = r_seen.numpy()
    l2 = float(np.linalg.norm(r_np))
    deltas = tap_deltas(img.model, img.x, adv, taps)
    amplification = {name: (float(np.linalg.norm(d)) / l2 if l2 > 0 else float("nan")) for name, d in deltas.items()}
    pred1 = int(z1.argmax())
    return ImageAttack(
        method=method, target=target, image=img.x.double().cpu().numpy(), r=r_np,
        adversarial=adv.double().cpu().numpy(), clean_prediction=int(z0.argmax()), adversarial_prediction=pred1,
        clean_probabilities=torch.softmax(z0, -1).cpu().numpy(),
        adversarial_probabilities=torch.softmax(z1, -1).cpu().numpy(),
        flipped=bool(flipped_fn(pred1)), l2=l2, linf=float(np.abs(r_np).max()) if r_np.size else 0.0,
        details=details, deltas=deltas, amplification=amplification)


# ---------------------------------------------------------------------------------------------- L-BFGS


def lbfgs_image_attack(model: nn.Module, image, target: int | None = None, *,
                       c_grid: Sequence[float] = DEFAULT_C_GRID, bisect_steps: int = 10, maxiter: int = 100,
                       box=(0.0, 1.0), n_targets: int = 1, taps: Sequence[str] | None = None,
                       task=None) -> ImageAttack:
    """Szegedy et al.'s box-constrained L-BFGS attack on one image (module docstring).

    Args:
        model: an image-family model (``model(images [B, C, H, W]) -> logits [B, K]``).
        image: ``[C, H, W]`` (or ``[1, C, H, W]``), tensor or array, in the model's input scale.
        target: the class the adversarial image should be classified as; ``None``: any other class.
        c_grid: the scan of the distance weight ``c`` (any order); ``bisect_steps`` bisections in ``log c``
            refine between the largest ``c`` that reaches the target and the next grid value.
        maxiter: L-BFGS-B iterations per solve.
        box: ``(low, high)`` on ``x + r`` (numbers or arrays that broadcast to the image), or ``None``.
        n_targets: untargeted: how many of the most probable other classes are tried (smallest flip kept).
        taps: tap names whose clean-to-adversarial change is returned (``deltas``, ``amplification``).
        task: a :class:`lstmviz.tasks.Task` (progress per solve; ``cancel`` raises ``Cancelled``).

    ``flipped`` is False when no ``c`` of the grid reaches the target (``r`` is then 0). ``details`` holds
    the chosen ``c``, the label aimed at and the trace of every solve.
    """
    img = _Image(model, image, box)
    grid = check_grid(c_grid)
    if isinstance(maxiter, bool) or not isinstance(maxiter, (int, np.integer)) or maxiter < 1:
        raise PerturbError(f"maxiter must be a positive whole number, got {maxiter!r}")
    with _eval_mode(model), torch.no_grad():
        z0 = img.logits(None)
    clean = int(z0.argmax())
    target = img.check_target(target, int(z0.shape[0]))
    if target == clean:
        raise PerturbError(f"the image is already classified as class {target}; choose another target class")
    if target is not None:
        labels = [target]
    else:
        order = torch.argsort(z0, descending=True).tolist()
        labels = [c for c in order if c != clean][:max(1, int(n_targets))]
    total = len(labels) * (len(grid) + bisect_steps)
    trace: list[dict] = []
    best = None  # (l2, r, c, label)
    with _eval_mode(model):
        for label in labels:

            def solve(c: float, start: Tensor | None, label=label) -> tuple[Tensor, bool]:
                def loss(r: Tensor) -> Tensor:
                    return _ce(img.logits(r), label) + c * (r.double() ** 2).sum()

                r, nit, nfev = lbfgs_b(loss, img.shape, img.r_lo, img.r_hi, maxiter=maxiter, dtype=img.dtype,
                                       start=start, task=task)
                with torch.no_grad():
                    pred = int(_logits(model, img.applied(r)[None].to(img.device))[0].argmax())
                ok = pred == label if target is not None else pred != clean
                trace.append({"label": label, "c": c, "l2": float(r.norm()), "reached": ok, "prediction": pred,
                              "iterations": nit, "evaluations": nfev})
                if task is not None:
                    task.progress(len(trace), total, f"L-BFGS at c = {c:.3g} (class {label})")
                return r, ok

            found = best_flip(search_c(solve, grid, bisect_steps))
            if found is not None and (best is None or float(found[1].norm()) < best[0]):
                best = (float(found[1].norm()), found[1], found[0], label)
    if best is None:
        r = torch.zeros(img.shape, dtype=torch.float64)
        details = {"c": None, "note": "no c in the grid reaches the target; try smaller values of c"}
        label = labels[0]
    else:
        _, r, c, label = best
        details = {"c": c}
    details.update({"trace": trace, "clean_prediction": clean, "aimed_at": label, "bisect_steps": bisect_steps,
                    "c_grid": grid})
    def flipped(pred: int) -> bool:
        return best is not None and (pred == target if target is not None else pred != clean)

    return _result("lbfgs", img, r, target, flipped, taps, details)


# ---------------------------------------------------------------------------------------------- PGD


def pgd_image_attack(model: nn.Module, image, *, eps: float, norm: str = "l2", steps: int = 40,
                     step_size: float | None = None, target: int | None = None, random_start: bool = False,
                     seed: int = 0, box=(0.0, 1.0), objective: str = "ce", taps: Sequence[str] | None = None,
                     task=None) -> ImageAttack:
    """Projected gradient attack (Madry et al.) on one image within ``|r| <= eps`` and the box.

    ``norm`` "l2" (over all pixels) or "linf" (per pixel); ``step_size`` defaults to ``2.5 eps / steps``;
    ``random_start`` draws ``r_0`` uniformly in the ball (seeded). ``objective`` "ce" (the module docstring's
    ``J``) or "margin" (Carlini & Wagner's logit margin ``max_{j != y} z_j - z_y``, or ``z_l - max_{j != l} z_j``
    targeted). ``flipped``: the prediction changed (untargeted) or is the target. Returns the iterate with
    the best objective.
    """
    img = _Image(model, image, box)
    if norm not in ("l2", "linf"):
        raise PerturbError(f"norm {norm!r} is not known; use 'l2' or 'linf'")
    if objective not in ("ce", "margin"):
        raise PerturbError(f"objective {objective!r} is not known; use 'ce' or 'margin'")
    if not np.isfinite(eps) or eps <= 0:
        raise PerturbError(f"eps must be a positive finite number, got {eps!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise PerturbError(f"steps must be a positive whole number, got {steps!r}")
    step_size = 2.5 * eps / steps if step_size is None else float(step_size)
    if not np.isfinite(step_size) or step_size <= 0:
        raise PerturbError(f"step_size must be a positive finite number, got {step_size!r}")
    dtype = img.dtype
    lo, hi = img.r_lo.to(dtype), img.r_hi.to(dtype)
    with _eval_mode(model), torch.no_grad():
        z0 = img.logits(None)
    clean = int(z0.argmax())
    target = img.check_target(target, int(z0.shape[0]))
    label = clean if target is None else target
    sign = 1.0 if target is None else -1.0

    def objective_of(r: Tensor) -> Tensor:
        z = img.logits(r)
        if objective == "ce":
            return sign * _ce(z, label)
        others = z.clone()
        others[label] = -float("inf")
        return sign * (others.max() - z[label])

    def project(r: Tensor) -> Tensor:
        return torch.maximum(torch.minimum(project_ball(r, eps, norm), hi), lo)

    r = torch.zeros(img.shape, dtype=dtype)
    if random_start:
        gen = torch.Generator().manual_seed(int(seed))
        if norm == "linf":
            r = (torch.rand(img.shape, generator=gen, dtype=dtype) * 2 - 1) * eps
        else:
            d = torch.randn(img.shape, generator=gen, dtype=dtype)
            radius = eps * float(torch.rand((), generator=gen)) ** (1.0 / d.numel())
            r = d / d.norm().clamp_min(1e-30) * radius
        r = project(r)
    with _eval_mode(model):
        best_r, best_j = pgd(objective_of, r, project, lo, hi, steps=int(steps), step_size=step_size, norm=norm,
                             task=task)
    details = {"eps": float(eps), "norm": norm, "objective_kind": objective, "steps": int(steps),
               "step_size": step_size, "objective": best_j, "clean_prediction": clean}

    def flipped(pred: int) -> bool:
        return pred != clean if target is None else pred == target

    return _result("pgd", img, best_r.double(), target, flipped, taps, details)
