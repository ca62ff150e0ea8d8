r"""Re-running the live model on a recording's items, with and without perturbations, and what changes.

For one item with tokens :math:`w_0 \dots w_{T-1}` the model gives next-token distributions
:math:`p_t = \mathrm{softmax}(\mathrm{logits}_t)` (the prediction of :math:`w_{t+1}`). A clean run and an
edited run (the same item, with :func:`~lstmviz.perturb.spec.resolve`'s edits applied through
:func:`lstmviz.hooks.intervene`) are compared per position:

.. math::
    \mathrm{nll}_t &= -\log p_t(w_{t+1}) \qquad (\text{NaN at } t = T-1) \\
    \Delta\mathrm{nll}_t &= \mathrm{nll}^{\mathrm{edited}}_t - \mathrm{nll}^{\mathrm{clean}}_t \\
    \mathrm{KL}_t &= \sum_v p^{\mathrm{clean}}_t(v) \left(\log p^{\mathrm{clean}}_t(v) - \log p^{\mathrm{edited}}_t(v)\right) \\
    \Delta^{(s)}_{t,u} &= x^{(s),\mathrm{edited}}_{t,u} - x^{(s),\mathrm{clean}}_{t,u}, \qquad
    \lVert\Delta^{(s)}_t\rVert = \Big(\sum_u (\Delta^{(s)}_{t,u})^2\Big)^{1/2} \quad \text{for every tap } s

The clean and the edited run of an item go through the model as two rows of one batch (the edits
touch only the edited rows), so a perturbation costs one forward of a batch twice as large, not two
forwards. Several items run as padded batches (right padding, as ``record()`` does; the model is
causal, so padding never reaches an item's positions), and only the taps asked for are captured.
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from lstmviz.tasks import ensure_task

from .errors import PerturbError
from .live_model import check_logits
from .spec import Perturbation, check_tap, resolve


@dataclass
class Run:
    """One forward of one item."""

    tokens: np.ndarray  # [T] ids
    logits: np.ndarray  # [T, V] float32
    nll: np.ndarray  # [T]: nll[t] = -log p(tokens[t+1] | ..t); NaN at the last position
    states: dict[str, np.ndarray] = field(default_factory=dict)  # tap -> [T, U] float32


# ------------------------------------------------------------------------------------------- forward


def item_tokens(recording, item: int) -> np.ndarray:
    try:
        a, b = recording.item_range(int(item))
    except (IndexError, TypeError):
        raise PerturbError(f"item {item} does not exist; the recording has items 0 to {recording.n_items - 1}") \
            from None
    return recording.token_ids(a, b)


def pad(token_lists: list[np.ndarray], pad_id: int = 0) -> torch.Tensor:
    steps = max(len(t) for t in token_lists)
    out = np.full((len(token_lists), steps), pad_id, dtype=np.int64)
    for row, t in zip(out, token_lists):
        row[:len(t)] = t
    return torch.from_numpy(out)


def forward(live, tokens: torch.Tensor, edits=(), taps=()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits ``[B, T, V]`` (float32) and the states ``{tap: [B, T, U]}`` of ``taps`` for ``tokens`` ``[B, T]``,
    with the hook-layer ``edits`` applied."""
    from lstmviz.hooks import intervene
    from lstmviz.recording.recorder import Recorder

    taps = list(taps or ())
    with torch.no_grad(), ExitStack() as stack:
        try:
            if edits:
                stack.enter_context(intervene(live.model, list(edits), batch_first=live.batch_first))
            recorder = None
            if taps:
                recorder = stack.enter_context(Recorder(live.model, taps, batch_first=live.batch_first,
                                                        accumulate=True))
            out = live.raw_output(tokens)
            states = recorder.collect() if recorder is not None else {}
        except PerturbError:
            raise
        except ValueError as e:  # an edit or signal the model cannot take, in the hook layer's words
            raise PerturbError(str(e)) from None
        logits = check_logits(out, tokens.shape, live.vocab).float()
    return logits, states


def next_token_nll(logprobs: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """``[B, T]``: -log p_t(tokens[t+1]); NaN at the last column."""
    nll = torch.full(tokens.shape, math.nan, dtype=logprobs.dtype)
    if tokens.shape[1] > 1:
        nll[:, :-1] = -logprobs[:, :-1].gather(2, tokens[:, 1:, None].to(logprobs.device)).squeeze(2).cpu()
    return nll


def _taps(live, recording, taps) -> list[str]:
    if taps is None:
        from lstmviz.hooks import signal_catalog

        catalog = signal_catalog(live.model)
        return [t for t in recording.taps if t in catalog]
    taps = [taps] if isinstance(taps, str) else list(taps)
    for t in taps:
        check_tap(live, recording, t)
    return taps


def run_item(live, recording, item: int, perturbations=(), taps=None) -> Run:
    """Run the model on ``item`` with ``perturbations`` applied; ``taps`` to capture (None: every tap of the
    recording that the model has; ``()``: none)."""
    tokens = item_tokens(recording, item)
    taps = _taps(live, recording, taps)
    edits = resolve(list(perturbations), live, recording, item, length=len(tokens)) if perturbations else []
    batch = torch.from_numpy(tokens)[None]
    logits, states = forward(live, batch, edits, taps)
    logprobs = torch.log_softmax(logits, dim=-1)
    return Run(tokens, logits[0].cpu().numpy(), next_token_nll(logprobs, batch)[0].numpy(),
               {t: v[0].float().cpu().numpy() for t, v in states.items()})


def reproduces(live, recording, item: int, taps=None) -> dict[str, float]:
    """tap -> max |re-run - recorded| over ``item`` (every recorded tap when ``taps`` is None)."""
    if taps is None:
        taps = list(recording.taps)
    missing = [t for t in taps if t not in set(live.signals())]
    if missing:
        raise PerturbError(f"the model has no tap {missing[0]!r} of the recording; is it the model that made the "
                           f"recording?")
    run = run_item(live, recording, item, taps=taps)
    out = {}
    for t in taps:
        recorded = recording.item_states(t, int(item))
        got = run.states[t]
        if got.shape != recorded.shape:
            out[t] = math.inf
        else:
            out[t] = float(np.max(np.abs(got - recorded))) if got.size else 0.0
    return out


# ------------------------------------------------------------------------------------------- effects


@dataclass
class Effect:
    """Edited against clean on one item (see the module docstring for the quantities)."""

    item: int
    perturbations: list[Perturbation]
    clean: Run
    edited: Run
    dnll: np.ndarray  # [T]
    kl: np.ndarray  # [T]
    topk_clean: np.ndarray  # [T, k] token ids
    topk_edited: np.ndarray
    topk_clean_p: np.ndarray  # [T, k] probabilities
    topk_edited_p: np.ndarray
    delta: dict[str, np.ndarray]  # tap -> [T, U]
    delta_norm: dict[str, np.ndarray]  # tap -> [T]
    vocab: list[str] | None = None

    def edited_positions(self) -> np.ndarray:
        """Item-local positions at which some perturbation edits (all positions for one without positions)."""
        T = len(self.clean.tokens)
        if any(p.positions is None for p in self.perturbations):
            return np.arange(T)
        return np.array(sorted({q for p in self.perturbations for q in p.positions if q < T}), dtype=np.int64)

    def summary(self) -> dict:
        edited = self.edited_positions()
        finite = np.isfinite(self.dnll)
        return {
            "item": int(self.item),
            "tokens": int(len(self.clean.tokens)),
            "positions_edited": int(len(edited)),
            "first_edited": int(edited[0]) if len(edited) else None,
            "mean_dnll": float(self.dnll[finite].mean()) if finite.any() else math.nan,
            "max_dnll": float(self.dnll[finite].max()) if finite.any() else math.nan,
            "mean_kl": float(self.kl.mean()) if len(self.kl) else math.nan,
            "max_kl": float(self.kl.max()) if len(self.kl) else math.nan,
            "clean_nll": float(np.nanmean(self.clean.nll)) if finite.any() else math.nan,
            "edited_nll": float(np.nanmean(self.edited.nll)) if finite.any() else math.nan,
            "perturbations": "; ".join(p.describe() for p in self.perturbations),
        }

    def to_table(self) -> list[dict]:
        """One row per position: token, nll clean/edited, dnll, kl, top-1 before/after, |Δ| per tap."""
        rows = []
        edited = set(self.edited_positions().tolist())
        for t, tok in enumerate(self.clean.tokens):
            row = {
                "item": int(self.item),
                "position": t,
                "token": self.vocab[tok] if self.vocab and tok < len(self.vocab) else int(tok),
                "edited": int(t in edited),
                "nll_clean": float(self.clean.nll[t]),
                "nll_edited": float(self.edited.nll[t]),
                "dnll": float(self.dnll[t]),
                "kl": float(self.kl[t]),
                "top1_clean": self._token(self.topk_clean[t, 0]),
                "p_top1_clean": float(self.topk_clean_p[t, 0]),
                "top1_edited": self._token(self.topk_edited[t, 0]),
                "p_top1_edited": float(self.topk_edited_p[t, 0]),
            }
            for tap, norm in self.delta_norm.items():
                row[f"delta_norm[{tap}]"] = float(norm[t])
            rows.append(row)
        return rows

    def _token(self, token_id) -> str | int:
        token_id = int(token_id)
        return self.vocab[token_id] if self.vocab and token_id < len(self.vocab) else token_id


def _compare(logits_clean: torch.Tensor, logits_edited: torch.Tensor, tokens: torch.Tensor):
    """Per-position dnll and KL ``[B, T]`` and the log-probabilities of both runs."""
    lp_c = torch.log_softmax(logits_clean, dim=-1)
    lp_e = torch.log_softmax(logits_edited, dim=-1)
    nll_c = next_token_nll(lp_c, tokens)
    nll_e = next_token_nll(lp_e, tokens)
    kl = (lp_c.exp() * (lp_c - lp_e)).sum(-1).clamp_min_(0.0).cpu()
    return nll_c, nll_e, kl, lp_c, lp_e


def _with_rows(edits, rows) -> list:
    rows = list(rows)
    return [replace(e, items=rows) for e in edits]


def _topk(lp: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(int(k), lp.shape[-1])
    values, ids = lp.topk(k, dim=-1)
    return ids.cpu().numpy(), values.exp().cpu().numpy()


def perturb_item(live, recording, item: int, perturbations, *, taps=None, k: int = 5, task=None) -> Effect:
    """Run ``item`` clean and with ``perturbations`` (one batch of two rows) and compare them.

    ``taps``: the taps whose Δ to compute (None: every tap of the recording the model has; ``()``: none).
    """
    task = ensure_task(task)
    if isinstance(perturbations, Perturbation):
        perturbations = [perturbations]
    perturbations = list(perturbations)
    if not perturbations:
        raise PerturbError("no perturbation given; choose an action, a tap, units and positions")
    task.progress(0, 2, "Perturb: preparing")
    tokens = item_tokens(recording, item)
    taps = _taps(live, recording, taps)
    edits = _with_rows(resolve(perturbations, live, recording, item, length=len(tokens), task=task), [1])
    task.progress(1, 2, f"Perturb: running item {item}")
    batch = torch.from_numpy(tokens)[None].expand(2, -1).contiguous()
    logits, states = forward(live, batch, edits, taps)
    nll_c, nll_e, kl, lp_c, lp_e = _compare(logits[:1], logits[1:], batch[:1])
    states_np = {t: v.float().cpu().numpy() for t, v in states.items()}
    clean = Run(tokens, logits[0].cpu().numpy(), nll_c[0].numpy(), {t: v[0] for t, v in states_np.items()})
    edited = Run(tokens, logits[1].cpu().numpy(), nll_e[0].numpy(), {t: v[1] for t, v in states_np.items()})
    delta = {t: edited.states[t] - clean.states[t] for t in taps}
    ids_c, p_c = _topk(lp_c[0], k)
    ids_e, p_e = _topk(lp_e[0], k)
    task.progress(2, 2, "Perturb: done")
    return Effect(int(item), perturbations, clean, edited, edited.nll - clean.nll, kl[0].numpy(), ids_c, ids_e,
                  p_c, p_e, delta, {t: np.linalg.norm(d, axis=1) for t, d in delta.items()}, live.vocab)


# -------------------------------------------------------------------------------------------- sweeps


@dataclass
class Sweep:
    """The effect of ``add`` with each of ``alphas`` on one item."""

    alphas: np.ndarray  # [A]
    mean_dnll: np.ndarray  # [A]
    mean_kl: np.ndarray  # [A]
    max_dnll: np.ndarray  # [A]
    per_position_dnll: np.ndarray  # [A, T]
    per_position_kl: np.ndarray | None = None  # [A, T]

    def to_table(self) -> list[dict]:
        return [{"alpha": float(a), "mean_dnll": float(m), "max_dnll": float(x), "mean_kl": float(k)}
                for a, m, x, k in zip(self.alphas, self.mean_dnll, self.max_dnll, self.mean_kl)]


def _alphas(alphas) -> np.ndarray:
    try:
        a = np.asarray(alphas, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise PerturbError(f"alphas must be numbers, got {alphas!r}") from None
    if a.size == 0:
        raise PerturbError("a sweep needs at least one alpha")
    if not np.all(np.isfinite(a)):
        raise PerturbError(f"alpha must be a finite number, got {a[~np.isfinite(a)][0]!r}")
    return a


def sweep_alpha(live, recording, item: int, perturbation: Perturbation, alphas, *, batch_size: int = 32,
                task=None) -> Sweep:
    """Run ``item`` with ``perturbation`` (an ``add``) scaled by each alpha; the clean run once, the alphas
    as rows of batches."""
    task = ensure_task(task)
    if not isinstance(perturbation, Perturbation):
        raise PerturbError(f"expected a Perturbation, got a {type(perturbation).__name__}")
    if perturbation.action != "add":
        raise PerturbError(f"a sweep of alpha needs the add action; {perturbation.action} has no alpha")
    a = _alphas(alphas)
    tokens = item_tokens(recording, item)
    base = resolve([replace(perturbation, alpha=1.0)], live, recording, item, length=len(tokens), task=task)[0]
    direction = np.asarray(base.value, dtype=np.float32)
    per_nll, per_kl = np.empty((len(a), len(tokens))), np.empty((len(a), len(tokens)))
    step = max(1, int(batch_size) - 1)
    task.progress(0, len(a), "Sweep of alpha")
    for lo in range(0, len(a), step):
        chunk = a[lo:lo + step]
        batch = torch.from_numpy(tokens)[None].expand(len(chunk) + 1, -1).contiguous()
        edits = [replace(base, value=(alpha * direction).astype(np.float32), items=[r + 1])
                 for r, alpha in enumerate(chunk)]
        logits, _ = forward(live, batch, edits)
        nll_c, nll_e, kl, _, _ = _compare(logits[:1].expand(len(chunk), -1, -1), logits[1:], batch[1:])
        per_nll[lo:lo + len(chunk)] = (nll_e - nll_c).numpy()
        per_kl[lo:lo + len(chunk)] = kl.numpy()
        task.progress(lo + len(chunk), len(a), "Sweep of alpha")
    finite = np.isfinite(per_nll)
    mean = np.where(finite.any(1), np.nansum(per_nll, 1) / np.maximum(finite.sum(1), 1), np.nan)
    mx = np.where(finite.any(1), np.nanmax(np.where(finite, per_nll, -np.inf), 1), np.nan)
    return Sweep(a, mean, per_kl.mean(1), mx, per_nll, per_kl)


# ------------------------------------------------------------------------------------------- batches


@dataclass
class BatchEffect:
    """One perturbation over many items (or matches): per row, the mean and max dnll and the mean KL."""

    items: np.ndarray  # [N] item of each row
    mean_dnll: np.ndarray  # [N]
    max_dnll: np.ndarray
    mean_kl: np.ndarray
    perturbation: Perturbation | None = None
    starts: np.ndarray | None = None  # [N] match start (item-local) per row when run over matches
    stops: np.ndarray | None = None
    lengths: np.ndarray | None = None  # [N] tokens per item

    def ranking(self, by: str = "mean_dnll") -> np.ndarray:
        """Row indices into :attr:`items`, most changed first (largest |value| of ``by``)."""
        if by not in ("mean_dnll", "max_dnll", "mean_kl"):
            raise PerturbError(f"rank by mean_dnll, max_dnll or mean_kl, not {by!r}")
        values = np.abs(np.asarray(getattr(self, by), dtype=np.float64))
        values = np.where(np.isfinite(values), values, -np.inf)
        return np.argsort(-values, kind="stable")

    def ranked_items(self, by: str = "mean_dnll") -> np.ndarray:
        return self.items[self.ranking(by)]

    def to_table(self) -> list[dict]:
        rows = []
        for r, item in enumerate(self.items):
            row = {"item": int(item)}
            if self.starts is not None:
                row["start"], row["stop"] = int(self.starts[r]), int(self.stops[r])
            if self.lengths is not None:
                row["tokens"] = int(self.lengths[r])
            row.update(mean_dnll=float(self.mean_dnll[r]), max_dnll=float(self.max_dnll[r]),
                       mean_kl=float(self.mean_kl[r]))
            rows.append(row)
        return rows


def _merge(edits_of_rows: list[list]) -> list:
    """One Edit per distinct (signal, action, value, positions, units), naming every row that has it."""
    groups: dict[tuple, tuple] = {}
    for row, edits in edits_of_rows:
        for e in edits:
            value = np.asarray(e.value, dtype=np.float32)
            key = (e.signal, e.action, e.positions, e.units, value.shape, value.tobytes())
            if key in groups:
                groups[key][1].append(row)
            else:
                groups[key] = (e, [row])
    return [replace(e, items=rows) for e, rows in groups.values()]


def _inside(p: Perturbation, length: int) -> Perturbation | None:
    """``p`` with only its positions before ``length`` (None when none is)."""
    if p.positions is None:
        return p
    inside = [q for q in p.positions if q < length]
    if len(inside) == len(p.positions):
        return p
    return p.with_positions(inside) if inside else None


def perturb_items(live, recording, perturbation, items=None, *, where=None, batch_size: int = 32,
                  task=None) -> BatchEffect:
    """Apply ``perturbation`` to many items in padded batches; per item (or match) the mean and max dnll
    and the mean KL.

    ``items`` None = every item. ``where``: a list of ``(item, start, stop)`` (matches; item-local
    positions): the perturbation's positions become ``start .. stop-1`` of each. Each batch holds the
    clean and the edited rows of its items, so one forward gives both.
    """
    task = ensure_task(task)
    if isinstance(perturbation, (list, tuple)):
        perturbations = list(perturbation)
    else:
        perturbations = [perturbation]
    if not perturbations or not all(isinstance(p, Perturbation) for p in perturbations):
        raise PerturbError("expected a Perturbation (or a list of them)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise PerturbError(f"batch_size must be a positive whole number, got {batch_size!r}")
    n = recording.n_items
    if where is not None:
        rows = []
        for entry in where:
            try:
                item, start, stop = (int(v) for v in entry)
            except (TypeError, ValueError):
                raise PerturbError(f"where must hold (item, start, stop) triples, got {entry!r}") from None
            if not 0 <= item < n:
                raise PerturbError(f"item {item} does not exist; the recording has items 0 to {n - 1}")
            if not 0 <= start < stop:
                raise PerturbError(f"the match ({item}, {start}, {stop}) has no positions")
            rows.append((item, start, stop))
        if not rows:
            raise PerturbError("no matches given (where is empty)")
    else:
        chosen = range(n) if items is None else items
        rows = []
        for item in chosen:
            try:
                item = int(item)
            except (TypeError, ValueError):
                raise PerturbError(f"items must be whole numbers, got {item!r}") from None
            if not 0 <= item < n:
                raise PerturbError(f"item {item} does not exist; the recording has items 0 to {n - 1}")
            rows.append((item, None, None))
        if not rows:
            raise PerturbError("no items given")
    offsets = np.asarray(recording.item_offsets, dtype=np.int64)
    lengths = np.array([offsets[i + 1] - offsets[i] for i, _, _ in rows], dtype=np.int64)
    mean_dnll, max_dnll, mean_kl = (np.full(len(rows), np.nan) for _ in range(3))
    task.progress(0, len(rows), "Perturb items")
    memo: dict = {}
    for lo in range(0, len(rows), int(batch_size)):
        chunk = rows[lo:lo + int(batch_size)]
        B = len(chunk)
        token_lists = [item_tokens(recording, i) for i, _, _ in chunk]
        per_row = []
        for r, ((item, start, stop), toks) in enumerate(zip(chunk, token_lists)):
            if start is None:  # positions beyond this item's end are skipped for it
                ps = [q for q in (_inside(p, len(toks)) for p in perturbations) if q is not None]
            else:
                ps = [p.with_positions(range(start, stop)) for p in perturbations]
            key = (tuple(p.positions for p in ps),
                   len(toks) if any(p.action == "patch" and p.positions is None for p in ps) else None)
            fits = all(p.positions is None or max(p.positions) < len(toks) for p in ps)
            edits = memo.get(key) if fits else None  # a match beyond its item: resolve says so
            if edits is None:
                edits = memo[key] = resolve(ps, live, recording, item, length=len(toks), task=task) if ps else []
            per_row.append((B + r, edits))
        batch = pad(token_lists + token_lists)
        logits, _ = forward(live, batch, _merge(per_row))
        nll_c, nll_e, kl, _, _ = _compare(logits[:B], logits[B:], batch[:B])
        dnll = (nll_e - nll_c).numpy()
        kl = kl.numpy()
        for r, toks in enumerate(token_lists):
            T = len(toks)
            d = dnll[r, :T - 1]
            mean_dnll[lo + r] = float(d.mean()) if T > 1 else math.nan
            max_dnll[lo + r] = float(d.max()) if T > 1 else math.nan
            mean_kl[lo + r] = float(kl[r, :T].mean())
        task.progress(lo + B, len(rows), "Perturb items")
    items_arr = np.array([i for i, _, _ in rows], dtype=np.int64)
    starts = stops = None
    if where is not None:
        starts = np.array([s for _, s, _ in rows], dtype=np.int64)
        stops = np.array([s for _, _, s in rows], dtype=np.int64)
    return BatchEffect(items_arr, mean_dnll, max_dnll, mean_kl, perturbations[0] if len(perturbations) == 1 else None,
                       starts, stops, lengths)


__all__ = ["BatchEffect", "Effect", "Run", "Sweep", "perturb_item", "perturb_items", "reproduces", "run_item",
               "sweep_alpha"]
