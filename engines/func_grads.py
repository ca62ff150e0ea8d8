r"""Per-example gradients and per-example output Jacobians of any model, with ``torch.func``.

One service for everything that needs gradients example by example: DP-SGD's clipping (Abadi et al.),
the empirical tangent kernel (Baratin et al.; Bietti & Mairal), the diagonal Fisher / Gauss-Newton of the
loss-model pruning (Laurent et al.) and EKFAC's re-estimated diagonal (George et al.).

For parameters :math:`\theta` (a chosen subset of the model's, the rest held fixed) and examples
:math:`x_1..x_B`:

.. math::
    g_i = \nabla_\theta\, \ell(\theta; x_i) \in \mathbb{R}^P \qquad
    J_i = \partial f(\theta; x_i) / \partial\theta \in \mathbb{R}^{O \times P}

``per_example_grads`` returns :math:`g_i` for every ``i`` and ``per_example_jacobians`` returns
:math:`J_i`, each as a dict ``parameter name -> tensor [B, ...]`` (``[B, O, ...]`` for Jacobians) so that a
caller can group them by layer (:func:`group_by_layer`).

How: ``functional_call`` makes the model a function of its parameters; ``vmap(grad(...))`` (or
``vmap(jacrev(...))``) maps it over the examples' leading dimension in chunks of ``chunk`` examples. The
caller's ``loss_of(call, example)`` / ``output_of(call, example)`` receives ONE example (every tensor of
the pytree without its batch dimension) and ``call(*args, **kwargs)``, which runs the model with the
parameters being differentiated; it adds the batch dimension the model expects itself (``x[None]``).

``method="loop"`` computes the same by a Python loop of ``torch.autograd.grad`` over single examples: the
reference the vmap result is tested against, and the fallback of ``method="auto"`` for a model that
``vmap`` cannot map (data-dependent control flow, ``.item()``, in-place updates of buffers, batch
statistics). ``method="vmap"`` raises instead of falling back. :func:`last_method` says which one ran.

Randomness (dropout in training mode) differs between examples under vmap (``randomness="different"``), as
it does between the rows of one batch; the loop draws it example by example. Results agree exactly only
without randomness (eval mode, or no dropout).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jacrev, vmap
from torch.utils._pytree import tree_flatten, tree_map

METHODS = ("auto", "vmap", "loop")
_last_method: list[str] = ["none"]

LossOf = Callable[[Callable[..., Any], Any], Tensor]


def trainable_parameters(model: nn.Module, names: Iterable[str] | None = None) -> dict[str, Tensor]:
    """The model's parameters that require a gradient (or exactly ``names``), by dotted name.

    Raises ValueError naming a parameter the model does not have."""
    every = dict(model.named_parameters())
    if names is None:
        return {n: p for n, p in every.items() if p.requires_grad}
    chosen = {}
    for n in names:
        if n not in every:
            close = ", ".join(sorted(every)[:8])
            raise ValueError(f"the model has no parameter {n!r}; it has: {close}{', ...' if len(every) > 8 else ''}")
        chosen[n] = every[n]
    return chosen


def layer_of(name: str) -> str:
    """The module path of a parameter name (``"stack.0.cell.weight_ih"`` -> ``"stack.0.cell"``; a parameter
    of the root module: ``""``)."""
    return name.rpartition(".")[0]


def group_by_layer(names: Iterable[str]) -> dict[str, list[str]]:
    """Parameter names grouped by the module that owns them, in first-seen order."""
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(layer_of(n), []).append(n)
    return groups


def last_method() -> str:
    """Which method the last call of this module actually used (``"vmap"`` or ``"loop"``)."""
    return _last_method[0]


def batch_size_of(examples) -> int:
    """The shared leading dimension of every tensor of the ``examples`` pytree."""
    leaves = [leaf for leaf in tree_flatten(examples)[0] if isinstance(leaf, Tensor)]
    if not leaves:
        raise ValueError("examples: expected a tensor or a pytree (tuple, list, dict) of tensors, got no tensor")
    sizes = {int(leaf.shape[0]) if leaf.dim() else -1 for leaf in leaves}
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError(f"examples: every tensor must have the same leading (example) dimension, got {sorted(sizes)}")
    return sizes.pop()


def _slice(examples, start: int, stop: int):
    return tree_map(lambda t: t[start:stop] if isinstance(t, Tensor) else t, examples)


def _item(examples, i: int):
    return tree_map(lambda t: t[i] if isinstance(t, Tensor) else t, examples)


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")


def _caller(model: nn.Module, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor]):
    def call(*args, **kwargs):
        return functional_call(model, ({**buffers, **params}), args, kwargs, strict=False)
    return call


def _mapped(fn_of_params, params, examples, chunk, vectorised: bool, randomness) -> dict[str, Tensor]:
    """``fn_of_params(params, example)`` (a gradient or a Jacobian) for every example, stacked; see the module doc."""
    n = batch_size_of(examples)
    chunk = n if not chunk else int(chunk)
    if chunk < 1:
        raise ValueError(f"chunk: expected an int >= 1 (examples per vmap call), got {chunk}")
    detached = {k: v.detach() for k, v in params.items()}
    if vectorised:
        mapped = vmap(fn_of_params, in_dims=(None, 0), randomness=randomness)
        parts = [mapped(detached, _slice(examples, s, min(n, s + chunk))) for s in range(0, n, chunk)]
        _last_method[0] = "vmap"
        return {k: torch.cat([p[k] for p in parts]) for k in detached}
    rows = [fn_of_params(detached, _item(examples, i)) for i in range(n)]
    _last_method[0] = "loop"
    return {k: torch.stack([r[k] for r in rows]) for k in detached}


def per_example_grads(model: nn.Module, loss_of: LossOf, examples, *, params: Iterable[str] | None = None,
                      chunk: int | None = 64, method: str = "auto", randomness: str = "different") -> dict[str, Tensor]:
    """:math:`g_i = \\nabla_\\theta \\ell(\\theta; x_i)` for every example: ``{name: [B, *param.shape]}``.

    Args:
        model: any module; it is called in its current train/eval mode, its parameters are not changed
            and no ``.grad`` is written.
        loss_of: ``loss_of(call, example) -> scalar``; ``example`` is one example (the pytree without its
            leading dimension), ``call`` runs the model (add the batch dimension yourself: ``call(x[None])``).
        examples: a tensor or pytree of tensors sharing a leading example dimension ``B``.
        params: names of the parameters to differentiate (default: every parameter that requires grad).
        chunk: examples per vmap call (memory: ``chunk`` x the parameters' size); None: all at once.
        method: ``"auto"`` (vmap, falling back to the loop), ``"vmap"``, ``"loop"``.
        randomness: vmap's randomness mode for dropout and other random ops (``"different"``, ``"same"``,
            ``"error"``).
    """
    chosen = trainable_parameters(model, params)
    buffers = dict(model.named_buffers())
    frozen = {k: v.detach() for k, v in model.named_parameters() if k not in chosen}

    def loss(p, example):
        return loss_of(_caller(model, {**frozen, **p}, buffers), example)

    def one(p, example):
        return grad(loss)(p, example)

    def looped(p, example):
        q = {k: v.detach().requires_grad_(True) for k, v in p.items()}
        value = loss(q, example)
        if value.dim() != 0:
            raise ValueError(f"loss_of must return a scalar per example, got shape {tuple(value.shape)}")
        gs = torch.autograd.grad(value, list(q.values()), allow_unused=True)
        return {k: (torch.zeros_like(v) if g is None else g) for (k, v), g in zip(q.items(), gs)}

    return _run(one, looped, chosen, examples, chunk, method, randomness)


def per_example_jacobians(model: nn.Module, output_of: LossOf, examples, *, params: Iterable[str] | None = None,
                          chunk: int | None = 16, method: str = "auto",
                          randomness: str = "different") -> dict[str, Tensor]:
    """:math:`J_i = \\partial f(\\theta; x_i)/\\partial\\theta` for every example: ``{name: [B, O, *param.shape]}``.

    ``output_of(call, example)`` returns the example's outputs as a 1-D tensor ``[O]`` (e.g. the logits:
    ``call(x[None])[0]``); otherwise as :func:`per_example_grads`."""
    chosen = trainable_parameters(model, params)
    buffers = dict(model.named_buffers())
    frozen = {k: v.detach() for k, v in model.named_parameters() if k not in chosen}

    def out(p, example):
        value = output_of(_caller(model, {**frozen, **p}, buffers), example)
        if value.dim() != 1:
            raise ValueError(f"output_of must return a 1-D tensor [outputs] per example, got shape {tuple(value.shape)}")
        return value

    def one(p, example):
        return jacrev(out)(p, example)

    def looped(p, example):
        q = {k: v.detach().requires_grad_(True) for k, v in p.items()}
        value = out(q, example)
        rows = []
        for o in range(value.shape[0]):
            gs = torch.autograd.grad(value[o], list(q.values()), retain_graph=o + 1 < value.shape[0], allow_unused=True)
            rows.append([torch.zeros_like(v) if g is None else g for v, g in zip(q.values(), gs)])
        return {k: torch.stack([r[j] for r in rows]) for j, k in enumerate(q)}

    return _run(one, looped, chosen, examples, chunk, method, randomness)


def _run(one, looped, chosen, examples, chunk, method, randomness) -> dict[str, Tensor]:
    _check_method(method)
    if method == "loop":
        return _mapped(looped, chosen, examples, chunk, False, randomness)
    try:
        return _mapped(one, chosen, examples, chunk, True, randomness)
    except (RuntimeError, NotImplementedError) as error:  # what vmap raises for a model it cannot map
        if method == "vmap":
            raise RuntimeError(f"torch.func.vmap cannot map this model example by example ({error}); use "
                               "method='loop'") from error
        return _mapped(looped, chosen, examples, chunk, False, randomness)


def flatten_per_example(grads: Mapping[str, Tensor], names: Iterable[str] | None = None) -> Tensor:
    """Concatenate per-example gradients ``{name: [B, ...]}`` into ``[B, P]`` (in ``names`` order)."""
    keys = list(grads) if names is None else list(names)
    if not keys:
        raise ValueError("no gradients to flatten")
    b = next(iter(grads.values())).shape[0]
    return torch.cat([grads[k].reshape(b, -1) for k in keys], dim=1)


def flatten_jacobians(jacobians: Mapping[str, Tensor], names: Iterable[str] | None = None) -> Tensor:
    """Concatenate per-example Jacobians ``{name: [B, O, ...]}`` into ``[B, O, P]``."""
    keys = list(jacobians) if names is None else list(names)
    if not keys:
        raise ValueError("no Jacobians to flatten")
    first = jacobians[keys[0]]
    b, o = first.shape[:2]
    return torch.cat([jacobians[k].reshape(b, o, -1) for k in keys], dim=2)
