"""`lstmviz perturb` on an image recording: occlusion and unit edits at cells, a row per item and tap equal to
the API's numbers, bad input in one sentence with nothing written."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from lstmviz.cli import main

DEMO = Path(__file__).resolve().parents[2] / "assets" / "demo" / "digits-cnn.h5"  # a trained CNN: attacks flip it


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("perturb_image_cli")
    ckpt, rec = folder / "cnn.pt", folder / "cnn.h5"
    assert main(["train", "cnn", "--dataset", "digits", "--steps", "10", "--set", "hidden_size=4",
                 "--set", "num_layers=3", "-o", str(ckpt), "--quiet"]) == 0
    assert main(["record", str(ckpt), "-o", str(rec), "--dtype", "float32", "--max-items", "5", "--quiet"]) == 0
    return ckpt, rec


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_an_occlusion_writes_a_row_per_item_and_tap_equal_to_the_api(files, tmp_path, capsys):
    from lstmviz.perturb.image_live import load_image_model, perturb_recorded_image
    from lstmviz.recording import open_recording

    out = tmp_path / "occ.csv"
    assert main(["perturb", str(files[1]), "--occlude", "0,0,4,4", "--fill", "mean", "--items", "1,3",
                 "--out", str(out), "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "occlude 0,0,4,4 with mean on 2 images" in said and "0 cells changed outside" in said
    rows = _rows(out)
    assert [(int(r["item"]), r["tap"]) for r in rows[:5]] == [(1, t) for t in ("conv0", "conv1", "conv2", "pooled",
                                                                               "logits")]
    with open_recording(files[1]) as rec:
        effect = perturb_recorded_image(load_image_model(rec), rec, 3, occlude=((0, 0, 4, 4), "mean"))
    mine = [r for r in rows if r["item"] == "3"]
    assert np.allclose([float(r["total_norm"]) for r in mine], [row["total_norm"] for row in effect.to_table()])
    assert all(r["outside"] == "0" for r in rows)
    assert int(mine[0]["changed"]) == int(effect.changed("conv0").sum()) > 0


def test_a_unit_edit_at_cells_changes_that_tap_at_those_cells(files, tmp_path, capsys):
    out = tmp_path / "edit.csv"
    assert main(["perturb", str(files[1]), "--tap", "conv1", "--units", "0-2", "--positions", "0,5",
                 "--action", "clamp", "--value", "3", "--items", "0", "--out", str(out), "--quiet"]) == 0
    rows = {r["tap"]: r for r in _rows(out)}
    assert rows["conv0"]["changed"] == "0" and rows["conv0"]["region"] == "0"
    assert rows["conv1"]["changed"] == "2"
    assert float(rows["conv1"]["amplification"]) == pytest.approx(1.0)
    assert int(rows["conv2"]["changed"]) > 0 and rows["conv2"]["outside"] == "0"


def test_an_attack_writes_its_result_and_each_layers_change_equal_to_the_api(tmp_path, capsys):
    from lstmviz.perturb.image_live import attack_recorded_image, load_image_model
    from lstmviz.recording import open_recording

    out = tmp_path / "attack.csv"
    assert main(["perturb", str(DEMO), "--attack", "lbfgs", "--items", "0,2", "--out", str(out), "--quiet"]) == 0
    said = capsys.readouterr().out
    rows = _rows(out)
    assert [r["tap"] for r in rows if r["item"] == "0"] == ["conv0", "conv1", "conv2", "conv3", "pooled", "logits"]
    with open_recording(DEMO) as rec:
        attack = attack_recorded_image(load_image_model(rec), rec, 2, method="lbfgs").extra["attack"]
    mine = [r for r in rows if r["item"] == "2"]
    assert float(mine[0]["l2"]) == pytest.approx(attack.l2, rel=1e-6) and attack.l2 > 0
    assert int(mine[0]["flipped"]) == attack.flipped
    assert int(mine[0]["prediction_adversarial"]) == attack.adversarial_prediction
    assert attack.flipped and attack.adversarial_prediction != attack.clean_prediction
    flips = sum(int(r["flipped"]) for r in rows if r["tap"] == "conv0")
    assert f"L-BFGS aiming for any other class on 2 images: the prediction changed on {flips}" in said
    for r in rows:
        if r["flipped"] == "1":
            assert r["prediction_adversarial"] != r["prediction_clean"]
            assert float(r["total_norm"]) > 0


def test_a_targeted_pgd_attack_stays_within_eps_and_lands_on_its_target_when_it_flips(tmp_path):
    out = tmp_path / "pgd.csv"
    assert main(["perturb", str(DEMO), "--attack", "pgd-l2", "--eps", "1", "--target", "1", "--items", "0-7",
                 "--out", str(out), "--quiet"]) == 0
    rows = [r for r in _rows(out) if r["tap"] == "logits"]
    assert len(rows) == 8 and all(r["target"] == "1" for r in rows)
    assert any(r["flipped"] == "1" for r in rows)
    for r in rows:
        assert float(r["l2"]) <= 1 + 1e-4
        assert (r["prediction_adversarial"] == "1") == (r["flipped"] == "1")


@pytest.mark.parametrize("argv, message", [
    (["--attack", "lbfgs", "--occlude", "0,0,2,2"], "without --occlude and --tap"),
    (["--attack", "lbfgs", "--target", "10"], "--target 10: the model has classes 0 to 9"),
    (["--attack", "pgd-l2", "--eps", "0"], "--eps must be a positive number"),
    (["--occlude", "0,0,4"], "--occlude must be four numbers"),
    (["--occlude", "3,0,3,4"], "the box is empty"),
    (["--occlude", "0,0,2,2", "--fill", "pink"], "--fill must be zero, mean, blur or a value"),
    (["--occlude", "0,0,2,2", "--fill", "2"], "pixel range"),
    ([], "nothing to perturb"),
    (["--tap", "conv1"], "--tap needs --action"),
    (["--tap", "conv1", "--action", "ablate", "--positions", "99"], "position 99 is beyond"),
    (["--tap", "conv7", "--action", "ablate"], "no tap 'conv7'"),
    (["--occlude", "20,20,30,30"], "covers no pixel"),
])
def test_bad_requests_are_one_sentence_and_write_nothing(files, tmp_path, capsys, argv, message):
    out = tmp_path / "bad.csv"
    assert main(["perturb", str(files[1]), *argv, "--out", str(out), "--quiet"]) != 0
    err = capsys.readouterr().err
    assert message in err, err
    assert not out.exists()


def test_occlude_on_a_sequence_recording_is_refused(tmp_path, capsys):
    from lstmviz.recording import RecordingWriter

    path = tmp_path / "seq.h5"
    with RecordingWriter(path, vocab=["a", "b"]) as writer:
        writer.add_tap("h", 2)
        writer.append_item(np.array([0, 1]), {"h": np.zeros((2, 2), np.float32)})
    assert main(["perturb", str(path), "--occlude", "0,0,1,1", "--out", str(tmp_path / "t.csv")]) != 0
    assert "--occlude is for recordings of image models" in capsys.readouterr().err
    assert main(["perturb", str(path), "--attack", "lbfgs", "--out", str(tmp_path / "t.csv")]) != 0
    assert "--attack is for recordings of image models" in capsys.readouterr().err
    assert main(["perturb", str(path), "--out", str(tmp_path / "t.csv")]) != 0
    assert "--tap and --action are required" in capsys.readouterr().err


@pytest.fixture(scope="module")
def hemis_recording(tmp_path_factory):
    folder = tmp_path_factory.mktemp("perturb_switch_cli")
    ckpt, rec = folder / "hemis.pt", folder / "hemis.h5"
    assert main(["train", "hemis", "--steps", "5", "--set", "hidden_size=4", "--set", "front_size=4",
                 "-o", str(ckpt), "--quiet"]) == 0
    assert main(["record", str(ckpt), "-o", str(rec), "--split", "test", "--max-items", "3", "--quiet"]) == 0
    return rec


def test_a_switch_drops_a_modality_and_list_prints_the_switches(hemis_recording, tmp_path, capsys):
    from lstmviz.perturb.image_live import load_image_model, perturb_recorded_image
    from lstmviz.recording import open_recording

    out = tmp_path / "drop.csv"
    assert main(["perturb", str(hemis_recording), "--switch", "list", "--out", str(out), "--quiet"]) == 0
    assert "modality2: on | off (default on)" in capsys.readouterr().out and not out.exists()
    assert main(["perturb", str(hemis_recording), "--switch", "modality2=off", "--items", "1", "--out", str(out),
                 "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "switch modality2=off on 1 image" in said and "changes the model itself" in said
    rows = {r["tap"]: r for r in _rows(out)}
    with open_recording(hemis_recording) as rec:
        assert rec.axis_geometry(rec.taps["modalities"].axis).kind == "set"  # a set tap does not stop the live model
        effect = perturb_recorded_image(load_image_model(rec), rec, 1, switches={"modality2": "off"})
    assert "modalities" not in rows  # the Δ rows compare image and vector taps
    assert int(rows["backend_2"]["changed"]) == int(effect.changed("backend_2").sum()) > 0
    assert rows["backend_0"]["changed"] == "0" and all(r["outside"] == "0" for r in rows.values())
    assert int(rows["logits"]["pixels_changed"]) == effect.pixels_changed()


@pytest.mark.parametrize("argv, message", [
    (["--switch", "modality2"], "--switch takes NAME=VALUE"),
    (["--switch", "branch=1"], "no switch 'branch'"),
    (["--switch", "modality0=maybe"], "switch 'modality0' takes on, off"),
    (["--switch", "modality0=on", "--switch", "modality0=off"], "given twice"),
])
def test_bad_switches_are_one_sentence_and_write_nothing(hemis_recording, tmp_path, capsys, argv, message):
    out = tmp_path / "bad.csv"
    assert main(["perturb", str(hemis_recording), *argv, "--out", str(out), "--quiet"]) != 0
    assert message in capsys.readouterr().err
    assert not out.exists()
