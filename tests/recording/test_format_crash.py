"""A killed writer leaves nothing under the final name; writing 10M positions stays in bounded memory."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lstmviz.recording import RecordingError, open_recording

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


def _kill_while_writing(final: Path) -> Path:
    proc = subprocess.Popen([sys.executable, "-c", _WRITE_FOREVER, str(final)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line, proc.stderr.read()
        temp = Path(line)
        assert temp.exists() and temp.parent == final.parent and temp != final
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stdout.close()
        proc.stderr.close()
    return temp


def test_sigkill_leaves_no_file_under_the_final_name(tmp_path):
    final = tmp_path / "run.h5"
    temp = _kill_while_writing(final)
    assert not final.exists()
    # the leftover is recognisably unfinished and refused, never mistaken for a recording
    assert temp.exists()
    with pytest.raises(RecordingError):
        open_recording(temp)


def test_sigkill_never_touches_an_existing_file(tmp_path):
    final = tmp_path / "run.h5"
    from lstmviz.recording import RecordingWriter

    with RecordingWriter(final, vocab=["x"]) as w:
        w.add_tap("old", 3)
        w.append_item([0, 0], {"old": np.arange(6).reshape(2, 3)})
    before = final.read_bytes()
    _kill_while_writing(final)
    assert final.read_bytes() == before
    with open_recording(final) as rec:
        assert list(rec.taps) == ["old"] and rec.states("old").tolist() == [[0, 1, 2], [3, 4, 5]]


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
