"""The contract every engine of the ``knowledge-lm`` family satisfies (run by tests/engines/test_engine_contract.py).

Plain functions ``check(spec, tmp_path)`` raising ``AssertionError``; torch and the hook layer only.
"""

from __future__ import annotations

import re

import torch

from lstmviz.hooks import HookScope, find_taps
from lstmviz.hooks.layout import STEP

from . import FAMILY, KnowledgeData, random_documents
from .objective import pad_documents, text_mask

VOCAB_SIZE = 23
B, T_WORDS = 3, 6
TINY_CONFIG = {"closed_vocab": 15, "embedding_dim": 6, "fact_dim": 4, "position_dim": 3, "hidden_size": 8,
               "mlp_size": 8, "max_facts": 4, "max_positions": 3, "init_range": 0.3}
DATA = KnowledgeData(vocab_size=VOCAB_SIZE)


def tiny_model(spec, seed: int = 0, **overrides):
    config = {k: v for k, v in TINY_CONFIG.items() if k in spec.config_keys()}
    config = spec.resolve_config({**config, **overrides})
    torch.manual_seed(seed)
    return spec.build_model(DATA, **config).double().eval(), config


def batch(seed: int = 0):
    return pad_documents(random_documents(DATA, batch=B, length=T_WORDS, seed=seed))


def spec_describes_paper_taps_config_and_training(spec, tmp_path) -> None:
    from lstmviz.datasets import registry as datasets
    from lstmviz.engines.training import train_settings_for

    assert spec.description and spec.family == FAMILY.name
    assert spec.paper.title and spec.paper.authors and re.fullmatch(r"\d{4}\.\d{4,5}", spec.paper.arxiv)
    assert spec.training_dataset() in datasets.names()
    assert set(spec.train_defaults) <= set(train_settings_for(FAMILY))
    assert "vocab_size" not in spec.config_keys()
    model = spec.build_model(DATA, **spec.default_config)
    assert model.__doc__ and "h" in model.__doc__


def output_is_a_distribution_over_the_full_vocabulary(spec, tmp_path) -> None:
    model, _ = tiny_model(spec)
    x, _, _ = batch()
    with torch.no_grad():
        logp, state = model(x)
    assert logp.shape == (*x.shape, VOCAB_SIZE) and logp.dtype == torch.float64
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(x.shape, dtype=torch.float64), rtol=0, atol=1e-9)
    assert isinstance(state, tuple) and all(s.shape[1] == B for s in state)


def batch_rows_are_independent_of_padding_and_neighbours(spec, tmp_path) -> None:
    model, _ = tiny_model(spec)
    x, _, _ = batch(seed=1)
    with torch.no_grad():
        logp, _ = model(x)
        for b in range(B):
            n = int((x[b] != 0).nonzero().max()) + 1
            alone, _ = model(x[b : b + 1, :n])
            torch.testing.assert_close(alone[0], logp[b, :n], rtol=0, atol=1e-10)


def every_declared_tap_fires_once_per_step(spec, tmp_path) -> None:
    model, config = tiny_model(spec)
    declared = spec.tap_names(1)
    taps = find_taps(model)
    assert sorted(taps) == sorted(declared)
    x, _, _ = batch()
    calls: dict[str, list] = {n: [] for n in declared}
    with HookScope() as hooks:
        for name in declared:
            hooks.read(taps[name], lambda module, args, kwargs, out: calls[module.name].append(
                (kwargs.get("step"), out.shape[0], out.dim())))
        model(x)
    for name in declared:
        assert calls[name] == [(t, B, 2) for t in range(x.shape[1])], name
        assert taps[name].description and taps[name].layout == STEP, name


def checkpoint_round_trip_gives_identical_outputs(spec, tmp_path) -> None:
    from lstmviz.engines.checkpoint import load_checkpoint, save_checkpoint

    model, config = tiny_model(spec, seed=3)
    vocab = ["<pad>", "<unk>", "<fact>", "<text>", "<eos>"] + [f"w{i}" for i in range(VOCAB_SIZE - 5)]
    path = save_checkpoint(tmp_path / f"{spec.name}.pt", model, engine=spec.name, config=config, vocab=vocab,
                           dataset="tiny", step=7, metrics={}, family=spec.family)
    loaded, meta = load_checkpoint(path)
    assert type(loaded) is type(model) and meta["family"] == FAMILY.name and meta["config"] == config
    x, _, _ = batch(seed=4)
    with torch.no_grad():
        assert torch.equal(loaded(x)[0], model(x)[0])


def a_few_training_steps_lower_the_loss(spec, tmp_path) -> None:
    model, _ = tiny_model(spec, seed=3)
    model.train()
    x, f, p = batch(seed=5)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    first = None
    for _ in range(40):
        optimizer.zero_grad()
        loss, count = model.loss(x, f, p)
        assert count == int(text_mask(x).sum())
        loss.backward()
        optimizer.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.8 * first, (first, loss.item())


CHECKS = (
    spec_describes_paper_taps_config_and_training,
    output_is_a_distribution_over_the_full_vocabulary,
    batch_rows_are_independent_of_padding_and_neighbours,
    every_declared_tap_fires_once_per_step,
    checkpoint_round_trip_gives_identical_outputs,
    a_few_training_steps_lower_the_loss,
)
