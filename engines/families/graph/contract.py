"""The contract every engine of the ``graph`` family satisfies.

``CHECKS`` are plain functions ``check(spec, tmp_path)`` raising ``AssertionError``;
``tests/engines/test_engine_contract.py`` runs each for every registered graph engine. An engine
supports the node task, the graph task or both (its build refuses the other with a ``ValueError``);
each check runs for every task it supports, on tiny float64 models and small random graphs
(:func:`~lstmviz.engines.families.graph.sample_inputs`).
"""

from __future__ import annotations

import dataclasses
import fnmatch

import numpy as np
import torch

from lstmviz.hooks import GRAPH, HookScope, find_taps

from ..family import train_objective_briefly
from . import FAMILY, GraphData, SampleGraphs, sample_inputs
from .api import PreparedGraph

FEATURES, CLASSES = 5, 3
#: hyperparameters that keep every engine tiny; only the keys an engine's build() accepts are used
TINY_CONFIG = {"hidden_size": 6, "num_layers": 2, "embedding_dim": 6}


def data_for(task: str) -> GraphData:
    return GraphData(num_features=FEATURES, num_classes=CLASSES, task=task)


def supported_tasks(spec) -> list[str]:
    """The tasks the engine builds for (its default configuration)."""
    tasks = []
    for task in ("node", "graph"):
        try:
            spec.build_model(data_for(task), **spec.default_config)
        except ValueError:
            continue
        tasks.append(task)
    return tasks


def tiny_model(spec, task: str, seed: int = 0, **overrides):
    """``(model, config)``: the engine built tiny for ``task``, float64, in eval mode."""
    config = {k: v for k, v in TINY_CONFIG.items() if k in spec.config_keys()}
    config = spec.resolve_config({**config, **overrides})
    torch.manual_seed(seed)
    model = spec.build_model(data_for(task), **config).double().eval()
    return model, config


def _same(a, b, where: str) -> None:
    """``a`` and ``b`` equal, recursively (arrays, tensors incl. sparse ones, geometry, containers)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), where
        a, b = (a.to_dense(), b.to_dense()) if a.is_sparse else (a, b)
        assert a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.shape == b.shape and np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for key in a:
            _same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        for f in dataclasses.fields(a):
            _same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    else:
        assert a == b, where


def _check_levels(prepared: PreparedGraph, n_input: int) -> None:
    levels = prepared.levels
    assert levels and levels[0].axis == "positions"
    assert prepared.num_input_nodes == n_input
    source = levels[0].source_node
    if source is not None:  # a reordering: every input node at exactly one position
        assert sorted(source[source >= 0].tolist()) == list(range(n_input))
        fill = levels[0].geometry.filler
        assert fill is None or np.array_equal(fill, source < 0)
    else:
        assert levels[0].geometry.num_nodes == n_input
    for k, level in enumerate(levels[1:], start=1):
        assert level.axis == f"level{k}", level.axis
        pmap = level.geometry.pooling_map
        assert pmap is not None and len(pmap) == levels[k - 1].geometry.num_nodes
        assert pmap.max() < level.geometry.num_nodes


def spec_describes_paper_taps_config_and_training(spec, tmp_path) -> None:
    from lstmviz.engines.training import train_settings_for

    assert spec.description and spec.family == FAMILY.name
    assert spec.paper.title and spec.paper.authors and 2000 < spec.paper.year < 2100
    assert spec.taps
    assert set(spec.train_defaults) <= set(train_settings_for(FAMILY))
    assert not {"num_features", "num_classes", "task"} & set(spec.config_keys())  # the data's
    tasks = supported_tasks(spec)
    assert tasks, f"{spec.name} builds for neither the node nor the graph task"
    model = spec.build_model(data_for(tasks[0]), **spec.default_config)
    assert model.__doc__ and callable(getattr(model, "prepare", None))


def prepare_is_deterministic_and_describes_the_levels(spec, tmp_path) -> None:
    for task in supported_tasks(spec):
        model, _ = tiny_model(spec, task)
        for item in sample_inputs(data_for(task), batch=2, length=7, seed=1):
            first, again = model.prepare(item), model.prepare(item)
            assert isinstance(first, PreparedGraph)
            _check_levels(first, len(item))
            _same(first.levels, again.levels, f"{task}: levels")
            _same(first.features, again.features, f"{task}: features")
            _same({k: v for k, v in first.tensors.items() if k != "cast"},
                  {k: v for k, v in again.tensors.items() if k != "cast"}, f"{task}: tensors")


def output_shapes(spec, tmp_path) -> None:
    for task in supported_tasks(spec):
        model, _ = tiny_model(spec, task)
        for item in sample_inputs(data_for(task), batch=2, length=6, seed=2):
            with torch.no_grad():
                logits = model(model.prepare(item))
            expected = (len(item), CLASSES) if task == "node" else (1, CLASSES)
            assert tuple(logits.shape) == expected, (task, tuple(logits.shape))
            assert logits.dtype == torch.float64 and torch.isfinite(logits).all()


def every_tap_fires_once_with_the_rows_of_its_level(spec, tmp_path) -> None:
    patterns = [p.replace("{layer}", "*") for p in spec.taps]
    for task in supported_tasks(spec):
        model, _ = tiny_model(spec, task)
        taps = find_taps(model)
        assert taps, f"{spec.name} ({task}) has no taps"
        for name, tap in taps.items():
            assert any(fnmatch.fnmatchcase(name, p) for p in patterns), f"{name} is not declared in spec.taps"
            assert tap.layout == GRAPH and tap.description, name
        calls: dict[str, list] = {name: [] for name in taps}
        with HookScope() as hooks:
            for name, tap in taps.items():
                hooks.read(tap, lambda module, args, kwargs, out: calls[module.name].append(tuple(out.shape)))
            item = sample_inputs(data_for(task), batch=1, length=9, seed=3)[0]
            prepared = model.prepare(item)
            rows = {level.axis: level.geometry.num_nodes for level in prepared.levels}
            with torch.no_grad():
                model(prepared)
        for name, tap in taps.items():
            assert tap.axis in rows, f"{name} lives on axis {tap.axis!r}, which the prepared graph has not"
            assert len(calls[name]) == 1, f"{name} fired {len(calls[name])} times in one forward"
            shape = calls[name][0]
            assert len(shape) == 3 and shape[0] == 1 and shape[1] == rows[tap.axis], (name, shape, rows)


def bad_features_are_refused_in_words(spec, tmp_path) -> None:
    for task in supported_tasks(spec):
        model, _ = tiny_model(spec, task)
        item = sample_inputs(data_for(task), batch=1, length=5, seed=4)[0]
        item.features = np.zeros((len(item), FEATURES + 1), np.float32)
        try:
            model.prepare(item)
        except ValueError as e:
            assert "features" in str(e), str(e)
        else:
            raise AssertionError("prepare() accepted features of the wrong width")


def a_few_training_steps_lower_the_loss(spec, tmp_path) -> None:
    """60 Adam steps of the family's objective on 4 small graphs cut the training loss by a fifth."""
    from .objective import GraphObjective

    for task in supported_tasks(spec):
        data = data_for(task)
        graphs = SampleGraphs(data, graphs=4, nodes=6, seed=5)
        objective = GraphObjective()
        objective.prepare(graphs, graphs, {"batch_size": 4, "seed": 0}, torch.device("cpu"))
        torch.manual_seed(0)
        model = spec.build_model(data, **{k: v for k, v in TINY_CONFIG.items() if k in spec.config_keys()}).double()
        first, last = train_objective_briefly(objective, model, 60)
        assert last < 0.8 * first, f"{spec.name} ({task}): loss {first:.3f} -> {last:.3f} after 60 steps"


def checkpoint_round_trip_gives_identical_outputs(spec, tmp_path) -> None:
    from lstmviz.engines.checkpoint import load_checkpoint, save_checkpoint

    for task in supported_tasks(spec):
        model, config = tiny_model(spec, task, seed=3)
        data = data_for(task)
        path = save_checkpoint(tmp_path / f"{spec.name}-{task}.pt", model, engine=spec.name, config=config,
                               vocab=["a", "b"], dataset="tiny", step=7, metrics={"train_loss": 1.5},
                               family=spec.family, data=dataclasses.asdict(data))
        loaded, meta = load_checkpoint(path)
        assert type(loaded) is type(model) and not loaded.training
        assert meta["family"] == FAMILY.name and meta["config"] == config and meta["data"] == dataclasses.asdict(data)
        assert FAMILY.describe_checkpoint({"data": meta["data"]}) == data
        item = sample_inputs(data, batch=1, length=8, seed=6)[0]
        with torch.no_grad():
            expected = model(model.prepare(item))
            got = loaded(loaded.prepare(item))
        assert got.dtype == torch.float64 and torch.equal(got, expected)


CHECKS = (
    spec_describes_paper_taps_config_and_training,
    prepare_is_deterministic_and_describes_the_levels,
    output_shapes,
    every_tap_fires_once_with_the_rows_of_its_level,
    bad_features_are_refused_in_words,
    a_few_training_steps_lower_the_loss,
    checkpoint_round_trip_gives_identical_outputs,
)
