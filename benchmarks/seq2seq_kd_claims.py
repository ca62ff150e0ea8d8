"""Kim & Rush's sequence-level distillation claims, in direction, on ``translit`` (models_recurrent.md §15 (d)).

A teacher (2-layer LSTM seq2seq-attn, bigger) is trained on the references; three students (1 layer,
smaller, same steps and settings) are trained by the shared training loop (``lstmviz train`` settings):

- ``reference``: NLL on the (noisy, multimodal) references;
- ``seq-KD``: ``distill=seq`` — NLL on the teacher's beam-5 outputs of the training sources;
- ``word-KD``: ``distill=word``, ``distill_alpha=0.5`` — interpolated with the per-step teacher distribution.

On the test split every model decodes greedily and with beam 5. ``translit`` has up to ``2^n`` correct
outputs per source, so exact match against the ONE sampled reference says little; the main measure is
``valid``: the output is one of the source's correct transliterations (``TranslitDataset.references``).
Also printed: ``exact`` (equals the sampled reference), teacher-forced token accuracy against the
reference, how often greedy == beam, and decoding time per item (batches of 100, the fastest of 3 passes,
same run: the ratio teacher / student is what to read; at these sizes the per-step Python loop dominates). Claims: seq-KD student's greedy beats the reference student's;
greedy ≈ beam after seq-KD; the student decodes faster than the teacher. Measured numbers only.

    python benchmarks/seq2seq_kd_claims.py            # ~4 min on an idle core, much more on a loaded one
    python benchmarks/seq2seq_kd_claims.py --quick    # smoke run (~1 min)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

TEACHER = {"embedding_size": 32, "hidden_size": 64, "num_layers": 2}
STUDENT = {"embedding_size": 16, "hidden_size": 32, "num_layers": 1}


def datasets(items: int, test_items: int, max_length: int = 6):
    from lstmviz.datasets import load_dataset

    options = {"max_length": max_length}
    train = load_dataset("translit", "train", items=items, **options)
    valid = load_dataset("translit", "valid", items=200, **options)
    test = load_dataset("translit", "test", items=test_items, **options)
    return train, valid, test


def train_model(out, config, train, valid, steps, **settings):
    from lstmviz.engines.training import train as run

    start = time.perf_counter()
    metrics = run("seq2seq-attn", train, valid, out=out, steps=steps, config=config, batch_size=64, lr=3e-3,
                  eval_every=0, valid_items=200, **settings)
    return metrics, time.perf_counter() - start


def is_valid(dataset, item, output) -> bool:
    digits = (item.tokens - dataset.digit0).tolist()
    return list(output) in dataset.references(digits)


def evaluate(model, dataset, beam: int = 5, batch: int = 100, repeats: int = 3) -> dict:
    """valid / exact of greedy and beam decoding, greedy == beam, token accuracy, seconds per item (the
    fastest of ``repeats`` passes: the machine is shared, the minimum is the least disturbed)."""
    import torch

    from lstmviz.engines.families.seq2seq.api import batch_items
    from lstmviz.engines.families.seq2seq.objective import evaluate_pairs

    items = list(dataset)
    model.eval()
    batches = [batch_items(items[start : start + batch]) for start in range(0, len(items), batch)]
    times = {"greedy": [], "beam": []}
    with torch.no_grad():
        for _ in range(repeats):
            greedy, beams, t_greedy, t_beam = [], [], 0.0, 0.0
            for b in batches:
                tick = time.perf_counter()
                greedy += model.greedy(b.src, b.src_lengths)
                t_greedy += time.perf_counter() - tick
                tick = time.perf_counter()
                beams += model.beam_search(b.src, b.src_lengths, beam=beam)
                t_beam += time.perf_counter() - tick
            times["greedy"].append(t_greedy)
            times["beam"].append(t_beam)
    t_greedy, t_beam = min(times["greedy"]), min(times["beam"])
    n = len(items)
    forced = evaluate_pairs(model, dataset.pairs(), batch, torch.device("cpu"), decode=False)
    return {
        "greedy_valid": sum(is_valid(dataset, it, o) for it, o in zip(items, greedy)) / n,
        "beam_valid": sum(is_valid(dataset, it, o) for it, o in zip(items, beams)) / n,
        "greedy_exact": sum(o == it.target.tolist() for it, o in zip(items, greedy)) / n,
        "greedy_eq_beam": sum(g == b for g, b in zip(greedy, beams)) / n,
        "token_accuracy": forced["token_accuracy"],
        "ms_greedy": 1000 * t_greedy / n,
        "ms_beam": 1000 * t_beam / n,
    }


def teacher_modes(teacher, dataset) -> tuple[float, float]:
    """The teacher's mean top probability under the gold prefix at the first letter of a digit's spelling
    (where the references flip a coin) and inside a spelling: how multimodal its per-step distribution is."""
    import numpy as np
    import torch

    from lstmviz.engines.families.seq2seq.api import batch_items

    items = list(dataset)
    b = batch_items(items)
    with torch.no_grad():
        top = torch.softmax(teacher(b.src, b.src_lengths, b.tgt_in), -1).max(-1).values
    starts, inside = [], []
    for i, item in enumerate(items):
        first = {int(x) for x in item.annotations["target_start"]}
        for pos in range(len(item.target)):
            (starts if pos in first else inside).append(float(top[i, pos]))
    return float(np.mean(starts)), float(np.mean(inside))


def params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--items", type=int, default=2000, help="training pairs")
    parser.add_argument("--teacher-steps", type=int, default=1500)
    parser.add_argument("--student-steps", type=int, default=1000)
    parser.add_argument("--test-items", type=int, default=200)
    parser.add_argument("--teacher", help="reuse this teacher checkpoint (of an earlier run) instead of training")
    parser.add_argument("--keep", help="folder to keep the checkpoints in (default: a temporary one)")
    args = parser.parse_args()
    if args.quick:
        args.items, args.teacher_steps, args.student_steps, args.test_items = 600, 150, 100, 60

    import torch

    from lstmviz.engines.checkpoint import load_checkpoint

    torch.set_num_threads(1)  # small matrices: a second thread gains little on 2 shared cores
    train, valid, test = datasets(args.items, args.test_items)
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="kd-claims-"))
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if args.teacher:
        teacher_path, seconds = Path(args.teacher), 0.0
    else:
        teacher_path = folder / "teacher.pt"
        _, seconds = train_model(teacher_path, TEACHER, train, valid, args.teacher_steps)
    print(f"translit: {len(train)} training pairs (max 6 digits), test {len(test)}; teacher {TEACHER} "
          f"{args.teacher_steps} steps ({seconds:.0f} s); students {STUDENT} {args.student_steps} steps; batch 64, "
          "Adam 3e-3")
    rows = []
    teacher, _ = load_checkpoint(teacher_path)
    rows.append(("teacher", params(teacher), seconds, evaluate(teacher, test)))
    for name, settings in (("student: references", {}),
                           ("student: seq-KD", {"distill": "seq", "teacher": str(teacher_path)}),
                           ("student: word-KD a=.5", {"distill": "word", "teacher": str(teacher_path),
                                                      "distill_alpha": 0.5})):
        path = folder / (name.split(": ")[1].split(" ")[0] + ".pt")
        _, seconds = train_model(path, STUDENT, train, valid, args.student_steps, **settings)
        model, _ = load_checkpoint(path)
        rows.append((name, params(model), seconds, evaluate(model, test)))
    print()
    print(f"{'model':<24}{'params':>8}{'train s':>8}{'greedy valid':>13}{'beam valid':>11}{'greedy exact':>13}"
          f"{'greedy=beam':>12}{'tok acc':>8}{'ms/item greedy':>15}{'ms/item beam':>13}")
    for name, n, seconds, m in rows:
        print(f"{name:<24}{n:>8,}{seconds:>8.0f}{m['greedy_valid']:>13.3f}{m['beam_valid']:>11.3f}"
              f"{m['greedy_exact']:>13.3f}{m['greedy_eq_beam']:>12.3f}{m['token_accuracy']:>8.3f}"
              f"{m['ms_greedy']:>15.2f}{m['ms_beam']:>13.2f}")
    t, ref, seq, word = (r[3] for r in rows)
    print()
    print(f"seq-KD - reference student, greedy valid: {seq['greedy_valid'] - ref['greedy_valid']:+.3f} "
          f"(beam: {seq['beam_valid'] - ref['beam_valid']:+.3f}); word-KD - reference: "
          f"{word['greedy_valid'] - ref['greedy_valid']:+.3f}")
    print(f"greedy == beam: seq-KD {seq['greedy_eq_beam']:.3f}, reference {ref['greedy_eq_beam']:.3f}, "
          f"teacher {t['greedy_eq_beam']:.3f}")
    print(f"greedy decoding time teacher / seq-KD student: {t['ms_greedy'] / seq['ms_greedy']:.2f}x; beam: "
          f"{t['ms_beam'] / seq['ms_beam']:.2f}x; parameters {rows[0][1] / rows[2][1]:.1f}x")
    first, inside = teacher_modes(teacher, test)
    print(f"teacher's mean top probability under the gold prefix: {first:.3f} at a spelling's first letter, "
          f"{inside:.3f} inside a spelling (what word-KD passes on)")
    print(f"total {time.perf_counter() - started:.0f} s; checkpoints in {folder}")


if __name__ == "__main__":
    main()
