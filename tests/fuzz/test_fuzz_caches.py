"""Damaged derived-data caches are misses, never wrong answers or exceptions (issue 10.5, 10.6).

Seeded: every kind of cache (match index ``index-*.h5``, unit statistics ``stats-*.npz``, probe
reports ``probes-*.npz``) is built, damaged (random bit flips anywhere in the file, truncation, an
empty file, random bytes, arrays of the wrong shape written with a valid key), and read again. The
answer must equal the one computed without any cache, nothing may raise, and every damage that the
loader did not simply see through (a flip in bytes nothing reads) leaves a note in the
``lstmviz.cache`` log.
"""

import logging

import h5py
import numpy as np
import pytest

from lstmviz.analysis import bitindex
from lstmviz.analysis.bitindex import IndexKey, build_index, open_index
from lstmviz.analysis.match_types import MatchQuery
from lstmviz.analysis.matching import match
from lstmviz.analysis.probe_report import run_probes
from lstmviz.analysis.transforms import tap_stats
from lstmviz.recording import RecordingWriter, open_recording

SEED = 20240611
UNITS = 40
FLIPS = (1, 3, 10, 30, 100)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """2,000-odd float16 positions in 30 items, 40 units, a categorical annotation the units carry."""
    path = tmp_path_factory.mktemp("fuzz") / "rec.h5"
    rng = np.random.default_rng(SEED)
    with RecordingWriter(path, vocab=["<pad>", "a", "b"], dtype="float16") as w:
        w.add_tap("h", UNITS, layer=0)
        w.add_annotation("tag", kind="categorical", labels=["x", "y", "z"])
        for _ in range(30):
            n = int(rng.integers(30, 110))
            tags = rng.integers(0, 3, n)
            x = rng.standard_normal((n, UNITS)) * 0.7
            x[:, :6] += 1.5 * (tags[:, None] == 1)
            w.append_item(rng.integers(1, 3, n), {"h": x}, {"tag": tags})
    rec = open_recording(path)
    yield rec
    rec.close()


@pytest.fixture
def cache_log(caplog):
    caplog.set_level(logging.INFO, logger="lstmviz.cache")
    return caplog


def _damages(rng, data: bytes):
    """(name, damaged bytes) for one cache file's bytes."""
    out = []
    for k in FLIPS:
        b = bytearray(data)
        for pos in rng.integers(0, len(b), k):
            b[pos] ^= 1 << int(rng.integers(0, 8))
        out.append((f"{k} bit flips", bytes(b)))
    out.append(("empty", b""))
    out.append(("truncated", data[: int(rng.integers(1, len(data)))]))
    out.append(("random bytes", rng.bytes(len(data))))
    return out


def _noted(cache_log) -> bool:
    return any("rebuilt" in r.getMessage() for r in cache_log.records)


KEY = IndexKey("h", "tanh", 0.5)
QUERY = MatchQuery(units=(0, 1, 2, 3), mode="lstmvis", min_length=2)


def _same_index(index, expected):
    assert index.n_positions == expected.n_positions and index.n_units == expected.n_units
    np.testing.assert_array_equal(index.item_offsets, expected.item_offsets)
    for s in (1, -1):
        np.testing.assert_array_equal(index.rows[s], expected.rows[s])
        np.testing.assert_array_equal(index.units[s], expected.units[s])
        np.testing.assert_array_equal(index.row_counts[s], expected.row_counts[s])
        np.testing.assert_array_equal(index.thresholds[s], expected.thresholds[s])


def _same_matches(a, b):
    for name in ("starts", "lengths", "items", "intersection", "union", "score"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_damaged_match_indices(recording, cache_log):
    expected = build_index(recording, KEY)
    expected_matches = match(expected, QUERY)
    assert len(expected_matches) > 0
    rng = np.random.default_rng(SEED)
    path = open_index(recording, KEY).path
    clean = path.read_bytes()
    cases = [d for _ in range(4) for d in _damages(rng, clean)]
    cases += _index_shape_damages(path, clean)
    noted = 0
    for name, damaged in cases:
        cache_log.clear()
        path.write_bytes(damaged)
        index = open_index(recording, KEY)  # must not raise
        _same_index(index, expected)
        _same_matches(match(index, QUERY), expected_matches)
        noted += _noted(cache_log)
        if name in ("empty", "truncated", "random bytes") or name.startswith("shape"):
            assert _noted(cache_log), name
    assert noted >= len(cases) - 4  # only a few flips may land in bytes that nothing reads


def _index_shape_damages(path, clean):
    """Valid HDF5 files with the right key but arrays of the wrong shape or layout."""
    out = []
    for dataset, replacement in (("thresholds/pos", np.zeros(UNITS + 1)),
                                 ("checksums/units/pos", np.zeros(UNITS - 1, np.uint32)),
                                 ("item_offsets", np.arange(5, dtype=np.int64)),
                                 ("counts/neg", np.zeros(7, np.uint16))):
        path.write_bytes(clean)
        with h5py.File(path, "r+") as f:
            del f[dataset]
            f[dataset] = replacement
        out.append((f"shape of {dataset}", path.read_bytes()))
    path.write_bytes(clean)
    with h5py.File(path, "r+") as f:  # same shape, chunked instead of contiguous (cannot be mapped)
        data = f["rows/pos"][:]
        del f["rows/pos"]
        f.create_dataset("rows/pos", data=data, chunks=True)
    out.append(("shape: chunked rows", path.read_bytes()))
    return out


def test_a_flipped_bit_in_the_bits_is_always_found(recording, cache_log):
    """One flip in every large array (where a wrong bit means a wrong match) is found every time."""
    expected = build_index(recording, KEY)
    path = open_index(recording, KEY).path
    clean = path.read_bytes()
    rng = np.random.default_rng(SEED + 1)
    with h5py.File(path, "r") as f:
        regions = [(f[name].id.get_offset(), f[name].id.get_storage_size())
                   for name in ("rows/pos", "rows/neg", "units/pos", "units/neg", "counts/pos", "counts/neg")]
    for offset, size in regions:
        for _ in range(5):
            damaged = bytearray(clean)
            damaged[offset + int(rng.integers(0, size))] ^= 1 << int(rng.integers(0, 8))
            path.write_bytes(bytes(damaged))
            cache_log.clear()
            _same_index(open_index(recording, KEY), expected)
            assert _noted(cache_log)


def test_damaged_statistics(recording, cache_log):
    expected = tap_stats(recording, "h", cache=False)
    tap_stats(recording, "h")
    path = _only(recording, "stats-")
    clean = path.read_bytes()
    rng = np.random.default_rng(SEED + 2)
    cases = [d for _ in range(4) for d in _damages(rng, clean)]
    fingerprint_meta = np.load(path)["meta"]
    for name in ("mean", "finite"):
        arrays = dict(np.load(path))
        arrays[name] = arrays[name][:-1]  # valid archive and key, wrong length
        with open(path, "wb") as fh:
            np.savez(fh, **{**arrays, "meta": fingerprint_meta})
        cases.append((f"shape of {name}", path.read_bytes()))
    for name, damaged in cases:
        cache_log.clear()
        path.write_bytes(damaged)
        stats = tap_stats(recording, "h")
        for field in ("mean", "std", "minimum", "maximum", "finite"):
            np.testing.assert_array_equal(getattr(stats, field), getattr(expected, field), err_msg=name)
        assert stats.count == expected.count
        if name in ("empty", "truncated", "random bytes") or name.startswith("shape"):
            assert _noted(cache_log), name


def test_damaged_probe_reports(recording, cache_log):
    options = dict(control=False, baseline=False)
    expected = run_probes(recording, "tag", ["h"], cache=False, **options)
    run_probes(recording, "tag", ["h"], **options)
    path = _only(recording, "probes-")
    clean = path.read_bytes()
    rng = np.random.default_rng(SEED + 3)
    cases = [d for _ in range(2) for d in _damages(rng, clean)]
    arrays = dict(np.load(path))
    del arrays["0_weights"]
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    cases.append(("shape: an array missing", path.read_bytes()))
    for name, damaged in cases:
        cache_log.clear()
        path.write_bytes(damaged)
        report = run_probes(recording, "tag", ["h"], **options)  # BadZipFile / EOFError must not escape
        got, want = report.probes["h"], expected.probes["h"]
        assert (got.accuracy, got.ci_low, got.ci_high, got.l2) == (want.accuracy, want.ci_low, want.ci_high,
                                                                    want.l2), name
        np.testing.assert_array_equal(got.weights, want.weights)
        np.testing.assert_array_equal(got.confusion, want.confusion)
        if name in ("empty", "truncated", "random bytes") or name.startswith("shape"):
            assert _noted(cache_log) and not report.from_cache, name


def _only(recording, prefix):
    from lstmviz.analysis.cache import cache_dir_for

    paths = [p for p in cache_dir_for(recording.path).iterdir() if p.name.startswith(prefix)]
    assert len(paths) == 1, paths
    return paths[0]


def test_an_unreadable_cache_is_rebuilt_once_not_on_every_run(recording, cache_log, monkeypatch):
    """The damaged file is replaced by a good one: the next open reads the cache, builds nothing."""
    path = open_index(recording, KEY).path
    path.write_bytes(b"")
    open_index(recording, KEY)
    assert _noted(cache_log)
    builds = []
    monkeypatch.setattr(bitindex, "_pack_tap", lambda *a: builds.append(a))
    cache_log.clear()
    open_index(recording, KEY)
    assert builds == [] and not _noted(cache_log)
