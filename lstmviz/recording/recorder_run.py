"""``record()``: run a model over a dataset in batches and stream the selected signals into a file.

Per batch: pad the items, run the model (eval mode, no autograd) inside a :class:`Recorder`, check
that every signal has one ``[units]`` row per token, cut the padding off, and append each item to a
:class:`~lstmviz.recording.writer.RecordingWriter` in the data's item order. Only one batch of states
is in memory at a time; the writer streams to a temporary file that becomes the output on success and
is removed on any error or cancellation.

With ``checkpoints=[...]`` (several checkpoints of one training run), each checkpoint is loaded into
the model in turn and the model is run over the same items once per checkpoint: first the main
checkpoint (the last in training order), whose states become the recording's main ``/taps`` along
with the tokens and annotations, then every other checkpoint, whose states stream into
``/checkpoints/<name>/taps`` (format v2).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import platform
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lstmviz.recording import format as fmt
from lstmviz.recording.writer import RecordingWriter
from lstmviz.tasks import Task, TqdmTask, ensure_task

from .layout_check import check_layout
from .recorder_context import Recorder
from .recorder_data import DataSource, Item, pad_batch

ForwardFn = Callable[[nn.Module, Tensor, Tensor], Any]


@dataclass(frozen=True)
class CheckpointSource:
    """One checkpoint of a training run, for ``record(..., checkpoints=[...])``.

    Args:
        state: the weights: a ``state_dict``, an ``nn.Module`` (its ``state_dict()``), or a
            zero-argument callable returning either, called when the checkpoint is recorded (so only
            one checkpoint's weights need to be in memory at a time).
        step: the training step (``None`` = unknown; either every checkpoint has one or none does).
        name: its name in the file (a single name without ``/``); default ``step-000200`` from the
            step, else ``checkpoint-<i>`` (``i`` = its position in the given list).
        path, sha256, metrics: the checkpoint file, its hex sha256 and its training metrics, stored
            with the checkpoint's states.
    """

    state: Any
    step: int | None = None
    name: str | None = None
    path: str = ""
    sha256: str = ""
    metrics: dict | None = None


def record(
    model: nn.Module,
    data,
    out: str | os.PathLike,
    *,
    signals: list[str] | str | None = None,
    vocab: list[str] | None = None,
    batch_size: int = 32,
    batch_first: bool = True,
    forward: ForwardFn | None = None,
    dtype: str = "float32",
    device: str | torch.device = "cpu",
    task: Task | None = None,
    progress: bool | None = None,
    provenance: dict | None = None,
    max_items: int | None = None,
    pad_id: int = 0,
    checkpoints: Sequence[CheckpointSource | tuple] | None = None,
    items: tuple[int, int] | None = None,
    distributed: bool = False,
) -> Path:
    """Record ``signals`` of ``model`` over every item of ``data`` into the recording file ``out``.

    Args:
        model: the model; it is run in eval mode under ``torch.no_grad()`` and its train/eval flags are
            restored afterwards. Its parameters must be on ``device``.
        data: a SequenceDataset (its vocabulary, annotations and provenance are copied into the file)
            or an iterable of token-id sequences.
        out: the file to write; it appears only when recording succeeded.
        signals: names or fnmatch patterns from :func:`list_signals`; ``None`` = every tap and RNN signal.
        vocab: token strings by id (default: the dataset's).
        batch_size: items per forward pass.
        batch_first: the model takes ``[B, T]`` token ids (True) or ``[T, B]`` (False); also the layout
            of module outputs recorded by module path. Checked before the first batch on a few of its items
            (:mod:`.layout_check`): when changing one token of one item changes the recorded states of
            other items, ``ValueError`` says whether the model reads the other layout or mixes the items
            of a batch (then pass ``batch_size=1``). Not checked when the first batch has one item.
        forward: ``forward(model, tokens, lengths)`` runs the model, e.g. to pack the batch for a
            bidirectional RNN; ``lengths`` is an int64 CPU tensor ``[B]``. Default ``model(tokens)``.
        dtype: storage dtype in the file, ``"float32"`` or ``"float16"``.
        device: where the tokens are sent.
        task: progress is reported as ``task.progress(items_done, total)``; ``task.cancel()`` stops
            within one batch with :class:`lstmviz.tasks.Cancelled` and leaves no file.
        progress: draw a tqdm bar (default: when stderr is a terminal and no task is given).
        provenance: stored in the file, over what ``record`` gathers (dataset, model class, versions).
        max_items: record only the first ``max_items`` items.
        pad_id: token id used to pad shorter items of a batch (id 0 is ``<pad>`` in built-in vocabularies).
        checkpoints: several checkpoints of one training run of ``model`` to record into one file
            (format v2 ``/checkpoints``): :class:`CheckpointSource` objects or tuples
            ``(step_or_name, state)`` / ``(step_or_name, state, meta)`` where an int is the step, a
            string the name, and ``meta`` a dict with any of ``step``, ``name``, ``path``, ``sha256``,
            ``metrics``. They are ordered by step (the given order among equal steps or without steps);
            each is loaded into ``model`` (``load_state_dict(strict=True)``) and the model is run over
            the same items once per checkpoint, so ``data`` must be readable more than once (a dataset
            or a list, not a generator). The last one is the main checkpoint: its states are the
            recording's main states (``/taps``), and the provenance gets its ``checkpoint`` path,
            ``sha256``, ``checkpoint_step`` and ``train_metrics`` unless ``provenance`` gives them.
            A single checkpoint is recorded like a plain model (no ``/checkpoints`` entries).
            ``model``'s own weights are restored afterwards.
        items: record only the items ``[start, stop)`` (of the first ``max_items``), e.g. one shard.
        distributed: in a script started by ``torchrun``: every rank records its block of the items into
            its shard and rank 0 writes ``out`` as one logical file over the shards (``docs/scale.md``,
            :mod:`lstmviz.recording.distributed`); re-running resumes from the shards that finished.

    Returns the path of the written file.
    """
    if distributed:
        from .distributed import record_distributed_call

        return record_distributed_call(
            record, model, data, out, signals=signals, vocab=vocab, batch_size=batch_size, batch_first=batch_first,
            forward=forward, dtype=dtype, device=device, task=task, progress=progress, provenance=provenance,
            max_items=max_items, pad_id=pad_id, checkpoints=checkpoints, items=items)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if vocab is None and hasattr(data, "vocab"):
        vocab = list(data.vocab)
    source = DataSource(data, max_items, vocab_size=len(vocab) if vocab else None, items=items)
    sources = _checkpoint_sources(checkpoints)
    if len(sources) > 1 and not source.dataset and _one_shot(data):
        raise ValueError(
            f"record(checkpoints=...) runs the model over the data once per checkpoint, so data must be a "
            f"dataset or a list that can be read more than once, got a {type(data).__name__} (an iterator)")
    _check_device(model, device)
    recorder = Recorder(model, signals, batch_first=batch_first, accumulate=True)
    _check_token_geometry(recorder)
    if forward is None and batch_size > 1:
        _warn_if_padding_is_read_backwards(recorder)
    main = sources[-1] if sources else None
    meta = _provenance(model, data if source.dataset else None, recorder.signals, provenance, main)

    bar = TqdmTask("recording", unit="item", disable=False) if _want_bar(progress, task) else None
    task = ensure_task(task)
    modes = [(m, m.training) for m in model.modules()]
    original = {k: v.detach().clone() for k, v in model.state_dict().items()} if sources else None
    writer = RecordingWriter(out, vocab=vocab, provenance=meta, dtype=dtype)
    try:
        for src in sources if len(sources) > 1 else []:
            writer.add_checkpoint(src.name, step=src.step, path=src.path, sha256=src.sha256, metrics=src.metrics)
        model.eval()
        passes = max(1, len(sources))
        total = None if source.total is None else source.total * passes
        progress_state = {"done": 0, "total": total, "bar": bar}
        task.progress(0, total, "recording")
        if main is not None:
            _load_state(model, main, original)

        def run(rec: Recorder, items: list[Item], layout: bool) -> dict[str, Tensor]:
            return _run_batch(model, rec, forward, items, pad_id, layout, device)

        batches = source.batches(batch_size)
        first = next(batches, None)
        if first is not None:  # the layout is checked once, on a few items of the first batch
            check_layout(recorder, run, first, batch_first, device, source.vocab_size)
        batches = itertools.chain([first] if first is not None else [], batches)
        digest = _record_pass(model, recorder, forward, source, batches, writer, None, task, progress_state,
                              pad_id, batch_first, device)
        if writer.n_items == 0:
            raise ValueError("no items to record: data is empty")
        for src in sources[:-1] if len(sources) > 1 else []:
            _load_state(model, src, original)
            again = _record_pass(model, recorder, forward, source, source.batches(batch_size), writer, src.name,
                                 task, progress_state, pad_id, batch_first, device)
            if again != digest:
                raise ValueError(
                    f"the data gave other items on the pass for checkpoint {src.name!r} than on the first pass "
                    f"(record(checkpoints=...) needs data that gives the same items, in the same order, every "
                    f"time it is read)")
        return writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        if original is not None:
            model.load_state_dict(original)
        for module, training in modes:
            module.training = training
        if bar is not None:
            bar.close()


def _record_pass(model, recorder: Recorder, forward, source: DataSource, batches: Iterable[list[Item]],
                 writer: RecordingWriter, checkpoint: str | None, task: Task, progress_state: dict, pad_id,
                 batch_first, device) -> str:
    """Run the model over every batch once; returns a digest of the items' tokens (to compare passes).

    ``checkpoint`` None: the main pass, items are appended with their tokens and annotations;
    otherwise the states go to that (non-main) checkpoint of the writer.
    """
    digest = hashlib.sha256()
    declared = writer.n_items > 0 or checkpoint is not None
    label = "recording" if checkpoint is None else f"recording {checkpoint}"
    with torch.no_grad(), recorder:
        for batch in batches:
            task.check()
            states = _run_batch(model, recorder, forward, batch, pad_id, batch_first, device)
            if not declared:
                _declare(writer, recorder, states, source)
                declared = True
            if checkpoint is None:
                _append(writer, batch, states)
            else:
                _append_checkpoint(writer, checkpoint, batch, states)
            for item in batch:
                digest.update(np.int64(len(item.tokens)).tobytes())
                digest.update(np.ascontiguousarray(item.tokens, dtype=np.int64).tobytes())
            progress_state["done"] += len(batch)
            if progress_state["bar"] is not None:
                progress_state["bar"].progress(progress_state["done"], progress_state["total"])
            task.progress(progress_state["done"], progress_state["total"], label)
    return digest.hexdigest()


def _one_shot(data) -> bool:
    """Whether ``data`` is an iterator, which gives its items only once."""
    try:
        return iter(data) is data
    except TypeError:  # not iterable at all: DataSource says so in words
        return False


def _checkpoint_sources(checkpoints) -> list[CheckpointSource]:
    """The given checkpoints as ``CheckpointSource``s with names, in training order (checked)."""
    if checkpoints is None:
        return []
    if isinstance(checkpoints, (str, bytes, Mapping)) or not isinstance(checkpoints, Sequence):
        raise ValueError(f"checkpoints: expected a list of CheckpointSource or (step_or_name, state[, meta]) "
                         f"tuples, got {type(checkpoints).__name__}")
    out: list[CheckpointSource] = []
    for i, given in enumerate(checkpoints):
        src = _checkpoint_source(given, i)
        if src.step is not None and (isinstance(src.step, bool) or not isinstance(src.step, (int, np.integer))
                                     or src.step < 0):
            raise ValueError(f"checkpoints[{i}]: step must be None or a non-negative integer, got {src.step!r}")
        name = src.name
        if name is None:
            name = fmt.step_checkpoint_name(src.step) if src.step is not None else f"checkpoint-{i}"
        try:
            fmt.check_plain_name(name, "checkpoint")
        except ValueError as e:
            raise ValueError(f"checkpoints[{i}]: {e}") from None
        out.append(CheckpointSource(src.state, None if src.step is None else int(src.step), name,
                                    os.fspath(src.path or ""), str(src.sha256 or ""), dict(src.metrics or {})))
    names = [c.name for c in out]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"checkpoints: names must be unique, got {', '.join(map(repr, duplicates))} more than once")
    with_steps = [c.step is not None for c in out]
    if any(with_steps) and not all(with_steps):
        raise ValueError("checkpoints: either every checkpoint has a step or none does (they are ordered by step)")
    return sorted(out, key=lambda c: c.step or 0)  # stable: equal steps keep the given order


def _checkpoint_source(given, i: int) -> CheckpointSource:
    if isinstance(given, CheckpointSource):
        return given
    if not isinstance(given, tuple) or len(given) not in (2, 3):
        raise ValueError(f"checkpoints[{i}]: expected a CheckpointSource or a tuple (step_or_name, state) or "
                         f"(step_or_name, state, meta), got {type(given).__name__}")
    key, state, extra = given[0], given[1], (given[2] if len(given) == 3 else None) or {}
    if not isinstance(extra, Mapping):
        raise ValueError(f"checkpoints[{i}]: meta must be a dict, got {type(extra).__name__}")
    unknown = sorted(set(extra) - {"step", "name", "path", "sha256", "metrics"})
    if unknown:
        raise ValueError(f"checkpoints[{i}]: unknown meta keys {unknown}; known: step, name, path, sha256, metrics")
    fields = dict(extra)
    if isinstance(key, str):
        fields["name"] = key
    elif isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        fields["step"] = int(key)
    elif key is not None:
        raise ValueError(f"checkpoints[{i}]: the first element must be a step (int) or a name (str), got {key!r}")
    return CheckpointSource(state, **fields)


def _load_state(model: nn.Module, src: CheckpointSource, original: dict) -> None:
    """Load checkpoint ``src``'s weights into ``model`` (strict), or say why they do not fit."""
    state = src.state
    if callable(state) and not isinstance(state, nn.Module):
        state = state()
    if state is model:  # the model itself as one of its checkpoints: the weights it came with
        state = original
    if isinstance(state, nn.Module):
        state = state.state_dict()
    if not isinstance(state, Mapping):
        raise ValueError(f"checkpoint {src.name!r}: expected a state_dict, an nn.Module, or a function returning "
                         f"one, got {type(state).__name__}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        raise ValueError(f"checkpoint {src.name!r} does not fit the model: {' '.join(lines)[:400]}") from None


def _want_bar(progress: bool | None, task: Task | None) -> bool:
    if progress is None:
        return task is None and sys.stderr is not None and sys.stderr.isatty()
    return bool(progress)


def _check_device(model: nn.Module, device) -> None:
    device = torch.device(device)
    for name, p in model.named_parameters():
        if p.device.type != device.type or (device.index is not None and p.device != device):
            raise ValueError(
                f"the model's parameter {name!r} is on {p.device} but record(device={str(device)!r}); move the "
                f"model with model.to({str(device)!r}) or pass device={str(p.device)!r}"
            )
        return


def _check_token_geometry(recorder: Recorder) -> None:
    """``record()`` runs sequence models over token items: refuse a tap that declares other positions (graph
    engines are recorded by :func:`lstmviz.recording.graph_recorder.record_graph`)."""
    for name, info in recorder.infos.items():
        geometry = info.layout.geometry if info.layout is not None else "tokens"
        if geometry != "tokens":
            raise ValueError(
                f"signal {name!r} declares {geometry!r} positions ({info.layout.describe()}); record() runs sequence "
                f"models over token items: record a graph engine with lstmviz.recording.graph_recorder.record_graph "
                f"(lstmviz record does so for the graph family), or leave the signal out with signals=[...]")


def _warn_if_padding_is_read_backwards(recorder: Recorder) -> None:
    for name, info in recorder.catalog.items():
        if info.kind == "rnn" and getattr(info.module, "bidirectional", False):
            warnings.warn(
                f"{type(info.module).__name__} at {info.path or 'the model'!r} is bidirectional and record() was "
                "given no forward=: its reverse direction reads the padding of shorter items in a batch. Pass "
                "forward=(model, tokens, lengths) that packs the batch (nn.utils.rnn.pack_padded_sequence), "
                "or batch_size=1",
                stacklevel=3,
            )
            return


def _run_batch(model, recorder: Recorder, forward, batch: list[Item], pad_id, batch_first, device) -> dict[str, Tensor]:
    """Run one padded batch and return its signals ``[B, T, units]``, checked against the batch's shape."""
    tokens, lengths = pad_batch(batch, pad_id, batch_first, device)
    recorder.clear()
    try:
        if forward is None:
            model(tokens)
        else:
            forward(model, tokens, lengths)
    except (IndexError, RuntimeError) as e:
        if "index out of range" in str(e) or isinstance(e, IndexError):
            raise ValueError(_index_error_text(model, batch, e)) from e
        raise
    try:
        states = recorder.collect()
    except ValueError as e:
        raise ValueError(f"{e} (while recording items {batch[0].index}..{batch[-1].index})") from None
    n_items, steps = len(batch), int(lengths.max())
    layout = "[B, T]" if batch_first else "[T, B]"
    for name, value in states.items():
        if value.shape[0] != n_items or value.shape[1] != steps:
            raise ValueError(
                f"signal {name!r} has shape {list(value.shape)} for a batch of {n_items} items padded to {steps} "
                f"tokens; recording needs [batch={n_items}, time={steps}, units] (one row per token). The model "
                f"was called with token ids {layout} (batch_first={batch_first}); is that the layout it expects?"
            )
    return states


def _index_error_text(model: nn.Module, batch: list[Item], error: Exception) -> str:
    top = max(int(it.tokens.max()) for it in batch)
    worst = max(batch, key=lambda it: int(it.tokens.max()))
    sizes = [f"{path or 'model'!r} has {m.num_embeddings} rows" for path, m in model.named_modules()
             if isinstance(m, nn.Embedding)]
    where = "; ".join(sizes) if sizes else "the model has no nn.Embedding"
    return (
        f"the forward pass failed with an index error ({error}); token ids of items {batch[0].index}.."
        f"{batch[-1].index} go up to {top} (item {worst.index}); {where}. Are the token ids from the "
        "vocabulary the model was trained with?"
    )


def _declare(writer: RecordingWriter, recorder: Recorder, states: dict[str, Tensor], source: DataSource) -> None:
    for name, info in recorder.infos.items():
        writer.add_tap(
            name,
            int(states[name].shape[2]),
            layer=info.layer,
            signal=info.signal,
            description=info.description,
        )
    for spec in source.specs:
        writer.add_annotation(
            spec.name,
            kind=spec.kind,
            level=spec.level,
            labels=None if spec.labels is None else list(spec.labels),
            description=spec.description,
        )


def _to_numpy(value: Tensor) -> np.ndarray:
    """A CPU numpy view of a recorded ``[B, T, units]`` tensor (no copy; the writer copies each item)."""
    if value.dtype not in (torch.float32, torch.float64, torch.float16):
        value = value.float()
    return value.cpu().numpy()


def _append(writer: RecordingWriter, batch: list[Item], states: dict[str, Tensor]) -> None:
    arrays = {name: _to_numpy(value) for name, value in states.items()}
    for b, item in enumerate(batch):
        n = len(item.tokens)
        writer.append_item(
            item.tokens,
            {name: a[b, :n] for name, a in arrays.items()},
            item.annotations or None,
            item.item_annotations or None,
        )


def _append_checkpoint(writer: RecordingWriter, checkpoint: str, batch: list[Item], states: dict[str, Tensor]) -> None:
    arrays = {name: _to_numpy(value) for name, value in states.items()}
    for b, item in enumerate(batch):
        n = len(item.tokens)
        writer.append_checkpoint_item(checkpoint, {name: a[b, :n] for name, a in arrays.items()})


def _provenance(model: nn.Module, dataset, signals: list[str], given: dict | None,
                main: CheckpointSource | None = None) -> dict:
    meta: dict[str, Any] = {}
    if dataset is not None and hasattr(dataset, "provenance"):
        details = dict(dataset.provenance() or {})
        meta["dataset"] = details.pop("name", getattr(dataset, "name", None))
        meta["split"] = details.pop("split", getattr(dataset, "split", None))
        if "options" in details:
            meta["dataset_options"] = details.pop("options")
        meta["dataset_details"] = details
    meta["model"] = f"{type(model).__module__}.{type(model).__qualname__}"
    meta["signals"] = list(signals)
    meta["versions"] = {"torch": torch.__version__, "python": platform.python_version()}
    if main is not None:  # the main states are the main checkpoint's
        if main.path:
            meta["checkpoint"] = main.path
        if main.sha256:
            meta["sha256"] = main.sha256
        if main.step is not None:
            meta["checkpoint_step"] = main.step
        if main.metrics:
            meta["train_metrics"] = main.metrics
    for key, value in (given or {}).items():
        if key == "versions" and isinstance(value, dict):
            meta["versions"] = {**meta["versions"], **value}
        else:
            meta[key] = value
    return meta
