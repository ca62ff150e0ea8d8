"""Recurrent language-model engines: one cell per module, one shared unroll (``base``)."""

from .base import RecurrentLanguageModel, RecurrentLayer
from .gru import GRULanguageModel, GRULayer
from .lstm import LSTMLanguageModel, LSTMLayer

__all__ = [
    "GRULanguageModel",
    "GRULayer",
    "LSTMLanguageModel",
    "LSTMLayer",
    "RecurrentLanguageModel",
    "RecurrentLayer",
]
