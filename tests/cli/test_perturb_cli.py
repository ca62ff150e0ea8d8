"""`lstmviz perturb`: the same numbers as the API, tables per item / position / alpha, bad input in one line."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pytest

from lstmviz.cli import main

TINY = ["--dataset-option", "tokens=3000", "--dataset-option", "item_length=60"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("perturb_cli")
    ckpt, rec = folder / "lstm.pt", folder / "lstm.h5"
    assert main(["train", "lstm", "--dataset", "parens", "--steps", "20", "--out", str(ckpt), "--quiet", "--no-valid",
                 "--train", "batch_size=4", "--train", "bptt=20", "--set", "hidden_size=12", "--set",
                 "embedding_dim=8", *TINY]) == 0
    assert main(["record", str(ckpt), "--out", str(rec), "--max-items", "4", "--dtype", "float32", "--quiet",
                 *TINY]) == 0
    return ckpt, rec


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_per_item_table_equals_the_api(files, tmp_path, capsys):
    from lstmviz.perturb import Perturbation, load_live_model, perturb_items
    from lstmviz.recording import open_recording

    out = tmp_path / "t.csv"
    assert main(["perturb", str(files[1]), "--tap", "layer0/c", "--units", "1,3-4", "--positions", "5:10",
                 "--action", "ablate", "--to", "mean", "--out", str(out), "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "ablate layer0/c units 1,3,4 at 5..9 to the mean: mean dnll" in said and f"wrote {out}" in said
    rows = _rows(out)
    with open_recording(files[1]) as rec:
        batch = perturb_items(load_live_model(rec), rec, Perturbation("layer0/c", "ablate", units=(1, 3, 4),
                                                                       positions=range(5, 10), ablate_to="mean"))
    assert [int(r["item"]) for r in rows] == [0, 1, 2, 3]
    assert np.allclose([float(r["mean_dnll"]) for r in rows], batch.mean_dnll, atol=1e-7)
    assert np.allclose([float(r["mean_kl"]) for r in rows], batch.mean_kl, atol=1e-7)


def test_per_position_npy_and_a_sweep(files, tmp_path):
    from lstmviz.recording import open_recording

    out = tmp_path / "p.npy"
    assert main(["perturb", str(files[1]), "--tap", "layer1/h", "--action", "add", "--direction",
                 "means:token_class:open:close", "--alpha", "2", "--items", "1,3", "--per-position",
                 "--out", str(out), "--quiet"]) == 0
    table = np.load(out)
    with open_recording(files[1]) as rec:
        lengths = np.diff(rec.item_offsets)
    assert len(table) == lengths[1] + lengths[3] and set(table["item"]) == {1, 3}
    assert {"position", "token", "dnll", "kl", "top1_clean", "top1_edited"} <= set(table.dtype.names)
    out = tmp_path / "s.csv"
    assert main(["perturb", str(files[1]), "--tap", "layer1/h", "--action", "add", "--direction", "random",
                 "--sweep=-1,0,2", "--items", "0", "--out", str(out), "--quiet"]) == 0
    rows = _rows(out)
    assert [float(r["alpha"]) for r in rows] == [-1.0, 0.0, 2.0] and float(rows[1]["mean_dnll"]) == 0.0


def test_a_patch_and_a_clamp(files, tmp_path):
    out = tmp_path / "patch.csv"
    assert main(["perturb", str(files[1]), "--tap", "layer1/c", "--positions", "3:6", "--action", "patch",
                 "--source-item", "2", "--source-start", "10", "--items", "0", "--out", str(out), "--quiet"]) == 0
    assert float(_rows(out)[0]["mean_kl"]) > 0
    assert main(["perturb", str(files[1]), "--tap", "layer0/h", "--action", "clamp", "--value", "0.5",
                 "--items", "0", "--out", str(out), "--quiet"]) == 0
    assert float(_rows(out)[0]["mean_kl"]) > 0


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("extra, code, words", [
    (["--tap", "layer9/h", "--action", "ablate"], 1, "the model has no tap 'layer9/h'"),
    (["--tap", "layer0/c", "--units", "12", "--action", "ablate"], 2, "--units: unit 12 is beyond tap layer0/c"),
    (["--tap", "layer0/c", "--action", "add", "--alpha", "nan"], 2, "--alpha must be a finite number"),
    (["--tap", "layer0/c", "--action", "clamp"], 2, "--action clamp needs --value V"),
    (["--tap", "layer0/c", "--action", "patch", "--source-item", "1", "--source-start", "50"], 1,
     "so the source has another length"),
    (["--tap", "layer0/c", "--action", "ablate", "--positions", "5-x"], 2, "--positions must be START:STOP"),
    (["--tap", "layer0/c", "--action", "ablate", "--positions", "0:900"], 1, "position 899 is beyond item"),
    (["--tap", "layer0/c", "--action", "ablate", "--items", "7"], 2, "--items: item 7 does not exist"),
    (["--tap", "layer0/c", "--action", "add", "--direction", "sideways"], 2, "--direction must be unit, random"),
    (["--tap", "layer0/c", "--action", "add", "--direction", "probe:nope:1"], 1, "no annotation 'nope'"),
    (["--tap", "layer0/c", "--action", "ablate", "--sweep", "1,2"], 2, "--sweep needs --action add"),
    (["--tap", "layer0/c", "--action", "ablate", "--checkpoint", "nowhere.pt"], 1,
     "the checkpoint nowhere.pt was not found"),
])
def test_bad_input_is_one_line_and_the_recording_is_untouched(files, tmp_path, capsys, extra, code, words):
    rec = files[1]
    before = _digest(rec)
    out = tmp_path / "t.csv"
    assert main(["perturb", str(rec), *extra, "--out", str(out), "--quiet"]) == code
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("lstmviz perturb: error: ") and words in last, err
    assert "Traceback" not in err and not out.exists() and _digest(rec) == before


def test_out_may_not_be_the_recording(files, capsys):
    before = _digest(files[1])
    assert main(["perturb", str(files[1]), "--tap", "layer0/c", "--action", "ablate", "--out", str(files[1])]) == 2
    assert "--out" in capsys.readouterr().err and _digest(files[1]) == before


def test_a_wrong_checkpoint_is_named(files, tmp_path, capsys):
    other = tmp_path / "other.pt"
    assert main(["train", "gru", "--dataset", "parens", "--steps", "1", "--out", str(other), "--quiet", "--no-valid",
                 "--set", "hidden_size=4", "--set", "embedding_dim=4", *TINY]) == 0
    capsys.readouterr()
    assert main(["perturb", str(files[1]), "--tap", "layer0/c", "--action", "ablate", "--checkpoint", str(other),
                 "--out", str(tmp_path / "t.csv")]) == 1
    assert "it is another model" in capsys.readouterr().err
