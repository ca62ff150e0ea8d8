"""The one error type of the perturbation layer: a problem with what the user asked for, in one sentence."""

from __future__ import annotations

from lstmviz.errors import ExpectedError


class PerturbError(ExpectedError):
    """An intervention, a checkpoint or a model that cannot be used; its text is the sentence to show."""


__all__ = ["PerturbError"]
