r"""Batched projected-gradient attacks on image classifiers (Madry et al. 2018), for training and evaluation.

For images ``x ∈ [0,1]^{B×C×H×W}``, labels ``y`` and the model's task loss ``ℓ`` (cross-entropy for class
labels ``[B]`` int64; per-class binary cross-entropy, mean over classes, for multilabel targets ``[B, K]``
float), each image gets its own perturbation ``δ_b``, solving per image

.. math::
    \max_{\lVert\delta_b\rVert \le \varepsilon,\; x_b + \delta_b \in [0,1]} \ell(f(x_b + \delta_b), y_b)

by ``steps`` iterations of

.. math::
    \delta_b \leftarrow \Pi_{\mathrm{box}}\,\Pi_{\lVert\cdot\rVert\le\varepsilon}
        \big(\delta_b + \eta\, s(g_b)\big),\qquad g_b = \nabla_{\delta_b} \textstyle\sum_{b'} \ell_{b'}

with ``s(g) = g / ‖g‖_2`` for ``norm="l2"`` and ``sign(g)`` for ``"linf"``; ``Π_ball`` rescales
``δ ← δ · min(1, ε/‖δ‖_2)`` (l2) or clips to ``[-ε, ε]`` (linf); ``Π_box`` clips ``x + δ`` to ``[0, 1]``. The box
contains ``δ = 0`` and clipping only shrinks coordinates, so the result stays in the ball. Components of ``g``
that push a pixel through a face of the box it already lies on are dropped before ``s`` (else they eat the l2
step). Default step ``η = 2.5 ε / steps`` (Madry et al.). ``random_start``: ``δ_0`` uniform in the l2 ball
(Gaussian direction, radius ``ε U^{1/d}``) or in the linf cube, from ``generator`` (seeded, reproducible), then
clipped to the box; else ``δ_0 = 0``. Each image keeps the iterate with its largest loss (the start included).

The model runs in eval mode during the attack and gets its previous mode back afterwards; only the gradient
with respect to ``δ`` is computed (``torch.autograd.grad``), so no parameter's ``.grad`` is written.
The batched counterpart of the per-item attacks in :mod:`lstmviz.perturb.adversarial`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NORMS = ("l2", "linf")


def task_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Per-image loss ``[B]``: cross-entropy for int labels ``[B]``, mean per-class BCE for float targets
    ``[B, K]``."""
    if labels.dim() == 2 and labels.is_floating_point():
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none").mean(1)
    return F.cross_entropy(logits, labels, reduction="none")


def _flat_norm(t: Tensor) -> Tensor:
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def _project(delta: Tensor, images: Tensor, eps: float, norm: str) -> Tensor:
    if norm == "l2":
        scale = (eps / _flat_norm(delta).clamp_min(1e-30)).clamp(max=1.0)
        delta = delta * scale
    else:
        delta = delta.clamp(-eps, eps)
    return (images + delta).clamp(0.0, 1.0) - images


def _random_start(images: Tensor, eps: float, norm: str, generator) -> Tensor:
    shape, dtype = images.shape, images.dtype
    if norm == "linf":
        u = torch.rand(shape, generator=generator, dtype=dtype, device="cpu")
        return ((2 * u - 1) * eps).to(images.device)
    d = images[0].numel()
    direction = torch.randn(shape, generator=generator, dtype=dtype, device="cpu")
    direction = direction / _flat_norm(direction).clamp_min(1e-30)
    radius = eps * torch.rand(shape[0], generator=generator, dtype=dtype, device="cpu") ** (1.0 / d)
    return (direction * radius.view(-1, *([1] * (len(shape) - 1)))).to(images.device)


def pgd_images(model: nn.Module, images: Tensor, labels: Tensor, *, eps: float, norm: str = "l2", steps: int = 10,
               step_size: float | None = None, random_start: bool = True,
               generator: torch.Generator | None = None) -> Tensor:
    """The adversarial images ``x + δ`` ``[B, C, H, W]`` (module docstring), detached.

    Args:
        model: ``model(images) -> logits [B, K]``.
        images: ``[B, C, H, W]`` in ``[0, 1]``.
        labels: ``[B]`` int64 classes, or ``[B, K]`` float 0/1 targets (multilabel).
        eps: the radius (``>= 0``) in the ``norm`` (``"l2"`` or ``"linf"``), in pixel units of ``[0, 1]``.
        steps: ascent steps (``>= 0``); step_size: ``η`` (default ``2.5 eps / steps``).
        random_start: start uniformly in the ball (from ``generator``, a CPU ``torch.Generator``).
    """
    if norm not in NORMS:
        raise ValueError(f"expected norm to be one of {', '.join(NORMS)}, got {norm!r}")
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"expected eps to be a finite number >= 0, got {eps!r}")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"expected steps to be an int >= 0, got {steps!r}")
    if images.dim() != 4:
        raise ValueError(f"expected images [batch, channels, height, width], got shape {tuple(images.shape)}")
    if not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise ValueError("expected finite images with pixel values in [0, 1]")
    images = images.detach()
    labels = labels.detach()
    if eps == 0 or images.shape[0] == 0:
        return images.clone()
    eta = 2.5 * eps / max(int(steps), 1) if step_size is None else float(step_size)
    was_training = model.training
    model.eval()
    try:
        delta = _random_start(images, eps, norm, generator) if random_start else torch.zeros_like(images)
        delta = _project(delta, images, eps, norm)
        best = delta.clone()
        best_loss = torch.full((images.shape[0],), -math.inf, dtype=images.dtype, device=images.device)
        for step in range(int(steps) + 1):
            delta.requires_grad_(True)
            with torch.enable_grad():
                losses = task_loss(model(images + delta), labels)
                (grad,) = torch.autograd.grad(losses.sum(), delta) if step < steps else (None,)
            losses = losses.detach()
            better = losses > best_loss
            best[better] = delta.detach()[better]
            best_loss = torch.where(better, losses, best_loss)
            if grad is None:
                break
            delta = delta.detach()
            x = images + delta
            grad = grad.masked_fill(((x <= 0) & (grad < 0)) | ((x >= 1) & (grad > 0)), 0.0)
            if norm == "l2":
                direction = grad / _flat_norm(grad).clamp_min(1e-30)
            else:
                direction = grad.sign()
            delta = _project(delta + eta * direction, images, eps, norm)
    finally:
        model.train(was_training)
    return (images + best).clamp(0.0, 1.0).detach()


__all__ = ["NORMS", "pgd_images", "task_loss"]
