"""``record_strokes()``: run a model of the ``strokes`` family over a strokes dataset into a recording.

The main axis is the pen points: one position per step ``(Δx, Δy, pen_up)`` of an item, its token ``"·"``
(the pen stays down after the point) or ``"↑"`` (the pen lifts after it). Every tap of the model is per step
(the family's contract), so each is a ``[points, units]`` dataset like a token model's. The dataset's
annotations are copied, and three numeric position annotations are added so that the drawing can be
rebuilt from the file alone: ``dx``, ``dy`` (the step's offset) and ``pen_up`` (0/1); with them
:func:`steps_from_recording` gives an item's steps back (the window's "strokes" view draws them).
Items are run in padded batches (the family's models ignore padding, checked by its contract).

With ``drawing=True`` (the default) the main axis is also declared a ``graph`` axis (docs/format.md): each
item's points are the nodes of a graph whose edges join consecutive points drawn with the pen down and whose
fixed coordinates are the points' absolute positions (the running sum of the offsets). The window's Graph
view then draws the character as its pen trajectory, the points coloured by the selected units (the viewer
of Zhang et al.'s §16 (b): a trajectory overlay coloured by a unit's activation); the unit panes still read
the ``·`` / ``↑`` tokens.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lstmviz.geometry import AxisGeometry, GraphGeometry
from lstmviz.tasks import Task, ensure_task

from .item_range import select_items
from .recorder_context import Recorder
from .recorder_run import _provenance
from .writer import RecordingWriter

STEP_ANNOTATIONS = (("dx", "x offset of the step (units of the resampling spacing)"),
                    ("dy", "y offset of the step (units of the resampling spacing), y up"),
                    ("pen_up", "1 when the pen lifts after this point, else 0"))


def _batch(items, dtype):
    t = max(len(it.steps) for it in items)
    steps = np.zeros((len(items), t, 3), np.float32)
    mask = np.zeros((len(items), t), bool)
    for i, it in enumerate(items):
        steps[i, :len(it.steps)] = it.steps
        mask[i, :len(it.steps)] = True
    classes = np.array([int(it.target) for it in items], np.int64)
    return torch.from_numpy(steps).to(dtype), torch.from_numpy(mask), torch.from_numpy(classes)


def record_strokes(model: nn.Module, dataset, out: str | os.PathLike, *, signals: list[str] | str | None = None,
                   batch_size: int = 32, dtype: str = "float32", task: Task | None = None,
                   provenance: dict | None = None, max_items: int | None = None, drawing: bool = True,
                   items: tuple[int, int] | None = None) -> Path:
    """Record ``signals`` (names or patterns; ``None``: every tap) of strokes model ``model`` over ``dataset``
    into ``out`` (module docstring); ``items=(start, stop)``: only those items (of the first ``max_items``).
    Returns the path."""
    total = len(dataset) if max_items is None else min(len(dataset), int(max_items))
    if total == 0:
        raise ValueError("no items to record: the dataset is empty")
    block = select_items(total, items)
    task = ensure_task(task)
    recorder = Recorder(model, signals, batch_first=True, accumulate=True)
    specs = list(dataset.annotation_specs)
    names = {s.name for s in specs}
    clash = [n for n, _ in STEP_ANNOTATIONS if n in names]
    if clash:
        raise ValueError(f"the dataset already has annotation(s) {clash}, which record_strokes adds")
    meta = _provenance(model, dataset, recorder.signals, provenance)
    param = next(model.parameters())
    writer = RecordingWriter(out, vocab=list(dataset.vocab), provenance=meta, dtype=dtype)
    if drawing:
        writer.set_geometry("positions", AxisGeometry("graph"))
    was = model.training
    model.eval()
    declared = False
    try:
        with torch.no_grad(), recorder:
            for start in range(block.start, block.stop, batch_size):
                task.check()
                items = [dataset[i] for i in range(start, min(block.stop, start + batch_size))]
                steps, mask, classes = _batch(items, param.dtype)
                recorder.clear()
                model(steps, classes, mask)
                states = {k: v.float().numpy() for k, v in recorder.collect().items()}
                if not declared:
                    for name, info in recorder.infos.items():
                        value = states[name]
                        if value.ndim != 3 or value.shape[:2] != steps.shape[:2]:
                            raise ValueError(f"tap {name!r} gave shape {list(value.shape)}; a strokes recording "
                                             f"needs [items, points, units] = [{len(items)}, {steps.shape[1]}, ...]")
                        writer.add_tap(name, int(value.shape[2]), layer=info.layer, signal=info.signal,
                                       description=info.description)
                    for s in specs:
                        writer.add_annotation(s.name, kind=s.kind, level=s.level,
                                              labels=None if s.labels is None else list(s.labels),
                                              description=s.description)
                    for name, text in STEP_ANNOTATIONS:
                        writer.add_annotation(name, kind="numeric", description=text)
                    declared = True
                for b, item in enumerate(items):
                    n = len(item.steps)
                    annotations = dict(item.annotations or {})
                    for k, (name, _) in enumerate(STEP_ANNOTATIONS):
                        annotations[name] = np.asarray(item.steps[:, k], np.float32)
                    writer.append_item(item.tokens, {name: a[b, :n] for name, a in states.items()}, annotations,
                                       item.item_annotations or None,
                                       geometry={"positions": trajectory_graph(item.steps)} if drawing else None)
                task.progress(min(block.stop, start + batch_size) - block.start, len(block), "recording")
        return writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        model.train(was)


def trajectory_graph(steps: np.ndarray) -> GraphGeometry:
    """The pen trajectory as a graph: node t = point t at its absolute position, an edge (t, t+1) when the pen
    stays down after point t."""
    steps = np.asarray(steps, np.float64)
    n = len(steps)
    down = np.flatnonzero(steps[:-1, 2] < 0.5)
    edges = np.stack([down, down + 1], 1) if len(down) else np.zeros((0, 2), np.int64)
    names = [f"{t} {'↑' if steps[t, 2] > 0.5 else '·'}" for t in range(n)]
    return GraphGeometry.from_edges(n, edges, coordinates=np.cumsum(steps[:, :2], 0).astype(np.float32),
                                    node_names=names)


def steps_from_recording(reader, item: int) -> np.ndarray:
    """``[T, 3]`` float32 steps ``(Δx, Δy, pen_up)`` of ``item`` of a strokes recording (its ``dx``, ``dy``,
    ``pen_up`` annotations)."""
    start, stop = reader.item_range(item)
    return np.stack([np.asarray(reader.annotation(name, start, stop), np.float32) for name, _ in STEP_ANNOTATIONS], 1)
