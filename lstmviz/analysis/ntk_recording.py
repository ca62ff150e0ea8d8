r"""Tangent kernels of the model behind a recording: per-layer alignment and effective rank at every kept
checkpoint (Baratin et al.), and the spectrum with the label energy per eigendirection (Bietti & Mairal).

The equations are in :mod:`lstmviz.analysis.tangent_kernel`; this module says what the items and their
outputs are, and caches results with the recording's derived data.

**Items.** A seeded choice of at most ``items`` (default 256) of the recording's items that carry the
label (``probe_labels(..., at="last")``: an item's label, or a position label at its last position),
the same items at every checkpoint. Labels are one-hot over the annotation's classes.

**An item's output** :math:`f(x) \in \mathbb R^O`, per family:

- image (a recording whose positions are pixels): the class logits of the image (``[C]``); models with
  per-pixel outputs (segmentation, regression) are refused in words;
- language model (positions are tokens): the logits over the vocabulary at the item's last token, i.e.
  the prediction after reading the whole item (``O`` = vocabulary size). Items are padded on the right
  to one length for batching; the recurrent language models are causal, so the logits at the last real
  token do not see the padding (when ``vmap`` cannot map the model, each item runs unpadded);
- graphs and other families are refused with a sentence.

**Models.** The recording's checkpoint files (``Recording.checkpoints``: each file's sha256 is checked
against the recording's; a file missing at its stored path is looked for beside the recording), or, for a
recording of one model state, the checkpoint its provenance names
(:func:`lstmviz.perturb.live_model.find_checkpoint`). Kernels are computed in eval mode.

**Cache.** ``kernel_curves`` and ``kernel_spectrum`` results are stored under the recording's cache
directory (:func:`lstmviz.analysis.cache.cache_dir_for`), keyed by the recording's fingerprint, every
checkpoint's name and sha256, the annotation, the items chosen, the kernel kind and the rank definition.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstmviz.analysis import cache as cache_files
from lstmviz.analysis.tangent_kernel import (
    RANK_DEFINITIONS,
    SpectralBias,
    measures,
    spectral_bias,
    tangent_kernel,
)
from lstmviz.tasks import Task, ensure_task

DEFAULT_ITEMS = 256
CACHE_VERSION = 1


class KernelInputError(ValueError):
    """The recording's model or items cannot give a tangent kernel; the message says why and what to do."""


@dataclass
class KernelItems:
    """The chosen items, their labels and how to run the model on them."""

    items: np.ndarray  # item indices, ascending
    labels: np.ndarray  # class id per chosen item
    label_names: list[str]
    family: str  # "image" | "language-model"
    output: str  # what an item's output is, in words
    examples: object = field(repr=False, default=None)
    output_of: object = field(repr=False, default=None)


def item_labels(recording, annotation: str) -> tuple[np.ndarray, list[str]]:
    """``(label per item (-1: none), label names)`` of a categorical annotation (its value at each item's
    last position; an item annotation as is)."""
    from lstmviz.analysis.probes import probe_labels

    if annotation not in recording.annotations:
        have = [n for n, a in recording.annotations.items() if a.kind == "categorical"]
        raise KernelInputError(f"the recording has no annotation {annotation!r}; its categorical annotations: "
                               f"{', '.join(have) or 'none'}")
    try:
        last = probe_labels(recording, annotation, at="last")
    except ValueError as e:
        raise KernelInputError(str(e).replace("A probe predicts", "A kernel alignment needs")) from None
    offsets = np.asarray(recording.item_offsets, np.int64)
    return last[offsets[1:] - 1].astype(np.int64), list(recording.annotations[annotation].labels)


def choose_items(labels: np.ndarray, items: int = DEFAULT_ITEMS, seed: int = 0) -> np.ndarray:
    """A seeded choice of at most ``items`` labelled items (ascending)."""
    if int(items) < 2:
        raise KernelInputError(f"items: expected at least 2 items to compare, got {items}")
    labelled = np.flatnonzero(np.asarray(labels) >= 0)
    if labelled.size < 2:
        raise KernelInputError(f"only {labelled.size} item(s) of the recording carry this label; a kernel alignment "
                               "needs at least 2")
    if labelled.size <= int(items):
        return labelled
    rng = np.random.default_rng(int(seed))
    return np.sort(rng.choice(labelled, size=int(items), replace=False))


def family_of(recording) -> str:
    kind = recording.axis_geometry().kind
    if kind == "image":
        return "image"
    if kind == "tokens" and recording.vocab:
        return "language-model"
    raise KernelInputError(f"tangent kernels are computed for image and language-model recordings; this "
                           f"recording's positions are {kind} (graphs and other families are not supported yet)")


def kernel_items(recording, annotation: str, *, items: int = DEFAULT_ITEMS, seed: int = 0) -> KernelItems:
    """The items, labels, inputs and output function for ``recording`` (module docstring)."""
    import torch

    family = family_of(recording)
    per_item, names = item_labels(recording, annotation)
    chosen = choose_items(per_item, items, seed)
    labels = per_item[chosen]
    if family == "image":
        from lstmviz.perturb.image_live import LiveImage, check_item
        from lstmviz.perturb.live_model import recording_dataset

        dataset = recording_dataset(recording, "images") if (recording.provenance or {}).get("dataset") else None
        live = LiveImage(None, dataset, None)
        try:
            images = np.stack([check_item(live, recording, int(i)) for i in chosen])
        except Exception as e:  # noqa: BLE001 - a dataset that changed, a missing input tap: said in words
            raise KernelInputError(f"the recording's images cannot be rebuilt: {e}") from None
        examples = torch.as_tensor(images)
        return KernelItems(chosen, labels, names, family, "the class logits of each image", examples, _image_output)
    seqs = [np.asarray(recording.item_token_ids(int(i)), np.int64) for i in chosen]
    width = max(len(s) for s in seqs)
    tokens = torch.zeros((len(seqs), width), dtype=torch.long)
    last = torch.zeros(len(seqs), dtype=torch.long)
    for row, s in enumerate(seqs):
        tokens[row, :len(s)] = torch.as_tensor(s)
        last[row] = len(s) - 1
    return KernelItems(chosen, labels, names, family, "the logits over the vocabulary at each item's last token",
                       (tokens, last), _last_token_output)


def _image_output(call, image):
    out = call(image[None])
    if isinstance(out, (tuple, list)):
        out = out[0]
    if out.dim() != 2:
        raise KernelInputError(f"the image model's output is {out.dim() - 1}-D per image (e.g. per-pixel classes); "
                               "tangent kernels are computed for models with one vector of class logits per image")
    return out[0]


def _last_token_output(call, example):
    import torch

    tokens, last = example
    if not torch._C._functorch.is_batchedtensor(last):  # one item at a time: run it without padding
        tokens = tokens[: int(last) + 1]
        last = last.new_tensor(int(last))
    out = call(tokens[None])
    if isinstance(out, (tuple, list)):
        out = out[0]
    return torch.index_select(out[0], 0, last.reshape(1))[0]


# ------------------------------------------------------------------------------------------ models


def checkpoint_model(recording, info):
    """The model of checkpoint ``info`` (a ``CheckpointInfo``), its file checked against the recording's
    sha256 (found at its stored path or beside the recording)."""
    from lstmviz.engines.checkpoint import CheckpointError, load_checkpoint
    from lstmviz.perturb.live_model import file_sha256

    stored = Path(info.path) if info.path else None
    candidates = [p for p in (stored, Path(recording.path).resolve().parent / (stored.name if stored else ""))
                  if p is not None and p.name and p.is_file()]
    if not candidates:
        raise KernelInputError(f"the checkpoint file of {info.name} ({info.path or 'no path stored'}) was not found, "
                               f"nor beside the recording; put the run's checkpoint files back (or next to "
                               f"{Path(recording.path).name})")
    for path in candidates:
        if info.sha256 and file_sha256(path) != info.sha256:
            continue
        try:
            model, _ = load_checkpoint(path)
        except CheckpointError as e:
            raise KernelInputError(f"the checkpoint {path} of {info.name} does not load: {e}") from None
        return model.eval()
    raise KernelInputError(f"the checkpoint file {candidates[0]} is not the one {info.name} was recorded with "
                           "(its sha256 differs); it is another model")


def main_model(recording, checkpoint=None):
    """The model behind the recording's main states (its provenance's checkpoint, or ``checkpoint``)."""
    from lstmviz.perturb.live_model import load_checkpoint_model

    try:
        model, _, _ = load_checkpoint_model(recording, checkpoint)
    except Exception as e:  # noqa: BLE001 - CheckpointProblem and friends carry the sentence to show
        raise KernelInputError(str(e)) from None
    return model


# ------------------------------------------------------------------------------------------ results


@dataclass
class KernelCurves:
    """Alignment and effective rank per layer (and of ``K = Σ_l K_l``) at every checkpoint, in training order."""

    annotation: str
    layers: list[str]
    checkpoints: list[str]
    steps: list[int | None]
    alignment: np.ndarray  # [checkpoints, layers]
    effective_rank: np.ndarray  # [checkpoints, layers]
    total_alignment: np.ndarray  # [checkpoints]
    total_effective_rank: np.ndarray  # [checkpoints]
    items: int
    rank: str = "entropy"
    output: str = ""
    from_cache: bool = False

    def x(self) -> np.ndarray:
        """Training steps when every checkpoint has one, else 0, 1, 2, ... (as ``ProbeCurves.x``)."""
        if self.steps and all(s is not None for s in self.steps):
            return np.asarray(self.steps, dtype=float)
        return np.arange(len(self.checkpoints), dtype=float)

    def table(self) -> dict[str, list]:
        """One row per checkpoint and layer, then the whole kernel (``layer = "all"``)."""
        cols: dict[str, list] = {k: [] for k in ("checkpoint", "step", "layer", "alignment", "effective_rank",
                                                 "annotation", "items", "rank_definition")}
        for c, name in enumerate(self.checkpoints):
            rows = [(layer, self.alignment[c, li], self.effective_rank[c, li]) for li, layer in enumerate(self.layers)]
            rows.append(("all", self.total_alignment[c], self.total_effective_rank[c]))
            for layer, al, er in rows:
                cols["checkpoint"].append(name)
                cols["step"].append(-1 if self.steps[c] is None else int(self.steps[c]))
                cols["layer"].append(layer)
                cols["alignment"].append(float(al))
                cols["effective_rank"].append(float(er))
                cols["annotation"].append(self.annotation)
                cols["items"].append(int(self.items))
                cols["rank_definition"].append(self.rank)
        return cols


def _measure(kernel, labels, n_classes, rank):
    m = measures(kernel, labels, rank=rank, n_classes=n_classes)
    return list(m.alignment), list(m.effective_rank), m.total_alignment, m.total_effective_rank


def kernel_curves(recording, annotation: str, *, items: int = DEFAULT_ITEMS, seed: int = 0, rank: str = "entropy",
                  task=None, cache: bool = True, max_bytes: int | None = None) -> KernelCurves:
    """Per-layer alignment and effective rank at every checkpoint of ``recording`` (module docstring).

    A recording of one model state gives one point (its main checkpoint). Progress over checkpoints;
    cancelling raises ``Cancelled`` and caches nothing."""
    task = ensure_task(task)
    if rank not in RANK_DEFINITIONS:
        raise KernelInputError(f"rank: expected one of {', '.join(RANK_DEFINITIONS)}, got {rank!r}")
    setup = kernel_items(recording, annotation, items=items, seed=seed)
    checkpoints = list(getattr(recording, "checkpoints", []) or [])
    ids = [(c.name, c.sha256) for c in checkpoints] or [("main", str((recording.provenance or {}).get("sha256", "")))]
    key = _key(recording, "curves", annotation, setup, ids, rank=rank)
    path = _path(recording, "ntk-curves", annotation, key) if cache else None
    if path is not None:
        cached = cache_files.load_cached(path, lambda p: _load_curves(p, key), "tangent-kernel curves")
        if cached is not None:
            task.progress(1, 1, "Tangent kernel (cached)")
            return cached
    n = len(ids)
    layers: list[str] = []
    al, er, tal, ter = [], [], [], []
    for i, (name, _) in enumerate(ids):
        task.progress(i * 1000, n * 1000, f"{name}: loading the model")
        model = checkpoint_model(recording, checkpoints[i]) if checkpoints else main_model(recording)

        def forward(done, of, text, base=i, name=name):
            frac = min(1.0, done / of) if of else 0.0
            task.progress(int((base + frac) * 1000), n * 1000, f"{name}: {text}")

        options = {} if max_bytes is None else {"max_bytes": max_bytes}
        kernel = tangent_kernel(model, setup.output_of, setup.examples, task=Task(on_progress=forward), **options)
        layers = kernel.layers
        a, e, ta, te = _measure(kernel, setup.labels, len(setup.label_names), rank)
        al.append(a)
        er.append(e)
        tal.append(ta)
        ter.append(te)
    task.progress(n * 1000, n * 1000, "Tangent kernel done")
    curves = KernelCurves(annotation, layers, [c for c, _ in ids],
                          [c.step for c in checkpoints] if checkpoints else [_main_step(recording)],
                          np.asarray(al, float), np.asarray(er, float), np.asarray(tal, float), np.asarray(ter, float),
                          len(setup.items), rank, setup.output)
    if path is not None:
        _save(path, key, {"layers": curves.layers, "checkpoints": curves.checkpoints, "steps": curves.steps,
                          "items": curves.items, "output": curves.output},
              {"alignment": curves.alignment, "effective_rank": curves.effective_rank,
               "total_alignment": curves.total_alignment, "total_effective_rank": curves.total_effective_rank})
    return curves


def _main_step(recording):
    step = (recording.provenance or {}).get("checkpoint_step")
    return int(step) if isinstance(step, (int, np.integer)) else None


@dataclass
class KernelSpectrum:
    """The spectral-bias view's data: the kernel's spectrum with the label energy, and per-layer measures."""

    annotation: str
    spectrum: SpectralBias
    layers: list[str]
    alignment: np.ndarray  # [layers]
    effective_rank: np.ndarray  # [layers]
    total_alignment: float
    total_effective_rank: float
    items: int
    output: str
    checkpoint: str
    rank: str = "entropy"
    from_cache: bool = False

    def table(self) -> dict[str, list]:
        return self.spectrum.table()

    def layer_table(self) -> dict[str, list]:
        return {"layer": [*self.layers, "all"],
                "alignment": [*map(float, self.alignment), float(self.total_alignment)],
                "effective_rank": [*map(float, self.effective_rank), float(self.total_effective_rank)]}


def kernel_spectrum(recording, annotation: str, *, items: int = DEFAULT_ITEMS, seed: int = 0,
                    center_labels: bool = False, rank: str = "entropy", task=None, cache: bool = True,
                    checkpoint=None) -> KernelSpectrum:
    """The NTK spectrum of the recording's main model on its items, with the label energy per
    eigendirection (module docstring; ``checkpoint``: another file for the main model)."""
    task = ensure_task(task)
    if rank not in RANK_DEFINITIONS:
        raise KernelInputError(f"rank: expected one of {', '.join(RANK_DEFINITIONS)}, got {rank!r}")
    setup = kernel_items(recording, annotation, items=items, seed=seed)
    sha = str((recording.provenance or {}).get("sha256", ""))
    if checkpoint is not None:
        from lstmviz.perturb.live_model import file_sha256

        path_given = Path(checkpoint)
        if not path_given.is_file():
            raise KernelInputError(f"the checkpoint {checkpoint} was not found")
        sha = file_sha256(path_given)
    key = _key(recording, "spectrum", annotation, setup, [("main", sha)], rank=rank, center=bool(center_labels))
    path = _path(recording, "ntk-spectrum", annotation, key) if cache else None
    if path is not None:
        cached = cache_files.load_cached(path, lambda p: _load_spectrum(p, key), "NTK spectrum")
        if cached is not None:
            task.progress(1, 1, "NTK spectrum (cached)")
            return cached
    task.progress(0, 1000, "loading the model")
    model = main_model(recording, checkpoint)

    def forward(done, of, text):
        task.progress(int(min(1.0, done / of if of else 0.0) * 900), 1000, text)

    kernel = tangent_kernel(model, setup.output_of, setup.examples, task=Task(on_progress=forward))
    a, e, ta, te = _measure(kernel, setup.labels, len(setup.label_names), rank)
    spectrum = spectral_bias(kernel.total(), setup.labels, setup.label_names, center_labels=center_labels)
    task.progress(1000, 1000, "NTK spectrum done")
    result = KernelSpectrum(annotation, spectrum, kernel.layers, np.asarray(a), np.asarray(e), ta, te,
                            len(setup.items), setup.output, "main" if checkpoint is None else str(checkpoint), rank)
    if path is not None:
        _save(path, key, {"layers": result.layers, "items": result.items, "output": result.output,
                          "labels": spectrum.labels, "total": [ta, te], "checkpoint": result.checkpoint},
              {"eigenvalues": spectrum.eigenvalues, "energy": spectrum.energy, "counts": spectrum.counts,
               "alignment": result.alignment, "effective_rank": result.effective_rank})
    return result


# ------------------------------------------------------------------------------------------- cache


def _key(recording, what, annotation, setup: KernelItems, checkpoints, **extra) -> dict:
    items_hash = hashlib.sha256(np.ascontiguousarray(setup.items, dtype=np.int64).tobytes()).hexdigest()[:16]
    return {"version": CACHE_VERSION, "what": what, "fingerprint": cache_files.recording_fingerprint(recording),
            "annotation": annotation, "items": items_hash, "n_items": int(len(setup.items)),
            "checkpoints": [list(c) for c in checkpoints], "kind": "trace", **extra}


def _path(recording, prefix, annotation, key) -> Path:
    name = cache_files.cache_name(prefix, annotation, json.dumps(key, sort_keys=True), suffix=".npz")
    return cache_files.cache_dir_for(recording.path) / name


def _save(path, key, meta: dict, arrays: dict) -> None:
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload["meta"] = np.array(json.dumps({"key": key, "meta": meta}, default=_plain))
    try:
        with cache_files.atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **payload)
    except OSError:
        pass  # an unwritable cache directory only costs a recomputation next time


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _read(path, key, names):
    with np.load(path, allow_pickle=False) as data:
        stored = json.loads(str(data["meta"]))
        if stored.get("key") != json.loads(json.dumps(key)):
            return None, None
        return stored["meta"], {n: np.array(data[n]) for n in names}


def _load_curves(path, key) -> KernelCurves | None:
    meta, a = _read(path, key, ("alignment", "effective_rank", "total_alignment", "total_effective_rank"))
    if meta is None:
        return None
    shape = (len(meta["checkpoints"]), len(meta["layers"]))
    if a["alignment"].shape != shape or a["effective_rank"].shape != shape:
        raise cache_files.CacheDamaged("the cached curves do not have one value per checkpoint and layer")
    return KernelCurves(key["annotation"], meta["layers"], meta["checkpoints"], meta["steps"], a["alignment"],
                        a["effective_rank"], a["total_alignment"], a["total_effective_rank"], meta["items"],
                        key["rank"], meta["output"], from_cache=True)


def _load_spectrum(path, key) -> KernelSpectrum | None:
    meta, a = _read(path, key, ("eigenvalues", "energy", "counts", "alignment", "effective_rank"))
    if meta is None:
        return None
    n = meta["items"]
    if a["eigenvalues"].shape != (n,) or a["energy"].shape != (n, len(meta["labels"])):
        raise cache_files.CacheDamaged("the cached spectrum does not have one value per item")
    spectrum = SpectralBias(a["eigenvalues"], a["energy"], meta["labels"], a["counts"], key["center"])
    ta, te = meta["total"]
    return KernelSpectrum(key["annotation"], spectrum, meta["layers"], a["alignment"], a["effective_rank"],
                          float(ta), float(te), n, meta["output"], meta["checkpoint"], key["rank"], from_cache=True)


__all__ = ["DEFAULT_ITEMS", "KernelCurves", "KernelInputError", "KernelItems", "KernelSpectrum", "checkpoint_model",
           "choose_items", "family_of", "item_labels", "kernel_curves", "kernel_items", "kernel_spectrum", "main_model"]
