"""The Perturb panel's work on the worker threads: plain functions of a ``Task`` over ``lstmviz.perturb``.

``PerturbRequest`` is everything one press of Run / Sweep alpha / All items asks for (taken from the
controls and the workspace on the GUI thread); ``perturb_job(request, task)`` loads the live model
when the panel has none yet (``load_live_model``; a ``CheckpointProblem`` comes back as
``PerturbOutcome.checkpoint_problem`` rather than as a failure, so the panel can offer to locate the
file), resolves a probe's top units when asked, and runs ``perturb_item``, ``sweep_alpha`` or
``perturb_items`` — or, for the input side, ``attack_item`` (Szegedy's L-BFGS, PGD, HotFlip) and, for
pruning, ``pruning_curve_items`` on every item, or ``prune_live_model`` (Laurent et al.'s loss-model pruning
of a copy of the whole model on the first ``PRUNE_ITEMS`` items, and its effect on the item).
``lstmviz.perturb`` (torch) is imported only here, inside the job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

#: how many of a probe's units (largest |weight| of the class's row) "a probe's top units" takes
PROBE_TOP_UNITS = 10
#: "Prune model" prunes on the recording's first items (the gradient, the curvature and the measured Δloss)
PRUNE_ITEMS = 128


@dataclass(frozen=True)
class PerturbRequest:
    """What one run asks for. ``kind``: "effect" (one item), "sweep" (alphas on one item), "items"
    (every item, or the matches in ``where``), "attack" (an input-side attack on one item, ``attack``) or
    "pruning" (the pruning curve of the tap's units over every item) or "prune" (loss-model pruning of the
    model's weights, ``prune``: ``prune_live_model``'s keywords). ``fields``: the ``Perturbation`` keywords without
    ``units``; ``units``: resolved units (None: all units, or a probe's top units when
    ``probe_units`` names ``(annotation, class)``)."""

    kind: str
    tap: str
    fields: dict
    units: tuple[int, ...] | None
    positions: tuple[int, ...] | None
    item: int
    checkpoint: str | None = None
    probe_units: tuple[str, str] | None = None
    alphas: tuple[float, ...] = ()
    where: tuple[tuple[int, int, int], ...] | None = None
    attack: dict | None = None  # kind "attack": method, position (item-local) and the method's options
    prune: dict | None = None  # kind "prune": method, sparsity, steps, lam, curvature


@dataclass
class PerturbOutcome:
    """What a finished job hands to the panel."""

    request: PerturbRequest
    live: object = None
    result: object = None
    perturbation: object = None
    checkpoint_problem: BaseException | None = None
    seconds: float = 0.0
    recording: object = field(default=None, repr=False)


def probe_top_units(recording, tap: str, annotation: str, label: str, count: int = PROBE_TOP_UNITS,
                    task=None) -> tuple[int, ...]:
    """The ``count`` units of ``tap`` with the largest |weight| in class ``label``'s row of a linear probe
    of ``annotation`` (``lstmviz.perturb.spec.probe_direction``), largest first."""
    from lstmviz.perturb.spec import probe_direction

    weights = np.abs(np.asarray(probe_direction(recording, tap, annotation, label, task=task), float))
    order = np.argsort(-weights, kind="stable")[:count]
    return tuple(int(u) for u in order)


def build_perturbation(request: PerturbRequest, units):
    from lstmviz.perturb import Perturbation

    return Perturbation(tap=request.tap, units=units, positions=request.positions, **request.fields)


def perturb_job(recording, request: PerturbRequest, live, task) -> PerturbOutcome:
    """The worker's job (see the module docstring); ``live``: the panel's live model, or None."""
    from lstmviz.perturb import CheckpointProblem, load_live_model, perturb_item, perturb_items, sweep_alpha

    t0 = time.perf_counter()
    outcome = PerturbOutcome(request, recording=recording)
    if live is None:
        task.progress(0, None, "Loading the model")
        try:
            live = load_live_model(recording, request.checkpoint)
        except CheckpointProblem as exc:
            outcome.checkpoint_problem = exc
            return outcome
    outcome.live = live
    if request.kind == "attack":
        from lstmviz.perturb.adversarial import attack_item

        options = dict(request.attack)
        method, position = options.pop("method"), options.pop("position")
        task.progress(0, None, f"Attack ({method}) at position {position}")
        outcome.result = attack_item(live, recording, request.item, position, method=method, task=task, **options)
        outcome.seconds = time.perf_counter() - t0
        return outcome
    if request.kind == "pruning":
        from lstmviz.perturb.pruning import pruning_curve_items

        outcome.result = pruning_curve_items(live, recording, None, request.tap, task=task)
        outcome.seconds = time.perf_counter() - t0
        return outcome
    if request.kind == "prune":
        from lstmviz.perturb.prune_live import prune_live_model

        outcome.result = prune_live_model(live, recording, request.item, items=PRUNE_ITEMS, task=task,
                                          **request.prune)
        outcome.seconds = time.perf_counter() - t0
        return outcome
    units = request.units
    if request.probe_units is not None:
        units = probe_top_units(recording, request.tap, *request.probe_units, task=task)
    perturbation = build_perturbation(request, units)
    outcome.perturbation = perturbation
    if request.kind == "effect":
        outcome.result = perturb_item(live, recording, request.item, [perturbation], task=task)
    elif request.kind == "sweep":
        outcome.result = sweep_alpha(live, recording, request.item, perturbation, list(request.alphas), task=task)
    else:
        where = None if request.where is None else [list(w) for w in request.where]
        outcome.result = perturb_items(live, recording, perturbation if where is None
                                       else replace(perturbation, positions=None), where=where, task=task)
    outcome.seconds = time.perf_counter() - t0
    return outcome


def save_pruned(result, live, path):
    """Write the pruned copy of a "prune" result as a checkpoint with its masks (atomic)."""
    from lstmviz.perturb.prune_live import save_live_pruning

    return save_live_pruning(result, live, path)
