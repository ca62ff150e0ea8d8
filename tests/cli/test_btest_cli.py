"""`lstmviz btest FILE --tap T --groups ANNOT=A,B | --rows-a/--rows-b` (issue 18, the B-test)."""

import json

import numpy as np
import pytest

from lstmviz.analysis.btest_groups import annotation_groups, compare_groups
from lstmviz.cli import main
from lstmviz.recording import RecordingWriter, open_recording


@pytest.fixture
def recording(tmp_path):
    """60 items of 6..11 positions; tap h: unit 0 shifted by 2 in items of class c1; tap z: noise."""
    path = tmp_path / "rec.h5"
    rng = np.random.default_rng(0)
    with RecordingWriter(path, vocab=["<pad>", "x"]) as w:
        w.add_tap("h", 4)
        w.add_tap("z", 2)
        w.add_annotation("cls", kind="categorical", level="item", labels=["c0", "c1", "rare"])
        w.add_annotation("side", kind="categorical", labels=["a", "b"])
        for i in range(60):
            n = int(rng.integers(6, 12))
            h = rng.normal(size=(n, 4))
            h[:, 0] += 2.0 * (i % 2)
            w.append_item(np.ones(n, np.int64), {"h": h, "z": rng.normal(size=(n, 2))},
                          annotations={"side": np.arange(n) % 2}, item_annotations={"cls": 2 if i == 0 else i % 2})
    return path


def test_table_per_tap_with_bh_decisions(recording, capsys):
    assert main(["btest", str(recording), "--tap", "h", "--tap", "z", "--groups", "cls=c0,c1"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "cls=c0 vs cls=c1" in lines[0]
    h = next(ln for ln in lines if ln.strip().startswith("h "))
    z = next(ln for ln in lines if ln.strip().startswith("z "))
    assert h.endswith("differ") and z.endswith("no difference")
    assert "29/30" in h  # item 0 carries the label "rare"
    assert "Benjamini-Hochberg over 2 taps" in out


def test_json_matches_the_library(recording, capsys):
    argv = ["btest", str(recording), "--tap", "h", "--tap", "z", "--groups", "cls=c0,c1", "--json",
            "--per-item", "mean", "--seed", "5", "--units", "0,1", "--block-size", "4"]
    assert main(argv) == 0
    got = json.loads(capsys.readouterr().out)
    with open_recording(recording) as rec:
        want = compare_groups(rec, ["h", "z"], annotation_groups(rec, "cls", "c0", "c1"), units=[0, 1],
                              per_item="mean", block_size=4, seed=5)
    assert got["units"] == [0, 1] and got["per_item"] == "mean"
    for row, t in zip(got["tests"], want.tests):
        assert row["tap"] == t.tap and row["block_size"] == 4 and row["n"] == t.result.n
        assert row["statistic"] == pytest.approx(t.result.statistic)
        assert row["p_value"] == pytest.approx(t.result.p_value)
        assert row["adjusted_p"] == pytest.approx(t.adjusted_p)
        assert row["reject_bh"] == t.reject_bh


def test_explicit_row_files(recording, tmp_path, capsys):
    with open_recording(recording) as rec:
        offsets = rec.item_offsets
    a = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in range(1, 60, 2)])  # class c1 items
    b = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in range(0, 60, 2)])
    np.save(tmp_path / "ones.npy", a)
    np.save(tmp_path / "zeros.npy", b)
    argv = ["btest", str(recording), "--tap", "h", "--rows-a", str(tmp_path / "ones.npy"),
            "--rows-b", str(tmp_path / "zeros.npy"), "--json"]
    assert main(argv) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["group_a"] == "ones" and got["tests"][0]["items_a"] == 30 and got["tests"][0]["reject"]


@pytest.mark.parametrize("extra, words", [
    (["--tap", "nope", "--groups", "cls=c0,c1"], "has no tap 'nope'; it has h, z"),
    (["--tap", "h", "--groups", "nope=a,b"], "has no annotation 'nope'"),
    (["--tap", "h", "--groups", "cls=c0,c9"], "no label 'c9' (labels: c0, c1, rare)"),
    (["--tap", "h", "--groups", "cls=c0"], "must look like ANNOT=LABEL_A,LABEL_B"),
    (["--tap", "h", "--groups", "cls=c0,rare"], "too few items"),
    (["--tap", "h", "--groups", "cls=c0,c1", "--units", "0,7"], "unit 7 is beyond"),
    (["--tap", "h", "--groups", "cls=c0,c1", "--block-size", "40"], "too few items"),
    (["--tap", "h", "--rows-a", "x.npy"], "--rows-a and --rows-b go together"),
])
def test_mistakes_are_one_line_with_the_usage(recording, capsys, extra, words):
    assert main(["btest", str(recording), *extra]) == 2
    err = capsys.readouterr().err
    assert "usage: lstmviz btest" in err
    assert words in err
