"""Fixtures for the engine tests: tiny float64 models and tiny in-test datasets (no lstmviz.datasets)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmviz.engines import registry
from lstmviz.engines.families.language_model import TokenData

VOCAB_SIZE = 7
#: hyperparameters that keep every engine tiny; only the keys an engine's build() accepts are used
TINY_CONFIG = {"embedding_dim": 6, "hidden_size": 8, "num_layers": 2, "init_range": 0.3}


class TinyDataset:
    """The duck-typed part of a SequenceDataset that training needs: name, vocab, token_stream()."""

    def __init__(self, ids, vocab, name="tiny", split="train"):
        self.ids = np.asarray(ids, dtype=np.int64)
        self.vocab = list(vocab)
        self.name = name
        self.split = split

    def token_stream(self) -> np.ndarray:
        return self.ids

    def provenance(self) -> dict:
        return {"name": self.name, "split": self.split}


@pytest.fixture(autouse=True)
def _few_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threading only costs time on a shared 2-core machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_model():
    """``tiny_model(name, seed=0, **config) -> (model, config)``: float64, eval mode."""

    def make(name: str, seed: int = 0, **overrides):
        spec = registry.get(name)
        config = {k: v for k, v in TINY_CONFIG.items() if k in spec.config_keys()}
        config = spec.resolve_config({**config, **overrides})
        torch.manual_seed(seed)
        model = spec.build_model(TokenData(vocab_size=VOCAB_SIZE), **config).double().eval()
        return model, config

    return make


@pytest.fixture
def pattern_dataset():
    """``pattern_dataset(n, seed=0, period=7) -> TinyDataset``: a random motif repeated (predictable)."""

    def make(n: int, seed: int = 0, period: int = 7, split: str = "train"):
        vocab = ["<pad>", "a", "b", "c", "d", "e"]
        motif = np.random.default_rng(seed).integers(1, len(vocab), period)
        return TinyDataset(np.resize(motif, n), vocab, name="pattern", split=split)

    return make
