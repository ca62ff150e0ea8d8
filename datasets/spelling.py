"""Synthetic pair dataset ``spelling``: noisy words -> the clean word (a tiny spelling-correction task).

Bahdanau et al.'s synthetic spelling correction (models_recurrent.md §13 (d)), scaled down: a fixed
lexicon of ``words`` random words (``min_length .. max_length`` letters over the first ``letters``
letters ``a b c ...``, all distinct, drawn from ``lexicon_seed``: the same for every split and seed).
Each item picks a lexicon word uniformly and corrupts it: every character, independently with
probability ``noise``, is substituted (by a different random letter), deleted, or followed by an
inserted random letter (each of the three with probability 1/3). A source that would be empty keeps the
word's first letter. Target: the clean word. Generated with numpy's PCG64 from ``seed`` and the split
(each split its own stream); the splits share the lexicon, so a valid word is one seen in training.

Vocabulary: ``<pad> <bos> <eos>`` then the letters. Position annotation ``edit`` (categorical: ``kept``,
``substituted``, ``inserted``: what the noise did to the source character); item annotations
``source_length``, ``target_length``, ``edits`` (number of noise events, deletions included) and
``word`` (the lexicon index).
"""

from __future__ import annotations

import string

import numpy as np

from .base import AnnotationSpec, DatasetError, DatasetSpec, check_int, check_split
from .pairs_base import SPECIALS, PairDataset, PairItem

SPLITS = ("train", "valid", "test")
_SPLIT_SALT = {"train": 0, "valid": 1, "test": 2}
DEFAULT_ITEMS = {"train": 20_000, "valid": 500, "test": 500}
EDITS = ("kept", "substituted", "inserted")


def lexicon(words: int, letters: int, min_length: int, max_length: int, lexicon_seed: int) -> list[tuple[int, ...]]:
    """``words`` distinct random words (letter indices), the same for every split."""
    rng = np.random.Generator(np.random.PCG64([0x5BE11, lexicon_seed]))
    seen: set[tuple[int, ...]] = set()
    out: list[tuple[int, ...]] = []
    possible = sum(letters ** n for n in range(min_length, max_length + 1))
    if words > possible // 2:
        raise DatasetError(f"dataset 'spelling': {words} distinct words of {min_length}..{max_length} letters over "
                           f"{letters} letters is too many (at most {possible // 2})")
    while len(out) < words:
        word = tuple(int(x) for x in rng.integers(0, letters, size=int(rng.integers(min_length, max_length + 1))))
        if word not in seen:
            seen.add(word)
            out.append(word)
    return out


class SpellingDataset(PairDataset):
    """``spelling``: a word with character noise -> the clean word (module docstring)."""

    def __init__(self, split: str = "train", *, items: int | None = None, words: int = 1000, letters: int = 26,
                 min_length: int = 3, max_length: int = 8, noise: float = 0.2, lexicon_seed: int = 0, seed: int = 0):
        split = check_split("spelling", split, SPLITS)
        n_items = check_int("items", items, minimum=1, allow_none=True)
        n_items = DEFAULT_ITEMS[split] if n_items is None else n_items
        k = check_int("letters", letters, minimum=2)
        if k > 26:
            raise DatasetError(f"option 'letters' must be at most 26 (a..z), got {k}")
        lo = check_int("min_length", min_length, minimum=1)
        hi = check_int("max_length", max_length, minimum=1)
        if hi < lo:
            raise DatasetError(f"dataset 'spelling': max_length ({hi}) must be >= min_length ({lo})")
        w = check_int("words", words, minimum=1)
        if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise < 1:
            raise DatasetError(f"option 'noise' must be a probability in [0, 1), got {noise!r}")
        lexicon_seed = check_int("lexicon_seed", lexicon_seed, minimum=0)
        seed = check_int("seed", seed, minimum=0)
        self.name, self.split = "spelling", split
        self.letters = list(string.ascii_lowercase[:k])
        self.vocab = [*SPECIALS, *self.letters]
        self.annotation_specs = [
            AnnotationSpec("edit", "categorical", "position", labels=EDITS,
                           description="what the noise did to this source character"),
            AnnotationSpec("source_length", "numeric", "item", description="length of the noisy word"),
            AnnotationSpec("target_length", "numeric", "item", description="length of the clean word"),
            AnnotationSpec("edits", "numeric", "item", description="noise events (substitutions, deletions, insertions)"),
            AnnotationSpec("word", "numeric", "item", description="index of the clean word in the lexicon"),
        ]
        self.options = {"items": items, "words": w, "letters": k, "min_length": lo, "max_length": hi,
                        "noise": float(noise), "lexicon_seed": lexicon_seed, "seed": seed}
        self.source = SOURCE
        self.lexicon = lexicon(w, k, lo, hi, lexicon_seed)
        rng = np.random.Generator(np.random.PCG64([0x5BE12, seed, _SPLIT_SALT[split]]))
        self._items: list[tuple[int, np.ndarray, np.ndarray, int]] = []
        for _ in range(n_items):
            index = int(rng.integers(0, w))
            src: list[int] = []
            kinds: list[int] = []
            events = 0
            for ch in self.lexicon[index]:
                if rng.random() >= noise:
                    src.append(ch)
                    kinds.append(0)
                    continue
                events += 1
                what = int(rng.integers(0, 3))
                if what == 0:  # substitute by a different letter
                    src.append(int((ch + rng.integers(1, k)) % k))
                    kinds.append(1)
                elif what == 1:  # delete
                    continue
                else:  # keep, then insert a random letter
                    src.extend([ch, int(rng.integers(0, k))])
                    kinds.extend([0, 2])
            if not src:
                src, kinds = [self.lexicon[index][0]], [0]
            self._items.append((index, np.asarray(src, np.int64), np.asarray(kinds, np.int64), events))

    def __len__(self) -> int:
        return len(self._items)

    def _item(self, i: int) -> PairItem:
        index, src, kinds, events = self._items[i]
        word = np.asarray(self.lexicon[index], np.int64)
        return PairItem(
            tokens=src + len(SPECIALS),
            target=word + len(SPECIALS),
            annotations={"edit": kinds.copy()},
            item_annotations={"source_length": len(src), "target_length": len(word), "edits": events, "word": index},
            text="".join(self.letters[c] for c in src.tolist()),
            target_text="".join(self.letters[c] for c in word.tolist()),
        )


SOURCE = ("synthetic: words of a seeded random lexicon with character noise (substitute/delete/insert), paired with "
          "the clean word (numpy PCG64; Bahdanau et al. 2017 spelling correction, scaled down)")

SPELLING = DatasetSpec(
    name="spelling",
    description="pairs: a word of a random lexicon with 20% character noise -> the clean word (spelling correction)",
    build=SpellingDataset,
    splits=SPLITS,
    options={"items": None, "words": 1000, "letters": 26, "min_length": 3, "max_length": 8, "noise": 0.2,
             "lexicon_seed": 0, "seed": 0},
    annotations=("edit", "source_length", "target_length", "edits", "word"),
    source=SOURCE,
)
