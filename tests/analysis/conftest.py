"""Fixtures shared by the analysis tests."""

import numpy as np
import pytest

from lstmviz.recording import RecordingWriter


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    """Derived caches (statistics, match indices) go to a fresh directory per test, never beside the
    repository's files or into the user's ~/.cache."""
    path = tmp_path / "lstmviz-cache"
    monkeypatch.setenv("LSTMVIZ_CACHE_DIR", str(path))
    return path


@pytest.fixture
def write_recording(tmp_path):
    """``write_recording(items, dtype="float32", name="rec.h5", tap="h") -> Path``: a recording with one
    tap whose items hold the given ``[positions, units]`` arrays (token id 1 everywhere)."""

    def write(items, dtype="float32", name="rec.h5", tap="h"):
        path = tmp_path / name
        units = np.asarray(items[0]).shape[1]
        with RecordingWriter(path, vocab=["<pad>", "x"], dtype=dtype) as w:
            w.add_tap(tap, units)
            for values in items:
                values = np.asarray(values, dtype=np.float32)
                w.append_item(np.ones(len(values), np.int64), {tap: values})
        return path

    return write
