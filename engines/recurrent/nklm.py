r"""Engine ``nklm``: the Neural Knowledge Language Model (Ahn, Choi, Pärnamaa, Bengio 2016, arXiv:1608.00318).

An item is one document about a topic entity: a header of facts, ``<fact> r o_1 .. o_N`` per fact, then
``<text>`` and the words (dataset ``wikifacts``; family ``knowledge-lm``). Fact ``k`` has the embedding
``a_k = [e_r; ē_o]`` (relation embedding; mean of the object's word embeddings, its words taken in the closed
vocabulary, so an unknown name is ``<unk>``) and slot 0 is the learned NaF ("not a fact") vector. At step
``t`` the model reads word ``w_t`` and predicts ``w_{t+1}``:

.. math::
    x_t &= [a_{t-1};\ w^v_{t-1};\ w^o_{t-1}]  \qquad h_t, c_t = \mathrm{LSTM}(x_t, (h_{t-1}, c_{t-1})) \\
    P(a_t = k) &= \mathrm{softmax}_k(\mathrm{MLP_{fact}}(h_t) \cdot a_k)
        \quad k \in \{\mathrm{NaF}\} \cup \{\text{the facts read so far}\}\ (\text{masked softmax}) \\
    z_{t,k} &= \sigma(\mathrm{MLP_{copy}}([h_t; a_k])) \quad (z_{t,\mathrm{NaF}} = 0) \\
    G_{t,k} &= \mathrm{softmax}(W_o\, \mathrm{MLP_{gen}}([h_t; a_k]))\ \text{over the closed vocabulary} \\
    Q_{t,k}(n) &= \mathrm{softmax}_n(\mathrm{MLP_{pos}}([h_t; a_k]))\ \text{over } n < \min(N_k, N_{max}) \\
    P(w_{t+1} = w) &= \sum_k P(a_t = k)\,\big[(1 - z_{t,k})\, G^{upp}_{t,k}(w)
        + z_{t,k} \textstyle\sum_n Q_{t,k}(n)\, [O_k[n] = w]\big]

where ``a_{t-1}`` is the embedding of the fact ``w_t`` came from (NaF for generated words and the header),
``w^v_{t-1}`` the word embedding of ``w_t`` (zero when ``w_t`` was copied), ``w^o_{t-1}`` the embedding of
the copied position (zero when generated). ``G^{upp}`` is the vocabulary softmax with its ``<unk>`` mass
spread evenly over the unknown word types (every id ``>= closed_vocab``): :meth:`forward` returns
``log P(w_{t+1})`` over the full vocabulary, a proper distribution, and its cross-entropy on the text is
the log of the *unknown-penalised perplexity* (UPP, :func:`upp`). The vocabulary softmax alone can never
put more than ``G(<unk>) / |V_unk|`` on an unknown name; the copy path puts ``z Q(n)`` on the exact word.

Training (:meth:`loss`, with the generator's alignment labels: fact ``f``, copy position ``n``, −1 = none):
``−log P(a_t = f) − log P(z_t | a_t = f) − log P(w_{t+1} | z_t, a_t)`` per text word (the last is
``−log Q_f(n)`` for a copied word, ``−log G_f(w)`` for a generated one, an unknown generated word scored as
``<unk>``); the inputs ``a_{t-1}``, ``w^v``, ``w^o`` follow the labels (teacher forcing). Without labels
(:meth:`forward`, recording, evaluation) the source of an observed word is the arg-max of the joint
``P(a) P(z | a) P(w | z, a)`` over (fact, generate/copy, position) computed at the previous step.

``knowledge=False`` is the baseline: a plain LSTM LM over the closed vocabulary (input ``w^v`` only, no facts,
no copy), scored the same way. ``force_generate = True`` (attribute) fixes ``z = 0``: the model is then an
LSTM LM whose softmax is conditioned on the fact distribution; with no facts it is exactly a plain LSTM LM.

Taps (``[batch, units]`` per step): ``layer0/h``, ``layer0/c``; ``nklm/fact`` (``P(a_t)``, NaF then fact
slots 1..``max_facts``, 0 for absent slots); ``nklm/copy_z`` (the copy probability of the next word,
``Σ_k P(a_t=k) z_{t,k}``); ``nklm/copy_pos`` (``Q`` of the most probable fact); ``nklm/vocab_entropy``
(entropy of that fact's vocabulary softmax, nats); ``nklm/source_fact`` (the fact ``w_t`` came from: 0 NaF,
``k`` for fact ``k``) and ``nklm/copied`` (1 when ``w_t`` was copied) — the input side, labels or arg-max.

Choices the paper leaves open (documented in docs/engines.md): no TransE pre-training (fact embeddings are
learned; the object part is the mean of its words' embeddings); facts become visible when their header
entry is complete (causal: a state never depends on a later token); z for NaF is 0; ``N_max`` =
``max_positions`` (8; names here have <= 2 words); one LSTM layer; MLPs have one tanh hidden layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.hooks.layout import STEP as _STEP
from lstmviz.hooks.taps import Tap

from ..spec import EngineSpec, Paper

PAD, UNK, FACT, TEXT, EOS = range(5)
FIRST_RELATION = 5
NO_PROBABILITY = -1e30  # the log-probability of an output that has none (exp() is exactly 0)


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected {name} to be a positive int, got {value!r}")
    return value


def _mlp(n_in: int, n_hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.Tanh(), nn.Linear(n_hidden, n_out))


def parse_header(tokens: Tensor, max_facts: int, max_positions: int):
    """The facts of each row's header (``<fact> r o_1 .. o_N`` ... ``<text>``).

    Returns ``rel [B, F]`` (relation token ids), ``obj [B, F, N]`` (object word ids, ``<pad>`` after the end),
    ``visible [B, F]`` (the step from which the fact is complete: the index of the token after it), ``count [B]``
    and ``text_start [B]`` (the index of the first word after ``<text>``; 0 when a row has no ``<text>``: then
    it has no facts and every position is text). Facts beyond ``max_facts`` and object words beyond
    ``max_positions`` are dropped.
    """
    B, T = tokens.shape
    rel = torch.zeros(B, max_facts, dtype=torch.long)
    obj = torch.zeros(B, max_facts, max_positions, dtype=torch.long)
    visible = torch.full((B, max_facts), T + 1, dtype=torch.long)
    count = torch.zeros(B, dtype=torch.long)
    text_start = torch.zeros(B, dtype=torch.long)
    rows = tokens.tolist()
    for b, row in enumerate(rows):
        if TEXT not in row:
            continue
        end = row.index(TEXT)
        text_start[b] = end + 1
        k, t = 0, 0
        while t < end:
            if row[t] != FACT:
                t += 1
                continue
            stop = t + 1
            while stop < end and row[stop] != FACT:
                stop += 1
            if k < max_facts and stop > t + 1:
                rel[b, k] = row[t + 1]
                words = row[t + 2 : stop][:max_positions]
                obj[b, k, : len(words)] = torch.tensor(words, dtype=torch.long)
                visible[b, k] = stop
                k += 1
            t = stop
        count[b] = k
    return rel.to(tokens.device), obj.to(tokens.device), visible.to(tokens.device), count, text_start


def upp(log_probs: Tensor, targets: Tensor, mask: Tensor | None = None) -> float:
    """Unknown-penalised perplexity: ``exp(mean −log P(w))`` over the scored words, for ``log_probs`` that
    already spread the ``<unk>`` mass over the unknown types (as :meth:`NKLM.forward` returns):
    ``P_upp(w) = P(w)`` for a known word, ``P(<unk>) / |V_unk|`` (+ copy mass) for an unknown one."""
    nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    if mask is not None:
        nll = nll[mask]
    return float(torch.exp(nll.mean()))


class NKLM(nn.Module):
    """The Neural Knowledge Language Model; see the module docstring for the equations."""

    state_names = ("h", "c")
    num_layers = 1

    def __init__(self, *, vocab_size: int, closed_vocab: int = 511, embedding_dim: int = 32, fact_dim: int = 32,
                 position_dim: int = 16, hidden_size: int = 64, mlp_size: int = 64, max_facts: int = 8,
                 max_positions: int = 8, knowledge: bool = True, dropout: float = 0.0, init_range: float = 0.1):
        super().__init__()
        self.vocab_size = _positive_int("vocab_size", vocab_size)
        if not isinstance(closed_vocab, int) or isinstance(closed_vocab, bool) or not FIRST_RELATION < closed_vocab:
            raise ValueError(f"expected closed_vocab to be an int > {FIRST_RELATION}, got {closed_vocab!r}")
        self.closed_vocab = min(closed_vocab, vocab_size)
        self.embedding_dim = _positive_int("embedding_dim", embedding_dim)
        self.fact_dim = _positive_int("fact_dim", fact_dim)
        self.position_dim = _positive_int("position_dim", position_dim)
        self.hidden_size = _positive_int("hidden_size", hidden_size)
        self.mlp_size = _positive_int("mlp_size", mlp_size)
        self.max_facts = _positive_int("max_facts", max_facts)
        self.max_positions = _positive_int("max_positions", max_positions)
        if not isinstance(knowledge, bool):
            raise ValueError(f"expected knowledge to be a bool, got {knowledge!r}")
        self.knowledge = knowledge
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"expected dropout to be a probability in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.init_range = float(init_range)
        self.force_generate = False
        K, H, D = self.closed_vocab, hidden_size, embedding_dim
        A = 2 * fact_dim if knowledge else 0
        self.fact_size = A
        self.embedding = nn.Embedding(K, D)
        self.lstm = nn.LSTMCell(A + D + (position_dim if knowledge else 0), H)
        self.gen = _mlp(H + A, mlp_size, K)
        self.drop = nn.Dropout(self.dropout)
        if knowledge:
            self.relation_embedding = nn.Embedding(vocab_size, fact_dim)  # indexed by the relation's token id
            self.object_embedding = nn.Embedding(K, fact_dim)
            self.naf = nn.Parameter(torch.zeros(A))
            self.position_embedding = nn.Embedding(max_positions, position_dim)
            self.fact_key = _mlp(H, mlp_size, A)
            self.copy = _mlp(H + A, mlp_size, 1)
            self.pos = _mlp(H + A, mlp_size, max_positions)
        self.h_tap = Tap("layer0/h", signal="h", layer=0, layout=_STEP,
                         description="LSTM hidden state h_t after reading w_t")
        self.c_tap = Tap("layer0/c", signal="c", layer=0, layout=_STEP, description="LSTM cell state c_t")
        self.fact_tap = Tap("nklm/fact", signal="fact", layout=_STEP,
                            description="P(a_t): fact distribution for the next word; unit 0 NaF, unit k fact k")
        self.copy_z_tap = Tap("nklm/copy_z", signal="copy_z", layout=_STEP,
                              description="probability that the next word is copied, sum_k P(a_t=k) z_{t,k}")
        self.copy_pos_tap = Tap("nklm/copy_pos", signal="copy_pos", layout=_STEP,
                                description="copy-position distribution Q(n) of the most probable fact")
        self.vocab_entropy_tap = Tap("nklm/vocab_entropy", signal="vocab_entropy", layout=_STEP,
                                     description="entropy (nats) of the most probable fact's vocabulary softmax")
        self.source_fact_tap = Tap("nklm/source_fact", signal="source_fact", layout=_STEP,
                                   description="the fact w_t came from (0 NaF, k fact k): label or arg-max source")
        self.copied_tap = Tap("nklm/copied", signal="copied", layout=_STEP,
                              description="1 when w_t was copied from a fact, 0 when generated")
        self.reset_parameters()

    @property
    def config(self) -> dict:
        return {"closed_vocab": self.closed_vocab, "embedding_dim": self.embedding_dim, "fact_dim": self.fact_dim,
                "position_dim": self.position_dim, "hidden_size": self.hidden_size, "mlp_size": self.mlp_size,
                "max_facts": self.max_facts, "max_positions": self.max_positions, "knowledge": self.knowledge,
                "dropout": self.dropout, "init_range": self.init_range}

    def reset_parameters(self) -> None:
        for p in self.parameters():
            nn.init.uniform_(p, -self.init_range, self.init_range)

    def extra_repr(self) -> str:
        return f"vocab_size={self.vocab_size}, " + ", ".join(f"{k}={v}" for k, v in self.config.items())

    def init_state(self, batch: int):
        w = self.embedding.weight
        return tuple(w.new_zeros(1, batch, self.hidden_size) for _ in self.state_names)

    # ------------------------------------------------------------------ pieces

    def closed(self, ids: Tensor) -> Tensor:
        """Ids in the closed vocabulary: every id ``>= closed_vocab`` becomes ``<unk>``."""
        return torch.where(ids >= self.closed_vocab, torch.full_like(ids, UNK), ids)

    def fact_table(self, rel: Tensor, obj: Tensor) -> Tensor:
        """``[B, 1 + F, 2 fact_dim]``: NaF, then every fact slot's ``[e_r; mean e_o]``."""
        words = obj != PAD
        e_o = (self.object_embedding(self.closed(obj)) * words.unsqueeze(-1)).sum(2)
        e_o = e_o / words.sum(2, keepdim=True).clamp(min=1)
        facts = torch.cat([self.relation_embedding(rel), e_o], dim=-1)
        naf = self.naf.expand(rel.shape[0], 1, -1)
        return torch.cat([naf, facts], dim=1)

    def heads(self, h: Tensor, table: Tensor, fact_mask: Tensor, pos_mask: Tensor):
        """Log-distributions at one step: ``log P(a)`` [B, 1+F], ``log z`` and ``log(1-z)`` [B, 1+F],
        ``log G`` [B, 1+F, K], ``log Q`` [B, 1+F, N]."""
        B = h.shape[0]
        if not self.knowledge:
            log_gen = F.log_softmax(self.gen(h), -1).unsqueeze(1)
            zeros = h.new_zeros(B, 1)
            return zeros, h.new_full((B, 1), -math.inf), zeros, log_gen, None
        scores = torch.einsum("ba,bka->bk", self.fact_key(h), table)
        log_fact = F.log_softmax(scores.masked_fill(~fact_mask, -math.inf), -1)
        u = torch.cat([h.unsqueeze(1).expand(-1, table.shape[1], -1), table], -1)
        copy_logit = self.copy(u).squeeze(-1)
        log_z, log_not_z = F.logsigmoid(copy_logit), F.logsigmoid(-copy_logit)
        can_copy = pos_mask.any(-1)  # NaF and empty slots: z = 0
        if self.force_generate:
            can_copy = torch.zeros_like(can_copy)
        log_z = log_z.masked_fill(~can_copy, -math.inf)
        log_not_z = log_not_z.masked_fill(~can_copy, 0.0)
        log_gen = F.log_softmax(self.gen(u), -1)
        log_pos = F.log_softmax(self.pos(u).masked_fill(~pos_mask, -1e9), -1)  # finite: rows with no word
        log_pos = log_pos.masked_fill(~pos_mask, -math.inf)
        return log_fact, log_z, log_not_z, log_gen, log_pos

    def full_vocab(self, log_gen: Tensor) -> Tensor:
        """``log G^upp`` over the full vocabulary: the ``<unk>`` mass spread over the ids ``>= closed_vocab``."""
        V, K = self.vocab_size, self.closed_vocab
        if V == K:
            return log_gen
        unk = log_gen[..., UNK : UNK + 1] - math.log(V - K)
        out = torch.cat([log_gen, unk.expand(*log_gen.shape[:-1], V - K)], -1)
        # <unk> itself gets probability 0: a finite log (not -inf), so that 0 * log 0 terms (a KL divergence in
        # `lstmviz perturb`) are 0, not NaN
        return out.index_fill(-1, torch.tensor([UNK], device=out.device), NO_PROBABILITY)

    def marginal(self, heads, obj_full: Tensor) -> Tensor:
        """``log P(w_{t+1} = w)`` [B, V] from the step's heads."""
        log_fact, log_z, log_not_z, log_gen, log_pos = heads
        mix = log_not_z.unsqueeze(-1) + self.full_vocab(log_gen)  # [B, 1+F, V]
        if log_pos is not None:
            copy = torch.zeros_like(mix).scatter_add_(-1, obj_full, log_pos.exp())
            mix = torch.logaddexp(mix, log_z.unsqueeze(-1) + copy.log())
        return torch.logsumexp(log_fact.unsqueeze(-1) + mix, 1)

    # ------------------------------------------------------------------ the unroll

    def _check(self, tokens) -> None:
        if not isinstance(tokens, Tensor):
            raise TypeError(f"expected tokens as a torch.LongTensor [batch, time], got {type(tokens).__name__}")
        if tokens.dtype != torch.long:
            raise TypeError(f"expected integer token ids (torch.long), got dtype {tokens.dtype}")
        if tokens.dim() != 2:
            raise ValueError(f"expected tokens of shape [batch, time], got shape {tuple(tokens.shape)}")
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(f"expected token ids in [0, {self.vocab_size}), got ids from {int(tokens.min())} "
                             f"to {int(tokens.max())}")

    def run(self, tokens: Tensor, fact_labels: Tensor | None = None, pos_labels: Tensor | None = None,
            state=None, full: bool = True):
        """Unroll over ``tokens`` [B, T]. With labels (``[B, T]``, the source of each token: fact index in
        the header 0-based and position, −1 = none) the inputs follow them and the per-step heads are kept for
        :meth:`loss`; ``full`` also computes ``log P(w_{t+1})`` over the full vocabulary [B, T, V]."""
        self._check(tokens)
        B, T = tokens.shape
        rel, obj, visible, count, text_start = parse_header(tokens, self.max_facts, self.max_positions)
        table = self.fact_table(rel, obj) if self.knowledge else None
        F1 = 1 + self.max_facts
        obj_full = torch.cat([obj.new_zeros(B, 1, self.max_positions), obj], 1)  # [B, 1+F, N]
        pos_exists = torch.cat([torch.zeros(B, 1, self.max_positions, dtype=torch.bool, device=tokens.device),
                                obj != PAD], 1)
        if state is None:
            state = self.init_state(B)
        h, c = state[0][0], state[1][0]
        if h.dtype != self.embedding.weight.dtype:
            raise TypeError(f"expected state h of dtype {self.embedding.weight.dtype}, got {h.dtype}")
        src_fact = torch.zeros(B, dtype=torch.long, device=tokens.device)  # source of w_t: 0 NaF / k
        src_pos = torch.full((B,), -1, dtype=torch.long, device=tokens.device)
        outs, kept = [], []
        for t in range(T):
            w = tokens[:, t]
            if fact_labels is not None:
                src_fact = (fact_labels[:, t] + 1).clamp(min=0)
                src_pos = pos_labels[:, t]
            copied = src_pos >= 0
            w_v = self.embedding(self.closed(w)) * (~copied).unsqueeze(-1)
            parts = [w_v]
            if self.knowledge:
                a_prev = table[torch.arange(B), src_fact]
                w_o = self.position_embedding(src_pos.clamp(min=0)) * copied.unsqueeze(-1)
                parts = [a_prev, w_v, w_o]
            x = self.drop(torch.cat(parts, -1))
            h, c = self.lstm(x, (h, c))
            c = self.c_tap(c, step=t)
            h = self.h_tap(h, step=t)
            self.source_fact_tap(src_fact.to(h.dtype).unsqueeze(-1), step=t)
            self.copied_tap(copied.to(h.dtype).unsqueeze(-1), step=t)
            hd = self.drop(h)
            if self.knowledge:
                fact_mask = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=h.device), visible <= t], 1)
                pos_mask = pos_exists & fact_mask.unsqueeze(-1)
            else:
                fact_mask = pos_mask = None
            heads = self.heads(hd, table, fact_mask, pos_mask)
            self._tap_heads(heads, t, B, F1)
            kept.append(heads)
            if full or fact_labels is None:
                lp = self.marginal(heads, obj_full if self.knowledge else None)
                outs.append(lp)
                if fact_labels is None and t + 1 < T:
                    src_fact, src_pos = self._attribute(heads, tokens[:, t + 1], obj_full)
                    header = text_start.to(tokens.device) > t + 1  # header words are read, never copied
                    src_fact = src_fact.masked_fill(header, 0)
                    src_pos = src_pos.masked_fill(header, -1)
        logp = torch.stack(outs, 1) if outs else None
        return logp, (h.unsqueeze(0), c.unsqueeze(0)), kept, text_start

    def _tap_heads(self, heads, t: int, B: int, F1: int) -> None:
        log_fact, log_z, _, log_gen, log_pos = heads
        p_fact = log_fact.exp()
        best = p_fact.argmax(-1)
        rows = torch.arange(B, device=p_fact.device)
        if self.knowledge:
            fact = p_fact.new_zeros(B, F1)
            fact[:, : p_fact.shape[1]] = p_fact
            self.fact_tap(fact, step=t)
            self.copy_z_tap((p_fact * log_z.exp()).sum(-1, keepdim=True), step=t)
            self.copy_pos_tap(log_pos[rows, best].exp(), step=t)
        else:
            self.fact_tap(p_fact.new_zeros(B, F1).index_fill(1, torch.tensor([0]), 1.0), step=t)
            self.copy_z_tap(p_fact.new_zeros(B, 1), step=t)
            self.copy_pos_tap(p_fact.new_zeros(B, self.max_positions), step=t)
        g = log_gen[rows, best]
        self.vocab_entropy_tap(-(g.exp() * g.nan_to_num(neginf=0.0)).sum(-1, keepdim=True), step=t)

    def _attribute(self, heads, w: Tensor, obj_full: Tensor):
        """The most probable source (fact, position or −1) of the observed word ``w`` under the step's heads."""
        log_fact, log_z, log_not_z, log_gen, log_pos = heads
        B = w.shape[0]
        if not self.knowledge:
            return torch.zeros(B, dtype=torch.long), torch.full((B,), -1, dtype=torch.long)
        full = self.full_vocab(log_gen)
        gen = log_fact + log_not_z + full.gather(-1, w.view(B, 1, 1).expand(-1, full.shape[1], 1)).squeeze(-1)
        match = obj_full == w.view(B, 1, 1)
        cop = (log_fact + log_z).unsqueeze(-1) + log_pos.masked_fill(~match, -math.inf)  # [B, 1+F, N]
        best_gen, gen_fact = gen.max(-1)
        best_cop, flat = cop.reshape(B, -1).max(-1)
        use_copy = best_cop > best_gen
        fact = torch.where(use_copy, flat // self.max_positions, gen_fact)
        pos = torch.where(use_copy, flat % self.max_positions, torch.full_like(flat, -1))
        return fact, pos

    def forward(self, tokens: Tensor, state=None):
        """``(log P(w_{t+1}) [B, T, V] over the full vocabulary, (h, c))``; sources inferred (no labels)."""
        logp, state, _, _ = self.run(tokens, state=state)
        return logp, state

    # ------------------------------------------------------------------ training

    def loss(self, tokens: Tensor, fact_labels: Tensor, pos_labels: Tensor):
        """``(mean loss per text word, number of text words)``: the supervised NKLM loss (module docstring).

        Vectorised over time: with the labels every input is known, so only the LSTM runs step by step, and
        only the labelled fact's switch, vocabulary and position heads are evaluated (no taps fire)."""
        self._check(tokens)
        B, T = tokens.shape
        rel, obj, visible, _, text_start = parse_header(tokens, self.max_facts, self.max_positions)
        src_fact = (fact_labels + 1).clamp(min=0)
        copied = pos_labels >= 0
        w_v = self.embedding(self.closed(tokens)) * (~copied).unsqueeze(-1)
        if self.knowledge:
            table = self.fact_table(rel, obj)  # [B, 1+F, A]
            a_prev = torch.gather(table, 1, src_fact.unsqueeze(-1).expand(-1, -1, table.shape[-1]))
            w_o = self.position_embedding(pos_labels.clamp(min=0)) * copied.unsqueeze(-1)
            x = torch.cat([a_prev, w_v, w_o], -1)
        else:
            x = w_v
        x = self.drop(x)
        h = c = x.new_zeros(B, self.hidden_size)
        hs = []
        for t in range(T):
            h, c = self.lstm(x[:, t], (h, c))
            hs.append(h)
        hd = self.drop(torch.stack(hs, 1))  # [B, T, H]: step t predicts token t+1
        target = torch.zeros_like(tokens)
        target[:, :-1] = tokens[:, 1:]
        f = torch.zeros_like(tokens)
        f[:, :-1] = src_fact[:, 1:]
        n = torch.full_like(tokens, -1)
        n[:, :-1] = pos_labels[:, 1:]
        steps = torch.arange(T, device=tokens.device)
        scored = (steps.unsqueeze(0) + 1 >= text_start.to(tokens.device).unsqueeze(1)) & (target != PAD)
        scored[:, -1] = False
        if not self.knowledge:
            gen = F.log_softmax(self.gen(hd), -1).gather(-1, self.closed(target).unsqueeze(-1)).squeeze(-1)
            nll = -gen
        else:
            f = f.clamp(max=self.max_facts)
            fact_mask = torch.cat([torch.ones(B, T, 1, dtype=torch.bool, device=hd.device),
                                   visible.unsqueeze(1) <= steps.view(1, T, 1)], -1)
            scores = torch.einsum("bta,bka->btk", self.fact_key(hd), table)
            log_fact = F.log_softmax(scores.masked_fill(~fact_mask, -math.inf), -1)
            a = torch.gather(table, 1, f.unsqueeze(-1).expand(-1, -1, table.shape[-1]))  # [B, T, A]
            u = torch.cat([hd, a], -1)
            copy_logit = self.copy(u).squeeze(-1)
            obj_full = torch.cat([obj.new_zeros(B, 1, self.max_positions), obj], 1)
            words = torch.gather(obj_full, 1, f.unsqueeze(-1).expand(-1, -1, self.max_positions)) != PAD
            log_pos = F.log_softmax(self.pos(u).masked_fill(~words, -1e9), -1)
            pos_term = log_pos.gather(-1, n.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            gen_term = F.log_softmax(self.gen(u), -1).gather(-1, self.closed(target).unsqueeze(-1)).squeeze(-1)
            is_copy = n >= 0
            z_term = torch.where(f == 0, torch.zeros_like(copy_logit),  # NaF: z = 0, no switch term
                                 torch.where(is_copy, F.logsigmoid(copy_logit), F.logsigmoid(-copy_logit)))
            fact_term = log_fact.gather(-1, f.unsqueeze(-1)).squeeze(-1)
            nll = -(fact_term + z_term + torch.where(is_copy, pos_term, gen_term))
        count = int(scored.sum())
        return nll.masked_fill(~scored, 0.0).sum() / max(count, 1), count


SPEC = EngineSpec(
    name="nklm",
    description="Neural Knowledge Language Model (Ahn et al. 2016): an LSTM LM that predicts a fact of the "
                "topic (or NaF), then copies a word of its object or generates from the vocabulary; "
                "knowledge=False is the plain LSTM LM baseline",
    family="knowledge-lm",
    paper=Paper(
        title="A Neural Knowledge Language Model",
        authors="Sungjin Ahn, Heeyoul Choi, Tanel Pärnamaa, Yoshua Bengio",
        arxiv="1608.00318",
        year=2016,
    ),
    build=NKLM,
    default_config={"closed_vocab": 511, "embedding_dim": 32, "fact_dim": 32, "position_dim": 16,
                    "hidden_size": 64, "mlp_size": 64, "max_facts": 8, "max_positions": 8, "knowledge": True,
                    "init_range": 0.1},
    taps=("layer{layer}/h", "layer{layer}/c", "nklm/fact", "nklm/copy_z", "nklm/copy_pos", "nklm/vocab_entropy",
          "nklm/source_fact", "nklm/copied"),
    default_dataset="wikifacts",
    train_defaults={"steps": 400, "batch_size": 16, "lr": 3e-3, "optimizer": "adam", "clip": 5.0,
                    "dropout": 0.0, "eval_every": 200, "seed": 0},
)
