"""Recording format (v3): write -> read round trip, slicing, writer checks, temp-file guarantees, summary."""

from __future__ import annotations

import json
import os
import stat

import h5py
import numpy as np
import pytest

from lstmviz.recording import (
    FORMAT_VERSION,
    AnnotationInfo,
    RecordingError,
    RecordingWriter,
    TapInfo,
    open_recording,
    summarize,
)

VOCAB = ["<pad>", "the", "über", "naïve", "日本", "🙂"]
LENGTHS = [4, 1, 7, 3]
PROVENANCE = {
    "engine": "lstm",
    "config": {"hidden": 5, "layers": 2, "cell": {"kind": "lstm", "forget_bias": [1.0, 0.5]}},
    "dataset": {"name": "parens", "split": "valid", "options": {"depth": 3}},
    "checkpoint": "/tmp/x.pt",
    "sha256": "f" * 64,
    "versions": {"torch": "2.13.0"},
}


def _sample(seed: int = 0) -> dict:
    """Random items: tokens, two main-axis taps, one tap on a coarser axis, annotations at both levels."""
    rng = np.random.default_rng(seed)
    items = []
    for i, n in enumerate(LENGTHS):
        m = (n + 1) // 2
        items.append(dict(
            tokens=rng.integers(0, len(VOCAB), n),
            h=rng.standard_normal((n, 5)).astype(np.float32),
            c=rng.uniform(-1, 1, (n, 5)),
            coarse=rng.standard_normal((m, 3)),
            pos=rng.integers(-1, 3, n),
            depth=np.where(rng.random(n) < 0.3, np.nan, rng.random(n)),
            source=[1, -1, 0, 1][i],
            score=[0.5, None, 2.0, -1.0][i],
        ))
    return {"items": items}


def _write(path, sample, **kw) -> None:
    with RecordingWriter(path, vocab=VOCAB, provenance=PROVENANCE, **kw) as w:
        _declare(w)
        for it in sample["items"]:
            _append(w, it)


def _declare(w: RecordingWriter) -> None:
    w.add_axis("half", description="two tokens per row")
    w.add_tap("layer1/h", 5, layer=1, signal="h", description="hidden state")
    w.add_tap("layer1/c", 5, layer=1, signal="c", dtype="float16")
    w.add_tap("conv", 3, axis="half")
    w.add_annotation("pos", kind="categorical", labels=["NN", "VB", "ÜBER"], description="tags")
    w.add_annotation("depth", kind="numeric")
    w.add_annotation("source", kind="categorical", level="item", labels=["a", "b"])
    w.add_annotation("score", kind="numeric", level="item")


def _append(w: RecordingWriter, it: dict) -> int:
    return w.append_item(it["tokens"], {"layer1/h": it["h"], "layer1/c": it["c"], "conv": it["coarse"]},
                         {"pos": it["pos"], "depth": it["depth"]}, {"source": it["source"], "score": it["score"]})


@pytest.fixture
def written(tmp_path):
    sample = _sample()
    path = tmp_path / "rec.h5"
    _write(path, sample)
    return path, sample


def _cat(sample, key):
    return np.concatenate([it[key] for it in sample["items"]])


# --- round trip ------------------------------------------------------------------------------

def test_round_trip_metadata(written):
    path, sample = written
    with open_recording(path) as rec:
        assert rec.format_version == FORMAT_VERSION == 3
        assert rec.checkpoints == [] and rec.checkpoint is None  # one model state
        assert rec.n_items == 4 and rec.n_positions == sum(LENGTHS)
        assert rec.item_offsets.tolist() == [0, 4, 5, 12, 15]
        assert rec.item_offsets.dtype == np.int64
        assert rec.axis_offsets("half").tolist() == [0, 2, 3, 7, 9]
        assert rec.vocab == VOCAB
        assert list(rec.taps) == ["layer1/h", "layer1/c", "conv"]  # declaration order, not alphabetical
        assert rec.taps["layer1/h"] == TapInfo("layer1/h", 5, "float32", "positions", 1, "h", "hidden state")
        assert rec.taps["layer1/c"].dtype == "float16"
        assert rec.taps["conv"] == TapInfo("conv", 3, "float32", "half", None, "conv", "")
        assert list(rec.annotations) == ["pos", "depth", "source", "score"]
        assert rec.annotations["pos"] == AnnotationInfo("pos", "categorical", "position", ["NN", "VB", "ÜBER"], "tags")
        assert rec.annotations["score"] == AnnotationInfo("score", "numeric", "item", None, "")
        prov = rec.provenance
        assert prov["config"] == PROVENANCE["config"] and prov["dataset"] == PROVENANCE["dataset"]
        assert prov["versions"]["torch"] == "2.13.0"
        assert prov["versions"]["h5py"] == h5py.__version__ and prov["versions"]["numpy"] == np.__version__
        assert "lstmviz" in prov["versions"] and prov["created"].endswith("+00:00")


def test_round_trip_values(written):
    path, sample = written
    with open_recording(path) as rec:
        h = rec.states("layer1/h")
        assert h.dtype == np.float32 and np.array_equal(h, _cat(sample, "h"))
        c = rec.states("layer1/c")
        assert c.dtype == np.float32
        expected_c = _cat(sample, "c")
        assert np.array_equal(c, expected_c.astype(np.float16).astype(np.float32))
        assert np.abs(c - expected_c).max() <= 2 ** -11  # documented float16 bound for |x| <= 1
        assert np.allclose(rec.states("conv"), _cat(sample, "coarse").astype(np.float32))
        assert rec.token_ids(0, rec.n_positions).tolist() == _cat(sample, "tokens").tolist()
        assert rec.tokens(4, 6) == [VOCAB[i] for i in _cat(sample, "tokens")[4:6]]
        assert np.array_equal(rec.annotation("pos"), _cat(sample, "pos"))
        assert np.array_equal(rec.annotation("depth"), _cat(sample, "depth"), equal_nan=True)
        assert rec.annotation("source").tolist() == [1, -1, 0, 1]
        score = rec.annotation("score")
        assert score[0] == 0.5 and np.isnan(score[1]) and score[2:].tolist() == [2.0, -1.0]


def test_slicing_by_item_range_and_units(written):
    path, sample = written
    h = _cat(sample, "h")
    with open_recording(path) as rec:
        assert rec.item_range(2) == (5, 12)
        assert rec.item_range(2, "half") == (3, 7)
        assert np.array_equal(rec.item_states("layer1/h", 2), sample["items"][2]["h"])
        assert np.allclose(rec.item_states("conv", 3), sample["items"][3]["coarse"])
        assert np.array_equal(rec.states("layer1/h", 3, 9), h[3:9])
        assert np.array_equal(rec.states("layer1/h", 3, 9, units=[4, 0, 2]), h[3:9][:, [4, 0, 2]])  # unsorted
        assert np.array_equal(rec.states("layer1/h", 3, 9, units=np.array([1, 3])), h[3:9, [1, 3]])
        assert np.array_equal(rec.states("layer1/h", units=[-1, 0]), h[:, [4, 0]])
        assert np.array_equal(rec.states("layer1/h", 2, 5, units=slice(1, 5, 2)), h[2:5, 1:5:2])
        assert np.array_equal(rec.states("layer1/h", 0, 15, units=[2, 2]), h[:, [2, 2]])
        assert rec.states("layer1/h", 7, 7).shape == (0, 5)
        assert rec.states("layer1/h", 1, 3, units=[]).shape == (2, 0)
        assert np.array_equal(rec.item_states("layer1/h", 0, units=[3]), sample["items"][0]["h"][:, [3]])
        assert np.array_equal(rec.annotation("pos", 5, 12), sample["items"][2]["pos"])
        assert rec.annotation("source", 1, 3).tolist() == [-1, 0]


def test_item_of(written):
    path, _ = written
    with open_recording(path) as rec:
        assert rec.item_of(0) == 0 and isinstance(rec.item_of(0), int)
        assert [rec.item_of(p) for p in (3, 4, 5, 11, 12, 14)] == [0, 1, 2, 2, 3, 3]
        assert rec.item_of(np.arange(15)).tolist() == [0] * 4 + [1] + [2] * 7 + [3] * 3
        with pytest.raises(IndexError, match="15"):
            rec.item_of(15)
        with pytest.raises(IndexError):
            rec.item_of(-1)


def test_bad_read_arguments(written):
    path, _ = written
    with open_recording(path) as rec:
        with pytest.raises(IndexError, match=r"\[3, 16\)"):
            rec.states("layer1/h", 3, 16)
        with pytest.raises(IndexError, match="unit 5"):
            rec.states("layer1/h", 0, 2, units=[0, 5])
        with pytest.raises(IndexError):
            rec.item_range(4)
        with pytest.raises(RecordingError, match="no tap 'layer9/h'.*layer1/h"):
            rec.states("layer9/h")
        with pytest.raises(RecordingError, match="no annotation 'ner'"):
            rec.annotation("ner")
    with pytest.raises(ValueError, match="closed"):
        rec.states("layer1/h", 0, 1)


def test_reads_never_load_a_whole_tap(tmp_path, monkeypatch):
    """A column read over the whole tap goes through bounded row blocks."""
    import lstmviz.recording.reader as reader

    path = tmp_path / "big.h5"
    x = np.arange(3000 * 40, dtype=np.float32).reshape(3000, 40)
    with RecordingWriter(path) as w:
        w.add_tap("t", 40)
        for i in range(0, 3000, 100):
            w.append_item(np.zeros(100, int), {"t": x[i:i + 100]})
    monkeypatch.setattr(reader, "_READ_BLOCK_BYTES", 16 * 1024)
    seen = []
    real_getitem = h5py.Dataset.__getitem__

    def spy(self, key):
        out = real_getitem(self, key)
        if self.name == "/taps/t":
            seen.append(out.shape[0])
        return out

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    with open_recording(path) as rec:
        got = rec.states("t", units=[39, 0])
    assert np.array_equal(got, x[:, [39, 0]])
    assert len(seen) > 1 and max(seen) <= 256  # one chunk (256 rows of 160 B) per block, never all 3000 rows


def test_file_layout_is_as_documented(written):
    path, _ = written
    with h5py.File(path, "r") as f:
        assert f.attrs["lstmviz"] == "recording" and f.attrs["format_version"] == 3
        assert "lstmviz_incomplete" not in f.attrs
        assert f["axes/positions/item_offsets"].dtype == np.int64
        assert f["tokens"].dtype == np.int32
        assert f["vocab"].asstr()[:].tolist() == VOCAB
        assert json.loads(f["provenance"].asstr()[()])["engine"] == "lstm"
        tap = f["taps/layer1/h"]
        assert tap.chunks is not None and tap.chunks[1] == 5 and tap.maxshape == (None, 5)
        assert tap.compression is None
        assert {k: tap.attrs[k] for k in ("layer", "signal", "axis", "description")} == {
            "layer": 1, "signal": "h", "axis": "positions", "description": "hidden state"}
        assert f["taps/conv"].attrs["layer"] == -1
        assert list(f["taps"].attrs["order"]) == ["layer1/h", "layer1/c", "conv"]
        assert f["annotations/pos"].attrs["kind"] == "categorical"
        assert f["annotations/pos/values"].dtype == np.int32
        assert f["annotations/depth/values"].dtype == np.float64
        assert isinstance(f["derived"], h5py.Group) and len(f["derived"]) == 0
        assert len(f["checkpoints"]) == 0 and list(f["checkpoints"].attrs["order"]) == []
        assert f["checkpoints"].attrs["main"] == ""


def test_chunk_rows_follow_the_64k_rule():
    from lstmviz.recording.format import tap_chunk_rows

    assert tap_chunk_rows(512, 2) == 64
    assert tap_chunk_rows(512, 4) == 32
    assert tap_chunk_rows(64, 2) == 512
    assert tap_chunk_rows(100_000, 4) == 1
    for units in (1, 3, 77, 650, 4096):
        rows = tap_chunk_rows(units, 2)
        assert rows * units * 2 <= 64 * 1024 < 2 * rows * units * 2 or rows == 1


def test_large_recording_uses_full_chunks(tmp_path):
    path = tmp_path / "r.h5"
    with RecordingWriter(path, dtype="float16") as w:
        w._flush_bytes = 4096  # force writes before close: chunks must not shrink to the first block
        w.add_tap("t", 512)
        for _ in range(5):
            w.append_item(np.zeros(20, int), {"t": np.zeros((20, 512))})
    with h5py.File(path, "r") as f:
        assert f["taps/t"].chunks == (64, 512)


def test_float32_default_and_float16_recording(tmp_path):
    x = np.array([[1 / 3, -2.5e-3, 70000.0]])
    for dtype, expected in (("float32", "float32"), ("float16", "float16")):
        path = tmp_path / f"{dtype}.h5"
        with RecordingWriter(path, dtype=dtype) as w:
            w.add_tap("t", 3, dtype="float32" if dtype == "float16" else None)
            w.add_tap("u", 3)
            w.append_item([0], {"t": x, "u": x / 1e5})
        with open_recording(path) as rec:
            assert rec.taps["t"].dtype == "float32" and rec.taps["u"].dtype == expected
            assert rec.states("t")[0, 2] == 70000.0


def test_no_vocabulary_shows_ids(tmp_path):
    path = tmp_path / "r.h5"
    with RecordingWriter(path) as w:
        w.add_tap("t", 1)
        w.append_item([7, 123456], {"t": np.zeros((2, 1))})
    with open_recording(path) as rec:
        assert rec.vocab == [] and rec.tokens(0, 2) == ["7", "123456"]


def test_empty_recording_is_valid(tmp_path):
    path = tmp_path / "r.h5"
    with RecordingWriter(path) as w:
        w.add_tap("t", 4)
        w.add_annotation("a", kind="numeric")
    with open_recording(path) as rec:
        assert rec.n_items == 0 and rec.n_positions == 0 and rec.states("t").shape == (0, 4)
        assert "Items       0" in summarize(rec)


def test_small_files_stay_small(written):
    path, _ = written
    assert path.stat().st_size < 40_000  # chunks fit the data instead of 64 KiB per dataset


# --- writer checks ---------------------------------------------------------------------------

def _writer(tmp_path) -> RecordingWriter:
    w = RecordingWriter(tmp_path / "w.h5", vocab=VOCAB)
    w.add_axis("half")
    w.add_tap("h", 4)
    w.add_tap("g", 4, dtype="float16")
    w.add_tap("k", 2, axis="half")
    w.add_annotation("pos", kind="categorical", labels=["x", "y"])
    w.add_annotation("n", kind="numeric", level="item")
    return w


def _good(n=3):
    return dict(tokens=np.arange(n), states={"h": np.zeros((n, 4)), "g": np.zeros((n, 4)), "k": np.zeros((2, 2))},
                annotations={"pos": np.zeros(n, int)}, item_annotations={"n": 1.5})


def _with(**changes):
    item = _good()
    for key, value in changes.items():
        part, _, name = key.partition("__")
        if name:
            item[part] = {**item[part]}
            if value is None:
                del item[part][name]
            else:
                item[part][name] = value
        else:
            item[part] = value
    return item


BAD_APPENDS = {
    "units": (_with(states__h=np.zeros((3, 5))), r"tap 'h': expected shape \[3, 4\], got \[3, 5\]"),
    "rows": (_with(states__g=np.zeros((2, 4))), r"tap 'g': expected 3 rows \(one per token, 3 tokens\), got 2"),
    "1-D state": (_with(states__h=np.zeros(12)), r"tap 'h': expected shape \[3, 4\], got \[12\]"),
    "axis rows disagree": (_with(states__k=np.zeros((0, 2))), r"tap 'k': expected at least 1 row"),
    "missing tap": (_with(states__g=None), r"missing \['g'\]"),
    "extra tap": (_with(states__z=np.zeros((3, 1))), r"undeclared tap.*\['z'\]"),
    "tokens 2-D": (_with(tokens=np.zeros((3, 1), int)), r"tokens: expected a 1-D array.*got shape \(3, 1\)"),
    "tokens NaN": (_with(tokens=np.array([1.0, np.nan, 2.0])), r"tokens: expected integer token ids, got nan at index 1"),
    "tokens fraction": (_with(tokens=np.array([1.0, 2.5, 2.0])), r"got 2.5 at index 1"),
    "tokens strings": (_with(tokens=np.array(["a", "b", "c"])), r"expected integer token ids, got dtype <U1"),
    "token outside vocab": (_with(tokens=np.array([0, 6, 1])), r"expected ids in 0..5 \(the vocabulary of 6 entries\), got 6 at index 1"),
    "negative token": (_with(tokens=np.array([0, -1, 1])), r"got -1 at index 1"),
    "annotation length": (_with(annotations__pos=np.zeros(2, int)), r"annotation 'pos': expected shape \[3\].*got \[2\]"),
    "label id range": (_with(annotations__pos=np.array([0, 2, 1])), r"expected label ids in -1..1 \(2 labels, -1 = missing\), got 2 at index 1"),
    "label id below -1": (_with(annotations__pos=np.array([0, -2, 1])), r"got -2 at index 1"),
    "float label ids": (_with(annotations__pos=np.array([0.0, 1.0, 1.0])), r"expected integer label ids"),
    "missing annotation": (_with(annotations__pos=None), r"missing \['pos'\]"),
    "missing item annotation": (_with(item_annotations__n=None), r"item_annotations: .*missing \['n'\]"),
    "item annotation array": (_with(item_annotations__n=np.zeros(3)), r"expected one scalar per item"),
    "float16 overflow": (_with(states__g=np.full((3, 4), 1e5)), r"tap 'g': value 1e\+05 overflows float16.*float32"),
}


@pytest.mark.parametrize("case", BAD_APPENDS, ids=list(BAD_APPENDS))
def test_append_checks_say_expected_and_got(tmp_path, case):
    item, message = BAD_APPENDS[case]
    w = _writer(tmp_path)
    w.append_item(**_good())
    with pytest.raises(ValueError, match=message):
        w.append_item(**item)
    # the failed append stored nothing: the writer goes on and the file holds only good items
    w.append_item(**_good(2) | {"states": {"h": np.ones((2, 4)), "g": np.ones((2, 4)), "k": np.ones((1, 2))}})
    path = w.close()
    with open_recording(path) as rec:
        assert rec.item_offsets.tolist() == [0, 3, 5]
        assert rec.axis_offsets("half").tolist() == [0, 2, 3]
        assert rec.states("h", 3, 5).tolist() == [[1.0] * 4] * 2


def test_zero_length_item_is_refused(tmp_path):
    w = _writer(tmp_path)
    with pytest.raises(ValueError, match="zero-length items are not allowed"):
        w.append_item(**_with(tokens=np.array([], int)))
    w.abort()


def test_item_annotation_none_means_missing(tmp_path):
    w = _writer(tmp_path)
    w.append_item(**_with(item_annotations__n=None) | {"item_annotations": {"n": None}})
    with open_recording(w.close()) as rec:
        assert np.isnan(rec.annotation("n")[0])


DECLARATION_ERRORS = [
    (lambda w: w.add_tap("h", 4), "already declared"),
    (lambda w: w.add_tap("h/x", 4), "clashes with tap 'h'"),
    (lambda w: w.add_tap("/x", 4), "without empty parts"),
    (lambda w: w.add_tap("x", 0), "units must be a positive integer, got 0"),
    (lambda w: w.add_tap("x", 4, axis="nope"), "axis 'nope' is not declared"),
    (lambda w: w.add_tap("x", 4, dtype="float64"), r"expected one of \('float32', 'float16'\), got 'float64'"),
    (lambda w: w.add_annotation("c", kind="categorical"), "needs a non-empty list of labels"),
    (lambda w: w.add_annotation("c", kind="numeric", labels=["a"]), "numeric annotation has no labels"),
    (lambda w: w.add_annotation("c", kind="ordinal"), "kind must be one of"),
    (lambda w: w.add_annotation("c", kind="numeric", level="token"), "level must be one of"),
    (lambda w: w.add_annotation("a/b", kind="numeric"), "without '/'"),
]


@pytest.mark.parametrize("declare,message", DECLARATION_ERRORS)
def test_declaration_checks(tmp_path, declare, message):
    w = _writer(tmp_path)
    with pytest.raises(ValueError, match=message):
        declare(w)
    w.abort()


def test_declarations_after_first_item_are_refused(tmp_path):
    w = _writer(tmp_path)
    w.append_item(**_good())
    with pytest.raises(RuntimeError, match="before the first append_item"):
        w.add_tap("late", 2)
    w.abort()


def test_constructor_checks(tmp_path):
    with pytest.raises(ValueError, match="float64"):
        RecordingWriter(tmp_path / "a.h5", dtype="float64")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        RecordingWriter(tmp_path / "missing" / "a.h5")
    with pytest.raises(IsADirectoryError):
        RecordingWriter(tmp_path)
    with pytest.raises(ValueError, match="JSON"):
        RecordingWriter(tmp_path / "a.h5", provenance={"model": object()})
    with pytest.raises(ValueError, match="vocab: expected strings, got 3"):
        RecordingWriter(tmp_path / "a.h5", vocab=["a", 3])
    assert list(tmp_path.iterdir()) == []  # no temporary file left by a refused constructor


def _special_output(tmp_path, kind):
    """An existing path that is not a regular file, and a function telling that it is still untouched."""
    if kind == "fifo":
        path = tmp_path / "out.h5"
        os.mkfifo(path)
        return path, lambda: stat.S_ISFIFO(os.lstat(path).st_mode)
    if kind == "directory":
        path = tmp_path / "out.h5"
        path.mkdir()
        (path / "inside").write_text("x")
        return path, lambda: path.is_dir() and (path / "inside").read_text() == "x"
    if kind == "symlink to /dev/null":  # never /dev/null itself: a failing test must not replace it
        path = tmp_path / "out.h5"
        path.symlink_to(os.devnull)
        return path, lambda: (os.readlink(path) == os.devnull and stat.S_ISCHR(os.stat(os.devnull).st_mode))
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink to /dev/null"])
def test_an_output_that_is_not_a_regular_file_is_refused_before_any_work(tmp_path, kind):
    path, untouched = _special_output(tmp_path, kind)
    with pytest.raises((ValueError, IsADirectoryError)) as info:
        RecordingWriter(path, vocab=["a"])
    assert str(path) in str(info.value)
    if kind != "directory":
        assert "not a regular file" in str(info.value)
        assert ("FIFO" if kind == "fifo" else "character device") in str(info.value)
    assert untouched()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]  # no temporary file was created


def test_an_output_replaced_by_a_device_while_writing_is_not_replaced(tmp_path):
    path = tmp_path / "out.h5"
    w = RecordingWriter(path, vocab=["a"])
    w.add_tap("h", 2)
    w.append_item([0, 0], {"h": np.zeros((2, 2))})
    path.symlink_to(os.devnull)  # appears between the start and close()
    with pytest.raises(ValueError, match="character device, not a regular file"):
        w.close()
    assert os.readlink(path) == os.devnull and stat.S_ISCHR(os.stat(os.devnull).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]


def test_an_existing_regular_output_is_replaced(tmp_path):
    path = tmp_path / "out.h5"
    path.write_bytes(b"old")
    with RecordingWriter(path, vocab=["a"]) as w:
        w.add_tap("h", 2)
        w.append_item([0], {"h": np.ones((1, 2))})
    with open_recording(path) as rec:
        assert rec.states("h").tolist() == [[1.0, 1.0]]


def test_axis_without_taps_is_refused(tmp_path):
    w = RecordingWriter(tmp_path / "a.h5")
    w.add_axis("empty")
    w.add_tap("t", 1)
    with pytest.raises(ValueError, match="axis 'empty' has no taps"):
        w.append_item([0], {"t": np.zeros((1, 1))})
    w.abort()


def test_counters(tmp_path):
    w = _writer(tmp_path)
    assert (w.n_items, w.n_positions) == (0, 0)
    assert w.append_item(**_good(3)) == 0
    assert w.append_item(**_good(3)) == 1
    assert (w.n_items, w.n_positions) == (2, 6)
    w.abort()


# --- temporary file and rename ---------------------------------------------------------------

def test_exception_inside_with_leaves_nothing(tmp_path):
    final = tmp_path / "out.h5"
    with pytest.raises(KeyError):
        with RecordingWriter(final) as w:
            w.add_tap("t", 2)
            w.append_item([1, 2], {"t": np.zeros((2, 2))})
            w.flush()
            temp = w.temp_path
            assert temp.exists() and temp.parent == final.parent and not final.exists()
            raise KeyError("boom")
    assert not final.exists() and not temp.exists()
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_untouched_until_close_and_by_abort(tmp_path, written):
    path, _ = written
    before = path.read_bytes()
    w = RecordingWriter(path)
    w.add_tap("new", 1)
    w.append_item([0], {"new": np.zeros((1, 1))})
    w.flush()
    assert path.read_bytes() == before
    w.abort()
    assert path.read_bytes() == before and not w.temp_path.exists()
    w.abort()  # idempotent
    with pytest.raises(RuntimeError, match="aborted"):
        w.append_item([0], {"new": np.zeros((1, 1))})

    with RecordingWriter(path) as w:
        w.add_tap("new", 1)
        w.append_item([0], {"new": np.zeros((1, 1))})
        assert path.read_bytes() == before
    with open_recording(path) as rec:
        assert list(rec.taps) == ["new"]
    assert w.close() == path  # closing twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        w.append_item([0], {"new": np.zeros((1, 1))})


def test_unfinished_temp_file_is_refused(tmp_path):
    w = RecordingWriter(tmp_path / "out.h5")
    w.add_tap("t", 1)
    w.append_item([0], {"t": np.zeros((1, 1))})
    w.flush()
    w._file.close()  # as after a kill: the temp file stays, unfinished
    with pytest.raises(RecordingError, match="unfinished recording"):
        open_recording(w.temp_path)
    w._file = None
    w.abort()


# --- summary ---------------------------------------------------------------------------------

def test_summary(tmp_path):
    path = tmp_path / "s.h5"
    labels = [f"L{i}" for i in range(45)]
    with RecordingWriter(path, vocab=VOCAB, provenance=PROVENANCE, dtype="float16") as w:
        w.add_tap("layer0/h", 8, layer=0)
        w.add_annotation("tag", kind="categorical", labels=labels)
        w.add_annotation("len", kind="numeric", level="item")
        for n in (2, 3, 10):
            w.append_item(np.ones(n, int), {"layer0/h": np.zeros((n, 8))}, {"tag": np.zeros(n, int)}, {"len": n})
    with open_recording(path) as rec:
        text = summarize(rec)
    assert str(path) in text
    assert "format version 3" in text and "upgraded" not in text
    assert "Checkpoints" not in text  # one model state
    assert "KB" in text
    assert "15 (item length min 2 / median 3 / max 10)" in text
    assert "layer0/h" in text and "15 × 8" in text and "float16" in text and "positions" in text
    assert "L0, L1, L2, L3, L4, L5, L6, L7, L8, L9, L10, L11, … (45 labels)" in text
    assert "L12" not in text
    assert "categorical" in text and "per position" in text and "per item" in text
    assert "lstm" in text and "hidden=5" in text
    assert "parens, split valid" in text and "depth=3" in text
    assert "/tmp/x.pt" in text and "sha256 ffffffffffff…" in text and "f" * 20 not in text
    assert "torch 2.13.0" in text and "h5py" in text and "created" in text


def test_float16_input_to_a_float16_tap_is_stored_as_is_without_warnings(tmp_path):
    import warnings

    values = np.array([[1.5, -2.0, np.inf, 65504.0]], dtype=np.float16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "overflow encountered in cast" would fail here
        with RecordingWriter(tmp_path / "f16.h5", vocab=["a"], dtype="float16") as writer:
            writer.add_tap("t", 4)
            writer.append_item([0], {"t": values})
    with open_recording(tmp_path / "f16.h5") as rec:
        assert rec.raw_states("t").tolist() == values.tolist()
