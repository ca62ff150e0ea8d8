"""Synthetic pair datasets for sequence-to-sequence models: ``reverse`` and ``translit``.

Both are generated with numpy's PCG64 from ``seed`` and the split (each split its own stream), so a
split is the same on every machine. Vocabulary: ``<pad> <bos> <eos>`` (ids 0, 1, 2; see
:mod:`.pairs_base`) then the dataset's symbols.

``reverse``
    source: a random string of ``min_length .. max_length`` symbols (uniform) over an alphabet of
    ``symbols`` letters ``a b c ...``; target: the source reversed. A known answer: source position
    ``i`` of an item of length ``n`` is emitted at decoder step ``n - 1 - i``, so an attention on the
    emitted token is the anti-diagonal (a trained model may sit one position off: docs/engines.md,
    ``seq2seq-attn``). Position annotations: ``from_end`` (``n - 1 - i``, the decoder step that copies
    the token) and ``symbol``; item annotation ``source_length``.

``translit``
    Kim & Rush's multimodal-reference setting (models_recurrent.md §15 (d)): source: a digit string of
    ``min_length .. max_length`` digits ``0 .. 9``; each digit has TWO valid spellings of 1–3 letters
    (a fixed table drawn from ``table_seed``, the same for every split and seed), and each occurrence
    in a target picks one of them at random (probability 1/2 each), so a source has up to ``2^n``
    equally valid references. Position annotations: ``digit``, ``variant`` (which spelling this
    occurrence got in the reference, 0 or 1) and ``target_start`` (the reference position where its
    spelling begins); item annotations ``source_length``, ``target_length``.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np

from .base import AnnotationSpec, DatasetError, DatasetSpec, check_int, check_split
from .pairs_base import SPECIALS, PairDataset, PairItem

SPLITS = ("train", "valid", "test")
_SPLIT_SALT = {"train": 0, "valid": 1, "test": 2}
DEFAULT_ITEMS = {"train": 20_000, "valid": 500, "test": 500}


def _rng(seed: int, split: str, salt: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([salt, seed, _SPLIT_SALT[split]]))


def _lengths(name: str, min_length: Any, max_length: Any) -> tuple[int, int]:
    lo = check_int("min_length", min_length, minimum=1)
    hi = check_int("max_length", max_length, minimum=1)
    if hi < lo:
        raise DatasetError(f"dataset {name!r}: max_length ({hi}) must be >= min_length ({lo})")
    return lo, hi


def _items_option(split: str, items: Any) -> int:
    n = check_int("items", items, minimum=1, allow_none=True)
    return DEFAULT_ITEMS[split] if n is None else n


# ---------------------------------------------------------------------------------------------- reverse


class ReverseDataset(PairDataset):
    """``reverse``: target = source reversed (module docstring)."""

    def __init__(self, split: str = "train", *, items: int | None = None, symbols: int = 8, min_length: int = 3,
                 max_length: int = 12, seed: int = 0):
        split = check_split("reverse", split, SPLITS)
        n = _items_option(split, items)
        k = check_int("symbols", symbols, minimum=2)
        if k > 26:
            raise DatasetError(f"option 'symbols' must be at most 26 (letters a..z), got {k}")
        lo, hi = _lengths("reverse", min_length, max_length)
        seed = check_int("seed", seed, minimum=0)
        self.name, self.split = "reverse", split
        self.letters = list(string.ascii_lowercase[:k])
        self.vocab = [*SPECIALS, *self.letters]
        self.annotation_specs = [
            AnnotationSpec("from_end", "numeric", "position",
                           description="n - 1 - i: the decoder step that emits this source token"),
            AnnotationSpec("symbol", "categorical", "position", labels=tuple(self.letters),
                           description="the source symbol"),
            AnnotationSpec("source_length", "numeric", "item", description="source length n"),
        ]
        self.options = {"items": items, "symbols": k, "min_length": lo, "max_length": hi, "seed": seed}
        self.source = SOURCE_REVERSE
        rng = _rng(seed, split, 0x5EE)
        lengths = rng.integers(lo, hi + 1, size=n)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        self._offsets = offsets
        self._symbols = rng.integers(0, k, size=int(offsets[-1])).astype(np.int64)  # 0..k-1

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def _item(self, i: int) -> PairItem:
        a, b = int(self._offsets[i]), int(self._offsets[i + 1])
        sym = self._symbols[a:b]
        src = sym + len(SPECIALS)
        n = len(src)
        return PairItem(
            tokens=src,
            target=src[::-1].copy(),
            annotations={"from_end": np.arange(n - 1, -1, -1, dtype=np.float32), "symbol": sym.copy()},
            item_annotations={"source_length": n},
            text=" ".join(self.letters[s] for s in sym.tolist()),
            target_text=" ".join(self.letters[s] for s in sym[::-1].tolist()),
        )


SOURCE_REVERSE = "synthetic: random strings and their reversal (numpy PCG64)"

REVERSE = DatasetSpec(
    name="reverse",
    description="pairs: a random letter string -> the same string reversed (a known-answer seq2seq task)",
    build=ReverseDataset,
    splits=SPLITS,
    options={"items": None, "symbols": 8, "min_length": 3, "max_length": 12, "seed": 0},
    annotations=("from_end", "symbol", "source_length"),
    source=SOURCE_REVERSE,
)


# ---------------------------------------------------------------------------------------------- translit

DIGITS = tuple(str(d) for d in range(10))


def spelling_table(letters: int = 8, table_seed: int = 0) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """``table[d] = (spelling0, spelling1)``: two distinct spellings of 1–3 letter indices per digit,
    all twenty different (drawn from ``table_seed``)."""
    rng = np.random.Generator(np.random.PCG64([0x7AB1E, table_seed]))
    seen: set[tuple[int, ...]] = set()
    table = []
    for _ in DIGITS:
        pair = []
        while len(pair) < 2:
            length = int(rng.integers(1, 4))
            spelling = tuple(int(x) for x in rng.integers(0, letters, size=length))
            if spelling not in seen:
                seen.add(spelling)
                pair.append(spelling)
        table.append((pair[0], pair[1]))
    return table


class TranslitDataset(PairDataset):
    """``translit``: digits -> one of two letter spellings per digit, chosen per occurrence (module docstring)."""

    def __init__(self, split: str = "train", *, items: int | None = None, min_length: int = 3, max_length: int = 8,
                 letters: int = 8, table_seed: int = 0, seed: int = 0):
        split = check_split("translit", split, SPLITS)
        n = _items_option(split, items)
        lo, hi = _lengths("translit", min_length, max_length)
        k = check_int("letters", letters, minimum=3)
        if k > 26:
            raise DatasetError(f"option 'letters' must be at most 26 (a..z), got {k}")
        table_seed = check_int("table_seed", table_seed, minimum=0)
        seed = check_int("seed", seed, minimum=0)
        self.name, self.split = "translit", split
        self.letters = list(string.ascii_lowercase[:k])
        self.vocab = [*SPECIALS, *DIGITS, *self.letters]
        self.digit0 = len(SPECIALS)
        self.letter0 = len(SPECIALS) + len(DIGITS)
        self.table = spelling_table(k, table_seed)
        self.annotation_specs = [
            AnnotationSpec("digit", "categorical", "position", labels=DIGITS, description="the source digit"),
            AnnotationSpec("variant", "categorical", "position", labels=("0", "1"),
                           description="which of the digit's two spellings the reference used here"),
            AnnotationSpec("target_start", "numeric", "position",
                           description="reference position where this digit's spelling begins"),
            AnnotationSpec("source_length", "numeric", "item", description="number of digits"),
            AnnotationSpec("target_length", "numeric", "item", description="length of the reference"),
        ]
        self.options = {"items": items, "min_length": lo, "max_length": hi, "letters": k, "table_seed": table_seed,
                        "seed": seed}
        self.source = SOURCE_TRANSLIT
        rng = _rng(seed, split, 0x7A5)
        lengths = rng.integers(lo, hi + 1, size=n)
        self._offsets = np.concatenate([[0], np.cumsum(lengths)])
        total = int(self._offsets[-1])
        self._digits = rng.integers(0, 10, size=total).astype(np.int64)
        self._variants = rng.integers(0, 2, size=total).astype(np.int64)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def references(self, digits) -> list[list[int]]:
        """Every valid target (token ids) of a source given as digit values 0..9 (``2^n`` of them, deduplicated)."""
        outs: list[list[int]] = [[]]
        for d in digits:
            outs = [o + [self.letter0 + x for x in self.table[int(d)][v]] for o in outs for v in (0, 1)]
        unique = sorted({tuple(o) for o in outs})
        return [list(o) for o in unique]

    def _item(self, i: int) -> PairItem:
        a, b = int(self._offsets[i]), int(self._offsets[i + 1])
        digits, variants = self._digits[a:b], self._variants[a:b]
        target: list[int] = []
        starts = np.zeros(len(digits), dtype=np.float32)
        for j, (d, v) in enumerate(zip(digits.tolist(), variants.tolist())):
            starts[j] = len(target)
            target.extend(self.letter0 + x for x in self.table[d][v])
        target_arr = np.array(target, dtype=np.int64)
        return PairItem(
            tokens=digits + self.digit0,
            target=target_arr,
            annotations={"digit": digits.copy(), "variant": variants.copy(), "target_start": starts},
            item_annotations={"source_length": len(digits), "target_length": len(target)},
            text=" ".join(DIGITS[d] for d in digits.tolist()),
            target_text=" ".join(self.vocab[t] for t in target),
        )


SOURCE_TRANSLIT = ("synthetic: digit strings 'transliterated' with two random spellings per digit, chosen per "
                   "occurrence (multimodal references; Kim & Rush 2016 setting, models_recurrent.md §15 (d))")

TRANSLIT = DatasetSpec(
    name="translit",
    description="pairs: digit strings -> letters, each digit spelt one of two ways at random (multimodal references)",
    build=TranslitDataset,
    splits=SPLITS,
    options={"items": None, "min_length": 3, "max_length": 8, "letters": 8, "table_seed": 0, "seed": 0},
    annotations=("digit", "variant", "target_start", "source_length", "target_length"),
    source=SOURCE_TRANSLIT,
)
