r"""Global multi-step loss-model pruning of a whole model (Laurent et al. 2020), an optional fine-tune with the
masks fixed, and the pruned checkpoint.

:func:`prune_by_loss_model` prunes the prunable weights of ``model`` (:func:`.loss_models.prunable_parameters`)
to the target sparsity :math:`\kappa` in :math:`S` steps of a schedule :math:`\kappa_1 < \dots < \kappa_S = \kappa`
(:func:`.loss_models.sparsity_schedule`). At step :math:`s`, at the current (already pruned) weights:

1. :math:`g` and the diagonal curvature :math:`h` are estimated again (:func:`.curvature.local_model`);
2. every prunable weight is ranked by its loss model's saliency plus :math:`\tfrac12\lambda\theta^2`, a
   weight pruned before by :math:`-\infty` (:func:`.loss_models.ranks`);
3. the :math:`\mathrm{round}(\kappa_s P)` lowest ranks over all prunable weights are set to zero (a
   global mask);
4. the ΔL that the LM, QM and OBD models (and MP's :math:`\tfrac12\lVert\Delta\theta\rVert^2`) predict for the
   weights pruned in this step is recorded next to the measured :math:`L_{s} - L_{s-1}` on the same examples.

Pruning is in place: the caller keeps a copy of the weights if it needs them (:func:`masked_copy`).
:func:`fine_tune` trains the pruned model with SGD (momentum 0.9), re-applying the masks after every step
so pruned weights stay zero.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from lstmviz.tasks import ensure_task

from .curvature import CURVATURE_NAMES, check_curvature, local_model
from .errors import PerturbError
from .loss_data import IGNORE, LossData
from .loss_models import (LOSS_MODEL_NAMES, NEEDS, check_method, check_sparsity, global_masks, predicted_change,
                          prunable_parameters, ranks, sparsity_schedule)

__all__ = ["LossPruning", "PruneStep", "apply_masks", "fine_tune", "masked_copy", "prune_by_loss_model",
           "save_pruned_checkpoint"]


@dataclass
class PruneStep:
    """One pruning step: the sparsity reached, the weights pruned in it, the loss before/after (on the
    pruning examples) and the ΔL each loss model predicted for it."""

    step: int
    sparsity: float
    pruned: int
    loss_before: float
    loss_after: float
    accuracy_after: float
    predicted: dict[str, float]  # "mp", "lm", "qm", "obd"

    @property
    def measured(self) -> float:
        return self.loss_after - self.loss_before


@dataclass
class LossPruning:
    """What :func:`prune_by_loss_model` did."""

    method: str
    curvature: str | None
    lam: float
    schedule: str
    target: float
    parameters: list[str]
    sizes: dict[str, int]
    baseline_loss: float
    baseline_accuracy: float
    steps: list[PruneStep] = field(default_factory=list)
    masks: dict[str, Tensor] = field(default_factory=dict, repr=False)  # True = kept
    grads_method: str = ""
    examples: int = 0
    fine_tune: dict | None = None

    @property
    def achieved(self) -> float:
        pruned = sum(int((~m).sum()) for m in self.masks.values())
        return pruned / max(1, sum(self.sizes.values()))

    @property
    def final_loss(self) -> float:
        return self.steps[-1].loss_after if self.steps else self.baseline_loss

    def own_prediction(self, step: PruneStep) -> float:
        """The ΔL the method's own loss model predicted (MP: ½‖Δθ‖², the model with H = I)."""
        return step.predicted[self.method]

    def to_table(self) -> list[dict]:
        """One row per step (for CSV)."""
        return [{"step": s.step, "sparsity": s.sparsity, "pruned": s.pruned, "loss_before": s.loss_before,
                 "loss_after": s.loss_after, "measured": s.measured, "predicted": self.own_prediction(s),
                 "predicted_lm": s.predicted["lm"], "predicted_qm": s.predicted["qm"],
                 "predicted_obd": s.predicted["obd"], "predicted_mp": s.predicted["mp"],
                 "accuracy_after": s.accuracy_after} for s in self.steps]

    def info(self) -> dict:
        """Plain values for a checkpoint's ``pruning.info`` (what was used, and the per-step table)."""
        clean = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
                 for row in self.to_table()]
        return {"scheme": f"loss-model {self.method}", "method": self.method, "curvature": self.curvature,
                "curvature_name": CURVATURE_NAMES.get(self.curvature or "", "none"), "lambda": float(self.lam),
                "schedule": self.schedule, "target_sparsity": float(self.target), "removed_fraction": self.achieved,
                "steps": len(self.steps), "parameters": list(self.parameters), "sizes": dict(self.sizes),
                "examples": int(self.examples), "baseline_loss": self.baseline_loss, "table": clean,
                "fine_tune": self.fine_tune, "reference": "Laurent et al. 2020, Revisiting loss modelling for "
                                                          "unstructured pruning"}

    def summary(self) -> str:
        curv = CURVATURE_NAMES.get(self.curvature or "", "no curvature")
        return (f"{LOSS_MODEL_NAMES[self.method]}, {len(self.steps)} step(s) to {self.achieved:.1%} of "
                f"{sum(self.sizes.values()):,} weights, λ {self.lam:g}, {curv}: loss {self.baseline_loss:.4f} → "
                f"{self.final_loss:.4f}")


def apply_masks(model: nn.Module, masks) -> None:
    """Zero the pruned weights (``masks``: parameter name -> bool, True = kept)."""
    named = dict(model.named_parameters())
    with torch.no_grad():
        for name, keep in masks.items():
            named[name].mul_(keep.to(named[name].device, named[name].dtype))


def masked_copy(model: nn.Module, masks) -> nn.Module:
    """A deep copy of ``model`` with ``masks`` applied (the original is left as it is)."""
    out = copy.deepcopy(model)
    apply_masks(out, masks)
    return out


def prune_by_loss_model(model: nn.Module, data: LossData, *, method: str, sparsity: float, steps: int = 1,
                        lam: float = 0.0, curvature: str | None = "fisher", schedule: str = "exponential",
                        parameters=None, samples: int = 1, seed: int = 0, chunk: int = 64,
                        grads_method: str = "auto", on_step=None, task=None) -> LossPruning:
    """Prune ``model`` in place (see the module docstring) and return what was done.

    ``curvature``: one of :data:`.curvature.CURVATURES`, or None (then QM and OBD cannot be used and only the
    linear prediction is made); MP and LM do not rank by it, but their steps still get the quadratic
    prediction. ``parameters``: names or patterns of the parameters to prune (default: the weight matrices).
    ``samples``: labels drawn per example (``sampled-fisher``) or Rademacher vectors (``hutchinson``).
    ``on_step(step, masks)`` is called after every step with its :class:`PruneStep` and the masks then.
    """
    method = check_method(method)
    check_curvature(curvature)
    if NEEDS[method][1] and curvature is None:
        raise PerturbError(f"the {LOSS_MODEL_NAMES[method]} loss model needs a curvature; choose one of fisher, ggn, "
                           "sampled-fisher, hessian, hutchinson")
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam) or lam < 0:
        raise PerturbError(f"λ (the locality term ½λθ²) must be a number of at least 0, got {lam!r}")
    check_sparsity(sparsity)
    plan = sparsity_schedule(sparsity, steps, schedule)
    task = ensure_task(task)
    names = prunable_parameters(model, parameters)
    named = dict(model.named_parameters())
    masks = {n: torch.ones(named[n].shape, dtype=torch.bool) for n in names}
    loss, accuracy = data.evaluate(model)
    result = LossPruning(method, curvature, float(lam), schedule, float(sparsity), names,
                         {n: named[n].numel() for n in names}, loss, accuracy, masks=masks, examples=len(data))
    for s, kappa in enumerate(plan, start=1):
        sub = _SubTask(task, s, len(plan))
        local = local_model(model, data, names, curvature, samples=samples, seed=seed + s, chunk=chunk,
                            method=grads_method, task=sub)
        result.grads_method = local.grads_method
        theta = {n: named[n].detach() for n in names}
        new = global_masks(ranks(method, theta, local.gradient, local.curvature, masks, lam), float(kappa))
        newly = {n: masks[n] & ~new[n] for n in names}
        predicted = predicted_change(theta, local.gradient, local.curvature, newly)
        predicted["mp"] = float(sum((0.5 * theta[n].double()[newly[n]] ** 2).sum() for n in names))
        apply_masks(model, new)
        masks = new
        after, acc = data.evaluate(model)
        result.steps.append(PruneStep(s, float(sum(int((~m).sum()) for m in masks.values())) / sum(result.sizes.values()),
                                      int(sum(int(m.sum()) for m in newly.values())), loss, after, acc, predicted))
        result.masks = masks
        loss = after
        if on_step is not None:
            on_step(result.steps[-1], {n: m.clone() for n, m in masks.items()})
        task.progress(s, len(plan), f"pruned step {s} of {len(plan)}: sparsity {kappa:.1%}, loss {after:.4f}")
    return result


class _SubTask:
    """Progress of one step's gradient / curvature passes reported as a fraction of the whole run."""

    def __init__(self, task, step: int, steps: int):
        self.task, self.step, self.steps = task, step, steps

    def progress(self, done, total=None, message: str = "") -> None:
        frac = (done / total) if total else 0.0
        self.task.progress(int(1000 * (self.step - 1 + min(1.0, frac)) / self.steps), 1000,
                           f"step {self.step} of {self.steps}: {message}")

    def check(self) -> None:
        self.task.check()


def fine_tune(model: nn.Module, data: LossData, masks, *, epochs: float = 1.0, lr: float = 0.01,
              batch_size: int = 64, seed: int = 0, task=None) -> dict:
    """Train ``model`` on ``data`` for ``epochs`` passes (SGD, momentum 0.9, shuffled batches) with the
    pruned weights held at zero; returns the steps taken and the first / last batch losses."""
    if not (isinstance(epochs, (int, float)) and epochs > 0 and isinstance(lr, (int, float)) and lr > 0):
        raise PerturbError(f"fine-tuning needs epochs > 0 and a positive learning rate, got {epochs!r} and {lr!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise PerturbError(f"the fine-tuning batch size must be a whole number of at least 1, got {batch_size!r}")
    task = ensure_task(task)
    named = dict(model.named_parameters())
    keep = {n: m.to(named[n].device, named[n].dtype) for n, m in masks.items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=0.9)
    gen = torch.Generator().manual_seed(int(seed))
    n = len(data)
    total = max(1, int(math.ceil(epochs * n / batch_size)))
    losses = []
    was = model.training
    model.train()
    try:
        order = torch.randperm(n, generator=gen)
        pos = 0
        for step in range(total):
            if pos >= n:
                order, pos = torch.randperm(n, generator=gen), 0
            idx = order[pos:pos + batch_size]
            pos += batch_size
            sub = data.subset(idx)
            count = float((sub.targets != IGNORE).sum())
            if count == 0:
                continue
            loss = sub.summed_loss(model, 0, len(sub)) / count
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            with torch.no_grad():
                for name, m in keep.items():
                    if named[name].grad is not None:
                        named[name].grad.mul_(m)
            optimizer.step()
            apply_masks(model, masks)
            losses.append(float(loss.detach()))
            task.progress(step + 1, total, f"fine-tuning, loss {np.mean(losses[-20:]):.4f}")
    finally:
        model.train(was)
        optimizer.zero_grad(set_to_none=True)
    return {"epochs": float(epochs), "steps": total, "lr": float(lr), "batch_size": int(batch_size),
            "optimizer": "sgd momentum 0.9", "first_loss": losses[0] if losses else None,
            "last_loss": float(np.mean(losses[-20:])) if losses else None}


def save_pruned_checkpoint(out, model: nn.Module, meta: dict, pruning: LossPruning, metrics: dict | None = None):
    """Write ``model`` (pruned) as a checkpoint beside what ``meta`` (``load_checkpoint``'s) says of its origin,
    with the masks and :meth:`LossPruning.info` under ``pruning`` (atomic: temp file + rename)."""
    import uuid

    from lstmviz.engines.checkpoint import save_checkpoint

    info = pruning.info()
    info["source_checkpoint"] = {"path": meta.get("path"), "sha256": meta.get("sha256"), "step": meta.get("step")}
    merged = {**dict(meta.get("metrics") or {}), **(metrics or {}), "pruned_fraction": pruning.achieved}
    return save_checkpoint(out, model, engine=meta["engine"], config=meta["config"], vocab=meta["vocab"],
                           dataset=meta.get("dataset"), step=int(meta.get("step") or 0), metrics=merged,
                           train_settings=meta.get("train_settings") or {}, run=uuid.uuid4().hex,
                           family=meta["family"], data=meta.get("data"),
                           dataset_options=meta.get("dataset_options") or None,
                           pruning={"info": info, "masks": pruning.masks})
