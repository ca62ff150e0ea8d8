r"""DP-SGD (Abadi et al. 2016, "Deep Learning with Differential Privacy"): the ``privacy=dpsgd`` training option.

Every step:

1. **Poisson sampling**: each of the :math:`N` training examples joins the lot :math:`L` independently with
   probability :math:`q` (``dp_rate``; default ``batch_size / N``), so the lot size varies around :math:`qN`
   and may be empty;
2. **per-example gradients** :math:`g_i = \nabla_\theta \ell_i` of every trainable parameter
   (:mod:`lstmviz.engines.func_grads`, ``vmap`` or its loop fallback), :math:`\ell_i` the family's per-example
   loss (``objective.example_loss``);
3. **clipping** of each example's gradient over ALL trainable parameters jointly:
   :math:`\bar g_i = g_i / \max(1, \lVert g_i\rVert_2 / C)` (``dp_clip``);
4. **noise on the sum**, then division by the **expected** lot size (not the realised one, which would leak
   the lot size): :math:`\tilde g = \frac{1}{qN}\big(\sum_{i \in L} \bar g_i + N(0, \sigma^2 C^2 I)\big)`
   (``dp_noise`` = :math:`\sigma`);
5. the optimizer's step with :math:`\tilde g` as the gradient (SGD as in the paper; Adam or momentum are
   allowed: they only post-process the privatised gradient, so the guarantee is unchanged).

The privacy cost of the run so far is tracked by :class:`~lstmviz.engines.rdp_accountant.Accountant` (RDP of
the Poisson-subsampled Gaussian, converted to :math:`(\varepsilon, \delta)` at ``dp_delta``) and reported as
``ε`` in the progress line and in every checkpoint's metrics (``dp_epsilon`` and the ``privacy`` record, with the
fraction of clipped examples per step, a short history).

What DP-SGD does not cover, refused or stated:

- batch normalisation mixes the examples of a batch, so one example's gradient depends on the others and the
  clipping bound is no sensitivity bound: engines with ``nn.BatchNorm*`` or the project's own batch-norm cells
  (``engines/recurrent/_norm.py``) are refused (:func:`refuse_batch_norm`);
- the shared ``clip`` setting (the global-norm clip) is not applied under DP: the per-example clip replaces it;
- ``optimizer=kfac|ekfac`` is refused: its curvature statistics are read from raw, unclipped examples;
- the privacy unit is the family's *example* (an image, a graph, a pair, a document, a character; for the
  language-model family a fixed window of ``bptt + 1`` tokens of the token stream, read without carried
  state): it is not per-document or per-user privacy when one document spans several windows;
- the noise comes from torch's default generator (seeded, reproducible), not a cryptographically secure one:
  this is a tool for studying DP models, not for releasing them.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn
from torch.func import vmap
from torch.utils._pytree import tree_flatten, tree_map

from . import func_grads
from .rdp_accountant import Accountant
from .recurrent._norm import _BatchNormBase
from .spec import ConfigError

HISTORY = 20  # steps of clipped-fraction history kept in the checkpoint metrics


def batch_norm_layers(model: nn.Module) -> list[tuple[str, str]]:
    """``(module name, class name)`` of every batch-normalisation layer of the model."""
    return [(name or "(the model)", type(m).__name__) for name, m in model.named_modules()
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, _BatchNormBase))]


def refuse_batch_norm(model: nn.Module, engine: str) -> None:
    """ConfigError naming the first batch-norm layer: DP-SGD's per-example sensitivity needs examples that do
    not see each other."""
    found = batch_norm_layers(model)
    if found:
        name, kind = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ConfigError(f"privacy=dpsgd: engine {engine!r} has batch normalisation ({kind} at {name!r}{more}), "
                          "which mixes the examples of a batch, so one example's gradient is not bounded by the "
                          "clip; train an engine without it (a LayerNorm language model such as ln-lstm or ln-gru, "
                          "or cnn for images)")


def clip_factors(norms: Tensor, clip: float) -> Tensor:
    """:math:`\\min(1, C/\\lVert g_i\\rVert)` per example (1 for a zero gradient and for C = ∞)."""
    return (clip / norms).clamp(max=1.0)


def per_example_norms(grads: Mapping[str, Tensor]) -> Tensor:
    """``[B]``: each example's gradient norm over all parameters jointly."""
    return torch.sqrt(sum((g.reshape(g.shape[0], -1) ** 2).sum(1) for g in grads.values()))


def clipped_sum(grads: Mapping[str, Tensor], clip: float) -> tuple[dict[str, Tensor], Tensor]:
    """``({name: Σ_i ḡ_i}, the per-example norms before clipping)``."""
    norms = per_example_norms(grads)
    factors = clip_factors(norms, clip)
    summed = {k: (g * factors.reshape(-1, *([1] * (g.dim() - 1)))).sum(0) for k, g in grads.items()}
    return summed, norms


def privatize(summed: Mapping[str, Tensor], clip: float, noise: float, expected_lot: float,
              generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """:math:`(\\sum_i \\bar g_i + N(0, \\sigma^2 C^2 I)) / (qN)` per parameter (no noise drawn when σ = 0)."""
    out = {}
    for k, s in summed.items():
        if noise > 0:
            s = s + torch.randn(s.shape, generator=generator, dtype=s.dtype, device=s.device) * (noise * clip)
        out[k] = s / expected_lot
    return out


class _Dispatch(nn.Module):
    """The model behind one ``forward`` that runs either its ``forward`` or its ``loss`` (``_method=``), so that
    ``functional_call`` can differentiate an engine's own loss example by example."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *args, _method: str = "forward", **kwargs):
        return getattr(self.model, _method)(*args, **kwargs)


class ModelCall:
    """What ``objective.example_loss(call, example)`` receives: ``call(*inputs)`` runs the model's forward,
    ``call.loss(*inputs)`` the engine's own loss, both with the parameters being differentiated;
    ``call.module`` is the model itself (for preparation that does not depend on the parameters)."""

    def __init__(self, run: Callable, module: nn.Module):
        self._run, self.module = run, module

    def __call__(self, *args, **kwargs):
        return self._run(*args, **kwargs)

    def loss(self, *args, **kwargs):
        return self._run(*args, _method="loss", **kwargs)


def example_view(objective, engine: str):
    """``(examples pytree [N, ...], what one example is, per-example-gradient method)`` of a family's objective,
    or ConfigError saying why this family (or task) cannot give per-example losses."""
    give = getattr(objective, "dp_examples", None)
    if not callable(give) or not callable(getattr(objective, "example_loss", None)):
        raise ConfigError(f"privacy=dpsgd: the training objective of engine {engine!r} "
                          f"({type(objective).__name__}) gives no per-example losses, so DP-SGD cannot clip "
                          "example by example")
    try:
        examples, unit = give()
    except ValueError as exc:
        raise ConfigError(f"privacy=dpsgd: {exc}") from None
    return examples, unit, getattr(objective, "dp_method", "auto")


class DPSGD:
    """The privatised gradient of each step (module docstring); ``step(model)`` writes ``p.grad``."""

    def __init__(self, model: nn.Module, objective, settings: dict, engine: str):
        refuse_batch_norm(model, engine)
        self.objective = objective
        self.examples, self.unit, self.method = example_view(objective, engine)
        self.n = func_grads.batch_size_of(self.examples)
        q = settings["dp_rate"]
        self.q = min(1.0, settings["batch_size"] / self.n) if q is None else float(q)
        self.clip, self.noise, self.delta = float(settings["dp_clip"]), float(settings["dp_noise"]), float(
            settings["dp_delta"])
        self.expected_lot = self.q * self.n
        self.accountant = Accountant(self.q, self.noise, self.delta)
        self.wrapper = _Dispatch(model)
        self.names = [f"model.{n}" for n, p in model.named_parameters() if p.requires_grad]
        size = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self.chunk = max(1, min(64, (1 << 25) // max(size, 1)))  # ~128 MB of float32 per-example gradients
        self.steps = 0
        self.clipped: list[float] = []
        self.lots: list[int] = []
        self.method_used: str | None = None

    def _loss_of(self, call, example) -> Tensor:
        return self.objective.example_loss(ModelCall(call, self.wrapper.model), example)

    def _lot(self) -> Tensor:
        device = _device_of(self.examples)
        return torch.nonzero(torch.rand(self.n, device=device) < self.q).reshape(-1)

    def _losses(self, lot_examples) -> Tensor:
        """Each lot example's loss at the current parameters (for the progress line; no gradient)."""
        def one(example):
            return self._loss_of(self.wrapper, example)

        with torch.no_grad():
            if self.method != "loop":
                try:
                    return vmap(one, randomness="different")(lot_examples)
                except (RuntimeError, NotImplementedError):
                    pass
            n = func_grads.batch_size_of(lot_examples)
            return torch.stack([one(tree_map(lambda t: t[i] if isinstance(t, Tensor) else t, lot_examples))
                                for i in range(n)])

    def step(self, model: nn.Module) -> tuple[Tensor, int]:
        """Draw a lot, write the privatised gradient into every trainable parameter's ``.grad``; returns the
        lot's mean example loss (NaN for an empty lot) and the lot size."""
        lot = self._lot()
        params = dict(model.named_parameters())
        if len(lot):
            lot_examples = tree_map(lambda t: t[lot] if isinstance(t, Tensor) else t, self.examples)
            grads = func_grads.per_example_grads(self.wrapper, self._loss_of, lot_examples, params=self.names,
                                                 chunk=self.chunk, method=self.method)
            self.method_used = func_grads.last_method()
            summed, norms = clipped_sum(grads, self.clip)
            loss = self._losses(lot_examples).mean().detach()
            self.clipped.append(float((norms > self.clip).double().mean()))
        else:
            summed = {f"model.{k}": torch.zeros_like(p) for k, p in params.items() if p.requires_grad}
            loss = torch.tensor(math.nan)
            self.clipped.append(0.0)
        for name, g in privatize(summed, self.clip, self.noise, self.expected_lot).items():
            p = params[name[len("model."):]]
            p.grad = g.to(p.dtype)
        self.steps += 1
        self.lots.append(len(lot))
        return loss, len(lot)

    def epsilon(self) -> float:
        return self.accountant.epsilon(self.steps)

    def progress(self) -> str:
        return f"ε {self.epsilon():.2f}"

    def metrics(self) -> dict[str, Any]:
        eps = self.epsilon()
        return {
            "dp_epsilon": eps,
            "privacy": {
                "mechanism": "dpsgd", "epsilon": eps, "delta": self.delta, "noise": self.noise, "clip": self.clip,
                "rate": self.q, "examples": self.n, "example": self.unit, "expected_lot": self.expected_lot,
                "steps": self.steps, "accountant": "RDP of the Poisson-subsampled Gaussian (Mironov et al. 2019)",
                "mean_lot": (sum(self.lots) / len(self.lots)) if self.lots else None,
                "clipped_fraction_mean": (sum(self.clipped) / len(self.clipped)) if self.clipped else None,
                "clipped_fraction_history": [round(c, 4) for c in self.clipped[-HISTORY:]],
                "per_example_gradients": self.method_used,
                "rng": "torch default generator (seeded; not cryptographically secure)",
            },
        }


def _device_of(examples) -> torch.device:
    for leaf in tree_flatten(examples)[0]:
        if isinstance(leaf, Tensor):
            return leaf.device
    return torch.device("cpu")
