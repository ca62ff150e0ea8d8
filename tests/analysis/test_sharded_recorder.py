"""Shards recorded by the recorder itself (a model over item ranges of a dataset) analyse like the
recording of all items."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmviz.analysis import sharded
from lstmviz.analysis.bitindex import IndexKey, open_index
from lstmviz.analysis.match_types import MatchQuery
from lstmviz.analysis.matching import match
from lstmviz.datasets.base import SequenceDataset
from lstmviz.datasets.registry import load_dataset
from lstmviz.engines.recurrent.lstm import LSTMLanguageModel
from lstmviz.recording import open_recording
from lstmviz.recording.recorder_run import record

RANGES = ((0, 9), (9, 10), (10, 31))
PROVENANCE = {"engine": "lstm", "sha256": "a" * 64}


class ItemRange(SequenceDataset):
    """Items ``[start, stop)`` of a dataset, as the dataset (its name, split, vocabulary, annotations)."""

    def __init__(self, base, start, stop):
        self.base, self.start, self.stop = base, start, stop
        for name in ("name", "split", "vocab", "annotation_specs", "options", "source"):
            setattr(self, name, getattr(base, name))

    def __len__(self):
        return self.stop - self.start

    def _item(self, i):
        return self.base[self.start + i]


def model(seed):
    torch.manual_seed(seed)
    return LSTMLanguageModel(vocab_size=8, embedding_dim=8, hidden_size=16, num_layers=1, dropout=0.0)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recorded")
    data = load_dataset("parens", tokens=3000, item_length=80)
    assert len(data) >= RANGES[-1][1]
    net = model(0)
    # one item per batch: an item's states do not depend on which items share its batch
    kw = dict(signals=["layer0/c"], batch_size=1, dtype="float16", provenance=PROVENANCE, progress=False)
    whole = record(net, ItemRange(data, 0, RANGES[-1][1]), folder / "all.h5", **kw)
    shards = [record(net, ItemRange(data, a, b), folder / f"part{j}.h5", **kw) for j, (a, b) in enumerate(RANGES)]
    other = record(model(1), ItemRange(data, 10, 31), folder / "other.h5",
                   **{**kw, "provenance": {**PROVENANCE, "sha256": "b" * 64}})
    return whole, shards, other


def test_recorded_shards_match_like_the_whole_recording(recorded):
    whole, shards, _ = recorded
    s = sharded.open_shards(shards)
    assert [x.items for x in s.shards] == list(RANGES)
    with open_recording(whole) as rec:
        tap = next(iter(rec.taps))
        key = IndexKey(tap, "zscore", 0.8)
        one = open_index(rec, key)
        for q in (MatchQuery(units=(0, 3, 5)), MatchQuery(units=(1, 2, 7, 9), signs=(1, -1, 1, -1), mode="scored",
                                                             limit=10, pad_right=1)):
            expected = match(one, q)
            got = sharded.match(s, key, q, sharded.InlineBackend())
            assert len(expected) > 0
            for f in ("starts", "lengths", "items", "levels", "intersection", "union", "score"):
                np.testing.assert_array_equal(getattr(got, f), getattr(expected, f), err_msg=f)
        with sharded.ShardedRecording(s) as view:
            np.testing.assert_array_equal(view.token_ids(0, view.n_positions), rec.token_ids(0, rec.n_positions))
            for name in rec.annotations:
                np.testing.assert_array_equal(view.annotation(name), rec.annotation(name))


def test_a_shard_of_another_checkpoint_is_refused(recorded):
    _, shards, other = recorded
    with pytest.raises(sharded.ShardError, match=r"other\.h5 was not recorded like .*part0\.h5: its provenance 'sha256'"):
        sharded.open_shards([shards[0], shards[1], other])


def test_a_logical_file_with_virtual_taps_matches_like_the_whole_recording(recorded, tmp_path):
    """The recording side's logical file (HDF5 virtual datasets over the shards, lstmviz.recording.logical_file)
    is what `lstmviz match` and the window open: per-shard matching through its table and the single-index
    match on the logical file itself both give the whole recording's matches."""
    from lstmviz.recording.logical_file import write_logical
    from lstmviz.recording.shards import ShardEntry, file_sha256, read_shard_table, shard_path

    whole, shards, _ = recorded
    out = tmp_path / "logical.h5"
    entries = []
    for rank, (part, block) in enumerate(zip(shards, RANGES)):
        target = shard_path(out, rank, len(RANGES))
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(part.read_bytes())
        entries.append(ShardEntry(target.absolute(), block, file_sha256(target)))
    write_logical(out, entries)
    assert [e.items for e in read_shard_table(out)] == list(RANGES)
    s = sharded.open_shards(out)
    assert s.source == str(out.resolve()) and len(s.shards) == len(RANGES)
    q = MatchQuery(units=(0, 3, 5))
    with open_recording(whole) as rec, open_recording(out) as logical:
        tap = next(iter(rec.taps))
        key = IndexKey(tap, "zscore", 0.8)
        expected = match(open_index(rec, key), q)
        through_shards = sharded.match(s, key, q, sharded.InlineBackend())
        on_the_logical_file = match(open_index(logical, key), q)
        assert len(expected) > 0
        for got in (through_shards, on_the_logical_file):
            for f in ("starts", "lengths", "items", "levels", "score"):
                np.testing.assert_array_equal(getattr(got, f), getattr(expected, f), err_msg=f)
