"""The seq2seq family's batches: (source, target) id pairs padded into tensors.

:func:`batch_pairs` turns pairs into a :class:`Seq2SeqBatch`; everything that feeds a seq2seq model
(the objective, the recorder, distillation, actor-critic) goes through it, so padding is done one way:
right padding with ``<pad>`` (id 0), lengths given separately.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from lstmviz.datasets.pairs_base import BOS, EOS, PAD


@dataclass
class Seq2SeqBatch:
    """``src [B, S]`` int64 (padded with ``<pad>``), ``src_lengths [B]`` int64, ``tgt_in [B, T]`` (``<bos> y``,
    padded), ``tgt_out [B, T]`` (``y <eos>``, padded), ``tgt_lengths [B]`` (``len(y) + 1``: the tokens scored)."""

    src: Tensor
    src_lengths: Tensor
    tgt_in: Tensor
    tgt_out: Tensor
    tgt_lengths: Tensor

    def to(self, device) -> "Seq2SeqBatch":
        return Seq2SeqBatch(*(t.to(device) for t in (self.src, self.src_lengths, self.tgt_in, self.tgt_out,
                                                      self.tgt_lengths)))

    def __len__(self) -> int:
        return int(self.src.shape[0])

    def references(self) -> list[list[int]]:
        """The target ids of every pair (without bos/eos)."""
        return [self.tgt_out[b, : int(n) - 1].tolist() for b, n in enumerate(self.tgt_lengths)]


def pad(sequences: Sequence[Sequence[int]], *, value: int = PAD) -> tuple[Tensor, Tensor]:
    """``(ids [B, max len] int64 right-padded with value, lengths [B] int64)``; an empty sequence is refused."""
    lengths = [len(s) for s in sequences]
    if not lengths:
        raise ValueError("expected at least one sequence")
    if min(lengths) == 0:
        raise ValueError("expected non-empty sequences; got an empty one")
    out = torch.full((len(sequences), max(lengths)), value, dtype=torch.int64)
    for b, s in enumerate(sequences):
        out[b, : len(s)] = torch.as_tensor(np.asarray(s, dtype=np.int64))
    return out, torch.tensor(lengths, dtype=torch.int64)


def batch_pairs(pairs: Iterable[tuple[Sequence[int], Sequence[int]]]) -> Seq2SeqBatch:
    """Pad ``(source ids, target ids)`` pairs (targets without bos/eos; an empty target is allowed)."""
    pairs = list(pairs)
    src, src_lengths = pad([s for s, _ in pairs])
    targets = [np.asarray(t, dtype=np.int64).reshape(-1) for _, t in pairs]
    tgt_in, tgt_lengths = pad([np.concatenate([[BOS], t]) for t in targets])
    tgt_out, _ = pad([np.concatenate([t, [EOS]]) for t in targets])
    return Seq2SeqBatch(src, src_lengths, tgt_in, tgt_out, tgt_lengths)


def batch_items(items: Iterable) -> Seq2SeqBatch:
    """:func:`batch_pairs` of :class:`~lstmviz.datasets.pairs_base.PairItem` objects (``tokens``, ``target``)."""
    return batch_pairs((item.tokens, item.target) for item in items)
