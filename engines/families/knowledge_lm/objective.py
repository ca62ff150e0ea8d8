"""The knowledge-lm objective: whole documents, the model's supervised loss, UPP on validation.

Each step takes the next ``batch_size`` documents of a seeded shuffle (a new one every epoch), pads them
(:func:`pad_documents`) and returns ``model.loss(tokens, fact_labels, position_labels)`` — the labels are the
items' annotations ``fact`` and ``copy_pos`` (−1: none). Validation (dropout off) runs ``model(tokens)``
without labels over the first ``valid_items`` validation documents and gives the mean ``−log P(w)`` per text
word (the words after ``<text>``; ``exp`` of it is the unknown-penalised perplexity, since the model's
distribution spreads ``<unk>`` over the unknown types).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

PAD, TEXT = 0, 3


def pad_documents(docs, device=None) -> tuple[Tensor, Tensor, Tensor]:
    """``(tokens, fact_labels, position_labels)`` ``[B, T]`` from ``(tokens, fact, pos)`` arrays; pads: 0 / −1."""
    T = max(len(d[0]) for d in docs)
    B = len(docs)
    x = torch.zeros(B, T, dtype=torch.long)
    f = torch.full((B, T), -1, dtype=torch.long)
    p = torch.full((B, T), -1, dtype=torch.long)
    for b, (tokens, fact, pos) in enumerate(docs):
        n = len(tokens)
        x[b, :n] = torch.as_tensor(np.asarray(tokens, dtype=np.int64))
        f[b, :n] = torch.as_tensor(np.asarray(fact, dtype=np.int64))
        p[b, :n] = torch.as_tensor(np.asarray(pos, dtype=np.int64))
    return x.to(device), f.to(device), p.to(device)


def documents(dataset, vocab_size: int, what: str, limit: int | None = None):
    """The dataset's items as ``(tokens, fact, pos)`` arrays, checked against the vocabulary."""
    out = []
    for i in range(len(dataset) if limit is None else min(limit, len(dataset))):
        item = dataset[i]
        tokens = np.asarray(item.tokens, dtype=np.int64)
        if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab_size):
            raise ValueError(f"{what}: item {i} has ids outside the vocabulary [0, {vocab_size})")
        ann = item.annotations
        if "fact" not in ann or "copy_pos" not in ann:
            raise ValueError(f"{what}: item {i} has no 'fact' / 'copy_pos' annotations (the alignment labels); "
                             "expected a facts dataset such as wikifacts")
        out.append((tokens, np.nan_to_num(ann["fact"], nan=-1).astype(np.int64),
                    np.nan_to_num(ann["copy_pos"], nan=-1).astype(np.int64)))
    return out


def text_mask(tokens: Tensor) -> Tensor:
    """``[B, T]``: True where position t's prediction (of token t+1) is a text word (after ``<text>``, no pad)."""
    is_text = (tokens == TEXT).long().cumsum(1) > 0
    after = torch.zeros_like(is_text)
    after[:, :-1] = is_text[:, :-1] & (tokens[:, 1:] != PAD)
    return after


@torch.no_grad()
def evaluate(model: nn.Module, docs, batch_size: int, device=None) -> float:
    """Mean ``−log P(w)`` per text word of ``model(tokens)`` (no labels), dropout off."""
    was = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for s in range(0, len(docs), batch_size):
            x, _, _ = pad_documents(docs[s : s + batch_size], device)
            logp, _ = model(x)
            mask = text_mask(x)
            target = torch.zeros_like(x)
            target[:, :-1] = x[:, 1:]
            nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
            total += float(nll[mask].sum())
            count += int(mask.sum())
    finally:
        model.train(was)
    return total / max(count, 1)


class DocumentObjective:
    """The :class:`~lstmviz.engines.families.family.Objective` of the knowledge-lm family."""

    count_name = "words"
    rate_unit = "words/s"

    @staticmethod
    def check_settings(s: dict, need: Callable[[str, bool, str], None], is_int: Callable[[object], bool]) -> None:
        need("valid_items", s["valid_items"] is None or (is_int(s["valid_items"]) and s["valid_items"] >= 1),
             "an int >= 1 or None")

    def prepare(self, dataset_train, dataset_valid, settings: dict, device) -> None:
        vocab = [str(t) for t in dataset_train.vocab]
        self.train_docs = documents(dataset_train, len(vocab), "training data")
        if len(self.train_docs) < 1:
            raise ValueError("training data: expected at least one document")
        self.batch_size, self.device = settings["batch_size"], device
        self.rng = np.random.default_rng(settings["seed"])
        self.order, self.next = self.rng.permutation(len(self.train_docs)), 0
        self.valid_docs = None
        if dataset_valid is not None:
            if [str(t) for t in dataset_valid.vocab] != vocab:
                raise ValueError("validation data: expected the training data's vocabulary, got a different one")
            self.valid_docs = documents(dataset_valid, len(vocab), "validation data", settings["valid_items"])

    def train_step(self, model: nn.Module) -> tuple[Tensor, int]:
        if self.next + self.batch_size > len(self.order):
            self.order, self.next = self.rng.permutation(len(self.train_docs)), 0
        picked = self.order[self.next : self.next + self.batch_size]
        self.next += self.batch_size
        x, f, p = pad_documents([self.train_docs[i] for i in picked], self.device)
        loss, count = model.loss(x, f, p)
        return loss, count

    def dp_examples(self) -> tuple[tuple[Tensor, Tensor, Tensor], str]:
        """Every training document, padded (``tokens, fact_labels, position_labels``): the privacy unit is a
        document (DP-SGD, engines/dpsgd.py)."""
        return pad_documents(self.train_docs, self.device), "a document"

    def example_loss(self, call, example) -> Tensor:
        """The model's supervised loss of one document."""
        x, f, p = example
        return call.loss(x[None], f[None], p[None])[0]

    def evaluate(self, model: nn.Module) -> float | None:
        if not self.valid_docs:
            return None
        return evaluate(model, self.valid_docs, self.batch_size, self.device)
