"""What a model offers to read and edit: its *signals*, each with a name, a kind and a layout.

Three kinds of signal:

- ``tap``: a :class:`~lstmviz.hooks.taps.Tap` module, named by its tap name, laid out as the tap declares.
- ``rnn``: a per-layer signal of a stock ``nn.LSTM`` / ``nn.GRU`` at module path ``P``:
  ``P/layer{l}/h``, ``P/layer{l}/c`` and ``P/layer{l}/gates/{i,f,g,o}`` (GRU: ``h`` and ``gates/{r,z,n}``);
  the reverse direction of a bidirectional layer is ``P/layer{l}_reverse/...``. Reached through the
  module's :class:`~lstmviz.hooks.rnn_point.RNNPoint`.
- ``module``: the output of any other module, named by its module path; its layout is not declared
  (``[batch, units]`` or ``[batch, time, units]``, batch first or not as the caller says).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from torch import nn

from .layout import STEP, TapLayout
from .rnn_layerwise import is_recoverable_rnn, rnn_signal_names
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
    layout: TapLayout | None = None  # taps: as declared; rnn: one step per value; modules: None (the caller's)


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
                layout=STEP,
            )
        )
    return infos


def signal_catalog(model: nn.Module) -> dict[str, SignalInfo]:
    """Every recordable signal of ``model`` by name, in module order.

    A tap name takes precedence over a module path of the same spelling (the module's output is then
    not offered); a tap name equal to an RNN signal name is an error. A model may name submodules that
    never run over the recorded positions in ``model.unrecorded_modules`` (module paths, e.g. professor
    forcing's training-only discriminator ``("discriminator",)``): they and their children offer no signals.
    """
    find_taps(model)  # raises on duplicate tap names
    catalog: dict[str, SignalInfo] = {}
    module_paths: list[tuple[str, nn.Module]] = []
    skipped = tuple(getattr(model, "unrecorded_modules", ()))
    for path, module in model.named_modules():
        if any(path == s or path.startswith(s + ".") for s in skipped):
            continue
        if isinstance(module, Tap):
            entries = [
                SignalInfo(module.name, "tap", path, module, module.layer, module.signal, module.description,
                           layout=module.layout)
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


def describe_available(catalog: dict[str, SignalInfo], limit: int = 200) -> str:
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
                f"name the module outputs to record with signals=[...]; {describe_available(catalog)}"
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
        raise ValueError(f"unknown signal name or pattern that matches nothing: {what}; {describe_available(catalog)}")
    if not chosen_set:
        raise ValueError(f"no signals selected; {describe_available(catalog)}")
    return [n for n in catalog if n in chosen_set]
