"""Helpers of the perturbation tests (a module of its own: conftest.py is not importable by name)."""

from __future__ import annotations

import numpy as np
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
