"""Make the committed recording fixtures under tests/data/.

    python tests/data/make_fixtures.py            # writes every fixture that does not exist yet
    python tests/data/make_fixtures.py --force    # rewrites them (never for a released version)

``recording_v1.h5`` guards backward compatibility: once committed it is never regenerated, and
``tests/recording/test_format_compat.py`` checks its values forever (through migrations once the
format moves on). Every value is an exact function of its position, chosen to be exactly
representable in float16, so the test can compare for equality. When format version N is added,
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


FIXTURES = {"recording_v1.h5": make_v1}


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
