"""``depth-sr``: progressive CNN depth super-resolution with a colour-weighted refinement (after Song, Dai & Qin,
"Deep Depth Super-Resolution: Learning Depth Super-Resolution using Deep Convolutional Neural Network",
ACCV 2016, arXiv 1607.01977). The paper was not available offline: this is the reading of the project's reference
notes (shared/reference/models_graph_vision.md V5), and every open choice is written here and in
docs/engines.md.

**Input.** The image family's one tensor ``x [B, C, H, W]`` holds a colour guide and the low-resolution target:
channels ``0 .. C−Ct−1`` are the guide ``I`` (``depth-synth``: RGB), channels ``C−Ct .. C−1`` the ×4
low-resolution depth (``Ct`` channels; ``depth-synth``: one) replicated ×4 (nearest). ``H`` and ``W`` are
multiples of 4 and ``C > Ct``. The low-resolution depth is recovered by block averaging (exact up to float
rounding for a replicated channel, and still defined when a perturbation edits single pixels of it),
``D_0 = avgpool_4(x[:, C−Ct:])`` ``[B, Ct, H/4, W/4]`` (tap ``lowres``).

**Progressive network** (``stages = 2``: ×2 then ×2). Stage ``s = 1, 2`` works at ``H_s = H / 2^{2−s}``:

    U_s = bicubic_×2(D_{s−1})                     (F.interpolate, mode bicubic, align_corners=False)
    G_s = avgpool_{2^{2−s}}(I)                     (the guide at the stage's resolution: area averaging)
    h_0 = [U_s ; G_s],  h_{i+1} = ReLU(conv3×3(h_i)) for i < L−1       (taps ``s{s}_conv{i}``)
    D_s = U_s + conv3×3(h_{L−1})                   (the residual branch; tap ``s{s}_out``)

with ``L = num_layers`` convolutions per branch, ``hidden_size`` channels. The last convolution of each branch
starts at zero, so an untrained network *is* bicubic upsampling (and the alignment test zeroes it to check that
each stage returns ``bicubic_×2`` of the previous estimate exactly). ``stages = 1`` is the one-shot ×4 baseline:
``D = bicubic_×4(D_0) + branch([bicubic_×4(D_0) ; I])`` with one branch of ``2 L − 1`` convolutions (about the
same number of parameters as two branches of ``L``; the benchmark prints both counts). ``D_cnn = D_2`` (tap
``cnn``).

**Refinement** (the energy with a quadratic colour term; the depth-field-statistics prior is not implemented):

    D* = argmin_D ‖D − D_cnn‖² + λ Σ_{(i,j) ∈ N4} w_ij (D_i − D_j)²,    w_ij = exp(−‖I_i − I_j‖² / 2σ_c²)

i.e. ``(I + λ L_w) D* = D_cnn`` with ``L_w`` the weighted Laplacian of the 4-neighbour pixel graph (each channel
of ``D`` separately, the same ``L_w``). It is solved **exactly** (a direct solve, not an iteration): when autograd
needs it (grad enabled and ``D_cnn`` or the guide requiring grad) by a dense ``torch.linalg.solve`` per image
(``HW × HW``; a 32×32 image is a 1024² system, images in chunks so that a chunk's matrices stay under 128 MB),
which is **differentiable** (autograd through the solve), so ``refine_in_training=True`` trains through it;
otherwise (recording, evaluation) by a sparse LU per image (``scipy.sparse.linalg.spsolve`` on the same matrix
in float64, ~50× faster at 32×32), not differentiable. Both satisfy the system to ~1e-13 (tested to 1e-8);
by default (``refine_in_training=False``) the CNN is trained alone and the refinement is applied only in eval
mode. ``λ = 0`` returns ``D_cnn`` itself (tap ``refined``). λ is ``refine_lambda``, σ_c ``sigma_c`` (colours in
``[0, 1]``). Without guide channels the weights would all be 1; the engine refuses ``C ≤ Ct`` instead.

**Taps and geometry.** Every map is recorded at its own resolution on its own axis: the ``lowres`` grid has
stride 4 (offset 1.5: cell ``i`` covers input pixels ``4i .. 4i+3``), stage 1's grid stride 2 (offset 0.5),
stage 2's stride 1 (offset 0). :func:`conv_chain` only describes downsampling chains, so the receptive fields
are computed here (:func:`_influence`): a symmetric bound, in input pixels, of what can change a cell —
the low-resolution cells are 4×4 blocks, ``bicubic_×2`` from a grid of stride ``s`` reads input cells up to
``1.75 s`` from the output cell's centre, a 3×3 convolution at stride ``s`` adds ``s`` on each side, and the
guide pooled to stride ``s`` covers ``± (s − 1)/2``. ``refined`` is a global solve: every input pixel can change
every output pixel, so its receptive field is the whole image (``2 max(H, W) − 1``). ``energy`` (on the
``refined`` axis, 2 units) is the refinement energy per pixel: the data term ``(D*_i − D_cnn,i)²`` and the colour
term ``(λ/2) Σ_j w_ij (D*_i − D*_j)²`` (:func:`energy_terms`; the map sums to the minimised energy).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.engines.families.image.api import ImageAxis
from lstmviz.engines.spec import EngineSpec, Paper
from lstmviz.geometry import AxisGeometry, ImageGeometry
from lstmviz.hooks import IMAGE, Tap

FACTOR = 4
SOLVE_BYTES = 128 * 2 ** 20


def bicubic2(d: Tensor) -> Tensor:
    """``d [B, C, h, w]`` upsampled ×2 (bicubic, ``align_corners=False``: half-pixel centres)."""
    return F.interpolate(d, scale_factor=2, mode="bicubic", align_corners=False)


def edge_weights(guide: Tensor, sigma_c: float) -> tuple[Tensor, Tensor]:
    """``(w_y [B, H−1, W], w_x [B, H, W−1])``: ``exp(−‖I_i − I_j‖² / 2σ_c²)`` for the vertical and horizontal
    4-neighbour pairs of ``guide [B, G, H, W]`` (all 1 when ``G = 0``)."""
    dy = (guide[:, :, 1:] - guide[:, :, :-1]).pow(2).sum(1)
    dx = (guide[:, :, :, 1:] - guide[:, :, :, :-1]).pow(2).sum(1)
    s2 = 2.0 * float(sigma_c) ** 2
    return torch.exp(-dy / s2), torch.exp(-dx / s2)


def refinement_matrix(guide: Tensor, lam: float, sigma_c: float) -> Tensor:
    """``[B, HW, HW]``: ``I + λ L_w`` for ``guide [B, G, H, W]`` (raster order, 4-neighbours)."""
    b, _, h, w = guide.shape
    n = h * w
    wy, wx = edge_weights(guide, sigma_c)
    idx = torch.arange(n, device=guide.device).reshape(h, w)
    p = torch.cat([idx[:-1].reshape(-1), idx[:, :-1].reshape(-1)])
    q = torch.cat([idx[1:].reshape(-1), idx[:, 1:].reshape(-1)])
    weight = lam * torch.cat([wy.reshape(b, -1), wx.reshape(b, -1)], dim=1)  # [B, pairs]
    a = torch.eye(n, dtype=guide.dtype, device=guide.device).expand(b, n, n).clone()
    bi = torch.arange(b, device=guide.device)[:, None].expand_as(weight)
    pp, qq = p.expand_as(weight), q.expand_as(weight)
    a = a.index_put((bi, pp, pp), weight, accumulate=True)
    a = a.index_put((bi, qq, qq), weight, accumulate=True)
    a = a.index_put((bi, pp, qq), -weight, accumulate=True)
    a = a.index_put((bi, qq, pp), -weight, accumulate=True)
    return a


def colour_refine(d_cnn: Tensor, guide: Tensor, lam: float, sigma_c: float) -> Tensor:
    """``D*`` solving ``(I + λ L_w) D* = D_cnn`` exactly (module docstring) for ``d_cnn [B, Ct, H, W]`` and
    ``guide [B, G, H, W]``; ``λ = 0`` returns ``d_cnn`` itself. Differentiable."""
    if lam < 0:
        raise ValueError(f"expected refine_lambda >= 0, got {lam}")
    if lam == 0:
        return d_cnn
    if not (torch.is_grad_enabled() and (d_cnn.requires_grad or guide.requires_grad)):
        return sparse_refine(d_cnn, guide, lam, sigma_c)
    b, ct, h, w = d_cnn.shape
    n = h * w
    per_image = n * n * d_cnn.element_size()
    chunk = max(1, SOLVE_BYTES // per_image)
    outs = []
    for start in range(0, b, chunk):
        g = guide[start:start + chunk].to(d_cnn.dtype)
        a = refinement_matrix(g, float(lam), sigma_c)
        rhs = d_cnn[start:start + chunk].reshape(len(g), ct, n).transpose(1, 2)  # [b, N, Ct]
        outs.append(torch.linalg.solve(a, rhs).transpose(1, 2).reshape(len(g), ct, h, w))
    return torch.cat(outs)


def sparse_refine(d_cnn: Tensor, guide: Tensor, lam: float, sigma_c: float) -> Tensor:
    """:func:`colour_refine` by a sparse direct solve per image (scipy, float64; not differentiable)."""
    import numpy as np
    from scipy import sparse
    from scipy.sparse.linalg import splu

    b, ct, h, w = d_cnn.shape
    n = h * w
    wy, wx = (t.detach().cpu().double().numpy() for t in edge_weights(guide.detach().double(), sigma_c))
    idx = np.arange(n).reshape(h, w)
    p = np.concatenate([idx[:-1].reshape(-1), idx[:, :-1].reshape(-1)])
    q = np.concatenate([idx[1:].reshape(-1), idx[:, 1:].reshape(-1)])
    rhs_all = d_cnn.detach().cpu().double().numpy().reshape(b, ct, n)
    out = np.empty_like(rhs_all)
    for k in range(b):
        wk = lam * np.concatenate([wy[k].reshape(-1), wx[k].reshape(-1)])
        off = sparse.coo_matrix((np.concatenate([-wk, -wk]), (np.concatenate([p, q]), np.concatenate([q, p]))),
                                shape=(n, n))
        diag = 1.0 + np.bincount(p, wk, minlength=n) + np.bincount(q, wk, minlength=n)
        a = (off + sparse.diags(diag)).tocsc()
        out[k] = splu(a).solve(np.ascontiguousarray(rhs_all[k].T)).T
    return torch.from_numpy(out.reshape(b, ct, h, w)).to(d_cnn.dtype).to(d_cnn.device)


def energy_terms(refined: Tensor, d_cnn: Tensor, guide: Tensor, lam: float, sigma_c: float) -> Tensor:
    """``[B, 2, H, W]``: the refinement energy per pixel, summed over the target channels — unit 0 the data term
    ``(D*_i − D_cnn,i)²``, unit 1 the colour term ``(λ/2) Σ_{j ∈ N4(i)} w_ij (D*_i − D*_j)²`` (each pair's term
    split between its two pixels), so the map sums to the energy ``E(D*)``."""
    data = (refined - d_cnn).pow(2).sum(1)
    wy, wx = edge_weights(guide.to(refined.dtype), sigma_c)
    ey = wy * (refined[:, :, 1:] - refined[:, :, :-1]).pow(2).sum(1)  # [B, H-1, W]
    ex = wx * (refined[:, :, :, 1:] - refined[:, :, :, :-1]).pow(2).sum(1)  # [B, H, W-1]
    colour = torch.zeros_like(data)
    colour[:, 1:] += ey
    colour[:, :-1] += ey
    colour[:, :, 1:] += ex
    colour[:, :, :-1] += ex
    return torch.stack([data, 0.5 * lam * colour], dim=1)


def _influence(steps: list[tuple[str, float]]) -> tuple[float, float]:
    """``(a, b)``: the input-pixel interval, relative to a cell's centre, that can change the cell after
    ``steps`` (``("lowres", 4)``, ``("guide", s)``, ``("conv", s)``, ``("up", s)`` with ``s`` the stride of
    the grid the step reads; module docstring)."""
    a = b = 0.0
    for kind, s in steps:
        if kind == "lowres":
            a, b = -(s - 1) / 2, (s - 1) / 2
        elif kind == "guide":
            a, b = min(a, -(s - 1) / 2), max(b, (s - 1) / 2)
        elif kind == "conv":
            a, b = a - s, b + s
        elif kind == "up":
            a, b = a - 1.75 * s, b + 1.75 * s
        else:
            raise ValueError(kind)
    return a, b


def _axis(height: int, width: int, stride: int, steps: list[tuple[str, float]] | None) -> ImageAxis:
    if steps is None:
        rf = 2 * max(height, width) - 1
    else:
        a, b = _influence(steps)
        rf = int(math.ceil(2 * max(-a, b) + 1))
    return ImageAxis(AxisGeometry(kind="image", stride=(stride, stride), receptive_field=(rf, rf),
                                  offset=((stride - 1) / 2, (stride - 1) / 2)),
                     ImageGeometry(height // stride, width // stride))


class _Stage(nn.Module):
    """One stage's residual branch and its taps (``s{s}_conv{i}``, ``s{s}_out``)."""

    def __init__(self, s: int, cin: int, hidden_size: int, targets: int, layers: int):
        super().__init__()
        self.convs = nn.ModuleList()
        self.taps = nn.ModuleList()
        for i in range(layers - 1):
            self.convs.append(nn.Conv2d(cin, hidden_size, 3, padding=1))
            self.taps.append(Tap(f"s{s}_conv{i}", signal="conv", layer=i, layout=IMAGE, axis=f"s{s}_conv{i}",
                                 description=f"stage {s}: ReLU of residual conv {i} at the stage's resolution"))
            cin = hidden_size
        last = nn.Conv2d(cin, targets, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.convs.append(last)
        self.out_tap = Tap(f"s{s}_out", signal="stage", layer=s, layout=IMAGE, axis=f"s{s}_out",
                           description=f"stage {s}'s depth estimate (bicubic of the previous estimate plus the "
                                       f"residual branch)")


class DepthSR(nn.Module):
    """Progressive (×2, ×2) residual CNN depth super-resolution with a colour-weighted refinement (module
    docstring)."""

    def __init__(self, channels: int, height: int, width: int, num_classes: int, task: str = "regression", *,
                 hidden_size: int = 16, num_layers: int = 3, stages: int = 2, refine_lambda: float = 0.0,
                 sigma_c: float = 0.1, refine_in_training: bool = False):
        super().__init__()
        if task != "regression":
            raise ValueError(f"depth-sr predicts a depth per pixel: expected the regression task, got {task!r}")
        if channels <= num_classes:
            raise ValueError(f"depth-sr reads {num_classes} low-resolution target channel(s) after at least one "
                             f"guide channel; the images have only {channels} channel(s)")
        if height % FACTOR or width % FACTOR:
            raise ValueError(f"depth-sr upsamples x{FACTOR}: the image size {height}x{width} must be a multiple "
                             f"of {FACTOR}")
        if stages not in (1, 2):
            raise ValueError(f"expected stages 1 (one-shot x4) or 2 (progressive x2, x2), got {stages!r}")
        if num_layers < 2:
            raise ValueError(f"expected num_layers >= 2 (a hidden layer and the output layer), got {num_layers}")
        if hidden_size < 1:
            raise ValueError(f"expected hidden_size >= 1, got {hidden_size}")
        if not refine_lambda >= 0 or not sigma_c > 0:
            raise ValueError(f"expected refine_lambda >= 0 and sigma_c > 0, got {refine_lambda}, {sigma_c}")
        self.channels, self.height, self.width, self.task = channels, height, width, task
        self.num_classes, self.stages, self.num_layers = int(num_classes), int(stages), int(num_layers)
        self.guide_channels = channels - self.num_classes
        self.refine_lambda, self.sigma_c = float(refine_lambda), float(sigma_c)
        self.refine_in_training = bool(refine_in_training)
        layers = num_layers if stages == 2 else 2 * num_layers - 1
        # taps registered in data-flow order (the Perturb tab and the recorder list them so): lowres, then per
        # stage its convs and its output, then cnn and refined
        self.lowres_tap = Tap("lowres", signal="lowres", layout=IMAGE, axis="lowres",
                              description="the low-resolution depth recovered by 4x4 block averaging")
        self.stage_blocks = nn.ModuleList(_Stage(s, self.num_classes + self.guide_channels, hidden_size,
                                                 self.num_classes, layers) for s in range(1, stages + 1))
        self.cnn_tap = Tap("cnn", signal="cnn", layout=IMAGE, axis="cnn", description="D_cnn: the network's output")
        self.refined_tap = Tap("refined", signal="refined", layout=IMAGE, axis="refined",
                               description="the refined depth: (I + lambda L_w) D = D_cnn solved exactly")
        self.energy_tap = Tap("energy", signal="energy", layout=IMAGE, axis="refined",
                              description="the refinement energy per pixel: unit 0 the data term (D - D_cnn)^2, "
                                          "unit 1 the colour term (lambda/2) sum_j w_ij (D_i - D_j)^2")

    @property
    def branches(self) -> list[nn.ModuleList]:
        """Each stage's residual branch (its convolutions, the last one mapping to the target channels)."""
        return [block.convs for block in self.stage_blocks]

    # ------------------------------------------------------------------------------------------ geometry
    def _stage_steps(self) -> dict[str, tuple[int, list]]:
        """Per tap axis: ``(stride, influence steps)`` (module docstring)."""
        out: dict[str, tuple[int, list]] = {"lowres": (4, [("lowres", 4)])}
        prev = [("lowres", 4)]
        prev_stride = 4
        for s in range(1, self.stages + 1):
            stride = 2 ** (self.stages - s)
            up = list(prev)
            for k in range(int(math.log2(prev_stride // stride))):
                up.append(("up", prev_stride / 2 ** k))
            h = up + [("guide", stride)]
            for i in range(len(self.branches[s - 1]) - 1):
                h = h + [("conv", stride)]
                out[f"s{s}_conv{i}"] = (stride, h)
            prev = h + [("conv", stride)]
            prev_stride = stride
            out[f"s{s}_out"] = (stride, prev)
        out["cnn"] = (1, prev)
        return out

    def image_axes(self, height: int, width: int) -> dict[str, ImageAxis]:
        axes = {name: _axis(height, width, stride, steps) for name, (stride, steps) in self._stage_steps().items()}
        axes["refined"] = _axis(height, width, 1, None if self.refine_lambda > 0 else self._stage_steps()["cnn"][1])
        return axes

    # ------------------------------------------------------------------------------------------ forward
    def split(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """``(guide [B, G, H, W], low-resolution depth [B, Ct, H/4, W/4])`` of the input."""
        g = self.guide_channels
        return images[:, :g], F.avg_pool2d(images[:, g:], FACTOR)

    def stage(self, s: int, previous: Tensor, guide: Tensor) -> Tensor:
        """Stage ``s`` (1-based): the upsampled ``previous`` estimate plus its residual branch."""
        scale = 2 if self.stages == 2 else 4
        up = F.interpolate(previous, scale_factor=scale, mode="bicubic", align_corners=False)
        pool = guide.shape[-1] // up.shape[-1]
        g = F.avg_pool2d(guide, pool) if pool > 1 else guide
        block = self.stage_blocks[s - 1]
        h = torch.cat([up, g], dim=1)
        for conv, tap in zip(block.convs[:-1], block.taps):
            h = tap(conv(h).relu())
        return block.out_tap(up + block.convs[-1](h))

    def cnn(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """``(D_cnn [B, Ct, H, W], guide)``."""
        guide, d = self.split(images)
        d = self.lowres_tap(d)
        for s in range(1, self.stages + 1):
            d = self.stage(s, d, guide)
        return self.cnn_tap(d), guide

    def forward(self, images: Tensor) -> Tensor:
        d, guide = self.cnn(images)
        lam = self.refine_lambda if (not self.training or self.refine_in_training) else 0.0
        refined = self.refined_tap(colour_refine(d, guide, lam, self.sigma_c))
        self.energy_tap(energy_terms(refined, d, guide, lam, self.sigma_c))
        return refined

    def extra_repr(self) -> str:
        return (f"stages={self.stages}, target_channels={self.num_classes}, guide_channels={self.guide_channels}, "
                f"refine_lambda={self.refine_lambda}, sigma_c={self.sigma_c}")


def build(channels: int, height: int, width: int, num_classes: int, task: str = "regression", *,
          hidden_size: int = 16, num_layers: int = 3, stages: int = 2, refine_lambda: float = 0.0,
          sigma_c: float = 0.1, refine_in_training: bool = False) -> DepthSR:
    return DepthSR(channels, height, width, num_classes, task, hidden_size=hidden_size, num_layers=num_layers,
                   stages=stages, refine_lambda=refine_lambda, sigma_c=sigma_c, refine_in_training=refine_in_training)


SPEC = EngineSpec(
    name="depth-sr",
    description="progressive x2,x2 residual CNN depth super-resolution guided by colour, then the colour-weighted "
                "refinement (I + lambda L_w) D = D_cnn solved exactly (regression)",
    family="image",
    paper=Paper(
        title="Deep Depth Super-Resolution: Learning Depth Super-Resolution using Deep Convolutional Neural Network",
        authors="Song, Dai, Qin",
        arxiv="1607.01977",
        year=2016,
    ),
    build=build,
    default_config={"hidden_size": 16, "num_layers": 3, "stages": 2, "refine_lambda": 0.0, "sigma_c": 0.1,
                    "refine_in_training": False},
    taps=("lowres", "s*_conv*", "s*_out", "cnn", "refined", "energy"),
    train_defaults={"steps": 1500, "batch_size": 32, "lr": 0.001, "eval_every": 250, "optimizer": "adam",
                    "clip": 5.0, "seed": 0},
    default_dataset="depth-synth",
)
