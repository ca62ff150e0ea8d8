"""``seg-cnn``: a plain fully-convolutional network that predicts a class per pixel (the ``segmentation``
task's baseline).

Every block keeps the full resolution (no pooling, so every feature map's geometry is an exact
:func:`~lstmviz.engines.families.image.api.conv_chain`); the receptive field grows by dilation instead
(context aggregation as in Yu & Koltun, arXiv 1511.07122). For an input ``x^{(0)} = x ∈ [0,1]^{C×H×W}``
and blocks ``i = 0 .. L-1`` (``L = num_layers``) with dilation ``d_i = 2^i`` when ``dilated`` (else 1):

    x^{(i+1)} = ReLU(W^{(i)} ⋆_{d_i} x^{(i)} + b^{(i)})     (3×3 convolution, dilation d_i, padding d_i:
                                                            same H × W; tap ``conv{i}``, axis ``conv{i}``)
    z = V x^{(L)} + c                                       (1×1 convolution to K classes: the logits
                                                            ``[B, K, H, W]``; tap ``logits``, axis ``logits``)
    ŷ_{y,x} = argmax_k z_{k,y,x}                            (the predicted mask)

trained by the family's per-pixel cross-entropy over the non-ignored pixels. Block ``i`` sees a square of
``1 + 2 Σ_{j≤i} d_j`` input pixels (dilated: ``2^{i+2} − 1``: 3, 7, 15, 31, ...; plain: ``2i + 3``), so five
dilated blocks see the whole of a 16×16 digit from every pixel. Every block has ``hidden_size`` channels.

The taps are feature maps (``IMAGE``), each on its own axis described by :meth:`SegCNN.image_axes` (stride
1, the block's receptive field, offset 0: same size as the input, but not the input's receptive field of
one pixel, so not on the main axis); ``logits`` has the last block's receptive field. The recorder stores
the predicted mask and the dataset's mask as per-pixel annotations on the main axis.

Only the ``segmentation`` task: building it for an image-level task raises ``ValueError``.
"""

from __future__ import annotations

from torch import Tensor, nn

from lstmviz.engines.families.image.api import ConvStep, ImageAxis, conv_chain
from lstmviz.engines.spec import EngineSpec, Paper
from lstmviz.hooks import IMAGE, Tap


class SegCNN(nn.Module):
    """A fully-convolutional per-pixel classifier: ``num_layers`` (dilated) conv3×3+ReLU blocks at full
    resolution and a 1×1 convolution to the classes (module docstring)."""

    def __init__(self, channels: int, height: int, width: int, num_classes: int, task: str = "segmentation", *,
                 hidden_size: int = 16, num_layers: int = 5, dilated: bool = True):
        super().__init__()
        if task != "segmentation":
            raise ValueError(f"seg-cnn predicts a class per pixel: expected the segmentation task, got {task!r}")
        if num_layers < 1:
            raise ValueError(f"expected num_layers >= 1, got {num_layers}")
        if hidden_size < 1:
            raise ValueError(f"expected hidden_size >= 1, got {hidden_size}")
        self.channels, self.height, self.width, self.task = channels, height, width, task
        self.num_classes, self.dilated = int(num_classes), bool(dilated)
        self.dilations = [2 ** i if dilated else 1 for i in range(num_layers)]
        self.convs = nn.ModuleList()
        self.conv_taps = nn.ModuleList()
        cin = channels
        for i, d in enumerate(self.dilations):
            self.convs.append(nn.Conv2d(cin, hidden_size, 3, padding=d, dilation=d))
            self.conv_taps.append(Tap(f"conv{i}", signal="conv", layer=i, layout=IMAGE, axis=f"conv{i}",
                                      description=f"block {i}: ReLU of the 3x3 convolution (dilation {d}), "
                                                  f"full resolution"))
            cin = hidden_size
        self.head = nn.Conv2d(cin, self.num_classes, 1)
        self.logits_tap = Tap("logits", signal="logits", layout=IMAGE, axis="logits",
                              description="the per-pixel class logits (1x1 convolution of the last block)")

    def _steps(self, blocks: int) -> list[ConvStep]:
        return [ConvStep(3, 1, d, d) for d in self.dilations[:blocks]]

    def image_axes(self, height: int, width: int) -> dict[str, ImageAxis]:
        axes = {f"conv{i}": conv_chain(height, width, self._steps(i + 1)) for i in range(len(self.convs))}
        axes["logits"] = conv_chain(height, width, [*self._steps(len(self.convs)), ConvStep(1)])
        return axes

    def forward(self, images: Tensor) -> Tensor:
        x = images
        for conv, tap in zip(self.convs, self.conv_taps):
            x = tap(conv(x).relu())
        return self.logits_tap(self.head(x))

    def extra_repr(self) -> str:
        return f"classes={self.num_classes}, dilations={self.dilations}"


def build(channels: int, height: int, width: int, num_classes: int, task: str = "segmentation", *,
          hidden_size: int = 16, num_layers: int = 5, dilated: bool = True) -> SegCNN:
    return SegCNN(channels, height, width, num_classes, task, hidden_size=hidden_size, num_layers=num_layers,
                  dilated=dilated)


SPEC = EngineSpec(
    name="seg-cnn",
    description="a fully-convolutional per-pixel classifier: dilated conv3x3+ReLU blocks at full resolution, "
                "1x1 conv head (segmentation)",
    family="image",
    paper=Paper(
        title="Fully Convolutional Networks for Semantic Segmentation",
        authors="Long, Shelhamer, Darrell",
        arxiv="1411.4038",
        year=2015,
    ),
    build=build,
    default_config={"hidden_size": 16, "num_layers": 5, "dilated": True},
    taps=("conv{layer}", "logits"),
    train_defaults={"steps": 1000, "batch_size": 32, "lr": 0.01, "eval_every": 100, "optimizer": "adam",
                    "clip": 5.0, "seed": 0},
    default_dataset="digits-seg",
)
