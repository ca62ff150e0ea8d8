"""NTK Gram of 1,000 items of a ~100k-parameter model: ``tangent_kernel`` against a naive per-item Jacobian loop.

Model: a digits MLP 64 → 320 → 256 → 10 (ReLU; 105,546 parameters, float32), on 1,000 of scikit-learn's
8×8 digits (pixels / 16). Output: the 10 logits; kernel: the trace kernel K = Σ_o J_o J_oᵀ (n × n).

  (a) ``lstmviz.analysis.tangent_kernel.tangent_kernel`` as shipped (per layer; the Linear layers by the
      exact shortcut K_l = (A Aᵀ + 1) ⊙ Σ_o G_o G_oᵀ from the service's bias Jacobians and the layer inputs);
  (b) with ``--generic``: the same without the shortcut (``factored=False``: Jacobians of every layer from
      ``per_example_jacobians``, contracted per layer, memory-bounded by ``max_bytes``);
  (c) the naive baseline: for each item one forward pass, then ``torch.autograd.grad`` per output over all
      parameters (10 backward passes per item), the rows stacked into J [n·O, P] (float32, 4.2 GB at
      n = 1000) and K = Σ_o J_o J_oᵀ by one matrix product.

It prints the wall time of each, the ratios (c)/(a) (and (c)/(b)) and max |K_a − K_c| / max |K_c|. The
goal (issue 20): (a) ≤ 60 s on 2 cores and ≥ 5× faster than (c). Nothing is asserted. Each method
runs once on 2–4 items first, untimed (torch.func's first use imports modules for seconds). ``--naive-items N``
runs (c) on the first N items only and says so (its Jacobian part scales as N, its Gram as N²).

    OMP_NUM_THREADS=2 python benchmarks/ntk.py                # 1,000 items
    OMP_NUM_THREADS=2 python benchmarks/ntk.py --generic      # also the generic path (slow: the full Gram)
    python benchmarks/ntk.py --items 300 --naive-items 300    # quick
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn


def digits(n: int) -> torch.Tensor:
    from sklearn.datasets import load_digits

    x = load_digits().data[:n] / 16.0
    if len(x) < n:
        raise SystemExit(f"--items: the digits have {len(x)} images, asked for {n}")
    return torch.as_tensor(x, dtype=torch.float32)


def model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 320), nn.ReLU(), nn.Linear(320, 256), nn.ReLU(), nn.Linear(256, 10)).eval()


def naive_kernel(net: nn.Module, x: torch.Tensor) -> np.ndarray:
    params = [p for p in net.parameters() if p.requires_grad]
    total = sum(p.numel() for p in params)
    n, outputs = len(x), None
    jac = None
    for i in range(n):
        out = net(x[i:i + 1])[0]
        if jac is None:
            outputs = out.shape[0]
            jac = torch.empty((n, outputs, total), dtype=torch.float32)
        for o in range(outputs):
            grads = torch.autograd.grad(out[o], params, retain_graph=o + 1 < outputs)
            jac[i, o] = torch.cat([g.reshape(-1) for g in grads])
    flat = jac.reshape(n, -1)
    return (flat @ flat.T).double().numpy()


def main() -> None:
    from lstmviz.analysis.tangent_kernel import tangent_kernel

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--naive-items", type=int, default=None, help="items for the naive loop (default: --items)")
    ap.add_argument("--generic", action="store_true", help="also time the generic path (no Linear shortcut)")
    args = ap.parse_args()
    naive_n = args.naive_items or args.items
    if not 2 <= naive_n <= args.items:
        raise SystemExit("--naive-items must be between 2 and --items")
    x = digits(args.items)
    net = model()
    n_params = sum(p.numel() for p in net.parameters())
    print(f"model: MLP 64-320-256-10, {n_params:,} parameters; {args.items} items, 10 outputs; "
          f"torch threads {torch.get_num_threads()}")

    def output(call, item):
        return call(item[None])[0]

    tangent_kernel(net, output, x[:4], factored=args.generic)  # warm-up: torch.func's first-use imports
    naive_kernel(net, x[:2])
    t0 = time.perf_counter()
    fast = tangent_kernel(net, output, x)
    t_fast = time.perf_counter() - t0
    print(f"(a) tangent_kernel:            {t_fast:8.2f} s   (layers by the Linear shortcut: "
          f"{sum(fast.factored)}/{len(fast.layers)})")
    t_generic = None
    if args.generic:
        t0 = time.perf_counter()
        generic = tangent_kernel(net, output, x, factored=False)
        t_generic = time.perf_counter() - t0
        diff = np.abs(generic.total() - fast.total()).max() / np.abs(generic.total()).max()
        print(f"(b) tangent_kernel, generic:   {t_generic:8.2f} s   (max rel. difference to (a) {diff:.1e})")
    t0 = time.perf_counter()
    naive = naive_kernel(net, x[:naive_n])
    t_naive = time.perf_counter() - t0
    note = "" if naive_n == args.items else f" on the first {naive_n} items only"
    print(f"(c) naive per-item loop:       {t_naive:8.2f} s{note}")
    diff = np.abs(fast.total()[:naive_n, :naive_n] - naive).max() / np.abs(naive).max()
    print(f"max |K_a - K_c| / max |K_c| = {diff:.1e}")
    if naive_n == args.items:
        print(f"ratio (c)/(a): {t_naive / t_fast:.1f}x faster (goal >= 5x); (a) {t_fast:.1f} s (goal <= 60 s)")
        if t_generic is not None:
            print(f"ratio (c)/(b): {t_naive / t_generic:.1f}x")
    else:
        print("ratio not printed: (c) ran on fewer items (run without --naive-items for the comparison)")


if __name__ == "__main__":
    main()
