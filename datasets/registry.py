"""The dataset registry (entry-point group ``lstmviz.datasets``) and ``load_dataset``."""

from __future__ import annotations

from typing import Any

from lstmviz.registry import Registry

from .base import DatasetError, DatasetSpec, SequenceDataset, check_split

registry: Registry[DatasetSpec] = Registry("lstmviz.datasets", "dataset")


def load_dataset(name: str, split: str = "train", **options: Any) -> SequenceDataset:
    """Build split ``split`` of the registered dataset ``name`` with ``options`` over its defaults.

    Raises ``lstmviz.registry.UnknownName`` for an unknown dataset and ``DatasetError`` for an
    unknown split or option; each message lists what is available.
    """
    spec = registry.get(name)
    check_split(name, split, spec.splits)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        known = ", ".join(f"{k}={v!r}" for k, v in spec.options.items()) or "none"
        raise DatasetError(
            f"dataset {name!r} has no option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; options (with defaults): {known}"
        )
    return spec.build(split=split, **{**spec.options, **options})
