"""The recorder: capture named signals of a model during a forward pass, and record a dataset to a file.

    with Recorder(model, ["lstm/layer*/c", "decoder"]) as rec:
        model(tokens)
    states = rec.collect()          # {"lstm/layer0/c": [B, T, H], ..., "decoder": [B, T, V]}

Hooks and patches exist only inside the ``with`` block and are removed (exactly those of this
recorder) on exit, also when the block raises: the recorder is a reader of the hook layer
(:mod:`lstmviz.hooks`), which also runs interventions, always before any reader. See
:mod:`lstmviz.hooks.signals` for what can be recorded, :mod:`.recorder_sources` for how each kind is
captured and :mod:`lstmviz.hooks.rnn_recovery` for how the hidden signals of ``nn.LSTM`` / ``nn.GRU``
are recovered.
"""

from __future__ import annotations

from .recorder_context import Recorder
from .recorder_run import CheckpointSource, record
from .recorder_sources import SignalInfo, list_signals

__all__ = ["CheckpointSource", "Recorder", "SignalInfo", "list_signals", "record"]
