"""The language-model head around a recurrent stack: the shape of every built-in recurrent engine.

    e_t      = D(E[x_t])                                    embedding, then dropout D
    y^L, s   = RecurrentStack(e, s_0)                       cells per layer, D between layers
    logits_t = W_dec D(y^L_t) + b_dec

:class:`RecurrentLanguageModel` owns the embedding, the dropout on the embedding output and on the
top layer's output, and the decoder; the loops over layers and steps are its
:class:`~.stack.RecurrentStack` (held as ``layers``). A variant names its cell layer in
:attr:`RecurrentLanguageModel.layer_class` and nothing else.

Dropout D is ordinary (inverted) dropout with an independent mask for every element, hence a fresh
mask at every time step; it is never applied to the recurrent state ``s^l_{t-1}``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from lstmviz.memory import available_bytes, format_bytes

from .base import GatedLayer, RecurrentLayer, State
from .stack import RecurrentStack

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
        self.layers = RecurrentStack(self.layer_class, input_size=embedding_dim, hidden_size=hidden_size,
                                     num_layers=num_layers, dropout=self.dropout_p)
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
        x, new_state = self.layers(x, state)
        return self.decoder(self.drop(x)), new_state

    # ------------------------------------------------------------------ input checks

    def _check_tokens(self, tokens) -> None:
        check_token_ids(tokens, self.vocab_size)

    def _check_state(self, state, batch: int) -> State:
        return self.layers.check_state(state, batch, self.decoder.weight.dtype)


def _is_mapped(tensor: Tensor) -> bool:
    """Whether ``tensor`` is seen through a ``torch.func`` transform (vmap's one slice, grad's wrapper):
    per-example gradients, where reading a value is not allowed."""
    try:
        return bool(torch._C._functorch.is_functorch_wrapped_tensor(tensor))
    except AttributeError:  # a torch without functorch's C API: vmap is not in use
        return False


def check_token_ids(tokens, vocab_size: int) -> None:
    """Refuse, in words, anything but integer token ids ``[batch, time]`` (both non-empty) below ``vocab_size``."""
    if not isinstance(tokens, Tensor):
        raise TypeError(f"expected tokens as a torch.LongTensor [batch, time], got {type(tokens).__name__}")
    if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
        raise TypeError(f"expected integer token ids (torch.int64), got dtype {tokens.dtype}")
    if tokens.dim() != 2:
        raise ValueError(f"expected tokens of shape [batch, time], got shape {tuple(tokens.shape)}")
    if tokens.shape[0] == 0 or tokens.shape[1] == 0:
        raise ValueError(f"expected at least one sequence and one step, got tokens of shape {tuple(tokens.shape)}")
    if _is_mapped(tokens):
        return  # one example inside torch.func.vmap (per-example gradients): no value can be read here;
        # an id out of range still fails in the embedding lookup
    low, high = int(tokens.min()), int(tokens.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(
            f"expected token ids in [0, {vocab_size}) (vocab_size={vocab_size}), "
            f"got ids from {low} to {high}"
        )
