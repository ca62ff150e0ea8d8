r"""Magnitude pruning of an attention NMT model by weight class: See, Luong & Manning, "Compression of
Neural Machine Translation Models via Pruning" (CoNLL 2016, arXiv:1606.09274), models_recurrent.md §15.

The prunable weights ``w`` are partitioned into *classes* by their role (:func:`weight_classes`);
``x`` is the fraction to remove, ``N`` the number of prunable weights, ``N_c`` those of class ``c``:

- **class-blind**: ONE global threshold ``t``: the ``round(x N)`` weights of smallest ``|w|`` over all
  classes are removed (``|w| <= t`` removed, ``|w| >= t`` kept; ties broken by a stable sort);
- **class-uniform**: in every class ``c`` the ``round(x N_c)`` weights of smallest ``|w|`` are removed
  (a threshold ``t_c`` per class);
- **class-distribution**: per-class thresholds ``t_c = λ σ_c`` (``σ_c``: the population standard
  deviation of the class's weights, before pruning), one ``λ`` for all classes, chosen so that exactly
  ``round(x N)`` weights are removed overall: a weight is removed when ``|w| / σ_c <= λ``, so ``λ`` is
  the ``round(x N)``-th smallest ``|w| / σ_c`` over all weights (exact, no search needed).

Pruning multiplies each weight by a fixed 0/1 mask. Retraining (:func:`retrain`) keeps the masks:
the gradient of a pruned weight is zeroed before every optimiser step (so Adam's moments of pruned
weights stay 0) and the masks are applied again after it, so pruned weights stay exactly 0.

The class partition of ``seq2seq-attn`` (:class:`~.attention.Seq2SeqAttention`), DEFINED here
(the paper's partition, adapted to this model):

=====================  ===========================================================================
class                  parameters
=====================  ===========================================================================
``embedding``          ``embedding.weight`` — ONE class: this model shares one embedding matrix
                       between source and target (the paper has a source and a target class)
``encoder.layer{l}``   ``encoder_layers.{l}.weight_ih``, ``encoder_layers.{l}.weight_hh``
``decoder.layer{l}``   ``decoder_layers.{l}.weight_ih`` (incl. the input-feeding columns), ``.weight_hh``
``attention``          ``attn_W.weight`` (``W_a``, general score) and ``attn_combine.weight`` (``W_c``)
``softmax``            ``output.weight`` (``W_s``)
=====================  ===========================================================================

Biases (LSTM ``bias_ih``/``bias_hh``, ``b_s``) are not pruned and not counted in ``N`` (they are < 2%
of the weights here; the paper's figures count weight matrices). Another engine can define its own
partition with a method ``pruning_classes() -> {class: [parameter names]}``.

What the window can show (:func:`surviving_recurrent`): per LSTM layer and unit ``j``, the fraction
of surviving *incoming recurrent* weights, i.e. of the rows ``j, H+j, 2H+j, 3H+j`` (gates i, f, g, o of
unit ``j``) of ``weight_hh``. A pruned checkpoint carries its masks (``engines/checkpoint.py``, payload
key ``pruning``); ``lstmviz record`` of it writes :func:`pruning_provenance` into the recording's
provenance under ``pruning`` (``surviving_recurrent``: ``{"encoder/layer0": [H fractions], ...}``,
unit ``j`` = unit ``j`` of the taps ``encoder/layer0/h`` and ``/c``).

CLI: ``lstmviz prune m.pt --scheme class-blind --fraction 0.4 [--retrain-epochs 1] --out p.pt``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from lstmviz.tasks import Task, ensure_task

SCHEMES = ("class-blind", "class-uniform", "class-distribution")


def weight_classes(model: nn.Module) -> dict[str, list[str]]:
    """The class partition of ``model``'s prunable weights: ``{class: [parameter names]}`` (module docstring)."""
    own = getattr(model, "pruning_classes", None)
    if callable(own):
        classes = {str(k): list(v) for k, v in own().items()}
    else:
        for name in ("embedding", "encoder_layers", "decoder_layers", "attn_W", "attn_combine", "output"):
            if not hasattr(model, name):
                raise ValueError(f"{type(model).__name__} has no {name}: not a Luong attention model; give it a "
                                 "pruning_classes() method to define its weight classes")
        classes = {"embedding": ["embedding.weight"]}
        for side in ("encoder", "decoder"):
            for l in range(len(getattr(model, f"{side}_layers"))):
                classes[f"{side}.layer{l}"] = [f"{side}_layers.{l}.weight_ih", f"{side}_layers.{l}.weight_hh"]
        classes["attention"] = ["attn_W.weight", "attn_combine.weight"]
        classes["softmax"] = ["output.weight"]
    params = dict(model.named_parameters())
    seen: set[str] = set()
    for cls, names in classes.items():
        for name in names:
            if name not in params:
                raise ValueError(f"weight class {cls!r}: the model has no parameter {name!r}")
            if name in seen:
                raise ValueError(f"parameter {name!r} is in two weight classes")
            seen.add(name)
    return classes


@dataclass
class Pruning:
    """The result of :func:`magnitude_masks`: ``masks`` (parameter -> bool tensor, True = kept) and how
    they were chosen: per class ``sizes`` (``N_c``), ``removed``, ``thresholds`` (the largest removed
    ``|w|``, or ``λ σ_c``; None when nothing is removed), ``sigma`` (``σ_c``) and ``lam`` (λ,
    class-distribution only)."""

    scheme: str
    fraction: float
    classes: dict[str, list[str]]
    masks: dict[str, Tensor]
    sizes: dict[str, int]
    removed: dict[str, int]
    thresholds: dict[str, float | None]
    sigma: dict[str, float] = field(default_factory=dict)
    lam: float | None = None

    @property
    def total(self) -> int:
        return sum(self.sizes.values())

    @property
    def removed_total(self) -> int:
        return sum(self.removed.values())

    def info(self) -> dict[str, Any]:
        """Everything but the masks, as plain values (for a checkpoint, a recording, a report)."""
        return {"scheme": self.scheme, "fraction": float(self.fraction),
                "classes": {k: list(v) for k, v in self.classes.items()},
                "sizes": dict(self.sizes), "removed": dict(self.removed), "thresholds": dict(self.thresholds),
                "sigma": dict(self.sigma), "lambda": self.lam,
                "removed_fraction": self.removed_total / max(self.total, 1)}


def _magnitudes(model: nn.Module, classes: Mapping[str, list[str]]) -> dict[str, Tensor]:
    params = dict(model.named_parameters())
    return {cls: torch.cat([params[n].detach().reshape(-1).abs().double().cpu() for n in names])
            for cls, names in classes.items()}


def _masks_from_flags(model: nn.Module, classes, removed_flags: dict[str, Tensor]) -> dict[str, Tensor]:
    params = dict(model.named_parameters())
    masks = {}
    for cls, names in classes.items():
        flags, offset = removed_flags[cls], 0
        for name in names:
            p = params[name]
            n = p.numel()
            masks[name] = (~flags[offset : offset + n]).reshape(p.shape).to(p.device)
            offset += n
    return masks


def _smallest(values: Tensor, k: int) -> Tensor:
    """Flags (bool) of the ``k`` smallest entries (stable: of equal values the first ones)."""
    flags = torch.zeros(values.numel(), dtype=torch.bool)
    if k > 0:
        order = torch.sort(values, stable=True).indices
        flags[order[:k]] = True
    return flags


def magnitude_masks(model: nn.Module, scheme: str, fraction: float,
                    classes: Mapping[str, list[str]] | None = None) -> Pruning:
    """The masks that remove ``fraction`` of the prunable weights by ``scheme`` (module docstring); the
    model is not changed (:func:`apply_masks`)."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    fraction = float(fraction)
    if not 0.0 <= fraction <= 1.0 or math.isnan(fraction):
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    classes = {k: list(v) for k, v in (classes or weight_classes(model)).items()}
    mags = _magnitudes(model, classes)
    sizes = {cls: int(m.numel()) for cls, m in mags.items()}
    names = list(classes)
    thresholds: dict[str, float | None] = {}
    sigma: dict[str, float] = {}
    lam = None
    if scheme == "class-uniform":
        flags = {cls: _smallest(mags[cls], round(fraction * sizes[cls])) for cls in names}
        for cls in names:
            thresholds[cls] = float(mags[cls][flags[cls]].max()) if bool(flags[cls].any()) else None
    else:
        if scheme == "class-distribution":
            params = dict(model.named_parameters())
            for cls in names:
                values = torch.cat([params[n].detach().reshape(-1).double().cpu() for n in classes[cls]])
                sigma[cls] = float(values.std(unbiased=False))
                if not sigma[cls] > 0:
                    raise ValueError(f"class {cls!r}: its weights are all equal (σ = 0); λσ_c cannot rank them")
            scores = torch.cat([mags[cls] / sigma[cls] for cls in names])
        else:
            scores = torch.cat([mags[cls] for cls in names])
        k = round(fraction * scores.numel())
        all_flags = _smallest(scores, k)
        bound = float(scores[all_flags].max()) if k > 0 else None
        flags, offset = {}, 0
        for cls in names:
            flags[cls] = all_flags[offset : offset + sizes[cls]]
            offset += sizes[cls]
        if scheme == "class-distribution":
            lam = bound
            thresholds = {cls: None if lam is None else lam * sigma[cls] for cls in names}
        else:
            thresholds = {cls: bound for cls in names}
    masks = _masks_from_flags(model, classes, flags)
    removed = {cls: int(flags[cls].sum()) for cls in names}
    return Pruning(scheme, fraction, classes, masks, sizes, removed, thresholds, sigma, lam)


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Mapping[str, Tensor]) -> None:
    """Multiply every masked parameter by its mask (pruned weights become exactly 0)."""
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        p = params[name]
        p.mul_(mask.to(device=p.device, dtype=p.dtype))


def mask_gradients(model: nn.Module, masks: Mapping[str, Tensor]) -> None:
    """Zero the gradient of every pruned weight (before an optimiser step)."""
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        g = params[name].grad
        if g is not None:
            g.mul_(mask.to(device=g.device, dtype=g.dtype))


def masked_step(model: nn.Module, optimizer: torch.optim.Optimizer, masks: Mapping[str, Tensor],
                clip: float | None = None) -> None:
    """One optimiser step that keeps the pruned weights exactly 0 (gradients masked, masks re-applied)."""
    mask_gradients(model, masks)
    if clip:
        nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    apply_masks(model, masks)


def retrain(model: nn.Module, masks: Mapping[str, Tensor], dataset_train, *, epochs: float = 1.0,
            batch_size: int = 64, lr: float = 1e-3, clip: float | None = 1.0, seed: int = 0,
            task: Task | None = None) -> dict[str, float]:
    """Retrain a pruned seq2seq model with its masks fixed: Adam, ``epochs`` passes over the training pairs
    in batches of the family's objective (teacher-forced NLL); returns ``steps``, ``first_loss``, ``last_loss``
    (mean of the last min(20, steps) steps). The model is left in eval mode."""
    from lstmviz.engines.families import registry as families
    from lstmviz.engines.training import resolve_train_settings

    task = ensure_task(task)
    family = families.get("seq2seq")
    settings = resolve_train_settings(family, {}, {"batch_size": int(batch_size), "seed": int(seed), "lr": float(lr)})
    device = next(model.parameters()).device
    objective = family.make_objective()
    objective.prepare(dataset_train, None, settings, device)
    steps = max(1, math.ceil(float(epochs) * len(objective.train_pairs) / objective.batch_size))
    optimizer = torch.optim.Adam(model.parameters(), lr=float(lr))
    apply_masks(model, masks)
    losses = []
    model.train()
    with torch.random.fork_rng():
        torch.manual_seed(int(seed))
        for step in range(1, steps + 1):
            loss, _ = objective.train_step(model)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            masked_step(model, optimizer, masks, clip)
            losses.append(float(loss.detach()))
            task.progress(step, steps, f"retraining, loss {np.mean(losses[-20:]):.3f}")
    model.eval()
    return {"steps": steps, "first_loss": losses[0], "last_loss": float(np.mean(losses[-20:]))}


def surviving_recurrent(model: nn.Module, masks: Mapping[str, Tensor]) -> dict[str, np.ndarray]:
    """Per LSTM layer (``"encoder/layer0"``, ...) the fraction of each unit's incoming recurrent weights that
    survive (rows ``j, H+j, 2H+j, 3H+j`` of ``weight_hh``); 1.0 for every unit of an unmasked layer."""
    out = {}
    for side in ("encoder", "decoder"):
        layers = getattr(model, f"{side}_layers", None)
        if layers is None:
            continue
        for l, layer in enumerate(layers):
            name = f"{side}_layers.{l}.weight_hh"
            H = int(layer.weight_hh.shape[1])
            mask = masks.get(name)
            if mask is None:
                out[f"{side}/layer{l}"] = np.ones(H)
                continue
            kept = mask.detach().cpu().reshape(4, H, H).to(torch.float64)  # gate, unit, input unit
            out[f"{side}/layer{l}"] = kept.mean(dim=(0, 2)).numpy()
    return out


def pruning_provenance(model: nn.Module, pruning: Mapping[str, Any]) -> dict[str, Any]:
    """What a recording of a pruned model carries under ``provenance["pruning"]``: the checkpoint's pruning
    info (scheme, fraction, per-class sizes/removed/thresholds, λ, retraining) and ``surviving_recurrent``."""
    info = dict(pruning.get("info") or {})
    info["surviving_recurrent"] = {k: [float(x) for x in v]
                                   for k, v in surviving_recurrent(model, pruning.get("masks") or {}).items()}
    return info


def prune_checkpoint(path, out, *, scheme: str, fraction: float, dataset_train=None, dataset_valid=None,
                     retrain_epochs: float = 0.0, retrain_lr: float = 1e-3, batch_size: int | None = None,
                     valid_items: int | None = 500, seed: int = 0, task: Task | None = None) -> dict[str, Any]:
    """Prune the seq2seq checkpoint ``path`` (:func:`magnitude_masks`), retrain it ``retrain_epochs`` on
    ``dataset_train`` with the masks fixed (0: none), evaluate on ``dataset_valid`` (its first
    ``valid_items`` pairs; greedy exact match against the reference) before and after, and save the pruned
    model with its masks to ``out``. Returns the report: ``pruning`` (:meth:`Pruning.info`), ``before`` and
    ``after`` (the validation measures, None without validation data), ``retrain`` (None without)."""
    import uuid

    from lstmviz.engines.checkpoint import check_output_path, load_checkpoint, save_checkpoint
    from lstmviz.engines.families.seq2seq.objective import _pairs, evaluate_pairs

    task = ensure_task(task)
    check_output_path(out)
    model, meta = load_checkpoint(path)
    if meta["family"] != "seq2seq":
        raise ValueError(f"{path}: a checkpoint of the {meta['family']!r} family; magnitude pruning by weight class "
                         "is defined for seq2seq models")
    if meta.get("pruning"):
        raise ValueError(f"{path}: already pruned ({meta['pruning']['info'].get('scheme')}); prune the unpruned model")
    if retrain_epochs and dataset_train is None:
        raise ValueError("retraining needs the training data")
    for data in (dataset_train, dataset_valid):
        if data is not None and [str(t) for t in data.vocab] != list(meta["vocab"]):
            raise ValueError(f"{path}: the dataset's vocabulary is not the checkpoint's")
    batch_size = int(batch_size or meta["train_settings"].get("batch_size") or 64)
    valid = None
    if dataset_valid is not None:
        valid = _pairs(dataset_valid, len(meta["vocab"]), "validation data")[: valid_items or None]
    device = next(model.parameters()).device

    def measure():
        return None if not valid else evaluate_pairs(model, valid, batch_size, device, decode=True)

    before = measure()
    plan = magnitude_masks(model, scheme, fraction)
    apply_masks(model, plan.masks)
    after_prune = measure()
    retrained = None
    if retrain_epochs:
        retrained = retrain(model, plan.masks, dataset_train, epochs=retrain_epochs, batch_size=batch_size,
                            lr=retrain_lr, seed=seed, task=task)
    after = measure() if retrained else after_prune
    info = plan.info()
    info["retrain"] = None if retrained is None else {**retrained, "epochs": float(retrain_epochs),
                                                      "lr": float(retrain_lr), "batch_size": batch_size,
                                                      "optimizer": "adam"}
    info["source_checkpoint"] = {"path": meta["path"], "sha256": meta["sha256"], "step": meta["step"]}
    metrics = dict(meta["metrics"])
    for key, value in (after or {}).items():
        metrics[f"valid_{key}" if key != "loss" else "valid_loss"] = value
    metrics["pruned_fraction"] = info["removed_fraction"]
    save_checkpoint(out, model, engine=meta["engine"], config=meta["config"], vocab=meta["vocab"],
                    dataset=meta["dataset"], step=meta["step"] + (retrained or {}).get("steps", 0), metrics=metrics,
                    train_settings=meta["train_settings"], run=uuid.uuid4().hex, family=meta["family"],
                    data=meta.get("data"), dataset_options=meta.get("dataset_options") or None,
                    pruning={"info": info, "masks": plan.masks})
    return {"pruning": info, "before": before, "after_prune": after_prune, "after": after, "retrain": retrained}


__all__ = ["SCHEMES", "Pruning", "apply_masks", "magnitude_masks", "mask_gradients", "masked_step",
           "prune_checkpoint", "pruning_provenance", "retrain", "surviving_recurrent", "weight_classes"]
