r"""Laurent et al.'s loss models of unstructured pruning: saliencies, global masks and sparsity schedules.

Laurent, Ballas, George, Ballas & Vincent, "Revisiting loss modelling for unstructured pruning" (2020).
Pruning weight :math:`j` is the step :math:`\Delta\theta_j = -\theta_j`. With the gradient
:math:`g = \nabla L(\theta)` and a diagonal curvature :math:`h \approx \mathrm{diag}\,\nabla^2 L(\theta)`
(a diagonal Fisher / Gauss-Newton or the Hessian diagonal; :mod:`.curvature`), each loss model scores
weight :math:`j` by the change of the loss it predicts when only :math:`j` is pruned:

.. math::
    \mathrm{MP}_j &= |\theta_j|^2
        && \text{(magnitude; the loss model } \tfrac12\lVert\Delta\theta\rVert^2 \text{, i.e. OBD with } H = I) \\
    \mathrm{LM}_j &= |-g_j\theta_j|
        && \text{(linear: } \Delta L \approx g^\top\Delta\theta) \\
    \mathrm{QM}_j &= |-g_j\theta_j + \tfrac12 h_j\theta_j^2|
        && \text{(quadratic: } \Delta L \approx g^\top\Delta\theta + \tfrac12\Delta\theta^\top H\Delta\theta) \\
    \mathrm{OBD}_j &= \tfrac12 h_j\theta_j^2
        && \text{(Optimal Brain Damage, LeCun et al. 1990: } g \text{ dropped, as at a minimum)}

The locality term adds :math:`\tfrac12\lambda\theta_j^2` to every saliency (it favours small steps, which
keep the pruned network where the Taylor model holds). The rank of a weight pruned earlier is
:math:`-\infty`, so it stays pruned. The mask keeps everything but the
:math:`\mathrm{round}(\kappa P)` lowest ranks over *all* prunable weights together (a global mask;
:math:`P` prunable weights, target sparsity :math:`\kappa`), so the achieved sparsity is exactly
:math:`\mathrm{round}(\kappa P)/P`. Ties are broken by position (stable sort).

Predicted change of the loss for the set :math:`S` pruned in one step (diagonal models: the cross terms
between pruned weights are dropped, one reason every model fails for large :math:`S`):

.. math::
    \Delta L_\mathrm{LM} = \sum_{j\in S} -g_j\theta_j, \quad
    \Delta L_\mathrm{QM} = \sum_{j\in S} \big(-g_j\theta_j + \tfrac12 h_j\theta_j^2\big), \quad
    \Delta L_\mathrm{OBD} = \sum_{j\in S} \tfrac12 h_j\theta_j^2

Schedules reaching the target :math:`\kappa` in :math:`S` steps: ``linear`` :math:`\kappa_s = \kappa s/S`;
``exponential`` prunes the same fraction :math:`r = 1-(1-\kappa)^{1/S}` of the remaining weights at every
step, :math:`\kappa_s = 1-(1-\kappa)^{s/S}` (the reference code's ``--exp``).

Naming in this project: ``lstmviz.perturb.pruning`` (units of a tap or one parameter, one shot) uses the
same definitions; its ``magnitude`` ranks like MP, ``taylor`` is LM, ``qm`` is QM and ``obd`` is OBD.
"""

from __future__ import annotations

import fnmatch
from typing import Iterable, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from .errors import PerturbError

__all__ = ["LOSS_MODELS", "SCHEDULES", "count_for", "global_masks", "predicted_change", "prunable_parameters",
           "ranks", "saliency", "sparsity_schedule"]

LOSS_MODELS = ("mp", "lm", "qm", "obd")
#: what each loss model needs: the gradient, the curvature
NEEDS = {"mp": (False, False), "lm": (True, False), "qm": (True, True), "obd": (False, True)}
LOSS_MODEL_NAMES = {"mp": "MP (magnitude)", "lm": "LM (linear)", "qm": "QM (quadratic)", "obd": "OBD"}
SCHEDULES = ("exponential", "linear")


def check_method(method: str) -> str:
    if not isinstance(method, str) or method.lower() not in LOSS_MODELS:
        raise PerturbError(f"loss model {method!r} is not known; use one of {', '.join(LOSS_MODELS)} "
                           "(Laurent et al.: magnitude, linear, quadratic, Optimal Brain Damage)")
    return method.lower()


def saliency(method: str, theta: Tensor, gradient: Tensor | None = None, curvature: Tensor | None = None,
             lam: float = 0.0) -> Tensor:
    """The saliency of every element of ``theta`` under loss model ``method`` plus ``½ λ θ²`` (see the module
    docstring); lower is pruned first. ``gradient`` / ``curvature`` are needed by LM, QM / QM, OBD."""
    method = check_method(method)
    need_g, need_h = NEEDS[method]
    if need_g and gradient is None:
        raise PerturbError(f"the {LOSS_MODEL_NAMES[method]} loss model needs the gradient")
    if need_h and curvature is None:
        raise PerturbError(f"the {LOSS_MODEL_NAMES[method]} loss model needs a curvature (the diagonal Fisher, "
                           "GGN or Hessian)")
    if method == "mp":
        score = theta ** 2
    elif method == "lm":
        score = (-gradient * theta).abs()
    elif method == "qm":
        score = (-gradient * theta + 0.5 * curvature * theta ** 2).abs()
    else:
        score = 0.5 * curvature * theta ** 2
    if lam:
        score = score + 0.5 * float(lam) * theta ** 2
    return score


def ranks(method: str, theta: Mapping[str, Tensor], gradient: Mapping[str, Tensor] | None,
          curvature: Mapping[str, Tensor] | None, masks: Mapping[str, Tensor] | None = None,
          lam: float = 0.0) -> dict[str, Tensor]:
    """Per parameter: the saliency (float64), ``-inf`` where ``masks`` (True = kept) already pruned."""
    out = {}
    for name, t in theta.items():
        g = None if gradient is None else gradient[name].double()
        h = None if curvature is None else curvature[name].double()
        r = saliency(method, t.detach().double(), g, h, lam).clone()
        if masks is not None and name in masks:
            r[~masks[name].bool()] = -float("inf")
        out[name] = r
    return out


def count_for(sparsity: float, size: int) -> int:
    """How many of ``size`` weights a sparsity prunes: ``round(κ P)`` (half away from zero)."""
    return int(np.floor(float(sparsity) * size + 0.5))


def global_masks(rank: Mapping[str, Tensor], sparsity: float) -> dict[str, Tensor]:
    """Boolean masks (True = kept) that prune the ``round(sparsity × P)`` lowest ranks of all parameters
    together (ties broken by position: parameters in order, then flat index)."""
    check_sparsity(sparsity)
    names = list(rank)
    flat = torch.cat([rank[n].reshape(-1) for n in names])
    n = count_for(sparsity, flat.numel())
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    if n:
        order = torch.sort(flat, stable=True).indices
        keep[order[:n]] = False
    out, start = {}, 0
    for name in names:
        size = rank[name].numel()
        out[name] = keep[start:start + size].reshape(rank[name].shape)
        start += size
    return out


def check_sparsity(sparsity) -> float:
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float, np.floating)) \
            or not 0.0 <= float(sparsity) < 1.0:
        raise PerturbError(f"the target sparsity must be a fraction from 0 up to (not including) 1, got {sparsity!r}")
    return float(sparsity)


def sparsity_schedule(target: float, steps: int, kind: str = "exponential") -> np.ndarray:
    """The sparsity after each of ``steps`` pruning steps, the last one exactly ``target``."""
    target = check_sparsity(target)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise PerturbError(f"the number of pruning steps must be a whole number of at least 1, got {steps!r}")
    if kind not in SCHEDULES:
        raise PerturbError(f"the sparsity schedule {kind!r} is not known; use one of {', '.join(SCHEDULES)}")
    s = np.arange(1, int(steps) + 1, dtype=np.float64) / int(steps)
    out = target * s if kind == "linear" else 1.0 - (1.0 - target) ** s
    out[-1] = target
    return out


def predicted_change(theta: Mapping[str, Tensor], gradient: Mapping[str, Tensor] | None,
                     curvature: Mapping[str, Tensor] | None, pruned: Mapping[str, Tensor]) -> dict[str, float]:
    """The ΔL that the LM, QM and OBD models predict for setting the ``pruned`` elements (bool masks, True =
    pruned now) to zero (NaN for a model whose gradient / curvature is missing)."""
    lin = quad = half = 0.0
    for name, where in pruned.items():
        t = theta[name].detach().double()[where]
        if gradient is not None:
            lin += float((-gradient[name].double()[where] * t).sum())
        if curvature is not None:
            half += float((0.5 * curvature[name].double()[where] * t ** 2).sum())
    nan = float("nan")
    return {"lm": lin if gradient is not None else nan,
            "qm": lin + half if gradient is not None and curvature is not None else nan,
            "obd": half if curvature is not None else nan}


def prunable_parameters(model: nn.Module, include: Iterable[str] | None = None) -> list[str]:
    """The parameters a global mask covers: by default every weight with at least two dimensions
    (linear, convolution, recurrent and embedding matrices) that requires a gradient — biases and
    normalisation gains (1-D) stay unpruned, as the reference does; ``include``: parameter names or
    shell patterns (``"layers.*.weight_hh"``) instead."""
    params = dict(model.named_parameters())
    if include is None:
        chosen = [n for n, p in params.items() if p.requires_grad and p.dim() >= 2]
        if not chosen:
            raise PerturbError("the model has no weight matrix to prune (no parameter of two or more dimensions); "
                               "name the parameters to prune")
        return chosen
    patterns = [include] if isinstance(include, str) else list(include)
    chosen: list[str] = []
    for pattern in patterns:
        hits = [n for n in params if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            shown = ", ".join(list(params)[:12])
            raise PerturbError(f"no parameter of the model matches {pattern!r}; its parameters are {shown}"
                               f"{', ...' if len(params) > 12 else ''}")
        chosen += [n for n in hits if n not in chosen]
    return chosen
