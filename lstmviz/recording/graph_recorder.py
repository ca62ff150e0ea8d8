"""``record_graph()``: run a model of the ``graph`` family over a graph dataset into a v3 recording.

One graph per forward pass (``model(model.prepare(item))``, eval mode, no autograd) inside a
:class:`~lstmviz.recording.recorder_context.Recorder`, whose readers see every tap after any intervention.
What the file holds (docs/format.md, "Position geometry"):

- main axis ``positions`` (geometry ``graph``): the positions of the model's level 0, i.e. the input
  nodes in the model's order, with filler positions where the model adds them (ChebNet's binary-tree
  order); per item the level's graph (edges in position order, weights, layout, node names, filler mask);
- ``tokens``: ``item.tokens[source_node]`` (the input node at each position); a filler position holds
  the token ``"<filler>"``, appended to the vocabulary when the model reorders its positions;
- position annotations permuted the same way (a filler position: missing, -1 / NaN), item annotations
  as the dataset gives them, and ``target`` (the split's node targets, or the graph's class) unless the
  dataset has an annotation of that name;
- every pooled level a tap lives on: axis ``level{k}`` (geometry ``graph``, ``pooled_from`` the nearest
  finer recorded axis, with the item's pooling map into it, composed over levels that have no tap);
- taps: ``[rows of the tap's axis, units]`` per item, from the model's own tap declarations
  (``Tap.axis``); nothing engine-specific is known here;
- provenance as :func:`lstmviz.recording.recorder.record` gathers it (dataset, model class, versions,
  signals) plus what the caller gives (engine, config, checkpoint path and sha256).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lstmviz.geometry import AxisGeometry, GraphGeometry
from lstmviz.recording.item_range import select_items
from lstmviz.recording.writer import RecordingWriter
from lstmviz.tasks import Task, ensure_task

from .recorder_context import Recorder
from .recorder_run import _provenance

FILLER_TOKEN = "<filler>"
TARGET = "target"


def _checked_signals(recorder: Recorder) -> dict[str, str]:
    """``{signal: axis}`` of the selected signals: graph taps (on a level of the graph) or ``tokens`` taps on
    an axis of their own (e.g. a spectral engine's ``U^T h``, positions = eigen-index)."""
    axes = {}
    for name, info in recorder.infos.items():
        layout = info.layout
        if info.kind != "tap" or layout is None or layout.geometry not in ("graph", "tokens"):
            what = layout.describe() if layout is not None else "no declared layout"
            raise ValueError(f"signal {name!r} is not a graph tap ({info.kind}, {what}); a graph recording holds "
                             f"the taps of graph engines: leave it out with --signals")
        if layout.geometry == "tokens" and info.module.axis == "positions":
            raise ValueError(f"signal {name!r} is a sequence tap on the main axis, whose positions are the graph's "
                             f"nodes; a graph engine's sequence tap needs an axis of its own (Tap(axis=...))")
        axes[name] = info.module.axis
    if not axes:
        raise ValueError("no signals selected: the model has no taps matching the given names")
    return axes


def _compose(levels, finer: int, coarser: int) -> np.ndarray:
    """The pooling map from level ``finer`` to level ``coarser`` (composed; -1 stays -1)."""
    pmap = np.arange(levels[finer].geometry.num_nodes, dtype=np.int64)
    for k in range(finer + 1, coarser + 1):
        step = levels[k].geometry.pooling_map
        pmap = np.where(pmap >= 0, step[np.maximum(pmap, 0)], -1)
    return pmap


class _Layout:
    """Which levels are recorded, how each axis is declared, and how an item's geometry is written."""

    def __init__(self, levels, tap_axes: dict[str, str], sequence_axes: set[str]):
        index = {level.axis: k for k, level in enumerate(levels)}
        unknown = sorted({a for a in tap_axes.values() if a not in index and a not in sequence_axes})
        if unknown:
            raise ValueError(f"taps live on axis {unknown[0]!r}, which the model's prepared graph does not have "
                             f"(levels: {', '.join(index)})")
        clash = sorted(sequence_axes & set(index))
        if clash:
            raise ValueError(f"a sequence tap lives on axis {clash[0]!r}, which is a level of the graph")
        self.sequence_axes = sorted(sequence_axes)
        self.levels = sorted({0} | {index[a] for a in tap_axes.values() if a in index})
        self.axes = [levels[k].axis for k in self.levels]
        self.reorders = levels[0].source_node is not None

    def declare(self, writer: RecordingWriter) -> None:
        writer.set_geometry("positions", AxisGeometry("graph"))
        for finer_axis, k, axis in zip(self.axes, self.levels[1:], self.axes[1:]):
            writer.add_axis(axis, description=f"pooling level {k} of the model's graph coarsening",
                            geometry=AxisGeometry("graph", pooled_from=finer_axis))
        for axis in self.sequence_axes:
            writer.add_axis(axis, description="positions of the engine's own (not a graph level; see the tap's "
                                              "description)", geometry=AxisGeometry("tokens"))

    def geometry(self, levels) -> dict[str, GraphGeometry]:
        out = {"positions": levels[0].geometry}
        for finer, k in zip(self.levels, self.levels[1:]):
            g = levels[k].geometry
            pmap = _compose(levels, finer, k) if k - finer > 1 else g.pooling_map
            if k - finer > 1:
                g = GraphGeometry.from_edges(g.num_nodes, g.edges, weights=g.weights, coordinates=g.coordinates,
                                             node_names=g.node_names, filler=g.filler, pooling_map=pmap,
                                             finer_nodes=levels[finer].geometry.num_nodes)
            out[levels[k].axis] = g
        return out


def _permute(values: np.ndarray, source: np.ndarray | None, missing) -> np.ndarray:
    """``values`` (one per input node) at the model's positions; ``missing`` at filler positions."""
    if source is None:
        return values
    out = np.full(len(source), missing, dtype=values.dtype)
    real = source >= 0
    out[real] = values[source[real]]
    return out


def _item_positions(item, levels, spec_kinds: dict[str, str], add_target: bool, task: str, filler_id: int):
    """Tokens and position annotations of one item in the model's position order."""
    source = levels[0].source_node
    tokens = np.asarray(item.tokens, dtype=np.int64)
    if source is not None:
        tokens = np.where(source >= 0, tokens[np.maximum(source, 0)], filler_id)
    annotations = {}
    for name, kind in spec_kinds.items():
        if name not in item.annotations:
            continue
        values = np.asarray(item.annotations[name])
        if kind == "categorical":
            annotations[name] = _permute(values.astype(np.int64), source, -1)
        else:
            annotations[name] = _permute(values.astype(np.float64), source, np.nan)
    if add_target and task == "node":
        target = (np.full(len(item), -1, np.int64) if item.node_target is None
                  else np.asarray(item.node_target, dtype=np.int64))
        annotations[TARGET] = _permute(target, source, -1)
    return tokens, annotations


def record_graph(
    model: nn.Module,
    dataset,
    out: str | os.PathLike,
    *,
    signals: list[str] | str | None = None,
    dtype: str = "float32",
    task: Task | None = None,
    provenance: dict | None = None,
    max_items: int | None = None,
    items: tuple[int, int] | None = None,
) -> Path:
    """Record ``signals`` (names or patterns; ``None``: every tap) of graph model ``model`` over every graph
    of ``dataset`` (a :class:`~lstmviz.datasets.graph_base.GraphDataset`) into ``out``; see the module
    docstring. The file appears only when recording succeeded; ``task.cancel()`` stops within one graph
    and leaves no file. ``items=(start, stop)``: only those graphs (of the first ``max_items``). Returns the path."""
    if not callable(getattr(model, "prepare", None)):
        raise ValueError(f"{type(model).__name__} is not a graph model (it has no prepare(item)); record it with "
                         f"lstmviz.recording.recorder.record")
    for attribute in ("task", "class_names", "vocab", "annotation_specs"):
        if not hasattr(dataset, attribute):
            raise ValueError(f"expected a graph dataset (GraphDataset: .task, .class_names, .vocab, "
                             f".annotation_specs), got {type(dataset).__name__}")
    total = len(dataset) if max_items is None else min(len(dataset), int(max_items))
    if total == 0:
        raise ValueError("no items to record: the dataset is empty")
    block = select_items(total, items)
    task = ensure_task(task)
    recorder = Recorder(model, signals)
    tap_axes = _checked_signals(recorder)
    specs = list(dataset.annotation_specs)
    names = {s.name for s in specs}
    add_target = TARGET not in names
    position_kinds = {s.name: s.kind for s in specs if s.level == "position"}
    item_specs = [s for s in specs if s.level == "item"]
    meta = _provenance(model, dataset, recorder.signals, provenance)

    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    writer = None
    try:
        with torch.no_grad(), recorder:
            for i in block:
                task.check()
                item = dataset[i]
                prepared = model.prepare(item)
                recorder.clear()
                model(prepared)
                states = recorder.collect()
                levels = prepared.levels
                if writer is None:
                    sequence_axes = {tap_axes[n] for n, info in recorder.infos.items()
                                     if info.layout.geometry == "tokens"}
                    layout = _Layout(levels, tap_axes, sequence_axes)
                    vocab = list(dataset.vocab) + ([FILLER_TOKEN] if layout.reorders else [])
                    writer = RecordingWriter(out, vocab=vocab, provenance=meta, dtype=dtype)
                    layout.declare(writer)
                    for name, info in recorder.infos.items():
                        writer.add_tap(name, int(states[name].shape[2]), axis=tap_axes[name], layer=info.layer,
                                       signal=info.signal, description=info.description)
                    for spec in specs:
                        writer.add_annotation(spec.name, kind=spec.kind, level=spec.level,
                                              labels=None if spec.labels is None else list(spec.labels),
                                              description=spec.description)
                    if add_target:
                        writer.add_annotation(
                            TARGET, kind="categorical", level="position" if dataset.task == "node" else "item",
                            labels=list(dataset.class_names),
                            description=f"the {dataset.split} split's target class "
                                        f"({'of each node; missing: no target' if dataset.task == 'node' else 'of the graph'})")
                    filler_id = len(dataset.vocab)
                rows = {level.axis: level.geometry.num_nodes for level in levels}
                arrays = {}
                for name, value in states.items():
                    expected = rows.get(tap_axes[name], value.shape[1])  # a sequence axis: any length >= 1
                    if value.shape[0] != 1 or value.shape[1] != expected or expected < 1:
                        raise ValueError(f"signal {name!r} gave shape {list(value.shape)} for graph {i}; its axis "
                                         f"{tap_axes[name]!r} has {expected} positions ([1, {expected}, units])")
                    array = value[0]
                    arrays[name] = (array if array.dtype in (torch.float32, torch.float64, torch.float16)
                                    else array.float()).cpu().numpy()
                tokens, annotations = _item_positions(item, levels, position_kinds, add_target, dataset.task,
                                                      filler_id)
                item_values = {s.name: item.item_annotations.get(s.name) for s in item_specs}
                if add_target and dataset.task == "graph":
                    item_values[TARGET] = -1 if item.graph_target is None else int(item.graph_target)
                writer.append_item(tokens, arrays, annotations or None, item_values or None,
                                   geometry=layout.geometry(levels))
                task.progress(i + 1 - block.start, len(block), "recording")
        return writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        for module, training in modes:
            module.training = training


def estimate_graph_bytes(model: nn.Module, dataset, *, signals=None, dtype: str = "float32",
                         max_items: int | None = None) -> int:
    """About how many bytes the states of :func:`record_graph` take: the first graph's bytes per input node
    times the nodes of every recorded graph."""
    total = len(dataset) if max_items is None else min(len(dataset), int(max_items))
    if total == 0:
        return 0
    recorder = Recorder(model, signals)
    _checked_signals(recorder)
    first = dataset[0]
    was = model.training
    model.eval()
    try:
        with torch.no_grad(), recorder:
            model(model.prepare(first))
            states = recorder.collect()
    finally:
        model.train(was)
    itemsize = np.dtype(dtype).itemsize
    per_node = sum(v.shape[1] * v.shape[2] for v in states.values()) * itemsize / max(len(first), 1)
    nodes = sum(len(dataset[i]) for i in range(total))
    return int(per_node * nodes)


__all__ = ["FILLER_TOKEN", "TARGET", "estimate_graph_bytes", "record_graph"]
