"""Linzen (2016)'s point on a real table: how much of the offset method's analogy accuracy the baselines that
ignore the offset already reach (prints numbers only; nothing is asserted).

**1. Synthetic exact offsets** (token = class vector + relation vector + noise, 12 classes x 3 relations, dim 40):
the sanity line, 3CosAdd with the premises excluded at 100 %, the baselines far below.

**2. A PTB language model's tables** (``--checkpoint``: an ``lstm`` trained by ``lstmviz train lstm --dataset
ptb``; the numbers in docs/analysis.md came from ``--steps 1200 --set num_layers=1 --set embedding_dim=128
--set hidden_size=256 --train lr=0.003``, validation perplexity 146, about 50 minutes on 2 shared cores).
For the input embedding and the decoder's output rows, relations generated from the vocabulary's own
morphology (``plural -s``, ``past -ed``, ``gerund -ing``, ``adverb -ly``, ``comparative -er``; 2,000 questions
drawn per relation, seed 0). Printed per table: the accuracy of every method with the premises excluded
(and chance), the ratios ONLY-B / 3CosAdd and IGNORE-A / 3CosAdd over all questions, the share of the
questions 3CosAdd solves that ONLY-B solves too, and, with the premises not excluded, the share of
3CosAdd's answers that are ``b`` itself and its accuracy.

    python benchmarks/analogy_claims.py --checkpoint ptb-lstm.pt
    python benchmarks/analogy_claims.py --train ptb-lstm.pt --steps 1200     # trains the model first
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lstmviz.analysis.analogy import METHOD_TITLES, METHODS, Relation, answer, evaluate, morphology_relations
from lstmviz.analysis.analogy import questions_from_pairs
from lstmviz.analysis.embedding_tables import EmbeddingTable, checkpoint_tables


def synthetic() -> None:
    rng = np.random.default_rng(0)
    classes, relations = rng.normal(size=(12, 40)), rng.normal(size=(3, 40))
    names = [f"c{c}_r{r}" for c in range(12) for r in range(3)]
    rows = [classes[c] + relations[r] + 0.02 * rng.normal(size=40) for c in range(12) for r in range(3)]
    table = EmbeddingTable(tuple(names), np.array(rows), "synthetic exact offsets")
    rel = [Relation(f"r0 -> r{t}", tuple(questions_from_pairs([(f"c{c}_r0", f"c{c}_r{t}") for c in range(12)])))
           for t in (1, 2)]
    report = evaluate(table, rel)
    print("1. synthetic exact offsets (premises excluded): " + ", ".join(
        f"{METHOD_TITLES[m]} {100 * report.accuracy(None, m):.1f}%" for m in METHODS)
        + f"; chance {100 * report.overall_chance():.2f}%")


def solved(table, relations, method, exclude=True) -> np.ndarray:
    out = []
    for r in relations:
        q = np.array([[table.index(x) for x in question] for question in r.questions])
        rows, _ = answer(table, q, method, exclude=exclude)
        target = q[:, 2] if method.startswith("reverse") else q[:, 3]
        out.append(rows[:, 0] == target)
    return np.concatenate(out)


def real_table(table: EmbeddingTable) -> None:
    t0 = time.perf_counter()
    relations = morphology_relations(table, max_questions=2000, seed=0)
    report = evaluate(table, relations)
    print(f"\n2. {table.source}: {len(table):,} rows x {table.dim}; premises excluded; accuracy %")
    width = max(len(r) for r in report.rows())
    print(f"   {'relation':<{width}} {'pairs':>6} {'n':>6} " + " ".join(f"{METHOD_TITLES[m]:>{len(METHOD_TITLES[m])}}"
                                                                       for m in METHODS) + "   chance")
    pairs = {r.name: len(r.pairs) for r in relations}
    for r in report.rows():
        key = None if r == "all" else r
        n = sum(report.questions.values()) if key is None else report.questions[r]
        print(f"   {r:<{width}} {pairs.get(r, sum(pairs.values())):>6} {n:>6} " + " ".join(
            f"{100 * report.accuracy(key, m):>{len(METHOD_TITLES[m])}.2f}" for m in METHODS)
            + f"   {100 * (report.overall_chance() if key is None else report.chance[r]):.3f}")
    add = report.accuracy(None, "3cosadd")
    for m in ("only-b", "ignore-a"):
        ratio = report.accuracy(None, m) / add if add else float("nan")
        print(f"   {METHOD_TITLES[m]} / 3CosAdd (all questions): {ratio:.2f}")
    by_add, by_b = solved(table, relations, "3cosadd"), solved(table, relations, "only-b")
    both = (by_add & by_b).sum() / by_add.sum() if by_add.any() else float("nan")
    print(f"   of the {int(by_add.sum())} questions 3CosAdd solves, ONLY-B solves {100 * both:.1f}% too")
    q = np.array([[table.index(x) for x in question] for r in relations for question in r.questions])
    rows, _ = answer(table, q, "3cosadd", exclude=False)
    print(f"   premises NOT excluded: 3CosAdd answers b itself in {100 * np.mean(rows[:, 0] == q[:, 2]):.1f}% of the "
          f"questions, a* in {100 * np.mean(rows[:, 0] == q[:, 1]):.1f}%; its accuracy "
          f"{100 * np.mean(rows[:, 0] == q[:, 3]):.2f}% (excluded: {100 * add:.2f}%)")
    print(f"   ({time.perf_counter() - t0:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a PTB lstm checkpoint (lstmviz train lstm --dataset ptb)")
    parser.add_argument("--train", metavar="OUT", help="train one first, to OUT")
    parser.add_argument("--steps", type=int, default=1200)
    args = parser.parse_args()
    synthetic()
    checkpoint = args.checkpoint
    if args.train:
        subprocess.run([sys.executable, "-m", "lstmviz.cli", "train", "lstm", "--dataset", "ptb", "--steps",
                        str(args.steps), "--set", "num_layers=1", "--set", "embedding_dim=128", "--set",
                        "hidden_size=256", "--train", "lr=0.003", "--train", "eval_every=0", "--out", args.train],
                       check=True)
        checkpoint = args.train
    if checkpoint is None:
        print("\n(no --checkpoint: part 2 skipped)")
        return
    tables = checkpoint_tables(Path(checkpoint))
    for parameter in ("embedding.weight", "decoder.weight"):
        if parameter in tables.tables:
            real_table(tables.table(parameter))


if __name__ == "__main__":
    main()
