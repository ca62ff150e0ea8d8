"""The tangent-kernel claims of Baratin et al. (A3) and Bietti & Mairal (A8), in direction, on short CPU runs.

**A3 (neural feature alignment).** A digits MLP 64 → W → W → 10 (ReLU, PyTorch's default init) trained
with SGD (cross-entropy, batch 32) on 1,297 of scikit-learn's digits, its parameters kept at ~10
checkpoints; at each: the centred alignment A(K, YYᵀ) of the tangent kernel with the one-hot labels of
200 held-out probe images, and the effective rank (exp-entropy) of the centred kernel, per layer and
for K. Compared with (i) the linearised model f_lin(x) = f_0(x) + J_0(x)(θ − θ_0), whose tangent kernel is
K_0 at every step by construction (so its alignment never changes), and (ii) a much wider network at a
smaller learning rate (closer to the lazy regime). Claim, in direction: A rises and the effective rank
falls during training; less so for the wider, lazier model.

**A8 (spectral bias on the circle).** Kernel ridge regression with the closed-form kernels
(``lstmviz.analysis.ntk_closed_form``) on n random points of the circle, target cos(kθ), relative test
error (MSE / ½) averaged over 5 draws, for the NTK and κ_1, without and with a bias. Claims: the NTK
learns higher frequencies with fewer samples than κ_1; odd k ≥ 3 are not learnt without a bias and are
with one. Printed at a ridge λ = 1e-4 and in the interpolating limit λ = 1e-8.

    OMP_NUM_THREADS=2 python benchmarks/ntk_claims.py            # both
    python benchmarks/ntk_claims.py --only a3 --steps 600
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.as_tensor(d.data / 16.0, dtype=torch.float32)
    y = torch.as_tensor(d.target, dtype=torch.long)
    g = np.random.default_rng(0).permutation(len(x))
    probe, train = g[:200], g[300:]
    return x[train], y[train], x[probe], y[probe].numpy()


def _mlp(width: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))


def _measure(net, x_probe, y_probe):
    from lstmviz.analysis.tangent_kernel import measures, tangent_kernel

    kernel = tangent_kernel(net, lambda call, item: call(item[None])[0], x_probe)
    return measures(kernel, y_probe, n_classes=10)


def run_a3(steps: int, width: int, wide: int, lr: float, wide_lr: float, checkpoints: int) -> None:
    x, y, xp, yp = _digits()
    keep = sorted({0, *np.unique(np.geomspace(1, steps, checkpoints - 1).astype(int))})
    print(f"A3: digits MLP, SGD, batch 32, {steps} steps, probe set {len(xp)} images; checkpoints {keep}")
    for name, w, rate in (("MLP", width, lr), ("wide MLP (lazier)", wide, wide_lr)):
        net = _mlp(w, 0)
        opt = torch.optim.SGD(net.parameters(), lr=rate)
        g = torch.Generator().manual_seed(1)
        rows = []
        t0 = time.perf_counter()
        for step in range(steps + 1):
            if step in keep:
                net.eval()
                m = _measure(net, xp, yp)
                with torch.no_grad():
                    acc = float((net(xp).argmax(1).numpy() == yp).mean())
                rows.append((step, m, acc))
                net.train()
            if step == steps:
                break
            idx = torch.randint(0, len(x), (32,), generator=g)
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
        params = sum(p.numel() for p in net.parameters())
        print(f"\n  {name}: width {w}, lr {rate}, {params:,} parameters ({time.perf_counter() - t0:.0f} s)")
        layers = rows[0][1].layers
        print(f"  {'step':>6} {'probe acc':>9}  {'A(K)':>6} {'rank(K)':>8}  " +
              "  ".join(f"A[{layer}] r[{layer}]" for layer in layers))
        for step, m, acc in rows:
            per = "  ".join(f"{a:6.3f} {r:6.1f}" for a, r in zip(m.alignment, m.effective_rank))
            print(f"  {step:>6} {acc:>9.3f}  {m.total_alignment:>6.3f} {m.total_effective_rank:>8.2f}  {per}")
        first, last = rows[0][1], rows[-1][1]
        print(f"  change over training: alignment {last.total_alignment - first.total_alignment:+.3f}, effective rank "
              f"{last.total_effective_rank - first.total_effective_rank:+.2f}")
    print("\n  linearised model f_lin = f_0 + J_0 (θ − θ_0): its tangent kernel is K_0 at every step, so its "
          "alignment change is 0 by construction (a linear model's K = XXᵀ at every checkpoint is tested in "
          "tests/analysis/test_tangent_kernel.py)")


def run_a8() -> None:
    from lstmviz.analysis import ntk_closed_form as cf

    rng = np.random.default_rng(0)
    theta_test, test = cf.circle_points(400)
    print("\nA8: kernel ridge on the circle, target cos(kθ); relative test error (0 = learnt, ~1 = nothing learnt)")
    for ridge in (1e-4, 1e-8):
        for bias in (False, True):
            print(f"\n  ridge {ridge:g}, {'with' if bias else 'without'} bias")
            print(f"  {'n':>4} {'kernel':>7}  " + " ".join(f"{'k=' + str(k):>6}" for k in range(1, 9)))
            for n in (10, 20, 40, 80):
                for kernel in ("ntk", "kappa1"):
                    errs = []
                    for k in range(1, 9):
                        e = []
                        for _ in range(5):
                            th = rng.uniform(0, 2 * np.pi, n)
                            xs = np.stack([np.cos(th), np.sin(th)], axis=1)
                            pred = cf.kernel_ridge(xs, np.cos(k * th), test, kernel, bias=bias, ridge=ridge)
                            e.append(np.mean((pred - np.cos(k * theta_test)) ** 2) / 0.5)
                        errs.append(float(np.mean(e)))
                    print(f"  {n:>4} {kernel:>7}  " + " ".join(f"{v:6.3f}" for v in errs))
    even = range(2, 65, 2)
    print(f"\n  circle spectra: decay slope over even k 2..64: NTK {cf.decay_slope(cf.circle_spectrum('ntk'), even):.2f}, "
          f"κ1 {cf.decay_slope(cf.circle_spectrum('kappa1'), even):.2f}; odd μ_3,5,7 without bias: "
          + ", ".join(f"{cf.circle_spectrum('ntk')[k]:.1e}" for k in (3, 5, 7)) + "; with bias: "
          + ", ".join(f"{cf.circle_spectrum('ntk', bias=True)[k]:.1e}" for k in (3, 5, 7)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=("a3", "a8"))
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--wide", type=int, default=2048)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--wide-lr", type=float, default=0.01)
    ap.add_argument("--checkpoints", type=int, default=10)
    args = ap.parse_args()
    if args.only in (None, "a3"):
        run_a3(args.steps, args.width, args.wide, args.lr, args.wide_lr, args.checkpoints)
    if args.only in (None, "a8"):
        run_a8()


if __name__ == "__main__":
    main()
