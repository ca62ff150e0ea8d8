"""Ctrl-C always stops a command: exit 130, one line "interrupted", the previous output untouched
(issue 10.16). The signal is sent when a marker line appears (no sleeps): during the start-up imports
(``python -X importtime`` reports each module as it is imported) and once recording has started
(the first progress line)."""

import os
import signal
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")

RECORD = ["record", "lstm", "--dataset-option", "tokens=100000"]


def _importing_torch(line: str) -> bool:
    """A line of ``-X importtime`` saying a torch submodule was imported: torch itself is not yet."""
    return line.startswith("import time:") and line.rsplit("|", 1)[-1].strip().startswith("torch.")


def _run_until(args, marker, *, ignore_sigint=False):
    """Start ``python -X importtime -m lstmviz.cli ARGS``, send SIGINT when a stderr line contains
    ``marker`` (or ``marker(line)`` is true); returns (exit code, stderr lines after the import report)."""
    def ignore():
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job of a non-interactive shell

    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "lstmviz.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ignore if ignore_sigint else None)
    sent = False
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if (marker(line) if callable(marker) else marker in line):
            proc.send_signal(signal.SIGINT)
            sent = True
            break
    lines += proc.stderr.readlines()
    proc.stdout.read()
    code = proc.wait(timeout=120)
    assert sent, "".join(lines[-20:])
    return code, [line.rstrip("\n") for line in lines if not line.startswith("import time:")]


@pytest.mark.parametrize("marker, ignore_sigint", [
    (_importing_torch, False),  # inside `import torch`
    ("recording: 0/", False),  # the recording has started
    ("recording: 0/", True),  # started with SIGINT ignored: Ctrl-C must still stop it
])
def test_ctrl_c_stops_the_run_and_keeps_the_previous_file(tmp_path, marker, ignore_sigint):
    out = tmp_path / "states.h5"
    previous = b"the previous recording, byte for byte"
    out.write_bytes(previous)
    code, err = _run_until([*RECORD, "--out", str(out)], marker, ignore_sigint=ignore_sigint)
    assert code == 130, err
    assert err[-1] == "lstmviz: interrupted" and not any("Traceback" in line for line in err), err
    assert out.read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["states.h5"]  # no temporary file left
