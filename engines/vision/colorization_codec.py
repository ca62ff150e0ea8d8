r"""``colorization-codec``: multiple-hypothesis colourisation with a per-region branch index as side information
(Baig & Torresani 2017, "Multiple Hypothesis Colorization and Its Application to Image Compression").

A fully convolutional trunk reads the luminance ``x = Y ∈ [0,1]^{1×H×W}`` (JPEG's Y); ``K`` branches each predict a
per-pixel chroma hypothesis ``ĉ_k ∈ R^{C_t×H×W}`` (``C_t = num_classes`` target channels; 2 = JPEG's Cb, Cr on
``[0, 1]``, see :mod:`lstmviz.datasets.images.colour_digits`). Blocks ``i = 0 .. L−1`` at full resolution (as
``seg-cnn``: no pooling, dilation ``d_i = 2^i``, padding ``d_i``), then per branch one 3×3 block and a 1×1 head::

    t^{(0)} = x,   t^{(i+1)} = ReLU(W^{(i)} ⋆_{d_i} t^{(i)} + b^{(i)})                       (tap ``trunk{i}``)
    g_k = ReLU(U_k ⋆ t^{(L)} + a_k)                     (3×3, padding 1; tap ``branch{k}``, k = 0 .. K−1)
    ĉ_k = V_k g_k + e_k                                 (1×1 convolution to C_t channels)
    hypotheses = [ĉ_0; …; ĉ_{K−1}]                      ([B, K·C_t, H, W]; tap ``hypotheses``)

**Best-of-K loss** over regions ``r`` of a fixed grid of ``region × region`` pixel cells (``region = 1``: per pixel;
the last row / column of cells is cut short when ``region`` does not divide the size)::

    E_k(r) = Σ_{p ∈ r} ‖ĉ_k(p) − c(p)‖²,   k*(r) = argmin_k E_k(r)   (ties: the lowest k)
    L = (1 / (B·C_t·H·W)) Σ_{images} Σ_r [ E_{k*(r)}(r) + relax · Σ_{k ≠ k*(r)} E_k(r) ]

With ``relax = 0`` (default) only the winning branch of a region receives gradient (the others get exactly zero:
the loss picks ``E_{k*}`` by an index, not by a soft weight); ``K = 1`` is plain mean squared error. The
normalisation makes ``K = 1`` equal ``F.mse_loss``.

**Codec.** ``encode(images, chroma) -> indices [B, R]``: per region the arg-min branch ``k*(r)``, computed from the
hypotheses of the network run on ``images`` — the caller passes the *decoder's* luminance (the compressed Y the
decoder will see), so the choice is the decoder's computation. ``decode(images, indices) -> chroma [B, C_t, H, W]``:
every pixel takes the stored branch of its region. Both run the same deterministic network, so
``decode(Y, encode(Y, c))`` is exactly the encoder-side selected chroma. Side information: ``R · ⌈log2 K⌉`` bits
(:meth:`ColorizationCodec.side_bits`; a fixed grid, so no region map is sent; fixed-length codes, no entropy coding;
``K = 1``: 0 bits).

**forward(images)** (the image family's regression contract, no side information): if ``model.indices`` is
``None`` (default) the per-pixel **mean of the K hypotheses**; an int ``k``: branch ``k`` everywhere (forcing a
branch); a tensor ``[B, R]`` (or ``[R]``, broadcast over the batch) of region indices: :meth:`decode` with them.
Tap ``chroma`` holds what forward returns. Tap ``branches_mean`` (SET, axis ``branch``, members ``b0 .. b{K−1}``,
``K`` rows per image) holds, per branch ``k``, the hypothesis averaged over the image, ``mean_p ĉ_k(p)``
(``C_t`` units: for ``digits-chroma`` the mean Cb and Cr), and one more unit ``share_k``: the branch's weight in
what forward returned, averaged over the pixels (``1/K`` for every branch in the default mean; 1 for a forced
branch, 0 for the others; with region indices the share of pixels whose region selected ``k``). The arg-min branch
needs the true chroma, which forward does not have, so a recording of forward shows the share of the output,
not of the encoder's choice. A read-out: nothing downstream uses its value.

Choices the paper leaves open, fixed here (docs/engines.md): trunk = dilated full-resolution blocks (every map's
geometry is an exact :func:`conv_chain`); one 3×3 hidden block per branch; default ``K = 4``; default ``region = 4``
(the codec's 4×4 grid: training on the same cells the index is sent for, so the branches specialise on what the
decoder can select); collapse mitigation by **different branch initialisation**: every branch has its own random
weights and its head bias starts at ``0.5 + init_spread · (cos 2πk/K, sin 2πk/K)`` on the first two target
channels (``C_t = 1``: spread along the line), i.e. the K branches start at different colours around the colourless
point; optional ``relax`` (the multiple-choice-learning relaxation) for the losers, default 0.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import Tensor, nn

from lstmviz.engines.families.image.api import ConvStep, ImageAxis, Switch, checked_settings, conv_chain, set_axis
from lstmviz.engines.spec import EngineSpec, Paper
from lstmviz.hooks import IMAGE, SET, Tap

ENGINE = "colorization-codec"


def region_ids(height: int, width: int, region: int, device=None) -> tuple[Tensor, int]:
    """``(ids [H·W], R)``: the raster index of every pixel's ``region × region`` cell and the number of cells
    ``R = ⌈H/region⌉ · ⌈W/region⌉`` (cells in raster order)."""
    region = int(region)
    if region < 1:
        raise ValueError(f"expected region >= 1 (pixels per side of a grid cell), got {region}")
    ny, nx = -(-height // region), -(-width // region)
    ys = torch.arange(height, device=device) // region
    xs = torch.arange(width, device=device) // region
    return (ys[:, None] * nx + xs[None, :]).reshape(-1), ny * nx


def region_errors(hypotheses: Tensor, target: Tensor, region: int) -> Tensor:
    """``E [B, K, R]``: the summed squared error of every branch over every cell (``hypotheses [B, K, C, H, W]``,
    ``target [B, C, H, W]``)."""
    b, k, _, h, w = hypotheses.shape
    per_pixel = (hypotheses - target[:, None]).pow(2).sum(2).reshape(b, k, h * w)
    ids, r = region_ids(h, w, region, hypotheses.device)
    out = per_pixel.new_zeros((b, k, r))
    return out.index_add_(2, ids, per_pixel)


def best_of_k_loss(hypotheses: Tensor, target: Tensor, region: int = 1, relax: float = 0.0) -> tuple[Tensor, Tensor]:
    """``(L, winners [B, R])``: the best-of-K loss of the module docstring (mean over ``B·C·H·W``) and the arg-min
    branch of every cell."""
    if hypotheses.dim() != 5 or target.dim() != 4 or hypotheses.shape[0] != target.shape[0] \
            or hypotheses.shape[2:] != target.shape[1:]:
        raise ValueError(f"expected hypotheses [B, K, C, H, W] and target [B, C, H, W], got "
                         f"{tuple(hypotheses.shape)} and {tuple(target.shape)}")
    errors = region_errors(hypotheses, target, region)
    winners = errors.detach().argmin(1)
    best = errors.gather(1, winners[:, None]).squeeze(1)
    total = best.sum()
    if relax:
        total = total + float(relax) * (errors.sum() - total)
    return total / target.numel(), winners


class ColorizationCodec(nn.Module):
    """Trunk → K chroma branches, best-of-K loss, per-region branch indices as side information (module
    docstring)."""

    def __init__(self, channels: int, height: int, width: int, num_classes: int, task: str = "regression", *,
                 hidden_size: int = 16, num_layers: int = 4, K: int = 4, region: int = 4, relax: float = 0.0,
                 init_spread: float = 0.1):
        super().__init__()
        if task != "regression":
            raise ValueError(f"colorization-codec predicts chroma per pixel: expected the regression task, got {task!r}")
        for name, value in (("num_layers", num_layers), ("hidden_size", hidden_size), ("K", K), ("region", region)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"expected {name} >= 1, got {value!r}")
        if not 0.0 <= float(relax) <= 1.0:
            raise ValueError(f"expected relax in [0, 1] (the weight of the losing branches' loss), got {relax!r}")
        self.channels, self.height, self.width, self.task = channels, height, width, task
        self.num_classes, self.K, self.region = int(num_classes), int(K), int(region)
        self.relax, self.init_spread = float(relax), float(init_spread)
        self.dilations = [2 ** i for i in range(num_layers)]
        self.indices: int | Tensor | None = None
        self.convs, self.trunk_taps = nn.ModuleList(), nn.ModuleList()
        cin = channels
        for i, d in enumerate(self.dilations):
            self.convs.append(nn.Conv2d(cin, hidden_size, 3, padding=d, dilation=d))
            self.trunk_taps.append(Tap(f"trunk{i}", signal="trunk", layer=i, layout=IMAGE, axis=f"trunk{i}",
                                       description=f"trunk block {i}: ReLU of the 3x3 convolution (dilation {d})"))
            cin = hidden_size
        self.branch_convs, self.branch_heads, self.branch_taps = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for k in range(self.K):
            self.branch_convs.append(nn.Conv2d(cin, hidden_size, 3, padding=1))
            self.branch_heads.append(nn.Conv2d(hidden_size, self.num_classes, 1))
            self.branch_taps.append(Tap(f"branch{k}", signal="branch", layer=k, layout=IMAGE, axis="branches",
                                        description=f"branch {k}: ReLU of its 3x3 convolution (its last hidden map)"))
        self.hypotheses_tap = Tap("hypotheses", signal="hypotheses", layout=IMAGE, axis="hypotheses",
                                  description=f"the K={self.K} chroma hypotheses, units k*{self.num_classes}+c = "
                                              f"branch k, target channel c")
        self.chroma_tap = Tap("chroma", signal="prediction", layout=IMAGE, axis="hypotheses",
                              description="forward's output: mean of the hypotheses, or the branch(es) of "
                                          "model.indices when set")
        self.branches_tap = Tap("branches_mean", signal="branches", layout=SET, axis="branch",
                                description=f"per branch b0 .. b{self.K - 1}: its chroma hypothesis averaged over "
                                            f"the image ({self.num_classes} units, one per target channel), then "
                                            f"its share of forward's output (1/K each for the mean)")
        self.reset_heads()

    @torch.no_grad()
    def reset_heads(self) -> None:
        """Head biases at different colours around the colourless 0.5 (collapse mitigation, module docstring)."""
        for k, head in enumerate(self.branch_heads):
            head.bias.fill_(0.5)
            if self.K > 1:
                a = 2 * math.pi * k / self.K
                if self.num_classes >= 2:
                    head.bias[0] += self.init_spread * math.cos(a)
                    head.bias[1] += self.init_spread * math.sin(a)
                else:
                    head.bias[0] += self.init_spread * (2 * k / (self.K - 1) - 1)

    def _trunk_steps(self, blocks: int) -> list[ConvStep]:
        return [ConvStep(3, 1, d, d) for d in self.dilations[:blocks]]

    def image_axes(self, height: int, width: int) -> dict[str, ImageAxis]:
        layers = len(self.convs)
        axes = {f"trunk{i}": conv_chain(height, width, self._trunk_steps(i + 1)) for i in range(layers)}
        branch = [*self._trunk_steps(layers), ConvStep(3, 1, 1)]
        axes["branches"] = conv_chain(height, width, branch)
        axes["hypotheses"] = conv_chain(height, width, [*branch, ConvStep(1)])
        axes["branch"] = set_axis([f"b{k}" for k in range(self.K)])
        return axes

    def num_regions(self, height: int, width: int, region: int | None = None) -> int:
        return region_ids(height, width, self.region if region is None else region)[1]

    def side_bits(self, height: int | None = None, width: int | None = None, region: int | None = None) -> int:
        """``R · ⌈log2 K⌉``: the bits of one image's index map (fixed-length codes)."""
        h = self.height if height is None else height
        w = self.width if width is None else width
        return self.num_regions(h, w, region) * math.ceil(math.log2(self.K))

    def hypotheses(self, images: Tensor) -> Tensor:
        """``[B, K, C_t, H, W]``: every branch's chroma (through the trunk, branch and hypotheses taps)."""
        t = images
        for conv, tap in zip(self.convs, self.trunk_taps):
            t = tap(conv(t).relu())
        outs = [head(tap(conv(t).relu())) for conv, head, tap in zip(self.branch_convs, self.branch_heads,
                                                                        self.branch_taps)]
        hyp = self.hypotheses_tap(torch.cat(outs, 1))
        b, _, h, w = hyp.shape
        return hyp.reshape(b, self.K, self.num_classes, h, w)

    def _select(self, hyp: Tensor, indices: Tensor, region: int) -> Tensor:
        b, k, c, h, w = hyp.shape
        ids, r = region_ids(h, w, region, hyp.device)
        indices = torch.as_tensor(indices, device=hyp.device).long()
        if indices.dim() == 1:
            indices = indices.expand(b, -1)
        if tuple(indices.shape) != (b, r):
            raise ValueError(f"expected indices [B, R] = [{b}, {r}] (one branch per {region}x{region} cell), "
                             f"got {tuple(indices.shape)}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= k):
            raise ValueError(f"expected branch indices in 0 .. {k - 1}, got {int(indices.min())} .. {int(indices.max())}")
        per_pixel = indices[:, ids].reshape(b, 1, 1, h, w).expand(b, 1, c, h, w)
        return hyp.gather(1, per_pixel).squeeze(1)

    def encode(self, images: Tensor, chroma: Tensor, region: int | None = None) -> Tensor:
        """``indices [B, R]`` (int64): per cell the arg-min branch of the network run on ``images`` (pass the
        luminance the decoder will have)."""
        with torch.no_grad():
            return region_errors(self.hypotheses(images), chroma, self.region if region is None else region).argmin(1)

    def decode(self, images: Tensor, indices: Tensor, region: int | None = None) -> Tensor:
        """``chroma [B, C_t, H, W]``: every pixel from the branch its cell's index names."""
        return self._select(self.hypotheses(images), indices, self.region if region is None else region)

    def perturbation_switches(self) -> list[Switch]:
        """``branch``: ``mean`` (the hypotheses' mean, no side information) or one branch forced everywhere."""
        return [Switch("branch", ("mean", *map(str, range(self.K))), "mean",
                       "the chroma the model outputs: the mean of its hypotheses, or branch k at every pixel")]

    @contextlib.contextmanager
    def switched(self, settings):
        """Run with ``model.indices`` set by the ``branch`` switch, restored after."""
        value = checked_settings(self.perturbation_switches(), settings)["branch"]
        saved = self.indices
        self.indices = None if value == "mean" else int(value)
        try:
            yield self
        finally:
            self.indices = saved

    def forward(self, images: Tensor) -> Tensor:
        hyp = self.hypotheses(images)
        b, k, _, h, w = hyp.shape
        if self.indices is None:
            out = hyp.mean(1)
            share = hyp.new_full((b, k), 1.0 / k)
        elif isinstance(self.indices, int):
            if not 0 <= self.indices < self.K:
                raise ValueError(f"expected model.indices in 0 .. {self.K - 1}, got {self.indices}")
            out = hyp[:, self.indices]
            share = hyp.new_zeros((b, k))
            share[:, self.indices] = 1.0
        else:
            out = self._select(hyp, self.indices, self.region)
            ids, _ = region_ids(h, w, self.region, hyp.device)
            chosen = torch.as_tensor(self.indices, device=hyp.device).long()
            chosen = chosen.expand(b, -1) if chosen.dim() == 1 else chosen
            share = nn.functional.one_hot(chosen[:, ids], k).to(hyp.dtype).mean(1)  # [B, K]
        self.branches_tap(torch.cat([hyp.mean(dim=(3, 4)), share[:, :, None]], dim=2))  # [B, K, C_t + 1]
        return self.chroma_tap(out)

    def loss(self, images: Tensor, batch: dict) -> tuple[Tensor, int]:
        """The best-of-K loss against ``batch["target_map"] [B, C_t, H, W]``, and the number of images."""
        target = batch["target_map"]
        loss, _ = best_of_k_loss(self.hypotheses(images), target.to(images.dtype), self.region, self.relax)
        return loss, len(images)

    def extra_repr(self) -> str:
        return (f"K={self.K}, region={self.region}, relax={self.relax}, channels_out={self.num_classes}, "
                f"dilations={self.dilations}")


def build(channels: int, height: int, width: int, num_classes: int, task: str = "regression", *,
          hidden_size: int = 16, num_layers: int = 4, K: int = 4, region: int = 4, relax: float = 0.0,
          init_spread: float = 0.1) -> ColorizationCodec:
    return ColorizationCodec(channels, height, width, num_classes, task, hidden_size=hidden_size,
                             num_layers=num_layers, K=K, region=region, relax=relax, init_spread=init_spread)


SPEC = EngineSpec(
    name=ENGINE,
    description="multiple-hypothesis colourisation: a conv trunk, K chroma branches trained by a best-of-K loss, "
                "per-region branch indices as a side channel (regression)",
    family="image",
    paper=Paper(
        title="Multiple Hypothesis Colorization and Its Application to Image Compression",
        authors="Baig, Torresani",
        arxiv="",
        year=2017,
    ),
    build=build,
    default_config={"hidden_size": 16, "num_layers": 4, "K": 4, "region": 4, "relax": 0.0, "init_spread": 0.1},
    default_dataset="digits-chroma",
    taps=("trunk{layer}", "branch*", "branches_mean", "hypotheses", "chroma"),  # branch*: branch0 .. branch{K-1}
    train_defaults={"steps": 800, "batch_size": 32, "lr": 0.005, "eval_every": 100, "optimizer": "adam",
                    "clip": 5.0, "seed": 0},
)
