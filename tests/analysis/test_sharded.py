"""Analysis over shards (lstmviz.analysis.sharded) gives exactly the single file's results."""

from __future__ import annotations

import os

import numpy as np
import pytest
import shard_corpus as sc

from lstmviz.analysis import sharded
from lstmviz.analysis.bitindex import IndexKey, open_index
from lstmviz.analysis.match_types import MatchQuery
from lstmviz.analysis.matching import match
from lstmviz.analysis.probes import fit_probe, probe_labels, probe_split
from lstmviz.analysis.shard_index import merge_stats_parts, shard_index, shard_stats_part
from lstmviz.analysis.transforms import _merge, tap_stats
from lstmviz.recording import open_recording

FIELDS = ("starts", "lengths", "items", "levels", "intersection", "union", "jaccard", "length_factor", "score")
QUERIES = [
    MatchQuery(units=(1, 2, 3)),
    MatchQuery(units=(1, 2, 3), candidate_cap=None, limit=None, pad_left=0),
    MatchQuery(units=(1, 2, 3, 4, 5), signs=(1, -1, 1, 1, -1), candidate_cap=50, pad_right=1),
    MatchQuery(units=(0, 6, 8, 10), candidate_cap=7, pad_left=2, pad_right=2, min_length=2),
    MatchQuery(units=(4, 9), signs=(-1, -1), candidate_cap=30, limit=5, max_length=6),
    MatchQuery(units=(3, 7, 9), mode="scored", limit=20, selection_length=4),
    MatchQuery(units=(3, 7, 9, 11), mode="scored", limit=200, candidate_cap=150),  # the cap cuts: not exact
    MatchQuery(units=(2, 5, 12, 13, 20), signs=(1, 1, -1, 1, -1), mode="scored", limit=3, pad_right=1,
               unit_space="both"),
    MatchQuery(units=(1, 14), mode="scored", limit=None, candidate_cap=None, selection_length=7, length_weight=1.0),
]
KEYS = [IndexKey("h", "raw", 0.3), IndexKey("h", "tanh", 0.5), IndexKey("h", "zscore", 0.5)]


@pytest.fixture(scope="module")
def corpus16(tmp_path_factory):
    return sc.write_corpus(tmp_path_factory.mktemp("f16"), dtype="float16")


@pytest.fixture(scope="module")
def corpus32(tmp_path_factory):
    return sc.write_corpus(tmp_path_factory.mktemp("f32"), dtype="float32", seed=1)


def assert_same(a, b):
    assert len(a) == len(b)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    assert (a.exact, a.n_candidates, a.lowest_level) == (b.exact, b.n_candidates, b.lowest_level)


@pytest.mark.parametrize("which", ["corpus16", "corpus32"])
def test_global_statistics_equal_the_single_files_bit_for_bit(which, request):
    single, shards = request.getfixturevalue(which)
    with open_recording(single) as rec:
        expected = tap_stats(rec, "h", cache=False)
    got = sharded.global_stats(sharded.open_shards(shards), "h", sharded.InlineBackend(), cache=False)
    for name in ("mean", "std", "minimum", "maximum", "finite"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)
    assert got.count == expected.count


def test_merging_per_shard_totals_would_not_be_exact(corpus32):
    """Why the blocks are re-folded in global order: Chan's formula on per-shard totals rounds
    differently (this data shows it), and a z-score threshold on the last bit moves bits."""
    single, shards = corpus32
    with open_recording(single) as rec:
        expected = tap_stats(rec, "h", cache=False)
    n, mean, m2 = np.zeros(sc.UNITS, np.int64), np.zeros(sc.UNITS), np.zeros(sc.UNITS)
    for path in shards:
        with open_recording(path) as rec:
            s = tap_stats(rec, "h", cache=False)
        n, mean, m2 = _merge(n, mean, m2, s.finite, s.mean, s.std ** 2 * s.finite)
    assert not np.array_equal(mean, expected.mean) or not np.array_equal(np.sqrt(m2 / n), expected.std)


def test_statistics_blocks_straddling_three_shards(corpus16):
    """The second and third shards are shorter than a block together; the parts carry their rows."""
    _, shards = corpus16
    s = sharded.open_shards(shards)
    offsets = s.position_offsets()
    parts = [shard_stats_part(x.path, "h", int(o)) for x, o in zip(s.shards, offsets)]
    assert len(parts[2]["blocks"][0]) == 0 and len(parts[2]["tail"]) == 0  # all of it is head
    assert merge_stats_parts(parts, sc.UNITS).count == s.axis_length()


@pytest.mark.parametrize("key", KEYS, ids=lambda k: k.transform)
def test_shard_index_bits_concatenate_to_the_single_files(corpus16, key):
    single, shards = corpus16
    s = sharded.open_shards(shards)
    backend = sharded.InlineBackend()
    built = sharded.build_indices(s, key, backend)
    assert [b["positions"] for b in built] == [x.rows["positions"] for x in s.shards]
    stats = sharded.index_stats(s, key, backend)
    parts = [shard_index(x.path, key, stats, x.fingerprint) for x in s.shards]
    with open_recording(single) as rec:
        one = open_index(rec, key)
    for sign in (1, -1):
        got = np.concatenate([p.on(sign, 0, p.n_positions) for p in parts])
        np.testing.assert_array_equal(got, one.on(sign, 0, one.n_positions))
        units = np.concatenate([np.unpackbits(p.units[sign], axis=1, count=p.n_positions, bitorder="little")
                                for p in parts], axis=1)
        np.testing.assert_array_equal(units, np.unpackbits(one.units[sign], axis=1, count=one.n_positions,
                                                           bitorder="little"))
    if key.transform == "zscore":  # built with the global statistics, not the shard's own
        with open_recording(shards[0]) as rec:
            own = open_index(rec, key)
        assert not np.array_equal(own.thresholds[1], parts[0].thresholds[1])
        assert own.path != parts[0].path


@pytest.mark.parametrize("key", KEYS, ids=lambda k: k.transform)
@pytest.mark.parametrize("which", ["corpus16", "corpus32"])
def test_sharded_matches_equal_the_single_files(which, key, request):
    single, shards = request.getfixturevalue(which)
    s = sharded.open_shards(shards)
    backend = sharded.InlineBackend()
    with open_recording(single) as rec:
        one = open_index(rec, key)
        for q in QUERIES:
            expected = match(one, q)
            got = sharded.match(s, key, q, backend)
            assert_same(got, expected)
    assert len(expected) > 0


def test_a_band_cut_by_the_cap_takes_the_first_shards_first(corpus16):
    """The cap cuts a level between shards: the kept candidates of that level are those of the first
    shards (the single file's start order), not any others of the same level."""
    single, shards = corpus16
    key = KEYS[0]
    s = sharded.open_shards(shards)
    with open_recording(single) as rec:
        one = open_index(rec, key)
        for cap in (1, 2, 3, 17, 64, 65, 333):
            q = MatchQuery(units=(1, 2), mode="scored", limit=None, candidate_cap=cap)
            expected = match(one, q)
            assert expected.n_candidates == cap
            assert_same(sharded.match(s, key, q, sharded.InlineBackend()), expected)


def test_the_logical_file_is_read_through_its_table(corpus16, tmp_path):
    single, shards = corpus16
    logical = sc.write_logical(single, shards, shards[0].parent / "logical.h5")
    s = sharded.open_shards(logical)
    assert s.source == str(logical.resolve())
    assert [x.items for x in s.shards] == list(sc.SHARD_ITEMS)
    assert s.paths == [str(p.resolve()) for p in shards]
    key, q = KEYS[2], QUERIES[2]
    with open_recording(single) as rec:
        assert_same(sharded.match(s, key, q, sharded.InlineBackend()), match(open_index(rec, key), q))


def test_an_ordinary_file_is_one_shard_indexed_as_the_window_indexes_it(corpus16):
    single, _ = corpus16
    s = sharded.open_shards(single)
    assert len(s) == 1 and s.source is None
    key = KEYS[2]
    backend = sharded.InlineBackend()
    assert sharded.index_stats(s, key, backend) is None  # its own statistics are the global ones
    built = sharded.build_indices(s, key, backend)
    with open_recording(single) as rec:
        one = open_index(rec, key)
        assert built[0]["cache"] == str(one.path)  # the same cache file, not a second index
        assert_same(sharded.match(s, key, QUERIES[0], backend), match(one, QUERIES[0]))


def test_probes_stream_from_shards_and_equal_the_single_files(corpus32, monkeypatch):
    single, shards = corpus32
    with open_recording(single) as rec:
        labels = probe_labels(rec, "sign")
        split = probe_split(rec)
        expected = fit_probe(rec, "h", labels, split, l2_grid=(1e-3,), refine_grid=False)
    reads = []
    original = type(open_recording(shards[0])).raw_states

    def spy(self, tap, start=None, stop=None, out=None):
        reads.append((str(self.path), start, stop))
        return original(self, tap, start, stop, out=out)

    monkeypatch.setattr(type(open_recording(shards[0])), "raw_states", spy)
    monkeypatch.setattr("lstmviz.analysis._index_stream.SLAB_BYTES", 256 * sc.UNITS * 4)  # slabs of 256 rows
    s = sharded.open_shards(shards)
    with sharded.ShardedRecording(s) as view:
        np.testing.assert_array_equal(probe_labels(view, "sign"), labels)
        got = fit_probe(view, "h", labels, split, l2_grid=(1e-3,), refine_grid=False)
    assert got.accuracy == expected.accuracy
    np.testing.assert_array_equal(got.confusion, expected.confusion)
    np.testing.assert_allclose(got.weights, expected.weights, rtol=1e-5, atol=1e-6)
    shard_paths = {str(p.resolve()) for p in shards}
    assert {r[0] for r in reads} == shard_paths  # every row came from a shard file
    assert max(b - a for _, a, b in reads) <= 1024  # in slabs (statistics: blocks of 1024), never the whole tap


def test_the_view_reads_rows_across_shard_boundaries(corpus16):
    single, shards = corpus16
    s = sharded.open_shards(shards)
    with open_recording(single) as rec, sharded.ShardedRecording(s) as view:
        o = s.position_offsets()
        for a, b in ((0, 5), (int(o[1]) - 3, int(o[3]) + 4), (0, int(o[-1])), (int(o[2]), int(o[2]))):
            np.testing.assert_array_equal(view.raw_states("h", a, b), rec.raw_states("h", a, b))
            np.testing.assert_array_equal(view.token_ids(a, b), rec.token_ids(a, b))
        np.testing.assert_array_equal(view.item_offsets, rec.item_offsets)
        np.testing.assert_array_equal(view.item_states("h", 151), rec.item_states("h", 151))


# --- errors ------------------------------------------------------------------------------------------


def test_a_missing_shard_is_named(corpus16, tmp_path):
    single, shards = corpus16
    logical = sc.write_logical(single, shards, shards[0].parent / "logical-missing.h5")
    moved = shards[1].with_suffix(".moved")
    os.rename(shards[1], moved)
    try:
        with pytest.raises(sharded.ShardError, match=r"shard1\.h5 \(items 70\.\.149\).*does not exist"):
            sharded.open_shards(logical)
    finally:
        os.rename(moved, shards[1])


def test_a_changed_shard_fails_its_checksum_and_a_verified_one_is_not_hashed_again(tmp_path, monkeypatch):
    single, shards = sc.write_corpus(tmp_path / "c")
    logical = sc.write_logical(single, shards, tmp_path / "c" / "logical.h5")
    sharded.open_shards(logical)  # hashes every shard once and remembers it

    def no_hashing(path):
        raise AssertionError("hashed again")

    import lstmviz.analysis.shard_set as shard_set

    with monkeypatch.context() as m:
        m.setattr(shard_set, "file_sha256", no_hashing)
        sharded.open_shards(logical)  # the remembered verification: no hashing
    sc.write(shards[2], sc.corpus(5)[:2])  # replaced: another size and time
    with pytest.raises(sharded.ShardError, match=r"shard2\.h5: its sha256 is .* changed or replaced"):
        sharded.open_shards(logical)


def test_a_shard_from_another_model_or_vocabulary_is_refused(tmp_path):
    items = sc.corpus(0, 20)
    a = sc.write(tmp_path / "a.h5", items[:10])
    b = sc.write(tmp_path / "b.h5", items[10:], provenance={**sc.PROVENANCE, "config": {"hidden": 99}})
    with pytest.raises(sharded.ShardError, match=r"b\.h5 was not recorded like .*a\.h5: its provenance 'config'"):
        sharded.open_shards([a, b])
    c = sc.write(tmp_path / "c.h5", items[10:], vocab=["<pad>", "a", "b", "c", "d", "z"])
    with pytest.raises(sharded.ShardError, match=r"c\.h5 has other vocabulary than .*a\.h5"):
        sharded.open_shards([a, c])


def test_a_table_with_a_gap_or_wrong_items_is_refused(corpus16, tmp_path):
    import json

    import h5py

    single, shards = corpus16
    logical = sc.write_logical(single, shards, shards[0].parent / "logical-gap.h5")
    with h5py.File(logical, "r+") as f:
        table = json.loads(f.attrs["lstmviz_shards"])
        table[1]["items"] = [71, 150]
        f.attrs["lstmviz_shards"] = json.dumps(table)
    with pytest.raises(sharded.ShardError, match="must cover the items in order"):
        sharded.open_shards(logical)
    with h5py.File(logical, "r+") as f:
        table[1]["items"], table[2]["items"] = [70, 151], [151, 152]
        f.attrs["lstmviz_shards"] = json.dumps(table)
    with pytest.raises(sharded.ShardError, match=r"shard1\.h5 holds 80 items, but .* says it holds items 70\.\.150"):
        sharded.open_shards(logical)


def test_units_outside_the_tap_are_refused(corpus16):
    _, shards = corpus16
    with pytest.raises(ValueError, match=r"unit 24 is outside 0\.\.23"):
        sharded.match(sharded.open_shards(shards), KEYS[0], MatchQuery(units=(1, 24)), sharded.InlineBackend())


def test_matches_equal_where_the_histogram_is_sampled(tmp_path):
    """From 524,288 positions on the count histogram is sampled, and the shards' sum of estimates
    differs from the single file's estimate: the matches (and `exact`) must not."""
    rng = np.random.default_rng(7)
    items = []
    for _ in range(150):
        n = int(rng.integers(3000, 5000))
        walk = np.cumsum(rng.normal(0, 0.3, (n, sc.UNITS)), axis=0)
        items.append((rng.integers(1, 6, n), np.tanh(walk).astype(np.float32), np.zeros(n, np.int32)))
    ranges = ((0, 40), (40, 41), (41, 100), (100, 150))
    single = sc.write(tmp_path / "big.h5", items, dtype="float16")
    shards = [sc.write(tmp_path / f"big{j}.h5", items[a:b], dtype="float16") for j, (a, b) in enumerate(ranges)]
    s = sharded.open_shards(shards)
    assert s.axis_length() >= 524_288
    key = IndexKey("h", "raw", 0.3)
    with open_recording(single) as rec:
        one = open_index(rec, key)
        for q in (MatchQuery(units=(0, 1, 2, 3, 4), limit=50, candidate_cap=500),
                  MatchQuery(units=(0, 1, 2, 3, 4, 5), signs=(1, -1, 1, -1, 1, -1), mode="scored", limit=30,
                             candidate_cap=2000),
                  MatchQuery(units=(2, 5, 7), mode="scored", limit=100, candidate_cap=None)):
            expected = match(one, q)
            got = sharded.match(s, key, q, sharded.InlineBackend())
            assert len(expected) == q.limit
            for f in FIELDS:
                np.testing.assert_array_equal(getattr(got, f), getattr(expected, f), err_msg=f)
            assert got.exact == expected.exact
