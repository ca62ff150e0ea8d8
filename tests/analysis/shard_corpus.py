"""A small corpus written once as one file and once as shards (contiguous item ranges), for the
sharded-analysis tests."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import h5py
import numpy as np

from lstmviz.recording import RecordingWriter

UNITS = 24
#: item ranges of the shards: uneven, not aligned to the statistics blocks (1024 rows), one shard
#: shorter than a block, so blocks straddle up to three shards
SHARD_ITEMS = ((0, 70), (70, 150), (150, 152), (152, 300))
PROVENANCE = {"engine": "toy", "config": {"hidden": UNITS}, "dataset": "walks", "split": "train"}


def corpus(seed: int = 0, n_items: int = 300):
    """Items of smooth random walks (units stay on for runs) with a categorical label per position."""
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n_items):
        n = int(rng.integers(5, 60))
        walk = np.cumsum(rng.normal(0, 0.35, (n, UNITS)), axis=0) + rng.normal(0, 0.5, UNITS)
        values = np.tanh(walk).astype(np.float32)
        values[:, 0] += 3.0  # a unit far from 0: its z-score and statistics need care
        tokens = rng.integers(1, 6, n)
        label = (values[:, 1] > 0).astype(np.int32) + (values[:, 2] > 0.3)
        items.append((tokens, values, label))
    return items


def write(path: Path, items, *, dtype="float32", provenance=None, vocab=None) -> Path:
    with RecordingWriter(path, vocab=vocab or ["<pad>", "a", "b", "c", "d", "e"], dtype=dtype,
                         provenance=provenance or PROVENANCE) as w:
        w.add_tap("h", UNITS)
        w.add_annotation("sign", kind="categorical", labels=["neg", "pos", "high"])
        for tokens, values, label in items:
            w.append_item(tokens, {"h": values}, annotations={"sign": label})
    return path


def write_corpus(folder: Path, *, dtype="float32", seed: int = 0):
    """``(single file, [shard files])`` of the same corpus."""
    folder.mkdir(parents=True, exist_ok=True)
    items = corpus(seed)
    single = write(folder / "single.h5", items, dtype=dtype)
    shards = [write(folder / f"shard{j}.h5", items[a:b], dtype=dtype) for j, (a, b) in enumerate(SHARD_ITEMS)]
    return single, shards


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_logical(single: Path, shards: list[Path], out: Path) -> Path:
    """A logical file: a copy of the single file with the ``lstmviz_shards`` table (its own taps stay
    ordinary datasets; the sharded analyses read the shards named by the table)."""
    shutil.copyfile(single, out)
    table = [{"file": str(Path(s).relative_to(out.parent)), "items": list(r), "sha256": sha256(s)}
             for s, r in zip(shards, SHARD_ITEMS)]
    with h5py.File(out, "r+") as f:
        f.attrs["lstmviz_shards"] = json.dumps(table)
    return out
