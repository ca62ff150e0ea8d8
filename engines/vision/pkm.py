r"""Engine ``pkm``: a small image classifier with a product-key memory layer (Lample, Sablayrolles,
Ranzato, Denoyer, Jégou 2019, "Large Memory Layers with Product Keys", arXiv:1907.05242).

The network: a conv stem ``x = flatten(a^{L-1})`` of conv blocks ``a^i = ReLU(BN(pool_i(W^i * a^{i-1})))``
(3x3, padding 1; blocks after the first halve the resolution with a 2x2 max pool), the memory read
``m(x)`` and a linear head, ``logits = V m(x) + c``.

The memory has ``N = n²`` slots (``n = n_keys`` sub-keys per half) with values ``v_s ∈ R^{d_v}``
(``d_v`` = ``value_size``) and ``H`` heads. Per head ``h``:

.. math::
    q &= \operatorname{BN}(W_q x) \in R^{d_q}, \quad q = (q_1, q_2),\ q_1, q_2 \in R^{d_q/2} \\
    I_1 &= \operatorname{top\text{-}k}_i\ q_1 \cdot c_i, \qquad I_2 = \operatorname{top\text{-}k}_j\ q_2 \cdot c'_j \\
    \mathcal{K} &= \operatorname{top\text{-}k}_{(i,j) \in I_1 \times I_2}\ s_{ij}, \quad
        s_{ij} = q_1 \cdot c_i + q_2 \cdot c'_j \\
    w &= \operatorname{softmax}(s_{\mathcal{K}}), \qquad m_h(x) = \sum_{(i,j) \in \mathcal{K}} w_{ij}\, v_{i n + j}

and ``m(x) = Σ_h m_h(x)`` (the heads share the values, as in the paper). Because the score is a sum of
one term per half, every pair of the true top-k over all ``n²`` keys has both halves in the halves'
top-k, so the product search is exact (tested against brute force). Cost per head and input
``O(n d_q + k² log k)`` (two sub-key scorings of ``n`` keys, ``k²`` candidate sums) instead of ``O(n² d_q)``. The read is an ``F.embedding_bag`` (sum mode with
per-sample weights): a backward touches only the ``H·k`` selected value rows
(``sparse_values=True`` makes that gradient a sparse tensor; it then needs a sparse optimiser).
``query_bn=False`` removes the BatchNorm on the query (the paper's ablation).

**Ties.** ``torch.topk`` does not specify which of equal scores it returns. The *scores* of the top-k
are unique and the product search returns exactly the brute-force top-k scores; the *indices* are one
valid choice among the tied ones (every returned slot is distinct and scores at least the k-th best).
The test checks exactly that on keys built to tie.

Taps (``memory_slots`` format decided here):

- ``conv{i}`` (IMAGE, axis ``conv{i}``): the stem's blocks;
- ``query`` (SCALAR, axis ``image``): ``q`` of all heads, ``[B, H d_q]``;
- ``memory_slots``: if ``N ≤ 4096`` (``DENSE_SLOTS``), one SCALAR tap ``[B, N]`` holding the softmax
  weights of the selected slots summed over heads (zero elsewhere; each row sums to ``H``); above
  that, two SCALAR taps ``memory_slots/indices`` ``[B, H k]`` (slot numbers as floats, head-major) and
  ``memory_slots/weights`` ``[B, H k]`` (their weights, same order), so a recording stays dense and small;
- ``readout`` (SCALAR): ``m(x)`` ``[B, d_v]``; ``logits`` (SCALAR).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.hooks import IMAGE, SCALAR, Tap

from ..families.image.api import SCALAR_AXIS, ConvStep, ImageAxis, conv_chain
from ..spec import ConfigError, EngineSpec, Paper

ENGINE = "pkm"
DENSE_SLOTS = 4096
"""Up to this many slots, ``memory_slots`` is recorded as one dense ``[B, slots]`` tap."""


def product_topk(q1: Tensor, q2: Tensor, keys1: Tensor, keys2: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Top-``k`` over the product keys without scoring all ``n²`` of them.

    ``q1, q2`` [..., d/2]; ``keys1, keys2`` [n, d/2] (or broadcastable [..., n, d/2]). Returns
    ``(scores, slots)`` [..., k], scores descending, ``slot = i n + j``.
    """
    n = keys1.shape[-2]
    kk = min(k, n)
    s1 = (q1.unsqueeze(-2) * keys1).sum(-1)  # [..., n]
    s2 = (q2.unsqueeze(-2) * keys2).sum(-1)
    v1, i1 = s1.topk(kk, dim=-1)
    v2, i2 = s2.topk(kk, dim=-1)
    cand = (v1.unsqueeze(-1) + v2.unsqueeze(-2)).flatten(-2)  # [..., kk*kk]
    scores, best = cand.topk(min(k, kk * kk), dim=-1)
    rows = torch.gather(i1, -1, best // kk)
    cols = torch.gather(i2, -1, best % kk)
    return scores, rows * n + cols


def brute_topk(q1: Tensor, q2: Tensor, keys1: Tensor, keys2: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The reference: score all ``n²`` concatenated keys ``(c_i, c'_j)`` and take the top-``k``."""
    n = keys1.shape[-2]
    full = torch.cat([keys1.repeat_interleave(n, 0), keys2.repeat(n, 1)], dim=1)  # [n², d], slot i n + j
    scores = torch.cat([q1, q2], dim=-1) @ full.t()
    return scores.topk(k, dim=-1)


class ProductKeyMemory(nn.Module):
    """The memory layer of the module docstring: ``x [B, d_in] -> (m(x) [B, d_v], scores, slots)``."""

    def __init__(self, in_size: int, *, n_keys: int = 16, topk: int = 8, heads: int = 2, query_size: int = 32,
                 value_size: int = 64, query_bn: bool = True, sparse_values: bool = False):
        super().__init__()
        for name, value in (("n_keys", n_keys), ("topk", topk), ("heads", heads), ("query_size", query_size),
                            ("value_size", value_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"expected {name} of engine {ENGINE!r} to be a positive int, got {value!r}")
        if query_size % 2:
            raise ConfigError(f"expected query_size of engine {ENGINE!r} to be even (two halves), got {query_size}")
        if topk > n_keys * n_keys:
            raise ConfigError(f"expected topk of engine {ENGINE!r} at most n_keys² = {n_keys * n_keys}, got {topk}")
        self.n_keys, self.k, self.heads, self.query_size = n_keys, topk, heads, query_size
        self.num_slots = n_keys * n_keys
        self.query = nn.Linear(in_size, heads * query_size)
        self.query_norm = nn.BatchNorm1d(heads * query_size) if query_bn else nn.Identity()
        half = query_size // 2
        # sub-keys [heads, 2 halves, n, d/2], uniform like the paper's init
        bound = 1 / math.sqrt(half)
        self.keys = nn.Parameter(torch.empty(heads, 2, n_keys, half).uniform_(-bound, bound))
        self.values = nn.Embedding(self.num_slots, value_size, sparse=sparse_values)
        nn.init.normal_(self.values.weight, 0, value_size ** -0.5)

    def lookup(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(q [B, H d_q], scores [B, H, k], slots [B, H, k])``."""
        q = self.query_norm(self.query(x))
        qh = q.view(-1, self.heads, self.query_size)
        half = self.query_size // 2
        scores, slots = product_topk(qh[..., :half], qh[..., half:], self.keys[None, :, 0], self.keys[None, :, 1],
                                     self.k)
        return q, scores, slots

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        q, scores, slots = self.lookup(x)
        weights = scores.softmax(-1)  # per head over its k slots
        b = x.shape[0]
        out = F.embedding_bag(slots.reshape(b, -1), self.values.weight, mode="sum",
                              per_sample_weights=weights.reshape(b, -1), sparse=self.values.sparse)
        return out, q, weights, slots


def conv_steps(num_layers: int) -> list[list[ConvStep]]:
    steps, out = [], []
    for i in range(num_layers):
        steps = steps + [ConvStep(3, 1, 1)] + ([ConvStep(2, 2)] if i > 0 else [])
        out.append(list(steps))
    return out


class PKMClassifier(nn.Module):
    """Conv stem, product-key memory, linear head (module docstring)."""

    def __init__(self, channels: int, height: int, width: int, num_classes: int, task: str = "class", *,
                 conv_channels=(16, 32), n_keys: int = 16, topk: int = 8, heads: int = 2, query_size: int = 32,
                 value_size: int = 64, query_bn: bool = True, sparse_values: bool = False):
        super().__init__()
        self.in_channels, self.height, self.width = int(channels), int(height), int(width)
        self.num_classes, self.task = int(num_classes), task
        try:
            self.conv_channels = tuple(int(c) for c in conv_channels)
        except TypeError:
            self.conv_channels = ()
        if len(self.conv_channels) < 1 or any(c < 1 for c in self.conv_channels):
            raise ConfigError(f"expected conv_channels of engine {ENGINE!r} to be positive ints, got {conv_channels!r}")
        sizes = (self.in_channels,) + self.conv_channels
        self.convs = nn.ModuleList(nn.Conv2d(sizes[i], sizes[i + 1], 3, padding=1, bias=False)
                                   for i in range(len(self.conv_channels)))
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for c in self.conv_channels)
        self.taps = nn.ModuleList(Tap(f"conv{i}", signal="a", layer=i, layout=IMAGE, axis=f"conv{i}",
                                      description=f"stem block {i}: ReLU(BN(...))")
                                  for i in range(len(self.conv_channels)))
        last = conv_chain(self.height, self.width, conv_steps(len(self.conv_channels))[-1]).size
        self.memory = ProductKeyMemory(self.conv_channels[-1] * last.height * last.width, n_keys=n_keys, topk=topk,
                                       heads=heads, query_size=query_size, value_size=value_size, query_bn=query_bn,
                                       sparse_values=sparse_values)
        self.head = nn.Linear(value_size, self.num_classes)
        self.query_tap = Tap("query", signal="q", layout=SCALAR, axis="image",
                             description="memory query BN(W_q x) of all heads (head-major)")
        if self.memory.num_slots <= DENSE_SLOTS:
            self.slot_taps = nn.ModuleList([Tap(
                "memory_slots", signal="slots", layout=SCALAR, axis="image",
                description="softmax weight of every memory slot read (summed over heads; 0 = not read)")])
        else:
            self.slot_taps = nn.ModuleList([
                Tap("memory_slots/indices", signal="indices", layout=SCALAR, axis="image",
                    description="slot numbers i*n+j read, head-major (floats)"),
                Tap("memory_slots/weights", signal="weights", layout=SCALAR, axis="image",
                    description="softmax weights of the slots in memory_slots/indices")])
        self.readout_tap = Tap("readout", signal="m", layout=SCALAR, axis="image", description="memory read-out m(x)")
        self.logits_tap = Tap("logits", signal="logits", layout=SCALAR, axis="image", description="class logits")
        self._config = {"conv_channels": list(self.conv_channels), "n_keys": n_keys, "topk": topk, "heads": heads,
                        "query_size": query_size, "value_size": value_size, "query_bn": query_bn,
                        "sparse_values": sparse_values}

    @property
    def config(self) -> dict:
        return dict(self._config)

    def image_axes(self, height: int, width: int) -> dict[str, ImageAxis]:
        axes = {f"conv{i}": conv_chain(height, width, steps)
                for i, steps in enumerate(conv_steps(len(self.conv_channels)))}
        axes["image"] = SCALAR_AXIS
        return axes

    def features(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != self.in_channels:
            raise ValueError(f"expected images [batch, {self.in_channels}, H, W], got {tuple(images.shape)}")
        x = images
        for i, (conv, norm, tap) in enumerate(zip(self.convs, self.norms, self.taps)):
            x = conv(x)
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = tap(F.relu(norm(x)))
        return torch.flatten(x, 1)

    def forward(self, images: Tensor) -> Tensor:
        out, q, weights, slots = self.memory(self.features(images))
        self.query_tap(q)
        b = images.shape[0]
        if len(self.slot_taps) == 1:
            dense = weights.new_zeros(b, self.memory.num_slots)
            dense.scatter_add_(1, slots.reshape(b, -1), weights.reshape(b, -1))
            self.slot_taps[0](dense)
        else:
            self.slot_taps[0](slots.reshape(b, -1).to(weights.dtype))
            self.slot_taps[1](weights.reshape(b, -1))
        return self.logits_tap(self.head(self.readout_tap(out)))


def slot_usage(weights: Tensor) -> tuple[float, float]:
    """The paper's memory-usage numbers from the summed slot weights ``[N]`` over a data set:
    the fraction of slots read at least once and ``KL(usage ‖ uniform)`` (nats; 0 = uniform)."""
    n = weights.numel()
    p = weights.double() / weights.sum()
    nz = p > 0
    return float(nz.double().mean()), float((p[nz] * (p[nz] * n).log()).sum())


def build(channels: int, height: int, width: int, num_classes: int, task: str = "class", *,
          conv_channels=(16, 32), n_keys: int = 16, topk: int = 8, heads: int = 2, query_size: int = 32,
          value_size: int = 64, query_bn: bool = True, sparse_values: bool = False) -> PKMClassifier:
    return PKMClassifier(channels, height, width, num_classes, task, conv_channels=conv_channels, n_keys=n_keys,
                         topk=topk, heads=heads, query_size=query_size, value_size=value_size, query_bn=query_bn,
                         sparse_values=sparse_values)


SPEC = EngineSpec(
    name=ENGINE,
    description="conv stem + product-key memory layer (n² slots, exact top-k over product keys) + linear head",
    family="image",
    paper=Paper(
        title="Large Memory Layers with Product Keys",
        authors="Lample, Sablayrolles, Ranzato, Denoyer, Jégou",
        arxiv="1907.05242",
        year=2019,
    ),
    build=build,
    default_config={"conv_channels": [16, 32], "n_keys": 16, "topk": 8, "heads": 2, "query_size": 32,
                    "value_size": 64, "query_bn": True, "sparse_values": False},
    taps=("conv*", "query", "memory_slots*", "readout", "logits"),
    train_defaults={"steps": 600, "batch_size": 64, "lr": 0.003, "optimizer": "adam", "eval_every": 100,
                    "seed": 0},
)
