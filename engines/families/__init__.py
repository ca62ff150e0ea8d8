"""Families of engines: what a model reads, how it is trained and what every engine of it must satisfy.

``registry`` maps family names to :class:`Family` objects, filled from the entry-point group
``lstmviz.families``: a third-party family registers there, and so does the built-in
``language-model``, ``graph``, ``image``, ``seq2seq``, ``knowledge-lm`` and ``strokes`` (pyproject.toml). The built-in families are also registered here, by the same object,
so that it is found where the installed package metadata predates families (an editable install made
before them lists no ``lstmviz.families`` entry points until it is reinstalled). An :class:`~lstmviz.engines.spec.EngineSpec` names its family; building, training, loading a
checkpoint and the contract tests go through it. Importing this package does not import torch.
"""

from __future__ import annotations

from lstmviz.registry import Registry

from .family import Family, Objective

registry: Registry[Family] = Registry[Family]("lstmviz.families", "family")


def _register_built_in() -> None:
    from .graph import FAMILY as GRAPH  # no torch: the objective and the contract load when used
    from .image import FAMILY as IMAGE
    from .knowledge_lm import FAMILY as KNOWLEDGE_LM
    from .language_model import FAMILY
    from .seq2seq import FAMILY as SEQ2SEQ
    from .strokes import FAMILY as STROKES

    registry.register(FAMILY)
    registry.register(GRAPH)
    registry.register(IMAGE)
    registry.register(SEQ2SEQ)
    registry.register(KNOWLEDGE_LM)
    registry.register(STROKES)


_register_built_in()

__all__ = ["Family", "Objective", "registry"]
