"""The ``lstmviz`` command.

    lstmviz [FILE]                                   open the window (the bundled demo without FILE)
    lstmviz [FILE] --workspace W                     restore a saved workspace (on FILE, else on its recording)
    lstmviz --screenshot PNG [FILE] [--workspace W]  render the window offscreen to PNG and exit
    lstmviz train ENGINE --dataset D --out CKPT      train a built-in engine
    lstmviz record (ENGINE|CKPT [CKPT ...]) --dataset D --out FILE
                                                     record hidden states into a recording (several
                                                     checkpoints of one run: one recording of all)
    torchrun --nproc-per-node N -m lstmviz record ...  the same, N processes: one shard each, one logical file
    lstmviz info FILE                                summarise a recording
    lstmviz probe FILE --label L                     linear probes per tap (with control task and baselines)
    lstmviz annotate FILE --from LABELS.csv          attach annotations to a recording
    lstmviz prune CKPT --scheme S --fraction X --out P.pt  magnitude pruning of a seq2seq model by weight
                                                     class (See et al.), --retrain-epochs N with masks fixed
    lstmviz prune CKPT --method M --sparsity X --out P.pt  global loss-model pruning (Laurent et al.: mp, lm,
                                                     qm, obd; --steps S --lambda L --curvature C)
    lstmviz perturb FILE --tap T --action A --out T.csv  re-run the live model with hidden states edited
                                                     (image recordings: also --occlude Y0,X0,Y1,X1,
                                                     or --attack lbfgs|pgd-linf|pgd-l2)
    lstmviz btest FILE --tap T --groups ANNOT=A,B    B-test: do two groups of states differ in distribution
                                                     (one vector per item; BH over several --tap)
    lstmviz index FILE [FILE ...] --tap T            build the match index (of each shard in parallel)
    lstmviz match FILE [FILE ...] --tap T --units U  whole-corpus matching (over shards: the single file's
                                                     results; on a Dask cluster with --scheduler ADDRESS)
    lstmviz ntk FILE --label L [--over-training]     tangent-kernel alignment and effective rank per layer,
                                                     NTK spectrum with the label energy (lstmviz/cli_ntk.py)
    lstmviz analogy SOURCE --generate morphology     embedding geometry: neighbours, analogies, Linzen's
                                                     baselines per relation (lstmviz/cli_analogy.py)

Heavy imports (torch, Qt) happen inside the command that needs them, so ``lstmviz info`` and
``--help`` stay fast. Every string that comes from a file is printed through
``lstmviz.console.printable`` (no terminal escape sequences); every mistake on the command line is
one line on stderr (exit 2 with the usage, 1 for a file or value that cannot be used); Ctrl-C stops
any command (exit 130, "interrupted") and leaves the files it would have replaced as they were.
"""

from __future__ import annotations

import argparse
import functools
import glob
import itertools
import json
import os
import signal
import sys
from pathlib import Path

from lstmviz.console import printable, printable_lines, progress_task
from lstmviz.errors import ExpectedError, is_expected, one_line

COMMANDS = {
    "train": "train a built-in engine on a dataset",
    "record": "record a model's hidden states over a dataset into a recording file",
    "info": "summarise a recording",
    "probe": "fit linear probes per tap for an annotation",
    "annotate": "attach annotations from a CSV file to a recording",
    "perturb": "re-run the model of a recording with hidden states edited; what changes",
    "btest": "kernel two-sample B-test between two groups of states (items as the sampling unit)",
    "prune": "prune a checkpoint: loss-model pruning of any language or image model (--method), or a seq2seq "
             "model by weight class (--scheme); a pruned checkpoint",
    "index": "build the match index of a tap (of every shard of a sharded recording, in parallel)",
    "match": "find where units are on together in the whole corpus (one recording or its shards)",
    "ntk": "tangent-kernel alignment and effective rank per layer (over training), NTK spectrum",
    "analogy": "nearest neighbours and analogies in an embedding table, with Linzen's baselines",
}
DEFAULT_MAX_SIZE = "2G"
#: btest: fewer blocks than this get a note that the p-value's normal approximation is rough
FEW_BLOCKS = 10


class _Parser(argparse.ArgumentParser):
    """argparse, with the offending text in its error messages escaped (``printable``)."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {printable(message)}\n")


def _say(text, file=None) -> None:
    print(printable_lines(text), file=sys.stdout if file is None else file)


class UsageError(ExpectedError):
    """A problem with the command line; printed with the usage of the command."""


def _key_values(pairs: list[str] | None, what: str) -> dict:
    """Parse ``key=value`` pairs; values are JSON when they parse as JSON, else strings."""
    out: dict = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} must look like KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _open_parser() -> argparse.ArgumentParser:
    commands = "\n".join(f"  lstmviz {name:<9} {what}" for name, what in COMMANDS.items())
    p = _Parser(
        prog="lstmviz",
        description="Visual analysis of the hidden states of recurrent networks.",
        epilog=f"commands (each has --help):\n{commands}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", nargs="?", help="recording to open (default: the bundled demo)")
    p.add_argument("--screenshot", metavar="PNG", help="render the main window offscreen to PNG and exit")
    p.add_argument("--size", metavar="WxH", default="1400x850",
                   help="window size for --screenshot, e.g. 1600x1100 (default: 1400x850)")
    p.add_argument("--workspace", metavar="W",
                   help="a saved workspace (File > Save Workspace) to restore: panes, selections, window; "
                        "on FILE when given, else on the recording it names")
    p.add_argument("--units", metavar="LIST", help="units of the shown tap to draw in colour, e.g. '3,17,40-42'")
    p.add_argument("--version", action="version", version=_version())
    return p


def _train_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lstmviz train", description="Train a built-in engine on a dataset.")
    p.add_argument("engine", help="engine name (see `lstmviz train --list`)", nargs="?")
    p.add_argument("--list", action="store_true", help="list engines and datasets and exit")
    p.add_argument("--dataset", help="dataset name (default: the engine's default dataset)")
    p.add_argument("--out", "-o", help="checkpoint file to write")
    p.add_argument("--steps", type=int, help="optimisation steps (default: the engine's)")
    p.add_argument("--seed", type=int, help="seed (default 0)")
    p.add_argument("--set", dest="config", action="append", metavar="KEY=VALUE",
                   help="engine hyperparameter, e.g. --set hidden_size=64 (repeatable)")
    p.add_argument("--train", dest="train", action="append", metavar="KEY=VALUE",
                   help="training setting, e.g. --train lr=0.002 --train batch_size=32 (repeatable); "
                        "--train checkpoint_every=200 --train keep_checkpoints=1 also keeps the initial, "
                        "every periodic and the final checkpoint as OUT-stepNNNNNN.pt beside --out, for "
                        "`lstmviz record` of several checkpoints")
    p.add_argument("--dataset-option", dest="dataset_options", action="append", metavar="KEY=VALUE",
                   help="dataset option, e.g. --dataset-option tokens=200000 (repeatable)")
    p.add_argument("--no-valid", action="store_true", help="skip validation")
    p.add_argument("--quiet", action="store_true",
                   help="no progress (else a bar on a terminal, a line every few seconds otherwise)")
    return p


#: the options of ``lstmviz prune``'s loss-model form (--method), refused with --scheme
_LOSS_PRUNE_OPTIONS = {"sparsity": "--sparsity", "steps": "--steps", "lam": "--lambda", "curvature": "--curvature",
                       "schedule": "--schedule", "items": "--items", "split": "--split", "samples": "--samples",
                       "params": "--param"}


def _prune_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lstmviz prune",
                description="Two forms. Loss-model pruning (--method; Laurent et al. 2020) of any language-model or "
                            "image-classifier checkpoint: global masks over all weight matrices ranked by MP |θ|², "
                            "LM |−gθ|, QM |−gθ + ½hθ²| or OBD ½hθ² (+ ½λθ²), in --steps steps, with the gradient "
                            "and a diagonal curvature re-estimated on --items examples at each step; prints predicted "
                            "against measured Δloss per step. Class-based magnitude pruning of a seq2seq checkpoint "
                            "(--scheme; See, Luong & Manning 2016): class-blind (one global threshold), class-uniform "
                            "(the fraction of every class) or class-distribution (thresholds lambda*sigma_c). Both "
                            "optionally retrain with the masks fixed and write a checkpoint that carries its masks "
                            "(docs/analysis.md, docs/engines.md).")
    p.add_argument("checkpoint", help="the checkpoint to prune")
    p.add_argument("--method", choices=("mp", "lm", "qm", "obd"),
                   help="loss model (Laurent et al.): mp magnitude, lm linear, qm quadratic, obd Optimal Brain Damage")
    p.add_argument("--sparsity", type=float, help="--method: fraction of the weights to prune, 0 <= X < 1")
    p.add_argument("--steps", type=int, help="--method: pruning steps reaching --sparsity (default 1)")
    p.add_argument("--lambda", dest="lam", type=float, help="--method: locality term ½λθ² added to every saliency "
                                                             "(default 0)")
    p.add_argument("--curvature", choices=("fisher", "ggn", "sampled-fisher", "hessian", "hutchinson"),
                   help="--method: diagonal curvature (default fisher: the empirical Fisher; ggn: exact true Fisher, "
                        "one prediction per example; sampled-fisher: labels sampled from the model)")
    p.add_argument("--schedule", choices=("exponential", "linear"), help="--method: sparsity schedule (default "
                                                                           "exponential)")
    p.add_argument("--items", type=int, help="--method: examples of the split for gradients, curvature and the "
                                             "measured Δloss (default 1000)")
    p.add_argument("--split", help="--method: the dataset split pruned on (default train)")
    p.add_argument("--samples", type=int, help="--method: sampled labels (sampled-fisher) or Rademacher vectors "
                                               "(hutchinson) per step (default 1 / 16)")
    p.add_argument("--param", dest="params", action="append", metavar="PATTERN",
                   help="--method: prune only these parameters (names or shell patterns, repeatable; default every "
                        "weight matrix, biases and gains unpruned)")
    p.add_argument("--scheme", choices=("class-blind", "class-uniform", "class-distribution"),
                   help="seq2seq class-based magnitude pruning (See et al.)")
    p.add_argument("--fraction", type=float, help="--scheme: fraction of the prunable weights to remove, 0..1")
    p.add_argument("--out", "-o", required=True, help="the pruned checkpoint to write")
    p.add_argument("--retrain-epochs", type=float, default=0.0,
                   help="passes over the training data with the masks fixed (default 0: no retraining; --method: "
                        "SGD with momentum 0.9)")
    p.add_argument("--retrain-lr", type=float, help="learning rate of retraining (default 0.001 Adam with --scheme, "
                                                    "0.01 SGD with --method)")
    p.add_argument("--batch-size", type=int, help="examples per step (default: the checkpoint's training batch "
                                                  "size; 64 with --method)")
    p.add_argument("--dataset", help="dataset (default: the checkpoint's, with its options)")
    p.add_argument("--dataset-option", dest="dataset_options", action="append", metavar="KEY=VALUE",
                   help="dataset option (repeatable)")
    p.add_argument("--valid-items", type=int, default=500,
                   help="validation items measured before and after (default 500; 0: no validation)")
    p.add_argument("--seed", type=int, default=0, help="seed of retraining and of sampled curvature (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress")
    return p


def _record_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="lstmviz record",
        description="Run a model over a dataset split and record its hidden states into a recording file. "
                    "Given several checkpoint files of one training run (e.g. from `lstmviz train --train "
                    "checkpoint_every=200 --train keep_checkpoints=1`), it records the states of each over "
                    "the same items into one recording, ordered by training step; the last checkpoint's "
                    "states are the recording's main states. Under torchrun (torchrun --nproc-per-node N -m "
                    "lstmviz record ...) each process records its block of the items into OUT's folder "
                    "<stem>.shards/ and rank 0 writes OUT over the shards; running it again resumes (docs/scale.md).",
    )
    p.add_argument("model", nargs="+", metavar="CKPT|ENGINE",
                   help="a checkpoint file written by `lstmviz train`, several checkpoint files of one "
                        "training run, or an engine name (untrained)")
    p.add_argument("--dataset", help="dataset name (default: the checkpoint's dataset)")
    p.add_argument("--split", default="test", help="dataset split (default: test)")
    p.add_argument("--out", "-o", required=True, help="recording file to write (.h5)")
    p.add_argument("--signals", "--taps", dest="signals", nargs="+", metavar="PATTERN",
                   help="tap names or patterns to record, e.g. 'layer*/c' (default: all); under torchrun write "
                        "--taps, as torchrun reads --signals as an abbreviation of its own --signals-to-handle")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16",
                   help="storage dtype (default float16: half the size, error <= 4.9e-4 for |x| <= 1; "
                        "float32 for unbounded values whose small differences matter, see docs/format.md)")
    p.add_argument("--max-size", default=DEFAULT_MAX_SIZE, metavar="SIZE",
                   help=f"refuse to write a recording estimated above SIZE, e.g. 500M, 10G, none "
                        f"(default {DEFAULT_MAX_SIZE})")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--decode", choices=("teacher-forced", "greedy", "beam"), default="teacher-forced",
                   help="seq2seq models: the decoder reads the reference (teacher-forced, default) or its own "
                        "greedy or beam-search output; the decoder axis holds those tokens")
    p.add_argument("--beam", type=int, default=5, help="seq2seq --decode beam: hypotheses kept (default 5)")
    p.add_argument("--max-len", type=int, help="seq2seq greedy/beam: most tokens decoded (default 2 x longest "
                                                "source + 10)")
    p.add_argument("--length-penalty", type=float, default=0.0,
                   help="seq2seq --decode beam: GNMT length penalty alpha (default 0: plain log-probability)")
    p.add_argument("--max-items", type=int, help="record only the first N items (with --modes: N source items, "
                                                 "each recorded once per mode)")
    p.add_argument("--seed", type=int, default=0, help="initialisation seed for an untrained engine")
    p.add_argument("--modes", metavar="MODE[,MODE]",
                   help="language models: record each item in these modes, e.g. teacher-forced,free-running "
                        "(free-running: the model's own sampled tokens from the item's first token), with item "
                        "annotations mode and pair and the position annotation tf_fr_distance")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the free-running samples (default 0)")
    p.add_argument("--set", dest="config", action="append", metavar="KEY=VALUE",
                   help="hyperparameter of an untrained engine (repeatable)")
    p.add_argument("--dataset-option", dest="dataset_options", action="append", metavar="KEY=VALUE",
                   help="dataset option (repeatable)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress (else a bar on a terminal, a line every few seconds otherwise)")
    return p


def _info_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lstmviz info", description="Print a summary of a recording.")
    p.add_argument("file", help="recording file")
    return p


def _annotate_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="lstmviz annotate",
        description="Attach annotations to a recording from a CSV file: a header row naming the annotations, "
                    "then one row per position (in the recording's order, items one after another) or one "
                    "row per item. A column whose values are all numbers is numeric, any other categorical "
                    "(an empty cell is a missing value). The recording is replaced only when the annotated "
                    "copy is complete and valid; its other annotations are kept.")
    p.add_argument("file", help="recording file")
    p.add_argument("--from", dest="table", required=True, metavar="LABELS.csv",
                   help="the annotations: CSV (or .tsv), one column per annotation")
    p.add_argument("--columns", nargs="+", metavar="NAME", help="import only these columns (default: all)")
    p.add_argument("--level", choices=("position", "item"),
                   help="one row per position or per item (default: decided by the number of rows)")
    p.add_argument("--kind", dest="kinds", action="append", metavar="NAME=KIND",
                   help="categorical or numeric for one column, overriding the guess (repeatable)")
    p.add_argument("--replace", action="store_true", help="replace annotations of the same name")
    return p


def _probe_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="lstmviz probe",
        description="Fit a linear probe per tap for a categorical annotation (with the control task and the "
                    "input-token baseline) and print held-out accuracies; results are cached beside the file.")
    p.add_argument("file", help="recording file")
    p.add_argument("--label", required=True, help="a categorical annotation of the recording")
    p.add_argument("--taps", nargs="+", metavar="TAP", help="taps to probe (default: every tap on the main axis)")
    p.add_argument("--shift", type=int, default=0, help="predict the label of position t+SHIFT (default 0)")
    p.add_argument("--at", choices=("all", "last"), default=None,
                   help="positions: all, or the last of each item (default: last for an item-level label)")
    p.add_argument("--no-control", action="store_true", help="skip the control task")
    p.add_argument("--pool", choices=("mean", "max"), default="mean",
                   help="image recordings, item labels: how a feature map becomes one vector per image "
                        "(default mean: global average pooling)")
    p.add_argument("--curves", action="store_true",
                   help="probe every checkpoint of a multi-checkpoint recording (accuracy against step)")
    p.add_argument("--out", metavar="TABLE", help="also write the table (.csv or .npy)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress (else a bar on a terminal, a line every few seconds otherwise)")
    return p


def cmd_probe(args: argparse.Namespace) -> int:
    from lstmviz.analysis.export_data import SUFFIXES, write_table
    from lstmviz.analysis.probe_report import probe_curves, run_probes
    from lstmviz.recording import open_recording

    if not Path(args.file).exists():
        raise UsageError(f"no such file: {args.file}")
    if args.out and Path(args.out).suffix.lower() not in SUFFIXES:
        raise UsageError(f"--out must end in {' or '.join(SUFFIXES)}, got {args.out!r}")
    if args.out and not Path(args.out).parent.is_dir():
        raise UsageError(f"--out {args.out}: the folder {str(Path(args.out).parent)!r} does not exist")
    with open_recording(args.file) as rec:
        info = rec.annotations.get(args.label)
        if info is None or info.kind != "categorical":
            names = [n for n, a in rec.annotations.items() if a.kind == "categorical"]
            raise UsageError(f"--label must be a categorical annotation of {args.file}: "
                             f"{', '.join(names) if names else 'it has none'}; got {args.label!r}")
        unknown = [t for t in args.taps or [] if t not in rec.taps]
        if unknown:
            raise UsageError(f"--taps: {args.file} has no tap {unknown[0]!r}; it has {', '.join(rec.taps)}")
        longest = int((rec.item_offsets[1:] - rec.item_offsets[:-1]).max()) if rec.n_items else 0
        if abs(args.shift) >= max(1, longest):
            raise UsageError(f"--shift {args.shift} reaches past every item (the longest has {longest:,} "
                             f"positions); use a shift between {-(longest - 1)} and {longest - 1}")
        at = args.at or ("last" if info.level == "item" else "all")
        options = {"shift": args.shift, "at": at, "control": not args.no_control}
        with progress_task("probes", unit="steps", quiet=args.quiet) as task:
            if args.curves:
                result = probe_curves(rec, args.label, args.taps, task=task, pool=args.pool, **options)
                reports = result.reports
            else:
                try:
                    result = run_probes(rec, args.label, args.taps, task=task, pool=args.pool, **options)
                except ValueError as e:  # no tap can carry the label, a shift on pooled rows, ...
                    raise UsageError(str(e)) from None
                reports = [result]
        for report in reports:
            _say(_probe_text(report))
        if args.out:
            _say(f"wrote {write_table(args.out, result.table())}")
    return 0


def _probe_text(report) -> str:
    rows = [report.rows_of(t) for t in report.taps]
    on_rows = any(r != "positions" and not r.startswith("last") for r in rows)  # an image recording's rows
    head = f"{report.annotation}" + (f" at t{report.shift:+d}" if report.shift else "") + \
        (" (last position of each item)" if report.at == "last" and not on_rows else "")
    if report.checkpoint:
        head += f" — checkpoint {report.checkpoint}" + (f" (step {report.step})" if report.step is not None else "")
    lines = [f"{head}: majority class {100 * report.majority_accuracy:.1f}%"]
    width = max(len(t) for t in [*report.taps, "input tokens"])
    mixed = report.mixed_rows()
    row_text = {t: f"{report.axis_of(t)}: {report.rows_of(t)}" for t in report.taps}
    rw = max(len(v) for v in [*row_text.values(), "rows"])
    extra = (f"  {'rows':<{rw}}" if on_rows else "") + ("  majority" if mixed else "")
    lines.append(f"  {'tap':<{width}}  accuracy [95% CI]        control   selectivity        l2{extra}")
    unconverged = []
    for tap in report.taps:
        p, c = report.probes[tap], report.controls.get(tap)
        ctrl = f"{100 * c.accuracy:6.1f}%" if c else "      -"
        sel = f"{100 * report.selectivity(tap):+8.1f}" if c else "        -"
        lines.append(f"  {tap:<{width}}  {100 * p.accuracy:5.1f}% [{100 * p.ci_low:5.1f}, {100 * p.ci_high:5.1f}]"
                     f"  {ctrl}  {sel}  {p.l2:8.0e}"
                     + (f"  {row_text[tap]:<{rw}}" if on_rows else "")
                     + (f"  {100 * p.majority_accuracy:7.1f}%" if mixed else ""))
        unconverged += [f"{tap}{' (control)' if r is c else ''}" for r in (p, c) if r is not None and not r.converged]
    if report.baseline is not None:
        b = report.baseline
        lines.append(f"  {'input tokens':<{width}}  {100 * b.accuracy:5.1f}% [{100 * b.ci_low:5.1f}, "
                     f"{100 * b.ci_high:5.1f}]")
    if on_rows:
        notes = []
        if any(r.startswith(("mean over", "max over")) for r in rows):
            notes.append(f"a feature map is probed by one vector per image, its {report.pool} over the map's cells")
        if "pixels flattened" in rows:
            notes.append("the input by its pixels flattened (the linear classifier on the raw image)")
        if any(r.startswith("cells") for r in rows):
            notes.append("a feature map's cells carry the label of the input pixel(s) under their centre "
                         "(a tie of 2 or 4 pixels: no label)")
        if notes:
            lines.append("note: " + "; ".join(notes) + "; items (images) are split into train/validation/test")
    if mixed:
        lines.append("note: the rows differ between taps (pixels, cells of maps of different sizes), so each "
                     "has its own majority-class baseline (last column)")
    for tap, why in report.skipped.items():
        lines.append(f"skipped {why}")
    if report.split_unit == "positions":
        train, valid, test = report.split_sizes
        lines.append(f"note: the recording has fewer than 3 items, so its positions were split ({train} train, "
                     f"{valid} validation, {test} test), not its items; positions of one graph or sequence "
                     f"share their inputs, so these scores are optimistic and the intervals narrow")
    if unconverged:
        lines.append(f"note: the optimiser stopped at its iteration limit before converging for "
                     f"{', '.join(unconverged)}; {'their' if len(unconverged) > 1 else 'its'} accuracy may "
                     f"be a little low")
    return "\n".join(lines)


def _btest_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="lstmviz btest",
        description="Kernel two-sample B-test (Zaremba, Gretton, Blaschko 2013) between two groups of states "
                    "of a recording, per tap: does the distribution of the states differ? Items are the "
                    "sampling unit: each item gives one vector (a random row of it in the group, or the mean "
                    "of those rows), and an item with rows in both groups serves one group only. Several "
                    "--tap: the decisions are corrected over the taps (Benjamini-Hochberg at --alpha).")
    p.add_argument("file", help="recording file")
    p.add_argument("--tap", dest="taps", action="append", required=True, metavar="T",
                   help="tap to test (repeatable)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--groups", metavar="ANNOT=A,B",
                   help="two labels of a categorical annotation (per item: any tap; per position: taps on "
                        "the main axis)")
    g.add_argument("--rows-a", metavar="FILE.npy", help="rows of group A on the taps' axis (with --rows-b)")
    p.add_argument("--rows-b", metavar="FILE.npy", help="rows of group B on the taps' axis")
    p.add_argument("--units", metavar="LIST", help="only these units of every tap, e.g. '0,3,5-7'")
    p.add_argument("--steps", metavar="LIST",
                   help="test each tap once per item-local position (time step) in LIST, e.g. '0,10,20-22', on "
                        "the items' states at that step (teacher-forced vs free-running per layer and step); the "
                        "correction then runs over every tap and step")
    p.add_argument("--block-size", type=int, metavar="B", help="block size (default: floor(sqrt(n)))")
    p.add_argument("--alpha", type=float, default=0.05, help="level of each test and of the BH correction")
    p.add_argument("--per-item", choices=("sample", "mean"), default="sample",
                   help="one random row per item (default) or the mean of the item's rows in the group")
    p.add_argument("--seed", type=int, default=0, help="seed of the item sampling and the blocks (default 0)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    return p


def _load_rows(path: str, option: str):
    import numpy as np

    if not Path(path).is_file():
        raise UsageError(f"{option}: no such file: {path}")
    try:
        rows = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{option}: {path} is not a .npy array of rows ({one_line(exc)})") from None
    if rows.dtype.kind not in "iu":
        raise UsageError(f"{option}: {path} must hold integer row numbers, got dtype {rows.dtype}")
    return rows.ravel()


def _finite(v):
    import math

    return v if isinstance(v, (bool, int)) or math.isfinite(v) else None


def _btest_table(comparison, file: str) -> str:
    g = comparison.groups
    lines = [f"B-test {g.name_a} vs {g.name_b} in {file}: {g.description}",
             f"one vector per item ({comparison.per_item}), alpha {comparison.alpha:g}, seed {comparison.seed}"
             + (f", units {','.join(map(str, comparison.units))}" if comparison.units else "")]
    stepped = any(t.step is not None for t in comparison.tests)
    names = [t.tap + (f" @{t.step}" if t.step is not None else "") for t in comparison.tests]
    width = max(len(n) for n in names + ["tap @step" if stepped else "tap"])
    lines.append(f"  {'tap @step' if stepped else 'tap':<{width}}  items A/B      n    B  statistic   std.err   "
                 f"p-value   BH p     decision")
    for name, t in zip(names, comparison.tests):
        r = t.result
        decision = "differ" if t.reject_bh else ("n/a (1 block)" if r.n_blocks == 1 else "no difference")
        lines.append(f"  {name:<{width}}  {t.items_a:>4}/{t.items_b:<4}  {r.n:>5} {r.block_size:>4}  "
                     f"{r.statistic:9.3g}  {r.std_error:8.2g}  {r.p_value:8.2g}  {t.adjusted_p:8.2g}  {decision}")
        if t.dropped:
            lines.append(f"  note: {t.tap}: {t.dropped} item vector(s) held NaN or inf and were left out")
    few = min(t.result.n_blocks for t in comparison.tests)
    if 1 < few < FEW_BLOCKS:
        lines.append(f"note: {few} blocks only: the normal approximation behind the p-value is rough, so read "
                     f"very small p-values as 'far beyond chance', not as exact (more items give more blocks)")
    if len(comparison.tests) > 1:
        what = "taps and steps" if stepped else "taps"
        lines.append(f"decisions: Benjamini-Hochberg over {len(comparison.tests)} {what} at q = {comparison.alpha:g}")
    return "\n".join(lines)


def cmd_btest(args: argparse.Namespace) -> int:
    import numpy as np

    from lstmviz.analysis.btest_groups import annotation_groups, compare_groups, row_groups
    from lstmviz.analysis.unit_spec import parse_units
    from lstmviz.recording import open_recording

    if not Path(args.file).exists():
        raise UsageError(f"no such file: {args.file}")
    if (args.rows_a is None) != (args.rows_b is None):
        raise UsageError("--rows-a and --rows-b go together")
    if args.block_size is not None and args.block_size < 2:
        raise UsageError(f"--block-size must be at least 2, got {args.block_size}")
    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha must lie between 0 and 1, got {args.alpha}")
    with open_recording(args.file) as rec:
        unknown = [t for t in args.taps if t not in rec.taps]
        if unknown:
            raise UsageError(f"--tap: {args.file} has no tap {unknown[0]!r}; it has {', '.join(rec.taps)}")
        units = None
        if args.units:
            narrowest = min(rec.taps[t].units for t in args.taps)
            try:
                units = parse_units(args.units, narrowest, f"the narrowest tap given ({narrowest} units)")
            except ValueError as exc:
                raise UsageError(f"--units: {exc}") from None
        steps = None
        if args.steps:
            longest = max(int(np.diff(rec.axis_offsets(rec.taps[t].axis)).max()) for t in args.taps)
            try:
                steps = parse_units(args.steps, longest, f"the longest item ({longest} positions)")
            except ValueError as exc:
                raise UsageError(f"--steps: {exc}") from None
        try:
            if args.groups is not None:
                name, sep, labels = args.groups.partition("=")
                label_a, comma, label_b = labels.partition(",")
                if not (sep and comma and name and label_a and label_b):
                    raise UsageError(f"--groups must look like ANNOT=LABEL_A,LABEL_B, got {args.groups!r}")
                groups = annotation_groups(rec, name, label_a, label_b)
            else:
                axes = {rec.taps[t].axis for t in args.taps}
                if len(axes) > 1:
                    raise UsageError(f"--rows-a/--rows-b are rows of one axis, but the taps lie on "
                                     f"{', '.join(sorted(axes))}; test them one axis at a time")
                groups = row_groups(_load_rows(args.rows_a, "--rows-a"), _load_rows(args.rows_b, "--rows-b"),
                                    axes.pop(), names=(Path(args.rows_a).stem, Path(args.rows_b).stem))
            comparison = compare_groups(rec, args.taps, groups, units=units, per_item=args.per_item,
                                        block_size=args.block_size, alpha=args.alpha, seed=args.seed, steps=steps)
        except ValueError as exc:
            raise UsageError(one_line(exc)) from None
    if args.json:
        g = comparison.groups
        out = {"file": str(args.file), "group_a": g.name_a, "group_b": g.name_b, "description": g.description,
               "per_item": comparison.per_item, "units": list(units) if units else None,
               "alpha": comparison.alpha, "seed": comparison.seed, "tests": []}
        for t in comparison.tests:
            r = t.result
            out["tests"].append({
                "tap": t.tap, "step": t.step, "items_a": t.items_a, "items_b": t.items_b, "dropped": t.dropped,
                "n": r.n, "block_size": r.block_size, "n_blocks": r.n_blocks, "bandwidth": r.bandwidth,
                "statistic": _finite(r.statistic), "std_error": _finite(r.std_error),
                "p_value": _finite(r.p_value), "reject": r.reject,
                "adjusted_p": _finite(t.adjusted_p), "reject_bh": t.reject_bh})
        print(json.dumps(out, indent=1))
    else:
        _say(_btest_table(comparison, args.file))
    return 0


def _perturb_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="lstmviz perturb",
        description="Re-run the model that made a recording (its checkpoint) on items of the recording with the "
                    "states of one tap edited, and write what changes: per item the mean and max change of the "
                    "next-token loss (dnll) and the mean KL divergence of the predictions, or per position "
                    "with --per-position. The recording is only read.")
    p.add_argument("file", help="recording file (made by `lstmviz record` from a checkpoint)")
    p.add_argument("--tap", help="the tap to edit, e.g. layer0/c (required, except for an image recording with "
                                 "--occlude only)")
    p.add_argument("--units", default="all", metavar="LIST", help="units to edit: 3,17,40-42 or all (default all)")
    p.add_argument("--positions", default="all", metavar="P",
                   help="item-local positions to edit: 5:10 (5 to 9), 5,7,9 or all (default all); on an image "
                        "recording the cells of the tap's map in raster order (y * width + x)")
    p.add_argument("--items", default="all", metavar="LIST", help="items to run: 0,4,7-9 or all (default all)")
    p.add_argument("--action", choices=("ablate", "clamp", "add", "patch"),
                   help="what to do to the tap's units (required with --tap)")
    p.add_argument("--occlude", metavar="Y0,X0,Y1,X1",
                   help="image recordings: occlude the input pixels in this box (half-open, input pixels) before "
                        "the run; with or without --tap")
    p.add_argument("--fill", default="zero", metavar="F",
                   help="--occlude: zero, mean (the image's channel means), blur (a 5x5 box blur) or a value in "
                        "[0, 1] (default zero)")
    p.add_argument("--attack", choices=("lbfgs", "pgd-linf", "pgd-l2"),
                   help="image recordings: search each image for an adversarial change instead (Szegedy et al.'s "
                        "box-constrained L-BFGS: the smallest r that changes the prediction; or PGD within --eps); "
                        "a row per item and tap with the attack's target, flip, |r| and each layer's change")
    p.add_argument("--switch", action="append", default=[], metavar="NAME=VALUE",
                   help="image recordings: run the model with a structural switch changed (repeatable): drop a "
                        "modality (hemis: modality1=off), force a branch (colorization-codec: branch=2), prune "
                        "edges (cnmm: prune=0.5); `--switch list` prints the model's switches")
    p.add_argument("--target", type=int, metavar="CLASS",
                   help="--attack: the class to reach (default: any other class than the model's prediction)")
    p.add_argument("--eps", type=float, default=0.1,
                   help="--attack pgd-linf / pgd-l2: the radius of the perturbation in pixels (default 0.1)")
    p.add_argument("--to", choices=("zero", "mean"), default="zero",
                   help="ablate: to zero or to each unit's mean over the recording (default zero)")
    p.add_argument("--value", type=float, help="clamp: the value")
    p.add_argument("--direction", default="unit", metavar="D",
                   help="add: unit, random, probe:ANNOTATION:CLASS, means:ANNOTATION:A:B or FILE.npy "
                        "(one value per edited unit); scaled to length ALPHA (default unit)")
    p.add_argument("--alpha", type=float, default=1.0, help="add: the length of the added vector (default 1)")
    p.add_argument("--seed", type=int, default=0, help="add --direction random: the seed (default 0)")
    p.add_argument("--sweep", metavar="A1,A2,...", help="add: run every alpha of the list (a row per item and alpha); write --sweep=-2,0,2 when the "
                        "first is negative")
    p.add_argument("--source-item", type=int, help="patch: the item whose states are copied")
    p.add_argument("--source-start", type=int, default=0,
                   help="patch: the first position copied from the source item (default 0)")
    p.add_argument("--checkpoint", metavar="PATH", help="the checkpoint, when it is not where the recording says")
    p.add_argument("--per-position", action="store_true", help="one row per position instead of one per item")
    p.add_argument("--batch-size", type=int, default=32, help="items per forward pass (default 32)")
    p.add_argument("--out", required=True, metavar="TABLE", help="the table to write (.csv or .npy)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress (else a bar on a terminal, a line every few seconds otherwise)")
    return p


def _perturb_positions(text: str) -> tuple[int, ...] | None:
    text = text.strip()
    if text == "all":
        return None
    if ":" in text:
        a, _, b = text.partition(":")
        try:
            start, stop = int(a), int(b)
        except ValueError:
            raise UsageError(f"--positions must be START:STOP (e.g. 5:10), a list (5,7,9) or all; got {text!r}") \
                from None
        if not 0 <= start < stop:
            raise UsageError(f"--positions {text}: START:STOP needs 0 <= START < STOP (5:10 is 5 to 9)")
        return tuple(range(start, stop))
    from lstmviz.analysis.unit_spec import unit_ranges

    try:
        ranges = unit_ranges(text)
    except ValueError:
        raise UsageError(f"--positions must be START:STOP (e.g. 5:10), a list (5,7,9) or all; got {text!r}") from None
    return tuple(p for first, last in ranges for p in range(first, min(last, first + 10**6) + 1))


def _perturb_items(text: str, n_items: int) -> list[int]:
    from lstmviz.analysis.unit_spec import unit_ranges

    if text.strip() == "all":
        return list(range(n_items))
    try:
        ranges = unit_ranges(text)
    except ValueError:
        raise UsageError(f"--items must be a list like 0,4,7-9 or all; got {text!r}") from None
    highest = max(last for _, last in ranges)
    if highest >= n_items:
        raise UsageError(f"--items: item {highest} does not exist; the recording has items 0 to {n_items - 1}")
    return [i for first, last in ranges for i in range(first, last + 1)]


def _perturb_spec(args, rec):
    from lstmviz.analysis.unit_spec import parse_units
    from lstmviz.perturb import Perturbation

    fields: dict = {"tap": args.tap, "action": args.action}
    info = rec.taps.get(args.tap)
    if args.units.strip() != "all":
        if info is None:
            raise UsageError(f"--tap: {args.file} has no tap {args.tap!r}; it has {', '.join(rec.taps)}")
        try:
            fields["units"] = tuple(parse_units(args.units, info.units, f"tap {args.tap}"))
        except ValueError as exc:
            raise UsageError(f"--units: {exc}") from None
    fields["positions"] = _perturb_positions(args.positions)
    if args.action == "ablate":
        fields["ablate_to"] = args.to
    elif args.action == "clamp":
        if args.value is None:
            raise UsageError("--action clamp needs --value V")
        fields["value"] = args.value
    elif args.action == "add":
        fields.update(alpha=args.alpha, seed=args.seed, **_perturb_direction(args.direction))
    elif args.source_item is None:
        raise UsageError("--action patch needs --source-item I (and --source-start S)")
    if args.action == "patch":
        fields.update(source_item=args.source_item, source_start=args.source_start)
    if args.sweep and args.action != "add":
        raise UsageError(f"--sweep needs --action add; {args.action} has no alpha")
    return Perturbation(**fields)


def _perturb_direction(text: str) -> dict:
    import numpy as np

    kind, _, rest = text.partition(":")
    if text in ("unit", "random"):
        return {"direction": text}
    if kind == "probe":
        parts = rest.split(":")
        if len(parts) != 2 or not all(parts):
            raise UsageError(f"--direction probe needs probe:ANNOTATION:CLASS, got {text!r}")
        return {"direction": "probe", "probe_label": parts[0], "probe_class": parts[1]}
    if kind == "means":
        parts = rest.split(":")
        if len(parts) != 3 or not all(parts):
            raise UsageError(f"--direction means needs means:ANNOTATION:A:B, got {text!r}")
        return {"direction": "means", "means_label": parts[0], "means_classes": (parts[1], parts[2])}
    if text.endswith(".npy"):
        if not Path(text).is_file():
            raise UsageError(f"--direction: no such file: {text}")
        try:
            vector = np.load(text, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--direction {text} is not a readable .npy array ({one_line(exc)})") from None
        if vector.ndim != 1 or vector.dtype.kind not in "iuf":
            raise UsageError(f"--direction {text} must hold one number per edited unit (a 1-D array), got "
                             f"{vector.dtype} {list(vector.shape)}")
        return {"direction": "vector", "vector": tuple(float(v) for v in vector)}
    raise UsageError(f"--direction must be unit, random, probe:ANNOTATION:CLASS, means:ANNOTATION:A:B or FILE.npy; "
                     f"got {text!r}")


def _sweep_alphas(text: str) -> list[float]:
    import math

    try:
        alphas = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise UsageError(f"--sweep must be numbers separated by commas, e.g. -2,0,2; got {text!r}") from None
    if not alphas or not all(math.isfinite(a) for a in alphas):
        raise UsageError(f"--sweep must be finite numbers separated by commas, e.g. -2,0,2; got {text!r}")
    return alphas


def _columns(rows: list[dict]) -> dict:
    import numpy as np

    keys = list(dict.fromkeys(k for row in rows for k in row))
    return {k: np.asarray([row.get(k, float("nan")) for row in rows]) for k in keys}


def cmd_perturb(args: argparse.Namespace) -> int:
    import dataclasses
    import math

    from lstmviz.analysis.export_data import SUFFIXES, write_table
    from lstmviz.perturb import load_live_model, perturb_item, perturb_items, resolve, sweep_alpha
    from lstmviz.recording import open_recording

    if not Path(args.file).exists():
        raise UsageError(f"no such file: {args.file}")
    out = Path(args.out)
    if out.suffix.lower() not in SUFFIXES:
        raise UsageError(f"--out must end in {' or '.join(SUFFIXES)}, got {args.out!r}")
    if not out.parent.is_dir():
        raise UsageError(f"--out {args.out}: the folder {str(out.parent)!r} does not exist")
    if out.exists() and Path(args.file).resolve() == out.resolve():
        raise UsageError(f"--out {args.out} is the recording itself; give another file name for the table")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be positive, got {args.batch_size}")
    for name in ("alpha", "value"):
        value = getattr(args, name)
        if value is not None and not math.isfinite(value):
            raise UsageError(f"--{name} must be a finite number, got {value}")
    alphas = _sweep_alphas(args.sweep) if args.sweep else None
    with open_recording(args.file) as rec:
        if rec.axis_geometry().kind == "image":
            return _perturb_images(args, rec, out)
        if args.occlude is not None:
            raise UsageError("--occlude is for recordings of image models; this recording's positions are "
                             f"{rec.axis_geometry().kind}")
        if args.attack is not None or args.switch:
            raise UsageError(f"--{'attack' if args.attack is not None else 'switch'} is for recordings of image "
                             f"models; this recording's positions are {rec.axis_geometry().kind}")
        if args.tap is None or args.action is None:
            raise UsageError("--tap and --action are required: name the tap to edit and what to do to it")
        perturbation = _perturb_spec(args, rec)
        items = _perturb_items(args.items, rec.n_items)
        if rec.axis_geometry().kind == "graph":
            return _perturb_graphs(args, rec, perturbation, items, out)
        live = load_live_model(rec, Path(args.checkpoint) if args.checkpoint else None)
        longest = max(items, key=lambda i: rec.item_range(i)[1] - rec.item_range(i)[0])
        resolve([perturbation], live, rec, longest)  # the tap, units, positions and values, before any run
        rows: list[dict] = []
        with progress_task("perturb", unit="items", quiet=args.quiet) as task:
            if alphas is not None or args.per_position:
                for done, item in enumerate(items):
                    if alphas is not None:
                        sweep = sweep_alpha(live, rec, item, perturbation, alphas, batch_size=args.batch_size)
                        rows += [{"item": item, **row} for row in sweep.to_table()]
                    else:
                        rows += perturb_item(live, rec, item, [perturbation], taps=[]).to_table()
                    task.progress(done + 1, len(items), "perturb")
            else:
                batch = perturb_items(live, rec, perturbation, items, batch_size=args.batch_size, task=task)
                rows = batch.to_table()
                top = ", ".join(str(int(i)) for i in batch.ranked_items()[:5])
                _say(f"{perturbation.describe()}: mean dnll {float(batch.mean_dnll.mean()):+.4f} nats over "
                     f"{len(items)} items, mean KL {float(batch.mean_kl.mean()):.4f}; most changed items: {top}")
    for row in rows:
        shown = perturbation if "alpha" not in row else dataclasses.replace(perturbation, alpha=row["alpha"])
        row["perturbation"] = shown.describe()
    _say(f"wrote {write_table(out, _columns(rows))}")
    return 0


def _perturb_graphs(args, rec, perturbation, items: list[int], out: Path) -> int:
    """``lstmviz perturb`` on a graph recording: per item and tap, the change per hop from the edited nodes."""
    from lstmviz.analysis.export_data import write_table
    from lstmviz.perturb import resolve
    from lstmviz.perturb.graph_live import load_graph_model, perturb_recorded

    if perturbation.action == "patch":
        raise UsageError("--action patch copies states between sequence items; on a graph recording use ablate, "
                         "clamp or add")
    if args.sweep or args.per_position:
        raise UsageError("--sweep and --per-position are for sequence recordings; a graph recording writes one row "
                         "per item, tap and hop distance")
    if perturbation.positions is None:
        raise UsageError("--positions: name the nodes to edit (item-local positions, e.g. 0 or 3,5); editing every "
                         "node leaves no distance to measure")
    live = load_graph_model(rec, Path(args.checkpoint) if args.checkpoint else None)
    rows: list[dict] = []
    reach: dict[str, int] = {}
    with progress_task("perturb", unit="graphs", quiet=args.quiet) as task:
        for done, item in enumerate(items):
            edits = resolve([perturbation], live, rec, item)
            effect = perturb_recorded(live, rec, item, edits)
            for tap in effect.clean:
                if effect.hops[tap] is None:
                    continue
                profile = effect.hop_profile(tap)
                bound = effect.bounds.get(tap)
                reach[tap] = max(reach.get(tap, -1), effect.reach(tap))
                for k, hop in enumerate(profile["hops"]):
                    rows.append({"item": item, "tap": tap, "hops": int(hop), "positions": int(profile["positions"][k]),
                                 "changed": int(profile["changed"][k]), "max_norm": float(profile["max_norm"][k]),
                                 "mean_norm": float(profile["mean_norm"][k]),
                                 "bound": -1 if bound is None else int(bound)})
            task.progress(done + 1, len(items), "perturb")
    for row in rows:
        row["perturbation"] = perturbation.describe()
    said = ", ".join(f"{tap} {hops} hop{'s' if hops != 1 else ''}" for tap, hops in reach.items() if hops >= 0)
    _say(f"{perturbation.describe()} on {len(items)} graph{'s' if len(items) != 1 else ''}: farthest change "
         f"{said or 'none'}")
    _say(f"wrote {write_table(out, _columns(rows))}")
    return 0


def _occlusion(args) -> tuple | None:
    import math

    if args.occlude is None:
        return None
    try:
        box = tuple(float(v) for v in args.occlude.split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise UsageError(f"--occlude must be four numbers Y0,X0,Y1,X1 (input pixels, half-open), got {args.occlude!r}")
    if box[2] <= box[0] or box[3] <= box[1]:
        raise UsageError(f"--occlude {args.occlude}: the box is empty; it needs Y0 < Y1 and X0 < X1")
    fill: object = args.fill
    if fill not in ("zero", "mean", "blur"):
        try:
            fill = float(fill)
        except ValueError:
            raise UsageError(f"--fill must be zero, mean, blur or a value in [0, 1], got {args.fill!r}") from None
        if not 0.0 <= fill <= 1.0:
            raise UsageError(f"--fill {args.fill}: a fill value must lie in the pixel range [0, 1]")
    return box, fill


def _perturb_images(args, rec, out: Path) -> int:
    """``lstmviz perturb`` on an image recording: an occlusion box and/or unit edits at cells of a tap; one row
    per item and tap (cells changed, inside and outside the receptive-field region, ‖Δ‖, amplification)."""
    import dataclasses

    from lstmviz.analysis.export_data import write_table
    from lstmviz.perturb import resolve
    from lstmviz.perturb.image_live import load_image_model, perturb_recorded_image

    occlude = _occlusion(args)
    if args.attack is not None:
        if occlude is not None or args.tap is not None:
            raise UsageError("--attack searches the change itself: give it without --occlude and --tap (run those "
                             "separately)")
        return _attack_images(args, rec, out)
    switches = _switch_settings(args.switch)
    if args.tap is None and occlude is None and not switches and args.switch != ["list"]:
        raise UsageError("nothing to perturb: give --occlude Y0,X0,Y1,X1 and/or --tap T --action A, --switch "
                         "NAME=VALUE, or --attack")
    if args.sweep or args.per_position:
        raise UsageError("--sweep and --per-position are for sequence recordings; an image recording writes one row "
                         "per item and tap")
    perturbation = None
    if args.tap is not None:
        if args.action is None:
            raise UsageError("--tap needs --action ablate, clamp or add")
        if args.action == "patch":
            raise UsageError("--action patch copies states between sequence items; on an image recording use "
                             "ablate, clamp or add")
        perturbation = _perturb_spec(args, rec)
    items = _perturb_items(args.items, rec.n_items)
    live = load_image_model(rec, Path(args.checkpoint) if args.checkpoint else None)
    if args.switch == ["list"]:
        return _list_switches(live.model)
    rows: list[dict] = []
    flipped = 0
    said = []
    if occlude is not None:
        said.append(f"occlude {args.occlude} with {args.fill}")
    if switches:
        said.append("switch " + ", ".join(f"{k}={v}" for k, v in switches.items()))
    if perturbation is not None:
        said.append(perturbation.describe() + (" at every cell" if perturbation.positions is None else ""))
    with progress_task("perturb", unit="images", quiet=args.quiet) as task:
        for done, item in enumerate(items):
            edits = []
            if perturbation is not None:
                info = rec.taps.get(perturbation.tap)
                axis = info.axis if info is not None else None
                a, b = rec.item_range(item, axis) if axis is not None else (0, 1)
                spec = perturbation
                if spec.positions is None:
                    spec = dataclasses.replace(spec, positions=tuple(range(b - a)))
                edits = resolve([spec], live, rec, item, length=b - a)
            effect = perturb_recorded_image(live, rec, item, occlude=occlude, edits=edits, switches=switches or None)
            flipped += effect.prediction_changed()
            if getattr(effect, "regression", False):  # values per pixel: how many changed and by how much at most
                predicted = {"pixels_changed": effect.pixels_changed(),
                             "max_prediction_change": float(effect.logit_delta_map().max(initial=0.0))}
            elif effect.dense:  # segmentation
                predicted = {"pixels_changed": effect.pixels_changed()}
            else:
                predicted = {"prediction_clean": effect.prediction_clean, "prediction_edited": effect.prediction_edited}
            for row in effect.to_table():
                rows.append({"item": item, **row, **predicted, "output_change": effect.output_change()})
            task.progress(done + 1, len(items), "perturb")
    for row in rows:
        row["perturbation"] = "; ".join(said)
    outside = sum(int(row["outside"]) for row in rows)
    where = (f"{outside} cell{'s' if outside != 1 else ''} changed outside the receptive-field region" if not switches
             else "a switch changes the model itself, so no receptive field bounds where it shows")
    _say(f"{'; '.join(said)} on {len(items)} image{'s' if len(items) != 1 else ''}: the prediction changed on "
         f"{flipped}; {where}")
    _say(f"wrote {write_table(out, _columns(rows))}")
    return 0


def _switch_settings(values: list[str]) -> dict[str, str]:
    """``--switch NAME=VALUE`` (repeatable) as a dict; ``--switch list`` alone gives {} (the caller lists)."""
    if values == ["list"]:
        return {}
    settings: dict[str, str] = {}
    for text in values:
        name, sep, value = text.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise UsageError(f"--switch takes NAME=VALUE (e.g. modality1=off, branch=2, prune=0.5) or list, got "
                             f"{text!r}")
        if name.strip() in settings:
            raise UsageError(f"--switch {name.strip()} is given twice")
        settings[name.strip()] = value.strip()
    return settings


def _list_switches(model) -> int:
    from lstmviz.perturb.image import model_switches

    switches = model_switches(model)
    if not switches:
        _say(f"{type(model).__name__} has no switches (no modalities, branches or edges to change)")
        return 0
    for sw in switches:
        _say(f"{sw.name}: {' | '.join(sw.choices)} (default {sw.default}) - {sw.description}")
    return 0


def _attack_images(args, rec, out: Path) -> int:
    """``lstmviz perturb --attack`` on an image recording: per item the attack's result (target, flip, |r|) and
    per tap what the adversarial image changed (the rows of ``ImageEffect.to_table``)."""
    import math

    import numpy as np

    from lstmviz.analysis.export_data import write_table
    from lstmviz.perturb.image_live import attack_recorded_image, load_image_model

    if args.sweep or args.per_position:
        raise UsageError("--sweep and --per-position are for sequence recordings; an image recording writes one row "
                         "per item and tap")
    if args.attack != "lbfgs" and not (math.isfinite(args.eps) and args.eps > 0):
        raise UsageError(f"--eps must be a positive number of pixels, got {args.eps}")
    items = _perturb_items(args.items, rec.n_items)
    live = load_image_model(rec, Path(args.checkpoint) if args.checkpoint else None)
    classes = _class_count(live, rec)
    if args.target is not None and not 0 <= args.target < classes:
        raise UsageError(f"--target {args.target}: the model has classes 0 to {classes - 1}")
    rows: list[dict] = []
    flipped, sizes = 0, []
    with progress_task("attack", unit="images", quiet=args.quiet) as task:
        for done, item in enumerate(items):
            effect = attack_recorded_image(live, rec, item, method=args.attack, target=args.target, eps=args.eps)
            attack = effect.extra["attack"]
            flipped += bool(attack.flipped)
            if attack.flipped:
                sizes.append(attack.l2)
            head = {"item": item, "attack": args.attack, "target": -1 if attack.target is None else attack.target,
                    "flipped": int(attack.flipped), "prediction_clean": attack.clean_prediction,
                    "prediction_adversarial": attack.adversarial_prediction, "l2": attack.l2, "linf": attack.linf,
                    "relative_l2": attack.relative_l2}
            for row in effect.to_table():
                rows.append({**head, **row})
            task.progress(done + 1, len(items), "attack")
    aim = "any other class" if args.target is None else f"class {args.target}"
    what = "L-BFGS" if args.attack == "lbfgs" else f"PGD ({args.attack[4:]}, eps {args.eps:g})"
    median = f"; median |r|₂ of a flip {float(np.median(sizes)):.3g}" if sizes else ""
    _say(f"{what} aiming for {aim} on {len(items)} image{'s' if len(items) != 1 else ''}: the prediction "
         f"changed on {flipped}{median}")
    _say(f"wrote {write_table(out, _columns(rows))}")
    return 0


def _class_count(live, rec) -> int:
    """The number of outputs of the recording's model, from one forward of its first image."""
    import numpy as np
    import torch

    from lstmviz.perturb.image_live import check_item

    image = torch.from_numpy(np.array(check_item(live, rec, 0)[None], dtype=np.float32)).to(next(live.model.parameters()).dtype)
    with torch.no_grad():
        return int(live.model(image).shape[1])


def _version() -> str:
    from lstmviz import __version__

    return f"lstmviz {__version__}"


def _demo_path() -> Path | None:
    from importlib.resources import files

    demo = Path(str(files("lstmviz.assets") / "demo" / "parens-lstm.h5"))
    return demo if demo.exists() else None


# ---------------------------------------------------------------------------------------------- commands


def cmd_open(args: argparse.Namespace) -> int:
    if args.file is not None and not Path(args.file).exists():
        raise UsageError(f"no such file: {args.file}")
    if args.workspace is not None and not Path(args.workspace).is_file():
        raise UsageError(f"no such workspace file: {args.workspace}")
    size = _window_size(args.size)
    if args.units is not None:
        _check_units(args.units, args.file, args.workspace)
    from lstmviz.qt import app

    if args.screenshot:
        try:
            problems = app.screenshot(args.screenshot, args.file, size=size, units=args.units,
                                      workspace=args.workspace)
        except app.ScreenshotError as exc:
            print(f"lstmviz: error: {exc}", file=sys.stderr)
            return 1
        for problem in problems:
            _say(f"lstmviz: note: {problem}", file=sys.stderr)
        _say(f"wrote {args.screenshot}")
        return 0
    return app.run(args.file, units=args.units, workspace=args.workspace)


def _check_units(text: str, file: str | None, workspace: str | None) -> None:
    """``--units``: its syntax, and every unit below the width of the widest tap of the recording that
    will be shown (a tap of that width exists), without building the list."""
    from lstmviz.analysis.unit_spec import check_units, unit_ranges

    try:
        unit_ranges(text)
    except ValueError as exc:
        raise UsageError(f"--units: {exc}") from None
    target = file
    if target is None and workspace is not None:
        try:
            from lstmviz.workspace.file import load_workspace

            target = load_workspace(workspace).recording
        except Exception:  # noqa: BLE001 - the window says what is wrong with the workspace
            return
    if target is None:
        target = _demo_path()
    if target is None or not Path(target).is_file():
        return
    from lstmviz.recording import RecordingError, open_recording

    try:
        with open_recording(target) as rec:
            widest = max((t.units for t in rec.taps.values()), default=0)
    except RecordingError:
        return  # the window says why the file cannot be opened
    try:
        check_units(text, widest, f"every tap of {target} (the widest)")
    except ValueError as exc:
        raise UsageError(f"--units: {exc}") from None


def _window_size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    try:
        size = (int(width), int(height))
    except ValueError:
        size = None
    if not sep or size is None or min(size) < 200 or max(size) > 10000:
        raise UsageError(f"--size must be WIDTHxHEIGHT in pixels (200-10000), e.g. 1600x1100; got {text!r}")
    return size


def cmd_info(args: argparse.Namespace) -> int:
    from lstmviz.recording import open_recording, summarize

    with open_recording(args.file) as rec:
        _say(summarize(rec))
    return 0


def cmd_annotate(args: argparse.Namespace) -> int:
    from lstmviz.recording.annotate import annotate, read_table

    if not Path(args.file).exists():
        raise UsageError(f"no such file: {args.file}")
    if not Path(args.table).exists():
        raise UsageError(f"--from: no such file: {args.table}")
    if not Path(args.table).is_file():
        raise UsageError(f"--from {args.table} is not a regular file; give a CSV file")
    kinds = {}
    for pair in args.kinds or []:
        name, sep, kind = pair.partition("=")
        if not sep or kind not in ("categorical", "numeric"):
            raise UsageError(f"--kind must look like NAME=categorical or NAME=numeric, got {pair!r}")
        kinds[name] = kind
    try:
        table = read_table(args.table, args.columns)
    except UnicodeDecodeError as exc:
        raise UsageError(f"--from {args.table}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    except (csv_error(), ValueError) as exc:
        raise UsageError(f"--from {exc}") from None
    unknown = [k for k in kinds if k not in table]
    if unknown:
        raise UsageError(f"--kind {unknown[0]}: {args.table} has no column {unknown[0]!r} "
                         f"(columns: {', '.join(table)})")
    added = annotate(args.file, table, level=args.level, kinds=kinds, replace=args.replace,
                     source=os.path.basename(args.table))
    _say(f"added to {args.file}: " + "; ".join(a.summary() for a in added))
    guessed = [a for a in added if a.name not in kinds]
    if any(a.kind == "numeric" for a in guessed):
        names = [a.name for a in guessed if a.kind == "numeric"]
        _say(f"note: {', '.join(names)} read as numeric (all numbers); to use one as labels (e.g. for probes), "
             f"run again with --replace --kind {names[0]}=categorical", file=sys.stderr)
    return 0


def csv_error():
    import csv

    return csv.Error


def cmd_train(args: argparse.Namespace) -> int:
    from lstmviz.datasets import load_dataset
    from lstmviz.datasets import registry as datasets
    from lstmviz.engines import registry as engines

    if args.list:
        _say("engines:")
        for name, spec in engines.all().items():
            _say(f"  {name:10s} {spec.description}")
        _say("datasets:")
        for name, spec in datasets.all().items():
            _say(f"  {name:10s} {spec.description}")
        return 0
    if not args.engine:
        raise UsageError("name an engine to train (see `lstmviz train --list`)")
    if not args.out:
        raise UsageError("--out CKPT is required: the checkpoint file to write")
    if args.steps is not None and args.steps <= 0:
        raise UsageError(f"--steps must be a positive number, got {args.steps}")
    _check_output_folder(args.out)
    spec = engines.get(args.engine)
    dataset_name = args.dataset or spec.training_dataset()
    options = _key_values(args.dataset_options, "--dataset-option")
    config = _engine_config(spec, args.config)
    settings = _train_settings(args, spec)

    from lstmviz.engines.training import train

    train_data = load_dataset(dataset_name, "train", **options)
    valid_data = None if args.no_valid else load_dataset(dataset_name, "valid", **options)
    with progress_task(f"train {spec.name} on {dataset_name}", unit="steps", quiet=args.quiet) as task:
        metrics = train(spec.name, train_data, valid_data, out=args.out, task=task, config=config, **settings)
    _say(f"wrote {args.out}")
    if settings.get("keep_checkpoints"):
        out = Path(args.out)
        kept = sorted(out.parent.glob(f"{glob.escape(out.stem)}-step[0-9]*{glob.escape(out.suffix)}"))
        pattern = out.with_name(f"{out.stem}-step*{out.suffix}")
        _say(f"kept {len(kept)} checkpoints as {pattern} (record them all: lstmviz record {pattern} --out R.h5)")
    for key, value in metrics.items():
        if value is None and key.endswith("_ppl"):  # not a language model: no perplexity to print
            continue
        _say(f"  {key}: {value:.4g}" if isinstance(value, float) else f"  {key}: {value}")
    return 0


def _train_settings(args: argparse.Namespace, spec) -> dict:
    """``--train KEY=VALUE`` pairs checked against the engine's training settings, with ``--steps``/``--seed``."""
    from lstmviz.engines.training import train_settings_for

    known = train_settings_for(spec.family_spec)
    settings = _key_values(args.train, "--train")
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise UsageError(f"--train {unknown[0]}: not a training setting; the settings are "
                         f"{', '.join(sorted(known))}")
    for key in ("steps", "seed"):
        given = getattr(args, key)
        if given is None:
            continue
        if key in settings and settings[key] != given:
            raise UsageError(f"--{key} {given} and --train {key}={settings[key]} disagree; give one of them")
        settings[key] = given
    if "device" in settings:
        _check_device(settings["device"])
    return settings


def _check_device(device) -> None:
    """``--train device=...``: a device torch knows and this machine has."""
    import torch

    if not isinstance(device, str):
        raise UsageError(f"--train device={device}: a device name such as cpu, cuda, cuda:1 or mps")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise UsageError(f"--train device={device}: not a torch device; e.g. cpu, cuda, cuda:1, mps") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--train device={device}: this torch build or machine has no CUDA GPU; use cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise UsageError(f"--train device={device}: there are {torch.cuda.device_count()} CUDA devices "
                             f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    elif parsed.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError(f"--train device={device}: MPS is not available on this machine; use cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--train device={device}: lstmviz trains on cpu, cuda or mps")


def _engine_config(spec, pairs: list[str] | None) -> dict:
    """``--set KEY=VALUE`` pairs checked against the engine's hyperparameters (defaults filled in)."""
    from lstmviz.engines.spec import ConfigError

    config = _key_values(pairs, "--set")
    family = spec.family_spec
    for key in family.data_fields():
        if key in config:
            raise UsageError(f"--set {key}: {family.data_field_meaning(key)} is the dataset's, not a hyperparameter; "
                             "choose the dataset with --dataset")
    try:
        return spec.resolve_config(config)
    except ConfigError as exc:
        raise UsageError(f"--set: {exc}") from None


def _build_untrained(spec, dataset, config: dict):
    """The engine ``spec`` built for ``dataset`` with ``config``, or a sentence about the value it cannot take."""
    data = spec.family_spec.describe_dataset(dataset)
    try:
        return spec.build_model(data, **config)
    except (TypeError, ValueError, OverflowError) as exc:
        raise UsageError(f"--set: engine {spec.name!r} cannot be built with {_compact(config)}: {exc}") from None
    except (MemoryError, RuntimeError) as exc:
        if isinstance(exc, MemoryError) or "alloc" in str(exc).lower():
            raise UsageError(f"--set: engine {spec.name!r} with {_compact(config)} needs more memory than this "
                             "machine has; choose smaller sizes") from None
        raise


def _check_data_fits(meta: dict, dataset, dataset_name: str, options: dict, model_path) -> None:
    """A checkpoint whose family describes its data (the graph family: features, classes, task) is recorded
    only on data of that description; else one sentence naming the difference."""
    import dataclasses

    from lstmviz.engines.families import registry as families

    stored = meta.get("data")
    if not stored:
        return
    try:
        given = dataclasses.asdict(families.get(meta["family"]).describe_dataset(dataset))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"dataset {dataset_name!r} cannot feed checkpoint {model_path}: {exc}") from None
    differ = [f"{key} {stored[key]!r} vs {given.get(key)!r}" for key in stored if given.get(key) != stored[key]]
    if differ:
        shown = ", ".join(f"{k}={v}" for k, v in options.items()) or "its defaults"
        raise UsageError(f"checkpoint {model_path} was trained on other data than dataset {dataset_name!r} with "
                         f"{shown} ({'; '.join(differ)}: checkpoint vs dataset); record it on the data it was "
                         f"trained on ({meta['dataset']!r}, options {meta.get('dataset_options') or {}})")


def _compact(config: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in config.items())


def _check_output_folder(out: str) -> None:
    """``--out``: a file name in a folder that exists; an existing path must be a regular file (the
    output replaces it, and a device, FIFO or socket must never be replaced)."""
    folder = Path(out).parent
    if not folder.is_dir():
        raise UsageError(f"--out {out}: the folder {str(folder)!r} does not exist")
    if Path(out).is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name")
    if Path(out).exists() and not Path(out).is_file():
        raise UsageError(f"--out {out} exists and is not a regular file (a device, FIFO or socket); "
                         "give the name of a file to write")


def cmd_prune(args: argparse.Namespace) -> int:
    given = [flag for key, flag in _LOSS_PRUNE_OPTIONS.items() if getattr(args, key) is not None]
    if args.method is not None and args.scheme is not None:
        raise UsageError("--method (loss-model pruning) and --scheme (seq2seq class-based pruning) are two forms of "
                         "prune; give one of them")
    if args.method is None and args.scheme is None:
        raise UsageError("give --method mp|lm|qm|obd --sparsity X (loss-model pruning of any language or image model) "
                         "or --scheme S --fraction X (class-based pruning of a seq2seq model)")
    if args.method is not None:
        from lstmviz.prune_cli import cmd_loss_prune

        if args.fraction is not None:
            raise UsageError("--fraction belongs to --scheme; with --method give the target as --sparsity")
        return cmd_loss_prune(args)
    if given:
        raise UsageError(f"{given[0]} belongs to loss-model pruning (--method); with --scheme give --fraction")
    if args.fraction is None:
        raise UsageError("--scheme needs --fraction, the fraction of the prunable weights to remove (0..1)")
    if args.retrain_lr is None:
        args.retrain_lr = 1e-3
    if not 0.0 <= args.fraction <= 1.0:
        raise UsageError(f"--fraction must be in [0, 1], got {args.fraction}")
    if args.retrain_epochs < 0 or args.retrain_lr <= 0:
        raise UsageError("--retrain-epochs must be >= 0 and --retrain-lr positive")
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be positive, got {args.batch_size}")
    if args.valid_items < 0:
        raise UsageError(f"--valid-items must be >= 0, got {args.valid_items}")
    _check_output_folder(args.out)
    from lstmviz.datasets import load_dataset
    from lstmviz.engines.checkpoint import load_checkpoint
    from lstmviz.engines.seq2seq.prune import prune_checkpoint

    _, meta = load_checkpoint(args.checkpoint)
    options = _key_values(args.dataset_options, "--dataset-option")
    name = args.dataset or meta["dataset"]
    if name == meta["dataset"]:
        options = {**(meta.get("dataset_options") or {}), **options}
    train = load_dataset(name, "train", **options) if args.retrain_epochs else None
    valid = load_dataset(name, "valid", **options) if args.valid_items else None
    try:
        with progress_task("prune", unit="steps", quiet=args.quiet) as task:
            report = prune_checkpoint(args.checkpoint, args.out, scheme=args.scheme, fraction=args.fraction,
                                      dataset_train=train, dataset_valid=valid, retrain_epochs=args.retrain_epochs,
                                      retrain_lr=args.retrain_lr, batch_size=args.batch_size,
                                      valid_items=args.valid_items or None, seed=args.seed, task=task)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    info = report["pruning"]
    _say(f"wrote {args.out}: {args.scheme}, removed {info['removed_fraction']:.1%} of "
         f"{sum(info['sizes'].values()):,} weights" + (f" (lambda {info['lambda']:.4g})" if info["lambda"] else ""))
    _say(f"  {'class':<16} {'weights':>9} {'removed':>8} {'threshold':>10}")
    for cls, size in info["sizes"].items():
        t = info["thresholds"][cls]
        _say(f"  {cls:<16} {size:>9,} {info['removed'][cls] / max(size, 1):>8.1%} "
             f"{'-' if t is None else f'{t:.4g}':>10}")
    for label, key in (("before", "before"), ("pruned", "after_prune"), ("retrained", "after")):
        m = report[key]
        if m is None or (key == "after" and report["retrain"] is None):
            continue
        _say(f"  {label:<10} valid loss {m['loss']:.4f}  token accuracy {m['token_accuracy']:.4f}  "
             f"greedy exact {m['exact']:.4f}")
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from lstmviz.recording.size_estimate import parse_size

    if args.batch_size <= 0:
        raise UsageError(f"--batch-size must be positive, got {args.batch_size}")
    if args.max_items is not None and args.max_items <= 0:
        raise UsageError(f"--max-items must be positive, got {args.max_items}")
    try:
        max_size = parse_size(args.max_size)
    except ValueError as exc:
        raise UsageError(f"--max-size must be {exc}") from None
    _check_output_folder(args.out)
    options = _key_values(args.dataset_options, "--dataset-option")
    files, names = _models_and_engines(args.model)

    from lstmviz.datasets import load_dataset
    from lstmviz.engines import registry as engines
    from lstmviz.engines.checkpoint import load_checkpoint
    from lstmviz.recording.recorder import CheckpointSource

    provenance: dict = {}
    checkpoints = None
    family = None
    if files:
        if args.config:
            raise UsageError("--set applies to an untrained engine; a checkpoint carries its own config")
        run = _one_training_run(files, load_checkpoint)
        model_path, meta = run[-1]  # the main checkpoint: the last in training order
        model, _ = load_checkpoint(model_path)
        dataset_name = args.dataset or meta["dataset"]
        if dataset_name == meta["dataset"]:  # the data it was trained on, unless an option says otherwise
            options = {**meta.get("dataset_options", {}), **options}
        dataset = load_dataset(dataset_name, args.split, **options)
        if list(meta["vocab"]) != list(dataset.vocab):
            raise UsageError(
                f"checkpoint {model_path} was trained with a different vocabulary than dataset "
                f"{dataset_name!r} ({_difference('vocab', list(meta['vocab']), list(dataset.vocab))}); record on "
                f"its dataset ({meta['dataset']!r})"
            )
        provenance.update(
            engine=meta["engine"], config=meta["config"], checkpoint=str(model_path.resolve()),
            sha256=meta["sha256"], checkpoint_step=meta["step"], train_metrics=meta.get("metrics", {}),
            trained_on=meta["dataset"],
        )
        if meta.get("pruning"):  # a pruned model: which units keep their recurrent weights (docs/engines.md)
            from lstmviz.engines.seq2seq.prune import pruning_provenance

            provenance["pruning"] = pruning_provenance(model, meta["pruning"])
        family = meta["family"]
        _check_data_fits(meta, dataset, dataset_name, options, model_path)
        if len(run) > 1:
            checkpoints = [
                CheckpointSource(_checkpoint_loader(path, m["sha256"], load_checkpoint), step=m["step"],
                                 path=str(path.resolve()), sha256=m["sha256"], metrics=m.get("metrics", {}))
                for path, m in run
            ]
    else:
        spec = engines.get(names[0])
        dataset_name = args.dataset or spec.training_dataset()
        config = _engine_config(spec, args.config)
        dataset = load_dataset(dataset_name, args.split, **options)
        import torch

        torch.manual_seed(args.seed)
        model = _build_untrained(spec, dataset, config)
        provenance.update(engine=spec.name, config=config, checkpoint=None, untrained_seed=args.seed)
        _say(f"note: recording an untrained {spec.name} (random weights, seed {args.seed})", file=sys.stderr)
        family = spec.family

    if args.modes and family not in (None, "language-model"):
        raise UsageError(f"--modes applies to language models; this is an engine of family {family!r} "
                         "(seq2seq models: --decode teacher-forced|greedy|beam)")
    settings = _record_settings(args, family, dataset_name, options, provenance, checkpoints)
    if family == "graph":
        recorder = functools.partial(_record_graph, args, model, dataset, provenance, checkpoints, max_size)
    elif family == "image":
        recorder = functools.partial(_record_images, args, model, dataset, provenance, checkpoints, max_size)
    elif family == "seq2seq":
        recorder = functools.partial(_record_seq2seq, args, model, dataset, provenance, checkpoints, max_size)
    elif family == "strokes":
        recorder = functools.partial(_record_strokes, args, model, dataset, provenance, checkpoints)
    else:
        if args.decode != "teacher-forced":
            raise UsageError(f"--decode {args.decode} applies to seq2seq models; this one is of the {family} family")
        if args.modes:
            dataset = _modes_dataset(args, model, dataset, family, checkpoints)
        recorder = functools.partial(_record_sequences, args, model, dataset, provenance, checkpoints, max_size)
    total = len(dataset) if args.max_items is None else min(len(dataset), args.max_items)
    return _record_here_or_sharded(args, recorder, total, settings)


def _record_settings(args, family, dataset_name: str, options: dict, provenance: dict, checkpoints) -> dict:
    """What makes a shard's values what they are: a shard recorded with other settings is not kept on resume."""
    return {
        "command": "lstmviz record", "family": family, "engine": provenance.get("engine"),
        "config": provenance.get("config"), "checkpoint_sha256": provenance.get("sha256"),
        "checkpoints": [c.sha256 for c in checkpoints] if checkpoints else None,
        "untrained_seed": provenance.get("untrained_seed"), "dataset": dataset_name, "split": args.split,
        "dataset_options": options, "max_items": args.max_items, "signals": args.signals, "dtype": args.dtype,
        "batch_size": args.batch_size, "decode": args.decode, "beam": args.beam, "max_len": args.max_len,
        "length_penalty": args.length_penalty, "modes": args.modes, "sample_seed": args.sample_seed,
    }


def _record_here_or_sharded(args, recorder, total: int, settings: dict) -> int:
    """Record in this process, or (under torchrun) this rank's shard and, on rank 0, the logical file."""
    from lstmviz.recording.distributed import record_sharded, torchrun_world

    if torchrun_world() is None:
        return recorder()
    out = Path(args.out)
    if out.suffix != ".h5":
        raise UsageError(f"--out {args.out}: a sharded recording's logical file ends in .h5 (its shards go to "
                         f"{out.stem}.shards/ beside it)")

    def record_shard(shard: Path, items, extra: dict, wrap) -> Path:
        recorder(out=shard, items=items, extra=extra, wrap=wrap)
        return shard

    record_sharded(out, total, record_shard, settings)
    return 0


def _record_sequences(args, model, dataset, provenance: dict, checkpoints, max_size: float, *, out=None, items=None,
                      extra=None, wrap=None) -> int:
    """`lstmviz record` of a language model (``record``); ``out``/``items``/``extra``/``wrap``: one shard's."""
    from lstmviz.recording.recorder import record

    _check_size(args, model, dataset, len(checkpoints or []) or 1, max_size)
    with progress_task("recording", unit="items", quiet=args.quiet) as task:
        out = record(
            model, dataset, out or args.out, signals=args.signals, batch_size=args.batch_size, dtype=args.dtype,
            progress=False, task=_wrapped(task, wrap), provenance={**provenance, **(extra or {})},
            max_items=args.max_items, checkpoints=checkpoints, items=items,
        )
    if checkpoints:
        steps = ", ".join(str(c.step) for c in sorted(checkpoints, key=lambda c: c.step))
        _say(f"wrote {out} ({len(checkpoints)} checkpoints, steps {steps}; the main states are step "
             f"{checkpoints[-1].step}'s)")
    else:
        _say(f"wrote {out}")
    return 0


def _modes_dataset(args, model, dataset, family, checkpoints):
    """`lstmviz record --modes`: the dataset with one item per source item and mode (recording/free_running.py)."""
    from lstmviz.recording.free_running import ModesDataset, parse_modes

    if family not in (None, "language-model"):
        raise UsageError(f"--modes applies to language models; this is an engine of family {family!r}")
    if checkpoints:
        raise UsageError("--modes records one checkpoint; give one checkpoint file")
    try:
        modes = parse_modes(args.modes)
    except ValueError as exc:
        raise UsageError(f"--modes: {exc}") from None
    wrapped = ModesDataset(dataset, model, modes, seed=args.sample_seed, max_items=args.max_items,
                           batch_size=args.batch_size)
    args.max_items = None  # the source items are already cut; every wrapped item is recorded
    return wrapped


def _record_graph(args, model, dataset, provenance: dict, checkpoints, max_size: float, *, out=None, items=None,
                  extra=None, wrap=None) -> int:
    """`lstmviz record` of an engine of the graph family: one graph per forward, into a v3 graph recording."""
    from lstmviz.recording.graph_recorder import estimate_graph_bytes, record_graph

    if checkpoints:
        raise UsageError("several checkpoints of a graph engine cannot be recorded into one file yet; record each "
                         "checkpoint on its own")
    size = estimate_graph_bytes(model, dataset, signals=args.signals, dtype=args.dtype, max_items=args.max_items)
    _refuse_oversize(args, size, max_size, "graphs")
    with progress_task("recording", unit="graphs", quiet=args.quiet) as task:
        out = record_graph(model, dataset, out or args.out, signals=args.signals, dtype=args.dtype,
                           task=_wrapped(task, wrap), provenance={**provenance, **(extra or {})},
                           max_items=args.max_items, items=items)
    _say(f"wrote {out}")
    return 0


def _record_seq2seq(args, model, dataset, provenance: dict, checkpoints, max_size: float, *, out=None, items=None,
                    extra=None, wrap=None) -> int:
    """`lstmviz record` of an engine of the seq2seq family: source tokens on the main axis, decoder steps on
    the axis ``decoder`` (the reference, or the greedy / beam output with --decode)."""
    from lstmviz.recording.seq2seq_recorder import estimate_seq2seq_bytes, record_seq2seq

    if checkpoints:
        raise UsageError("several checkpoints of a seq2seq engine cannot be recorded into one file yet; record "
                         "each checkpoint on its own")
    if args.beam < 1:
        raise UsageError(f"--beam must be positive, got {args.beam}")
    if args.max_len is not None and args.max_len < 1:
        raise UsageError(f"--max-len must be positive, got {args.max_len}")
    size = estimate_seq2seq_bytes(model, dataset, signals=args.signals, dtype=args.dtype, max_items=args.max_items)
    _refuse_oversize(args, size, max_size, "pairs")
    with progress_task("recording", unit="pairs", quiet=args.quiet) as task:
        out = record_seq2seq(model, dataset, out or args.out, decode=args.decode, beam=args.beam,
                             max_len=args.max_len, length_penalty=args.length_penalty, signals=args.signals,
                             batch_size=args.batch_size, dtype=args.dtype, task=_wrapped(task, wrap),
                             provenance={**provenance, **(extra or {})}, max_items=args.max_items, items=items)
    _say(f"wrote {out} (decoder: {args.decode})")
    return 0


def _record_strokes(args, model, dataset, provenance: dict, checkpoints, *, out=None, items=None, extra=None,
                    wrap=None) -> int:
    """`lstmviz record` of an engine of the strokes family: one position per pen point (recording/strokes_recorder.py)."""
    from lstmviz.recording.strokes_recorder import record_strokes

    if checkpoints:
        raise UsageError("several checkpoints of a strokes engine cannot be recorded into one file yet; record each "
                         "checkpoint on its own")
    with progress_task("recording", unit="items", quiet=args.quiet) as task:
        out = record_strokes(model, dataset, out or args.out, signals=args.signals,
                             batch_size=max(args.batch_size, 1), dtype=args.dtype, task=_wrapped(task, wrap),
                             provenance={**provenance, **(extra or {})}, max_items=args.max_items, items=items)
    _say(f"wrote {out}")
    return 0


def _record_images(args, model, dataset, provenance: dict, checkpoints, max_size: float, *, out=None, items=None,
                   extra=None, wrap=None) -> int:
    """`lstmviz record` of an engine of the image family: batches of images per forward, into a v3 image recording."""
    from lstmviz.recording.image_recorder import estimate_image_bytes, record_images

    if checkpoints:
        raise UsageError("several checkpoints of an image engine cannot be recorded into one file yet; record each "
                         "checkpoint on its own")
    size = estimate_image_bytes(model, dataset, signals=args.signals, dtype=args.dtype, max_items=args.max_items)
    _refuse_oversize(args, size, max_size, "images")
    with progress_task("recording", unit="images", quiet=args.quiet) as task:
        out = record_images(model, dataset, out or args.out, signals=args.signals, dtype=args.dtype,
                            task=_wrapped(task, wrap), provenance={**provenance, **(extra or {})},
                            max_items=args.max_items, chunk=max(args.batch_size, 1), items=items)
    _say(f"wrote {out}")
    return 0


def _wrapped(task, wrap):
    """The task a recorder reports to: ``task``, or what a sharded run makes of it (its test hook)."""
    return task if wrap is None else wrap(task)


def _refuse_oversize(args, size: int, max_size: float, items: str) -> None:
    """Print a family recorder's size estimate; refuse it above ``--max-size`` (``items``: what --max-items counts)."""
    from lstmviz.recording.size_estimate import format_bytes

    _say(f"lstmviz record: {args.out} will take about {format_bytes(size)} of states", file=sys.stderr)
    if size > max_size:
        raise UsageError(f"the recording would take {format_bytes(size)}, more than --max-size "
                         f"{format_bytes(max_size)}: record fewer {items} (--max-items) or signals (--signals), or "
                         f"allow it with --max-size {_size_argument(size)}")


def _check_size(args, model, dataset, n_checkpoints: int, max_size: float) -> None:
    """Print the estimated size of the recording; refuse it above ``--max-size`` or the free space."""
    import shutil

    from lstmviz.recording.size_estimate import estimate_size, format_bytes

    estimate = estimate_size(model, dataset, signals=args.signals, dtype=args.dtype, max_items=args.max_items,
                             checkpoints=n_checkpoints)
    _say(f"lstmviz record: {args.out} will take {estimate.describe()}", file=sys.stderr)
    size = estimate.total_bytes
    if size > max_size:
        smaller = ("record fewer items (--max-items), fewer signals (--signals 'layer*/h')"
                   + (", float16 (--dtype float16)" if args.dtype != "float16" else ""))
        raise UsageError(f"the recording would take {format_bytes(size)}, more than --max-size "
                         f"{format_bytes(max_size)}: {smaller}, or allow it with --max-size "
                         f"{_size_argument(size)}")
    folder = Path(args.out).resolve().parent
    free = shutil.disk_usage(folder).free
    if size > free:
        raise UsageError(f"the recording would take {format_bytes(size)}, but {folder} has only "
                         f"{format_bytes(free)} free")


def _size_argument(size: float) -> str:
    """A ``--max-size`` value a little above ``size`` (``2.6G``)."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if size >= scale:
            return f"{size * 1.1 / scale:.2g}{unit}" if size * 1.1 / scale < 10 else f"{size * 1.1 / scale:.0f}{unit}"
    return str(int(size) + 1)


def _models_and_engines(given: list[str]) -> tuple[list[Path], list[str]]:
    """Split `lstmviz record`'s positional arguments into checkpoint files and (at most one) engine name."""
    files: list[Path] = []
    names: list[str] = []
    for text in given:
        path = Path(text)
        if path.exists():
            files.append(path)
        elif "/" in text or os.sep in text or text.endswith((".pt", ".pth", ".ckpt")):
            raise UsageError(f"no such checkpoint file: {text}")
        else:
            names.append(text)
    if names and files:
        raise UsageError(
            f"give either one engine name (an untrained model) or checkpoint files of one training run, not "
            f"both: {names[0]!r} is not a file (an engine name?) but {files[0]} is a checkpoint file"
        )
    if len(names) > 1:
        raise UsageError(f"give one engine name (an untrained model), got {len(names)}: "
                         f"{', '.join(map(repr, names))} (none of them is a file)")
    return files, names


def _one_training_run(files: list[Path], load_checkpoint) -> list[tuple[Path, dict]]:
    """``(path, meta)`` of every checkpoint in step order, after checking they are one training run."""
    run = []
    for path in files:
        _, meta = load_checkpoint(path)  # validates the file; the model is built again when it is recorded
        run.append((path, meta))
    run.sort(key=lambda pm: pm[1]["step"])
    if len(run) < 2:
        return run
    first_path, first = run[0]
    for path, meta in run[1:]:
        for key, what in (("engine", "engines"), ("config", "configurations"), ("vocab", "vocabularies"),
                          ("dataset", "training datasets")):
            if meta[key] != first[key]:
                raise UsageError(
                    f"{first_path} and {path} are not checkpoints of one training run: they have different "
                    f"{what} ({_difference(key, first[key], meta[key])}); record them separately"
                )
    runs = {meta.get("run") for _, meta in run}
    if None not in runs and len(runs) > 1:  # checkpoints written by lstmviz train know their run
        (path_a, a), (path_b, b) = run[0], next(pm for pm in run if pm[1]["run"] != run[0][1]["run"])
        raise UsageError(
            f"{path_a} and {path_b} are not checkpoints of one training run: they were written by different "
            f"runs of `lstmviz train` (run {a['run'][:8]} vs {b['run'][:8]}), although with the same settings; "
            f"was --out reused by a later run that left older files beside it?"
        )
    for (path_a, a), (path_b, b) in itertools.pairwise(run):
        if a["step"] == b["step"]:
            same = path_a.resolve() == path_b.resolve()
            raise UsageError(
                f"{path_a} and {path_b} both hold step {a['step']}"
                + (" (the same file given twice)" if same else "")
                + "; give each training step once"
            )
    return run


def _difference(key: str, a, b) -> str:
    if key == "config" and isinstance(a, dict) and isinstance(b, dict):
        keys = [k for k in sorted(set(a) | set(b), key=str) if a.get(k, "-") != b.get(k, "-")]
        return ", ".join(f"{k} {a.get(k, '-')} vs {b.get(k, '-')}" for k in keys[:5])
    if key == "vocab":
        if len(a) != len(b):
            return f"{len(a)} vs {len(b)} tokens"
        i = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
        return f"token {i} is {a[i]!r} vs {b[i]!r}"
    return f"{a!r} vs {b!r}"


def _checkpoint_loader(path: Path, sha256: str, load_checkpoint):
    """Load the weights of ``path`` when its turn comes; refuse a file that changed since it was checked."""
    def load():
        model, meta = load_checkpoint(path)
        if meta["sha256"] != sha256:
            from lstmviz.engines.checkpoint import CheckpointError

            raise CheckpointError(path, "the file changed while the recording was made; record again")
        return model.state_dict()

    return load


# ---------------------------------------------------------------------------------------------- main

def _shard_command(name: str):
    """A parser or command of ``cli_shards`` (index, match), imported when used."""
    def call(*args):
        from lstmviz import cli_shards

        return getattr(cli_shards, name)(*args)
    return call


def _analogy_parser() -> argparse.ArgumentParser:
    from lstmviz.cli_analogy import analogy_parser

    return analogy_parser(_Parser)


def cmd_analogy(args: argparse.Namespace) -> int:
    from lstmviz.cli_analogy import cmd_analogy as run

    return run(args)


def _ntk_parser() -> argparse.ArgumentParser:
    from lstmviz.cli_ntk import ntk_parser

    return ntk_parser(_Parser)


def cmd_ntk(args: argparse.Namespace) -> int:
    from lstmviz.cli_ntk import cmd_ntk as run

    return run(args, UsageError)


_PARSERS = {"train": _train_parser, "record": _record_parser, "info": _info_parser, "probe": _probe_parser,
            "annotate": _annotate_parser, "perturb": _perturb_parser, "btest": _btest_parser,
            "prune": _prune_parser, "index": _shard_command("index_parser"), "match": _shard_command("match_parser"),
            "analogy": _analogy_parser, "ntk": _ntk_parser}
_COMMANDS = {"train": cmd_train, "record": cmd_record, "info": cmd_info, "probe": cmd_probe,
             "annotate": cmd_annotate, "perturb": cmd_perturb, "btest": cmd_btest, "prune": cmd_prune,
             "index": _shard_command("cmd_index"), "match": _shard_command("cmd_match"),
             "analogy": cmd_analogy, "ntk": cmd_ntk}

assert set(_PARSERS) == set(_COMMANDS) == set(COMMANDS)


def _interrupt_stops_the_run() -> None:
    """Make Ctrl-C (SIGINT) raise KeyboardInterrupt even when this process was started with SIGINT
    ignored (a background job of a non-interactive shell, some job runners): a user who interrupts
    lstmviz wants it to stop, not to finish and replace its output."""
    try:
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:  # not the main thread (main() called from a thread): leave signals alone
        pass


def main(argv: list[str] | None = None) -> int:
    _interrupt_stops_the_run()
    parser = None
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        if argv and argv[0] in COMMANDS:
            parser = _PARSERS[argv[0]]()
            args = parser.parse_args(argv[1:])
            command = _COMMANDS[argv[0]]
        else:
            parser = _open_parser()
            args = parser.parse_args(argv)
            command = cmd_open
        return command(args)
    except KeyboardInterrupt:
        print("lstmviz: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lstmviz info FILE | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        from lstmviz.tasks import Cancelled

        prog = parser.prog if parser is not None else "lstmviz"
        if isinstance(exc, Cancelled):
            print("lstmviz: cancelled", file=sys.stderr)
            return 130
        if isinstance(exc, UsageError):
            parser.print_usage(sys.stderr)
            print(f"{prog}: error: {printable(exc)}", file=sys.stderr)
            return 2
        if is_expected(exc):  # a file, value, name or checkpoint that cannot be used; disk full, ...
            print(f"{prog}: error: {printable(one_line(exc))}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
