"""``cnn``: a plain convolutional network, the image family's baseline.

For an input ``x^{(0)} = x ∈ [0,1]^{C×H×W}`` and blocks ``i = 0 .. L-1`` (``L = num_layers``):

    a^{(i)} = ReLU(W^{(i)} ⋆ x^{(i)} + b^{(i)})          (3×3 convolution, padding 1: same size; tap ``conv{i}``)
    x^{(i+1)} = maxpool_{2×2, stride 2}(a^{(i)})  for i < 2,   x^{(i+1)} = a^{(i)} otherwise
    p = (1 / H'W') Σ_{y,x} x^{(L)}_{:,y,x}                (global average pool; tap ``pooled``)
    z = V dropout(p) + c                                   (logits; tap ``logits``)

``conv{i}`` holds the ReLU output *before* the block's pooling, on axis ``conv{i}`` (``IMAGE`` layout:
channels are units, the ``H_i × W_i`` cells are positions); ``pooled`` and ``logits`` are ``SCALAR``
on axis ``image`` (one position per image). Widths: ``hidden_size · 2^{min(i, 2)}`` channels. On an 8×8
digit the maps are 8×8, 4×4, 2×2, 2×2 for four blocks.
"""

from __future__ import annotations

from torch import Tensor, nn

from lstmviz.engines.families.image.api import SCALAR_AXIS, ConvStep, ImageAxis, conv_chain
from lstmviz.engines.spec import EngineSpec, Paper
from lstmviz.hooks import IMAGE, SCALAR, Tap

POOLED_BLOCKS = 2


class CNN(nn.Module):
    """A plain CNN: ``num_layers`` conv3×3+ReLU blocks (2×2 max pool after the first two), global average
    pool, linear head (module docstring)."""

    def __init__(self, channels: int, height: int, width: int, num_classes: int, task: str = "class", *,
                 hidden_size: int = 16, num_layers: int = 4, dropout: float = 0.0):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"expected num_layers >= 1, got {num_layers}")
        if hidden_size < 1:
            raise ValueError(f"expected hidden_size >= 1, got {hidden_size}")
        self.channels, self.height, self.width, self.task = channels, height, width, task
        widths = [hidden_size * 2 ** min(i, 2) for i in range(num_layers)]
        self.convs = nn.ModuleList()
        self.conv_taps = nn.ModuleList()
        cin = channels
        for i, w in enumerate(widths):
            self.convs.append(nn.Conv2d(cin, w, 3, padding=1))
            self.conv_taps.append(Tap(f"conv{i}", signal="conv", layer=i, layout=IMAGE, axis=f"conv{i}",
                                      description=f"block {i}: ReLU of the 3x3 convolution (before pooling)"))
            cin = w
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(cin, num_classes)
        self.pooled_tap = Tap("pooled", layout=SCALAR, axis="image",
                              description="global average of the last block's feature map")
        self.logits_tap = Tap("logits", layout=SCALAR, axis="image", description="the class logits")
        self.image_axes(height, width)  # refuses an input too small for the pools, in words

    def _steps(self, i: int) -> list[ConvStep]:
        steps = []
        for k in range(i + 1):
            if k:
                if k - 1 < POOLED_BLOCKS:
                    steps.append(ConvStep(2, 2))
            steps.append(ConvStep(3, 1, 1))
        return steps

    def image_axes(self, height: int, width: int) -> dict[str, ImageAxis]:
        layers = len(self.convs) if hasattr(self, "convs") else 0
        axes = {f"conv{i}": conv_chain(height, width, self._steps(i)) for i in range(layers)}
        axes["image"] = SCALAR_AXIS
        return axes

    def forward(self, images: Tensor) -> Tensor:
        x = images
        for i, (conv, tap) in enumerate(zip(self.convs, self.conv_taps)):
            x = tap(conv(x).relu())
            if i < POOLED_BLOCKS:
                x = self.pool(x)
        pooled = self.pooled_tap(x.mean(dim=(2, 3)))
        return self.logits_tap(self.head(self.dropout(pooled)))


def build(channels: int, height: int, width: int, num_classes: int, task: str = "class", *,
          hidden_size: int = 16, num_layers: int = 4, dropout: float = 0.0) -> CNN:
    return CNN(channels, height, width, num_classes, task, hidden_size=hidden_size, num_layers=num_layers,
               dropout=dropout)


SPEC = EngineSpec(
    name="cnn",
    description="a plain CNN: conv3x3+ReLU blocks (2x2 max pool on the first two), global average pool, linear head",
    family="image",
    paper=Paper(
        title="Gradient-Based Learning Applied to Document Recognition",
        authors="LeCun, Bottou, Bengio, Haffner",
        arxiv="",
        year=1998,
    ),
    build=build,
    default_config={"hidden_size": 16, "num_layers": 4},
    taps=("conv{layer}", "pooled", "logits"),
    train_defaults={"steps": 600, "batch_size": 64, "lr": 0.003, "eval_every": 100, "optimizer": "adam",
                    "clip": 5.0, "seed": 0},
)
