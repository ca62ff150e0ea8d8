"""``record_images()``: run a model of the ``image`` family over an image dataset into a v3 recording.

Images go through the model in batches (``chunk`` images per forward, eval mode, no autograd; each batch
written with one ``RecordingWriter.append_items``) inside a
:class:`~lstmviz.recording.recorder_context.Recorder`, whose readers see every tap after any intervention.
Batch ``k`` is written on one background thread while batch ``k + 1`` runs through the model (torch
releases the GIL in its kernels, so the two overlap); at most one write is in flight, so at most two
batches' states are in memory, and a write's error is raised in the caller at the next batch.
What the file holds (docs/format.md, "Position geometry"):

- main axis ``positions`` (geometry ``image``: stride 1, receptive field 1, offset 0): the input's pixels
  in raster order; per item an ``ImageGeometry(H, W)``; ``tokens`` and position annotations as the
  dataset gives them, item annotations too, plus ``target`` (the image's class) and ``prediction`` (the
  arg-max of the logits; multilabel: the highest-scoring class) unless the dataset has annotations of
  those names; for a ``segmentation`` dataset (logits ``[B, K, H, W]``) ``target`` and ``prediction`` are
  **position** annotations instead (categorical, labels = the dataset's pixel classes): the mask
  (ignored pixels, -1, stored as missing) and the arg-max over the classes at every pixel; for a
  ``regression`` dataset (output ``[B, Ct, H, W]``) they are **numeric position** annotations: ``target`` and
  ``prediction`` (the target map and the model's value at every pixel) when ``Ct = 1``, else
  ``target_c{k}`` and ``prediction_c{k}`` per target channel ``k`` (annotation names are HDF5 link names
  and cannot hold ``/``, so not ``target/c{k}``), each skipped when the dataset has an annotation of that name;
- the tap ``input`` on ``positions``: the image itself, ``C`` units (the [0, 1] pixel values);
- one axis per entry of ``model.image_axes(H, W)`` that a recorded tap lives on (``image`` geometry with
  the feature map's stride, receptive field and offset and per item its ``ImageGeometry``; ``scalar``:
  one row per image; or ``set``: the member names, and per item the same ``SetGeometry`` ``0 .. M-1``,
  one row per member in order);
- every tap on its axis: ``[H' W', channels]`` per image (IMAGE layout, rows in raster order),
  ``[1, units]`` (SCALAR) or ``[M, units]`` (SET; a member the input lacks keeps its row with the values
  the engine gives it, zeros by convention: the recorder marks nothing);
- for a model with ``item_measures(images, batch)`` and ``item_measure_names()`` (``tagger``: grouping AMI and
  cost per iteration; ``engines/families/image/objective.py``), each measure as a **numeric item** annotation
  (its description from ``item_measure_names``; ``batch`` = ``{"mask": [n, H, W] int64}`` for a segmentation
  dataset, else ``{"mask": None}``), computed by a second forward of the batch after its taps are read (the
  taps' values are the first forward's), each skipped when the dataset has an annotation of that name;
- provenance as :func:`lstmviz.recording.recorder.record` gathers it (dataset and its options, model
  class, versions, signals) plus what the caller gives (engine, config, checkpoint path and sha256), so
  ``lstmviz record`` can rebuild the dataset.

A tap on an axis the model does not describe, or an image of the wrong shape, channels or with non-finite
pixels, is refused in one sentence before anything is written; the file appears only when recording
succeeded.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lstmviz.datasets.image_base import ImageError, check_image, check_mask, check_target_map
from lstmviz.engines.families.image.api import INPUT_AXIS, input_axis
from lstmviz.geometry import ImageGeometry
from lstmviz.recording.item_range import select_items
from lstmviz.recording.writer import RecordingWriter
from lstmviz.tasks import Task, ensure_task

from .recorder_context import Recorder
from .recorder_run import _provenance

TARGET = "target"
PREDICTION = "prediction"
INPUT_TAP = "input"
CHUNK = 256
FLOAT16_OVERFLOW = 65520.0  # the smallest magnitude float16 rounds to inf


class _OneWriteBehind:
    """Runs each submitted write on one worker thread while the caller goes on; at most one in flight.
    ``submit`` and ``finish`` first wait for the previous write and re-raise its error; ``drain`` waits
    without raising (before an abort). ``background=False`` runs each write in the caller."""

    def __init__(self, background: bool):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="lstmviz-image-writer") if background else None
        self._pending: Future | None = None

    def submit(self, fn, *args, **kwargs) -> None:
        self.finish()
        if self._pool is None:
            fn(*args, **kwargs)
        else:
            self._pending = self._pool.submit(fn, *args, **kwargs)

    def finish(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def drain(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.exception()  # waits; the error that matters is the one being raised

    def close(self) -> None:
        self.drain()
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _check_model(model: nn.Module, dataset) -> dict:
    if not callable(getattr(model, "image_axes", None)):
        raise ValueError(f"{type(model).__name__} is not an image model (it has no image_axes(height, width)); "
                         f"record it with lstmviz.recording.recorder.record")
    for attribute in ("channels", "height", "width", "class_names", "vocab", "annotation_specs", "task"):
        if not hasattr(dataset, attribute):
            raise ValueError(f"expected an image dataset (ImageDataset: .channels, .height, .width, .class_names, "
                             f".vocab, .annotation_specs, .task), got {type(dataset).__name__}")
    return model.image_axes(int(dataset.height), int(dataset.width))


def _checked_signals(recorder: Recorder, axes: dict) -> dict[str, str]:
    """``{signal: axis}``: image taps on an image axis of ``model.image_axes``, scalar taps on a scalar one, set
    taps on a set one."""
    out = {}
    for name, info in recorder.infos.items():
        layout = info.layout
        if info.kind != "tap" or layout is None or layout.geometry not in ("image", "scalar", "set"):
            what = layout.describe() if layout is not None else "no declared layout"
            raise ValueError(f"signal {name!r} is not an image, scalar or set tap ({info.kind}, {what}); an image "
                             f"recording holds the taps of image engines: leave it out with --signals")
        axis = info.module.axis
        if name == INPUT_TAP:
            raise ValueError(f"a tap named {INPUT_TAP!r} clashes with the recorded input image; rename the tap")
        if axis == INPUT_AXIS and layout.geometry == "image":
            out[name] = axis
            continue
        entry = axes.get(axis)
        if entry is None:
            raise ValueError(f"tap {name!r} lives on axis {axis!r}, which the model's image_axes() does not describe "
                             f"(axes: {', '.join(axes) or 'none'}); add it there")
        if entry.geometry.kind != layout.geometry:
            raise ValueError(f"tap {name!r} is a {layout.geometry} tap on axis {axis!r}, which image_axes() "
                             f"describes as a {entry.geometry.kind} axis")
        out[name] = axis
    if not out:
        raise ValueError("no signals selected: the model has no taps matching the given names")
    return out


def _axis_description(axis) -> str:
    if axis.geometry.kind == "set":
        return f"one row per member of a set ({', '.join(axis.geometry.members)}) per image"
    return "an image axis of the model (image_axes)" if axis.size is not None else "one row per image"


def _masks(masks, start: int, h: int, w: int, num_classes: int) -> np.ndarray:
    """``[n, H*W]`` int64: the masks of images ``start ..``, each checked (:func:`check_mask`)."""
    return np.stack([check_mask(m, height=h, width=w, num_classes=num_classes, what=f"the mask of image {start + k}")
                     for k, m in enumerate(masks)]).reshape(len(masks), h * w)


def regression_names(ct: int) -> list[tuple[str, str]]:
    """``(target name, prediction name)`` per target channel of a regression recording: ``("target",
    "prediction")`` for one channel, else ``("target_c{k}", "prediction_c{k}")``."""
    if ct == 1:
        return [(TARGET, PREDICTION)]
    return [(f"{TARGET}_c{k}", f"{PREDICTION}_c{k}") for k in range(ct)]


def _target_maps(dataset, start: int, stop: int, ct: int, h: int, w: int) -> np.ndarray:
    """``[n, Ct, H, W]`` float32: the target maps of images ``start .. stop-1``, each checked."""
    stored = getattr(dataset, "target_maps", None)
    maps = stored[start:stop] if stored is not None else [dataset[i].target_map for i in range(start, stop)]
    return np.stack([check_target_map(m, channels=ct, height=h, width=w, what=f"the target map of image {start + k}")
                     for k, m in enumerate(maps)])


def _gather(dataset, start: int, stop: int, c: int, h: int, w: int, segmentation: bool = False):
    """Images ``[n, C, H, W]``, tokens ``[n, HW]``, position annotations ``{name: [n, HW]}``, item annotations
    ``{name: [n]}``, targets ``[n]`` and (segmentation) masks ``[n, HW]`` (else None) of items
    ``start .. stop-1``, each image and mask checked."""
    k = len(dataset.class_names)
    if hasattr(dataset, "images") and hasattr(dataset, "position") and hasattr(dataset, "item"):
        images = dataset.images[start:stop]  # an ArrayImageDataset: no per-image work
        if images.shape[1:] != (c, h, w) or images.dtype != np.float32 or not np.isfinite(images).all():
            for i in range(start, stop):
                check_image(images[i - start], channels=c, height=h, width=w, what=f"image {i}")
        masks = None
        if segmentation:
            stored = getattr(dataset, "masks", None)
            if stored is None:
                raise ImageError(f"the segmentation dataset {getattr(dataset, 'name', '')!r} has no masks")
            masks = _masks(stored[start:stop], start, h, w, k)
        return (images, dataset.tokens[start:stop], {k: v[start:stop] for k, v in dataset.position.items()},
                {k: v[start:stop] for k, v in dataset.item.items()}, dataset.targets[start:stop], masks)
    items = [dataset[i] for i in range(start, stop)]
    images = np.stack([check_image(it.image, channels=c, height=h, width=w, what=f"image {start + k}")
                       for k, it in enumerate(items)])
    tokens = np.stack([np.asarray(it.tokens, np.int64).reshape(-1) for it in items])
    names = {n for it in items for n in it.annotations}
    position = {n: np.stack([np.asarray(it.annotations[n]) for it in items]) for n in names
                if all(n in it.annotations for it in items)}
    item_names = {n for it in items for n in it.item_annotations}
    item = {n: [it.item_annotations.get(n) for it in items] for n in item_names}
    targets = np.array([-1 if it.target is None else int(it.target) for it in items], np.int64)
    masks = _masks([it.mask for it in items], start, h, w, k) if segmentation else None
    return images, tokens, position, item, targets, masks


def _keep_float(name: str, series: torch.Tensor) -> torch.Tensor:
    """What the recorder keeps of a tap's value for float32 storage: a floating-point copy."""
    return series.clone() if series.is_floating_point() else series.float()


def _keep_float16(name: str, series: torch.Tensor) -> torch.Tensor:
    """What the recorder keeps of a tap's value for float16 storage: the values converted to float16 in the
    hook (the conversion is the copy; torch converts ~10x faster than numpy), after refusing a finite value
    that float16 would make inf (|x| >= 65520; inf and NaN pass, as the writer lets them)."""
    if not series.is_floating_point():
        series = series.float()
    if series.dtype == torch.float16:
        return series.clone()
    if series.numel():
        big = max(float(torch.amax(series)), -float(torch.amin(series)))  # two plain reductions, no temporary
        if not big < FLOAT16_OVERFLOW:  # that large, or NaN, which hides the others from max and min
            large = series.abs() >= FLOAT16_OVERFLOW
            finite = series[large & torch.isfinite(series)]
            if finite.numel():
                raise ValueError(f"tap {name!r}: value {float(finite.abs().max()):.4g} overflows float16 (largest "
                                 f"65504); record with dtype float32 (--dtype float32)")
    return series.to(torch.float16)


def record_images(
    model: nn.Module,
    dataset,
    out: str | os.PathLike,
    *,
    signals: list[str] | str | None = None,
    dtype: str = "float32",
    task: Task | None = None,
    provenance: dict | None = None,
    max_items: int | None = None,
    chunk: int = CHUNK,
    background_writes: bool = True,
    items: tuple[int, int] | None = None,
) -> Path:
    """Record ``signals`` (names or patterns; ``None``: every tap) of image model ``model`` over the images of
    ``dataset`` (an :class:`~lstmviz.datasets.image_base.ImageDataset`) into ``out``; see the module docstring.
    ``task.cancel()`` stops within one batch and leaves no file. ``background_writes=False`` writes each
    batch in the caller before the next forward (the same file, byte for byte). ``items=(start, stop)``: only
    those images (of the first ``max_items``). Returns the path."""
    axes = _check_model(model, dataset)
    total = len(dataset) if max_items is None else min(len(dataset), int(max_items))
    if total == 0:
        raise ValueError("no items to record: the dataset is empty")
    block = select_items(total, items)
    task = ensure_task(task)
    half = np.dtype(dtype) == np.float16
    recorder = Recorder(model, signals, keep=_keep_float16 if half else _keep_float)
    tap_axes = _checked_signals(recorder, axes)
    c, h, w = int(dataset.channels), int(dataset.height), int(dataset.width)
    specs = list(dataset.annotation_specs)
    names = {s.name for s in specs}
    extra = [n for n in (TARGET, PREDICTION) if n not in names]
    segmentation = str(dataset.task) == "segmentation"
    regression = str(dataset.task) == "regression"
    n_classes = len(dataset.class_names)
    value_names = [(t, p) for t, p in regression_names(n_classes)] if regression else []
    value_extra = [n for pair in value_names for n in pair if n not in names]
    if regression:
        extra = []
    measure_names = model.item_measure_names() if callable(getattr(model, "item_measures", None)) else {}
    measure_names = {k: v for k, v in measure_names.items() if k not in names}
    position_specs = [s for s in specs if s.level == "position"]
    item_specs = [s for s in specs if s.level == "item"]
    meta = _provenance(model, dataset, [INPUT_TAP, *recorder.signals], provenance)
    try:
        param = next(model.parameters())
        device, fdtype = param.device, (param.dtype if param.is_floating_point() else torch.float32)
    except StopIteration:
        device, fdtype = torch.device("cpu"), torch.float32
    used_axes = sorted({a for a in tap_axes.values() if a != INPUT_AXIS})
    geometry = {INPUT_AXIS: ImageGeometry(h, w)}
    for axis in used_axes:
        if axes[axis].geometry.kind == "set":
            geometry[axis] = axes[axis].set_geometry()  # the same members 0 .. M-1 for every image
        elif axes[axis].size is not None:
            geometry[axis] = axes[axis].size
    rows = {INPUT_AXIS: h * w, **{a: axes[a].num_positions for a in used_axes}}

    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    writer = None
    writes = _OneWriteBehind(background_writes)
    try:
        with torch.no_grad(), recorder:
            for start in range(block.start, block.stop, chunk):
                task.check()
                stop = min(block.stop, start + chunk)
                images, tokens, position, item, targets, masks = _gather(dataset, start, stop, c, h, w, segmentation)
                recorder.clear()
                x = torch.as_tensor(np.array(images, dtype=np.float32), device=device).to(fdtype)
                logits = model(x)
                if segmentation and tuple(logits.shape) != (stop - start, n_classes, h, w):
                    raise ValueError(f"the model returned logits of shape {list(logits.shape)} for a segmentation "
                                     f"dataset; expected per-pixel logits [images, classes, height, width] = "
                                     f"{[stop - start, n_classes, h, w]}")
                if regression and tuple(logits.shape) != (stop - start, n_classes, h, w):
                    raise ValueError(f"the model returned an output of shape {list(logits.shape)} for a regression "
                                     f"dataset; expected per-pixel values [images, target channels, height, width] = "
                                     f"{[stop - start, n_classes, h, w]}")
                states = recorder.collect()
                measures = {}
                if measure_names:  # a second forward; its tap values are never collected (cleared next batch)
                    mask_batch = None if masks is None else torch.as_tensor(masks.reshape(-1, h, w), device=device)
                    measures = model.item_measures(x, {"mask": mask_batch})
                arrays = {}
                for name, value in states.items():
                    n_rows = rows[tap_axes[name]]
                    if value.shape[0] != stop - start or value.shape[1] != n_rows:
                        raise ValueError(f"signal {name!r} gave shape {list(value.shape)} for images {start} .. "
                                         f"{stop - 1}; its axis {tap_axes[name]!r} has {n_rows} positions per image")
                    # a [n, positions, units] view of the kept values (float16 when storing float16): strided
                    # for a channels-first map; the writer's one copy into its buffer lays it out
                    arrays[name] = value.cpu().numpy()
                if regression:
                    predicted = logits.float().cpu().numpy().reshape(stop - start, n_classes, h * w)
                    truth = _target_maps(dataset, start, stop, n_classes, h, w).reshape(stop - start, n_classes,
                                                                                        h * w)
                else:
                    predicted = logits.argmax(dim=1).cpu().numpy()  # [n] (segmentation: [n, H, W])
                pixels = images.reshape(stop - start, c, h * w).transpose(0, 2, 1)
                if writer is None:
                    writer = RecordingWriter(out, vocab=list(dataset.vocab), provenance=meta, dtype=dtype)
                    writer.set_geometry(INPUT_AXIS, input_axis(h, w).geometry)
                    for axis in used_axes:
                        writer.add_axis(axis, geometry=axes[axis].geometry,
                                        description=_axis_description(axes[axis]))
                    writer.add_tap(INPUT_TAP, c, description="the input image: one unit per channel, the [0, 1] "
                                                             "pixel values")
                    for name, info in recorder.infos.items():
                        writer.add_tap(name, int(arrays[name].shape[2]), axis=tap_axes[name], layer=info.layer,
                                       signal=info.signal, description=info.description)
                    for spec in specs:
                        writer.add_annotation(spec.name, kind=spec.kind, level=spec.level,
                                              labels=None if spec.labels is None else list(spec.labels),
                                              description=spec.description)
                    for name, description in measure_names.items():
                        writer.add_annotation(name, kind="numeric", level="item", description=description)
                    for k, (t_name, p_name) in enumerate(value_names):
                        where = "" if n_classes == 1 else f" (target channel {k}, {dataset.class_names[k]})"
                        if t_name in value_extra:
                            writer.add_annotation(t_name, kind="numeric", level="position",
                                                  description=f"the pixel's target value{where} in the "
                                                              f"{dataset.split} split's target map")
                        if p_name in value_extra:
                            writer.add_annotation(p_name, kind="numeric", level="position",
                                                  description=f"the model's predicted value at the pixel{where}")
                    for name in extra:
                        if segmentation:
                            writer.add_annotation(name, kind="categorical", level="position",
                                                  labels=list(dataset.class_names),
                                                  description=f"the pixel's class in the {dataset.split} split's "
                                                  f"mask (missing: ignored pixel)" if name == TARGET else
                                                  "the pixel's class of the largest logit (the predicted mask)")
                            continue
                        writer.add_annotation(name, kind="categorical", level="item", labels=list(dataset.class_names),
                                              description=f"the image's class in the {dataset.split} split"
                                              if name == TARGET else "the class of the largest logit")
                n = stop - start
                item_values = {s.name: item[s.name] if s.name in item else [None] * n for s in item_specs}
                for name in measure_names:
                    item_values[name] = np.asarray(measures[name], dtype=np.float64).reshape(n)
                position_values = {s.name: position[s.name] for s in position_specs}
                placed = position_values if segmentation else item_values
                if TARGET in extra:
                    placed[TARGET] = masks if segmentation else targets
                if PREDICTION in extra:
                    placed[PREDICTION] = predicted.reshape(n, h * w) if segmentation else predicted
                for k, (t_name, p_name) in enumerate(value_names):
                    if t_name in value_extra:
                        position_values[t_name] = truth[:, k]
                    if p_name in value_extra:
                        position_values[p_name] = predicted[:, k]
                writes.submit(writer.append_items, tokens, {INPUT_TAP: pixels, **arrays},
                              position_values, item_values or None, geometry=geometry)
                task.progress(stop - block.start, len(block), "recording")
            writes.finish()
        if writer is None:
            raise ValueError("no items were recorded")
        return writer.close()
    except BaseException:
        writes.drain()
        if writer is not None:
            writer.abort()
        raise
    finally:
        writes.close()
        for module, training in modes:
            module.training = training


def estimate_image_bytes(model: nn.Module, dataset, *, signals=None, dtype: str = "float32",
                         max_items: int | None = None) -> int:
    """About how many bytes the states of :func:`record_images` take: the values per image (every tap's rows
    times units, plus the input) times the recorded images."""
    axes = _check_model(model, dataset)
    total = len(dataset) if max_items is None else min(len(dataset), int(max_items))
    if total == 0:
        return 0
    recorder = Recorder(model, signals)
    _checked_signals(recorder, axes)
    c, h, w = int(dataset.channels), int(dataset.height), int(dataset.width)
    image = check_image(dataset[0].image, channels=c, height=h, width=w, what="image 0")
    try:
        param = next(model.parameters())
        device, fdtype = param.device, (param.dtype if param.is_floating_point() else torch.float32)
    except StopIteration:
        device, fdtype = torch.device("cpu"), torch.float32
    was = model.training
    model.eval()
    try:
        with torch.no_grad(), recorder:
            model(torch.as_tensor(np.array(image[None]), device=device).to(fdtype))
            states = recorder.collect()
    finally:
        model.train(was)
    per_image = sum(v.shape[1] * v.shape[2] for v in states.values()) + c * h * w
    return int(per_image * np.dtype(dtype).itemsize * total)


__all__ = ["INPUT_TAP", "PREDICTION", "TARGET", "ImageError", "estimate_image_bytes", "record_images",
           "regression_names"]
