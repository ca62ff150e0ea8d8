"""Digests of recordings made with the bundled demo's model config, to show that recordings do not change.

    python tests/data/recording_digests.py        # (re)writes recording_digests.json beside this file

``recording_digests.json`` was written by the code *before* the engines/hooks restructuring (issue 12)
and is never regenerated casually: ``tests/recording/test_recordings_unchanged.py`` records the same
four models again and compares every stored byte (tap arrays, token ids, offsets, annotations) and
every tap attribute. The four models, all untrained with seed 0 over the first 2 items of parens/test
stored as float16 (as the demo is):

- ``engine-lstm`` and ``engine-gru``: ``lstmviz record ENGINE --set ...`` with the demo's config
  (the built-in engines, their taps);
- ``stock-lstm`` and ``stock-gru``: an ``nn.Embedding`` + stock ``nn.LSTM`` / ``nn.GRU`` of the same
  sizes through ``record()`` (per-layer states from the fused kernel, gates and cells recovered from
  the weights).

Float results differ in the last bits between CPUs (torch picks AVX-512 or AVX2 kernels by the CPU: on
an AMD EPYC with AVX2 the float16 states of 16 of the 40 taps differ from the digests in some elements by
one float16 step). So a tap whose digest differs is compared with ``recording_states.npz``: its states at
the first and last ``SAMPLED`` positions, every unit, as float16, written with
``python tests/data/recording_digests.py --states`` on 2026-12-06 (AMD EPYC, AVX2) by the recording code
of commit 63781de, which matched every digest on the project's earlier machine; never regenerated casually; the test allows one float16 step per element
and requires most elements to be bit-identical, which any change to what a model computes breaks.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DIGESTS = HERE / "recording_digests.json"
STATES = HERE / "recording_states.npz"
#: positions kept at each end of every tap in recording_states.npz
SAMPLED = 16

#: the bundled demo's engine config (assets/demo/parens-lstm.h5, provenance "config")
DEMO_CONFIG = {"embedding_dim": 128, "hidden_size": 128, "num_layers": 2, "init_range": 0.1, "dropout": 0.1}
ITEMS = 2


def _sha(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    return hashlib.sha256(str(array.dtype).encode() + str(array.shape).encode() + array.tobytes()).hexdigest()


def describe(path: Path) -> dict:
    """Everything a recording stores that a model run decides, as digests and plain values."""
    from lstmviz.recording import open_recording

    with open_recording(path) as rec:
        n = rec.n_positions
        out = {
            "n_items": rec.n_items,
            "offsets": _sha(rec.axis_offsets()),
            "tokens": _sha(rec.token_ids(0, n)),
            "vocab": list(rec.vocab),
            "annotations": {name: _sha(rec.annotation(name)) for name in rec.annotations},
            "taps": {
                name: {"units": info.units, "dtype": info.dtype, "axis": info.axis, "layer": info.layer,
                       "signal": info.signal, "description": info.description,
                       "states": _sha(rec.raw_states(name))}
                for name, info in rec.taps.items()
            },
            "provenance": {k: v for k, v in rec.provenance.items() if k not in ("versions", "created")},
        }
    return json.loads(json.dumps(out))  # tuples -> lists, as read back from the JSON file


def sampled_states(path: Path, name: str) -> dict[str, np.ndarray]:
    """``{"<model>|<tap>": float16 [2 * SAMPLED, units]}``: every tap's first and last SAMPLED positions."""
    from lstmviz.recording import open_recording

    with open_recording(path) as rec:
        n = rec.n_positions
        rows = np.r_[0:SAMPLED, n - SAMPLED:n]
        return {f"{name}|{tap}": np.asarray(rec.raw_states(tap))[rows] for tap in rec.taps}


class StockLM:
    """``nn.Embedding`` -> stock ``nn.LSTM``/``nn.GRU`` (batch first) -> ``nn.Linear``, built under seed 0."""

    @staticmethod
    def build(kind: str, vocab_size: int):
        import torch
        from torch import nn

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                c = DEMO_CONFIG
                self.embedding = nn.Embedding(vocab_size, c["embedding_dim"])
                rnn = nn.LSTM if kind == "lstm" else nn.GRU
                self.rnn = rnn(c["embedding_dim"], c["hidden_size"], c["num_layers"], batch_first=True)
                self.decoder = nn.Linear(c["hidden_size"], vocab_size)

            def forward(self, tokens):
                return self.decoder(self.rnn(self.embedding(tokens))[0])

        Model.__module__ = "recording_digests"  # the provenance names the class; the same from a script or a test
        torch.manual_seed(0)
        return Model().eval()


def make_recordings(folder: Path) -> dict[str, Path]:
    """Record the four models into ``folder``; returns name -> file."""
    from lstmviz.cli import main
    from lstmviz.datasets import load_dataset
    from lstmviz.recording.recorder import record

    files = {}
    for engine in ("lstm", "gru"):
        out = folder / f"engine-{engine}.h5"
        sets = [arg for key, value in DEMO_CONFIG.items() for arg in ("--set", f"{key}={value}")]
        code = main(["record", engine, *sets, "--dataset", "parens", "--split", "test", "--max-items", str(ITEMS),
                     "--dtype", "float16", "--seed", "0", "--quiet", "--out", str(out)])
        if code != 0:
            raise RuntimeError(f"lstmviz record {engine} failed with exit status {code}")
        files[f"engine-{engine}"] = out
    dataset = load_dataset("parens", "test")
    for kind in ("lstm", "gru"):
        out = folder / f"stock-{kind}.h5"
        record(StockLM.build(kind, len(dataset.vocab)), dataset, out, max_items=ITEMS, dtype="float16",
               progress=False, provenance={"model_name": f"stock-{kind}"})
        files[f"stock-{kind}"] = out
    return files


def current_digests() -> dict:
    with tempfile.TemporaryDirectory() as folder:
        return {name: describe(path) for name, path in make_recordings(Path(folder)).items()}


if __name__ == "__main__":
    if sys.argv[1:] == ["--states"]:
        with tempfile.TemporaryDirectory() as folder:
            arrays = {k: v for name, path in make_recordings(Path(folder)).items()
                      for k, v in sampled_states(path, name).items()}
        np.savez_compressed(STATES, **arrays)
        print(f"wrote {STATES} ({len(arrays)} taps)", file=sys.stderr)
        raise SystemExit(0)
    digests = current_digests()
    DIGESTS.write_text(json.dumps(digests, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {DIGESTS} ({', '.join(digests)})", file=sys.stderr)
