"""What a model offers to record, and the hooks that capture each kind of signal.

Three kinds of signal:

- ``tap``: a :class:`~lstmviz.recording.taps.Tap` module, named by its tap name. A step tap is called
  once per step with ``[B, units]``; a sequence tap once with ``[B, T, units]``.
- ``rnn``: a per-layer signal of a stock ``nn.LSTM`` / ``nn.GRU`` at module path ``P``:
  ``P/layer{l}/h``, ``P/layer{l}/c`` and ``P/layer{l}/gates/{i,f,g,o}`` (GRU: ``h`` and ``gates/{r,z,n}``);
  the reverse direction of a bidirectional layer is ``P/layer{l}_reverse/...``. Captured by running the
  module layer by layer (:mod:`.rnn_layerwise`) and recovering gates and cells from the weights
  (:mod:`.rnn_recovery`).
- ``module``: the output of any other module, named by its module path.

Every source keeps the values of each call as batch-first ``[B, T, units]`` tensors (detached); the
values of successive calls are concatenated along time.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from . import rnn_recovery as rec
from .rnn_layerwise import LayerTrace, forward_layerwise, is_recoverable_rnn, layer_weights, rnn_signal_names
from .taps import Tap, find_taps

_GATE_TEXT = {
    "i": "input gate i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)",
    "f": "forget gate f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)",
    "g": "cell candidate g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)",
    "o": "output gate o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)",
    "r": "reset gate r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)",
    "z": "update gate z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)",
    "n": "new gate n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))",
    "c": "cell state c_t = f_t * c_{t-1} + i_t * g_t",
}


@dataclass(eq=False)
class SignalInfo:
    """One recordable signal: its name, where it comes from and what it means."""

    name: str
    kind: str  # "tap", "rnn" or "module"
    path: str  # module path of the module that produces it ("" for the model itself)
    module: nn.Module = field(repr=False)
    layer: int | None = None
    signal: str = ""
    description: str = ""
    units: int | None = None  # known before running only for RNN signals
    local: str = ""  # rnn: the name inside the module, e.g. "layer0_reverse/gates/f"


def _rnn_infos(path: str, module: nn.Module) -> list[SignalInfo]:
    lstm = isinstance(module, nn.LSTM)
    kind_name = "nn.LSTM" if lstm else "nn.GRU"
    proj = getattr(module, "proj_size", 0)
    prefix = f"{path}/" if path else ""
    infos = []
    for layer, direction, local in rnn_signal_names(module):
        signal = local.rsplit("/", 1)[-1]
        where = f"layer {layer}{' (reverse direction)' if direction else ''} of {kind_name} {path or 'model'!r}"
        if signal == "h":
            what = "projected hidden state h_t = W_hr (o_t * tanh(c_t))" if proj else "hidden state h_t"
            units = proj or module.hidden_size
        else:
            what = _GATE_TEXT[signal]
            units = module.hidden_size
        infos.append(
            SignalInfo(
                name=prefix + local,
                kind="rnn",
                path=path,
                module=module,
                layer=layer,
                signal=signal,
                description=f"{what}, {where}",
                units=units,
                local=local,
            )
        )
    return infos


def signal_catalog(model: nn.Module) -> dict[str, SignalInfo]:
    """Every recordable signal of ``model`` by name, in module order.

    A tap name takes precedence over a module path of the same spelling (the module's output is then
    not offered); a tap name equal to an RNN signal name is an error.
    """
    find_taps(model)  # raises on duplicate tap names
    catalog: dict[str, SignalInfo] = {}
    module_paths: list[tuple[str, nn.Module]] = []
    for path, module in model.named_modules():
        if isinstance(module, Tap):
            entries = [
                SignalInfo(module.name, "tap", path, module, module.layer, module.signal, module.description)
            ]
        elif is_recoverable_rnn(module):
            entries = _rnn_infos(path, module)
        else:
            if path and not isinstance(module, (nn.ModuleList, nn.ModuleDict, nn.ParameterList, nn.ParameterDict)):
                module_paths.append((path, module))
            continue
        for info in entries:
            if info.name in catalog:
                raise ValueError(
                    f"signal name {info.name!r} is used twice: by {catalog[info.name].kind} at module path "
                    f"{catalog[info.name].path!r} and by {info.kind} at {info.path!r}; rename the tap"
                )
            catalog[info.name] = info
    for path, module in module_paths:
        if path not in catalog:
            catalog[path] = SignalInfo(
                path, "module", path, module, None, "output", f"output of {type(module).__name__} at {path!r}"
            )
    return catalog


def list_signals(model: nn.Module) -> list[str]:
    """The names of everything recordable in ``model``: taps, RNN per-layer signals, module outputs."""
    return list(signal_catalog(model))


def _describe_available(catalog: dict[str, SignalInfo], limit: int = 200) -> str:
    names = list(catalog)
    shown = ", ".join(names[:limit])
    more = f" ... and {len(names) - limit} more" if len(names) > limit else ""
    return f"available signals: {shown}{more}" if names else "the model has no recordable signals"


def select_signals(catalog: dict[str, SignalInfo], signals) -> list[str]:
    """Names selected by ``signals`` (exact names or fnmatch patterns), in catalog order.

    ``None`` selects every tap and every RNN signal. Unknown names and patterns that match nothing
    raise ``ValueError`` listing what exists.
    """
    if signals is None:
        chosen = [n for n, info in catalog.items() if info.kind in ("tap", "rnn")]
        if not chosen:
            raise ValueError(
                "the model has no taps and no nn.LSTM / nn.GRU, so there is nothing to record by default; "
                f"name the module outputs to record with signals=[...]; {_describe_available(catalog)}"
            )
        return chosen
    if isinstance(signals, str):
        signals = [signals]
    chosen_set: set[str] = set()
    unknown = []
    for pattern in signals:
        if any(ch in pattern for ch in "*?["):
            matched = [n for n in catalog if fnmatch.fnmatchcase(n, pattern)]
        else:
            matched = [pattern] if pattern in catalog else []
        if not matched:
            unknown.append(pattern)
        chosen_set.update(matched)
    if unknown:
        what = ", ".join(repr(u) for u in unknown)
        raise ValueError(f"unknown signal name or pattern that matches nothing: {what}; {_describe_available(catalog)}")
    if not chosen_set:
        raise ValueError(f"no signals selected; {_describe_available(catalog)}")
    return [n for n in catalog if n in chosen_set]


def _as_time_series(value: Tensor, what: str, batch_first: bool = True) -> Tensor:
    """A recorded value as ``[B, T, units]``: 2-D ``[B, units]`` is one step; trailing dims are flattened."""
    if value.dim() < 2:
        raise ValueError(
            f"{what} produced a tensor of shape {tuple(value.shape)}; expected [batch, units] per step or "
            "[batch, time, units]"
        )
    if value.dim() == 2:
        return value.unsqueeze(1)
    if not batch_first:
        value = value.transpose(0, 1)
    return value.flatten(2) if value.dim() > 3 else value


class Source:
    """Captures the values of some signals of one module between ``attach()`` and ``detach()``."""

    def __init__(self, infos: list[SignalInfo]):
        self.infos = infos
        self.module = infos[0].module
        self._calls: list[dict[str, Tensor]] = []
        self._problem: str | None = None

    def attach(self) -> None:
        raise NotImplementedError

    def detach(self) -> None:
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
    """A tap (values are batch-first by contract) or any module's output (layout given by ``batch_first``)."""

    def __init__(self, info: SignalInfo, batch_first: bool = True):
        super().__init__([info])
        self.info = info
        self.batch_first = batch_first if info.kind == "module" else True
        self._handle = None

    def attach(self) -> None:
        self._handle = self.module.register_forward_hook(self._hook)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _hook(self, module, args, output) -> None:
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
            series = _as_time_series(value.detach(), what, self.batch_first)
        except ValueError as e:
            self._problem = str(e)
            return
        # engines may reuse their state buffers in place after a tap: keep a copy
        self._calls.append({self.info.name: series.clone()})


class RNNSource(Source):
    """An ``nn.LSTM`` / ``nn.GRU`` whose ``forward`` is replaced, while attached, by a layer-by-layer run.

    The replacement returns exactly what the module's own forward returns; per call it stores the
    selected signals of every layer: ``h`` straight from the kernel, gates (and the LSTM cell state)
    recovered from the weights only when selected.
    """

    def __init__(self, infos: list[SignalInfo]):
        super().__init__(infos)
        self.path = infos[0].path
        self.lstm = isinstance(self.module, nn.LSTM)
        self._wanted = {info.local: info.name for info in infos}
        self._layers = {info.layer for info in infos}
        self._attached = False
        self._weights: dict[tuple[int, int, str], tuple] = {}

    def attach(self) -> None:
        if "forward" in self.module.__dict__:
            raise ValueError(
                f"cannot record inside {type(self.module).__name__} at {self.path or 'the model'!r}: its forward is "
                "already replaced on the instance (by another Recorder or a patch); record it from one Recorder"
            )
        self.module.forward = self._forward
        self._attached = True

    def detach(self) -> None:
        if self._attached:
            del self.module.forward
            self._attached = False

    def _forward(self, input, hx=None):
        self._calls.append({})
        return forward_layerwise(self.module, input, hx, self._on_layer)

    def _on_layer(self, trace: LayerTrace) -> None:
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


def build_sources(catalog: dict[str, SignalInfo], names: list[str], batch_first: bool = True) -> list[Source]:
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
    return [RNNSource(rnn_groups[k]) if isinstance(k, int) else HookSource(k, batch_first) for k in order]
