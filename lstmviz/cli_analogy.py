"""``lstmviz analogy``: nearest neighbours, analogy queries and per-relation accuracy of an embedding table.

    lstmviz analogy CKPT --generate morphology              a language model's embedding, PTB-style suffixes
    lstmviz analogy CKPT --parameter decoder.weight ...     another table of the checkpoint (--list-tables)
    lstmviz analogy REC.h5 --tap T --annotation A [--by B]  class means of a recording (streamed)
    lstmviz analogy REC.h5 ...                              without --tap: the recording's checkpoint
    lstmviz analogy TABLE.csv|.tsv|.npy|.txt ...            a table file (NPY: with --names)

Registered in ``lstmviz.cli`` (which owns ``UsageError`` and the error handling).
"""

from __future__ import annotations

import argparse
from pathlib import Path

RECORDING_SUFFIXES = (".h5", ".hdf5")


def analogy_parser(parser_class) -> argparse.ArgumentParser:
    from lstmviz.analysis.analogy import GENERATORS, MAX_QUESTIONS, METHODS

    p = parser_class(
        prog="lstmviz analogy",
        description="Embedding geometry (Linzen 2016): nearest neighbours, analogy queries a:a*::b:? and per-relation "
                    "accuracy of 3CosAdd, 3CosMul and the baselines ONLY-B, IGNORE-A, ADD-OPPOSITE, REVERSE (ADD), "
                    "REVERSE (ONLY-B), premises excluded unless --no-exclude, with the chance level.",
        epilog="SOURCE: a checkpoint (its embedding, decoder rows, subgraph2vec vectors, label embeddings), a "
               "recording (class means of --tap per --annotation label, or without --tap its checkpoint), or a "
               "table file (.csv/.tsv: name then numbers; .npy with --names; .txt/.vec: word2vec text).")
    p.add_argument("source", help="checkpoint, recording (.h5) or table file")
    p.add_argument("--parameter", metavar="P", help="which table of a checkpoint (default: its input embedding, "
                                                       "label table or subgraph2vec Phi; see --list-tables)")
    p.add_argument("--list-tables", action="store_true", help="list the tables a checkpoint offers and exit")
    p.add_argument("--tap", help="recording: the tap whose class means make the table")
    p.add_argument("--annotation", metavar="A", help="recording: the categorical annotation whose labels are the rows")
    p.add_argument("--by", metavar="B", help="recording: a second categorical annotation; rows are label pairs "
                                             "'A|B' (for --generate crossed)")
    p.add_argument("--min-count", type=int, default=1, metavar="N", help="class means: leave out labels with fewer "
                                                                         "rows (default 1)")
    p.add_argument("--names", metavar="FILE", help=".npy table: its names, one per line (default: STEM.names.txt)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--relations", metavar="FILE", help="questions in Google-analogy format (': relation' lines, "
                                                           "then 'a a* b b*' lines)")
    group.add_argument("--generate", choices=GENERATORS,
                       help="relations from the table itself: morphology (x/xs, x/xed, x/xing, x/xly, x/xer pairs of "
                            "the vocabulary), crossed (class means with --by: same label, by-label u -> v)")
    p.add_argument("--method", dest="methods", action="append", choices=list(METHODS), metavar="M",
                   help=f"method (repeatable; default all): {', '.join(METHODS)}")
    p.add_argument("--no-exclude", action="store_true", help="let the premises a, a*, b be answers too")
    p.add_argument("--neighbours", action="append", metavar="TOKEN", help="print the nearest neighbours of TOKEN "
                                                                          "(repeatable)")
    p.add_argument("--query", nargs=3, metavar=("A", "A*", "B"), help="print the ranked answers to A : A* :: B : ? "
                                                                      "(with the first --method, default 3cosadd)")
    p.add_argument("-k", type=int, default=10, help="neighbours / answers to print (default 10)")
    p.add_argument("--max-questions", type=int, default=MAX_QUESTIONS, metavar="N",
                   help=f"generated relations: questions drawn per relation (default {MAX_QUESTIONS}; 0: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the questions drawn (default 0)")
    p.add_argument("--out", metavar="TABLE", help="write the accuracy table (.csv or .npy)")
    p.add_argument("--quiet", action="store_true", help="no progress")
    return p


def _source_kind(path: Path) -> str:
    from lstmviz.analysis.embedding_tables import FILE_SUFFIXES

    suffix = path.suffix.lower()
    if suffix in RECORDING_SUFFIXES:
        return "recording"
    if suffix in FILE_SUFFIXES:
        return "file"
    return "checkpoint"


def load_source(args, task) -> tuple:
    """``(table, checkpoint_tables or None)`` of ``args.source`` (see the parser's epilog)."""
    from lstmviz.analysis.embedding_tables import checkpoint_tables, class_means, table_from_file
    from lstmviz.cli import UsageError

    path = Path(args.source)
    if not path.exists():
        raise UsageError(f"no such file: {args.source}")
    kind = _source_kind(path)
    recording_only = [name for name, value in (("--tap", args.tap), ("--annotation", args.annotation),
                                               ("--by", args.by)) if value]
    if kind != "recording" and recording_only:
        raise UsageError(f"{recording_only[0]} reads class means of a recording; {args.source} is a {kind}")
    if args.names and kind != "file":
        raise UsageError(f"--names goes with an .npy table; {args.source} is a {kind}")
    if kind == "file":
        if args.parameter or args.list_tables:
            raise UsageError(f"--parameter and --list-tables choose a table of a checkpoint; {args.source} is a table file")
        return table_from_file(path, args.names), None
    if kind == "recording":
        from lstmviz.recording import open_recording

        with open_recording(path) as rec:
            if args.tap or args.annotation:
                if not (args.tap and args.annotation):
                    raise UsageError("class means need both --tap and --annotation")
                if args.parameter or args.list_tables:
                    raise UsageError("--parameter and --list-tables choose a checkpoint table, not class means")
                try:
                    return class_means(rec, args.tap, args.annotation, by=args.by, task=task,
                                       min_count=args.min_count), None
                except ValueError as exc:
                    raise UsageError(str(exc)) from None
            if args.by:
                raise UsageError("--by goes with --tap and --annotation")
            from lstmviz.perturb.live_model import find_checkpoint

            try:
                checkpoint = find_checkpoint(rec)
            except Exception as exc:  # noqa: BLE001 - CheckpointProblem: said in words
                raise UsageError(f"{exc}; or give --tap and --annotation for class means") from None
    else:
        checkpoint = path
    tables = checkpoint_tables(checkpoint)
    if args.list_tables:
        return None, tables
    return tables.table(args.parameter), tables


def cmd_analogy(args: argparse.Namespace) -> int:
    from lstmviz.analysis.analogy import (
        METHOD_TITLES,
        METHODS,
        evaluate,
        generate_relations,
        nearest_neighbours,
        query,
        relations_from_file,
        report_text,
    )
    from lstmviz.analysis.export_data import SUFFIXES, write_table
    from lstmviz.cli import UsageError, _say
    from lstmviz.console import progress_task

    if args.k < 1:
        raise UsageError(f"-k must be at least 1, got {args.k}")
    if args.max_questions < 0:
        raise UsageError(f"--max-questions must be 0 (all) or more, got {args.max_questions}")
    if args.out and Path(args.out).suffix.lower() not in SUFFIXES:
        raise UsageError(f"--out must end in {' or '.join(SUFFIXES)}, got {args.out!r}")
    if args.out and not Path(args.out).parent.is_dir():
        raise UsageError(f"--out {args.out}: the folder {str(Path(args.out).parent)!r} does not exist")
    if args.out and not (args.relations or args.generate):
        raise UsageError("--out writes the accuracy table: give --relations FILE or --generate too")
    if not (args.relations or args.generate or args.neighbours or args.query or args.list_tables):
        raise UsageError("nothing to do: give --relations FILE or --generate morphology|crossed (accuracy), "
                         "--neighbours TOKEN, --query A A* B, or --list-tables")
    if args.relations and not Path(args.relations).exists():
        raise UsageError(f"--relations: no such file: {args.relations}")
    exclude = not args.no_exclude
    with progress_task("analogy", unit="questions", quiet=args.quiet) as task:
        table, tables = load_source(args, task)
        if args.list_tables:
            if tables is None:
                raise UsageError(f"--list-tables lists a checkpoint's tables; {args.source} is no checkpoint")
            _say(f"tables of {tables.path} ({tables.engine}):")
            for c in tables.candidates:
                mark = "  (default)" if c.parameter == tables.default else ""
                _say(f"  {c.parameter:<24} {c.shape[0]:>7,} x {c.shape[1]:<5} {c.kind}{mark}")
            return 0
        zero = f", {table.zero_rows} all-zero rows" if table.zero_rows else ""
        _say(f"table: {table.source} ({len(table):,} rows x {table.dim}{zero})")
        for token in args.neighbours or []:
            try:
                found = nearest_neighbours(table, token, args.k)
            except KeyError as exc:
                raise UsageError(f"--neighbours: {exc.args[0]}") from None
            _say(f"nearest neighbours of {token} (cosine):")
            for name, cos in found:
                _say(f"  {cos:+.4f}  {name}")
        if args.query:
            method = (args.methods or ["3cosadd"])[0]
            if method.startswith("reverse"):
                raise UsageError(f"--query asks a : a* :: b : ?, which {METHOD_TITLES[method]} cannot answer (it needs "
                                 f"b*); pick another --method")
            try:
                found = query(table, *args.query, method, exclude=exclude, k=args.k)
            except KeyError as exc:
                raise UsageError(f"--query: {exc.args[0]}") from None
            a, a_star, b = args.query
            _say(f"{a} : {a_star} :: {b} : ?   ({METHOD_TITLES[method]}, premises "
                 f"{'excluded' if exclude else 'not excluded'})")
            for rank, (name, score) in enumerate(found, 1):
                _say(f"  {rank:>3}. {name}  {score:+.4f}")
        if args.relations or args.generate:
            options = {"max_questions": args.max_questions or None, "seed": args.seed}
            try:
                relations = (relations_from_file(args.relations, table) if args.relations
                             else generate_relations(table, args.generate, **options))
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            if not any(r.questions for r in relations):
                raise UsageError(f"no question of {args.relations or args.generate} has all four words in the table")
            report = evaluate(table, relations, args.methods or list(METHODS), exclude=exclude, task=task)
            _say(report_text(report))
            if args.out:
                _say(f"wrote {write_table(args.out, report.table())}")
    return 0
