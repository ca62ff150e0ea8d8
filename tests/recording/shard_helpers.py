"""Helpers of the sharded-recording tests: make shards by hand, compare two recordings value for value."""

from __future__ import annotations

import h5py
import numpy as np

from lstmviz.recording import open_recording
from lstmviz.recording.logical_file import write_logical
from lstmviz.recording.shards import ShardEntry, file_sha256, shard_path


def shard_by_hand(record_block, out, blocks, settings=None):
    """Record each ``(start, stop)`` of ``blocks`` with ``record_block(path, items, provenance)`` as the shards of
    ``out`` (what each rank of a torchrun does) and write the logical file ``out``; returns the entries."""
    entries = []
    shard_path(out, 0, len(blocks)).parent.mkdir(exist_ok=True)
    for rank, block in enumerate(blocks):
        path = shard_path(out, rank, len(blocks))
        extra = {"shard": {"rank": rank, "world_size": len(blocks), "items": list(block), "settings": settings or {}}}
        record_block(path, block, extra)
        entries.append(ShardEntry(path.absolute(), tuple(block), file_sha256(path)))
    write_logical(out, entries)
    return entries


def datasets(path) -> dict[str, np.ndarray]:
    """Every dataset of an HDF5 file but ``/provenance`` (which names the shards), read whole."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and name != "provenance":
                out[name] = obj[()]
        f.visititems(visit)
    return out


def assert_same_recording(expected_path, actual_path) -> None:
    """The two files hold the same recording: through the reader (every tap of every axis, offsets, tokens,
    annotations) and dataset by dataset in HDF5 (geometry, labels, vocabulary: everything but provenance)."""
    with open_recording(expected_path) as a, open_recording(actual_path) as b:
        assert (a.n_items, a.n_positions, list(a.axes), list(a.taps)) == (b.n_items, b.n_positions, list(b.axes),
                                                                          list(b.taps))
        for axis in a.axes:
            np.testing.assert_array_equal(a.axis_offsets(axis), b.axis_offsets(axis))
            if a.axis_has_tokens(axis):
                n = a.axis_length(axis)
                np.testing.assert_array_equal(a.token_ids(0, n, axis=axis), b.token_ids(0, n, axis=axis))
        for tap in a.taps:
            x, y = a.states(tap), b.states(tap)
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y, err_msg=tap)
        assert a.annotations == b.annotations
        for name in a.annotations:
            np.testing.assert_array_equal(a.annotation(name), b.annotation(name))
        assert a.vocab == b.vocab
    left, right = datasets(expected_path), datasets(actual_path)
    assert sorted(left) == sorted(right)
    for name in left:
        np.testing.assert_array_equal(left[name], right[name], err_msg=name)
