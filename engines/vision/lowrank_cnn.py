r"""Engine ``lowrank-cnn``: a small CNN whose layers are replaced by low-rank approximations of their
trained weights (Denton, Zaremba, Bruna, LeCun, Fergus 2014, "Exploiting Linear Structure Within
Convolutional Networks for Efficient Evaluation", arXiv:1404.0736).

The network: conv blocks ``a^i = ReLU(BN(pool_i(W^i * a^{i-1})))`` (3x3 kernels, padding 1; blocks
after the first halve the resolution with a 2x2 max pool), then ``f = ReLU(U flatten(a^{L-1}) + b)``
(``fc``) and ``logits = V f + c``. :func:`factorise` replaces trained layers by (no retraining):

**Monochromatic** (first layer, ``approx`` ``mono`` or ``both``; kernel ``W ∈ R^{F×C×k×k}``): every
filter's ``C × k²`` matrix ``W_f`` is approximated by its rank-1 SVD ``W_f ≈ s_f c_f β̂_fᵀ`` (colour
``c_f``, unit norm, sign fixed so that ``Σ_c c_f[c] ≥ 0``); the colours are clustered by seeded
k-means into ``C'`` centres ``c̄_1..c̄_{C'}`` (filter ``f`` in cluster ``a(f)``), and each filter's
spatial kernel is then the least-squares best one for its centre, ``β_f = W_fᵀ c̄_{a(f)} / ‖c̄_{a(f)}‖²``:

.. math::  \tilde W_f = \bar c_{a(f)} \beta_f^T, \qquad
           \tilde W * x = \operatorname{depthwise}_\beta\bigl(P_a (\bar C x)\bigr)

evaluated as a 1x1 convolution onto the ``C'`` colour channels ``C̄ x``, a gather ``P_a`` of channel
``a(f)`` for each output ``f``, and one single-channel ``k×k`` convolution per output (depthwise).
Multiply-adds per output cell: ``C C' + F k²`` instead of ``F C k²``.

**Biclustered low rank** (hidden layers, ``approx`` ``bicluster`` or ``both``): the output filters are
clustered (k-means on ``W_f`` flattened) into ``G`` groups and the input channels (k-means on
``W[:, c]`` flattened) into ``H`` groups; each block ``W_{gh} ∈ R^{F_g×C_h×k×k}`` is unfolded as the
``C_h × (k k F_g)`` matrix and replaced by its rank-``K`` truncated SVD ``α_{gh} β_{gh}ᵀ``
(``K ≤ min(C_h, k² F_g)``), evaluated as a 1x1 convolution ``C_h → K`` followed by a ``k×k``
convolution ``K → F_g``; the ``H`` input groups' results are summed into each output group. Per
output cell: ``Σ_{g,h} (C_h K + K k² F_g)`` instead of ``F C k²``.

**Fully connected** (``fc_rank``): ``U ≈ U_r S_r V_rᵀ`` (truncated SVD), two linear maps of
``r (n_in + n_out)`` multiply-adds instead of ``n_in n_out``.

k-means here is Lloyd's algorithm from a seeded k-means++ start (clusters may have unequal sizes; an
emptied cluster takes the point farthest from its centre). Cluster assignments are kept on the
factorised modules (``assignment``, ``out_groups``, ``in_groups``). The factorised forward is exactly
the convolution with the reconstructed kernel (``reconstructed_weight()``), tested to 1e-5.
``factorise(..., finetune=(images, labels))`` then trains the parameters that were not approximated
(the layers above and all BatchNorms), as the paper fine-tunes the layers above an approximated one.

Taps: ``conv{i}`` (IMAGE ``[B, C_i, H_i, W_i]``, axis ``conv{i}``) the block outputs; ``fc`` and
``logits`` (SCALAR, axis ``image``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.hooks import IMAGE, SCALAR, Tap

from ..families.image.api import SCALAR_AXIS, ConvStep, ImageAxis, conv_chain
from ..spec import ConfigError, EngineSpec, Paper

ENGINE = "lowrank-cnn"
APPROX = ("none", "mono", "bicluster", "both")


# ----------------------------------------------------------------------------------------------- k-means
def kmeans(points: Tensor, k: int, *, seed: int = 0, iterations: int = 50) -> Tensor:
    """Cluster the rows of ``points`` [n, d] into ``k`` clusters; returns the assignment [n] (long).

    Seeded k-means++ start, then Lloyd iterations; an empty cluster takes the point farthest from its
    centre. Deterministic for a given seed.
    """
    n = points.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"cannot make {k} clusters of {n} points")
    x = points.detach().double()
    g = torch.Generator().manual_seed(seed)
    centres = [x[int(torch.randint(n, (1,), generator=g))]]
    for _ in range(1, k):
        d2 = torch.cdist(x, torch.stack(centres)).min(1).values ** 2
        if float(d2.sum()) <= 0:
            centres.append(x[len(centres) % n])
            continue
        centres.append(x[int(torch.multinomial(d2 / d2.sum(), 1, generator=g))])
    c = torch.stack(centres)
    assign = torch.cdist(x, c).argmin(1)
    for _ in range(iterations):
        for j in range(k):
            members = assign == j
            if not members.any():
                far = torch.cdist(x, c).gather(1, assign[:, None]).squeeze(1).argmax()
                assign[far] = j
                members = assign == j
            c[j] = x[members].mean(0)
        new = torch.cdist(x, c).argmin(1)
        empty = [j for j in range(k) if not (new == j).any()]
        if not empty and torch.equal(new, assign):
            break
        if empty:
            break
        assign = new
    return assign


# ------------------------------------------------------------------------------------- factorised layers
class MACCounter:
    """Counts the multiply-adds of the convolutions and linear maps a factorised forward actually runs."""

    def __init__(self):
        self.total = 0

    def conv(self, out: Tensor, weight: Tensor) -> None:
        # every output element costs (in_channels / groups) * kh * kw multiply-adds
        self.total += out[0].numel() * weight.shape[1] * weight.shape[2] * weight.shape[3]

    def linear(self, out: Tensor, weight: Tensor) -> None:
        self.total += out[0].numel() * weight.shape[1]


_COUNTER: list[MACCounter] = []


def _count_conv(out: Tensor, weight: Tensor) -> Tensor:
    for c in _COUNTER:
        c.conv(out, weight)
    return out


def _count_linear(out: Tensor, weight: Tensor) -> Tensor:
    for c in _COUNTER:
        c.linear(out, weight)
    return out


def count_macs(model: nn.Module, images: Tensor) -> int:
    """Multiply-adds per image that ``model``'s convolutions and linear maps actually perform on
    ``images`` (counted at every call, not from a formula)."""
    counter = MACCounter()
    _COUNTER.append(counter)
    try:
        with torch.no_grad():
            model(images[:1])
    finally:
        _COUNTER.remove(counter)
    return counter.total


class DenseConv(nn.Module):
    """A plain k×k convolution (padding k//2) whose multiply-adds are counted."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel, kernel))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.padding = kernel // 2

    def reconstructed_weight(self) -> Tensor:
        return self.weight

    def macs_per_cell(self) -> int:
        f, c, kh, kw = self.weight.shape
        return f * c * kh * kw

    def forward(self, x: Tensor) -> Tensor:
        return _count_conv(F.conv2d(x, self.weight, None, 1, self.padding), self.weight)


class MonochromaticConv(nn.Module):
    """Denton's monochromatic approximation of a k×k convolution (module docstring).

    Parameters: ``colours`` [C', C, 1, 1] (the centres), ``spatial`` [F, 1, k, k] (β_f); buffer
    ``assignment`` [F] (the colour cluster of every output filter).
    """

    def __init__(self, weight: Tensor, num_colours: int, *, seed: int = 0):
        super().__init__()
        f, c, kh, kw = weight.shape
        if not 1 <= num_colours <= f:
            raise ConfigError(f"expected mono_colours of engine {ENGINE!r} between 1 and the layer's {f} filters, "
                              f"got {num_colours!r}")
        w = weight.detach().double().reshape(f, c, kh * kw)
        u, s, vh = torch.linalg.svd(w, full_matrices=False)  # [F, C, r], [F, r], [F, r, k²]
        colour = u[:, :, 0]
        sign = torch.where(colour.sum(1) < 0, -1.0, 1.0).to(colour)
        colour = colour * sign[:, None]
        assign = kmeans(colour, num_colours, seed=seed)
        centres = torch.stack([colour[assign == j].mean(0) for j in range(num_colours)])
        cbar = centres[assign]  # [F, C]
        beta = torch.einsum("fck,fc->fk", w, cbar) / (cbar * cbar).sum(1, keepdim=True)
        self.colours = nn.Parameter(centres.to(weight.dtype).reshape(num_colours, c, 1, 1))
        self.spatial = nn.Parameter(beta.to(weight.dtype).reshape(f, 1, kh, kw))
        self.register_buffer("assignment", assign)
        self.padding = kh // 2

    def reconstructed_weight(self) -> Tensor:
        cbar = self.colours[:, :, 0, 0][self.assignment]  # [F, C]
        return cbar[:, :, None, None] * self.spatial  # [F, C, k, k]

    def macs_per_cell(self) -> int:
        cp, c = self.colours.shape[:2]
        f, _, kh, kw = self.spatial.shape
        return c * cp + f * kh * kw

    def forward(self, x: Tensor) -> Tensor:
        projected = _count_conv(F.conv2d(x, self.colours), self.colours)  # [B, C', H, W]
        gathered = projected[:, self.assignment]  # [B, F, H, W]
        out = F.conv2d(gathered, self.spatial, None, 1, self.padding, 1, self.spatial.shape[0])
        return _count_conv(out, self.spatial)


class BiclusterConv(nn.Module):
    """Denton's biclustered rank-K approximation of a k×k convolution (module docstring).

    Buffers ``out_groups`` [F] and ``in_groups`` [C] (cluster of every output filter / input channel);
    per block (g, h): ``first.{g}_{h}`` [K, C_h, 1, 1] and ``second.{g}_{h}`` [F_g, K, k, k].
    """

    def __init__(self, weight: Tensor, out_clusters: int, in_clusters: int, rank: int, *, seed: int = 0):
        super().__init__()
        f, c, kh, kw = weight.shape
        for name, value, limit in (("bicluster_out", out_clusters, f), ("bicluster_in", in_clusters, c)):
            if not 1 <= value <= limit:
                raise ConfigError(f"expected {name} of engine {ENGINE!r} between 1 and {limit}, got {value!r}")
        if rank < 1:
            raise ConfigError(f"expected rank of engine {ENGINE!r} to be a positive int, got {rank!r}")
        w = weight.detach().double()
        out_groups = kmeans(w.reshape(f, -1), out_clusters, seed=seed)
        in_groups = kmeans(w.transpose(0, 1).reshape(c, -1), in_clusters, seed=seed + 1)
        self.register_buffer("out_groups", out_groups)
        self.register_buffer("in_groups", in_groups)
        self.num_out, self.num_in = out_clusters, in_clusters
        self.first = nn.ParameterDict()
        self.second = nn.ParameterDict()
        self.ranks = {}
        for g, oi in enumerate(self.out_index):
            for h, ii in enumerate(self.in_index):
                block = w[oi][:, ii]  # [F_g, C_h, k, k]
                fg, ch = block.shape[:2]
                unfolded = block.permute(1, 2, 3, 0).reshape(ch, kh * kw * fg)  # C_h × (k k F_g)
                u, s, vh = torch.linalg.svd(unfolded, full_matrices=False)
                r = min(rank, s.numel())
                alpha = u[:, :r] * s[:r]  # [C_h, r]
                beta = vh[:r].reshape(r, kh, kw, fg).permute(3, 0, 1, 2)  # [F_g, r, k, k]
                self.first[f"{g}_{h}"] = nn.Parameter(alpha.t().to(weight.dtype).reshape(r, ch, 1, 1))
                self.second[f"{g}_{h}"] = nn.Parameter(beta.to(weight.dtype).contiguous())
                self.ranks[(g, h)] = r
        self.shape = (f, c, kh, kw)
        self.padding = kh // 2

    @property
    def out_index(self) -> list[Tensor]:
        return [torch.nonzero(self.out_groups == g).squeeze(1) for g in range(self.num_out)]

    @property
    def in_index(self) -> list[Tensor]:
        return [torch.nonzero(self.in_groups == h).squeeze(1) for h in range(self.num_in)]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the blocks' shapes follow the stored clusters (those of the trained kernel factorised, not
        # of whatever kernel this module was built from): reshape the factors before loading them
        outs, ins = state_dict.get(prefix + "out_groups"), state_dict.get(prefix + "in_groups")
        if outs is not None and ins is not None:
            for g in range(self.num_out):
                for h in range(self.num_in):
                    a, b = state_dict.get(f"{prefix}first.{g}_{h}"), state_dict.get(f"{prefix}second.{g}_{h}")
                    if a is not None and b is not None:
                        self.first[f"{g}_{h}"] = nn.Parameter(a.new_zeros(a.shape))
                        self.second[f"{g}_{h}"] = nn.Parameter(b.new_zeros(b.shape))
                        self.ranks[(g, h)] = a.shape[0]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def reconstructed_weight(self) -> Tensor:
        f, c, kh, kw = self.shape
        w = self.first["0_0"].new_zeros(self.shape)
        for g, oi in enumerate(self.out_index):
            for h, ii in enumerate(self.in_index):
                a = self.first[f"{g}_{h}"][:, :, 0, 0]  # [r, C_h]
                b = self.second[f"{g}_{h}"]  # [F_g, r, k, k]
                block = torch.einsum("rc,frxy->fcxy", a, b)
                w[oi[:, None], ii[None, :]] = block
        return w

    def macs_per_cell(self) -> int:
        f, c, kh, kw = self.shape
        return sum(r * (len(self.in_index[h]) + kh * kw * len(self.out_index[g])) for (g, h), r in self.ranks.items())

    def forward(self, x: Tensor) -> Tensor:
        f = self.shape[0]
        out = x.new_zeros(x.shape[0], f, x.shape[2], x.shape[3])
        for h, ii in enumerate(self.in_index):
            xh = x[:, ii]
            for g, oi in enumerate(self.out_index):
                a, b = self.first[f"{g}_{h}"], self.second[f"{g}_{h}"]
                mid = _count_conv(F.conv2d(xh, a), a)
                out[:, oi] += _count_conv(F.conv2d(mid, b, None, 1, self.padding), b)
        return out


class DenseLinear(nn.Linear):
    def reconstructed_weight(self) -> Tensor:
        return self.weight

    def macs(self) -> int:
        return self.weight.numel()

    def forward(self, x: Tensor) -> Tensor:
        return _count_linear(super().forward(x), self.weight)


class SVDLinear(nn.Module):
    """``U ≈ U_r S_r V_rᵀ``: ``x ↦ A (B x) + b`` with ``A = U_r S_r`` [out, r], ``B = V_rᵀ`` [r, in]."""

    def __init__(self, linear: nn.Linear, rank: int):
        super().__init__()
        w = linear.weight.detach().double()
        if not 1 <= rank <= min(w.shape):
            raise ConfigError(f"expected fc_rank of engine {ENGINE!r} between 1 and {min(w.shape)}, got {rank!r}")
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        self.down = nn.Parameter(vh[:rank].to(linear.weight.dtype).contiguous())
        self.up = nn.Parameter((u[:, :rank] * s[:rank]).to(linear.weight.dtype).contiguous())
        self.bias = nn.Parameter(linear.bias.detach().clone())

    def reconstructed_weight(self) -> Tensor:
        return self.up @ self.down

    def macs(self) -> int:
        return self.down.numel() + self.up.numel()

    def forward(self, x: Tensor) -> Tensor:
        mid = _count_linear(F.linear(x, self.down), self.down)
        return _count_linear(F.linear(mid, self.up, self.bias), self.up)


# ---------------------------------------------------------------------------------------------- model
def conv_steps(num_layers: int) -> list[list[ConvStep]]:
    """The steps from the input to each conv block's output: 3x3 pad 1, then (after the first) a 2x2 pool."""
    steps, out = [], []
    for i in range(num_layers):
        steps = steps + [ConvStep(3, 1, 1)] + ([ConvStep(2, 2)] if i > 0 else [])
        out.append(list(steps))
    return out


def _positive(name: str, value, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"expected {name} of engine {ENGINE!r} to be a positive int"
                          f"{' or None' if allow_none else ''}, got {value!r}")
    return value


class LowRankCNN(nn.Module):
    """The CNN of the module docstring, dense or with approximated layers (``approx``)."""

    def __init__(self, channels: int, height: int, width: int, num_classes: int, task: str = "class", *,
                 conv_channels=(16, 32, 32), fc_size: int = 64, approx: str = "none", mono_colours: int = 2,
                 bicluster_out: int = 2, bicluster_in: int = 2, rank: int = 4, fc_rank: int | None = None,
                 seed: int = 0):
        super().__init__()
        self.in_channels, self.height, self.width = int(channels), int(height), int(width)
        self.num_classes, self.task = int(num_classes), task
        try:
            self.conv_channels = tuple(int(c) for c in conv_channels)
        except TypeError:
            self.conv_channels = ()
        if len(self.conv_channels) < 2 or any(c < 1 for c in self.conv_channels):
            raise ConfigError(f"expected conv_channels of engine {ENGINE!r} to be at least 2 positive ints, "
                              f"got {conv_channels!r}")
        if approx not in APPROX:
            raise ConfigError(f"expected approx of engine {ENGINE!r} to be one of {', '.join(APPROX)}, got {approx!r}")
        self.fc_size = _positive("fc_size", fc_size)
        self.settings = {"approx": approx, "mono_colours": _positive("mono_colours", mono_colours),
                         "bicluster_out": _positive("bicluster_out", bicluster_out),
                         "bicluster_in": _positive("bicluster_in", bicluster_in), "rank": _positive("rank", rank),
                         "fc_rank": _positive("fc_rank", fc_rank, allow_none=True), "seed": int(seed)}
        sizes = (self.in_channels,) + self.conv_channels
        self.convs = nn.ModuleList(DenseConv(sizes[i], sizes[i + 1]) for i in range(len(self.conv_channels)))
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for c in self.conv_channels)
        self.taps = nn.ModuleList(
            Tap(f"conv{i}", signal="a", layer=i, layout=IMAGE, axis=f"conv{i}",
                description=f"conv block {i}: ReLU(BN({'maxpool(' if i else ''}conv{')' if i else ''}))")
            for i in range(len(self.conv_channels)))
        last = conv_chain(self.height, self.width, conv_steps(len(self.conv_channels))[-1]).size
        self.fc = DenseLinear(self.conv_channels[-1] * last.height * last.width, self.fc_size)
        self.fc_tap = Tap("fc", signal="fc", layout=SCALAR, axis="image", description="ReLU of the FC layer")
        self.head = DenseLinear(self.fc_size, self.num_classes)
        self.logits_tap = Tap("logits", signal="logits", layout=SCALAR, axis="image", description="class logits")
        if approx != "none" or fc_rank is not None:
            self.apply_approximation(**self.settings)

    @property
    def config(self) -> dict:
        return {"conv_channels": list(self.conv_channels), "fc_size": self.fc_size, **self.settings}

    def apply_approximation(self, *, approx: str = "none", mono_colours: int = 2, bicluster_out: int = 2,
                            bicluster_in: int = 2, rank: int = 4, fc_rank: int | None = None, seed: int = 0) -> None:
        """Replace the current layers by their approximations in place (see :func:`factorise`)."""
        if approx in ("mono", "both"):
            self.convs[0] = MonochromaticConv(self.convs[0].reconstructed_weight(), mono_colours, seed=seed)
        if approx in ("bicluster", "both"):
            for i in range(1, len(self.convs)):
                self.convs[i] = BiclusterConv(self.convs[i].reconstructed_weight(), bicluster_out, bicluster_in,
                                              rank, seed=seed)
        if fc_rank is not None:
            dense = nn.Linear(self.fc.reconstructed_weight().shape[1], self.fc_size)
            with torch.no_grad():
                dense.weight.copy_(self.fc.reconstructed_weight())
                dense.bias.copy_(self.fc.bias)
            self.fc = SVDLinear(dense, fc_rank)
        self.settings = {"approx": approx, "mono_colours": mono_colours, "bicluster_out": bicluster_out,
                         "bicluster_in": bicluster_in, "rank": rank, "fc_rank": fc_rank, "seed": seed}

    def image_axes(self, height: int, width: int) -> dict[str, ImageAxis]:
        axes = {f"conv{i}": conv_chain(height, width, steps)
                for i, steps in enumerate(conv_steps(len(self.conv_channels)))}
        axes["image"] = SCALAR_AXIS
        return axes

    def feature_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        return [(a.size.height, a.size.width) for name, a in self.image_axes(height, width).items() if name != "image"]

    def macs(self, height: int | None = None, width: int | None = None) -> dict[str, int]:
        """Theoretical multiply-adds per image, per layer (formulas of the module docstring)."""
        sizes = self.feature_sizes(height or self.height, width or self.width)
        out = {}
        for i, conv in enumerate(self.convs):
            # the conv runs at the resolution before the pool: the previous block's map
            h, w = (height or self.height, width or self.width) if i == 0 else sizes[i - 1]
            out[f"conv{i}"] = conv.macs_per_cell() * h * w
        out["fc"] = self.fc.macs()
        out["head"] = self.head.macs()
        return out

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != self.in_channels:
            raise ValueError(f"expected images [batch, {self.in_channels}, H, W], got {tuple(images.shape)}")
        x = images
        for i, (conv, norm, tap) in enumerate(zip(self.convs, self.norms, self.taps)):
            x = conv(x)
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = tap(F.relu(norm(x)))
        f = self.fc_tap(F.relu(self.fc(torch.flatten(x, 1))))
        return self.logits_tap(self.head(f))


def factorise(model: LowRankCNN, *, approx: str = "both", mono_colours: int = 2, bicluster_out: int = 2,
              bicluster_in: int = 2, rank: int = 4, fc_rank: int | None = None, seed: int = 0,
              finetune: tuple[Tensor, Tensor] | None = None, finetune_steps: int = 100,
              finetune_lr: float = 1e-3, batch_size: int = 64) -> LowRankCNN:
    """A copy of the trained ``model`` with its layers replaced by Denton et al.'s approximations.

    No retraining unless ``finetune=(images, labels)``: then the parameters that were not approximated
    (BatchNorms, the layers above, the head) are trained with Adam for ``finetune_steps`` steps of
    cross-entropy while the approximated factors stay fixed. The input model is not changed.
    """
    import copy

    if approx not in APPROX:
        raise ConfigError(f"expected approx of engine {ENGINE!r} to be one of {', '.join(APPROX)}, got {approx!r}")
    new = copy.deepcopy(model)
    new.apply_approximation(approx=approx, mono_colours=mono_colours, bicluster_out=bicluster_out,
                            bicluster_in=bicluster_in, rank=rank, fc_rank=fc_rank, seed=seed)
    if finetune is not None:
        images, labels = finetune
        approximated = {id(p) for m in new.modules() if isinstance(m, (MonochromaticConv, BiclusterConv, SVDLinear))
                        for p in m.parameters()}
        params = [p for p in new.parameters() if id(p) not in approximated]
        for m in new.modules():
            if isinstance(m, (MonochromaticConv, BiclusterConv, SVDLinear)):
                for p in m.parameters():
                    p.requires_grad_(False)
        opt = torch.optim.Adam(params, lr=finetune_lr)
        g = torch.Generator().manual_seed(seed)
        new.train()
        for _ in range(finetune_steps):
            idx = torch.randint(len(images), (batch_size,), generator=g)
            loss = F.cross_entropy(new(images[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        new.eval()
    return new


def build(channels: int, height: int, width: int, num_classes: int, task: str = "class", *,
          conv_channels=(16, 32, 32), fc_size: int = 64, approx: str = "none", mono_colours: int = 2,
          bicluster_out: int = 2, bicluster_in: int = 2, rank: int = 4, fc_rank: int | None = None,
          seed: int = 0) -> LowRankCNN:
    """The CNN; with ``approx``/``fc_rank`` its freshly initialised layers are factorised (to train the
    factors directly). To approximate a *trained* network, build it dense and call :func:`factorise`."""
    return LowRankCNN(channels, height, width, num_classes, task, conv_channels=conv_channels, fc_size=fc_size,
                      approx=approx, mono_colours=mono_colours, bicluster_out=bicluster_out,
                      bicluster_in=bicluster_in, rank=rank, fc_rank=fc_rank, seed=seed)


SPEC = EngineSpec(
    name=ENGINE,
    description="CNN with Denton et al.'s monochromatic / biclustered low-rank conv and SVD FC approximations",
    family="image",
    paper=Paper(
        title="Exploiting Linear Structure Within Convolutional Networks for Efficient Evaluation",
        authors="Denton, Zaremba, Bruna, LeCun, Fergus",
        arxiv="1404.0736",
        year=2014,
    ),
    build=build,
    default_config={"conv_channels": [16, 32, 32], "fc_size": 64, "approx": "none", "mono_colours": 2,
                    "bicluster_out": 2, "bicluster_in": 2, "rank": 4, "fc_rank": None, "seed": 0},
    taps=("conv*", "fc", "logits"),
    train_defaults={"steps": 600, "batch_size": 64, "lr": 0.005, "optimizer": "adam", "eval_every": 100,
                    "seed": 0},
)
