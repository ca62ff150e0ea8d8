"""Where caches live, how they are keyed to a recording, and how they are written."""

import os
import time

import numpy as np
import pytest

from lstmviz.analysis import cache
from lstmviz.recording import open_recording


@pytest.fixture
def recording_path(write_recording):
    return write_recording([np.zeros((3, 2)), np.ones((4, 2))])


def test_env_var_gives_one_directory_per_recording(recording_path, tmp_path, monkeypatch, cache_dir):
    d = cache.cache_dir_for(recording_path)
    assert d.parent == cache_dir and d.is_dir()
    assert d.name.startswith("rec.h5-")
    assert cache.cache_dir_for(str(recording_path)) == d
    other = tmp_path / "sub" / "rec.h5"  # same name, other folder: another cache
    assert cache.cache_dir_for(other) != d
    monkeypatch.chdir(recording_path.parent)
    assert cache.cache_dir_for("rec.h5") == d  # relative paths are made absolute


def test_beside_the_recording_when_its_folder_is_writable(recording_path, monkeypatch):
    monkeypatch.delenv(cache.CACHE_ENV)
    d = cache.cache_dir_for(recording_path)
    assert d == recording_path.with_name("rec.h5.lstmviz-cache") and d.is_dir()


def test_user_cache_when_the_folder_beside_cannot_be_used(recording_path, tmp_path, monkeypatch):
    monkeypatch.delenv(cache.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    recording_path.with_name("rec.h5.lstmviz-cache").write_text("a file where the folder would go")
    d = cache.cache_dir_for(recording_path)
    assert d.parent == tmp_path / "xdg" / "lstmviz" and d.is_dir() and d.name.startswith("rec.h5-")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir_for(recording_path).parent == tmp_path / "home" / ".cache" / "lstmviz"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_user_cache_when_the_recording_folder_is_read_only(recording_path, tmp_path, monkeypatch):
    monkeypatch.delenv(cache.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    folder = recording_path.parent
    os.chmod(folder, 0o555)
    try:
        d = cache.cache_dir_for(recording_path)
    finally:
        os.chmod(folder, 0o755)
    assert d.parent == tmp_path / "xdg" / "lstmviz"


def test_fingerprint_changes_with_the_file(recording_path, write_recording):
    with open_recording(recording_path) as rec:
        a = cache.recording_fingerprint(rec)
        assert cache.recording_fingerprint(rec) == a
        st = os.stat(recording_path)
        os.utime(recording_path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
        assert cache.recording_fingerprint(rec) != a
    time.sleep(1.1)  # a new 'created' time (the writer stores seconds) even if size and mtime matched
    path = write_recording([np.zeros((3, 2)), np.ones((4, 2))])
    with open_recording(path) as rec:
        b = cache.recording_fingerprint(rec)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime as before
    with open_recording(path) as rec:
        assert cache.recording_fingerprint(rec) not in (a, b)


def test_atomic_path(tmp_path):
    final = tmp_path / "x.bin"
    with cache.atomic_path(final) as temp:
        assert temp.parent == final.parent and temp != final
        temp.write_bytes(b"new")
        assert not final.exists()
    assert final.read_bytes() == b"new"
    with pytest.raises(RuntimeError), cache.atomic_path(final) as temp:
        temp.write_bytes(b"half")
        raise RuntimeError("crash while writing")
    assert final.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.bin"]


def test_discard_and_stale_temps(tmp_path):
    cache.discard(tmp_path / "missing")  # no error
    old = tmp_path / ".index-a.h5.1234abcd.tmp"
    fresh = tmp_path / ".index-b.h5.5678abcd.tmp"
    kept = tmp_path / "index-c.h5"
    for p in (old, fresh, kept):
        p.write_bytes(b"x")
    past = time.time() - 2 * cache.STALE_TEMP_SECONDS
    os.utime(old, (past, past))
    os.utime(kept, (past, past))
    cache.remove_stale_temps(tmp_path)
    assert not old.exists() and fresh.exists() and kept.exists()


def test_cache_names_are_safe_and_distinct():
    a = cache.cache_name("index", "layer0/h", "raw", 0.5, suffix=".h5")
    assert "/" not in a and a.startswith("index-layer0_h-raw-0.5-") and a.endswith(".h5")
    assert cache.cache_name("index", "layer0/h", "raw", 0.5, suffix=".h5") == a
    assert cache.cache_name("index", "layer0/h", "raw", 0.5000001, suffix=".h5") != a
    assert cache.cache_name("index", "layer0_h", "raw", 0.5, suffix=".h5") != a
