"""Recordings of the built-in engines and of stock nn.LSTM / nn.GRU do not change, bit for bit.

The reference (tests/data/recording_digests.json) was written by the code before the engines and
hooks were restructured; see tests/data/recording_digests.py for what is recorded and how.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data"


def _digests_module():
    spec = importlib.util.spec_from_file_location("recording_digests", DATA / "recording_digests.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    module = _digests_module()
    files = module.make_recordings(tmp_path_factory.mktemp("unchanged"))
    return {name: (module.describe(path), module.sampled_states(path, name)) for name, path in files.items()}


def _same_up_to_the_last_float16_step(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    """What another CPU's kernels may change: single elements by one float16 step (or, near zero, by
    4e-7: float32 rounding differences, several float16 steps apart there), most not at all."""
    assert got.dtype == expected.dtype == np.float16 and got.shape == expected.shape, what
    step = np.maximum(np.spacing(np.abs(expected)).astype(np.float32), 4e-7)
    diff = np.abs(got.astype(np.float32) - expected.astype(np.float32))
    assert np.all(diff <= step), f"{what}: {int((diff > step).sum())} elements moved by more than one float16 step"
    assert np.mean(diff == 0) >= 0.9, f"{what}: only {np.mean(diff == 0):.1%} of the elements are bit-identical"


@pytest.mark.parametrize("name", ["engine-lstm", "engine-gru", "stock-lstm", "stock-gru"])
def test_a_recording_of_the_demo_config_is_unchanged(name, recorded):
    expected = json.loads((DATA / "recording_digests.json").read_text(encoding="utf-8"))[name]
    got, sampled = recorded[name]
    reference = np.load(DATA / "recording_states.npz")
    assert list(got["taps"]) == list(expected["taps"])  # the same signals, in the same order
    for tap, info in expected["taps"].items():
        mine = dict(got["taps"][tap])
        if mine["states"] != info["states"]:  # another CPU's last bits: compare the stored states instead
            _same_up_to_the_last_float16_step(sampled[f"{name}|{tap}"], reference[f"{name}|{tap}"], f"{name} {tap}")
            mine["states"] = info["states"]
        assert mine == info, tap
        got["taps"][tap] = mine
    assert got == expected  # offsets, tokens, vocabulary, annotations, provenance: bit for bit


def test_the_state_comparison_catches_a_changed_model():
    reference = np.load(DATA / "recording_states.npz")
    states = reference["engine-lstm|layer1/h"]
    _same_up_to_the_last_float16_step(states.copy(), states, "itself")
    nudged = states.copy()
    nudged[3, 5] = np.nextafter(nudged[3, 5], np.float16(np.inf))
    _same_up_to_the_last_float16_step(nudged, states, "one step")
    with pytest.raises(AssertionError, match="more than one float16 step"):
        _same_up_to_the_last_float16_step((states.astype(np.float32) * 1.01).astype(np.float16), states, "scaled")
    with pytest.raises(AssertionError, match="bit-identical"):
        moved = np.nextafter(states, np.float16(np.inf))
        _same_up_to_the_last_float16_step(moved, states, "every element")
