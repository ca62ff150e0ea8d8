"""Turning what users pass to :func:`~lstmviz.recording.recorder.record` into padded batches.

``data`` is either a dataset (duck-typed like ``lstmviz.datasets.base.SequenceDataset``: ``vocab``,
``annotation_specs``, ``__len__``, ``__getitem__`` returning items with ``.tokens``, ``.annotations``,
``.item_annotations``, and ``provenance()``) or any iterable of token-id sequences (lists, numpy
arrays, tensors, or objects with a ``.tokens`` attribute).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from torch import Tensor

from .item_range import select_items


@dataclass
class Item:
    """One item ready to record: its index, token ids and (for datasets) its annotations."""

    index: int
    tokens: np.ndarray  # int64 [n], n >= 1
    annotations: dict[str, np.ndarray] = field(default_factory=dict)
    item_annotations: dict[str, Any] = field(default_factory=dict)


def is_dataset(data: Any) -> bool:
    return all(hasattr(data, a) for a in ("vocab", "annotation_specs", "__len__", "__getitem__"))


def token_ids(seq: Any, index: int, vocab_size: int | None) -> np.ndarray:
    """Item ``index``'s tokens as a 1-D int64 array; clear errors for anything else."""
    if isinstance(seq, Tensor):
        seq = seq.detach().cpu().numpy()
    try:
        ids = np.asarray(seq)
    except (TypeError, ValueError) as e:
        raise ValueError(f"item {index}: expected a sequence of token ids, got {type(seq).__name__} ({e})") from None
    if ids.ndim != 1:
        raise ValueError(f"item {index}: expected a 1-D sequence of token ids, got shape {list(ids.shape)}")
    if len(ids) == 0:
        raise ValueError(f"item {index} is empty: every item needs at least one token")
    if ids.dtype.kind not in "iu":
        if ids.dtype.kind == "f" and np.all(np.isfinite(ids)) and np.all(ids == np.floor(ids)):
            ids = ids.astype(np.int64)
        else:
            raise ValueError(f"item {index}: expected integer token ids, got dtype {ids.dtype}")
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0:
        raise ValueError(f"item {index}: token id {lo} is negative")
    if vocab_size is not None and hi >= vocab_size:
        raise ValueError(
            f"item {index}: token id {hi} is outside the vocabulary of {vocab_size} tokens "
            "(are the data and the vocabulary from the same corpus?)"
        )
    return ids.astype(np.int64, copy=False)


class DataSource:
    """Items of ``data`` in order, at most ``max_items`` of them (of those, only ``items=(start, stop)``
    when given; an item's index is its index in ``data``), with their annotation specs."""

    def __init__(self, data: Any, max_items: int | None = None, vocab_size: int | None = None,
                 items: tuple[int, int] | None = None):
        if isinstance(data, (str, bytes)):
            raise ValueError("data: expected a dataset or an iterable of token-id sequences, got a string")
        if max_items is not None and (isinstance(max_items, bool) or int(max_items) < 1):
            raise ValueError(f"max_items must be a positive integer or None, got {max_items!r}")
        self.data = data
        self.dataset = is_dataset(data)
        self.max_items = max_items
        self.vocab_size = vocab_size
        self.specs = list(data.annotation_specs) if self.dataset else []
        total = len(data) if hasattr(data, "__len__") else None
        if total is not None and max_items is not None:
            total = min(total, int(max_items))
        self.first = 0
        self.stop: int | None = total
        if items is not None:
            if total is None:
                raise ValueError(f"items=(start, stop) needs data whose length is known (a dataset or a list), got "
                                 f"a {type(data).__name__}")
            block = select_items(total, items)
            self.first, self.stop, total = block.start, block.stop, len(block)
        self.total: int | None = total

    def __iter__(self) -> Iterator[Item]:
        if self.dataset:
            raw: Iterable = (self.data[i] for i in range(self.first, len(self.data)))
        else:
            try:
                raw = iter(self.data)
            except TypeError:
                raise ValueError(
                    f"data: expected a dataset or an iterable of token-id sequences, got {type(self.data).__name__}"
                ) from None
        if not self.dataset and self.first:
            raw = islice(raw, self.first, None)
        if self.stop is not None or self.max_items is not None:
            raw = islice(raw, (self.stop if self.stop is not None else int(self.max_items)) - self.first)
        for index, element in enumerate(raw, self.first):
            yield self._item(index, element)

    def _item(self, index: int, element: Any) -> Item:
        tokens = getattr(element, "tokens", element)
        ids = token_ids(tokens, index, self.vocab_size)
        if not self.dataset:
            return Item(index, ids)
        given = getattr(element, "annotations", None) or {}
        given_items = getattr(element, "item_annotations", None) or {}
        annotations, item_annotations = {}, {}
        for spec in self.specs:
            if spec.level == "item":
                item_annotations[spec.name] = given_items.get(spec.name)
                continue
            values = given.get(spec.name)
            if values is None:
                values = np.full(len(ids), -1 if spec.kind == "categorical" else np.nan)
            elif len(values) != len(ids):
                raise ValueError(
                    f"item {index}: annotation {spec.name!r} has {len(values)} values for {len(ids)} tokens"
                )
            annotations[spec.name] = np.asarray(values)
        return Item(index, ids, annotations, item_annotations)

    def batches(self, batch_size: int) -> Iterator[list[Item]]:
        batch: list[Item] = []
        for item in self:
            batch.append(item)
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


def pad_batch(items: list[Item], pad_id: int, batch_first: bool, device: torch.device | str) -> tuple[Tensor, Tensor]:
    """Right-padded token ids (``[B, T]`` or ``[T, B]``) on ``device`` and lengths ``[B]`` (int64, CPU)."""
    lengths = torch.tensor([len(it.tokens) for it in items], dtype=torch.int64)
    padded = np.full((len(items), int(lengths.max())), pad_id, dtype=np.int64)
    for row, it in zip(padded, items):
        row[: len(it.tokens)] = it.tokens
    tokens = torch.from_numpy(padded)
    if not batch_first:
        tokens = tokens.t().contiguous()
    return tokens.to(device), lengths
