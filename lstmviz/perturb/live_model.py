"""The live model of a recording: the network that made it, rebuilt so it can be run again on its items.

Two ways to get one:

- :func:`load_live_model` rebuilds the model of a recording made by ``lstmviz record`` from the
  checkpoint named in its provenance (:func:`find_checkpoint` says where it looks and checks the file
  is the one the recording was made with);
- :func:`live_model` wraps a user's own module (a script that called ``lstmviz.record(model, ...)``).

A :class:`LiveModel` runs ``forward(model, tokens [B, T]) -> logits [B, T, V]``; the default forward
takes ``model(tokens)`` or its first element when the model returns a tuple (``(logits, state)``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from .errors import PerturbError

Forward = Callable[[nn.Module, Tensor], Tensor]


LOCATE_HINT = "locate it (File > Locate checkpoint, or --checkpoint PATH)"
"""How a checkpoint problem's sentence ends: where the user points to the file."""


class CheckpointProblem(PerturbError):
    """The recording's checkpoint cannot be used: ``kind`` is ``"missing"``, ``"mismatch"`` or ``"unloadable"``;
    ``path`` the file concerned (None when the recording names none)."""

    def __init__(self, kind: str, path: Path | None, message: str):
        super().__init__(message)
        self.kind = kind
        self.path = path


def default_forward(model: nn.Module, tokens: Tensor):
    out = model(tokens)
    if isinstance(out, (tuple, list)) and out:
        out = out[0]
    return out


@dataclass
class LiveModel:
    """A model that can be re-run on a recording's items (in eval mode, without autograd)."""

    model: nn.Module
    vocab: list[str] | None
    source: str  # "checkpoint <path>" or "script"
    checkpoint: Path | None
    batch_first: bool = True
    forward: Forward | None = None
    meta: dict = field(default_factory=dict)  # the checkpoint's meta (load_checkpoint), {} for a script model
    clean_cache: dict = field(default_factory=dict, repr=False, compare=False)  # see lstmviz.perturb.run

    def weights_stamp(self) -> tuple:
        """Changes whenever a parameter is replaced or modified in place (torch's version counters)."""
        return tuple((p.data_ptr(), p._version) for p in self.model.parameters())

    def __post_init__(self) -> None:
        self.model.eval()

    def signals(self) -> list[str]:
        """The names of the signals the model exposes (taps, nn.LSTM/nn.GRU signals, module outputs)."""
        from lstmviz.hooks import list_signals

        return list_signals(self.model)

    @property
    def device(self) -> torch.device:
        for p in self.model.parameters():
            return p.device
        return torch.device("cpu")

    def raw_output(self, tokens: Tensor):
        """What the forward returns for ``tokens`` ``[B, T]`` (batch first; transposed here otherwise)."""
        tokens = tokens.to(self.device)
        if not self.batch_first:
            tokens = tokens.t().contiguous()
        out = (self.forward or default_forward)(self.model, tokens)
        if isinstance(out, (tuple, list)) and out:  # (logits, state) and the like
            out = out[0]
        if isinstance(out, Tensor) and not self.batch_first and out.dim() == 3:
            out = out.transpose(0, 1)
        return out

    def logits(self, tokens: Tensor) -> Tensor:
        """Logits ``[B, T, V]`` for token ids ``tokens`` ``[B, T]``; ``PerturbError`` when the output is not that."""
        with torch.no_grad():
            out = self.raw_output(tokens)
        return check_logits(out, tokens.shape, self.vocab)


def check_logits(out, shape, vocab) -> Tensor:
    batch, steps = int(shape[0]), int(shape[1])
    if not isinstance(out, Tensor) or out.dim() != 3 or out.shape[0] != batch or out.shape[1] != steps \
            or not out.is_floating_point():
        got = f"a tensor of shape {list(out.shape)}" if isinstance(out, Tensor) else f"a {type(out).__name__}"
        raise PerturbError(
            f"the model's output has no logits: expected a float tensor [batch={batch}, time={steps}, vocabulary] "
            f"(or a tuple starting with one), got {got}; pass forward=(model, tokens) -> logits to live_model()")
    if vocab and out.shape[2] != len(vocab):
        raise PerturbError(f"the model's output has no logits over the vocabulary: it has {out.shape[2]} values per "
                           f"position, the recording's vocabulary {len(vocab)} tokens")
    return out


def live_model(model: nn.Module, *, vocab: list[str] | None = None, forward: Forward | None = None,
               batch_first: bool = True) -> LiveModel:
    """Wrap a user's own module (the one a script recorded) so it can be re-run on the recording's items.

    ``forward(model, tokens [B, T]) -> logits [B, T, V]`` when ``model(tokens)`` (or its first element)
    is not the logits; ``batch_first=False`` when the model takes ``[T, B]``.
    """
    if not isinstance(model, nn.Module):
        raise PerturbError(f"live_model() needs a torch nn.Module, got a {type(model).__name__}")
    if forward is not None and not callable(forward):
        raise PerturbError(f"forward must be a function (model, tokens) -> logits, got a {type(forward).__name__}")
    return LiveModel(model, None if vocab is None else list(vocab), "script", None, batch_first, forward)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _usable_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def find_checkpoint(recording, given: Path | str | None = None) -> Path:
    """The checkpoint file of ``recording``: ``given``, else the provenance's ``checkpoint``, else a file of
    the same name beside the recording file. Checked against the provenance's ``sha256`` when it has one.

    Raises :class:`CheckpointProblem` (``missing`` / ``mismatch``) with the sentence to show.
    """
    provenance = recording.provenance or {}
    stored = provenance.get("checkpoint") or None
    expected = provenance.get("sha256") or None
    locate = LOCATE_HINT
    if given is not None:
        path = Path(os.fspath(given)).expanduser()
        if not _usable_file(path):
            raise CheckpointProblem("missing", path, f"the checkpoint {path} was not found (or is not a file); "
                                                     f"{locate}")
        candidates = [path]
    else:
        if not stored:
            raise CheckpointProblem(
                "missing", None,
                f"the recording {recording.path.name} names no checkpoint (it was recorded from a script or from an "
                f"untrained model); {locate}, or use lstmviz.perturb.live_model(model) from the script")
        stored_path = Path(str(stored))
        beside = Path(recording.path).resolve().parent / stored_path.name
        candidates = [p for p in dict.fromkeys([stored_path, beside]) if _usable_file(p)]
        if not candidates:
            raise CheckpointProblem("missing", stored_path,
                                    f"the recording's checkpoint {stored_path} was not found, nor {beside.name} beside "
                                    f"the recording; {locate}")
    mismatch = None
    for path in candidates:
        if not expected:
            return path
        try:
            actual = file_sha256(path)
        except OSError as e:
            raise CheckpointProblem("unloadable", path, f"the checkpoint {path} cannot be read ({e.strerror or e}); "
                                                        f"{locate}") from None
        if actual == expected:
            return path
        mismatch = mismatch or (path, actual)
    path, actual = mismatch
    raise CheckpointProblem("mismatch", path,
                            f"the checkpoint {path} has sha256 {actual[:12]}..., the recording was made with "
                            f"{expected[:12]}...; it is another model, so {locate}")


def load_checkpoint_model(recording, checkpoint: Path | str | None = None):
    """``(model, meta, path)``: the checkpoint of ``recording`` (:func:`find_checkpoint`) loaded, in eval
    mode; :class:`CheckpointProblem` (``unloadable``) when it does not load. Shared by the live sequence,
    graph and image models."""
    from lstmviz.engines.checkpoint import CheckpointError, load_checkpoint

    path = find_checkpoint(recording, checkpoint)
    try:
        model, meta = load_checkpoint(path)
    except CheckpointError as e:
        raise CheckpointProblem("unloadable", path, f"the checkpoint does not load: {e}") from None
    model.eval()
    return model, meta, path


def recording_dataset(recording, what: str = "items", hint: str = ""):
    """The dataset the recording's provenance names (``dataset``, ``split``, ``dataset_options``), rebuilt
    (the registered datasets are deterministic); :class:`PerturbError` when it names none or fails."""
    from lstmviz.datasets.registry import load_dataset

    provenance = recording.provenance or {}
    name, split = provenance.get("dataset"), provenance.get("split")
    if not isinstance(name, str) or not name:
        raise PerturbError(f"the recording {Path(recording.path).name} names no registered dataset, so its {what} "
                           f"cannot be rebuilt{hint}")
    options = provenance.get("dataset_options") or {}
    try:
        return load_dataset(name, split or "train", **options)
    except Exception as e:  # noqa: BLE001 - any dataset problem is stated, the recording is still viewable
        raise PerturbError(f"the recording's dataset {name!r} ({split}) cannot be rebuilt: {e}") from None


def load_live_model(recording, checkpoint: Path | str | None = None) -> LiveModel:
    """Rebuild the model that made ``recording`` from its checkpoint (:func:`find_checkpoint`).

    Raises :class:`CheckpointProblem` when the checkpoint is missing, another model (sha256 or vocabulary)
    or does not load.
    """
    model, meta, path = load_checkpoint_model(recording, checkpoint)
    vocab = list(meta.get("vocab") or [])
    if recording.vocab and vocab and list(recording.vocab) != vocab:
        raise CheckpointProblem("mismatch", path,
                                f"the checkpoint {path} has another vocabulary ({len(vocab)} tokens) than the recording "
                                f"({len(recording.vocab)} tokens); it is another model")
    return LiveModel(model, vocab or list(recording.vocab), f"checkpoint {path}", path, True, None, meta)


__all__ = ["CheckpointProblem", "LiveModel", "find_checkpoint", "live_model", "load_checkpoint_model", "load_live_model",
           "recording_dataset"]
