r"""Engines ``bnn-cnn`` and ``qnn-cnn``: binarised and k-bit CNNs (Hubara et al., QNN / BNN).

"Quantized Neural Networks: Training Neural Networks with Low Precision Weights and Activations"
(Hubara, Courbariaux, Soudry, El-Yaniv, Bengio 2016, arXiv:1609.07061; the binarised case is their
"Binarized Neural Networks", arXiv:1602.02830). With ``Q_k`` the k-bit linear quantiser on ``[-1, 1)``
(k = 1: ``sign``, 0 -> +1) and its hard-tanh straight-through estimator ``g_r = g_q 1[|r| <= 1]``:

.. math::
    W^q &= Q_k(W), \qquad W \leftarrow \operatorname{clip}(W, -1, 1) \text{ (latent real weights)} \\
    a^0 &= Q_k\bigl(\operatorname{BN}(W^{q,0} * x)\bigr) &&\text{(real-valued input, quantised weights)} \\
    a^l &= Q_k\bigl(\operatorname{BN}(\operatorname{maxpool}_2(W^{q,l} *_{-1} a^{l-1}))\bigr), \quad l = 1 .. L-1 \\
    \text{logits} &= \operatorname{BN}(W^{q,L} \operatorname{flatten}(a^{L-1}))

Every layer, the last included, uses quantised weights (the paper's BNNs binarise all of them; only
the input stays real valued) and is followed by BatchNorm. The optimiser updates the real-valued
latent weights ``W`` (initialised ``U(-1, 1)``); they are clipped to ``[-1, 1]`` at the start of every training forward (and by
:meth:`QuantizedCNN.clip_latent_` after an optimiser step), and the STE passes their gradient inside
that range. ``*_{-1}`` is a 3x3 convolution whose border is padded with ``-1`` (a level of every ``Q_k``),
so that a binarised layer's input is ``±1`` everywhere and its accumulation is an XNOR-popcount:

.. math::
    a \cdot w = 2 \operatorname{popcount}(\operatorname{XNOR}(a, w)) - n \qquad (a, w \in \{-1, +1\}^n)

:meth:`QuantizedCNN.forward_xnor` evaluates every binarised layer (all but the first) from packed
bits that way (numpy uint64, unfolded patches) and equals :meth:`forward` exactly in eval mode.
``bnn-cnn`` is ``bits=1``; ``qnn-cnn`` takes ``bits`` (2 by default; 32 = the float twin: hard-tanh
activations, unquantised weights, same architecture).

Taps: ``conv{i}`` (IMAGE ``[B, C_i, H_i, W_i]``, axis ``conv{i}``): the quantised activations ``a^i``
(exactly ``2^bits`` values: ``±1`` for ``bnn-cnn``); ``logits`` (SCALAR, axis ``image``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.hooks import IMAGE, SCALAR, Tap

from ..families.image.api import SCALAR_AXIS, ImageAxis, conv_chain
from ..quantizers import FULL_PRECISION_BITS
from ..spec import EngineSpec, Paper
from .dorefa_cnn import _channels, conv_steps
from .quantize import check_bit_width, pack_signs, qnn_quantize, xnor_dot

PAD_VALUE = -1.0
"""The border value of the binarised convolutions (a level of every k-bit quantiser; keeps inputs ±1)."""


class QNNConv2d(nn.Conv2d):
    """A 3x3 convolution with ``Q_k`` weights (latent weights clipped to [-1, 1]); ``pad_value`` borders."""

    def __init__(self, in_channels: int, out_channels: int, *, bits: int, pad_value: float | None):
        super().__init__(in_channels, out_channels, 3, padding=0 if pad_value is not None else 1, bias=False)
        self.bits = bits
        self.pad_value = pad_value

    def reset_parameters(self) -> None:
        """Latent weights ``U(-1, 1)``: spread over every level of ``Q_k`` (BatchNorm follows, so the scale is free;
        torch's default ``U(±1/sqrt(fan_in))`` would round every weight to 0 for k >= 2)."""
        nn.init.uniform_(self.weight, -1.0, 1.0)

    def quantized_weight(self) -> Tensor:
        if self.training and torch.is_grad_enabled():
            with torch.no_grad():
                self.weight.clamp_(-1.0, 1.0)
        return qnn_quantize(self.weight, self.bits) if self.bits < FULL_PRECISION_BITS else self.weight

    def pad(self, x: Tensor) -> Tensor:
        return x if self.pad_value is None else F.pad(x, (1, 1, 1, 1), value=self.pad_value)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(self.pad(x), self.quantized_weight(), None, self.stride, self.padding)

    def forward_xnor(self, x: Tensor) -> Tensor:
        """The same convolution of a ``±1`` input with ``±1`` weights, from packed bits (XNOR-popcount)."""
        b, c, h, w = x.shape
        patches = F.unfold(self.pad(x), 3)  # [B, C*9, H*W]
        rows = patches.transpose(1, 2).reshape(b * h * w, c * 9)
        weight = self.quantized_weight().detach().reshape(self.out_channels, -1)
        out = xnor_dot(pack_signs(rows), pack_signs(weight), c * 9)  # [B*H*W, O]
        return torch.from_numpy(out).to(x.dtype).reshape(b, h * w, -1).transpose(1, 2).reshape(b, -1, h, w)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bits={self.bits}, pad_value={self.pad_value}"


class QNNLinear(nn.Linear):
    """A linear layer (no bias: BatchNorm follows) with ``Q_k`` weights, latent weights clipped to [-1, 1]."""

    def __init__(self, in_features: int, out_features: int, *, bits: int):
        super().__init__(in_features, out_features, bias=False)
        self.bits = bits

    reset_parameters = QNNConv2d.reset_parameters
    quantized_weight = QNNConv2d.quantized_weight

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.quantized_weight())

    def forward_xnor(self, x: Tensor) -> Tensor:
        weight = self.quantized_weight().detach()
        return torch.from_numpy(xnor_dot(pack_signs(x), pack_signs(weight), x.shape[1])).to(x.dtype)


class QuantizedCNN(nn.Module):
    """The QNN/BNN CNN (see the module docstring for the equations)."""

    engine_name = "qnn-cnn"

    def __init__(self, channels: int, height: int, width: int, num_classes: int, task: str = "class", *,
                 conv_channels=(32, 64, 64), bits: int = 2):
        super().__init__()
        self.in_channels, self.height, self.width = int(channels), int(height), int(width)
        self.num_classes, self.task = int(num_classes), task
        self.conv_channels = _channels(self.engine_name, conv_channels)
        self.bits = check_bit_width(self.engine_name, "bits", bits)
        sizes = (self.in_channels,) + self.conv_channels
        self.convs = nn.ModuleList(
            QNNConv2d(sizes[i], sizes[i + 1], bits=self.bits, pad_value=None if i == 0 else PAD_VALUE)
            for i in range(len(self.conv_channels)))
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for c in self.conv_channels)
        levels = "±1" if self.bits == 1 else (
            "hard-tanh, full precision" if self.bits >= 32 else f"{2 ** self.bits} levels m/{2 ** (self.bits - 1)}")
        self.taps = nn.ModuleList(
            Tap(f"conv{i}", signal="a_q", layer=i, layout=IMAGE, axis=f"conv{i}",
                description=f"conv block {i}: quantised activation Q_{self.bits}(BN(...)) ({levels})")
            for i in range(len(self.conv_channels)))
        last = conv_chain(self.height, self.width, conv_steps(len(self.conv_channels))[-1]).size
        self.head = QNNLinear(self.conv_channels[-1] * last.height * last.width, self.num_classes, bits=self.bits)
        self.head_norm = nn.BatchNorm1d(self.num_classes)
        self.logits_tap = Tap("logits", signal="logits", layout=SCALAR, axis="image",
                              description="class logits: BatchNorm of the quantised-weight last layer")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()
        for norm in list(self.norms) + [self.head_norm]:
            norm.reset_parameters()
        self.head.reset_parameters()

    @torch.no_grad()
    def clip_latent_(self) -> None:
        """Clip every latent (real-valued) quantised weight to [-1, 1] (call after an optimiser step)."""
        for layer in list(self.convs) + [self.head]:
            layer.weight.clamp_(-1.0, 1.0)

    @property
    def config(self) -> dict:
        out = {"conv_channels": list(self.conv_channels)}
        if self.engine_name == "qnn-cnn":
            out["bits"] = self.bits
        return out

    def extra_repr(self) -> str:
        return f"bits={self.bits}, input={self.in_channels}x{self.height}x{self.width}, classes={self.num_classes}"

    def image_axes(self, height: int, width: int) -> dict[str, ImageAxis]:
        axes = {f"conv{i}": conv_chain(height, width, steps)
                for i, steps in enumerate(conv_steps(len(self.conv_channels)))}
        axes["image"] = SCALAR_AXIS
        return axes

    def _check(self, images: Tensor) -> None:
        if images.dim() != 4 or images.shape[1] != self.in_channels:
            raise ValueError(f"expected images [batch, {self.in_channels}, H, W], got {tuple(images.shape)}")

    def forward(self, images: Tensor) -> Tensor:
        self._check(images)
        x = images
        for i, (conv, norm, tap) in enumerate(zip(self.convs, self.norms, self.taps)):
            x = conv(x)
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = tap(qnn_quantize(norm(x), self.bits))
        return self.logits_tap(self.head_norm(self.head(torch.flatten(x, 1))))

    @torch.no_grad()
    def forward_xnor(self, images: Tensor) -> Tensor:
        """:meth:`forward` with every binarised layer (all but the first) computed by XNOR-popcount on packed
        bits (bits = 1 only). Equal to :meth:`forward` exactly in eval mode. The taps fire as in :meth:`forward`."""
        if self.bits != 1:
            raise ValueError(f"the XNOR-popcount path needs binarised activations and weights (bits=1), "
                             f"this model has bits={self.bits}")
        self._check(images)
        x = images
        for i, (conv, norm, tap) in enumerate(zip(self.convs, self.norms, self.taps)):
            if i == 0:
                x = conv(x)  # real-valued input: a float product (the paper's first layer)
            else:
                x = F.max_pool2d(conv.forward_xnor(x), 2)
            x = tap(qnn_quantize(norm(x), self.bits))
        return self.logits_tap(self.head_norm(self.head.forward_xnor(torch.flatten(x, 1))))


class BinarizedCNN(QuantizedCNN):
    """``bnn-cnn``: :class:`QuantizedCNN` with ``bits = 1`` (±1 weights and activations)."""

    engine_name = "bnn-cnn"

    def __init__(self, channels: int, height: int, width: int, num_classes: int, task: str = "class", *,
                 conv_channels=(32, 64, 64)):
        super().__init__(channels, height, width, num_classes, task, conv_channels=conv_channels, bits=1)


def build_bnn(channels: int, height: int, width: int, num_classes: int, task: str = "class", *,
              conv_channels=(32, 64, 64)) -> BinarizedCNN:
    return BinarizedCNN(channels, height, width, num_classes, task, conv_channels=conv_channels)


def build_qnn(channels: int, height: int, width: int, num_classes: int, task: str = "class", *,
              conv_channels=(32, 64, 64), bits: int = 2) -> QuantizedCNN:
    return QuantizedCNN(channels, height, width, num_classes, task, conv_channels=conv_channels, bits=bits)


_PAPER = Paper(
    title="Quantized Neural Networks: Training Neural Networks with Low Precision Weights and Activations",
    authors="Hubara, Courbariaux, Soudry, El-Yaniv, Bengio",
    arxiv="1609.07061",
    year=2016,
)
_TRAIN = {"steps": 600, "batch_size": 64, "lr": 0.005, "optimizer": "adam", "eval_every": 100, "seed": 0}

SPEC = EngineSpec(
    name="bnn-cnn",
    description="binarised CNN (±1 weights and activations, hard-tanh STE, BatchNorm; XNOR-popcount inference)",
    family="image",
    paper=_PAPER,
    build=build_bnn,
    default_config={"conv_channels": [32, 64, 64]},
    taps=("conv*", "logits"),
    train_defaults=dict(_TRAIN),
)

QNN_SPEC = EngineSpec(
    name="qnn-cnn",
    description="CNN with k-bit weights and activations (QNN linear quantiser, hard-tanh STE, BatchNorm)",
    family="image",
    paper=_PAPER,
    build=build_qnn,
    default_config={"conv_channels": [32, 64, 64], "bits": 2},
    taps=("conv*", "logits"),
    train_defaults=dict(_TRAIN),
)
