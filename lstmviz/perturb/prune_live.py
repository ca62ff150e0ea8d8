r"""Loss-model pruning of a recording's live model (the Perturb panel's "Prune model" action).

:func:`prune_live_model` copies the live language model, prunes the copy globally with
:func:`.global_pruning.prune_by_loss_model` on the next-token loss of the recording's first ``items``
items (right-padded; the model is causal, so padding never reaches an item's predictions), and runs one
item through the original and the pruned weights: the :class:`~.run.Effect` of the pruning on that item
(Δloss and KL per position, the Δ of every recorded tap), as an edit of hidden states shows it. The live
model itself is left unpruned; :func:`save_live_pruning` writes the pruned copy as a checkpoint that
carries its masks.

With :math:`p^{\mathrm{orig}}_t`, :math:`p^{\mathrm{pruned}}_t` the next-token distributions and
:math:`x^{(s)}_t` the states of tap :math:`s` (as in :mod:`.run`):
:math:`\Delta\mathrm{nll}_t = \mathrm{nll}^{\mathrm{pruned}}_t - \mathrm{nll}^{\mathrm{orig}}_t`,
:math:`\mathrm{KL}_t = \mathrm{KL}(p^{\mathrm{orig}}_t \Vert p^{\mathrm{pruned}}_t)`,
:math:`\Delta^{(s)}_t = x^{(s),\mathrm{pruned}}_t - x^{(s),\mathrm{orig}}_t`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from lstmviz.tasks import ensure_task

from .errors import PerturbError
from .global_pruning import LossPruning, prune_by_loss_model, save_pruned_checkpoint
from .loss_data import token_data
from .loss_models import LOSS_MODEL_NAMES
from .run import Effect, Run, _compare, _taps, _topk, forward, item_tokens

#: how many of a recording's items the panel prunes on by default (the first ones)
DEFAULT_ITEMS = 128


@dataclass(frozen=True)
class WeightPruning:
    """Stands where an :class:`~.spec.Perturbation` stands in an :class:`~.run.Effect`: the pruning touched
    every position (``positions`` None) through the weights, not one tap."""

    text: str
    tap: str | None = None
    positions: None = None

    def describe(self) -> str:
        return self.text


@dataclass
class LivePruning:
    """A pruned copy of the live model, what the pruning did, and its effect on one item."""

    pruning: LossPruning
    effect: Effect
    model: nn.Module = field(repr=False)
    items: int = 0

    def to_table(self) -> list[dict]:
        return self.pruning.to_table()


def prune_live_model(live, recording, item: int, *, method: str = "qm", sparsity: float = 0.5, steps: int = 1,
                     lam: float = 0.0, curvature: str | None = "fisher", items: int | None = DEFAULT_ITEMS,
                     samples: int = 1, seed: int = 0, parameters=None, task=None) -> LivePruning:
    """Prune a copy of ``live``'s model on the first ``items`` items of ``recording`` (None: all) and compare
    the original and the pruned weights on ``item`` (see the module docstring)."""
    task = ensure_task(task)
    if live.forward is not None or not live.batch_first:
        raise PerturbError("this model was given with its own forward function or time-first; prune it from a "
                           "script with lstmviz.perturb.global_pruning.prune_by_loss_model and a LossData")
    n = recording.n_items if items is None else min(int(items), recording.n_items)
    data = token_data([item_tokens(recording, i) for i in range(n)], what="items")
    pruned = copy.deepcopy(live.model)
    result = prune_by_loss_model(pruned, data, method=method, sparsity=sparsity, steps=steps, lam=lam,
                                 curvature=curvature, parameters=parameters, samples=samples, seed=seed, task=task)
    pruned.eval()
    text = (f"pruned {result.achieved:.1%} of the weights by {LOSS_MODEL_NAMES[result.method]} in "
            f"{len(result.steps)} step(s)")
    effect = compare_weights(live, replace(live, model=pruned, clean_cache={}), recording, item, text)
    return LivePruning(result, effect, pruned, n)


def compare_weights(live, other, recording, item: int, text: str, k: int = 5) -> Effect:
    """The :class:`~.run.Effect` of running ``item`` with ``other``'s weights instead of ``live``'s."""
    tokens = item_tokens(recording, item)
    taps = _taps(live, recording, None)
    batch = torch.from_numpy(tokens)[None]
    logits_o, states_o = forward(live, batch, (), taps)
    logits_p, states_p = forward(other, batch, (), taps)
    nll_o, nll_p, kl, lp_o, lp_p = _compare(logits_o, logits_p, batch)
    orig = Run(tokens, logits_o[0].cpu().numpy(), nll_o[0].numpy(),
               {t: v[0].float().cpu().numpy() for t, v in states_o.items()})
    pruned = Run(tokens, logits_p[0].cpu().numpy(), nll_p[0].numpy(),
                 {t: v[0].float().cpu().numpy() for t, v in states_p.items()})
    delta = {t: pruned.states[t] - orig.states[t] for t in taps}
    ids_o, p_o = _topk(lp_o[0], k)
    ids_p, p_p = _topk(lp_p[0], k)
    return Effect(int(item), [WeightPruning(text)], orig, pruned, pruned.nll - orig.nll, kl[0].numpy(), ids_o, ids_p,
                  p_o, p_p, delta, {t: np.linalg.norm(d, axis=1) for t, d in delta.items()}, live.vocab)


def save_live_pruning(result: LivePruning, live, path):
    """Write the pruned copy as a checkpoint of the live model's engine with its masks (atomic)."""
    meta = dict(getattr(live, "meta", None) or {})
    if not meta.get("engine"):
        raise PerturbError("this model did not come from an lstmviz checkpoint, so there is no engine to save it "
                           "as; save the pruned model from your script (LivePruning.model)")
    return save_pruned_checkpoint(path, result.model, meta, result.pruning)
