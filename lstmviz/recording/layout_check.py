"""Checking, once per recording, that the model reads token ids in the layout ``record()`` was told.

``record(batch_first=...)`` says whether the model takes ``[B, T]`` or ``[T, B]`` token ids. The shape
of the recorded signals does not settle it: a module output of a transposed model is ``[T, B, ...]`` read
as ``[B, T, ...]``, which fits any batch, and an ``nn.LSTM``/``GRU`` or tap signal fits whenever ``B == T``.
What settles it is which recorded states a single token can change. Before the first real batch,
:func:`check_layout` runs a small *probe batch* (up to :data:`PROBE_ITEMS` items of the first batch,
the longest first, cut to :data:`PROBE_STEPS` tokens) twice: as is, and with item 0's token at step 1
replaced by another valid id. When the items are read as told and kept apart, only item 0's states may
change. If another item's states change (beyond float rounding and run-to-run noise, at its own tokens
only), the probe is run in the other layout to tell the two causes apart: the model reads the other
layout (pass ``batch_first`` the other way), or it mixes the items of a batch (pass ``batch_size=1``).

Why item 0, step 1. Read in the wrong layout, our (item i, step t) is the model's (time i, item t), in
both directions (``[B, T]`` read as ``[T, B]`` and back). The changed token is then the model's item 1 at
time 0, and a model that reads forward in time (any RNN, bidirectional ones included) carries the change
to every later time of its item 1, i.e. to our (item i, step 1) for every i. Where that lands in the
recording depends on how the signal is laid out:

- module outputs are laid out as ``batch_first`` says, the same transposition again: recorded (item i,
  step t) is the model's (time i, item t), so the change shows at step 1 of every other item (the probe
  makes sure item 1 has at least 2 tokens);
- ``nn.LSTM``/``GRU`` signals are laid out by the module's own ``batch_first`` and taps are batch-first by
  contract, so they undo the transposition: recorded (item i, step t) is the model's (item i, time t),
  and the change fills recorded item 1 from step 0 on (when the probe is not square, the shape check
  refuses it before).

Changing step 0 instead would miss the second case: the change would stay in the model's item 0, which
is recorded item 0. Changing a later item k would reach only the items after k (module outputs) and
recorded item 1 only from step k on (RNN signals, taps), which may be past its end.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from .recorder_context import Recorder
from .recorder_data import Item

PROBE_ITEMS = 4
PROBE_STEPS = 4
_CHANGED_STEP = 1

RunBatch = Callable[[Recorder, "list[Item]", bool], "dict[str, Tensor]"]


def check_layout(recorder: Recorder, run: RunBatch, batch: list[Item], batch_first: bool, device,
                 vocab_size: int | None = None) -> None:
    """Raise ``ValueError`` when the model does not read ``batch``'s token ids as ``batch_first`` says.

    ``run(recorder, items, batch_first)`` runs one padded batch inside ``recorder`` (entered here) and
    returns its checked ``[B, T, units]`` signals. The check is skipped when it cannot be made: a batch of
    one item, no item of 2 or more tokens, or no second token id to swap in.
    """
    probe = probe_items(batch)
    if probe is None:
        return
    replacement = _replacement_id(batch, int(probe[0].tokens[_CHANGED_STEP]), vocab_size)
    if replacement is None:
        return
    changed = [_changed_copy(probe[0], replacement)] + probe[1:]
    where = f"a probe batch of items {', '.join(str(it.index) for it in probe)}, run to check the layout"
    try:
        others, item0 = _effect(recorder, run, probe, changed, batch_first, device)
    except ValueError as e:
        raise ValueError(f"{e} (on {where})") from None
    except Exception as e:
        e.add_note(f"(raised on {where} before recording)")
        raise
    if not others:
        return
    flipped = Recorder(recorder.model, recorder.signals, batch_first=not batch_first, accumulate=True)
    try:
        other_layout_others, other_layout_item0 = _effect(flipped, run, probe, changed, not batch_first, device)
        other_layout_reads_right = not other_layout_others and other_layout_item0
    except Exception:  # the other layout does not even run: it is not the model's layout
        other_layout_reads_right = False
    given = "[B, T] (batch_first=True)" if batch_first else "[T, B] (batch_first=False)"
    names = [f"a copy of item {probe[0].index}" if probe[i].index == probe[0].index else f"item {probe[i].index}"
             for i in others]
    what = (f"changing one token of item {probe[0].index} (at step {_CHANGED_STEP}) changed the recorded states "
            f"of other items in its batch ({', '.join(names)})")
    if other_layout_reads_right:
        raise ValueError(
            f"the model does not read token ids as {given}: {what}, and with batch_first={not batch_first} only "
            f"that item's states change. Pass batch_first={not batch_first}"
        )
    raise ValueError(
        f"the model mixes the items of a batch: {what}, and with batch_first={not batch_first} they are not kept "
        f"apart either, so each item's states would depend on the other items in its batch. Pass batch_size=1 "
        f"(and check that batch_first={batch_first} is the layout the model takes)"
    )


def probe_items(batch: list[Item]) -> list[Item] | None:
    """The probe batch: up to PROBE_ITEMS items of ``batch``, longest first, cut to PROBE_STEPS tokens.

    Item 0 and item 1 have at least 2 tokens (item 1 is a copy of item 0 when no other item has);
    ``None`` when the batch has one item or none of 2 or more tokens.
    """
    if len(batch) < 2:
        return None
    order = sorted(batch, key=lambda it: -len(it.tokens))[:PROBE_ITEMS]  # stable: ties keep batch order
    if len(order[0].tokens) <= _CHANGED_STEP:
        return None
    if len(order[1].tokens) <= _CHANGED_STEP:
        order[1] = order[0]
    return [Item(it.index, it.tokens[:PROBE_STEPS]) for it in order]


def _replacement_id(batch: list[Item], original: int, vocab_size: int | None) -> int | None:
    """A valid token id other than ``original``: one seen in the batch, else the next id of the vocabulary."""
    seen = np.unique(np.concatenate([it.tokens for it in batch]))
    others = seen[seen != original]
    if len(others):
        return int(others[0])
    if vocab_size is not None and vocab_size > 1:
        return (original + 1) % vocab_size
    return None


def _changed_copy(item: Item, replacement: int) -> Item:
    tokens = item.tokens.copy()
    tokens[_CHANGED_STEP] = replacement
    return Item(item.index, tokens)


def _effect(recorder: Recorder, run: RunBatch, probe: list[Item], changed: list[Item], batch_first: bool,
            device) -> tuple[list[int], bool]:
    """(probe positions > 0 whose states the change altered, whether item 0's did) in layout ``batch_first``.

    A state counts as altered when it moved by more than float rounding; when other items seem altered, the
    unchanged probe is run again and the change must also exceed 16 times the largest difference between
    the two runs (a model with randomness in eval mode).
    """
    lengths = [len(it.tokens) for it in probe]
    with _random_state_kept(device), torch.no_grad(), recorder:
        base = _valid_states(run(recorder, probe, batch_first), lengths)
        after = _valid_states(run(recorder, changed, batch_first), lengths)
        others, item0 = _moved(base, after)
        if others:
            others, item0 = _moved(base, after, again=_valid_states(run(recorder, probe, batch_first), lengths))
    return others, item0


def _moved(base: dict, after: dict, again: dict | None = None) -> tuple[list[int], bool]:
    others: set[int] = set()
    item0 = False
    for name, (b, rounding) in base.items():
        scale = max(_largest(v) for v in b)
        noise = 0.0 if again is None else max(_largest(x - y) for x, y in zip(b, again[name][0]))
        tolerance = max(16 * noise, rounding * scale)
        moved = [_largest(x - y) > tolerance for x, y in zip(b, after[name][0])]
        item0 = item0 or moved[0]
        others.update(i for i, m in enumerate(moved) if i > 0 and m)
    return sorted(others), item0


def _valid_states(states: dict[str, Tensor], lengths: list[int]) -> dict[str, tuple[list[np.ndarray], float]]:
    """Per signal, each probe item's states at its own tokens (float64, CPU), and the signal's float rounding."""
    out = {}
    for name, values in states.items():
        array = values.detach().to("cpu", torch.float64).numpy()
        out[name] = ([array[i, :n] for i, n in enumerate(lengths)], _rounding(values.dtype))
    return out


def _largest(values: np.ndarray) -> float:
    return float(np.max(np.abs(values), initial=0.0))


def _rounding(dtype: torch.dtype) -> float:
    """Relative size of a difference that may be float rounding rather than a changed state."""
    eps = torch.finfo(dtype).eps if dtype.is_floating_point else 0.0
    return max(1e-4, 16 * eps)


def _random_state_kept(device):
    """The probe runs leave the random number generators as they found them (recordings stay reproducible)."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return torch.random.fork_rng(devices=[index], device_type="cuda")
    return torch.random.fork_rng(devices=[])
