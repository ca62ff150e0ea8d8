"""Sharded recordings: shards of item blocks joined by a logical file of HDF5 virtual datasets that reads
exactly like one recording (every family), checks on open, resume decisions, and ``lstmviz.record(...,
distributed=True)`` under torchrun with 4 processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
import torch
from shard_helpers import assert_same_recording, shard_by_hand
from torch import nn

from lstmviz.datasets import load_dataset
from lstmviz.recording import open_recording, summarize
from lstmviz.recording.distributed import reuse_problem
from lstmviz.recording.format import RecordingError
from lstmviz.recording.logical_file import ShardMismatch, write_logical
from lstmviz.recording.recorder import record
from lstmviz.recording.shards import (
    ShardEntry,
    file_sha256,
    is_sharded,
    item_block,
    read_shard_table,
    shard_directory,
    shard_path,
    verify_shards,
    write_checksum,
)


class TinyLM(nn.Module):
    def __init__(self, vocab: int):
        super().__init__()
        self.emb = nn.Embedding(vocab, 5)
        self.rnn = nn.LSTM(5, 4, 2, batch_first=True)

    def forward(self, tokens):
        return self.rnn(self.emb(tokens))[0]


@pytest.fixture(scope="module")
def parens():
    return load_dataset("parens", "valid", tokens=400, item_length=30)


def tiny_lm(parens, seed=0):
    torch.manual_seed(seed)
    return TinyLM(len(parens.vocab)).eval()


def lm_shards(parens, out, blocks, model=None, signals=None, **settings):
    model = model or tiny_lm(parens)
    return shard_by_hand(lambda p, items, extra: record(model, parens, p, items=items, batch_size=2, signals=signals,
                                                        provenance=extra),
                         out, blocks, settings)


# --- blocks and the table ------------------------------------------------------------------------

def test_item_blocks_are_contiguous_in_rank_order_and_more_ranks_than_items_are_refused():
    blocks = [item_block(10, r, 4) for r in range(4)]
    assert blocks == [(0, 2), (2, 5), (5, 7), (7, 10)]
    assert [item_block(3, r, 3) for r in range(3)] == [(0, 1), (1, 2), (2, 3)]
    with pytest.raises(ValueError, match="4 processes for 3 items.*at most 3"):
        item_block(3, 0, 4)


def test_the_shard_table_lists_the_shards_in_corpus_order_and_an_ordinary_file_has_none(parens, tmp_path):
    single = record(tiny_lm(parens), parens, tmp_path / "one.h5", batch_size=2)
    assert read_shard_table(single) == [] and not is_sharded(single)
    out = tmp_path / "run.h5"
    entries = lm_shards(parens, out, [(0, 4), (4, 10)])
    table = read_shard_table(out)
    assert is_sharded(out)
    assert table == entries
    assert [e.path for e in table] == [tmp_path / "run.shards" / f"shard-0000{r}-of-00002.h5" for r in (0, 1)]
    assert all(e.path.is_absolute() and e.sha256 == file_sha256(e.path) for e in table)
    with open_recording(out) as rec:
        assert rec.provenance["sharded"]["ranks"] == 2
        assert [s["sha256"] for s in rec.provenance["sharded"]["shards"]] == [e.sha256 for e in entries]
        assert "\nShards      2 in run.shards/ (" in summarize(rec)  # lstmviz info


# --- the logical file reads like one recording -----------------------------------------------------

def test_a_language_model_recording_over_uneven_shards_equals_one_recording(parens, tmp_path):
    model = tiny_lm(parens)
    single = record(model, parens, tmp_path / "one.h5", batch_size=2)
    out = tmp_path / "run.h5"
    lm_shards(parens, out, [(0, 2), (2, 8), (8, 10)], model=model)
    assert_same_recording(single, out)
    with open_recording(out) as rec:  # slices across a shard boundary, unit selections
        a, b = rec.item_offsets[1] - 3, rec.item_offsets[3] + 2
        with open_recording(single) as one:
            np.testing.assert_array_equal(rec.states("rnn/layer1/c", a, b, units=[3, 0]),
                                          one.states("rnn/layer1/c", a, b, units=[3, 0]))


def test_a_recording_of_several_checkpoints_over_shards_equals_one_recording(parens, tmp_path):
    model = tiny_lm(parens)
    early = {k: v + 0.1 for k, v in model.state_dict().items()}
    checkpoints = [(100, early), (200, model)]
    single = record(model, parens, tmp_path / "one.h5", batch_size=2, checkpoints=checkpoints)
    out = tmp_path / "run.h5"
    shard_by_hand(lambda p, items, extra: record(model, parens, p, items=items, batch_size=2, provenance=extra,
                                                 checkpoints=checkpoints), out, [(0, 4), (4, 10)])
    assert_same_recording(single, out)
    with open_recording(out) as rec, open_recording(single) as one:
        assert [c.name for c in rec.checkpoints] == ["step-000100", "step-000200"]
        np.testing.assert_array_equal(rec.at_checkpoint("step-000100").states("rnn/layer0/c"),
                                      one.at_checkpoint("step-000100").states("rnn/layer0/c"))
    with h5py.File(out, "r") as f:  # the main checkpoint's states are /taps itself, as in any recording
        assert f["checkpoints/step-000200/taps/rnn/layer0/c"].id == f["taps/rnn/layer0/c"].id


def test_a_graph_recording_with_pooled_levels_over_shards_equals_one_recording(tmp_path):
    from lstmviz.engines import build_engine
    from lstmviz.engines.families.graph import GraphData, SampleGraphs
    from lstmviz.recording.graph_recorder import record_graph

    data = SampleGraphs(GraphData(5, 3, "graph"), graphs=5, nodes=7, seed=2)
    torch.manual_seed(0)
    model = build_engine("chebnet", GraphData(5, 3, "graph"), hidden_size=4, pool_levels=2).eval()
    single = record_graph(model, data, tmp_path / "one.h5")
    out = tmp_path / "run.h5"
    shard_by_hand(lambda p, items, extra: record_graph(model, data, p, items=items, provenance=extra),
                  out, [(0, 2), (2, 5)])
    assert_same_recording(single, out)
    with open_recording(out) as rec, open_recording(single) as one:
        assert len(rec.axes) > 1  # pooled levels: edge offsets shifted per shard, pooling maps item-local
        for axis in rec.axes:
            e1, o1 = one.graph_edges(axis)
            e2, o2 = rec.graph_edges(axis)
            np.testing.assert_array_equal(e1, e2)
            np.testing.assert_array_equal(o1, o2)


def test_an_image_recording_over_shards_equals_one_recording(tmp_path):
    from lstmviz.engines.families.image import ImageData, SampleImages
    from lstmviz.engines.vision.cnn import build
    from lstmviz.recording.image_recorder import record_images

    torch.manual_seed(0)
    model = build(2, 8, 6, 3, hidden_size=3, num_layers=3).eval()
    data = SampleImages(ImageData(channels=2, height=8, width=6, num_classes=3), images=6, seed=1)
    single = record_images(model, data, tmp_path / "one.h5", chunk=2)
    out = tmp_path / "run.h5"
    shard_by_hand(lambda p, items, extra: record_images(model, data, p, items=items, chunk=2, provenance=extra),
                  out, [(0, 2), (2, 6)])
    assert_same_recording(single, out)


def test_a_seq2seq_recording_over_shards_equals_one_recording(tmp_path):
    from lstmviz.engines import registry
    from lstmviz.engines.families.seq2seq import Seq2SeqData
    from lstmviz.recording.seq2seq_recorder import record_seq2seq

    data = load_dataset("reverse", "test", items=9, max_length=7)
    torch.manual_seed(0)
    model = registry.get("seq2seq-attn").build_model(Seq2SeqData(vocab_size=len(data.vocab)), embedding_size=6,
                                                     hidden_size=8, num_layers=2).eval()
    single = record_seq2seq(model, data, tmp_path / "one.h5", decode="greedy", batch_size=3)
    out = tmp_path / "run.h5"
    # the longest source is in neither block alone: the attention width still comes from every item
    shard_by_hand(lambda p, items, extra: record_seq2seq(model, data, p, decode="greedy", batch_size=3, items=items,
                                                         provenance=extra), out, [(0, 3), (3, 9)])
    assert_same_recording(single, out)


def test_a_strokes_recording_over_shards_equals_one_recording(tmp_path):
    from lstmviz.engines import registry
    from lstmviz.engines.families.strokes import SampleStrokes, StrokeData
    from lstmviz.recording.strokes_recorder import record_strokes

    torch.manual_seed(0)
    data = StrokeData(num_classes=3)
    model = registry.get("char-rnn-mdn").build_model(data, hidden_size=6, recogniser_hidden=4, components=2,
                                                     embedding_dim=3).eval()
    items = SampleStrokes(data, items=7, seed=1)
    single = record_strokes(model, items, tmp_path / "one.h5", batch_size=3)
    out = tmp_path / "run.h5"
    shard_by_hand(lambda p, block, extra: record_strokes(model, items, p, batch_size=3, items=block, provenance=extra),
                  out, [(0, 3), (3, 7)])
    assert_same_recording(single, out)


def test_the_logical_file_opens_from_any_working_directory_and_after_its_folder_moved(parens, tmp_path, monkeypatch):
    model = tiny_lm(parens)
    single = record(model, parens, tmp_path / "one.h5", batch_size=2)
    out = tmp_path / "a" / "run.h5"
    out.parent.mkdir()
    lm_shards(parens, out, [(0, 6), (6, 10)], model=model)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "run.shards").mkdir(parents=True)  # decoys where a cwd-relative lookup would look
    for name in os.listdir(shard_directory(out)):
        shutil.copy(shard_directory(out) / name, elsewhere / "run.shards" / name)
    with h5py.File(elsewhere / "run.shards" / "shard-00000-of-00002.h5", "r+") as f:
        f["taps/rnn/layer0/h"][0, 0] = 123.0
    monkeypatch.chdir(elsewhere)
    assert_same_recording(single, out)
    assert_same_recording(single, os.path.relpath(out, elsewhere))
    moved = tmp_path / "b"
    shutil.move(out.parent, moved)
    monkeypatch.chdir(tmp_path)
    assert_same_recording(single, moved / "run.h5")


def test_a_missing_or_replaced_shard_is_refused_on_open_never_read_as_fill_values(parens, tmp_path):
    model = tiny_lm(parens)
    out = tmp_path / "run.h5"
    lm_shards(parens, out, [(0, 5), (5, 10)], model=model)
    second = shard_path(out, 1, 2)
    second.rename(tmp_path / "aside.h5")
    with pytest.raises(RecordingError, match=r"shard 1 \(run.shards/shard-00001-of-00002.h5\): no such file; put the shards folder back"):
        open_recording(out)
    (tmp_path / "aside.h5").rename(second)
    with open_recording(out):
        pass
    record(model, parens, second, items=(5, 10), batch_size=2,
           provenance={"shard": {"rank": 1, "world_size": 2, "items": [5, 10], "settings": {}}})
    with pytest.raises(RecordingError, match="shard 1 .* is not the shard this logical file was made from"):
        open_recording(out)


def test_only_the_shards_named_in_the_table_may_be_sources_of_virtual_datasets(parens, tmp_path):
    out = tmp_path / "run.h5"
    lm_shards(parens, out, [(0, 5), (5, 10)])
    other = record(tiny_lm(parens), parens, tmp_path / "other.h5", batch_size=2)
    with h5py.File(out, "r+") as f:  # a tap mapped onto a file the table does not name
        del f["taps/rnn/layer0/h"]
        layout = h5py.VirtualLayout((f["taps/rnn/layer0/c"].shape), "f4")
        layout[:] = h5py.VirtualSource("other.h5", "/taps/rnn/layer0/h", shape=layout.shape)
        f.create_virtual_dataset("taps/rnn/layer0/h", layout)
    with pytest.raises(RecordingError, match="'/taps/rnn/layer0/h' is a virtual dataset over 'other.h5'"):
        open_recording(out)
    with h5py.File(other, "r+") as f:  # an ordinary recording never has a virtual dataset
        layout = h5py.VirtualLayout((3, 4), "f4")
        layout[:] = h5py.VirtualSource("run.h5", "/taps/rnn/layer0/c", shape=(3, 4))
        del f["derived"]
        f.create_virtual_dataset("derived", layout)
    with pytest.raises(RecordingError, match="is a virtual dataset .* never refers to other files"):
        open_recording(other)


@pytest.mark.parametrize("name", ["/etc/passwd", "../x.h5", "run.shards/../../x.h5"])
def test_a_shard_table_naming_a_file_outside_the_folder_is_refused(parens, tmp_path, name):
    out = tmp_path / "run.h5"
    lm_shards(parens, out, [(0, 5), (5, 10)])
    with h5py.File(out, "r+") as f:
        f.attrs["lstmviz_shards"] = f'[{{"file": "{name}", "items": [0, 10], "sha256": "00"}}]'
    with pytest.raises(RecordingError, match="below its own folder"):
        open_recording(out)


def test_verify_shards_hashes_every_shard(parens, tmp_path):
    out = tmp_path / "run.h5"
    lm_shards(parens, out, [(0, 5), (5, 10)])
    assert verify_shards(out) == []
    with h5py.File(shard_path(out, 0, 2), "r+") as f:  # a tap value changed in place: the open checks cannot see it
        f["taps/rnn/layer1/h"][2, 1] = 7.0
    problems = verify_shards(out)
    assert len(problems) == 1 and "shard 0" in problems[0] and "changed since the logical file was written" in problems[0]


def test_shards_of_different_recordings_are_not_joined(parens, tmp_path):
    model = tiny_lm(parens)
    out = tmp_path / "run.h5"
    shard_path(out, 0, 2).parent.mkdir()
    paths = [shard_path(out, r, 2) for r in (0, 1)]
    record(model, parens, paths[0], items=(0, 5), signals=["rnn/layer0/*"])
    record(model, parens, paths[1], items=(5, 10), signals=["rnn/layer1/*"])
    entries = [ShardEntry(p, b, file_sha256(p)) for p, b in zip(paths, [(0, 5), (5, 10)])]
    with pytest.raises(ShardMismatch, match="shard 1 .* are not parts of one recording"):
        write_logical(out, entries)
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".run.h5")]


def test_a_shard_is_kept_only_with_its_checksum_and_the_same_settings(parens, tmp_path):
    model = tiny_lm(parens)
    shard = tmp_path / "shard-00000-of-00002.h5"
    expected = {"rank": 0, "world_size": 2, "items": [0, 5], "total_items": 10,
                "settings": {"dtype": "float32", "signals": None}}
    assert reuse_problem(shard, expected) == "it does not exist"
    record(model, parens, shard, items=(0, 5), provenance={"shard": expected})
    assert "no checksum file" in reuse_problem(shard, expected)
    write_checksum(shard, file_sha256(shard))
    assert reuse_problem(shard, expected) is None
    other = {**expected, "settings": {"dtype": "float16", "signals": None}}
    assert reuse_problem(shard, other) == ("it was recorded with other settings: dtype ('float32' then, 'float16' "
                                           "now)")
    assert "items" in reuse_problem(shard, {**expected, "items": [0, 4]})
    with h5py.File(shard, "r+") as f:
        f["taps/rnn/layer0/c"][0, 0] += 1
    assert "sha256 differs from its checksum file" in reuse_problem(shard, expected)


# --- lstmviz.record(..., distributed=True) in a user's torchrun script ----------------------------

SCRIPT = """
import sys, torch
from torch import nn
import lstmviz
from lstmviz.datasets import load_dataset

class TinyLM(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.emb = nn.Embedding(vocab, 5)
        self.rnn = nn.LSTM(5, 4, 2, batch_first=True)

    def forward(self, tokens):
        return self.rnn(self.emb(tokens))[0]

data = load_dataset("parens", "valid", tokens=400, item_length=30)
torch.manual_seed(0)
model = TinyLM(len(data.vocab)).eval()
path = lstmviz.record(model, data, sys.argv[1], batch_size=1, distributed=True)
print("returned", path)
"""


def torchrun(args, cwd, n, env=None):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}", *args]
    environ = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(command, cwd=cwd, env=environ, capture_output=True, text=True, timeout=300)


def test_record_distributed_in_a_users_torchrun_script_with_4_processes(parens, tmp_path):
    (tmp_path / "script.py").write_text(textwrap.dedent(SCRIPT))
    done = torchrun(["script.py", "states.h5"], tmp_path, 4)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("returned") == 4  # every rank returns, after the logical file exists
    single = record(tiny_lm(parens), parens, tmp_path / "one.h5", batch_size=1)
    table = read_shard_table(tmp_path / "states.h5")
    assert [e.items for e in table] == [(0, 2), (2, 5), (5, 7), (7, 10)]
    assert_same_recording(single, tmp_path / "states.h5")
    with open_recording(tmp_path / "states.h5") as rec:
        shard = rec.provenance["sharded"]["shards"][2]
        assert shard["file"] == "states.shards/shard-00002-of-00004.h5" and shard["items"] == [5, 7]
