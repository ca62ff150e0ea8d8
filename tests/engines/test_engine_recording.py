"""Every registered language-model engine records every tap into a file that opens with the states it computed."""

import pytest
import torch

from lstmviz.engines import registry
from lstmviz.engines.families.language_model.contract import T, VOCAB_SIZE, tiny_model, tokens
from lstmviz.hooks import HookScope, find_taps
from lstmviz.recording.reader import open_recording
from lstmviz.recording.recorder import record

ENGINES = sorted(name for name, spec in registry.all().items() if spec.family == "language-model")


@pytest.mark.parametrize("engine", ENGINES)
def test_every_tap_is_recorded_into_a_file_that_opens(engine, tmp_path):
    spec = registry.get(engine)
    """``record()`` writes every tap of the model, and the file opens with the states it computed."""
    model, _ = tiny_model(spec)
    model = model.float()
    items = [tokens(seed=s, batch=1, steps=T + s)[0] for s in range(3)]
    path = record(model, items, tmp_path / f"{spec.name}.h5", vocab=[f"w{i}" for i in range(VOCAB_SIZE)],
                  batch_size=2, progress=False)
    with open_recording(path) as rec:
        assert set(rec.taps) == set(find_taps(model)), (sorted(rec.taps), sorted(find_taps(model)))
        assert rec.n_items == 3 and rec.n_positions == sum(len(t) for t in items)
        for name in rec.taps:
            assert torch.isfinite(torch.as_tensor(rec.states(name))).all(), name
        seen = []
        with torch.no_grad(), HookScope() as hooks:
            hooks.read(find_taps(model)["layer0/h"], lambda module, args, kwargs, out: seen.append(out.clone()))
            model(items[1][None])
        assert torch.allclose(torch.as_tensor(rec.item_states("layer0/h", 1)), torch.cat(seen), atol=1e-6)
