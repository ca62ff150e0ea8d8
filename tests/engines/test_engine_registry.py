"""The engine registry and specs: entry-point registration, lookup errors, config resolution."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from lstmviz.engines import ConfigError, UnknownName, build_engine, registry
from lstmviz.engines.recurrent import gru, lstm
from lstmviz.hooks import find_taps


def test_built_in_engines_come_from_entry_points_like_a_plugin():
    points = {ep.name: ep for ep in entry_points(group="lstmviz.engines")}
    assert {"lstm", "gru"} <= set(points)
    assert points["lstm"].load() is lstm.SPEC is registry.get("lstm")
    assert points["gru"].load() is gru.SPEC is registry.get("gru")


def test_unknown_engine_lists_the_known_names():
    with pytest.raises(UnknownName, match=r"unknown engine 'lsmt'; available: (.*, )?gru, (.*, )?lstm(,|$)"):
        registry.get("lsmt")


def test_papers_are_the_ones_the_engines_implement():
    assert lstm.SPEC.paper.arxiv == "1409.2329" and "Zaremba" in lstm.SPEC.paper.authors
    assert gru.SPEC.paper.arxiv == "1406.1078" and "Cho" in gru.SPEC.paper.authors


def test_tap_patterns_expand_layer_by_layer_in_the_order_of_the_tap_table():
    assert lstm.SPEC.tap_names(2) == [
        "layer0/gates/i", "layer0/gates/f", "layer0/gates/g", "layer0/gates/o", "layer0/c", "layer0/h",
        "layer1/gates/i", "layer1/gates/f", "layer1/gates/g", "layer1/gates/o", "layer1/c", "layer1/h",
    ]
    assert gru.SPEC.tap_names(1) == ["layer0/gates/r", "layer0/gates/z", "layer0/gates/n", "layer0/h"]
    for spec in (lstm.SPEC, gru.SPEC):  # the spec lists the taps the model has, in the order they are recorded
        model = build_engine(spec.name, vocab_size=5, hidden_size=4, num_layers=2)
        assert list(find_taps(model)) == spec.tap_names(2)


def test_config_resolution_and_unknown_hyperparameters():
    assert lstm.SPEC.config_keys() == ["dropout", "embedding_dim", "hidden_size", "init_range", "num_layers"]
    assert lstm.SPEC.resolve_config({"hidden_size": 4})["hidden_size"] == 4
    assert lstm.SPEC.resolve_config({"hidden_size": 4})["num_layers"] == lstm.SPEC.default_config["num_layers"]
    with pytest.raises(ConfigError, match=r"unknown hyperparameter 'hiden_size' for engine 'lstm'; known: dropout, "):
        build_engine("lstm", vocab_size=5, hiden_size=4)
    model = build_engine("gru", vocab_size=5, hidden_size=4, num_layers=1)
    assert model.hidden_size == 4 and model.num_layers == 1 and model.embedding_dim == 128
