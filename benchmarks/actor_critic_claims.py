"""Does actor-critic fine-tuning beat log-likelihood training on a tiny spelling correction? (Bahdanau et al. 2017)

Claim (models_recurrent.md §13 (d); the paper's synthetic spelling correction, scaled down): greedy decoding
of an actor fine-tuned by actor-critic (``seq2seq-ac``) is at least as good in character accuracy / BLEU as
the log-likelihood (LL) model it started from. Fragile, so several seeds.

    python benchmarks/actor_critic_claims.py [--seeds 0,1] [--ll-steps 1500] [--critic-steps 600]
        [--joint-steps 300] [--tau 0.02] [--lr 1e-3] [--variants random,actor] [--jobs 2]

Per seed, on ``spelling`` (``--words`` lexicon words of 3–8 letters over 26 letters, 20% character noise):

1. LL: ``seq2seq-attn`` (LSTM, one layer, H = ``--hidden``) trained ``--ll-steps`` steps, then on for
   ``--critic-steps + --joint-steps`` more steps in the same run (``keep_checkpoints``): ``LL`` is the model
   at ``--ll-steps`` (where actor-critic starts), ``LL+`` the one with as many extra LL updates as
   actor-critic gets (the fair baseline for "more training");
2. AC: ``seq2seq-ac`` with ``init=`` the LL checkpoint: ``--critic-steps`` of critic pre-training (actor
   fixed), then ``--joint-steps`` of joint training (smoothed-BLEU rewards, ``--tau`` soft updates), once
   per ``--variants`` entry: ``AC/random`` — the critic starts from random weights (the paper);
   ``AC/actor`` — the critic's encoder/decoder start as copies of the LL actor's, its value head fresh
   (``critic_init=actor``, not in the paper: a critic that can tell tokens apart after a short pre-training).

With ``--ll-weight`` > 0 (the paper's optional LL term in the actor's loss) a third baseline ``LL-ft`` is the
LL checkpoint fine-tuned by the LL term alone with the AC run's optimiser and batches (:func:`ll_finetune`),
so that a gain of AC+LL is not credited to the critic when the LL term alone gives it.

Each model greedy-decodes the test split (``--test`` pairs); printed: exact-word accuracy, character
accuracy ``1 − CER`` (CER = total Levenshtein edits / total reference characters) and the mean smoothed
sentence BLEU (the reward's BLEU+1, order 4), per seed and averaged, and the sign of AC − LL and AC − LL+;
for each AC model also how well its final critic ranks the reference token on reference prefixes.
Seeds run as ``--jobs`` processes of one torch thread each. ``τ`` is scaled to the few hundred steps here
(the paper's ≈ 0.001 suits ~10^5 updates; with 0.001 the target critic would barely leave its random
initialisation in 150 steps) — a choice written down, not a tuning of the result.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np


def lev(a, b) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def evaluate(model, pairs, batch_size: int = 100) -> dict:
    import torch

    from lstmviz.engines.families.seq2seq.api import batch_pairs
    from lstmviz.engines.seq2seq.actor_critic import sentence_bleu

    model.eval()
    exact = edits = chars = 0
    bleu = []
    with torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            b = batch_pairs(chunk)
            refs = b.references()
            outs = model.greedy(b.src, b.src_lengths, max_len=max(len(r) for r in refs) + 5)
            for o, r in zip(outs, refs):
                exact += o == r
                edits += lev(o, r)
                chars += len(r)
                bleu.append(sentence_bleu(o, r))
    return {"exact": exact / len(pairs), "char_acc": 1 - edits / chars, "bleu": float(np.mean(bleu))}


def critic_quality(model, pairs) -> dict:
    """On the reference prefixes of ``pairs`` (teacher forced): how often the critic's best token is the
    reference's next token (``critic_top1``; chance is about 1/27) and the mean of Q̂(reference token) minus
    the mean of Q̂ over the actions (``q_gap``)."""
    import torch

    from lstmviz.engines.families.seq2seq.api import batch_pairs

    b = batch_pairs(pairs)
    with torch.no_grad():
        q = model.eval().q_values(b.tgt_in, b.references())
    rows = b.tgt_out != 0
    qa = q[..., 2:]
    top1 = ((qa.argmax(-1) + 2) == b.tgt_out) & rows
    gap = q.gather(2, b.tgt_out.unsqueeze(2)).squeeze(2) - qa.mean(-1)
    return {"critic_top1": float(top1.sum() / rows.sum()), "q_gap": float(gap[rows].mean())}


def ll_finetune(path, train_set, a):
    """The control for an AC run with an LL term: the LL checkpoint fine-tuned by teacher-forced NLL alone with
    the AC run's optimiser (Adam ``--lr``, clip 1) on the batches of its joint phase (the same objective, seed
    and batch order; the critic phase's batches are drawn and skipped)."""
    import torch

    from lstmviz.engines.checkpoint import load_checkpoint
    from lstmviz.engines.families.seq2seq.objective import Seq2SeqObjective, nll

    model = load_checkpoint(path)[0].train()
    objective = Seq2SeqObjective()
    objective.prepare(train_set, None, {"valid_items": None, "batch_size": 32, "valid_decode": False,
                                        "seed": a.seed}, torch.device("cpu"))
    optimizer = torch.optim.Adam(model.parameters(), lr=a.lr)
    for step in range(a.critic_steps + a.joint_steps):
        batch = objective._next_batch()
        if step < a.critic_steps:
            continue
        loss, _ = nll(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return model


def run_seed(args_dict: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    from lstmviz.datasets import load_dataset
    from lstmviz.engines.checkpoint import load_checkpoint
    from lstmviz.engines.training import kept_checkpoint_path, train

    a = argparse.Namespace(**args_dict)
    opts = dict(words=a.words, letters=26, min_length=3, max_length=8, noise=0.2)
    train_set = load_dataset("spelling", split="train", items=a.items, seed=a.seed, **opts)
    valid_set = load_dataset("spelling", split="valid", items=200, seed=a.seed, **opts)
    test_set = load_dataset("spelling", split="test", items=a.test, seed=a.seed, **opts)
    test_pairs = [(it.tokens, it.target) for it in test_set]
    config = {"embedding_size": 32, "hidden_size": a.hidden, "num_layers": 1}
    extra = a.critic_steps + a.joint_steps
    out: dict = {"seed": a.seed}
    with tempfile.TemporaryDirectory() as tmp:
        ll = Path(tmp) / "ll.pt"
        t = time.perf_counter()
        train("seq2seq-attn", train_set, valid_set, out=ll, steps=a.ll_steps + extra, seed=a.seed, config=config,
              batch_size=32, lr=3e-3, clip=1.0, eval_every=0, checkpoint_every=a.ll_steps, keep_checkpoints=True,
              valid_decode=False)
        out["ll_seconds"] = time.perf_counter() - t
        ll_at = kept_checkpoint_path(ll, a.ll_steps)
        out["LL"] = evaluate(load_checkpoint(ll_at)[0], test_pairs)
        out["LL+"] = evaluate(load_checkpoint(ll)[0], test_pairs)
        if a.ll_weight:
            out["LL-ft"] = evaluate(ll_finetune(ll_at, train_set, a), test_pairs)
        out["ac_seconds"] = 0.0
        for variant in a.variants.split(","):
            t = time.perf_counter()
            ac = Path(tmp) / f"ac-{variant}.pt"
            train("seq2seq-ac", train_set, valid_set, out=ac, steps=extra, seed=a.seed,
                  config={**config, "init": str(ll_at), "critic_pretrain_steps": a.critic_steps, "tau": a.tau,
                          "variance_penalty": a.variance_penalty, "ll_weight": a.ll_weight, "critic_init": variant},
                  batch_size=32, lr=a.lr, clip=1.0, eval_every=0, valid_decode=False)
            out["ac_seconds"] += time.perf_counter() - t
            model = load_checkpoint(ac)[0]
            out[f"AC/{variant}"] = {**evaluate(model, test_pairs), **critic_quality(model, test_pairs)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--words", type=int, default=1000)
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--ll-steps", type=int, default=1500)
    parser.add_argument("--critic-steps", type=int, default=600)
    parser.add_argument("--joint-steps", type=int, default=300)
    parser.add_argument("--tau", type=float, default=0.02)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--variance-penalty", type=float, default=1e-3)
    parser.add_argument("--ll-weight", type=float, default=0.0)
    parser.add_argument("--variants", default="random,actor",
                        help="critic_init of the AC runs: random (the paper) and/or actor (critic starts as the LL actor)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [{**vars(args), "seed": s} for s in seeds]
    started = time.perf_counter()
    if args.jobs > 1:
        with mp.get_context("spawn").Pool(min(args.jobs, len(jobs))) as pool:
            results = pool.map(run_seed, jobs)
    else:
        results = [run_seed(j) for j in jobs]
    print(f"spelling: {args.words} words, 20% noise; LL {args.ll_steps} steps, then {args.critic_steps} critic + "
          f"{args.joint_steps} joint AC steps (tau {args.tau}, lr {args.lr}, lambda {args.variance_penalty}, "
          f"ll_weight {args.ll_weight}); greedy on {args.test} test pairs")
    names = ["LL", "LL+", *(["LL-ft"] if args.ll_weight else []), *(f"AC/{v}" for v in args.variants.split(","))]
    bases = ["LL", "LL+", *(["LL-ft"] if args.ll_weight else [])]
    print(f"{'seed':>4} {'model':>9} {'exact':>7} {'char acc':>9} {'BLEU':>7}")
    for r in results:
        for name in names:
            m = r[name]
            print(f"{r['seed']:>4} {name:>9} {m['exact']:7.3f} {m['char_acc']:9.3f} {m['bleu']:7.3f}")
    means = {name: {k: float(np.mean([r[name][k] for r in results])) for k in ("exact", "char_acc", "bleu")}
             for name in names}
    for name, m in means.items():
        print(f"mean {name:>9} {m['exact']:7.3f} {m['char_acc']:9.3f} {m['bleu']:7.3f}")
    for ac in names[len(bases):]:
        print(f"{ac} critic at the end: best token = reference token on " + ", ".join(
            f"{r[ac]['critic_top1']:.3f}" for r in results) + " of the reference rows (chance ~0.037); "
            "Q(reference) - mean Q = " + ", ".join(f"{r[ac]['q_gap']:+.3f}" for r in results) + " (per seed)")
        for base in bases:
            diffs = {k: [r[ac][k] - r[base][k] for r in results] for k in ("exact", "char_acc", "bleu")}
            wins = {k: sum(d > 0 for d in v) for k, v in diffs.items()}
            print(f"{ac} - {base:<3}: " + ", ".join(f"{k} {np.mean(v):+.3f} (better in {wins[k]}/{len(results)} seeds)"
                                                for k, v in diffs.items()))
    print(f"wall {time.perf_counter() - started:.0f} s (LL runs {np.mean([r['ll_seconds'] for r in results]):.0f} s, "
          f"AC runs {np.mean([r['ac_seconds'] for r in results]):.0f} s per seed, all variants)")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results, "means": means}, indent=1))


if __name__ == "__main__":
    main()
