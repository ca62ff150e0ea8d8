"""Backward compatibility: the committed v1 file keeps loading with its values; the migration mechanism works.

tests/data/recording_v1.h5 was written once by tests/data/make_fixtures.py and is never regenerated.
The expected values below are written out independently of that script.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from lstmviz.recording import RecordingError, migrate, open_recording, summarize
from lstmviz.recording import format as fmt
from lstmviz.recording import migrations

V1 = Path(__file__).resolve().parents[1] / "data" / "recording_v1.h5"


def test_v1_fixture_is_small_and_committed():
    assert V1.exists() and V1.stat().st_size < 200_000
    assert (V1.parent / "make_fixtures.py").exists()


def _check_v1(rec) -> None:
    p = np.arange(13)
    assert rec.format_version == 1
    assert rec.item_offsets.tolist() == [0, 3, 8, 9, 13]
    assert rec.axis_offsets("half").tolist() == [0, 2, 5, 6, 8]
    assert rec.vocab == ["<pad>", "(", ")", "a", "ü", "日本語", 'é—"x"']
    assert rec.token_ids(0, 13).tolist() == ((p * 5) % 7).tolist()
    assert rec.tokens(0, 3) == ["<pad>", "日本語", "a"]
    assert list(rec.taps) == ["layer0/h", "layer0/c", "pool"]
    h, c = rec.taps["layer0/h"], rec.taps["layer0/c"]
    assert (h.units, h.dtype, h.axis, h.layer, h.signal, h.description) == (6, "float32", "positions", 0, "h", "hidden state")
    assert (c.dtype, c.signal, c.description) == ("float16", "c", "cell state")
    assert (rec.taps["pool"].axis, rec.taps["pool"].layer, rec.taps["pool"].units) == ("half", None, 2)
    u = np.arange(6)
    assert np.array_equal(rec.states("layer0/h"), (p[:, None] * 10 + u) / 64.0 - 1.0)
    assert np.array_equal(rec.states("layer0/c"), (p[:, None] - u) / 8.0)
    assert np.array_equal(rec.states("pool"), np.arange(8)[:, None] * 2.0 + np.arange(2))
    assert np.array_equal(rec.item_states("layer0/h", 1, units=[5, 0]), ((p[3:8, None] * 10 + [5, 0]) / 64.0 - 1.0))
    assert rec.item_of(8) == 2 and rec.item_range(3, "half") == (6, 8)
    assert rec.annotations["pos"].labels == ["open", "close", "other"]
    assert rec.annotations["pos"].description == "bracket role"
    assert rec.annotation("pos").tolist() == (p % 4 - 1).tolist()
    depth = rec.annotation("depth")
    assert np.isnan(depth[4]) and np.array_equal(np.delete(depth, 4), np.delete(p % 3, 4).astype(float))
    assert (rec.annotations["source"].level, rec.annotations["source"].labels) == ("item", ["train", "dev-ü"])
    assert rec.annotation("source").tolist() == [0, 1, -1, 0]
    assert rec.annotation("ratio").tolist() == [0.6, 1.0, 0.2, 0.8]
    prov = rec.provenance
    assert prov["engine"] == "lstm" and prov["split"] == "test" and prov["dataset"] == "parens"
    assert prov["config"]["nested"] == {"list": [1, 2, {"none": None}], "ü": "ß"}
    assert prov["sha256"] == "0123456789abcdef" * 4
    assert prov["versions"]["torch"] == "2.13.0" and "h5py" in prov["versions"] and "created" in prov


def test_v1_fixture_loads_with_its_values():
    with open_recording(V1) as rec:
        _check_v1(rec)
        assert "format version 1" in summarize(rec)


def _fake_v2(monkeypatch):
    """Pretend the format moved to v2 (a renamed /derived description, a new root attribute)."""

    def v1_to_v2(f: h5py.File) -> None:
        f.attrs["units_total"] = sum(f[fmt.tap_path(n)].shape[1] for n in f[fmt.TAPS].attrs[fmt.ORDER_ATTR])
        f.attrs[fmt.VERSION_ATTR] = 2

    monkeypatch.setattr(fmt, "FORMAT_VERSION", 2)
    monkeypatch.setitem(migrations.MIGRATIONS, 1, v1_to_v2)


def test_read_time_upgrade_leaves_the_file_alone(tmp_path, monkeypatch):
    path = tmp_path / "v1.h5"
    shutil.copyfile(V1, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    _fake_v2(monkeypatch)
    monkeypatch.setattr(migrations, "_OVERLAY_COPY_BYTES", 64)  # map the taps as virtual datasets
    with open_recording(path) as rec:
        _check_v1(rec)  # the values come through the upgraded overlay
        assert rec._view.attrs["units_total"] == 14
        assert rec._view["taps/layer0/h"].is_virtual
        assert "upgraded to 2 on read" in summarize(rec)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_migrate_rewrites_the_file_atomically(tmp_path, monkeypatch):
    path = tmp_path / "v1.h5"
    shutil.copyfile(V1, path)
    _fake_v2(monkeypatch)
    assert migrate(path) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["v1.h5"]  # no temporary copy left
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == 2 and f.attrs["units_total"] == 14
    with open_recording(path) as rec:
        assert rec.format_version == 2
        assert np.array_equal(rec.states("layer0/c")[:, 0], np.arange(13) / 8.0)
    assert migrate(path) == 2  # already current: nothing to do


def test_failed_migration_leaves_the_original(tmp_path, monkeypatch):
    path = tmp_path / "v1.h5"
    shutil.copyfile(V1, path)
    before = path.read_bytes()

    def broken(f):
        f.attrs["half_done"] = True
        raise RuntimeError("bug in the upgrade")

    monkeypatch.setattr(fmt, "FORMAT_VERSION", 2)
    monkeypatch.setitem(migrations.MIGRATIONS, 1, broken)
    with pytest.raises(RuntimeError, match="bug in the upgrade"):
        migrate(path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["v1.h5"]


def test_a_version_without_a_migration_path_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "v1.h5"
    shutil.copyfile(V1, path)
    monkeypatch.setattr(fmt, "FORMAT_VERSION", 3)
    monkeypatch.setitem(migrations.MIGRATIONS, 2, lambda f: None)  # 2 -> 3 exists, 1 -> 2 does not
    with pytest.raises(RecordingError, match=r"unknown format version 1 \(this lstmviz reads versions 2 to 3\)"):
        open_recording(path)


def test_migrate_an_open_writable_file(tmp_path, monkeypatch):
    path = tmp_path / "v1.h5"
    shutil.copyfile(V1, path)
    _fake_v2(monkeypatch)
    with h5py.File(path, "r") as f, pytest.raises(ValueError, match="read-only"):
        migrate(f)
    with h5py.File(path, "r+") as f:
        assert migrate(f) == 2
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == 2
