"""The live model of an image recording: its checkpoint, its images, and perturbing one recorded image.

The model is loaded from the checkpoint the recording names (found and checked as for sequence and graph
models: :func:`lstmviz.perturb.live_model.find_checkpoint`, sha256 included). The image of an item comes
from the dataset the provenance names (``dataset``, ``split``, ``dataset_options``: the datasets are
deterministic), checked against the recorded input (the ``input`` tap: equal up to the recording's
float16 rounding, :data:`PIXEL_TOLERANCE`); a recording whose provenance names no dataset uses its
recorded input pixels. :func:`reproduces` says how closely the re-run model gives the recorded states.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import PerturbError
from .image import ImageEffect, image_forward, image_taps, perturb_image
from .live_model import CheckpointProblem, load_checkpoint_model, recording_dataset

INPUT_TAP = "input"
"""The recorded input image's tap (``lstmviz.recording.image_recorder.INPUT_TAP``)."""

PIXEL_TOLERANCE = 1e-3
"""Largest |rebuilt − recorded| pixel difference accepted (float16 rounds [0, 1] values by ≤ 4.9e-4)."""


@dataclass
class LiveImage:
    """An image model with the images of its recording (see the module docstring)."""

    model: Any
    dataset: Any  # None: the images are the recording's input tap
    path: Path | None
    meta: dict = field(default_factory=dict)

    @property
    def channels(self) -> int:
        return int(self.model.channels)

    @property
    def task(self) -> str:
        from .image import model_task

        return model_task(self.model)


def recorded_image(recording, item: int) -> np.ndarray | None:
    """The recorded input of ``item`` as float32 ``[C, H, W]`` (None: the recording has no input tap)."""
    if INPUT_TAP not in recording.taps:
        return None
    size = recording.item_geometry(int(item))
    pixels = np.asarray(recording.item_states(INPUT_TAP, int(item)), dtype=np.float32)
    return np.ascontiguousarray(pixels.reshape(size.height, size.width, -1).transpose(2, 0, 1))


def load_image_model(recording, checkpoint: Path | str | None = None) -> LiveImage:
    """The image model that made ``recording``, with its images. :class:`CheckpointProblem` when the
    checkpoint is missing, another model or does not load; :class:`PerturbError` for the data."""
    name = Path(recording.path).name
    kind = recording.axis_geometry().kind
    if kind != "image":
        raise PerturbError(f"the recording {name} holds {kind} positions, not the pixels of an image")
    model, meta, path = load_checkpoint_model(recording, checkpoint)
    if not callable(getattr(model, "image_axes", None)):
        raise CheckpointProblem("mismatch", path, f"the checkpoint {path} holds a {type(model).__name__}, not an "
                                                  "image model; it is another model")
    dataset = None
    if (recording.provenance or {}).get("dataset"):
        dataset = recording_dataset(recording, "images")
        if len(dataset) < recording.n_items:
            raise PerturbError(f"the rebuilt dataset has {len(dataset)} images, the recording {recording.n_items}; "
                               "the dataset changed since the recording was made")
    elif INPUT_TAP not in recording.taps:
        raise PerturbError(f"the recording {name} names no dataset and holds no input tap, so its images cannot be "
                           "rebuilt; from a script, use lstmviz.perturb.image.perturb_image(model, image, ...)")
    from lstmviz.hooks import find_taps

    # every recorded tap must be one of the model's (set-axis taps too, though the Δ maps compare only the
    # image and vector taps: model_taps)
    missing = [t for t in recording.taps if t != INPUT_TAP and t not in find_taps(model)]
    if missing:
        raise CheckpointProblem("mismatch", path, f"the checkpoint's model has no tap {missing[0]!r}, which the "
                                                  f"recording holds; it is another model")
    return LiveImage(model, dataset, path, meta)


def check_item(live: LiveImage, recording, item: int) -> np.ndarray:
    """The image ``[C, H, W]`` of ``item``, after checking it is the image the recording holds."""
    if not 0 <= int(item) < recording.n_items:
        raise PerturbError(f"image {item} does not exist; the recording has images 0 to {recording.n_items - 1}")
    recorded = recorded_image(recording, int(item))
    if live.dataset is None:
        image = recorded
    else:
        image = np.asarray(live.dataset[int(item)].image, dtype=np.float32)
        if recorded is not None:
            if recorded.shape != image.shape:
                raise PerturbError(f"image {item} is {'x'.join(map(str, recorded.shape))} in the recording but "
                                   f"{'x'.join(map(str, image.shape))} when rebuilt; the dataset changed since the "
                                   "recording was made")
            worst = float(np.max(np.abs(recorded - image), initial=0.0))
            if worst > PIXEL_TOLERANCE:
                raise PerturbError(f"image {item} differs from the recording's (pixels differ by up to {worst:.3g}); "
                                   "the dataset changed since the recording was made")
    size = recording.item_geometry(int(item))
    if image.shape[1:] != (size.height, size.width):
        raise PerturbError(f"image {item} is {image.shape[1]}x{image.shape[2]} pixels, the recording says "
                           f"{size.height}x{size.width}; the dataset changed since the recording was made")
    return image


def model_taps(live: LiveImage, recording, taps: Sequence[str] | None = None) -> list[str]:
    """The recording's taps the model has (default), or ``taps`` checked."""
    have = image_taps(live.model)
    if taps is None:
        return [t for t in recording.taps if t in have]
    unknown = [t for t in taps if t not in have]
    if unknown:
        raise PerturbError(f"the model has no tap {unknown[0]!r}; it has {', '.join(have)}")
    return list(taps)


def reproduces(live: LiveImage, recording, item: int, taps: Sequence[str] | None = None) -> dict[str, float]:
    """Largest |recorded − recomputed| per tap of image ``item`` (float16 recordings differ by rounding)."""
    image = check_item(live, recording, item)
    names = model_taps(live, recording, taps)
    _, states = image_forward(live.model, image, (), names)
    return {name: float(np.max(np.abs(recording.item_states(name, int(item)) - states[name]), initial=0.0))
            for name in names}


def perturb_recorded_image(live: LiveImage, recording, item: int, *, occlude=None, edits=(), taps=None,
                           tolerance: float = 0.0, switches=None) -> ImageEffect:
    """:func:`lstmviz.perturb.image.perturb_image` on image ``item`` of ``recording`` (checked first); every
    tap of the model by default."""
    return perturb_image(live.model, check_item(live, recording, item), occlude=occlude, edits=edits, taps=taps,
                         tolerance=tolerance, switches=switches)


ATTACKS = ("lbfgs", "pgd-linf", "pgd-l2")
"""The attacks of :func:`attack_recorded_image`: Szegedy's box L-BFGS, PGD in L∞ or L2."""


def attack_recorded_image(live: LiveImage, recording, item: int, *, method: str = "lbfgs", target: int | None = None,
                          eps: float = 0.1, taps=None, task=None) -> ImageEffect:
    """Attack image ``item`` with :mod:`lstmviz.perturb.image_attack` (``method`` in :data:`ATTACKS`; ``eps``:
    PGD's radius; ``target`` None: any other class) and return the clean vs adversarial run as an
    :class:`~lstmviz.perturb.image.ImageEffect` (``edited_input`` = the adversarial image; the attack's
    result in ``extra["attack"]``)."""
    from . import image_attack

    if method not in ATTACKS:
        raise PerturbError(f"unknown attack {method!r}; expected {', '.join(ATTACKS)}")
    image = check_item(live, recording, item)
    model = live.model
    if method == "lbfgs":
        attack = image_attack.lbfgs_image_attack(model, image.copy(), target=target, task=task)
        what = "L-BFGS attack"
    else:
        norm = "linf" if method == "pgd-linf" else "l2"
        attack = image_attack.pgd_image_attack(model, image.copy(), eps=eps, norm=norm, target=target, task=task)
        what = f"PGD ({norm}, eps {eps:g}) attack"
    adversarial = np.asarray(attack.adversarial, dtype=np.float32).reshape(image.shape)
    effect = perturb_image(model, image, taps=model_taps(live, recording, taps), edited_input=adversarial)
    aim = "any other class" if target is None else f"class {target}"
    effect.described = (f"{what} aiming for {aim}: ‖r‖₂ {attack.l2:.3g}, ‖r‖∞ {attack.linf:.3g} "
                        f"({100 * attack.relative_l2:.1f}% of ‖x‖₂)")
    if not attack.flipped:
        note = attack.details.get("note") or ("the best step is shown; try a larger eps" if method != "lbfgs" else "")
        effect.described += f" — no flip found{f' ({note})' if note else ''}"
    effect.extra["attack"] = attack
    return effect


__all__ = ["ATTACKS", "INPUT_TAP", "LiveImage", "attack_recorded_image", "check_item", "load_image_model",
           "perturb_recorded_image", "recorded_image", "reproduces"]
