r"""Token × dimension tables for the embedding-geometry analyses (issue 20): where they come from.

An :class:`EmbeddingTable` is ``names`` (one unique string per row) and ``vectors`` (float32
``[rows, dim]``), with the ``source`` it was read from in words. The analyses
(:mod:`lstmviz.analysis.analogy`, :mod:`lstmviz.analysis.embedding_projection`) read only this.

Loaders (each raises ``ValueError`` / ``OSError`` / ``CheckpointError`` with a sentence that says what was
wrong and what to do):

- :func:`checkpoint_tables` / :func:`table_from_checkpoint`: the 2-D parameters and buffers of a checkpoint
  that have one row per token (``rows == len(vocab)``: an input embedding, a decoder's output rows), one row
  per class (``rows == num_classes``: label embeddings ``label_table`` of ``label-embed``, a readout), or
  subgraph2vec's :math:`\Phi` / :math:`\Psi` (one row per fitted rooted subgraph, named ``d<depth>#<id>``;
  the zero row of unseen subgraphs is left out). Found generically by shape; the user may name one.
  Loaded with ``torch.load(weights_only=True)`` through :func:`lstmviz.engines.checkpoint.load_checkpoint`
  (a checkpoint is untrusted input).
- :func:`class_means`: from a recording, the mean state of a tap per label of a categorical annotation,
  :math:`\mu_c = \frac{1}{|P_c|} \sum_{p \in P_c} h_p` over the rows ``P_c`` labelled ``c`` (per-position
  labels, or an item's label on every row of the item). The tap is streamed in blocks, never read whole.
  With a second annotation ``by`` the classes are the label pairs ``"label|by-label"`` and
  :attr:`EmbeddingTable.parts` keeps the pair, from which
  :func:`lstmviz.analysis.analogy.crossed_relations` defines relations ("same label, by-label u → v").
- :func:`table_from_file`: CSV / TSV (first column the name, then numbers; an optional header row),
  NPY (``[rows, dim]``, with a names file of one name per line), or word2vec's text format (a first line
  ``rows dim``, then ``name v1 ... vdim`` separated by spaces).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

#: suffixes :func:`table_from_file` reads
FILE_SUFFIXES = (".csv", ".tsv", ".npy", ".txt", ".vec")
#: rows read from a tap per block by :func:`class_means`
BLOCK_ROWS = 65536
#: largest table file read (bytes): far above any embedding table this tool is for
MAX_FILE_BYTES = 2 << 30


@dataclass(frozen=True, eq=False)
class EmbeddingTable:
    """``names`` (unique) and ``vectors`` float32 ``[len(names), dim]``, read from ``source``.

    ``parts``: for class means over two annotations, each row's ``(label, by-label)`` and the two annotation
    names in ``part_names`` (else None). ``counts``: rows averaged into each class mean (else None).
    """

    names: tuple[str, ...]
    vectors: np.ndarray
    source: str
    parts: tuple[tuple[str, str], ...] | None = None
    part_names: tuple[str, str] | None = None
    counts: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        names = tuple(str(n) for n in self.names)
        object.__setattr__(self, "names", names)
        vectors = np.asarray(self.vectors)
        if vectors.ndim != 2:
            raise ValueError(f"{self.source}: an embedding table is 2-D [tokens, dimensions], got shape {vectors.shape}")
        if vectors.dtype.kind not in "fiu":
            raise ValueError(f"{self.source}: the table's values must be numbers, got dtype {vectors.dtype}")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        object.__setattr__(self, "vectors", vectors)
        if len(names) != len(vectors):
            raise ValueError(f"{self.source}: {len(names):,} names for {len(vectors):,} rows; give one name per row")
        if len(names) < 2 or vectors.shape[1] < 1:
            raise ValueError(f"{self.source}: a table needs at least 2 rows and 1 dimension, got shape {vectors.shape}")
        seen: dict[str, int] = {}
        for i, name in enumerate(names):
            if name in seen:
                raise ValueError(f"{self.source}: the name {name!r} is on rows {seen[name]} and {i}; names must be "
                                 f"unique (rename or drop one)")
            seen[name] = i
        bad = ~np.isfinite(vectors).all(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{self.source}: row {row} ({names[row]!r}) holds NaN or infinity ({int(bad.sum())} such "
                             f"rows); drop them or fix the table")
        if self.parts is not None and len(self.parts) != len(names):
            raise ValueError(f"{self.source}: {len(self.parts)} parts for {len(names)} rows")
        object.__setattr__(self, "_index", seen)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def index(self, name: str) -> int:
        """The row of ``name``; KeyError naming close names when it is not in the table."""
        row = self._index.get(str(name))  # type: ignore[attr-defined]
        if row is None:
            import difflib

            close = difflib.get_close_matches(str(name), self.names, n=5)
            hint = f"; close: {', '.join(close)}" if close else ""
            raise KeyError(f"{name!r} is not in the table ({len(self):,} names from {self.source}){hint}")
        return row

    def __contains__(self, name) -> bool:
        return str(name) in self._index  # type: ignore[attr-defined]

    @cached_property
    def unit(self) -> np.ndarray:
        """The rows scaled to unit length (float32; an all-zero row stays zero: its cosine with anything is 0)."""
        norms = np.linalg.norm(self.vectors.astype(np.float64), axis=1, keepdims=True)
        return (self.vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)

    @cached_property
    def zero_rows(self) -> int:
        return int((np.linalg.norm(self.vectors, axis=1) == 0).sum())


# ---------------------------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class TableCandidate:
    """One table a checkpoint offers: the parameter (or buffer) name, its shape, what its rows are."""

    parameter: str
    shape: tuple[int, int]
    kind: str


@dataclass(frozen=True, eq=False)
class CheckpointTables:
    """Every table a checkpoint offers (``tables``, by parameter name), and the one chosen by default."""

    path: str
    engine: str
    candidates: tuple[TableCandidate, ...]
    tables: dict
    default: str

    def table(self, parameter: str | None = None) -> EmbeddingTable:
        name = self.default if parameter is None else parameter
        if name not in self.tables:
            offered = ", ".join(f"{c.parameter} {list(c.shape)} ({c.kind})" for c in self.candidates)
            raise ValueError(f"{self.path}: the checkpoint has no table {name!r}; it offers {offered}")
        return self.tables[name]


def _kind_of_token_rows(name: str) -> str:
    low = name.lower()
    if any(word in low for word in ("decoder", "softmax", "output", "out_proj", "proj", "head", "readout")):
        return "output rows per token"
    if any(word in low for word in ("embed", "encoder", "lookup")):
        return "input embedding"
    return "rows per token"


def _class_names(meta: dict, n: int) -> list[str]:
    """The class names of an image or graph checkpoint's dataset when it can be rebuilt, else ``class i``."""
    try:
        from lstmviz.datasets import load_dataset

        dataset = load_dataset(meta.get("dataset"), "train", **(meta.get("dataset_options") or {}))
        names = [str(c) for c in getattr(dataset, "class_names", ())]
        if len(names) == n and len(set(names)) == n:
            return names
    except Exception:  # noqa: BLE001 - names are a nicety: the table is usable with numbered ones
        pass
    return [f"class {i}" for i in range(n)]


def checkpoint_tables(path, *, max_rows: int | None = None) -> CheckpointTables:
    """The tables of the checkpoint at ``path`` (see the module docstring); ValueError when it has none."""
    from lstmviz.engines.checkpoint import load_checkpoint

    model, meta = load_checkpoint(path)
    vocab = list(meta.get("vocab") or [])
    engine = str(meta.get("engine"))
    data = meta.get("data") or {}
    n_classes = data.get("num_classes") if isinstance(data, dict) else None
    state = model.state_dict()
    candidates: list[TableCandidate] = []
    tables: dict[str, EmbeddingTable] = {}
    where = f"{Path(path).name}"

    def add(parameter: str, names, vectors, kind: str, extra: dict | None = None) -> None:
        if max_rows is not None and len(names) > max_rows:
            names, vectors = names[:max_rows], vectors[:max_rows]
        try:
            table = EmbeddingTable(tuple(names), vectors, f"{where}: {parameter}", meta={"kind": kind, **(extra or {})})
        except ValueError:
            return  # duplicate names (a vocabulary with repeats) or too few rows: not offered
        candidates.append(TableCandidate(parameter, tuple(table.vectors.shape), kind))
        tables[parameter] = table

    vocabulary = getattr(model, "vocabulary", None)
    if engine == "subgraph2vec" and vocabulary is not None:
        arrays = vocabulary.to_arrays()
        size = len(vocabulary)
        names = [f"d{int(arrays['depth'][i])}#{i}" for i in range(1, size)]
        for parameter in ("phi.weight", "psi.weight"):
            if parameter in state:
                kind = "subgraph embedding Phi" if parameter.startswith("phi") else "context embedding Psi"
                add(parameter, names, state[parameter][1:size].detach().float().cpu().numpy(), kind,
                    {"depth": arrays["depth"][1:size].tolist(), "count": arrays["count"][1:size].tolist()})
    class_names = None
    for parameter, tensor in state.items():
        if parameter in tables or tensor.ndim != 2 or not tensor.is_floating_point():
            continue
        rows = int(tensor.shape[0])
        values = tensor.detach().float().cpu().numpy()
        if vocab and rows == len(vocab) and engine != "subgraph2vec":
            add(parameter, vocab, values, _kind_of_token_rows(parameter))
        elif isinstance(n_classes, int) and rows == n_classes and n_classes >= 2:
            if class_names is None:
                class_names = _class_names(meta, n_classes)
            kind = "label embeddings" if "label" in parameter else "rows per class"
            add(parameter, class_names, values, kind)
    if not candidates:
        shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in state.items() if v.ndim == 2) or "none"
        raise ValueError(f"{path}: no embedding table found: no 2-D parameter has one row per token "
                         f"({len(vocab)} in the vocabulary) or per class; 2-D parameters: {shapes}")
    preferred = ("label_table", "phi.weight")
    default = next((c.parameter for c in candidates if c.parameter in preferred), None)
    default = default or next((c.parameter for c in candidates if c.kind == "input embedding"), candidates[0].parameter)
    return CheckpointTables(str(path), engine, tuple(candidates), tables, default)


def table_from_checkpoint(path, parameter: str | None = None) -> EmbeddingTable:
    """One table of a checkpoint: ``parameter`` (a name from :func:`checkpoint_tables`), else its default."""
    return checkpoint_tables(path).table(parameter)


# ---------------------------------------------------------------------------------------------- recordings


def _categorical(rec, name: str, option: str = "annotation"):
    info = rec.annotations.get(name)
    if info is None or info.kind != "categorical" or not info.labels:
        names = [n for n, a in rec.annotations.items() if a.kind == "categorical" and a.labels]
        raise ValueError(f"{option} must be a categorical annotation of the recording: "
                         f"{', '.join(names) if names else 'it has none'}; got {name!r}")
    return info


def class_means(rec, tap: str, annotation: str, *, by: str | None = None, task=None, min_count: int = 1,
                block_rows: int = BLOCK_ROWS) -> EmbeddingTable:
    """The mean state of ``tap`` per label of ``annotation`` (per ``(label, by-label)`` with ``by``), streamed.

    Rows whose label is missing (-1) are skipped; classes with fewer than ``min_count`` rows are left out.
    A per-position annotation needs a tap on the main axis; a per-item one labels every row of an item.
    """
    from lstmviz.tasks import Task

    task = task or Task()
    if tap not in rec.taps:
        raise ValueError(f"the recording has no tap {tap!r}; it has {', '.join(rec.taps)}")
    info = rec.taps[tap]
    axis = getattr(info, "axis", "positions")
    specs = [(annotation, _categorical(rec, annotation))]
    if by is not None:
        if by == annotation:
            raise ValueError(f"--by must be another annotation than {annotation!r}")
        specs.append((by, _categorical(rec, by, "--by")))
    for name, spec in specs:
        if spec.level == "position" and axis != "positions":
            raise ValueError(f"{name!r} labels positions, but tap {tap!r} lies on the axis {axis!r}; pick a tap on "
                             f"the main axis or an annotation of whole items")
    offsets = np.asarray(rec.axis_offsets(axis), dtype=np.int64)
    n_rows = int(offsets[-1])
    item_labels = {name: np.asarray(rec.annotation(name), dtype=np.int64)
                   for name, spec in specs if spec.level == "item"}
    sizes = [len(spec.labels) for _name, spec in specs]
    n_classes = int(np.prod(sizes))
    sums = np.zeros((n_classes, info.units), np.float64)
    counts = np.zeros(n_classes, np.int64)
    block_rows = max(1, int(block_rows))
    task.progress(0, n_rows, f"class means of {tap}")
    for lo in range(0, n_rows, block_rows):
        hi = min(n_rows, lo + block_rows)
        code = np.zeros(hi - lo, np.int64)
        missing = np.zeros(hi - lo, bool)
        for (name, spec), size in zip(specs, sizes):
            if spec.level == "item":
                items = np.searchsorted(offsets, np.arange(lo, hi), side="right") - 1
                labels = item_labels[name][items]
            else:
                labels = np.asarray(rec.annotation(name, lo, hi), dtype=np.int64)
            missing |= (labels < 0) | (labels >= size)
            code = code * size + np.clip(labels, 0, size - 1)
        keep = ~missing
        if keep.any():
            block = rec.states(tap, lo, hi).astype(np.float64)[keep]
            code = code[keep]
            order = np.argsort(code, kind="stable")
            code, block = code[order], block[order]
            starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
            sums[code[starts]] += np.add.reduceat(block, starts, axis=0)
            counts += np.bincount(code, minlength=n_classes)
        task.progress(hi, n_rows, f"class means of {tap}")
    present = np.flatnonzero(counts >= max(1, int(min_count)))
    if len(present) < 2:
        raise ValueError(f"fewer than 2 labels of {annotation!r} have {max(1, min_count)} or more rows of tap {tap!r}; "
                         f"there is nothing to compare")
    means = sums[present] / counts[present, None]
    labels = specs[0][1].labels
    if by is None:
        names = [str(labels[c]) for c in present]
        parts = None
    else:
        by_labels = specs[1][1].labels
        pairs = [(str(labels[c // sizes[1]]), str(by_labels[c % sizes[1]])) for c in present]
        names = [f"{a}|{b}" for a, b in pairs]
        parts = tuple(pairs)
    what = f"class means of {tap} by {annotation}" + (f" × {by}" if by else "")
    return EmbeddingTable(tuple(names), means, f"{Path(rec.path).name}: {what}", parts=parts,
                          part_names=(annotation, by) if by else None, counts=counts[present],
                          meta={"kind": "class means", "tap": tap, "annotation": annotation, "by": by})


# ---------------------------------------------------------------------------------------------- files


def _read_text(path: Path) -> str:
    from lstmviz.regular_files import FileRefused, read_regular_file

    try:
        data = read_regular_file(path, max_bytes=MAX_FILE_BYTES)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except FileRefused as exc:
        raise ValueError(f"{path}: {exc.problem}") from None
    if not data.strip():
        raise ValueError(f"{path}: the file is empty; expected an embedding table")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}); a CSV/TSV/word2vec table is text, an NPY "
                         f"table ends in .npy") from None


def _numbers(fields: list[str], where: str) -> list[float]:
    try:
        return [float(x) for x in fields]
    except ValueError:
        bad = next(x for x in fields if not _is_number(x))
        raise ValueError(f"{where}: {bad[:40]!r} is not a number; every field after the name must be one") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _rows_table(rows: list[list[str]], path: Path, first_line: int = 1) -> EmbeddingTable:
    rows = [r for r in rows if r and any(x.strip() for x in r)]
    if rows and not all(_is_number(x) for x in rows[0][1:]):
        rows, first_line = rows[1:], first_line + 1  # a header row
    if not rows:
        raise ValueError(f"{path}: no rows after the header; expected `name,v1,...,vd` lines")
    width = len(rows[0])
    if width < 2:
        raise ValueError(f"{path}: line {first_line} has one field; expected a name, then at least one number")
    names, values = [], []
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"{path}: line {first_line + i} has {len(row)} fields, the first row {width}; every row "
                             f"needs a name and {width - 1} numbers")
        names.append(row[0].strip())
        values.append(_numbers([x.strip() for x in row[1:]], f"{path}: line {first_line + i}"))
    return EmbeddingTable(tuple(names), np.array(values, np.float64), str(path))


def _word2vec_table(text: str, path: Path) -> EmbeddingTable:
    lines = text.splitlines()
    head = lines[0].split()
    n, dim = int(head[0]), int(head[1])
    body = [line.rstrip("\n").split(" ") for line in lines[1:] if line.strip()]
    body = [[x for x in row if x != ""] for row in body]
    if len(body) != n:
        raise ValueError(f"{path}: the first line announces {n:,} vectors, the file holds {len(body):,}")
    names, values = [], []
    for i, row in enumerate(body):
        if len(row) != dim + 1:
            raise ValueError(f"{path}: line {i + 2} has {len(row) - 1} numbers, the first line announces {dim}")
        names.append(row[0])
        values.append(_numbers(row[1:], f"{path}: line {i + 2}"))
    return EmbeddingTable(tuple(names), np.array(values, np.float64), str(path))


def _npy_table(path: Path, names_path) -> EmbeddingTable:
    from lstmviz.regular_files import input_problem

    problem = input_problem(path)
    if problem is not None:
        raise ValueError(f"{path}: {problem}")
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a NumPy .npy array of numbers ({str(exc).splitlines()[0][:160]})") from None
    if not isinstance(array, np.ndarray) or array.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D array [tokens, dimensions], got shape {getattr(array, 'shape', '?')}")
    if names_path is None:
        guess = path.with_suffix(".names.txt")
        if not guess.is_file():
            raise ValueError(f"{path}: an NPY table needs its names, one per line: give a names file (--names FILE), "
                             f"or put them in {guess.name} beside it")
        names_path = guess
    names = [line.strip() for line in _read_text(Path(names_path)).splitlines() if line.strip()]
    if len(names) != len(array):
        raise ValueError(f"{names_path}: {len(names):,} names for the {len(array):,} rows of {path.name}; give one name "
                         f"per row")
    return EmbeddingTable(tuple(names), array, str(path))


def table_from_file(path, names=None) -> EmbeddingTable:
    """A table from a CSV, TSV, NPY (+ ``names``) or word2vec text file (see the module docstring)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise ValueError(f"{path}: cannot read a table from a {suffix or 'suffix-less'} file; use "
                         f"{', '.join(FILE_SUFFIXES)} (CSV/TSV: name then numbers; NPY with a names file; word2vec text)")
    if suffix == ".npy":
        return _npy_table(path, names)
    text = _read_text(path)
    first = text.splitlines()[0].split()
    if suffix in (".txt", ".vec") and len(first) == 2 and all(x.isdigit() for x in first):
        return _word2vec_table(text, path)
    delimiter = "\t" if suffix == ".tsv" else ("," if suffix == ".csv" else " ")
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, skipinitialspace=delimiter == " ")
    try:
        rows = [row for row in reader]
    except csv.Error as exc:
        raise ValueError(f"{path}: not a readable {'TSV' if delimiter == chr(9) else 'CSV'} table ({exc})") from None
    if delimiter == " ":
        rows = [[x for x in row if x != ""] for row in rows]
    return _rows_table(rows, path)


def write_table(table: EmbeddingTable, path) -> Path:
    """Write ``table`` as CSV (``name,d0,...``) or NPY (+ ``<stem>.names.txt``) to ``path``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(path, table.vectors)
        path.with_suffix(".names.txt").write_text("".join(f"{n}\n" for n in table.names), encoding="utf-8")
        return path
    if suffix not in (".csv", ".tsv"):
        raise ValueError(f"{path}: write a table as .csv, .tsv or .npy")
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t" if suffix == ".tsv" else ",")
        writer.writerow(["name", *[f"d{j}" for j in range(table.dim)]])
        for name, row in zip(table.names, table.vectors):
            writer.writerow([name, *[repr(float(v)) for v in row]])
    return path


__all__ = ["BLOCK_ROWS", "CheckpointTables", "EmbeddingTable", "FILE_SUFFIXES", "TableCandidate", "checkpoint_tables",
           "class_means", "table_from_checkpoint", "table_from_file", "write_table"]
