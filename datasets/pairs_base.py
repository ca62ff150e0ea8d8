"""Pair datasets: items that are (source, target) token sequences, for sequence-to-sequence models.

A pair dataset is a fixed split of pairs. Source and target share ONE vocabulary (a recording has one
vocabulary), whose first three ids are fixed for every pair dataset:

- ``0`` = ``<pad>`` (:data:`PAD`): padding of shorter sequences in a batch; never a real token;
- ``1`` = ``<bos>`` (:data:`BOS`): the decoder's first input (begin of the target sentence);
- ``2`` = ``<eos>`` (:data:`EOS`): what the decoder emits after the last target token.

Each :class:`PairItem` is a :class:`~lstmviz.datasets.base.SequenceItem` whose ``tokens`` are the SOURCE
ids (int64 ``[S]``, no bos/eos) — the item's positions, with one annotation value per source token —
and whose ``target`` is the reference target (int64 ``[T]``, without bos and eos; the model reads
``[<bos>, target...]`` and is trained to produce ``[target..., <eos>]``). ``text`` shows the source;
``target_text`` the target. Nothing here imports torch.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .base import AnnotationSpec, SequenceDataset, SequenceItem

PAD, BOS, EOS = 0, 1, 2
SPECIALS = ("<pad>", "<bos>", "<eos>")
"""The first three tokens of every pair dataset's vocabulary, in id order."""


@dataclass
class PairItem(SequenceItem):
    """One (source, target) pair: ``tokens`` = source ids, ``target`` = reference target ids (module docstring)."""

    target: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    target_text: str | None = None

    def __post_init__(self) -> None:
        self.tokens = np.asarray(self.tokens, dtype=np.int64).reshape(-1)
        self.target = np.asarray(self.target, dtype=np.int64).reshape(-1)


class PairDataset(SequenceDataset):
    """One split of a pair dataset.

    Subclasses set ``name``, ``split``, ``vocab`` (starting with :data:`SPECIALS`), ``annotation_specs``
    (annotations of the SOURCE positions and of the items), ``options``, ``source`` and implement
    ``__len__`` and ``_item`` (returning :class:`PairItem`). Every split has the same vocabulary.
    """

    name: str
    split: str
    vocab: list[str]
    annotation_specs: list[AnnotationSpec]
    options: dict[str, Any]
    source: str

    @abc.abstractmethod
    def _item(self, i: int) -> PairItem:
        """Pair ``i``, with ``0 <= i < len(self)``."""

    pad_id, bos_id, eos_id = PAD, BOS, EOS

    def pairs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every ``(source ids, target ids)`` in item order."""
        return [(item.tokens, item.target) for item in self]

    def provenance(self) -> dict[str, Any]:
        prov = super().provenance()
        prov["pairs"] = True
        prov["specials"] = {"pad": PAD, "bos": BOS, "eos": EOS}
        return prov


def check_vocab(vocab: Sequence[str]) -> None:
    """``ValueError`` unless ``vocab`` starts with ``<pad>``, ``<bos>``, ``<eos>`` (ids 0, 1, 2)."""
    if tuple(vocab[:3]) != SPECIALS:
        raise ValueError(f"a pair dataset's vocabulary starts with {', '.join(SPECIALS)} (ids 0, 1, 2); "
                         f"got {list(vocab[:3])}")


def is_pair_dataset(dataset: Any) -> bool:
    """A dataset whose items carry a ``target`` (a :class:`PairDataset` or one shaped like it)."""
    if isinstance(dataset, PairDataset):
        return True
    vocab = getattr(dataset, "vocab", None)
    if vocab is None or tuple(vocab[:3]) != SPECIALS or len(dataset) == 0:
        return False
    return hasattr(dataset[0], "target")
