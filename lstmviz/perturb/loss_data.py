r"""The loss that loss-model pruning models: a summed cross-entropy over the predictions of a set of examples.

.. math::
    L(\theta) = \frac{1}{n}\sum_{i=1}^{N} \ell_i(\theta), \qquad
    \ell_i(\theta) = \sum_{p:\,y_{ip}\neq -100} -\log\mathrm{softmax}(z_{ip}(\theta))_{y_{ip}}

over examples :math:`i` (an image: one prediction; a token sequence: one prediction per next token),
:math:`n` = the number of counted predictions (targets ``-100`` are ignored: padding, the last token).
``LossData`` holds the inputs ``[N, ...]``, the targets ``[N, P]`` and ``logits(call, inputs [B, ...]) ->
[B, P, K]``, where ``call`` runs the model (the model itself, or ``func_grads``' functional call); per
example gradients of :math:`\ell_i` come from :mod:`lstmviz.engines.func_grads`.

Builders: :func:`token_data` (a next-token language model over token sequences, right-padded; the model
is causal, so padding never reaches an item's predictions), :func:`image_class_data` (an image classifier)
and :func:`dataset_data` (a dataset split for a checkpoint's family).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import PerturbError

IGNORE = -100
Logits = Callable[[Callable[..., Any], Tensor], Tensor]


@dataclass
class LossData:
    """Examples and how the model's logits are read from them (see the module docstring)."""

    inputs: Tensor  # [N, ...]
    targets: Tensor  # [N, P] int64, IGNORE where not counted
    logits: Logits  # (call, inputs [B, ...]) -> [B, P, K]
    what: str = "examples"

    def __post_init__(self) -> None:
        if self.targets.dim() != 2 or self.inputs.shape[0] != self.targets.shape[0]:
            raise PerturbError(f"expected targets [examples, predictions] for {self.inputs.shape[0]} examples, got "
                               f"{tuple(self.targets.shape)}")
        self.total = float((self.targets != IGNORE).sum())
        if self.total <= 0:
            raise PerturbError(f"the {self.what} have no prediction to measure the loss on; choose more items")

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def subset(self, indices) -> "LossData":
        idx = torch.as_tensor(indices, dtype=torch.long)
        return LossData(self.inputs[idx], self.targets[idx], self.logits, self.what)

    def checked_logits(self, call, inputs: Tensor) -> Tensor:
        z = self.logits(call, inputs)
        b, p = inputs.shape[0], self.targets.shape[1]
        if not isinstance(z, Tensor) or z.dim() != 3 or tuple(z.shape[:2]) != (b, p):
            got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise PerturbError(f"the model's output is not logits [examples={b}, predictions={p}, classes]; got {got}")
        return z

    def loss_of(self, call, example) -> Tensor:
        """:math:`\\ell_i` of one example ``(input, targets [P])`` (for ``func_grads.per_example_grads``)."""
        x, y = example
        z = self.checked_logits(call, x[None])[0]
        return F.cross_entropy(z, y, ignore_index=IGNORE, reduction="sum")

    def summed_loss(self, model, start: int, stop: int) -> Tensor:
        """:math:`\\sum_{i=start}^{stop-1} \\ell_i` with one batched forward (differentiable)."""
        z = self.checked_logits(model, self.inputs[start:stop])
        y = self.targets[start:stop]
        return F.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1), ignore_index=IGNORE, reduction="sum")

    def evaluate(self, model: nn.Module, chunk: int = 256) -> tuple[float, float]:
        """``(L, accuracy)``: the mean loss over the counted predictions and the share of them whose arg-max
        is the target (eval mode, no gradient)."""
        was = model.training
        model.eval()
        total = correct = 0.0
        try:
            with torch.no_grad():
                for s in range(0, len(self), chunk):
                    z = self.checked_logits(model, self.inputs[s:s + chunk])
                    y = self.targets[s:s + chunk]
                    total += float(F.cross_entropy(z.reshape(-1, z.shape[-1]).double(), y.reshape(-1),
                                                   ignore_index=IGNORE, reduction="sum"))
                    counted = y != IGNORE
                    correct += float((z.argmax(-1)[counted] == y[counted]).sum())
        finally:
            model.train(was)
        return total / self.total, correct / self.total


def _first(out):
    return out[0] if isinstance(out, (tuple, list)) and out else out


def token_data(sequences: Sequence, forward: Callable | None = None, pad_id: int = 0,
               what: str = "items") -> LossData:
    """Next-token prediction over token sequences (lists/arrays of ids), right-padded into ``[N, T]``:
    the targets are the next tokens (``IGNORE`` after the last real one). ``forward(call, tokens)`` gives the
    logits ``[B, T, V]`` (default: ``call(tokens)``, or its first element for a ``(logits, state)`` model)."""
    seqs = [np.asarray(s).reshape(-1) for s in sequences]
    if not seqs:
        raise PerturbError(f"no {what} to measure the loss on; choose at least one")
    T = max(len(s) for s in seqs)
    tokens = np.full((len(seqs), T), pad_id, dtype=np.int64)
    targets = np.full((len(seqs), T), IGNORE, dtype=np.int64)
    for i, s in enumerate(seqs):
        if not np.issubdtype(s.dtype, np.integer):
            raise PerturbError(f"item {i} is not token ids (dtype {s.dtype})")
        tokens[i, :len(s)] = s
        targets[i, :len(s) - 1] = s[1:]
    fwd = forward or (lambda call, t: call(t))
    return LossData(torch.from_numpy(tokens), torch.from_numpy(targets), lambda call, t: _first(fwd(call, t)), what)


def image_class_data(images, labels, what: str = "images") -> LossData:
    """An image classifier: ``images [N, C, H, W]``, ``labels [N]``; the model gives ``[B, classes]``."""
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64)).reshape(-1, 1)

    def logits(call, inputs):
        z = _first(call(inputs))
        return z[:, None, :] if isinstance(z, Tensor) and z.dim() == 2 else z

    return LossData(x, y, logits, what)


def dataset_data(family: str, dataset, limit: int | None = None, model_dtype=torch.float32,
                 what: str = "items") -> LossData:
    """The first ``limit`` items (None: all) of a dataset split for a model of ``family``:
    ``language-model`` (next tokens of each item) or ``image`` (a ``class`` task). Other families: a sentence."""
    n = len(dataset) if limit is None else min(int(limit), len(dataset))
    if n < 1:
        raise PerturbError(f"the dataset {getattr(dataset, 'name', '')!r} has no {what} to prune on")
    if family == "language-model":
        return token_data([dataset[i].tokens for i in range(n)], what=what)
    if family == "image":
        task = getattr(dataset, "task", "class")
        if task != "class":
            raise PerturbError(f"loss-model pruning of an image model needs a class dataset; "
                               f"{getattr(dataset, 'name', 'this one')!r} is a {task} dataset")
        items = [dataset[i] for i in range(n)]
        data = image_class_data(np.stack([it.image for it in items]), [int(it.target) for it in items], what)
        data.inputs = data.inputs.to(model_dtype)
        return data
    raise PerturbError(f"loss-model pruning of a {family!r} model is not supported yet; it supports the "
                       "language-model and image (class task) families")
