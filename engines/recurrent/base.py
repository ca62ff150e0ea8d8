"""The unroll over time and layers shared by every recurrent language-model engine.

A language-model engine is

    e_t      = D(E[x_t])                                    embedding, then dropout D
    y^0_t    = e_t
    y^l_t, s^l_t = cell_l(y^{l-1}_t, s^l_{t-1})             l = 1 .. L   (s = the layer's state)
    y^l      = D(y^l)                                       between layers and on the top output
    logits_t = W_dec y^L_t + b_dec

:class:`RecurrentLanguageModel` owns the embedding, the dropout placement, the decoder and the loops
over layers and time steps. A variant supplies a :class:`RecurrentLayer` subclass that implements
only its cell: :meth:`RecurrentLayer.project_input` (the input half of the pre-activations for all
steps at once, one GEMM per layer) and :meth:`RecurrentLayer.step` (one time step, which routes every
recordable tensor through a :class:`~lstmviz.recording.taps.Tap`).

Dropout D is ordinary (inverted) dropout with an independent mask for every element, hence a fresh
mask at every time step; it is never applied to the recurrent state ``s^l_{t-1}``.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

import torch
from torch import Tensor, nn

from lstmviz.memory import available_bytes, format_bytes

State = tuple[Tensor, ...]

MAX_LAYERS = 1024
"""Stacked layers a model may have: building 10^6 layers would take minutes before any check of memory."""
NOMINAL_POSITIONS = 1024
"""Positions (e.g. 32 sequences x 32 steps) whose activations the memory estimate includes."""

#: Training defaults of the built-in recurrent language models: small CPU-friendly runs on parens
#: (Adam converges in minutes on 2 cores; Zaremba's SGD schedule is available through the settings).
LANGUAGE_MODEL_TRAIN_DEFAULTS = {
    "steps": 2000,
    "batch_size": 32,
    "bptt": 50,
    "lr": 3e-3,
    "optimizer": "adam",
    "clip": 5.0,
    "dropout": 0.1,
    "eval_every": 250,
    "seed": 0,
}


class RecurrentLayer(nn.Module):
    """One recurrent layer. Subclasses implement :meth:`step` and usually :meth:`project_input`.

    Args:
        input_size: features of the layer's input ``y^{l-1}_t``.
        hidden_size: units of the layer's output and of every state tensor.
        layer: the layer's index (used in tap names ``layer{layer}/...``).
    """

    #: names of the state tensors carried from step to step, e.g. ("h", "c"); the first is the output
    state_names: ClassVar[tuple[str, ...]] = ("h",)

    def __init__(self, input_size: int, hidden_size: int, *, layer: int):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.layer = layer

    def project_input(self, x: Tensor) -> Tensor:
        """The part of the step's input that depends only on ``x`` ([B, T, input_size]), for all steps.

        The default passes ``x`` through; variants return ``W_x x + b`` computed in one GEMM.
        """
        return x

    def step(self, x_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        """One time step: ``(output [B, hidden_size], new_state)`` from ``project_input(x)[:, t]``."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, hidden_size={self.hidden_size}, layer={self.layer}"


class GatedLayer(RecurrentLayer):
    """A layer with ``nn.LSTM``/``nn.GRU``-style parameters: ``gate_count`` stacked gate blocks.

    ``weight_ih`` [G*H, input_size], ``weight_hh`` [G*H, H], ``bias_ih`` and ``bias_hh`` [G*H], laid
    out as in PyTorch's fused modules so weights copy over one to one.
    """

    gate_count: ClassVar[int] = 1

    def __init__(self, input_size: int, hidden_size: int, *, layer: int):
        super().__init__(input_size, hidden_size, layer=layer)
        rows = self.gate_count * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(rows))
        self.bias_hh = nn.Parameter(torch.empty(rows))

    def reset_parameters(self) -> None:
        """PyTorch's default: U(-1/sqrt(H), 1/sqrt(H)); the language model re-draws with its init_range."""
        bound = self.hidden_size ** -0.5
        with torch.no_grad():
            for p in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh):
                p.uniform_(-bound, bound)


_MAX_SIZE = 1 << 40  # no dimension this large fits in any memory; bounds the arithmetic of the estimate


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected {name} to be a positive int, got {value!r}")
    if value > _MAX_SIZE:
        shown = value if value < 10 ** 15 else f"about 2**{value.bit_length() - 1}"
        raise ValueError(f"expected {name} to be at most 2**40, got {shown}")
    return value


class RecurrentLanguageModel(nn.Module):
    """Embedding -> ``num_layers`` recurrent layers -> linear decoder, with dropout between them.

    ``forward(tokens [B, T] long, state=None) -> (logits [B, T, vocab_size], state)``, where ``state``
    is a tuple of tensors ``[num_layers, B, hidden_size]`` named by :attr:`state_names` (zeros when
    ``None``). Calling the model T times with one step each, carrying the state, gives the same
    result as one call with T steps.

    Args (keyword only):
        vocab_size: number of token ids.
        embedding_dim: size of the token embedding (the first layer's input).
        hidden_size: units per layer.
        num_layers: stacked recurrent layers.
        dropout: probability of the dropout on the embedding output, between layers and on the top
            layer's output (never on the recurrent state).
        init_range: every parameter is drawn from U(-init_range, init_range) by :meth:`reset_parameters`.
    """

    layer_class: ClassVar[type[RecurrentLayer]]

    def __init__(
        self,
        *,
        vocab_size: int,
        embedding_dim: int = 128,
        hidden_size: int = 128,
        num_layers: int = 2,
        dropout: float = 0.0,
        init_range: float = 0.1,
    ):
        super().__init__()
        self.vocab_size = _positive_int("vocab_size", vocab_size)
        self.embedding_dim = _positive_int("embedding_dim", embedding_dim)
        self.hidden_size = _positive_int("hidden_size", hidden_size)
        self.num_layers = _positive_int("num_layers", num_layers)
        if self.num_layers > MAX_LAYERS:
            raise ValueError(f"expected num_layers to be at most {MAX_LAYERS}, got {num_layers}")
        self._check_fits_in_memory()
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"expected dropout to be a probability in [0, 1), got {dropout!r}")
        if isinstance(init_range, bool) or not isinstance(init_range, (int, float)) or not init_range > 0:
            raise ValueError(f"expected init_range to be a positive number, got {init_range!r}")
        self.dropout_p = float(dropout)
        self.init_range = float(init_range)

        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.layers = nn.ModuleList(
            self.layer_class(embedding_dim if layer == 0 else hidden_size, hidden_size, layer=layer)
            for layer in range(num_layers)
        )
        self.drop = nn.Dropout(self.dropout_p)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        self.reset_parameters()

    @classmethod
    def memory_estimate(cls, *, vocab_size: int, embedding_dim: int, hidden_size: int, num_layers: int) -> tuple[int, int]:
        """``(parameters, bytes)`` of a model with these sizes, computed before building it.

        ``bytes`` counts float32 parameters plus the activations of one forward pass over
        :data:`NOMINAL_POSITIONS` positions (embedding, every layer's gates and states, the logits): a
        rough lower bound of what building and running the model needs.
        """
        gates = cls.layer_class.gate_count if issubclass(cls.layer_class, GatedLayer) else 1
        per_layer = [gates * hidden_size * ((embedding_dim if layer == 0 else hidden_size) + hidden_size + 2)
                     for layer in range(min(num_layers, 2))]
        layers = per_layer[0] + (num_layers - 1) * (per_layer[1] if num_layers > 1 else 0)
        parameters = vocab_size * embedding_dim + layers + hidden_size * vocab_size + vocab_size
        states = len(cls.layer_class.state_names)
        per_position = embedding_dim + num_layers * (gates + states) * hidden_size + vocab_size
        return parameters, 4 * (parameters + NOMINAL_POSITIONS * per_position)

    def _check_fits_in_memory(self) -> None:
        sizes = {"vocab_size": self.vocab_size, "embedding_dim": self.embedding_dim,
                 "hidden_size": self.hidden_size, "num_layers": self.num_layers}
        parameters, need = self.memory_estimate(**sizes)
        available = available_bytes()
        if available is not None and need > available:
            given = ", ".join(f"{k}={v}" for k, v in sizes.items())
            raise ValueError(
                f"a {type(self).__name__} with {given} needs about {format_bytes(need)} of memory "
                f"({parameters:.3g} float32 parameters and the activations of {NOMINAL_POSITIONS} positions), "
                f"more than the {format_bytes(available)} available; choose smaller sizes")

    # ------------------------------------------------------------------ torch conventions

    @property
    def state_names(self) -> tuple[str, ...]:
        return self.layer_class.state_names

    @property
    def config(self) -> dict:
        """The hyperparameters that rebuild this model with ``type(model)(vocab_size=..., **config)``."""
        return {
            "embedding_dim": self.embedding_dim,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "dropout": self.dropout_p,
            "init_range": self.init_range,
        }

    def reset_parameters(self) -> None:
        """Draw every parameter from U(-init_range, init_range) (Zaremba et al.'s initialisation)."""
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-self.init_range, self.init_range)

    def extra_repr(self) -> str:
        return f"vocab_size={self.vocab_size}, " + ", ".join(f"{k}={v}" for k, v in self.config.items())

    def init_state(self, batch_size: int) -> State:
        """Zero state: one tensor ``[num_layers, batch_size, hidden_size]`` per name in :attr:`state_names`."""
        _positive_int("batch_size", batch_size)
        ref = self.decoder.weight
        shape = (self.num_layers, batch_size, self.hidden_size)
        return tuple(ref.new_zeros(shape) for _ in self.state_names)

    # ------------------------------------------------------------------ the unroll

    def forward(self, tokens: Tensor, state: State | Tensor | None = None) -> tuple[Tensor, State]:
        self._check_tokens(tokens)
        batch = tokens.shape[0]
        state = self.init_state(batch) if state is None else self._check_state(state, batch)

        x = self.drop(self.embedding(tokens))
        final: list[State] = []
        for layer_index, layer in enumerate(self.layers):
            layer_state = tuple(part[layer_index] for part in state)
            x, layer_state = self.unroll(layer, x, layer_state)
            final.append(layer_state)
            x = self.drop(x)
        logits = self.decoder(x)
        new_state = tuple(torch.stack([s[k] for s in final]) for k in range(len(self.state_names)))
        return logits, new_state

    @staticmethod
    def unroll(layer: RecurrentLayer, x: Tensor, state: State) -> tuple[Tensor, State]:
        """Run ``layer`` over all steps of ``x`` [B, T, input_size]; ``(outputs [B, T, H], last state)``."""
        projected = layer.project_input(x)
        outputs = []
        for t in range(projected.shape[1]):
            out, state = layer.step(projected[:, t], state, t)
            outputs.append(out)
        return torch.stack(outputs, dim=1), state

    # ------------------------------------------------------------------ input checks

    def _check_tokens(self, tokens) -> None:
        if not isinstance(tokens, Tensor):
            raise TypeError(f"expected tokens as a torch.LongTensor [batch, time], got {type(tokens).__name__}")
        if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
            raise TypeError(f"expected integer token ids (torch.int64), got dtype {tokens.dtype}")
        if tokens.dim() != 2:
            raise ValueError(f"expected tokens of shape [batch, time], got shape {tuple(tokens.shape)}")
        if tokens.shape[0] == 0 or tokens.shape[1] == 0:
            raise ValueError(f"expected at least one sequence and one step, got tokens of shape {tuple(tokens.shape)}")
        low, high = int(tokens.min()), int(tokens.max())
        if low < 0 or high >= self.vocab_size:
            raise ValueError(
                f"expected token ids in [0, {self.vocab_size}) (vocab_size={self.vocab_size}), "
                f"got ids from {low} to {high}"
            )

    def _check_state(self, state, batch: int) -> State:
        names = self.state_names
        if isinstance(state, Tensor) and len(names) == 1:
            state = (state,)
        if not isinstance(state, Sequence) or len(state) != len(names) or not all(isinstance(s, Tensor) for s in state):
            got = type(state).__name__ + (f" of length {len(state)}" if isinstance(state, Sequence) else "")
            raise TypeError(f"expected state as a tuple ({', '.join(names)}) of tensors, got {got}")
        expected = (self.num_layers, batch, self.hidden_size)
        dtype = self.decoder.weight.dtype
        for name, s in zip(names, state):
            if tuple(s.shape) != expected:
                raise ValueError(
                    f"expected state {name} of shape [num_layers, batch, hidden_size] = {expected}, "
                    f"got {tuple(s.shape)}"
                )
            if s.dtype != dtype:
                raise TypeError(f"expected state {name} of dtype {dtype} (the model's), got {s.dtype}")
        return tuple(state)
