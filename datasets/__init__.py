"""Datasets for lstmviz: items of token ids with annotations, found through a registry.

Built-ins (registered through entry points like any plugin): ``parens`` (LSTMVis's nesting
language), ``python`` (characters of the standard library's source), ``ptb`` (Penn Treebank LM
text with machine POS tags and phrase chunks). See ``docs/datasets.md``.

This package only needs numpy (plus optional extras for ``ptb``); it never imports torch or Qt.
"""

from .base import (
    AnnotationSpec,
    DatasetError,
    DatasetSpec,
    MissingDependency,
    SequenceDataset,
    SequenceItem,
)
from .registry import load_dataset, registry

__all__ = [
    "AnnotationSpec",
    "DatasetError",
    "DatasetSpec",
    "MissingDependency",
    "SequenceDataset",
    "SequenceItem",
    "load_dataset",
    "registry",
]
