r"""The empirical tangent kernel of any model on a set of items, its alignment with labels, its effective
rank and its spectrum (Baratin et al., "Implicit Regularization via Neural Feature Alignment", AISTATS
2021; Bietti & Mairal, "On the Inductive Bias of Neural Tangent Kernels", NeurIPS 2019).

For parameters :math:`\theta` and an item's outputs :math:`f(x) \in \mathbb R^O` (what an output is per
family: the recording module :mod:`lstmviz.analysis.ntk_recording` says), the per-example Jacobian
:math:`J_i = \partial f(x_i)/\partial\theta \in \mathbb R^{O\times P}` splits by layer (the module
owning each parameter, :func:`lstmviz.engines.func_grads.group_by_layer`), and

.. math::
    K = \sum_l K_l, \qquad
    K_l[i, j] = \sum_{o=1}^{O} \langle J_{i,o}^{(l)}, J_{j,o}^{(l)} \rangle
    \quad\text{(the trace kernel, default: summed over outputs)},

    K_l^{(c)}[i, j] = \langle J_{i,c}^{(l)}, J_{j,c}^{(l)} \rangle
    \quad\text{(``kind="per-class"``: one n×n kernel per output; they sum to the trace kernel)}.

The Jacobians come from the shared service (:func:`lstmviz.engines.func_grads.per_example_jacobians`,
``vmap`` over ``jacrev``), the model in eval mode (batch statistics would make ``f`` depend on the batch).
Memory is bounded by ``max_bytes`` of Jacobian: layers are taken in order and packed into one Jacobian
pass (one forward/backward over the items) while their :math:`n\times O\times P_l` Jacobians fit in
``max_bytes`` together — each layer's kernel is accumulated and its Jacobian discarded; a layer whose
Jacobian alone exceeds ``max_bytes`` is a pass of its own, computed for two item blocks at a time
(``K_l[a, b] = J_a J_bᵀ`` over the block pairs ``a ≤ b``, re-running the blocks ``b > a``). So at most
``max_bytes`` of Jacobian (and never more than one layer's when a layer does not fit) is held.

**A Linear layer applied once per item** (input :math:`a_i \in \mathbb R^{d_{in}}`, bias included) has
:math:`J_{i,o}^{(W)} = g_{i,o} a_i^\top` and :math:`J_{i,o}^{(b)} = g_{i,o}`, with
:math:`g_{i,o} = \partial f_o/\partial z_i` the gradient at its output. So exactly

.. math::
    K_l[i, j] = (a_i^\top a_j + 1) \sum_o g_{i,o}^\top g_{j,o},

computed from :math:`G = J^{(b)}` (the service's Jacobian of the bias alone) and the inputs ``a`` (a forward
hook), in :math:`O(n^2 (d_{in} + O d_{out}))` instead of :math:`O(n^2 O d_{in} d_{out})`
(``factored=True``, the default; tested equal to the generic path). A Linear that sees several rows per
item (a sequence), has no bias, or runs more than once per item uses the generic path.

Measures (all on float64 ``n×n`` matrices):

- centred kernel alignment (Cortes et al.; used by Baratin et al.), with :math:`H = I - \frac1n 11^\top`,
  :math:`K_c = HKH` and one-hot labels :math:`Y \in \{0,1\}^{n\times C}`:

  .. math:: A(K, YY^\top) = \frac{\langle K_c, (YY^\top)_c\rangle_F}{\|K_c\|_F\,\|(YY^\top)_c\|_F}
            \in [-1, 1]\ \text{(invariant to rescaling K)};

- effective rank, ``"entropy"`` (default; Roy & Vetterli 2007): with :math:`p_k = \lambda_k/\sum_j\lambda_j`
  over the eigenvalues of the kernel (negative round-off clipped to 0), :math:`\exp(-\sum_k p_k\log p_k)`, between
  1 (one direction) and n (a flat spectrum); ``"trace"``: :math:`\operatorname{tr}K/\lambda_{max}`. Which
  one Baratin et al. plot was not checked against the paper's text (only its abstract was available here);
  both fall when the spectrum concentrates. :func:`measures` takes it of the *centred* kernel
  :math:`K_c`, like the alignment: every bias adds the same constant to all of K (a rank-one ``11ᵀ`` mode
  that says nothing about which item is which) and would otherwise hold it near 1;

- the spectrum :math:`K = \sum_k \lambda_k u_k u_k^\top` (descending) and the label energy per
  eigendirection, per class: :math:`E_{k,c} = (u_k^\top y_c)^2/\|y_c\|^2` (``y_c`` the class's
  indicator column, centred first with ``center_labels=True``); :math:`\sum_k E_{k,c} = 1`. Labels whose
  energy sits on the top eigendirections are what gradient descent on this kernel learns first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
from torch import Tensor, nn

from lstmviz.engines import func_grads
from lstmviz.tasks import ensure_task

KINDS = ("trace", "per-class")
RANK_DEFINITIONS = ("entropy", "trace")
DEFAULT_MAX_BYTES = 256 * 2 ** 20
ROOT_LAYER = "(root)"


@dataclass
class TangentKernel:
    """Per-layer tangent kernels of one model on ``n`` items.

    ``blocks[l]`` is layer ``layers[l]``'s kernel: ``[n, n]`` (trace kernel) or ``[O, n, n]``
    (``kind == "per-class"``), float64. ``params[l]`` is the layer's parameter count; ``factored[l]``
    whether the exact Linear shortcut computed it."""

    layers: list[str]
    blocks: np.ndarray
    kind: str = "trace"
    params: list[int] = field(default_factory=list)
    factored: list[bool] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.blocks.shape[-1])

    def layer(self, name: str) -> np.ndarray:
        """The trace kernel of one layer."""
        block = self.blocks[self.layers.index(name)]
        return block.sum(0) if self.kind == "per-class" else block

    def layer_kernels(self) -> np.ndarray:
        """``[L, n, n]`` trace kernels (per-class kernels summed over outputs)."""
        return self.blocks.sum(1) if self.kind == "per-class" else self.blocks

    def total(self) -> np.ndarray:
        """``K = Σ_l K_l`` (the trace kernel)."""
        return self.layer_kernels().sum(0)


OutputOf = Callable[[Callable, object], Tensor]


def _layer_name(path: str) -> str:
    return path or ROOT_LAYER


def _names_by_layer(model: nn.Module, params) -> dict[str, list[str]]:
    chosen = func_grads.trainable_parameters(model, params)
    if not chosen:
        raise ValueError("the model has no parameter that requires a gradient: its tangent kernel is zero")
    return func_grads.group_by_layer(chosen)


def tangent_kernel(model: nn.Module, output_of: OutputOf, examples, *, params: Iterable[str] | None = None,
                   kind: str = "trace", max_bytes: int = DEFAULT_MAX_BYTES, chunk: int | None = 32,
                   method: str = "auto", factored: bool = True, task=None) -> TangentKernel:
    """The per-layer empirical tangent kernel (module docstring) of ``model`` on ``examples``.

    ``output_of(call, example) -> [O]`` as for :func:`lstmviz.engines.func_grads.per_example_jacobians`
    (one example without its batch dimension; ``call`` runs the model). ``params``: the parameters
    (default: every trainable one). ``kind``: ``"trace"`` or ``"per-class"``. ``max_bytes``: the most
    Jacobian memory held at once. The model is put in eval mode for the computation and restored.
    Progress and cancel through ``task``.
    """
    task = ensure_task(task)
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    if int(max_bytes) < 1:
        raise ValueError(f"max_bytes: expected a positive number of bytes, got {max_bytes}")
    groups = _names_by_layer(model, params)
    n = func_grads.batch_size_of(examples)
    if n < 1:
        raise ValueError("examples: no item to compute a kernel on")
    was_training = model.training
    model.eval()
    try:
        inputs = _linear_inputs(model, output_of, examples, groups) if factored else {}
        named = dict(model.named_parameters())
        layer_names = list(groups)
        sizes = [int(sum(named[p].numel() for p in groups[layer])) for layer in layer_names]
        blocks = _factored_blocks(model, output_of, examples, groups, inputs, kind, max_bytes, method) if inputs else {}
        shortcut = [layer in blocks for layer in layer_names]
        rest = [layer for layer in layer_names if layer not in blocks]
        passes = _passes(model, output_of, examples, groups, rest, max_bytes, chunk, method)
        total = len(passes)
        for pi, members in enumerate(passes):
            task.progress(pi, total, "tangent kernel: " + ", ".join(_layer_name(m) for m in members))
            if len(members) == 1:
                blocks[members[0]] = _generic_block(model, output_of, examples, groups[members[0]], kind, max_bytes,
                                                    chunk, method, task)
            else:
                blocks.update(_joint_blocks(model, output_of, examples, groups, members, kind, chunk, method))
        blocks = [blocks[layer] for layer in layer_names]
        task.progress(total, total, "tangent kernel done")
    finally:
        model.train(was_training)
    return TangentKernel([_layer_name(layer) for layer in groups], np.stack(blocks), kind, sizes, shortcut)


def _passes(model, output_of, examples, groups, layers, max_bytes, chunk, method) -> list[list[str]]:
    """Layers packed (in order) into Jacobian passes whose Jacobians on all items fit ``max_bytes``
    together; a layer that alone does not fit is a pass of its own (computed in item blocks)."""
    if not layers:
        return []
    n = func_grads.batch_size_of(examples)
    probe = func_grads.per_example_jacobians(model, output_of, func_grads._slice(examples, 0, 1),
                                             params=[p for layer in layers for p in groups[layer]], chunk=chunk,
                                             method=method)
    cost = {layer: n * sum(probe[p][0].numel() * probe[p].element_size() for p in groups[layer]) for layer in layers}
    passes: list[list[str]] = []
    used = 0
    for layer in layers:
        if passes and used + cost[layer] <= max_bytes and cost[passes[-1][0]] <= max_bytes:
            passes[-1].append(layer)
            used += cost[layer]
        else:
            passes.append([layer])
            used = cost[layer]
    return passes


def _joint_blocks(model, output_of, examples, groups, members, kind, chunk, method) -> dict[str, np.ndarray]:
    """The kernels of several layers from one Jacobian pass over all items (they fit together)."""
    names = [p for layer in members for p in groups[layer]]
    jac = func_grads.per_example_jacobians(model, output_of, examples, params=names, chunk=chunk, method=method)
    out = {}
    for layer in members:
        j = func_grads.flatten_jacobians(jac, groups[layer])
        out[layer] = _contract(j, j, kind).numpy()
        for p in groups[layer]:
            del jac[p]
    return out


def _contract(ja: Tensor, jb: Tensor, kind: str) -> Tensor:
    """``Σ_{o,p} J_a[i,o,p] J_b[j,o,p]`` (trace) or per output ``[O, a, b]``, in float64."""
    if kind == "trace":
        return (ja.reshape(ja.shape[0], -1) @ jb.reshape(jb.shape[0], -1).T).double()
    return torch.bmm(ja.transpose(0, 1), jb.transpose(0, 1).transpose(1, 2)).double()


def _jacobian(model, output_of, examples, names, start, stop, chunk, method) -> Tensor:
    part = func_grads._slice(examples, start, stop)
    jac = func_grads.per_example_jacobians(model, output_of, part, params=names, chunk=chunk, method=method)
    return func_grads.flatten_jacobians(jac, names)


def _generic_block(model, output_of, examples, names, kind, max_bytes, chunk, method, task) -> np.ndarray:
    n = func_grads.batch_size_of(examples)
    first = _jacobian(model, output_of, examples, names, 0, 1, chunk, method)
    per_item = first[0].numel() * first.element_size()
    outputs = first.shape[1]
    shape = (n, n) if kind == "trace" else (outputs, n, n)
    out = torch.zeros(shape, dtype=torch.float64)
    if per_item * n <= max_bytes:  # the whole layer fits: one pass
        j = _jacobian(model, output_of, examples, names, 0, n, chunk, method)
        out[...] = _contract(j, j, kind)
        return out.numpy()
    block = max(1, int(max_bytes // (2 * per_item)))  # two item blocks held at once
    starts = list(range(0, n, block))
    for ai, a0 in enumerate(starts):
        task.check()
        a1 = min(n, a0 + block)
        ja = _jacobian(model, output_of, examples, names, a0, a1, chunk, method)
        out[..., a0:a1, a0:a1] = _contract(ja, ja, kind)
        for b0 in starts[ai + 1:]:
            task.check()
            b1 = min(n, b0 + block)
            jb = _jacobian(model, output_of, examples, names, b0, b1, chunk, method)
            k = _contract(ja, jb, kind)
            out[..., a0:a1, b0:b1] = k
            out[..., b0:b1, a0:a1] = k.transpose(-1, -2)
            del jb
        del ja
    return out.numpy()


def _linear_inputs(model, output_of, examples, groups) -> dict[str, Tensor]:
    """Per-item inputs ``[n, d_in]`` of the Linear layers (with a trainable bias and weight) that see one
    row per item exactly once; the other layers are left out (generic path)."""
    modules = dict(model.named_modules())
    linear = {}
    for layer, names in groups.items():
        module = modules.get(layer)
        if (isinstance(module, nn.Linear) and module.bias is not None
                and set(names) == {f"{layer}.weight" if layer else "weight", f"{layer}.bias" if layer else "bias"}):
            linear[layer] = module
    if not linear:
        return {}

    def captured(example):
        seen: dict[str, list] = {k: [] for k in linear}
        handles = [m.register_forward_hook(lambda mod, inp, out, k=k: seen[k].append(inp[0]))
                   for k, m in linear.items()]
        try:
            output_of(lambda *a, **kw: model(*a, **kw), example)
        finally:
            for h in handles:
                h.remove()
        return seen

    def usable(rows, module) -> bool:
        return len(rows) == 1 and tuple(rows[0].shape) == (1, module.in_features)

    keep = {}
    try:
        with torch.no_grad():
            probe = captured(func_grads._item(examples, 0))
        ok = [k for k in linear if usable(probe[k], linear[k])]
        if not ok:
            return {}

        def stacked(example):
            seen = captured(example)
            return tuple(seen[k][0][0] for k in ok)

        with torch.no_grad():
            rows = torch.func.vmap(stacked, randomness="different")(examples)
        keep = {k: r.detach() for k, r in zip(ok, rows)}
    except (RuntimeError, NotImplementedError):  # vmap cannot map this model: generic path for every layer
        return {}
    return keep


def _factored_blocks(model, output_of, examples, groups, inputs, kind, max_bytes, method) -> dict[str, np.ndarray]:
    """The exact Linear shortcut (module docstring) for every layer in ``inputs``, from one Jacobian pass
    over their biases; layers whose bias Jacobians do not fit ``max_bytes`` together are left to the
    generic path."""
    n = func_grads.batch_size_of(examples)
    biases = {layer: next(p for p in groups[layer] if p.endswith("bias")) for layer in inputs}
    first = func_grads.per_example_jacobians(model, output_of, func_grads._slice(examples, 0, 1),
                                             params=list(biases.values()), chunk=1, method=method)
    chosen, used = [], 0
    for layer, name in biases.items():
        cost = n * first[name][0].numel() * first[name].element_size()
        if used + cost <= max_bytes:
            chosen.append(layer)
            used += cost
    if not chosen:
        return {}
    jac = func_grads.per_example_jacobians(model, output_of, examples, params=[biases[k] for k in chosen],
                                           chunk=None, method=method)
    out = {}
    for layer in chosen:
        g = jac.pop(biases[layer])  # [n, O, d_out]: G = ∂f/∂z at the layer's output
        a64 = inputs[layer].double()
        out[layer] = (_contract(g, g, kind) * (a64 @ a64.T + 1.0)).numpy()
    return out


# ------------------------------------------------------------------------------------------ measures


def one_hot(labels, n_classes: int | None = None) -> np.ndarray:
    """``[n, C]`` float64 indicator matrix of integer ``labels`` (0 .. C−1)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"labels: expected a 1-D array of integer class ids, got {labels.dtype} {labels.shape}")
    if labels.size and labels.min() < 0:
        raise ValueError("labels: class ids must be >= 0 (leave unlabelled items out)")
    c = int(labels.max()) + 1 if n_classes is None and labels.size else int(n_classes or 0)
    if labels.size and labels.max() >= c:
        raise ValueError(f"labels: class id {int(labels.max())} is not below n_classes = {c}")
    out = np.zeros((labels.size, c))
    out[np.arange(labels.size), labels] = 1.0
    return out


def _center(k: np.ndarray) -> np.ndarray:
    k = np.asarray(k, dtype=np.float64)
    return k - k.mean(0, keepdims=True) - k.mean(1, keepdims=True) + k.mean()


def centered_alignment(k, labels_or_target) -> float:
    """:math:`A(K, YY^\\top)` (module docstring). ``labels_or_target``: integer labels ``[n]``, a one-hot
    ``[n, C]`` Y, or an ``[n, n]`` target kernel. NaN when either centred matrix is zero."""
    k = np.asarray(k, dtype=np.float64)
    target = np.asarray(labels_or_target)
    if target.ndim == 1:
        y = one_hot(target)
        target = y @ y.T
    elif target.shape != k.shape:
        y = target.astype(np.float64)
        target = y @ y.T
    if k.ndim != 2 or k.shape[0] != k.shape[1] or target.shape != k.shape:
        raise ValueError(f"expected an n×n kernel and n labels, got {k.shape} and {np.asarray(labels_or_target).shape}")
    kc, tc = _center(k), _center(target)
    denom = np.linalg.norm(kc) * np.linalg.norm(tc)
    return float(np.sum(kc * tc) / denom) if denom > 0 else float("nan")


def eigen(k) -> tuple[np.ndarray, np.ndarray]:
    """``(λ descending, U)`` of a symmetric kernel (symmetrised first)."""
    k = np.asarray(k, dtype=np.float64)
    values, vectors = np.linalg.eigh(0.5 * (k + k.T))
    order = np.argsort(values)[::-1]
    return values[order], vectors[:, order]


def effective_rank(k_or_eigenvalues, definition: str = "entropy") -> float:
    """Effective rank (module docstring) of a kernel or of its eigenvalues."""
    if definition not in RANK_DEFINITIONS:
        raise ValueError(f"definition: expected one of {', '.join(RANK_DEFINITIONS)}, got {definition!r}")
    values = np.asarray(k_or_eigenvalues, dtype=np.float64)
    if values.ndim == 2:
        values = eigen(values)[0]
    values = np.clip(values, 0.0, None)
    s = values.sum()
    if s <= 0:
        return float("nan")
    if definition == "trace":
        return float(s / values.max())
    p = values[values > 0] / s
    return float(np.exp(-np.sum(p * np.log(p))))


@dataclass
class SpectralBias:
    """The eigen-spectrum of a kernel with the label energy per eigendirection (module docstring)."""

    eigenvalues: np.ndarray  # [n], descending
    energy: np.ndarray  # [n, C]: (u_kᵀ y_c)² / ‖y_c‖²
    labels: list[str]
    counts: np.ndarray  # [C] items per class
    centered: bool = False
    layer: str = "all layers"

    def cumulative(self) -> np.ndarray:
        """``[n, C]``: label energy on the top ``k + 1`` eigendirections."""
        return np.cumsum(self.energy, axis=0)

    def directions_for(self, fraction: float = 0.9) -> np.ndarray:
        """Per class, how many top eigendirections hold ``fraction`` of its label energy."""
        cum = self.cumulative()
        return np.asarray([int(np.searchsorted(cum[:, c], fraction - 1e-12) + 1) for c in range(cum.shape[1])])

    def table(self) -> dict[str, list]:
        """One row per eigendirection: rank, eigenvalue, its share of the trace, the energy per class."""
        total = float(np.clip(self.eigenvalues, 0, None).sum()) or 1.0
        cols: dict[str, list] = {"direction": list(range(1, len(self.eigenvalues) + 1)),
                                 "eigenvalue": [float(v) for v in self.eigenvalues],
                                 "share": [float(max(v, 0.0) / total) for v in self.eigenvalues]}
        for c, name in enumerate(self.labels):
            cols[f"energy[{name}]"] = [float(v) for v in self.energy[:, c]]
        cols["energy_mean"] = [float(v) for v in self.energy.mean(1)] if self.energy.size else []
        return cols


def spectral_bias(k, labels, label_names: list[str] | None = None, *, center_labels: bool = False,
                  layer: str = "all layers") -> SpectralBias:
    """The spectrum of ``k`` with the label energy per eigendirection (classes without an item are left out)."""
    values, vectors = eigen(k)
    y = one_hot(labels, None if label_names is None else len(label_names))
    names = list(label_names) if label_names is not None else [str(c) for c in range(y.shape[1])]
    present = y.sum(0) > 0
    y, names = y[:, present], [nm for nm, p in zip(names, present) if p]
    if center_labels:
        y = y - y.mean(0, keepdims=True)
    norms = np.sum(y * y, axis=0)
    proj = vectors.T @ y
    energy = proj ** 2 / np.where(norms > 0, norms, 1.0)
    return SpectralBias(values, energy, names, one_hot(labels, len(present))[:, present].sum(0), center_labels, layer)


@dataclass
class KernelMeasures:
    """Alignment and effective rank (of the centred kernel) per layer and for the whole kernel."""

    layers: list[str]
    alignment: np.ndarray  # [L]
    effective_rank: np.ndarray  # [L]
    total_alignment: float
    total_effective_rank: float


def measures(kernel: TangentKernel, labels, *, rank: str = "entropy", n_classes: int | None = None) -> KernelMeasures:
    """:func:`centered_alignment` and :func:`effective_rank` of every layer's kernel and of ``K``."""
    layers = kernel.layer_kernels()
    y = one_hot(np.asarray(labels), n_classes)
    target = y @ y.T
    al = np.asarray([centered_alignment(k, target) for k in layers])
    er = np.asarray([effective_rank(_center(k), rank) for k in layers])
    total = kernel.total()
    return KernelMeasures(list(kernel.layers), al, er, centered_alignment(total, target),
                          effective_rank(_center(total), rank))


__all__ = ["KINDS", "KernelMeasures", "RANK_DEFINITIONS", "SpectralBias", "TangentKernel", "centered_alignment",
           "effective_rank", "eigen", "measures", "one_hot", "spectral_bias", "tangent_kernel"]
