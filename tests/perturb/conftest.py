"""Fixtures of the perturbation tests: tiny trained models recorded by the CLI, and a script's own nn.LSTM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lstmviz.cli import main

TINY_DATA = ["--dataset-option", "tokens=3000", "--dataset-option", "item_length=60"]
TINY_MODEL = ["--set", "hidden_size=16", "--set", "embedding_dim=8"]


def train_and_record(folder, engine: str, dtype: str = "float32", items: int = 6):
    """Train ``engine`` for 30 steps on parens and record ``items`` items with the CLI; (checkpoint, recording)."""
    ckpt = folder / f"{engine}.pt"
    assert main(["train", engine, "--dataset", "parens", "--steps", "30", "--out", str(ckpt), "--quiet",
                 "--train", "batch_size=4", "--train", "bptt=20", "--no-valid", *TINY_DATA, *TINY_MODEL]) == 0
    rec = folder / f"{engine}.h5"
    assert main(["record", str(ckpt), "--out", str(rec), "--max-items", str(items), "--dtype", dtype, "--quiet",
                 "--batch-size", "4", *TINY_DATA]) == 0
    return ckpt, rec


@pytest.fixture(scope="session")
def lstm_files(tmp_path_factory):
    return train_and_record(tmp_path_factory.mktemp("lstm"), "lstm")


@pytest.fixture(scope="session")
def gru_files(tmp_path_factory):
    return train_and_record(tmp_path_factory.mktemp("gru"), "gru")


@pytest.fixture
def lstm_rec(lstm_files):
    from lstmviz.recording import open_recording

    with open_recording(lstm_files[1]) as rec:
        yield rec


@pytest.fixture
def lstm_live(lstm_rec):
    from lstmviz.perturb import load_live_model

    return load_live_model(lstm_rec)


class UserLM(nn.Module):
    """A script's own language model around a stock nn.LSTM: returns the logits only."""

    def __init__(self, vocab=7, emb=6, hidden=10, layers=2):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.lstm = nn.LSTM(emb, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens):
        out, _ = self.lstm(self.emb(tokens))
        return self.head(out)


SCRIPT_VOCAB = [f"t{i}" for i in range(7)]


def script_items():
    rng = np.random.default_rng(3)
    return [rng.integers(0, 7, size=n) for n in (23, 17, 30, 9, 25)]


@pytest.fixture(scope="session")
def script_files(tmp_path_factory):
    """(model, recording path): UserLM recorded by lstmviz.record() from a script, float32."""
    import lstmviz

    torch.manual_seed(0)
    model = UserLM().eval()
    path = tmp_path_factory.mktemp("script") / "script.h5"
    lstmviz.record(model, script_items(), path, vocab=SCRIPT_VOCAB, batch_size=2, dtype="float32", progress=False)
    return model, path


@pytest.fixture
def script_rec(script_files):
    from lstmviz.recording import open_recording

    with open_recording(script_files[1]) as rec:
        yield rec


@pytest.fixture
def script_live(script_files):
    from lstmviz.perturb import live_model

    return live_model(script_files[0], vocab=SCRIPT_VOCAB)
