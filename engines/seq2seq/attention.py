r"""Engine ``seq2seq-attn``: Luong et al.'s global-attention encoder-decoder (arXiv:1508.04025).

"Effective Approaches to Attention-based Neural Machine Translation" (Luong, Pham & Manning 2015), the
base model of Kim & Rush's sequence-level distillation and of See et al.'s NMT pruning
(models_recurrent.md §15). Stacked LSTM encoder and decoder, global attention with the *general* score,
input feeding.

Encoder (source ``x_1 .. x_S``, ``L`` stacked LSTM layers, layer 0 reads ``E x_s``)::

    (h^l_s, c^l_s) = LSTM^l_enc(h^{l-1}_s, (h^l_{s-1}, c^l_{s-1})),     h^0_s = E x_s
    \bar h_s = h^L_s                                                      (the memory, s = 1 .. S)

Decoder (target input ``y_0 = <bos>, y_1, ..``; its layer ``l`` starts from the encoder's final
``(h^l_S, c^l_S)`` of the item's own length; ``\tilde h_0 = 0``)::

    (h^l_t, c^l_t) = LSTM^l_dec(h^{l-1}_t, (h^l_{t-1}, c^l_{t-1})),   h^0_t = [E y_{t-1} ; \tilde h_{t-1}]  (input feeding)
    score(h_t, \bar h_s) = h_t^T W_a \bar h_s                            ("general"; h_t = h^L_t)
    a_t(s) = exp(score_s) / sum_{s' < len} exp(score_{s'})              (0 exactly on pads: s >= len)
    ctx_t = sum_s a_t(s) \bar h_s
    \tilde h_t = tanh(W_c [ctx_t ; h_t])                                  (no bias, as in the paper)
    p(y_t | y_<t, x) = softmax(W_s \tilde h_t + b_s)

Each LSTM layer is ``i, f, g, o = sigma, sigma, tanh, sigma (W_ih x + b_ih + W_hh h_{t-1} + b_hh)``,
``c_t = f * c_{t-1} + i * g``, ``h_t = o * tanh(c_t)`` (``nn.LSTM``'s parameter layout).

Choices the paper leaves open or that differ from it, written down:

- ONE embedding matrix ``E`` is **shared** by the encoder and decoder inputs (source and target share a
  vocabulary here); the output layer ``W_s`` is **not** tied to it.
- Padding: sources are right-padded with ``<pad>``; the encoder state stops changing past an item's
  length (its final state is the one at the last real token), attention scores of pad positions are
  ``-inf`` so their weights are exactly 0 and the memory at pads is never read.
- ``<pad>`` and ``<bos>`` are never emitted by :meth:`greedy` / :meth:`beam_search` (their logits are
  masked), the decoder's first input is ``<bos>``; decoding stops at ``<eos>``.
- ``input_feeding=False`` (an ablation, not the paper's model): layer 0 of the decoder reads ``E y_{t-1}``
  only (Luong et al.'s "global attention without feed input"); ``benchmarks/seq2seq_claims.py`` compares.
- Dropout (``dropout``) on the embeddings, between stacked layers and on ``\tilde h_t`` before ``W_s``,
  never on the recurrent connections nor on the fed-back ``\tilde h_{t-1}``; weights uniform in
  ``[-init_range, init_range]`` (the paper: 0.1).
- Beam search (:meth:`beam_search`): batched over items and beams; each step keeps the ``2 K`` best
  extensions per item, a hypothesis ending in ``<eos>`` among the ``K`` best is set aside as finished,
  the ``K`` best others continue; an item is done when it has ``K`` finished hypotheses; at ``max_len``
  the live ones count as finished (unterminated). The best is chosen by ``log p / lp(|y|)`` with
  GNMT's ``lp(n) = ((5 + n) / 6)^alpha`` (``length_penalty = alpha``; 0: plain log-probability), ``|y|``
  counting ``<eos>``. With ``beam=1`` it is greedy decoding.

Taps (``lstmviz.hooks.Tap``, one call per step, ``[batch, units]``, ``step=`` the position):
``encoder/layer{l}/h``, ``encoder/layer{l}/c`` on the main axis ``positions`` (source positions);
``decoder/layer{l}/h``, ``decoder/layer{l}/c``, ``decoder/attn_hidden`` (``\tilde h_t``) and
``decoder/attention`` (``a_t``, ``[batch, S]``: unit ``j`` is source position ``j``) on the axis ``decoder``.
A hook that replaces a tap's value changes what follows (the edited ``\tilde h_t`` is what is fed to step
``t + 1`` and what the output layer reads).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.datasets.pairs_base import BOS, EOS, PAD
from lstmviz.hooks.layout import STEP
from lstmviz.hooks.taps import Tap

from ..spec import EngineSpec, Paper

DECODER_AXIS = "decoder"


class LSTMLayer(nn.Module):
    """One LSTM layer with ``nn.LSTM``'s parameters (gate order i, f, g, o); see the module docstring."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size))

    def project(self, x: Tensor) -> Tensor:
        """``W_ih x + b_ih + b_hh`` (any leading shape)."""
        return F.linear(x, self.weight_ih, self.bias_ih + self.bias_hh)

    def step(self, x_proj: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        i, f, g, o = torch.addmm(x_proj, h, self.weight_hh.t()).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


@dataclass
class Memory:
    """The encoder's output for a batch: what every decoder step reads.

    ``states [B, S, H]`` (top-layer ``\\bar h_s``), ``keys [B, S, H]`` (``W_a \\bar h_s``), ``mask [B, S]``
    (True on real source positions), ``lengths [B]``, ``h``/``c [L, B, H]`` (final encoder states per layer).
    """

    states: Tensor
    keys: Tensor
    mask: Tensor
    lengths: Tensor
    h: Tensor
    c: Tensor

    def select(self, index: Tensor) -> "Memory":
        """The memory of rows ``index`` (a beam's expansion or reordering)."""
        return Memory(self.states.index_select(0, index), self.keys.index_select(0, index),
                      self.mask.index_select(0, index), self.lengths.index_select(0, index),
                      self.h.index_select(1, index), self.c.index_select(1, index))


@dataclass
class DecoderState:
    """The decoder's recurrent state: ``h``/``c [L, B, H]`` and ``feed [B, H]`` (``\\tilde h_{t-1}``, input feeding)."""

    h: Tensor
    c: Tensor
    feed: Tensor

    def select(self, index: Tensor) -> "DecoderState":
        return DecoderState(self.h.index_select(1, index), self.c.index_select(1, index),
                            self.feed.index_select(0, index))


class Seq2SeqAttention(nn.Module):
    r"""Luong global-attention encoder-decoder (general score, input feeding); equations in the module docstring.

    ``model(src [B, S], src_lengths [B], tgt_in [B, T]) -> logits [B, T, V]`` (teacher forced: ``tgt_in``
    starts with ``<bos>``); :meth:`encode`, :meth:`initial_state`, :meth:`decode_step` (one step, used by
    every decoder), :meth:`greedy`, :meth:`beam_search`. Uses h_t, c_t, tanh, sigma as in the docstring.
    The decoders run as called: call ``model.eval()`` (no dropout) and wrap them in ``torch.no_grad()`` for
    inference; with autograd on, :meth:`decode_step` is differentiable (sampling-based training can use it).
    """

    pad_id, bos_id, eos_id = PAD, BOS, EOS

    def __init__(self, vocab_size: int, embedding_size: int = 64, hidden_size: int = 128, num_layers: int = 2,
                 dropout: float = 0.0, init_range: float = 0.1, input_feeding: bool = True):
        super().__init__()
        if num_layers < 1 or hidden_size < 1 or embedding_size < 1:
            raise ValueError("num_layers, hidden_size and embedding_size must be positive")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.vocab_size, self.embedding_size = int(vocab_size), int(embedding_size)
        self.hidden_size, self.num_layers = int(hidden_size), int(num_layers)
        self.dropout_p = float(dropout)
        self.input_feeding = bool(input_feeding)
        H, E, L = self.hidden_size, self.embedding_size, self.num_layers
        self.embedding = nn.Embedding(vocab_size, E)  # shared by encoder and decoder
        self.encoder_layers = nn.ModuleList(LSTMLayer(E if l == 0 else H, H) for l in range(L))
        first = E + H if self.input_feeding else E
        self.decoder_layers = nn.ModuleList(LSTMLayer(first if l == 0 else H, H) for l in range(L))
        self.attn_W = nn.Linear(H, H, bias=False)  # W_a of the general score
        self.attn_combine = nn.Linear(2 * H, H, bias=False)  # W_c
        self.output = nn.Linear(H, vocab_size)  # W_s, b_s
        self.dropout = nn.Dropout(dropout)
        self.encoder_taps = nn.ModuleList(nn.ModuleDict({
            "h": Tap(f"encoder/layer{l}/h", signal="h", layer=l, layout=STEP,
                     description=f"encoder layer {l} hidden state h_s at source position s, in (-1, 1)"),
            "c": Tap(f"encoder/layer{l}/c", signal="c", layer=l, layout=STEP,
                     description=f"encoder layer {l} cell state c_s at source position s"),
        }) for l in range(L))
        self.decoder_taps = nn.ModuleList(nn.ModuleDict({
            "h": Tap(f"decoder/layer{l}/h", signal="h", layer=l, layout=STEP, axis=DECODER_AXIS,
                     description=f"decoder layer {l} hidden state h_t at decoder step t, in (-1, 1)"),
            "c": Tap(f"decoder/layer{l}/c", signal="c", layer=l, layout=STEP, axis=DECODER_AXIS,
                     description=f"decoder layer {l} cell state c_t at decoder step t"),
        }) for l in range(L))
        self.attn_hidden_tap = Tap("decoder/attn_hidden", signal="attn_hidden", layout=STEP, axis=DECODER_AXIS,
                                   description="attentional hidden state h~_t = tanh(W_c [ctx_t; h_t]), in (-1, 1); "
                                               "read by the output layer and fed to step t+1")
        self.attention_tap = Tap("decoder/attention", signal="attention", layout=STEP, axis=DECODER_AXIS,
                                 description="attention weights a_t over source positions (unit j = source "
                                             "position j); sum to 1 over the real positions, exactly 0 on pads")
        self.reset_parameters(init_range)

    def reset_parameters(self, init_range: float = 0.1) -> None:
        for p in self.parameters():
            nn.init.uniform_(p, -init_range, init_range)

    # ------------------------------------------------------------------------------------------ encoder

    def encode(self, src: Tensor, src_lengths: Tensor) -> Memory:
        """Run the encoder over ``src [B, S]`` (right-padded) with ``src_lengths [B]``."""
        if src.dim() != 2:
            raise ValueError(f"expected src [batch, source length], got shape {tuple(src.shape)}")
        B, S = src.shape
        lengths = torch.as_tensor(src_lengths, dtype=torch.int64, device=src.device).reshape(-1)
        if lengths.numel() != B or int(lengths.min()) < 1 or int(lengths.max()) > S:
            raise ValueError(f"expected {B} source lengths in 1 .. {S}, got {lengths.tolist()}")
        mask = torch.arange(S, device=src.device).unsqueeze(0) < lengths.unsqueeze(1)
        x = self.dropout(self.embedding(src))
        finals_h, finals_c = [], []
        for l, layer in enumerate(self.encoder_layers):
            taps = self.encoder_taps[l]
            proj = layer.project(x)
            h = proj.new_zeros(B, self.hidden_size)
            c = proj.new_zeros(B, self.hidden_size)
            outputs = []
            for s in range(S):
                h_new, c_new = layer.step(proj[:, s], h, c)
                h_new = taps["h"](h_new, step=s)
                c_new = taps["c"](c_new, step=s)
                keep = mask[:, s : s + 1]
                h = torch.where(keep, h_new, h)  # past the item's length the state stays at its last real token
                c = torch.where(keep, c_new, c)
                outputs.append(h)
            x = torch.stack(outputs, dim=1)
            if l < self.num_layers - 1:
                x = self.dropout(x)
            finals_h.append(h)
            finals_c.append(c)
        return Memory(states=x, keys=self.attn_W(x), mask=mask, lengths=lengths,
                      h=torch.stack(finals_h), c=torch.stack(finals_c))

    # ------------------------------------------------------------------------------------------ decoder

    def initial_state(self, memory: Memory) -> DecoderState:
        """The decoder's first state: the encoder's final states per layer, ``\\tilde h_0 = 0``."""
        return DecoderState(memory.h, memory.c, memory.states.new_zeros(memory.states.shape[0], self.hidden_size))

    def decode_step(self, memory: Memory, y_prev: Tensor, state: DecoderState, step: int = 0
                    ) -> tuple[Tensor, DecoderState, Tensor]:
        """One decoder step: ``(logits [B, V], next state, attention [B, S])`` for inputs ``y_prev [B]``.

        ``step`` is the decoder position (passed to the taps)."""
        x = self.dropout(self.embedding(y_prev))
        inp = torch.cat([x, state.feed], dim=1) if self.input_feeding else x  # input feeding: h~_{t-1} enters step t
        hs, cs = [], []
        for l, layer in enumerate(self.decoder_layers):
            taps = self.decoder_taps[l]
            h, c = layer.step(layer.project(inp), state.h[l], state.c[l])
            h = taps["h"](h, step=step)
            c = taps["c"](c, step=step)
            hs.append(h)
            cs.append(c)
            inp = self.dropout(h) if l < self.num_layers - 1 else h
        top = hs[-1]
        scores = torch.bmm(memory.keys, top.unsqueeze(2)).squeeze(2)  # h_t^T W_a h̄_s
        scores = scores.masked_fill(~memory.mask, float("-inf"))
        attention = self.attention_tap(torch.softmax(scores, dim=1), step=step)
        context = torch.bmm(attention.unsqueeze(1), memory.states).squeeze(1)
        h_tilde = torch.tanh(self.attn_combine(torch.cat([context, top], dim=1)))
        h_tilde = self.attn_hidden_tap(h_tilde, step=step)
        logits = self.output(self.dropout(h_tilde))
        return logits, DecoderState(torch.stack(hs), torch.stack(cs), h_tilde), attention

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher-forced logits ``[B, T, V]``: step ``t`` reads ``tgt_in[:, t]`` (``<bos>`` first)."""
        memory = self.encode(src, src_lengths)
        state = self.initial_state(memory)
        out = []
        for t in range(tgt_in.shape[1]):
            logits, state, _ = self.decode_step(memory, tgt_in[:, t], state, step=t)
            out.append(logits)
        return torch.stack(out, dim=1)

    # ------------------------------------------------------------------------------------------ decoding

    def _output_scores(self, logits: Tensor) -> Tensor:
        """Logits with ``<pad>`` and ``<bos>`` impossible (they are never emitted)."""
        banned = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
        banned[[PAD, BOS]] = True
        return logits.masked_fill(banned, float("-inf"))

    @staticmethod
    def _max_len(src_lengths: Tensor, max_len: int | None) -> int:
        if max_len is None:
            return 2 * int(torch.as_tensor(src_lengths).max()) + 10
        if int(max_len) < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        return int(max_len)

    def greedy(self, src: Tensor, src_lengths: Tensor, max_len: int | None = None) -> list[list[int]]:
        """Greedy decoding: per item the arg-max tokens up to ``<eos>`` (excluded) or ``max_len`` tokens
        (default ``2 * longest source + 10``)."""
        max_len = self._max_len(src_lengths, max_len)
        memory = self.encode(src, src_lengths)
        state = self.initial_state(memory)
        B = src.shape[0]
        y = torch.full((B,), BOS, dtype=torch.int64, device=src.device)
        done = torch.zeros(B, dtype=torch.bool, device=src.device)
        emitted = []
        for t in range(max_len):
            logits, state, _ = self.decode_step(memory, y, state, step=t)
            y = self._output_scores(logits).argmax(dim=1)
            emitted.append(y)
            done = done | (y == EOS)
            if bool(done.all()):
                break
        rows = torch.stack(emitted, dim=1).tolist()
        return [row[: row.index(EOS)] if EOS in row else row for row in rows]

    def beam_search(self, src: Tensor, src_lengths: Tensor, beam: int = 5, max_len: int | None = None,
                    length_penalty: float = 0.0) -> list[list[int]]:
        """The best hypothesis per item (token ids without bos/eos) by beam search (module docstring)."""
        K = int(beam)
        if K < 1:
            raise ValueError(f"beam must be >= 1, got {beam}")
        max_len = self._max_len(src_lengths, max_len)
        B, device = src.shape[0], src.device
        memory = self.encode(src, src_lengths)
        rows = torch.arange(B, device=device).repeat_interleave(K)
        memory = memory.select(rows)
        state = self.initial_state(memory)
        scores = torch.full((B, K), float("-inf"), dtype=memory.states.dtype, device=device)
        scores[:, 0] = 0.0
        history = torch.zeros(B * K, 0, dtype=torch.int64, device=device)
        y = torch.full((B * K,), BOS, dtype=torch.int64, device=device)
        finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
        done = [False] * B
        base = (torch.arange(B, device=device) * K).unsqueeze(1)

        def penalty(n: int) -> float:
            return ((5.0 + n) / 6.0) ** length_penalty if length_penalty else 1.0

        for t in range(max_len):
            logits, state, _ = self.decode_step(memory, y, state, step=t)
            logp = torch.log_softmax(self._output_scores(logits), dim=1)
            V = logp.shape[1]
            candidates = (scores.reshape(B * K, 1) + logp).reshape(B, K * V)
            width = min(2 * K, K * V)
            top_scores, top_index = candidates.topk(width, dim=1)
            source_beam, token = top_index // V, top_index % V
            is_eos = token == EOS
            # finished: <eos> among the K best extensions of an item that is not done yet
            ranks = torch.arange(width, device=device).unsqueeze(0)
            final = is_eos & (ranks < K) & torch.isfinite(top_scores)
            for b, r in final.nonzero().tolist():
                if done[b]:
                    continue
                prefix = history[b * K + int(source_beam[b, r])].tolist()
                finished[b].append((float(top_scores[b, r]) / penalty(t + 1), prefix))
            for b in range(B):
                if not done[b] and len(finished[b]) >= K:
                    done[b] = True
            if all(done):
                break
            # the K best extensions that are not <eos> continue
            order = (is_eos.to(torch.int64) * width + ranks).argsort(dim=1)[:, :K]
            keep_beam = source_beam.gather(1, order)
            token = token.gather(1, order)
            scores = top_scores.gather(1, order).masked_fill(token == EOS, float("-inf"))
            flat = (base + keep_beam).reshape(-1)
            history = torch.cat([history.index_select(0, flat), token.reshape(-1, 1)], dim=1)
            state = state.select(flat)
            y = token.reshape(-1)
        else:
            length = history.shape[1]
            for b in range(B):
                if done[b]:
                    continue
                for k in range(K):
                    if torch.isfinite(scores[b, k]):
                        finished[b].append((float(scores[b, k]) / penalty(length), history[b * K + k].tolist()))
        best = []
        for b in range(B):
            if not finished[b]:
                best.append([])
                continue
            best.append(max(finished[b], key=lambda pair: pair[0])[1])  # the first of equal scores
        return best


SPEC = EngineSpec(
    name="seq2seq-attn",
    description="Luong global-attention LSTM encoder-decoder (general score, input feeding); greedy and beam decoding",
    family="seq2seq",
    paper=Paper(
        title="Effective Approaches to Attention-based Neural Machine Translation",
        authors="Minh-Thang Luong, Hieu Pham, Christopher D. Manning",
        arxiv="1508.04025",
        year=2015,
    ),
    build=Seq2SeqAttention,
    default_config={"embedding_size": 32, "hidden_size": 64, "num_layers": 2, "init_range": 0.1},
    taps=("encoder/layer{layer}/h", "encoder/layer{layer}/c", "decoder/layer{layer}/h", "decoder/layer{layer}/c",
          "decoder/attn_hidden", "decoder/attention"),
    default_dataset="reverse",
    train_defaults={"steps": 2000, "batch_size": 64, "lr": 2e-3, "optimizer": "adam", "clip": 1.0,
                    "dropout": 0.0, "eval_every": 500, "seed": 0,
                    # a small model stepped in Python: a second torch thread only adds waiting on shared cores
                    # (2000 steps on reverse: 65 s with 1 thread, 117 s with 2, same weights and metrics)
                    "threads": 1},
)
