r"""Engine ``seq2seq-ac``: actor-critic training for sequence prediction (Bahdanau et al., arXiv:1607.07086).

"An Actor-Critic Algorithm for Sequence Prediction" (Bahdanau, Brakel, Xu, Goyal, Lowe, Pineau, Courville,
Bengio; ICLR 2017), models_recurrent.md §13. The **actor** is the ``seq2seq-attn`` model
(:class:`~lstmviz.engines.seq2seq.attention.Seq2SeqAttention`, equations there); the **critic** is a second
``Seq2SeqAttention`` whose encoder reads the ground truth ``Y`` (``y_1 .. y_n <eos>``) as its source and
whose decoder reads the actor's prefix; its output layer gives one value per token, read as
``Q̂_φ(a; ŷ_{<t}, Y)`` (no softmax). Only the critic ever reads ``Y``.

Notation: ``ŷ_0 = <bos>``; decoder row ``t = 0 .. n-1`` reads ``ŷ_{≤t}`` and emits ``ŷ_{t+1}``; the last
emitted token is ``<eos>`` (or the output was cut at the sampling length). ``A`` = every token except
``<pad>`` and ``<bos>`` (never emitted; their actor logits are ``-inf`` as in decoding).

Task score and rewards (potential-based, so they telescope)::

    R(ŷ_{1..k}, Y) = smoothed sentence BLEU of the tokens ŷ_{1..k} without <eos>   (R(empty) = 0)
    r_t = R(ŷ_{≤t+1}, Y) − R(ŷ_{≤t}, Y)          (row t; an <eos> row gets r = 0)
    Σ_t r_t = R(Ŷ, Y)

Smoothed BLEU (``reward="bleu"``, order ``N = bleu_order``, "BLEU+1" of Lin & Och 2004 — the paper asks
for a smoothed BLEU and leaves the smoothing open): with ``c = |ŷ|``, ``ρ = |Y|``, clipped n-gram matches
``m_n`` and hypothesis n-gram counts ``c_n = max(c − n + 1, 0)``::

    p_1 = m_1 / c_1,    p_n = (m_n + 1) / (c_n + 1)  for n = 2 .. N
    BP = 1 if c > ρ else exp(1 − ρ / c)
    BLEU = BP · exp((1/N) Σ_n log p_n)         (0 when c = 0 or m_1 = 0)

``reward="edit"`` uses ``R = 1 − lev(ŷ, Y) / max(|Y|, 1)`` (Levenshtein distance on tokens; R(empty) = 0
is kept by defining the empty prefix's potential as 0 too, so Σ r_t = R(Ŷ, Y) still holds).

Critic target with the **delayed actor** ``p'`` and **target critic** ``Q̂'`` (copies updated softly)::

    q_t = r_t + [row t is not terminal] · Σ_{a∈A} p'(a | ŷ_{≤t+1}, X) Q̂'(a; ŷ_{≤t+1}, Y)
    L_critic = Σ_t (Q̂(ŷ_{t+1}; ŷ_{≤t}, Y) − q_t)² + λ Σ_t Σ_{a∈A} (Q̂(a; ŷ_{≤t}) − mean_{b∈A} Q̂(b; ŷ_{≤t}))²

(a row is terminal when it emits ``<eos>`` or is the last row of an output cut at the sampling length —
a cut output is treated as ended, not bootstrapped.) Actor, all-actions estimator, ``Q̂`` detached::

    L_actor = − Σ_t Σ_{a∈A} p_θ(a | ŷ_{≤t}, X) · Q̂(a; ŷ_{≤t}, Y)     + ll_weight · NLL(Y | X)
    ∂L_actor / ∂z_t = − p_t ⊙ (Q̂_t − Σ_b p_t(b) Q̂_t(b))             (z_t: the actor's logits at row t)

Soft target updates after every optimiser step: ``θ' ← θ' + τ (θ − θ')``, ``φ' ← φ' + τ (φ − φ')``.
Every sum over ``t`` runs over rows up to and including the first ``<eos>`` (rows after it are masked);
both losses are divided by the number of such rows in the batch (a mean per emitted token).

Schedule (one training run or several): (1) log-likelihood pre-training of the actor — train
``seq2seq-attn`` and start from it with ``--set init=ll.pt``; (2) critic pre-training with the actor
fixed — the first ``critic_pretrain_steps`` optimiser steps of a ``seq2seq-ac`` run train only the critic
(the actor gets no gradient, so Adam leaves it unchanged); (3) joint training for the remaining steps.
The prefixes ``Ŷ`` are sampled from the delayed actor ``p'`` (Algorithm 1 of the paper), one per pair,
at most ``max |Y| + 1 + 4`` tokens.

Choices the paper leaves open or that differ from it, written down:

- the actor is an LSTM (``seq2seq-attn``), not the paper's GRU; the critic has the same architecture
  with its own weights and embedding (sizes ``critic_*``, default: the actor's);
- the critic's source is ``Y`` followed by ``<eos>`` (never empty), its decoder reads ``<bos> ŷ``;
- losses are means over emitted tokens, not sums; the variance penalty runs over ``A`` only;
- ``critic_init``: ``"random"`` (default, as in the paper: the critic starts from its own random
  weights) or ``"actor"`` (NOT in the paper): with ``init``, the critic's embedding, encoder, decoder
  and attention start as copies of the LL actor's, only its output layer (the value head ``Q̂``) is
  fresh — a critic that already reads and aligns like the actor, for short runs (docs/engines.md);
- ``init`` (a checkpoint path) is read once, when training starts (``prepare_training``), never when a
  ``seq2seq-ac`` checkpoint is loaded; the checkpoint must be a ``seq2seq-attn`` (or ``seq2seq-ac``)
  model with this model's actor sizes and the training data's vocabulary;
- the delayed actor and target critic are kept as buffers (``delayed__actor__*``, ``delayed__critic__*``)
  so a checkpoint holds them; ``updates`` counts the optimiser steps taken (it picks the phase).

Model interface (family ``seq2seq``): ``model(src, src_lengths, tgt_in)`` gives the ACTOR's logits;
``encode``/``initial_state``/``decode_step``/``greedy``/``beam_search`` are the actor's. The critic runs
when a reference is given: ``model(src, src_lengths, tgt_in, reference=Y)`` and
``model.greedy(src, src_lengths, max_len, reference=Y)`` (``reads_reference = True`` tells the recorder
to pass the references). ``model.loss(batch) -> (loss, rows)`` is the training step
(the family objective calls it).

Taps: the actor's (``encoder/...``, ``decoder/...``, see ``seq2seq-attn``) and, on the axis ``decoder``,
firing only when a reference is given, one call per row ``t``:

- ``critic/h``: the critic decoder's top-layer hidden state ``h_t`` (``[batch, critic hidden]``);
- ``critic/q``: ``Q̂(ŷ_{t+1}; ŷ_{≤t}, Y)``, the value of the token emitted at row t (``[batch, 1]``);
- ``critic/reward``: ``r_t`` (``[batch, 1]``);
- ``critic/advantage``: ``Q̂(ŷ_{t+1}) − Σ_a p(a) Q̂(a)`` at row t (``[batch, 1]``).

In a teacher-forced call the token emitted at row t is ``tgt_in[t + 1]``, and ``<eos>`` at the row after
the last token of ``tgt_in`` (a hypothesis cut at ``max_len`` and re-run teacher-forced therefore gets
``<eos>`` assumed at its last row); in :meth:`ActorCritic.greedy` it is the decoded token.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.datasets.pairs_base import BOS, EOS, PAD
from lstmviz.hooks.layout import STEP
from lstmviz.hooks.taps import Tap

from ..spec import EngineSpec, Paper
from .attention import DECODER_AXIS, Seq2SeqAttention

REWARDS = ("bleu", "edit")
CRITIC_INITS = ("random", "actor")
SAMPLE_EXTRA = 4  # sampled outputs have at most max |Y| + 1 + SAMPLE_EXTRA tokens


# ---------------------------------------------------------------------------------------------- task scores


def sentence_bleu(hyp: Sequence[int], ref: Sequence[int], order: int = 4) -> float:
    """Smoothed sentence BLEU ("BLEU+1": add-one for n >= 2; module docstring). 0 for an empty hypothesis."""
    hyp, ref = list(hyp), list(ref)
    c = len(hyp)
    if c == 0:
        return 0.0
    log_sum = 0.0
    for n in range(1, order + 1):
        h = Counter(tuple(hyp[i : i + n]) for i in range(c - n + 1))
        r = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
        matches = sum(min(k, r[g]) for g, k in h.items())
        count = max(c - n + 1, 0)
        if n == 1:
            if matches == 0:
                return 0.0
            log_sum += math.log(matches / count)
        else:
            log_sum += math.log((matches + 1) / (count + 1))
    bp = 1.0 if c > len(ref) else math.exp(1.0 - len(ref) / c)
    return bp * math.exp(log_sum / order)


def edit_score(hyp: Sequence[int], ref: Sequence[int]) -> float:
    """``1 − lev(hyp, ref) / max(|ref|, 1)`` (token Levenshtein distance); 0 for an empty hypothesis."""
    hyp, ref = list(hyp), list(ref)
    if not hyp:
        return 0.0
    prev = list(range(len(ref) + 1))
    for i, a in enumerate(hyp, 1):
        cur = [i]
        for j, b in enumerate(ref, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a != b)))
        prev = cur
    return 1.0 - prev[-1] / max(len(ref), 1)


def score(hyp: Sequence[int], ref: Sequence[int], reward: str = "bleu", order: int = 4) -> float:
    """The task score ``R(hyp, ref)`` (``<eos>`` must not be in ``hyp``)."""
    return sentence_bleu(hyp, ref, order) if reward == "bleu" else edit_score(hyp, ref)


def prefix_rewards(emitted: Sequence[int], ref: Sequence[int], reward: str = "bleu", order: int = 4) -> list[float]:
    """``r_t = R(ŷ_{≤t+1}) − R(ŷ_{≤t})`` for every emitted token (``<eos>`` ends the hypothesis; its row and
    rows after it get 0). ``Σ r_t`` equals ``score`` of the tokens before the first ``<eos>``."""
    out, hyp, prev, ended = [], [], 0.0, False
    for token in emitted:
        if ended or token == EOS or token == PAD:
            ended = True
            out.append(0.0)
            continue
        hyp.append(int(token))
        now = score(hyp, ref, reward, order)
        out.append(now - prev)
        prev = now
    return out


# ---------------------------------------------------------------------------------------------- losses


def allowed_actions(vocab_size: int, device=None) -> Tensor:
    """``[V]`` bool: the actions ``A`` (every token except ``<pad>`` and ``<bos>``)."""
    allowed = torch.ones(vocab_size, dtype=torch.bool, device=device)
    allowed[[PAD, BOS]] = False
    return allowed


def policy(logits: Tensor) -> Tensor:
    """The actor's distribution over ``A``: softmax with ``<pad>``/``<bos>`` impossible (probability 0)."""
    return torch.softmax(logits.masked_fill(~allowed_actions(logits.shape[-1], logits.device), float("-inf")), -1)


def row_mask(emitted: Tensor) -> Tensor:
    """``[B, T]`` bool: the rows up to and including the first ``<eos>`` (and not padding)."""
    is_eos = (emitted == EOS).long()
    after_eos = (torch.cumsum(is_eos, dim=1) - is_eos) > 0  # strictly after the first <eos>
    return (emitted != PAD) & ~after_eos


def critic_targets(rewards: Tensor, target_probs: Tensor, target_q: Tensor, emitted: Tensor) -> Tensor:
    """``q_t = r_t + [not terminal] Σ_a p'_{t+1}(a) Q̂'_{t+1}(a)`` (``[B, T]``; module docstring)."""
    mask = row_mask(emitted)
    value = (target_probs * target_q).sum(-1)  # [B, T]: the value of the prefix read at row t
    next_value = torch.cat([value[:, 1:], value.new_zeros(value.shape[0], 1)], dim=1)
    nxt_mask = torch.cat([mask[:, 1:], mask.new_zeros(mask.shape[0], 1)], dim=1)
    go_on = mask & nxt_mask & (emitted != EOS)
    return rewards + go_on.to(rewards.dtype) * next_value


def critic_loss(q: Tensor, emitted: Tensor, targets: Tensor, variance_penalty: float) -> tuple[Tensor, Tensor]:
    """``(Σ_t (Q̂(ŷ_{t+1}) − q_t)² + λ Σ_t Σ_{a∈A} (Q̂(a) − mean_A Q̂)², rows)`` over the masked rows (a sum)."""
    mask = row_mask(emitted)
    chosen = q.gather(2, emitted.clamp(min=0).unsqueeze(2)).squeeze(2)
    td = ((chosen - targets.detach()) ** 2).masked_fill(~mask, 0.0).sum()
    allowed = allowed_actions(q.shape[-1], q.device)
    qa = q[..., allowed]
    spread = ((qa - qa.mean(-1, keepdim=True)) ** 2).sum(-1).masked_fill(~mask, 0.0).sum()
    return td + variance_penalty * spread, mask.sum()


def actor_loss(logits: Tensor, q: Tensor, emitted: Tensor) -> Tensor:
    """``− Σ_t Σ_a p_θ(a | ŷ_{≤t}) Q̂(a)`` with ``Q̂`` detached, over the masked rows (a sum)."""
    mask = row_mask(emitted)
    p = policy(logits)
    expected = (p * q.detach().masked_fill(p == 0, 0.0)).sum(-1)
    return -expected.masked_fill(~mask, 0.0).sum()


# ---------------------------------------------------------------------------------------------- model


class _Silent(nn.Module):
    """A pass-through in place of a tap of the critic that is not recorded (its encoder reads Y, not X)."""

    def forward(self, x: Tensor, step: int | None = None) -> Tensor:
        return x


class _ScalarTap(Tap):
    """A step tap of one unit per row (``critic/q``, ``critic/reward``, ``critic/advantage``)."""

    units = 1


def _critic(vocab_size, embedding_size, hidden_size, num_layers, dropout, init_range) -> Seq2SeqAttention:
    critic = Seq2SeqAttention(vocab_size, embedding_size, hidden_size, num_layers, dropout, init_range)
    for l in range(num_layers):
        critic.encoder_taps[l]["h"] = _Silent()
        critic.encoder_taps[l]["c"] = _Silent()
        critic.decoder_taps[l]["c"] = _Silent()
        critic.decoder_taps[l]["h"] = _Silent()
    critic.decoder_taps[num_layers - 1]["h"] = Tap(
        "critic/h", signal="h", layout=STEP, axis=DECODER_AXIS,
        description="critic decoder top-layer hidden state h_t at row t (the critic reads Y and the actor's prefix)")
    critic.attention_tap = _Silent()
    critic.attn_hidden_tap = _Silent()
    return critic


class ActorCritic(nn.Module):
    r"""Actor (``seq2seq-attn``) and critic for actor-critic sequence training; equations in the module docstring.

    ``model(src, src_lengths, tgt_in, reference=None)`` -> the actor's logits ``[B, T, V]`` (the critic's taps
    fire when ``reference`` is given); ``loss(batch)`` -> ``(loss, rows)``; ``after_optimizer_step()`` does
    the soft target updates. Uses Q̂, p, r_t, q_t, τ, λ as in the docstring.
    """

    pad_id, bos_id, eos_id = PAD, BOS, EOS
    reads_reference = True  # the recorder passes the references (reference=) to forward() and greedy()

    def __init__(self, vocab_size: int, embedding_size: int = 32, hidden_size: int = 64, num_layers: int = 2,
                 dropout: float = 0.0, init_range: float = 0.1, critic_embedding_size: int | None = None,
                 critic_hidden_size: int | None = None, critic_layers: int | None = None, reward: str = "bleu",
                 bleu_order: int = 4, variance_penalty: float = 1e-3, tau: float = 1e-3,
                 critic_pretrain_steps: int = 200, ll_weight: float = 0.0, init: str | None = None,
                 critic_init: str = "random"):
        super().__init__()
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {reward!r}")
        if critic_init not in CRITIC_INITS:
            raise ValueError(f"critic_init must be one of {', '.join(CRITIC_INITS)}, got {critic_init!r}")
        if not 0 < tau <= 1:
            raise ValueError(f"tau must be in (0, 1], got {tau}")
        if variance_penalty < 0 or ll_weight < 0 or int(critic_pretrain_steps) < 0 or int(bleu_order) < 1:
            raise ValueError("variance_penalty, ll_weight and critic_pretrain_steps must be >= 0, bleu_order >= 1")
        self.actor = Seq2SeqAttention(vocab_size, embedding_size, hidden_size, num_layers, dropout, init_range)
        self.critic = _critic(vocab_size, critic_embedding_size or embedding_size, critic_hidden_size or hidden_size,
                              critic_layers or num_layers, dropout, init_range)
        self.vocab_size = int(vocab_size)
        self.reward, self.bleu_order = reward, int(bleu_order)
        self.variance_penalty, self.tau, self.ll_weight = float(variance_penalty), float(tau), float(ll_weight)
        self.critic_pretrain_steps = int(critic_pretrain_steps)
        self.init, self.critic_init = init, critic_init
        self.q_tap = _ScalarTap("critic/q", signal="q", layout=STEP, axis=DECODER_AXIS,
                                description="critic value Q(y_{t+1}; y_<=t, Y) of the token emitted at row t")
        self.reward_tap = _ScalarTap("critic/reward", signal="reward", layout=STEP, axis=DECODER_AXIS,
                                     description="reward r_t = R(y_<=t+1, Y) - R(y_<=t, Y) of the token emitted at "
                                                 "row t (smoothed BLEU increments; 0 for <eos>)")
        self.advantage_tap = _ScalarTap("critic/advantage", signal="advantage", layout=STEP, axis=DECODER_AXIS,
                                        description="Q(y_{t+1}) - sum_a p(a) Q(a) at row t (the emitted token's "
                                                    "advantage under the actor's distribution)")
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))
        for which in ("actor", "critic"):
            for name, p in getattr(self, which).named_parameters():
                self.register_buffer(self._buffer_name(which, name), p.detach().clone())
        self._shadows: dict[str, nn.Module] = {}
        self.last_losses: dict[str, float] = {}

    @staticmethod
    def _buffer_name(which: str, name: str) -> str:
        return f"delayed__{which}__{name.replace('.', '__')}"

    def extra_repr(self) -> str:
        return (f"reward={self.reward!r}, variance_penalty={self.variance_penalty}, tau={self.tau}, "
                f"critic_pretrain_steps={self.critic_pretrain_steps}, ll_weight={self.ll_weight}")

    # ------------------------------------------------------------------------------ the actor's interface

    def encode(self, src: Tensor, src_lengths: Tensor):
        return self.actor.encode(src, src_lengths)

    def initial_state(self, memory):
        return self.actor.initial_state(memory)

    def decode_step(self, memory, y_prev: Tensor, state, step: int = 0):
        return self.actor.decode_step(memory, y_prev, state, step)

    def beam_search(self, src: Tensor, src_lengths: Tensor, beam: int = 5, max_len: int | None = None,
                    length_penalty: float = 0.0) -> list[list[int]]:
        return self.actor.beam_search(src, src_lengths, beam=beam, max_len=max_len, length_penalty=length_penalty)

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor, reference: Sequence[Sequence[int]] | None = None
                ) -> Tensor:
        """The actor's teacher-forced logits; with ``reference`` the critic also runs (its taps fire)."""
        logits = self.actor(src, src_lengths, tgt_in)
        if reference is not None:
            lengths = (tgt_in != PAD).sum(1)
            emitted = torch.full_like(tgt_in, PAD)
            emitted[:, :-1] = tgt_in[:, 1:]
            rows = torch.arange(tgt_in.shape[1], device=tgt_in.device).unsqueeze(0)
            emitted = torch.where(rows == (lengths - 1).unsqueeze(1), torch.full_like(emitted, EOS), emitted)
            self.critique(tgt_in, emitted, reference, logits)
        return logits

    def greedy(self, src: Tensor, src_lengths: Tensor, max_len: int | None = None,
               reference: Sequence[Sequence[int]] | None = None) -> list[list[int]]:
        """The actor's greedy decoding (the same tokens as ``seq2seq-attn``'s); with ``reference`` the critic then
        reads the decoded prefixes (its taps fire)."""
        max_len = self.actor._max_len(src_lengths, max_len)
        memory = self.actor.encode(src, src_lengths)
        state = self.actor.initial_state(memory)
        B = src.shape[0]
        y = torch.full((B,), BOS, dtype=torch.int64, device=src.device)
        done = torch.zeros(B, dtype=torch.bool, device=src.device)
        emitted, all_logits = [], []
        for t in range(max_len):
            logits, state, _ = self.actor.decode_step(memory, y, state, step=t)
            y = self.actor._output_scores(logits).argmax(dim=1)
            emitted.append(y)
            all_logits.append(logits)
            done = done | (y == EOS)
            if bool(done.all()):
                break
        tokens = torch.stack(emitted, dim=1)
        rows = tokens.tolist()
        outputs = [row[: row.index(EOS)] if EOS in row else row for row in rows]
        if reference is not None:
            tokens = tokens.masked_fill(~row_mask(tokens), PAD)
            tgt_in = torch.cat([torch.full((B, 1), BOS, dtype=torch.int64, device=src.device), tokens[:, :-1]], 1)
            tgt_in = tgt_in.masked_fill(tokens == PAD, PAD)
            self.critique(tgt_in, tokens, reference, torch.stack(all_logits, dim=1))
        return outputs

    # ------------------------------------------------------------------------------ the critic

    def _critic_source(self, reference: Sequence[Sequence[int]], device) -> tuple[Tensor, Tensor]:
        """``(Y <eos> padded [B, n+1], lengths)``: what the critic's encoder reads."""
        refs = [[int(t) for t in r] + [EOS] for r in reference]
        lengths = torch.tensor([len(r) for r in refs], dtype=torch.int64, device=device)
        out = torch.full((len(refs), int(lengths.max())), PAD, dtype=torch.int64, device=device)
        for b, r in enumerate(refs):
            out[b, : len(r)] = torch.tensor(r, dtype=torch.int64, device=device)
        return out, lengths

    def q_values(self, tgt_in: Tensor, reference: Sequence[Sequence[int]], critic: nn.Module | None = None) -> Tensor:
        """``Q̂(a; ŷ_{≤t}, Y)`` for every row and token, ``[B, T, V]`` (``tgt_in`` = ``<bos> ŷ`` padded)."""
        if len(reference) != tgt_in.shape[0]:
            raise ValueError(f"expected {tgt_in.shape[0]} references (one per item), got {len(reference)}")
        src, lengths = self._critic_source(reference, tgt_in.device)
        return (critic or self.critic)(src, lengths, tgt_in)

    def rewards(self, emitted: Tensor, reference: Sequence[Sequence[int]]) -> Tensor:
        """``r_t`` per row ``[B, T]`` float64 (:func:`prefix_rewards`)."""
        rows = [prefix_rewards(e, r, self.reward, self.bleu_order) for e, r in zip(emitted.tolist(), reference)]
        return torch.tensor(rows, dtype=torch.float64, device=emitted.device).reshape(emitted.shape)

    def critique(self, tgt_in: Tensor, emitted: Tensor, reference, logits: Tensor) -> dict[str, Tensor]:
        """Run the critic over the prefixes ``tgt_in`` (emitting ``emitted``), fire its taps, return
        ``{"q": [B, T, V], "chosen", "reward", "advantage": [B, T]}``."""
        q = self.q_values(tgt_in, reference)
        p = policy(logits)
        chosen = q.gather(2, emitted.clamp(min=0).unsqueeze(2)).squeeze(2)
        advantage = chosen - (p * q.masked_fill(p == 0, 0.0)).sum(-1)
        reward = self.rewards(emitted, reference).to(q.dtype)
        for t in range(tgt_in.shape[1]):
            self.q_tap(chosen[:, t : t + 1], step=t)
            self.reward_tap(reward[:, t : t + 1], step=t)
            self.advantage_tap(advantage[:, t : t + 1], step=t)
        return {"q": q, "chosen": chosen, "reward": reward, "advantage": advantage}

    # ------------------------------------------------------------------------------ delayed nets

    def _shadow(self, which: str) -> nn.Module:
        """The delayed actor / target critic: an unregistered copy (no taps found, no gradients) loaded from
        the ``delayed__*`` buffers."""
        live = getattr(self, which)
        ref = next(live.parameters())
        shadow = self._shadows.get(which)
        if shadow is None or next(shadow.parameters()).dtype != ref.dtype or next(shadow.parameters()).device != ref.device:
            shadow = copy.deepcopy(live).eval().requires_grad_(False)
            for module in shadow.modules():
                module._forward_hooks.clear()
                module._forward_pre_hooks.clear()
            self._shadows[which] = shadow
        with torch.no_grad():
            for name, p in shadow.named_parameters():
                p.copy_(getattr(self, self._buffer_name(which, name)))
        return shadow

    def sync_delayed(self) -> None:
        """Set the delayed actor and target critic to the live weights (after loading an initial actor)."""
        with torch.no_grad():
            for which in ("actor", "critic"):
                for name, p in getattr(self, which).named_parameters():
                    getattr(self, self._buffer_name(which, name)).copy_(p)

    def after_optimizer_step(self) -> None:
        """Soft target updates ``θ' ← θ' + τ (θ − θ')``, ``φ' ← φ' + τ (φ − φ')``; count the step."""
        with torch.no_grad():
            for which in ("actor", "critic"):
                for name, p in getattr(self, which).named_parameters():
                    getattr(self, self._buffer_name(which, name)).lerp_(p, self.tau)
            self.updates += 1

    @property
    def phase(self) -> str:
        """``"critic"`` (pre-training the critic, actor fixed) or ``"joint"``."""
        return "critic" if int(self.updates) < self.critic_pretrain_steps else "joint"

    # ------------------------------------------------------------------------------ training

    @torch.no_grad()
    def sample(self, src: Tensor, src_lengths: Tensor, max_len: int, actor: nn.Module | None = None) -> Tensor:
        """Sampled outputs ``[B, T]`` (``<eos>`` included, ``<pad>`` after it; T <= max_len) from ``actor``
        (default: the delayed actor)."""
        actor = actor or self._shadow("actor")
        memory = actor.encode(src, src_lengths)
        state = actor.initial_state(memory)
        B = src.shape[0]
        y = torch.full((B,), BOS, dtype=torch.int64, device=src.device)
        done = torch.zeros(B, dtype=torch.bool, device=src.device)
        out = []
        for t in range(max_len):
            logits, state, _ = actor.decode_step(memory, y, state, step=t)
            y = torch.multinomial(policy(logits), 1).squeeze(1)
            y = y.masked_fill(done, PAD)
            out.append(y)
            done = done | (y == EOS)
            if bool(done.all()):
                break
        return torch.stack(out, dim=1)

    def loss(self, batch) -> tuple[Tensor, int]:
        """One actor-critic step on a :class:`~lstmviz.engines.families.seq2seq.api.Seq2SeqBatch` (module
        docstring): the critic loss, plus (joint phase) the actor loss; a mean per emitted token."""
        references = batch.references()
        max_len = int(batch.tgt_lengths.max()) + SAMPLE_EXTRA
        emitted = self.sample(batch.src, batch.src_lengths, max_len)
        B = emitted.shape[0]
        tgt_in = torch.cat([torch.full((B, 1), BOS, dtype=torch.int64, device=emitted.device), emitted[:, :-1]], 1)
        tgt_in = tgt_in.masked_fill(emitted == PAD, PAD)
        rewards = self.rewards(emitted, references)
        with torch.no_grad():
            target_probs = policy(self._shadow("actor")(batch.src, batch.src_lengths, tgt_in))
            target_q = self.q_values(tgt_in, references, critic=self._shadow("critic"))
        targets = critic_targets(rewards.to(target_q.dtype), target_probs, target_q, emitted)
        q = self.q_values(tgt_in, references)
        c_loss, rows = critic_loss(q, emitted, targets, self.variance_penalty)
        rows = max(int(rows), 1)
        total = c_loss / rows
        self.last_losses = {"critic": float(c_loss.detach()) / rows, "reward": float(rewards.sum()) / B}
        if self.phase == "joint":
            logits = self.actor(batch.src, batch.src_lengths, tgt_in)
            a_loss = actor_loss(logits, q, emitted) / rows
            total = total + a_loss
            self.last_losses["actor"] = float(a_loss.detach())
            if self.ll_weight:
                ll_logits = self.actor(batch.src, batch.src_lengths, batch.tgt_in)
                nll = F.cross_entropy(ll_logits.reshape(-1, ll_logits.shape[-1]), batch.tgt_out.reshape(-1),
                                      ignore_index=PAD)
                total = total + self.ll_weight * nll
                self.last_losses["nll"] = float(nll.detach())
        return total, rows

    def prepare_training(self, dataset_train) -> None:
        """Load the initial actor from ``init`` (a ``seq2seq-attn`` or ``seq2seq-ac`` checkpoint), if given."""
        if not self.init:
            return
        from ..checkpoint import load_checkpoint

        model, meta = load_checkpoint(self.init)
        if meta["engine"] == "seq2seq-ac":
            model = model.actor
        elif meta["engine"] != "seq2seq-attn":
            raise ValueError(f"init={self.init}: expected a seq2seq-attn (or seq2seq-ac) checkpoint, got engine "
                             f"{meta['engine']!r}")
        vocab = [str(t) for t in getattr(dataset_train, "vocab", ())]
        if vocab and [str(t) for t in meta["vocab"]] != vocab:
            raise ValueError(f"init={self.init}: the checkpoint's vocabulary differs from the training data's")
        for key in ("embedding_size", "hidden_size", "num_layers"):
            mine, theirs = getattr(self.actor, key), getattr(model, key)
            if mine != theirs:
                raise ValueError(f"init={self.init}: the checkpoint's actor has {key}={theirs}, this model {mine}; "
                                 f"pass --set {key}={theirs}")
        ref = next(self.actor.parameters())
        state = {k: v.to(ref) for k, v in model.state_dict().items()}
        self.actor.load_state_dict(state)
        if self.critic_init == "actor":  # the critic reads like the LL actor; its value head stays fresh
            for key in ("embedding_size", "hidden_size", "num_layers"):
                if getattr(self.critic, key) != getattr(self.actor, key):
                    raise ValueError(f"critic_init=actor needs the critic's sizes equal to the actor's; critic "
                                     f"{key}={getattr(self.critic, key)}, actor {getattr(self.actor, key)}")
            head = {k: v for k, v in self.critic.state_dict().items() if k.startswith("output.")}
            self.critic.load_state_dict({**state, **head})
        self.sync_delayed()


SPEC = EngineSpec(
    name="seq2seq-ac",
    description="actor-critic sequence training (Bahdanau et al.): seq2seq-attn actor, critic reading the reference, "
                "smoothed-BLEU rewards, delayed actor/target critic",
    family="seq2seq",
    paper=Paper(
        title="An Actor-Critic Algorithm for Sequence Prediction",
        authors="Dzmitry Bahdanau, Philemon Brakel, Kelvin Xu, Anirudh Goyal, Ryan Lowe, Joelle Pineau, "
                "Aaron Courville, Yoshua Bengio",
        arxiv="1607.07086",
        year=2017,
    ),
    build=ActorCritic,
    default_config={"embedding_size": 32, "hidden_size": 64, "num_layers": 2, "init_range": 0.1, "reward": "bleu",
                    "bleu_order": 4, "variance_penalty": 1e-3, "tau": 1e-3, "critic_pretrain_steps": 200,
                    "ll_weight": 0.0, "init": None, "critic_init": "random"},
    taps=("encoder/layer{layer}/h", "encoder/layer{layer}/c", "decoder/layer{layer}/h", "decoder/layer{layer}/c",
          "decoder/attn_hidden", "decoder/attention", "critic/h", "critic/q", "critic/reward", "critic/advantage"),
    default_dataset="spelling",
    train_defaults={"steps": 600, "batch_size": 32, "lr": 1e-3, "optimizer": "adam", "clip": 1.0,
                    "dropout": 0.0, "eval_every": 200, "seed": 0,
                    "threads": 1},  # small models stepped in Python: one torch thread, as seq2seq-attn
)
