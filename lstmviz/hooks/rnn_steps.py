"""Run a stock ``nn.LSTM`` / ``nn.GRU`` one step at a time, so its hidden signals can be edited mid-sequence.

The fused kernel that ``nn.LSTM.forward`` calls computes every step inside one opaque call: an edit of
``c`` or of a gate at step ``t`` cannot be put into it. :func:`forward_steps` computes the same thing
in Python, step by step, with PyTorch's formulas in PyTorch's order of operations (ATen's CPU cells),
and passes every signal through ``edit(local_name, value, step)`` before it is used, so an edit is
carried forward by the recurrence (and into the next layer). Without edits the result equals the
fused module's to float rounding (tested to 1e-6).

It is meant for the runs that intervene (see :class:`~lstmviz.hooks.rnn_point.RNNPoint`); reading
uses the fused kernel and recovers the gates from the weights (:mod:`.rnn_layerwise`,
:mod:`.rnn_recovery`), which is several times faster.

It accepts what the module does: batch-first or time-major input, unbatched 2-D input, a
``PackedSequence`` (variable lengths: a sequence's state stops changing after its last step, the
reverse direction starts at it), an initial state ``hx``, ``proj_size``, ``bias=False``, and dropout
between layers in training mode (with its own random draws, not the kernel's).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .rnn_layerwise import initial_state, layer_weights

EditFn = Callable[[str, Tensor, int], Tensor]
"""``edit(local_name, value [batch, units], step) -> value``; ``local_name`` as in ``layer0_reverse/gates/f``."""


class StepTrace:
    """What one layer computed on the per-step path: every signal at every step, time-major ``[T, B, H]``.

    ``signals[d]`` maps ``"h"``, ``"c"`` (LSTM) and ``"gates/<g>"`` to the values of direction ``d``
    (zero at padded steps), after the edits; ``outputs[d]`` is ``signals[d]["h"]``.
    """

    def __init__(self, module: nn.Module, layer: int, inputs: Tensor, signals: list[dict[str, Tensor]],
                 lengths: Tensor | None):
        self.module = module
        self.layer = layer
        self.directions = len(signals)
        self.inputs = inputs
        self.signals = signals
        self.outputs = [s["h"] for s in signals]
        self.lengths = lengths
        self.output_is_shared = False  # the caller receives a concatenated copy


def forward_steps(module: nn.Module, input, hx=None, edit: EditFn | None = None,
                  on_layer: Callable[[StepTrace], None] | None = None):
    """Compute ``module(input, hx)`` step by step, every signal passed through ``edit``.

    Returns what ``nn.LSTM.forward`` / ``nn.GRU.forward`` return for the same arguments.
    """
    lstm = isinstance(module, nn.LSTM)
    name = "LSTM" if lstm else "GRU"
    directions = 2 if module.bidirectional else 1
    batch_dim = 0 if module.batch_first else 1
    packed = isinstance(input, PackedSequence)
    is_batched = True
    if packed:
        x, lengths = pad_packed_sequence(input)  # time-major, in the caller's batch order
        check_data, batch_sizes = input.data, input.batch_sizes
    else:
        if input.dim() not in (2, 3):
            raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.dim()}D instead")
        is_batched = input.dim() == 3
        check_data = input if is_batched else input.unsqueeze(batch_dim)
        if not is_batched and hx is not None:
            hx = (hx[0].unsqueeze(1), hx[1].unsqueeze(1)) if lstm else hx.unsqueeze(1)
        x = check_data.transpose(0, 1) if module.batch_first else check_data
        lengths, batch_sizes = None, None
    h_all, c_all = initial_state(module, hx, x.shape[1], x)
    module.check_forward_args(check_data, (h_all, c_all) if lstm else h_all, batch_sizes)
    lengths_here = None if lengths is None else lengths.to(x.device)

    final_h, final_c = [], []
    layer_input = x
    for layer in range(module.num_layers):
        signals, outputs = [], []
        for direction in range(directions):
            row = layer * directions + direction
            stem = f"layer{layer}{'_reverse' if direction else ''}/"
            weights = layer_weights(module, layer, direction)
            run = _lstm_direction if lstm else _gru_direction
            values, h_last, c_last = run(layer_input, weights, h_all[row], None if c_all is None else c_all[row],
                                         lengths_here, direction == 1, _edit_of(edit, stem))
            signals.append(values)
            outputs.append(values["h"])
            final_h.append(h_last)
            if lstm:
                final_c.append(c_last)
        if on_layer is not None:
            on_layer(StepTrace(module, layer, layer_input, signals, lengths))
        output = torch.cat(outputs, dim=-1)
        if layer < module.num_layers - 1 and module.dropout > 0 and module.training:
            output = F.dropout(output, module.dropout, True)
        layer_input = output

    hidden = (torch.stack(final_h), torch.stack(final_c)) if lstm else torch.stack(final_h)
    if packed:
        order = input.sorted_indices
        padded = layer_input if order is None else layer_input.index_select(1, order)
        sorted_lengths = lengths if order is None else lengths[order.cpu()]
        data = pack_padded_sequence(padded, sorted_lengths, enforce_sorted=True).data
        return PackedSequence(data, input.batch_sizes, input.sorted_indices, input.unsorted_indices), hidden
    output = layer_input.transpose(0, 1) if module.batch_first else layer_input
    if not is_batched:
        output = output.squeeze(batch_dim)
        hidden = (hidden[0].squeeze(1), hidden[1].squeeze(1)) if lstm else hidden.squeeze(1)
    return output, hidden


def _edit_of(edit: EditFn | None, stem: str) -> Callable[[str, Tensor, int], Tensor]:
    if edit is None:
        return lambda name, value, t: value
    return lambda name, value, t: edit(stem + name, value, t)


def _steps(steps: int, reverse: bool) -> range:
    return range(steps - 1, -1, -1) if reverse else range(steps)


def _keep(valid: Tensor | None, new: Tensor, old: Tensor) -> Tensor:
    return new if valid is None else torch.where(valid, new, old)


def _lstm_direction(x: Tensor, w: dict, h0: Tensor, c0: Tensor, lengths: Tensor | None, reverse: bool, edit):
    """One direction of one LSTM layer, as ATen's CPU cell computes it (gates = W_hh h + b_hh + W_ih x + b_ih)."""
    steps = x.shape[0]
    x_w = F.linear(x, w["w_ih"], w["b_ih"])  # the input half of every step's gates, one GEMM
    values = {key: [None] * steps for key in ("gates/i", "gates/f", "gates/g", "gates/o", "c", "h")}
    h, c = h0, c0
    for t in _steps(steps, reverse):
        gates = F.linear(h, w["w_hh"], w["b_hh"]).add_(x_w[t])
        i, f, g, o = gates.chunk(4, 1)
        i = edit("gates/i", i.sigmoid(), t)
        f = edit("gates/f", f.sigmoid(), t)
        g = edit("gates/g", g.tanh(), t)
        o = edit("gates/o", o.sigmoid(), t)
        c_new = edit("c", (f * c).add_(i * g), t)
        h_new = o * c_new.tanh()
        if w["w_hr"] is not None:
            h_new = F.linear(h_new, w["w_hr"])
        h_new = edit("h", h_new, t)
        valid = None if lengths is None else (t < lengths)[:, None]
        c, h = _keep(valid, c_new, c), _keep(valid, h_new, h)
        for key, value in (("gates/i", i), ("gates/f", f), ("gates/g", g), ("gates/o", o), ("c", c_new), ("h", h_new)):
            values[key][t] = value if valid is None else value.masked_fill(~valid, 0.0)
    return {key: torch.stack(seq) for key, seq in values.items()}, h, c


def _gru_direction(x: Tensor, w: dict, h0: Tensor, c0: None, lengths: Tensor | None, reverse: bool, edit):
    """One direction of one GRU layer, as ATen's CPU cell computes it (r multiplies W_hn h + b_hn)."""
    steps = x.shape[0]
    x_w = F.linear(x, w["w_ih"], w["b_ih"])
    values = {key: [None] * steps for key in ("gates/r", "gates/z", "gates/n", "h")}
    h = h0
    for t in _steps(steps, reverse):
        x_r, x_z, x_n = x_w[t].chunk(3, 1)
        h_r, h_z, h_n = F.linear(h, w["w_hh"], w["b_hh"]).chunk(3, 1)
        r = edit("gates/r", (h_r + x_r).sigmoid(), t)
        z = edit("gates/z", (h_z + x_z).sigmoid(), t)
        n = edit("gates/n", (x_n + h_n * r).tanh(), t)
        h_new = edit("h", (h - n).mul_(z).add_(n), t)
        valid = None if lengths is None else (t < lengths)[:, None]
        h = _keep(valid, h_new, h)
        for key, value in (("gates/r", r), ("gates/z", z), ("gates/n", n), ("h", h_new)):
            values[key][t] = value if valid is None else value.masked_fill(~valid, 0.0)
    return {key: torch.stack(seq) for key, seq in values.items()}, h, None
