"""Run a stock ``nn.LSTM`` / ``nn.GRU`` one layer at a time through the same fused kernel.

A multi-layer call of ``torch._VF.lstm`` returns only the top layer's outputs. Calling the kernel once
per layer, with that layer's own weights and initial state and the previous layer's output as input
(after inter-layer dropout when training), computes exactly the same thing — the result is
bit-identical to the module's own forward, including the dropout random stream — and exposes every
layer's hidden state at every step for ~1.0x the cost.

:func:`forward_layerwise` is a drop-in replacement for ``module.forward`` that hands a
:class:`LayerTrace` per layer to a callback. It accepts everything the module does: batch-first or
time-major input, unbatched 2-D input, a ``PackedSequence``, and an initial state ``hx``.
"""

from __future__ import annotations

from functools import cached_property
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, _VF, nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

RNN_TYPES = (nn.LSTM, nn.GRU)


def is_recoverable_rnn(module: nn.Module) -> bool:
    """True for ``nn.LSTM`` / ``nn.GRU`` (and subclasses) that keep the stock ``forward``."""
    if not isinstance(module, RNN_TYPES):
        return False
    base = nn.LSTM if isinstance(module, nn.LSTM) else nn.GRU
    return type(module).forward is base.forward


def rnn_signal_names(module: nn.Module) -> list[tuple[int, int, str]]:
    """``(layer, direction, local name)`` of every signal of an LSTM / GRU.

    E.g. ``(1, 1, "layer1_reverse/gates/f")``; direction 1 is the reverse direction of a bidirectional layer.
    """
    gates = "ifgo" if isinstance(module, nn.LSTM) else "rzn"
    states = ("h", "c") if isinstance(module, nn.LSTM) else ("h",)
    names = []
    for layer in range(module.num_layers):
        for direction in range(2 if module.bidirectional else 1):
            stem = f"layer{layer}{'_reverse' if direction else ''}"
            names += [(layer, direction, f"{stem}/{s}") for s in states]
            names += [(layer, direction, f"{stem}/gates/{g}") for g in gates]
    return names


def layer_weights(module: nn.Module, layer: int, direction: int) -> dict[str, Tensor | None]:
    """The weights of one layer and direction: ``w_ih, w_hh, b_ih, b_hh, w_hr`` (missing ones ``None``)."""
    sfx = f"l{layer}{'_reverse' if direction else ''}"
    get = lambda name: getattr(module, f"{name}_{sfx}", None)  # noqa: E731
    return {
        "w_ih": get("weight_ih"),
        "w_hh": get("weight_hh"),
        "b_ih": get("bias_ih") if module.bias else None,
        "b_hh": get("bias_hh") if module.bias else None,
        "w_hr": get("weight_hr") if getattr(module, "proj_size", 0) else None,
    }


class LayerTrace:
    """What one layer saw and produced, as padded time-major tensors in the caller's batch order.

    ``inputs`` is ``[T, B, I]`` (after inter-layer dropout), ``outputs[d]`` is ``[T, B, H]`` for direction
    ``d`` (zero at padded steps of a packed batch), ``h0[d]`` / ``c0[d]`` are ``[B, H]``, ``lengths`` is
    ``[B]`` (``None`` when the input was not packed: every sequence then runs all ``T`` steps).
    Conversions from packed or batch-first layouts happen only when a property is first read.
    ``signals`` is ``None``: gates and cell states are not computed by the fused kernel (they are
    recovered from the weights, :mod:`.rnn_recovery`); compare :class:`~.rnn_steps.StepTrace`.
    """

    signals = None

    def __init__(
        self,
        module: nn.Module,
        layer: int,
        raw_input: Tensor,
        raw_output: Tensor,
        h0: tuple[Tensor, ...],
        c0: tuple[Tensor, ...] | None,
        packing: tuple[Tensor, Tensor | None, Tensor | None] | None,
        batch_first: bool,
    ):
        self.module = module
        self.layer = layer
        self.directions = 2 if module.bidirectional else 1
        self.h0: list[Tensor] = list(h0)
        self.c0: list[Tensor] | None = None if c0 is None else list(c0)
        self._raw_input = raw_input
        self._raw_output = raw_output
        self._packing = packing  # (batch_sizes, sorted_indices, unsorted_indices) or None
        self._batch_first = batch_first

    def _padded(self, raw: Tensor) -> Tensor:
        if self._packing is not None:
            return pad_packed_sequence(PackedSequence(raw, *self._packing))[0]
        return raw.transpose(0, 1) if self._batch_first else raw

    @cached_property
    def lengths(self) -> Tensor | None:
        if self._packing is None:
            return None
        batch_sizes, _, unsorted = self._packing
        # the j-th longest sequence is present at every step whose batch size exceeds j
        sorted_lengths = (batch_sizes[None, :] > torch.arange(int(batch_sizes[0]))[:, None]).sum(1)
        return sorted_lengths if unsorted is None else sorted_lengths[unsorted.cpu()]

    @cached_property
    def inputs(self) -> Tensor:
        return self._padded(self._raw_input)

    @cached_property
    def outputs(self) -> list[Tensor]:
        out = self._padded(self._raw_output)
        return list(out.chunk(self.directions, dim=-1))

    @property
    def is_top(self) -> bool:
        return self.layer == self.module.num_layers - 1

    @property
    def output_is_shared(self) -> bool:
        """True when ``outputs`` are views of the tensor the module returns to its caller."""
        return self.is_top and self._packing is None


LayerCallback = Callable[[LayerTrace], None]


def initial_state(module, hx, batch: int, like: Tensor):
    """``(h0, c0)`` for an LSTM or ``(h0, None)`` for a GRU, ``[L*D, B, H]`` in the caller's batch order."""
    directions = 2 if module.bidirectional else 1
    lstm = isinstance(module, nn.LSTM)
    real_hidden = module.proj_size if lstm and module.proj_size > 0 else module.hidden_size
    if hx is not None:
        return (hx[0], hx[1]) if lstm else (hx, None)
    zeros = lambda size: torch.zeros(  # noqa: E731
        module.num_layers * directions, batch, size, dtype=like.dtype, device=like.device
    )
    return (zeros(real_hidden), zeros(module.hidden_size)) if lstm else (zeros(module.hidden_size), None)


def forward_layerwise(module: nn.Module, input, hx=None, on_layer: LayerCallback | None = None):
    """Compute ``module(input, hx)`` layer by layer and call ``on_layer`` with each layer's trace.

    Returns exactly what ``nn.LSTM.forward`` / ``nn.GRU.forward`` return for the same arguments.
    """
    lstm = isinstance(module, nn.LSTM)
    name = "LSTM" if lstm else "GRU"
    directions = 2 if module.bidirectional else 1
    packed = isinstance(input, PackedSequence)
    is_batched = True
    batch_dim = 0 if module.batch_first else 1
    if packed:
        data, batch_sizes, sorted_indices, unsorted_indices = input
        packing = (batch_sizes, sorted_indices, unsorted_indices)
        batch = int(batch_sizes[0])
    else:
        batch_sizes = sorted_indices = unsorted_indices = packing = None
        if input.dim() not in (2, 3):
            raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.dim()}D instead")
        is_batched = input.dim() == 3
        data = input if is_batched else input.unsqueeze(batch_dim)
        if not is_batched and hx is not None:
            hx = (hx[0].unsqueeze(1), hx[1].unsqueeze(1)) if lstm else hx.unsqueeze(1)
        batch = data.size(batch_dim)
    h_all, c_all = initial_state(module, hx, batch, data)
    kernel_hx = (h_all, c_all) if lstm else h_all
    module.check_forward_args(data, kernel_hx, batch_sizes)
    if packed:  # the kernel wants the state in the packed (length-sorted) batch order
        kernel_hx = module.permute_hidden(kernel_hx, sorted_indices)

    kernel = _VF.lstm if lstm else _VF.gru
    per_layer = len(module._flat_weights_names) // (module.num_layers * directions)
    layer_input = data
    final_h, final_c = [], []
    for layer in range(module.num_layers):
        rows = slice(layer * directions, (layer + 1) * directions)
        names = module._flat_weights_names[layer * directions * per_layer : (layer + 1) * directions * per_layer]
        weights = [getattr(module, n) for n in names]
        state = (kernel_hx[0][rows], kernel_hx[1][rows]) if lstm else kernel_hx[rows]
        common = (weights, module.bias, 1, 0.0, module.training, module.bidirectional)
        if packed:
            result = kernel(layer_input, batch_sizes, state, *common)
        else:
            result = kernel(layer_input, state, *common, module.batch_first)
        output = result[0]
        final_h.append(result[1])
        if lstm:
            final_c.append(result[2])
        if on_layer is not None:
            on_layer(
                LayerTrace(
                    module,
                    layer,
                    layer_input,
                    output,
                    h_all[rows].unbind(0),
                    c_all[rows].unbind(0) if lstm else None,
                    packing,
                    module.batch_first,
                )
            )
        if layer < module.num_layers - 1 and module.dropout > 0 and module.training:
            output = F.dropout(output, module.dropout, True)
        layer_input = output

    hidden = (torch.cat(final_h), torch.cat(final_c)) if lstm else torch.cat(final_h)
    if packed:
        return PackedSequence(layer_input, batch_sizes, sorted_indices, unsorted_indices), module.permute_hidden(
            hidden, unsorted_indices
        )
    if not is_batched:
        layer_input = layer_input.squeeze(batch_dim)
        hidden = (hidden[0].squeeze(1), hidden[1].squeeze(1)) if lstm else hidden.squeeze(1)
    return layer_input, module.permute_hidden(hidden, unsorted_indices)
