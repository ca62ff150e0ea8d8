r"""Batch normalisation for recurrent cells: per-time-step (Cooijmans et al.) and sequence-wise (Laurent et al.).

Both normalise features ``z`` [rows, F] with

.. math::
    \mathrm{BN}(z; \gamma, \beta) = \beta + \gamma \odot \frac{z - \mathrm{E}[z]}{\sqrt{\mathrm{Var}[z] + \epsilon}}

where, in training mode, ``E`` and ``Var`` are the (biased) statistics of the rows given (the batch at one
step, or batch x time of a whole call), and in evaluation mode the population statistics kept in buffers.

Population statistics are running averages of the batch statistics (unbiased variance, as in
``nn.BatchNorm1d``) with an effective momentum ``max(momentum, 1 / (n + 1))`` after ``n`` earlier updates
of that set: the first update replaces the initial (0, 1), the next ones average cumulatively until
``1 / momentum`` updates, then the average is exponential. A statistics set that is updated rarely
(the per-step sets of the first steps of a stream, once per epoch) is then the mean of the batches it
saw rather than mostly its initial value.

:class:`StepwiseBatchNorm` keeps ``max_steps`` sets (Cooijmans et al.: "statistics are estimated
separately for every time step"; steps ``>= max_steps`` share the last set); :class:`SequenceBatchNorm`
keeps one set over all steps and rows (Laurent et al.'s sequence-wise normalisation).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def check_norm_settings(engine: str, *, gamma_init, momentum, eps, max_steps=None) -> None:
    """ValueError naming the setting and its allowed values when a normalisation setting is impossible."""
    def number(value) -> bool:
        return not isinstance(value, bool) and isinstance(value, (int, float))

    if not (number(gamma_init) and gamma_init > 0):
        raise ValueError(f"{engine}: expected gamma_init (the initial BN scale) to be a positive number, got {gamma_init!r}")
    if not (number(momentum) and 0 < momentum <= 1):
        raise ValueError(f"{engine}: expected bn_momentum to be a number in (0, 1], got {momentum!r}")
    if not (number(eps) and eps > 0):
        raise ValueError(f"{engine}: expected bn_eps to be a positive number, got {eps!r}")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or not
                                  1 <= max_steps <= 100_000):
        raise ValueError(f"{engine}: expected max_steps (T_max, the time steps with their own BN statistics) "
                         f"to be an int in [1, 100000], got {max_steps!r}")


class _BatchNormBase(nn.Module):
    """Scale ``weight`` (gamma), optional shift ``bias`` (beta; None: fixed at 0), ``sets`` statistics sets."""

    def __init__(self, features: int, sets: int, *, shift: bool, gamma_init: float, momentum: float, eps: float):
        super().__init__()
        self.features = features
        self.gamma_init = float(gamma_init)
        self.momentum = float(momentum)
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.empty(features))
        self.bias = nn.Parameter(torch.empty(features)) if shift else None
        self.register_buffer("running_mean", torch.zeros(sets, features))
        self.register_buffer("running_var", torch.ones(sets, features))
        self.register_buffer("updates", torch.zeros(sets, dtype=torch.long))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """gamma = gamma_init, beta = 0, and the population statistics back to mean 0, variance 1, no updates."""
        with torch.no_grad():
            self.weight.fill_(self.gamma_init)
            if self.bias is not None:
                self.bias.zero_()
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.updates.zero_()

    def constant_init(self, prefix: str) -> dict[str, float]:
        """``{parameter name: the constant reset_parameters sets it to}`` (names prefixed with ``prefix``)."""
        fixed = {f"{prefix}weight": self.gamma_init}
        if self.bias is not None:
            fixed[f"{prefix}bias"] = 0.0
        return fixed

    def _normalise(self, z: Tensor, mean: Tensor, var: Tensor) -> Tensor:
        out = (z - mean) * torch.rsqrt(var + self.eps) * self.weight
        return out if self.bias is None else out + self.bias

    def _batch_stats(self, rows: Tensor, what: str) -> tuple[Tensor, Tensor]:
        if rows.shape[0] < 2:
            raise ValueError(f"batch normalisation in training mode needs at least 2 {what} to take statistics "
                             f"over, got {rows.shape[0]}; use a batch_size >= 2 or evaluation mode")
        mean = rows.mean(dim=0)
        var = rows.var(dim=0, unbiased=False)
        return mean, var

    @torch.no_grad()
    def _update(self, index: int, mean: Tensor, var: Tensor, count: int) -> None:
        n = int(self.updates[index])
        m = max(self.momentum, 1.0 / (n + 1))
        unbiased = var * (count / (count - 1))
        self.running_mean[index].lerp_(mean.to(self.running_mean.dtype), m)
        self.running_var[index].lerp_(unbiased.to(self.running_var.dtype), m)
        self.updates[index] += 1

    def extra_repr(self) -> str:
        sets = self.running_mean.shape[0]
        return (f"{self.features}, sets={sets}, gamma_init={self.gamma_init}, shift={self.bias is not None}, "
                f"momentum={self.momentum}, eps={self.eps}")


class StepwiseBatchNorm(_BatchNormBase):
    """Batch norm with separate statistics per time step: ``forward(z [B, F], index [B] long) -> [B, F]``.

    ``index`` is each row's statistics set, ``min(t, max_steps - 1)`` for time step ``t``. Training mode
    normalises with the batch's own statistics (all rows must be at the same step) and updates that
    step's population set; evaluation mode uses each row's population set.
    """

    def __init__(self, features: int, max_steps: int, *, shift: bool, gamma_init: float, momentum: float = 0.1,
                 eps: float = 1e-5):
        super().__init__(features, max_steps, shift=shift, gamma_init=gamma_init, momentum=momentum, eps=eps)
        self.max_steps = max_steps

    def forward(self, z: Tensor, index: Tensor) -> Tensor:
        if self.training:
            first = int(index[0])
            if bool((index != first).any()):
                raise ValueError("batch normalisation per time step in training mode needs every row at the same "
                                 "time step; start every row from the same state")
            mean, var = self._batch_stats(z, "rows")
            self._update(first, mean.detach(), var.detach(), z.shape[0])
            return self._normalise(z, mean, var)
        return self._normalise(z, self.running_mean[index].to(z.dtype), self.running_var[index].to(z.dtype))


class SequenceBatchNorm(_BatchNormBase):
    """Sequence-wise batch norm: ``forward(z [B, T, F]) -> [B, T, F]``, one statistics set over B x T.

    Training mode normalises with the mean and variance over every row and step of the call (one set
    for the whole sequence, not one per step) and updates the population set; evaluation mode uses it.
    """

    def __init__(self, features: int, *, shift: bool, gamma_init: float, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__(features, 1, shift=shift, gamma_init=gamma_init, momentum=momentum, eps=eps)

    def forward(self, z: Tensor) -> Tensor:
        if self.training:
            rows = z.reshape(-1, z.shape[-1])
            mean, var = self._batch_stats(rows, "positions (batch x time)")
            self._update(0, mean.detach(), var.detach(), rows.shape[0])
            return self._normalise(z, mean, var)
        return self._normalise(z, self.running_mean[0].to(z.dtype), self.running_var[0].to(z.dtype))


def constant_init_of(model: nn.Module) -> dict[str, float]:
    """``{parameter name: constant}`` of every BN scale/shift in ``model`` (what ``reset_parameters`` sets)."""
    fixed: dict[str, float] = {}
    for name, module in model.named_modules():
        if isinstance(module, _BatchNormBase):
            fixed.update(module.constant_init(f"{name}." if name else ""))
    return fixed


def reset_norms(model: nn.Module) -> None:
    """Every BN module of ``model`` back to its initial gamma, beta and population statistics."""
    for module in model.modules():
        if isinstance(module, _BatchNormBase):
            module.reset_parameters()
