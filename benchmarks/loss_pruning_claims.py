"""Laurent et al.'s loss-modelling claims, in direction, on sklearn digits (models_graph_vision.md §A4 (d)).

An MLP 64-300-100-10 (ReLU) is trained on 1,200 digits (Adam, 40 epochs), then pruned globally to 90 % and
98 % of its weights by MP, LM, QM and OBD (``lstmviz.perturb.global_pruning``), in 1 step and in 10 steps
(exponential schedule), with the locality term λ ∈ {0, 1e-3, 1e-1} (λ does not change MP's ranking: MP's
λ > 0 rows repeat its λ = 0 run). Curvature: the diagonal true Fisher (= GGN of softmax cross-entropy) with
labels sampled from the model (``sampled-fisher``, ``--samples`` draws per example; ``--curvature ggn`` sums
over the 10 classes exactly, 5x slower), gradients and curvature on 1,000 training digits (the
reference's ``--nex 1000``), re-estimated before every step. Per run:

- predicted against measured ΔL of every step, on those 1,000 digits: for each step the error of the LM,
  QM and OBD predictions |ΔL_model − ΔL_measured| (all three evaluated on the same pruned set), summed over
  the steps and divided by the summed |ΔL_measured| ("relative error");
- the loss after pruning (training digits) and the test accuracy (597 held-out digits) pruned and after
  a short fine-tune with the masks fixed (SGD, momentum 0.9, lr 0.01, 5 epochs of the 1,200 digits).

Before the grid, the locality of the loss models on their own: from the trained MLP, one step to sparsity
1 %, 2 %, 5 %, 10 %, 20 %, 50 % and 90 %, the pruned set chosen by MP (which does not look at any loss
model, so no model is judged on a set picked by itself) and by QM, and the relative error
|ΔL_model − ΔL_measured| / |ΔL_measured| of the LM, QM and OBD predictions of that one step.

Claims: with small steps QM predicts ΔL best; multi-step pruning or λ > 0 helps every loss model; the
differences between loss models shrink after fine-tuning. Measured numbers only; nothing asserted.

    python benchmarks/loss_pruning_claims.py            # the full grid (40 runs)
    python benchmarks/loss_pruning_claims.py --quick    # 90 % only, λ ∈ {0, 1e-3}
    python benchmarks/loss_pruning_claims.py --locality-only
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np


def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    return x[order[:1200]], y[order[:1200]], x[order[1200:]], y[order[1200:]]


def trained_mlp(x, y, epochs: int, seed: int = 0):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        for s in range(0, len(xt), 64):
            idx = order[s:s + 64]
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def relative_errors(result) -> dict[str, float]:
    measured = np.array([s.measured for s in result.steps])
    scale = float(np.abs(measured).sum()) or 1.0
    return {m: float(np.abs(np.array([s.predicted[m] for s in result.steps]) - measured).sum()) / scale
            for m in ("lm", "qm", "obd")}


def locality(base, prune_set, curvature: str, samples: int) -> None:
    """One step from the trained model to growing sparsities: how far each loss model's prediction is off."""
    import torch

    from lstmviz.perturb.curvature import local_model
    from lstmviz.perturb.global_pruning import masked_copy
    from lstmviz.perturb.loss_models import global_masks, predicted_change, prunable_parameters, ranks

    names = prunable_parameters(base)
    local = local_model(base, prune_set, names, curvature, samples=samples)
    theta = {n: base.get_parameter(n).detach() for n in names}
    base_loss, _ = prune_set.evaluate(base)
    print(f"\nLocality: one step from the trained model ({curvature}); relative error |pred − meas| / |meas|")
    print(f"{'ranked by':>9} {'sparsity':>8} | {'measured ΔL':>11} | {'LM':>7} {'QM':>7} {'OBD':>7}")
    for by in ("mp", "qm"):
        for kappa in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 0.9):
            masks = global_masks(ranks(by, theta, local.gradient, local.curvature), kappa)
            pred = predicted_change(theta, local.gradient, local.curvature, {n: ~m for n, m in masks.items()})
            with torch.no_grad():
                measured = prune_set.evaluate(masked_copy(base, masks))[0] - base_loss
            err = {m: abs(pred[m] - measured) / max(abs(measured), 1e-12) for m in ("lm", "qm", "obd")}
            print(f"{by:>9} {kappa:>8.0%} | {measured:>+11.3e} | {err['lm']:>7.3f} {err['qm']:>7.3f} "
                  f"{err['obd']:>7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--epochs", type=int, default=40, help="training epochs of the MLP (default 40)")
    parser.add_argument("--fine-tune-epochs", type=float, default=5.0)
    parser.add_argument("--curvature", default="sampled-fisher")
    parser.add_argument("--samples", type=int, default=2, help="sampled labels per example (default 2)")
    parser.add_argument("--locality-only", action="store_true", help="only the one-step locality table")
    args = parser.parse_args()

    import torch

    from lstmviz.perturb.global_pruning import fine_tune, prune_by_loss_model
    from lstmviz.perturb.loss_data import image_class_data

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    x, y, xt, yt = digits()
    t0 = time.perf_counter()
    base = trained_mlp(x, y, args.epochs)
    train_all = image_class_data(x.reshape(-1, 64), y, "training digits")
    prune_set = train_all.subset(range(1000))
    test = image_class_data(xt.reshape(-1, 64), yt, "test digits")
    base_loss, base_acc = prune_set.evaluate(base)
    _, test_acc = test.evaluate(base)
    print(f"MLP 64-300-100-10 trained in {time.perf_counter() - t0:.1f} s: training loss {base_loss:.4f}, "
          f"test accuracy {test_acc:.4f}; {sum(p.numel() for p in base.parameters()):,} parameters, "
          f"{sum(p.numel() for p in base.parameters() if p.dim() >= 2):,} prunable weights")

    locality(base, prune_set, args.curvature, args.samples)
    if args.locality_only:
        return
    sparsities = (0.9,) if args.quick else (0.9, 0.98)
    lams = (0.0, 1e-3) if args.quick else (0.0, 1e-3, 1e-1)
    rows = []
    print(f"\n{'sparsity':>8} {'method':>6} {'steps':>5} {'lambda':>7} | {'rel.err LM':>10} {'QM':>7} {'OBD':>7} | "
          f"{'loss pruned':>11} {'test acc pruned':>15} {'fine-tuned':>10} | {'s':>5}")
    for kappa in sparsities:
        for method in ("mp", "lm", "qm", "obd"):
            for steps in (1, 10):
                for lam in lams:
                    if method == "mp" and lam > 0:  # same ranking as λ = 0
                        rows.append({**rows[-1], "lam": lam})
                        continue
                    model = copy.deepcopy(base)
                    t1 = time.perf_counter()
                    result = prune_by_loss_model(model, prune_set, method=method, sparsity=kappa, steps=steps,
                                                 lam=lam, curvature=args.curvature, samples=args.samples)
                    pruned_loss = result.final_loss
                    _, acc_pruned = test.evaluate(model)
                    fine_tune(model, train_all, result.masks, epochs=args.fine_tune_epochs, lr=0.01, batch_size=64)
                    _, acc_tuned = test.evaluate(model)
                    err = relative_errors(result)
                    seconds = time.perf_counter() - t1
                    rows.append(dict(kappa=kappa, method=method, steps=steps, lam=lam, err=err, loss=pruned_loss,
                                     acc_pruned=acc_pruned, acc_tuned=acc_tuned, achieved=result.achieved))
                    print(f"{kappa:>8.0%} {method:>6} {steps:>5} {lam:>7g} | {err['lm']:>10.3f} {err['qm']:>7.3f} "
                          f"{err['obd']:>7.3f} | {pruned_loss:>11.4f} {acc_pruned:>15.4f} {acc_tuned:>10.4f} | "
                          f"{seconds:>5.1f}")

    print("\nClaim 1: with small steps QM predicts ΔL best (median relative error over the runs)")
    for steps in (1, 10):
        sel = [r for r in rows if r["steps"] == steps]
        med = {m: float(np.median([r["err"][m] for r in sel])) for m in ("lm", "qm", "obd")}
        best = sum(1 for r in sel if r["err"]["qm"] <= min(r["err"]["lm"], r["err"]["obd"]))
        print(f"  {steps:>2} step(s): LM {med['lm']:.3f}  QM {med['qm']:.3f}  OBD {med['obd']:.3f}; "
              f"QM best in {best} of {len(sel)} runs")

    print("\nClaim 2: multi-step or λ > 0 helps every loss model (loss after pruning, test accuracy pruned)")
    for kappa in sparsities:
        for method in ("mp", "lm", "qm", "obd"):
            def get(steps, lam):
                return next(r for r in rows if r["kappa"] == kappa and r["method"] == method and r["steps"] == steps
                            and r["lam"] == lam)
            one, ten = get(1, 0.0), get(10, 0.0)
            lam_best = min((get(1, lam) for lam in lams if lam > 0), key=lambda r: r["loss"])
            print(f"  {kappa:.0%} {method:>3}: 1 step {one['loss']:.3f} ({one['acc_pruned']:.3f}) | 10 steps "
                  f"{ten['loss']:.3f} ({ten['acc_pruned']:.3f}) | 1 step best λ={lam_best['lam']:g} "
                  f"{lam_best['loss']:.3f} ({lam_best['acc_pruned']:.3f})")

    print("\nClaim 3: differences between loss models shrink after fine-tuning (spread of test accuracy over MP, "
          "LM, QM, OBD)")
    for kappa in sparsities:
        for steps in (1, 10):
            for lam in lams:
                sel = [r for r in rows if r["kappa"] == kappa and r["steps"] == steps and r["lam"] == lam]
                before = [r["acc_pruned"] for r in sel]
                after = [r["acc_tuned"] for r in sel]
                print(f"  {kappa:.0%} {steps:>2} step(s) λ={lam:<6g}: pruned {min(before):.3f}–{max(before):.3f} "
                      f"(spread {max(before) - min(before):.3f}) -> fine-tuned {min(after):.3f}–{max(after):.3f} "
                      f"(spread {max(after) - min(after):.3f})")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
