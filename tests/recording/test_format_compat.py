"""Backward compatibility: the committed v1, v2 and v3 files keep loading with their values; migrations work.

tests/data/recording_v1.h5, recording_v2.h5 and recording_v3.h5 were written once by tests/data/make_fixtures.py and
are never regenerated. The expected values below are written out independently of that script.
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
from lstmviz.recording import upgrades

V1 = Path(__file__).resolve().parents[1] / "data" / "recording_v1.h5"
V2 = Path(__file__).resolve().parents[1] / "data" / "recording_v2.h5"


def test_fixtures_are_small_and_committed():
    for path in (V1, V2):
        assert path.exists() and path.stat().st_size < 200_000
    assert (V1.parent / "make_fixtures.py").exists()


def _check_v1(rec, version: int = 1) -> None:
    p = np.arange(13)
    assert rec.format_version == version
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


def test_v1_fixture_loads_with_its_values_through_the_migrations_to_v3():
    digest = hashlib.sha256(V1.read_bytes()).hexdigest()
    with h5py.File(V1, "r") as f:
        assert f.attrs["format_version"] == 1 and "checkpoints" not in f
    with open_recording(V1) as rec:
        _check_v1(rec)
        assert rec._view.attrs["format_version"] == 3  # read through the upgraded overlay (1 -> 2 -> 3)
        assert [rec.axis_geometry(a).kind for a in rec.axes] == ["tokens", "tokens"]
        assert list(rec._view["checkpoints"].attrs["order"]) == [] and rec._view["checkpoints"].attrs["main"] == ""
        assert rec.checkpoints == [] and rec.checkpoint is None  # the states of one model
        with pytest.raises(RecordingError, match="has no checkpoint 'step-000100' \\(checkpoints: none"):
            rec.at_checkpoint("step-000100")
        text = summarize(rec)
        assert "format version 1 (upgraded to 3 on read)" in text and "Checkpoints" not in text
    assert hashlib.sha256(V1.read_bytes()).hexdigest() == digest


def test_migrate_upgrades_the_v1_file_on_disk_to_v3(tmp_path):
    path = tmp_path / "v1.h5"
    shutil.copyfile(V1, path)
    assert migrate(path) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["v1.h5"]  # no temporary copy left
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == 3
        assert list(f["checkpoints"].attrs["order"]) == [] and f["checkpoints"].attrs["main"] == ""
        assert f["axes/positions"].attrs["geometry"] == "tokens" and f["axes/half"].attrs["geometry"] == "tokens"
    with open_recording(path) as rec:
        _check_v1(rec, version=3)
        assert rec.checkpoints == [] and rec._view is rec._file  # current: no overlay
    assert migrate(path) == 3  # already current: nothing to do


# --- version 2: three checkpoints of one run ---------------------------------------------------

V2_NAMES = ["step-000100", "step-000200", "step-000300"]


def _check_v2(rec, version: int = 2) -> None:
    p, u, half = np.arange(13), np.arange(6), np.arange(8)
    assert rec.format_version == version
    assert rec.item_offsets.tolist() == [0, 3, 8, 9, 13] and rec.axis_offsets("half").tolist() == [0, 2, 5, 6, 8]
    assert rec.token_ids(0, 13).tolist() == ((p * 5) % 7).tolist()
    assert list(rec.taps) == ["layer0/h", "layer0/c", "pool"] and rec.taps["layer0/c"].dtype == "float16"
    assert rec.annotation("source").tolist() == [0, 1, -1, 0]
    assert rec.provenance["checkpoint"] == "checkpoints/parens-lstm-step000300.pt"
    assert rec.provenance["checkpoint_step"] == 300
    cks = rec.checkpoints
    assert [c.name for c in cks] == V2_NAMES  # training order, although written as 200, 300, 100
    assert [c.step for c in cks] == [100, 200, 300] and [c.is_main for c in cks] == [False, False, True]
    assert cks[0].path == "checkpoints/parens-lstm-step000100.pt" and cks[1].sha256 == "2" * 64
    assert cks[2].metrics == {"train_loss": 2 / 3, "valid_ppl": 8 / 3, "note": "ü3"}
    for k, name in enumerate(V2_NAMES, start=1):
        view = rec.at_checkpoint(name)
        assert view.checkpoint == name and view.path == rec.path and view.checkpoints == cks
        assert np.array_equal(view.states("layer0/h"), (p[:, None] * 10 + u) / 64.0 - 1.0 + k)
        assert np.array_equal(view.states("layer0/c"), (p[:, None] - u) / 8.0 + k)
        assert np.array_equal(view.states("pool"), half[:, None] * 2.0 + np.arange(2) + 100 * k)
        assert np.array_equal(view.item_states("layer0/h", 1, units=[5, 0]),
                              (p[3:8, None] * 10 + [5, 0]) / 64.0 - 1.0 + k)
        raw = view.raw_states("layer0/c", 2, 9, out=np.empty((7, 6), np.float16))
        assert np.array_equal(raw, ((p[2:9, None] - u) / 8.0 + k).astype(np.float16))
        assert view.tokens(0, 3) == rec.tokens(0, 3) and np.array_equal(view.annotation("pos"), rec.annotation("pos"))
    # the main states are the last checkpoint's
    assert np.array_equal(rec.states("layer0/h"), (p[:, None] * 10 + u) / 64.0 - 1.0 + 3)
    assert np.array_equal(rec.states("pool"), half[:, None] * 2.0 + np.arange(2) + 300)


def test_v2_fixture_loads_with_the_states_of_every_checkpoint():
    with h5py.File(V2, "r") as f:
        assert f.attrs["format_version"] == 2
        assert f["checkpoints/step-000300/taps/layer0/h"].id == f["taps/layer0/h"].id  # hard link
        assert f["checkpoints/step-000100/taps/layer0/h"].id != f["taps/layer0/h"].id
    with open_recording(V2) as rec:
        _check_v2(rec)
        text = summarize(rec)
    assert "Checkpoints (3" in text and "step-000100" in text and "300" in text and "main" in text
    assert "parens-lstm-step000200.pt" in text and "valid_ppl 4" in text


def _fake_v4(monkeypatch):
    """Pretend the format moved to v4 (a new root attribute) on top of the real v1 -> v2 -> v3."""

    def v3_to_v4(f: h5py.File) -> None:
        f.attrs["units_total"] = sum(f[fmt.tap_path(n)].shape[1] for n in f[fmt.TAPS].attrs[fmt.ORDER_ATTR])
        f.attrs[fmt.VERSION_ATTR] = 4

    monkeypatch.setattr(fmt, "FORMAT_VERSION", 4)
    monkeypatch.setitem(upgrades.MIGRATIONS, 3, v3_to_v4)


def test_read_time_upgrade_chains_and_leaves_the_file_alone(tmp_path, monkeypatch):
    path = tmp_path / "v1.h5"
    shutil.copyfile(V1, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    _fake_v4(monkeypatch)
    monkeypatch.setattr(upgrades, "_OVERLAY_COPY_BYTES", 64)  # map the taps as virtual datasets
    with open_recording(path) as rec:
        _check_v1(rec)  # the values come through the upgraded overlay
        assert rec._view.attrs["units_total"] == 14 and "checkpoints" in rec._view  # 1 -> 2 -> 3 -> 4
        assert rec._view["axes/half"].attrs["geometry"] == "tokens"
        assert rec._view["taps/layer0/h"].is_virtual
        assert "upgraded to 4 on read" in summarize(rec)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_the_read_time_overlay_keeps_the_hard_links_of_the_main_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "v2.h5"
    shutil.copyfile(V2, path)
    _fake_v4(monkeypatch)
    monkeypatch.setattr(upgrades, "_OVERLAY_COPY_BYTES", 64)
    with open_recording(path) as rec:
        view = rec._view
        assert view["taps/layer0/h"].is_virtual and view["checkpoints/step-000100/taps/layer0/h"].is_virtual
        assert view["checkpoints/step-000300/taps/layer0/h"].id == view["taps/layer0/h"].id
        _check_v2(rec)


def test_migrate_rewrites_the_file_atomically(tmp_path, monkeypatch):
    path = tmp_path / "v2.h5"
    shutil.copyfile(V2, path)
    _fake_v4(monkeypatch)
    assert migrate(path) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["v2.h5"]  # no temporary copy left
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == 4 and f.attrs["units_total"] == 14
        assert f["checkpoints/step-000300/taps/pool"].id == f["taps/pool"].id
    with open_recording(path) as rec:
        _check_v2(rec, version=4)
    assert migrate(path) == 4  # already current: nothing to do


def test_failed_migration_leaves_the_original(tmp_path, monkeypatch):
    path = tmp_path / "v1.h5"
    shutil.copyfile(V1, path)
    before = path.read_bytes()

    def broken(f):
        f.attrs["half_done"] = True
        raise RuntimeError("bug in the upgrade")

    monkeypatch.setitem(upgrades.MIGRATIONS, 1, broken)
    with pytest.raises(RuntimeError, match="bug in the upgrade"):
        migrate(path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["v1.h5"]


def test_a_version_without_a_migration_path_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "v1.h5"
    shutil.copyfile(V1, path)
    monkeypatch.delitem(upgrades.MIGRATIONS, 1)  # 2 -> 3 exists, 1 -> 2 does not
    with pytest.raises(RecordingError, match=r"unknown format version 1 \(this lstmviz reads versions 2 to 3\)"):
        open_recording(path)


def test_migrate_an_open_writable_file(tmp_path):
    path = tmp_path / "v1.h5"
    shutil.copyfile(V1, path)
    with h5py.File(path, "r") as f, pytest.raises(ValueError, match="read-only"):
        migrate(f)
    with h5py.File(path, "r+") as f:
        assert migrate(f) == 3
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == 3 and "checkpoints" in f and f["axes/half"].attrs["geometry"] == "tokens"
    with open_recording(path) as rec:
        _check_v1(rec, version=3)


def test_a_v2_file_is_refused_by_a_v1_reader(tmp_path, monkeypatch):
    monkeypatch.setattr(fmt, "FORMAT_VERSION", 1)
    with pytest.raises(RecordingError, match=r"written by a newer lstmviz \(format version 2; this lstmviz reads "
                                             r"versions up to 1\); upgrade lstmviz"):
        open_recording(V2)
