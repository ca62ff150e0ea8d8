"""``record_seq2seq()``: run a model of the ``seq2seq`` family over a pair dataset into a v3 recording.

What the file holds (docs/format.md, "Axes", "Tokens and vocabulary", "Taps"):

- main axis ``positions`` (geometry ``tokens``): the SOURCE tokens of every pair; the encoder's taps
  (``encoder/layer{l}/h`` ...) live on it, and so do the dataset's position annotations;
- axis ``decoder`` (geometry ``tokens``, with its own token ids ``/axes/decoder/tokens``): one row per
  decoder step. Row ``t`` of an item is the step that EMITS its token: the decoder read ``<bos>, y_1 ..
  y_t`` and produced ``y_{t+1}`` (the last row of a terminated output emits ``<eos>``). The tokens are
  the reference (``decode="teacher-forced"``, the default) or the decoded output (``"greedy"``,
  ``"beam"``) followed by ``<eos>`` (none when decoding was cut at ``max_len``);
- the ``decoder/attention`` tap: ``units`` = the longest source of the recording (``S_max``), unit ``j``
  of a row = source position ``j`` of the same item, 0 past the item's length; its tap attribute
  ``units_are = "positions"`` says so (docs/format.md, "Taps");
- item annotations: the dataset's, ``source_length`` (unless the dataset has it), ``exact`` (1 when the
  decoded output equals the reference; teacher-forced: when the arg-max at every step is the reference
  token and then ``<eos>``, i.e. exactly when greedy decoding would reproduce the reference).

How decoder states are obtained: teacher-forced and greedy, by the taps of that one pass (greedy: while
decoding; an item's rows past its ``<eos>`` are dropped). Beam search reorders its hypotheses at every
step, so it runs first without hooks and the model is then run teacher-forced on ``<bos>`` + the best
hypothesis inside the recorder: with input feeding that pass recomputes the states the decoder had
along that hypothesis (same inputs, same ``h~_{t-1}``). Batches of ``batch_size`` consecutive pairs
(the same ``max_len`` for all); eval mode, no autograd. A model with ``reads_reference = True`` (an
actor-critic's critic reads the target, ``seq2seq-ac``) is given the items' references as ``reference=``
in the recorded pass (``model(...)`` or ``model.greedy(...)``), so its critic taps fire along the actor's.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lstmviz.engines.families.seq2seq.api import batch_pairs
from lstmviz.geometry import AxisGeometry
from lstmviz.recording.writer import RecordingWriter
from lstmviz.tasks import Task, ensure_task

from .image_recorder import _keep_float, _keep_float16
from .item_range import select_items
from .recorder_context import Recorder
from .recorder_run import _provenance

DECODER_AXIS = "decoder"
ATTENTION = "decoder/attention"
MODES = ("teacher-forced", "greedy", "beam")
EOS, PAD, BOS = 2, 0, 1


def _tap_axes(recorder: Recorder) -> dict[str, str]:
    axes = {}
    for name, info in recorder.infos.items():
        if info.kind != "tap" or info.layout is None or info.layout.geometry != "tokens":
            raise ValueError(f"signal {name!r} is not a sequence tap; a seq2seq recording holds the taps of the encoder "
                             f"(axis positions) and the decoder (axis {DECODER_AXIS})")
        axis = info.module.axis
        if axis not in ("positions", DECODER_AXIS):
            raise ValueError(f"tap {name!r} lives on axis {axis!r}; a seq2seq recording has the axes positions and "
                             f"{DECODER_AXIS}")
        axes[name] = axis
    if not axes:
        raise ValueError("no signals selected: the model has no taps matching the given names")
    return axes


def record_seq2seq(
    model: nn.Module,
    dataset,
    out: str | os.PathLike,
    *,
    decode: str = "teacher-forced",
    beam: int = 5,
    max_len: int | None = None,
    length_penalty: float = 0.0,
    signals: list[str] | str | None = None,
    batch_size: int = 64,
    dtype: str = "float32",
    task: Task | None = None,
    provenance: dict | None = None,
    max_items: int | None = None,
    items: tuple[int, int] | None = None,
) -> Path:
    """Record ``signals`` (``None``: every tap) of seq2seq model ``model`` over the pairs of ``dataset`` into
    ``out`` (module docstring). ``decode``: ``"teacher-forced"`` (the reference), ``"greedy"`` or ``"beam"``
    (``beam`` hypotheses, ``length_penalty``); ``max_len`` (decoding; default ``2 * S_max + 10``) is the
    same for every item. ``items=(start, stop)``: only those pairs (of the first ``max_items``); the attention
    tap's width and the default ``max_len`` still come from all of them, so every block of a sharded recording
    has the same taps. The file appears only when recording succeeded. Returns the path."""
    if decode not in MODES:
        raise ValueError(f"decode must be one of {', '.join(MODES)}, got {decode!r}")
    for name in ("encode", "decode_step", "greedy", "beam_search"):
        if not callable(getattr(model, name, None)):
            raise ValueError(f"{type(model).__name__} is not a seq2seq model (it has no {name}())")
    total = len(dataset) if max_items is None else min(len(dataset), int(max_items))
    if total == 0:
        raise ValueError("no items to record: the dataset is empty")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    block = select_items(total, items)
    task = ensure_task(task)
    s_max = max(len(dataset[i].tokens) for i in range(total))  # of every item, also when recording a block
    items = [dataset[i] for i in block]
    total = len(items)
    if max_len is None:
        max_len = 2 * s_max + 10
    # the values are converted to the storage dtype (and checked for float16) once per batch, as they are kept
    recorder = Recorder(model, signals, keep=_keep_float16 if np.dtype(dtype) == np.float16 else _keep_float)
    tap_axes = _tap_axes(recorder)
    specs = list(dataset.annotation_specs)
    names = {s.name for s in specs}
    extra_item = [n for n in ("source_length", "exact") if n not in names]
    item_specs = [s for s in specs if s.level == "item"]
    position_specs = [s for s in specs if s.level == "position"]
    meta = _provenance(model, dataset, recorder.signals, provenance)
    meta["decode"] = {"mode": decode, "beam": int(beam) if decode == "beam" else None,
                      "max_len": int(max_len), "length_penalty": float(length_penalty) if decode == "beam" else None}
    device = next(model.parameters()).device

    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    writer = None
    try:
        with torch.no_grad():
            for start in range(0, total, batch_size):
                task.check()
                chunk = items[start : start + batch_size]
                references = [np.asarray(item.target, dtype=np.int64).tolist() for item in chunk]
                sources = [np.asarray(item.tokens, dtype=np.int64) for item in chunk]
                batch = batch_pairs(zip(sources, references)).to(device)
                # a model that reads the reference (a critic, reads_reference = True) gets it as reference=
                extra = {"reference": references} if getattr(model, "reads_reference", False) else {}
                if decode == "greedy":  # the taps fire while decoding: no second pass
                    with recorder:
                        recorder.clear()
                        outputs = model.greedy(batch.src, batch.src_lengths, max_len=max_len, **extra)
                        states = recorder.collect()
                    ended = [len(o) < max_len for o in outputs]
                    feeds = [o if e else o[:-1] for o, e in zip(outputs, ended)]
                else:
                    if decode == "teacher-forced":
                        outputs, ended = references, [True] * len(chunk)
                    else:
                        outputs = model.beam_search(batch.src, batch.src_lengths, beam=beam, max_len=max_len,
                                                    length_penalty=length_penalty)
                        ended = [len(o) < max_len for o in outputs]
                    # the decoder reads <bos> y (terminated: its last step emits <eos>) or <bos> y[:-1] (cut)
                    feeds = [o if e else o[:-1] for o, e in zip(outputs, ended)]
                    if decode != "teacher-forced":
                        batch = batch_pairs(zip(sources, feeds)).to(device)
                    with recorder:
                        logits = model(batch.src, batch.src_lengths, batch.tgt_in, **extra)
                        states = recorder.collect()
                if writer is None:
                    writer = RecordingWriter(out, vocab=list(dataset.vocab), provenance=meta, dtype=dtype)
                    writer.add_axis(DECODER_AXIS, description="decoder steps: row t emits the axis's token t (the "
                                                              f"{'reference' if decode == 'teacher-forced' else decode + ' output'}"
                                                              " then <eos>)", geometry=AxisGeometry("tokens"),
                                    tokens=True)
                    for name, info in recorder.infos.items():
                        units = s_max if name == ATTENTION else int(states[name].shape[2])
                        writer.add_tap(name, units, axis=tap_axes[name], layer=info.layer, signal=info.signal,
                                       description=info.description,
                                       units_are="positions" if name == ATTENTION else "")
                    for spec in specs:
                        writer.add_annotation(spec.name, kind=spec.kind, level=spec.level,
                                              labels=None if spec.labels is None else list(spec.labels),
                                              description=spec.description)
                    if "source_length" in extra_item:
                        writer.add_annotation("source_length", kind="numeric", level="item",
                                              description="number of source tokens")
                    if "exact" in extra_item:
                        writer.add_annotation("exact", kind="categorical", level="item", labels=["no", "yes"],
                                              description="the output equals the reference ("
                                                          + ("teacher-forced: the arg-max is the reference token at "
                                                             "every step, then <eos>" if decode == "teacher-forced"
                                                             else f"{decode} decoding") + ")")
                if decode == "teacher-forced":
                    scores = logits.clone()
                    scores[..., [PAD, BOS]] = float("-inf")
                    hits = (scores.argmax(-1) == batch.tgt_out) | (batch.tgt_out == PAD)
                    exact = hits.all(dim=1).tolist()
                else:
                    exact = [o == r for o, r in zip(outputs, references)]
                src_len = np.array([len(x) for x in sources], dtype=np.int64)
                steps = np.array([len(f) + 1 for f in feeds], dtype=np.int64)
                dec_tokens = np.concatenate([np.asarray(o + ([EOS] if e else []), dtype=np.int64)
                                             for o, e in zip(outputs, ended)])
                # rows of real positions / steps, item after item: boolean masks over [batch, time]
                arrays = {}
                for name, value in states.items():
                    value = value.cpu().numpy()
                    length = steps if tap_axes[name] == DECODER_AXIS else src_len
                    rows = value[np.arange(value.shape[1])[None, :] < length[:, None]]
                    if name == ATTENTION and rows.shape[1] < s_max:  # units: the source positions of the recording
                        rows = np.concatenate([rows, np.zeros((len(rows), s_max - rows.shape[1]), rows.dtype)], 1)
                    arrays[name] = rows
                annotations = {spec.name: np.concatenate([np.asarray(item.annotations[spec.name]) for item in chunk])
                               for spec in position_specs}
                item_values = {spec.name: [item.item_annotations.get(spec.name) for item in chunk]
                               for spec in item_specs}
                if "source_length" in extra_item:
                    item_values["source_length"] = src_len
                if "exact" in extra_item:
                    item_values["exact"] = np.array(exact, dtype=np.int64)
                writer.append_ragged(np.concatenate(sources), src_len, arrays, annotations or None, item_values or None,
                                     axis_lengths={DECODER_AXIS: steps}, axis_tokens={DECODER_AXIS: dec_tokens})
                task.progress(min(start + batch_size, total), total, "recording")
        return writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        for module, training in modes:
            module.training = training


def estimate_seq2seq_bytes(model: nn.Module, dataset, *, signals=None, dtype: str = "float32",
                           max_items: int | None = None) -> int:
    """About how many bytes the states of :func:`record_seq2seq` take: units per source token (encoder taps)
    and per decoder step (decoder taps; the attention tap ``S_max``), with the reference's length + 1 as the
    number of decoder steps (what teacher forcing records; decoded outputs are about as long once trained)."""
    total = len(dataset) if max_items is None else min(len(dataset), int(max_items))
    if total == 0:
        return 0
    items = [dataset[i] for i in range(total)]
    recorder = Recorder(model, signals)
    tap_axes = _tap_axes(recorder)
    first = items[0]
    batch = batch_pairs([(first.tokens, first.target)]).to(next(model.parameters()).device)
    extra = {"reference": [np.asarray(first.target).tolist()]} if getattr(model, "reads_reference", False) else {}
    was = model.training
    model.eval()
    try:
        with torch.no_grad(), recorder:
            model(batch.src, batch.src_lengths, batch.tgt_in, **extra)
            states = recorder.collect()
    finally:
        model.train(was)
    s_max = max(len(item.tokens) for item in items)
    source_rows = sum(len(item.tokens) for item in items)
    decoder_rows = sum(len(item.target) + 1 for item in items)
    per_source = sum(int(v.shape[2]) for n, v in states.items() if tap_axes[n] != DECODER_AXIS)
    per_step = sum(s_max if n == ATTENTION else int(v.shape[2]) for n, v in states.items() if tap_axes[n] == DECODER_AXIS)
    return int((per_source * source_rows + per_step * decoder_rows) * np.dtype(dtype).itemsize)


__all__ = ["DECODER_AXIS", "MODES", "estimate_seq2seq_bytes", "record_seq2seq"]
