"""The seq2seq family's objective: teacher-forced negative log-likelihood of the reference targets.

Each step takes the next ``batch_size`` pairs of the training split (a new seeded shuffle every epoch),
pads them (:func:`~.api.batch_pairs`) and returns the mean over the scored target tokens (``y_1 .. y_n``
and ``<eos>``; pads ignored) of ``-log p(y_t | y_<t, x)``. An engine with its own
``model.loss(batch) -> (loss, count)`` is trained by it instead (a distilled or critic-trained model).

Validation (dropout off) over the validation split (its first ``valid_items`` pairs) in batches of
``batch_size``: the loss (nats per target token, so ``exp`` of it is a per-token perplexity), the token
accuracy (arg-max under teacher forcing equals the reference token, over the scored tokens) and, with
``valid_decode`` (default), the exact-sequence accuracy of greedy decoding (``model.greedy`` with
``max_len = len(reference) + 1``: a longer output is cut there and counts as wrong). They appear in the
metrics as ``valid_token_accuracy`` and ``valid_exact``.

Knowledge distillation (Kim & Rush 2016, :mod:`lstmviz.engines.seq2seq.distill`): ``distill="word"``
trains on ``(1 - distill_alpha) NLL + distill_alpha word-KD`` against the per-step distribution of the
checkpoint ``teacher`` under the gold prefix; ``distill="seq"`` replaces every training target by the
teacher's beam-search output (beam ``distill_beam``) before the first step and trains by NLL on them.
The teacher must have the training data's vocabulary. Validation scores the references either way.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.datasets.pairs_base import PAD

from . import describe_dataset
from .api import Seq2SeqBatch, batch_pairs


def _pairs(dataset, vocab_size: int, what: str) -> list[tuple[np.ndarray, np.ndarray]]:
    pairs = []
    for i, item in enumerate(dataset):
        target = getattr(item, "target", None)
        if target is None:
            raise ValueError(f"{what}: item {i} has no target (expected a pair dataset)")
        src = np.asarray(item.tokens, dtype=np.int64).reshape(-1)
        tgt = np.asarray(target, dtype=np.int64).reshape(-1)
        if len(src) == 0:
            raise ValueError(f"{what}: item {i} has an empty source")
        for name, ids in (("source", src), ("target", tgt)):
            if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
                raise ValueError(f"{what}: item {i}'s {name} has ids outside the vocabulary [0, {vocab_size})")
        pairs.append((src, tgt))
    return pairs


def nll(model: nn.Module, batch: Seq2SeqBatch, reduction: str = "mean") -> tuple[Tensor, Tensor]:
    """``(NLL of tgt_out under teacher forcing, logits [B, T, V])``; pads ignored."""
    logits = model(batch.src, batch.src_lengths, batch.tgt_in)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.tgt_out.reshape(-1), ignore_index=PAD,
                           reduction=reduction)
    return loss, logits


@torch.no_grad()
def evaluate_pairs(model: nn.Module, pairs, batch_size: int, device, decode: bool = True) -> dict[str, float]:
    """``loss`` (nats per scored token), ``token_accuracy`` and (``decode``) ``exact`` (greedy) over ``pairs``."""
    was_training = model.training
    model.eval()
    total = hits = count = exact = 0.0
    try:
        for start in range(0, len(pairs), batch_size):
            batch = batch_pairs(pairs[start : start + batch_size]).to(device)
            loss, logits = nll(model, batch, reduction="sum")
            scored = batch.tgt_out != PAD
            total += float(loss)
            count += int(scored.sum())
            hits += int(((logits.argmax(-1) == batch.tgt_out) & scored).sum())
            if decode:
                references = batch.references()
                max_len = max(len(r) for r in references) + 1
                outputs = model.greedy(batch.src, batch.src_lengths, max_len=max_len)
                exact += sum(out == ref for out, ref in zip(outputs, references))
    finally:
        model.train(was_training)
    result = {"loss": total / max(count, 1), "token_accuracy": hits / max(count, 1)}
    if decode:
        result["exact"] = exact / max(len(pairs), 1)
    return result


class Seq2SeqObjective:
    """The :class:`~lstmviz.engines.families.family.Objective` of the seq2seq family (module docstring)."""

    count_name = "tokens"
    rate_unit = "tok/s"

    @staticmethod
    def check_settings(s: dict, need: Callable[[str, bool, str], None], is_int: Callable[[Any], bool]) -> None:
        need("valid_items", s["valid_items"] is None or (is_int(s["valid_items"]) and s["valid_items"] >= 1),
             "a positive int or None")
        need("valid_decode", isinstance(s["valid_decode"], bool) or s["valid_decode"] in (0, 1),
             "a bool (true/false or 1/0)")
        s["valid_decode"] = bool(s["valid_decode"])
        need("distill", s["distill"] in ("none", "word", "seq"), "none, word or seq")
        need("teacher", s["teacher"] is None or (isinstance(s["teacher"], str) and s["teacher"] != ""),
             "a checkpoint path or None")
        need("teacher", s["distill"] == "none" or s["teacher"] is not None,
             f"a checkpoint path (distill={s['distill']} needs a teacher)")
        need("distill_alpha", isinstance(s["distill_alpha"], (int, float)) and not isinstance(s["distill_alpha"], bool)
             and 0 <= s["distill_alpha"] <= 1, "a number in [0, 1]")
        need("distill_beam", is_int(s["distill_beam"]) and s["distill_beam"] >= 1, "a positive int")
        s["distill_alpha"] = float(s["distill_alpha"])
        s["distill_beam"] = int(s["distill_beam"])

    def prepare(self, dataset_train, dataset_valid, settings: dict, device) -> None:
        data = describe_dataset(dataset_train)
        self.train_pairs = _pairs(dataset_train, data.vocab_size, "training data")
        if not self.train_pairs:
            raise ValueError("training data: no pairs")
        self.valid_pairs = []
        if dataset_valid is not None:
            if [str(t) for t in dataset_valid.vocab] != [str(t) for t in dataset_train.vocab]:
                raise ValueError("validation data: expected the training data's vocabulary, got a different one")
            self.valid_pairs = _pairs(dataset_valid, data.vocab_size, "validation data")
            if settings["valid_items"] is not None:
                self.valid_pairs = self.valid_pairs[: settings["valid_items"]]
        self.batch_size = min(int(settings["batch_size"]), len(self.train_pairs))
        self.decode = settings["valid_decode"]
        self.rng = np.random.default_rng(int(settings["seed"]))
        self.device = device
        self.order: list[int] = []
        self.last: dict[str, float] = {}
        self.distill, self.teacher, self.teacher_sha256 = settings["distill"], None, None
        self.alpha = settings["distill_alpha"]
        if self.distill != "none":
            self._prepare_distillation(settings, dataset_train, device)

    def _prepare_distillation(self, settings: dict, dataset_train, device) -> None:
        from lstmviz.engines.checkpoint import load_checkpoint
        from lstmviz.engines.seq2seq.distill import seq_kd_pairs

        teacher, meta = load_checkpoint(settings["teacher"], map_location=device)
        if meta["family"] != "seq2seq":
            raise ValueError(f"teacher {settings['teacher']}: a checkpoint of the {meta['family']!r} family, "
                             "expected a seq2seq model")
        if [str(t) for t in meta["vocab"]] != [str(t) for t in dataset_train.vocab]:
            raise ValueError(f"teacher {settings['teacher']}: trained with another vocabulary than the training data")
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        self.teacher_sha256 = meta["sha256"]
        if self.distill == "seq":
            self.train_pairs = seq_kd_pairs(teacher, self.train_pairs, beam=settings["distill_beam"],
                                            batch_size=max(self.batch_size, 64))
        else:
            self.teacher = teacher

    def _next_batch(self) -> Seq2SeqBatch:
        chosen = []
        while len(chosen) < self.batch_size:
            if not self.order:
                self.order = list(self.rng.permutation(len(self.train_pairs)))
            chosen.append(self.train_pairs[int(self.order.pop())])
        return batch_pairs(chosen).to(self.device)

    def train_step(self, model: nn.Module) -> tuple[Tensor, int]:
        batch = self._next_batch()
        if self.teacher is not None:  # word-KD
            if hasattr(model, "loss"):
                raise ValueError(f"{type(model).__name__} trains by its own loss(); it cannot be word-distilled")
            from lstmviz.engines.seq2seq.distill import word_kd_step

            return word_kd_step(model, self.teacher, batch, self.alpha)
        if hasattr(model, "loss"):
            return model.loss(batch)
        loss, _ = nll(model, batch)
        return loss, int((batch.tgt_out != PAD).sum())

    # -- DP-SGD's example view (engines/dpsgd.py) ------------------------------------------------------------

    dp_method = "loop"  # each pair is cut to its own lengths, which vmap cannot do

    def dp_examples(self) -> tuple[tuple[Tensor, ...], str]:
        """Every training pair, padded (``src, src_lengths, tgt_in, tgt_out, tgt_lengths``); the unit is a pair."""
        if self.teacher is not None:
            raise ValueError("word-level distillation (distill=word) reads the teacher batch by batch; DP-SGD "
                             "needs per-pair losses: use distill=none or distill=seq")
        b = batch_pairs(self.train_pairs).to(self.device)
        return (b.src, b.src_lengths, b.tgt_in, b.tgt_out, b.tgt_lengths), "a source-target pair"

    def example_loss(self, call, example) -> Tensor:
        """The teacher-forced NLL of one pair (mean over its scored tokens), cut to its own lengths."""
        src, src_len, tgt_in, tgt_out, tgt_len = example
        s, t = int(src_len), int(tgt_len)
        batch = Seq2SeqBatch(src[None, :s], src_len[None], tgt_in[None, :t], tgt_out[None, :t], tgt_len[None])
        if hasattr(call.module, "loss"):
            return call.loss(batch)[0]
        logits = call(batch.src, batch.src_lengths, batch.tgt_in)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.tgt_out.reshape(-1), ignore_index=PAD)

    def evaluate(self, model: nn.Module) -> float | None:
        if not self.valid_pairs:
            return None
        self.last = evaluate_pairs(model, self.valid_pairs, self.batch_size, self.device, decode=self.decode)
        return self.last["loss"]

    def metrics(self) -> dict:
        """The last validation's token accuracy and exact-sequence accuracy (None before one)."""
        out = {"valid_token_accuracy": self.last.get("token_accuracy"), "valid_exact": self.last.get("exact")}
        if self.distill != "none":
            out["distill_teacher_sha256"] = self.teacher_sha256
        return out
