"""Mollifying networks (Gulcehre et al. 2017, arXiv:1608.04980): does annealing a mollified objective
(``--train mollify=N``) train a deep stacked LSTM on parity where the plain one stalls?

Data: the ``parity`` dataset (``length`` random bits, ``=``, then ``even``/``odd``). The only learnable
token is the answer; a model that has not found parity predicts it at chance, ln 2 = 0.693 nats.
Per seed, two runs of the shared training loop (``lstmviz.engines.training.train``) with identical
settings and initial weights (the seed): plain, and ``mollify=N`` (p annealed from 1 to 0 over the first
N of the steps, so the last steps train the plain objective and the saved model is the plain engine).
Both are Adam, lr, clip 5, dropout 0, stateful truncated BPTT over the item stream.

Measured on the final checkpoints, in eval mode (the plain network for both arms), over ``--valid``
held-out items read back to back: the answer-token NLL (nats; chance 0.693) and accuracy (chance 0.5),
and the mean training loss of the last 20 steps (all tokens; the bits alone cost ln 2 each, so the loss
has two floors: (length + 1) ln 2 / (length + 2) once the item structure is learnt (``=`` after
``length`` bits, then an answer) with the answer at chance, and length ln 2 / (length + 2) once parity is
solved). Each arm's wall time is printed (the mollified steps cost several times a plain step: the
noisy units are ~12 small tensor ops each, intercepted by a TorchFunctionMode).

Claim in direction (the paper): the mollified run reaches a lower answer loss / higher accuracy than
the plain run within the same number of steps. Reported as it comes out.

    python benchmarks/mollify_claims.py [--seeds 0 1] [--steps 400] [--anneal 100] [--length 6]
        [--layers 4] [--hidden 32]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lstmviz.datasets import load_dataset
from lstmviz.engines.checkpoint import load_checkpoint
from lstmviz.engines.training import train


def answer_scores(model, data, rows: int = 10) -> tuple[float, float]:
    """(answer NLL in nats, answer accuracy) of ``model`` reading ``data``'s items back to back in ``rows`` streams."""
    stream = torch.as_tensor(data.token_stream())
    mask = torch.as_tensor(data.answer_mask())
    per_row = (len(data) // rows) * (data.length + 2)
    x = stream[: rows * per_row].view(rows, per_row)
    m = mask[: rows * per_row].view(rows, per_row)
    model.eval()
    with torch.no_grad():
        logits, _ = model(x[:, :-1])
    target, where = x[:, 1:], m[:, 1:]
    chosen = logits[where]
    nll = F.cross_entropy(chosen, target[where]).item()
    accuracy = (chosen.argmax(-1) == target[where]).double().mean().item()
    return nll, accuracy


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--anneal", type=int, default=100, help="mollify=N: annealing steps")
    p.add_argument("--c", type=float, default=1.0, help="mollify_c: noise scale")
    p.add_argument("--length", type=int, default=6)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--valid", type=int, default=500)
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    train_data = load_dataset("parity", "train", items=20_000, length=args.length)
    valid_data = load_dataset("parity", "valid", items=args.valid, length=args.length)
    config = {"embedding_dim": args.hidden, "hidden_size": args.hidden, "num_layers": args.layers, "init_range": 0.1}
    common = dict(steps=args.steps, batch_size=args.batch, bptt=2 * (args.length + 2), lr=args.lr, dropout=0.0,
                  eval_every=0, clip=5.0, config=config)
    print(f"parity length {args.length}; lstm {args.layers} x {args.hidden}; {args.steps} steps, batch {args.batch}, "
          f"bptt {common['bptt']}, Adam lr {args.lr}; mollify={args.anneal} (c={args.c}); "
          f"chance answer NLL {math.log(2):.3f}")
    n = args.length + 2
    print(f"train-loss floors (nats/token): {(args.length + 1) * math.log(2) / n:.3f} when the item structure is "
          f"learnt and the answer is at chance; {args.length * math.log(2) / n:.3f} when parity is solved")
    print(f"{'seed':>4} {'arm':>9} {'answer NLL':>10} {'accuracy':>8} {'train loss':>10} {'seconds':>7}")
    results: dict[str, list] = {"plain": [], "mollified": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for arm, extra in (("plain", {}), ("mollified", {"mollify": args.anneal, "mollify_c": args.c})):
                out = Path(tmp) / f"{arm}-{seed}.pt"
                started = time.perf_counter()
                metrics = train("lstm", train_data, out=out, seed=seed, **common, **extra)
                seconds = time.perf_counter() - started
                model, _ = load_checkpoint(out)
                nll, acc = answer_scores(model, valid_data)
                results[arm].append((nll, acc))
                state = metrics.get("mollify")
                assert state is None or state["annealed"] == (args.anneal < args.steps)
                print(f"{seed:>4} {arm:>9} {nll:>10.3f} {acc:>8.3f} {metrics['train_loss']:>10.3f} {seconds:>7.1f}")
    plain, moll = np.array(results["plain"]), np.array(results["mollified"])
    print(f"mean answer NLL: plain {plain[:, 0].mean():.3f}, mollified {moll[:, 0].mean():.3f} "
          f"(ratio mollified/plain {moll[:, 0].mean() / plain[:, 0].mean():.3f}); "
          f"accuracy: plain {plain[:, 1].mean():.3f}, mollified {moll[:, 1].mean():.3f}")
    wins = int(np.sum(moll[:, 0] < plain[:, 0]))
    print(f"mollified lower answer NLL on {wins}/{len(args.seeds)} seeds")


if __name__ == "__main__":
    main()
