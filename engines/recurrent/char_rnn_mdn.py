r"""Engine ``char-rnn-mdn``: drawing and recognising characters with recurrent networks (Zhang et al. 2016),
with Graves' mixture-density output (2013) and stochastic backpropagation through mixtures (Graves 2016).

"Drawing and Recognizing Chinese Characters with Recurrent Neural Network", Xu-Yao Zhang, Fei Yin,
Yan-Ming Zhang, Cheng-Lin Liu, Yoshua Bengio (TPAMI 2017, arXiv:1606.06539).

Data: a character is a sequence of steps ``(Δx_t, Δy_t, s_t)``, ``s_t = 1`` when the pen lifts after point t
(dataset ``hershey-strokes``).

**Recogniser** (:class:`StrokeRecogniser`). Per-point features (Zhang et al. §3.2, with the point's absolute
position recovered as the running sum of offsets):

.. math::
    f_t = [x_t, y_t, \Delta x_t, \Delta y_t, 1 - s_t, s_t],\qquad
    h_t = \mathrm{GRU}(W_f f_t, h_{t-1}),\qquad
    \mathrm{logits} = W_o \frac{1}{T}\sum_{t \le T} h_t + b_o

(mean pooling over the item's own steps; a batch is padded and the padding is masked out of the mean).

**Generator** (:class:`StrokeGenerator`), conditioned on the class ``c`` by a learned embedding fed at
every step (Zhang et al. §5):

.. math::
    u_t = [\Delta x_{t-1}, \Delta y_{t-1}, s_{t-1}, E[c]]\ (\text{zeros at } t = 1),\quad
    h_t = \mathrm{GRU}(u_t, h_{t-1}),\quad \hat y_t = W_y h_t + b_y \in \mathbb R^{6M+1}

and ``ŷ_t`` parameterises ``p(Δx_t, Δy_t, s_t | c, steps_{<t})`` by the bivariate mixture + Bernoulli of
:mod:`.mdn` (M components with correlation, pen-up probability ``e_t``). Training minimises
``Σ_t −log p`` over the item's steps (:meth:`StrokeGenerator.loss`); sampling feeds each sampled step back,
with sampling bias ``b`` (Graves 2013 §5.4). ``M = 1`` is the unimodal Gaussian head (the baseline).

The GRU is lstmviz's :class:`~.gru.GRULayer` (PyTorch's formulation), one layer. Taps (one row per pen
point): ``layer0/gates/{r,z,n}``, ``layer0/h`` (both models); generator ``mdn/pi`` (``[B, T, M]`` mixture
weights), ``mdn/sigma`` (``[B, T, 2M]``), ``mdn/rho`` (``[B, T, M]``), ``mdn/pen`` (``[B, T, 1]`` pen-up
probability); recogniser ``pooled`` (the running mean of ``h`` over steps 1..t; at the last step the pooled
vector) and ``class_prob`` (the classifier's softmax of it). In engine ``char-rnn-mdn`` (:class:`CharRNNMDN`)
they are prefixed ``recogniser/`` and ``generator/``.

Choices the paper leaves open (or that differ from it), made here: the pen state is Graves' Bernoulli
pen-up (two states; Zhang et al. use three with an end-of-character state — here a sample has a given
number of steps, by default the median length of the class in the training set); the recogniser is one
unidirectional GRU layer (Zhang et al.: stacked bidirectional LSTM/GRU and ensembles), with no dropout;
the generator is one GRU layer of ``hidden_size`` with ``embedding_dim`` = 16 and ``M = components`` = 10;
no point removal by distance/angle (the dataset resamples at equal arc length instead).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.hooks.taps import Tap

from ..spec import EngineSpec, Paper
from . import mdn
from .gru import GRULayer


def pad_items(steps: list, device=None) -> tuple[Tensor, Tensor]:
    """Pad a list of ``[T_i, 3]`` arrays into ``[B, T, 3]`` float32 and a ``[B, T]`` bool mask of real steps."""
    t = max(len(s) for s in steps)
    out = torch.zeros(len(steps), t, 3)
    mask = torch.zeros(len(steps), t, dtype=torch.bool)
    for i, s in enumerate(steps):
        out[i, :len(s)] = torch.as_tensor(s, dtype=torch.float32)
        mask[i, :len(s)] = True
    return out.to(device), mask.to(device)


def recogniser_features(steps: Tensor) -> Tensor:
    """``[B, T, 3]`` steps -> ``[B, T, 6]`` features ``[x, y, Δx, Δy, 1 − s, s]`` (module docstring)."""
    xy = steps[..., :2].cumsum(1)
    pen = steps[..., 2:3]
    return torch.cat([xy, steps[..., :2], 1 - pen, pen], -1)


def _unroll(layer: GRULayer, x: Tensor, h: Tensor) -> Tensor:
    projected = layer.project_input(x)
    outs = []
    for t in range(x.shape[1]):
        h, _ = layer.step(projected[:, t], (h,), t)
        outs.append(h)
    return torch.stack(outs, 1)


class StrokeRecogniser(nn.Module):
    """GRU over pen points -> mean pooling -> class logits (module docstring)."""

    def __init__(self, *, num_classes: int, hidden_size: int = 64):
        super().__init__()
        self.num_classes, self.hidden_size = num_classes, hidden_size
        self.rnn = GRULayer(6, hidden_size, layer=0)
        self.pooled_tap = Tap("pooled", description="running mean of layer0/h over steps 1..t (at the item's last "
                                                    "step: the pooled vector the class is read from)")
        self.class_prob_tap = Tap("class_prob", description="softmax of the classifier applied to the running mean: "
                                                            "the class the recogniser would give if the drawing ended here")
        self.out = nn.Linear(hidden_size, num_classes)

    def forward(self, steps: Tensor, mask: Tensor | None = None) -> Tensor:
        """Class logits ``[B, K]`` from the mean of ``h`` over each item's real steps."""
        return self.running_logits(steps, mask)[1]

    def running_logits(self, steps: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(logits_t [B, T, K], logits [B, K])``: ``logits_t`` classifies the mean of ``h_1 .. h_t`` (what the
        recogniser decides if the drawing stopped at t; tap ``class_prob`` is its softmax), ``logits`` is it at
        each item's last real step."""
        if mask is None:
            mask = torch.ones(steps.shape[:2], dtype=torch.bool, device=steps.device)
        h = _unroll(self.rnn, recogniser_features(steps), steps.new_zeros(steps.shape[0], self.hidden_size))
        m = mask.unsqueeze(-1).to(h.dtype)
        running = self.pooled_tap((h * m).cumsum(1) / m.cumsum(1).clamp_min(1))
        logits_t = self.out(running)
        self.class_prob_tap(torch.softmax(logits_t, -1))
        last = (mask.sum(1) - 1).clamp_min(0)
        return logits_t, logits_t[torch.arange(len(last), device=last.device), last]

    def loss(self, steps: Tensor, mask: Tensor, classes: Tensor) -> Tensor:
        return F.cross_entropy(self(steps, mask), classes)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, hidden_size={self.hidden_size}"


class StrokeGenerator(nn.Module):
    """Class-conditional GRU with a bivariate mixture-density head (module docstring)."""

    def __init__(self, *, num_classes: int, hidden_size: int = 128, components: int = 10, embedding_dim: int = 16):
        super().__init__()
        self.num_classes, self.hidden_size = num_classes, hidden_size
        self.components, self.embedding_dim = components, embedding_dim
        self.embedding = nn.Embedding(num_classes, embedding_dim)
        self.rnn = GRULayer(3 + embedding_dim, hidden_size, layer=0)
        self.head = nn.Linear(hidden_size, mdn.raw_size(components))
        self.pi_tap = Tap("mdn/pi", description="mixture weights pi_t (softmax), [M]")
        self.sigma_tap = Tap("mdn/sigma", description="component standard deviations sigma_t, [M x (x, y)]")
        self.rho_tap = Tap("mdn/rho", description="component correlations rho_t in (-1, 1), [M]")
        self.pen_tap = Tap("mdn/pen", description="probability e_t that the pen lifts after the next point")

    def _inputs(self, steps: Tensor, classes: Tensor) -> Tensor:
        prev = torch.cat([steps.new_zeros(steps.shape[0], 1, 3), steps[:, :-1]], 1)
        emb = self.embedding(classes).unsqueeze(1).expand(-1, steps.shape[1], -1)
        return torch.cat([prev, emb], -1)

    def forward(self, steps: Tensor, classes: Tensor, state: Tensor | None = None) -> Tensor:
        """Raw mixture outputs ``[B, T, 6M+1]`` for ``p(step_t | class, steps_{<t})`` (teacher forcing)."""
        h0 = steps.new_zeros(steps.shape[0], self.hidden_size) if state is None else state
        h = _unroll(self.rnn, self._inputs(steps, classes), h0)
        raw = self.head(h)
        self._tap_params(raw)
        return raw

    def _tap_params(self, raw: Tensor) -> None:
        p = mdn.mixture_params(raw, self.components)
        self.pi_tap(p.log_pi.exp())
        self.sigma_tap(p.sigma.flatten(-2))
        self.rho_tap(p.rho)
        self.pen_tap(torch.sigmoid(p.pen_logit).unsqueeze(-1))

    def loss(self, steps: Tensor, mask: Tensor, classes: Tensor) -> Tensor:
        """Mean over real steps of ``−log p(Δx, Δy, s)`` (nats per step)."""
        nll = mdn.mdn_nll(self(steps, classes), steps, self.components)
        return (nll * mask).sum() / mask.sum()

    @torch.no_grad()
    def sample(self, classes: Tensor, length: int, *, bias: float = 0.0, generator: torch.Generator | None = None
               ) -> Tensor:
        """``[B, length, 3]`` sampled steps for each class id, each sampled step fed back."""
        b = classes.shape[0]
        w = self.head.weight
        h = w.new_zeros(b, self.hidden_size)
        prev = w.new_zeros(b, 3)
        emb = self.embedding(classes)
        out = []
        for t in range(length):
            u = self.rnn.project_input(torch.cat([prev, emb], -1))
            h, _ = self.rnn.step(u, (h,), t)
            p = mdn.mixture_params(self.head(h), self.components, bias=bias)
            prev = mdn.sample_step(p, generator)
            out.append(prev)
        steps = torch.stack(out, 1)
        steps[:, -1, 2] = 1.0
        return steps

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, hidden_size={self.hidden_size}, components={self.components}, "
                f"embedding_dim={self.embedding_dim}")


class CharRNNMDN(nn.Module):
    """Engine ``char-rnn-mdn`` of the ``strokes`` family: a :class:`StrokeRecogniser` and a :class:`StrokeGenerator`
    over the same pen points, trained together (their parameters are disjoint, so the summed loss gives each
    its own gradient).

    ``forward(steps, classes, mask) -> (class_logits [B, K], raw [B, T, 6M+1])``; ``loss(steps, mask,
    classes) -> (generator NLL per step + recogniser cross-entropy per item, points)``. Taps are prefixed
    ``recogniser/`` and ``generator/`` (e.g. ``generator/layer0/h``, ``generator/mdn/pi``,
    ``recogniser/class_prob``).
    """

    def __init__(self, *, num_classes: int, hidden_size: int = 128, recogniser_hidden: int = 64,
                 components: int = 10, embedding_dim: int = 16):
        super().__init__()
        self.num_classes = num_classes
        self.recogniser = StrokeRecogniser(num_classes=num_classes, hidden_size=recogniser_hidden)
        self.generator = StrokeGenerator(num_classes=num_classes, hidden_size=hidden_size, components=components,
                                         embedding_dim=embedding_dim)
        for prefix, part in (("recogniser/", self.recogniser), ("generator/", self.generator)):
            for module in part.modules():
                if isinstance(module, Tap):
                    module.name = prefix + module.name

    def forward(self, steps: Tensor, classes: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.recogniser(steps, mask), self.generator(steps, classes)

    def loss(self, steps: Tensor, mask: Tensor, classes: Tensor) -> tuple[Tensor, int]:
        logits, raw = self(steps, classes, mask)
        nll = mdn.mdn_nll(raw, steps, self.generator.components)
        count = int(mask.sum())
        return (nll * mask).sum() / max(count, 1) + F.cross_entropy(logits, classes), count

    def sample(self, classes: Tensor, length: int, **kwargs) -> Tensor:
        return self.generator.sample(classes, length, **kwargs)


_GRU_TAPS = tuple(GRULayer.tap_patterns())

SPEC = EngineSpec(
    name="char-rnn-mdn",
    description="Drawing and recognising characters: GRU recogniser + class-conditional GRU generator with a "
                "bivariate mixture-density head (Zhang et al. 2016; Graves 2013)",
    family="strokes",
    paper=Paper(
        title="Drawing and Recognizing Chinese Characters with Recurrent Neural Network",
        authors="Xu-Yao Zhang, Fei Yin, Yan-Ming Zhang, Cheng-Lin Liu, Yoshua Bengio",
        arxiv="1606.06539",
        year=2016,
    ),
    build=CharRNNMDN,
    default_config={"hidden_size": 128, "recogniser_hidden": 64, "components": 10, "embedding_dim": 16},
    taps=tuple(f"recogniser/{p.format(layer=0)}" for p in _GRU_TAPS) + ("recogniser/pooled", "recogniser/class_prob")
    + tuple(f"generator/{p.format(layer=0)}" for p in _GRU_TAPS)
    + ("generator/mdn/pi", "generator/mdn/sigma", "generator/mdn/rho", "generator/mdn/pen"),
    default_dataset="hershey-strokes",
    train_defaults={"steps": 1500, "batch_size": 32, "lr": 3e-3, "optimizer": "adam", "clip": 1.0, "eval_every": 250},
)
