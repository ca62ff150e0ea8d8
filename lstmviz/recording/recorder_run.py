"""``record()``: run a model over a dataset in batches and stream the selected signals into a file.

Per batch: pad the items, run the model (eval mode, no autograd) inside a :class:`Recorder`, check
that every signal has one ``[units]`` row per token, cut the padding off, and append each item to a
:class:`~lstmviz.recording.writer.RecordingWriter` in the data's item order. Only one batch of states
is in memory at a time; the writer streams to a temporary file that becomes the output on success and
is removed on any error or cancellation.
"""

from __future__ import annotations

import os
import platform
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from lstmviz.recording.writer import RecordingWriter
from lstmviz.tasks import Task, TqdmTask, ensure_task

from .recorder_context import Recorder
from .recorder_data import DataSource, Item, pad_batch

ForwardFn = Callable[[nn.Module, Tensor, Tensor], Any]


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
            of module outputs recorded by module path.
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

    Returns the path of the written file.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if vocab is None and hasattr(data, "vocab"):
        vocab = list(data.vocab)
    source = DataSource(data, max_items, vocab_size=len(vocab) if vocab else None)
    _check_device(model, device)
    recorder = Recorder(model, signals, batch_first=batch_first, accumulate=True)
    if forward is None and batch_size > 1:
        _warn_if_padding_is_read_backwards(recorder)
    meta = _provenance(model, data if source.dataset else None, recorder.signals, provenance)

    bar = TqdmTask("recording", unit="item", disable=False) if _want_bar(progress, task) else None
    task = ensure_task(task)
    modes = [(m, m.training) for m in model.modules()]
    writer = RecordingWriter(out, vocab=vocab, provenance=meta, dtype=dtype)
    try:
        model.eval()
        task.progress(0, source.total, "recording")
        done = 0
        declared = False
        with torch.no_grad(), recorder:
            for batch in source.batches(batch_size):
                task.check()
                states = _run_batch(model, recorder, forward, batch, pad_id, batch_first, device)
                if not declared:
                    _declare(writer, recorder, states, source)
                    declared = True
                _append(writer, batch, states)
                done += len(batch)
                if bar is not None:
                    bar.progress(done, source.total)
                task.progress(done, source.total, "recording")
        if done == 0:
            raise ValueError("no items to record: data is empty")
        return writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        for module, training in modes:
            module.training = training
        if bar is not None:
            bar.close()


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


def _provenance(model: nn.Module, dataset, signals: list[str], given: dict | None) -> dict:
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
    for key, value in (given or {}).items():
        if key == "versions" and isinstance(value, dict):
            meta["versions"] = {**meta["versions"], **value}
        else:
            meta[key] = value
    return meta
