"""Exact recovery of the per-step gates and cell states that PyTorch's fused RNN kernels hide.

``nn.LSTM`` and ``nn.GRU`` return every step's hidden state of the top layer only. Once the hidden
states ``h_t`` of a layer are known at every step (see :mod:`lstmviz.hooks.rnn_layerwise`), every
other signal of that layer is a function of the layer input ``x_t`` and ``h_{t-1}``, so it can be
computed for all steps at once with one matrix product per weight matrix; only the LSTM cell state
needs a recurrence, and that recurrence is elementwise.

All tensors here are time-major: ``x`` is ``[T, B, I]``, ``h`` is ``[T, B, H]``. ``lengths`` (``[B]``)
gives each sequence's true length for variable-length (packed) batches, or is ``None`` when every
sequence has ``T`` steps. Values at padded steps (``t >= lengths[b]``) are set to zero.

LSTM (PyTorch's formulation, weights ``W_ih = [W_ii; W_if; W_ig; W_io]``)::

    i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
    f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
    g_t = tanh   (W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
    o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * tanh(c_t)                    (with proj_size: h_t = W_hr (o_t * tanh(c_t)))

GRU (PyTorch's formulation, ``W_ih = [W_ir; W_iz; W_in]``; note ``r`` multiplies the *projected*
previous state including its bias)::

    r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n_t = tanh   (W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

The reverse direction of a bidirectional layer runs from each sequence's last true step down to step
0, so its "previous" state at step ``t`` is ``h_{t+1}``, and at step ``lengths[b] - 1`` the initial state.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


def step_mask(lengths: Tensor | None, steps: int, device: torch.device) -> Tensor | None:
    """``[T, B, 1]`` boolean mask of the true (non-padded) steps, or ``None`` when there is no padding."""
    if lengths is None:
        return None
    lengths = lengths.to(device)
    if bool((lengths == steps).all()):
        return None
    return (torch.arange(steps, device=device)[:, None] < lengths[None, :]).unsqueeze(-1)


def stacked_inputs(x: Tensor, h: Tensor, h0: Tensor, lengths: Tensor | None, reverse: bool) -> Tensor:
    """``[x_t, h_prev_t]`` for every step, ``[T, B, I + H]``: what each step's gates are computed from.

    ``h_prev_t`` is ``h_{t-1}`` going forward and ``h_{t+1}`` going backward; the first step a sequence
    processes starts from ``h0`` (``[B, H]``): step 0 going forward, step ``lengths[b] - 1`` backward.
    Written into one buffer so that one matrix product covers the input and the recurrent weights.
    """
    steps, batch, n_in = x.shape
    xh = torch.empty(steps, batch, n_in + h.shape[-1], dtype=x.dtype, device=x.device)
    xh[..., :n_in] = x
    prev = xh[..., n_in:]
    if not reverse:
        prev[0] = h0
        prev[1:] = h[:-1]
        return xh
    prev[-1] = h0
    prev[:-1] = h[1:]
    if lengths is not None:
        last = torch.arange(steps, device=h.device)[:, None] == (lengths.to(h.device)[None, :] - 1)
        t, b = last[:-1].nonzero(as_tuple=True)  # sequences shorter than T: their last step starts from h0
        prev[t, b] = h0[b]
    return xh


_ACTIVATIONS = {"none": None, "sigmoid": torch.sigmoid_, "tanh": torch.tanh_}
_onednn_ok: bool | None = None  # decided on first use


def _onednn_linear_works() -> bool:
    """Whether oneDNN's fused linear (+ activation) op exists here and agrees with ``addmm``.

    Through MKL, float32 ``addmm`` runs at about half of oneDNN's speed on AMD CPUs (the kind this
    project runs on), and the recovery GEMMs are most of the cost of recording c and gates. The op is
    private to PyTorch, so it is probed once and the public path is used when it is missing or wrong.
    """
    global _onednn_ok
    if _onednn_ok is None:
        try:
            op = torch.ops.mkldnn._linear_pointwise
            gen = torch.Generator().manual_seed(0)
            x, w, b = (torch.randn(*s, generator=gen) for s in ((37, 19), (23, 19), (23,)))
            got = op(x, w, b, "sigmoid", [], "")
            _onednn_ok = bool(torch.allclose(got, torch.sigmoid(torch.addmm(b, x, w.t())), atol=1e-5))
        except (AttributeError, RuntimeError, TypeError):
            _onednn_ok = False
    return _onednn_ok


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None, activation: str = "none") -> Tensor:
    """``activation(x @ weight.T + bias)`` for ``x`` of shape ``[..., K]``, as one product: ``[rows, N]``."""
    x2 = x.reshape(-1, x.shape[-1])
    if (
        x2.dtype == torch.float32
        and weight.dtype == torch.float32
        and x2.device.type == "cpu"
        and torch.backends.mkldnn.enabled
        and not torch.is_grad_enabled()
        and _onednn_linear_works()
    ):
        return torch.ops.mkldnn._linear_pointwise(x2, weight, bias, activation, [], "")
    out = x2 @ weight.t() if bias is None else torch.addmm(bias, x2, weight.t())
    act = _ACTIVATIONS[activation]
    return out if act is None else act(out)


def _rows(t: Tensor | None, size: int, *blocks: int) -> Tensor | None:
    return None if t is None else torch.cat([t[k * size : (k + 1) * size] for k in blocks])


class LSTMGateWeights(NamedTuple):
    """One LSTM layer's weights arranged for :func:`lstm_gates`: the rows of ``[W_ih W_hh]`` (and of the
    summed biases) of the wanted sigmoid gates (a subset of ``i, f, o``, in that order) and of ``g``."""

    sigmoid_gates: str  # e.g. "ifo", "if" or ""
    sigmoid_w: Tensor | None
    sigmoid_b: Tensor | None
    tanh_w: Tensor | None
    tanh_b: Tensor | None

    @classmethod
    def from_module(
        cls,
        w_ih: Tensor,
        w_hh: Tensor,
        b_ih: Tensor | None = None,
        b_hh: Tensor | None = None,
        gates: str = "ifgo",
    ) -> "LSTMGateWeights":
        hidden = w_ih.shape[0] // 4
        w = torch.cat([w_ih, w_hh], dim=1)
        b = None if b_ih is None else b_ih + b_hh
        sig = "".join(k for k in "ifo" if k in gates)
        blocks = ["ifgo".index(k) for k in sig]
        tanh = "g" in gates
        return cls(
            sig,
            _rows(w, hidden, *blocks) if sig else None,
            _rows(b, hidden, *blocks) if sig else None,
            _rows(w, hidden, 2) if tanh else None,
            _rows(b, hidden, 2) if tanh else None,
        )


def lstm_gates(xh: Tensor, weights: LSTMGateWeights) -> dict[str, Tensor]:
    """Activated LSTM gates (those ``weights`` were arranged for), each ``[T, B, H]``, for all steps at once.

    ``xh`` is :func:`stacked_inputs`. The sigmoid gates (``i, f, o``) are one matrix product over
    ``[x_t, h_{t-1}]`` with the sigmoid fused into it, the tanh gate ``g`` another. Computing only the
    gates that are needed saves their share of the work (the cell state needs ``i, f, g``, not ``o``).
    """
    steps, batch = xh.shape[:2]
    out: dict[str, Tensor] = {}
    if weights.sigmoid_w is not None:
        n = len(weights.sigmoid_gates)
        sig = linear(xh, weights.sigmoid_w, weights.sigmoid_b, "sigmoid").view(steps, batch, -1)
        out.update(zip(weights.sigmoid_gates, sig.chunk(n, dim=-1)))
    if weights.tanh_w is not None:
        out["g"] = linear(xh, weights.tanh_w, weights.tanh_b, "tanh").view(steps, batch, -1)
    return {k: out[k] for k in "ifgo" if k in out}


def lstm_cell_states(i: Tensor, f: Tensor, g: Tensor, c0: Tensor, lengths: Tensor | None, reverse: bool) -> Tensor:
    """Cell states ``c_t = f_t * c_{t-1} + i_t * g_t`` at every step, ``[T, B, H]``.

    ``i_t * g_t`` is computed for all steps at once; the loop over time is one fused elementwise
    multiply-add per step. For the reverse direction of a padded batch, padded steps are given
    ``f = 1, i*g = 0`` so that the state stays exactly ``c0`` until each sequence's last true step.
    """
    c = torch.mul(i, g)  # i_t * g_t for all steps; the loop adds f_t * c_{t-1} in place
    steps = c.shape[0]
    mask = step_mask(lengths, steps, c.device) if reverse else None
    if mask is not None:
        c.masked_fill_(~mask, 0.0)
        f = torch.where(mask, f, torch.ones((), dtype=f.dtype, device=f.device))
    prev = c0
    for t in range(steps - 1, -1, -1) if reverse else range(steps):
        prev = c[t].addcmul_(f[t], prev)
    return c


class GRUGateWeights(NamedTuple):
    """One GRU layer's weights arranged for :func:`gru_gates`: rows ``[r; z]`` of ``[W_ih W_hh]`` with
    summed biases, and the ``n`` rows of ``W_ih`` and ``W_hh`` apart."""

    rz_w: Tensor
    rz_b: Tensor | None
    n_x_w: Tensor
    n_x_b: Tensor | None
    n_h_w: Tensor
    n_h_b: Tensor | None

    @classmethod
    def from_module(cls, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None, b_hh: Tensor | None = None):
        hidden = w_ih.shape[0] // 3
        rz_b = None if b_ih is None else b_ih[: 2 * hidden] + b_hh[: 2 * hidden]
        return cls(
            torch.cat([w_ih[: 2 * hidden], w_hh[: 2 * hidden]], dim=1),
            rz_b,
            w_ih[2 * hidden :],
            None if b_ih is None else b_ih[2 * hidden :],
            w_hh[2 * hidden :],
            None if b_hh is None else b_hh[2 * hidden :],
        )


def gru_gates(xh: Tensor, weights: GRUGateWeights) -> tuple[Tensor, Tensor, Tensor]:
    """Activated GRU gates ``r, z, n``, each ``[T, B, H]``.

    No recurrence is needed: with ``h_{t-1}`` known, every gate is a function of one step's inputs.
    ``r`` and ``z`` are one product over ``[x_t, h_{t-1}]`` with the sigmoid fused; ``n`` needs its input
    and recurrent parts apart, because ``r`` multiplies only the recurrent part (and its bias).
    """
    steps, batch = xh.shape[:2]
    hidden = weights.n_h_w.shape[0]
    n_in = weights.n_x_w.shape[1]
    rz = linear(xh, weights.rz_w, weights.rz_b, "sigmoid").view(steps, batch, 2 * hidden)
    r, z = rz.chunk(2, dim=-1)
    n_x = linear(xh[..., :n_in], weights.n_x_w, weights.n_x_b).view(steps, batch, hidden)
    n_h = linear(xh[..., n_in:], weights.n_h_w, weights.n_h_b).view(steps, batch, hidden)
    n = n_x.addcmul_(r, n_h).tanh_()
    return r, z, n


def zero_padding(values: Tensor, lengths: Tensor | None) -> Tensor:
    """``values`` (``[T, B, ...]``) with the padded steps of each sequence set to zero, in place."""
    mask = step_mask(lengths, values.shape[0], values.device)
    if mask is not None:
        values.masked_fill_(~mask, 0.0)
    return values
