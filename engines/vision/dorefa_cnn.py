r"""Engine ``dorefa-cnn``: a small CNN with k-bit weights, activations and gradients (DoReFa-Net).

"DoReFa-Net: Training Low Bitwidth Convolutional Neural Networks with Low Bitwidth Gradients"
(Zhou, Wu, Ni, Zhou, Wen, Zou 2016, arXiv:1606.06160). With the quantisers of
:mod:`lstmviz.engines.vision.quantize` (``f_W`` k_W-bit weights, ``f_A`` k_A-bit activations, ``f_G``
k_G-bit stochastic gradients):

.. math::
    a^0 &= f_A\bigl(\operatorname{BN}(W^0 * x)\bigr) &&\text{(first layer: full-precision weights)} \\
    a^l &= f_A\bigl(\operatorname{BN}(\operatorname{maxpool}_2(f_G(f_W(W^l) * a^{l-1})))\bigr),
        \quad l = 1 .. L-1 \\
    \text{logits} &= V \operatorname{flatten}(a^{L-1}) + b &&\text{(last layer: full precision)}

where ``f_A(a) = quantize_k(clip(a, 0, 1))`` takes exactly ``2^{k_A}`` values ``i / (2^{k_A} - 1)``,
``f_W(W) = 2 quantize_k(tanh W / (2 max|tanh W|) + 1/2) - 1`` (k_W = 1: ``sign(W) E|W|``) and ``f_G``
is the identity in the forward and quantises the gradient flowing back into each quantised
convolution's output (one scale per image; uniform noise of one level makes it unbiased;
``g_noise=False`` switches the noise off, the paper's ablation). As in the paper (and its reference
code), the first and last layers keep full-precision weights, BatchNorm sits before the clip, and
32 bits means "not quantised". Convolutions are 3x3 with padding 1; layers after the first halve the
resolution with a 2x2 max pool (8x8 digits: 8x8, 4x4, 2x2).

Taps: ``conv{i}`` (IMAGE ``[B, C_i, H_i, W_i]``, axis ``conv{i}``): the quantised activations ``a^i``
(exactly 2^a_bits values, in [0, 1]); ``logits`` (SCALAR, axis ``image``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.hooks import IMAGE, SCALAR, Tap

from ..families.image.api import SCALAR_AXIS, ConvStep, ImageAxis, conv_chain
from ..spec import ConfigError, EngineSpec, Paper
from .quantize import check_bit_width, dorefa_activations, dorefa_weights, quantize_gradient

ENGINE = "dorefa-cnn"


def _channels(engine: str, channels) -> tuple[int, ...]:
    try:
        out = tuple(int(c) for c in channels)
    except TypeError:
        out = ()
    if len(out) < 2 or any(c < 1 for c in out) or any(isinstance(c, bool) for c in channels):
        raise ConfigError(f"expected channels of engine {engine!r} to be a list of at least 2 positive ints "
                          f"(one per conv layer), got {channels!r}")
    return out


def conv_steps(num_layers: int) -> list[list[ConvStep]]:
    """The steps from the input to each conv block's output: 3x3 pad 1, then (after the first) a 2x2 pool."""
    steps, out = [], []
    for i in range(num_layers):
        steps = steps + [ConvStep(3, 1, 1)] + ([ConvStep(2, 2)] if i > 0 else [])
        out.append(list(steps))
    return out


class QuantConv2d(nn.Conv2d):
    """A 3x3 convolution whose weights pass through DoReFa's ``f_W`` (``w_bits``) in every forward."""

    def __init__(self, in_channels: int, out_channels: int, *, w_bits: int):
        super().__init__(in_channels, out_channels, 3, padding=1, bias=False)
        self.w_bits = w_bits

    def quantized_weight(self) -> Tensor:
        return dorefa_weights(self.weight, self.w_bits)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.quantized_weight(), None, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, w_bits={self.w_bits}"


class DoReFaCNN(nn.Module):
    """The DoReFa CNN (see the module docstring for the equations)."""

    def __init__(self, channels: int, height: int, width: int, num_classes: int, task: str = "class", *,
                 conv_channels=(16, 32, 32), w_bits: int = 1, a_bits: int = 2, g_bits: int = 6,
                 g_noise: bool = True):
        super().__init__()
        self.in_channels, self.height, self.width = int(channels), int(height), int(width)
        self.num_classes, self.task = int(num_classes), task
        self.conv_channels = _channels(ENGINE, conv_channels)
        self.w_bits = check_bit_width(ENGINE, "w_bits", w_bits)
        self.a_bits = check_bit_width(ENGINE, "a_bits", a_bits)
        self.g_bits = check_bit_width(ENGINE, "g_bits", g_bits)
        if not isinstance(g_noise, bool):
            raise ConfigError(f"expected g_noise of engine {ENGINE!r} to be a bool, got {g_noise!r}")
        self.g_noise = g_noise
        sizes = (self.in_channels,) + self.conv_channels
        self.convs = nn.ModuleList(
            [nn.Conv2d(sizes[0], sizes[1], 3, padding=1, bias=False)]
            + [QuantConv2d(sizes[i], sizes[i + 1], w_bits=self.w_bits) for i in range(1, len(self.conv_channels))])
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for c in self.conv_channels)
        self.taps = nn.ModuleList(
            Tap(f"conv{i}", signal="a_q", layer=i, layout=IMAGE, axis=f"conv{i}",
                description=f"conv block {i}: quantised activation quantize_k(clip(BN(...), 0, 1)), "
                            f"{'full precision' if self.a_bits >= 32 else f'{2 ** self.a_bits} levels i/{2 ** self.a_bits - 1}'}"
                            f"{' (full-precision weights)' if i == 0 else f', {self.w_bits}-bit weights'}")
            for i in range(len(self.conv_channels)))
        last = conv_chain(self.height, self.width, conv_steps(len(self.conv_channels))[-1]).size
        self.head = nn.Linear(self.conv_channels[-1] * last.height * last.width, self.num_classes)
        self.logits_tap = Tap("logits", signal="logits", layout=SCALAR, axis="image",
                              description="class logits of the full-precision last layer")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()
        for norm in self.norms:
            norm.reset_parameters()
        self.head.reset_parameters()

    @property
    def config(self) -> dict:
        return {"conv_channels": list(self.conv_channels), "w_bits": self.w_bits, "a_bits": self.a_bits,
                "g_bits": self.g_bits, "g_noise": self.g_noise}

    def extra_repr(self) -> str:
        return (f"W{self.w_bits}A{self.a_bits}G{self.g_bits}, g_noise={self.g_noise}, "
                f"input={self.in_channels}x{self.height}x{self.width}, classes={self.num_classes}")

    def image_axes(self, height: int, width: int) -> dict[str, ImageAxis]:
        axes = {f"conv{i}": conv_chain(height, width, steps)
                for i, steps in enumerate(conv_steps(len(self.conv_channels)))}
        axes["image"] = SCALAR_AXIS
        return axes

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != self.in_channels:
            raise ValueError(f"expected images [batch, {self.in_channels}, H, W], got {tuple(images.shape)}")
        x = images
        for i, (conv, norm, tap) in enumerate(zip(self.convs, self.norms, self.taps)):
            x = conv(x)
            if i > 0:
                x = quantize_gradient(x, self.g_bits, self.g_noise)
                x = F.max_pool2d(x, 2)
            x = tap(dorefa_activations(norm(x), self.a_bits))
        return self.logits_tap(self.head(torch.flatten(x, 1)))


def build(channels: int, height: int, width: int, num_classes: int, task: str = "class", *,
          conv_channels=(16, 32, 32), w_bits: int = 1, a_bits: int = 2, g_bits: int = 6,
          g_noise: bool = True) -> DoReFaCNN:
    return DoReFaCNN(channels, height, width, num_classes, task, conv_channels=conv_channels, w_bits=w_bits,
                     a_bits=a_bits, g_bits=g_bits, g_noise=g_noise)


SPEC = EngineSpec(
    name=ENGINE,
    description="CNN with k-bit weights, activations and stochastic gradients (DoReFa; W/A/G bits as config)",
    family="image",
    paper=Paper(
        title="DoReFa-Net: Training Low Bitwidth Convolutional Neural Networks with Low Bitwidth Gradients",
        authors="Zhou, Wu, Ni, Zhou, Wen, Zou",
        arxiv="1606.06160",
        year=2016,
    ),
    build=build,
    default_config={"conv_channels": [16, 32, 32], "w_bits": 1, "a_bits": 2, "g_bits": 6, "g_noise": True},
    taps=("conv*", "logits"),
    train_defaults={"steps": 600, "batch_size": 64, "lr": 0.005, "optimizer": "adam", "eval_every": 100,
                    "seed": 0},
)
