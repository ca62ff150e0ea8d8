"""Safe, atomic model checkpoints.

A checkpoint is one ``torch.save`` file holding a dict of tensors and plain values only::

    {"format": "lstmviz-checkpoint", "version": 1,
     "engine": "lstm", "family": "language-model", "config": {...}, "vocab": [...], "dataset": "parens", "step": 2000,
     "metrics": {...}, "train_settings": {...}, "versions": {"torch": "...", "lstmviz": "..."},
     "created": "2026-01-01T12:00:00Z", "run": "9f1c...",
     "state_dict": {name: tensor}}

``family`` (optional) names the engine's family (:mod:`lstmviz.engines.families`), which rebuilds the
model from the checkpoint (``language-model``: from the length of ``vocab``); checkpoints written
before families existed have none and are of the ``language-model`` family.

``run`` (optional, None when unknown) identifies the training run that wrote the checkpoint: every
checkpoint of one ``train()`` call has the same random id, so ``lstmviz record`` can tell several
checkpoints of one run from look-alike checkpoints of another run with the same settings.

It is written to a temporary name beside the final one and renamed over it, so a crash or an error
leaves the previous file untouched. It is read with ``torch.load(weights_only=True)``: a checkpoint
is untrusted input, and a file that would need arbitrary Python objects unpickled is refused.
Every problem is a :class:`CheckpointError` whose message is ``"<path>: <problem>"``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import os
import pickle
import pickletools
import re
import stat
import uuid
import warnings
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lstmviz.errors import ExpectedError
from lstmviz.memory import available_bytes, format_bytes
from lstmviz.regular_files import FileRefused, output_problem, read_regular_file

FORMAT = "lstmviz-checkpoint"
VERSION = 1
DEFAULT_FAMILY = "language-model"
"""The family of a checkpoint that names none (every checkpoint written before families existed)."""
REQUIRED_KEYS = ("format", "version", "engine", "config", "vocab", "dataset", "step", "metrics", "state_dict")


class CheckpointError(ExpectedError):
    """A checkpoint file that cannot be used; ``str(e) == f"{e.path}: {e.problem}"``."""

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


# ---------------------------------------------------------------------------------------------- save


def _plain(value: Any, where: str) -> Any:
    """``value`` as plain Python (dict/list/str/int/float/bool/None) that weights_only can load."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)  # a str subclass (e.g. torch's TorchVersion) would need its class to unpickle
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: keys must be strings, got {key!r}")
            out[key] = _plain(item, f"{where}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / torch scalar
        return _plain(value.item(), where)
    raise TypeError(f"{where}: expected plain values (str, int, float, bool, None, list, dict), "
                    f"got {type(value).__name__}")


def _versions() -> dict:
    try:
        from lstmviz import __version__ as lstmviz_version
    except ImportError:  # pragma: no cover
        lstmviz_version = "unknown"
    return {"torch": str(torch.__version__), "lstmviz": str(lstmviz_version)}


def check_output_path(path) -> None:
    """Refuse (``ValueError``) a checkpoint path that exists and is not a regular file, e.g. ``/dev/null``.

    The finished file is renamed onto the path, which would replace a device or FIFO with a file.
    """
    if Path(path).is_dir():
        raise IsADirectoryError(f"checkpoint path {str(path)!r} is a directory; give a file name")
    problem = output_problem(path)
    if problem is not None:
        raise ValueError(f"checkpoint path {str(path)!r} {problem}")


def atomic_torch_save(obj: Any, path) -> Path:
    """``torch.save(obj)`` to a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temp, "xb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        check_output_path(path)  # again: it may have been replaced by a device while we wrote
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(
    path,
    model: nn.Module,
    *,
    engine: str,
    config: dict,
    vocab: list[str],
    dataset: str | None,
    step: int,
    metrics: dict,
    train_settings: dict | None = None,
    run: str | None = None,
    family: str = DEFAULT_FAMILY,
    data: dict | None = None,
    dataset_options: dict | None = None,
    pruning: dict | None = None,
) -> Path:
    """Write ``model``'s weights and what is needed to rebuild it; atomic (temp file + rename).

    ``config`` must rebuild the model with ``registry.get(engine).build_model(data, **config)``, where
    ``data`` is what ``family`` describes from the checkpoint (``language-model``: ``vocab``).
    ``train_settings`` (optional) records how it was trained, ``run`` (optional) the id of the training
    run it belongs to, ``data`` (optional) the family's data description as a dict (the graph family
    rebuilds its models from it), ``dataset_options`` (optional) the options the training dataset was
    built with (``lstmviz record`` rebuilds the same data from them), ``pruning`` (optional) a pruned
    model's masks and how they were chosen: ``{"info": {plain values}, "masks": {parameter: bool tensor
    (True = kept)}}`` (``engines/seq2seq/prune.py``). Values must be plain (TypeError otherwise).
    """
    state_dict = {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "engine": str(engine),
        "family": str(family),
        "config": _plain(config, "config"),
        "vocab": [str(token) for token in vocab],
        "dataset": None if dataset is None else str(dataset),
        "step": int(step),
        "metrics": _plain(metrics, "metrics"),
        "train_settings": _plain(train_settings or {}, "train_settings"),
        "versions": _versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "run": None if run is None else str(run),
        "state_dict": state_dict,
    }
    if data is not None:
        payload["data"] = _plain(data, "data")
    if dataset_options is not None:
        payload["dataset_options"] = _plain(dataset_options, "dataset_options")
    if pruning is not None:
        params = dict(model.named_parameters())
        masks = {}
        for name, mask in dict(pruning.get("masks") or {}).items():
            if name not in params or tuple(mask.shape) != tuple(params[name].shape):
                raise ValueError(f"pruning mask {name!r}: not a parameter of the model or not of its shape")
            masks[str(name)] = mask.detach().to(torch.bool).cpu().clone()
        payload["pruning"] = {"info": _plain(pruning.get("info") or {}, "pruning info"), "masks": masks}
    return atomic_torch_save(payload, path)


# ---------------------------------------------------------------------------------------------- load

_ALLOWED_GLOBAL_MODULES = ("torch", "collections")


def _pickle_globals(data: bytes) -> list[str]:
    """The ``module.name`` globals a pickle refers to, found by parsing its opcodes (nothing executed)."""
    found: list[str] = []
    strings: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(io.BytesIO(data)):
            if opcode.name in ("GLOBAL", "INST") and isinstance(arg, str):
                found.append(arg.replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
    except Exception:  # damaged stream: report what was found so far
        pass
    return found


def _pickles_in(data: bytes) -> list[bytes]:
    """The pickle streams of a torch file: ``*/data.pkl`` of a zip archive, or the whole legacy file."""
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                return [archive.read(n) for n in archive.namelist() if n.endswith(".pkl")]
        except (zipfile.BadZipFile, OSError, ValueError):
            return []
    return [data]


def _unsafe_globals(data: bytes) -> list[str]:
    names = [g for stream in _pickles_in(data) for g in _pickle_globals(stream)]
    return sorted({g for g in names if g.split(".", 1)[0] not in _ALLOWED_GLOBAL_MODULES})


def _read_payload(path: Path, data: bytes, map_location) -> Any:
    if not data:
        raise CheckpointError(path, "empty file, not a PyTorch checkpoint")
    is_zip = data[:4] == b"PK\x03\x04"
    is_pickle = len(data) > 1 and data[0] == 0x80 and 2 <= data[1] <= 5
    if not (is_zip or is_pickle):
        raise CheckpointError(
            path, f"not a PyTorch checkpoint (neither a torch zip archive nor a pickle; starts with {data[:8]!r})"
        )
    if is_zip:
        _check_archive(path, data)
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error below says it better
            warnings.simplefilter("ignore")
            return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        message = str(exc)
        match = re.search(r"Unsupported global: GLOBAL ([\w.]+)", message)
        unsafe = [match.group(1)] if match else _unsafe_globals(data)
        if unsafe:
            raise CheckpointError(
                path,
                "the file contains Python objects that are not unpickled for safety "
                f"({', '.join(unsafe[:5])}); an lstmviz checkpoint holds only tensors and plain values",
            ) from None
        reason = message.split("WeightsUnpickler error:", 1)[1] if "WeightsUnpickler error:" in message else message
        raise CheckpointError(path, f"not a readable PyTorch checkpoint ({_first_line(reason)}); an lstmviz "
                                    f"checkpoint holds only tensors and plain values") from None
    except Exception as exc:  # zip damage (RuntimeError), truncation (EOFError), odd contents (KeyError) ...
        if "TorchScript" in str(exc):
            raise CheckpointError(path, "a TorchScript archive (compiled code), not an lstmviz checkpoint; it is not "
                                        "loaded for safety") from None
        kind = "damaged PyTorch file" if is_zip else "not a readable PyTorch checkpoint"
        raise CheckpointError(path, f"{kind} ({type(exc).__name__}: {_first_line(str(exc))})") from None


def _check_archive(path: Path, data: bytes) -> None:
    """Refuse an archive that unpacks to more than the memory available, or that is damaged.

    torch writes its archives uncompressed but reads compressed entries too, so a small file can
    declare gigabytes: the declared sizes are in the zip's directory, checked before anything is
    unpacked. torch's zip reader does not verify the CRC-32 the zip stores for every entry and
    tolerates inconsistent headers (it then reads shifted bytes, or nothing, as weights), so a
    flipped bit would load wrong weights without a word. Python's stricter reader checks every
    header and CRC here first (one pass, cheaper than the sha256 of the file).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            declared = sum(info.file_size for info in archive.infolist())
            available = available_bytes()
            if available is not None and declared > available:
                raise CheckpointError(path, f"the archive unpacks to {format_bytes(declared)} ({format_bytes(len(data))} "
                                            f"on disk), more than the {format_bytes(available)} of memory available")
            odd = next((info.filename for info in archive.infolist() if _odd_entry(info)), None)
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError, NotImplementedError, zlib.error) as exc:
        # torch's own reader is more lenient and could read shifted bytes as weights: refuse here
        raise CheckpointError(path, f"damaged PyTorch file (the zip archive is inconsistent: "
                                    f"{_first_line(str(exc))})") from None
    if odd is not None:  # torch's zip reader would read such an entry differently from the one checked here
        raise CheckpointError(path, f"damaged PyTorch file: the archive entry {odd!r} is marked as a directory or "
                                    f"encrypted, which torch never writes")
    if bad is not None:
        raise CheckpointError(path, f"damaged PyTorch file: the archive entry {bad!r} does not match its CRC-32 "
                                    f"(bits changed on disk or in a copy); copy it again from a good source")


def _odd_entry(info: zipfile.ZipInfo) -> bool:
    """An entry marked as a directory (DOS attribute or Unix mode) or as encrypted."""
    unix_mode = info.external_attr >> 16
    return bool(info.external_attr & 0x10 or stat.S_ISDIR(unix_mode) or info.filename.endswith("/")
                or info.flag_bits & 0x1)


def _first_line(message: str) -> str:
    message = re.sub(r"\x1b\[[0-9;]*m", "", message).strip()
    line = message.splitlines()[0] if message else "no details"
    return line[:200]


def _check_payload(path: Path, payload: Any) -> dict:
    if not isinstance(payload, dict):
        raise CheckpointError(path, f"not an lstmviz checkpoint (holds a {type(payload).__name__}, expected a dict)")
    if payload.get("format") != FORMAT:
        hint = ""
        if payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
            hint = "; it looks like a bare state_dict: write checkpoints with save_checkpoint or `lstmviz train`"
        raise CheckpointError(path, f"not an lstmviz checkpoint (no format marker {FORMAT!r}){hint}")
    version = payload.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(path, f"bad checkpoint version {version!r}, expected an int")
    if version > VERSION:
        raise CheckpointError(
            path, f"checkpoint format version {version} is newer than this lstmviz reads (up to {VERSION}); upgrade lstmviz"
        )
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(path, f"incomplete lstmviz checkpoint: missing {', '.join(missing)}")
    expected_types = {"engine": str, "config": dict, "vocab": list, "step": int, "metrics": dict, "state_dict": dict}
    for key, kind in expected_types.items():
        if not isinstance(payload[key], kind):
            raise CheckpointError(
                path, f"bad {key!r}: expected {kind.__name__}, got {type(payload[key]).__name__}"
            )
    if isinstance(payload["step"], bool) or payload["step"] < 0:
        raise CheckpointError(path, f"bad 'step': expected a training step >= 0, got {payload['step']!r}")
    if payload["dataset"] is not None and not isinstance(payload["dataset"], str):
        raise CheckpointError(path, f"bad 'dataset': expected a dataset name or None, got "
                                    f"{type(payload['dataset']).__name__}")
    for key, kind in (("train_settings", dict), ("versions", dict), ("created", str), ("run", str), ("family", str),
                      ("data", dict), ("dataset_options", dict)):
        if payload.get(key) is not None and not isinstance(payload[key], kind):
            raise CheckpointError(path, f"bad {key!r}: expected {kind.__name__} or None, got "
                                        f"{type(payload[key]).__name__}")
    if not all(isinstance(token, str) for token in payload["vocab"]):
        raise CheckpointError(path, "bad 'vocab': expected a list of token strings")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in payload["state_dict"].items()):
        raise CheckpointError(path, "bad 'state_dict': expected parameter names mapped to tensors only")
    pruning = payload.get("pruning")
    if pruning is not None:
        if (not isinstance(pruning, dict) or not isinstance(pruning.get("info"), dict)
                or not isinstance(pruning.get("masks"), dict)
                or not all(isinstance(k, str) and isinstance(v, torch.Tensor) and v.dtype == torch.bool
                           for k, v in pruning["masks"].items())):
            raise CheckpointError(path, "bad 'pruning': expected {'info': dict, 'masks': {parameter: bool tensor}}")
    return payload


def _state_dict_problem(model: nn.Module, state_dict: dict) -> str | None:
    """Why ``state_dict`` does not fit ``model``, or None."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    kinds = [  # load_state_dict would cast silently (complex -> real drops the imaginary part)
        f"{k} {_number_kind(state_dict[k])} vs {_number_kind(own[k])}"
        for k in own
        if k in state_dict and (state_dict[k].is_floating_point() != own[k].is_floating_point()
                                or state_dict[k].is_complex() != own[k].is_complex()
                                or state_dict[k].layout != own[k].layout)
    ]
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))
    if unexpected:
        parts.append(f"unexpected {', '.join(unexpected[:5])}" + (" ..." if len(unexpected) > 5 else ""))
    if wrong:
        parts.append(f"shape (file vs config) {', '.join(wrong[:5])}" + (" ..." if len(wrong) > 5 else ""))
    if kinds:
        parts.append(f"kind of number (file vs model) {', '.join(kinds[:5])}" + (" ..." if len(kinds) > 5 else ""))
    return "; ".join(parts) or None


def _number_kind(tensor: torch.Tensor) -> str:
    layout = "" if tensor.layout == torch.strided else f" ({str(tensor.layout).removeprefix('torch.')})"
    return f"{str(tensor.dtype).removeprefix('torch.')}{layout}"


def load_checkpoint(path, *, map_location="cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model of a checkpoint (in eval mode) and return ``(model, meta)``.

    ``meta`` has engine, family, config, vocab, dataset, step, metrics, train_settings, versions, created,
    run (the training run's id, None when unknown), format_version, path, sha256 (of the file's
    bytes, for provenance) and pruning (a pruned model's ``{"info", "masks"}``, else None). Raises
    :class:`CheckpointError`.
    """
    from . import registry  # the registry imports no torch; engines are loaded on demand

    path = Path(path)
    if path.is_dir():
        raise CheckpointError(path, "is a directory, not a checkpoint file")
    try:  # only a regular file: a FIFO would block, /dev/zero never ends
        available = available_bytes()  # the bytes, then the tensors unpickled from them: twice the file
        data = read_regular_file(path, max_bytes=None if available is None else available // 2)
    except FileNotFoundError:
        raise CheckpointError(path, "no such file") from None
    except FileRefused as exc:
        if exc.size is not None:
            raise CheckpointError(path, f"the file is {format_bytes(exc.size)}; loading it needs about twice that "
                                        f"(its bytes, then the tensors), more than the {format_bytes(available)} "
                                        f"of memory available") from None
        raise CheckpointError(path, exc.problem) from None
    sha256 = hashlib.sha256(data).hexdigest()
    payload = _check_payload(path, _read_payload(path, data, map_location))

    engine = payload["engine"]
    if engine not in registry.names():
        raise CheckpointError(path, f"unknown engine {engine!r}; available: {', '.join(registry.names()) or 'none'}")
    spec = registry.get(engine)
    family = payload.get("family") or DEFAULT_FAMILY
    if family != spec.family:
        raise CheckpointError(path, f"a checkpoint of the {family!r} family, but engine {engine!r} is of the "
                                    f"{spec.family!r} family; it was not written for this engine")
    vocab = list(payload["vocab"])
    config = dict(payload["config"])
    try:
        data = spec.family_spec.describe_checkpoint(payload)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(path, str(exc).strip("'\"")) from None
    try:
        model = spec.build_model(data, **config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(path, f"config does not build engine {engine!r}: {exc}") from None
    state_dict = payload["state_dict"]
    problem = _state_dict_problem(model, state_dict)
    if problem:
        raise CheckpointError(path, f"state_dict does not match the config of engine {engine!r}: {problem}")
    float_dtypes = {t.dtype for t in state_dict.values() if t.is_floating_point()}
    if len(float_dtypes) == 1:
        model = model.to(float_dtypes.pop())  # keep float64 weights float64
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(path, f"state_dict does not match the config: {_first_line(str(exc))}") from None
    pruning = payload.get("pruning")
    if pruning is not None:
        shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
        odd = [k for k, v in pruning["masks"].items() if shapes.get(k) != tuple(v.shape)]
        if odd:
            raise CheckpointError(path, f"bad 'pruning': masks that fit no parameter: {', '.join(odd[:5])}")
        pruning = {"info": dict(pruning["info"]), "masks": dict(pruning["masks"])}
    if isinstance(map_location, (str, torch.device)):
        model.to(map_location)
    model.eval()

    meta = {
        "engine": engine,
        "family": family,
        "config": config,
        "vocab": vocab,
        "dataset": payload["dataset"],
        "dataset_options": dict(payload.get("dataset_options") or {}),
        "step": payload["step"],
        "metrics": dict(payload["metrics"]),
        "train_settings": dict(payload.get("train_settings") or {}),
        "versions": dict(payload.get("versions") or {}),
        "created": payload.get("created"),
        "run": payload.get("run"),
        "data": dict(payload["data"]) if isinstance(payload.get("data"), dict) else None,
        "format_version": payload["version"],
        "path": str(path.resolve()),
        "sha256": sha256,
        "pruning": pruning,  # a pruned model's {"info", "masks"} (engines/seq2seq/prune.py), else None
    }
    return model, meta
