r"""Engine ``bnn-prior``: deep ReLU networks whose weights are drawn from their Gaussian prior
(Vladimirova, Verbeek, Mesejo & Arbel 2019, "Understanding Priors in Bayesian Neural Networks at the Unit
Level", ICML, arXiv:1810.05193).

**The network of one prior draw.** ``L = num_layers`` hidden layers of width ``n = hidden_size``, no biases
(a choice of ours: a Gaussian bias adds a Gaussian component that masks the tails at shallow depth, and
the closed forms below assume none). For the flattened input ``x ∈ [0,1]^D`` (``arch="mlp"``, ``D = C·H·W``):

.. math::
    h^{(1)} = W^{(1)} x, \qquad h^{(l)} = W^{(l)} \phi(h^{(l-1)})\ (l = 2..L), \qquad \phi = \mathrm{ReLU}

    u = \phi(h^{(L)}) / \mathrm{rms}(\phi(h^{(L)})), \qquad z = V u + c

with every weight i.i.d. :math:`W^{(l)}_{ij} \sim N(0, \sigma^2 / \mathrm{fan\_in}_l)` (``prior_var`` =
σ², default 2: He scaling), the head ``V`` drawn the same way, ``c = 0`` at the draw; ``rms`` is the
root mean square over the ``n`` units of one image (``u = 0`` when every unit is 0). ``arch="cnn"``:
the same with 3×3 convolutions (padding 1, stride 1, no pooling, ``n`` channels, fan-in ``9·C_in``),
and ``u`` is the normalised global average of ``φ(h^{(L)})``.

The head's normalisation is ours, not the paper's: a bias-free ReLU network is positively homogeneous,
``φ(h^{(L)})(x) = ‖x‖ f(x/‖x‖)``, and its scale moves with ``(σ²/2)^{(L-1)/2}``, so without it a head
trained on frozen prior features sees inputs of arbitrary scale (vanishing for ``σ² < 2`` at depth);
with it, the same learning rate works for every prior and depth. The paper's output layer (layer
``L + 1``, ``V φ(h^{(L)})`` unnormalised) is what :func:`prior_unit_samples` returns as ``output``; the
hidden pre-activations (the taps) are the prior's exactly.

The draw is fixed by ``prior_seed`` and ``draw`` (its index): the weights of draw ``s`` come from a
``torch.Generator`` seeded with ``prior_seed · 1_000_003 + s``, so a model is deterministic given its seed
and independent of the global RNG. ``draws`` (S) is the number of prior draws :func:`prior_unit_samples`
takes by default.

**Training (a choice of ours).** ``lstmviz train bnn-prior`` keeps the hidden layers at the prior draw
(``train_hidden=False``, the default: they are frozen parameters) and fits only the head ``V, c`` by the
family's cross-entropy: a random-feature classifier whose recorded hidden units are exactly a prior
sample. ``train_hidden=True`` trains every layer by SGD/Adam from the prior draw (the usual network,
a baseline).

**The paper's quantity.** For a *fixed* input, a unit's pre-activation ``h^{(l)}_i`` is a random
variable over the prior. The theorem: at any finite width it is **sub-Weibull with tail parameter
θ = l/2**, :math:`P(|h^{(l)}| \ge t) \le \exp(-c\, t^{2/l})`, equivalently
:math:`\|h^{(l)}\|_k = (E|h^{(l)}|^k)^{1/k} \asymp k^{l/2}` (an upper bound with an optimal exponent;
not a claim of exact Weibull tails). :func:`prior_unit_samples` returns ``[draws, units]`` per layer.

**Closed forms used by the tests** (derived here; ``s_1^2 = σ^2 \|x\|^2 / D`` is the variance of the first
layer, and the first layer is exactly Gaussian for a fixed input):

- width 1 (``n = 1``): :math:`h^{(l)} = \sigma g_l [h^{(l-1)}]_+` with ``g_l ~ N(0, 1)`` independent, so
  :math:`E|h^{(l)}|^k = s_1^k\, \sigma^{k(l-1)}\, (E|g|^k)^l / 2^{l-1}`,
  :math:`E|g|^k = 2^{k/2}\Gamma(\frac{k+1}{2})/\sqrt\pi` (:func:`width1_abs_moment`); the output layer
  is layer ``L+1`` of the same chain.
- any width ``n`` (all hidden layers of width ``n``): given layer ``l-1``, the units of layer ``l`` are
  i.i.d. :math:`N(0, q_l)`, :math:`q_l = \frac{\sigma^2}{n}\sum_j \phi(h^{(l-1)}_j)^2`. With
  :math:`m_l = E q_l`, :math:`Q_l = E q_l^2`: :math:`E h^2 = m_l`, :math:`E h^4 = 3 Q_l`,
  :math:`E\phi(h)^4 = \tfrac32 Q_l` and, for two units of a layer,
  :math:`E\phi(h_i)^2\phi(h_j)^2 = Q_l / 4`, whence
  :math:`m_{l+1} = \tfrac{\sigma^2}{2} m_l`, :math:`Q_{l+1} = \sigma^4 \frac{n+5}{4n} Q_l`,
  :math:`m_1 = s_1^2 = \sqrt{Q_1}`, and the kurtosis

  .. math:: \kappa_l = E h^4 / (E h^2)^2 = 3\,(1 + 5/n)^{l-1}

  (:func:`kurtosis_closed_form`): 3 at layer 1, growing geometrically with depth, shrinking to the
  Gaussian 3 as ``n → ∞`` (the NNGP limit). At ``n = 1``: 3, 18, 108, 648. (``arch="cnn"`` shares
  weights across cells and pads with zeros, so these hold only for ``arch="mlp"``.)

**Tail estimates** (:func:`tail_statistics`): the excess kurtosis ``κ − 3`` (moments about 0: the prior
is symmetric); the log-moment slope, the least-squares slope of ``log ‖h‖_k`` against ``log k`` for
``k = 2..8``, which tends to ``l/2`` only as ``k → ∞`` (:func:`width1_moment_slope` gives its exact
value at width 1 for the same ``k``); and a Weibull-plot tail parameter: ``1 /`` the slope of
``log(−log Ŝ(t))`` against ``log t`` over the upper tail of ``|h|`` (``Ŝ`` the empirical survival
function between ``10^{-1}`` and ``30/N``), which is 1/2 for a Gaussian and 1 for a product of two
Gaussians. Sample moments of heavy tails converge slowly; both estimates are biased low at depth.

Taps: ``pre{i}`` (the pre-activation :math:`h^{(i+1)}`; ``SCALAR`` on axis ``image`` for the MLP,
``IMAGE`` on axis ``pre{i}`` for the CNN) and ``logits`` (``SCALAR``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.hooks import IMAGE, SCALAR, Tap

from ..families.image.api import SCALAR_AXIS, ConvStep, ImageAxis, conv_chain
from ..spec import ConfigError, EngineSpec, Paper

ENGINE = "bnn-prior"
ARCHS = ("mlp", "cnn")
SEED_STRIDE = 1_000_003
SAMPLE_CHUNK_NUMBERS = 4_000_000
"""How many weight numbers :func:`prior_unit_samples` draws at once (memory bound)."""
RMS_EPS = 1e-30
"""Added under the head's root mean square (keeps ``u = 0`` when every unit is 0)."""


def draw_generator(prior_seed: int, draw: int) -> torch.Generator:
    """The generator of draw ``draw`` (module docstring)."""
    return torch.Generator().manual_seed(int(prior_seed) * SEED_STRIDE + int(draw))


class BNNPrior(nn.Module):
    """A bias-free deep ReLU MLP or CNN whose weights are one draw of their Gaussian prior (module
    docstring)."""

    def __init__(self, channels: int, height: int, width: int, num_classes: int, task: str = "class", *,
                 hidden_size: int = 64, num_layers: int = 4, arch: str = "mlp", prior_var: float = 2.0,
                 prior_seed: int = 0, draw: int = 0, draws: int = 10000, train_hidden: bool = False):
        super().__init__()
        for name, value, low in (("hidden_size", hidden_size, 1), ("num_layers", num_layers, 1),
                                 ("draws", draws, 1), ("draw", draw, 0), ("prior_seed", prior_seed, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ConfigError(f"expected {name} of engine {ENGINE!r} to be an int >= {low}, got {value!r}")
        if arch not in ARCHS:
            raise ConfigError(f"expected arch of engine {ENGINE!r} to be one of {', '.join(ARCHS)}, got {arch!r}")
        if isinstance(prior_var, bool) or not isinstance(prior_var, (int, float)) or not prior_var > 0:
            raise ConfigError(f"expected prior_var of engine {ENGINE!r} to be a positive number, got {prior_var!r}")
        self.channels, self.height, self.width, self.task = int(channels), int(height), int(width), task
        self.num_classes, self.hidden_size, self.num_layers = int(num_classes), int(hidden_size), int(num_layers)
        self.arch, self.prior_var, self.prior_seed = arch, float(prior_var), int(prior_seed)
        self.draw, self.draws, self.train_hidden = int(draw), int(draws), bool(train_hidden)
        n = self.hidden_size
        if arch == "mlp":
            shapes = [(n, self.channels * self.height * self.width)] + [(n, n)] * (self.num_layers - 1)
        else:
            shapes = [(n, self.channels, 3, 3)] + [(n, n, 3, 3)] * (self.num_layers - 1)
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(s), requires_grad=self.train_hidden) for s in shapes)
        self.head = nn.Linear(n, self.num_classes)
        self.taps = nn.ModuleList()
        for i in range(self.num_layers):
            if arch == "mlp":
                tap = Tap(f"pre{i}", signal="pre", layer=i, layout=SCALAR, axis="image",
                          description=f"layer {i + 1}: pre-activation h = W phi(h_prev) of the prior draw")
            else:
                tap = Tap(f"pre{i}", signal="pre", layer=i, layout=IMAGE, axis=f"pre{i}",
                          description=f"layer {i + 1}: pre-activation of the 3x3 convolution of the prior draw")
            self.taps.append(tap)
        self.logits_tap = Tap("logits", layout=SCALAR, axis="image",
                              description="the class logits V u + c (the head on the normalised last layer)")
        self.reset_parameters()

    def weight_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the hidden layers' weights, then the head's ``[classes, n]``."""
        return [tuple(w.shape) for w in self.weights] + [tuple(self.head.weight.shape)]

    def reset_parameters(self) -> None:
        """Set every weight to draw ``self.draw`` of the prior (head bias 0)."""
        self.resample(self.draw)

    @torch.no_grad()
    def resample(self, draw: int) -> None:
        """Set the weights to prior draw ``draw`` (the index stays in ``self.draw``)."""
        self.draw = int(draw)
        gen = draw_generator(self.prior_seed, self.draw)
        for w in [*self.weights, self.head.weight]:
            fan_in = math.prod(w.shape[1:])
            sample = torch.randn(w.shape, generator=gen, dtype=torch.float64) * math.sqrt(self.prior_var / fan_in)
            w.copy_(sample.to(w.dtype))
        self.head.bias.zero_()

    def image_axes(self, height: int, width: int) -> dict[str, ImageAxis]:
        axes = {"image": SCALAR_AXIS}
        if self.arch == "cnn":
            for i in range(self.num_layers):
                axes[f"pre{i}"] = conv_chain(height, width, [ConvStep(3, 1, 1)] * (i + 1))
        return axes

    def features(self, images: Tensor) -> Tensor:
        """``u``: ``φ(h^{(L)})`` (global-average-pooled for the CNN) over its root mean square, the head's
        input; the ``pre{i}`` taps fire."""
        if self.arch == "mlp":
            a = images.flatten(1)
            for w, tap in zip(self.weights, self.taps):
                a = tap(a @ w.t()).relu()
        else:
            a = images
            for w, tap in zip(self.weights, self.taps):
                a = tap(F.conv2d(a, w, padding=1)).relu()
            a = a.mean(dim=(2, 3))
        return a / (a.square().mean(1, keepdim=True) + RMS_EPS).sqrt()

    def forward(self, images: Tensor) -> Tensor:
        return self.logits_tap(self.head(self.features(images)))

    def extra_repr(self) -> str:
        return (f"arch={self.arch!r}, hidden_size={self.hidden_size}, num_layers={self.num_layers}, "
                f"prior_var={self.prior_var}, prior_seed={self.prior_seed}, draw={self.draw}, draws={self.draws}, "
                f"train_hidden={self.train_hidden}")


# ---------------------------------------------------------------------------------------------- prior samples


def _as_batch(model: BNNPrior, inputs) -> Tensor:
    x = torch.as_tensor(inputs, dtype=torch.float64)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    expected = (model.channels, model.height, model.width)
    if x.dim() != 4 or tuple(x.shape[1:]) != expected:
        raise ValueError(f"expected an image [C, H, W] or images [B, C, H, W] with (C, H, W) = {expected}, "
                         f"got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("expected finite pixel values, got NaN or infinity")
    return x


def _layer_draws(gen: torch.Generator, m: int, shape: tuple[int, ...], var: float) -> Tensor:
    """``m`` draws ``[m, *shape]`` of one layer's weights, ``N(0, var / fan_in)``, float64."""
    return torch.randn((m, *shape), generator=gen, dtype=torch.float64) * math.sqrt(var / math.prod(shape[1:]))


@torch.no_grad()
def prior_weights(model: "BNNPrior", draws: int, *, seed: int | None = None) -> list[Tensor]:
    """The weights behind :func:`prior_unit_samples` (``method="weights"``, same ``seed``) when ``draws``
    fit in one chunk: per layer (the head last) ``[draws, *shape]``, float64. For checking the sampler."""
    gen = torch.Generator().manual_seed(int(model.prior_seed if seed is None else seed))
    return [_layer_draws(gen, int(draws), shape, model.prior_var) for shape in model.weight_shapes()]


@torch.no_grad()
def prior_unit_samples(model: BNNPrior, inputs, draws: int | None = None, *, seed: int | None = None,
                       method: str = "weights", include_output: bool = True) -> dict[str, Tensor]:
    """Pre-activations of every layer over ``draws`` independent prior draws of the model's weights, for
    fixed ``inputs``: ``{"pre0": [draws, units], ..., "output": [draws, classes]}`` (float64).

    ``inputs``: one image ``[C, H, W]`` (or ``[1, C, H, W]``) gives ``[draws, units]`` per layer; a batch
    ``[B, C, H, W]`` with ``B > 1`` gives ``[draws, B, units]`` (the same draw for every image). A CNN's
    units are its ``channels × cells`` (flattened channel-major). ``draws`` defaults to ``model.draws``;
    ``seed`` to ``model.prior_seed`` (a stream of its own, independent of the model's ``draw``). The
    ``output`` is the paper's output layer ``L + 1``, ``V φ(h^{(L)})`` with ``V`` drawn like the others
    (not the engine's normalised, trained head).

    ``method="weights"`` samples every weight matrix. ``method="rows"`` (MLP, one image only) samples
    the same distribution in ``O(n)`` per layer and draw: given ``φ = φ(h^{(l-1)})``, ``W φ`` has i.i.d.
    ``N(0, σ² ‖φ‖² / fan_in)`` entries, exactly, so ``h^{(l)} = σ ‖φ‖ / √fan_in · g`` with a fresh
    ``g ~ N(0, I_n)`` (the joint law over several inputs needs the weights, hence one image only).
    """
    if not isinstance(model, BNNPrior):
        raise TypeError(f"expected a bnn-prior model (BNNPrior), got {type(model).__name__}")
    x = _as_batch(model, inputs)
    single = x.shape[0] == 1
    draws = model.draws if draws is None else int(draws)
    if draws < 1:
        raise ValueError(f"expected draws >= 1, got {draws}")
    if method not in ("weights", "rows"):
        raise ValueError(f"expected method 'weights' or 'rows', got {method!r}")
    if method == "rows" and (model.arch != "mlp" or not single):
        raise ValueError("method 'rows' samples one image's units of an MLP; use method 'weights' for a CNN "
                         "or several images")
    gen = torch.Generator().manual_seed(int(model.prior_seed if seed is None else seed))
    shapes = model.weight_shapes()
    if not include_output:
        shapes = shapes[:-1]
    names = [f"pre{i}" for i in range(model.num_layers)] + (["output"] if include_output else [])
    var = model.prior_var
    out: dict[str, list[Tensor]] = {name: [] for name in names}
    if method == "rows":
        flat = x.flatten(1)[0]
        chunk = max(1, SAMPLE_CHUNK_NUMBERS // max(s[0] for s in shapes))
        for start in range(0, draws, chunk):
            m = min(chunk, draws - start)
            a = flat.expand(m, -1)
            for li, (name, shape) in enumerate(zip(names, shapes)):
                scale = (var * a.square().sum(1, keepdim=True) / shape[1]).sqrt()
                h = scale * torch.randn((m, shape[0]), generator=gen, dtype=torch.float64)
                out[name].append(h)
                a = h.relu()
        return {name: torch.cat(parts) for name, parts in out.items()}
    per_draw = sum(math.prod(s) for s in shapes)
    chunk = max(1, SAMPLE_CHUNK_NUMBERS // per_draw)
    b = x.shape[0]
    for start in range(0, draws, chunk):
        m = min(chunk, draws - start)
        if model.arch == "mlp":
            a = x.flatten(1).expand(m, -1, -1)  # [m, B, D]
            for name, shape in zip(names, shapes):
                w = _layer_draws(gen, m, shape, var)
                h = torch.bmm(a, w.transpose(1, 2))  # [m, B, out]
                out[name].append(h[:, 0] if single else h)
                a = h.relu()
        else:
            a = x.repeat(1, m, 1, 1)  # [B, m C, H, W]: draw d is group d
            for li, (name, shape) in enumerate(zip(names, shapes)):
                w = _layer_draws(gen, m, shape, var)
                if li < model.num_layers:
                    h = F.conv2d(a, w.reshape(m * shape[0], *shape[1:]), padding=1, groups=m)  # [B, m n, H, W]
                    units = h.reshape(b, m, -1).transpose(0, 1)  # [m, B, n H W]
                    a = h.relu()
                else:
                    pooled = a.mean(dim=(2, 3)).reshape(b, m, -1).transpose(0, 1)  # [m, B, n]
                    units = torch.bmm(pooled, w.transpose(1, 2))
                out[name].append(units[:, 0] if single else units)
    return {name: torch.cat(parts) for name, parts in out.items()}


# ---------------------------------------------------------------------------------------------- closed forms


def abs_gaussian_moment(k: float) -> float:
    """``E|g|^k`` for ``g ~ N(0, 1)``: ``2^{k/2} Γ((k+1)/2) / √π``."""
    return math.exp(log_abs_gaussian_moment(k))


def log_abs_gaussian_moment(k: float) -> float:
    """``log E|g|^k`` (no overflow at high orders)."""
    return k / 2 * math.log(2) + math.lgamma((k + 1) / 2) - 0.5 * math.log(math.pi)


def width1_abs_moment(k: float, layer: int, *, prior_var: float = 1.0, first_var: float = 1.0) -> float:
    """``E|h^{(l)}|^k`` of the width-1 chain (module docstring): ``s_1^k σ^{k(l-1)} (E|g|^k)^l / 2^{l-1}``
    with ``s_1² = first_var``, ``σ² = prior_var``, ``l = layer`` (1-based)."""
    return (first_var ** (k / 2) * prior_var ** (k * (layer - 1) / 2) * abs_gaussian_moment(k) ** layer
            / 2 ** (layer - 1))


def width1_moment_slope(layer: int, ks=range(2, 9)) -> float:
    """The exact least-squares slope of ``log ‖h^{(l)}‖_k`` against ``log k`` at width 1 over ``ks`` (the
    scale drops out); it tends to ``l/2`` as the orders grow."""
    ks = np.asarray(list(ks), float)
    norms = np.array([(layer * log_abs_gaussian_moment(k) - (layer - 1) * math.log(2)) / k for k in ks])
    return float(np.polyfit(np.log(ks), norms, 1)[0])


def moments_closed_form(layer: int, width: int, *, prior_var: float = 2.0, first_var: float = 1.0
                        ) -> tuple[float, float]:
    """``(E h², E h⁴)`` of a unit of layer ``layer`` (1-based) of a bias-free ReLU MLP whose hidden
    layers all have ``width`` units (the output layer ``L+1`` too), for a fixed input with first-layer
    variance ``first_var`` (module docstring's recursion)."""
    m, big_q = first_var, first_var ** 2
    for _ in range(layer - 1):
        m, big_q = prior_var / 2 * m, prior_var ** 2 * (width + 5) / (4 * width) * big_q
    return m, 3 * big_q


def kurtosis_closed_form(layer: int, width: int) -> float:
    """``E h⁴ / (E h²)² = 3 (1 + 5/n)^{l-1}`` (independent of σ² and of the input)."""
    return 3.0 * (1 + 5 / width) ** (layer - 1)


def first_layer_var(model: BNNPrior, image) -> float:
    """``s_1² = σ² ‖x‖² / D``: the variance of every first-layer unit of an MLP for the fixed ``image``."""
    x = _as_batch(model, image)[0]
    return model.prior_var * float(x.square().sum()) / x.numel()


# ---------------------------------------------------------------------------------------------- tail estimates


def excess_kurtosis(values) -> tuple[float, float]:
    """``(κ − 3, standard error)`` of the pooled ``values`` ``[draws, ...]``, moments about 0 (the prior is
    symmetric); the standard error from 20 batches of draws (batch means)."""
    v = np.asarray(values, np.float64)
    v = v.reshape(len(v), -1)
    k = float(np.mean(v ** 4) / np.mean(v ** 2) ** 2 - 3)
    blocks = np.array_split(np.arange(len(v)), min(20, len(v)))
    ks = [np.mean(v[b] ** 4) / np.mean(v[b] ** 2) ** 2 - 3 for b in blocks if len(b)]
    se = float(np.std(ks, ddof=1) / math.sqrt(len(ks))) if len(ks) > 1 else float("nan")
    return k, se


def moment_slope(values, ks=range(2, 9)) -> float:
    """Least-squares slope of ``log ‖h‖_k = log (mean |h|^k)^{1/k}`` against ``log k`` over ``ks``."""
    a = np.abs(np.asarray(values, np.float64)).reshape(-1)
    a = a / (np.sqrt(np.mean(a ** 2)) or 1.0)  # scale-free, and no overflow at high orders
    ks = np.asarray(list(ks), float)
    norms = np.array([math.log(np.mean(a ** k)) / k for k in ks])
    return float(np.polyfit(np.log(ks), norms, 1)[0])


def weibull_tail_theta(values, *, upper: float = 0.1, min_count: int = 30) -> float:
    """Tail parameter θ from a Weibull plot of ``|h|``: ``1 /`` slope of ``log(−log Ŝ(t))`` against ``log t``
    where ``Ŝ`` (the empirical survival function, ``(i − ½)/N`` at the ``i``-th largest value) lies in
    ``[min_count/N, upper]``. 1/2 for a Gaussian, 1 for a Laplace-like (sub-exponential) tail."""
    a = np.sort(np.abs(np.asarray(values, np.float64)).reshape(-1))[::-1]
    n = len(a)
    i = np.arange(1, n + 1)
    surv = (i - 0.5) / n
    keep = (surv <= upper) & (i >= min_count) & (a > 0)
    if keep.sum() < 3:
        raise ValueError(f"too few values for a tail fit: {n} (need about {int(3 * min_count / upper)})")
    slope = np.polyfit(np.log(a[keep]), np.log(-np.log(surv[keep])), 1)[0]
    return float(1 / slope)


def tail_statistics(samples: dict[str, Tensor]) -> list[dict]:
    """Per layer of :func:`prior_unit_samples`' output (in order, layer ``l = 1, 2, ...``): ``excess_kurtosis``
    and its ``se``, ``moment_slope`` (k = 2..8), ``weibull_theta`` and the theorem's ``theta = l/2``."""
    rows = []
    for li, (name, values) in enumerate(samples.items(), start=1):
        v = values.numpy() if isinstance(values, Tensor) else np.asarray(values)
        k, se = excess_kurtosis(v)
        rows.append({"tap": name, "layer": li, "excess_kurtosis": k, "se": se, "moment_slope": moment_slope(v),
                     "weibull_theta": weibull_tail_theta(v), "theta": li / 2})
    return rows


# ---------------------------------------------------------------------------------------------- engine


def build(channels: int, height: int, width: int, num_classes: int, task: str = "class", *,
          hidden_size: int = 64, num_layers: int = 4, arch: str = "mlp", prior_var: float = 2.0,
          prior_seed: int = 0, draw: int = 0, draws: int = 10000, train_hidden: bool = False) -> BNNPrior:
    return BNNPrior(channels, height, width, num_classes, task, hidden_size=hidden_size, num_layers=num_layers,
                    arch=arch, prior_var=prior_var, prior_seed=prior_seed, draw=draw, draws=draws,
                    train_hidden=train_hidden)


SPEC = EngineSpec(
    name=ENGINE,
    description="a deep bias-free ReLU MLP/CNN whose weights are one draw of the Gaussian (He) prior; "
                "only the head is trained by default; prior_unit_samples gives a unit's law over the prior",
    family="image",
    paper=Paper(
        title="Understanding Priors in Bayesian Neural Networks at the Unit Level",
        authors="Vladimirova, Verbeek, Mesejo, Arbel",
        arxiv="1810.05193",
        year=2019,
    ),
    build=build,
    default_config={"hidden_size": 64, "num_layers": 4, "arch": "mlp", "prior_var": 2.0, "prior_seed": 0,
                    "draw": 0, "draws": 10000, "train_hidden": False},
    taps=("pre{layer}", "logits"),
    train_defaults={"steps": 600, "batch_size": 64, "lr": 0.01, "eval_every": 100, "optimizer": "adam",
                    "clip": 5.0, "seed": 0},
)
