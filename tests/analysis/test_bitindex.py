"""The match index build: bits equal a brute-force numpy reference; the on-disk cache is reused only
while its inputs are unchanged, and never half-written."""

import hashlib
import os

import numpy as np
import pytest

from lstmviz.analysis import _index_stream, bitindex
from lstmviz.analysis.bitindex import (
    BitIndex,
    IndexKey,
    build_index,
    index_path,
    key_thresholds,
    open_index,
)
from lstmviz.analysis.transforms import apply_transform, is_on, stored_bounds, tap_stats
from lstmviz.recording import open_recording
from lstmviz.tasks import Cancelled, Task

UNITS = 77  # not a multiple of 8
ITEM_LENGTHS = (5, 130, 1, 64, 203, 8)  # 411 positions: not a multiple of 8 or 64


def tricky_values(dtype, seed=0):
    """Items of random values salted with the values that break naive comparisons."""
    rng = np.random.default_rng(seed)
    f = np.float16 if dtype == "float16" else np.float32
    specials = np.array([0.5, -0.5, 0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, f(0.1), -f(0.1),
                         np.nextafter(f(0.1), f(1)), np.nextafter(f(0.5), f(0)), np.nextafter(f(-0.5), f(0)),
                         np.arctanh(0.3), -np.arctanh(0.3)], dtype=np.float64)
    items = []
    for n in ITEM_LENGTHS:
        x = rng.standard_normal((n, UNITS)) * 0.8
        mask = rng.random(x.shape) < 0.15
        x[mask] = rng.choice(specials, size=int(mask.sum()))
        x[:, 3] = 0.25  # a constant unit: std 0
        items.append(x.astype(f).astype(np.float32))
    return items


@pytest.fixture(autouse=True)
def small_slabs(monkeypatch):
    """Slabs of 64 rows and unit-major flushes every 128 positions, so every path runs several times."""
    monkeypatch.setattr(_index_stream, "SLAB_BYTES", 1)
    monkeypatch.setattr(bitindex, "_UNITS_BUFFER_BYTES", 128 * UNITS // 8)


def reference(recording, key, stats=None):
    """The Select view's rule on the transformed values (transforms.is_on), position by position."""
    v = apply_transform(recording.states(key.tap), key.transform, stats)
    return BitIndex.from_bool(is_on(v, 1, key.threshold), is_on(v, -1, key.threshold), recording.item_offsets)


def assert_same_bits(index, ref):
    assert index.n_positions == ref.n_positions and index.n_units == ref.n_units
    np.testing.assert_array_equal(index.item_offsets, ref.item_offsets)
    for sign in (1, -1):
        np.testing.assert_array_equal(index.rows[sign], ref.rows[sign], err_msg=f"rows, sign {sign}")
        np.testing.assert_array_equal(index.units[sign], ref.units[sign], err_msg=f"units, sign {sign}")
        np.testing.assert_array_equal(index.row_counts[sign], ref.row_counts[sign], err_msg=f"counts {sign}")


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("transform, threshold", [
    ("raw", 0.5),    # exactly representable: values equal to it are on
    ("raw", 0.1),    # not representable in float16: rounds up for >=, down for <=
    ("raw", 0.0),    # -0.0 and +0.0 are both >= 0 and <= -0
    ("raw", -0.2),   # a negative threshold: on(+1) is x >= -0.2, on(-1) x <= 0.2
    ("tanh", 0.3),
    ("tanh", -0.95),
    ("zscore", 1.0),
    ("zscore", 0.0),
])
def test_built_index_equals_brute_force(write_recording, dtype, transform, threshold):
    rec = open_recording(write_recording(tricky_values(dtype), dtype=dtype))
    key = IndexKey("h", transform, threshold)
    stats = tap_stats(rec, "h") if transform == "zscore" else None
    ref = reference(rec, key, stats)
    assert ref.rows[1].any() and ref.rows[-1].any()
    built = build_index(rec, key)
    assert_same_bits(built, ref)
    np.testing.assert_array_equal(built.thresholds[1], stored_bounds(threshold, transform, dtype, UNITS, stats)[1])
    opened = open_index(rec, key)
    assert opened.path is not None and opened.path.exists()
    assert_same_bits(opened, ref)
    assert opened.key == key


def test_raw_threshold_rounding_is_exact_for_every_float16_value():
    values = np.arange(65536, dtype=np.uint16).view(np.float16)
    x = values.astype(np.float64)
    for t in (0.1, 0.5, 0.0, -0.0, -1e-8, 1e-8, 65504.0, 7e4, -7e4, -np.inf, np.inf, 5.96e-8):
        lo, span, hi, span_neg = key_thresholds(np.array([t]), np.array([-t]), np.float16)
        v = values.view(np.int16).astype(np.int64)
        k = v ^ ((v >> 15) & 0x7FFF)
        on_pos = ((k - lo[0]) % 65536) <= span[0]
        on_neg = ((hi[0] - k) % 65536) <= span_neg[0]
        np.testing.assert_array_equal(on_pos, x >= t, err_msg=f"x >= {t}")
        np.testing.assert_array_equal(on_neg, x <= -t, err_msg=f"x <= {-t}")


def test_one_position_and_one_unit(write_recording):
    rec = open_recording(write_recording([np.array([[0.7]])], dtype="float16"))
    index = open_index(rec, IndexKey("h", "raw", 0.5))
    assert index.rows[1].tolist() == [[1]] and index.units[1].tolist() == [[1]]
    assert index.rows[-1].tolist() == [[0]] and index.row_counts[1].tolist() == [1]


def test_cached_index_is_memory_mapped_read_only_and_reused(write_recording, monkeypatch):
    rec = open_recording(write_recording(tricky_values("float16"), dtype="float16"))
    key = IndexKey("h", "raw", 0.5)
    builds = []
    real = bitindex._pack_tap
    monkeypatch.setattr(bitindex, "_pack_tap", lambda *a: builds.append(1) or real(*a))
    first = open_index(rec, key)
    second = open_index(rec, key)
    assert len(builds) == 1
    assert second.path == first.path == index_path(rec, key)
    for a in (*second.rows.values(), *second.units.values(), *second.row_counts.values()):
        assert not a.flags.writeable
    assert_same_bits(second, reference(rec, key))
    open_index(rec, IndexKey("h", "raw", 0.25))  # another key: another file, built once
    assert len(builds) == 2 and first.path.exists()
    open_index(rec, key, cache=False)  # in memory: always built
    assert len(builds) == 3


def test_rebuilt_when_the_recording_changes(write_recording, monkeypatch):
    path = write_recording(tricky_values("float32", seed=1))
    key = IndexKey("h", "raw", 0.5)
    with open_recording(path) as rec:
        old = open_index(rec, key)
    old_bits = np.array(old.rows[1])
    del old
    path = write_recording(tricky_values("float32", seed=2))  # same name, new content
    builds = []
    real = bitindex._pack_tap
    monkeypatch.setattr(bitindex, "_pack_tap", lambda *a: builds.append(1) or real(*a))
    with open_recording(path) as rec:
        new = open_index(rec, key)
        assert builds == [1]
        assert_same_bits(new, reference(rec, key))
        assert not np.array_equal(np.asarray(new.rows[1]), old_bits)
        st = os.stat(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched: rebuilt too
        open_index(rec, key)
        assert builds == [1, 1]


def test_zscore_index_follows_the_statistics(write_recording):
    rec = open_recording(write_recording(tricky_values("float16"), dtype="float16"))
    messages = []
    task = Task(on_progress=lambda done, total, message: messages.append((message, done, total)))
    index = open_index(rec, IndexKey("h", "zscore", 1.5), task=task)
    stats = tap_stats(rec, "h")
    assert_same_bits(index, reference(rec, IndexKey("h", "zscore", 1.5), stats))
    order = [m for m, _, _ in messages]
    assert order[0] == "Statistics of h" and order[-1] == "Indexing h"
    indexing = [(d, t) for m, d, t in messages if m == "Indexing h"]
    assert indexing[-1] == (rec.n_positions, rec.n_positions) and len(indexing) > 3
    assert [d for d, _ in indexing] == sorted(d for d, _ in indexing)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_cache_file_is_rebuilt(write_recording, monkeypatch, damage):
    rec = open_recording(write_recording(tricky_values("float16"), dtype="float16"))
    key = IndexKey("h", "tanh", 0.3)
    path = open_index(rec, key).path
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not an index" * 100)
    elif damage == "truncated":  # the metadata survives, the bits do not
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(b"")
    builds = []
    real = bitindex._pack_tap
    monkeypatch.setattr(bitindex, "_pack_tap", lambda *a: builds.append(1) or real(*a))
    index = open_index(rec, key)
    assert builds == [1]
    assert_same_bits(index, reference(rec, key))


def test_cancelled_build_leaves_no_cache_file(write_recording, cache_dir):
    rec = open_recording(write_recording(tricky_values("float16"), dtype="float16"))
    task = Task(on_progress=lambda done, total, message: task.cancel() if done >= 128 else None)
    with pytest.raises(Cancelled):
        open_index(rec, IndexKey("h", "raw", 0.5), task=task)
    assert [p for p in cache_dir.rglob("*") if p.is_file()] == []
    index = open_index(rec, IndexKey("h", "raw", 0.5))  # and a later build succeeds
    assert_same_bits(index, reference(rec, IndexKey("h", "raw", 0.5)))


def test_unwritable_cache_falls_back_to_memory(write_recording, tmp_path, monkeypatch):
    rec = open_recording(write_recording(tricky_values("float32")))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("LSTMVIZ_CACHE_DIR", str(blocker / "cache"))  # cannot be created
    key = IndexKey("h", "raw", 0.5)
    index = open_index(rec, key)
    assert index.path is None
    assert_same_bits(index, reference(rec, key))


def test_the_recording_is_never_written(write_recording):
    path = write_recording(tricky_values("float16"), dtype="float16")
    before = hashlib.sha256(path.read_bytes()).hexdigest(), os.stat(path).st_mtime_ns
    os.chmod(path, 0o444)
    with open_recording(path) as rec:
        for transform in ("raw", "zscore"):
            open_index(rec, IndexKey("h", transform, 0.5))
    assert (hashlib.sha256(path.read_bytes()).hexdigest(), os.stat(path).st_mtime_ns) == before


def test_bad_keys_say_what_is_wrong(write_recording):
    rec = open_recording(write_recording(tricky_values("float32")))
    with pytest.raises(ValueError, match="between -1 and 1"):
        open_index(rec, IndexKey("h", "tanh", 1.0))
    with pytest.raises(ValueError, match="unknown transform"):
        build_index(rec, IndexKey("h", "log", 0.5))
    with pytest.raises(Exception, match="has no tap 'nope'"):
        open_index(rec, IndexKey("nope", "raw", 0.5))


def test_raw_states_returns_the_stored_dtype(write_recording):
    rec = open_recording(write_recording(tricky_values("float16"), dtype="float16"))
    raw = rec.raw_states("h", 3, 40)
    assert raw.dtype == np.float16 and raw.shape == (37, UNITS)
    np.testing.assert_array_equal(raw.astype(np.float32), rec.states("h", 3, 40))
    out = np.empty((37, UNITS), np.float16)
    assert rec.raw_states("h", 3, 40, out=out) is out
    with pytest.raises(ValueError, match="out must be"):
        rec.raw_states("h", 3, 40, out=np.empty((37, UNITS), np.float32))


def test_a_cache_shorter_than_its_layout_is_never_mapped(tmp_path):
    # HDF5 itself refuses most truncated files; this guard keeps a short file from being mapped, where
    # reading past its end would kill the process (SIGBUS) instead of raising
    path = tmp_path / "short.bin"
    path.write_bytes(b"\0" * 100)
    with pytest.raises(ValueError, match="truncated"):
        bitindex._map_arrays(path, {("rows", 1): (64, (10, 8), np.dtype(np.uint8))})
    arrays = bitindex._map_arrays(path, {("rows", 1): (20, (10, 8), np.dtype(np.uint8))})
    assert arrays["rows", 1].shape == (10, 8) and not arrays["rows", 1].flags.writeable
