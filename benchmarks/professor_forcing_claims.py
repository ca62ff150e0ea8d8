"""pf-gru (Lamb et al. 2016): does professor forcing improve long free-running samples and shrink the
teacher-forced / free-running gap of the hidden states, compared with teacher forcing alone?

Data: the ``parens`` grammar (LSTMVis's nesting language: '(' ')' and digits equal to the current
depth, depth 0..4; every token is checkable). Per seed, one GRU LM (``pf-gru``; 2 layers x 32 units) is
first trained by teacher forcing for ``--warm`` steps; from that *same state* (weights and Adam state
copied) it is trained ``--steps`` more steps twice: TF-only (``pf_weight=0``) and TF+PF (``pf_weight=1``),
both by the language-model family's own objective (stateful truncated BPTT, ``bptt`` = the training
length; ``model.loss`` is pf-gru's), Adam lr 3e-3, clip 5, as the shared loop does.

Measured on each final model, in eval mode, from the state after reading (teacher-forced) the last
``2 x bptt`` tokens of the previous held-out item, which ends at depth 0, with the first token of the
held-out item (the language-model objective trains on a stream with the state carried, so the zero state
is one the model has hardly seen; valid samples from the zero state are printed too):

- **long samples**: the fraction of free-running samples of ``2 x bptt`` tokens that are grammatical
  from first to last token (and the fraction of tokens after which the sample is still grammatical);
  samples are drawn from the softmax (never argmax) with a seeded generator;
- **TF/FR gap** per layer at a few steps t: the B-test (``lstmviz.analysis.btest.b_test``, Zaremba et
  al. 2013) between the hidden states ``h^l_t`` of ``--items`` held-out items read teacher-forced and
  of as many free-running samples; items are the sampling unit (one state per item per step). The
  statistic is the block MMD^2 estimate (smaller = closer distributions), with its p-value;
- the held-out next-token NLL (nats) of the model (the paper: PF should not hurt it).

Claim in direction (Lamb et al.): TF+PF has more valid long samples and a smaller TF/FR gap than
TF-only. GAN training is noisy: several seeds, direction only.

    python benchmarks/professor_forcing_claims.py [--seeds 0 1 2] [--warm 600] [--steps 300]
        [--adversary-gate 0.75] [--disc-logits] [--pf-start carried|zero]
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from lstmviz.datasets import load_dataset
from lstmviz.datasets.parens import CLOSE, DIGIT0, MAX_NESTING, OPEN
from lstmviz.engines import registry
from lstmviz.engines.families.language_model import TokenData
from lstmviz.engines.families.language_model.free_running import sampler, teacher, unroll
from lstmviz.engines.families.language_model.objective import TruncatedBPTT, evaluate
from lstmviz.engines.training import clip_groups

try:
    from lstmviz.analysis.btest import b_test
except ImportError:  # the B-test lands with branch h-btest
    b_test = None


def grammatical_prefix(tokens: np.ndarray) -> int:
    """How many leading tokens of a sample (started at depth 0) the parens grammar accepts."""
    depth = 0
    for k, t in enumerate(tokens.tolist()):
        if t == OPEN and depth < MAX_NESTING:
            depth += 1
        elif t == CLOSE and depth > 0:
            depth -= 1
        elif t != DIGIT0 + depth:
            return k
    return len(tokens)


def train_steps(model, optimizer, objective, steps: int) -> float:
    model.train()
    losses = []
    for _ in range(steps):
        loss, _ = objective.train_step(model)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for group in clip_groups(model):  # as the shared loop: each player's gradient by its own norm
            torch.nn.utils.clip_grad_norm_(group, 5.0)
        optimizer.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses[-20:]))


@torch.no_grad()
def measure(model, prefix: torch.Tensor, held_out: torch.Tensor, length: int, steps_at, seed: int,
            valid_stream: torch.Tensor) -> dict:
    """Free-running and teacher-forced runs of ``length`` steps from the state after reading ``prefix``
    teacher-forced (the end of the previous held-out item: depth 0), first token = the item's first."""
    model.eval()
    burn = unroll(model, prefix[:, 0], prefix.shape[1], teacher(prefix))
    first = held_out[:, 0]
    fr = unroll(model, first, length, sampler(torch.Generator().manual_seed(seed)), burn.state)
    tf = unroll(model, first, held_out.shape[1], teacher(held_out), burn.state)
    zero = unroll(model, first, length, sampler(torch.Generator().manual_seed(seed)))  # from the zero state
    prefixes = np.array([grammatical_prefix(row) for row in fr.tokens.numpy()])
    zero_prefixes = np.array([grammatical_prefix(row) for row in zero.tokens.numpy()])
    out = {"valid": float(np.mean(prefixes == length)), "valid_tokens": float(np.mean(prefixes) / length),
           "valid_zero": float(np.mean(zero_prefixes == length)),
           "nll": evaluate(model, valid_stream, 50), "gap": {}}
    L, H = model.num_layers, model.hidden_size
    for t in steps_at:
        for layer in range(L):
            x = tf.hidden[t - 1, :, layer * H:(layer + 1) * H].numpy()
            y = fr.hidden[t - 1, :, layer * H:(layer + 1) * H].numpy()
            if b_test is not None:
                r = b_test(x, y, seed=seed)
                out["gap"][(t, layer)] = (r.statistic, r.p_value)
    return out


def run_seed(seed: int, args, train_data, prefix, held_out, valid_stream) -> dict:
    spec = registry.get("pf-gru")
    config = {**spec.default_config, "embedding_dim": 16, "hidden_size": args.hidden, "num_layers": args.layers,
              "disc_hidden": 32, "adversary_gate": args.adversary_gate, "disc_logits": args.disc_logits,
              "pf_start": args.pf_start}
    torch.manual_seed(seed)
    base = spec.build_model(TokenData(vocab_size=len(train_data.vocab)), **{**config, "pf_weight": 0.0})
    settings = {"batch_size": args.batch, "bptt": args.bptt, "valid_tokens": None}
    objective = TruncatedBPTT()
    objective.prepare(train_data, None, settings, "cpu")
    optimizer = torch.optim.Adam(base.parameters(), lr=3e-3)
    tick = time.perf_counter()
    train_steps(base, optimizer, objective, args.warm)
    warm_s = time.perf_counter() - tick
    results = {}
    for name, weight in (("TF-only", 0.0), ("TF+PF", 1.0)):
        model = copy.deepcopy(base)  # the same initial state: weights, Adam moments, stream position
        model.pf_weight = weight
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        opt.load_state_dict(optimizer.state_dict())
        obj = copy.deepcopy(objective)
        torch.manual_seed(1000 + seed)
        tick = time.perf_counter()
        train_steps(model, opt, obj, args.steps)
        seconds = time.perf_counter() - tick
        results[name] = {**measure(model, prefix, held_out, 2 * args.bptt, args.at, seed, valid_stream),
                         "seconds": seconds, "pf": dict(model.pf_stats)}
    results["warm_s"] = warm_s
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--warm", type=int, default=600, help="shared teacher-forcing steps before the two modes")
    p.add_argument("--steps", type=int, default=300, help="steps of each mode after the shared start")
    p.add_argument("--bptt", type=int, default=25, help="training length (segment length)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--adversary-gate", type=float, default=0.75,
                   help="C_f is used only while D's batch accuracy is above this (paper: 0.75; 0: always)")
    p.add_argument("--pf-start", choices=("carried", "zero"), default="carried",
                   help="state the TF and FR behaviour runs start from (pf-gru's pf_start)")
    p.add_argument("--disc-logits", action="store_true", help="D also reads the pre-softmax logits")
    p.add_argument("--items", type=int, default=400, help="free-running samples and held-out items")
    p.add_argument("--at", type=int, nargs="+", default=[5, 25, 50], help="steps t of the B-test (1-based)")
    args = p.parse_args()
    torch.set_num_threads(1)
    if b_test is None:
        print("note: the TF/FR gap needs the B-test (merge h-btest: lstmviz.analysis.btest); measuring samples only")
    length = 2 * args.bptt
    if max(args.at) > length:
        raise SystemExit(f"--at must be at most 2 x bptt = {length}")
    train_data = load_dataset("parens", "train", tokens=200_000)
    valid = load_dataset("parens", "valid", tokens=60_000, item_length=length)
    # item i (its first `length` tokens) after the last `length` tokens of item i - 1 (which ends at depth 0)
    pairs = [(valid[i - 1].tokens, valid[i].tokens) for i in range(1, len(valid) - 1)
             if len(valid[i - 1].tokens) >= length and len(valid[i].tokens) >= length][: args.items]
    prefix = torch.as_tensor(np.stack([a[-length:] for a, _ in pairs]))
    held_out = torch.as_tensor(np.stack([b[:length] for _, b in pairs]))
    valid_stream = torch.as_tensor(valid.token_stream()[:20_000]).reshape(8, -1)
    print(f"parens, GRU {args.layers}x{args.hidden}, bptt (training length) {args.bptt}, samples of {length} tokens, "
          f"{len(pairs)} held-out items / samples, warm {args.warm} TF steps, then {args.steps} steps per mode; "
          f"adversary gate {args.adversary_gate}, D reads logits: {args.disc_logits}, pf_start {args.pf_start}")
    table = {}
    for seed in args.seeds:
        r = run_seed(seed, args, train_data, prefix, held_out, valid_stream)
        table[seed] = r
        for mode in ("TF-only", "TF+PF"):
            m = r[mode]
            gaps = "  ".join(f"t={t} l{l}: {s:.4f} (p {pv:.2g})" for (t, l), (s, pv) in sorted(m["gap"].items()))
            print(f"seed {seed} {mode:8s} valid@{length} {m['valid']:.3f}  tokens ok {m['valid_tokens']:.3f}  "
                  f"(from the zero state {m['valid_zero']:.3f})  "
                  f"nll {m['nll']:.4f}  {m['seconds']:.0f}s  gap(MMD^2) {gaps}")
        pf = r["TF+PF"]["pf"]
        print(f"         TF+PF gates: adversary on {pf['adversary_on']}/{pf['steps']} steps, D updated "
              f"{pf['disc_updated']}/{pf['steps']}, last D accuracy {pf['disc_accuracy']}; warm {r['warm_s']:.0f}s")
    print("\nsummary (TF+PF vs TF-only, per seed):")
    better_valid = sum(table[s]["TF+PF"]["valid"] > table[s]["TF-only"]["valid"] for s in args.seeds)
    print(f"  valid long samples higher with PF in {better_valid}/{len(args.seeds)} seeds; means "
          f"TF-only {np.mean([table[s]['TF-only']['valid'] for s in args.seeds]):.3f}, "
          f"TF+PF {np.mean([table[s]['TF+PF']['valid'] for s in args.seeds]):.3f}; from the zero state: TF-only "
          f"{np.mean([table[s]['TF-only']['valid_zero'] for s in args.seeds]):.3f}, "
          f"TF+PF {np.mean([table[s]['TF+PF']['valid_zero'] for s in args.seeds]):.3f}")
    if b_test is not None:
        keys = sorted(table[args.seeds[0]]["TF-only"]["gap"])
        smaller = sum(table[s]["TF+PF"]["gap"][k][0] < table[s]["TF-only"]["gap"][k][0] for s in args.seeds for k in keys)
        total = len(keys) * len(args.seeds)
        print(f"  TF/FR gap (B-test MMD^2 estimate) smaller with PF in {smaller}/{total} (seed, t, layer); significant "
              f"gaps (p < 0.05): TF-only {sum(table[s]['TF-only']['gap'][k][1] < 0.05 for s in args.seeds for k in keys)}"
              f"/{total}, TF+PF {sum(table[s]['TF+PF']['gap'][k][1] < 0.05 for s in args.seeds for k in keys)}/{total}")
        for k in keys:
            a = np.mean([table[s]["TF-only"]["gap"][k][0] for s in args.seeds])
            b = np.mean([table[s]["TF+PF"]["gap"][k][0] for s in args.seeds])
            print(f"    t={k[0]} layer{k[1]}: mean MMD^2 TF-only {a:+.4f}  TF+PF {b:+.4f}")
    print(f"  next-token NLL: TF-only {np.mean([table[s]['TF-only']['nll'] for s in args.seeds]):.4f}, "
          f"TF+PF {np.mean([table[s]['TF+PF']['nll'] for s in args.seeds]):.4f} (nats)")


if __name__ == "__main__":
    main()
