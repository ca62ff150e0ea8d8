r"""Knowledge distillation for sequence-to-sequence models: Kim & Rush, "Sequence-Level Knowledge
Distillation" (EMNLP 2016, arXiv:1606.07947), models_recurrent.md §15.

A *teacher* (a trained seq2seq model, usually bigger) teaches a *student* (the model being trained).
Notation: source ``x``, reference ``y = y_1 .. y_n`` followed by ``<eos>``; ``p`` the student,
``q`` the teacher, ``V`` the vocabulary.

*Word-level KD* (Hinton et al.'s distillation applied at every target position, under the gold prefix:
both models read the reference ``<bos> y_1 .. y_{t-1}``)::

    L_NLL     = - sum_t log p(y_t | y_<t, x)
    L_WORD-KD = - sum_t sum_{k in V} q(k | y_<t, x) log p(k | y_<t, x)
    L         = (1 - alpha) L_NLL + alpha L_WORD-KD                        (:func:`word_kd_loss`)

With a one-hot teacher (``q(k) = [k = y_t]``) ``L_WORD-KD = L_NLL`` exactly, for every ``alpha``.

*Sequence-level KD*: translate every training source with the teacher's beam search (beam ``K = 5``)
and train the student by plain NLL on the pairs ``(x, ŷ)``, ``ŷ = beam_search_q(x)`` — the teacher's
mode replaces the (noisy, multimodal) references (:func:`seq_kd_pairs`).

Choices the paper leaves open, written down:

- the teacher's distribution is its plain softmax (temperature 1, as in the paper), over the whole
  vocabulary (its ``<pad>``/``<bos>`` mass, ~0 after training, is kept); the teacher is in eval mode
  (dropout off) and gets no gradient;
- both losses are means over the scored target tokens (``y_1 .. y_n`` and ``<eos>``; pads ignored), like
  the family's NLL objective; ``alpha`` defaults to 0.5 (the setting ``distill_alpha``);
- seq-KD's beam search is the teacher's own ``beam_search`` (``length_penalty`` 0, ``max_len`` its
  default ``2 S + 10``); an empty hypothesis is kept (the student then learns to emit ``<eos>``); the
  translation is made once, before the first step, from the teacher given (regenerate it whenever the
  teacher changes: a new training run does);
- validation always scores the REFERENCES of the validation split (the real task), not teacher outputs;
- *seq-Inter* (train on the beam hypothesis closest to the reference) is not implemented: the engine's
  beam search returns only the best hypothesis.

How a user runs it: training settings of the seq2seq family (:mod:`lstmviz.engines.families.seq2seq`),
``lstmviz train seq2seq-attn --dataset translit --train teacher=teacher.pt --train distill=seq`` (or
``distill=word --train distill_alpha=0.5``); ``distill_beam`` sets the beam of seq-KD.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from lstmviz.datasets.pairs_base import PAD
from lstmviz.tasks import Task, ensure_task

from ..families.seq2seq.api import pad

MODES = ("none", "word", "seq")


def word_kd_loss(student_logits: Tensor, teacher_probs: Tensor, tgt_out: Tensor, alpha: float
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """``(L, L_NLL, L_WORD-KD)``, each a mean over the scored tokens (``tgt_out != <pad>``); see the module docstring.

    ``student_logits [B, T, V]`` (teacher forced on the reference), ``teacher_probs [B, T, V]`` (the
    teacher's per-step distribution under the same gold prefix, rows summing to 1), ``tgt_out [B, T]``.
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if student_logits.shape != teacher_probs.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher distribution "
                         f"{tuple(teacher_probs.shape)} differ in shape (same vocabulary and targets needed)")
    scored = (tgt_out != PAD).to(student_logits.dtype)
    count = scored.sum().clamp_min(1.0)
    logp = torch.log_softmax(student_logits, dim=-1)
    nll = -(logp.gather(-1, tgt_out.unsqueeze(-1)).squeeze(-1) * scored).sum() / count
    # q log p with q = 0 where log p = -inf would be nan: such entries contribute 0
    cross = torch.where(teacher_probs > 0, teacher_probs * logp, torch.zeros_like(logp)).sum(-1)
    kd = -(cross * scored).sum() / count
    alpha = float(alpha)
    return (1.0 - alpha) * nll + alpha * kd, nll, kd


@torch.no_grad()
def teacher_distribution(teacher: nn.Module, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
    """The teacher's per-step distribution ``q(. | y_<t, x)`` ``[B, T, V]`` under the gold prefix ``tgt_in``."""
    return torch.softmax(teacher(src, src_lengths, tgt_in), dim=-1)


def seq_kd_pairs(teacher, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], *, beam: int = 5,
                 batch_size: int = 64, max_len: int | None = None, task: Task | None = None
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """The sequence-level KD training set: ``(source, teacher's beam output)`` for every ``(source, reference)``.

    The references are read only for their sources: each target is ``teacher.beam_search(src, lengths,
    beam=beam)`` (without bos/eos). ``teacher`` is anything with the family's ``beam_search``; a
    torch module is put in eval mode for the translation and restored afterwards.
    """
    if int(beam) < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    task = ensure_task(task)
    sources = [np.asarray(s, dtype=np.int64).reshape(-1) for s, _ in pairs]
    training = getattr(teacher, "training", None)
    if isinstance(teacher, nn.Module):
        teacher.eval()
        try:
            device = next(teacher.parameters()).device
        except StopIteration:
            device = torch.device("cpu")
    else:
        device = torch.device("cpu")
    out: list[tuple[np.ndarray, np.ndarray]] = []
    try:
        with torch.no_grad():
            for start in range(0, len(sources), int(batch_size)):
                chunk = sources[start : start + int(batch_size)]
                src, lengths = pad(chunk)
                hyps = teacher.beam_search(src.to(device), lengths.to(device), beam=int(beam), max_len=max_len)
                if len(hyps) != len(chunk):
                    raise ValueError(f"the teacher returned {len(hyps)} hypotheses for {len(chunk)} sources")
                out.extend((s, np.asarray(h, dtype=np.int64).reshape(-1)) for s, h in zip(chunk, hyps))
                task.progress(min(start + int(batch_size), len(sources)), len(sources), "seq-KD: teacher beam search")
    finally:
        if isinstance(teacher, nn.Module) and training is not None:
            teacher.train(training)
    return out


def word_kd_step(student: nn.Module, teacher: nn.Module, batch, alpha: float) -> tuple[Tensor, int]:
    """The word-KD loss of one :class:`~lstmviz.engines.families.seq2seq.api.Seq2SeqBatch` and its scored tokens."""
    logits = student(batch.src, batch.src_lengths, batch.tgt_in)
    probs = teacher_distribution(teacher, batch.src, batch.src_lengths, batch.tgt_in).to(logits.dtype)
    loss, _, _ = word_kd_loss(logits, probs, batch.tgt_out, alpha)
    return loss, int((batch.tgt_out != PAD).sum())


def per_step_kl(student_logits: Tensor, teacher_probs: Tensor) -> Tensor:
    """``KL(q || p)`` per target step ``[B, T]`` (nats): how far the student is from its teacher at each step."""
    logp = torch.log_softmax(student_logits, dim=-1)
    logq = torch.log(teacher_probs.clamp_min(torch.finfo(teacher_probs.dtype).tiny))
    return (teacher_probs * (logq - logp)).sum(-1)


__all__ = ["MODES", "per_step_kl", "seq_kd_pairs", "teacher_distribution", "word_kd_loss", "word_kd_step"]
