"""Engines: PyTorch models whose every recordable signal passes through a named tap.

``registry`` maps engine names to :class:`EngineSpec` objects. It is filled from the entry-point
group ``lstmviz.engines``; the built-in engines (``lstm``, ``gru``) register exactly the way a
third-party plugin does. Importing this package does not import torch; building an engine does.

    from lstmviz.engines import registry, build_engine
    spec = registry.get("lstm")
    model = build_engine("lstm", vocab_size=12, hidden_size=64)
"""

from __future__ import annotations

from lstmviz.registry import Registry, UnknownName

from .spec import ConfigError, EngineSpec, Paper

registry: Registry[EngineSpec] = Registry[EngineSpec]("lstmviz.engines", "engine")


def build_engine(name: str, *, vocab_size: int, **config):
    """Build engine ``name`` with its default config updated by ``config`` (unknown keys are an error)."""
    spec = registry.get(name)
    return spec.build(vocab_size=vocab_size, **spec.resolve_config(config))


__all__ = ["ConfigError", "EngineSpec", "Paper", "UnknownName", "build_engine", "registry"]
