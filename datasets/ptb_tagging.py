"""POS tags and phrase chunks for PTB sentences from textblob's offline pattern parser.

``textblob.en.parse(text, tokenize=False, tags=True, chunks=True, relations=False)`` returns, for every
whitespace-separated word, ``[word, POS, CHUNK, PNP]``. Its POS tags are exactly those of
``PatternTagger().tag(text, tokenize=False)`` (both run the same ``find_tags``), so one call gives both.
What the tagger does: look the word up in its Brill lexicon; an unknown word becomes CD if it is made of
digits and number punctuation, else NN, refined by suffix rules (-ing VBG, -ly RB, -s NNS, -ed VBN,
a hyphen JJ, ...). textblob's wrapper applies no contextual rules, so every occurrence of a word gets
the same tag ("rose" is VBD everywhere). The chunker groups tags into NP, VP, PP, ADJP and ADVP chunks
with regular expressions and marks PP + NP as a prepositional noun phrase (PNP).

PTB placeholders are replaced by stand-ins before tagging (``STAND_INS``): ``N`` (any number) by
``1``, which the lexicon tags CD (``N`` itself is NN there); ``<unk>`` by ``unk``, a word absent
from the lexicon that matches no suffix rule, so it takes the tagger's unknown-word default (NN).
``TextBlob(text).tags`` is not used: it needs NLTK downloads that are not available offline.
"""

from __future__ import annotations

import threading
import warnings
from typing import Sequence

import numpy as np

from .base import MissingDependency

# the 36 word tags and 9 punctuation tags of the Penn Treebank tag set
PENN_TAGS = (
    "CC", "CD", "DT", "EX", "FW", "IN", "JJ", "JJR", "JJS", "LS", "MD", "NN", "NNS", "NNP", "NNPS", "PDT", "POS",
    "PRP", "PRP$", "RB", "RBR", "RBS", "RP", "SYM", "TO", "UH", "VB", "VBD", "VBG", "VBN", "VBP", "VBZ", "WDT",
    "WP", "WP$", "WRB", "#", "$", ".", ",", ":", "(", ")", "``", "''",
)
CHUNK_TYPES = ("NP", "VP", "PP", "ADJP", "ADVP")  # every chunk type of the pattern chunker's rules
CHUNK_LABELS = ("O",) + tuple(f"{bi}-{t}" for t in CHUNK_TYPES for bi in ("B", "I"))
PNP_LABELS = ("O", "B-PNP", "I-PNP")
STAND_INS = {"N": "1", "<unk>": "unk"}
BLOCK = 1000  # sentences tagged together; the first item of a block costs about 0.1 s
INSTALL_HINT = "pip install 'lstmviz[ptb]'  (or: pip install textblob)"


def _parser():
    try:
        from textblob.en import parse
    except ImportError as exc:
        raise MissingDependency(f"the ptb dataset's annotations need the package 'textblob': {INSTALL_HINT}") from exc
    return parse


class TaggerMismatch(RuntimeError):
    """The tagger's output does not line up with the words it was given."""


def _ids(values: Sequence[str], labels: tuple[str, ...], what: str) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    out = np.fromiter((index.get(v, -1) for v in values), dtype=np.int8, count=len(values))
    if (out < 0).any():
        unknown = sorted({v for v in values if v not in index})
        warnings.warn(f"textblob produced {what} labels outside the fixed set, stored as missing: {unknown}",
                      stacklevel=3)
    return out


def tag_sentences(sentences: Sequence[Sequence[str]]) -> list[dict[str, np.ndarray]]:
    """``{"pos", "chunk", "pnp"}`` label ids (int8, one per word) for each sentence.

    Raises ``TaggerMismatch`` unless the parser returns exactly one entry per word, in order.
    """
    parse = _parser()
    replaced = [[STAND_INS.get(w, w) for w in words] for words in sentences]
    for words in replaced:
        if not words or any(not w or " " in w or "\n" in w for w in words):
            raise ValueError(f"cannot tag sentence {' '.join(words)!r}: empty or with unsplittable words")
    parsed = parse("\n".join(" ".join(words) for words in replaced), tokenize=False, tags=True, chunks=True,
                   relations=False, lemmata=False, split=True)
    if len(parsed) != len(replaced):
        raise TaggerMismatch(f"tagger returned {len(parsed)} sentences for {len(replaced)}")
    out = []
    for words, tokens in zip(replaced, parsed):
        if [t[0] for t in tokens] != words or any(len(t) != 4 for t in tokens):
            raise TaggerMismatch(f"tagger output does not line up with the sentence {' '.join(words)!r}: {tokens!r}")
        out.append({
            "pos": _ids([t[1] for t in tokens], PENN_TAGS, "POS"),
            "chunk": _ids([t[2] for t in tokens], CHUNK_LABELS, "chunk"),
            "pnp": _ids([t[3] for t in tokens], PNP_LABELS, "PNP"),
        })
    return out


class TagCache:
    """Tags of every sentence of a split, computed per block of ``BLOCK`` sentences on first use and kept
    for the life of the process (flat int8 arrays per block). Thread-safe: a block is tagged at most once."""

    def __init__(self) -> None:
        self._blocks: dict[tuple[str, int], tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        self._locks: dict[tuple[str, int], threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, split: str, i: int, sentences: Sequence[Sequence[str]]) -> dict[str, np.ndarray]:
        """Tags of sentence ``i`` of ``split`` (``sentences`` is the whole split); read-only views."""
        key = (split, i // BLOCK)
        block = self._blocks.get(key)
        if block is None:
            with self._guard:
                lock = self._locks.setdefault(key, threading.Lock())
            with lock:
                block = self._blocks.get(key)
                if block is None:
                    start = key[1] * BLOCK
                    block = self._blocks[key] = _flatten(tag_sentences(sentences[start:start + BLOCK]))
        offsets, flat = block
        a, b = offsets[i % BLOCK], offsets[i % BLOCK + 1]
        return {name: values[a:b] for name, values in flat.items()}


def _flatten(tagged: list[dict[str, np.ndarray]]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    offsets = np.concatenate([[0], np.cumsum([len(t["pos"]) for t in tagged])]).astype(np.int64)
    flat = {name: np.concatenate([t[name] for t in tagged]) for name in ("pos", "chunk", "pnp")}
    for values in flat.values():
        values.flags.writeable = False
    return offsets, flat
