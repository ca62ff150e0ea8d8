r"""K-FAC and EKFAC preconditioning (the ``optimizer=kfac`` / ``optimizer=ekfac`` training options).

George, Laurent, Bouthillier, Ballas & Vincent 2018, "Fast Approximate Natural Gradient Descent in a
Kronecker-factored Eigenbasis"; K-FAC: Martens & Grosse 2015.

For an ``nn.Linear`` with input rows :math:`a` (a homogeneous 1 appended when it has a bias, so the bias is the
last column of :math:`\tilde W = [W \mid b]`) and pre-activation gradients :math:`g = \partial\ell/\partial(Wa+b)`
of one example's loss :math:`\ell_i`, the example's gradient is :math:`\nabla_i = g a^\top` and the layer's
Fisher block is :math:`F = \mathbb{E}_i[\operatorname{vec}\nabla_i \operatorname{vec}\nabla_i^\top]`.

- **K-FAC**: :math:`A = \mathbb{E}[a a^\top]`, :math:`G = \mathbb{E}[g g^\top]`, :math:`F \approx G \otimes A`
  (``vec`` is the row-major flattening of PyTorch's ``[out, in]`` weight; with the paper's column-major
  ``vec`` the same block reads :math:`A \otimes G`). With :math:`A = U_A S_A U_A^\top`,
  :math:`G = U_G S_G U_G^\top` (``torch.linalg.eigh``) the Kronecker-factored eigenbasis is
  :math:`U = U_G \otimes U_A` and K-FAC's eigenvalues are :math:`S_G \otimes S_A`.
- **EKFAC** keeps :math:`U` and re-estimates the diagonal in it from per-example gradients,
  :math:`s^*_k = \mathbb{E}_i[(U^\top \operatorname{vec}\nabla_i)_k^2] = \operatorname{diag}(U^\top F U)_k`,
  the best diagonal for :math:`U` in Frobenius norm, so :math:`\lVert F - U\,\mathrm{diag}(s^*)U^\top\rVert_F \le
  \lVert F - U\,\mathrm{diag}(S_G\otimes S_A)U^\top\rVert_F`. In matrix form the example's coordinates are
  :math:`U_G^\top \nabla_i U_A = (U_G^\top g)(U_A^\top a)^\top`, squared element-wise and averaged.
- **Update** of the layer (both): with :math:`\nabla` the mini-batch gradient and :math:`s` either
  :math:`s^*` or :math:`S_G \otimes S_A`,

  .. math:: \Delta\tilde W = -\eta\, U_G \Big[\frac{U_G^\top \nabla U_A}{s + \varepsilon}\Big] U_A^\top

  (:math:`\varepsilon` = ``ekfac_damping``), i.e. :math:`-\eta\,U\,((U^\top\operatorname{vec}\nabla)/(s+\varepsilon))`.
  K-FAC here is therefore "K-FAC in its eigenbasis" with damping added to the product eigenvalues, the
  baseline the paper compares EKFAC with (not Martens & Grosse's factored Tikhonov damping).

Bookkeeping:

- :math:`A, G` are exponential moving averages (decay 0.95) over steps of each mini-batch's estimate; the
  eigenbasis is recomputed every ``ekfac_refresh`` steps (and at the first step), and EKFAC's :math:`s^*` is
  re-estimated every step (an exponential moving average restarted at each refresh, since it lives in the
  basis).
- **Batch-size scaling.** The training losses are means over the batch's examples, :math:`L = \frac1N\sum_i \ell_i`,
  so the gradient reaching a layer's output is :math:`\frac1N\,\partial\ell_i/\partial\text{out}`: the hooks
  multiply it by :math:`N` to get per-example :math:`g` (without it, :math:`G` and :math:`s^*` would be off by
  :math:`N^2`). The examples of a call are its input's leading dimension; ``A`` averages over every row
  (examples x positions), ``G`` sums over the rows and divides by the examples (see below).
- **Weights shared across time** (a Linear applied at every step of a recurrent model, or to ``[B, T, in]``):
  the positions are treated as independent samples for the factors — :math:`F \approx T\,(G_\text{row} \otimes
  A_\text{row})`, i.e. :math:`A` is the mean over rows and :math:`G = \frac1N\sum_\text{rows} g g^\top` — while
  EKFAC's :math:`s^*` uses the exact per-example gradient :math:`\nabla_i = \sum_t g_{it} a_{it}^\top` (its calls
  of one step that share the leading size are summed per example). Calls with different leading sizes (the
  graph family's one call per graph) count each row of each call as an example: an approximation for
  losses that are not a mean over those rows.
- **Fisher** (``ekfac_fisher``): ``empirical`` (default) reads :math:`g` from the training loss itself (the true
  labels): it works for every family and every engine-owned loss and costs nothing extra. ``sampled`` (the
  paper's choice, the true Fisher) draws labels from the model's own predictive distribution on the same batch
  and backpropagates that loss a second time for the statistics only; it needs an objective that can sample
  (``fisher_sample_loss``: the image family's class task and the language-model family, without an
  engine-owned loss).
- Only ``nn.Linear`` layers are preconditioned. Every other trainable parameter (convolutions, embeddings,
  recurrent weights that are not ``nn.Linear``, norms, and a Linear with more than ``MAX_FACTOR`` = 4096 inputs or
  outputs, whose factor alone would be a 4096² matrix to eigendecompose: a 10,000-word decoder) keeps its plain gradient and gets the same SGD step
  (``lr``, ``momentum``, ``weight_decay``); the checkpoint metrics list which parameters are which.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

DECAY = 0.95  # exponential moving average of A, G and s* over steps
MODES = ("kfac", "ekfac")
FISHERS = ("empirical", "sampled")
MAX_FACTOR = 4096  # a Linear whose A or G would be larger (a 10,000-word decoder) is left to plain SGD
_CHUNK_ELEMENTS = 1 << 22  # per-example coordinate block [examples, out, in+1] computed this many at a time


def _ema(old: Tensor | None, new: Tensor) -> Tensor:
    return new if old is None else DECAY * old + (1 - DECAY) * new


class _Layer:
    """The statistics of one preconditioned ``nn.Linear``."""

    def __init__(self, name: str, module: nn.Linear):
        self.name, self.module = name, module
        self.bias = module.bias is not None and module.bias.requires_grad
        self.records: list[dict] = []
        self.A = self.G = self.UA = self.SA = self.UG = self.SG = self.s = None

    def rows(self) -> list[tuple[Tensor, Tensor]]:
        """``(a [n, rows, in(+1)], δ [n, rows, out])`` of every call with a gradient, examples first."""
        out = []
        for r in self.records:
            a, g = r["a"], r["g"]
            if g is None:
                continue
            if a.dim() == 1:
                a, g = a[None], g[None]
            n = a.shape[0]
            a = a.reshape(n, -1, a.shape[-1])
            g = g.reshape(n, -1, g.shape[-1])
            if self.bias:
                a = torch.cat([a, a.new_ones(*a.shape[:-1], 1)], dim=-1)
            out.append((a, g))
        return out


class KroneckerPreconditioner:
    """Hooks on every trainable ``nn.Linear`` of ``model``; :meth:`step` turns their ``.grad`` into the K-FAC or
    EKFAC direction (module docstring). Call :meth:`remove` when done."""

    def __init__(self, model: nn.Module, *, mode: str = "ekfac", damping: float = 1e-3, refresh: int = 20,
                 fisher: str = "empirical", max_factor: int = MAX_FACTOR):
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
        if fisher not in FISHERS:
            raise ValueError(f"fisher: expected one of {', '.join(FISHERS)}, got {fisher!r}")
        self.mode, self.damping, self.refresh, self.fisher = mode, float(damping), int(refresh), fisher
        self.layers = [_Layer(name, m) for name, m in model.named_modules()
                       if isinstance(m, nn.Linear) and m.weight.requires_grad
                       and max(m.in_features + 1, m.out_features) <= max_factor]
        covered = {id(layer.module.weight) for layer in self.layers} | {
            id(layer.module.bias) for layer in self.layers if layer.bias}
        self.preconditioned = [n for n, p in model.named_parameters() if id(p) in covered]
        self.plain = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in covered]
        self.collecting = fisher == "empirical"
        self.steps = 0
        self.refreshes = 0
        self._handles = [layer.module.register_forward_hook(self._hook(layer)) for layer in self.layers]

    def _hook(self, layer: _Layer):
        def hook(module, inputs, output):
            if not (self.collecting and module.training and torch.is_grad_enabled() and output.requires_grad):
                return
            record = {"a": inputs[0].detach(), "g": None}
            layer.records.append(record)

            def keep(grad):
                record["g"] = grad.detach() if record["g"] is None else record["g"] + grad.detach()

            output.register_hook(keep)
        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        for layer in self.layers:
            layer.records = []

    def collect_sampled(self, sample_loss: Callable[[], Tensor]) -> None:
        """``fisher="sampled"``: run ``sample_loss()`` (the loss of labels drawn from the model on the batch just
        trained) and backpropagate it for the statistics only (no ``.grad`` is written)."""
        self.collecting = True
        try:
            loss = sample_loss()
            weights = [layer.module.weight for layer in self.layers]
            torch.autograd.grad(loss, weights, allow_unused=True)
        finally:
            self.collecting = False

    # ------------------------------------------------------------------------------------------ statistics

    def _update_factors(self, layer: _Layer, rows) -> int:
        """EMA of A and G from this step's rows; returns the number of examples."""
        n_examples = self._examples(rows)
        a_all = torch.cat([a.reshape(-1, a.shape[-1]) for a, _ in rows])
        g_all = torch.cat([g.reshape(-1, g.shape[-1]) for _, g in rows]) * n_examples  # undo the 1/N of the mean
        layer.A = _ema(layer.A, a_all.T @ a_all / a_all.shape[0])
        layer.G = _ema(layer.G, g_all.T @ g_all / n_examples)
        return n_examples

    @staticmethod
    def _examples(rows) -> int:
        sizes = {a.shape[0] for a, _ in rows}
        return sizes.pop() if len(sizes) == 1 else sum(a.shape[0] for a, _ in rows)

    def _refresh(self, layer: _Layer) -> None:
        layer.SA, layer.UA = torch.linalg.eigh(layer.A)
        layer.SG, layer.UG = torch.linalg.eigh(layer.G)
        layer.SA, layer.SG = layer.SA.clamp(min=0), layer.SG.clamp(min=0)  # PSD up to rounding
        layer.s = None

    def _diagonal(self, layer: _Layer, rows, n_examples: int) -> Tensor:
        """:math:`\\frac1N\\sum_i (U_G^\\top \\nabla_i U_A)^2`: this step's estimate of EKFAC's s* ``[out, in+1]``."""
        projected = [(a @ layer.UA, (g * n_examples) @ layer.UG) for a, g in rows]
        out, inp = layer.UG.shape[0], layer.UA.shape[0]
        total = torch.zeros(out, inp, dtype=layer.UA.dtype, device=layer.UA.device)
        if len(projected) == 1 and projected[0][0].shape[1] == 1:  # one row per example: Σ_i (g'_i)²(a'_i)²ᵀ
            a, g = projected[0]
            total = (g[:, 0] ** 2).T @ (a[:, 0] ** 2)
        elif len({a.shape[0] for a, _ in rows}) == 1:  # one example axis shared by every call: sum calls per example
            n = rows[0][0].shape[0]
            chunk = max(1, _CHUNK_ELEMENTS // (out * inp))
            for start in range(0, n, chunk):
                stop = min(n, start + chunk)
                m = sum(torch.einsum("bto,bti->boi", g[start:stop], a[start:stop]) for a, g in projected)
                total += (m * m).sum(0)
        else:
            for a, g in projected:
                for start in range(0, a.shape[0], max(1, _CHUNK_ELEMENTS // (out * inp))):
                    stop = start + max(1, _CHUNK_ELEMENTS // (out * inp))
                    m = torch.einsum("bto,bti->boi", g[start:stop], a[start:stop])
                    total += (m * m).sum(0)
        return total / n_examples

    def eigenvalues(self, layer: _Layer) -> Tensor:
        """The diagonal the update divides by: EKFAC's s*, or K-FAC's ``S_G ⊗ S_A`` as ``[out, in+1]``."""
        if self.mode == "ekfac":
            return layer.s
        return torch.outer(layer.SG, layer.SA)

    def update(self) -> None:
        """Fold this step's hook records into the statistics (and refresh the eigenbasis when due)."""
        refresh = self.steps % self.refresh == 0
        for layer in self.layers:
            rows = layer.rows()
            layer.records = []
            if not rows:
                continue
            n_examples = self._update_factors(layer, rows)
            if refresh or layer.UA is None:
                self._refresh(layer)
            if self.mode == "ekfac":
                layer.s = _ema(layer.s, self._diagonal(layer, rows, n_examples))
        if refresh:
            self.refreshes += 1
        self.steps += 1

    # ------------------------------------------------------------------------------------------ the step

    def precondition(self) -> None:
        """Replace every preconditioned layer's ``.grad`` by the K-FAC / EKFAC direction (before the SGD step)."""
        for layer in self.layers:
            w, b = layer.module.weight, layer.module.bias
            if layer.UA is None or w.grad is None:
                continue
            grad = torch.cat([w.grad, b.grad[:, None]], dim=1) if layer.bias and b.grad is not None else w.grad
            if grad.shape[1] != layer.UA.shape[0]:  # a bias without gradient this step: precondition W alone
                continue
            coords = layer.UG.T @ grad @ layer.UA
            direction = layer.UG @ (coords / (self.eigenvalues(layer) + self.damping)) @ layer.UA.T
            w.grad = direction[:, : w.shape[1]].contiguous()
            if grad.shape[1] > w.shape[1]:
                b.grad = direction[:, -1].contiguous()

    def step(self) -> None:
        """:meth:`update` then :meth:`precondition`: call after ``loss.backward()``, before ``optimizer.step()``."""
        self.update()
        self.precondition()

    def metrics(self) -> dict:
        return {"preconditioner": {
            "mode": self.mode, "damping": self.damping, "refresh": self.refresh, "fisher": self.fisher,
            "eigenbasis_refreshes": self.refreshes,
            "preconditioned": list(self.preconditioned), "plain_sgd": list(self.plain)}}


def sampled_cross_entropy(logits: Tensor) -> Tensor:
    """Mean cross-entropy of ``logits [..., K]`` against labels drawn from ``softmax(logits)`` (the true Fisher's
    labels): what an objective's ``fisher_sample_loss`` returns."""
    flat = logits.reshape(-1, logits.shape[-1])
    with torch.no_grad():
        labels = torch.multinomial(torch.softmax(flat.float(), dim=-1), 1).reshape(-1)
    return nn.functional.cross_entropy(flat, labels)
