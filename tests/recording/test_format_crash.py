"""A killed writer leaves nothing under the final name; writing 10M positions stays in bounded memory."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lstmviz.memory import format_bytes
from lstmviz.recording import RecordingError, RecordingWriter, open_recording
from lstmviz.recording.writer import HOST_TAG, remove_stale_temp_files

# Writes items, flushes them into the temporary file, reports its name, then keeps writing until killed.
_WRITE_FOREVER = """
import sys
import numpy as np
from lstmviz.recording import RecordingWriter

w = RecordingWriter(sys.argv[1], vocab=["a", "b"], dtype="float16")
w.add_tap("h", 8)
tokens, states = np.zeros(100, int), np.ones((100, 8), np.float32)
for _ in range(50):
    w.append_item(tokens, {"h": states})
w.flush()
print(w.temp_path, flush=True)
for _ in range(200_000):   # bounded, in case the parent is slow to kill
    w.append_item(tokens, {"h": states})
sys.stdin.read()           # never reach close(): only the kill ends this process
"""


@contextlib.contextmanager
def _live_writer(final: Path):
    """A writer process that has flushed items into its temporary file and is still writing; yields them."""
    proc = subprocess.Popen([sys.executable, "-c", _WRITE_FOREVER, str(final)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line, proc.stderr.read()
        temp = Path(line)
        assert temp.exists() and temp.parent == final.parent and temp != final
        yield proc, temp
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stdout.close()
        proc.stderr.close()


def _kill_while_writing(final: Path) -> Path:
    with _live_writer(final) as (proc, temp):
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    return temp


def test_sigkill_leaves_no_file_under_the_final_name(tmp_path):
    final = tmp_path / "run.h5"
    temp = _kill_while_writing(final)
    assert not final.exists()
    # the leftover is recognisably unfinished and refused, never mistaken for a recording
    assert temp.exists()
    with pytest.raises(RecordingError) as info:
        open_recording(temp)
    pid = int(temp.name.split(".w", 1)[1].split(".", 1)[0])
    assert info.value.problem == (
        f"an unfinished recording: the temporary file of a recording of 'run.h5' by process {pid}, which was "
        f"killed or crashed before it finished; delete it and record again (the next recording of 'run.h5' "
        f"removes it)")


def test_sigkill_never_touches_an_existing_file(tmp_path):
    final = tmp_path / "run.h5"
    with RecordingWriter(final, vocab=["x"]) as w:
        w.add_tap("old", 3)
        w.append_item([0, 0], {"old": np.arange(6).reshape(2, 3)})
    before = final.read_bytes()
    _kill_while_writing(final)
    assert final.read_bytes() == before
    with open_recording(final) as rec:
        assert list(rec.taps) == ["old"] and rec.states("old").tolist() == [[0, 1, 2], [3, 4, 5]]


# A writer of the same file, as `lstmviz record` would start one; logging is not configured (as in the CLI).
_WRITE_ONE = """
import sys
import numpy as np
from lstmviz.recording import RecordingWriter

with RecordingWriter(sys.argv[1], vocab=["a"]) as w:
    w.add_tap("h", 2)
    w.append_item([0], {"h": np.ones((1, 2))})
"""


def test_the_next_writer_removes_a_killed_writers_temporary_file_and_says_so(tmp_path):
    final = tmp_path / "run.h5"
    temp = _kill_while_writing(final)
    size = temp.stat().st_size
    out = subprocess.run([sys.executable, "-c", _WRITE_ONE, str(final)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines() == [
        f"removed 1 unfinished recording of {final} left by killed writers: {temp.name} ({format_bytes(size)})"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]
    with open_recording(final) as rec:
        assert rec.states("h").tolist() == [[1.0, 1.0]]


def test_a_live_writers_temporary_file_is_never_removed(tmp_path):
    final = tmp_path / "run.h5"
    with _live_writer(final) as (proc, temp):
        with pytest.raises(RecordingError, match=f"that process {proc.pid} is still writing; open 'run.h5' when"):
            open_recording(temp)
        with RecordingWriter(final, vocab=["a"]) as w:  # a second writer of the same file, meanwhile
            w.add_tap("h", 2)
            w.append_item([0], {"h": np.zeros((1, 2))})
        assert temp.exists() and proc.poll() is None


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_temporary_files_whose_writer_cannot_be_told_are_kept(tmp_path, caplog):
    pid = _dead_pid()
    kept = [
        tmp_path / ".run.h5.0cd755ce.tmp.h5",  # an older lstmviz's name: no process id
        tmp_path / f".run.h5.w{pid}.another-machine.0cd755ce.tmp.h5",  # a writer on another machine
        tmp_path / f".other.h5.w{pid}.{HOST_TAG}.0cd755ce.tmp.h5",  # a writer of another file
    ]
    for path in kept:
        path.write_bytes(b"x")
    stale = tmp_path / f".run.h5.w{pid}.{HOST_TAG}.0cd755ce.tmp.h5"
    stale.write_bytes(b"x")
    with caplog.at_level(logging.WARNING, logger="lstmviz.recording.writer"):
        assert remove_stale_temp_files(tmp_path / "run.h5") == [stale]
    assert all(path.exists() for path in kept) and not stale.exists()
    assert [r.getMessage() for r in caplog.records] == [
        f"removed 1 unfinished recording of {tmp_path / 'run.h5'} left by killed writers: {stale.name} (1 bytes)"]


def test_an_unfinished_file_without_a_temporary_name(tmp_path):
    """HDF5's open-for-write mark on a file renamed by the user: still "unfinished", not "damaged"."""
    temp = _kill_while_writing(tmp_path / "run.h5")
    renamed = tmp_path / "copy.h5"
    os.rename(temp, renamed)
    with pytest.raises(RecordingError, match="an unfinished recording, or a file another program is still writing"):
        open_recording(renamed)


_WRITE_10M = """
import json, resource, sys
import numpy as np
from lstmviz.recording import RecordingWriter

def peak_mb():
    # VmHWM is this program's own peak; ru_maxrss also keeps the peak of the process before exec,
    # i.e. of the forked copy of a large parent (the test runner)
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

n_positions, item = 10_000_000, 1000
tokens = np.arange(item) % 100
states = np.random.default_rng(0).standard_normal((item, 4)).astype(np.float32)
w = RecordingWriter(sys.argv[1], vocab=[str(i) for i in range(100)], dtype="float16")
w.add_tap("layer0/h", 4)
w.append_item(tokens, {"layer0/h": states})
w.flush()
baseline = peak_mb()   # interpreter, numpy, h5py and one item
for _ in range(n_positions // item - 1):
    w.append_item(tokens, {"layer0/h": states})
w.close()
print(json.dumps({"baseline_mb": baseline, "peak_mb": peak_mb(), "positions": w.n_positions}))
"""


def test_writing_10m_positions_stays_in_bounded_memory(tmp_path):
    path = tmp_path / "big.h5"
    out = subprocess.run([sys.executable, "-c", _WRITE_10M, str(path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["positions"] == 10_000_000
    assert report["peak_mb"] < 1024
    # the data written is 10M x (4 B token + 8 B tap) = 120 MB; buffering it all would add >= 240 MB
    assert report["peak_mb"] - report["baseline_mb"] < 150, report
    with open_recording(path) as rec:
        assert rec.n_positions == 10_000_000 and rec.n_items == 10_000
        last = rec.item_states("layer0/h", rec.n_items - 1)
        assert np.array_equal(last, np.random.default_rng(0).standard_normal((1000, 4)).astype(np.float16).astype(np.float32))
    path.unlink()
