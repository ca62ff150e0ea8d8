"""A damaged HDF5 global heap (where the texts live) is refused before HDF5 reads it, instead of hanging."""

from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import pytest

from lstmviz.recording import RecordingError, RecordingWriter, open_recording


def _write(path):
    with RecordingWriter(path, vocab=["a", "GCOL\x01 in a token", "c"], provenance={"x": "GCOL"}) as w:
        w.add_tap("h", 4)
        for n in (3, 5):
            w.append_item(np.arange(n) % 3, {"h": np.full((n, 4), 4.5)})
    return path


def _free_space_entry(data: bytes) -> int:
    """The byte offset of the free-space entry (object 0) of the first global heap collection."""
    at = data.index(b"GCOL\x01\x00\x00\x00")
    (size,) = struct.unpack_from("<Q", data, at + 8)
    p = at + 16
    while True:
        index, = struct.unpack_from("<H", data, p)
        (n,) = struct.unpack_from("<Q", data, p + 8)
        if index == 0:
            return p
        p += 16 + (n + 7) // 8 * 8
        assert p < at + size


def _open_in_a_process(path) -> subprocess.CompletedProcess:
    code = ("import sys\nfrom lstmviz.recording import open_recording, RecordingError\n"
            "try:\n    open_recording(sys.argv[1])\nexcept RecordingError as e:\n    print(e.problem)\n")
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("size,fragment", [(0, "holds an empty free-space entry"),
                                           (1 << 40, "runs past the end of its 4,096-byte collection")])
def test_a_damaged_free_space_entry_is_refused_without_hanging(tmp_path, size, fragment):
    path = _write(tmp_path / "r.h5")
    data = bytearray(path.read_bytes())
    struct.pack_into("<Q", data, _free_space_entry(bytes(data)) + 8, size)
    path.write_bytes(bytes(data))
    try:  # in a process: without the check HDF5 never returns, and the test must fail, not hang
        result = _open_in_a_process(path)
    except subprocess.TimeoutExpired:
        pytest.fail("opening the file did not finish (HDF5 loops on the damaged heap)")
    assert "the HDF5 global heap" in result.stdout and fragment in result.stdout, result.stdout + result.stderr


def test_texts_that_look_like_a_heap_signature_are_fine(tmp_path):
    """(A text cannot hold the whole signature: HDF5 strings have no NUL bytes.)"""
    with open_recording(_write(tmp_path / "r.h5")) as rec:
        assert rec.vocab[1].startswith("GCOL") and rec.provenance["x"] == "GCOL"


def test_tap_values_that_look_like_a_damaged_heap_are_not_searched(tmp_path):
    path = tmp_path / "r.h5"
    fake = np.frombuffer(b"GCOL\x01\x00\x00\x00" + struct.pack("<Q", 4096) + b"\x00" * 16, dtype=np.float32)
    with RecordingWriter(path) as w:  # the bytes of a collection whose free space is empty, as tap values
        w.add_tap("h", len(fake))
        w.append_item([0], {"h": fake[None, :].repeat(1, axis=0)})
        w.append_item([0] * 300, {"h": np.zeros((300, len(fake)))})
    assert b"GCOL\x01\x00\x00\x00" + struct.pack("<Q", 4096) + b"\x00" * 16 in path.read_bytes()
    with open_recording(path) as rec:
        assert rec.states("h", 0, 1).tobytes() == fake.tobytes()


def test_the_refusal_is_a_recording_error(tmp_path):
    path = _write(tmp_path / "r.h5")
    data = bytearray(path.read_bytes())
    struct.pack_into("<Q", data, _free_space_entry(bytes(data)) + 8, 0)
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match="HDF5 would never finish reading it"):
        open_recording(path)
