"""The language-model objective: stateful truncated backpropagation through time on a token stream.

The training token stream is cut into ``batch_size`` contiguous parallel streams (rows). Each step
trains on the next ``bptt`` columns: the model reads ``x = data[:, p : p+bptt]`` and predicts
``y = data[:, p+1 : p+1+bptt]``, starting from the state the previous segment ended in, detached from
its graph (Zaremba et al.'s stateful truncated BPTT). When the rows run out, the next epoch starts at
column 0 with a zero state. The loss is the mean next-token cross-entropy (nats per token).
Validation loss is computed over the validation stream with the state carried and dropout off.

An engine with its own training loss (``pf-gru``'s professor forcing) defines
``model.loss(x, y, state) -> (loss, state to carry)``; :meth:`TruncatedBPTT.train_step` then trains on it
(the state it returns is detached and carried like the model's), while validation stays the next-token
cross-entropy of ``model(x, state)``.

DP-SGD (``privacy=dpsgd``) cannot carry a state between examples: its examples are windows of ``bptt + 1``
tokens (the same segments the steps read), each read from a zero state (:meth:`TruncatedBPTT.dp_examples`). A model with ``training_metrics() -> dict`` adds those entries to
the checkpoint's metrics.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def token_stream(dataset, vocab_size: int, what: str) -> Tensor:
    """The dataset's concatenated token ids as a 1-D int64 tensor, checked against the vocabulary."""
    stream = np.asarray(dataset.token_stream())
    if stream.ndim != 1 or not np.issubdtype(stream.dtype, np.integer):
        raise ValueError(f"{what}: expected token_stream() to give 1-D integer ids, "
                         f"got dtype {stream.dtype} and shape {stream.shape}")
    if stream.size and (stream.min() < 0 or stream.max() >= vocab_size):
        raise ValueError(f"{what}: expected token ids in [0, {vocab_size}) (the vocabulary), "
                         f"got ids from {stream.min()} to {stream.max()}")
    return torch.from_numpy(stream.astype(np.int64, copy=False))


def batchify(stream: Tensor, batch_size: int) -> Tensor:
    """Cut a 1-D stream into ``batch_size`` contiguous rows ``[batch_size, len // batch_size]``."""
    columns = stream.numel() // batch_size
    return stream[: columns * batch_size].reshape(batch_size, columns)


def detach_state(state):
    """The state with every tensor cut from its autograd graph (the truncation of truncated BPTT)."""
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    return state


@torch.no_grad()
def evaluate(model: nn.Module, data: Tensor, bptt: int) -> float:
    """Mean next-token cross-entropy (nats) over ``data`` [rows, columns], state carried, dropout off."""
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    try:
        for start in range(0, data.shape[1] - 1, bptt):
            x = data[:, start : min(start + bptt, data.shape[1] - 1)]
            y = data[:, start + 1 : start + 1 + x.shape[1]]
            logits, state = model(x, state)
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"))
            count += y.numel()
    finally:
        model.train(was_training)
    return total / max(count, 1)


class TruncatedBPTT:
    """The :class:`~lstmviz.engines.families.family.Objective` of the language-model family."""

    count_name = "tokens"
    rate_unit = "tok/s"

    @staticmethod
    def check_settings(s: dict, need: Callable[[str, bool, str], None], is_int: Callable[[object], bool]) -> None:
        """Check (and normalise) the settings this objective adds: ``bptt`` and ``valid_tokens``."""
        need("bptt", is_int(s["bptt"]) and s["bptt"] >= 1, "a positive int")
        need("valid_tokens", s["valid_tokens"] is None or (is_int(s["valid_tokens"]) and s["valid_tokens"] >= 2),
             "an int >= 2 or None")
        s["bptt"] = int(s["bptt"])

    def prepare(self, dataset_train, dataset_valid, settings: dict, device) -> None:
        vocab = [str(token) for token in dataset_train.vocab]
        batch_size, bptt = settings["batch_size"], settings["bptt"]
        stream = token_stream(dataset_train, len(vocab), "training data")
        if stream.numel() // batch_size < bptt + 1:
            raise ValueError(
                f"training data too small: {stream.numel()} tokens, but batch_size={batch_size} x (bptt={bptt} + 1) "
                f"= {batch_size * (bptt + 1)} are needed for one step; use a smaller batch_size or bptt"
            )
        self.bptt = bptt
        self.train_data = batchify(stream, batch_size).to(device)
        self.valid_data = None
        if dataset_valid is not None:
            if [str(t) for t in dataset_valid.vocab] != vocab:
                raise ValueError("validation data: expected the training data's vocabulary, got a different one")
            valid_stream = token_stream(dataset_valid, len(vocab), "validation data")
            if settings["valid_tokens"] is not None:
                valid_stream = valid_stream[: settings["valid_tokens"]]
            if valid_stream.numel() < 2:
                raise ValueError(f"validation data too small: expected at least 2 tokens, got {valid_stream.numel()}")
            rows = max(1, min(batch_size, valid_stream.numel() // (bptt + 1)))
            self.valid_data = batchify(valid_stream, rows).to(device)
        self.column, self.state = 0, None

    def train_step(self, model: nn.Module) -> tuple[Tensor, int]:
        bptt = self.bptt
        if self.column + bptt + 1 > self.train_data.shape[1]:  # a new epoch: back to the start, fresh state
            self.column, self.state = 0, None
        x = self.train_data[:, self.column : self.column + bptt]
        y = self.train_data[:, self.column + 1 : self.column + 1 + bptt]
        self._last = (x, self.state)  # for fisher_sample_loss
        if hasattr(model, "loss"):  # an engine-owned loss (e.g. professor forcing's two players)
            loss, state = model.loss(x, y, self.state)
            self._own_metrics = getattr(model, "training_metrics", None)
        else:
            logits, state = model(x, self.state)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        self.state = detach_state(state)
        self.column += bptt
        return loss, x.numel()

    # -- DP-SGD's example view (engines/dpsgd.py) and K-FAC's sampled Fisher (engines/ekfac.py) ------------------

    def dp_examples(self) -> tuple[Tensor, str]:
        """``[N, bptt + 1]``: the training stream's rows cut into windows of ``bptt`` inputs and their next tokens
        (stride ``bptt``, as the training steps read them). The privacy unit is such a window, read from a zero
        state: NOT a document or a user, whose text may span many windows."""
        rows, columns = self.train_data.shape
        per_row = (columns - 1) // self.bptt
        windows = [self.train_data[:, k * self.bptt : k * self.bptt + self.bptt + 1] for k in range(per_row)]
        return torch.stack(windows, dim=1).reshape(rows * per_row, self.bptt + 1), \
            f"a window of {self.bptt + 1} tokens"

    def example_loss(self, call, window: Tensor) -> Tensor:
        """Mean next-token cross-entropy of one window, from a zero state (no state carried between examples)."""
        x, y = window[:-1][None], window[1:][None]
        if hasattr(call.module, "loss"):
            return call.loss(x, y, None)[0]
        logits, _ = call(x)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    def fisher_sample_loss(self, model: nn.Module) -> Tensor:
        """The cross-entropy of next tokens drawn from the model itself on the segment just trained (from the state
        it started in): the true Fisher's labels."""
        if hasattr(model, "loss"):
            raise ValueError(f"{type(model).__name__} trains by its own loss, whose labels cannot be sampled")
        from lstmviz.engines.ekfac import sampled_cross_entropy

        x, state = self._last
        logits, _ = model(x, state)
        return sampled_cross_entropy(logits)

    def metrics(self) -> dict:
        """The engine's own training measures (``model.training_metrics()``), if it has any."""
        own = getattr(self, "_own_metrics", None)
        return dict(own()) if callable(own) else {}

    def evaluate(self, model: nn.Module) -> float | None:
        return None if self.valid_data is None else evaluate(model, self.valid_data, self.bptt)
