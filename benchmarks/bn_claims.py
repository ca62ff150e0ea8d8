"""Do the batch-norm papers' claims show in direction here? lstm vs bn-lstm vs bn-rnn, same data and budget.

Cooijmans et al. (bn-lstm): faster convergence than the LSTM (and equal or better generalisation).
Laurent et al. (bn-rnn): the training loss drops faster, but validation is no better (more overfitting).

    python benchmarks/bn_claims.py [--dataset ptb] [--steps 500] [--sentences 3000]

Trains each engine with the same settings (one layer, Adam, the language-model defaults otherwise),
logs the running training loss (mean of the last 20 steps) and the validation loss every
``eval_every`` steps, and prints one table. A small PTB subset makes overfitting visible in minutes.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from lstmviz.datasets.registry import load_dataset
from lstmviz.engines.training import train
from lstmviz.tasks import Task


def run(engine: str, train_data, valid_data, args) -> dict:
    curve: dict[int, float] = {}
    valid: dict[int, float] = {}

    def seen(done, total, message):
        loss = re.search(r"loss ([0-9.]+)", message)
        if loss and done % args.log_every == 0:
            curve[done] = float(loss.group(1))
        ppl = re.search(r"valid ppl ([0-9.]+)", message)
        if ppl and (done % args.eval_every == 0 or done == total):
            valid[done] = float(ppl.group(1))

    with tempfile.TemporaryDirectory() as tmp:
        metrics = train(engine, train_data, valid_data, out=Path(tmp) / "run.pt", steps=args.steps, seed=args.seed,
                        task=Task(seen), config={"embedding_dim": args.hidden, "hidden_size": args.hidden,
                                                 "num_layers": args.layers},
                        batch_size=args.batch_size, bptt=args.bptt, eval_every=args.eval_every, threads=args.threads)
    return {"metrics": metrics, "curve": curve, "valid": valid}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="lstm,bn-lstm,bn-rnn")
    parser.add_argument("--dataset", default="ptb")
    parser.add_argument("--sentences", type=int, default=3000, help="ptb: training sentences (valid: a third)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--bptt", type=int, default=35)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    options = {"max_sentences": args.sentences} if args.dataset == "ptb" else {}
    valid_options = {"max_sentences": max(1, args.sentences // 3)} if args.dataset == "ptb" else {}
    train_data = load_dataset(args.dataset, "train", **options)
    valid_data = load_dataset(args.dataset, "valid", **valid_options)
    results = {}
    for engine in args.engines.split(","):
        results[engine] = run(engine, train_data, valid_data, args)
        r = results[engine]
        print(f"{engine}: train loss {r['curve']}  valid ppl {r['valid']}  "
              f"best {r['metrics']['best_valid_ppl']:.1f} @ {r['metrics']['best_valid_step']}  "
              f"{r['metrics']['tokens_per_s']:.0f} tok/s", flush=True)

    steps = sorted(next(iter(results.values()))["curve"])
    print(f"\n{args.dataset}, {args.steps} steps, hidden {args.hidden}, {args.layers} layer(s), batch {args.batch_size}, "
          f"bptt {args.bptt}, seed {args.seed}")
    print("engine    | " + " | ".join(f"train@{s}" for s in steps) + " | best valid ppl (step) | final valid ppl "
          "| final train-valid gap (nats) | tok/s")
    for engine, r in results.items():
        m = r["metrics"]
        gap = m["valid_loss"] - m["train_loss"]
        print(f"{engine:9s} | " + " | ".join(f"{r['curve'].get(s, float('nan')):.3f}" for s in steps)
              + f" | {m['best_valid_ppl']:.1f} ({m['best_valid_step']}) | {m['valid_ppl']:.1f} | {gap:.3f}"
              f" | {m['tokens_per_s']:.0f}")


if __name__ == "__main__":
    main()
