"""``tagger``: iterative perceptual grouping with a denoiser (Greff, Rasmus, Berglund, Hao, Schmidhuber & Valpola,
"Tagger: Deep Unsupervised Perceptual Grouping", NIPS 2016, arXiv 1606.06724).

An image ``x ∈ [0, 1]^{C×P}`` (``P = H·W`` pixels; binary for the ``shapes`` data) is explained by ``K`` groups
(``K`` = the dataset's pixel classes: background + objects, 4 for ``shapes``). Group ``k`` holds a reconstruction
``z_k ∈ (0, 1)^{C×P}`` and a mask ``m_k ∈ (0, 1)^P`` with ``Σ_k m_k = 1`` at every pixel. One **shared** mapping,
applied to every group in parallel with the same weights, refines ``(z, m)`` over ``T`` iterations (weights tied
across iterations: the "recurrence" is over iterations, not time). Binary data, bit-flip noise of rate ``η``:

    x̃ = x + f ⊙ (1 − 2x),   f ~ Bernoulli(η)         corruption (training mode only; eval and recording
                                                        read the clean image, as the reference's clean path)
    m⁰ = softmax_k(L),  z⁰_k = z_init                    L: random normal mask logits [K, P] (seeded: below)

    per iteration t = 0 .. T−1 and group k, from (zᵗ, mᵗ):
    ξ_k  = η + (1 − 2η) z_k                             p(x̃ = 1 | z_k): the noise model (clipped to [ε, 1−ε])
    ξ    = Σ_k m_k ξ_k
    δz_k = m_k (1 − 2η) [x̃ / ξ − (1 − x̃) / (1 − ξ)]    ∂ log p(x̃ | z, m) / ∂z_k  (likelihood gradient; for
                                                        binary x̃ the reference's m_k (1−2η) / (ξ − 1 + x̃))
    m̂_k  = softmax_k(−Σ_c BCE(ξ_{k,c}, x̃_c))           normalised mask likelihood L(x̃ | z_k) / Σ_j L(x̃ | z_j),
                                                        per pixel (channels multiply)
    u_k  = [z̃_k, δz_k, m_k, m̂_k]                        z̃ = z⁰ at t = 0, the pre-sigmoid logits of z afterwards
    h_k  = ReLU(BN(W₀ u_k) + b₀)                        projection + normalisation + ReLU
    e_k  = ReLU(W₁ h_k + b₁)                             denoiser's top (encoder) activations
    d_k  = ReLU(W₂ e_k + V h_k + b₂)                     decoder with a lateral connection from h_k
    zᵗ⁺¹_k = σ(c_z ⊙ BN(W_z d_k) + b_z)                  new reconstruction
    mᵗ⁺¹   = softmax_k(c_m · BN(W_m d_k))                new masks (softmax over the groups, per pixel)

    cost   = (1/T) Σ_{t=1..T} mean_{c,p} BCE(Σ_k mᵗ_k zᵗ_k, x)   cross-entropy of the mixture against the CLEAN x

BN normalises each unit over the groups and the batch jointly (rows ``B·K``; batch statistics in training mode,
running statistics in eval mode, no learned scale), so no weight or statistic singles out a group: permuting the
groups of ``(m⁰, z⁰)`` permutes every later ``(m, z, δz, m̂, e)`` the same way. With ``K = 1`` every mask is 1 and
the model is a plain denoising network iterated ``T`` times.

Simplifications against the paper (written down, as issue 19 asks):

- **The Ladder network is replaced by a two-layer MLP with one lateral connection** (``e`` then ``d`` above):
  the paper's parametric mapping is a full Ladder network (encoder 2000-1000-500 for shapes, batch-normalised
  layers, a decoder with per-unit combinator functions at every layer); here the projection has ``hidden_size``
  units (default 500, the notes' CPU size), the top ``top_size`` (default 250), one decoder layer back to
  ``hidden_size`` with a *linear* lateral term ``V h`` instead of the Ladder's combinator, no BN inside the MLP,
  and no class-cost head (shapes is trained unsupervised, ``class_cost_x = 0`` in the reference runner).
- The cost is **averaged** over the iterations (as the reference code does; the paper's sum differs by the
  constant factor ``T``).
- Masks are **per pixel** (shared over the channels; ``m̂`` multiplies the channels' likelihoods), so the same
  model runs on multi-channel images; for one channel this is the reference's per-input-dimension mask.
- ``δz`` is written for soft targets ``x̃ ∈ [0, 1]`` (it equals the reference's binary formula on 0/1 inputs
  and stays finite on the image family's non-binary test images).
- **Group initialisation.** Training draws fresh ``L ~ N(0, 1)`` per image from torch's generator (seeded by
  the training loop). Eval mode (validation, recording, the contract's determinism) uses the buffer
  ``init_logits [K, P]``, drawn once at construction from ``init_seed`` and saved with the checkpoint, for every
  image; both can be overridden per call: ``forward(images, init_logits=[B, K, H, W], init_z=[B, K, C, H, W])``.

Output: ``log mᵀ`` ``[B, K, H, W]`` (per-pixel log-masks: the image family's segmentation shape; the arg-max is the
pixel's group — groups are exchangeable, so it is *not* a class prediction; the objective and the recorder score
the model by :meth:`Tagger.item_measures` instead of class accuracy). Training: :meth:`Tagger.loss` (the cost
above). Per image, :meth:`Tagger.item_measures` gives ``cost_iter{t}`` and ``ami_iter{t}`` for ``t = 0 .. T``
(``t = 0``: the initial random masks — the random-mask baseline; AMI: :mod:`.grouping`, over the pixels of
exactly one object), which the objective averages into ``valid_ami_iter{t}`` / ``valid_cost_iter{t}`` and the
recorder stores as numeric item annotations.

Taps (``T + 1`` states ``t = 0 .. T``: ``iter0`` is the initial state, ``iter{t}`` the output of iteration ``t``):
``iter{t}/mask`` ``[B, K, H, W]`` (IMAGE on the main axis: the pixels are the positions, unit ``k`` = group ``k``),
``iter{t}/z`` ``[B, K·C, H, W]`` (unit ``k·C + c``), ``iter{t}/recon`` ``[B, C, H, W]`` (``Σ_k m_k z_k``); for the
``T`` iterations ``t = 0 .. T−1`` (read from state ``t``): ``iter{t}/dz`` ``[B, K·C, H, W]``, ``iter{t}/mask_lh``
``[B, K, H, W]`` (``m̂``) and ``iter{t}/top`` ``[B, K, top_size]`` (SET on the axis ``groups``: one row per group,
``group 0 .. group K−1``, the denoiser's top activations ``e_k``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.engines.families.image.api import ImageAxis, set_axis
from lstmviz.geometry import AxisGeometry, ImageGeometry
from lstmviz.engines.spec import EngineSpec, Paper
from lstmviz.hooks import IMAGE, SET, Tap

from .grouping import grouping_ami

ENGINE = "tagger"
GROUP_AXIS = "groups"
#: the per-pixel maps: the input's pixel grid, but every pixel after the first iteration depends on every
#: pixel of the image (the denoiser is a dense map over the whole image), so the stated receptive field covers
#: the whole image from any pixel (the perturbation views bound where an edit can show by it)
PIXEL_AXIS = "pixels"
CLIP = 1e-4
"""ε: probabilities are squeezed into [ε, 1 − ε] before a logarithm (the reference's soft clip)."""


def soft_clip(p: Tensor, eps: float = CLIP) -> Tensor:
    return p * (1.0 - 2.0 * eps) + eps


def binary_nll(p: Tensor, x: Tensor) -> Tensor:
    """Elementwise ``−x log p − (1 − x) log(1 − p)`` with ``p`` soft-clipped."""
    p = soft_clip(p)
    return -(x * p.log() + (1.0 - x) * (1.0 - p).log())


class Tagger(nn.Module):
    """K groups refined over T iterations by one shared mapping (module docstring); ``groups`` = the dataset's
    pixel classes."""

    def __init__(self, channels: int, height: int, width: int, num_classes: int, task: str = "segmentation", *,
                 iterations: int = 3, hidden_size: int = 500, top_size: int = 250, noise: float = 0.2,
                 z_init: float = 0.26, init_seed: int = 0):
        super().__init__()
        if task != "segmentation":
            raise ValueError(f"tagger groups the pixels of images with per-pixel object ids: expected the "
                             f"segmentation task, got {task!r}")
        for name, v in (("iterations", iterations), ("hidden_size", hidden_size), ("top_size", top_size),
                        ("num_classes (groups)", num_classes)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"expected {name} to be an integer >= 1, got {v!r}")
        if not 0.0 <= float(noise) < 0.5:
            raise ValueError(f"expected noise (the bit-flip probability) in [0, 0.5), got {noise!r}")
        if not 0.0 < float(z_init) < 1.0:
            raise ValueError(f"expected z_init (the initial reconstruction) in (0, 1), got {z_init!r}")
        self.channels, self.height, self.width, self.task = int(channels), int(height), int(width), task
        self.num_classes = self.groups = int(num_classes)
        self.iterations, self.hidden_size, self.top_size = int(iterations), int(hidden_size), int(top_size)
        self.noise, self.z_init, self.init_seed = float(noise), float(z_init), int(init_seed)
        p = self.height * self.width
        d = self.channels * p
        self.proj = nn.Linear(2 * d + 2 * p, hidden_size, bias=False)
        self.proj_norm = nn.BatchNorm1d(hidden_size, affine=False)
        self.proj_bias = nn.Parameter(torch.zeros(hidden_size))
        self.encoder = nn.Linear(hidden_size, top_size)
        self.decoder = nn.Linear(top_size, hidden_size)
        self.lateral = nn.Linear(hidden_size, hidden_size, bias=False)
        self.z_out = nn.Linear(hidden_size, d, bias=False)
        self.z_norm = nn.BatchNorm1d(d, affine=False)
        self.z_scale = nn.Parameter(torch.ones(d))
        self.z_bias = nn.Parameter(torch.zeros(d))
        self.m_out = nn.Linear(hidden_size, p, bias=False)
        self.m_norm = nn.BatchNorm1d(p, affine=False)
        self.m_scale = nn.Parameter(torch.ones(()))
        generator = torch.Generator().manual_seed(self.init_seed)
        self.register_buffer("init_logits", torch.randn(self.groups, p, generator=generator))
        self.group_names = tuple(f"group {k}" for k in range(self.groups))
        states = range(self.iterations + 1)
        steps = range(self.iterations)
        what = lambda t: "the initial state" if t == 0 else f"after iteration {t}"  # noqa: E731
        self.mask_taps = nn.ModuleList(
            Tap(f"iter{t}/mask", signal="mask", layer=t, layout=IMAGE, axis=PIXEL_AXIS,
                description=f"masks m_k ({what(t)}): unit k = group k, sums to 1 over the units at every pixel")
            for t in states)
        self.z_taps = nn.ModuleList(
            Tap(f"iter{t}/z", signal="z", layer=t, layout=IMAGE, axis=PIXEL_AXIS,
                description=f"reconstructions z_k ({what(t)}): unit k*C + c = group k, channel c")
            for t in states)
        self.recon_taps = nn.ModuleList(
            Tap(f"iter{t}/recon", signal="recon", layer=t, layout=IMAGE, axis=PIXEL_AXIS,
                description=f"the mixture sum_k m_k z_k ({what(t)}): the denoised image, one unit per channel")
            for t in states)
        self.dz_taps = nn.ModuleList(
            Tap(f"iter{t}/dz", signal="dz", layer=t, layout=IMAGE, axis=PIXEL_AXIS,
                description=f"iteration {t + 1}'s input dz_k, the likelihood gradient w.r.t. z_k: unit k*C + c")
            for t in steps)
        self.mask_lh_taps = nn.ModuleList(
            Tap(f"iter{t}/mask_lh", signal="mask_lh", layer=t, layout=IMAGE, axis=PIXEL_AXIS,
                description=f"iteration {t + 1}'s input m^_k, the normalised mask likelihood: unit k = group k")
            for t in steps)
        self.top_taps = nn.ModuleList(
            Tap(f"iter{t}/top", signal="top", layer=t, layout=SET, axis=GROUP_AXIS,
                description=f"iteration {t + 1}: the denoiser's top activations e_k, one row per group")
            for t in steps)

    def extra_repr(self) -> str:
        return (f"groups={self.groups}, iterations={self.iterations}, hidden_size={self.hidden_size}, "
                f"top_size={self.top_size}, noise={self.noise}, z_init={self.z_init}, init_seed={self.init_seed}")

    def image_axes(self, height: int, width: int) -> dict[str, ImageAxis]:
        whole = (2 * height - 1, 2 * width - 1)
        pixels = ImageAxis(AxisGeometry(kind="image", stride=(1, 1), receptive_field=whole, offset=(0.0, 0.0)),
                           ImageGeometry(height, width))
        return {GROUP_AXIS: set_axis(self.group_names), PIXEL_AXIS: pixels}

    # -- the model ------------------------------------------------------------------------------------
    def _check(self, images: Tensor) -> Tensor:
        want = (self.channels, self.height, self.width)
        if images.ndim != 4 or tuple(images.shape[1:]) != want:
            raise ValueError(f"expected images [B, {', '.join(map(str, want))}], got {list(images.shape)}")
        return images.reshape(len(images), self.channels, -1)

    def corrupt(self, x: Tensor) -> Tensor:
        """Bit flips with probability ``noise`` (``x + f (1 − 2x)``; for x in [0, 1], x -> 1 − x where f = 1)."""
        if self.noise == 0.0:
            return x
        flips = (torch.rand_like(x) < self.noise).to(x.dtype)
        return x + flips * (1.0 - 2.0 * x)

    def initial_state(self, batch: int, like: Tensor, init_logits=None, init_z=None) -> tuple[Tensor, Tensor]:
        """``(m⁰ [B, K, P], z⁰ [B, K, C, P])`` (module docstring, "Group initialisation")."""
        k, c, p = self.groups, self.channels, self.height * self.width
        if init_logits is None:
            logits = (torch.randn(batch, k, p, dtype=like.dtype, device=like.device) if self.training
                      else self.init_logits.to(like.dtype)[None].expand(batch, k, p))
        else:
            logits = torch.as_tensor(init_logits, dtype=like.dtype, device=like.device)
            if logits.shape != (batch, k, self.height, self.width):
                raise ValueError(f"expected init_logits [B, K, H, W] = {[batch, k, self.height, self.width]}, "
                                 f"got {list(logits.shape)}")
            logits = logits.reshape(batch, k, p)
        if init_z is None:
            z = like.new_full((batch, k, c, p), self.z_init)
        else:
            z = torch.as_tensor(init_z, dtype=like.dtype, device=like.device)
            if z.shape != (batch, k, c, self.height, self.width):
                raise ValueError(f"expected init_z [B, K, C, H, W] = {[batch, k, c, self.height, self.width]}, "
                                 f"got {list(z.shape)}")
            z = z.reshape(batch, k, c, p)
        return logits.softmax(dim=1), z

    def _map(self, inputs: Tensor, batch: int) -> tuple[Tensor, Tensor, Tensor]:
        """The shared mapping on ``inputs [B, K, 2D + 2P]``: ``(z logits [B, K, D], mask logits [B, K, P],
        top [B, K, top_size])``; every group's row goes through the same weights, BN over all B·K rows."""
        k = self.groups
        rows = inputs.reshape(batch * k, -1)
        h = (self.proj_norm(self.proj(rows)) + self.proj_bias).relu()
        top = self.encoder(h).relu()
        dec = (self.decoder(top) + self.lateral(h)).relu()
        z_logit = self.z_scale * self.z_norm(self.z_out(dec)) + self.z_bias
        m_logit = self.m_scale * self.m_norm(self.m_out(dec))
        return z_logit.reshape(batch, k, -1), m_logit.reshape(batch, k, -1), top.reshape(batch, k, -1)

    @staticmethod
    def masks_from_logits(m_logit: Tensor) -> Tensor:
        """``m = softmax_k(logits)`` over the groups (dimension 1): every pixel's masks sum to 1."""
        return m_logit.softmax(dim=1)

    def _pixels(self, a: Tensor) -> Tensor:
        """``[B, U, P]`` -> ``[B, U, H, W]`` (an IMAGE tap's layout)."""
        return a.reshape(a.shape[0], a.shape[1], self.height, self.width)

    def _state_taps(self, t: int, m: Tensor, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Fires ``iter{t}/mask``, ``iter{t}/z`` and ``iter{t}/recon``; returns ``(m, z, mixture [B, C, P])`` as
        the taps give them (an intervention on a tap changes what follows)."""
        b = m.shape[0]
        m = self.mask_taps[t](self._pixels(m)).reshape(m.shape)
        z = self.z_taps[t](self._pixels(z.reshape(b, -1, z.shape[-1]))).reshape(z.shape)
        recon = (m[:, :, None] * z).sum(dim=1)
        return m, z, self.recon_taps[t](self._pixels(recon)).reshape(recon.shape)

    def run(self, images: Tensor, init_logits=None, init_z=None, corrupt: bool | None = None) -> dict:
        """Every state of one pass: ``{"masks": [m⁰ .. mᵀ] ([B, K, P]), "zs": [z⁰ .. zᵀ] ([B, K, C, P]),
        "recons": [x̂⁰ .. x̂ᵀ] ([B, C, P]), "mask_logits": the last mask logits [B, K, P], "clean": x [B, C, P],
        "noisy": x̃ [B, C, P] (the input the mapping read)}``.
        ``corrupt``: None = in training mode only."""
        x = self._check(images)
        b = len(x)
        eta = self.noise
        noisy = self.corrupt(x) if (self.training if corrupt is None else corrupt) else x
        m, z, recon = self._state_taps(0, *self.initial_state(b, x, init_logits, init_z))
        z_in = z  # z̃: z⁰ at t = 0, the pre-sigmoid logits afterwards (as the reference feeds them)
        masks, zs, recons = [m], [z], [recon]
        m_logit = None
        for t in range(self.iterations):
            xi_k = (eta + (1.0 - 2.0 * eta) * z).clamp(CLIP, 1.0 - CLIP)  # [B, K, C, P]
            xi = (m[:, :, None] * xi_k).sum(dim=1, keepdim=True)
            dz = m[:, :, None] * (1.0 - 2.0 * eta) * (noisy[:, None] / xi - (1.0 - noisy[:, None]) / (1.0 - xi))
            dz = self.dz_taps[t](self._pixels(dz.reshape(b, -1, dz.shape[-1]))).reshape(dz.shape)
            m_lh = (-binary_nll(xi_k, noisy[:, None]).sum(dim=2)).softmax(dim=1)  # [B, K, P]
            m_lh = self.mask_lh_taps[t](self._pixels(m_lh)).reshape(m_lh.shape)
            inputs = torch.cat([z_in.flatten(2), dz.flatten(2), m, m_lh], dim=2)
            z_logit, m_logit, top = self._map(inputs, b)
            self.top_taps[t](top)
            z_in = z_logit.reshape(z.shape)
            m, z, recon = self._state_taps(t + 1, self.masks_from_logits(m_logit), torch.sigmoid(z_in))
            masks.append(m)
            zs.append(z)
            recons.append(recon)
        return {"masks": masks, "zs": zs, "recons": recons, "mask_logits": m_logit, "clean": x, "noisy": noisy}

    def forward(self, images: Tensor, init_logits=None, init_z=None) -> Tensor:
        """Per-pixel log-masks of the last iteration ``[B, K, H, W]`` (module docstring)."""
        out = self.run(images, init_logits, init_z)
        return self._pixels(out["mask_logits"].log_softmax(dim=1))

    @staticmethod
    def costs(out: dict) -> Tensor:
        """``[T + 1, B]``: per state, each image's mean cross-entropy of ``x̂ᵗ`` against the clean image."""
        x = out["clean"]
        return torch.stack([binary_nll(r, x).flatten(1).mean(dim=1) for r in out["recons"]])

    def loss(self, images: Tensor, batch: dict | None = None) -> tuple[Tensor, int]:
        """The denoising cost averaged over iterations 1 .. T and the images; ``count`` = the images."""
        return self.costs(self.run(images))[1:].mean(), len(images)

    def item_measure_names(self) -> dict[str, str]:
        """``{name: description}`` of :meth:`item_measures`."""
        names = {}
        for t in range(self.iterations + 1):
            when = "the initial random masks (the random-mask baseline)" if t == 0 else f"after iteration {t}"
            names[f"ami_iter{t}"] = (f"grouping AMI of argmax_k m_k {when} against the objects, over the pixels of "
                                     f"exactly one object (NaN: none)")
            names[f"cost_iter{t}"] = f"mean cross-entropy of sum_k m_k z_k against the clean image, {when}"
        return names

    @torch.no_grad()
    def item_measures(self, images: Tensor, batch: dict | None = None) -> dict[str, np.ndarray]:
        """Per image (float64 ``[B]``): ``ami_iter{t}`` (needs ``batch["mask"]`` ``[B, H, W]``, 0 = background,
        −1 = ignored; NaN without it) and ``cost_iter{t}`` for ``t = 0 .. T``, from one pass in the current mode
        (no corruption unless training)."""
        out = self.run(images)
        costs = self.costs(out).double().cpu().numpy()
        mask = None if batch is None else batch.get("mask")
        result = {}
        for t, m in enumerate(out["masks"]):
            if mask is None:
                result[f"ami_iter{t}"] = np.full(len(images), np.nan)
            else:
                result[f"ami_iter{t}"] = grouping_ami(m.double().cpu().numpy(), np.asarray(torch.as_tensor(mask).cpu()))
            result[f"cost_iter{t}"] = costs[t]
        return result


def build(channels: int, height: int, width: int, num_classes: int, task: str = "segmentation", *,
          iterations: int = 3, hidden_size: int = 500, top_size: int = 250, noise: float = 0.2, z_init: float = 0.26,
          init_seed: int = 0) -> Tagger:
    return Tagger(channels, height, width, num_classes, task, iterations=iterations, hidden_size=hidden_size,
                  top_size=top_size, noise=noise, z_init=z_init, init_seed=init_seed)


SPEC = EngineSpec(
    name=ENGINE,
    description="K groups refined over T tied iterations by one shared denoising mapping on (z, dz, m, m^): "
                "unsupervised perceptual grouping",
    family="image",
    paper=Paper(
        title="Tagger: Deep Unsupervised Perceptual Grouping",
        authors="Greff, Rasmus, Berglund, Hao, Schmidhuber, Valpola",
        arxiv="1606.06724",
        year=2016,
    ),
    build=build,
    default_config={"iterations": 3, "hidden_size": 500, "top_size": 250, "noise": 0.2, "z_init": 0.26,
                    "init_seed": 0},
    taps=("iter{layer}/mask", "iter{layer}/z", "iter{layer}/recon", "iter{layer}/dz", "iter{layer}/mask_lh",
          "iter{layer}/top"),
    default_dataset="shapes",
    train_defaults={"steps": 3000, "batch_size": 32, "lr": 0.001, "eval_every": 500, "optimizer": "adam",
                    "clip": 5.0, "seed": 0},
)
"""Trained by default on ``shapes`` (``datasets/images/shapes.py``): K = 4 groups, T = 3 iterations, η = 0.2."""
