r"""Engine ``melody-gru``: parallel rhythm and melody GRU networks (Colombo et al. 2016).

"Algorithmic Composition of Melodies with Deep Recurrent Neural Networks", Florian Colombo, Samuel P.
Muscinelli, Alexander Seeholzer, Johanni Brea, Wulfram Gerstner (arXiv:1606.07251, 2016).

A melody is a sequence of notes ``(p_t, d_t)``: a pitch (or rest, or the end-of-tune symbol) and a
duration from a finite grid. The token id of a note is ``p * D + d`` (D = ``num_durations``; the
``chorales`` dataset's layout, :func:`lstmviz.datasets.chorales.note_id`), so the engine is an ordinary
language model over note tokens. Two separate stacked GRU networks (no shared parameter) run in
parallel over the note index t; each layer is the ``gru`` engine's layer (PyTorch's formulation):

.. math::
    r_t &= \sigma(W_{ir} x_t + W_{hr} h_{t-1} + b_r),\quad z_t = \sigma(W_{iz} x_t + W_{hz} h_{t-1} + b_z) \\
    n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})),\quad
    h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}

- **rhythm network** (taps ``rhythm/layer{l}/...``): input ``x^R_t = E_R[d_t]`` (durations only);
  ``P(d_{t+1} | d_{\le t}) = softmax(V_R h^{R,L}_t)``;
- **melody network** (taps ``layer{l}/...``): input ``x^M_t = [E_P[p_t]; E_D[d_t]]``;
  ``P(p_{t+1} | p_{\le t}, d_{\le t+1}) = softmax(V_M \tanh(W_M h^{M,L}_t + U_M[d_{t+1}] + b_M))``:
  the melody net is conditioned on the **upcoming** duration ``d_{t+1}``.

The next note's probability is the product ``P(d_{t+1}) P(p_{t+1} | d_{t+1})``; ``forward`` returns its
logarithm for every (p, d) as logits ``[B, T, vocab_size]`` (already normalised), so the language-model
family's cross-entropy is exactly the sum of the two networks' losses (rhythm NLL + melody NLL), each of
which trains only its own network. Generation (:func:`sample`): sample ``d_{t+1}`` from the rhythm
net, feed it to the melody net, sample ``p_{t+1}``, feed the note to both nets; stop at ``end``.

**Choices the paper leaves open or that differ from it** (the reference notes mark the inputs and sizes
as unverified against the paper's Fig. 1):

- the rhythm net reads durations only (so the rhythm is pitch-blind: the defining test checks it);
- where ``d_{t+1}`` enters the melody net: the paper feeds it into the melody net's input at step t;
  here it enters the melody net's readout at step t (a tanh layer on ``[h^{M,L}_t; U_M[d_{t+1}]]``) and
  its recurrence at step t+1 (as the current duration). The information each prediction conditions on
  is the same (``p_{\le t}, d_{\le t+1}``); what differs is that the recurrent state at step t does not
  yet hold ``d_{t+1}``. This keeps ``P(p_{t+1} | d)`` cheap for every candidate d at once (one readout,
  not D recurrent steps), so the model gives the exact joint likelihood of the next note in one pass,
  carries a plain ``[layers, batch, hidden]`` state and one call per step equals one unrolled call;
- both nets have ``num_layers`` layers of ``hidden_size`` units and embeddings of ``embedding_dim``;
- training: the language-model family's truncated BPTT on the concatenated stream of tunes (the
  ``end`` token separates them), Adam; the paper trains on whole tunes.

**Ablation** (``upcoming_duration=False``): the same melody net without the upcoming-duration input,
``P(p_{t+1} | p_{\le t}, d_{\le t}) = softmax(V_M \tanh(W_M h^{M,L}_t + b_M))`` (no ``U_M``), so the next
pitch no longer depends on the next duration; the rhythm net and everything else are unchanged. The
paper's comparison for the conditioning (``benchmarks/melody_claims.py`` runs it).

A token id ``v`` of a vocabulary that is not a full grid (``vocab_size`` not a multiple of D) still
decomposes as ``(v // D, v % D)``, with at least two pitch rows (a vocabulary smaller than 2D, as in
the contract suite's tiny models, still depends on both networks); the joint log-probabilities of ids
beyond ``vocab_size`` are dropped and the rest renormalised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.hooks.taps import TapDecl

from ..spec import EngineSpec, Paper
from .base import State
from .gru import GRULayer
from .language_model import LANGUAGE_MODEL_TRAIN_DEFAULTS, _positive_int, check_token_ids
from .stack import RecurrentStack

#: the chorales dataset's duration grid size (``len(lstmviz.datasets.chorales.DURATIONS)``)
DEFAULT_NUM_DURATIONS = 11


@dataclass(frozen=True)
class _RhythmTapDecl(TapDecl):
    def pattern(self) -> str:
        return f"rhythm/layer{{layer}}/{self.name}"


class RhythmGRULayer(GRULayer):
    """A GRU layer of the rhythm network: :class:`GRULayer` with taps named ``rhythm/layer{l}/...``."""

    taps = tuple(_RhythmTapDecl(d.name, "rhythm net: " + d.description, d.layout, d.signal) for d in GRULayer.taps)


class MelodyGRU(nn.Module):
    r"""Parallel rhythm and melody GRU networks over note tokens ``p * D + d`` (see the module docstring).

    Rhythm: ``h^R_t = GRU_R(E_R[d_t], h^R_{t-1})``, ``P(d_{t+1}) = softmax(V_R h^R_t)``.
    Melody: ``h^M_t = GRU_M([E_P[p_t]; E_D[d_t]], h^M_{t-1})``,
    ``P(p_{t+1} | d_{t+1}) = softmax(V_M tanh(W_M h^M_t + U_M[d_{t+1}] + b_M))``, with the GRU layer
    ``r = sigma(...)``, ``z = sigma(...)``, ``n = tanh(W_in x + r * (W_hn h + b_hn))``,
    ``h_t = (1 - z) * n + z * h_{t-1}``.

    ``forward(tokens [B, T], state=None) -> (log P(next note) [B, T, vocab_size], state)``; state
    ``(h, h_rhythm)``: the melody and the rhythm network's hidden states, ``[num_layers, B, hidden_size]``.
    """

    state_names = ("h", "h_rhythm")

    def __init__(self, *, vocab_size: int, num_durations: int = DEFAULT_NUM_DURATIONS, embedding_dim: int = 32,
                 hidden_size: int = 128, num_layers: int = 2, dropout: float = 0.0, init_range: float = 0.1,
                 upcoming_duration: bool = True):
        super().__init__()
        if not isinstance(upcoming_duration, bool):
            raise ValueError(f"expected upcoming_duration to be true or false, got {upcoming_duration!r}")
        self.conditioned = upcoming_duration
        self.vocab_size = _positive_int("vocab_size", vocab_size)
        self.num_durations = _positive_int("num_durations", num_durations)
        self.embedding_dim = _positive_int("embedding_dim", embedding_dim)
        self.hidden_size = _positive_int("hidden_size", hidden_size)
        self.num_layers = _positive_int("num_layers", num_layers)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"expected dropout to be a probability in [0, 1), got {dropout!r}")
        if isinstance(init_range, bool) or not isinstance(init_range, (int, float)) or not init_range > 0:
            raise ValueError(f"expected init_range to be a positive number, got {init_range!r}")
        self.dropout_p = float(dropout)
        self.init_range = float(init_range)
        self.num_pitches = max(2, math.ceil(vocab_size / num_durations))
        P, D, E, H = self.num_pitches, num_durations, embedding_dim, hidden_size
        # melody network
        self.pitch_embedding = nn.Embedding(P, E)
        self.duration_embedding = nn.Embedding(D, E)
        self.layers = RecurrentStack(GRULayer, input_size=2 * E, hidden_size=H, num_layers=num_layers,
                                     dropout=self.dropout_p)
        self.melody_readout = nn.Linear(H, H)
        # U_M[d_{t+1}]; absent in the ablation (upcoming_duration=False)
        self.upcoming_duration = nn.Embedding(D, H) if upcoming_duration else None
        self.pitch_decoder = nn.Linear(H, P)
        # rhythm network
        self.rhythm_embedding = nn.Embedding(D, E)
        self.rhythm_layers = RecurrentStack(RhythmGRULayer, input_size=E, hidden_size=H, num_layers=num_layers,
                                            dropout=self.dropout_p)
        self.duration_decoder = nn.Linear(H, D)
        self.drop = nn.Dropout(self.dropout_p)
        self.reset_parameters()

    # ------------------------------------------------------------------ torch conventions

    @property
    def config(self) -> dict:
        return {"num_durations": self.num_durations, "embedding_dim": self.embedding_dim,
                "hidden_size": self.hidden_size, "num_layers": self.num_layers, "dropout": self.dropout_p,
                "init_range": self.init_range, "upcoming_duration": self.conditioned}

    def reset_parameters(self) -> None:
        """Draw every parameter from U(-init_range, init_range)."""
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-self.init_range, self.init_range)

    def extra_repr(self) -> str:
        return f"vocab_size={self.vocab_size}, " + ", ".join(f"{k}={v}" for k, v in self.config.items())

    def rhythm_parameters(self) -> list[nn.Parameter]:
        """The rhythm network's parameters (disjoint from the melody network's)."""
        return [*self.rhythm_embedding.parameters(), *self.rhythm_layers.parameters(),
                *self.duration_decoder.parameters()]

    def init_state(self, batch_size: int) -> State:
        _positive_int("batch_size", batch_size)
        ref = self.pitch_decoder.weight
        shape = (self.num_layers, batch_size, self.hidden_size)
        return tuple(ref.new_zeros(shape) for _ in self.state_names)

    # ------------------------------------------------------------------ the two networks

    def split(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """``(pitch index, duration index)`` of note tokens."""
        return torch.div(tokens, self.num_durations, rounding_mode="floor"), tokens % self.num_durations

    def run(self, tokens: Tensor, state: State | None = None) -> tuple[Tensor, Tensor, State]:
        """``(log P(d_{t+1}) [B, T, D], log P(p_{t+1} | d_{t+1} = d) [B, T, D, P], state)``."""
        self._check_tokens(tokens)
        batch = tokens.shape[0]
        state = self.init_state(batch) if state is None else self._check_state(state, batch)
        pitch, duration = self.split(tokens)
        x_m = self.drop(torch.cat([self.pitch_embedding(pitch), self.duration_embedding(duration)], dim=-1))
        y_m, (h_m,) = self.layers(x_m, (state[0],))
        x_r = self.drop(self.rhythm_embedding(duration))
        y_r, (h_r,) = self.rhythm_layers(x_r, (state[1],))
        log_d = F.log_softmax(self.duration_decoder(self.drop(y_r)), dim=-1)
        readout = self.melody_readout(self.drop(y_m)).unsqueeze(2)  # [B, T, 1, H]
        if self.upcoming_duration is not None:
            readout = readout + self.upcoming_duration.weight  # [B, T, D, H]
        g = torch.tanh(readout.expand(-1, -1, self.num_durations, -1))
        log_p = F.log_softmax(self.pitch_decoder(g), dim=-1)
        return log_d, log_p, (h_m, h_r)

    def forward(self, tokens: Tensor, state: State | Tensor | None = None) -> tuple[Tensor, State]:
        log_d, log_p, new_state = self.run(tokens, state)
        # joint[b, t, p, d] = log P(d) + log P(p | d); token id p * D + d
        joint = (log_d.unsqueeze(2) + log_p.transpose(2, 3)).flatten(2)[..., : self.vocab_size]
        if joint.shape[-1] != self.num_pitches * self.num_durations:
            joint = F.log_softmax(joint, dim=-1)
        return joint, new_state

    # ------------------------------------------------------------------ input checks

    def _check_tokens(self, tokens) -> None:
        check_token_ids(tokens, self.vocab_size)

    def _check_state(self, state, batch: int) -> State:
        dtype = self.pitch_decoder.weight.dtype
        if not isinstance(state, (tuple, list)) or len(state) != 2 or not all(isinstance(s, Tensor) for s in state):
            got = type(state).__name__ + (f" of length {len(state)}" if isinstance(state, (tuple, list)) else "")
            raise TypeError(f"expected state as a tuple (h, h_rhythm) of tensors, got {got}")
        expected = (self.num_layers, batch, self.hidden_size)
        for name, s in zip(self.state_names, state):
            if tuple(s.shape) != expected:
                raise ValueError(f"expected state {name} of shape [num_layers, batch, hidden_size] = {expected}, "
                                 f"got {tuple(s.shape)}")
            if s.dtype != dtype:
                raise TypeError(f"expected state {name} of dtype {dtype} (the model's), got {s.dtype}")
        return tuple(state)


@torch.no_grad()
def sample(model: MelodyGRU, *, count: int = 1, max_notes: int = 64, start: int | None = None,
           end: int | None = None, temperature: float = 1.0, seed: int = 0,
           prefix: list[int] | None = None) -> list[list[int]]:
    """Sample ``count`` melodies (token ids) as the paper generates: ``d_{t+1}`` from the rhythm net, then
    ``p_{t+1}`` from the melody net given it; both nets read the new note. ``start``: the token fed first
    (default: the ``end`` token, so a tune begins as after the previous one's end); ``prefix``: token ids
    of a fragment to continue (fed after ``start``, not returned); stops at ``end`` (default: the
    chorales' ``end`` token id if the vocabulary has it) or after ``max_notes``."""
    if end is None:
        from lstmviz.datasets.chorales import END_ID
        end = END_ID if END_ID < model.vocab_size else None
    first = end if start is None else start
    if first is None:
        raise ValueError("expected a start token id (the model's vocabulary has no chorales 'end' token)")
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    melodies = []
    try:
        for _ in range(count):
            ref = model.pitch_decoder.weight
            feed = torch.tensor([[first, *(prefix or [])]], dtype=torch.long, device=ref.device)
            log_d, log_p, state = model.run(feed)
            notes: list[int] = []
            while len(notes) < max_notes:
                pd = F.softmax(log_d[0, -1] / temperature, dim=-1)
                d = int(torch.multinomial(pd.cpu().float(), 1, generator=generator))
                pp = F.softmax(log_p[0, -1, d] / temperature, dim=-1)
                p = int(torch.multinomial(pp.cpu().float(), 1, generator=generator))
                token = p * model.num_durations + d
                if token >= model.vocab_size:
                    continue
                if end is not None and token == end:
                    break
                notes.append(token)
                log_d, log_p, state = model.run(torch.tensor([[token]], device=ref.device), state)
            melodies.append(notes)
    finally:
        model.train(was_training)
    return melodies


SPEC = EngineSpec(
    name="melody-gru",
    description="Parallel rhythm and melody GRU networks over notes; melody conditioned on the upcoming "
                "duration (Colombo et al. 2016)",
    family="language-model",
    paper=Paper(
        title="Algorithmic Composition of Melodies with Deep Recurrent Neural Networks",
        authors="Florian Colombo, Samuel P. Muscinelli, Alexander Seeholzer, Johanni Brea, Wulfram Gerstner",
        arxiv="1606.07251",
        year=2016,
    ),
    build=MelodyGRU,
    default_config={"num_durations": DEFAULT_NUM_DURATIONS, "embedding_dim": 32, "hidden_size": 128,
                    "num_layers": 2, "init_range": 0.1},
    taps=GRULayer.tap_patterns() + RhythmGRULayer.tap_patterns(),
    default_dataset="chorales",
    train_defaults={**LANGUAGE_MODEL_TRAIN_DEFAULTS, "steps": 400, "batch_size": 16, "bptt": 32, "dropout": 0.1,
                    "eval_every": 100, "threads": 1},
)
