"""Recurrent engines: one cell per module (``lstm``, ``gru``), one shared stack (``stack``) and head (``language_model``)."""

from .base import GatedLayer, RecurrentLayer
from .gru import GRULanguageModel, GRULayer
from .language_model import RecurrentLanguageModel
from .lstm import LSTMLanguageModel, LSTMLayer
from .stack import RecurrentStack

__all__ = [
    "GRULanguageModel",
    "GRULayer",
    "GatedLayer",
    "LSTMLanguageModel",
    "LSTMLayer",
    "RecurrentLanguageModel",
    "RecurrentLayer",
    "RecurrentStack",
]
