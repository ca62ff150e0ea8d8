"""Do Bruna et al.'s claims show in direction here? spectral-gcn on scikit-learn's digits as graph signals.

Bruna, Zaremba, Szlam, LeCun (2014, arXiv:1312.6203), on MNIST subsampled to a point cloud (a graph,
no grid assumed): (1) the locally connected and the spectral constructions reach about the accuracy of
a fully connected net with far fewer parameters; (2) smooth spectral multipliers (splines) give filters
localised in space, free multipliers filters spread over the whole graph.

    python benchmarks/spectral_claims.py [--seconds 60] [--epochs 60] [--hidden 16] [--seed 0]
                                         [--arms mlp,local,full,spline]

Data: the 1,797 8x8 digits (pixels / 16), one graph for all of them: 8-NN on the pixel coordinates,
Gaussian weights exp(-d^2 / sigma^2) (sigma: the mean 8-NN distance), symmetrised; a fixed 75/25 split.
Models, each trained with Adam (lr 0.01, batch 64) for at most --epochs epochs or --seconds seconds:
an MLP 64-64-10; spectral-gcn ``local``, ``spectral-full`` (d = 64) and ``spectral-spline`` (q = 6),
each two layers of --hidden channels with Ward cluster pooling 64 -> 16 -> 4 and a linear readout of
the 4 x hidden pooled states (the paper's fully connected top). Printed: test accuracy and parameter
count per model, then the first layer's filters' spatial spread: for each filter j, the share of the
impulse response U diag(theta_j) U^T delta_v's energy within 1 and 2 hops of a centre pixel v.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from lstmviz.datasets.graph_base import GraphItem
from lstmviz.engines.graph.spectral_gcn import SpectralGCN
from lstmviz.geometry import GraphGeometry


def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.data / 16.0).astype(np.float32), data.target.astype(np.int64)


def pixel_graph(k: int = 8) -> GraphGeometry:
    """8-NN on the 8x8 pixel coordinates with Gaussian weights (row-major pixel order, as in the images)."""
    from scipy.spatial import cKDTree

    coords = np.array([(r, c) for r in range(8) for c in range(8)], dtype=np.float64)
    dist, nbr = cKDTree(coords).query(coords, k=k + 1)
    sigma = dist[:, 1:].mean()
    rows = np.repeat(np.arange(64), k)
    cols, d = nbr[:, 1:].reshape(-1), dist[:, 1:].reshape(-1)
    w = np.zeros((64, 64))
    w[rows, cols] = np.exp(-(d ** 2) / sigma ** 2)
    w = np.maximum(w, w.T)
    a, b = np.nonzero(np.triu(w, 1))
    return GraphGeometry.from_edges(64, np.stack([a, b], 1), weights=w[a, b], coordinates=coords[:, ::-1])


class MLP(torch.nn.Module):
    def __init__(self, hidden: int = 64):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10))

    def forward_batch(self, prepared, x):
        return self.net(x[..., 0])


def train(model, prepared, x_train, y_train, args) -> tuple[int, float]:
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    rng = np.random.default_rng(args.seed)
    start, epochs = time.perf_counter(), 0
    while epochs < args.epochs and time.perf_counter() - start < args.seconds:
        order = rng.permutation(len(x_train))
        for i in range(0, len(order), 64):
            batch = order[i:i + 64]
            loss = F.cross_entropy(model.forward_batch(prepared, x_train[batch]), y_train[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        epochs += 1
    return epochs, time.perf_counter() - start


def filter_spread(model: SpectralGCN, prepared, centre_position: int, hops: np.ndarray) -> tuple[float, float]:
    """Median over the first layer's filters of the energy share within 1 and 2 hops of the centre."""
    conv = model.layers[0]
    u = prepared.tensors["eigenvectors0"]
    delta = torch.zeros(u.shape[0], 1, dtype=u.dtype)
    delta[centre_position] = 1.0
    with torch.no_grad():
        saved_bias = conv.bias.data.clone()
        conv.bias.data.zero_()
        response = conv.double()(delta, u, prepared.tensors.get("basis0")).numpy()  # [n, filters]
        conv.float()
        conv.bias.data.copy_(saved_bias)
    energy = response ** 2
    share = [float(np.median(energy[hops <= r].sum(0) / energy.sum(0))) for r in (1, 2)]
    return share[0], share[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="training time limit per model")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--arms", default="mlp,local,full,spline", help="which models (comma-separated)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    x, y = digits()
    geometry = pixel_graph()
    split = np.random.default_rng(0).permutation(len(x))
    cut = int(0.75 * len(x))
    train_idx, test_idx = split[:cut], split[cut:]
    xt = torch.as_tensor(x[:, :, None])
    yt = torch.as_tensor(y)
    item = GraphItem(geometry, np.zeros((64, 1), np.float32), np.zeros(64, np.int64), graph_target=0)
    print(f"digits: {len(train_idx)} train / {len(test_idx)} test images; pixel graph: 64 nodes, "
          f"{len(geometry.edges)} edges (8-NN, Gaussian weights)")

    arms = {
        "mlp 64-64-10": None,
        "local (S=9)": dict(variant="local", max_neighbours=9),
        "spectral-full (d=64)": dict(variant="spectral-full"),
        "spectral-spline (q=6)": dict(variant="spectral-spline", spline_knots=6),
    }
    chosen = set(args.arms.split(","))
    arms = {name: config for name, config in arms.items()
            if ("mlp" if config is None else config["variant"].replace("spectral-", "")) in chosen}
    results, trained = [], {}
    for name, config in arms.items():
        torch.manual_seed(args.seed)
        if config is None:
            model, prepared = MLP(), None
        else:
            model = SpectralGCN(1, 10, "graph", hidden_size=args.hidden, num_layers=2, levels=2, pool_ratio=4,
                                num_nodes=64, readout="flatten", **config)
            prepared = model.prepare(item)
        epochs, seconds = train(model, prepared, xt[train_idx], yt[train_idx], args)
        with torch.no_grad():
            accuracy = float((model.forward_batch(prepared, xt[test_idx]).argmax(-1) == yt[test_idx]).float().mean())
        params = sum(p.numel() for p in model.parameters())
        results.append((name, accuracy, params, epochs, seconds))
        trained[name] = (model, prepared)
        print(f"  trained {name}: {epochs} epochs in {seconds:.0f} s", flush=True)

    print("\nPaper's claim 1: graph constructions match a fully connected net with far fewer parameters.")
    print(f"{'model':<24}{'test acc':>10}{'params':>10}{'epochs':>8}{'seconds':>9}")
    for name, accuracy, params, epochs, seconds in results:
        print(f"{name:<24}{accuracy:>10.3f}{params:>10d}{epochs:>8d}{seconds:>9.0f}")

    print("\nPaper's claim 2: smooth (spline) multipliers give spatially localised filters, free ones do not.")
    print("first-layer filters, impulse at the centre pixel: median share of the response energy within r hops")
    hops = None
    for name in ("spectral-full (d=64)", "spectral-spline (q=6)"):
        if name not in trained:
            continue
        model, prepared = trained[name]
        source = prepared.levels[0].source_node
        centre_pixel = 3 * 8 + 3
        centre = int(np.flatnonzero(source == centre_pixel)[0])
        hops = prepared.levels[0].geometry.hops_from(centre)
        trained_share = filter_spread(model, prepared, centre, hops)
        torch.manual_seed(args.seed)
        fresh = SpectralGCN(1, 10, "graph", hidden_size=args.hidden, num_layers=2, levels=2, num_nodes=64,
                            readout="flatten", **arms[name])
        init_share = filter_spread(fresh, prepared, centre, hops)
        print(f"  {name:<24} trained: r<=1 {trained_share[0]:.2f}, r<=2 {trained_share[1]:.2f}   "
              f"(at initialisation: r<=1 {init_share[0]:.2f}, r<=2 {init_share[1]:.2f})")
    if hops is None:
        return
    n_within = [int((hops <= r).sum()) for r in (1, 2)]
    print(f"  (r<=1 holds {n_within[0]} of 64 pixels, r<=2 {n_within[1]}: a spread-out filter's share is about "
          f"{n_within[0] / 64:.2f} and {n_within[1] / 64:.2f})")


if __name__ == "__main__":
    main()
