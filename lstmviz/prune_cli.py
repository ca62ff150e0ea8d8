"""``lstmviz prune CKPT --method M --sparsity X --out P.pt``: the loss-model form of ``lstmviz prune``.

Global loss-model pruning (Laurent et al. 2020; ``lstmviz.perturb.global_pruning``) of a language-model or
image-classifier checkpoint on the first ``--items`` items of a dataset split, an optional fine-tune with the
masks fixed, and the pruned checkpoint (its masks and the per-step table under ``pruning``). The seq2seq
class-based form (``--scheme``) stays in :func:`lstmviz.cli.cmd_prune`, which checks that the two forms are
not mixed and hands this one over.
"""

from __future__ import annotations

import argparse
import math

from lstmviz.cli import UsageError, _check_output_folder, _key_values, _say
from lstmviz.console import progress_task

DEFAULT_ITEMS = 1000


def _check(args: argparse.Namespace) -> None:
    if args.sparsity is None:
        raise UsageError("--method needs --sparsity, the fraction of the weights to prune (0 <= X < 1)")
    if not (math.isfinite(args.sparsity) and 0.0 <= args.sparsity < 1.0):
        raise UsageError(f"--sparsity must be a fraction from 0 up to (not including) 1, got {args.sparsity}")
    for flag, value, low in (("--steps", args.steps, 1), ("--items", args.items, 1), ("--samples", args.samples, 1),
                             ("--batch-size", args.batch_size, 1)):
        if value is not None and value < low:
            raise UsageError(f"{flag} must be a whole number of at least {low}, got {value}")
    if args.lam is not None and not (math.isfinite(args.lam) and args.lam >= 0):
        raise UsageError(f"--lambda must be a number of at least 0, got {args.lam}")
    if args.retrain_epochs < 0 or (args.retrain_lr is not None and not args.retrain_lr > 0):
        raise UsageError("--retrain-epochs must be >= 0 and --retrain-lr positive")
    if args.valid_items < 0:
        raise UsageError(f"--valid-items must be >= 0, got {args.valid_items}")


def _fmt(value: float) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:+.3e}"


def cmd_loss_prune(args: argparse.Namespace) -> int:
    _check(args)
    _check_output_folder(args.out)
    from lstmviz.datasets import load_dataset
    from lstmviz.engines.checkpoint import load_checkpoint
    from lstmviz.perturb.global_pruning import fine_tune, prune_by_loss_model, save_pruned_checkpoint
    from lstmviz.perturb.loss_data import dataset_data

    model, meta = load_checkpoint(args.checkpoint)
    if meta.get("pruning"):
        raise UsageError(f"{args.checkpoint} is already pruned ({meta['pruning']['info'].get('scheme')}); prune the "
                         "unpruned model (several steps: --steps)")
    options = _key_values(args.dataset_options, "--dataset-option")
    name = args.dataset or meta["dataset"]
    if not name:
        raise UsageError(f"{args.checkpoint} names no dataset; give --dataset")
    if name == meta["dataset"]:
        options = {**(meta.get("dataset_options") or {}), **options}
    dtype = next(model.parameters()).dtype
    split = args.split or "train"
    data = dataset_data(meta["family"], load_dataset(name, split, **options), args.items or DEFAULT_ITEMS, dtype,
                        f"{split} items")
    valid = None
    if args.valid_items:
        valid = dataset_data(meta["family"], load_dataset(name, "valid", **options), args.valid_items, dtype,
                             "validation items")
    curvature = args.curvature or "fisher"
    samples = args.samples or (16 if curvature == "hutchinson" else 1)
    before = valid.evaluate(model) if valid is not None else None
    with progress_task("prune", unit="‰", quiet=args.quiet) as task:
        result = prune_by_loss_model(model, data, method=args.method, sparsity=float(args.sparsity),
                                     steps=args.steps or 1, lam=float(args.lam or 0.0), curvature=curvature,
                                     schedule=args.schedule or "exponential", parameters=args.params,
                                     samples=samples, seed=args.seed, task=task)
    pruned = valid.evaluate(model) if valid is not None else None
    tuned = after = None
    if args.retrain_epochs:
        with progress_task("fine-tune", unit="steps", quiet=args.quiet) as task:
            tuned = fine_tune(model, data, result.masks, epochs=args.retrain_epochs, lr=args.retrain_lr or 0.01,
                              batch_size=args.batch_size or 64, seed=args.seed, task=task)
        result.fine_tune = tuned
        after = valid.evaluate(model) if valid is not None else None
    metrics = {}
    final = after or pruned
    if final is not None:
        metrics = {"valid_loss": final[0], "valid_accuracy": final[1]}
    save_pruned_checkpoint(args.out, model, meta, result, metrics)

    _say(f"wrote {args.out}: {result.summary()} on {len(data)} {split} items of {name}"
         + (f", per-example gradients by {result.grads_method}" if result.grads_method else ""))
    _say(f"  {'step':>4} {'sparsity':>8} {'pruned':>8} {'loss':>9} {'measured':>11} {'pred. LM':>11} "
         f"{'pred. QM':>11} {'pred. OBD':>11}")
    for s in result.steps:
        _say(f"  {s.step:>4} {s.sparsity:>8.2%} {s.pruned:>8,} {s.loss_after:>9.4f} {_fmt(s.measured):>11} "
             f"{_fmt(s.predicted['lm']):>11} {_fmt(s.predicted['qm']):>11} {_fmt(s.predicted['obd']):>11}")
    if tuned is not None:
        _say(f"  fine-tuned {tuned['steps']} steps (SGD momentum 0.9, lr {tuned['lr']:g}): batch loss "
             f"{tuned['first_loss']:.4f} -> {tuned['last_loss']:.4f}")
    for label, m in (("before", before), ("pruned", pruned), ("fine-tuned", after)):
        if m is not None:
            _say(f"  {label:<10} valid loss {m[0]:.4f}  accuracy {m[1]:.4f}")
    return 0
