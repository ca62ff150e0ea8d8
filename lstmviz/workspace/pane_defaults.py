"""What a new pane shows before the user chooses: the tap that holds the state, in a transform that
makes the threshold θ mean something.

The choice is made from the taps' metadata (their ``signal`` and ``description``, which the recorder
writes for every tap), not from their names:

1. the hidden state ``h`` (what an LSTM, GRU or plain RNN layer passes on; already in (−1, 1));
2. else the cell state ``c``;
3. else the output of a recurrent module (a module-output recording of a model whose recurrent part
   lstmviz cannot recover, e.g. ``nn.RNN``: its description names the module's class);
4. else the first tap that is not a gate, else the first tap.

Among equally good taps the one declared first wins (layer 0 before layer 1), and taps already shown
in another pane come last, so ``+ Pane`` adds the next layer's state.

Transforms: tanh for an unbounded cell state (as LSTMVis shows it), raw values for the hidden state and
the gates (bounded already), and for any other signal raw values when the first window lies within
±``RAW_LIMIT``, else tanh, so θ = 0.3 is never a line hugging zero.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

#: signals that are already bounded (hidden state in (−1, 1), gates in (0, 1) or (−1, 1))
BOUNDED_SIGNALS = frozenset({"h", "i", "f", "g", "o", "r", "z", "n"})
#: gate signals: never the default view when a state is recorded
GATE_SIGNALS = frozenset({"i", "f", "g", "o", "r", "z", "n"})
#: beyond this absolute value a signal of unknown range is shown through tanh
RAW_LIMIT = 1.5
_RECURRENT_OUTPUT = re.compile(r"\boutput of \w*(RNN|LSTM|GRU|Recurrent|Cell)\w*\b", re.IGNORECASE)


def _signal(info) -> str:
    return (getattr(info, "signal", "") or info.name.rsplit("/", 1)[-1]).strip()


def tap_rank(info) -> int:
    """How well a tap names the layer's state (lower is better); see the module docstring."""
    signal = _signal(info)
    if signal == "h":
        return 0
    if signal == "c":
        return 1
    if _RECURRENT_OUTPUT.search(getattr(info, "description", "") or ""):
        return 2
    if signal not in GATE_SIGNALS:
        return 3
    return 4


def default_tap(infos: Sequence, taken: Iterable[str] = ()) -> str | None:
    """The tap a new pane shows: the best-ranked tap not shown yet (else the best-ranked of all)."""
    taken = set(taken)
    for pool in ([i for i in infos if i.name not in taken], list(infos)):
        if pool:
            return min(enumerate(pool), key=lambda pair: (tap_rank(pair[1]), pair[0]))[1].name
    return None


def default_transform(info, sample: np.ndarray | None = None) -> str:
    """The transform a pane first shows ``info`` in; ``sample``: some of its raw values (for a signal
    whose range the metadata does not tell)."""
    signal = _signal(info)
    if signal == "c":
        return "tanh"
    if signal in BOUNDED_SIGNALS:
        return "raw"
    if sample is None or sample.size == 0:
        return "raw"
    finite = np.abs(sample[np.isfinite(sample)])
    return "tanh" if finite.size and float(finite.max()) > RAW_LIMIT else "raw"
