"""label-embed (Chollet 2016) against the plain sigmoid classifier, on multi-label digit composites.

The paper's claim (JFT, 300M images, 17k labels): regressing onto PMI-SVD label embeddings with a cosine
loss converges faster and reaches a higher mAP than sigmoid cross-entropy. Here, in direction only:

- ``cnn``: the plain CNN (conv3x3 blocks 16, 32, 64, 64 channels, global average pool, linear head to 10
  logits), per-label binary cross-entropy (the image family's multilabel objective);
- ``label-embed``: the same trunk, a linear head to ``d`` = 8 (and 10) dims, cosine loss onto the
  normalised sum of the image's label embeddings (table from the training split's labels);
- ``cosine, E = I``: the ablation that separates the loss from the embeddings: the same cosine
  regression onto the normalised 0/1 label vector (one-hot label table, d = 10, no PMI, no SVD);
- with ``--ppmi`` also label-embed on the positive PMI (d = 10).

Both see the same batches (the family's objective with the same seed), Adam 3e-3, batch 64, the same
number of steps. Data: ``digits-themes`` (labels co-occur by theme: the case the paper targets) and
``digits-multi`` (digits drawn independently: the control, where the advantage should vanish). Measured on
the test split (360 composites): macro mAP over the 10 labels (threshold-free; scores = logits or
cosines), the lowest per-label AP, and exact-set accuracy under the top-|S| rule (the true number of
labels given, for both models). Each number is the mean over seeds; the ratio column is label-embed / cnn
at the same step.

    python benchmarks/label_embed_claims.py [--steps 600] [--seeds 2] [--ppmi]   (docs/engines.md: --seeds 3 --ppmi)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.metrics import average_precision_score

from lstmviz.datasets import load_dataset
from lstmviz.engines.families.image.objective import ImageObjective, stack_split
from lstmviz.engines.families.image import describe_dataset
from lstmviz.engines.vision import cnn, label_embed


def build(kind: str, d: int, seed: int):
    torch.manual_seed(seed)
    if kind == "identity":  # the ablation: cosine regression onto one-hot label vectors (E = I, no PMI)
        return label_embed.build(1, 16, 16, 10, "multilabel", hidden_size=16, num_layers=4, embed_size=10)
    if kind == "cnn":
        return cnn.build(1, 16, 16, 10, "multilabel", hidden_size=16, num_layers=4)
    if kind == "ppmi":
        return label_embed.build(1, 16, 16, 10, "multilabel", hidden_size=16, num_layers=4, embed_size=d,
                                 positive_pmi=True)
    return label_embed.build(1, 16, 16, 10, "multilabel", hidden_size=16, num_layers=4, embed_size=d)


@torch.no_grad()
def measure(model, x, y):
    model.eval()
    scores = model(x)
    model.train()
    ap = np.array([average_precision_score(y[:, k], scores[:, k].numpy()) for k in range(y.shape[1])])
    counts = torch.from_numpy(y.sum(1))
    sets = label_embed.top_count_sets(scores, counts).numpy()
    return ap.mean(), ap.min(), float((sets == y).all(1).mean())


def run(train, test, kind, d, seed, steps, checkpoints):
    model = build(kind, d, seed)
    if kind == "identity":
        with torch.no_grad():
            model.label_table.copy_(torch.eye(10))
            model.fitted.fill_(True)
    elif kind != "cnn":
        model.prepare_training(train)
    objective = ImageObjective()
    objective.prepare(train, None, {"batch_size": 64, "seed": seed}, torch.device("cpu"))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, _, y = stack_split(test, describe_dataset(test), "test")
    x = torch.from_numpy(x)
    out = {}
    model.train()
    for step in range(1, steps + 1):
        loss, _ = objective.train_step(model)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step in checkpoints:
            out[step] = measure(model, x, y)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--ppmi", action="store_true", help="add label-embed with positive PMI (d = 10)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    checkpoints = sorted({s for s in (25, 50, 100, 200, 400, args.steps) if s <= args.steps})
    started = time.perf_counter()
    for name in ("digits-themes", "digits-multi"):
        train, test = load_dataset(name, "train"), load_dataset(name, "test")
        y = train.multi
        counts, n = label_embed.cooccurrence(y)
        pmi = label_embed.pmi_matrix(counts, n)
        off = pmi[~np.eye(10, dtype=bool)]
        eig = np.linalg.eigvalsh(pmi)
        print(f"\n== {name}: {n} train / {len(test)} test images, {y.sum(1).mean():.2f} labels per image; "
              f"off-diagonal PMI (add-1) mean {off.mean():+.2f}, sd {off.std():.2f}, range "
              f"[{off.min():+.2f}, {off.max():+.2f}]; eigenvalues {np.round(eig[::-1], 2).tolist()}")
        results = {}
        kinds = [("cnn", 0), ("label-embed", 8), ("label-embed", 10), ("identity", 10)]
        for kind, d in kinds + ([("ppmi", 10)] if args.ppmi else []):
            runs = [run(train, test, kind, d, seed, args.steps, checkpoints) for seed in range(args.seeds)]
            results[(kind, d)] = {s: np.mean([r[s] for r in runs], axis=0) for s in checkpoints}
        base = results[("cnn", 0)]
        print(f"{'model':<16}{'step':>6}{'mAP':>8}{'min AP':>8}{'exact@|S|':>11}{'mAP ratio':>11}{'exact ratio':>13}")
        for (kind, d), table in results.items():
            label = {"cnn": "cnn", "identity": "cosine, E = I", "ppmi": "PPMI d=10"}.get(kind, f"{kind} d={d}")
            for s in checkpoints:
                m, lo, ex = table[s]
                print(f"{label:<16}{s:>6}{m:>8.3f}{lo:>8.3f}{ex:>11.3f}{m / base[s][0]:>11.3f}"
                      f"{(ex / base[s][2]) if base[s][2] else float('nan'):>13.3f}")
    print(f"\n{args.seeds} seeds, {time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
