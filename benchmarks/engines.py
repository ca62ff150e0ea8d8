"""Every registered engine of the language-model family, trained with one budget on each dataset, side by side.

For each engine (whatever the registry holds when this runs: ``lstmviz train --list``) and each dataset
(default ``parens`` and ``ptb``), this trains with lstmviz's own loop (:func:`lstmviz.engines.training.train`,
what ``lstmviz train`` calls) under the same budget for all: the same steps, batch size, BPTT length,
seed, thread count, hidden and embedding size (for engines that take them) and the same validation
tokens. Every other hyperparameter and training setting (lr, optimizer, dropout, clip, num_layers,
the engine's own keys) is the engine's default, so each engine runs as its spec says it should.

One table, one row per engine and dataset:

  engine, paper, dataset, params   what was trained (parameters of the built model)
  valid ppl                        perplexity on the first --valid-tokens tokens of the valid split,
                                   after the last step (train loss first -> last in --json)
  train tok/s                      training tokens per second of training (validation excluded)
  rec cost                         recording cost: a forward of the trained model (eval, no_grad) on one
                                   batch of valid tokens with every tap recorded (lstmviz.recording's
                                   Recorder, signals=None, values collected) over the same forward
                                   without recording; best of --repeats alternating runs each (goal <= 2x);
                                   by wall time, and by this process's CPU time in --json (steadier when
                                   other processes share the cores)

Measured numbers only; nothing is asserted. A failing engine gets a row with its error and the others
go on. With --json FILE the rows (and the budget) are also written as JSON.

    python benchmarks/engines.py                                   # all engines, parens + ptb, 200 steps
    python benchmarks/engines.py --engines lstm,gru --steps 50     # a quick look
    python benchmarks/engines.py --datasets parens --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import traceback
from pathlib import Path

from lstmviz.datasets import load_dataset
from lstmviz.engines import registry
from lstmviz.engines.checkpoint import load_checkpoint
from lstmviz.engines.training import train
from lstmviz.recording.recorder_context import Recorder

import torch

FAMILY = "language-model"


def language_model_engines() -> list[str]:
    return [name for name, spec in registry.all().items() if spec.family == FAMILY]


def budget_from(args: argparse.Namespace) -> dict:
    return {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "bptt": args.bptt,
        "seed": args.seed,
        "threads": args.threads,
        "hidden_size": args.hidden,
        "embedding_dim": args.embedding,
        "valid_tokens": args.valid_tokens,
        "record_batch": [args.batch_size, args.bptt],
        "repeats": args.repeats,
    }


def _config_for(spec, budget: dict) -> dict:
    keys = spec.config_keys()
    return {key: budget[key] for key in ("hidden_size", "embedding_dim") if key in keys}


def recording_cost(model: torch.nn.Module, tokens: torch.Tensor, repeats: int) -> dict:
    """Plain and recorded forward of ``tokens``: best wall and best CPU seconds of ``repeats`` alternating runs.

    CPU time (this process, all threads) is steadier than wall time when other processes share the cores.
    """
    model.eval()
    best = {key: math.inf for key in ("plain_wall", "plain_cpu", "recorded_wall", "recorded_cpu")}

    def timed(kind: str, fn) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        best[f"{kind}_wall"] = min(best[f"{kind}_wall"], time.perf_counter() - wall)
        best[f"{kind}_cpu"] = min(best[f"{kind}_cpu"], time.process_time() - cpu)

    def recorded():
        with Recorder(model, None) as recorder:  # attaching the hooks is part of the cost
            model(tokens)
            return recorder.collect()

    with torch.no_grad():
        model(tokens)  # warm-up
        signals = len(recorded())
        for _ in range(repeats):  # alternating, so that a busy moment of the machine hits both
            timed("plain", lambda: model(tokens))
            timed("recorded", recorded)
    return {**best, "signals": signals}


def run_one(name: str, dataset: str, data: tuple, budget: dict, workdir: Path) -> dict:
    spec = registry.get(name)
    train_data, valid_data = data
    config = _config_for(spec, budget)
    out = workdir / f"{name}-{dataset}.pt"
    row = {"engine": name, "paper": f"{spec.paper.authors.split(',')[0].split()[-1]} et al. {spec.paper.year}",
           "arxiv": spec.paper.arxiv, "dataset": dataset, "config": config}
    started = time.perf_counter()
    metrics = train(name, train_data, valid_data, out=out, steps=budget["steps"], seed=budget["seed"], config=config,
                    batch_size=budget["batch_size"], bptt=budget["bptt"], eval_every=0,
                    valid_tokens=budget["valid_tokens"], threads=budget["threads"])
    row["train_seconds"] = round(time.perf_counter() - started, 1)
    model, meta = load_checkpoint(out)
    out.unlink()
    row["params"] = sum(p.numel() for p in model.parameters())
    row.update(first_train_loss=metrics["first_train_loss"], train_loss=metrics["train_loss"],
               valid_loss=metrics["valid_loss"], valid_ppl=metrics["valid_ppl"],
               tokens_per_s=metrics["tokens_per_s"])
    stream = torch.as_tensor(valid_data.token_stream()[: budget["batch_size"] * budget["bptt"]], dtype=torch.long)
    tokens = stream.reshape(budget["batch_size"], budget["bptt"])
    threads = torch.get_num_threads()
    torch.set_num_threads(budget["threads"])
    try:
        cost = recording_cost(model, tokens, budget["repeats"])
    finally:
        torch.set_num_threads(threads)
    row.update(forward_ms=round(1e3 * cost["plain_wall"], 2), recorded_ms=round(1e3 * cost["recorded_wall"], 2),
               forward_cpu_ms=round(1e3 * cost["plain_cpu"], 2), recorded_cpu_ms=round(1e3 * cost["recorded_cpu"], 2),
               signals=cost["signals"], recording_cost=round(cost["recorded_wall"] / cost["plain_wall"], 2),
               recording_cost_cpu=round(cost["recorded_cpu"] / max(cost["plain_cpu"], 1e-9), 2))
    return row


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: list[dict]) -> str:
    head = (f"{'engine':<11} {'paper':<22} {'dataset':<7} {'params':>9} {'valid ppl':>10} {'train tok/s':>11} "
            f"{'rec cost':>8} {'(cpu)':>6} {'taps':>5}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['engine']:<11} {r.get('paper', ''):<22} {r['dataset']:<7} failed: {r['error']}")
            continue
        lines.append(
            f"{r['engine']:<11} {r['paper']:<22} {r['dataset']:<7} {r['params']:>9,} {_fmt(r['valid_ppl'], '.3f'):>10} "
            f"{_fmt(r['tokens_per_s'], ',.0f'):>11} {_fmt(r['recording_cost'], '.2f'):>7}x {_fmt(r['recording_cost_cpu'], '.2f'):>5}x {r['signals']:>5}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", help="comma-separated engine names (default: every language-model engine)")
    ap.add_argument("--datasets", default="parens,ptb", help="comma-separated datasets (default: parens,ptb)")
    ap.add_argument("--steps", type=int, default=200, help="training steps per engine and dataset (default 200)")
    ap.add_argument("--batch-size", type=int, default=20)
    ap.add_argument("--bptt", type=int, default=35)
    ap.add_argument("--hidden", type=int, default=128, help="hidden_size of every engine that takes it (default 128)")
    ap.add_argument("--embedding", type=int, default=128, help="embedding_dim of every engine that takes it")
    ap.add_argument("--valid-tokens", type=int, default=10000, help="validation tokens (default 10000)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for training and timing (default 2)")
    ap.add_argument("--repeats", type=int, default=5, help="timing repeats of the recording cost (default 5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the rows and the budget as JSON to this file")
    args = ap.parse_args(argv)

    known = language_model_engines()
    engines = known if not args.engines else [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in known]
    if unknown:
        ap.error(f"unknown engine {', '.join(unknown)}; the language-model engines are {', '.join(known)}")
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    budget = budget_from(args)
    print(f"budget (every engine, every dataset): {args.steps} steps x batch {args.batch_size} x bptt {args.bptt} "
          f"= {args.steps * args.batch_size * args.bptt:,} training tokens; hidden_size {args.hidden}, embedding_dim "
          f"{args.embedding} where the engine takes them (other settings: the engine's defaults); "
          f"valid ppl on the first {args.valid_tokens:,} valid tokens; {args.threads} threads; seed {args.seed}; "
          f"recording cost on one valid batch [{args.batch_size}, {args.bptt}], best of {args.repeats}",
          flush=True)
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lstmviz-engines-") as tmp:
        for dataset in datasets:
            data = (load_dataset(dataset, "train"), load_dataset(dataset, "valid"))
            for name in engines:
                try:
                    row = run_one(name, dataset, data, budget, Path(tmp))
                except Exception as e:  # one engine's failure is a row of the table, not the end of the run
                    traceback.print_exc(file=sys.stderr)
                    row = {"engine": name, "dataset": dataset, "error": f"{type(e).__name__}: {e}".splitlines()[0]}
                rows.append(row)
                if "error" in row:
                    print(f"  {name} on {dataset}: failed ({row['error']})", flush=True)
                else:
                    print(f"  {name} on {dataset}: valid ppl {row['valid_ppl']:.3f}, {row['tokens_per_s']:,.0f} tok/s, "
                          f"recording {row['recording_cost']:.2f}x, {row['train_seconds']:.0f} s", flush=True)
    print()
    print(table(rows))
    print(f"\n{len(rows)} runs in {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"budget": budget, "rows": rows}, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
