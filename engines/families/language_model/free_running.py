"""Teacher-forced and free-running unrolls of any language model of the family, one token at a time.

A language model ``model(tokens [B, T], state) -> (logits [B, T, V], state)`` runs in two modes from the
same state:

- **teacher-forced**: the input at step t is the data's token ``x_t``;
- **free-running**: the input at step 0 is the data's first token, at step t > 0 the model's own token
  ``x̂_t ~ softmax(logits_{t-1})``, *sampled* (never the argmax: professor forcing and Lamb et al.'s
  figures compare the sampling model's dynamics).

:func:`unroll` implements both with one loop: it reads one token per call (``model(token [B, 1], state)``)
and asks ``next_token(logits_t, t)`` for the input of step t+1; :func:`teacher` returns the data's
tokens, :func:`sampler` samples. The logits handed to ``next_token`` are detached, so no gradient can
reach the sampling op: sampled tokens are constants (no REINFORCE); gradients reach the parameters only
through the continuous hidden states.

The *behaviour* of step t is the hidden state of every layer after reading the step's token: the first
state tensor (``h``; for an LSTM ``state = (h, c)``), ``[num_layers, B, H]`` flattened to ``[B, L*H]``,
stacked over steps into ``[T, B, L*H]`` (time first, as a discriminator over behaviour sequences reads it).
A free-running run is the teacher-forced run on its own sampled tokens, so recording the sampled tokens
with the ordinary recorder (from the same zero state) reproduces the free-running states exactly
(``lstmviz.recording.free_running``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

NextToken = Callable[[Tensor, int], Tensor]


@dataclass
class Unrolled:
    """One unroll: ``tokens`` [B, T] (the inputs read), ``logits`` [B, T, V], ``hidden`` [T, B, L*H], ``state``."""

    tokens: Tensor
    logits: Tensor
    hidden: Tensor
    state: tuple


def teacher(tokens: Tensor) -> NextToken:
    """``next_token`` of teacher forcing: the data's token ``tokens[:, t + 1]`` (``tokens`` [B, T])."""

    def next_token(logits: Tensor, t: int) -> Tensor:
        return tokens[:, t + 1]

    return next_token


def sampler(generator: torch.Generator | None = None, temperature: float = 1.0) -> NextToken:
    """``next_token`` of free running: one token per row drawn from ``softmax(logits / temperature)``.

    ``generator`` makes the draws reproducible (None: torch's global generator, as during training).
    """
    if not temperature > 0:
        raise ValueError(f"expected a positive temperature, got {temperature!r}")

    def next_token(logits: Tensor, t: int) -> Tensor:
        probs = torch.softmax(logits.detach().double() / temperature, dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)

    return next_token


def behaviour_of(state) -> Tensor:
    """Every layer's hidden state ``[B, L*H]`` from a model state (a tuple whose first tensor is ``[L, B, H]``)."""
    h = state[0] if isinstance(state, (tuple, list)) else state
    return h.transpose(0, 1).reshape(h.shape[1], -1)


def unroll(model, first: Tensor, steps: int, next_token: NextToken, state=None) -> Unrolled:
    """Run ``model`` for ``steps`` steps from ``state``, reading ``first`` [B] at step 0 and
    ``next_token(logits_t.detach(), t)`` at step t+1 (see the module docstring)."""
    if first.dim() != 1:
        raise ValueError(f"expected the first tokens as [batch], got shape {tuple(first.shape)}")
    if steps < 1:
        raise ValueError(f"expected at least one step, got {steps}")
    token = first
    tokens, logits, hidden = [], [], []
    for t in range(steps):
        tokens.append(token)
        out, state = model(token[:, None], state)
        logits.append(out[:, 0])
        hidden.append(behaviour_of(state))
        if t + 1 < steps:
            token = next_token(out[:, 0].detach(), t).to(first.device, torch.int64)
    return Unrolled(torch.stack(tokens, 1), torch.stack(logits, 1), torch.stack(hidden, 0), state)
