"""Does Zaremba, Kurach & Fergus's TNN claim show in direction on the ``expressions`` data?

Trains the ``treenn`` engine twice on the same data, the same steps and seed: identity initialisation
(the paper's) and random initialisation (the paper's ablation, "~1% test accuracy"), then prints on the
held-out **test** trees (never trained on; their classes are):

1. accuracy against chance (1 / classes and the majority class);
2. the mean distance within a class over the mean distance between classes (< 1: equal expressions
   map close) for three embeddings of a tree: the root vector ``phi``, ``phi`` scaled to unit length,
   and the predicted class distribution ``softmax(H phi + b)``;
3. search for a cheaper equivalent expression (§17 (d)): for every test tree with 3 operators whose
   class has a member with at most 2 operators, the candidates are all 603 trees with <= 2 operators;
   a strategy orders them and each is checked by its mod-p descriptor (as the paper's scheduler does).
   Tries until the first equivalent: random order (expected value ``(N + 1) / (m + 1)`` for ``m``
   equivalents among ``N``), and ordered by distance of the candidate's root vector to the target's
   (each model and embedding). This is a simpler strategy than the paper's rule softmax; lower is better.

    python benchmarks/treenn_claims.py [--steps 1500] [--lr 0.003] [--dim 30]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lstmviz.datasets.graphs import expressions as E
from lstmviz.engines.families.graph.objective import GraphObjective
from lstmviz.engines.graph.treenn import TreeNN


def train(init: str, data, steps: int, dim: int, lr: float, seed: int) -> tuple[TreeNN, float]:
    torch.manual_seed(seed)
    model = TreeNN(data["train"].num_features, data["train"].num_classes, "graph", dim=dim, init=init)
    objective = GraphObjective()
    objective.prepare(data["train"], None, {"batch_size": 16, "seed": seed}, torch.device("cpu"))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss, _ = objective.train_step(model)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
    return model.eval(), time.perf_counter() - t0


@torch.no_grad()
def measure(model: TreeNN, test) -> dict:
    prepared = [model.prepare(it) for it in test]
    y = np.array([it.graph_target for it in test])
    logits = torch.cat([model(p) for p in prepared])
    same = y[:, None] == y[None, :]
    off = ~np.eye(len(y), dtype=bool)
    out = {"accuracy": float((logits.argmax(1).numpy() == y).mean())}
    for name, z in embeddings(model, prepared).items():
        d = torch.cdist(z, z).numpy()
        out[name] = float(d[same & off].mean() / d[~same].mean())
    return out


EMBEDDINGS = ("phi", "unit-phi", "softmax")


def embeddings(model: TreeNN, prepared: list) -> dict[str, torch.Tensor]:
    """The root vector phi, phi scaled to unit length (unit-phi), and the class distribution softmax(H phi + b)."""
    phi = torch.stack([model.embed(p) for p in prepared])
    return {"phi": phi, "unit-phi": phi / phi.norm(dim=1, keepdim=True).clamp_min(1e-12),
            "softmax": torch.softmax(model.head(phi), dim=1)}


@torch.no_grad()
def search(models: dict[str, TreeNN], test, max_targets: int, seed: int) -> dict[str, float]:
    at = E.points()
    candidates = list(E.all_trees(2))
    keys = [E.descriptor(t, at).tobytes() for t in candidates]
    targets = []
    for item in test:
        tree = _tree_of(item)
        if E.ops_of(tree) != 3:
            continue
        key = E.descriptor(tree, at).tobytes()
        m = sum(k == key for k in keys)
        if m:
            targets.append((item, key, m))
    rng = np.random.default_rng(seed)
    rng.shuffle(targets)
    targets = targets[:max_targets]
    n = len(candidates)
    out = {"targets": len(targets), "candidates": n,
           "random (expected)": float(np.mean([(n + 1) / (m + 1) for _, _, m in targets]))}
    for name, model in models.items():
        cz = embeddings(model, [model.prepare(E.tree_item(0, t)) for t in candidates])
        tz = embeddings(model, [model.prepare(item) for item, _, _ in targets])
        for kind in EMBEDDINGS:
            tries = []
            for r, (item, key, _) in enumerate(targets):
                order = torch.cdist(tz[kind][r:r + 1], cz[kind])[0].argsort().tolist()
                tries.append(1 + next(i for i, j in enumerate(order) if keys[j] == key))
            out[f"TNN {name}, nearest {kind}"] = float(np.mean(tries))
    return out


def _tree_of(item):
    symbols = list(item.geometry.node_names)
    children = {v: [] for v in range(len(symbols))}
    for a, b in np.asarray(item.geometry.edges).reshape(-1, 2):
        children[int(a)].append(int(b))

    def make(v):
        return (symbols[v], *(make(c) for c in sorted(children[v])))

    return make(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--dim", type=int, default=30)
    ap.add_argument("--lr", type=float, default=0.003)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--targets", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(1)  # the machine is shared: one thread is faster under load
    data = {s: E.build(s) for s in ("train", "test")}
    test = data["test"]
    counts = np.bincount([it.graph_target for it in data["train"]], minlength=test.num_classes)
    majority = float(np.mean([it.graph_target == counts.argmax() for it in test]))
    print(f"expressions (defaults): {len(data['train'])} train / {len(test)} test trees, {test.num_classes} classes; "
          f"chance {1 / test.num_classes:.4f}, majority class {majority:.4f}")
    print(f"training: {args.steps} Adam steps of 16 trees, lr {args.lr}, dim {args.dim}, seed {args.seed}")
    models = {}
    for init in ("identity", "random"):
        model, seconds = train(init, data, args.steps, args.dim, args.lr, args.seed)
        models[f"{init} init"] = model
        r = measure(model, test)
        ratios = "  ".join(f"{k} {r[k]:.3f}" for k in EMBEDDINGS)
        print(f"  {init:8s} init: test accuracy {r['accuracy']:.3f}; within/between class distance ratio: "
              f"{ratios}  ({seconds:.0f} s training)")
    s = search(models, test, args.targets, args.seed)
    print(f"search for a cheaper equivalent: {s.pop('targets')} held-out 3-operator targets, "
          f"{s.pop('candidates')} candidates (<= 2 operators); mean tries to the first equivalent:")
    for name, value in s.items():
        print(f"  {name:40s} {value:7.1f}")


if __name__ == "__main__":
    main()
