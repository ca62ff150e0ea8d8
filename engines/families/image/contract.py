"""The contract every engine of the ``image`` family satisfies.

``CHECKS`` are plain functions ``check(spec, tmp_path)`` raising ``AssertionError``;
``tests/engines/test_engine_contract.py`` runs each for every registered image engine, on tiny float64
models (``TINY_CONFIG``, the keys an engine's build accepts) and small random images
(:class:`~lstmviz.engines.families.image.SampleImages`): 3 channels, 8×8 (the digits' size), 4 classes,
for every task the engine builds for (``class``, ``multilabel``, ``segmentation``: 4 pixel classes;
``regression``: :data:`TARGET_CHANNELS` = 2 target channels, so that the per-channel paths are exercised).
An engine supports a task when it builds for it without ``ValueError`` and, for ``segmentation`` and
``regression``, returns per-pixel outputs ``[B, K, H, W]`` (``[B, Ct, H, W]``): an image classifier that accepts the task but returns ``[B, K]`` is
counted as not supporting it (the objective refuses that pairing in words at the first step). Recording every image engine
into a file and reading it back is tested in ``tests/engines/image/test_image_engines_record.py`` (the
engines package does not import the recording package).
"""

from __future__ import annotations

import dataclasses
import fnmatch

import numpy as np
import torch

from lstmviz.hooks import HookScope, find_taps

from ..family import train_objective_briefly
from . import FAMILY, ImageData, SampleImages, sample_inputs
from .api import INPUT_AXIS

CHANNELS, HEIGHT, WIDTH, CLASSES = 3, 8, 8, 4
#: hyperparameters that keep every engine tiny; only the keys an engine's build() accepts are used
TINY_CONFIG = {"hidden_size": 4, "num_layers": 3}
TARGET_CHANNELS = 2
"""``Ct`` of the regression task's contract data (``num_classes``): 2, so that per-channel code is exercised."""
DENSE = ("segmentation", "regression")


def data_for(task: str) -> ImageData:
    classes = TARGET_CHANNELS if task == "regression" else CLASSES
    return ImageData(channels=CHANNELS, height=HEIGHT, width=WIDTH, num_classes=classes, task=task)


TASKS = ("class", "multilabel", "segmentation", "regression")


def predicts_pixels(model, data: ImageData) -> bool:
    """Whether ``model`` returns per-pixel logits ``[B, K, H, W]`` for images of ``data`` (one eval forward)."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = sample_inputs(data, batch=1, seed=0)
            p = next(iter(model.parameters()), None)
            if p is not None and p.is_floating_point():
                x = x.to(p.dtype)
            out = model(x)
    finally:
        model.train(was)
    return tuple(out.shape) == (1, data.num_classes, data.height, data.width)


def supported_tasks(spec) -> list[str]:
    tasks = []
    for task in TASKS:
        try:
            model = spec.build_model(data_for(task), **spec.default_config)
        except ValueError:
            continue
        if task in DENSE and not predicts_pixels(model, data_for(task)):
            continue
        tasks.append(task)
    return tasks


def output_shape(task: str, batch: int) -> tuple[int, ...]:
    """The logits' shape for ``batch`` images of :func:`data_for` ``(task)``."""
    k = data_for(task).num_classes
    return (batch, k, HEIGHT, WIDTH) if task in DENSE else (batch, k)


def tiny_model(spec, task: str, seed: int = 0, **overrides):
    """``(model, config)``: the engine built tiny for ``task``, float64, in eval mode."""
    config = {k: v for k, v in TINY_CONFIG.items() if k in spec.config_keys()}
    config = spec.resolve_config({**config, **overrides})
    torch.manual_seed(seed)
    return spec.build_model(data_for(task), **config).double().eval(), config


def spec_describes_paper_taps_config_and_training(spec, tmp_path) -> None:
    from lstmviz.engines.training import train_settings_for

    assert spec.description and spec.family == FAMILY.name
    assert spec.paper.title and spec.paper.authors and 1980 < spec.paper.year < 2100
    assert spec.taps
    assert set(spec.train_defaults) <= set(train_settings_for(FAMILY))
    assert not {"channels", "height", "width", "num_classes", "task"} & set(spec.config_keys())  # the data's
    assert supported_tasks(spec), f"{spec.name} builds for none of the tasks {', '.join(TASKS)}"
    model = spec.build_model(data_for(supported_tasks(spec)[0]), **spec.default_config)
    assert model.__doc__ and callable(getattr(model, "image_axes", None))


def output_shapes_and_eval_determinism(spec, tmp_path) -> None:
    for task in supported_tasks(spec):
        model, _ = tiny_model(spec, task)
        x = sample_inputs(data_for(task), batch=3, seed=2).double()
        with torch.no_grad():
            first, again = model(x), model(x)
            one = model(x[1:2])
        assert tuple(first.shape) == output_shape(task, 3), (task, tuple(first.shape))
        assert first.dtype == torch.float64 and torch.isfinite(first).all()
        assert torch.equal(first, again), f"{spec.name} ({task}) is not deterministic in eval mode"
        torch.testing.assert_close(one[0], first[1])  # an image's logits do not depend on the batch
        if task in DENSE:  # every pixel's output is finite and the map is not constant
            assert first.flatten(2).std(dim=2).max() > 0, f"{spec.name}: the per-pixel outputs are the same everywhere"


def every_tap_fires_once_on_a_described_axis_with_its_positions(spec, tmp_path) -> None:
    patterns = [p.replace("{layer}", "*") for p in spec.taps]
    for task in supported_tasks(spec):
        model, _ = tiny_model(spec, task)
        taps = find_taps(model)
        assert taps, f"{spec.name} ({task}) has no taps"
        axes = model.image_axes(HEIGHT, WIDTH)
        calls: dict[str, list] = {name: [] for name in taps}
        with HookScope() as hooks:
            for name, tap in taps.items():
                hooks.read(tap, lambda module, args, kwargs, out: calls[module.name].append(tuple(out.shape)))
            with torch.no_grad():
                model(sample_inputs(data_for(task), batch=2, seed=3).double())
        for name, tap in taps.items():
            assert any(fnmatch.fnmatchcase(name, p) for p in patterns), f"{name} is not declared in spec.taps"
            assert tap.description, name
            assert tap.layout.geometry in ("image", "scalar", "set"), (name, tap.layout)
            assert len(calls[name]) == 1, f"{name} fired {len(calls[name])} times in one forward"
            shape = calls[name][0]
            assert shape[0] == 2, (name, shape)
            if tap.axis == INPUT_AXIS:
                assert tap.layout.geometry == "image" and shape[2:] == (HEIGHT, WIDTH), (name, shape)
                continue
            assert tap.axis in axes, f"{name} lives on axis {tap.axis!r}, which image_axes() does not describe"
            entry = axes[tap.axis]
            assert entry.geometry.kind == tap.layout.geometry, (name, entry.geometry.kind)
            if tap.layout.geometry == "image":
                assert len(shape) == 4 and shape[2:] == (entry.size.height, entry.size.width), (name, shape, entry)
            elif tap.layout.geometry == "set":  # [B, M, units]: one row per member of the axis
                assert len(shape) == 3 and shape[1] == entry.num_positions, (name, shape, entry)
            else:
                assert len(shape) == 2 and entry.num_positions == 1, (name, shape)


def a_few_training_steps_lower_the_loss(spec, tmp_path) -> None:
    """40 Adam steps of the family's objective on 8 images cut the training loss by a fifth (and keep it finite)."""
    from .objective import ImageObjective

    for task in supported_tasks(spec):
        data = data_for(task)
        images = SampleImages(data, images=8, seed=5)
        objective = ImageObjective()
        objective.prepare(images, images, {"batch_size": 8, "seed": 0}, torch.device("cpu"))
        model, _ = tiny_model(spec, task)
        first, last = train_objective_briefly(objective, model, 40)
        assert np.isfinite(last) and last < 0.8 * first, f"{spec.name} ({task}): loss {first:.3f} -> {last:.3f}"


def checkpoint_round_trip_gives_identical_outputs(spec, tmp_path) -> None:
    from lstmviz.engines.checkpoint import load_checkpoint, save_checkpoint

    for task in supported_tasks(spec):
        model, config = tiny_model(spec, task, seed=3)
        data = data_for(task)
        path = save_checkpoint(tmp_path / f"{spec.name}-{task}.pt", model, engine=spec.name, config=config,
                               vocab=["background", "stroke"], dataset="tiny", step=7, metrics={"train_loss": 1.5},
                               family=spec.family, data=dataclasses.asdict(data))
        loaded, meta = load_checkpoint(path)
        assert type(loaded) is type(model) and not loaded.training
        assert meta["family"] == FAMILY.name and meta["config"] == config and meta["data"] == dataclasses.asdict(data)
        assert FAMILY.describe_checkpoint({"data": meta["data"]}) == data
        x = sample_inputs(data, batch=2, seed=6).double()
        with torch.no_grad():
            assert torch.equal(loaded(x), model(x))


CHECKS = (
    spec_describes_paper_taps_config_and_training,
    output_shapes_and_eval_determinism,
    every_tap_fires_once_on_a_described_axis_with_its_positions,
    a_few_training_steps_lower_the_loss,
    checkpoint_round_trip_gives_identical_outputs,
)
