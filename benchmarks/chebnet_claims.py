"""Do ChebNet's claims (Defferrard et al. 2016) show in direction here? Karate accuracy, depth and K, cost vs |E|.

    python benchmarks/chebnet_claims.py [--seeds 5] [--sizes 256,512,1024,2048,4096] [--repeats 20]

1. Karate club, semi-supervised (2 labelled nodes per faction, the ``karate`` dataset's train split;
   accuracy on its test split), one split seed per run: one-hot node ids vs spectral features
   (Laplacian eigenvectors + degree), ChebNet (2 layers, K=3, dropout 0.5) vs a graph-blind model
   (K=1: every layer is a per-node linear map).
2. Depth and K: test accuracy of the trained model, and a linear probe (logistic regression, 5-fold
   cross-validation over all 34 nodes, faction label) of the last layer's ``h``, for num_layers x K,
   trained and untrained (random weights: the receptive field alone).
3. Cost: one ChebConv forward (16 -> 16 channels, K=3; O(K |E|)) against the dense Fourier filter
   ``y_j = U sum_i diag(theta_ij) U^T x_i`` (O(n^2) per channel, after an O(n^3) eigendecomposition,
   timed apart) on rings and 2-D grids of 256 .. 4096 nodes; the median of ``--repeats`` forwards, one
   thread, and the log-log slope of time vs n (|E| grows linearly with n here).

4. Graph classification (``graph-families``: SBM with 2 vs 3 blocks at matched density; Watts-Strogatz
   vs Barabasi-Albert), test accuracy with and without Graclus pooling (``pool_levels`` 2 vs 0).

Prints tables; never passes or fails on time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import networkx as nx
import numpy as np
import torch

from lstmviz.datasets import load_dataset
from lstmviz.engines import build_engine
from lstmviz.engines.checkpoint import load_checkpoint
from lstmviz.engines.families.graph import GraphData
from lstmviz.engines.graph.ops import adjacency, laplacian_of, normalized_laplacian, to_torch_sparse
from lstmviz.engines.training import train
from lstmviz.hooks import HookScope, find_taps


def test_accuracy(model, item) -> float:
    with torch.no_grad():
        logits = model(model.prepare(item))
    mask = item.node_target >= 0
    return float((logits.argmax(1).numpy()[mask] == item.node_target[mask]).mean())


def last_h(model, item) -> np.ndarray:
    name = f"layer{model.num_layers - 1}/h"
    seen = {}
    with torch.no_grad(), HookScope() as hooks:
        hooks.read(find_taps(model)[name], lambda m, a, k, out: seen.setdefault("h", out[0].numpy().copy()))
        model(model.prepare(item))
    return seen["h"]


def probe(states: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.preprocessing import StandardScaler
    from sklearn.pipeline import make_pipeline

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    return float(cross_val_score(clf, states, labels, cv=folds).mean())


def trained(features: str, seed: int, config: dict, out: Path, steps: int):
    train_data = load_dataset("karate", "train", features=features, seed=seed)
    test_data = load_dataset("karate", "test", features=features, seed=seed)
    train("chebnet", train_data, None, out=out, config=config, seed=seed, steps=steps, eval_every=0, dropout=0.5)
    model, _ = load_checkpoint(out)
    return model, test_data[0]


def karate_accuracy(args, tmp: Path) -> None:
    print("\n1. karate, 2 labelled nodes per faction, test accuracy over split seeds (mean ± sd)")
    print(f"   {'features':9s} {'model':24s} accuracy")
    for features in ("onehot", "spectral"):
        for label, config in (("chebnet 2 layers K=3", {"num_layers": 2, "K": 3}),
                              ("graph-blind K=1", {"num_layers": 2, "K": 1})):
            accs = [test_accuracy(*trained(features, s, config, tmp / "k.pt", args.steps)) for s in range(args.seeds)]
            print(f"   {features:9s} {label:24s} {np.mean(accs):.3f} ± {np.std(accs):.3f}  "
                  f"({', '.join(f'{a:.2f}' for a in accs)})")


def depth_and_k(args, tmp: Path) -> None:
    print("\n2. depth x K (spectral features): test accuracy (trained) and a 5-fold linear probe of the last "
          "layer's h for the faction, trained / untrained")
    print(f"   {'layers':6s} {'K':>2s} {'hops':>4s}  {'test acc':>8s}  {'probe trained':>13s}  {'probe untrained':>15s}")
    for layers in (1, 2, 3):
        for K in (1, 2, 3, 4):
            accs, probes, blind = [], [], []
            for s in range(args.seeds):
                model, item = trained("spectral", s, {"num_layers": layers, "K": K}, tmp / "d.pt", args.steps)
                labels = np.asarray(item.annotations["community"])
                accs.append(test_accuracy(model, item))
                probes.append(probe(last_h(model, item), labels))
                torch.manual_seed(s)
                untrained = build_engine("chebnet", GraphData(item.features.shape[1], 2, "node"),
                                         num_layers=layers, K=K).eval()
                blind.append(probe(last_h(untrained, item), labels))
            print(f"   {layers:6d} {K:2d} {layers * (K - 1):4d}  {np.mean(accs):8.3f}  {np.mean(probes):13.3f}  "
                  f"{np.mean(blind):15.3f}")


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def cost(args) -> None:
    print("\n3. one forward, 16 -> 16 channels: ChebConv K=3 (sparse recursion) vs dense Fourier filter "
          "(U diag(theta) U^T), median of repeats, 1 thread")
    print(f"   {'graph':5s} {'n':>5s} {'|E|':>6s}  {'cheb ms':>8s}  {'fourier ms':>10s}  {'ratio':>6s}  {'eigh s':>7s}")
    sizes = [int(s) for s in args.sizes.split(",")]
    F = 16
    rng = np.random.default_rng(0)
    for kind in ("ring", "grid"):
        rows = []
        for n in sizes:
            if kind == "ring":
                g = nx.cycle_graph(n)
            else:
                side = int(round(np.sqrt(n)))
                g = nx.convert_node_labels_to_integers(nx.grid_2d_graph(side, n // side))
            m = g.number_of_nodes()
            edges = np.array(g.edges())
            Lt, _ = laplacian_of(m, edges, lmax=2.0)
            Lt_t = to_torch_sparse(Lt, torch.float32)
            conv = build_engine("chebnet", GraphData(F, 2, "node"), num_layers=1, hidden_size=F, K=3).convs[0]
            x = torch.from_numpy(rng.normal(size=(m, F)).astype(np.float32))
            t0 = time.perf_counter()
            L = normalized_laplacian(adjacency(m, edges)).toarray()
            _, U = np.linalg.eigh(L)
            eig = time.perf_counter() - t0
            U_t = torch.from_numpy(U.astype(np.float32))
            theta = torch.from_numpy(rng.normal(size=(m, F, F)).astype(np.float32))  # a multiplier per eigenvalue

            def fourier():
                xh = U_t.T @ x  # [n, F] spectral coefficients
                yh = torch.einsum("ni,nio->no", xh, theta)
                return U_t @ yh

            with torch.no_grad():
                tc = median_time(lambda: conv(Lt_t, x), args.repeats)
                tf = median_time(fourier, args.repeats)
            rows.append((m, tc, tf))
            print(f"   {kind:5s} {m:5d} {len(edges):6d}  {tc * 1e3:8.3f}  {tf * 1e3:10.3f}  {tf / tc:6.1f}  {eig:7.2f}")
        ns = np.log([r[0] for r in rows])
        slope_c = np.polyfit(ns, np.log([r[1] for r in rows]), 1)[0]
        slope_f = np.polyfit(ns, np.log([r[2] for r in rows]), 1)[0]
        print(f"   {kind}: log-log slope of time vs n: chebnet {slope_c:.2f}, fourier {slope_f:.2f} "
              f"(linear = 1, quadratic = 2)")


def graph_classification(args, tmp: Path) -> None:
    print("\n4. graph classification (graph-families, 300 steps): test accuracy, pooling vs none")
    print(f"   {'families':9s} {'pool_levels':>11s}  {'test acc':>8s}  {'train loss':>10s}  {'seconds':>7s}")
    for families in ("sbm", "ws-ba"):
        train_data = load_dataset("graph-families", "train", families=families)
        test_data = load_dataset("graph-families", "test", families=families)
        for pool in (0, 2):
            metrics = train("chebnet", train_data, None, out=tmp / "g.pt", config={"pool_levels": pool}, steps=300,
                            eval_every=0)
            model, _ = load_checkpoint(tmp / "g.pt")
            with torch.no_grad():
                hits = sum(int(model(model.prepare(it)).argmax(1).item() == it.graph_target) for it in test_data)
            print(f"   {families:9s} {pool:11d}  {hits / len(test_data):8.3f}  {metrics['train_loss']:10.3f}  "
                  f"{metrics['seconds']:7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--sizes", default="256,512,1024,2048,4096")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: karate,depth,graphs,cost")
    args = parser.parse_args()
    torch.set_num_threads(1)
    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory() as tmp:
        if "karate" not in skip:
            karate_accuracy(args, Path(tmp))
        if "depth" not in skip:
            depth_and_k(args, Path(tmp))
        if "graphs" not in skip:
            graph_classification(args, Path(tmp))
    if "cost" not in skip:
        cost(args)


if __name__ == "__main__":
    main()
