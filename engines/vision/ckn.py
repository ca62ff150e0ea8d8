r"""Engine ``ckn``: a convolutional kernel network (Bietti & Mairal 2019, "Group Invariance, Stability to
Deformations, and Complexity of Deep Convolutional Representations", JMLR 20, arXiv:1706.03078; the
finite-dimensional Nyström CKN of Mairal 2016, arXiv:1605.06265).

Layer ``k = 1 .. L`` (``L = num_layers``) maps a feature map ``x_{k-1}`` (``x_0`` the image) by

    x_k = A_k M_k P_k x_{k-1}

- ``P_k``, patch extraction: at every cell ``t`` the ``e × e`` patch ``u = (x_{k-1}(t + v))_{v ∈ S}``
  (``e = patch_size``, odd; padding ``e // 2``, zeros or circular), a vector of ``d = C_{k-1} e²`` numbers.
- ``M_k``, the Nyström kernel map of the homogeneous dot-product kernel
  ``K(u, u') = ‖u‖ ‖u'‖ κ(⟨u, u'⟩ / (‖u‖ ‖u'‖))`` with ``κ(c) = exp(α (c − 1))`` (``α = kernel_alpha``):
  with ``p = hidden_size`` anchors ``Z = [z_1 .. z_p]`` on the unit sphere of ``R^d``,

      ψ(u) = ‖u‖ κ(ZᵀZ)^{−1/2} κ(Zᵀu / ‖u‖)  ∈ R^p        (κ applied entrywise; tap ``kernel{k-1}``)

  so that ``⟨ψ(u), ψ(u')⟩`` is the kernel of the projections of ``φ(u), φ(u')`` onto the span of the
  anchors' features ``φ(z_j)``: exact on the anchors, ``⟨ψ(a z_i), ψ(b z_j)⟩ = a b κ(z_iᵀ z_j)``, and
  ``‖ψ(u)‖ ≤ ‖u‖``. ``Zᵀu`` is a convolution with the anchors as filters, ``‖u‖²`` a convolution of
  ``Σ_c x_c²`` with an ``e × e`` box; ``‖u‖`` is floored at ``1e-6`` in the division (a zero patch maps
  to ``1e-6 κ(ZᵀZ)^{−1/2} κ(0)``, not exactly 0). ``κ(ZᵀZ)^{−1/2}`` comes from an eigendecomposition in
  float64 with eigenvalues floored at ``1e-6 λ_max``.
- ``A_k``, linear Gaussian pooling then subsampling: a depthwise convolution with the normalised filter
  ``h(i, j) ∝ exp(−(i² + j²) / (2σ²))``, ``|i|, |j| ≤ ⌈3σ⌉`` (``σ = pool_sigma`` in cells of this layer's
  input; ``σ = 0``: no filter, plain subsampling — the aliasing baseline), evaluated at every
  ``s``-th cell (``s = subsampling``); a map of ``n`` cells gives ``⌈n / s⌉``. Tap ``pooled{k-1}``.

The prediction is linear, ``f(x) = ⟨w, (Φ(x) − μ) / s⟩ + b`` (tap ``logits``), on ``Φ(x)`` (tap
``features``): ``readout="flatten"`` the last pooled map as a vector, ``readout="mean"`` its mean over the
cells (and over orientations with ``group="rot90"``), i.e. global pooling. ``μ`` (the mean of ``Φ``) and
the one scalar ``s`` (the root mean squared distance of ``Φ`` to ``μ``) are measured on the images the
anchors are fitted on (before fitting: ``μ = 0``, ``s = 1``): a fixed affine reparametrisation of the
linear classifier that only conditions its training (the features of a deep CKN are small: Gaussian
pooling with zero padding over a map of a few cells shrinks them by the filter's centre weight).

**Group ``rot90``** (the roto-translation group ``Z² ⋊ C_4``; the paper's group construction, §3.3):
layer 1 lifts the image to the group, ``(M_1 P_1 x)(t, r) = ψ(patch of x at t rotated by r)``, i.e. the
anchors are applied in their 4 rotated copies ``rot90^r(z_j)`` (channels ordered orientation-major,
``r p + j``). A deeper layer's patch at ``(t, r)`` is ``(x(t + R_r v, r + s))_{v ∈ S, s ∈ C_4}``, so its
filters are the anchors ``z_j ∈ R^{4 C e²}`` rotated spatially by ``r`` and rolled by ``r`` along their
orientation axis (a p4 group convolution). Rotations preserve inner products, so one ``κ(ZᵀZ)^{−1/2}``
serves every orientation, and ``‖u‖`` does not depend on ``r`` (square patches). Every layer is then
equivariant: with ``ρ = torch.rot90(·, 1, (-2, -1))``, ``M P (ρ x) = ρ roll_r(M P x, +1)`` (orientation
axis rolled by one), and ``readout="mean"`` (pooling over the whole group) is invariant. Exactly so
when the pooling grid is mapped onto itself by the rotation: ``(n − 1) mod s = 0`` for every map of
``n`` cells (odd sizes with ``s = 2``, or ``s = 1``); an 8×8 digit with ``s = 2`` is only nearly
invariant. Likewise, ``padding="circular"`` makes every layer exactly equivariant to circular shifts by
multiples of the accumulated subsampling, and ``readout="mean"`` invariant to them.

**Anchors.** Initialised at random on the sphere; unsupervised CKN: fitted by spherical k-means
(:func:`spherical_kmeans`, a spherical k-means++ start, then 20 Lloyd iterations) on the normalised
patches of training images, layer by layer (layer ``k``'s patches come from the map that layer ``k−1``
computes with its fitted anchors), patches with a norm under 5% of the largest (empty background)
left out, at most ``kmeans_patches`` of them. :meth:`CKN.fit_anchors` does it on given images; in a
training run (the family objective, ``lstmviz train ckn``) the first forward in training mode fits
them on that batch (a data-dependent initialisation; ``anchors_fitted`` records it, saved with the
checkpoint). With ``train_anchors=False`` (default) the anchors stay fixed and only the linear layer
is trained; ``True`` fine-tunes them end to end by backpropagation through ``κ(ZᵀZ)^{−1/2}`` (the
anchors are renormalised to the sphere in every forward).

Taps: ``kernel{i}`` (IMAGE ``[B, G p, H_i, W_i]``, ``G = 4`` orientations for ``rot90`` else 1, axis
``kernel{i}``) the kernel map before pooling; ``norm{i}`` (IMAGE ``[B, 1, H_i, W_i]``, same axis) the
patch norms ``‖u‖``; ``pooled{i}`` (IMAGE, axis ``pooled{i}``) after pooling and subsampling;
``features`` and ``logits`` (SCALAR, axis ``image``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.hooks import IMAGE, SCALAR, Tap

from ..families.image.api import SCALAR_AXIS, ConvStep, ImageAxis, conv_chain
from ..spec import ConfigError, EngineSpec, Paper

ENGINE = "ckn"
GROUPS = ("none", "rot90")
PADDINGS = ("zeros", "circular")
READOUTS = ("flatten", "mean")
NORM_EPS = 1e-6
EIG_FLOOR = 1e-6  # relative to the largest eigenvalue of κ(ZᵀZ)
KMEANS_ITERATIONS = 20
BACKGROUND = 0.05  # k-means leaves out patches with a norm under this share of the largest


# ------------------------------------------------------------------------------------------------ pieces
def exp_kernel(c: Tensor, alpha: float) -> Tensor:
    """``κ(c) = exp(α (c − 1))``, the exponential dot-product kernel on the sphere (``κ(1) = 1``)."""
    return torch.exp(alpha * (c - 1.0))


def inverse_sqrt(k: Tensor, floor: float = EIG_FLOOR) -> Tensor:
    """``K^{−1/2}`` of a symmetric PSD matrix, eigenvalues floored at ``floor · λ_max`` (computed in float64)."""
    w, v = torch.linalg.eigh(k.double())
    w = w.clamp_min(floor * w.max().clamp_min(1e-300))
    return ((v * w.rsqrt()) @ v.T).to(k.dtype)


def nystrom_map(patches: Tensor, anchors: Tensor, alpha: float) -> Tensor:
    """``ψ(u) = ‖u‖ κ(ZᵀZ)^{−1/2} κ(Zᵀu/‖u‖)`` for the rows ``u`` of ``patches`` [n, d] and unit-norm anchors
    [p, d] (rows); returns [n, p]. The reference the convolutional layer is tested against."""
    norm = patches.norm(dim=1, keepdim=True).clamp_min(NORM_EPS)
    k = exp_kernel(patches @ anchors.T / norm, alpha)
    m = inverse_sqrt(exp_kernel(anchors @ anchors.T, alpha))
    return norm * (k @ m)  # m is symmetric


def spherical_kmeans(points: Tensor, k: int, *, iterations: int = KMEANS_ITERATIONS,
                     generator: torch.Generator | None = None) -> Tensor:
    """``k`` unit-norm centres [k, d] of the unit-norm rows of ``points`` [n, d] by spherical k-means.

    Start: spherical k-means++ (the first centre a random row, each next one a row drawn with probability
    ∝ ``1 − max_j cos(row, centre_j)``; when ``n < k`` or every row is already a centre, random rows);
    then assign each row to the centre of largest cosine and set each centre to its rows' normalised mean;
    an empty cluster takes a random row.
    """
    n, d = points.shape
    if n == 0:
        raise ValueError("spherical k-means got no points (every patch is empty background)")
    x = points.detach()
    chosen = [int(torch.randint(n, (1,), generator=generator))]
    best = x @ x[chosen[0]]
    for _ in range(1, k):
        far = (1 - best).clamp_min(0)
        if float(far.sum()) <= 0:
            i = int(torch.randint(n, (1,), generator=generator))
        else:
            i = int(torch.multinomial(far / far.sum(), 1, generator=generator))
        chosen.append(i)
        best = torch.maximum(best, x @ x[i])
    centres = F.normalize(x[chosen].clone(), dim=1)
    for _ in range(iterations):
        assign = (x @ centres.T).argmax(1)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k)
        empty = counts == 0
        if empty.any():
            sums[empty] = x[torch.randint(n, (int(empty.sum()),), generator=generator)]
        centres = F.normalize(sums, dim=1)
    return centres


def gaussian_filter(sigma: float, dtype=torch.float32) -> Tensor:
    """The normalised 2-D Gaussian ``h(i, j) ∝ exp(−(i² + j²)/(2σ²))`` on ``|i|, |j| ≤ ⌈3σ⌉``; ``[[1]]`` for σ = 0."""
    if sigma <= 0:
        return torch.ones(1, 1, dtype=dtype)
    r = max(1, math.ceil(3 * sigma))
    i = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-(i[:, None] ** 2 + i[None, :] ** 2) / (2 * sigma ** 2))
    return (g / g.sum()).to(dtype)


def pad2d(x: Tensor, pad: int, mode: str) -> Tensor:
    """Pad the last two dims by ``pad`` cells: zeros, or circular (any ``pad``, wrapping as often as needed)."""
    if pad == 0:
        return x
    if mode == "zeros":
        return F.pad(x, (pad, pad, pad, pad))
    h, w = x.shape[-2:]
    iy = torch.arange(-pad, h + pad, device=x.device) % h
    ix = torch.arange(-pad, w + pad, device=x.device) % w
    return x[..., iy, :][..., ix]


# ------------------------------------------------------------------------------------------------ layers
class KernelLayer(nn.Module):
    """One CKN layer ``A M P`` (module docstring): patches, Nyström kernel map, Gaussian pooling.

    ``lifting``: with ``group="rot90"``, True for the first layer (input on the plane), False for the
    others (input on the group, ``4 × C`` channels orientation-major).
    """

    def __init__(self, in_channels: int, anchors: int, *, patch_size: int, alpha: float, sigma: float,
                 subsampling: int, group: str, padding: str, lifting: bool):
        super().__init__()
        self.in_channels, self.num_anchors, self.patch_size = in_channels, anchors, patch_size
        self.alpha, self.sigma, self.subsampling = float(alpha), float(sigma), int(subsampling)
        self.group, self.padding, self.lifting = group, padding, lifting
        self.orientations = 4 if group == "rot90" else 1
        self.anchors = nn.Parameter(torch.empty(anchors, in_channels, patch_size, patch_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.anchors.normal_()
            self.anchors.copy_(F.normalize(self.anchors.flatten(1), dim=1).view_as(self.anchors))

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, anchors={self.num_anchors}, patch_size={self.patch_size}, "
                f"alpha={self.alpha}, sigma={self.sigma}, subsampling={self.subsampling}, group={self.group!r}, "
                f"padding={self.padding!r}")

    @property
    def pool_radius(self) -> int:
        return 0 if self.sigma <= 0 else max(1, math.ceil(3 * self.sigma))

    def unit_anchors(self) -> Tensor:
        """The anchors on the unit sphere, ``[p, C, e, e]``."""
        return F.normalize(self.anchors.flatten(1), dim=1).view_as(self.anchors)

    def filters(self) -> Tensor:
        """The convolution filters: the anchors (``none``), or their 4 rotated copies (``rot90``: lifting,
        ``rot90^r(z)``; group layer, ``rot90^r`` of ``z`` rolled by ``r`` along its orientation axis)."""
        z = self.unit_anchors()
        if self.group == "none":
            return z
        if self.lifting:
            return torch.cat([torch.rot90(z, r, (-2, -1)) for r in range(4)])
        p, c4, e, _ = z.shape
        zg = z.view(p, 4, c4 // 4, e, e)
        return torch.cat([torch.rot90(torch.roll(zg, r, dims=1), r, (-2, -1)).reshape(p, c4, e, e)
                          for r in range(4)])

    def patches(self, x: Tensor) -> Tensor:
        """All patches of ``x`` [B, C, H, W] as rows [B H W, C e²] (orientation 0 for a group layer)."""
        e = self.patch_size
        cols = F.unfold(pad2d(x, e // 2, self.padding), e)  # [B, C e², H W]
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])

    def kernel_map(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(ψ map [B, G p, H, W], patch norms [B, 1, H, W])``: ``M P x`` at every cell (and orientation)."""
        e = self.patch_size
        xp = pad2d(x, e // 2, self.padding)
        dots = F.conv2d(xp, self.filters())
        box = torch.ones(1, 1, e, e, dtype=x.dtype, device=x.device)
        sq = F.conv2d(xp.pow(2).sum(1, keepdim=True), box)
        norm = sq.clamp_min(NORM_EPS ** 2).sqrt()
        k = exp_kernel(dots / norm, self.alpha)
        z = self.unit_anchors().flatten(1)
        m = inverse_sqrt(exp_kernel(z @ z.T, self.alpha))
        b, _, h, w = k.shape
        k = k.view(b, self.orientations, self.num_anchors, h, w)
        psi = torch.einsum("ij,bgjhw->bgihw", m, k).reshape(b, -1, h, w) * norm
        return psi, norm

    def pool(self, x: Tensor) -> Tensor:
        """``A x``: Gaussian filter (depthwise) evaluated every ``subsampling`` cells."""
        s, r = self.subsampling, self.pool_radius
        if r == 0:
            return x[..., ::s, ::s]
        c = x.shape[1]
        weight = gaussian_filter(self.sigma, x.dtype).to(x.device).expand(c, 1, -1, -1)
        return F.conv2d(pad2d(x, r, self.padding), weight, stride=s, groups=c)

    def steps(self) -> list[ConvStep]:
        e, r = self.patch_size, self.pool_radius
        return [ConvStep(e, 1, e // 2), ConvStep(2 * r + 1, self.subsampling, r)]


# ------------------------------------------------------------------------------------------------- model
class CKN(nn.Module):
    """A convolutional kernel network: ``num_layers`` layers of patches → Nyström kernel map → Gaussian
    pooling (optionally on the rot90 roto-translation group), a linear classifier on top (module docstring)."""

    def __init__(self, channels: int, height: int, width: int, num_classes: int, task: str = "class", *,
                 hidden_size: int = 32, num_layers: int = 2, patch_size: int = 3, kernel_alpha: float = 4.0,
                 pool_sigma: float = 1.0, subsampling: int = 2, group: str = "none", padding: str = "zeros",
                 readout: str = "flatten", train_anchors: bool = False, kmeans_patches: int = 20000,
                 dropout: float = 0.0):
        super().__init__()
        _check_config(hidden_size=hidden_size, num_layers=num_layers, patch_size=patch_size,
                      kernel_alpha=kernel_alpha, pool_sigma=pool_sigma, subsampling=subsampling, group=group,
                      padding=padding, readout=readout, kmeans_patches=kmeans_patches, train_anchors=train_anchors)
        self.channels, self.height, self.width, self.task = channels, height, width, task
        self.group, self.readout, self.train_anchors = group, readout, bool(train_anchors)
        self.kmeans_patches = int(kmeans_patches)
        g = 4 if group == "rot90" else 1
        self.layers = nn.ModuleList()
        self.kernel_taps, self.norm_taps, self.pooled_taps = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        cin = channels
        for i in range(num_layers):
            layer = KernelLayer(cin, hidden_size, patch_size=patch_size, alpha=kernel_alpha, sigma=pool_sigma,
                                subsampling=subsampling, group=group, padding=padding, lifting=i == 0)
            layer.anchors.requires_grad_(self.train_anchors)
            self.layers.append(layer)
            self.kernel_taps.append(Tap(f"kernel{i}", signal="kernel", layer=i, layout=IMAGE, axis=f"kernel{i}",
                                        description=f"layer {i}: Nyström kernel map of each patch (before pooling)"
                                        + ("; channels orientation-major (r * anchors + j)" if g == 4 else "")))
            self.norm_taps.append(Tap(f"norm{i}", signal="norm", layer=i, layout=IMAGE, axis=f"kernel{i}",
                                      description=f"layer {i}: L2 norm of each patch"))
            self.pooled_taps.append(Tap(f"pooled{i}", signal="pooled", layer=i, layout=IMAGE, axis=f"pooled{i}",
                                        description=f"layer {i}: kernel map after Gaussian pooling "
                                        f"(sigma {pool_sigma}) and subsampling by {subsampling}"))
            cin = g * hidden_size
        self.register_buffer("anchors_fitted", torch.tensor(False))
        axes = self.image_axes(height, width)  # refuses an input too small, in words
        last = axes[f"pooled{num_layers - 1}"].size
        n_features = hidden_size if readout == "mean" else cin * last.height * last.width
        self.register_buffer("feature_mean", torch.zeros(n_features))  # μ and s: set with the anchors
        self.register_buffer("feature_scale", torch.ones(()))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(n_features, num_classes)
        self.features_tap = Tap("features", layout=SCALAR, axis="image",
                                description="the representation the classifier reads: "
                                + ("the last pooled map averaged over cells (and orientations)"
                                   if readout == "mean" else "the last pooled map flattened"))
        self.logits_tap = Tap("logits", layout=SCALAR, axis="image", description="the class logits")

    def image_axes(self, height: int, width: int) -> dict[str, ImageAxis]:
        axes, steps = {}, []
        for i, layer in enumerate(getattr(self, "layers", ())):
            conv, pool = layer.steps()
            steps.append(conv)
            axes[f"kernel{i}"] = conv_chain(height, width, steps)
            steps.append(pool)
            axes[f"pooled{i}"] = conv_chain(height, width, steps)
        axes["image"] = SCALAR_AXIS
        return axes

    def representations(self, images: Tensor) -> list[Tensor]:
        """``[x_1, .., x_L, Φ]``: each layer's pooled map and the final representation (no taps, no fitting)."""
        out, x = [], images
        for layer in self.layers:
            x = layer.pool(layer.kernel_map(x)[0])
            out.append(x)
        out.append(self._readout(x))
        return out

    def _readout(self, x: Tensor) -> Tensor:
        if self.readout == "flatten":
            return x.flatten(1)
        b, c, h, w = x.shape
        g = 4 if self.group == "rot90" else 1
        return x.reshape(b, g, c // g, h * w).mean(dim=(1, 3))

    @torch.no_grad()
    def fit_anchors(self, images: Tensor, *, generator: torch.Generator | None = None) -> None:
        """Unsupervised CKN: set every layer's anchors by spherical k-means on the normalised patches of
        ``images`` (layer by layer; module docstring), and mark them fitted."""
        x = images.to(self.layers[0].anchors.dtype)
        for layer in self.layers:
            u = layer.patches(x)
            norms = u.norm(dim=1)
            keep = norms > BACKGROUND * norms.max()
            u = u[keep] / norms[keep, None]
            if len(u) > self.kmeans_patches:
                u = u[torch.randperm(len(u), generator=generator)[: self.kmeans_patches]]
            centres = spherical_kmeans(u, layer.num_anchors, generator=generator)
            layer.anchors.copy_(centres.view_as(layer.anchors))
            x = layer.pool(layer.kernel_map(x)[0])
        phi = self._readout(x)
        self.feature_mean.copy_(phi.mean(0))
        spread = (phi - self.feature_mean).pow(2).sum(1).mean().sqrt()
        self.feature_scale.fill_(float(spread) if float(spread) > 0 else 1.0)
        self.anchors_fitted.fill_(True)

    def forward(self, images: Tensor) -> Tensor:
        if self.training and not bool(self.anchors_fitted):
            self.fit_anchors(images)
        x = images
        for layer, ktap, ntap, ptap in zip(self.layers, self.kernel_taps, self.norm_taps, self.pooled_taps):
            psi, norm = layer.kernel_map(x)
            psi = ktap(psi)
            ntap(norm)
            x = ptap(layer.pool(psi))
        features = self.features_tap(self._readout(x))
        standard = (features - self.feature_mean) / self.feature_scale
        return self.logits_tap(self.head(self.dropout(standard)))


def _check_config(*, hidden_size, num_layers, patch_size, kernel_alpha, pool_sigma, subsampling, group, padding,
                  readout, kmeans_patches, train_anchors) -> None:
    def need(ok: bool, key: str, expected: str, got) -> None:
        if not ok:
            raise ConfigError(f"{ENGINE}: expected {key} {expected}, got {got!r}")

    need(isinstance(hidden_size, int) and hidden_size >= 1, "hidden_size", "(anchors per layer) >= 1", hidden_size)
    need(isinstance(num_layers, int) and num_layers >= 1, "num_layers", ">= 1", num_layers)
    need(isinstance(patch_size, int) and patch_size >= 1 and patch_size % 2 == 1, "patch_size", "an odd int >= 1",
         patch_size)
    need(float(kernel_alpha) > 0, "kernel_alpha", "> 0", kernel_alpha)
    need(float(pool_sigma) >= 0, "pool_sigma", ">= 0 (0: no Gaussian filter)", pool_sigma)
    need(isinstance(subsampling, int) and subsampling >= 1, "subsampling", "an int >= 1", subsampling)
    need(group in GROUPS, "group", f"one of {', '.join(GROUPS)}", group)
    need(padding in PADDINGS, "padding", f"one of {', '.join(PADDINGS)}", padding)
    need(readout in READOUTS, "readout", f"one of {', '.join(READOUTS)}", readout)
    need(isinstance(kmeans_patches, int) and kmeans_patches >= 1, "kmeans_patches", "an int >= 1", kmeans_patches)
    need(isinstance(train_anchors, bool), "train_anchors", "true or false", train_anchors)


def build(channels: int, height: int, width: int, num_classes: int, task: str = "class", *,
          hidden_size: int = 32, num_layers: int = 2, patch_size: int = 3, kernel_alpha: float = 4.0,
          pool_sigma: float = 1.0, subsampling: int = 2, group: str = "none", padding: str = "zeros",
          readout: str = "flatten", train_anchors: bool = False, kmeans_patches: int = 20000,
          dropout: float = 0.0) -> CKN:
    return CKN(channels, height, width, num_classes, task, hidden_size=hidden_size, num_layers=num_layers,
               patch_size=patch_size, kernel_alpha=kernel_alpha, pool_sigma=pool_sigma, subsampling=subsampling,
               group=group, padding=padding, readout=readout, train_anchors=train_anchors,
               kmeans_patches=kmeans_patches, dropout=dropout)


SPEC = EngineSpec(
    name=ENGINE,
    description="convolutional kernel network: patches, Nyström map of an exponential dot-product kernel on "
                "k-means anchors, Gaussian pooling (optionally on the rot90 group), linear classifier",
    family="image",
    paper=Paper(
        title="Group Invariance, Stability to Deformations, and Complexity of Deep Convolutional Representations",
        authors="Bietti, Mairal",
        arxiv="1706.03078",
        year=2019,
    ),
    build=build,
    default_config={"hidden_size": 32, "num_layers": 2},
    taps=("kernel{layer}", "norm{layer}", "pooled{layer}", "features", "logits"),
    train_defaults={"steps": 600, "batch_size": 128, "lr": 0.01, "eval_every": 100, "optimizer": "adam",
                    "clip": 5.0, "seed": 0},
)
