"""The hook layer: named signals of a torch model that can be read and written inside a scope.

This package imports torch and nothing of lstmviz's files, analysis or GUI (h5py, Qt): engines route
their signals through :class:`Tap` modules declared with a :class:`TapLayout`; the recorder
(``lstmviz.recording``) is one user of a :class:`HookScope` (a reader), interventions
(:func:`intervene`) are another (writers, applied first). Stock ``nn.LSTM``/``nn.GRU`` modules are
reached through their :class:`~lstmviz.hooks.rnn_point.RNNPoint`.
"""

from .intervene import ACTIONS, Edit, Intervention, intervene
from .layout import GEOMETRIES, GRAPH, IMAGE, SCALAR, SEQUENCE, SET, STEP, TOKENS, TOKENS_TIME_MAJOR, TapLayout
from .scope import HookScope
from .signals import SignalInfo, list_signals, select_signals, signal_catalog
from .taps import Tap, TapDecl, find_taps

__all__ = [
    "ACTIONS",
    "Edit",
    "GEOMETRIES",
    "GRAPH",
    "HookScope",
    "IMAGE",
    "Intervention",
    "SCALAR",
    "SEQUENCE",
    "SET",
    "STEP",
    "SignalInfo",
    "TOKENS",
    "TOKENS_TIME_MAJOR",
    "Tap",
    "TapDecl",
    "TapLayout",
    "find_taps",
    "intervene",
    "list_signals",
    "select_signals",
    "signal_catalog",
]
