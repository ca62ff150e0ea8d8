"""melody-gru (Colombo et al. 2016): do parallel rhythm and melody networks, the melody net conditioned on
the upcoming duration, model melodies better than one GRU network of similar size?

Data: the ``chorales`` dataset (Bach chorale melodies from music21's bundled corpus, transposed to C major
/ A minor; ``--voices soprano`` or ``all``), note tokens ``pitch:duration``. Both models are trained by
the shared loop (``lstmviz.engines.training.train``: the language-model family's truncated BPTT, Adam,
the same steps, batch, bptt, lr, dropout and seed, one torch thread: on a shared 2-core machine two
threads were 3x slower per step), in the same run:

- ``melody-gru``: rhythm net (durations only) + melody net (pitches, conditioned on the upcoming
  duration), 2 layers x ``--hidden`` units each;
- baseline ``gru``: one 2-layer GRU language model over the same note tokens, its hidden size chosen so
  that its parameter count is the closest to melody-gru's;
- ablation ``melody-gru, upcoming_duration=False``: the same two nets, the melody net without the
  upcoming-duration input (the paper's comparison for the conditioning): its pitch term should be worse.

Printed: parameters, wall time, held-out (valid split) NLL per note in nats (the full next-note
distribution: for melody-gru, rhythm NLL + melody NLL, each shown), the baseline's NLL split the same way
(duration marginal + pitch given duration, from its joint softmax), and a few sampled melodies as pitch
names (duration in quarter notes after the colon). Claims in direction: melody-gru's NLL < the baseline's,
and its pitch-given-duration NLL < the ablation's (the duration terms are the same network and data).

    python benchmarks/melody_claims.py [--steps 300] [--hidden 128] [--voices soprano] [--seed 0] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def split_nll(model, stream, num_durations: int, bptt: int = 64) -> tuple[float, float, float]:
    """(total, duration, pitch | duration) NLL per note in nats of a language model over note tokens."""
    model.eval()
    P = model.vocab_size // num_durations  # the chorales vocabulary is the full pitch x duration grid
    total = dur = 0.0
    count = 0
    state = None
    data = stream.unsqueeze(0)
    with torch.no_grad():
        for start in range(0, data.shape[1] - 1, bptt):
            x = data[:, start: min(start + bptt, data.shape[1] - 1)]
            y = data[:, start + 1: start + 1 + x.shape[1]]
            logits, state = model(x, state)
            logp = torch.log_softmax(logits, -1)
            joint = logp.view(*logp.shape[:2], P, num_durations)
            marg = joint.logsumexp(2)
            total -= float(logp.gather(-1, y.unsqueeze(-1)).sum())
            dur -= float(marg.gather(-1, (y % num_durations).unsqueeze(-1)).sum())
            count += y.numel()
    return total / count, dur / count, (total - dur) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--voices", default="soprano")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from lstmviz.datasets.chorales import DURATIONS, ChoralesDataset
    from lstmviz.engines.checkpoint import load_checkpoint
    from lstmviz.engines.recurrent.gru import GRULanguageModel
    from lstmviz.engines.recurrent.melody_gru import MelodyGRU, sample
    from lstmviz.engines.training import train

    D = len(DURATIONS)
    train_set = ChoralesDataset("train", voices=args.voices)
    valid_set = ChoralesDataset("valid", voices=args.voices)
    V = len(train_set.vocab)
    print(f"chorales ({args.voices}): train {len(train_set)} items / {len(train_set.token_stream())} notes, "
          f"valid {len(valid_set)} / {len(valid_set.token_stream())}; vocab {V} = {V // D} pitches x {D} durations")

    def count(m):
        return sum(p.numel() for p in m.parameters())

    melody_config = {"hidden_size": args.hidden, "embedding_dim": 32, "num_layers": 2}
    target = count(MelodyGRU(vocab_size=V, **melody_config))
    best = min(range(16, 4 * args.hidden + 1, 4),
               key=lambda h: abs(count(GRULanguageModel(vocab_size=V, embedding_dim=64, hidden_size=h,
                                                         num_layers=2)) - target))
    gru_config = {"hidden_size": best, "embedding_dim": 64, "num_layers": 2}
    settings = dict(steps=args.steps, seed=args.seed, batch_size=16, bptt=32, lr=3e-3, dropout=0.1,
                    eval_every=max(args.steps // 4, 1), threads=args.threads)
    valid_stream = torch.from_numpy(valid_set.token_stream())
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = (("melody-gru", "melody-gru", melody_config), ("gru", "gru", gru_config),
                ("ablation", "melody-gru", {**melody_config, "upcoming_duration": False}))
        for name, engine, config in runs:
            t0 = time.perf_counter()
            metrics = train(engine, train_set, valid_set, out=Path(tmp) / f"{name}.pt", config=config, **settings)
            seconds = time.perf_counter() - t0
            model, _ = load_checkpoint(Path(tmp) / f"{name}.pt")
            nll = split_nll(model, valid_stream, D)
            results[name] = (model, nll)
            print(f"{name:10s} {config}  params {count(model):,}  train {seconds:.0f} s  "
                  f"valid NLL/note {nll[0]:.3f} (duration {nll[1]:.3f} + pitch|duration {nll[2]:.3f})  "
                  f"[shared loop's best valid loss {metrics['best_valid_loss']:.3f}]")
    m_nll, g_nll = results["melody-gru"][1][0], results["gru"][1][0]
    print(f"melody-gru - gru valid NLL: {m_nll - g_nll:+.3f} nats/note "
          f"({'lower: the claim holds in direction' if m_nll < g_nll else 'NOT lower: the claim does not show'})")
    m_pitch, a_pitch = results["melody-gru"][1][2], results["ablation"][1][2]
    print(f"pitch|duration NLL, melody-gru - ablation (no upcoming duration): {m_pitch - a_pitch:+.3f} nats/note "
          f"({'lower: conditioning on the upcoming duration helps' if m_pitch < a_pitch else 'NOT lower: the conditioning does not show'})")

    model = results["melody-gru"][0]
    vocab = train_set.vocab
    print("\nsampled melodies (melody-gru; pitch:duration in quarter notes):")
    for k, notes in enumerate(sample(model, count=args.samples, max_notes=48, seed=args.seed)):
        print(f"  {k}: {' '.join(vocab[t] for t in notes)}")


if __name__ == "__main__":
    main()
