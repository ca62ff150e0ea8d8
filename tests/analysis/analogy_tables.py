"""Synthetic embedding tables and recordings for the analogy tests (test_analogy, test_embedding_tables,
the CLI and panel tests)."""

from __future__ import annotations

import numpy as np

from lstmviz.analysis.embedding_tables import EmbeddingTable
from lstmviz.recording import RecordingWriter


def offset_table(n_classes=12, n_relations=3, dim=40, noise=0.02, offset_scale=1.0, seed=0) -> EmbeddingTable:
    """Token ``c{c}_r{r}`` = class vector c + ``offset_scale`` x relation vector r + noise (N(0, noise^2) each
    coordinate); class vectors N(0, 1), relation vectors N(0, 1)."""
    rng = np.random.default_rng(seed)
    classes = rng.normal(size=(n_classes, dim))
    relations = rng.normal(size=(n_relations, dim)) * offset_scale
    names, rows = [], []
    for c in range(n_classes):
        for r in range(n_relations):
            names.append(f"c{c}_r{r}")
            rows.append(classes[c] + relations[r] + noise * rng.normal(size=dim))
    return EmbeddingTable(tuple(names), np.array(rows), "synthetic offsets")


def offset_pairs(n_classes=12, r_from=0, r_to=1) -> list[tuple[str, str]]:
    return [(f"c{c}_r{r_from}", f"c{c}_r{r_to}") for c in range(n_classes)]


def write_crossed_recording(path, *, digits=4, shifts=("left", "none", "right"), per_cell=3, rows_per_item=5,
                            units=8, seed=0):
    """Items labelled by two item-level annotations, ``digit`` and ``shift``; the tap ``h`` of every row of an
    item is digit vector + shift vector + noise, and the per-position annotation ``odd`` marks odd rows."""
    rng = np.random.default_rng(seed)
    digit_vectors = rng.normal(size=(digits, units))
    shift_vectors = rng.normal(size=(len(shifts), units))
    with RecordingWriter(path, vocab=["<pad>", "x"], provenance={"engine": "test", "dataset": "crossed"}) as writer:
        writer.add_tap("h", units, layer=0, signal="h")
        writer.add_annotation("digit", kind="categorical", level="item", labels=[str(d) for d in range(digits)])
        writer.add_annotation("shift", kind="categorical", level="item", labels=list(shifts))
        writer.add_annotation("odd", kind="categorical", labels=["even", "odd"])
        for d in range(digits):
            for s in range(len(shifts)):
                for _ in range(per_cell):
                    states = digit_vectors[d] + shift_vectors[s] + 0.01 * rng.normal(size=(rows_per_item, units))
                    writer.append_item(np.ones(rows_per_item, np.int64), {"h": states.astype(np.float32)},
                                       annotations={"odd": np.arange(rows_per_item) % 2},
                                       item_annotations={"digit": d, "shift": s})
    return path
