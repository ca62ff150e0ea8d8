"""Make the committed recording fixtures under tests/data/.

    python tests/data/make_fixtures.py            # writes every fixture that does not exist yet
    python tests/data/make_fixtures.py --force    # rewrites them (never for a released version)

``recording_v1.h5``, ``recording_v2.h5`` and ``recording_v3.h5`` guard backward compatibility: once committed they are
never regenerated, and ``tests/recording/test_format_compat.py`` checks their values forever (the
v1 file through the v1 -> v2 migration, and every file through the migrations to come). Every
value is an exact function of its position (and checkpoint), chosen to be exactly representable in
float16, so the test can compare for equality. When format version N is added,
add a ``make_v{N}`` here and commit ``recording_v{N}.h5`` next to the older files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

V1_VOCAB = ["<pad>", "(", ")", "a", "ü", "日本語", "é—\"x\""]
V1_LENGTHS = [3, 5, 1, 4]
V1_POS_LABELS = ["open", "close", "other"]
V1_SOURCE_LABELS = ["train", "dev-ü"]
V1_SOURCE = [0, 1, -1, 0]
V1_PROVENANCE = {
    "engine": "lstm",
    "config": {"hidden": 6, "layers": 1, "dropout": 0.0, "nested": {"list": [1, 2, {"none": None}], "ü": "ß"}},
    "dataset": "parens",
    "split": "test",
    "dataset_options": {"max_depth": 4, "seed": 7},
    "checkpoint": "checkpoints/parens-lstm.pt",
    "sha256": "0123456789abcdef" * 4,
    "versions": {"torch": "2.13.0"},
}


def v1_token(p: np.ndarray) -> np.ndarray:
    return (p * 5) % len(V1_VOCAB)


def v1_h(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """layer0/h (float32): exact binary fractions."""
    return (p * 10 + u) / 64.0 - 1.0


def v1_c(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """layer0/c (float16): small multiples of 1/8, exact in float16."""
    return (p - u) / 8.0


def v1_pool(row: np.ndarray, u: np.ndarray) -> np.ndarray:
    """pool (axis "half", ceil(n/2) rows per item): exact integers."""
    return row * 2.0 + u


def v1_pos(p: np.ndarray) -> np.ndarray:
    return p % 4 - 1  # -1 (missing), 0, 1, 2


def v1_depth(p: np.ndarray) -> np.ndarray:
    return np.where(p == 4, np.nan, (p % 3).astype(float))


def make_v1(path: Path) -> Path:
    """Version 1: every feature of the format on 4 items, 13 positions."""
    from lstmviz.recording import RecordingWriter

    with RecordingWriter(path, vocab=V1_VOCAB, provenance=V1_PROVENANCE) as w:
        w.add_axis("half", description="one row per two tokens")
        w.add_tap("layer0/h", 6, layer=0, signal="h", description="hidden state")
        w.add_tap("layer0/c", 6, layer=0, signal="c", description="cell state", dtype="float16")
        w.add_tap("pool", 2, axis="half", description="pairs of positions")
        w.add_annotation("pos", kind="categorical", labels=V1_POS_LABELS, description="bracket role")
        w.add_annotation("depth", kind="numeric", description="nesting depth")
        w.add_annotation("source", kind="categorical", level="item", labels=V1_SOURCE_LABELS)
        w.add_annotation("ratio", kind="numeric", level="item")
        p0 = half0 = 0
        units6, units2 = np.arange(6), np.arange(2)
        for i, n in enumerate(V1_LENGTHS):
            p = np.arange(p0, p0 + n)
            rows = np.arange(half0, half0 + (n + 1) // 2)
            w.append_item(
                v1_token(p),
                {"layer0/h": v1_h(p[:, None], units6), "layer0/c": v1_c(p[:, None], units6),
                 "pool": v1_pool(rows[:, None], units2)},
                {"pos": v1_pos(p), "depth": v1_depth(p)},
                {"source": V1_SOURCE[i], "ratio": n / 5},
            )
            p0 += n
            half0 += len(rows)
    return path


V2_STEPS = [100, 200, 300]
"""Three checkpoints of one run; the last (step 300) is the main one, its states are /taps."""


def v2_h(p: np.ndarray, u: np.ndarray, k: int) -> np.ndarray:
    """layer0/h of checkpoint k (1, 2, 3) (float32): exact binary fractions."""
    return (p * 10 + u) / 64.0 - 1.0 + k


def v2_c(p: np.ndarray, u: np.ndarray, k: int) -> np.ndarray:
    """layer0/c of checkpoint k (float16): multiples of 1/8 below 8, exact in float16."""
    return (p - u) / 8.0 + k


def v2_pool(row: np.ndarray, u: np.ndarray, k: int) -> np.ndarray:
    """pool of checkpoint k (axis "half"): exact integers."""
    return row * 2.0 + u + 100 * k


def v2_checkpoint(k: int) -> dict:
    step = V2_STEPS[k - 1]
    return {"name": f"step-{step:06d}", "step": step, "path": f"checkpoints/parens-lstm-step{step:06d}.pt",
            "sha256": f"{k:x}" * 64, "metrics": {"train_loss": 2.0 / k, "valid_ppl": 8.0 / k, "note": f"ü{k}"}}


def make_v2(path: Path) -> Path:
    """Version 2: the v1 layout (4 items, 13 positions, an extra axis, both dtypes, annotations at both
    levels) holding the states of three checkpoints of one run, written in declaration order 2, 3, 1
    (training order is by step)."""
    from lstmviz.recording import RecordingWriter

    provenance = {**V1_PROVENANCE, "checkpoint": v2_checkpoint(3)["path"], "sha256": v2_checkpoint(3)["sha256"],
                  "checkpoint_step": 300}
    with RecordingWriter(path, vocab=V1_VOCAB, provenance=provenance) as w:
        w.add_axis("half", description="one row per two tokens")
        w.add_tap("layer0/h", 6, layer=0, signal="h", description="hidden state")
        w.add_tap("layer0/c", 6, layer=0, signal="c", description="cell state", dtype="float16")
        w.add_tap("pool", 2, axis="half", description="pairs of positions")
        w.add_annotation("pos", kind="categorical", labels=V1_POS_LABELS, description="bracket role")
        w.add_annotation("depth", kind="numeric", description="nesting depth")
        w.add_annotation("source", kind="categorical", level="item", labels=V1_SOURCE_LABELS)
        w.add_annotation("ratio", kind="numeric", level="item")
        for k in (2, 3, 1):
            ck = v2_checkpoint(k)
            w.add_checkpoint(ck["name"], step=ck["step"], path=ck["path"], sha256=ck["sha256"], metrics=ck["metrics"])
        p0 = half0 = 0
        units6, units2 = np.arange(6), np.arange(2)
        for i, n in enumerate(V1_LENGTHS):
            p = np.arange(p0, p0 + n)
            rows = np.arange(half0, half0 + (n + 1) // 2)

            states = {k: {"layer0/h": v2_h(p[:, None], units6, k), "layer0/c": v2_c(p[:, None], units6, k),
                          "pool": v2_pool(rows[:, None], units2, k)} for k in (1, 2, 3)}
            w.append_item(v1_token(p), states[3], {"pos": v1_pos(p), "depth": v1_depth(p)},
                          {"source": V1_SOURCE[i], "ratio": n / 5})
            for k in (1, 2):
                w.append_checkpoint_item(v2_checkpoint(k)["name"], states[k])
            p0 += n
            half0 += len(rows)
    return path


V3_VOCAB = ["node", "hub", "leaf"]
V3_NODES = [5, 3]
V3_EDGES = [[[0, 1], [1, 2], [2, 0], [2, 2], [3, 1]], [[0, 1], [1, 2]]]
"""Item 0: a triangle 0-1-2 with a self-loop on 2, node 3 hanging on 1, node 4 isolated; item 1: a path."""
V3_COARSE = [3, 2]
V3_POOLING = [[0, 0, 1, 1, -1], [0, 0, 1]]
"""Item 0's node 4 pools nowhere; its coarse node 2 is filler (nothing pools into it)."""
V3_COARSE_EDGES = [[[0, 1]], [[0, 1]]]
V3_FILLER = [[False, False, True], [False, False]]
V3_COMMUNITY_LABELS = ["left", "right"]
V3_GRAPH_LABELS = ["triangle", "path"]


def v3_conv(row: np.ndarray, u: np.ndarray) -> np.ndarray:
    """conv1 (float32, main axis): exact binary fractions of the absolute node row."""
    return (row * 4 + u) / 16.0


def v3_pool(row: np.ndarray, u: np.ndarray) -> np.ndarray:
    """pool1 (float16, axis level1): small multiples of 1/4."""
    return (row - u) / 4.0


def v3_readout(item: np.ndarray, u: np.ndarray) -> np.ndarray:
    """readout (axis graph, one row per item): exact integers."""
    return item * 10.0 + u


def v3_coordinates(row: np.ndarray) -> np.ndarray:
    return np.stack([row / 2.0, -row / 4.0], axis=1)


def make_v3(path: Path) -> Path:
    """Version 3: a graph main axis (2 graphs, 8 nodes; a self-loop, an isolated node, edge weights,
    coordinates, node names), a pooled graph axis with pooling maps and filler, a scalar axis."""
    from lstmviz.geometry import AxisGeometry, GraphGeometry
    from lstmviz.recording import RecordingWriter

    provenance = {**V1_PROVENANCE, "engine": "chebnet", "dataset": "fixture-graphs"}
    with RecordingWriter(path, vocab=V3_VOCAB, provenance=provenance) as w:
        w.set_geometry("positions", "graph")
        w.add_axis("level1", description="Graclus level 1", geometry=AxisGeometry("graph", pooled_from="positions"))
        w.add_axis("graph", description="one row per graph", geometry="scalar")
        w.add_tap("conv1", 4, layer=0, signal="conv", description="node states")
        w.add_tap("pool1", 2, axis="level1", layer=1, signal="pool", dtype="float16")
        w.add_tap("readout", 2, axis="graph", signal="readout")
        w.add_annotation("community", kind="categorical", labels=V3_COMMUNITY_LABELS)
        w.add_annotation("label", kind="categorical", level="item", labels=V3_GRAPH_LABELS)
        row = coarse_row = 0
        u4, u2 = np.arange(4), np.arange(2)
        for i, n in enumerate(V3_NODES):
            rows = np.arange(row, row + n)
            crows = np.arange(coarse_row, coarse_row + V3_COARSE[i])
            edges = V3_EDGES[i]
            graph = GraphGeometry.from_edges(n, edges, weights=[(k + 1) / 4 for k in range(len(edges))],
                                             coordinates=v3_coordinates(rows), node_names=[f"v{i}.{k}" for k in range(n)])
            coarse = GraphGeometry.from_edges(V3_COARSE[i], V3_COARSE_EDGES[i], pooling_map=V3_POOLING[i],
                                              filler=V3_FILLER[i], finer_nodes=n)
            w.append_item(
                rows % 3 % len(V3_VOCAB),
                {"conv1": v3_conv(rows[:, None], u4), "pool1": v3_pool(crows[:, None], u2),
                 "readout": v3_readout(np.array([[i]]), u2)},
                {"community": rows % 2},
                {"label": i},
                geometry={"positions": graph, "level1": coarse},
            )
            row += n
            coarse_row += V3_COARSE[i]
    return path


FIXTURES = {"recording_v1.h5": make_v1, "recording_v2.h5": make_v2, "recording_v3.h5": make_v3}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rewrite existing fixtures")
    args = parser.parse_args(argv)
    for name, make in FIXTURES.items():
        path = HERE / name
        if path.exists() and not args.force:
            print(f"kept    {path} (exists; --force rewrites it)")
            continue
        make(path)
        print(f"wrote   {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
