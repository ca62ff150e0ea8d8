"""What a model of the ``image`` family reads and how it says where its states live.

A model of the family takes a batch of images and returns logits:

- ``model(images) -> logits``: ``images`` float32 ``[B, C, H, W]`` (values in ``[0, 1]``, the size of
  the data description), ``logits`` ``[B, num_classes]`` (one class per image; for a ``multilabel``
  task, one logit per class, trained by the objective's task loss); a ``segmentation`` model returns per-pixel
  logits ``[B, num_classes, H, W]`` and a ``regression`` model per-pixel values ``[B, Ct, H, W]``
  (``num_classes`` = the target channels ``Ct``).
- taps: :class:`lstmviz.hooks.Tap` modules with ``layout=IMAGE`` (a feature map ``[B, C, H', W']``:
  channels are units, the ``H' * W'`` cells are positions in raster order) or ``layout=SCALAR``
  (``[B, units]``, one position per image: a fully connected layer, a pooled vector, the logits) or
  ``layout=SET`` (``[B, M, units]``: one row per member of a named set, e.g. a modality or a branch), and
  ``axis=`` the recording axis the rows go to.
- ``model.image_axes(height, width) -> dict[str, ImageAxis]``: for every axis a tap writes to, what
  its positions are for an input of that size (an ``image`` axis: stride, receptive field and centre
  offset in input pixels, and the feature map's size; a ``scalar`` axis: one position; a ``set`` axis
  (:func:`set_axis`): its member names, ``M`` rows per image, row ``m`` = member ``m``). The recorder
  stores them (format v3) without guessing; a conv tap without an entry here is refused.
  :func:`conv_chain` computes them from the layers' kernel, stride and padding.
- optionally ``model.loss(images, batch) -> (loss, count)`` for an engine trained by its own objective
  instead of the family's (a regulariser added to the cross-entropy, a label-embedding regression).
- optionally, with its own loss, ``model.item_measures(images, batch) -> {name: float array [B]}`` and
  ``model.item_measure_names() -> {name: description}``: per-image measures (NaN = undefined) that validation
  averages into ``valid_<name>`` instead of the task's arg-max accuracy and the recorder stores as numeric item
  annotations (``tagger``: its exchangeable groups are no classes, so it reports the grouping AMI per iteration).
- optionally **switches** for the perturbation panel: ``model.perturbation_switches() -> list[Switch]`` (named
  settings of the model's structure, each with its allowed values as strings and its default: a modality
  present or dropped, a forced branch, a pruning threshold) and ``model.switched(settings: dict[str, str])``, a
  context manager that runs the model under those settings and restores it after (refusing an unknown name or
  value, or a combination the model cannot run, with a ``ValueError`` in one sentence).

Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from lstmviz.geometry import AxisGeometry, ImageGeometry, SetGeometry

INPUT_AXIS = "positions"
"""The main axis: the input's pixels (stride 1, receptive field 1), where per-pixel annotations live."""


@dataclass(frozen=True)
class ImageAxis:
    """The positions of one recording axis for one input size.

    Attributes:
        geometry: the axis's geometry (``image``: stride, receptive_field, offset; ``scalar``; or ``set``:
            the member names).
        size: ``image``: the feature map's ``ImageGeometry(height, width)`` for that input size;
            ``None`` for a ``scalar`` or ``set`` axis.

    A **set axis** (``AxisGeometry(kind="set", members=names)``, built by :func:`set_axis`) has a fixed
    number of rows per image, ``M = len(names)``: row ``m`` of every image is member ``m`` (member ids
    ``0 .. M-1`` in order; the recorder stores that same ``SetGeometry`` for every image). Its taps have
    layout ``SET``, ``[B, M, units]``. A member the input lacks (a HeMIS example without modality ``k``)
    keeps its row, with the values the engine gives it (zeros by convention); nothing else marks it.
    """

    geometry: AxisGeometry
    size: ImageGeometry | None = None

    def __post_init__(self) -> None:
        if self.geometry.kind == "set" and self.size is not None:
            raise ValueError("a set axis has no feature-map size (its rows are its members); leave size out")

    @property
    def num_positions(self) -> int:
        if self.geometry.kind == "set":
            return len(self.geometry.members)
        return 1 if self.size is None else self.size.num_positions

    def set_geometry(self) -> SetGeometry:
        """A set axis's item geometry: every image has members ``0 .. M-1`` in order."""
        if self.geometry.kind != "set":
            raise ValueError(f"a {self.geometry.kind} axis has no set members")
        return SetGeometry(np.arange(len(self.geometry.members), dtype=np.int64))


SCALAR_AXIS = ImageAxis(AxisGeometry(kind="scalar"))


def set_axis(members) -> ImageAxis:
    """A set axis with these member names (one row per member per image, in this order)."""
    return ImageAxis(AxisGeometry(kind="set", members=tuple(members)))


@dataclass(frozen=True)
class ConvStep:
    """One layer on the way from the input to a feature map: kernel, stride, padding and dilation, (y, x).

    Pooling is a step too (a 2×2 max pool: ``ConvStep(2, 2)``).
    """

    kernel: int | tuple[int, int]
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] = 0
    dilation: int | tuple[int, int] = 1


def _two(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def conv_chain(height: int, width: int, steps: Iterable[ConvStep]) -> ImageAxis:
    """The axis of the feature map after ``steps`` applied to an ``height × width`` input.

    Per dimension, with the input at stride ``j = 1``, receptive field ``r = 1`` and centre offset
    ``o = 0`` (the centre of input pixel 0), each step of kernel ``k``, stride ``s``, padding ``p`` and
    dilation ``d`` (effective kernel ``k' = d (k - 1) + 1``) gives

        n ← ⌊(n + 2p − k') / s⌋ + 1,   r ← r + (k' − 1) j,   o ← o + ((k' − 1) / 2 − p) j,   j ← j s

    so that output cell ``i`` is centred on input pixel ``o + i j`` and sees ``r`` input pixels.
    """
    n = [int(height), int(width)]
    j, r, o = [1, 1], [1, 1], [0.0, 0.0]
    for step in steps:
        k, s, p, d = _two(step.kernel), _two(step.stride), _two(step.padding), _two(step.dilation)
        for a in range(2):
            keff = d[a] * (k[a] - 1) + 1
            n[a] = (n[a] + 2 * p[a] - keff) // s[a] + 1
            if n[a] < 1:
                raise ValueError(f"an input of {height}x{width} pixels is too small for these layers "
                                 f"(a feature map would have no cells)")
            r[a] += (keff - 1) * j[a]
            o[a] += ((keff - 1) / 2 - p[a]) * j[a]
            j[a] *= s[a]
    return ImageAxis(AxisGeometry(kind="image", stride=tuple(j), receptive_field=tuple(r), offset=tuple(o)),
                     ImageGeometry(n[0], n[1]))


def input_axis(height: int, width: int) -> ImageAxis:
    """The main axis: the input's pixels."""
    return conv_chain(height, width, ())


def cell_box(axis: ImageAxis, y: int, x: int) -> tuple[float, float, float, float]:
    """The input-pixel box ``(y0, x0, y1, x1)`` (half-open, may reach outside the image) that cell
    ``(y, x)`` of an image axis sees."""
    g = axis.geometry
    cy, cx = g.offset[0] + y * g.stride[0], g.offset[1] + x * g.stride[1]
    hy, hx = g.receptive_field[0] / 2, g.receptive_field[1] / 2
    return (cy + 0.5 - hy, cx + 0.5 - hx, cy + 0.5 + hy, cx + 0.5 + hx)


@dataclass(frozen=True)
class Switch:
    """One named setting of a model's structure that a perturbation may change (module docstring)."""

    name: str
    choices: tuple[str, ...]
    default: str
    description: str = ""

    def __post_init__(self) -> None:
        if self.default not in self.choices:
            raise ValueError(f"switch {self.name!r}: its default {self.default!r} is not one of its choices "
                             f"{', '.join(self.choices)}")

    def check(self, value: str) -> str:
        """``value`` as given, or a ``ValueError`` naming the choices."""
        if str(value) not in self.choices:
            raise ValueError(f"switch {self.name!r} takes {', '.join(self.choices)}; got {value!r}")
        return str(value)


def checked_settings(switches: Iterable[Switch], settings) -> dict[str, str]:
    """Every switch's value under ``settings`` (a name -> value mapping; missing names keep their default),
    checked: an unknown name or a value outside a switch's choices is a ``ValueError`` in one sentence."""
    known = {sw.name: sw for sw in switches}
    unknown = [name for name in dict(settings or {}) if name not in known]
    if unknown:
        raise ValueError(f"the model has no switch {', '.join(map(repr, unknown))}; it has "
                         f"{', '.join(known) or 'none'}")
    return {name: sw.check(dict(settings or {}).get(name, sw.default)) for name, sw in known.items()}


__all__ = ["ConvStep", "INPUT_AXIS", "Switch", "checked_settings", "ImageAxis", "SCALAR_AXIS", "cell_box", "conv_chain", "input_axis",
           "set_axis"]

