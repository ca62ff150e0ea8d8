"""``lstmviz index`` and ``lstmviz match``: the match index and whole-corpus matching from the command line,
on one recording or on shards (a logical file or a list of shard files), on a Dask cluster or local
processes (``lstmviz.analysis.sharded``).

    lstmviz index FILE [FILE ...] --tap T [--transform raw|tanh|zscore] [--threshold X]
                  [--scheduler ADDRESS | --workers N | --processes N]
    lstmviz match FILE [FILE ...] --tap T --units 3,17,-42 [--mode lstmvis|scored] [-k N] [--out M.csv]
                  [--scheduler ADDRESS | --workers N | --processes N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lstmviz.cli import UsageError, _Parser, _say
from lstmviz.console import printable, progress_task

TRANSFORMS = ("raw", "tanh", "zscore")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="a recording, a logical recording that names its shards, or shard files in corpus order")
    p.add_argument("--tap", required=True, help="the tap to index")
    p.add_argument("--transform", choices=TRANSFORMS, default="raw",
                   help="the view transform the threshold is in (default raw)")
    p.add_argument("--threshold", default="0.3", help="a unit is on at or beyond this value (default 0.3)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run the per-shard tasks on the Dask cluster of this scheduler (tcp://host:8786); "
                            "every worker must see the shard files under the same paths")
    where.add_argument("--workers", type=int, metavar="N",
                       help="run on N local workers: a Dask LocalCluster when dask.distributed is installed, "
                            "else N processes (default: one per shard, at most one per core)")
    where.add_argument("--processes", type=int, metavar="N", help="run on N local processes (without Dask)")
    p.add_argument("--quiet", action="store_true", help="no progress")


def index_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lstmviz index",
                description="Build the match index of a tap: of each shard in parallel (each cached beside its "
                            "shard, with the statistics of the whole recording), or of one recording.")
    _common(p)
    return p


def match_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lstmviz match",
                description="Find every range of the corpus where the given units are on together, ranked as in "
                            "the Match view; over shards the results equal the single file's.")
    _common(p)
    p.add_argument("--units", required=True, metavar="LIST",
                   help="units, comma-separated; a leading minus means 'on in the negative direction' "
                        "(e.g. 3,17,-42)")
    p.add_argument("--mode", choices=("lstmvis", "scored"), default="lstmvis",
                   help="lstmvis: LSTMVis's precise matcher; scored: Jaccard times a length term (default lstmvis)")
    p.add_argument("-k", "--limit", type=int, default=20, metavar="N", help="matches to return (default 20)")
    p.add_argument("--cap", default="10000", metavar="N",
                   help="candidate cap (lstmvis: candidates kept by boundary sharpness; scored: candidates scored "
                        "at most); 'none' for no cap (default 10000)")
    p.add_argument("--pad-left", type=int, default=1, metavar="N", help="off-padding before a match (default 1)")
    p.add_argument("--pad-right", type=int, default=0, metavar="N", help="off-padding after a match (default 0)")
    p.add_argument("--min-length", type=int, default=1, metavar="N", help="shortest match (default 1)")
    p.add_argument("--max-length", type=int, metavar="N", help="longest match (default: no limit)")
    p.add_argument("--selection-length", type=int, metavar="N",
                   help="scored mode: the length a match is compared with (default: no length term)")
    p.add_argument("--out", metavar="TABLE", help="also write the matches (.csv or .npy), with their text")
    return p


def parse_units(text: str, n_units: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``"3,17,-42"`` -> units ``(3, 17, 42)``, signs ``(1, 1, -1)``; ``UsageError`` with what was wrong."""
    units, signs = [], []
    for raw in text.split(","):
        part = raw.strip()
        sign = -1 if part.startswith("-") else 1
        digits = part.lstrip("+-")
        if not digits.isdigit() or len(part) - len(digits) > 1:
            raise UsageError(f"--units must be unit numbers separated by commas, a leading minus for the negative "
                             f"direction (e.g. 3,17,-42); got {part!r} in {text!r}")
        unit = int(digits)
        if unit >= n_units:
            raise UsageError(f"--units: unit {unit} is outside 0..{n_units - 1} (the tap has {n_units} units)")
        if (unit, sign) in zip(units, signs):
            raise UsageError(f"--units: {part} is given twice")
        units.append(unit)
        signs.append(sign)
    return tuple(units), tuple(signs)


def _open(args):
    from lstmviz.analysis.bitindex import IndexKey
    from lstmviz.analysis.sharded import open_shards
    from lstmviz.analysis.transforms import check_threshold

    for f in args.files:
        if not Path(f).exists():
            raise UsageError(f"no such file: {f}")
    try:
        threshold = check_threshold(args.threshold, args.transform)
    except ValueError as e:
        raise UsageError(f"--threshold: {e}") from None
    for name in ("workers", "processes"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be at least 1, got {value}")
    shards = open_shards(args.files if len(args.files) > 1 else args.files[0])
    if args.tap not in shards.taps:
        raise UsageError(f"--tap: the recording has no tap {args.tap!r}; it has {', '.join(shards.taps)}")
    return shards, IndexKey(args.tap, args.transform, threshold)


def _backend(args, shards):
    from lstmviz.analysis import shard_exec

    if args.processes is not None:
        return shard_exec.make_backend(workers=args.processes, processes=True, shards=len(shards))
    return shard_exec.make_backend(scheduler=args.scheduler, workers=args.workers, shards=len(shards))


def cmd_index(args: argparse.Namespace) -> int:
    from lstmviz.analysis.sharded import build_indices

    shards, key = _open(args)
    t = time.perf_counter()
    with _backend(args, shards) as backend, progress_task("indexing", unit="shards", quiet=args.quiet) as task:
        built = build_indices(shards, key, backend, task=task)
    for shard, b in zip(shards.shards, built):
        _say(f"{shard.path}: items {shard.items[0]}..{shard.items[1] - 1}, {b['positions']:,} positions, "
             f"index {b['cache'] or '(in memory: the cache folder cannot be written)'}")
    _say(f"indexed {args.tap} ({key.transform} >= {key.threshold:g}) in {len(shards)} shard"
         f"{'s' if len(shards) > 1 else ''} on {backend.name} in {time.perf_counter() - t:.1f} s")
    return 0


def cmd_match(args: argparse.Namespace) -> int:
    from lstmviz.analysis.export_data import SUFFIXES, match_columns, write_table
    from lstmviz.analysis.match_types import MatchQuery
    from lstmviz.analysis.sharded import ShardedRecording, match

    if args.out and Path(args.out).suffix.lower() not in SUFFIXES:
        raise UsageError(f"--out must end in {' or '.join(SUFFIXES)}, got {args.out!r}")
    if args.out and not Path(args.out).parent.is_dir():
        raise UsageError(f"--out {args.out}: the folder {str(Path(args.out).parent)!r} does not exist")
    cap = None if args.cap.strip().lower() == "none" else _positive(args.cap, "--cap")
    shards, key = _open(args)
    units, signs = parse_units(args.units, shards.tap(args.tap).units)
    try:
        query = MatchQuery(units=units, signs=signs, mode=args.mode, pad_left=args.pad_left,
                           pad_right=args.pad_right, min_length=args.min_length, max_length=args.max_length,
                           limit=args.limit, candidate_cap=cap, selection_length=args.selection_length)
    except ValueError as e:
        raise UsageError(str(e)) from None
    with _backend(args, shards) as backend, progress_task("matching", unit="steps", quiet=args.quiet) as task:
        results = match(shards, key, query, backend, task=task)
        name = backend.name
    with ShardedRecording(shards) as view:
        columns = match_columns(results, view)
    _say(f"{len(results)} matches of {len(units)} units in {len(shards)} shard{'s' if len(shards) > 1 else ''} "
         f"({name}, {results.elapsed_s:.2f} s, {results.n_candidates:,} candidates scored)")
    score = "jaccard" if args.mode == "lstmvis" else "score"
    _say(f"{'rank':>4} {'start':>10} {'item':>7} {'len':>4} {score:>7}  text")
    for i in range(len(results)):
        _say(f"{i + 1:>4} {int(columns['start'][i]):>10} {int(columns['item'][i]):>7} {int(columns['length'][i]):>4} "
             f"{float(columns[score][i]):>7.3f}  {printable(columns['text'][i])[:60]}")
    if args.out:
        _say(f"wrote {write_table(args.out, columns)}")
    return 0


def _positive(text: str, option: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{option} must be a whole number or 'none', got {text!r}") from None
    if value < 1:
        raise UsageError(f"{option} must be at least 1, got {value}")
    return value
