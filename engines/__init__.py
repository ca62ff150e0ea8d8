"""Engines: PyTorch models whose every recordable signal passes through a named tap.

``registry`` maps engine names to :class:`EngineSpec` objects. It is filled from the entry-point
group ``lstmviz.engines``; the built-in engines (``lstm``, ``gru``) register exactly the way a
third-party plugin does. Every engine belongs to a family (``families``: ``language-model`` today),
which describes the data it is built for. Importing this package does not import torch; building an
engine does.

    from lstmviz.engines import registry, build_engine
    spec = registry.get("lstm")
    model = build_engine("lstm", TokenData(vocab_size=12), hidden_size=64)
    model = build_engine("lstm", vocab_size=12, hidden_size=64)      # the data fields as keywords
"""

from __future__ import annotations

from typing import Any

from lstmviz.registry import Registry, UnknownName

from .families import Family
from .families import registry as families
from .spec import ConfigError, EngineSpec, Paper

registry: Registry[EngineSpec] = Registry[EngineSpec]("lstmviz.engines", "engine")


def build_engine(name: str, data: Any = None, /, **config):
    """Build engine ``name`` for ``data`` (its family's data description; or give the description's fields
    as keywords, e.g. ``vocab_size=12``) with its default config updated by ``config`` (unknown keys are
    an error)."""
    spec = registry.get(name)
    if data is None:
        data, config = spec.family_spec.split_data(config)
    return spec.build_model(data, **spec.resolve_config(config))


__all__ = ["ConfigError", "EngineSpec", "Family", "Paper", "UnknownName", "build_engine", "families", "registry"]
