"""Damaged and crafted recordings: refused in one sentence, never a traceback, a hang or a silently wrong result.

A seeded generator makes about 400 damaged copies of two small recordings (one of sequences, one of
graphs with every kind of position geometry): random bit flips anywhere, bit flips aimed at the bytes
of one dataset, truncations, and structured edits (wrong dtypes and shapes, sparse datasets declaring
huge sizes, links to other files, bad token ids, bad attributes, edges and pooling maps out of range,
bad edge offsets, missing geometry datasets, pooling cycles).
Each is opened and read in full — every tap of every checkpoint, tokens, annotations, the geometry of
every item on every axis — and the result is compared with the undamaged file's. What is allowed:

* a ``RecordingError`` whose text is ``"<path>: <problem>"`` (on open or on a read) — nothing else;
* the same result as the undamaged file (the damage hit nothing that is read);
* for damage to tap values only: different tap values and everything else the same. Tap values carry
  no checksum (docs/format.md, "Checksums"; docs/security.md); every other difference is a wrong
  result without a message and fails the test.

HDF5 is C code that a damaged file could send into a loop, which no in-process alarm interrupts, so
the cases run in one worker process (this file run as a script) under a per-case watchdog
(``faulthandler``, which ends the worker and names the case).
"""

from __future__ import annotations

import faulthandler
import json
import math
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import h5py
import numpy as np
import pytest

SEED = 20240610
CASE_TIMEOUT_S = 20  # generous for a 2-core CI machine; a case takes milliseconds
VOCAB = ["<pad>", "the", "über", "naïve", "日本", "🙂"] + [f"w{i}" for i in range(44)]


# --- the recording every case damages ------------------------------------------------------------


def make_base(path: Path) -> Path:
    """A small recording with every feature the reader checks: axes, annotations, checkpoints."""
    from lstmviz.recording import RecordingWriter

    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 40, 12)
    with RecordingWriter(path, vocab=VOCAB, provenance={"engine": "lstm", "config": {"hidden_size": 16}}) as w:
        w.add_axis("half", description="every second position", tokens=True)  # with its own tokens
        w.add_tap("layer0/h", 16, layer=0)
        w.add_tap("layer0/c", 8, layer=0, dtype="float16")
        w.add_tap("pool", 4, axis="half")
        w.add_annotation("pos", kind="categorical", labels=["NN", "VB", "DT", "JJ", "IN"])
        w.add_annotation("depth", kind="numeric")
        w.add_annotation("src", kind="categorical", level="item", labels=["a", "b", "c"])
        w.add_checkpoint("step-000001", step=1, metrics={"loss": 2.5})
        w.add_checkpoint("step-000002", step=2, metrics={"loss": 1.5})
        for n in lengths:
            n, m = int(n), (int(n) + 1) // 2
            states = lambda: {"layer0/h": rng.standard_normal((n, 16)), "layer0/c": rng.standard_normal((n, 8)),
                              "pool": rng.standard_normal((m, 4))}
            w.append_item(rng.integers(0, len(VOCAB), n), states(),
                          {"pos": rng.integers(-1, 5, n), "depth": rng.standard_normal(n)},
                          {"src": int(rng.integers(0, 3))}, axis_tokens={"half": rng.integers(0, len(VOCAB), m)})
            w.append_checkpoint_item("step-000001", states())
    return path


GRAPH_SIZES = [3, 7, 1, 12, 5, 9, 4, 15, 2, 6]
MEMBERS = ("audio", "video", "text")


def make_graph_base(path: Path) -> Path:
    """A small recording of graphs: a graph main axis (self-loops, isolated nodes, weights, coordinates,
    names), a pooled graph axis (pooling maps, filler), a scalar, an image and a set axis."""
    from lstmviz.geometry import AxisGeometry, GraphGeometry, ImageGeometry, SetGeometry
    from lstmviz.recording import RecordingWriter

    rng = np.random.default_rng(1)
    with RecordingWriter(path, vocab=VOCAB[:8], provenance={"engine": "chebnet"}) as w:
        w.set_geometry("positions", "graph")
        w.add_axis("level1", geometry=AxisGeometry("graph", pooled_from="positions"))
        w.add_axis("graph", geometry="scalar")
        w.add_axis("map", geometry=AxisGeometry("image", stride=2, receptive_field=3, offset=0.5))
        w.add_axis("modality", geometry=AxisGeometry("set", members=MEMBERS))
        w.add_tap("conv", 8, layer=0)
        w.add_tap("pool", 4, axis="level1", dtype="float16")
        w.add_tap("readout", 2, axis="graph")
        w.add_tap("image", 3, axis="map")
        w.add_tap("fusion", 2, axis="modality")
        w.add_annotation("community", kind="categorical", labels=["a", "b", "c"])
        for n in GRAPH_SIZES:
            edges = rng.integers(0, n, (int(rng.integers(0, 3 * n)), 2))
            coarse = (n + 1) // 2
            pooling = np.arange(n) // 2
            pooling[rng.random(n) < 0.1] = -1
            graph = GraphGeometry.from_edges(n, edges, weights=rng.random(len(edges)) if len(edges) else None,
                                             coordinates=rng.standard_normal((n, 2)),
                                             node_names=[f"n{k}" for k in range(n)], directed=True)
            if not len(edges) and graph.weights is None:
                graph = GraphGeometry.from_edges(n, [[0, 0]], weights=[1.0], coordinates=graph.coordinates,
                                                 node_names=graph.node_names)
            level = GraphGeometry.from_edges(coarse, rng.integers(0, coarse, (coarse, 2)), pooling_map=pooling,
                                             filler=rng.random(coarse) < 0.2 if coarse > 1 else None)
            h, wd = int(rng.integers(1, 4)), int(rng.integers(1, 4))
            member = rng.integers(0, 3, int(rng.integers(1, 4)))
            w.append_item(rng.integers(0, 8, n),
                          {"conv": rng.standard_normal((n, 8)), "pool": rng.standard_normal((coarse, 4)),
                           "readout": rng.standard_normal((1, 2)), "image": rng.standard_normal((h * wd, 3)),
                           "fusion": rng.standard_normal((len(member), 2))},
                          {"community": rng.integers(-1, 3, n)},
                          geometry={"positions": graph, "level1": level, "map": ImageGeometry(h, wd),
                                    "modality": SetGeometry.of(member, MEMBERS)})
    return path


# --- reading everything -----------------------------------------------------------------------------


def _plain(x):
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    return x


def read_all(path: Path) -> tuple[dict, dict]:
    """``(meta, taps)``: everything a user can read from the file, through the public API."""
    from lstmviz.recording import open_recording

    with open_recording(path) as rec:
        meta = {
            "n": [rec.n_items, rec.n_positions],
            "axes": {a: rec.axis_offsets(a).tolist() for a in rec.axes},
            "axis descriptions": rec.axes,
            "vocab": rec.vocab,
            "token ids": rec.token_ids(0, rec.n_positions).tolist(),
            "tokens": rec.tokens(0, rec.n_positions),
            "axis tokens": {a: rec.tokens(0, rec.axis_length(a), axis=a) for a in rec.axes if a != "positions"
                            and rec.axis_has_tokens(a)},
            "provenance": {k: v for k, v in rec.provenance.items() if k != "created"},
            "taps": {k: list(v.__dict__.values()) for k, v in rec.taps.items()},
            "annotations": {k: list(v.__dict__.values()) for k, v in rec.annotations.items()},
            "annotation values": {k: _plain(rec.annotation(k).tolist()) for k in rec.annotations},
            "checkpoints": [list(c.__dict__.values()) for c in rec.checkpoints],
            "geometry": _geometry(rec),
        }
        taps = {}
        for view in [rec, *(rec.at_checkpoint(c.name) for c in rec.checkpoints)]:
            for tap in rec.taps:
                taps[f"{view.checkpoint}:{tap}"] = view.states(tap)
    return meta, taps


def _geometry(rec) -> dict:
    """Every axis's geometry, every item's geometry on it, and the whole-axis reads, as plain values."""
    out = {}
    for axis in rec.axes:
        g = rec.axis_geometry(axis)
        items = []
        for i in range(rec.n_items):
            item = rec.item_geometry(i, axis)
            items.append(None if item is None else {k: _plain(v.tolist() if isinstance(v, np.ndarray) else v)
                                                    for k, v in item.__dict__.items()})
        out[axis] = {"axis": _plain(list(g.__dict__.values())), "items": items, "filler": rec.filler(axis).tolist()}
        if g.kind == "graph":
            edges, offsets = rec.graph_edges(axis)
            out[axis]["edges"] = [edges.tolist(), offsets.tolist()]
            if g.pooled_from is not None:
                out[axis]["pooling"] = rec.pooling_map(axis).tolist()
    return out


def verdict(path: Path, truth: tuple[dict, dict]) -> dict:
    """Open and read ``path`` completely and say how the result relates to the undamaged file's."""
    from lstmviz.recording import RecordingError

    try:
        meta, taps = read_all(path)
    except RecordingError as e:
        well_formed = type(e) is RecordingError and bool(e.problem.strip()) and str(e) == f"{path}: {e.problem}"
        return {"outcome": "refused" if well_formed else "badly refused", "message": str(e)}
    except BaseException as e:  # noqa: BLE001 - anything else is what the test exists to find
        return {"outcome": "crash", "message": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(limit=6)}
    true_meta, true_taps = truth
    differing = [k for k in true_meta if json.dumps(_plain(meta[k])) != json.dumps(_plain(true_meta[k]))]
    if differing:
        return {"outcome": "wrong", "message": f"differs silently: {', '.join(differing)}"}
    shapes = [k for k in true_taps if taps[k].shape != true_taps[k].shape]
    if shapes:
        return {"outcome": "wrong", "message": f"tap shapes differ silently: {shapes}"}
    values = [k for k in true_taps if not np.array_equal(taps[k], true_taps[k], equal_nan=True)]
    return {"outcome": "tap values differ", "message": ", ".join(values)} if values else {"outcome": "same"}


# --- the damage ---------------------------------------------------------------------------------------


def _byte_ranges(path: Path, names: list[str]) -> list[tuple[int, int]]:
    """File byte ranges holding the raw values of datasets ``names`` (chunks or contiguous storage)."""
    ranges = []
    with h5py.File(path, "r") as f:
        for name in names:
            dsid = f[name].id
            if f[name].chunks is None:
                ranges.append((dsid.get_offset(), dsid.get_storage_size()))
                continue
            for i in range(dsid.get_num_chunks()):
                info = dsid.get_chunk_info(i)
                ranges.append((info.byte_offset, info.size))
    return [(a, n) for a, n in ranges if a is not None and n > 0]


def _flip(path: Path, rng, positions: list[int]) -> None:
    data = bytearray(path.read_bytes())
    for p in positions:
        data[p] ^= 1 << int(rng.integers(0, 8))
    path.write_bytes(bytes(data))


def _flip_in(names: list[str]):
    def damage(path: Path, rng, ctx) -> None:
        ranges = _byte_ranges(path, names)
        sizes = np.array([n for _, n in ranges], dtype=float)
        picks = rng.choice(len(ranges), size=int(rng.integers(1, 4)), p=sizes / sizes.sum())
        _flip(path, rng, [ranges[i][0] + int(rng.integers(0, ranges[i][1])) for i in picks])
    return damage


def _flip_anywhere(path: Path, rng, ctx) -> None:
    size = path.stat().st_size
    _flip(path, rng, [int(p) for p in rng.integers(0, size, int(rng.integers(1, 9)))])


def _truncate(path: Path, rng, ctx) -> None:
    data = path.read_bytes()
    cut = int(rng.choice([0, 1, 8, 512, len(data) - 1, len(data) - 4096, int(rng.integers(0, len(data)))]))
    path.write_bytes(data[:max(0, cut)])


def _edit(fn):
    def damage(path: Path, rng, ctx) -> None:
        with h5py.File(path, "r+") as f:
            fn(f, rng, ctx)
    return damage


def _replace(f, name, data=None, **create):
    attrs = dict(f[name].attrs) if name in f else {}
    if name in f:
        del f[name]
    ds = f.create_dataset(name, data=data, **create)
    ds.attrs.update(attrs)
    return ds


def _sparse(f, name, shape, dtype, head=None, rows=1 << 12):
    """``name`` declaring ``shape`` with only ``head`` written: the other chunks are never allocated."""
    chunks = (rows,) + tuple(min(s, 1 << 12) for s in shape[1:])
    ds = _replace(f, name, shape=shape, dtype=dtype, chunks=chunks, maxshape=(None,) * len(shape))
    if head is not None:
        ds[:len(head)] = head


def _set(name, attr, value):
    return lambda f, rng, ctx: f[name].attrs.__setitem__(attr, value)


def _del(name):
    return lambda f, rng, ctx: f.__delitem__(name)


def _set_item(name, value):
    def edit(f, rng, ctx):
        ds = f[name]
        ds[int(rng.integers(0, ds.shape[0]))] = value
    return edit


def _shift_in_range(name, modulo):
    def edit(f, rng, ctx):
        ds = f[name]
        i = int(rng.integers(0, ds.shape[0]))
        ds[i] = (int(ds[i]) + int(rng.integers(1, modulo))) % modulo
    return edit


def _move_offset(f, rng, ctx):
    """An item boundary moved to another position, the offsets still strictly increasing (a valid layout)."""
    ds = f["axes/positions/item_offsets"]
    o = ds[()]
    movable = [i for i in range(1, len(o) - 1) if o[i + 1] - o[i - 1] > 2]
    i = int(rng.choice(movable))
    ds[i] = int(rng.choice([v for v in range(o[i - 1] + 1, o[i + 1]) if v != o[i]]))


def _change_vocab_entry(f, rng, ctx):
    vocab = list(VOCAB)
    vocab[int(rng.integers(0, len(vocab)))] += "x"
    _replace(f, "vocab", np.array(vocab, dtype=object), dtype=h5py.string_dtype())


def _external_link(target, obj="/"):
    def edit(f, rng, ctx):
        name = str(rng.choice(["taps/pool", "tokens", "vocab", "derived/x", "annotations/depth/values"]))
        if name in f:
            del f[name]
        f[name] = h5py.ExternalLink(target(ctx), obj)
    return edit


def _virtual_tap(f, rng, ctx):
    ds = f["taps/layer0/h"]
    layout = h5py.VirtualLayout(shape=ds.shape, dtype=ds.dtype)
    source = str(rng.choice([str(ctx["other"]), "missing.h5", "../missing.h5"]))
    layout[...] = h5py.VirtualSource(source, "/x" if "missing" in source else "/d", shape=ds.shape)
    attrs = dict(ds.attrs)
    del f["taps/layer0/h"]
    f.create_virtual_dataset("taps/layer0/h", layout, fillvalue=0).attrs.update(attrs)


def _external_storage(name, target):
    def edit(f, rng, ctx):
        ds = f[name]
        shape, dtype = ds.shape, ds.dtype
        nbytes = int(np.prod(shape)) * dtype.itemsize
        _replace(f, name, shape=shape, dtype=dtype, external=[(str(target(ctx)), 0, nbytes)])
    return edit


def _copy_of_main_states(f, rng, ctx):
    """The main checkpoint's states as a copy instead of a hard link to /taps."""
    name = "checkpoints/step-000002/taps/layer0/h"
    data = f[name][()]
    del f[name]
    f[name] = data


def _drop_checksums(f, rng, ctx):
    f.visititems(lambda n, o: o.attrs.__delitem__("crc32") if isinstance(o, h5py.Dataset) and "crc32" in o.attrs
                 else None)
    del f.attrs["attributes_crc32"]


STRUCTURED_REFUSED = {
    # token ids
    **{f"token id {v}": _edit(_set_item("tokens", v)) for v in (-1, -100, len(VOCAB), len(VOCAB) + 7, 2 ** 31 - 1,
                                                                -2 ** 31)},
    **{f"token id changed within the vocabulary #{i}": _edit(_shift_in_range("tokens", len(VOCAB))) for i in range(6)},
    "tokens as floats": _edit(lambda f, rng, ctx: _replace(f, "tokens", f["tokens"][()].astype(np.float32))),
    "tokens 2-D": _edit(lambda f, rng, ctx: _replace(f, "tokens", f["tokens"][()].reshape(-1, 1))),
    "tokens one short": _edit(lambda f, rng, ctx: _replace(f, "tokens", f["tokens"][:-1])),
    "tokens sparse 2^33": _edit(lambda f, rng, ctx: (_sparse(f, "tokens", (2 ** 33,), np.int32, f["tokens"][()]))),
    # the tokens of an extra axis (optional)
    **{f"extra-axis token id {v}": _edit(_set_item("axes/half/tokens", v)) for v in (-1, len(VOCAB), 2 ** 31 - 1)},
    **{f"extra-axis token id changed within the vocabulary #{i}": _edit(_shift_in_range("axes/half/tokens", len(VOCAB)))
       for i in range(3)},
    "extra-axis tokens one short": _edit(lambda f, rng, ctx: _replace(f, "axes/half/tokens",
                                                                      f["axes/half/tokens"][:-1])),
    "extra-axis tokens as floats": _edit(lambda f, rng, ctx: _replace(f, "axes/half/tokens",
                                                                      f["axes/half/tokens"][()] * 1.0)),
    "units_are unknown": _edit(_set("taps/layer0/h", "units_are", "neurons")),
    "units_are positions on too few units": _edit(_set("taps/layer0/c", "units_are", "positions")),
    # offsets
    "offsets as floats": _edit(lambda f, rng, ctx: _replace(f, "axes/positions/item_offsets",
                                                            f["axes/positions/item_offsets"][()] * 1.0)),
    "offsets not from 0": _edit(lambda f, rng, ctx: f["axes/positions/item_offsets"].__setitem__(0, 1)),
    "offsets decreasing": _edit(lambda f, rng, ctx: f["axes/positions/item_offsets"].__setitem__(
        int(rng.integers(1, 12)), 0)),
    "last offset wrong": _edit(lambda f, rng, ctx: f["axes/positions/item_offsets"].__setitem__(12, 10 ** 6)),
    **{f"offset moved, still increasing #{i}": _edit(_move_offset) for i in range(3)},
    "offsets sparse 2^31": _edit(lambda f, rng, ctx: _sparse(f, "axes/positions/item_offsets", (2 ** 31,), np.int64,
                                                             f["axes/positions/item_offsets"][()])),
    "extra-axis offsets sparse 2^31": _edit(lambda f, rng, ctx: _sparse(f, "axes/half/item_offsets", (2 ** 31,),
                                                                        np.int64)),
    # vocabulary and provenance
    "vocab sparse 1e8": _edit(lambda f, rng, ctx: _sparse(f, "vocab", (10 ** 8,), h5py.string_dtype())),
    "vocab of ints": _edit(lambda f, rng, ctx: _replace(f, "vocab", np.arange(len(VOCAB)))),
    "vocab 2-D": _edit(lambda f, rng, ctx: _replace(f, "vocab", np.array([VOCAB], dtype=object),
                                                     dtype=h5py.string_dtype())),
    **{f"vocab entry changed #{i}": _edit(_change_vocab_entry) for i in range(3)},
    "provenance not JSON": _edit(lambda f, rng, ctx: _replace(f, "provenance", "{engine: lstm",
                                                               dtype=h5py.string_dtype())),
    "provenance a JSON list": _edit(lambda f, rng, ctx: _replace(f, "provenance", "[1, 2]", dtype=h5py.string_dtype())),
    "provenance changed": _edit(lambda f, rng, ctx: _replace(f, "provenance", '{"engine": "gru"}',
                                                              dtype=h5py.string_dtype())),
    # taps
    "tap of ints": _edit(lambda f, rng, ctx: _replace(f, "taps/layer0/h", f["taps/layer0/h"][()].astype(np.int32))),
    "tap 1-D": _edit(lambda f, rng, ctx: _replace(f, "taps/pool", f["taps/pool"][:, 0])),
    "tap 3-D": _edit(lambda f, rng, ctx: _replace(f, "taps/pool", f["taps/pool"][()][:, :, None])),
    "tap rows": _edit(lambda f, rng, ctx: _replace(f, "taps/layer0/c", f["taps/layer0/c"][:-3])),
    "tap units sparse 2^31": _edit(lambda f, rng, ctx: _sparse(f, "taps/pool", (f["taps/pool"].shape[0], 2 ** 31),
                                                               np.float32)),
    "tap never written": _edit(lambda f, rng, ctx: _sparse(f, "taps/layer0/h", f["taps/layer0/h"].shape, np.float32,
                                                           f["taps/layer0/h"][:5], rows=4)),
    "checkpoint states never written": _edit(lambda f, rng, ctx: _sparse(
        f, "checkpoints/step-000001/taps/pool", f["taps/pool"].shape, np.float32)),
    "tap on an unknown axis": _edit(_set("taps/pool", "axis", "quarter")),
    "tap layer not an integer": _edit(_set("taps/layer0/h", "layer", "zero")),
    "tap layer a float": _edit(_set("taps/layer0/h", "layer", 0.5)),
    "taps order not strings": _edit(_set("taps", "order", np.arange(3))),
    "taps order names a group": _edit(_set("taps", "order", np.array(["layer0"], dtype=object))),
    "taps order missing": _edit(lambda f, rng, ctx: f["taps"].attrs.__delitem__("order")),
    "listed tap missing": _edit(_del("taps/pool")),
    # links and storage in other files
    **{f"external link to a text file #{i}": _edit(_external_link(lambda ctx: str(ctx["secret"]))) for i in range(3)},
    **{f"external link, relative, to an HDF5 file #{i}": _edit(
        _external_link(lambda ctx: os.path.relpath(ctx["other"], ctx["case_dir"]), "/d")) for i in range(3)},
    "soft link": _edit(lambda f, rng, ctx: f.__setitem__("derived/alias", h5py.SoftLink("/tokens"))),
    "soft link as a tap": _edit(lambda f, rng, ctx: (f.__delitem__("taps/pool"),
                                                     f.__setitem__("taps/pool", h5py.SoftLink("/taps/layer0/h")))),
    **{f"virtual tap #{i}": _edit(_virtual_tap) for i in range(3)},
    "tap stored in a text file": _edit(_external_storage("taps/layer0/h", lambda ctx: ctx["secret"])),
    "offsets stored in a FIFO": _edit(_external_storage("axes/positions/item_offsets", lambda ctx: ctx["fifo"])),
    "tokens stored in /dev/zero": _edit(_external_storage("tokens", lambda ctx: "/dev/zero")),
    # root attributes
    **{f"format_version {v!r}": _edit(_set("/", "format_version", v))
       for v in (2.0, "2", np.array([2, 2]), 0, -1, 99, 2 ** 62)},
    "no format_version": _edit(lambda f, rng, ctx: f.attrs.__delitem__("format_version")),
    "no marker": _edit(lambda f, rng, ctx: f.attrs.__delitem__("lstmviz")),
    "another marker": _edit(_set("/", "lstmviz", "workspace")),
    "marked unfinished": _edit(_set("/", "lstmviz_incomplete", True)),
    # annotations
    "annotation kind": _edit(_set("annotations/depth", "kind", "ordinal")),
    "annotation level": _edit(_set("annotations/pos", "level", "token")),
    "annotation labels missing": _edit(_del("annotations/pos/labels")),
    "label id too big": _edit(_set_item("annotations/pos/values", 5)),
    "label id below -1": _edit(_set_item("annotations/src/values", -2)),
    "label id changed within range": _edit(_shift_in_range("annotations/src/values", 3)),
    "numeric value changed": _edit(_set_item("annotations/depth/values", 123.0)),
    "annotation values short": _edit(lambda f, rng, ctx: _replace(f, "annotations/depth/values",
                                                                  f["annotations/depth/values"][:-1])),
    "labels changed": _edit(lambda f, rng, ctx: _replace(f, "annotations/pos/labels",
                                                         np.array(["NN", "VB", "DT", "JJ", "TO"], dtype=object),
                                                         dtype=h5py.string_dtype())),
    # checkpoints
    "checkpoint step a float": _edit(_set("checkpoints/step-000001", "step", 1.5)),
    "checkpoint step a string": _edit(_set("checkpoints/step-000001", "step", "one")),
    "checkpoint steps descending": _edit(_set("checkpoints/step-000001", "step", 7)),
    "checkpoint metrics not JSON": _edit(_set("checkpoints/step-000002", "metrics", "{loss")),
    "checkpoint metrics a list": _edit(_set("checkpoints/step-000002", "metrics", "[1]")),
    "main checkpoint unknown": _edit(_set("checkpoints", "main", "step-000009")),
    "checkpoint listed twice": _edit(_set("checkpoints", "order", np.array(["step-000001"] * 2, dtype=object))),
    "checkpoint states missing": _edit(_del("checkpoints/step-000001/taps/pool")),
    "main states a copy, not /taps": _edit(_copy_of_main_states),
    # text attributes (kept by HDF5 outside its checksummed headers)
    "tap description changed": _edit(_set("taps/layer0/c", "description", "the hidden state")),
    "tap signal changed": _edit(_set("taps/pool", "signal", "h")),
    "axis description changed": _edit(_set("axes/half", "description", "every third position")),
    "annotation description changed": _edit(_set("annotations/pos", "description", "gold tags")),
    "checkpoint sha256 changed": _edit(_set("checkpoints/step-000001", "sha256", "0" * 64)),
    "checkpoint path changed": _edit(_set("checkpoints/step-000002", "path", "/elsewhere/model.pt")),
    "checkpoint metrics changed, still JSON": _edit(_set("checkpoints/step-000001", "metrics", '{"loss": 2.4}')),
    # checksums themselves
    "checksum a string": _edit(_set("tokens", "crc32", "deadbeef")),
    "checksum changed": _edit(lambda f, rng, ctx: f["vocab"].attrs.__setitem__(
        "crc32", np.int64(int(f["vocab"].attrs["crc32"]) ^ 1))),
    "text checksum a string": _edit(_set("/", "attributes_crc32", "0")),
}

def _set_edge(value, column=None):
    """One endpoint of a random edge set to ``value`` (a function of the item's node count when callable)."""
    def edit(f, rng, ctx):
        edges, eo = f["axes/positions/edges"], f["axes/positions/edge_offsets"][()]
        offsets = f["axes/positions/item_offsets"][()]
        k = int(rng.integers(0, edges.shape[0]))
        item = int(np.searchsorted(eo, k, side="right") - 1)
        n = int(offsets[item + 1] - offsets[item])
        row = edges[k]
        row[int(rng.integers(0, 2)) if column is None else column] = value(n) if callable(value) else value
        edges[k] = row
    return edit


def _set_pooling(value):
    def edit(f, rng, ctx):
        ds, coarse = f["axes/level1/pooling_map"], np.diff(f["axes/level1/item_offsets"][()])
        finer = f["axes/positions/item_offsets"][()]
        k = int(rng.integers(0, ds.shape[0]))
        item = int(np.searchsorted(finer, k, side="right") - 1)
        ds[k] = value(int(coarse[item])) if callable(value) else value
    return edit


def _change_within_range(name, values):
    """A value changed to another valid one: only the checksum can tell."""
    def edit(f, rng, ctx):
        ds = f[name]
        flat = ds[()].reshape(-1)
        k = int(rng.integers(0, len(flat)))
        flat[k] = values(flat[k])
        ds[...] = flat.reshape(ds.shape)
    return edit


def _image_sizes_swapped(f, rng, ctx):
    h, w = f["axes/map/height"][()], f["axes/map/width"][()]
    changed = np.flatnonzero(h != w)
    i = int(changed[0])
    h[i], w[i] = w[i], h[i]
    f["axes/map/height"][...] = h
    f["axes/map/width"][...] = w


GEOMETRY_REFUSED = {
    # edges
    "edge endpoint = node count": _edit(_set_edge(lambda n: n)),
    "edge endpoint -1": _edit(_set_edge(-1)),
    "edge endpoint 2^31-1": _edit(_set_edge(2 ** 31 - 1)),
    **{f"edge changed within its graph #{i}": _edit(_change_within_range(
        "axes/positions/edges", lambda v: 0 if v else 1)) for i in range(3)},
    "edges as floats": _edit(lambda f, rng, ctx: _replace(f, "axes/positions/edges", f["axes/positions/edges"][()] * 1.0)),
    "edges 1-D": _edit(lambda f, rng, ctx: _replace(f, "axes/positions/edges", f["axes/positions/edges"][:, 0])),
    "edges [E, 3]": _edit(lambda f, rng, ctx: _replace(f, "axes/positions/edges",
                                                       np.pad(f["axes/positions/edges"][()], ((0, 0), (0, 1))))),
    "edges one short": _edit(lambda f, rng, ctx: _replace(f, "axes/positions/edges", f["axes/positions/edges"][:-1])),
    "edges sparse 2^33": _edit(lambda f, rng, ctx: _sparse(f, "axes/level1/edges", (2 ** 33, 2), np.int32)),
    "edges missing": _edit(_del("axes/positions/edges")),
    "pooled edges missing": _edit(_del("axes/level1/edges")),
    # edge offsets
    "edge offsets not from 0": _edit(lambda f, rng, ctx: f["axes/positions/edge_offsets"].__setitem__(0, 1)),
    "edge offsets decreasing": _edit(lambda f, rng, ctx: f["axes/positions/edge_offsets"].__setitem__(
        int(rng.integers(1, len(GRAPH_SIZES))), 10 ** 6)),
    "last edge offset wrong": _edit(lambda f, rng, ctx: f["axes/positions/edge_offsets"].__setitem__(
        len(GRAPH_SIZES), 3)),
    "edge offsets as floats": _edit(lambda f, rng, ctx: _replace(f, "axes/positions/edge_offsets",
                                                                 f["axes/positions/edge_offsets"][()] * 1.0)),
    "edge offsets one short": _edit(lambda f, rng, ctx: _replace(f, "axes/positions/edge_offsets",
                                                                 f["axes/positions/edge_offsets"][:-1])),
    "edge offsets sparse 2^31": _edit(lambda f, rng, ctx: _sparse(f, "axes/positions/edge_offsets", (2 ** 31,),
                                                                  np.int64, f["axes/positions/edge_offsets"][()])),
    "edge offsets missing": _edit(_del("axes/level1/edge_offsets")),
    # pooling maps
    "pooling entry = coarse nodes": _edit(_set_pooling(lambda n: n)),
    "pooling entry -2": _edit(_set_pooling(-2)),
    **{f"pooling entry changed within range #{i}": _edit(_change_within_range(
        "axes/level1/pooling_map", lambda v: -1 if v != -1 else 0)) for i in range(3)},
    "pooling map one short": _edit(lambda f, rng, ctx: _replace(f, "axes/level1/pooling_map",
                                                                f["axes/level1/pooling_map"][:-1])),
    "pooling map as floats": _edit(lambda f, rng, ctx: _replace(f, "axes/level1/pooling_map",
                                                                f["axes/level1/pooling_map"][()] * 1.0)),
    "pooling map missing": _edit(_del("axes/level1/pooling_map")),
    "pooling map on the input level": _edit(lambda f, rng, ctx: f.create_dataset(
        "axes/positions/pooling_map", data=np.zeros(sum(GRAPH_SIZES), np.int32))),
    "pooled from an unknown axis": _edit(_set("axes/level1", "pooled_from", "level0")),
    "pooled from itself": _edit(_set("axes/level1", "pooled_from", "level1")),
    "pooling cycle": _edit(_set("axes/positions", "pooled_from", "level1")),
    "pooled from a scalar axis": _edit(_set("axes/level1", "pooled_from", "graph")),
    "pooled_from missing": _edit(lambda f, rng, ctx: f["axes/level1"].attrs.__delitem__("pooled_from")),
    # optional graph datasets
    "filler changed": _edit(_change_within_range("axes/level1/filler", lambda v: 1 - v)),
    "filler one short": _edit(lambda f, rng, ctx: _replace(f, "axes/level1/filler", f["axes/level1/filler"][:-1])),
    "coordinates NaN": _edit(_set_item("axes/positions/coordinates", [np.nan, 0.0])),
    "coordinates changed": _edit(_set_item("axes/positions/coordinates", [1.5, -2.5])),
    "coordinates [rows, 3]": _edit(lambda f, rng, ctx: _replace(f, "axes/positions/coordinates",
                                                                np.zeros((sum(GRAPH_SIZES), 3), np.float32))),
    "edge weights inf": _edit(_set_item("axes/positions/edge_weights", np.inf)),
    "edge weights one short": _edit(lambda f, rng, ctx: _replace(f, "axes/positions/edge_weights",
                                                                 f["axes/positions/edge_weights"][:-1])),
    "node names one short": _edit(lambda f, rng, ctx: _replace(
        f, "axes/positions/node_names", f["axes/positions/node_names"][:-1], dtype=h5py.string_dtype())),
    "node name changed": _edit(_set_item("axes/positions/node_names", "intruder")),
    # axis attributes
    "geometry unknown": _edit(_set("axes/positions", "geometry", "mesh")),
    "geometry an integer": _edit(_set("axes/level1", "geometry", 3)),
    "geometry missing": _edit(lambda f, rng, ctx: f["axes/map"].attrs.__delitem__("geometry")),
    "graph axis said to be tokens": _edit(_set("axes/level1", "geometry", "tokens")),  # the text checksum
    "scalar axis said to be tokens": _edit(_set("axes/graph", "geometry", "tokens")),
    "directed a string": _edit(_set("axes/positions", "directed", "yes")),
    "directed 2": _edit(_set("axes/positions", "directed", 2)),
    # image, set, scalar
    "image stride 0": _edit(_set("axes/map", "stride", np.array([0, 2]))),
    "image stride a scalar": _edit(_set("axes/map", "stride", 2)),
    "image offset a string": _edit(_set("axes/map", "offset", "centre")),
    "image height off by one": _edit(_set_item("axes/map/height", 7)),
    "image height and width swapped": _edit(_image_sizes_swapped),
    "image width missing": _edit(_del("axes/map/width")),
    "set member out of range": _edit(_set_item("axes/modality/member", 3)),
    "set member negative": _edit(_set_item("axes/modality/member", -1)),
    "set member changed within range": _edit(_change_within_range("axes/modality/member", lambda v: (v + 1) % 3)),
    "set members duplicated": _edit(lambda f, rng, ctx: _replace(f, "axes/modality/members",
                                                                 np.array(["a", "a", "b"], dtype=object),
                                                                 dtype=h5py.string_dtype())),
    "set members renamed": _edit(lambda f, rng, ctx: _replace(f, "axes/modality/members",
                                                              np.array(["audio", "video", "txt"], dtype=object),
                                                              dtype=h5py.string_dtype())),
    "set members missing": _edit(_del("axes/modality/members")),
    "scalar axis with two rows per item": _edit(lambda f, rng, ctx: (
        _replace(f, "axes/graph/item_offsets", f["axes/graph/item_offsets"][()] * 2),
        _replace(f, "taps/readout", np.zeros((2 * len(GRAPH_SIZES), 2), np.float32)))),
    "external link as edges": _edit(lambda f, rng, ctx: (f.__delitem__("axes/positions/edges"), f.__setitem__(
        "axes/positions/edges", h5py.ExternalLink(str(ctx["other"]), "/d")))),
}

GEOMETRY_SAME = {
    "an unknown attribute on an axis": _edit(_set("axes/level1", "note", "graclus")),
}

STRUCTURED_SAME = {  # changes that alter nothing a user reads: refusing them would be wrong too
    "an attribute on /derived": _edit(_set("derived", "note", "cache built elsewhere")),
    "a dataset in /derived": _edit(lambda f, rng, ctx: f.create_dataset("derived/index", data=np.arange(10))),
    "an unknown root attribute": _edit(_set("/", "made_by", "a script")),
    "no checksums (an older file)": _edit(_drop_checksums),
}


def cases() -> list[tuple[str, str, object]]:
    """``(family, case id, damage)``: every case, in a fixed order (the damage draws from a seeded rng)."""
    out = [("random bit flips", f"flips #{i}", _flip_anywhere) for i in range(100)]
    aimed = {"tokens": ["tokens", "axes/half/tokens"], "offsets": ["axes/positions/item_offsets", "axes/half/item_offsets"],
             "annotation values": ["annotations/pos/values", "annotations/depth/values", "annotations/src/values"],
             "tap values": ["taps/layer0/h", "taps/layer0/c", "taps/pool", "checkpoints/step-000001/taps/pool"]}
    for what, names in aimed.items():
        out += [(f"bit flips in {what}", f"{what} flips #{i}", _flip_in(names)) for i in range(12)]
    out += [("truncations", f"truncation #{i}", _truncate) for i in range(25)]
    out += [("structured, refused", name, damage) for name, damage in STRUCTURED_REFUSED.items()]
    out += [("structured, harmless", name, damage) for name, damage in STRUCTURED_SAME.items()]
    geometry = ["axes/positions/edges", "axes/positions/edge_offsets", "axes/positions/edge_weights",
                "axes/positions/coordinates", "axes/level1/edges", "axes/level1/pooling_map", "axes/level1/filler",
                "axes/map/height", "axes/map/width", "axes/modality/member"]
    out += [("graphs: random bit flips", f"graph flips #{i}", _flip_anywhere) for i in range(30)]
    out += [("graphs: bit flips in geometry", f"geometry flips #{i}", _flip_in(geometry)) for i in range(20)]
    out += [("graphs: truncations", f"graph truncation #{i}", _truncate) for i in range(5)]
    out += [("graphs: structured, refused", name, damage) for name, damage in GEOMETRY_REFUSED.items()]
    out += [("graphs: structured, harmless", name, damage) for name, damage in GEOMETRY_SAME.items()]
    return out


ALLOWED = {
    "random bit flips": {"refused", "same", "tap values differ"},
    "bit flips in tokens": {"refused"},
    "bit flips in offsets": {"refused"},
    "bit flips in annotation values": {"refused"},
    "bit flips in tap values": {"tap values differ", "same"},  # not checksummed: documented, see the docstring
    "truncations": {"refused"},
    "structured, refused": {"refused"},
    "structured, harmless": {"same"},
    "graphs: random bit flips": {"refused", "same", "tap values differ"},
    "graphs: bit flips in geometry": {"refused"},
    "graphs: truncations": {"refused"},
    "graphs: structured, refused": {"refused"},
    "graphs: structured, harmless": {"same"},
}


# --- the worker -----------------------------------------------------------------------------------------


def worker(base: Path, graph_base: Path, work: Path) -> None:
    """Run every case on a copy of ``base`` (``graph_base`` for the "graphs: " families); one JSON line per case."""
    truths = {base: read_all(base), graph_base: read_all(graph_base)}
    rng = np.random.default_rng(SEED)
    other = work / "other.h5"
    with h5py.File(other, "w") as f:
        f["d"] = np.ones((1000, 16), np.float32)
        f["x"] = np.ones(10)
    secret = work / "secret.txt"
    secret.write_bytes(b"password=hunter2\n" * 4096)
    fifo = work / "pipe"
    os.mkfifo(fifo)
    for i, (family, case, damage) in enumerate(cases()):
        case_dir = work / f"case{i}"
        case_dir.mkdir()
        path = case_dir / "r.h5"
        source = graph_base if family.startswith("graphs: ") else base
        shutil.copyfile(source, path)
        ctx = {"other": other, "secret": secret, "fifo": fifo, "case_dir": case_dir}
        print(json.dumps({"start": case}), flush=True)
        faulthandler.dump_traceback_later(CASE_TIMEOUT_S, exit=True)
        damage(path, rng, ctx)
        result = verdict(path, truths[source])
        faulthandler.cancel_dump_traceback_later()
        print(json.dumps({"family": family, "case": case, **result}), flush=True)
        shutil.rmtree(case_dir)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, list[dict]]:
    work = tmp_path_factory.mktemp("fuzz-recordings")
    base = make_base(work / "base.h5")
    graph_base = make_graph_base(work / "graphs.h5")
    proc = subprocess.run([sys.executable, __file__, str(base), str(graph_base), str(work)], capture_output=True, text=True,
                          timeout=CASE_TIMEOUT_S * len(cases()))
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    started = [x["start"] for x in lines if "start" in x]
    done = [x for x in lines if "outcome" in x]
    if proc.returncode != 0 or len(done) != len(cases()):
        stuck = started[-1] if started else None
        pytest.fail(f"the fuzz worker stopped at case {stuck!r} (hung past {CASE_TIMEOUT_S} s or crashed, exit "
                    f"status {proc.returncode}):\n{proc.stderr[-3000:]}")
    by_family: dict[str, list[dict]] = {}
    for x in done:
        by_family.setdefault(x["family"], []).append(x)
    return by_family


@pytest.mark.parametrize("family", list(ALLOWED))
def test_every_damaged_recording_is_refused_in_words_or_reads_back_unchanged(results, family):
    bad = [f"{x['case']}: {x['outcome']}: {x.get('message', '')}{x.get('traceback', '')}" for x in results[family]
           if x["outcome"] not in ALLOWED[family]]
    assert bad == [], "\n".join(bad)


def test_the_fuzz_cases_reach_the_reader(results):
    """The damage is not all caught by the same early check: the generator exercises the reader."""
    refused = [x["message"] for xs in results.values() for x in xs if x["outcome"] == "refused"]
    assert len(refused) >= 150 and len({m.split(": ", 1)[1][:30] for m in refused}) >= 40
    flips = results["random bit flips"]
    assert {x["outcome"] for x in flips} >= {"refused", "same"}  # some flips land where nothing is read
    assert any(x["outcome"] == "tap values differ" for x in results["bit flips in tap values"])


def test_geometry_out_of_range_is_named(results):
    by_case = {x["case"]: x["message"] for x in results["graphs: structured, refused"]}
    for case in ("edge endpoint = node count", "edge endpoint -1", "edge endpoint 2^31-1"):
        assert "points outside the item's" in by_case[case], by_case[case]
    for case in ("pooling entry = coarse nodes", "pooling entry -2"):
        assert "the pooling map of graph axis 'level1'" in by_case[case] and "outside the item's nodes" in by_case[case]
    assert "is a cycle" in by_case["pooling cycle"] and "is a cycle" in by_case["pooled from itself"]
    assert "do not match their checksum" in by_case["edge changed within its graph #0"]


def test_out_of_range_token_ids_are_named(results):
    for x in results["structured, refused"]:
        if x["case"].startswith("token id ") and "changed" not in x["case"]:
            assert "token id" in x["message"] and "outside the vocabulary" in x["message"], x


if __name__ == "__main__":
    worker(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
