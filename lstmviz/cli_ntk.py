"""``lstmviz ntk``: tangent-kernel alignment and effective rank per layer, and the NTK spectrum with the
label energy per eigendirection, of the model behind a recording (``lstmviz.analysis.ntk_recording``).

    lstmviz ntk FILE --label ANNOT [--items N] [--seed S] [--over-training] [--rank entropy|trace]
                [--out TABLE.csv] [--spectrum-out SPECTRUM.csv] [--top K] [--center-labels] [--quiet]

Kept apart from ``lstmviz/cli.py`` (which registers it) so the command is one module.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lstmviz.console import printable, progress_task

WHAT = "tangent-kernel alignment / effective rank per layer (over training) and the NTK spectrum"


def ntk_parser(parser_class) -> argparse.ArgumentParser:
    p = parser_class(
        prog="lstmviz ntk",
        description="The empirical tangent kernel of the recording's model on (at most --items of) its items: "
                    "centred alignment with a label and effective rank, per layer; with --over-training at "
                    "every checkpoint of a multi-checkpoint recording; and the eigen-spectrum of the whole "
                    "kernel with the label energy per eigendirection. Results are cached beside the file.")
    p.add_argument("file", help="recording file (image or language-model recording)")
    p.add_argument("--label", required=True, help="a categorical annotation of the items (an item annotation, or a "
                                                  "position annotation taken at each item's last position)")
    p.add_argument("--items", type=int, default=256, help="at most this many items, a seeded choice (default 256)")
    p.add_argument("--seed", type=int, default=0, help="seed of the item choice (default 0)")
    p.add_argument("--over-training", action="store_true",
                   help="alignment and effective rank at every checkpoint of a multi-checkpoint recording")
    p.add_argument("--rank", choices=("entropy", "trace"), default="entropy",
                   help="effective rank: exp of the entropy of the normalised eigenvalues (default) or tr K / λmax")
    p.add_argument("--center-labels", action="store_true",
                   help="centre the one-hot label columns before measuring their energy per eigendirection")
    p.add_argument("--top", type=int, default=10, help="eigendirections printed (default 10)")
    p.add_argument("--out", metavar="TABLE", help="write the per-layer table (.csv or .npy)")
    p.add_argument("--spectrum-out", metavar="TABLE", help="write the spectrum with the label energy (.csv or .npy)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def cmd_ntk(args: argparse.Namespace, usage_error) -> int:
    from lstmviz.analysis.export_data import SUFFIXES, write_table
    from lstmviz.analysis.ntk_recording import kernel_curves, kernel_spectrum
    from lstmviz.recording import open_recording

    if not Path(args.file).exists():
        raise usage_error(f"no such file: {args.file}")
    for option, value in (("--out", args.out), ("--spectrum-out", args.spectrum_out)):
        if value and Path(value).suffix.lower() not in SUFFIXES:
            raise usage_error(f"{option} must end in {' or '.join(SUFFIXES)}, got {value!r}")
        if value and not Path(value).parent.is_dir():
            raise usage_error(f"{option} {value}: the folder {str(Path(value).parent)!r} does not exist")
    if args.items < 2:
        raise usage_error(f"--items must be at least 2, got {args.items}")
    if args.top < 1:
        raise usage_error(f"--top must be at least 1, got {args.top}")
    with open_recording(args.file) as rec:
        info = rec.annotations.get(args.label)
        if info is None or info.kind != "categorical":
            names = [n for n, a in rec.annotations.items() if a.kind == "categorical"]
            raise usage_error(f"--label must be a categorical annotation of {args.file}: "
                              f"{', '.join(names) if names else 'it has none'}; got {args.label!r}")
        if args.over_training and len(rec.checkpoints) < 2:
            raise usage_error(f"--over-training needs a recording of several checkpoints of one run; {args.file} "
                              "holds one model state (record several: lstmviz record CKPT1 CKPT2 ... --out FILE)")
        with progress_task("tangent kernel", unit="steps", quiet=args.quiet) as task:
            if args.over_training:
                curves = kernel_curves(rec, args.label, items=args.items, seed=args.seed, rank=args.rank, task=task)
                spectrum = None
            else:
                curves = None
                spectrum = kernel_spectrum(rec, args.label, items=args.items, seed=args.seed, rank=args.rank,
                                           center_labels=args.center_labels, task=task)
        if curves is not None:
            print(curves_text(curves))
            table = curves.table()
        else:
            print(spectrum_text(spectrum, args.top))
            table = spectrum.layer_table()
        if args.out:
            print(f"wrote {write_table(args.out, table)}")
        if args.spectrum_out:
            if spectrum is None:
                with progress_task("NTK spectrum", unit="steps", quiet=args.quiet) as task:
                    spectrum = kernel_spectrum(rec, args.label, items=args.items, seed=args.seed, rank=args.rank,
                                               center_labels=args.center_labels, task=task)
            print(f"wrote {write_table(args.spectrum_out, spectrum.table())}")
    return 0


def curves_text(curves) -> str:
    lines = [f"tangent kernel vs {printable(curves.annotation)}: {curves.items} items, output = {curves.output}; "
             f"centred alignment A and effective rank r ({curves.rank}) of the centred kernel"
             + (" (from the cache)" if curves.from_cache else "")]
    names = [*curves.layers, "all"]
    width = max(12, *(len(n) for n in names))
    lines.append(f"  {'checkpoint':<14}{'step':>8}  " + "  ".join(f"{printable(n)[:width]:>{width}}" for n in names))
    for c, name in enumerate(curves.checkpoints):
        step = "" if curves.steps[c] is None else str(curves.steps[c])
        cells = [f"A {curves.alignment[c, i]:.3f} r {curves.effective_rank[c, i]:.1f}" for i in range(len(curves.layers))]
        cells.append(f"A {curves.total_alignment[c]:.3f} r {curves.total_effective_rank[c]:.1f}")
        lines.append(f"  {printable(name):<14}{step:>8}  " + "  ".join(f"{cell:>{width}}" for cell in cells))
    return "\n".join(lines)


def spectrum_text(result, top: int = 10) -> str:
    s = result.spectrum
    lines = [f"NTK of the {'main model' if result.checkpoint == 'main' else printable(result.checkpoint)} on "
             f"{result.items} items vs {printable(result.annotation)}; output = {result.output}"
             + (" (from the cache)" if result.from_cache else "")]
    lines.append(f"  {'layer':<24}{'alignment':>10}{'eff. rank':>11}")
    for layer, a, r in zip([*result.layers, "all"], [*result.alignment, result.total_alignment],
                           [*result.effective_rank, result.total_effective_rank]):
        lines.append(f"  {printable(layer):<24}{a:>10.3f}{r:>11.2f}")
    total = float(max(s.eigenvalues.clip(0).sum(), 1e-300))
    names = [printable(n)[:8] for n in s.labels]
    lines.append("  label energy per eigendirection (‖u_kᵀ y_c‖² / ‖y_c‖²" + (", y centred)" if s.centered else ")"))
    lines.append(f"  {'k':>4}{'eigenvalue':>13}{'share':>8}  " + " ".join(f"{n:>8}" for n in names))
    for k in range(min(top, len(s.eigenvalues))):
        lines.append(f"  {k + 1:>4}{s.eigenvalues[k]:>13.4g}{max(s.eigenvalues[k], 0) / total:>8.1%}  "
                     + " ".join(f"{v:>8.3f}" for v in s.energy[k]))
    need = s.directions_for(0.9)
    lines.append("  directions holding 90% of each class's energy: "
                 + ", ".join(f"{n} {int(k)}" for n, k in zip(names, need)))
    return "\n".join(lines)
