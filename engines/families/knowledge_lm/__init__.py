"""Family ``knowledge-lm``: language models that read a document's facts and its text (Ahn et al.'s NKLM).

- data description: :class:`KnowledgeData` (``vocab_size``), from a facts dataset's vocabulary (layout of
  :mod:`lstmviz.datasets.wikifacts`: ids ``0..4`` are ``<pad> <unk> <fact> <text> <eos>``, then the relation
  tokens, then the words by training frequency) or a checkpoint's;
- inputs: one document per row, token ids ``[batch, time]`` (int64, right-padded with ``<pad>``): a header
  ``<fact> relation object-words`` per fact, ``<text>``, the words. A model returns
  ``(log P(w_{t+1}) [batch, time, vocab_size], state)`` — log-probabilities over the full vocabulary, so the
  cross-entropy on the text is the unknown-penalised perplexity's log — and trains with
  ``model.loss(tokens, fact_labels, position_labels) -> (loss, words)`` on the generator's alignment labels
  (annotations ``fact`` and ``copy_pos``);
- training (:mod:`.objective`): ``batch_size`` whole documents per step (a seeded shuffle every epoch);
  validation: mean ``−log P`` per text word (``exp``: UPP) of :meth:`forward` without labels;
- contract: :mod:`.contract`.

Why a family of its own and not ``language-model``: that family trains on one concatenated token stream cut
at arbitrary points (truncated BPTT), which would cut a document from its facts, and it has no way to pass the
alignment labels the NKLM is trained with. Items here are still token sequences, so ``lstmviz record`` uses
the token recorder (one document per row, run from the zero state) and the window shows them as text.

Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..family import Family

SPECIALS = ("<pad>", "<unk>", "<fact>", "<text>", "<eos>")


@dataclass(frozen=True)
class KnowledgeData:
    """What a knowledge language model needs to know about its data: the full vocabulary's size."""

    vocab_size: int = field(metadata={"meaning": "the vocabulary size (every word, known or not)"})


def _check_layout(vocab) -> None:
    if tuple(str(t) for t in list(vocab)[: len(SPECIALS)]) != SPECIALS:
        raise TypeError(f"expected a facts dataset whose vocabulary starts with {' '.join(SPECIALS)} "
                        f"(e.g. wikifacts), got {' '.join(map(str, list(vocab)[:len(SPECIALS)]))}")


def describe_dataset(dataset: Any) -> KnowledgeData:
    vocab = getattr(dataset, "vocab", None)
    if vocab is None:
        raise TypeError(f"expected a facts dataset with a vocabulary (.vocab), got {type(dataset).__name__}")
    _check_layout(vocab)
    return KnowledgeData(vocab_size=len(vocab))


def describe_checkpoint(payload: Mapping[str, Any]) -> KnowledgeData:
    if not payload["vocab"]:
        raise ValueError("bad 'vocab': expected a non-empty list of token strings")
    return KnowledgeData(vocab_size=len(payload["vocab"]))


def random_documents(data: KnowledgeData, *, batch: int, length: int, seed: int, relations: int = 3):
    """``batch`` random documents (token id arrays): 1..3 facts of 1..2 random words, ``<text>``, then
    ``length`` words drawn from the header's object words and random ids; plus fact / position labels."""
    rng = np.random.default_rng(seed)
    first = len(SPECIALS)
    docs = []
    for b in range(batch):
        head, objects = [], []
        for _ in range(1 + (b % 3)):
            obj = rng.integers(first + relations, data.vocab_size, size=int(rng.integers(1, 3)))
            head += [2, int(rng.integers(first, first + relations)), *obj.tolist()]
            objects.append(obj.tolist())
        head.append(3)
        words, fact, pos = [], [], []
        for _ in range(length - (b % 2)):
            if rng.random() < 0.4:
                k = int(rng.integers(len(objects)))
                n = int(rng.integers(len(objects[k])))
                words.append(objects[k][n]), fact.append(k), pos.append(n)
            else:
                words.append(int(rng.integers(first, data.vocab_size))), fact.append(-1), pos.append(-1)
        none = [-1] * len(head)
        docs.append((np.array(head + words, dtype=np.int64), np.array(none + fact), np.array(none + pos)))
    return docs


def sample_inputs(data: KnowledgeData, *, batch: int = 3, length: int = 5, seed: int = 0):
    """Token ids ``[batch, time]`` of random documents (header + ``length`` words), right-padded (torch)."""
    from .objective import pad_documents

    return pad_documents(random_documents(data, batch=batch, length=length, seed=seed))[0]


FAMILY = Family(
    name="knowledge-lm",
    description="documents with a header of facts in, next-word log-probabilities over the full vocabulary out; "
                "trained on whole documents with the text-fact alignment labels",
    data=KnowledgeData,
    describe_dataset=describe_dataset,
    describe_checkpoint=describe_checkpoint,
    sample_inputs=sample_inputs,
    objective="lstmviz.engines.families.knowledge_lm.objective:DocumentObjective",
    contract="lstmviz.engines.families.knowledge_lm.contract",
    train_settings={"valid_items": None},  # validate on the first N validation documents (None: all)
    default_dataset="wikifacts",
)
