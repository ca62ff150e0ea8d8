"""Do hm-lstm's layer-1 boundaries fall at token boundaries of Python source? (Chung et al. 2016, §4.1)

Trains ``hm-lstm`` on the ``python`` dataset (characters of the standard library), records the valid
split's ``layer0/z`` (the paper's layer 1, the lowest boundary detector) with ``lstmviz.recording.record``,
and compares it with the token ends of the dataset's ``token_type`` annotation (from ``tokenize``):

    end_t = 1  iff  token_type_t != token_type_{t+1}      (t < the item's last position)

i.e. the last character of a run of one token type (a name, an operator run, a whitespace run, ...;
adjacent tokens of one type such as ``((`` count as one run). ``z_t = 1`` means the layer closes a
segment at character t. Reported per alignment offset d (``z_{t+d}`` against ``end_t``; d = 0 is the
paper's reading, d = +1 a boundary detected one character late):

    precision = P(end | z = 1)      recall = P(z = 1 | end)      F1

against a random detector firing independently with the same rate r as z (expected precision = the
base rate of ends, recall = r), also drawn once with a fixed seed.

    python benchmarks/hm_boundaries.py --steps 600 --out /tmp/hm      # a few minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# lstmviz first: it sets OMP_WAIT_POLICY=PASSIVE before torch loads
from lstmviz.datasets.registry import load_dataset  # noqa: I001
from lstmviz.engines.checkpoint import load_checkpoint
from lstmviz.engines.training import train
from lstmviz.recording import open_recording
from lstmviz.recording.recorder import record

import numpy as np


def token_ends(token_type: np.ndarray) -> np.ndarray:
    """``end[t] = token_type[t] != token_type[t+1]``; the item's last position has no successor (False)."""
    ends = np.zeros(len(token_type), dtype=bool)
    ends[:-1] = token_type[:-1] != token_type[1:]
    return ends


def scores(predicted: np.ndarray, truth: np.ndarray) -> dict:
    hits = int(np.sum(predicted & truth))
    precision = hits / max(int(predicted.sum()), 1)
    recall = hits / max(int(truth.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def boundary_table(recording, tap: str = "layer0/z", offsets=(-1, 0, 1), seed: int = 0) -> dict:
    """Precision/recall of ``tap``'s boundaries against token ends, per offset, and the random baseline."""
    zs, ends = [], []
    for item in range(len(recording.axis_offsets()) - 1):
        start, stop = recording.item_range(item)
        if stop - start < 3:
            continue
        zs.append(recording.states(tap, start, stop)[:, 0] > 0.5)
        ends.append(token_ends(recording.annotation("token_type", start, stop)))
    rate = float(np.mean(np.concatenate(zs)))
    base = float(np.mean(np.concatenate(ends)))
    rows = {}
    for d in offsets:
        # compare z_{t+d} with end_t inside each item, over the t where both exist
        pred = np.concatenate([z[max(d, 0): len(z) + min(d, 0)] for z in zs])
        truth = np.concatenate([e[max(-d, 0): len(e) - max(d, 0)] for e in ends])
        rows[f"z(t{d:+d}) vs end(t)"] = scores(pred, truth)
    rng = np.random.default_rng(seed)
    truth = np.concatenate(ends)
    drawn = rng.random(truth.shape) < rate
    rows["random, same rate"] = scores(drawn, truth)
    f1 = 2 * base * rate / (base + rate) if base + rate else 0.0
    rows["random, expected"] = {"precision": round(base, 4), "recall": round(rate, 4), "f1": round(f1, 4)}
    return {"positions": int(truth.size), "boundary_rate": round(rate, 4), "token_end_rate": round(base, 4),
            "rows": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--files", type=int, default=60, help="train files of the stdlib (valid: a quarter)")
    parser.add_argument("--slope-anneal", type=float, default=None,
                        help="slope increase per step (default: reach 5 at the last step)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/hm_boundaries"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    train_data = load_dataset("python", "train", max_files=args.files)
    valid_data = load_dataset("python", "valid", max_files=max(args.files // 4, 1))
    anneal = args.slope_anneal if args.slope_anneal is not None else 4.0 / args.steps
    config = {"embedding_dim": 32, "hidden_size": args.hidden, "num_layers": 2, "slope_anneal": anneal}
    checkpoint = args.out / "hm_python.pt"
    started = time.perf_counter()
    metrics = train("hm-lstm", train_data, valid_data, out=checkpoint, steps=args.steps, seed=args.seed,
                    config=config, eval_every=0)
    trained = time.perf_counter() - started
    model, meta = load_checkpoint(checkpoint)
    recording = args.out / "hm_python_valid.h5"
    record(model, valid_data, recording, signals=["layer*/z", "layer*/op"], max_items=200)
    with open_recording(recording) as rec:
        table = boundary_table(rec, seed=args.seed)
    report = {
        "command": "python benchmarks/hm_boundaries.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "config": config, "steps": args.steps, "train_seconds": round(trained, 1),
        "first_train_loss": round(metrics["first_train_loss"], 4), "train_loss": round(metrics["train_loss"], 4),
        "valid_bpc": round(metrics["valid_loss"] / np.log(2), 4),
        "final_slope": model.layers.current_slope(), **table,
    }
    print(json.dumps(report, indent=2))
    (args.out / "hm_boundaries.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
