"""`lstmviz index` and `lstmviz match` on one recording and over shards (issue 21)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))
import shard_corpus as sc  # noqa: E402

from lstmviz.analysis import shard_exec  # noqa: E402
from lstmviz.cli import main  # noqa: E402


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LSTMVIZ_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return sc.write_corpus(tmp_path_factory.mktemp("cli"), dtype="float16")


@pytest.fixture
def inline(monkeypatch):
    """Run the per-shard tasks in this process (the backends have tests of their own)."""
    monkeypatch.setattr(shard_exec, "make_backend", lambda **kw: shard_exec.InlineBackend())


def test_match_over_shards_writes_the_single_files_matches(corpus, tmp_path, inline, capsys):
    single, shards = corpus
    logical = sc.write_logical(single, shards, shards[0].parent / "logical-cli.h5")
    args = ["--tap", "h", "--transform", "zscore", "--threshold", "0.5", "--units", "1,-2,5", "-k", "30",
            "--mode", "scored", "--quiet"]
    assert main(["match", str(single), *args, "--out", str(tmp_path / "one.csv")]) == 0
    assert main(["match", *map(str, shards), *args, "--out", str(tmp_path / "shards.csv")]) == 0
    assert main(["match", str(logical), *args, "--out", str(tmp_path / "logical.csv")]) == 0
    out = capsys.readouterr().out
    assert "30 matches of 3 units in 4 shards" in out
    one = (tmp_path / "one.csv").read_text()
    assert one.count("\n") == 31
    assert (tmp_path / "shards.csv").read_text() == one
    assert (tmp_path / "logical.csv").read_text() == one


def test_index_builds_every_shards_index_on_local_processes(corpus, cache_dir, capsys):
    _, shards = corpus
    assert main(["index", *map(str, shards), "--tap", "h", "--processes", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "indexed h (raw >= 0.3) in 4 shards on processes" in out
    for path in shards:
        assert f"{path.resolve()}: items" in out
    assert len(list(cache_dir.glob("*/index-h-*.h5"))) == len(shards)


@pytest.mark.parametrize("args, message", [
    (["--units", "1,x"], "--units must be unit numbers separated by commas"),
    (["--units", "1,24"], r"unit 24 is outside 0\.\.23 \(the tap has 24 units\)"),
    (["--units", "3,3"], "3 is given twice"),
    (["--units", "1", "--tap", "c"], "the recording has no tap 'c'; it has h"),
    (["--units", "1", "--transform", "tanh", "--threshold", "1.5"], "--threshold: A threshold in tanh space"),
    (["--units", "1", "--out", "m.txt"], "--out must end in .csv or .npy"),
    (["--units", "1", "--cap", "0"], "--cap must be at least 1"),
    (["--units", "1", "--processes", "0"], "--processes must be at least 1"),
])
def test_bad_options_are_named(corpus, inline, capsys, args, message):
    single, _ = corpus
    argv = ["match", str(single), "--tap", "h", *args]
    if "--tap" in args:
        argv = ["match", str(single), *args]
    assert main(argv) == 2
    assert re.search(message, capsys.readouterr().err)


def test_a_missing_file_and_a_changed_shard_are_named(tmp_path, inline, capsys):
    assert main(["match", str(tmp_path / "nope.h5"), "--tap", "h", "--units", "1"]) == 2
    assert "no such file" in capsys.readouterr().err
    single, shards = sc.write_corpus(tmp_path / "c")
    logical = sc.write_logical(single, shards, tmp_path / "c" / "logical.h5")
    sc.write(shards[3], sc.corpus(3)[:5])
    assert main(["index", str(logical), "--tap", "h", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "shard3.h5: its sha256 is" in err and "changed or replaced after it was recorded" in err
