"""Seeded bad command lines: exit 2 (usage) or 1 (a file or value that cannot be used) with one error
line on stderr, never a traceback (issue 10.11).

Each case is a tiny valid command with exactly one defect drawn from a list of generators (an unknown
option, a value of the wrong type or range, an unknown name, a path that is missing, a folder, or a
file of the wrong kind, junk with control characters), so no case can run real work by accident.
"""

import re
import string
from pathlib import Path

import numpy as np
import pytest

from lstmviz.cli import main

SEED = 1011
N_CASES = 160
DEMO = Path(__file__).resolve().parents[2] / "assets" / "demo" / "parens-lstm.h5"
TINY_DATA = ["--dataset-option", "tokens=3000"]
TINY_MODEL = ["--set", "hidden_size=4", "--set", "embedding_dim=4"]
ERROR = re.compile(r"^lstmviz( \w+)?: error: ")


def _junk(rng) -> str:
    """Random text that is never a valid value: it starts with "~" (no number, unit list, size, name)."""
    alphabet = string.ascii_letters + string.digits + "-_./=,:;\x1b\x07\r\t[]{}\"' \u202e"
    return "~" + "".join(rng.choice(list(alphabet), int(rng.integers(1, 12))))


def _pick(rng, options):
    return options[int(rng.integers(0, len(options)))]


def _word(rng) -> str:
    return "zz" + "".join(rng.choice(list(string.ascii_lowercase), 6))


def _base(command: str, paths: dict) -> list[str]:
    return {
        "train": ["train", "lstm", "--out", paths["out_pt"], "--steps", "1", "--quiet", "--no-valid",
                  "--train", "batch_size=4", *TINY_MODEL, *TINY_DATA],
        "record": ["record", "lstm", "--out", paths["out_h5"], "--quiet", "--max-items", "2", *TINY_MODEL,
                   *TINY_DATA],
        "info": ["info", paths["demo"]],
        "probe": ["probe", paths["demo"], "--label", "depth", "--taps", "layer1/h", "--no-control", "--quiet"],
        "annotate": ["annotate", paths["demo"], "--from", paths["labels"]],
        "open": [paths["demo"]],
    }[command]


def _defects(rng, paths):
    """(command, function(argv) -> argv with one defect)."""
    junk, word = _junk(rng), _word(rng)
    bad_int = _pick(rng, ["abc", "1.5", "", "1e3", "--", "0x10", junk])
    nonpositive = str(-int(rng.integers(0, 1000)))
    set_value = _pick(rng, ["-3", "0", "\"abc\"", "1.5", "[1]", "null", "true", "1e30"])
    train_value = _pick(rng, ["lr=-1", "lr=\"x\"", "optimizer=nesterov", "bptt=0", "clip=-1", "dropout=2",
                              "steps=0", "seed=\"x\"", "keep_checkpoints=5", "threads=0", "device=tpu9",
                              "batch_size=0", "eval_every=-1", "valid_tokens=1", "momentum=-1"])
    bad_file = _pick(rng, [paths["missing"], paths["folder"], paths["text"], paths["truncated"]])
    return [
        (_pick(rng, ["train", "record", "info", "probe", "annotate"]), lambda a: [*a, f"--{word}"]),
        ("train", lambda a: [*a, "--steps", _pick(rng, [bad_int, nonpositive])]),
        ("train", lambda a: [*a, "--seed", bad_int]),
        ("train", lambda a: [*a, "--set", f"{word}=1"]),
        ("train", lambda a: [*a, "--set", f"{_pick(rng, ['hidden_size', 'num_layers', 'embedding_dim'])}={set_value}"]),
        ("train", lambda a: [*a, "--set", _pick(rng, ["vocab_size=3", "dropout=0.5", "hidden_size"])]),
        ("train", lambda a: [*a, "--train", train_value]),
        ("train", lambda a: [*a, "--train", f"{word}=1"]),
        ("train", lambda a: [*a, "--dataset", word]),
        ("train", lambda a: [*a, "--dataset-option", _pick(rng, [f"{word}=1", "tokens=-5", "tokens=\"x\"",
                                                                 "item_length=0", "tokens"])]),
        ("train", lambda a: [a[0], word, *a[2:]]),
        ("train", lambda a: [x if x != paths["out_pt"] else _pick(rng, [paths["folder"], paths["nested"]]) for x in a]),
        ("record", lambda a: [*a, "--batch-size", _pick(rng, [bad_int, nonpositive])]),
        ("record", lambda a: [*a, "--max-items", _pick(rng, [bad_int, nonpositive])]),
        ("record", lambda a: [*a, "--set", f"{word}=1"]),
        ("record", lambda a: [*a, "--set", f"hidden_size={set_value}"]),
        ("record", lambda a: [*a, "--signals", word]),
        ("record", lambda a: [*a, "--split", word]),
        ("record", lambda a: [*a, "--dtype", _pick(rng, ["float64", "int8", junk])]),
        ("record", lambda a: [*a, "--max-size", _pick(rng, ["1K", "10", junk, "-1G"])]),
        ("record", lambda a: [a[0], _pick(rng, [paths["text"], paths["demo"], paths["missing_pt"]]), *a[2:]]),
        ("record", lambda a: [x if x != paths["out_h5"] else _pick(rng, [paths["folder"], paths["nested"]]) for x in a]),
        ("info", lambda a: ["info", bad_file]),
        ("info", lambda a: ["info"]),
        ("probe", lambda a: [x if x != paths["demo"] else bad_file for x in a]),
        ("probe", lambda a: [*a, "--label", _pick(rng, [word, "match_distance", junk])]),
        ("probe", lambda a: [*a, "--taps", _pick(rng, [word, junk])]),
        ("probe", lambda a: [*a, "--shift", _pick(rng, [bad_int, str(int(rng.integers(300, 10**9))),
                                                        str(-int(rng.integers(300, 10**9)))])]),
        ("probe", lambda a: [*a, "--at", _pick(rng, ["first", junk])]),
        ("probe", lambda a: [*a, "--out", _pick(rng, ["t.txt", f"{paths['nested']}.csv", "t"])]),
        ("probe", lambda a: [*a, "--curves"]),
        ("annotate", lambda a: [x if x != paths["labels"] else _pick(rng, [paths["missing"], paths["folder"],
                                                                           paths["bad_rows"], paths["binary"]])
                                for x in a]),
        ("annotate", lambda a: [x if x != paths["demo"] else bad_file for x in a]),
        ("annotate", lambda a: [*a, "--kind", _pick(rng, [f"{word}=numeric", "depth2=ordinal", junk])]),
        ("annotate", lambda a: [*a, "--columns", word]),
        ("annotate", lambda a: [*a, "--level", _pick(rng, ["token", junk])]),
        ("annotate", lambda a: [x if x != paths["labels"] else paths["collision"] for x in a]),
        ("open", lambda a: [*a, "--units", _pick(rng, [junk, "5-2", "0-999999999", "-1", f"{10**12}"])]),
        ("open", lambda a: [*a, "--size", _pick(rng, [junk, "10x10", "99999x99999", "1400"])]),
        ("open", lambda a: [paths["missing"], "--screenshot", "x.png"]),
    ]


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzzcli")
    (root / "folder").mkdir()
    (root / "text.h5").write_text("not a recording\n")
    (root / "truncated.h5").write_bytes(DEMO.read_bytes()[:5000])
    positions = 5569  # the demo's positions: a CSV of the wrong length and one with a clashing name
    (root / "labels.csv").write_text("depth2\n" + "1\n" * 7)
    (root / "bad_rows.csv").write_text("a,b\n1,2\n3\n")
    (root / "binary.csv").write_bytes(b"\xff\xfe\x00garbage\x00\xff")
    (root / "collision.csv").write_text("depth\n" + "x\n" * positions)
    return {k: str(v) for k, v in {
        "demo": DEMO, "out_pt": root / "m.pt", "out_h5": root / "r.h5", "missing": root / "missing.h5",
        "missing_pt": root / "gone" / "m.pt", "folder": root / "folder", "nested": root / "no" / "such" / "x",
        "text": root / "text.h5", "truncated": root / "truncated.h5", "labels": root / "labels.csv",
        "bad_rows": root / "bad_rows.csv", "binary": root / "binary.csv", "collision": root / "collision.csv",
    }.items()}


def test_bad_command_lines_are_one_sentence(paths, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LSTMVIZ_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(SEED)
    demo_before = DEMO.stat().st_mtime_ns
    failures = []
    for i in range(N_CASES):
        defects = _defects(rng, paths)
        command, defect = defects[int(rng.integers(0, len(defects)))]
        argv = defect(_base(command, paths))
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: usage and one error line
            code = exc.code
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if ERROR.match(line)]
        if code not in (1, 2) or len(errors) != 1 or "Traceback" in err or "\x1b" in err:
            failures.append(f"case {i}: {argv!r} -> exit {code}\n{err}")
    assert not failures, "\n".join(failures[:5])
    assert DEMO.stat().st_mtime_ns == demo_before  # annotate never replaced the demo with a bad table
    assert not Path(paths["out_pt"]).exists() and not Path(paths["out_h5"]).exists()
