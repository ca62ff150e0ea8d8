"""``python``: characters of the running interpreter's standard-library source.

Files: every ``*.py`` under ``sysconfig.get_paths()["stdlib"]``, sorted by relative path, without
``site-packages``, ``test``/``tests``/``idle_test`` directories, empty files and files that tokenize
rejects. The content depends on the interpreter version.

Split: by a stable hash of the relative path, ``zlib.crc32(path) % 10``: 0-7 train, 8 valid, 9 test.

Vocabulary: a fixed character set, the same for every split and Python version: ``<pad>`` (0),
``<unk>`` (1, any other character, e.g. non-ASCII or form feed), tab, newline, then printable ASCII
(space to ``~``).

Items: one per file, or, with ``max_chars_per_item``, consecutive chunks of whole lines of at most that
many characters (a longer line is cut into pieces). Annotations are computed on the whole file first,
so depth and indentation are right in every chunk. See ``pysource_annotate`` for their definitions.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import sys
import sysconfig
import tokenize
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .base import AnnotationSpec, DatasetError, DatasetSpec, SequenceDataset, SequenceItem, check_int, check_split
from .pysource_annotate import BRACKET_LABELS, INDENT_LABELS, TOKEN_TYPES, annotate_source, code_points, line_starts

SPLITS = ("train", "valid", "test")
SKIP_DIRS = frozenset({"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"})
TOP_LEVEL = "<top-level>"
VOCAB = ["<pad>", "<unk>", "\t", "\n"] + [chr(c) for c in range(32, 127)]
UNK = 1

_CHAR_ID = np.full(128, UNK, dtype=np.uint8)
for _i, _ch in enumerate(VOCAB[2:], start=2):
    _CHAR_ID[ord(_ch)] = _i


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


@functools.lru_cache(maxsize=8)
def list_files(root: str | os.PathLike | None = None) -> tuple[str, ...]:
    """Relative POSIX paths of the candidate ``.py`` files under ``root`` (default: the stdlib), sorted."""
    base = Path(root) if root is not None else stdlib_root()
    found = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        rel = Path(dirpath).relative_to(base)
        found.extend((rel / f).as_posix() for f in filenames if f.endswith(".py"))
    return tuple(sorted(found))


def split_of(relpath: str) -> str:
    """The split a file belongs to: crc32 of its relative POSIX path, mod 10 (0-7 train, 8 valid, 9 test)."""
    bucket = zlib.crc32(relpath.encode("utf-8")) % 10
    return "train" if bucket < 8 else "valid" if bucket == 8 else "test"


def package_of(relpath: str) -> str:
    """The top-level package (first directory) of a file, or ``<top-level>`` for a single-file module."""
    parts = relpath.split("/")
    return parts[0] if len(parts) > 1 else TOP_LEVEL


def encode_chars(text: str) -> np.ndarray:
    """Character ids (uint8) in ``VOCAB``."""
    codes = code_points(text)
    ids = np.full(len(codes), UNK, dtype=np.uint8)
    ascii_ = codes < 128
    ids[ascii_] = _CHAR_ID[codes[ascii_]]
    return ids


def chunk_bounds(starts_of_lines: Sequence[int], n: int, max_chars: int | None) -> list[tuple[int, int]]:
    """Cut ``[0, n)`` into ranges of whole lines of at most ``max_chars`` characters.

    A line longer than ``max_chars`` is cut into pieces of ``max_chars``. ``None``: one range.
    """
    if n == 0:
        return []
    if max_chars is None:
        return [(0, n)]
    ends = [s for s in starts_of_lines[1:] if s < n] + [n]  # end offset of every line
    out: list[tuple[int, int]] = []
    start = end = 0
    for line_end in ends:
        if line_end - start <= max_chars:
            end = line_end
            continue
        if end > start:
            out.append((start, end))
            start = end
        while line_end - start > max_chars:
            out.append((start, start + max_chars))
            start += max_chars
        end = line_end
    if end > start:
        out.append((start, end))
    return out


@dataclass
class SourceFile:
    """One tokenized file: character ids and int8 annotations for the whole file."""

    relpath: str
    text: str
    tokens: np.ndarray
    token_type: np.ndarray
    bracket_depth: np.ndarray
    indent_level: np.ndarray
    line_starts: np.ndarray


def load_file(path: Path, relpath: str) -> SourceFile | None:
    """Read (PEP 263 encoding, universal newlines) and annotate a file; None if tokenize rejects it."""
    try:
        with tokenize.open(path) as f:
            text = f.read()
        ann = annotate_source(text)
    except (SyntaxError, tokenize.TokenError, UnicodeDecodeError, ValueError, OSError):
        return None
    return SourceFile(relpath, text, encode_chars(text), ann.token_type, ann.bracket_depth, ann.indent_level,
                      line_starts(code_points(text)))


def _check_include(include: Any) -> tuple[str, ...] | None:
    if include is None:
        return None
    if isinstance(include, str):
        return (include,)
    if isinstance(include, (list, tuple)) and all(isinstance(p, str) for p in include):
        return tuple(include)
    raise DatasetError(f"option 'include' must be a glob string, a list of them, or None, got {include!r}")


class PythonSourceDataset(SequenceDataset):
    """One split of the standard-library character corpus; see the module docstring.

    ``root`` (not a registry option) points at another source tree, for tests.
    """

    def __init__(self, split: str = "train", *, max_files: int | None = None,
                 max_chars_per_item: int | None = 2000, include: str | Sequence[str] | None = None,
                 root: str | os.PathLike | None = None):
        check_split("python", split, SPLITS)
        max_files = check_int("max_files", max_files, minimum=1, allow_none=True)
        max_chars = check_int("max_chars_per_item", max_chars_per_item, minimum=1, allow_none=True)
        patterns = _check_include(include)
        self.root = Path(root) if root is not None else stdlib_root()
        self.name, self.split = "python", split
        self.vocab = list(VOCAB)
        self.options = {"max_files": max_files, "max_chars_per_item": max_chars, "include": include}
        self.source = (f"Python {sys.version.split()[0]} standard library source at {self.root} (PSF licence); "
                       "annotations from the tokenize module")

        all_files = list_files(str(self.root))
        # label sets come from every file (all splits, no filters) so they are the same for every split
        self.packages = tuple(sorted({package_of(p) for p in all_files}))
        self.annotation_specs = _annotation_specs(self.packages)

        chosen = [p for p in all_files if split_of(p) == split]
        if patterns is not None:
            chosen = [p for p in chosen if any(fnmatch.fnmatchcase(p, pat) for pat in patterns)]
        self.files: list[SourceFile] = []
        self.skipped: list[str] = []  # files that tokenize rejects
        for rel in chosen:
            if max_files is not None and len(self.files) >= max_files:
                break
            loaded = load_file(self.root / rel, rel)
            if loaded is None:
                self.skipped.append(rel)
            elif loaded.text:
                self.files.append(loaded)
        # item -> (file index, start, end)
        self._items: list[tuple[int, int, int]] = [
            (k, a, b)
            for k, f in enumerate(self.files)
            for a, b in chunk_bounds(f.line_starts.tolist(), len(f.text), max_chars)
        ]
        self._package_id = {p: i for i, p in enumerate(self.packages)}

    def __len__(self) -> int:
        return len(self._items)

    def item_location(self, i: int) -> tuple[str, int]:
        """(relative path, first line number) of item ``i``."""
        k, a, _ = self._items[i]
        f = self.files[k]
        return f.relpath, int(np.searchsorted(f.line_starts, a, side="right"))

    def _item(self, i: int) -> SequenceItem:
        k, a, b = self._items[i]
        f = self.files[k]
        return SequenceItem(
            tokens=f.tokens[a:b].astype(np.int64),
            annotations={
                "token_type": f.token_type[a:b].astype(np.int64),
                "bracket_depth": f.bracket_depth[a:b].astype(np.int64),
                "indent_level": f.indent_level[a:b].astype(np.int64),
            },
            item_annotations={
                "package": self._package_id[package_of(f.relpath)],
                "line": self.item_location(i)[1],
            },
            text=f.text[a:b],
        )

    def token_stream(self) -> np.ndarray:
        if not self._items:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([self.files[k].tokens[a:b] for k, a, b in self._items]).astype(np.int64)

    def provenance(self) -> dict[str, Any]:
        prov = super().provenance()
        prov.update({
            "python": sys.version.split()[0],
            "root": str(self.root),
            "files": [f.relpath for f in self.files],
            "skipped_files": list(self.skipped),
            "tokens": int(sum(b - a for _, a, b in self._items)),
        })
        return prov


def _annotation_specs(packages: Sequence[str]) -> list[AnnotationSpec]:
    return [
        AnnotationSpec(
            "token_type", "categorical", labels=TOKEN_TYPES,
            description="tokenize type of the token covering the character; WHITESPACE between tokens, "
            "CONTINUATION for a backslash line continuation; INDENT covers the indentation only on lines "
            "that open a block",
        ),
        AnnotationSpec(
            "bracket_depth", "categorical", labels=BRACKET_LABELS,
            description="open (, [, { operator tokens after reading the character (brackets in strings and "
            "comments do not count); the last label collects deeper nesting",
        ),
        AnnotationSpec(
            "indent_level", "categorical", labels=INDENT_LABELS,
            description="block level (INDENT minus DEDENT) of the logical line; blank and comment-only lines "
            "carry the level in effect before them",
        ),
        AnnotationSpec(
            "package", "categorical", level="item", labels=tuple(packages),
            description=f"top-level package of the file ({TOP_LEVEL} for a single-file module)",
        ),
        AnnotationSpec("line", "numeric", level="item", description="1-based line number where the item starts"),
    ]


SOURCE = "the running interpreter's standard library (sysconfig 'stdlib' path), PSF licence; tokenize annotations"

SPEC = DatasetSpec(
    name="python",
    description="characters of the Python standard library source with tokenize, bracket and indent annotations",
    build=PythonSourceDataset,
    splits=SPLITS,
    options={"max_files": None, "max_chars_per_item": 2000, "include": None},
    annotations=("token_type", "bracket_depth", "indent_level", "package", "line"),
    source=SOURCE,
)
