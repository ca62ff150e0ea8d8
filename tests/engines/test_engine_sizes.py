"""Sizes in an engine config are checked, and the memory they need estimated, before the model is built."""

from __future__ import annotations

import pytest

from lstmviz.engines import build_engine, registry
from lstmviz.engines.recurrent import language_model as base


@pytest.mark.parametrize("engine", ["lstm", "gru"])
@pytest.mark.parametrize("sizes", [
    dict(vocab_size=7, embedding_dim=6, hidden_size=8, num_layers=1),
    dict(vocab_size=50, embedding_dim=16, hidden_size=32, num_layers=3),
    dict(vocab_size=3, embedding_dim=40, hidden_size=5, num_layers=2),
])
def test_the_estimate_counts_exactly_the_parameters_the_model_has(engine, sizes):
    model = build_engine(engine, **sizes)
    parameters, need = type(model).memory_estimate(**sizes)
    assert parameters == sum(p.numel() for p in model.parameters())
    assert need > 4 * parameters  # plus the activations


def test_a_model_that_does_not_fit_in_the_memory_available_is_refused(monkeypatch):
    monkeypatch.setattr(base, "available_bytes", lambda: 1_000_000)
    with pytest.raises(ValueError) as info:
        build_engine("gru", vocab_size=7, embedding_dim=6, hidden_size=64, num_layers=2)
    parameters, need = registry.get("gru").build.memory_estimate(vocab_size=7, embedding_dim=6, hidden_size=64,
                                                                 num_layers=2)
    assert str(info.value) == (
        f"a GRULanguageModel with vocab_size=7, embedding_dim=6, hidden_size=64, num_layers=2 needs about "
        f"{base.format_bytes(need)} of memory ({parameters:.3g} float32 parameters and the activations of 1024 "
        f"positions), more than the 1 MB available; choose smaller sizes")
    build_engine("gru", vocab_size=7, embedding_dim=6, hidden_size=8, num_layers=1)  # a small one still builds


def test_layers_beyond_the_limit_are_refused_before_any_is_built():
    with pytest.raises(ValueError, match=f"expected num_layers to be at most {base.MAX_LAYERS}, got 1025"):
        build_engine("lstm", vocab_size=7, embedding_dim=1, hidden_size=1, num_layers=base.MAX_LAYERS + 1)
