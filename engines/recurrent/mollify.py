r"""Mollifying networks for recurrent stacks: Gulcehre, Moczulski, Visin & Bengio, "Mollifying Networks"
(ICLR 2017, arXiv:1608.04980), as the training setting ``mollify`` of every engine built on
:class:`~.stack.RecurrentStack`.

A continuation method: training starts on a smoothed ("mollified") objective, whose network is close to
a shallow, linear one, and a single hyper-parameter ``p`` is annealed to 0 over training, where the
objective is the original one. Two mechanisms, both controlled by ``p^l`` (layer ``l`` = 1..L):

**Noisy linearised activations.** Every logistic sigmoid and tanh evaluated inside a layer's step (the
gates and candidate/cell nonlinearities of an LSTM or GRU cell) is replaced by the paper's noisy
mollified unit

.. math::
    u(x) &= f(0) + f'(0)\,x  \qquad \text{(the linearisation: } 1/2 + x/4 \text{ for } \sigma,\ x \text{ for } \tanh) \\
    f^*(x) &= f(x) - u(0), \qquad u^*(x) = u(x) - u(0) \\
    s &= p^l\, c\, \sigma(x)\, \xi, \qquad \xi \sim \mathcal N(0, 1) \\
    \psi(x, \xi; p^l) &= \mathrm{sgn}(u^*(x))\,\min\big(|u^*(x)|,\ |f^*(x) + \mathrm{sgn}(u^*(x))\,|s|\,|\big) + u(0)

With ``s = 0`` this is exactly ``f(x)`` (for sigmoid and tanh ``|f^*| <= |u^*|`` with the same sign); the
half-normal noise pushes the output from the nonlinearity towards its linearisation and never past it.
lstmviz then clips ψ to the range of ``f`` ([0, 1] for σ, [-1, 1] for tanh), so a large ``p c`` gives the
piecewise-linear "hard" unit ``clip(u(x))`` (hard-sigmoid ``clip(1/2 + x/4, 0, 1)``, hard-tanh) of
Gulcehre et al.'s "Noisy Activation Functions" rather than the unbounded ``u(x)``. The clip is not in
the paper's formula; without it a forget gate above 1 makes the LSTM cell state carried by stateful
truncated BPTT grow geometrically (measured: |c| ~ 1e33 after 40 steps, then NaN, on parity with
4 x 32 LSTM layers). It changes nothing where ``|ψ|`` is already in range, and nothing at ``p = 0``.

**Stochastic skips across layers** (never along time):

.. math::
    \pi^l_t \sim \mathrm{Bernoulli}(p^l), \qquad y^l_t = \pi^l_t \odot y^{l-1}_t + (1 - \pi^l_t) \odot \tilde h^l_t

where ``\tilde h^l_t`` is the layer's (noisy) cell output and ``y^{l-1}_t`` its input (after the
dropout between layers). ``\pi`` is drawn per element (batch, step, unit), as the paper's ``\odot``
reads. At ``p^l = 1`` every layer passes its input through unchanged: the language model is then
embedding -> decoder, a linear (bigram) model. At ``p^l = 0`` both mechanisms are off and the code path
is the plain engine's, so the forward is bit for bit the unmodified one.

**Annealing** (choices of lstmviz where the paper leaves room, see docs/engines.md):
``mollify=N`` anneals over the first N optimiser steps, ``p_t = max(0, 1 - (t - 1)/N)`` for step
``t = 1, 2, ...`` (the paper's "linear decay" variant), and per layer ``p^l_t = p_t^{L/l}``: 1 for every
layer at the start, 0 for every layer from step N + 1 on, non-increasing in t and non-decreasing in
depth ``l`` (deeper layers are skipped more, as the paper asks). The paper's other schedule,
``p^l_t = 1 - exp(-k v_t l / (t L))`` with ``v_t`` a running average of the training loss, never reaches 0,
so it cannot end on the plain model; it is not implemented.

Scope: the mollifier acts only in training mode (``model.training``); validation, recording and
perturbation run the plain network. The layer's recurrent state is its own cell's (the skip mixes only
the output passed upwards). A layer whose input size differs from its hidden size (the first layer when
``embedding_dim != hidden_size``) has no skip, only noisy activations.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

__all__ = ["Mollifier", "mollifying", "current", "schedule", "psi", "NoisyActivations"]


@dataclass(frozen=True)
class Mollifier:
    """The mollification of one training step: ``p`` per layer (index 0 = the first layer), noise scale ``c``."""

    p: tuple[float, ...]
    c: float = 1.0

    def layer_p(self, index: int) -> float:
        return self.p[index] if index < len(self.p) else self.p[-1]

    @property
    def off(self) -> bool:
        return all(v == 0.0 for v in self.p)


_CURRENT: contextvars.ContextVar[Mollifier | None] = contextvars.ContextVar("lstmviz_mollifier", default=None)


def current() -> Mollifier | None:
    """The mollifier in force (inside :func:`mollifying`), or None."""
    return _CURRENT.get()


@contextlib.contextmanager
def mollifying(mollifier: Mollifier | None) -> Iterator[None]:
    """Every :class:`~.stack.RecurrentStack` run in training mode inside this block is mollified."""
    token = _CURRENT.set(mollifier)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def schedule(step: int, anneal_steps: int, num_layers: int) -> tuple[float, ...]:
    """``p^l`` of optimiser step ``step`` (1-based) for layers l = 1..num_layers: ``p_t^{L/l}``,
    ``p_t = max(0, 1 - (step - 1)/anneal_steps)``. All 1 at step 1, all 0 from step anneal_steps + 1."""
    if anneal_steps <= 0:
        return (0.0,) * num_layers
    base = max(0.0, 1.0 - (step - 1) / anneal_steps)
    return tuple(base ** (num_layers / layer) for layer in range(1, num_layers + 1))


_LINEAR = {"sigmoid": (0.5, 0.25), "tanh": (0.0, 1.0)}  # u(0), f'(0)
_RANGE = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}  # the range of f, to which psi is clipped


def psi(x: Tensor, kind: str, p: float, c: float, *, generator: torch.Generator | None = None) -> Tensor:
    """The noisy mollified unit ψ of ``torch.sigmoid`` (``kind="sigmoid"``) or ``torch.tanh`` at noise level ``p``.

    ``p == 0`` returns exactly ``f(x)``; see the module docstring for the formula.
    """
    f = torch.sigmoid if kind == "sigmoid" else torch.tanh
    if p == 0.0:
        return f(x)
    u0, slope = _LINEAR[kind]
    fx = f(x)
    # sgn(u*) min(|u*|, |f* + sgn(u*)|s||) + u(0) = f(x) + clip(u(x) - f(x), -|s|, |s|), because f* and u* have
    # the sign of x and |f*| <= |u*| (for sigmoid and tanh): the noise moves f(x) towards u(x) by at most |s|
    gap = torch.add(x, u0 / slope).mul_(slope).sub_(fx)  # u(x) - f(x)
    xi = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
    s = (fx if kind == "sigmoid" else torch.sigmoid(x)).mul(xi.abs_()).mul_(p * c)  # |s| = p c sigma(x) |xi|
    low, high = _RANGE[kind]
    return (fx + torch.minimum(torch.maximum(gap, -s), s)).clamp(low, high)  # clip to f's range (docstring)


def _functions(*names: str) -> frozenset:
    found = set()
    for name in names:
        for owner in (torch, torch.Tensor, torch.special, torch.nn.functional):
            fn = getattr(owner, name, None)
            if fn is not None:
                found.add(fn)
    return frozenset(found)


_SIGMOID = _functions("sigmoid", "expit")
_TANH = _functions("tanh")


class NoisyActivations(TorchFunctionMode):
    """Inside this mode ``torch.sigmoid``/``torch.tanh`` (and their Tensor-method and functional forms)
    compute :func:`psi` at noise level ``p`` instead; everything else runs unchanged."""

    def __init__(self, p: float, c: float):
        super().__init__()
        self.p, self.c = float(p), float(c)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not kwargs and len(args) == 1 and isinstance(args[0], Tensor) and args[0].is_floating_point():
            if func in _SIGMOID:
                return psi(args[0], "sigmoid", self.p, self.c)
            if func in _TANH:
                return psi(args[0], "tanh", self.p, self.c)
        return func(*args, **kwargs)


def check_anneal_steps(value) -> bool:
    """Whether ``value`` is a valid ``mollify`` setting: None/0 (off) or a positive int."""
    if value is None:
        return True
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def describe(step: int, anneal_steps: int, num_layers: int, c: float) -> dict:
    """The annealing state after optimiser step ``step``, as checkpoints record it (``metrics["mollify"]``)."""
    p = schedule(step, anneal_steps, num_layers) if step >= 1 else (1.0,) * num_layers
    return {
        "anneal_steps": int(anneal_steps),
        "c": float(c),
        "schedule": "p_t = max(0, 1 - (t-1)/N); p^l_t = p_t^(L/l)",
        "step": int(step),
        "p": [float(v) for v in p],
        "annealed": all(v == 0.0 for v in p) and step >= 1,
        "p_mean": float(sum(p) / len(p)) if p else 0.0,
    }

