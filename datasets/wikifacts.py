"""Dataset ``wikifacts``: a synthetic mini-WikiFacts of facts + descriptions (Ahn et al. 2016, models_recurrent §14 d).

Every item is one *document* about one topic entity, generated from that entity's facts:

    <fact> name Ovadi Kelmur <fact> born_in Tasmor <fact> occupation glassblower ... <text>
    Ovadi Kelmur was born in Tasmor . he works as a glassblower ... <eos>

- ``entities`` entities (default 2000) with random unique two-word names (random syllables), so almost every
  name word occurs in one document only: under a closed vocabulary of the most frequent training words it is
  ``<unk>``;
- 5 relations with objects from a pool of ``pool`` names (default 200, split evenly between the relations;
  one- or two-word random names), plus the relation ``name`` whose object is the topic's own name;
- each entity has its ``name`` fact and 2..5 of the 5 relations (so documents have 3..6 facts: a model sees a
  variable number of facts); sentences come from 3 templates per relation, in random order, with noise
  (random filler words, an optional adverb, the name or a pronoun as subject).

The header (``<fact> relation object-words`` per fact, then ``<text>``) carries the facts inside the token
stream, so the item is an ordinary token sequence (recordable and readable); the text after ``<text>`` is
what a language model is scored on. Splits are by entity (train 80 %, valid 10 %, test 10 %): valid and test
are documents about *held-out entities*. The pool objects are shared by all splits.

Vocabulary (one for every split): ``<pad> <unk> <fact> <text> <eos>``, the relation tokens, then every other
word by descending training frequency (ties by first appearance), then words that never occur in training.
``closed_vocab(top)`` is the size of the closed vocabulary a model may generate from: the specials, the
relations and the ``top`` most frequent training words; words beyond it are unknown (``<unk>``) to the
vocabulary softmax.

Per-position annotations (from the generator, i.e. the text-fact alignment labels of the paper):
``source`` (header / generated / copied), ``fact`` (the index of the fact in the header, 0-based, that a
copied word comes from, -1 otherwise), ``copy_pos`` (the word's position in that fact's object name, 0-based,
-1 when generated), ``relation`` (categorical: the copied fact's relation, ``NaF`` otherwise). Item
annotations: ``facts`` (number of facts), ``entity`` (entity index).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from .base import AnnotationSpec, DatasetSpec, SequenceDataset, SequenceItem, check_int, check_split

SPECIALS = ("<pad>", "<unk>", "<fact>", "<text>", "<eos>")
PAD, UNK, FACT, TEXT, EOS = range(5)
RELATIONS = ("name", "born_in", "occupation", "lives_in", "employer", "instrument")
RELATION_IDS = {r: len(SPECIALS) + k for k, r in enumerate(RELATIONS)}
N_FIXED = len(SPECIALS) + len(RELATIONS)  # ids below this are specials and relations
SPLITS = ("train", "valid", "test")
SOURCE_LABELS = ("header", "generated", "copied")
SOURCE = "synthetic generator lstmviz.datasets.wikifacts (random names, templated sentences; Ahn et al. 2016 §14 d)"

_SYLLABLES = ("ka", "lo", "mi", "ru", "ve", "ta", "sen", "dor", "bel", "qua", "zin", "pha", "tri", "mon",
              "gal", "vek", "ori", "nu", "sha", "bra", "dil", "fen", "hor", "jus", "kri", "lam", "nev", "pol",
              "sar", "tum", "wex", "yal", "zor", "cid", "ebo", "ilu")
_TEMPLATES = {
    "born_in": (("{S}", "was", "born", "in", "{O}", "."), ("{S}", "comes", "from", "{O}", "."),
                ("born", "in", "{O}", ",", "{S}", "grew", "up", "there", ".")),
    "occupation": (("{S}", "works", "as", "a", "{O}", "."), ("{S}", "is", "a", "{O}", "."),
                   ("by", "trade", "{S}", "is", "a", "{O}", ".")),
    "lives_in": (("{S}", "lives", "in", "{O}", "."), ("{S}", "now", "lives", "in", "{O}", "."),
                 ("today", "{S}", "resides", "in", "{O}", ".")),
    "employer": (("{S}", "works", "for", "{O}", "."), ("{S}", "is", "employed", "by", "{O}", "."),
                 ("{O}", "employs", "{S}", ".")),
    "instrument": (("{S}", "plays", "the", "{O}", "."), ("{S}", "is", "known", "for", "playing", "the", "{O}", "."),
                   ("in", "the", "evening", "{S}", "plays", "the", "{O}", ".")),
}
_FILLERS = ("also", "still", "often", "quietly", "indeed", "later", "then", "again")
_OPENERS = (("{N}", "is", "a", "person", "."), ("this", "is", "about", "{N}", "."), ("{N}", "."))


def _name_word(rng: np.random.Generator, syllables: int) -> str:
    return "".join(_SYLLABLES[int(k)] for k in rng.integers(0, len(_SYLLABLES), size=syllables))


@lru_cache(maxsize=4)
def generate(entities: int, pool: int, seed: int) -> dict[str, Any]:
    """The world: entity names, the object pool and every entity's facts and document (tokens as strings)."""
    rng = np.random.default_rng(seed)
    relations = RELATIONS[1:]
    per = max(1, pool // len(relations))
    used: set[str] = set()

    def fresh(parts: int, lo: int, hi: int) -> tuple[str, ...]:
        while True:
            words = tuple(_name_word(rng, int(rng.integers(lo, hi + 1))) for _ in range(parts))
            if not (set(words) & used):
                used.update(words)
                return words

    objects = {r: [fresh(int(rng.integers(1, 3)), 2, 2) for _ in range(per)] for r in relations}
    docs = []
    for e in range(entities):
        name = fresh(2, 3, 4)
        chosen = sorted(rng.choice(len(relations), size=int(rng.integers(2, len(relations) + 1)), replace=False))
        facts = [("name", name)] + [(relations[k], objects[relations[k]][int(rng.integers(per))]) for k in chosen]
        docs.append((name, facts, _document(rng, name, facts)))
    return {"docs": docs, "objects": objects}


def _document(rng: np.random.Generator, name: tuple[str, ...], facts) -> list[tuple[str, int, int]]:
    """The text as (word, fact index or -1, position in that fact's object or -1)."""
    out: list[tuple[str, int, int]] = []

    def subject(full: bool) -> list[tuple[str, int, int]]:
        if full:
            return [(w, 0, n) for n, w in enumerate(name)]
        if rng.random() < 0.5:
            return [(name[0], 0, 0)]
        return [("they", -1, -1)]

    for w in _OPENERS[int(rng.integers(len(_OPENERS)))]:
        out.extend(subject(True) if w == "{N}" else [(w, -1, -1)])
    order = rng.permutation(np.arange(1, len(facts)))
    for k in order:
        relation, obj = facts[int(k)]
        template = _TEMPLATES[relation][int(rng.integers(3))]
        for w in template:
            if w == "{S}":
                out.extend(subject(rng.random() < 0.3))
                if rng.random() < 0.25:
                    out.append((_FILLERS[int(rng.integers(len(_FILLERS)))], -1, -1))
            elif w == "{O}":
                out.extend((o, int(k), n) for n, o in enumerate(obj))
            else:
                out.append((w, -1, -1))
    return out


def split_of(entity: int, entities: int) -> str:
    cut1, cut2 = int(0.8 * entities), int(0.9 * entities)
    return "train" if entity < cut1 else "valid" if entity < cut2 else "test"


def header(facts) -> list[str]:
    words = []
    for relation, obj in facts:
        words += ["<fact>", relation, *obj]
    return words + ["<text>"]


@lru_cache(maxsize=4)
def vocabulary(entities: int, pool: int, seed: int) -> tuple[str, ...]:
    world = generate(entities, pool, seed)
    counts: dict[str, int] = {}
    rest: dict[str, None] = {}
    for e, (_, facts, doc) in enumerate(world["docs"]):
        words = [w for w in header(facts) if w not in SPECIALS and w not in RELATIONS] + [w for w, _, _ in doc]
        for w in words:
            if split_of(e, entities) == "train":
                counts[w] = counts.get(w, 0) + 1
            else:
                rest.setdefault(w, None)
    ranked = sorted(counts, key=lambda w: -counts[w])  # stable: ties keep first appearance
    unseen = [w for w in rest if w not in counts]
    return (*SPECIALS, *RELATIONS, *ranked, *unseen)


ANNOTATIONS = (
    AnnotationSpec("source", "categorical", labels=SOURCE_LABELS,
                   description="header (the facts), a word generated from the vocabulary, or copied from a fact"),
    AnnotationSpec("fact", "numeric", description="index of the header fact a copied word comes from (-1: none)"),
    AnnotationSpec("copy_pos", "numeric", description="position of a copied word in its fact's object (-1: none)"),
    AnnotationSpec("relation", "categorical", labels=("NaF", *RELATIONS),
                   description="relation of the fact a copied word comes from (NaF: not copied)"),
    AnnotationSpec("facts", "numeric", level="item", description="number of facts of the topic"),
    AnnotationSpec("entity", "numeric", level="item", description="index of the topic entity"),
)


class WikiFactsDataset(SequenceDataset):
    """One split of the synthetic facts + descriptions corpus (see the module docstring)."""

    def __init__(self, split: str = "train", *, entities: int = 2000, pool: int = 200, seed: int = 0,
                 max_items: int | None = None):
        self.name, self.split = "wikifacts", check_split("wikifacts", split, SPLITS)
        entities = check_int("entities", entities, minimum=10)
        pool = check_int("pool", pool, minimum=len(RELATIONS) - 1)
        seed = check_int("seed", seed)
        max_items = check_int("max_items", max_items, minimum=1, allow_none=True)
        self.options = {"entities": entities, "pool": pool, "seed": seed, "max_items": max_items}
        self.source = SOURCE
        self.annotation_specs = list(ANNOTATIONS)
        self.vocab = list(vocabulary(entities, pool, seed))
        self._ids = {w: i for i, w in enumerate(self.vocab)}
        world = generate(entities, pool, seed)
        self._entities = [e for e in range(entities) if split_of(e, entities) == split][:max_items]
        self._docs = world["docs"]

    def closed_vocab(self, top: int = 500) -> int:
        """Size of the closed vocabulary: specials, relations and the ``top`` most frequent training words."""
        return min(len(self.vocab), N_FIXED + int(top))

    def __len__(self) -> int:
        return len(self._entities)

    def facts(self, i: int) -> list[tuple[str, tuple[str, ...]]]:
        """The topic's facts ``(relation, object words)`` of item ``i``, in header order."""
        return list(self._docs[self._entities[i]][1])

    def _item(self, i: int) -> SequenceItem:
        e = self._entities[i]
        _, facts, doc = self._docs[e]
        head = header(facts)
        words = head + [w for w, _, _ in doc] + ["<eos>"]
        n_head, n = len(head), len(words)
        source = np.zeros(n, dtype=np.int64)
        fact = np.full(n, -1.0)
        pos = np.full(n, -1.0)
        relation = np.zeros(n, dtype=np.int64)
        for t, (_, k, p) in enumerate(doc, start=n_head):
            source[t] = 2 if k >= 0 else 1
            if k >= 0:
                fact[t], pos[t] = k, p
                relation[t] = 1 + RELATIONS.index(facts[k][0])
        source[-1] = 1  # <eos> is generated
        tokens = np.array([self._ids[w] for w in words], dtype=np.int64)
        return SequenceItem(tokens=tokens, annotations={"source": source, "fact": fact, "copy_pos": pos,
                                                        "relation": relation},
                            item_annotations={"facts": len(facts), "entity": e}, text=" ".join(words))


SPEC = DatasetSpec(
    name="wikifacts",
    description="synthetic mini-WikiFacts: documents about entities with random unique names, generated from "
                "their facts (header: the facts; text: templated sentences with noise); splits by entity",
    build=WikiFactsDataset,
    options={"entities": 2000, "pool": 200, "seed": 0, "max_items": None},
    annotations=tuple(a.name for a in ANNOTATIONS),
    source=SOURCE,
)
