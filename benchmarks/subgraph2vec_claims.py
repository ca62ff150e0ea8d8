"""subgraph2vec's claims on synthetic graph classes (prints numbers only; nothing is asserted).

**1. Deep WL kernel vs WL kernel (Narayanan et al. 2016, Table 2 in direction).** Two seeded graph
classification tasks, built inline with networkx generators (``--per-class`` graphs per class, 15-30
nodes, initial labels = degree capped at ``--degree-cap``):

- ``sbm``: stochastic block models with 2 against 3 equal blocks, expected mean degree 4 in both
  (p_out = 0.03, p_in solved for the degree);
- ``ws-er``: Watts-Strogatz (k = 4, rewiring 0.1) against Erdos-Renyi G(n, m = 2n), the same number of
  edges.

For WL depth D in ``--depths``: the vocabulary is fitted on every graph (subgraph2vec is unsupervised
and transductive, as in the paper), the radial skip-gram (``lstmviz.engines.graph.subgraph2vec``,
dim ``--dim``, 5 negatives, Adam lr 0.01, ``--batch`` graphs per step, ``--steps`` steps) is trained, then
K_WL = phi phi'^T and K_deep = phi Phi Phi^T phi'^T, both cosine-normalised
(K_ij / sqrt(K_ii K_jj)); as a variant, K_deep with Phi's rows scaled to unit length (M = cosine
similarities). ``SVC(kernel="precomputed")`` with C chosen by 3-fold CV on the training graphs
from {0.01, 0.1, 1, 10, 100}; ``--splits`` random stratified splits per training-set size
(``--train-sizes`` graphs per class; the rest is the test set). Reported: mean test accuracy, its
standard deviation over splits, the mean difference to WL and the number of splits where deep > WL, =, <.

**2. Nearest neighbours in embedding space are structurally close.** For every fitted rooted
subgraph of depth d >= 1 (met at least ``--min-count`` times), its nearest other subgraph of the same
depth by cosine of Phi, against the WL distance: the key of a depth-d subgraph is (its root's label at
d-1, the multiset of its neighbours' labels at d-1), and the distance between two keys is
[roots differ] + |symmetric multiset difference of the neighbour labels| (at depth 1: 1 = one leaf
more or less, 2 = one leaf of another degree; the closest other subgraph is usually at 2). Reported: the mean distance to the embedding neighbour, to a random subgraph of
the same depth, and to the closest one by this distance (the floor), and the share of embedding
neighbours at distance <= 2.

    python benchmarks/subgraph2vec_claims.py                 # both tasks, D = 2 and 3 (about a minute)
    python benchmarks/subgraph2vec_claims.py --tasks sbm --depths 3 --splits 50
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import networkx as nx
import numpy as np
import torch

from lstmviz.datasets.graph_base import GraphItem
from lstmviz.engines.graph.subgraph2vec import Subgraph2Vec, deep_wl_kernel, graph_counts
from lstmviz.engines.graph.wl import WLVocabulary, initial_labels, neighbours, wl_kernel
from lstmviz.geometry import GraphGeometry


def sbm_graph(blocks: int, rng: np.random.Generator, mean_degree: float = 4.0, p_out: float = 0.03) -> nx.Graph:
    n = int(rng.integers(15, 31))
    sizes = [n // blocks + (1 if i < n % blocks else 0) for i in range(blocks)]
    inside = np.mean([s - 1 for s in sizes])
    p_in = float(np.clip((mean_degree - p_out * (n - inside - 1)) / inside, 0.0, 1.0))
    probs = [[p_in if i == j else p_out for j in range(blocks)] for i in range(blocks)]
    return nx.stochastic_block_model(sizes, probs, seed=int(rng.integers(1 << 31)))


def ws_er_graph(kind: int, rng: np.random.Generator) -> nx.Graph:
    n = int(rng.integers(15, 31))
    if kind == 0:
        return nx.watts_strogatz_graph(n, 4, 0.1, seed=int(rng.integers(1 << 31)))
    return nx.gnm_random_graph(n, 2 * n, seed=int(rng.integers(1 << 31)))


def make_task(task: str, per_class: int, seed: int) -> tuple[list[GraphItem], np.ndarray]:
    rng = np.random.default_rng(seed)
    items, labels = [], []
    for cls in range(2):
        for _ in range(per_class):
            graph = sbm_graph(2 + cls, rng) if task == "sbm" else ws_er_graph(cls, rng)
            graph = nx.convert_node_labels_to_integers(graph)
            n = graph.number_of_nodes()
            edges = np.array(list(graph.edges), dtype=np.int64).reshape(-1, 2)
            items.append(GraphItem(geometry=GraphGeometry.from_edges(n, edges),
                                   features=np.ones((n, 1), dtype=np.float32), tokens=np.zeros(n, dtype=np.int64),
                                   graph_target=cls))
            labels.append(cls)
    return items, np.asarray(labels)


def train_embeddings(items, depth: int, dim: int, steps: int, degree_cap: int, seed: int, batch_size: int):
    vocabulary = WLVocabulary()  # sized first, so that Phi and Psi have no idle rows for Adam to update
    for item in items:
        vocabulary.relabel(item.geometry, initial_labels(item.geometry, degree_cap=degree_cap), depth, grow=True)
    torch.manual_seed(seed)
    model = Subgraph2Vec(num_features=1, num_classes=2, task="graph", depth=depth, dim=dim,
                         max_subgraphs=len(vocabulary), degree_cap=degree_cap, negatives=5, readout_weight=0.0)
    model.train()
    prepared = [model.prepare(item) for item in items]
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    started = time.perf_counter()
    losses = []
    order = np.random.default_rng(seed).permutation(len(items))
    for step in range(steps):
        batch = np.take(order, range(step * batch_size, (step + 1) * batch_size), mode="wrap")
        loss, _ = model.loss([prepared[i] for i in batch], [items[i] for i in batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    model.eval()
    pairs = sum(len(p.tensors["pair_targets"]) for p in prepared)
    return model, prepared, pairs, losses, time.perf_counter() - started


def normalise(kernel: np.ndarray) -> np.ndarray:
    d = np.sqrt(np.clip(np.diag(kernel), 1e-12, None))
    return kernel / np.outer(d, d)


def svm_accuracy(kernel: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int) -> float:
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.svm import SVC

    search = GridSearchCV(SVC(kernel="precomputed"), {"C": [0.01, 0.1, 1, 10, 100]},
                          cv=StratifiedKFold(3, shuffle=True, random_state=seed))
    search.fit(kernel[np.ix_(train, train)], labels[train])
    return float((search.predict(kernel[np.ix_(test, train)]) == labels[test]).mean())


def kernel_comparison(kernels: dict, labels: np.ndarray, train_sizes, splits: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    classes = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    for size in train_sizes:
        scores = {name: [] for name in kernels}
        for split in range(splits):
            train = np.concatenate([rng.choice(c, size=size, replace=False) for c in classes])
            test = np.setdiff1d(np.arange(len(labels)), train)
            for name, kernel in kernels.items():
                scores[name].append(svm_accuracy(kernel, labels, train, test, seed + split))
        wl = np.array(scores["WL"])
        line = f"    train {size:3d}/class: WL {wl.mean():.3f} +- {wl.std():.3f}"
        for name in kernels:
            if name != "WL":
                deep = np.array(scores[name])
                line += (f" | {name} {deep.mean():.3f} +- {deep.std():.3f}, {np.mean(deep - wl):+.3f}, splits "
                         f">{int((deep > wl).sum())} ={int((deep == wl).sum())} <{int((deep < wl).sum())}")
        print(line)


def subgraph_keys(model: Subgraph2Vec, items) -> dict[int, tuple[int, Counter]]:
    """id -> (root's id at d-1, multiset of the neighbours' ids at d-1) for every fitted id of depth >= 1."""
    keys: dict[int, tuple[int, Counter]] = {}
    for item in items:
        ids = model.wl_ids(item)
        indptr, indices = neighbours(item.geometry)
        for d in range(1, ids.shape[0]):
            for node in range(item.geometry.num_nodes):
                sid = int(ids[d, node])
                if sid and sid not in keys:
                    keys[sid] = (int(ids[d - 1, node]), Counter(ids[d - 1, indices[indptr[node]:indptr[node + 1]]].tolist()))
    return keys


def key_distance(a: tuple[int, Counter], b: tuple[int, Counter]) -> int:
    return int(a[0] != b[0]) + sum(((a[1] - b[1]) + (b[1] - a[1])).values())


def neighbour_report(model: Subgraph2Vec, items, counts: np.ndarray, min_count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    keys = subgraph_keys(model, items)
    phi = model.subgraph_embeddings()
    depth_of = model.vocabulary.depth
    count = counts.sum(0)  # occurrences in the corpus (the vocabulary's counts grow with every training step)
    unit = phi / np.clip(np.linalg.norm(phi, axis=1, keepdims=True), 1e-12, None)
    for d in range(1, model.depth + 1):
        pool = np.array([i for i in keys if depth_of[i] == d and count[i] >= min_count])
        if len(pool) < 3:
            continue
        cos = unit[pool] @ unit[pool].T
        np.fill_diagonal(cos, -np.inf)
        dist = np.array([[key_distance(keys[a], keys[b]) for b in pool] for a in pool], dtype=float)
        np.fill_diagonal(dist, np.inf)
        rows = np.arange(len(pool))
        nearest = dist[rows, cos.argmax(1)]
        others = np.array([rng.choice(np.delete(rows, r)) for r in rows])
        random = dist[rows, others]
        floor = dist.min(1)
        print(f"    depth {d}: {len(pool)} subgraphs met >= {min_count} times; WL distance to the embedding "
              f"neighbour {nearest.mean():.2f} (<= 2: {np.mean(nearest <= 2):.0%}), to a random one "
              f"{random.mean():.2f}, to the closest one {floor.mean():.2f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["sbm", "ws-er"], choices=["sbm", "ws-er"])
    parser.add_argument("--depths", nargs="+", type=int, default=[2, 3])
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--train-sizes", nargs="+", type=int, default=[5, 10, 40])
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16, help="graphs per skip-gram step")
    parser.add_argument("--degree-cap", type=int, default=8)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    for task in args.tasks:
        items, labels = make_task(task, args.per_class, args.seed)
        nodes = np.array([item.geometry.num_nodes for item in items])
        edges = np.array([len(item.geometry.edges) for item in items])
        print(f"\n== {task}: {len(items)} graphs, {nodes.min()}-{nodes.max()} nodes, mean degree per class "
              + ", ".join(f"{np.mean(2 * edges[labels == c] / nodes[labels == c]):.2f}" for c in (0, 1)))
        for depth in args.depths:
            model, prepared, pairs, losses, seconds = train_embeddings(items, depth, args.dim, args.steps,
                                                                       args.degree_cap, args.seed, args.batch)
            counts = graph_counts(model, items)
            singletons = int(((counts > 0).sum(0) == 1).sum())
            print(f"  D={depth}: vocabulary {len(model.vocabulary) - 1} subgraphs ({singletons} in one graph only), "
                  f"{pairs} pairs; skip-gram loss {losses[0]:.3f} -> {np.mean(losses[-20:]):.3f} (last 20) in "
                  f"{args.steps} steps, "
                  f"{seconds:.1f} s")
            phi = model.subgraph_embeddings()
            unit = phi / np.clip(np.linalg.norm(phi, axis=1, keepdims=True), 1e-12, None)
            kernels = {"WL": normalise(wl_kernel(counts)),
                       "deep WL": normalise(deep_wl_kernel(counts, phi)),
                       "deep WL (cosine M)": normalise(deep_wl_kernel(counts, unit))}
            kernel_comparison(kernels, labels, args.train_sizes, args.splits, args.seed)
            neighbour_report(model, items, counts, args.min_count, args.seed)


if __name__ == "__main__":
    main()
