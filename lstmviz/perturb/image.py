r"""Perturbing an image model: occlude a region of the input or edit units at cells of a feature map, re-run,
and see where and how much every layer changed.

A model of the ``image`` family (:mod:`lstmviz.engines.families.image.api`) maps an image
:math:`x \in [0,1]^{C\times H\times W}` to logits. :func:`perturb_image` runs it twice, clean and edited,
and compares every tap :math:`s` at every position :math:`p` (a cell of the tap's feature map in raster
order, or the single position of a vector tap):

.. math::
    \Delta^{(s)}_{p,u} = x^{(s),\mathrm{edited}}_{p,u} - x^{(s),\mathrm{clean}}_{p,u}, \qquad
    \lVert\Delta^{(s)}_p\rVert = \Big(\sum_u (\Delta^{(s)}_{p,u})^2\Big)^{1/2}

and :meth:`ImageEffect.delta_map` lays :math:`\lVert\Delta^{(s)}_p\rVert` out as the tap's
:math:`H_s \times W_s` map (the Δ map of the layer).

Two kinds of change, alone or together:

- **occlusion** of the input box :math:`B = [y_0, y_1) \times [x_0, x_1)` (input pixels whose centre
  :math:`(y + \tfrac12, x + \tfrac12)` lies in it, all channels) by a fill: ``"zero"``; ``"mean"``: each
  channel's mean over the whole clean image; ``"blur"``: the clean image blurred by a
  :data:`BLUR_WIDTH` × :data:`BLUR_WIDTH` box filter (edges replicated), so only the box is blurred;
  or a number in :math:`[0, 1]`;
- **edits** (:class:`lstmviz.hooks.Edit`, through :func:`lstmviz.hooks.intervene`) of units at cells
  (``positions`` = raster cells of the edited tap's map) of one or more image taps.

**Where a change can show.** With the taps' geometry (:class:`~lstmviz.engines.families.image.api.ImageAxis`:
stride :math:`j`, receptive field :math:`r`, centre offset :math:`o`), cell :math:`i` of a tap sees the
input box :math:`[o + i j + \tfrac12 - \tfrac r2,\ o + i j + \tfrac12 + \tfrac r2)` per dimension
(:func:`~lstmviz.engines.families.image.api.cell_box`). For a chain of convolutions and poolings that
box is exactly the union of the boxes of the earlier cells the cell reads, so a cell of a later tap can
depend on an edited cell only if its box *contains* the edited cell's box (for an occluded pixel: contains
the pixel). :meth:`ImageEffect.region` is that set of cells (the receptive-field-propagated region);
:meth:`ImageEffect.outside` counts cells that changed outside it — zero for a model whose stated
geometry is right (the tests check it exactly on the ``cnn`` engine). A tap before the edited one gets an
empty region, a vector tap (one position per image) a full one.

**Amplification.** Per tap, :math:`\lVert\Delta^{(s)}\rVert_F / \lVert\Delta^{(0)}\rVert_F`, with
:math:`\Delta^{(0)}` the change made by hand: the occluded input's change, plus the edited taps' own
:math:`\Delta` (each edited tap's Δ equals its edit where later edits do not overlap it).
:math:`\infty` is never returned: a zero source gives NaN.

**Output.** Logits clean and edited, and class probabilities (softmax for a ``class`` task, the
per-class sigmoid for ``multilabel``). A ``segmentation`` model's logits are a map ``[K, H, W]``: the
effect then reports the per-pixel change instead of one prediction — the predicted masks
:math:`\hat y_{y,x} = \arg\max_k z_{k,y,x}` before and after (:attr:`ImageEffect.mask_clean`,
:attr:`ImageEffect.mask_edited`), the number of pixels whose class changed
(:meth:`ImageEffect.pixels_changed`) and :math:`\lVert\Delta z_{:,y,x}\rVert` per pixel
(:meth:`ImageEffect.logit_delta_map`); its probabilities are the softmax over the classes at every pixel.
A ``regression`` model's output is a map of values ``[Ct, H, W]`` (a depth, chroma): the effect reports the
prediction before and after (:attr:`ImageEffect.prediction_map_clean`, :attr:`ImageEffect.prediction_map_edited`),
:math:`\lVert\Delta \hat y_{:,y,x}\rVert` per pixel (:meth:`ImageEffect.logit_delta_map`, the absolute change
for ``Ct = 1``) and the number of pixels whose prediction changed by more than the tolerance
(:meth:`ImageEffect.pixels_changed`); it has no classes, masks or probabilities (asking for them is refused in
words).

Choices the issue leaves open, named here: the ``mean`` fill is the whole image's mean (not the box's,
which would change little on a flat region); a box given in fractional pixels takes the pixels whose
centre lies in it (as the Image panel's box rule does for cells); the blur is a box filter of width 5.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .errors import PerturbError

FILLS = ("zero", "mean", "blur")
"""The named occlusion fills (a number in [0, 1] is a fill too)."""

BLUR_WIDTH = 5
"""Width of the box filter of the ``blur`` fill, in pixels."""

_EPS = 1e-6


# ---------------------------------------------------------------------------- the model's taps and axes
def image_taps(model) -> dict[str, Any]:
    """``{tap: module}`` of the model's taps on image or scalar layouts, in module order."""
    from lstmviz.hooks import find_taps

    out = {}
    for name, tap in find_taps(model).items():
        layout = getattr(tap, "layout", None)
        if layout is not None and layout.geometry in ("image", "scalar"):
            out[name] = tap
    return out


def tap_axes(model, height: int, width: int) -> dict[str, Any]:
    """``{tap: ImageAxis}`` for an ``height × width`` input (:class:`PerturbError` when a conv tap's axis is
    not described by ``model.image_axes``)."""
    from lstmviz.engines.families.image.api import INPUT_AXIS, SCALAR_AXIS, input_axis

    image_axes = getattr(model, "image_axes", None)
    if not callable(image_axes):
        raise PerturbError(f"{type(model).__name__} is not an image model (it has no image_axes(height, width))")
    try:
        axes = dict(image_axes(int(height), int(width)))
    except ValueError as e:
        raise PerturbError(str(e)) from None
    out = {}
    for name, tap in image_taps(model).items():
        if tap.layout.geometry == "scalar":
            out[name] = SCALAR_AXIS
        elif tap.axis == INPUT_AXIS:
            out[name] = input_axis(height, width)
        elif tap.axis in axes and axes[tap.axis].size is not None:
            out[name] = axes[tap.axis]
        else:
            raise PerturbError(f"the tap {name!r} is a feature map on axis {tap.axis!r}, which the model's "
                               "image_axes() does not describe (no stride or receptive field)")
    return out


def model_task(model) -> str:
    task = getattr(model, "task", "class")
    return task if task in ("class", "multilabel", "segmentation", "regression") else "class"


def probabilities(logits: np.ndarray, task: str) -> np.ndarray:
    """Class probabilities of ``logits`` ``[..., classes]``: softmax (``class``) or sigmoid (``multilabel``);
    for ``segmentation`` ``logits`` is ``[..., classes, H, W]`` and the softmax runs over the classes of
    every pixel. A ``regression`` model has no probabilities: refused in words."""
    if task == "regression":
        raise PerturbError("a regression model predicts values per pixel, not classes, so it has no probabilities")
    z = np.asarray(logits, dtype=np.float64)
    if task == "multilabel":
        return 1.0 / (1.0 + np.exp(-z))
    axis = -3 if task == "segmentation" else -1
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


# ---------------------------------------------------------------------------- running the model
def check_input(model, image) -> np.ndarray:
    """``image`` as float32 ``[C, H, W]`` of the model's size, or :class:`PerturbError` in one sentence."""
    from lstmviz.datasets.image_base import ImageError, check_image

    try:
        return check_image(image, channels=getattr(model, "channels", None), height=getattr(model, "height", None),
                           width=getattr(model, "width", None))
    except ImageError as e:
        raise PerturbError(str(e)) from None


def model_switches(model) -> list:
    """The model's perturbation switches (``lstmviz.engines.families.image.api.Switch``: a modality dropped, a
    branch forced, a pruning threshold), ``[]`` for a model without any."""
    get = getattr(model, "perturbation_switches", None)
    return list(get()) if callable(get) and callable(getattr(model, "switched", None)) else []


def image_forward(model, image: np.ndarray, edits: Sequence[Any] = (), taps: Sequence[str] = (),
                  switches: Mapping[str, str] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The logits ``[classes]`` (a segmentation model's: ``[classes, H, W]``) and the states
    ``{tap: [positions, units]}`` (float32) of ``taps`` for one image ``[C, H, W]``, with the hook-layer
    ``edits`` applied and the model run under its ``switches`` (``model.switched``)."""
    from lstmviz.hooks import intervene
    from lstmviz.recording.recorder import Recorder

    taps = list(taps)
    x = torch.tensor(np.asarray(image, dtype=np.float32))[None]
    param = next(iter(model.parameters()), None)
    if param is not None:  # the model's device, and its dtype (a float64 model takes float64 images)
        x = x.to(param.device, dtype=param.dtype if param.dtype.is_floating_point else x.dtype)
    with torch.no_grad(), ExitStack() as stack:
        try:
            if switches:
                stack.enter_context(model.switched(dict(switches)))
            if edits:
                stack.enter_context(intervene(model, list(edits)))
            recorder = stack.enter_context(Recorder(model, taps)) if taps else None
            logits = model(x)
            values = recorder.collect() if recorder is not None else {}
        except ValueError as e:  # an edit or a signal the model cannot take, in the hook layer's words
            raise PerturbError(str(e)) from None
    states = {name: value[0].reshape(-1, value.shape[-1]).float().cpu().numpy() for name, value in values.items()}
    out = logits.detach().float().cpu().numpy()
    return (out[0] if out.ndim == 4 else out.reshape(-1)), states


def pixels_in_box(box, height: int, width: int) -> tuple[slice, slice]:
    """Rows and columns of the pixels whose centre lies in ``box`` ``(y0, x0, y1, x1)`` (half-open)."""
    try:
        y0, x0, y1, x1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise PerturbError(f"expected the occlusion box as (y0, x0, y1, x1) in input pixels, got {box!r}") from None
    if not all(np.isfinite(v) for v in (y0, x0, y1, x1)):
        raise PerturbError(f"the occlusion box {box!r} has a non-finite corner")
    if y1 <= y0 or x1 <= x0:
        raise PerturbError(f"the occlusion box {box!r} is empty: expected y0 < y1 and x0 < x1")
    rows = slice(max(0, int(np.ceil(y0 - 0.5))), min(height, int(np.ceil(y1 - 0.5))))
    cols = slice(max(0, int(np.ceil(x0 - 0.5))), min(width, int(np.ceil(x1 - 0.5))))
    if rows.stop <= rows.start or cols.stop <= cols.start:
        raise PerturbError(f"the occlusion box {box!r} covers no pixel of the {height}x{width} image")
    return rows, cols


def box_blur(image: np.ndarray, width: int = BLUR_WIDTH) -> np.ndarray:
    """``image`` ``[C, H, W]`` blurred by a ``width × width`` box filter, edges replicated."""
    k = int(width) // 2
    padded = np.pad(image.astype(np.float64), ((0, 0), (k, k), (k, k)), mode="edge")
    c = np.cumsum(np.cumsum(padded, axis=1), axis=2)
    c = np.pad(c, ((0, 0), (1, 0), (1, 0)))
    h, w = image.shape[1:]
    n = 2 * k + 1
    total = c[:, n:n + h, n:n + w] - c[:, :h, n:n + w] - c[:, n:n + h, :w] + c[:, :h, :w]
    return (total / (n * n)).astype(np.float32)


def occluded(image: np.ndarray, box, fill: Any = "zero") -> tuple[np.ndarray, tuple[slice, slice]]:
    """``image`` ``[C, H, W]`` with the pixels of ``box`` replaced by ``fill`` (module docstring), and the
    rows and columns replaced."""
    image = np.asarray(image, dtype=np.float32)
    rows, cols = pixels_in_box(box, image.shape[1], image.shape[2])
    out = image.copy()
    if isinstance(fill, str):
        if fill == "zero":
            out[:, rows, cols] = 0.0
        elif fill == "mean":
            out[:, rows, cols] = image.mean(axis=(1, 2))[:, None, None]
        elif fill == "blur":
            out[:, rows, cols] = box_blur(image)[:, rows, cols]
        else:
            raise PerturbError(f"unknown occlusion fill {fill!r}; expected {', '.join(FILLS)} or a number in [0, 1]")
    else:
        try:
            value = float(fill)
        except (TypeError, ValueError):
            raise PerturbError(f"unknown occlusion fill {fill!r}; expected {', '.join(FILLS)} or a number in "
                               "[0, 1]") from None
        if not 0.0 <= value <= 1.0:
            raise PerturbError(f"the occlusion fill value {value} is outside the pixel range [0, 1]")
        out[:, rows, cols] = value
    return out, (rows, cols)


# ---------------------------------------------------------------------------- regions
def _cell_boxes(axis) -> np.ndarray:
    """``[cells, 4]``: the input box ``(y0, x0, y1, x1)`` of every cell of an image axis (raster order)."""
    g, size = axis.geometry, axis.size
    ys, xs = np.divmod(np.arange(size.num_positions), size.width)
    cy, cx = g.offset[0] + ys * g.stride[0] + 0.5, g.offset[1] + xs * g.stride[1] + 0.5
    hy, hx = g.receptive_field[0] / 2, g.receptive_field[1] / 2
    return np.stack([cy - hy, cx - hx, cy + hy, cx + hx], axis=1)


def _clip(boxes: np.ndarray, extent: np.ndarray) -> np.ndarray:
    """``boxes`` ``(y0, x0, y1, x1)`` cut to the image ``extent`` ``(0, 0, H, W)``."""
    boxes = np.array(boxes, dtype=float).reshape(-1, 4)
    boxes[:, :2] = np.maximum(boxes[:, :2], extent[:2])
    boxes[:, 2:] = np.minimum(boxes[:, 2:], extent[2:])
    return boxes


def contains(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """bool ``[len(outer)]``: which boxes of ``outer`` contain at least one box of ``inner``."""
    if len(inner) == 0:
        return np.zeros(len(outer), dtype=bool)
    o, i = outer[:, None, :], inner[None, :, :]
    inside = ((o[..., 0] <= i[..., 0] + _EPS) & (o[..., 1] <= i[..., 1] + _EPS)
              & (o[..., 2] >= i[..., 2] - _EPS) & (o[..., 3] >= i[..., 3] - _EPS))
    return inside.any(axis=1)


# ---------------------------------------------------------------------------- the effect
@dataclass
class ImageEffect:
    """What an occlusion and/or edits did to every tap of one image (see the module docstring)."""

    image_clean: np.ndarray  # [C, H, W]
    image_edited: np.ndarray  # [C, H, W], the occluded input (== clean without occlusion)
    clean: dict[str, np.ndarray]  # tap -> [positions, units]
    edited: dict[str, np.ndarray]
    axes: dict[str, Any]  # tap -> ImageAxis (size None: a vector tap)
    sources: np.ndarray  # [n, 4] input boxes of the edited cells and occluded pixels
    edited_taps: tuple[str, ...]
    occlusion: tuple | None  # (box, fill) or None
    logits_clean: np.ndarray  # [classes]; segmentation: [classes, H, W]; regression: the values [Ct, H, W]
    logits_edited: np.ndarray
    task: str = "class"
    tolerance: float = 0.0
    described: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def taps(self) -> list[str]:
        return list(self.clean)

    def is_map(self, tap: str) -> bool:
        return self.axes[tap].size is not None

    @property
    def map_taps(self) -> list[str]:
        """The taps with a feature map (one Δ map each), in module order."""
        return [t for t in self.clean if self.is_map(t)]

    def delta(self, tap: str) -> np.ndarray:
        """``[positions, units]``: edited minus clean."""
        return self.edited[tap] - self.clean[tap]

    def delta_norm(self, tap: str) -> np.ndarray:
        """``[positions]``: ‖Δ‖ over the units at every position."""
        return np.sqrt(np.square(self.delta(tap).astype(np.float64)).sum(axis=1))

    def delta_map(self, tap: str) -> np.ndarray:
        """``[H', W']``: ‖Δ‖ per cell of a feature-map tap."""
        size = self.axes[tap].size
        if size is None:
            raise PerturbError(f"tap {tap!r} is a vector (one position per image); it has no Δ map")
        return self.delta_norm(tap).reshape(size.height, size.width)

    def changed(self, tap: str) -> np.ndarray:
        """bool ``[positions]``: where ``tap`` changed by more than the tolerance."""
        return self.delta_norm(tap) > self.tolerance

    def region(self, tap: str) -> np.ndarray:
        """bool ``[positions]``: the cells whose receptive field contains an edited cell's or occluded pixel's
        (where a change may show; every position of a vector tap, and every cell when the model itself was
        switched: ``extra["switches"]``)."""
        axis = self.axes[tap]
        if axis.size is None or self.extra.get("switches"):
            return np.ones(len(self.clean[tap]), dtype=bool)
        # boxes clipped to the image: only real pixels are read, so a field that spans the whole image (a dense
        # map over it: tagger) contains every source, while conv chains' nested fields are unchanged inside it
        extent = np.array([0.0, 0.0, *self.image_clean.shape[-2:]])
        return contains(_clip(_cell_boxes(axis), extent), _clip(np.asarray(self.sources, float), extent))

    def outside(self, tap: str) -> int:
        """How many cells of ``tap`` changed outside :meth:`region` (0 when the geometry is right)."""
        return int((self.changed(tap) & ~self.region(tap)).sum())

    def source_norm(self) -> float:
        """‖Δ⁽⁰⁾‖_F: the occluded input's change plus the edited taps' own change."""
        total = float(np.square(self.image_edited.astype(np.float64) - self.image_clean).sum())
        for tap in self.edited_taps:
            if tap in self.clean:
                total += float(np.square(self.delta(tap).astype(np.float64)).sum())
        return float(np.sqrt(total))

    def amplification(self, tap: str) -> float:
        """‖Δ⁽ˢ⁾‖_F / ‖Δ⁽⁰⁾‖_F (NaN when nothing was changed by hand)."""
        source = self.source_norm()
        norm = float(np.sqrt(np.square(self.delta(tap).astype(np.float64)).sum()))
        return norm / source if source > 0 else float("nan")

    @property
    def probabilities_clean(self) -> np.ndarray:
        return probabilities(self.logits_clean, self.task)

    @property
    def probabilities_edited(self) -> np.ndarray:
        return probabilities(self.logits_edited, self.task)

    @property
    def dense(self) -> bool:
        """Whether the model predicts per pixel (a ``segmentation`` model: logits ``[K, H, W]``; a ``regression``
        model: values ``[Ct, H, W]``)."""
        return self.task in ("segmentation", "regression") or np.ndim(self.logits_clean) == 3

    @property
    def regression(self) -> bool:
        """Whether the model predicts real values per pixel (no classes)."""
        return self.task == "regression"

    def _image_level(self, what: str) -> None:
        if self.regression:
            raise PerturbError(f"a regression model predicts values per pixel, so it has no single {what}; use "
                               "prediction_map_clean / prediction_map_edited and pixels_changed()")
        if self.dense:
            raise PerturbError(f"a segmentation model predicts a class per pixel, so it has no single {what}; use "
                               "mask_clean / mask_edited and pixels_changed()")

    @property
    def prediction_clean(self) -> int:
        self._image_level("prediction")
        return int(np.argmax(self.logits_clean))

    @property
    def prediction_edited(self) -> int:
        self._image_level("prediction")
        return int(np.argmax(self.logits_edited))

    def _dense_only(self) -> None:
        if not self.dense:
            raise PerturbError("this model predicts one class per image; per-pixel predictions exist only for a "
                               "segmentation model")

    @property
    def prediction_map_clean(self) -> np.ndarray:
        """``[Ct, H, W]``: the predicted values before the change (regression)."""
        self._regression_only()
        return self.logits_clean

    @property
    def prediction_map_edited(self) -> np.ndarray:
        """``[Ct, H, W]``: the predicted values after the change (regression)."""
        self._regression_only()
        return self.logits_edited

    def _regression_only(self) -> None:
        if not self.regression:
            raise PerturbError("this model predicts classes; prediction maps of values exist only for a regression "
                               "model")

    def _classes_per_pixel(self) -> None:
        self._dense_only()
        if self.regression:
            raise PerturbError("a regression model predicts values per pixel, not classes, so it has no mask; use "
                               "prediction_map_clean / prediction_map_edited")

    @property
    def mask_clean(self) -> np.ndarray:
        """``[H, W]`` int64: the predicted class of every pixel before the change (segmentation)."""
        self._classes_per_pixel()
        return np.argmax(self.logits_clean, axis=0)

    @property
    def mask_edited(self) -> np.ndarray:
        """``[H, W]`` int64: the predicted class of every pixel after the change (segmentation)."""
        self._classes_per_pixel()
        return np.argmax(self.logits_edited, axis=0)

    def pixels_changed(self) -> int:
        """How many pixels' predicted class changed (segmentation), or how many pixels' predicted values changed by
        more than the tolerance (regression: ‖Δ ŷ‖ over the target channels)."""
        if self.regression:
            return int((self.logit_delta_map() > self.tolerance).sum())
        return int((self.mask_clean != self.mask_edited).sum())

    def logit_delta_map(self) -> np.ndarray:
        """``[H, W]``: ‖Δ logits‖ over the classes at every pixel (segmentation); ‖Δ ŷ‖ over the target channels
        (regression: |Δ prediction| for one channel)."""
        self._dense_only()
        d = self.logits_edited.astype(np.float64) - self.logits_clean.astype(np.float64)
        return np.sqrt(np.square(d).sum(axis=0))

    def prediction_changed(self) -> bool:
        """Whether the prediction changed: the image's class, or (segmentation) any pixel's class, or (regression)
        any pixel's values beyond the tolerance."""
        if self.dense:
            return self.pixels_changed() > 0
        return self.prediction_clean != self.prediction_edited

    def output_change(self) -> float:
        """‖Δ logits‖ (segmentation: over every class and pixel)."""
        d = self.logits_edited.astype(np.float64) - self.logits_clean.astype(np.float64)
        return float(np.sqrt(np.square(d).sum()))

    def to_table(self) -> list[dict]:
        """One row per tap: positions, changed, changed outside the region, max and total ‖Δ‖, amplification."""
        rows = []
        for tap in self.clean:
            norm = self.delta_norm(tap)
            size = self.axes[tap].size
            rows.append({"tap": tap, "height": size.height if size else 1, "width": size.width if size else 1,
                         "positions": len(norm), "changed": int(self.changed(tap).sum()),
                         "region": int(self.region(tap).sum()), "outside": self.outside(tap),
                         "max_norm": float(norm.max(initial=0.0)),
                         "total_norm": float(np.sqrt(np.square(norm).sum())),
                         "amplification": self.amplification(tap)})
        return rows


def _describe(occlusion, edits) -> str:
    parts = []
    if occlusion is not None:
        (y0, x0, y1, x1), fill = occlusion
        parts.append(f"occlude rows {y0:g}-{y1:g}, columns {x0:g}-{x1:g} with {fill}")
    for e in edits:
        units = "all units" if e.units is None else f"{len(e.units)} unit{'s' if len(e.units) != 1 else ''}"
        cells = f"{len(e.positions)} cell{'s' if len(e.positions) != 1 else ''}"
        parts.append(f"{e.action} {units} of {e.signal} at {cells}")
    return "; ".join(parts)


def perturb_image(model, image, *, occlude=None, edits: Sequence[Any] = (), taps: Sequence[str] | None = None,
                  tolerance: float = 0.0, edited_input=None, switches: Mapping[str, str] | None = None
                  ) -> ImageEffect:
    """Run ``image`` (``[C, H, W]`` in [0, 1]) clean and with the input box ``occlude = (box, fill)``
    occluded and/or ``edits`` (:class:`lstmviz.hooks.Edit` at raster cells of image taps) applied, and
    compare every tap in ``taps`` (default: every image and vector tap of the model).

    ``edited_input``: a whole edited image instead of an occlusion (an adversarial image ``x + r``); every
    pixel where it differs from ``image`` is a source of the change. ``switches``: the edited run under the
    model's switches (:func:`model_switches`: drop a modality, force a branch, prune edges) - a change of the
    model itself, so every cell of every tap may change (no receptive-field region bounds it)."""
    from lstmviz.engines.families.image.api import input_axis
    from lstmviz.hooks import Edit

    edits = list(edits or ())
    if occlude is None and not edits and edited_input is None and not switches:
        raise PerturbError("nothing to perturb: give an occlusion box, edits of units at cells or model switches")
    switched = {}
    if switches:
        from lstmviz.engines.families.image.api import checked_settings

        available = model_switches(model)
        if not available:
            raise PerturbError(f"{type(model).__name__} has no switches to set (no modalities, branches or edges "
                               f"to change)")
        try:
            values = checked_settings(available, switches)
        except ValueError as e:
            raise PerturbError(str(e)) from None
        defaults = {sw.name: sw.default for sw in available}
        switched = {name: value for name, value in values.items() if value != defaults[name]}
    if occlude is not None and edited_input is not None:
        raise PerturbError("give an occlusion or a whole edited input, not both")
    image = check_input(model, image)
    c, h, w = image.shape
    axes = tap_axes(model, h, w)
    if not axes:
        raise PerturbError(f"{type(model).__name__} has no image or vector taps to compare")
    sources = []
    for e in edits:
        if not isinstance(e, Edit):
            raise PerturbError(f"expected edits as lstmviz.hooks.Edit, got {type(e).__name__}")
        if e.signal not in axes:
            raise PerturbError(f"the model has no tap {e.signal!r}; it has {', '.join(axes)}")
        axis = axes[e.signal]
        if axis.size is None:
            if e.positions is not None and max(e.positions) > 0:
                raise PerturbError(f"{e.signal!r} is a vector tap with one position per image (position 0); "
                                   f"got position {max(e.positions)}")
            sources.append(np.array([[-np.inf, -np.inf, np.inf, np.inf]]))  # affects everything after it
            continue
        if e.positions is None:
            raise PerturbError(f"the edit of {e.signal!r} names no cells; choose the cells to change "
                               "(raster order, y * width + x)")
        n = axis.size.num_positions
        if max(e.positions) >= n:
            raise PerturbError(f"cell {max(e.positions)} does not exist on {e.signal!r}, whose map is "
                               f"{axis.size.height}x{axis.size.width} ({n} cells, 0 to {n - 1})")
        sources.append(_cell_boxes(axis)[list(e.positions)])
    edited_image = image
    if occlude is not None:
        try:
            box, fill = occlude
        except (TypeError, ValueError):
            raise PerturbError(f"expected occlude=(box, fill), got {occlude!r}") from None
        edited_image, (rows, cols) = occluded(image, box, fill)
        ys, xs = np.meshgrid(np.arange(rows.start, rows.stop), np.arange(cols.start, cols.stop), indexing="ij")
        cells = (ys * w + xs).reshape(-1)
        sources.append(_cell_boxes(input_axis(h, w))[cells])
        occlude = (tuple(float(v) for v in box), fill)
    if edited_input is not None:
        edited_image = check_input(model, edited_input)
        if edited_image.shape != image.shape:
            raise PerturbError(f"the edited input has shape {edited_image.shape}, the image {image.shape}")
        cells = np.flatnonzero(np.any(edited_image != image, axis=0).reshape(-1))
        sources.append(_cell_boxes(input_axis(h, w))[cells])
    if taps is None:
        taps = list(axes)
    unknown = [t for t in taps if t not in axes]
    if unknown:
        raise PerturbError(f"the model has no tap {', '.join(map(repr, unknown))}; it has {', '.join(axes)}")
    logits_clean, clean = image_forward(model, image, (), taps)
    try:
        logits_edited, edited = image_forward(model, edited_image, edits, taps, switched)
    except ValueError as e:  # a combination of switches the model cannot run, in its words
        raise PerturbError(str(e)) from None
    effect = ImageEffect(image, edited_image, clean, edited, {t: axes[t] for t in taps},
                         np.concatenate(sources) if sources else np.zeros((0, 4)),
                         tuple(dict.fromkeys(e.signal for e in edits)), occlude, logits_clean, logits_edited,
                         model_task(model), float(tolerance),
                         "; ".join(filter(None, [_describe(occlude, edits)
                                                 or ("an edited input" if edited_input is not None else ""),
                                                 ", ".join(f"{k}={v}" for k, v in switched.items())])))
    if switched:
        effect.extra["switches"] = dict(switched)
    return effect


__all__ = ["BLUR_WIDTH", "FILLS", "ImageEffect", "box_blur", "check_input", "image_forward", "model_switches", "image_taps",
           "occluded", "perturb_image", "pixels_in_box", "probabilities", "tap_axes"]
