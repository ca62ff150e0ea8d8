"""``torchrun -m lstmviz record``: 2 processes record the same recording as one; a rank killed mid-way leaves no
logical file, and running the command again records only the missing shard; a changed shard is recorded again."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import h5py
import numpy as np
import pytest

from lstmviz.recording import open_recording
from lstmviz.recording.shards import checksum_path, read_shard_table, shard_path

RECORD = ["record", "lstm", "--dataset", "parens", "--set", "hidden_size=6", "--set", "num_layers=2",
          "--dataset-option", "tokens=400", "--dataset-option", "item_length=30", "--max-items", "6",
          "--batch-size", "1", "--dtype", "float32", "--quiet"]


def run(args, cwd, env=None, launcher=()):
    environ = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, *launcher, "-m", "lstmviz", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=300)


def torchrun(args, cwd, n=2, env=None):
    return run(args, cwd, env, ("-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}"))


def same_values(expected, actual) -> None:
    """Every dataset but the provenance holds the same values (taps, offsets, tokens, annotations, labels)."""
    def read(path):
        out = {}
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: out.__setitem__(name, obj[()])
                         if isinstance(obj, h5py.Dataset) and name != "provenance" else None)
        return out

    a, b = read(expected), read(actual)
    assert sorted(a) == sorted(b) and any(name.startswith("taps/") for name in a)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    with open_recording(expected) as x, open_recording(actual) as y:
        for tap in x.taps:
            np.testing.assert_array_equal(x.states(tap), y.states(tap))


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    folder = tmp_path_factory.mktemp("single")
    done = run([*RECORD, "--out", "one.h5"], folder)
    assert done.returncode == 0, done.stderr
    return folder / "one.h5"


def identity(path):
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_size


def test_two_processes_record_the_recording_of_one_and_it_opens_in_the_window(single, tmp_path):
    done = torchrun([*RECORD, "--out", "run.h5"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[rank 0/2]: wrote" in done.stderr
    assert [e.items for e in read_shard_table(tmp_path / "run.h5")] == [(0, 3), (3, 6)]
    same_values(single, tmp_path / "run.h5")
    with open_recording(tmp_path / "run.h5") as rec:
        assert rec.provenance["engine"] == "lstm" and rec.provenance["sharded"]["ranks"] == 2
    shown = run(["--screenshot", "shot.png", "run.h5"], tmp_path, {"QT_QPA_PLATFORM": "offscreen"})
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert (tmp_path / "shot.png").stat().st_size > 10_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_killed_rank_leaves_no_logical_file_and_the_rerun_records_only_its_shard(single, tmp_path):
    # launched by hand with torchrun's environment, so that nothing stops rank 0 when rank 1 dies: it finishes
    # its shard and must then give up waiting with a sentence instead of hanging
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": "2",
           "LSTMVIZ_DIST_TIMEOUT": "20", "_LSTMVIZ_TEST_CRASH": "1:1", "OMP_NUM_THREADS": "1"}
    ranks = [subprocess.Popen([sys.executable, "-m", "lstmviz", *RECORD, "--out", "run.h5"], cwd=tmp_path,
                              env={**os.environ, **env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    outputs = [p.communicate(timeout=300) for p in ranks]
    assert ranks[1].returncode == 1  # the hook: os._exit(1) after its first batch
    assert ranks[0].returncode == 1, outputs[0][1]
    assert "a process died or hangs. Run the same command again to resume" in outputs[0][1]
    first, second = shard_path(tmp_path / "run.h5", 0, 2), shard_path(tmp_path / "run.h5", 1, 2)
    assert not (tmp_path / "run.h5").exists()
    assert first.exists() and checksum_path(first).exists()
    assert not second.exists() and not checksum_path(second).exists()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".run.h5")]
    kept = identity(first)

    done = torchrun([*RECORD, "--out", "run.h5"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "kept shard-00000-of-00002.h5 (items 0..2; its checksum and settings match)" in done.stderr
    assert identity(first) == kept  # not written again
    same_values(single, tmp_path / "run.h5")

    with h5py.File(second, "r+") as f:  # a changed shard is never silently reused
        f["taps/layer1/h"][0, 0] += 1.0
    redone = identity(second)
    done = torchrun([*RECORD, "--out", "run.h5"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert ("recording shard-00001-of-00002.h5 again: its sha256 differs from its checksum file "
            "shard-00001-of-00002.h5.sha256") in done.stderr
    assert "removed the old logical file run.h5" in done.stderr
    assert identity(first) == kept and identity(second) != redone
    same_values(single, tmp_path / "run.h5")

    # other settings (--taps: torchrun's own parser takes --signals for its --signals-to-handle)
    done = torchrun([*RECORD, "--out", "run.h5", "--taps", "layer0/*"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "recording shard-00000-of-00002.h5 again: it was recorded with other settings: signals" in done.stderr
    with open_recording(tmp_path / "run.h5") as rec:
        assert all(tap.startswith("layer0/") for tap in rec.taps)


def test_more_processes_than_items_is_refused_in_a_sentence(tmp_path):
    args = [a if a != "6" else "1" for a in RECORD]  # --max-items 1
    done = torchrun([*args, "--out", "run.h5"], tmp_path)
    assert done.returncode != 0
    assert "lstmviz record: error: 2 processes for 1 items: each process records at least one item" in done.stderr
    assert not (tmp_path / "run.h5").exists()
