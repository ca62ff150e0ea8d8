"""The contract every engine of the ``strokes`` family satisfies.

``CHECKS`` are plain functions ``check(spec, tmp_path)`` raising ``AssertionError``, run for every registered
strokes engine by ``tests/engines/test_engine_contract.py`` on tiny float64 models (``TINY_CONFIG``: the
keys an engine's build accepts) and random-walk items (:class:`~lstmviz.engines.families.strokes.SampleStrokes`)
of 3 classes.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import inspect

import numpy as np
import torch

from lstmviz.hooks import HookScope, find_taps

from ..family import train_objective_briefly
from . import FAMILY, SampleStrokes, StrokeData, sample_inputs

DATA = StrokeData(num_classes=3)
TINY_CONFIG = {"hidden_size": 8, "recogniser_hidden": 6, "components": 2, "embedding_dim": 3}


def tiny_model(spec, seed: int = 0):
    torch.manual_seed(seed)
    keys = set(inspect.signature(spec.build).parameters)
    config = {**spec.default_config, **{k: v for k, v in TINY_CONFIG.items() if k in keys}}
    model = spec.build_model(DATA, **config).double()
    model.eval()
    return model, config


def spec_describes_paper_taps_and_training(spec, tmp_path) -> None:
    assert spec.family == FAMILY.name and spec.paper.arxiv and spec.taps
    assert spec.training_dataset(), "a strokes engine names the dataset it trains on"


def outputs_have_the_family_shapes_and_ignore_padding(spec, tmp_path) -> None:
    """``(logits [B, K], per_step [B, T, F])``; an item's outputs are the same alone and padded in a batch."""
    model, _ = tiny_model(spec)
    steps, mask, classes = sample_inputs(DATA, batch=2, length=7, seed=1)
    steps = steps.double()
    mask[1, 4:] = False  # item 1 has 4 real steps
    with torch.no_grad():
        logits, per_step = model(steps, classes, mask)
        alone_logits, alone_steps = model(steps[1:2, :4], classes[1:2], mask[1:2, :4])
    assert tuple(logits.shape) == (2, DATA.num_classes) and per_step.shape[:2] == (2, 7)
    assert torch.isfinite(logits).all() and torch.isfinite(per_step).all()
    torch.testing.assert_close(alone_logits[0], logits[1])
    torch.testing.assert_close(alone_steps[0], per_step[1, :4])


def every_tap_fires_once_per_step_on_the_main_axis(spec, tmp_path) -> None:
    model, _ = tiny_model(spec)
    taps = find_taps(model)
    patterns = [p.replace("{layer}", "*") for p in spec.taps]
    rows: dict[str, int] = {name: 0 for name in taps}
    steps, mask, classes = sample_inputs(DATA, batch=2, length=5, seed=2)

    def seen(module, args, kwargs, out):
        step = kwargs.get("step", args[1] if len(args) > 1 else None)
        assert out.shape[0] == 2, (module.name, tuple(out.shape))
        rows[module.name] += 1 if step is not None else out.shape[1]

    with HookScope() as hooks:
        for tap in taps.values():
            hooks.read(tap, seen)
        with torch.no_grad():
            model(steps.double(), classes, mask)
    for name, tap in taps.items():
        assert any(fnmatch.fnmatchcase(name, p) for p in patterns), f"{name} is not declared in spec.taps"
        assert tap.description, name
        assert rows[name] == 5, f"{name}: {rows[name]} rows for 5 steps (one per pen point expected)"


def a_few_training_steps_lower_the_loss(spec, tmp_path) -> None:
    from .objective import StrokesObjective

    items = SampleStrokes(DATA, items=6, seed=4)
    objective = StrokesObjective()
    objective.prepare(items, items, {"batch_size": 6, "seed": 0}, torch.device("cpu"))
    model, _ = tiny_model(spec)
    first, last = train_objective_briefly(objective, model, 40)
    assert np.isfinite(last) and last < first - 0.1, f"{spec.name}: loss {first:.3f} -> {last:.3f}"
    assert objective.metrics()["valid_accuracy"] is not None


def checkpoint_round_trip_gives_identical_outputs(spec, tmp_path) -> None:
    from lstmviz.engines.checkpoint import load_checkpoint, save_checkpoint

    model, config = tiny_model(spec, seed=3)
    path = save_checkpoint(tmp_path / f"{spec.name}.pt", model, engine=spec.name, config=config, vocab=["·", "↑"],
                           dataset="tiny", step=3, metrics={"train_loss": 1.0}, family=spec.family,
                           data=dataclasses.asdict(DATA))
    loaded, meta = load_checkpoint(path)
    assert type(loaded) is type(model) and meta["family"] == FAMILY.name
    assert FAMILY.describe_checkpoint({"data": meta["data"]}) == DATA
    steps, mask, classes = sample_inputs(DATA, batch=2, length=6, seed=5)
    loaded = loaded.double()
    with torch.no_grad():
        for a, b in zip(loaded(steps.double(), classes, mask), model(steps.double(), classes, mask)):
            assert torch.equal(a, b)


CHECKS = (
    spec_describes_paper_taps_and_training,
    outputs_have_the_family_shapes_and_ignore_padding,
    every_tap_fires_once_per_step_on_the_main_axis,
    a_few_training_steps_lower_the_loss,
    checkpoint_round_trip_gives_identical_outputs,
)
