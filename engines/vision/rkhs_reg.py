r"""``rkhs-reg``: the ``cnn`` architecture trained with kernel-norm regularisers (Bietti, Mialon, Chen, Mairal 2019).

The network is :class:`~lstmviz.engines.vision.cnn.CNN` unchanged (3×3 conv + ReLU blocks, 2×2 max pool after
the first two, global average pool, linear head; no BatchNorm, so the Lipschitz bound below holds as it is).
The paper views such a CNN ``f`` as an element of a convolutional kernel's RKHS ``H`` and regularises ``‖f‖_H``
through bounds that are cheap to compute. With the task loss ``ℓ`` (cross-entropy; per-class BCE for a
multilabel task) over a batch ``x_1 .. x_B`` the training loss is

.. math::
    L = \frac1B \sum_i \ell(f(x_i), y_i) + \lambda\, R

with ``R`` chosen by the config ``reg``:

- ``none``: ``R = 0`` (the plain objective, exactly).
- ``grad`` (lower bound ``‖f‖_H ≥ c ‖∇f‖ = c sup_x ‖∇_x f(x)‖``; the reference code's ``GradientPenalty``):
  ``R = Σ_k max_{i ∈ batch} ‖∇_x f_k(x_i)‖²``: per class logit ``k``, the *largest* squared input gradient
  over the batch (a sup, not a mean), by double back-propagation.
- ``grad-l2`` (the paper's "grad-ℓ2", the loss-gradient penalty): ``R = (1/B) Σ_i ‖∇_x ℓ(f(x_i), y_i)‖²``.
- ``adv`` (lower bound through adversarial perturbations; robust optimisation):
  ``R = (1/B) Σ_i ℓ(f(x_i + δ_i), y_i)`` with ``δ_i ≈ argmax_{‖δ‖ ≤ ε, x_i+δ ∈ [0,1]} ℓ(f(x_i + δ), y_i)`` found by
  ``adv_steps`` batched PGD steps (:func:`lstmviz.perturb.image_pgd.pgd_images`, norm ``adv_norm``, random start
  from torch's global generator, which the training loop seeds), ``δ`` treated as a constant. With ``λ = 1`` this is
  the 50/50 clean/adversarial mix; the paper's per-class ``Σ_k (f_k(x+δ_k) − f_k(x))²`` needs ``K`` attacks per
  batch and is not built.
- ``spectral-penalty`` (upper bound ``‖f‖_H ≤ ω(‖W_1‖_σ, …, ‖W_L‖_σ)``): ``R = Σ_l ‖W_l‖²_σ`` over the conv layers
  and the head, ``‖W‖_σ`` the operator norm of the layer *as a linear map on its input* — for a conv layer the
  convolution (zero padding 1) on the feature map of that layer's size, not the reshaped ``C_out × C_in·9``
  kernel (PyTorch's ``spectral_norm`` uses the latter).
- ``spectral-constraint``: ``R = 0``; after every optimiser step each layer is rescaled
  ``W_l ← W_l · min(1, τ / ‖W_l‖_σ)`` (:meth:`RKHSRegCNN.after_optimizer_step`, which ``lstmviz train`` calls).
  This is the normalisation used by the reference code, not the Euclidean projection onto
  ``{‖W‖_σ ≤ τ}`` (which would clip every singular value above ``τ``). Biases are not constrained.
- ``<penalty>+spectral-constraint`` (``grad+spectral-constraint``, ``adv+spectral-constraint``, ...): both — the
  paper's combination of a lower-bound penalty with an upper-bound constraint.

Operator norms by power iteration on the actual operator: ``v ← Aᵀ A v / ‖Aᵀ A v‖`` with ``A v = conv2d(v, W)``
(no bias) and ``Aᵀ u = conv_transpose2d(u, W)`` (its exact adjoint for stride 1, padding 1), ``‖A‖_σ ≈ ‖A v‖``.
The iterate ``v`` persists between steps (a non-persistent buffer per layer, warm start, ``power_iters`` iterations
per use); the penalty back-propagates through ``‖A v‖`` with ``v`` fixed, whose gradient ``u vᵀ`` is that of the top
singular value. ReLU and the non-overlapping 2×2 max pool are 1-Lipschitz and the global average pool over
``H'×W'`` cells has norm ``1/√(H'W')``, so :meth:`RKHSRegCNN.lipschitz_bound` ``= Π_l ‖W_l‖_σ / √(H'W')`` bounds the
network's l2 Lipschitz constant.

Choices the paper leaves open, fixed here: the regulariser acts only in training mode; in eval mode
:meth:`RKHSRegCNN.loss` is the plain objective (validation losses compare across regularisers). ``eps`` is in the
``[0, 1]`` pixel scale of the image family (the digits' 0..16 divided by 16). The taps are those of ``cnn``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.engines.spec import EngineSpec, Paper
from lstmviz.engines.vision.cnn import CNN

PENALTIES = ("none", "grad", "grad-l2", "adv", "spectral-penalty")
CONSTRAINT = "spectral-constraint"
REGS = PENALTIES + (CONSTRAINT,)
ADV_NORMS = ("l2", "linf")


def parse_reg(reg: str) -> tuple[str, bool]:
    """``(penalty, constrained)`` of a ``reg`` value: one of :data:`REGS`, or ``<penalty>+spectral-constraint``."""
    if not isinstance(reg, str):
        raise ValueError(f"expected reg to be a string, got {reg!r}")
    parts = [p.strip() for p in reg.split("+")]
    constrained = CONSTRAINT in parts
    penalties = [p for p in parts if p != CONSTRAINT]
    if (any(p not in REGS for p in parts) or len(penalties) > 1 or parts.count(CONSTRAINT) > 1
            or (not penalties and not constrained)):
        raise ValueError(f"expected reg to be one of {', '.join(REGS)}, or a penalty + '+{CONSTRAINT}' "
                         f"(e.g. 'grad+{CONSTRAINT}'), got {reg!r}")
    return (penalties[0] if penalties else "none"), constrained


# ---------------------------------------------------------------------------------------------- operator norms


def conv_apply(v: Tensor, weight: Tensor, padding: int = 1) -> Tensor:
    """``A v``: the convolution without bias."""
    return F.conv2d(v, weight, padding=padding)


def conv_adjoint(u: Tensor, weight: Tensor, padding: int = 1) -> Tensor:
    """``Aᵀ u``: the adjoint of :func:`conv_apply` (stride 1, so ``conv_transpose2d`` restores the input size)."""
    return F.conv_transpose2d(u, weight, padding=padding)


def _unit(t: Tensor) -> Tensor:
    return t / t.norm().clamp_min(1e-30)


@torch.no_grad()
def power_iterate(apply, adjoint, v: Tensor, iters: int) -> Tensor:
    """``iters`` steps of ``v ← Aᵀ A v / ‖Aᵀ A v‖`` from ``v``; returns the unit vector."""
    v = _unit(v)
    for _ in range(int(iters)):
        v = _unit(adjoint(apply(v)))
    return v


def conv_operator_norm(weight: Tensor, height: int, width: int, *, padding: int = 1, iters: int = 100,
                       v: Tensor | None = None, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``(‖A‖_σ, v)``: the operator norm of ``x ↦ conv2d(x, weight, padding)`` on ``[C_in, height, width]`` inputs by
    ``iters`` power iterations (from ``v``, else a seeded random start), differentiable in ``weight`` through
    ``‖A v‖`` with the final ``v`` fixed."""
    if v is None:
        v = torch.randn((1, weight.shape[1], height, width), generator=generator, dtype=torch.float64)
        v = v.to(weight.device, weight.dtype)
    w = weight.detach()
    v = power_iterate(lambda t: conv_apply(t, w, padding), lambda t: conv_adjoint(t, w, padding), v, iters)
    return conv_apply(v, weight, padding).norm(), v


def linear_operator_norm(weight: Tensor, *, iters: int = 100, v: Tensor | None = None,
                         generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``(‖W‖_σ, v)`` of a matrix ``[out, in]`` by power iteration, differentiable as :func:`conv_operator_norm`."""
    if v is None:
        v = torch.randn((weight.shape[1],), generator=generator, dtype=torch.float64).to(weight.device, weight.dtype)
    w = weight.detach()
    v = power_iterate(lambda t: w @ t, lambda t: w.T @ t, v, iters)
    return (weight @ v).norm(), v


# ---------------------------------------------------------------------------------------------- gradients


def logit_input_gradients(model: nn.Module, images: Tensor, *, create_graph: bool = False) -> tuple[Tensor, Tensor]:
    """``(logits [B, K], ∇_x f_k(x_i) [K, B, C, H, W])`` by one batched backward per class logit (images are
    independent: no BatchNorm), ``create_graph`` for double back-propagation."""
    x = images.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        rows = []
        for k in range(logits.shape[1]):
            (g,) = torch.autograd.grad(logits[:, k].sum(), x, create_graph=create_graph, retain_graph=True)
            rows.append(g)
    return logits, torch.stack(rows)


def gradient_penalty(gradients: Tensor) -> Tensor:
    """``Σ_k max_i ‖∇_x f_k(x_i)‖²`` of :func:`logit_input_gradients`' ``[K, B, ...]``."""
    return gradients.flatten(2).pow(2).sum(2).max(dim=1).values.sum()


def task_losses(logits: Tensor, batch: dict, task: str) -> Tensor:
    """Per-image loss ``[B]``: cross-entropy (class) or mean per-class BCE (multilabel)."""
    if task == "multilabel":
        return F.binary_cross_entropy_with_logits(logits, batch["targets"], reduction="none").mean(1)
    return F.cross_entropy(logits, batch["target"], reduction="none")


def _labels(batch: dict, task: str) -> Tensor:
    return batch["targets"] if task == "multilabel" else batch["target"]


# ---------------------------------------------------------------------------------------------- the model


class RKHSRegCNN(CNN):
    """The ``cnn`` network with a kernel-norm regulariser in its training loss (module docstring)."""

    def __init__(self, channels: int, height: int, width: int, num_classes: int, task: str = "class", *,
                 hidden_size: int = 16, num_layers: int = 4, dropout: float = 0.0, reg: str = "none",
                 lam: float = 0.1, eps: float = 0.5, tau: float = 1.0, adv_norm: str = "l2", adv_steps: int = 5,
                 power_iters: int = 5):
        super().__init__(channels, height, width, num_classes, task, hidden_size=hidden_size,
                         num_layers=num_layers, dropout=dropout)
        self.penalty, self.constrained = parse_reg(reg)
        for name, value in (("lam", lam), ("eps", eps), ("tau", tau)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"expected {name} to be a finite number, got {value!r}")
        if lam < 0 or eps < 0 or tau <= 0:
            raise ValueError(f"expected lam >= 0, eps >= 0 and tau > 0, got lam={lam}, eps={eps}, tau={tau}")
        if adv_norm not in ADV_NORMS:
            raise ValueError(f"expected adv_norm to be one of {', '.join(ADV_NORMS)}, got {adv_norm!r}")
        for name, value in (("adv_steps", adv_steps), ("power_iters", power_iters)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"expected {name} to be a positive int, got {value!r}")
        self.reg, self.lam, self.eps, self.tau = reg, float(lam), float(eps), float(tau)
        self.adv_norm, self.adv_steps, self.power_iters = adv_norm, adv_steps, power_iters
        axes = self.image_axes(height, width)
        self.layer_inputs: list[tuple[int, int]] = []  # (H, W) each conv reads (padding 1: its output's size)
        g = torch.Generator().manual_seed(0)
        for i, conv in enumerate(self.convs):
            size = axes[f"conv{i}"].size
            self.layer_inputs.append((size.height, size.width))
            self.register_buffer(f"power_v{i}", torch.randn(1, conv.in_channels, size.height, size.width,
                                                            generator=g), persistent=False)
        self.register_buffer("power_head", torch.randn(self.head.in_features, generator=g), persistent=False)
        last = axes[f"conv{len(self.convs) - 1}"].size
        self.pool_norm = 1.0 / math.sqrt(last.height * last.width)

    # -- operator norms ---------------------------------------------------------------------------------------

    def layer_norms(self, iters: int | None = None) -> list[Tensor]:
        """The operator norm of every conv layer (on its feature map's size) and of the head, by ``iters`` (default
        ``power_iters``) warm-started power iterations; differentiable in the weights."""
        iters = self.power_iters if iters is None else iters
        norms = []
        for i, conv in enumerate(self.convs):
            h, w = self.layer_inputs[i]
            sigma, v = conv_operator_norm(conv.weight, h, w, iters=iters, v=getattr(self, f"power_v{i}"))
            getattr(self, f"power_v{i}").copy_(v)
            norms.append(sigma)
        sigma, v = linear_operator_norm(self.head.weight, iters=iters, v=self.power_head)
        self.power_head.copy_(v)
        norms.append(sigma)
        return norms

    def lipschitz_bound(self, iters: int = 50) -> float:
        """``Π_l ‖W_l‖_σ / √(H'W')``: an upper bound of the l2 Lipschitz constant of the logits in the input."""
        with torch.no_grad():
            return float(torch.stack(self.layer_norms(iters)).prod()) * self.pool_norm

    @torch.no_grad()
    def project_(self, tau: float | None = None, iters: int | None = None) -> None:
        """``W_l ← W_l · min(1, τ / ‖W_l‖_σ)`` for every conv layer and the head."""
        tau = self.tau if tau is None else float(tau)
        layers = list(self.convs) + [self.head]
        for layer, sigma in zip(layers, self.layer_norms(iters)):
            if sigma > tau:
                layer.weight.mul_(tau / sigma)

    def after_optimizer_step(self) -> None:
        """Called by the training loop after every optimiser step: the spectral constraint, when configured."""
        if self.constrained:
            self.project_()

    # -- the objective ----------------------------------------------------------------------------------------

    def regulariser(self, images: Tensor, batch: dict) -> tuple[Tensor, Tensor]:
        """``(mean task loss over the batch, R)`` for the configured penalty (module docstring)."""
        if self.penalty == "grad":
            logits, grads = logit_input_gradients(self, images, create_graph=True)
            return task_losses(logits, batch, self.task).mean(), gradient_penalty(grads)
        if self.penalty == "grad-l2":
            x = images.detach().requires_grad_(True)
            losses = task_losses(self(x), batch, self.task)
            (g,) = torch.autograd.grad(losses.sum(), x, create_graph=True)
            return losses.mean(), g.flatten(1).pow(2).sum(1).mean()
        clean = task_losses(self(images), batch, self.task).mean()
        if self.penalty == "adv":
            from lstmviz.perturb.image_pgd import pgd_images

            adversarial = pgd_images(self, images, _labels(batch, self.task), eps=self.eps, norm=self.adv_norm,
                                     steps=self.adv_steps)
            return clean, task_losses(self(adversarial), batch, self.task).mean()
        if self.penalty == "spectral-penalty":
            return clean, torch.stack([s ** 2 for s in self.layer_norms()]).sum()
        return clean, clean.new_zeros(())

    def loss(self, images: Tensor, batch: dict) -> tuple[Tensor, int]:
        """``(L, B)``: in training mode the task loss plus ``λ R``; in eval mode the plain task loss."""
        if not self.training:
            return task_losses(self(images), batch, self.task).mean(), len(images)
        clean, penalty = self.regulariser(images, batch)
        return clean + self.lam * penalty, len(images)


def build(channels: int, height: int, width: int, num_classes: int, task: str = "class", *,
          hidden_size: int = 16, num_layers: int = 4, dropout: float = 0.0, reg: str = "none", lam: float = 0.1,
          eps: float = 0.5, tau: float = 1.0, adv_norm: str = "l2", adv_steps: int = 5,
          power_iters: int = 5) -> RKHSRegCNN:
    return RKHSRegCNN(channels, height, width, num_classes, task, hidden_size=hidden_size, num_layers=num_layers,
                      dropout=dropout, reg=reg, lam=lam, eps=eps, tau=tau, adv_norm=adv_norm, adv_steps=adv_steps,
                      power_iters=power_iters)


SPEC = EngineSpec(
    name="rkhs-reg",
    description="the cnn network trained with a kernel-norm regulariser (reg: none, grad, grad-l2, adv, "
                "spectral-penalty, spectral-constraint, or a penalty+spectral-constraint)",
    family="image",
    paper=Paper(
        title="A Kernel Perspective for Regularizing Deep Neural Networks",
        authors="Bietti, Mialon, Chen, Mairal",
        arxiv="1810.00363",
        year=2019,
    ),
    build=build,
    default_config={"hidden_size": 16, "num_layers": 4, "reg": "grad-l2", "lam": 0.1, "eps": 0.5, "tau": 1.0,
                    "adv_norm": "l2", "adv_steps": 5, "power_iters": 5},
    taps=("conv{layer}", "pooled", "logits"),
    train_defaults={"steps": 600, "batch_size": 64, "lr": 0.003, "eval_every": 100, "optimizer": "adam",
                    "clip": 5.0, "seed": 0},
)
