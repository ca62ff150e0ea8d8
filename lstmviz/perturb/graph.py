r"""Perturbing a graph model: edit node states, re-run, and see how far the change spreads, hop by hop.

A graph model (family ``graph``, :mod:`lstmviz.engines.families.graph.api`) runs on one prepared graph.
A clean run and an edited run (the edits go through :func:`lstmviz.hooks.intervene`, at chosen
positions = nodes of the edited tap's level, and units) are compared per tap :math:`s` and position
:math:`v`:

.. math::
    \Delta^{(s)}_{v,u} = x^{(s),\mathrm{edited}}_{v,u} - x^{(s),\mathrm{clean}}_{v,u}, \qquad
    \lVert\Delta^{(s)}_v\rVert = \Big(\sum_u (\Delta^{(s)}_{v,u})^2\Big)^{1/2}

and each position gets its hop distance :math:`d(v)` from the edited nodes on the graph of its level
(for a coarser level: from the coarse nodes the edited nodes pool into; ``-1``: unreachable, or a level
not coarser than the edited one). :meth:`GraphEffect.hop_profile` gives, per hop distance, the largest
:math:`\lVert\Delta_v\rVert` and how many positions changed — the spread the window draws. The *reach*
of a tap is the largest hop distance at which some position changed by more than the tolerance.

A polynomial spectral filter of degree :math:`K-1` (ChebNet) mixes only nodes at most :math:`K-1` hops
apart, so an edit of layer :math:`l`'s output reaches at most :math:`(m-l)(K-1)` hops at layer
:math:`m` (without pooling in between). An engine that knows such a bound states it with
``model.hop_bound(edited_tap, tap) -> int | None``; :attr:`GraphEffect.bounds` holds it and the tests
check the measured reach never exceeds it.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from .errors import PerturbError


def _tap_axes(model) -> dict[str, str]:
    from lstmviz.hooks import find_taps

    return {name: tap.axis for name, tap in find_taps(model).items()}


def _level(prepared, axis: str):
    for level in prepared.levels:
        if level.axis == axis:
            return level
    return None


def graph_forward(model, prepared, edits: Sequence[Any] = (), taps: Sequence[str] = ()
                  ) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """The model's logits and the states ``{tap: [rows, units]}`` (float32) of ``taps`` for one prepared
    graph, with the hook-layer ``edits`` (:class:`lstmviz.hooks.Edit`) applied."""
    from lstmviz.hooks import intervene
    from lstmviz.recording.recorder import Recorder

    taps = list(taps)
    with torch.no_grad(), ExitStack() as stack:
        try:
            if edits:
                stack.enter_context(intervene(model, list(edits)))
            recorder = stack.enter_context(Recorder(model, taps)) if taps else None
            logits = model(prepared)
            values = recorder.collect() if recorder is not None else {}
        except ValueError as e:  # an edit or a signal the model cannot take, in the hook layer's words
            raise PerturbError(str(e)) from None
    states = {}
    for name, value in values.items():
        if value.shape[0] != 1:
            raise PerturbError(f"tap {name!r} gave {value.shape[0]} rows of states per graph; a graph model's "
                               "taps hold one graph ([1, nodes, units])")
        states[name] = value[0].float().numpy()
    return logits.detach().float(), states


def _pooled(positions: np.ndarray, prepared, start_axis: str, axis: str) -> np.ndarray | None:
    """The positions on ``axis`` that ``positions`` of ``start_axis`` pool into (None: not coarser)."""
    chain = [level.axis for level in prepared.levels]
    if start_axis not in chain or axis not in chain or chain.index(axis) < chain.index(start_axis):
        return None
    current = np.asarray(positions, dtype=np.int64)
    for level in prepared.levels[chain.index(start_axis) + 1: chain.index(axis) + 1]:
        pooling = level.geometry.pooling_map
        if pooling is None:
            return None
        current = np.unique(pooling[current])
        current = current[current >= 0]
    return current


def hops_on_level(prepared, start_axis: str, positions: Sequence[int], axis: str) -> np.ndarray | None:
    """Hop distance of every position of level ``axis`` from the images of ``positions`` (of level
    ``start_axis``); ``None`` when ``axis`` is not ``start_axis`` or a level coarser than it."""
    level = _level(prepared, axis)
    if level is None:
        return None
    starts = _pooled(np.asarray(positions, dtype=np.int64), prepared, start_axis, axis)
    if starts is None:
        return None
    if len(starts) == 0:
        return np.full(level.geometry.num_nodes, -1, dtype=np.int64)
    return level.geometry.hops_from(starts)


@dataclass
class GraphEffect:
    """What an edit did to every tap of one graph (see the module docstring)."""

    edited_axis: str
    edited_positions: np.ndarray  # on edited_axis
    clean: dict[str, np.ndarray]  # tap -> [rows, units]
    edited: dict[str, np.ndarray]
    axes: dict[str, str]  # tap -> its axis
    hops: dict[str, np.ndarray | None]  # tap -> [rows] hop distance from the edit (-1 unreachable), None: n/a
    filler: dict[str, np.ndarray | None]  # tap -> [rows] bool, positions that are no node
    logits_clean: np.ndarray
    logits_edited: np.ndarray
    tolerance: float = 0.0
    bounds: dict[str, int | None] = field(default_factory=dict)

    def delta(self, tap: str) -> np.ndarray:
        return self.edited[tap] - self.clean[tap]

    def delta_norm(self, tap: str) -> np.ndarray:
        return np.sqrt(np.square(self.delta(tap).astype(np.float64)).sum(axis=1))

    def changed(self, tap: str) -> np.ndarray:
        """bool [rows]: positions whose state changed by more than the tolerance (filler excluded)."""
        changed = self.delta_norm(tap) > self.tolerance
        fill = self.filler.get(tap)
        return changed & ~fill if fill is not None else changed

    def reach(self, tap: str) -> int | None:
        """The largest hop distance at which ``tap`` changed (-1: nothing changed; None: no hop distances)."""
        hops = self.hops.get(tap)
        if hops is None:
            return None
        changed = self.changed(tap)
        if not changed.any():
            return -1
        if (hops[changed] < 0).any():  # a change where the edit cannot reach along edges (e.g. a global readout)
            return int(np.iinfo(np.int64).max)
        return int(hops[changed].max())

    def hop_profile(self, tap: str) -> dict[str, np.ndarray]:
        """Per hop distance ``0 .. max``: positions, how many changed, the largest and the mean ‖Δ‖."""
        hops = self.hops.get(tap)
        if hops is None:
            raise PerturbError(f"tap {tap!r} is not on the edited level or a coarser one, so it has no hop distances")
        keep = hops >= 0
        fill = self.filler.get(tap)
        if fill is not None:
            keep &= ~fill
        norm = self.delta_norm(tap)
        top = int(hops[keep].max()) if keep.any() else -1
        distance = np.arange(top + 1)
        count = np.array([int(((hops == d) & keep).sum()) for d in distance])
        changed = np.array([int(((hops == d) & keep & (norm > self.tolerance)).sum()) for d in distance])
        largest = np.array([float(norm[(hops == d) & keep].max()) if c else 0.0 for d, c in zip(distance, count)])
        mean = np.array([float(norm[(hops == d) & keep].mean()) if c else 0.0 for d, c in zip(distance, count)])
        return {"hops": distance, "positions": count, "changed": changed, "max_norm": largest, "mean_norm": mean}

    def output_change(self) -> np.ndarray:
        """‖Δ logits‖ per output row (per input node for the node task; one row for the graph task)."""
        d = self.logits_edited.astype(np.float64) - self.logits_clean.astype(np.float64)
        return np.sqrt(np.square(d).sum(axis=-1)).reshape(-1)


def perturb_graph(model, prepared, edits: Sequence[Any], *, taps: Sequence[str] | None = None,
                  tolerance: float = 0.0) -> GraphEffect:
    """Run ``prepared`` clean and with ``edits`` (:class:`lstmviz.hooks.Edit`, all on taps of one level, with
    explicit positions) and compare every tap in ``taps`` (default: every tap of the model)."""
    from lstmviz.hooks import Edit

    edits = list(edits)
    if not edits:
        raise PerturbError("no edit given: choose the nodes and units to change")
    axes = _tap_axes(model)
    for e in edits:
        if not isinstance(e, Edit):
            raise PerturbError(f"expected edits as lstmviz.hooks.Edit, got {type(e).__name__}")
        if e.signal not in axes:
            raise PerturbError(f"the model has no tap {e.signal!r}; it has {', '.join(axes)}")
        if e.positions is None:
            raise PerturbError(f"the edit of {e.signal!r} names no nodes; choose the nodes to change")
    edited_axes = {axes[e.signal] for e in edits}
    if len(edited_axes) != 1:
        raise PerturbError("the edits change taps of different levels (" + ", ".join(sorted(edited_axes))
                           + "); edit one level at a time so hop distances have one origin")
    edited_axis = edited_axes.pop()
    level = _level(prepared, edited_axis)
    if level is None:
        raise PerturbError(f"the edited tap's positions (axis {edited_axis!r}) are no level of this graph")
    positions = np.unique(np.concatenate([np.asarray(e.positions, dtype=np.int64) for e in edits]))
    if positions.max() >= level.geometry.num_nodes:
        raise PerturbError(f"node {int(positions.max())} does not exist on {edited_axis!r}; the graph has "
                           f"{level.geometry.num_nodes} positions there")
    if taps is None:
        taps = list(axes)
    unknown = [t for t in taps if t not in axes]
    if unknown:
        raise PerturbError(f"the model has no tap {', '.join(map(repr, unknown))}; it has {', '.join(axes)}")
    logits_clean, clean = graph_forward(model, prepared, (), taps)
    logits_edited, edited = graph_forward(model, prepared, edits, taps)
    hops, filler, bounds = {}, {}, {}
    hop_bound = getattr(model, "hop_bound", None)
    edited_tap = edits[0].signal
    for tap in taps:
        hops[tap] = hops_on_level(prepared, edited_axis, positions, axes[tap])
        tap_level = _level(prepared, axes[tap])
        filler[tap] = None if tap_level is None else tap_level.geometry.filler
        bounds[tap] = hop_bound(edited_tap, tap) if callable(hop_bound) else None
    return GraphEffect(edited_axis, positions, clean, edited, {t: axes[t] for t in taps}, hops, filler,
                       logits_clean.numpy(), logits_edited.numpy(), float(tolerance), bounds)


__all__ = ["GraphEffect", "graph_forward", "hops_on_level", "perturb_graph"]
