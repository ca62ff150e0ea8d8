"""Interventions: change the values of named signals while the model runs, then let it carry on.

    edits = [Edit("layer0/c", "replace", 0.0, positions=[5, 6], units=[3, 17]),
             Edit("layer1/h", "add", direction, positions=range(10, 20))]
    with intervene(model, edits):
        logits, _ = model(tokens)          # the recurrence carries every edit forward

An :class:`Edit` acts on a signal's series view ``[batch, positions, units]`` (its
:class:`~lstmviz.hooks.layout.TapLayout`), at chosen positions, units and batch rows:

- ``replace``: set the values to ``value`` (ablation: 0, or the unit's mean);
- ``add``: add ``value`` (a direction: one number per unit, scaled as the caller wants);
- ``scale``: multiply by ``value``.

``value`` is a number or a tensor that broadcasts to ``[rows, positions, units]`` of the selection
(e.g. one value per unit). Positions count from the start of each forward call of the model: a step
tap's position is its ``step``; values of a sequence tap, a module output or successive calls of one
module follow each other. Edits of one signal apply in the order given.

Interventions are writers of a :class:`~lstmviz.hooks.scope.HookScope`: they are attached only inside
``with``, removed on exit (also on error), and run before every reader, so a recorder active at the
same time records the edited values the model really used. An edit of a stock ``nn.LSTM``/``nn.GRU``
signal switches that module to its per-step path (:mod:`.rnn_steps`) for as long as the intervention
is active; a module without edits keeps its fused kernel.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from .layout import TOKENS, TOKENS_TIME_MAJOR, TapLayout
from .scope import HookScope
from .signals import SignalInfo, describe_available, signal_catalog

ACTIONS = ("replace", "add", "scale")


def _indices(name: str, values) -> tuple[int, ...] | None:
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        values = [values]
    out = []
    for v in values:
        try:
            index = None if isinstance(v, bool) else operator.index(v)
        except TypeError:
            index = None
        if index is None or index < 0:
            raise ValueError(f"expected {name} as whole numbers >= 0, got {v!r}")
        out.append(index)
    if not out:
        raise ValueError(f"expected at least one of {name} (None selects all), got an empty list")
    return tuple(out)


@dataclass(frozen=True, eq=False)
class Edit:
    """One change of one signal: ``action`` with ``value`` at ``positions`` x ``units`` of batch rows ``items``.

    ``None`` selects every position, unit or row. ``value`` is a number, a tensor or an array (numpy, a
    list). Bad arguments raise ``ValueError`` naming them.
    """

    signal: str
    action: str
    value: Any
    positions: Sequence[int] | None = None
    units: Sequence[int] | None = None
    items: Sequence[int] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.signal, str) or not self.signal:
            raise ValueError(f"expected the signal as a name, got {self.signal!r}")
        if self.action not in ACTIONS:
            raise ValueError(f"edit of {self.signal!r}: expected an action in {', '.join(ACTIONS)}, got {self.action!r}")
        value = self.value
        try:
            if isinstance(value, (bool, str, bytes)):
                raise TypeError
            as_tensor = value if isinstance(value, Tensor) else torch.as_tensor(value, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"edit of {self.signal!r}: expected the value as a number or a tensor (or an array of "
                             f"numbers), got {type(value).__name__}") from None
        if as_tensor.is_complex() or not bool(torch.isfinite(as_tensor.detach()).all()):
            raise ValueError(f"edit of {self.signal!r}: the value must be finite real numbers, got {value!r}")
        for name in ("positions", "units", "items"):
            object.__setattr__(self, name, _indices(name, getattr(self, name)))
        object.__setattr__(self, "_wanted", None if self.positions is None else frozenset(self.positions))
        object.__setattr__(self, "_prepared", {})  # (shape, selection, dtype, device) -> (index, value)

    def apply(self, series: Tensor, positions: Sequence[int]) -> Tensor | None:
        """``series`` ([rows, P, units]; ``positions[k]`` is the position of ``series[:, k]``) with this edit
        applied, as a new tensor; ``None`` when no selected position is among ``positions``."""
        rows, n_positions, n_units = series.shape
        if self._wanted is None:
            local = None
        else:
            wanted = self._wanted
            local = tuple(k for k, p in enumerate(positions) if p in wanted)
            if not local:
                return None
        key = (rows, n_positions, n_units, local, series.dtype, series.device)
        prepared = self._prepared.get(key)
        if prepared is None:  # once per shape and selection: a step tap sees the same one at every step
            prepared = self._prepare(series, local)
            if len(self._prepared) > 64:
                self._prepared.clear()
            self._prepared[key] = prepared
        index, value = prepared
        out = series.clone()
        if self.action == "replace":
            out[index] = value
        elif self.action == "add":
            out[index] = series[index] + value
        else:
            out[index] = series[index] * value
        return out

    def _prepare(self, series: Tensor, local: tuple[int, ...] | None) -> tuple[tuple, Tensor]:
        """The index of the selection in ``series`` and the value broadcast to it (checked)."""
        rows, n_positions, n_units = series.shape
        if self.units is not None and max(self.units) >= n_units:
            raise ValueError(f"edit of {self.signal!r}: unit {max(self.units)} does not exist; the signal has "
                             f"{n_units} units (0 to {n_units - 1})")
        if self.items is not None and max(self.items) >= rows:
            raise ValueError(f"edit of {self.signal!r}: batch row {max(self.items)} does not exist; the batch has "
                             f"{rows} rows")
        device = series.device
        b = torch.arange(rows, device=device) if self.items is None else torch.tensor(self.items, device=device)
        p = torch.arange(n_positions, device=device) if local is None else torch.tensor(local, device=device)
        u = torch.arange(n_units, device=device) if self.units is None else torch.tensor(self.units, device=device)
        index = (b[:, None, None], p[None, :, None], u[None, None, :])
        shape = (len(b), len(p), len(u))
        value = torch.as_tensor(self.value, dtype=series.dtype, device=device)  # (numpy arrays too)
        try:
            value = torch.broadcast_to(value, shape)
        except RuntimeError:
            raise ValueError(f"edit of {self.signal!r}: a value of shape {tuple(value.shape)} does not fit the "
                             f"selection [rows, positions, units] = {list(shape)}") from None
        return index, value


class Intervention:
    """Applies ``edits`` to ``model``'s signals while active (a context manager; see the module docstring).

    Args:
        model: any ``nn.Module``; signal names are those of :func:`~lstmviz.hooks.signals.list_signals`.
        edits: :class:`Edit` objects.
        batch_first: layout of *module outputs* edited by module path (taps declare theirs).

    ``applied[k]`` counts the values edit ``k`` changed since the intervention became active (one per
    call of the signal's module, or per step of an ``nn.LSTM``/``nn.GRU`` signal).
    """

    def __init__(self, model: nn.Module, edits: Sequence[Edit] | Edit, *, batch_first: bool = True):
        if isinstance(edits, Edit):
            edits = [edits]
        edits = list(edits)
        if not edits or not all(isinstance(e, Edit) for e in edits):
            raise ValueError("expected one or more lstmviz.hooks.Edit objects")
        self.model = model
        self.edits = edits
        self.batch_first = batch_first
        self.catalog = signal_catalog(model)
        unknown = [e.signal for e in edits if e.signal not in self.catalog]
        if unknown:
            raise ValueError(f"cannot intervene on {', '.join(map(repr, unknown))}: no such signal; "
                             f"{describe_available(self.catalog)}")
        for e in edits:
            info = self.catalog[e.signal]
            if e.units is not None and info.units is not None and max(e.units) >= info.units:
                raise ValueError(f"edit of {e.signal!r}: unit {max(e.units)} does not exist; the signal has "
                                 f"{info.units} units (0 to {info.units - 1})")
        self.applied = [0] * len(edits)
        self._scope: HookScope | None = None
        self._offsets: dict[str, int] = {}

    def __enter__(self) -> "Intervention":
        if self._scope is not None:
            raise RuntimeError("this Intervention is already active; it is not re-entrant")
        scope = HookScope().__enter__()
        try:
            groups: dict[str, list[int]] = {}
            for k, e in enumerate(self.edits):
                groups.setdefault(e.signal, []).append(k)
            for name, ks in groups.items():
                self._attach(scope, self.catalog[name], ks)
            scope.before_forward(self.model, lambda module, args: self._offsets.clear())
        except BaseException:
            scope.close()
            raise
        self._scope = scope
        self.applied = [0] * len(self.edits)
        return self

    def __exit__(self, *exc) -> bool:
        scope, self._scope = self._scope, None
        if scope is not None:
            scope.close()
        return False

    def _apply(self, ks: list[int], series: Tensor, positions: Sequence[int]) -> Tensor | None:
        changed = None
        for k in ks:
            result = self.edits[k].apply(series if changed is None else changed, positions)
            if result is not None:
                changed = result
                self.applied[k] += 1
        return changed

    def _attach(self, scope: HookScope, info: SignalInfo, ks: list[int]) -> None:
        if info.kind == "rnn":
            def edit_step(value: Tensor, step: int) -> Tensor | None:
                result = self._apply(ks, value[:, None, :], [step])
                return None if result is None else result[:, 0, :]

            where = f"{type(info.module).__name__} at {info.path or 'the model'!r}"
            scope.edit_rnn(info.module, info.local, edit_step, where)
            return
        layout: TapLayout = info.layout or (TOKENS if self.batch_first else TOKENS_TIME_MAJOR)
        what = f"{info.kind} {info.name!r}"

        def write(module, args, kwargs, output):
            value, rebuild = _primary(output, what)
            series = layout.to_series(value, what)
            step = kwargs.get("step", args[1] if info.kind == "tap" and len(args) > 1 else None)
            if step is None:
                start = self._offsets.get(info.name, 0)
                self._offsets[info.name] = start + series.shape[1]
            else:
                start = int(step)
            result = self._apply(ks, series, range(start, start + series.shape[1]))
            return None if result is None else rebuild(layout.from_series(result, like=value))

        scope.write(info.module, write)


def _primary(output, what: str):
    """The tensor to edit in a module's output, and how to put an edited one back in its place."""
    if isinstance(output, Tensor):
        return output, lambda new: new
    if isinstance(output, tuple) and output and isinstance(output[0], Tensor):
        return output[0], lambda new: (new, *output[1:])
    if isinstance(output, PackedSequence) or (isinstance(output, tuple) and output
                                              and isinstance(output[0], PackedSequence)):
        raise ValueError(f"{what} produced a PackedSequence, which cannot be edited; edit the signals of the "
                         f"nn.LSTM / nn.GRU itself (e.g. 'lstm/layer0/h') or a tensor downstream")
    raise ValueError(f"{what} produced a {type(output).__name__}, not a tensor, so it cannot be edited")


def intervene(model: nn.Module, edits: Sequence[Edit] | Edit, *, batch_first: bool = True) -> Intervention:
    """``with intervene(model, edits): model(...)`` runs the model with ``edits`` applied (see :class:`Intervention`)."""
    return Intervention(model, edits, batch_first=batch_first)


__all__ = ["ACTIONS", "Edit", "Intervention", "intervene"]
