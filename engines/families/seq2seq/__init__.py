"""Family ``seq2seq``: encoder-decoder models that read a source sequence and produce a target sequence.

- data description: :class:`Seq2SeqData` (``vocab_size``): ONE vocabulary shared by source and target,
  whose ids ``0, 1, 2`` are ``<pad>``, ``<bos>``, ``<eos>`` (:mod:`lstmviz.datasets.pairs_base`), from a
  pair dataset's vocabulary or a checkpoint's;
- inputs: a :class:`~.api.Seq2SeqBatch` (:func:`~.api.batch_pairs`): ``src [B, S]`` int64 right-padded
  with ``<pad>``, ``src_lengths [B]``, ``tgt_in [B, T]`` = ``<bos> y_1 .. y_n`` padded, ``tgt_out [B, T]``
  = ``y_1 .. y_n <eos>`` padded. A model is called ``model(src, src_lengths, tgt_in) -> logits [B, T, V]``
  (teacher forced) and decodes with ``model.greedy(src, src_lengths, max_len)`` and
  ``model.beam_search(src, src_lengths, beam=, max_len=, length_penalty=)`` (lists of token ids without
  bos/eos); see ``engines/seq2seq/attention.py`` for the reference engine;
- training (:mod:`.objective`): teacher-forced NLL of ``tgt_out`` with pads ignored, ``batch_size`` pairs
  per step; validation: loss, token accuracy, exact-sequence accuracy of greedy decoding; with the
  settings ``distill=word|seq`` and ``teacher=CKPT``, Kim & Rush's knowledge distillation
  (``engines/seq2seq/distill.py``);
- contract: :mod:`.contract`.

Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from lstmviz.datasets.base import AnnotationSpec
from lstmviz.datasets.pairs_base import BOS, EOS, PAD, SPECIALS, PairDataset, PairItem, check_vocab

from ..family import Family


@dataclass(frozen=True)
class Seq2SeqData:
    """What a sequence-to-sequence model needs to know about its data: the shared vocabulary's size."""

    vocab_size: int = field(metadata={"meaning": "the vocabulary size (shared by source and target)"})

    def __post_init__(self) -> None:
        value = self.vocab_size
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= len(SPECIALS):
            raise ValueError(f"expected vocab_size to be an int > {len(SPECIALS)} (<pad>, <bos>, <eos> and at least "
                             f"one real token), got {value!r}")
        object.__setattr__(self, "vocab_size", int(value))


def describe_dataset(dataset: Any) -> Seq2SeqData:
    vocab = getattr(dataset, "vocab", None)
    if vocab is None:
        raise TypeError(f"expected a pair dataset with a vocabulary (.vocab), got {type(dataset).__name__}")
    try:
        check_vocab(vocab)
    except ValueError as e:
        raise TypeError(f"expected a pair dataset (source/target pairs): {e}") from None
    return Seq2SeqData(vocab_size=len(vocab))


def describe_checkpoint(payload: Mapping[str, Any]) -> Seq2SeqData:
    vocab = payload["vocab"]
    if not vocab:
        raise ValueError("bad 'vocab': expected a non-empty list of token strings")
    check_vocab(vocab)
    return Seq2SeqData(vocab_size=len(vocab))


def random_pairs(data: Seq2SeqData, *, batch: int, length: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``batch`` random (source, target) id pairs of lengths ``1 .. length`` (varied), ids of real tokens only."""
    rng = np.random.default_rng(seed)
    out = []
    for b in range(batch):
        s = max(1, length - (b % max(1, min(3, length))))  # lengths differ: padding is exercised
        t = max(1, length + 1 - ((b + 1) % max(1, min(3, length))))
        src = rng.integers(len(SPECIALS), data.vocab_size, size=s).astype(np.int64)
        tgt = rng.integers(len(SPECIALS), data.vocab_size, size=t).astype(np.int64)
        out.append((src, tgt))
    return out


def sample_inputs(data: Seq2SeqData, *, batch: int = 3, length: int = 5, seed: int = 0):
    """A :class:`~.api.Seq2SeqBatch` of ``batch`` random pairs of varied lengths up to ``length`` (torch)."""
    from .api import batch_pairs

    return batch_pairs(random_pairs(data, batch=batch, length=length, seed=seed))


class SamplePairs(PairDataset):
    """A :class:`PairDataset` of random pairs over ``vocab_size`` ids (tests, contract checks)."""

    def __init__(self, data: Seq2SeqData, *, pairs: int = 8, length: int = 5, seed: int = 0, split: str = "train"):
        self.name, self.split = "sample-pairs", split
        self.vocab = [*SPECIALS, *(f"w{i}" for i in range(data.vocab_size - len(SPECIALS)))]
        self.annotation_specs = [AnnotationSpec("source_length", "numeric", "item", description="source length")]
        self.options = {"pairs": pairs, "length": length, "seed": seed}
        self.source = "random pairs (lstmviz.engines.families.seq2seq.random_pairs)"
        self._pairs = random_pairs(data, batch=pairs, length=length, seed=seed)

    def __len__(self) -> int:
        return len(self._pairs)

    def _item(self, i: int) -> PairItem:
        src, tgt = self._pairs[i]
        return PairItem(tokens=src.copy(), target=tgt.copy(), item_annotations={"source_length": len(src)})


FAMILY = Family(
    name="seq2seq",
    description="a source sequence in, a target sequence out (shared vocabulary); teacher-forced NLL, greedy/beam decoding",
    data=Seq2SeqData,
    describe_dataset=describe_dataset,
    describe_checkpoint=describe_checkpoint,
    sample_inputs=sample_inputs,
    objective="lstmviz.engines.families.seq2seq.objective:Seq2SeqObjective",
    contract="lstmviz.engines.families.seq2seq.contract",
    train_settings={
        "valid_items": None,  # validate on the first N validation pairs (None: all)
        "valid_decode": True,  # also greedy-decode the validation pairs (exact-sequence accuracy)
        # knowledge distillation (Kim & Rush 2016; engines/seq2seq/distill.py)
        "distill": "none",  # "none", "word" (word-KD, interpolated with NLL) or "seq" (seq-KD: teacher's beam outputs)
        "teacher": None,  # the teacher's checkpoint (needed by distill=word|seq)
        "distill_alpha": 0.5,  # word-KD: L = (1 - alpha) NLL + alpha word-KD
        "distill_beam": 5,  # seq-KD: the teacher's beam
    },
    default_dataset="reverse",
)

__all__ = ["BOS", "EOS", "FAMILY", "PAD", "SamplePairs", "Seq2SeqData", "describe_checkpoint", "describe_dataset",
           "random_pairs", "sample_inputs"]
