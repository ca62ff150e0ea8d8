"""The readers that capture each kind of signal (see :mod:`lstmviz.hooks.signals`) for the recorder.

- ``tap`` and ``module`` signals: a reader of the module's output in a
  :class:`~lstmviz.hooks.scope.HookScope`, laid out by the tap's declared
  :class:`~lstmviz.hooks.layout.TapLayout` (a module output: ``[batch, units]`` or ``[batch, time,
  units]``, batch first or not as ``record()`` is told; anything else is refused, not guessed);
- ``rnn`` signals of a stock ``nn.LSTM`` / ``nn.GRU``: the reader of its
  :class:`~lstmviz.hooks.rnn_point.RNNPoint`, which runs the module layer by layer through the fused
  kernel; gates and cells are recovered from the weights (:mod:`lstmviz.hooks.rnn_recovery`), or,
  when an intervention edits the module, taken from its per-step run as computed.

Readers run after every writer (intervention), so they store what the model really computed. Every
source keeps the values of each call as batch-first ``[B, positions, units]`` tensors (detached); the
values of successive calls are concatenated along positions. Only the ``tokens`` geometry is recorded
into files so far (``record()`` refuses the others).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from lstmviz.hooks import rnn_recovery as rec
from lstmviz.hooks.layout import TOKENS, TOKENS_TIME_MAJOR, TapLayout
from lstmviz.hooks.rnn_layerwise import LayerTrace, layer_weights
from lstmviz.hooks.scope import HookScope
from lstmviz.hooks.signals import SignalInfo, list_signals, select_signals, signal_catalog

__all__ = ["HookSource", "RNNSource", "SignalInfo", "Source", "build_sources", "list_signals", "select_signals",
           "signal_catalog"]

def module_layout(batch_first: bool) -> TapLayout:
    """The layout of a module output recorded by module path, which declares none."""
    return TOKENS if batch_first else TOKENS_TIME_MAJOR


class Source:
    """Captures the values of some signals of one module between ``attach()`` and ``detach()``."""

    def __init__(self, infos: list[SignalInfo]):
        self.infos = infos
        self.module = infos[0].module
        self._calls: list[dict[str, Tensor]] = []
        self._problem: str | None = None

    def attach(self, scope: HookScope) -> None:
        """Add this source's readers to ``scope`` (which removes them when it closes)."""
        raise NotImplementedError

    def clear(self) -> None:
        self._calls = []
        self._problem = None

    def values(self) -> dict[str, Tensor]:
        """Values of the calls since the last ``clear()``, per signal ``[B, T, units]``."""
        if self._problem is not None:
            raise ValueError(self._problem)
        out: dict[str, Tensor] = {}
        for info in self.infos:
            parts = [call[info.name] for call in self._calls if info.name in call]
            if not parts:
                continue
            try:
                out[info.name] = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
            except RuntimeError as e:
                shapes = sorted({tuple(p.shape) for p in parts})
                raise ValueError(
                    f"signal {info.name!r} was produced with shapes that cannot be joined along time: "
                    f"{shapes} (batch size or units changed between calls)"
                ) from e
        return out


class HookSource(Source):
    """A tap (laid out as it declares) or any module's output (layout given by ``batch_first``)."""

    def __init__(self, info: SignalInfo, batch_first: bool = True, keep=None):
        super().__init__([info])
        self.keep = keep
        self.info = info
        self.batch_first = batch_first if info.kind == "module" else True
        self.layout = info.layout if info.layout is not None else module_layout(self.batch_first)

    def attach(self, scope: HookScope) -> None:
        scope.read(self.module, self._hook)

    def _hook(self, module, args, kwargs, output) -> None:
        what = f"{self.info.kind} {self.info.name!r}"
        value = output
        if isinstance(value, (tuple, list)) and value and isinstance(value[0], (Tensor, PackedSequence)):
            value = value[0]
        if isinstance(value, PackedSequence):
            value = pad_packed_sequence(value, batch_first=self.batch_first)[0]
        if not isinstance(value, Tensor):
            self._problem = f"{what} produced a {type(output).__name__}, not a tensor, so it cannot be recorded"
            return
        try:
            series = self.layout.to_series(value.detach(), what)
        except ValueError as e:
            self._problem = str(e)
            return
        # engines may reuse their state buffers in place after a tap: keep a copy
        kept = series.clone() if self.keep is None else self.keep(self.info.name, series)
        self._calls.append({self.info.name: kept})


class RNNSource(Source):
    """The reader of an ``nn.LSTM`` / ``nn.GRU``'s :class:`~lstmviz.hooks.rnn_point.RNNPoint`.

    The module returns exactly what its own forward returns; per call the source stores the selected
    signals of every layer: ``h`` straight from the kernel, gates (and the LSTM cell state) recovered
    from the weights only when selected, or, on a per-step run (an intervention), as computed.
    """

    def __init__(self, infos: list[SignalInfo]):
        super().__init__(infos)
        self.path = infos[0].path
        self.lstm = isinstance(self.module, nn.LSTM)
        self._wanted = {info.local: info.name for info in infos}
        self._layers = {info.layer for info in infos}
        self._weights: dict[tuple[int, int, str], tuple] = {}

    def attach(self, scope: HookScope) -> None:
        scope.read_rnn(self.module, self._on_layer, f"{type(self.module).__name__} at {self.path or 'the model'!r}")

    def _on_layer(self, trace) -> None:
        if trace.layer == 0:  # a new call of the module
            self._calls.append({})
        if trace.layer not in self._layers:
            return
        store = self._calls[-1]
        with torch.no_grad():
            for direction in range(trace.directions):
                stem = f"layer{trace.layer}{'_reverse' if direction else ''}/"
                self._record_direction(trace, direction, stem, store)

    def _record_direction(self, trace: LayerTrace, direction: int, stem: str, store: dict) -> None:
        wanted = {local[len(stem) :]: name for local, name in self._wanted.items() if local.startswith(stem)}
        if not wanted:
            return
        if trace.signals is not None:  # a per-step run: every signal as computed (edits included)
            for key, name in wanted.items():
                store[name] = trace.signals[direction][key].detach().transpose(0, 1)
            return
        h = trace.outputs[direction].detach()
        if "h" in wanted:
            # the top layer's output is the tensor the caller receives and may modify in place
            store[wanted["h"]] = (h.clone() if trace.output_is_shared else h).transpose(0, 1)
        rest = {k: v for k, v in wanted.items() if k != "h"}
        if not rest:
            return
        reverse = direction == 1
        lengths = trace.lengths
        xh = rec.stacked_inputs(trace.inputs.detach(), h, trace.h0[direction].detach(), lengths, reverse)
        if self.lstm:
            needed = "".join(g for g in "ifgo" if f"gates/{g}" in rest or ("c" in rest and g in "ifg"))
            gates = rec.lstm_gates(xh, self._gate_weights(trace.layer, direction, needed))
            if "c" in rest:
                c0 = trace.c0[direction].detach()
                c = rec.lstm_cell_states(gates["i"], gates["f"], gates["g"], c0, lengths, reverse)
                store[rest["c"]] = rec.zero_padding(c, lengths).transpose(0, 1)
        else:
            gates = dict(zip("rzn", rec.gru_gates(xh, self._gate_weights(trace.layer, direction, "rzn"))))
        for g_name, value in gates.items():
            if f"gates/{g_name}" in rest:
                store[rest[f"gates/{g_name}"]] = rec.zero_padding(value, lengths).transpose(0, 1)

    def _gate_weights(self, layer: int, direction: int, gates: str):
        """The layer's weights arranged for recovering ``gates``, rebuilt only when a parameter changed."""
        raw = {k: v for k, v in layer_weights(self.module, layer, direction).items() if v is not None}
        version = tuple((k, v.data_ptr(), v._version, v.dtype, v.device) for k, v in raw.items())
        cached = self._weights.get((layer, direction, gates))
        if cached is None or cached[0] != version:
            w = {k: v.detach() for k, v in raw.items()}
            if self.lstm:
                arranged = rec.LSTMGateWeights.from_module(w["w_ih"], w["w_hh"], w.get("b_ih"), w.get("b_hh"), gates)
            else:
                arranged = rec.GRUGateWeights.from_module(w["w_ih"], w["w_hh"], w.get("b_ih"), w.get("b_hh"))
            cached = self._weights[(layer, direction, gates)] = (version, arranged)
        return cached[1]


def build_sources(catalog: dict[str, SignalInfo], names: list[str], batch_first: bool = True,
                  keep=None) -> list[Source]:
    """One source per tap / module output, one per RNN module for all its selected signals."""
    order: list[object] = []  # a SignalInfo, or the id of an RNN module standing for its group
    rnn_groups: dict[int, list[SignalInfo]] = {}
    for name in names:
        info = catalog[name]
        if info.kind == "rnn":
            key = id(info.module)
            if key not in rnn_groups:
                rnn_groups[key] = []
                order.append(key)
            rnn_groups[key].append(info)
        else:
            order.append(info)
    return [RNNSource(rnn_groups[k]) if isinstance(k, int) else HookSource(k, batch_first, keep) for k in order]
