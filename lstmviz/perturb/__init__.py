"""Perturbation: re-run the live model on a recording's items with hidden states edited, and see what changes.

    import lstmviz
    from lstmviz.perturb import Perturbation, load_live_model, perturb_item

    rec = lstmviz.open_recording("parens-lstm.h5")
    live = load_live_model(rec)                        # the checkpoint named in the recording
    effect = perturb_item(live, rec, 0, [Perturbation("layer1/c", "ablate", units=(3, 17))])
    effect.summary()["mean_dnll"]

Qt-free (torch is used). Interventions go through :func:`lstmviz.hooks.intervene`; see
:mod:`.spec` for what each action computes and :mod:`.run` for the effects (dnll, KL, top-k, Δ per tap).
"""

from .errors import PerturbError
from .live_model import CheckpointProblem, LiveModel, find_checkpoint, live_model, load_live_model
from .run import (BatchEffect, Effect, Run, Sweep, perturb_item, perturb_items, reproduces, run_item,
                  sweep_alpha)
from .spec import ACTIONS, DIRECTIONS, Perturbation, resolve

__all__ = [
    "ACTIONS",
    "BatchEffect",
    "CheckpointProblem",
    "DIRECTIONS",
    "Effect",
    "LiveModel",
    "Perturbation",
    "PerturbError",
    "Run",
    "Sweep",
    "find_checkpoint",
    "live_model",
    "load_live_model",
    "perturb_item",
    "perturb_items",
    "reproduces",
    "resolve",
    "run_item",
    "sweep_alpha",
]
