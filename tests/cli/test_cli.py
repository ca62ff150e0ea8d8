"""The `lstmviz` command end to end on tiny settings."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lstmviz.cli import main

DEMO = Path(__file__).resolve().parents[2] / "assets" / "demo" / "parens-lstm.h5"

TINY_DATA = ["--dataset-option", "tokens=3000", "--dataset-option", "item_length=100"]
TINY_MODEL = ["--set", "hidden_size=12", "--set", "embedding_dim=8"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """lstm.pt (step 30), and kept beside it lstm-step000000.pt, -step000010, -step000020, -step000030."""
    out = tmp_path_factory.mktemp("ckpt") / "lstm.pt"
    code = main(["train", "lstm", "--dataset", "parens", "--steps", "30", "--out", str(out), "--quiet",
                 "--train", "batch_size=4", "--train", "bptt=20", "--train", "checkpoint_every=10",
                 "--train", "keep_checkpoints=1", *TINY_DATA, *TINY_MODEL])
    assert code == 0
    return out


def _kept(checkpoint, step):
    return checkpoint.with_name(f"lstm-step{step:06d}.pt")


def test_train_writes_a_loadable_checkpoint(checkpoint):
    from lstmviz.engines.checkpoint import load_checkpoint

    _, meta = load_checkpoint(checkpoint)
    assert meta["engine"] == "lstm" and meta["dataset"] == "parens" and meta["step"] == 30
    assert meta["config"]["hidden_size"] == 12


def test_train_keeps_every_checkpoint_when_asked(checkpoint):
    from lstmviz.engines.checkpoint import load_checkpoint

    assert sorted(p.name for p in checkpoint.parent.iterdir()) == [
        "lstm-step000000.pt", "lstm-step000010.pt", "lstm-step000020.pt", "lstm-step000030.pt", "lstm.pt"]
    for step in (0, 10, 20, 30):
        assert load_checkpoint(_kept(checkpoint, step))[1]["step"] == step


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


def test_record_several_checkpoints_of_one_run_then_info(checkpoint, tmp_path, capsys):
    from lstmviz.engines.checkpoint import load_checkpoint

    from lstmviz.recording import open_recording

    out = tmp_path / "run.h5"
    files = [_kept(checkpoint, 20), _kept(checkpoint, 0), _kept(checkpoint, 10)]  # any order: sorted by step
    args = ["--split", "valid", "--quiet", "--max-items", "4", "--signals", "layer1/c", "layer0/h", *TINY_DATA]
    assert main(["record", *map(str, files), "--out", str(out), *args]) == 0
    assert "3 checkpoints, steps 0, 10, 20" in capsys.readouterr().out
    single = tmp_path / "step10.h5"
    assert main(["record", str(_kept(checkpoint, 10)), "--out", str(single), *args]) == 0
    with open_recording(out) as rec, open_recording(single) as alone:
        assert alone.checkpoints == []  # one checkpoint: a plain recording, no curve to offer
        cks = rec.checkpoints
        assert [(c.name, c.step, c.is_main) for c in cks] == [
            ("step-000000", 0, False), ("step-000010", 10, False), ("step-000020", 20, True)]
        for c in cks:
            meta = load_checkpoint(c.path)[1]
            assert c.sha256 == meta["sha256"] and c.metrics == meta["metrics"] and meta["step"] == c.step
        assert rec.provenance["checkpoint"] == str(_kept(checkpoint, 20).resolve())
        assert rec.provenance["checkpoint_step"] == 20 and rec.provenance["sha256"] == cks[-1].sha256
        view = rec.at_checkpoint("step-000010")
        for tap in ("layer1/c", "layer0/h"):
            assert np.array_equal(view.states(tap), alone.states(tap))
            assert not np.array_equal(rec.at_checkpoint("step-000000").states(tap), view.states(tap))
            assert np.array_equal(rec.at_checkpoint("step-000020").states(tap), rec.states(tap))
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Checkpoints (3" in text
    lines = [line.split() for line in text.splitlines() if line.strip().startswith("step-0000")]
    assert [line[:3] for line in lines] == [["step-000000", "0", "lstm-step000000.pt"],
                                             ["step-000010", "10", "lstm-step000010.pt"],
                                             ["step-000020", "20", "main"]]


def _variant(src, dst, **changes):
    """A copy of checkpoint ``src`` with other metadata (engines/checkpoint.py helpers)."""
    from lstmviz.engines.checkpoint import load_checkpoint, save_checkpoint

    model, meta = load_checkpoint(src)
    fields = {k: meta[k] for k in ("engine", "config", "vocab", "dataset", "step", "metrics")}  # not the run
    return save_checkpoint(dst, model, **{**fields, **changes})


def test_record_refuses_checkpoints_that_are_not_one_run(checkpoint, tmp_path, capsys):
    from lstmviz.engines.checkpoint import load_checkpoint

    ten, twenty = _kept(checkpoint, 10), _kept(checkpoint, 20)
    meta = load_checkpoint(ten)[1]
    other_config = _variant(twenty, tmp_path / "init.pt", config={**meta["config"], "init_range": 0.5})
    other_vocab = _variant(twenty, tmp_path / "vocab.pt", vocab=list(reversed(meta["vocab"])))
    copy = _variant(ten, tmp_path / "copy.pt")
    rerun = _variant(twenty, tmp_path / "lstm-step000025.pt", step=25, run="f" * 32)
    cases = [
        ([rerun, ten], (f"{ten} and {rerun} are not checkpoints of one training run: they were written by "
                        f"different runs of `lstmviz train` (run {meta['run'][:8]} vs ffffffff)")),
        ([ten, other_config], (f"{ten} and {other_config} are not checkpoints of one training run: they have "
                               f"different configurations (init_range {meta['config']['init_range']} vs 0.5)")),
        ([other_vocab, ten], "are not checkpoints of one training run: they have different vocabularies (token 0 is"),
        ([ten, twenty, ten], (f"{ten} and {ten} both hold step 10 (the same file given twice); give each training "
                              f"step once")),
        ([copy, ten], "both hold step 10; give each training step once"),
        (["lstm", ten], (f"give either one engine name (an untrained model) or checkpoint files of one training "
                         f"run, not both: 'lstm' is not a file (an engine name?) but {ten} is a checkpoint file")),
        ([ten, "gru"], "not both: 'gru' is not a file"),
        (["lstm", "gru"], "give one engine name (an untrained model), got 2: 'lstm', 'gru'"),
        ([ten, tmp_path / "missing.pt"], "no such checkpoint file"),
    ]
    for given, message in cases:
        out = tmp_path / "x.h5"
        code = main(["record", *map(str, given), "--out", str(out), "--quiet", "--max-items", "2", *TINY_DATA])
        err = capsys.readouterr().err
        assert code == 2 and message in err, (given, err)
        assert "Traceback" not in err and not out.exists()


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


def test_record_names_the_first_token_that_differs_from_the_datasets(checkpoint, tmp_path, capsys):
    from lstmviz.engines.checkpoint import load_checkpoint

    vocab = load_checkpoint(checkpoint)[1]["vocab"]
    swapped = [vocab[0], vocab[2], vocab[1], *vocab[3:]]  # as many tokens, two of them in another order
    other = _variant(checkpoint, tmp_path / "swapped.pt", vocab=swapped)
    code = main(["record", str(other), "--out", str(tmp_path / "x.h5"), "--quiet", "--max-items", "2", *TINY_DATA])
    assert code == 2
    assert (f"was trained with a different vocabulary than dataset 'parens' (token 1 is {vocab[2]!r} vs "
            f"{vocab[1]!r}); record on its dataset") in capsys.readouterr().err


@pytest.mark.parametrize("setting, message", [
    ("hidden_size=1048576", "hidden_size=1048576, num_layers=1 needs about"),
    ("embedding_dim=1e9", "expected embedding_dim to be a positive int, got 1000000000.0"),
    ("num_layers=1000000", "expected num_layers to be at most 1024, got 1000000"),
])
def test_absurd_sizes_are_refused_in_one_line_before_building(setting, message, tmp_path, capsys):
    out = tmp_path / "x.h5"
    code = main(["record", "lstm", "--dataset", "parens", "--out", str(out), "--quiet", "--max-items", "2",
                 *TINY_DATA, "--set", "num_layers=1", "--set", setting])
    err = capsys.readouterr().err
    # a bad --set value is a usage error: argparse's usage lines, then the one line that says why
    assert code == 2 and message in err.strip().splitlines()[-1] and "Traceback" not in err, err
    assert not out.exists()


@pytest.mark.parametrize("command", [[], ["train"], ["record"], ["info"], ["probe"], ["annotate"]])
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
    from lstmviz.workspace.file import PaneState, WorkspaceState, save_workspace

    state = WorkspaceState.of(str(recording), window_start=0, window_width=40, panes=[
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


def test_info_into_a_pipe_that_closes_early_is_quiet():
    """`lstmviz info FILE | head -1`: no BrokenPipeError traceback, exit status 0."""
    proc = subprocess.Popen([sys.executable, "-m", "lstmviz.cli", "info", str(DEMO)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    first = proc.stdout.read(20)
    proc.stdout.close()  # the reader goes away before the whole summary is written
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert first.startswith(b"File")
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr



def test_probe_prints_accuracies_and_writes_the_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LSTMVIZ_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "probes.csv"
    assert main(["probe", str(DEMO), "--label", "depth", "--taps", "layer1/h", "layer0/c", "--quiet",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].startswith("depth: majority class")
    rows = {line.split()[0]: line for line in lines[2:5]}
    assert list(rows) == ["layer0/c", "layer1/h", "input"]  # ordered by layer, then the baseline
    accuracy = float(rows["layer1/h"].split()[1].rstrip("%"))
    assert accuracy > 90.0  # a trained LSTM on parens tracks nesting depth
    table = out.read_text().splitlines()
    # one model state: no checkpoint or step column (they used to be empty and -1)
    assert len(table) == 4 and table[0].startswith("tap,layer,annotation")


def test_probe_says_when_a_fit_stopped_before_converging(tmp_path, monkeypatch, capsys):
    from lstmviz.analysis import probes

    monkeypatch.setenv("LSTMVIZ_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(probes, "MAX_ITERATIONS", 2)
    monkeypatch.setattr(probes, "SELECT_MAX_ITERATIONS", 2)
    out = tmp_path / "probes.csv"
    assert main(["probe", str(DEMO), "--label", "depth", "--taps", "layer1/c", "--no-control", "--quiet",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "note: the optimiser stopped at its iteration limit before converging for layer1/c" in text
    header, row = out.read_text().splitlines()[:2]
    assert row.split(",")[header.split(",").index("converged")] in ("False", "0", "false")


def test_probe_refuses_what_it_cannot_probe(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LSTMVIZ_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["probe", str(DEMO), "--label", "match_distance"]) == 2
    assert "categorical annotation" in capsys.readouterr().err
    assert main(["probe", str(tmp_path / "nope.h5"), "--label", "depth"]) == 2
    assert main(["probe", str(DEMO), "--label", "depth", "--out", str(tmp_path / "t.txt")]) == 2
    assert main(["probe", str(DEMO), "--label", "depth", "--taps", "layer0/h", "--curves", "--quiet"]) == 1
    assert "one model only" in capsys.readouterr().err
