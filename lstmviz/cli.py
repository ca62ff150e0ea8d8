"""The ``lstmviz`` command.

    lstmviz [FILE]                                   open the window (the bundled demo without FILE)
    lstmviz [FILE] --workspace W                     restore a saved workspace (on FILE, else on its recording)
    lstmviz --screenshot PNG [FILE] [--workspace W]  render the window offscreen to PNG and exit
    lstmviz train ENGINE --dataset D --out CKPT      train a built-in engine
    lstmviz record (ENGINE|CKPT [CKPT ...]) --dataset D --out FILE
                                                     record hidden states into a recording (several
                                                     checkpoints of one run: one recording of all)
    lstmviz info FILE                                summarise a recording

Heavy imports (torch, Qt) happen inside the command that needs them, so ``lstmviz info`` and
``--help`` stay fast.
"""

from __future__ import annotations

import argparse
import glob
import itertools
import json
import os
import sys
from pathlib import Path

COMMANDS = ("train", "record", "info", "probe")


class UsageError(Exception):
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
    p = argparse.ArgumentParser(
        prog="lstmviz",
        description="Visual analysis of the hidden states of recurrent networks.",
        epilog="commands: lstmviz train | record | info  (each has --help)",
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
    p = argparse.ArgumentParser(prog="lstmviz train", description="Train a built-in engine on a dataset.")
    p.add_argument("engine", help="engine name (see `lstmviz train --list`)", nargs="?")
    p.add_argument("--list", action="store_true", help="list engines and datasets and exit")
    p.add_argument("--dataset", help="dataset name (default: the engine's default dataset)")
    p.add_argument("--out", help="checkpoint file to write")
    p.add_argument("--steps", type=int, help="optimisation steps (default: the engine's)")
    p.add_argument("--seed", type=int, default=0)
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
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _record_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lstmviz record",
        description="Run a model over a dataset split and record its hidden states into a recording file. "
                    "Given several checkpoint files of one training run (e.g. from `lstmviz train --train "
                    "checkpoint_every=200 --train keep_checkpoints=1`), it records the states of each over "
                    "the same items into one recording, ordered by training step; the last checkpoint's "
                    "states are the recording's main states.",
    )
    p.add_argument("model", nargs="+", metavar="CKPT|ENGINE",
                   help="a checkpoint file written by `lstmviz train`, several checkpoint files of one "
                        "training run, or an engine name (untrained)")
    p.add_argument("--dataset", help="dataset name (default: the checkpoint's dataset)")
    p.add_argument("--split", default="test", help="dataset split (default: test)")
    p.add_argument("--out", required=True, help="recording file to write (.h5)")
    p.add_argument("--signals", nargs="+", metavar="PATTERN",
                   help="tap names or patterns to record, e.g. 'layer*/c' (default: all)")
    p.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="storage dtype")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-items", type=int, help="record only the first N items")
    p.add_argument("--seed", type=int, default=0, help="initialisation seed for an untrained engine")
    p.add_argument("--set", dest="config", action="append", metavar="KEY=VALUE",
                   help="hyperparameter of an untrained engine (repeatable)")
    p.add_argument("--dataset-option", dest="dataset_options", action="append", metavar="KEY=VALUE",
                   help="dataset option (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _info_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lstmviz info", description="Print a summary of a recording.")
    p.add_argument("file", help="recording file")
    return p


def _probe_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
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
    p.add_argument("--curves", action="store_true",
                   help="probe every checkpoint of a multi-checkpoint recording (accuracy against step)")
    p.add_argument("--out", metavar="TABLE", help="also write the table (.csv or .npy)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def cmd_probe(args: argparse.Namespace) -> int:
    from lstmviz.analysis.export_data import SUFFIXES, write_table
    from lstmviz.analysis.probe_report import probe_curves, run_probes
    from lstmviz.recording import open_recording
    from lstmviz.tasks import TqdmTask

    if not Path(args.file).exists():
        raise UsageError(f"no such file: {args.file}")
    if args.out and Path(args.out).suffix.lower() not in SUFFIXES:
        raise UsageError(f"--out must end in {' or '.join(SUFFIXES)}, got {args.out!r}")
    with open_recording(args.file) as rec:
        info = rec.annotations.get(args.label)
        if info is None or info.kind != "categorical":
            names = [n for n, a in rec.annotations.items() if a.kind == "categorical"]
            raise UsageError(f"--label must be a categorical annotation of {args.file}: "
                             f"{', '.join(names) if names else 'it has none'}; got {args.label!r}")
        at = args.at or ("last" if info.level == "item" else "all")
        options = {"shift": args.shift, "at": at, "control": not args.no_control}
        task = TqdmTask(desc="probes", disable=True if args.quiet else None)
        try:
            if args.curves:
                result = probe_curves(rec, args.label, args.taps, task=task, **options)
                reports = result.reports
            else:
                result = run_probes(rec, args.label, args.taps, task=task, **options)
                reports = [result]
        finally:
            task.close()
        for report in reports:
            print(_probe_text(report))
        if args.out:
            print(f"wrote {write_table(args.out, result.table())}")
    return 0


def _probe_text(report) -> str:
    head = f"{report.annotation}" + (f" at t{report.shift:+d}" if report.shift else "") + \
        (" (last position of each item)" if report.at == "last" else "")
    if report.checkpoint:
        head += f" — checkpoint {report.checkpoint}" + (f" (step {report.step})" if report.step is not None else "")
    lines = [f"{head}: majority class {100 * report.majority_accuracy:.1f}%"]
    width = max(len(t) for t in [*report.taps, "input tokens"])
    lines.append(f"  {'tap':<{width}}  accuracy [95% CI]        control   selectivity")
    for tap in report.taps:
        p, c = report.probes[tap], report.controls.get(tap)
        ctrl = f"{100 * c.accuracy:6.1f}%" if c else "      -"
        sel = f"{100 * report.selectivity(tap):+8.1f}" if c else "        -"
        lines.append(f"  {tap:<{width}}  {100 * p.accuracy:5.1f}% [{100 * p.ci_low:5.1f}, {100 * p.ci_high:5.1f}]"
                     f"  {ctrl}  {sel}")
    if report.baseline is not None:
        b = report.baseline
        lines.append(f"  {'input tokens':<{width}}  {100 * b.accuracy:5.1f}% [{100 * b.ci_low:5.1f}, "
                     f"{100 * b.ci_high:5.1f}]")
    return "\n".join(lines)


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
    from lstmviz.qt import app

    size = _window_size(args.size)
    if args.screenshot:
        try:
            problems = app.screenshot(args.screenshot, args.file, size=size, units=args.units,
                                      workspace=args.workspace)
        except app.ScreenshotError as exc:
            print(f"lstmviz: error: {exc}", file=sys.stderr)
            return 1
        for problem in problems:
            print(f"lstmviz: note: {problem}", file=sys.stderr)
        print(f"wrote {args.screenshot}")
        return 0
    return app.run(args.file, units=args.units, workspace=args.workspace)


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
        print(summarize(rec))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from lstmviz.datasets import load_dataset
    from lstmviz.datasets import registry as datasets
    from lstmviz.engines import registry as engines

    if args.list:
        print("engines:")
        for name, spec in engines.all().items():
            print(f"  {name:10s} {spec.description}")
        print("datasets:")
        for name, spec in datasets.all().items():
            print(f"  {name:10s} {spec.description}")
        return 0
    if not args.engine:
        raise UsageError("name an engine to train (see `lstmviz train --list`)")
    if not args.out:
        raise UsageError("--out CKPT is required: the checkpoint file to write")
    if args.steps is not None and args.steps <= 0:
        raise UsageError(f"--steps must be a positive number, got {args.steps}")
    spec = engines.get(args.engine)
    dataset_name = args.dataset or spec.default_dataset
    options = _key_values(args.dataset_options, "--dataset-option")
    config = _key_values(args.config, "--set")
    train_overrides = _key_values(args.train, "--train")

    from lstmviz.engines.training import train
    from lstmviz.tasks import TqdmTask

    train_data = load_dataset(dataset_name, "train", **options)
    valid_data = None if args.no_valid else load_dataset(dataset_name, "valid", **options)
    with TqdmTask(desc=f"train {spec.name} on {dataset_name}", unit="step", disable=args.quiet or None) as task:
        metrics = train(
            spec.name, train_data, valid_data, out=args.out, steps=args.steps, seed=args.seed, task=task,
            config=config, **train_overrides,
        )
    print(f"wrote {args.out}")
    if train_overrides.get("keep_checkpoints"):
        out = Path(args.out)
        kept = sorted(out.parent.glob(f"{glob.escape(out.stem)}-step[0-9]*{glob.escape(out.suffix)}"))
        pattern = out.with_name(f"{out.stem}-step*{out.suffix}")
        print(f"kept {len(kept)} checkpoints as {pattern} (record them all: lstmviz record {pattern} --out R.h5)")
    for key, value in metrics.items():
        print(f"  {key}: {value:.4g}" if isinstance(value, float) else f"  {key}: {value}")
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from lstmviz.datasets import load_dataset
    from lstmviz.engines import registry as engines
    from lstmviz.engines.checkpoint import load_checkpoint
    from lstmviz.recording.recorder import CheckpointSource, record

    if args.batch_size <= 0:
        raise UsageError(f"--batch-size must be positive, got {args.batch_size}")
    if args.max_items is not None and args.max_items <= 0:
        raise UsageError(f"--max-items must be positive, got {args.max_items}")
    options = _key_values(args.dataset_options, "--dataset-option")
    files, names = _models_and_engines(args.model)
    provenance: dict = {}
    checkpoints = None
    if files:
        if args.config:
            raise UsageError("--set applies to an untrained engine; a checkpoint carries its own config")
        run = _one_training_run(files, load_checkpoint)
        model_path, meta = run[-1]  # the main checkpoint: the last in training order
        model, _ = load_checkpoint(model_path)
        dataset_name = args.dataset or meta["dataset"]
        dataset = load_dataset(dataset_name, args.split, **options)
        if list(meta["vocab"]) != list(dataset.vocab):
            raise UsageError(
                f"checkpoint {model_path} was trained with a different vocabulary than dataset "
                f"{dataset_name!r} ({len(meta['vocab'])} vs {len(dataset.vocab)} tokens); record on its dataset "
                f"({meta['dataset']!r})"
            )
        provenance.update(
            engine=meta["engine"], config=meta["config"], checkpoint=str(model_path.resolve()),
            sha256=meta["sha256"], checkpoint_step=meta["step"], train_metrics=meta.get("metrics", {}),
            trained_on=meta["dataset"],
        )
        if len(run) > 1:
            checkpoints = [
                CheckpointSource(_checkpoint_loader(path, m["sha256"], load_checkpoint), step=m["step"],
                                 path=str(path.resolve()), sha256=m["sha256"], metrics=m.get("metrics", {}))
                for path, m in run
            ]
    else:
        spec = engines.get(names[0])
        dataset_name = args.dataset or spec.default_dataset
        dataset = load_dataset(dataset_name, args.split, **options)
        config = {**spec.default_config, **_key_values(args.config, "--set")}
        import torch

        torch.manual_seed(args.seed)
        model = spec.build(vocab_size=len(dataset.vocab), **config)
        provenance.update(engine=spec.name, config=config, checkpoint=None, untrained_seed=args.seed)
        print(f"note: recording an untrained {spec.name} (random weights, seed {args.seed})", file=sys.stderr)

    out = record(
        model, dataset, args.out, signals=args.signals, batch_size=args.batch_size, dtype=args.dtype,
        progress=not args.quiet, provenance=provenance, max_items=args.max_items, checkpoints=checkpoints,
    )
    if checkpoints:
        steps = ", ".join(str(c.step) for c in sorted(checkpoints, key=lambda c: c.step))
        print(f"wrote {out} ({len(checkpoints)} checkpoints, steps {steps}; the main states are step "
              f"{checkpoints[-1].step}'s)")
    else:
        print(f"wrote {out}")
    return 0


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

_PARSERS = {"train": _train_parser, "record": _record_parser, "info": _info_parser, "probe": _probe_parser}
_COMMANDS = {"train": cmd_train, "record": cmd_record, "info": cmd_info, "probe": cmd_probe}


def _expected_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean 'the user gave something wrong': printed in one line, no traceback."""
    errors: list[type[BaseException]] = [UsageError, FileNotFoundError, IsADirectoryError, PermissionError]
    from lstmviz.registry import UnknownName

    errors.append(UnknownName)
    try:
        from lstmviz.recording import RecordingError

        errors.append(RecordingError)
    except ImportError:  # pragma: no cover - partial installs
        pass
    if "lstmviz.engines.checkpoint" in sys.modules:
        errors.append(sys.modules["lstmviz.engines.checkpoint"].CheckpointError)
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    # torch's OpenMP threads busy-wait by default, which collapses throughput when another process
    # shares the cores; must be set before torch is first imported
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        parser = _PARSERS[argv[0]]()
        args = parser.parse_args(argv[1:])
        command = _COMMANDS[argv[0]]
    else:
        parser = _open_parser()
        args = parser.parse_args(argv)
        command = cmd_open
    try:
        return command(args)
    except KeyboardInterrupt:
        print("lstmviz: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lstmviz info FILE | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        from lstmviz.tasks import Cancelled

        if isinstance(exc, Cancelled):
            print("lstmviz: cancelled", file=sys.stderr)
            return 130
        if isinstance(exc, UsageError):
            parser.print_usage(sys.stderr)
            print(f"{parser.prog}: error: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, (ValueError, *_expected_errors())):
            print(f"{parser.prog}: error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
