"""Recordings of the built-in engines and of stock nn.LSTM / nn.GRU do not change, bit for bit.

The reference (tests/data/recording_digests.json) was written by the code before the engines and
hooks were restructured; see tests/data/recording_digests.py for what is recorded and how.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

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
    return {name: module.describe(path) for name, path in files.items()}


@pytest.mark.parametrize("name", ["engine-lstm", "engine-gru", "stock-lstm", "stock-gru"])
def test_a_recording_of_the_demo_config_is_unchanged(name, recorded):
    expected = json.loads((DATA / "recording_digests.json").read_text(encoding="utf-8"))[name]
    got = recorded[name]
    assert list(got["taps"]) == list(expected["taps"])  # the same signals, in the same order
    for tap, info in expected["taps"].items():
        assert got["taps"][tap] == info, tap
    assert got == expected
