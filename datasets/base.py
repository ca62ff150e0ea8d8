"""The types every dataset shares: annotation specs, items, the abstract dataset and its spec.

A dataset is a fixed split of a corpus cut into *items* (a sentence, a source file, a generated
sequence). Every item carries token ids into one vocabulary that is the same for every split, plus
optional annotations per position (one value per token) and per item. Nothing here imports torch.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

KINDS = ("categorical", "numeric")
LEVELS = ("position", "item")


class DatasetError(ValueError):
    """A dataset was asked for something it does not have (split, option, option value)."""


class MissingDependency(DatasetError, ImportError):
    """An optional package a dataset needs is not installed; the message names the pip command."""


@dataclass(frozen=True)
class AnnotationSpec:
    """What one annotation means.

    ``kind`` is ``"categorical"`` (values are int ids into ``labels``; -1 = missing) or ``"numeric"``
    (float values; NaN = missing). ``level`` is ``"position"`` (one value per token) or ``"item"``.
    """

    name: str
    kind: str
    level: str = "position"
    labels: tuple[str, ...] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"annotation {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.level not in LEVELS:
            raise ValueError(f"annotation {self.name!r}: level must be one of {LEVELS}, got {self.level!r}")
        if self.kind == "categorical":
            if not self.labels:
                raise ValueError(f"categorical annotation {self.name!r} needs labels")
            if len(set(self.labels)) != len(self.labels):
                raise ValueError(f"annotation {self.name!r} has duplicate labels")
            object.__setattr__(self, "labels", tuple(self.labels))
        elif self.labels is not None:
            raise ValueError(f"numeric annotation {self.name!r} cannot have labels")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "level": self.level,
            "labels": list(self.labels) if self.labels is not None else None,
            "description": self.description,
        }


@dataclass
class SequenceItem:
    """One sequence: token ids, per-position annotations (same length) and per-item annotations."""

    tokens: np.ndarray
    annotations: dict[str, np.ndarray] = field(default_factory=dict)
    item_annotations: dict[str, int | float] = field(default_factory=dict)
    text: str | None = None

    def __len__(self) -> int:
        return len(self.tokens)


class ItemDataset(abc.ABC):
    """What every dataset split shares: items indexed ``0 .. len-1`` (negative from the end), iteration,
    and annotation specs by name. Subclasses implement ``__len__`` and ``_item``."""

    name: str
    split: str
    annotation_specs: list[AnnotationSpec]

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of items."""

    @abc.abstractmethod
    def _item(self, i: int):
        """Item ``i``, with ``0 <= i < len(self)``."""

    def __getitem__(self, i: int):
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"dataset items are indexed by int, got {type(i).__name__}")
        n = len(self)
        j = int(i) + n if i < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"item {i} out of range for {self.name}/{self.split} with {n} items")
        return self._item(j)

    def __iter__(self) -> Iterator:
        for i in range(len(self)):
            yield self._item(i)

    def annotation_spec(self, name: str) -> AnnotationSpec:
        for spec in self.annotation_specs:
            if spec.name == name:
                return spec
        known = ", ".join(s.name for s in self.annotation_specs) or "none"
        raise KeyError(f"{self.name} has no annotation {name!r}; it has: {known}")


class SequenceDataset(ItemDataset):
    """One split of a dataset, cut into items.

    Subclasses set ``name``, ``split``, ``vocab``, ``annotation_specs``, ``options`` (the effective
    options it was built with) and ``source``, and implement ``__len__`` and ``_item``.
    """

    name: str
    split: str
    vocab: list[str]
    annotation_specs: list[AnnotationSpec]
    options: dict[str, Any]
    source: str

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of items."""

    @abc.abstractmethod
    def _item(self, i: int) -> SequenceItem:
        """Item ``i``, with ``0 <= i < len(self)``."""

    def token_stream(self) -> np.ndarray:
        """All items' tokens concatenated in item order (int64), e.g. for language-model training."""
        parts = [self._item(i).tokens for i in range(len(self))]
        if not parts:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate(parts).astype(np.int64, copy=False)

    def decode(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """Token strings for token ids."""
        vocab = self.vocab
        return [vocab[int(t)] for t in ids]

    def provenance(self) -> dict[str, Any]:
        """JSON-serialisable description: name, split, options, source, annotations, sizes."""
        return {
            "name": self.name,
            "split": self.split,
            "options": dict(self.options),
            "source": self.source,
            "vocab_size": len(self.vocab),
            "items": len(self),
            "annotations": {s.name: s.to_dict() for s in self.annotation_specs},
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}/{self.split}: {len(self)} items, vocab {len(self.vocab)}>"


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: ``build(split=..., **options)`` returns a ``SequenceDataset``.

    ``options`` maps every option ``build`` accepts to its default.
    """

    name: str
    description: str
    build: Callable[..., SequenceDataset]
    splits: tuple[str, ...] = ("train", "valid", "test")
    options: dict[str, Any] = field(default_factory=dict)
    annotations: tuple[str, ...] = ()
    source: str = ""


def check_int(name: str, value: Any, *, minimum: int = 0, allow_none: bool = False) -> int | None:
    """Validate an integer option; raises ``DatasetError`` naming the option."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        extra = " or None" if allow_none else ""
        raise DatasetError(f"option {name!r} must be an integer >= {minimum}{extra}, got {value!r}")
    return int(value)


def check_split(name: str, split: str, splits: Sequence[str]) -> str:
    if split not in splits:
        raise DatasetError(f"dataset {name!r} has no split {split!r}; splits: {', '.join(splits)}")
    return split
