"""The claims of DoReFa-Net and QNN/BNN in direction, on scikit-learn's 8x8 digits (dorefa-cnn, bnn-cnn, qnn-cnn).

Trains each configuration with its own short loop (Adam, cross-entropy, batch 64; the latent weights of
bnn/qnn clipped to [-1, 1] after every step) on a fixed split of the 1,797 digits (1,297 train, 500
test), over a few seeds, and prints test accuracy (mean and per seed):

- DoReFa: W/A/G bit settings from full precision down to W1A2G4, with and without the gradient noise;
- QNN/BNN: the float twin (32 bits, same architecture), 4, 2 and 1 bit (bnn-cnn), and the gap;
- bnn-cnn ablations: without BatchNorm, without latent-weight clipping (identity STE for the weights),
  without the hard-tanh STE mask on the activations (patched in for the run, restored after);
- the XNOR-popcount path (numpy uint64 bitwise_count) against a float matmul of the same ±1 matrices
  and the whole bnn-cnn forward against forward_xnor, as ratios measured in the same run.

Measured numbers only; nothing is asserted. The tables in docs/engines.md come from

    python benchmarks/quantized_claims.py                 # 3 seeds, 40 epochs
    python benchmarks/quantized_claims.py --quick         # 1 seed, 10 epochs
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time


def digits_split(seed: int = 0):
    import numpy as np
    import torch
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy((d.data / 16.0).astype(np.float32)).reshape(-1, 1, 8, 8)
    y = torch.from_numpy(d.target.astype(np.int64))
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(y)))
    test, train = order[:500], order[500:]
    return x[train], y[train], x[test], y[test]


def _no_batch_norm(model):
    from torch import nn

    model.norms = nn.ModuleList(nn.Identity() for _ in model.norms)
    model.head_norm = nn.Identity()
    return model


@contextlib.contextmanager
def ablation(kind: str | None):
    """Patch bnn_cnn for one ablation of the paper's recipe (restored on exit).

    - ``no-clip``: latent weights never clipped, their STE the plain identity (they may grow without bound);
    - ``no-ste-mask``: the activations' STE the plain identity instead of the hard-tanh 1[|x| <= 1].
    """
    from lstmviz.engines.quantizers import quantize_signed, ste
    from lstmviz.engines.vision import bnn_cnn

    saved = (bnn_cnn.QNNConv2d.quantized_weight, bnn_cnn.QNNLinear.quantized_weight, bnn_cnn.qnn_quantize,
             bnn_cnn.QuantizedCNN.clip_latent_)
    try:
        if kind == "no-clip":
            def unclipped(self):
                return ste(self.weight, quantize_signed(self.weight.detach(), self.bits, 1.0))
            bnn_cnn.QNNConv2d.quantized_weight = bnn_cnn.QNNLinear.quantized_weight = unclipped
            bnn_cnn.QuantizedCNN.clip_latent_ = lambda self: None
        elif kind == "no-ste-mask":
            bnn_cnn.qnn_quantize = lambda x, bits: ste(x, quantize_signed(x.detach(), bits, 1.0))
        yield
    finally:
        (bnn_cnn.QNNConv2d.quantized_weight, bnn_cnn.QNNLinear.quantized_weight, bnn_cnn.qnn_quantize,
         bnn_cnn.QuantizedCNN.clip_latent_) = saved


def train_and_test(name: str, config: dict, data, *, epochs: int, seed: int, lr: float = 0.005,
                   ablate: str | None = None) -> float:
    import torch
    import torch.nn.functional as F

    from lstmviz.engines import registry
    from lstmviz.engines.families.image import ImageData

    xtr, ytr, xte, yte = data
    torch.manual_seed(seed)
    spec = registry.get(name)
    model = spec.build_model(ImageData(1, 8, 8, 10), **{**spec.default_config, **config})
    if ablate == "no-bn":
        model = _no_batch_norm(model)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(ytr), generator=gen)
        for i in range(0, len(perm), 64):
            idx = perm[i:i + 64]
            if len(idx) < 2:
                continue
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if hasattr(model, "clip_latent_"):
                model.clip_latent_()
        sched.step()
    model.eval()
    with torch.no_grad():
        return float((model(xte).argmax(1) == yte).float().mean())


def run_table(rows, data, *, epochs: int, seeds) -> list[tuple[str, float, list[float], float]]:
    out = []
    for label, name, config, *rest in rows:
        ablate = rest[0] if rest else None
        start = time.perf_counter()
        with ablation(ablate):
            accs = [train_and_test(name, config, data, epochs=epochs, seed=s, ablate=ablate) for s in seeds]
        seconds = (time.perf_counter() - start) / len(seeds)
        mean = statistics.mean(accs)
        out.append((label, mean, accs, seconds))
        print(f"  {label:<34s} {100 * mean:6.2f}%   per seed: {' '.join(f'{100 * a:.1f}' for a in accs)}"
              f"   ({seconds:.1f} s/run)", flush=True)
    return out


def best_of(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def xnor_timing(data) -> None:
    import numpy as np
    import torch

    from lstmviz.engines import registry
    from lstmviz.engines.families.image import ImageData
    from lstmviz.engines.vision.quantize import pack_signs, xnor_dot

    rng = np.random.default_rng(0)
    print("\nXNOR-popcount (numpy uint64 bitwise_count) vs float matmul of the same ±1 matrices, best of 5:")
    for m, n, o in [(1024, 288, 64), (4096, 576, 64), (8192, 576, 128)]:
        a = rng.choice([-1.0, 1.0], size=(m, n)).astype(np.float32)
        w = rng.choice([-1.0, 1.0], size=(o, n)).astype(np.float32)
        pa, pw = pack_signs(a), pack_signs(w)
        ta, tw = torch.from_numpy(a), torch.from_numpy(w)
        assert np.array_equal(xnor_dot(pa, pw, n), (a @ w.T).astype(np.int64))
        t_float = best_of(lambda: ta @ tw.T)
        t_xnor = best_of(lambda: xnor_dot(pa, pw, n))
        t_pack = best_of(lambda: pack_signs(a))
        print(f"  [{m} x {n}] @ [{n} x {o}]: float (torch) {1e3 * t_float:7.2f} ms   xnor {1e3 * t_xnor:7.2f} ms "
              f"(+ packing the activations {1e3 * t_pack:6.2f} ms)   xnor / float = {t_xnor / t_float:5.1f}x")
    torch.manual_seed(0)
    spec = registry.get("bnn-cnn")
    model = spec.build_model(ImageData(1, 8, 8, 10), **spec.default_config).eval()
    xte = data[2]
    with torch.no_grad():
        same = torch.equal(model(xte), model.forward_xnor(xte))
        t_float = best_of(lambda: model(xte), 3)
    t_xnor = best_of(lambda: model.forward_xnor(xte), 3)
    print(f"  bnn-cnn forward over the 500 test digits: float {1e3 * t_float:.1f} ms, forward_xnor "
          f"{1e3 * t_xnor:.1f} ms, ratio {t_xnor / t_float:.1f}x; logits identical: {same}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1 seed, 10 epochs")
    ap.add_argument("--only", choices=("dorefa", "qnn", "ablation", "xnor"), default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.epochs, args.seeds = 10, 1

    import importlib

    importlib.import_module("lstmviz")  # before torch: it sets the OpenMP wait policy that shared cores need
    import torch

    torch.set_num_threads(2)
    data = digits_split()
    seeds = list(range(args.seeds))
    print(f"digits: {len(data[1])} train, {len(data[3])} test; {args.epochs} epochs, seeds {seeds}")

    if args.only in (None, "dorefa"):
        print("\ndorefa-cnn (conv 16-32-32, first and last layers full precision), test accuracy:")
        rows = [(f"W{w}A{a}G{g}" + ("" if noise else " (no gradient noise)"), "dorefa-cnn",
                 {"w_bits": w, "a_bits": a, "g_bits": g, "g_noise": noise})
                for w, a, g, noise in [(32, 32, 32, True), (8, 8, 8, True), (4, 4, 32, True), (2, 2, 32, True),
                                       (1, 32, 32, True), (1, 4, 32, True), (1, 2, 32, True), (1, 1, 32, True),
                                       (1, 2, 8, True),
                                       (1, 2, 6, True), (1, 2, 4, True), (1, 2, 4, False), (1, 2, 2, True),
                                       (1, 2, 2, False)]]
        run_table(rows, data, epochs=args.epochs, seeds=seeds)

    if args.only in (None, "qnn"):
        print("\nbnn-cnn / qnn-cnn (conv 32-64-64, BatchNorm, every layer quantised but the input), test accuracy:")
        rows = [("qnn-cnn bits=32 (float twin)", "qnn-cnn", {"bits": 32}),
                ("qnn-cnn bits=4", "qnn-cnn", {"bits": 4}),
                ("qnn-cnn bits=2", "qnn-cnn", {"bits": 2}),
                ("bnn-cnn (bits=1)", "bnn-cnn", {})]
        table = run_table(rows, data, epochs=args.epochs, seeds=seeds)
        gap = table[0][1] - table[-1][1]
        print(f"  gap float twin - bnn: {100 * gap:.2f} points")

    if args.only in (None, "ablation"):
        print("\nbnn-cnn ablations of the recipe (same loop), test accuracy:")
        rows = [("bnn-cnn", "bnn-cnn", {}),
                ("bnn-cnn without BatchNorm", "bnn-cnn", {}, "no-bn"),
                ("bnn-cnn without latent clipping", "bnn-cnn", {}, "no-clip"),
                ("bnn-cnn without the STE mask", "bnn-cnn", {}, "no-ste-mask")]
        run_table(rows, data, epochs=args.epochs, seeds=seeds)

    if args.only in (None, "xnor"):
        xnor_timing(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
