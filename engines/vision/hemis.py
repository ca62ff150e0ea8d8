"""``hemis``: Hetero-Modal Image Segmentation (Havaei, Guizard, Chapados & Bengio, MICCAI 2016).

The input's ``M = channels`` channels are ``M`` modalities (one channel each). For a batch, ``a ∈ {0,1}^{B×M}``
says which modalities each example has (``available``; every row has at least one 1). For example ``b`` with
available set ``K_b = {k : a_bk = 1}``:

    f_k = g_k(x_k)          back-end of modality k, run only on the examples that have k:
        g_k(x) = ReLU(W_k2 ⋆ ReLU(W_k1 ⋆ x + c_k1) + c_k2)           (two 3×3 convs, padding 1, C = hidden_size
                                                                          channels; tap ``backend_{k}``)
    μ  = (1/|K|) Σ_{k∈K} f_k                                          (tap ``mu``)
    s² = (1/(|K|−1)) Σ_{k∈K} (f_k − μ)²   if |K| ≥ 2,   s² = 0 if |K| = 1   (unbiased variance; tap ``s2``)
    u_1 = ReLU(V_1 ⋆_2 [μ, s²] + d_1)      3×3 conv, dilation 2, padding 2, F = front_size channels (``front0``)
    u_2 = ReLU(V_2 ⋆_4 u_1 + d_2)          3×3 conv, dilation 4, padding 4 (``front1``)
    z   = V_3 u_2 + d_3                    1×1 conv: per-pixel logits ``[B, num_classes, H, W]`` (``logits``)

All maps keep the input's ``H × W``. Receptive fields (input pixels): back-end 5, ``mu``/``s2`` 5, ``front0`` 9,
``front1`` and ``logits`` 17, so every pixel of a 16×16 input sees (nearly) the whole digit it must name.

Choices the paper leaves open or that differ from it (written down, as issue 17 asks):

- **Sizes.** The paper's back-ends (two conv layers per modality) and front-end are wider, with larger kernels,
  and keep the input's resolution as here (exact sizes not re-verified against the paper for this module). Here: 3×3
  convs, ``hidden_size = 16`` per back-end, ``front_size = 32``, and two *dilated* front-end convs so that a
  pixel's class (which digit) is decided from the whole 16×16 image; no pooling, no BatchNorm anywhere (a
  back-end never sees a missing modality, so no normalisation statistics could be polluted anyway).
- **Abstraction per example.** ``a`` is a per-example mask, so one batch mixes subsets. The sums over ``K`` are
  taken over the modality axis *after sorting it* per element (missing entries contribute exact zeros): the
  result is the same floating-point number whatever the order of the available embeddings, i.e. the layer is
  bitwise symmetric. ``s²`` is the *variance* (not the standard deviation), unbiased, and exactly 0 when
  ``|K| = 1`` (torch's ``.var`` on one element would give NaN; it is never called).
- **Missing modalities are never read.** ``g_k`` runs on ``x[a[:, k], k]`` only (an index selection); the
  pixels of a missing channel never enter any arithmetic, so a NaN-filled missing channel gives the same,
  finite, output as a zero-filled one. The ``backend_{k}`` tap holds **zeros** for the examples that lack ``k``
  (the tap fires for every ``k`` on every call, with the full batch shape; when no example has ``k``, ``g_k``
  does not run at all and the tap gets zeros). Those zeros are never used by the abstraction.
- **Choosing the subset.** ``forward(images, available=None)``: ``available`` a ``[M]`` or ``[B, M]`` bool
  mask (a tensor, array, list or tuple); ``None`` uses the attribute ``model.available`` (default ``None`` =
  every modality). So a recording or a perturbation drops a modality without a new call signature::

      model.available = (True, False, True, True)   # every later call runs without modality 1
      model.available = None                        # back to all modalities

  A mask that is all False (in any row), of the wrong length or not boolean is refused in one sentence.
- **Training** (:meth:`HeMIS.loss`, the objective's ``model.loss`` hook): per-pixel cross-entropy on
  ``batch["mask"]`` (``[B, H, W]`` int64, −1 = ignored), the mean over the non-ignored pixels; ``count`` = the
  number of images. In training mode every example draws its own subset: each modality is dropped
  independently with probability ``p(t) = drop_max · min(1, t / curriculum_steps)`` and an example left with
  nothing redraws (rejection), so training **starts with all modalities** (``p(0) = 0``: the paper's
  curriculum) and ends, at the default ``drop_max = 0.5``, with each of the ``2^M − 1`` non-empty subsets
  equally likely (``drop_max = 0.3`` was also measured: docs/engines.md, ``hemis``).
  ``t`` is the buffer ``steps_seen``, the number of training-mode ``loss`` calls so far (saved with the
  checkpoint). In eval mode ``loss`` uses ``model.available`` (validation on all modalities by default).
- **Taps.** ``backend_{k}`` (IMAGE, one axis per modality, named like the tap; ``SPEC.taps`` writes it
  ``backend_{layer}``, the registry's placeholder, which here counts modalities), ``modalities`` (SET, axis
  ``modality``: one row per modality, ``M`` rows per image, row ``k`` = ``mean_{y,x} g_k(x_k)``, the spatially
  mean-pooled back-end map, ``C = hidden_size`` units; so the per-modality embeddings of one image sit side by
  side in the Image dock's Sets tab), ``mu`` and ``s2`` (IMAGE, axis ``abstraction``), ``front0`` and ``front1``
  (IMAGE, their own axes), ``logits`` (IMAGE, axis ``logits``: the per-pixel class scores, all 11 as units, as
  ``seg-cnn``'s ``logits``). No SCALAR tap. The ``modalities`` tap is a read-out: nothing downstream uses its
  value, so editing it changes nothing. A modality the example lacks keeps its row, all zeros (its back-end map
  is zeros there); the set axis's member names are ``modality_names`` (a sequence, or one comma-separated
  string, of ``M`` names; default ``m0 .. m{M-1}``, since the model does not know its data set; for
  ``digits-modalities`` pass ``noisy,blurred,edges,inverted``).
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.engines.families.image.api import ConvStep, ImageAxis, Switch, checked_settings, conv_chain, set_axis
from lstmviz.engines.spec import EngineSpec, Paper
from lstmviz.hooks import IMAGE, SET, Tap

ENGINE = "hemis"
BACKEND_STEPS = (ConvStep(3, 1, 1), ConvStep(3, 1, 1))
FRONT_STEPS = (ConvStep(3, 1, 2, 2), ConvStep(3, 1, 4, 4))


class AvailabilityError(ValueError):
    """An ``available`` mask the model cannot use; one sentence."""


def abstraction(features: Tensor, available: Tensor) -> tuple[Tensor, Tensor]:
    """HeMIS's abstraction layer: ``(μ, s²)`` over the available modalities, per example.

    ``features [B, M, C, H, W]`` (entries of missing modalities are ignored, whatever they hold, NaN included),
    ``available [B, M]`` bool with at least one True per row. Returns ``μ, s² [B, C, H, W]`` (module docstring):
    bitwise symmetric in the available embeddings, ``s² = 0`` exactly when ``|K| = 1``.
    """
    a = available[:, :, None, None, None]
    zero = features.new_zeros(())
    n = available.sum(dim=1).to(features.dtype)[:, None, None, None]
    f = torch.where(a, features, zero)
    mu = f.sort(dim=1).values.sum(dim=1) / n
    d2 = torch.where(a, (features - mu[:, None]) ** 2, zero)
    s2 = d2.sort(dim=1).values.sum(dim=1) / (n - 1).clamp(min=1)
    s2 = torch.where(n > 1, s2, zero)
    return mu, s2


def _as_mask(available: Any, batch: int, modalities: int, device) -> Tensor:
    """``available`` as a ``[batch, modalities]`` bool tensor, or :class:`AvailabilityError`."""
    a = available if isinstance(available, Tensor) else torch.as_tensor(np.asarray(available))
    if a.dtype != torch.bool:
        raise AvailabilityError(f"available must be a bool mask over the {modalities} modalities, got dtype {a.dtype}")
    if a.ndim == 1:
        a = a[None].expand(batch, -1)
    if a.ndim != 2 or a.shape[1] != modalities or a.shape[0] != batch:
        raise AvailabilityError(f"available must have shape [{modalities}] or [{batch}, {modalities}] (one flag per "
                                f"modality), got {list(a.shape)}")
    if not bool(a.any(dim=1).all()):
        raise AvailabilityError("available leaves an example with no modality; at least one must be present")
    return a.to(device)


def _modality_names(names, modalities: int) -> tuple[str, ...]:
    """``names`` (a sequence or one comma-separated string; None: ``m0 .. m{M-1}``) as ``M`` distinct names."""
    if names is None:
        return tuple(f"m{k}" for k in range(modalities))
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",")]
    out = tuple(str(n) for n in names)
    if len(out) != modalities or len(set(out)) != len(out) or not all(out):
        raise ValueError(f"expected modality_names to be {modalities} distinct non-empty names (one per modality), "
                         f"got {list(out)}")
    return out


class HeMIS(nn.Module):
    """Per-modality back-ends, mean and variance over the available modalities, a front-end segmenter
    (module docstring). ``channels`` = number of modalities (one channel each)."""

    def __init__(self, channels: int, height: int, width: int, num_classes: int, task: str = "segmentation", *,
                 hidden_size: int = 16, front_size: int = 32, curriculum_steps: int = 200, drop_max: float = 0.5,
                 modality_names=None):
        super().__init__()
        if task != "segmentation":
            raise ValueError(f"hemis segments images (task 'segmentation'), got task {task!r}")
        if channels < 1:
            raise ValueError(f"expected channels (modalities) >= 1, got {channels}")
        for name, v in (("hidden_size", hidden_size), ("front_size", front_size), ("num_classes", num_classes)):
            if v < 1:
                raise ValueError(f"expected {name} >= 1, got {v}")
        if curriculum_steps < 0:
            raise ValueError(f"expected curriculum_steps >= 0, got {curriculum_steps}")
        if not 0.0 <= drop_max < 1.0:
            raise ValueError(f"expected drop_max in [0, 1), got {drop_max}")
        self.channels, self.height, self.width, self.task = channels, height, width, task
        self.modality_names = _modality_names(modality_names, channels)
        self.num_classes, self.hidden_size, self.front_size = num_classes, hidden_size, front_size
        self.curriculum_steps, self.drop_max = int(curriculum_steps), float(drop_max)
        self.backends = nn.ModuleList(
            nn.ModuleList([nn.Conv2d(1, hidden_size, 3, padding=1), nn.Conv2d(hidden_size, hidden_size, 3, padding=1)])
            for _ in range(channels))
        self.backend_taps = nn.ModuleList(
            Tap(f"backend_{k}", signal="backend", layer=k, layout=IMAGE, axis=f"backend_{k}",
                description=f"modality {k}'s back-end map g_{k}(x_{k}) (zeros for examples without modality {k})")
            for k in range(channels))
        self.modalities_tap = Tap("modalities", signal="modalities", layout=SET, axis="modality",
                                  description=f"per modality ({', '.join(self.modality_names)}): its back-end map "
                                              f"g_k(x_k) mean-pooled over the image (zeros for a missing modality)")
        self.mu_tap = Tap("mu", layout=IMAGE, axis="abstraction",
                          description="mean of the back-end maps over the available modalities")
        self.s2_tap = Tap("s2", layout=IMAGE, axis="abstraction",
                          description="unbiased variance of the back-end maps over the available modalities "
                                      "(0 with one modality)")
        self.front = nn.ModuleList([nn.Conv2d(2 * hidden_size, front_size, 3, padding=2, dilation=2),
                                    nn.Conv2d(front_size, front_size, 3, padding=4, dilation=4)])
        self.front_taps = nn.ModuleList(
            Tap(f"front{i}", signal="front", layer=i, layout=IMAGE, axis=f"front{i}",
                description=f"front-end conv {i} (dilation {2 ** (i + 1)}) after ReLU")
            for i in range(2))
        self.classifier = nn.Conv2d(front_size, num_classes, 1)
        self.logits_tap = Tap("logits", layout=IMAGE, axis="logits", description="per-pixel class logits")
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.int64))
        self._available: tuple[bool, ...] | None = None
        self.image_axes(height, width)

    # -- the default subset -------------------------------------------------------------------------
    @property
    def available(self) -> tuple[bool, ...] | None:
        """The modalities a call without ``available=`` uses: a tuple of ``M`` bools, or None for all."""
        return self._available

    @available.setter
    def available(self, value) -> None:
        if value is None:
            self._available = None
            return
        if np.ndim(value) != 1:
            raise AvailabilityError(f"model.available must be one flag per modality ({self.channels}), "
                                    f"got shape {list(np.shape(value))}")
        mask = _as_mask(value, 1, self.channels, "cpu")[0]
        self._available = tuple(bool(v) for v in mask)

    def extra_repr(self) -> str:
        return (f"modalities={self.channels} ({', '.join(self.modality_names)}), hidden_size={self.hidden_size}, front_size={self.front_size}, "
                f"num_classes={self.num_classes}, curriculum_steps={self.curriculum_steps}, drop_max={self.drop_max}")

    def perturbation_switches(self) -> list[Switch]:
        """One switch per modality, ``on`` (present) or ``off`` (dropped: its back-end never runs)."""
        return [Switch(f"modality{k}", ("on", "off"), "on", f"modality {k}: present, or dropped (never read)")
                for k in range(self.channels)]

    @contextlib.contextmanager
    def switched(self, settings):
        """Run with the modalities that ``settings`` leaves ``on`` (``model.available``), restored after."""
        values = checked_settings(self.perturbation_switches(), settings)
        flags = tuple(values[f"modality{k}"] == "on" for k in range(self.channels))
        if not any(flags):
            raise ValueError("every modality is off; HeMIS needs at least one modality to segment")
        saved = self.available
        self.available = flags
        try:
            yield self
        finally:
            self.available = saved

    def image_axes(self, height: int, width: int) -> dict[str, ImageAxis]:
        backend = conv_chain(height, width, BACKEND_STEPS)
        axes = {f"backend_{k}": backend for k in range(self.channels)}
        axes["modality"] = set_axis(self.modality_names)
        axes["abstraction"] = backend
        axes["front0"] = conv_chain(height, width, BACKEND_STEPS + FRONT_STEPS[:1])
        axes["front1"] = conv_chain(height, width, BACKEND_STEPS + FRONT_STEPS)
        axes["logits"] = conv_chain(height, width, BACKEND_STEPS + FRONT_STEPS + (ConvStep(1),))
        return axes

    # -- the model ------------------------------------------------------------------------------------
    def mask_for(self, images: Tensor, available=None) -> Tensor:
        """The ``[B, M]`` bool mask a call would use (``available``, else ``model.available``, else all)."""
        if images.ndim != 4 or images.shape[1] != self.channels:
            raise ValueError(f"expected images [B, {self.channels}, H, W] (one channel per modality), "
                             f"got {list(images.shape)}")
        if available is None:
            available = self._available
        if available is None:
            return torch.ones(images.shape[0], self.channels, dtype=torch.bool, device=images.device)
        return _as_mask(available, images.shape[0], self.channels, images.device)

    def embed(self, images: Tensor, available: Tensor) -> Tensor:
        """``[B, M, C, H, W]``: each back-end run on the examples that have its modality, zeros elsewhere."""
        b, _, h, w = images.shape
        feats = []
        for k, ((conv1, conv2), tap) in enumerate(zip(self.backends, self.backend_taps)):
            rows = available[:, k].nonzero().flatten()
            fk = images.new_zeros((b, self.hidden_size, h, w), dtype=conv1.weight.dtype)
            if len(rows):
                xk = images.index_select(0, rows)[:, k:k + 1]  # never touches a missing modality's pixels
                fk = fk.index_copy(0, rows, conv2(conv1(xk).relu()).relu())
            feats.append(tap(fk))
        return torch.stack(feats, dim=1)

    def forward(self, images: Tensor, available=None) -> Tensor:
        """Per-pixel logits ``[B, num_classes, H, W]`` from ``images [B, M, H, W]`` with the modalities that
        ``available`` (``[M]`` or ``[B, M]`` bool; None: ``model.available``, else all) marks present."""
        a = self.mask_for(images, available)
        features = self.embed(images, a)
        self.modalities_tap(features.mean(dim=(3, 4)))  # [B, M, C]: a read-out, nothing uses it
        mu, s2 = abstraction(features, a)
        u = torch.cat([self.mu_tap(mu), self.s2_tap(s2)], dim=1)
        for conv, tap in zip(self.front, self.front_taps):
            u = tap(conv(u).relu())
        return self.logits_tap(self.classifier(u))

    def draw_subsets(self, batch: int, device=None) -> Tensor:
        """``[batch, M]`` random non-empty subsets at the current curriculum step (module docstring)."""
        ramp = 1.0 if self.curriculum_steps == 0 else min(1.0, int(self.steps_seen) / self.curriculum_steps)
        p = self.drop_max * ramp
        keep = torch.rand(batch, self.channels, device=device) >= p
        empty = ~keep.any(dim=1)
        while bool(empty.any()):
            keep[empty] = torch.rand(int(empty.sum()), self.channels, device=device) >= p
            empty = ~keep.any(dim=1)
        return keep

    def loss(self, images: Tensor, batch: dict) -> tuple[Tensor, int]:
        """Mean per-pixel cross-entropy on ``batch["mask"]`` (−1 ignored) and the number of images; random
        subsets with the curriculum in training mode, ``model.available`` in eval mode (module docstring)."""
        target = batch["mask"]
        if self.training:
            available = self.draw_subsets(len(images), images.device)
            self.steps_seen += 1
        else:
            available = None
        logits = self(images, available)
        if not bool((target >= 0).any()):
            return logits.sum() * 0.0, len(images)
        return F.cross_entropy(logits, target, ignore_index=-1), len(images)


def build(channels: int, height: int, width: int, num_classes: int, task: str = "segmentation", *,
          hidden_size: int = 16, front_size: int = 32, curriculum_steps: int = 200, drop_max: float = 0.5,
          modality_names=None) -> HeMIS:
    return HeMIS(channels, height, width, num_classes, task, hidden_size=hidden_size, front_size=front_size,
                 curriculum_steps=curriculum_steps, drop_max=drop_max, modality_names=modality_names)


SPEC = EngineSpec(
    name=ENGINE,
    description="per-modality conv back-ends, mean and variance over the available modalities, conv front-end: "
                "segmentation with any subset of modalities",
    family="image",
    paper=Paper(
        title="HeMIS: Hetero-Modal Image Segmentation",
        authors="Havaei, Guizard, Chapados, Bengio",
        arxiv="1607.05194",
        year=2016,
    ),
    build=build,
    default_config={"hidden_size": 16, "front_size": 32, "curriculum_steps": 200, "drop_max": 0.5},
    taps=("backend_{layer}", "modalities", "mu", "s2", "front0", "front1", "logits"),
    default_dataset="digits-modalities",
    train_defaults={"steps": 1200, "batch_size": 32, "lr": 0.003, "eval_every": 200, "optimizer": "adam",
                    "clip": 5.0, "seed": 0},
)
"""Trained by default on ``digits-modalities`` (``datasets/images/modalities.py``), the 4-modality digits."""
