"""Probes on a recording of fewer than 3 items (one graph of a transductive node task): its positions are
split instead of its items, the probe trains on the training positions only, the control task and the
intervals follow the positions, and the CLI and the report say that the split was by positions."""

import numpy as np
import pytest

from lstmviz.analysis.probe_report import run_probes
from lstmviz.analysis.probes import (
    PositionSplit,
    _roles,
    control_labels,
    fit_probe,
    probe_labels,
    probe_split,
    split_items,
    split_positions,
)
from lstmviz.recording import RecordingWriter, open_recording

N, UNITS = 600, 6


@pytest.fixture(scope="module")
def one_item(tmp_path_factory):
    """One item of 600 positions: unit 2 holds 2.0 · tag plus noise (3 tags); the tokens carry no tag."""
    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("one-item") / "one.h5"
    tag = rng.choice(3, N, p=[0.5, 0.3, 0.2])
    x = 0.4 * rng.standard_normal((N, UNITS)).astype(np.float32)
    x[:, 2] += 2.0 * tag
    with RecordingWriter(path, vocab=[f"w{i}" for i in range(5)]) as w:
        w.add_tap("h", UNITS)
        w.add_annotation("tag", kind="categorical", labels=["a", "b", "c"])
        w.append_item(rng.integers(0, 5, N), {"h": x}, annotations={"tag": tag})
    return path


def test_split_positions_is_disjoint_covering_and_seeded():
    split = split_positions(100, seed=4)
    assert isinstance(split, PositionSplit) and len(split) == 3
    train, valid, test = split
    assert (len(train), len(valid), len(test)) == (70, 15, 15)
    assert np.array_equal(np.sort(np.concatenate([train, valid, test])), np.arange(100))
    assert np.array_equal(split_positions(100, seed=4).roles, split.roles)
    assert not np.array_equal(split_positions(100, seed=5).roles, split.roles)
    with pytest.raises(ValueError, match="at least 3 positions"):
        split_positions(2)


def test_probe_split_splits_items_when_there_are_three(one_item, tmp_path):
    with open_recording(one_item) as rec:
        split = probe_split(rec, seed=1)
        assert isinstance(split, PositionSplit)
        assert np.array_equal(_roles(rec, split), split.roles)
    path = tmp_path / "three.h5"
    with RecordingWriter(path, vocab=["w"]) as w:
        w.add_tap("h", 2)
        for _ in range(3):
            w.append_item(np.zeros(4, np.int64), {"h": np.zeros((4, 2), np.float32)})
    with open_recording(path) as rec:
        split = probe_split(rec, seed=1)
        assert not isinstance(split, PositionSplit)
        assert [a.tolist() for a in split] == [a.tolist() for a in split_items(3, seed=1)]


def test_a_probe_on_one_item_learns_from_its_training_positions(one_item):
    with open_recording(one_item) as rec:
        labels = probe_labels(rec, "tag")
        split = probe_split(rec, seed=0)
        result = fit_probe(rec, "h", labels, split)
        assert result.n_train == int(np.count_nonzero(split.roles == 0))
        assert result.n_test == int(np.count_nonzero(split.roles == 2))
        assert result.accuracy > 0.9  # a planted, linearly readable tag
        # the interval resamples the test positions: a real interval, not a point, below 100%
        assert result.ci_low < result.accuracy <= result.ci_high
        assert result.ci_high - result.ci_low > 0.005
        # the control task draws from the training positions' labels, one label per token type
        control = control_labels(rec, labels, split, seed=0, n_classes=3)
        tokens = rec.token_ids(0, rec.n_positions)
        for t in np.unique(tokens):
            assert len(np.unique(control[tokens == t])) == 1
        ctrl = fit_probe(rec, "h", labels, split, control=True)
        assert ctrl.accuracy < result.accuracy - 0.3


def test_the_report_and_the_cli_say_the_positions_were_split(one_item, tmp_path, monkeypatch, capsys):
    from lstmviz.cli import main

    monkeypatch.setenv("LSTMVIZ_CACHE_DIR", str(tmp_path / "cache"))
    with open_recording(one_item) as rec:
        report = run_probes(rec, "tag", cache=False)
    assert report.split_unit == "positions"
    assert sum(report.split_sizes) == N and report.split_sizes[0] == 420
    assert main(["probe", str(one_item), "--label", "tag"]) == 0
    out = capsys.readouterr().out
    assert "positions were split (420 train, 90 validation, 90 test)" in out


def test_the_bundled_graph_demo_probes_its_factions():
    from importlib.resources import files
    from pathlib import Path

    demo = Path(str(files("lstmviz.assets") / "demo" / "karate-chebnet.h5"))
    with open_recording(demo) as rec:
        report = run_probes(rec, "community", cache=False)
    assert report.split_unit == "positions" and sum(report.split_sizes) == 34
    assert report.probes["layer1/h"].accuracy >= report.majority_accuracy
