"""``lstmviz analogy`` (issue 20): neighbours, queries and per-relation accuracy from a table file, a
recording's class means and a checkpoint; every wrong command line is one sentence."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from lstmviz.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "assets" / "demo" / "parens-lstm.h5"


def _tables():
    spec = importlib.util.spec_from_file_location("cli_analogy_tables", ROOT / "tests" / "analysis" / "analogy_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def offsets_csv(tmp_path):
    from lstmviz.analysis.embedding_tables import write_table

    return write_table(_tables().offset_table(n_classes=6), tmp_path / "offsets.csv")


def run(argv, capsys):
    code = main(["analogy", *argv, "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_relations_file_gives_every_methods_accuracy_and_a_table(offsets_csv, tmp_path, capsys):
    relations = tmp_path / "rel.txt"
    relations.write_text(": r0-r1\n" + "".join(f"c{i}_r0 c{i}_r1 c{j}_r0 c{j}_r1\n" for i in range(6) for j in range(6)
                                               if i != j) + ": with an unknown word\nc0_r0 c0_r1 zz c1_r1\n")
    out_table = tmp_path / "acc.csv"
    code, out, err = run([str(offsets_csv), "--relations", str(relations), "--out", str(out_table)], capsys)
    assert code == 0, err
    assert "premises excluded" in out and "REVERSE (ONLY-B)" in out and "skipped" in out
    line = next(line for line in out.splitlines() if line.startswith("r0-r1"))
    assert line.split()[1:3] == ["30", "100.0"]  # 30 questions, 3CosAdd 100 %
    rows = list(csv.DictReader(out_table.open()))
    assert [r["relation"] for r in rows] == ["r0-r1", "with an unknown word", "all"]
    assert float(rows[0]["3cosadd"]) == 1.0 and float(rows[0]["add-opposite"]) == 0.0
    assert float(rows[0]["chance"]) == pytest.approx(1 / (18 - 3)) and rows[0]["exclude_premises"] == "true"


def test_neighbours_and_a_query(offsets_csv, capsys):
    code, out, _ = run([str(offsets_csv), "--neighbours", "c0_r0", "-k", "2", "--query", "c0_r0", "c0_r1", "c3_r0",
                        "--method", "3cosmul"], capsys)
    assert code == 0
    assert "nearest neighbours of c0_r0" in out and len([l for l in out.splitlines() if l.startswith("  +")]) >= 2
    assert "c0_r0 : c0_r1 :: c3_r0 : ?   (3CosMul, premises excluded)" in out
    assert "    1. c3_r1" in out
    code, out, _ = run([str(offsets_csv), "--query", "c0_r0", "c0_r1", "c3_r0", "--no-exclude", "--method", "only-b"],
                       capsys)
    assert "    1. c3_r0" in out and "not excluded" in out  # without exclusion ONLY-B answers b itself


def test_morphology_relations_of_a_vocabulary(tmp_path, capsys):
    words = ["dog", "dogs", "cat", "cats", "cup", "cups", "walk", "walked", "jump", "jumped", "the", "a"]
    rng = np.random.default_rng(0)
    base = {w: rng.normal(size=8) for w in words if not w.endswith(("s", "ed"))}
    plural, past = rng.normal(size=8), rng.normal(size=8)
    path = tmp_path / "vocab.tsv"
    lines = []
    for w in words:
        v = base.get(w)
        if v is None:
            v = base[w[:-1]] + plural if w.endswith("s") else base[w[:-2]] + past
        lines.append("\t".join([w, *map(repr, v.tolist())]))
    path.write_text("\n".join(lines) + "\n")
    code, out, err = run([str(path), "--generate", "morphology", "--method", "3cosadd", "--method", "only-b"], capsys)
    assert code == 0, err
    assert "plural -s" in out and "past -ed" in out and "ONLY-B" in out and "3CosMul" not in out
    assert next(l for l in out.splitlines() if l.startswith("plural -s")).split()[3] == "100.0"


def test_class_means_of_a_recording_with_crossed_relations(tmp_path, capsys):
    path = _tables().write_crossed_recording(tmp_path / "crossed.h5")
    code, out, err = run([str(path), "--tap", "h", "--annotation", "digit", "--by", "shift", "--generate", "crossed"],
                         capsys)
    assert code == 0, err
    assert "class means of h by digit × shift (12 rows x 8)" in out
    assert "shift: left → none" in out
    assert next(l for l in out.splitlines() if l.startswith("all")).split()[2] == "100.0"


def test_a_checkpoint_and_a_recordings_checkpoint_list_their_tables(capsys):
    code, out, _ = run([str(DEMO.with_suffix(".pt")), "--list-tables"], capsys)
    assert code == 0 and "embedding.weight" in out and "(default)" in out and "decoder.weight" in out
    code, out, _ = run([str(DEMO), "--parameter", "decoder.weight", "--neighbours", "("], capsys)
    assert code == 0 and "parens-lstm.pt: decoder.weight (8 rows x 128)" in out


@pytest.mark.parametrize("argv, code, message", [
    (["missing.csv", "--neighbours", "a"], 2, "no such file: missing.csv"),
    (["{csv}"], 2, "nothing to do"),
    (["{csv}", "--neighbours", "nope"], 2, "--neighbours: 'nope' is not in the table"),
    (["{csv}", "--query", "c0_r0", "c0_r1", "zz"], 2, "--query: 'zz' is not in the table"),
    (["{csv}", "--query", "c0_r0", "c0_r1", "c1_r0", "--method", "reverse-add"], 2, "cannot answer (it needs b*)"),
    (["{csv}", "--generate", "morphology"], 2, "no morphological pairs"),
    (["{csv}", "--generate", "crossed"], 2, "class means over two annotations"),
    (["{csv}", "--tap", "h", "--neighbours", "c0_r0"], 2, "--tap reads class means of a recording"),
    (["{csv}", "--parameter", "x", "--neighbours", "c0_r0"], 2, "choose a table of a checkpoint"),
    (["{csv}", "--relations", "nope.txt"], 2, "--relations: no such file"),
    (["{csv}", "--neighbours", "c0_r0", "--out", "t.csv"], 2, "--out writes the accuracy table"),
    (["{csv}", "--generate", "morphology", "--out", "t.json"], 2, "--out must end in .csv or .npy"),
    (["{csv}", "--neighbours", "c0_r0", "-k", "0"], 2, "-k must be at least 1"),
    (["{demo}", "--tap", "layer1/c", "--neighbours", "1"], 2, "class means need both --tap and --annotation"),
    (["{demo}", "--tap", "layer1/c", "--annotation", "match_distance", "--neighbours", "1"], 2,
     "must be a categorical annotation of the recording: depth, token_class, max_depth; got 'match_distance'"),
    (["{demo}", "--tap", "nope", "--annotation", "depth", "--neighbours", "1"], 2, "the recording has no tap 'nope'"),
    (["{demo}", "--parameter", "nope", "--neighbours", "1"], 1, "no table 'nope'; it offers embedding.weight"),
    (["bad.pt", "--neighbours", "1"], 1, "not a PyTorch checkpoint"),
    (["bad.csv", "--neighbours", "1"], 1, "line 2 has 2 fields"),
])
def test_a_wrong_analogy_command_line_is_one_sentence(argv, code, message, offsets_csv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.pt").write_bytes(b"nope")
    (tmp_path / "bad.csv").write_text("a,1,2\nb,1\n")
    argv = [a.format(csv=offsets_csv, demo=DEMO) for a in argv]
    got, _out, err = run(argv, capsys)
    lines = [l for l in err.splitlines() if l.strip() and not l.startswith(("usage:", "  "))]
    assert got == code and "Traceback" not in err and len(lines) == 1, err
    assert message in lines[0]


def test_hostile_names_are_printed_without_terminal_escapes(tmp_path, capsys):
    path = tmp_path / "hostile.csv"
    path.write_text("\x1b[31mred\x1b[0m,1,0\nplain,0.9,0.1\nother,0,1\n")
    code, out, _ = run([str(path), "--neighbours", "plain"], capsys)
    assert code == 0 and "\x1b" not in out and "red" in out
