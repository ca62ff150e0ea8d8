"""What the application knows about an engine before building it: its family, paper, config, taps, training.

An :class:`EngineSpec` is what an entry point in the group ``lstmviz.engines`` names. Built-in engines
register exactly the way a third-party plugin does. The spec names its family
(:mod:`lstmviz.engines.families`), which describes the data the engine is built for: an engine is
built with :meth:`EngineSpec.build_model` from the family's data description, never from a
hyperparameter that depends on the data.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .families import Family
from .families import registry as families


class ConfigError(ValueError):
    """A hyperparameter or training setting that does not exist or has a bad value.

    The message names the offending key and lists the keys that are known.
    """


@dataclass(frozen=True)
class Paper:
    """The publication that defines an engine's mechanism."""

    title: str
    authors: str
    arxiv: str  # e.g. "1409.2329"
    year: int

    def __str__(self) -> str:
        return f"{self.authors} ({self.year}). {self.title}. arXiv:{self.arxiv}"


@dataclass(frozen=True)
class EngineSpec:
    """Everything needed to build, describe and train one engine.

    Attributes:
        name: registry name (``"lstm"``).
        description: one line for lists and tooltips.
        family: the registered family the engine belongs to (``"language-model"``: engines
            ``model(tokens, state) -> (logits, state)``).
        paper: the publication the engine implements.
        build: ``build(**data_fields, **config) -> nn.Module``, where the data fields are those of the
            family's data description (``language-model``: ``vocab_size``); call :meth:`build_model`.
        default_config: hyperparameters for :attr:`build` (small, CPU-friendly).
        taps: tap name patterns; ``{layer}`` stands for ``0 .. num_layers-1``.
        default_dataset: the dataset the engine is trained on by default (None: the family's).
        train_defaults: settings of :func:`lstmviz.engines.training.train` that differ from its defaults
            (steps, batch_size, lr, optimizer, clip, dropout, eval_every, seed and the family's, ...).
    """

    name: str
    description: str
    family: str
    paper: Paper
    build: Callable[..., Any]
    default_config: dict = field(default_factory=dict)
    taps: tuple[str, ...] = ()
    default_dataset: str | None = None
    train_defaults: dict = field(default_factory=dict)

    @property
    def family_spec(self) -> Family:
        """The registered :class:`~lstmviz.engines.families.Family` this engine belongs to."""
        return families.get(self.family)

    def training_dataset(self) -> str | None:
        """The dataset the engine is trained and recorded on when none is named: its own, else its family's."""
        return self.default_dataset or self.family_spec.default_dataset

    def build_model(self, data: Any, **config: Any):
        """The engine built for ``data`` (its family's data description) with hyperparameters ``config``."""
        return self.build(**self.family_spec.build_kwargs(data), **config)

    def config_keys(self) -> list[str]:
        """The hyperparameters that :attr:`build` accepts besides the family's data fields (sorted)."""
        data_fields = set(self.family_spec.data_fields())
        params = inspect.signature(self.build).parameters
        return sorted(
            name
            for name, p in params.items()
            if name not in data_fields and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        )

    def resolve_config(self, overrides: Mapping[str, Any] | None = None) -> dict:
        """``default_config`` updated with ``overrides``; an unknown key raises :class:`ConfigError`."""
        overrides = dict(overrides or {})
        params = inspect.signature(self.build).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        if not takes_any:
            known = self.config_keys()
            unknown = sorted(set(overrides) - set(known))
            if unknown:
                raise ConfigError(
                    f"unknown hyperparameter {', '.join(map(repr, unknown))} for engine {self.name!r}; "
                    f"known: {', '.join(known)}"
                )
        return {**self.default_config, **overrides}

    def tap_names(self, num_layers: int | None = None) -> list[str]:
        """The concrete tap names of a model with ``num_layers`` layers (patterns expanded)."""
        if num_layers is None:
            num_layers = int(self.default_config.get("num_layers", 1))
        per_layer = [p for p in self.taps if "{layer}" in p]
        names = [p.format(layer=layer) for layer in range(num_layers) for p in per_layer]
        return names + [p for p in self.taps if "{layer}" not in p]
