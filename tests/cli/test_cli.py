"""The `lstmviz` command end to end on tiny settings."""

import subprocess
import sys

import numpy as np
import pytest

from lstmviz.cli import main

TINY_DATA = ["--dataset-option", "tokens=3000", "--dataset-option", "item_length=100"]
TINY_MODEL = ["--set", "hidden_size=12", "--set", "embedding_dim=8"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "lstm.pt"
    code = main(["train", "lstm", "--dataset", "parens", "--steps", "30", "--out", str(out), "--quiet",
                 "--train", "batch_size=4", "--train", "bptt=20", *TINY_DATA, *TINY_MODEL])
    assert code == 0
    return out


def test_train_writes_a_loadable_checkpoint(checkpoint):
    from lstmviz.engines.checkpoint import load_checkpoint

    _, meta = load_checkpoint(checkpoint)
    assert meta["engine"] == "lstm" and meta["dataset"] == "parens" and meta["step"] == 30
    assert meta["config"]["hidden_size"] == 12


def test_record_checkpoint_then_info(checkpoint, tmp_path, capsys):
    out = tmp_path / "rec.h5"
    code = main(["record", str(checkpoint), "--split", "valid", "--out", str(out), "--quiet", "--max-items", "5",
                 "--signals", "layer*/c", "layer*/h", *TINY_DATA])
    assert code == 0
    from lstmviz.recording import open_recording

    with open_recording(out) as rec:
        assert rec.n_items == 5
        assert set(rec.taps) == {"layer0/h", "layer0/c", "layer1/h", "layer1/c"}
        assert rec.taps["layer1/c"].units == 12
        assert rec.provenance["engine"] == "lstm"
        assert len(rec.provenance["sha256"]) == 64
        assert "depth" in rec.annotations
        assert np.isfinite(rec.states("layer1/c", 0, rec.n_positions)).all()
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    for expected in ("layer1/c", "depth", "lstm", "parens"):
        assert expected in text


def test_record_untrained_engine_by_name(tmp_path):
    out = tmp_path / "gru.h5"
    assert main(["record", "gru", "--dataset", "parens", "--out", str(out), "--quiet", "--max-items", "2",
                 *TINY_DATA, *TINY_MODEL]) == 0
    from lstmviz.recording import open_recording

    with open_recording(out) as rec:
        assert "layer0/gates/r" in rec.taps and rec.provenance["checkpoint"] is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "nosuchengine", "--out", "x.pt"], "unknown engine 'nosuchengine'"),
        (["train", "lstm", "--dataset", "nosuch", "--out", "x.pt"], "unknown dataset 'nosuch'"),
        (["train", "lstm", "--steps", "0", "--out", "x.pt"], "--steps must be a positive"),
        (["train", "lstm", "--steps", "5"], "--out CKPT is required"),
        (["train", "lstm", "--out", "x.pt", "--set", "hidden_size"], "KEY=VALUE"),
        (["record", "missing/ckpt.pt", "--out", "x.h5"], "no such checkpoint file"),
        (["info", "does-not-exist.h5"], "does-not-exist.h5"),
        (["nosuchfile.h5"], "no such file"),
    ],
)
def test_wrong_arguments_name_the_problem(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err
    assert code in (1, 2)
    assert message in err
    assert "Traceback" not in err


def test_argparse_errors_exit_with_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["record", "lstm"])  # --out missing
    assert exc.value.code == 2
    assert "--out" in capsys.readouterr().err


def test_info_on_a_bad_file_is_one_line_not_a_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    assert main(["info", str(bad)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err


def test_record_rejects_checkpoint_on_another_vocabulary(checkpoint, tmp_path, capsys):
    code = main(["record", str(checkpoint), "--dataset", "python", "--out", str(tmp_path / "x.h5"), "--quiet",
                 "--dataset-option", "max_files=1"])
    assert code == 2
    assert "different vocabulary" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize("command", [[], ["train"], ["record"], ["info"]])
def test_help_of_every_command(command):
    result = subprocess.run([sys.executable, "-m", "lstmviz.cli", *command, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert "usage: lstmviz" in result.stdout


def test_screenshot_of_a_recording(checkpoint, tmp_path):
    rec = tmp_path / "rec.h5"
    assert main(["record", str(checkpoint), "--out", str(rec), "--quiet", "--max-items", "3", *TINY_DATA]) == 0
    png = tmp_path / "window.png"
    assert main(["--screenshot", str(png), str(rec), "--size", "1500x900"]) == 0
    from PySide6.QtGui import QImage

    image = QImage(str(png))
    assert not image.isNull() and (image.width(), image.height()) == (1500, 900)
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 20


def _small_recording(path):
    from lstmviz.recording import RecordingWriter

    rng = np.random.default_rng(0)
    with RecordingWriter(path, vocab=["<pad>", "(", ")", "0", "1"]) as writer:
        writer.add_tap("layer0/c", 8, layer=0, signal="c")
        writer.add_tap("layer1/c", 8, layer=1, signal="c")
        for _ in range(2):
            states = {name: rng.uniform(-0.2, 0.2, (30, 8)).astype(np.float32) for name in ("layer0/c", "layer1/c")}
            states["layer0/c"][5:9, 2] = 1.0
            writer.append_item(rng.integers(1, 5, 30), states)
    return path


def _workspace_file(path, recording):
    from lstmviz.analysis.workspace_file import (
        PaneState,
        WorkspaceState,
        save_workspace,
    )

    state = WorkspaceState(recording=str(recording), window_start=0, window_width=40, panes=[
        PaneState(tap="layer0/c", transform="raw", threshold=0.5, brush=(5, 9)),
        PaneState(tap="layer1/c", transform="zscore", threshold=1.0, brush=(20, 23)),
    ])
    return save_workspace(path, state)


def _colours(png):
    from PySide6.QtGui import QImage

    image = QImage(str(png))
    assert not image.isNull() and image.width() > 400
    return {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}


def test_screenshot_of_a_workspace_with_its_recording_or_another_file(tmp_path, capsys):
    rec = _small_recording(tmp_path / "rec.h5")
    workspace = _workspace_file(tmp_path / "session.lstmviz.json", rec)
    png = tmp_path / "ws.png"
    assert main(["--screenshot", str(png), "--workspace", str(workspace)]) == 0
    assert len(_colours(png)) > 20
    other = _small_recording(tmp_path / "other.h5")
    png2 = tmp_path / "ws2.png"
    assert main(["--screenshot", str(png2), str(other), "--workspace", str(workspace)]) == 0
    assert png2.exists() and "wrote" in capsys.readouterr().out


def test_a_bad_workspace_file_is_one_line_not_a_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{ nope")
    assert main(["--screenshot", str(tmp_path / "x.png"), "--workspace", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.json" in err and "Traceback" not in err
    assert main(["--workspace", str(tmp_path / "missing.json")]) == 2
    assert "no such workspace file" in capsys.readouterr().err


@pytest.mark.parametrize("size", ["1500", "wide", "100x100", "1500x90000"])
def test_bad_window_size_is_one_line(size, tmp_path, capsys):
    assert main(["--screenshot", str(tmp_path / "x.png"), "--size", size]) != 0
    err = capsys.readouterr().err
    assert "--size must be WIDTHxHEIGHT" in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()
