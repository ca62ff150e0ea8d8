"""Every wrong command line is one sentence on stderr, never a traceback (issue 10.11, 10.10 --units)."""

from pathlib import Path

import pytest

from lstmviz.cli import COMMANDS, main

DEMO = Path(__file__).resolve().parents[2] / "assets" / "demo" / "parens-lstm.h5"
TINY = ["--dataset-option", "tokens=3000"]


def _error_lines(err: str) -> list[str]:
    """stderr without argparse's usage lines."""
    return [line for line in err.splitlines() if line.strip() and not line.startswith(("usage:", "  "))]


@pytest.mark.parametrize("argv, code, message", [
    # the cases
    (["record", "lstm", "--set", "nope=1"], 2,
     "--set: unknown hyperparameter 'nope' for engine 'lstm'; known: dropout, embedding_dim, hidden_size"),
    (["record", "lstm", "--set", "vocab_size=3"], 2, "--set vocab_size: the vocabulary size is the dataset's"),
    (["train", "lstm", "--out", "x.pt", "--steps", "3", "--train", "steps=5"], 2,
     "--steps 3 and --train steps=5 disagree; give one of them"),
    (["train", "lstm", "--out", "x.pt", "--train", "seed=abc"], 1, "training setting 'seed': expected an int, got 'abc'"),
    (["probe", str(DEMO), "--label", "depth", "--taps", "nope"], 2,
     "--taps: {demo} has no tap 'nope'; it has layer0/gates/i, "),
    # more of the same kind
    (["train", "lstm", "--out", "x.pt", "--train", "task=1"], 2, "--train task: not a training setting; the settings are"),
    (["train", "lstm", "--out", "x.pt", "--train", "device=nope"], 2, "--train device=nope: not a torch device"),
    (["train", "lstm", "--out", "x.pt", "--set", "vocab_size=3"], 2, "--set vocab_size"),
    (["train", "lstm", "--out", "no/such/dir/x.pt"], 2, "the folder 'no/such/dir' does not exist"),
    (["record", "lstm", "--set", "hidden_size=abc"], 2, "expected hidden_size to be a positive int, got 'abc'"),
    (["record", "lstm", "--set", "embedding_dim=1e9"], 2, "expected embedding_dim to be a positive int"),
    (["record", "lstm", "--max-size", "lots"], 2, "--max-size must be a size like 2G"),
    (["record", "lstm", "--out", "."], 2, "is a folder; give a file name"),
    (["probe", str(DEMO), "--label", "depth", "--shift", "100000"], 2, "--shift 100000 reaches past every item"),
    (["probe", str(DEMO), "--label", "depth", "--out", "nodir/t.csv"], 2, "the folder 'nodir' does not exist"),
    (["annotate", str(DEMO), "--from", "missing.csv"], 2, "--from: no such file: missing.csv"),
    (["annotate", str(DEMO), "--from", "labels.csv", "--kind", "x=ordinal"], 2,
     "--kind must look like NAME=categorical or NAME=numeric"),
    # 10.10: a huge unit range is checked against the taps, never expanded
    (["--units", "0-999999999", str(DEMO), "--screenshot", "x.png"], 2,
     "--units: unit 999,999,999 is beyond every tap of {demo} (the widest), which has 128 units (0-127)"),
    (["--units", "7-3", str(DEMO)], 2, "'7-3': a range goes from the lower unit to the higher, e.g. 3-7"),
    (["--units", "x", str(DEMO)], 2, "'x' is not a unit number or a range like 40-42"),
])
def test_a_wrong_command_line_is_one_sentence(argv, code, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LSTMVIZ_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "labels.csv").write_text("x\n1\n")
    if argv[0] == "record" and "--out" not in argv:
        argv = [*argv, "--out", "r.h5"]
    assert main([*argv, *TINY] if argv[0] in ("record", "train") else argv) == code
    err = capsys.readouterr().err
    lines = _error_lines(err)
    assert "Traceback" not in err and len(lines) == 1, err
    assert message.format(demo=DEMO) in lines[0]
    assert not (tmp_path / "r.h5").exists() and not (tmp_path / "x.png").exists()


def test_a_huge_unit_range_is_never_built(monkeypatch, capsys):
    """--units 0-999999999 used to build a list of 10^9 ints; refused before any list exists."""
    import lstmviz.analysis.unit_spec as unit_spec

    built = []
    real = unit_spec.parse_units
    monkeypatch.setattr(unit_spec, "parse_units", lambda *a, **k: built.append(a) or real(*a, **k))
    assert main(["--units", "3,0-999999999", str(DEMO), "--screenshot", "x.png"]) == 2
    assert built == [] and "999,999,999" in capsys.readouterr().err
    assert unit_spec.parse_units("3, 17 40-42", 128) == [3, 17, 40, 41, 42]
    with pytest.raises(ValueError, match="beyond the tap, which has 128 units"):
        unit_spec.parse_units("0-999999999", 128)


def test_top_level_help_names_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert f"lstmviz {command} " in out, command
    assert {"train", "record", "info", "probe", "annotate"} <= set(COMMANDS)


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="needs FIFOs")
def test_an_output_that_is_not_a_regular_file_is_never_replaced(tmp_path, capsys):
    import os

    fifo = tmp_path / "pipe.h5"
    os.mkfifo(fifo)
    assert main(["record", "lstm", "--out", str(fifo), *TINY]) == 2
    assert main(["train", "lstm", "--out", str(fifo), *TINY]) == 2
    assert capsys.readouterr().err.count("exists and is not a regular file") == 2
    assert not fifo.is_file() and fifo.exists()  # still the FIFO


def test_train_settings_may_come_from_either_flag(tmp_path, capsys):
    out = tmp_path / "t.pt"
    assert main(["train", "lstm", "--out", str(out), "--quiet", "--train", "steps=2", "--train", "seed=3",
                 "--train", "batch_size=4", "--set", "hidden_size=8", "--set", "embedding_dim=4", *TINY]) == 0
    from lstmviz.engines.checkpoint import load_checkpoint

    assert load_checkpoint(out)[1]["step"] == 2
    assert "steps: 2" in capsys.readouterr().out


def test_the_output_folder_is_checked_before_any_work(tmp_path, monkeypatch, capsys):
    import lstmviz.datasets as datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("loaded data before checking --out"))
    assert main(["train", "lstm", "--out", str(tmp_path / "missing" / "x.pt"), *TINY]) == 2
    assert main(["record", "lstm", "--out", str(tmp_path / "missing" / "x.h5"), *TINY]) == 2
    assert capsys.readouterr().err.count("does not exist") == 2
