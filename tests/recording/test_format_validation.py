"""open_recording refuses every kind of bad file with a RecordingError "<path>: <problem>"."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

from lstmviz.recording import RecordingError, RecordingWriter, open_recording


def _valid(path):
    """A small valid recording: 3 items (2, 3, 4 positions), a second axis, annotations at both levels."""
    with RecordingWriter(path, vocab=["a", "b", "c"], provenance={"engine": "x"}) as w:
        w.add_axis("half")
        w.add_tap("layer0/h", 4)
        w.add_tap("pool", 2, axis="half")
        w.add_annotation("pos", kind="categorical", labels=["x", "y"])
        w.add_annotation("depth", kind="numeric")
        w.add_annotation("src", kind="categorical", level="item", labels=["p", "q", "r"])
        for n in (2, 3, 4):
            w.append_item(np.arange(n) % 3, {"layer0/h": np.ones((n, 4)), "pool": np.ones(((n + 1) // 2, 2))},
                          {"pos": np.arange(n) % 2, "depth": np.zeros(n)}, {"src": n - 2})
    return path


def _expect(path, *fragments) -> RecordingError:
    with pytest.raises(RecordingError) as info:
        open_recording(path)
    e = info.value
    assert type(e) is RecordingError
    assert e.path == str(path) and str(e) == f"{path}: {e.problem}"
    for fragment in fragments:
        assert fragment in e.problem, (fragment, e.problem)
    # no h5py/OS error chained into what the user sees
    assert e.__cause__ is None and (e.__context__ is None or e.__suppress_context__)
    return e


def _replace(f: h5py.File, name: str, data) -> None:
    attrs = dict(f[name].attrs)
    del f[name]
    f.create_dataset(name, data=data)
    f[name].attrs.update(attrs)


def test_valid_file_opens(tmp_path):
    with open_recording(_valid(tmp_path / "ok.h5")) as rec:
        assert rec.n_positions == 9


def test_nonexistent_path(tmp_path):
    _expect(tmp_path / "nope.h5", "no such file")


def test_directory(tmp_path):
    _expect(tmp_path, "is a directory")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.h5"
    path.write_bytes(b"")
    _expect(path, "empty (0 bytes)")


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.h5"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    _expect(path, "not an HDF5 file", "5000 bytes")


def test_truncated_file(tmp_path):
    good = _valid(tmp_path / "ok.h5").read_bytes()
    path = tmp_path / "half.h5"
    path.write_bytes(good[: len(good) // 2])
    _expect(path, "truncated", "copy or record it again")


def test_hdf5_file_that_is_not_a_recording(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(10)
    _expect(path, "an HDF5 file but not an lstmviz recording")


def test_unfinished_recording(tmp_path):
    path = _valid(tmp_path / "r.h5")
    with h5py.File(path, "r+") as f:
        f.attrs["lstmviz_incomplete"] = True
    _expect(path, "unfinished recording", "record again")


def _edit(fn):
    def apply(path):
        with h5py.File(path, "r+") as f:
            fn(f)
    return apply


BAD_FILES = {
    "newer version": (_edit(lambda f: f.attrs.__setitem__("format_version", 7)),
                      ["written by a newer lstmviz", "format version 7", "reads versions up to 3", "upgrade lstmviz"]),
    "unknown version": (_edit(lambda f: f.attrs.__setitem__("format_version", 0)), ["unknown format version 0"]),
    "version not an int": (_edit(lambda f: f.attrs.__setitem__("format_version", "one")),
                           ["'format_version' attribute is not an integer"]),
    "no version": (_edit(lambda f: f.attrs.__delitem__("format_version")), ["without a 'format_version' attribute"]),
    "missing tokens": (_edit(lambda f: f.__delitem__("tokens")), ["missing required dataset '/tokens'"]),
    "missing vocab": (_edit(lambda f: f.__delitem__("vocab")), ["missing required dataset '/vocab'"]),
    "missing provenance": (_edit(lambda f: f.__delitem__("provenance")), ["missing required dataset '/provenance'"]),
    "missing main axis": (_edit(lambda f: f.__delitem__("axes/positions")), ["missing required group '/axes/positions'"]),
    "missing offsets": (_edit(lambda f: f.__delitem__("axes/half/item_offsets")),
                        ["missing required dataset '/axes/half/item_offsets'"]),
    "missing taps group": (_edit(lambda f: f.__delitem__("taps")), ["missing required group '/taps'"]),
    "missing listed tap": (_edit(lambda f: f.__delitem__("taps/pool")), ["tap 'pool' is listed", "is missing"]),
    "missing annotation values": (_edit(lambda f: f.__delitem__("annotations/depth/values")),
                                  ["missing required dataset '/annotations/depth/values'"]),
    "offsets not increasing": (_edit(lambda f: _replace(f, "axes/positions/item_offsets", [0, 3, 2, 9])),
                               ["item offsets of axis 'positions' are not strictly increasing at item 1",
                                "offsets[1] = 3, offsets[2] = 2"]),
    "empty item in offsets": (_edit(lambda f: _replace(f, "axes/positions/item_offsets", [0, 2, 2, 9])),
                              ["not strictly increasing at item 1"]),
    "offsets not from 0": (_edit(lambda f: _replace(f, "axes/positions/item_offsets", [1, 2, 5, 9])),
                           ["must start at 0, got 1"]),
    "wrong last offset": (_edit(lambda f: _replace(f, "axes/positions/item_offsets", [0, 2, 5, 8])),
                          ["last item offset of axis 'positions' is 8", "'/tokens' has 9 positions"]),
    "float offsets": (_edit(lambda f: _replace(f, "axes/positions/item_offsets", [0.0, 2.0, 5.0, 9.0])),
                      ["must be a non-empty 1-D integer dataset"]),
    "axes disagree on items": (_edit(lambda f: _replace(f, "axes/half/item_offsets", [0, 1, 5])),
                               ["axis 'half' has offsets for 2 items", "has 3"]),
    "tap rows": (_edit(lambda f: _replace(f, "taps/layer0/h", np.ones((8, 4), np.float32))),
                 ["tap 'layer0/h' has 8 rows but axis 'positions' has 9 positions"]),
    "tap rows on second axis": (_edit(lambda f: _replace(f, "taps/pool", np.ones((6, 2), np.float32))),
                                ["tap 'pool' has 6 rows but axis 'half' has 5"]),
    "tap is 1-D": (_edit(lambda f: _replace(f, "taps/pool", np.ones(5, np.float32))),
                   ["tap 'pool' must be a 2-D float32 or float16 dataset"]),
    "tap on unknown axis": (_edit(lambda f: f["taps/pool"].attrs.__setitem__("axis", "quarter")),
                            ["tap 'pool' is on axis 'quarter', which the file does not define"]),
    "annotation length": (_edit(lambda f: _replace(f, "annotations/depth/values", np.zeros(8))),
                          ["annotation 'depth' is per position and must have 9 values", "shape (8,)"]),
    "item annotation length": (_edit(lambda f: _replace(f, "annotations/src/values", np.zeros(4, np.int32))),
                               ["annotation 'src' is per item and must have 3 values"]),
    "label id too big": (_edit(lambda f: f["annotations/pos/values"].__setitem__(4, 2)),
                         ["annotation 'pos' has label id 2 at index 4", "outside -1..1 (2 labels"]),
    "label id below -1": (_edit(lambda f: f["annotations/src/values"].__setitem__(0, -3)),
                          ["annotation 'src' has label id -3 at index 0"]),
    "bad annotation kind": (_edit(lambda f: f["annotations/depth"].attrs.__setitem__("kind", "ordinal")),
                            ["annotation 'depth' has kind 'ordinal'"]),
    "provenance not JSON": (_edit(lambda f: _replace(f, "provenance", "{engine: lstm")), ["'/provenance' is not valid JSON"]),
    "tokens not integers": (_edit(lambda f: _replace(f, "tokens", np.zeros(9))), ["'/tokens' must be a 1-D integer dataset"]),
    "tokens wrong length": (_edit(lambda f: _replace(f, "tokens", np.zeros(10, np.int32))),
                            ["last item offset of axis 'positions' is 9", "'/tokens' has 10 positions"]),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_bad_file_is_refused_with_file_and_problem(tmp_path, case):
    damage, fragments = BAD_FILES[case]
    path = _valid(tmp_path / "r.h5")
    damage(path)
    _expect(path, *fragments)


@pytest.mark.parametrize("bad, fragment", [
    (99, "token id 99 at position 3 is outside the vocabulary (ids 0..2, 3 entries)"),
    (3, "token id 3 at position 3 is outside the vocabulary"),
    (-1, "token id -1 at position 3 is outside the vocabulary"),
    (-100, "token id -100 at position 3 is outside the vocabulary"),
])
def test_token_ids_outside_the_vocabulary_are_refused_on_open(tmp_path, bad, fragment):
    path = _valid(tmp_path / "r.h5")
    with h5py.File(path, "r+") as f:
        del f["tokens"].attrs["crc32"]  # an older file without checksums: the range check alone finds it
        f["tokens"][3] = bad
    _expect(path, fragment, "the file is damaged")


def test_a_negative_token_id_is_refused_without_a_vocabulary(tmp_path):
    path = tmp_path / "r.h5"
    with RecordingWriter(path) as w:
        w.add_tap("h", 2)
        w.append_item([5, 7, 9], {"h": np.zeros((3, 2))})
    with h5py.File(path, "r+") as f:
        del f["tokens"].attrs["crc32"]
        f["tokens"][1] = -2
    _expect(path, "token id -2 at position 1 is negative")


def test_open_is_cheap_and_never_reads_taps(tmp_path, monkeypatch):
    """Validation checks shapes and offsets; reading tap data on open would be the 10 GB mistake."""
    path = _valid(tmp_path / "r.h5")
    read = []
    real = h5py.Dataset.__getitem__

    def spy(self, key):
        read.append(self.name)
        return real(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    with open_recording(path):
        pass
    assert read and not [name for name in read if name.startswith("/taps")]


def test_reading_a_damaged_chunk_is_a_recording_error(tmp_path, monkeypatch):
    path = _valid(tmp_path / "r.h5")
    real = h5py.Dataset.__getitem__

    def failing(self, key):  # what h5py raises for a chunk whose bytes are gone
        if self.name.startswith("/taps"):
            raise OSError("Can't synchronously read data (address of object past end of allocation)")
        return real(self, key)

    with open_recording(path) as rec:
        monkeypatch.setattr(h5py.Dataset, "__getitem__", failing)
        with pytest.raises(RecordingError) as info:
            rec.states("layer0/h", 0, 2)
    e = info.value
    assert str(e).startswith(f"{path}: cannot read tap 'layer0/h' rows 0..2: the file is damaged")
    assert e.__cause__ is None and e.__suppress_context__


# --- files that are not regular files are refused before HDF5 opens them (a FIFO would block) --------


def _open_or_unblock(path, fifo=None) -> RecordingError:
    """``open_recording(path)`` on a thread; if it blocks on ``fifo``, unblock it and fail the test."""
    outcome = {}

    def run():
        try:
            open_recording(path).close()
            outcome["opened"] = True
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    if thread.is_alive():
        if fifo is not None:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # the blocked reader now sees end of file
        thread.join(30)
        pytest.fail(f"open_recording({path}) blocked")
    assert "error" in outcome, f"{path} opened: {outcome}"
    error = outcome["error"]
    assert type(error) is RecordingError and error.path == str(path), repr(error)
    return error


def test_a_fifo_is_refused_without_blocking(tmp_path):
    path = tmp_path / "x.h5"
    os.mkfifo(path)
    error = _open_or_unblock(path, fifo=path)
    assert "is a FIFO (named pipe), not a regular file" in error.problem


def test_a_symlink_to_a_fifo_or_a_device_is_refused(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    (tmp_path / "a.h5").symlink_to(fifo)
    assert "is a FIFO" in _open_or_unblock(tmp_path / "a.h5", fifo=fifo).problem
    (tmp_path / "zero.h5").symlink_to("/dev/zero")
    assert "is a character device, not a regular file" in _expect(tmp_path / "zero.h5").problem


# --- links, virtual datasets and external storage: a recording never makes lstmviz read other files ---


def _secret(tmp_path) -> Path:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"password=hunter2\n" * 8)
    return secret


def test_an_external_link_is_refused_with_its_name_and_target(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["d"] = np.ones((5, 2), np.float32)
    (tmp_path / "sub").mkdir()
    path = _valid(tmp_path / "sub" / "r.h5")
    with h5py.File(path, "r+") as f:
        del f["taps/pool"]
        f["taps/pool"] = h5py.ExternalLink("../other.h5", "/d")  # a relative path out of the folder
        assert f["taps/pool"].shape == (5, 2)  # HDF5 itself follows it
    _expect(path, "'/taps/pool' is an external link to '/d' in the file '../other.h5'", "refused")


def test_an_external_link_is_refused_even_where_readers_look_no_further(tmp_path):
    path = _valid(tmp_path / "r.h5")
    with h5py.File(path, "r+") as f:
        f["derived/x"] = h5py.ExternalLink(str(_secret(tmp_path)), "/")
    _expect(path, "'/derived/x' is an external link")


def test_a_soft_link_is_refused(tmp_path):
    path = _valid(tmp_path / "r.h5")
    with h5py.File(path, "r+") as f:
        f["derived/alias"] = h5py.SoftLink("/tokens")
    _expect(path, "'/derived/alias' is a soft link (to '/tokens')")


def test_a_virtual_dataset_is_refused(tmp_path):
    path = _valid(tmp_path / "r.h5")
    with h5py.File(path, "r+") as f:
        attrs = dict(f["taps/layer0/h"].attrs)
        del f["taps/layer0/h"]
        layout = h5py.VirtualLayout(shape=(9, 4), dtype=np.float32)
        layout[...] = h5py.VirtualSource("missing.h5", "/x", shape=(9, 4))  # would read as zeros
        f.create_virtual_dataset("taps/layer0/h", layout, fillvalue=0).attrs.update(attrs)
    _expect(path, "'/taps/layer0/h' is a virtual dataset whose values come from 'missing.h5'")


def test_external_raw_storage_is_refused_and_the_other_file_is_not_read(tmp_path):
    secret = _secret(tmp_path)
    path = _valid(tmp_path / "r.h5")
    with h5py.File(path, "r+") as f:
        attrs = dict(f["taps/layer0/h"].attrs)
        del f["taps/layer0/h"]
        ds = f.create_dataset("taps/layer0/h", shape=(9, 4), dtype=np.float32, external=[(str(secret), 0, 144)])
        ds.attrs.update(attrs)
        assert ds[0].tobytes() == secret.read_bytes()[:16]  # what HDF5 alone would show as tap values
    _expect(path, "'/taps/layer0/h' keeps its values in the external file", "secret.txt")


def test_external_storage_on_a_fifo_does_not_block(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    path = _valid(tmp_path / "r.h5")
    with h5py.File(path, "r+") as f:
        del f["axes/positions/item_offsets"]  # read whole on open: the old reader blocked on the FIFO here
        f.create_dataset("axes/positions/item_offsets", shape=(4,), dtype=np.int64, external=[(str(fifo), 0, 32)])
    error = _open_or_unblock(path, fifo=fifo)
    assert "'/axes/positions/item_offsets' keeps its values in the external file" in error.problem


def test_the_main_checkpoint_hard_links_are_accepted(tmp_path):
    path = tmp_path / "r.h5"
    with RecordingWriter(path, vocab=["a"]) as w:
        w.add_tap("h", 2)
        w.add_checkpoint("step-000001", step=1)
        w.add_checkpoint("step-000002", step=2)
        w.append_item([0, 0], {"h": np.ones((2, 2))})
        w.append_checkpoint_item("step-000001", {"h": np.zeros((2, 2))})
    with open_recording(path) as rec:
        assert rec.at_checkpoint("step-000002").states("h").tolist() == [[1, 1], [1, 1]]


# --- declared sizes: checked against what the file stores and hard limits, before anything is read -----


def _sparse(f: h5py.File, name: str, shape, dtype, head=None) -> None:
    """Replace ``name`` by a chunked dataset declaring ``shape``, with only ``head`` written (sparse)."""
    attrs = dict(f[name].attrs) if name in f else {}
    if name in f:
        del f[name]
    chunks = (1 << 16,) + tuple(shape[1:])
    ds = f.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, maxshape=(None,) + tuple(shape[1:]))
    ds.attrs.update(attrs)
    if head is not None:
        ds[:len(head)] = head


def _expect_without_reading(path, monkeypatch, *fragments) -> RecordingError:
    read = []
    real = h5py.Dataset.__getitem__

    def spy(self, key):
        read.append(self.name)
        return real(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    error = _expect(path, *fragments)
    assert read == [], read  # refused from the declared sizes, before any dataset was read
    return error


def test_sparse_item_offsets_of_2_31_entries_are_refused_before_reading(tmp_path, monkeypatch):
    path = _valid(tmp_path / "r.h5")
    with h5py.File(path, "r+") as f:
        _sparse(f, "axes/positions/item_offsets", (2 ** 31,), np.int64, head=[0, 2, 5, 9])
    _expect_without_reading(path, monkeypatch, "'/axes/positions/item_offsets' declares shape (2147483648,) (17 GB)",
                            "only", "stored")


def test_sparse_tokens_of_2_33_positions_are_refused(tmp_path, monkeypatch):
    path = _valid(tmp_path / "r.h5")
    with h5py.File(path, "r+") as f:
        _sparse(f, "tokens", (2 ** 33,), np.int32, head=np.zeros(9, np.int32))
        _replace(f, "axes/positions/item_offsets", [0, 2, 5, 2 ** 33])
    _expect_without_reading(path, monkeypatch, "'/tokens' declares shape (8589934592,)")


def test_a_sparse_vocabulary_of_1e8_entries_is_refused(tmp_path, monkeypatch):
    path = _valid(tmp_path / "r.h5")
    with h5py.File(path, "r+") as f:
        _sparse(f, "vocab", (10 ** 8,), h5py.string_dtype())
    _expect_without_reading(path, monkeypatch, "'/vocab' declares shape (100000000,)")


def test_a_tap_whose_values_were_never_written_is_refused(tmp_path):
    """Unwritten chunks read as zeros: without the check, the states would be zeros without a word."""
    path = _valid(tmp_path / "r.h5")
    with h5py.File(path, "r+") as f:
        attrs = dict(f["taps/layer0/h"].attrs)
        del f["taps/layer0/h"]
        ds = f.create_dataset("taps/layer0/h", shape=(9, 4), dtype=np.float32, chunks=(2, 4))
        ds.attrs.update(attrs)
        ds[:4] = 1.0  # chunks for rows 4..8 never written
    _expect(path, "'/taps/layer0/h' declares shape (9, 4) (144 bytes) but only 64 bytes of it are stored")


def test_limits_on_vocabulary_labels_and_units(tmp_path, monkeypatch):
    from lstmviz.recording import format as fmt

    path = _valid(tmp_path / "r.h5")
    monkeypatch.setattr(fmt, "MAX_VOCAB", 2)
    _expect(path, "the vocabulary ('/vocab') declares 3 entries, more than the 2 lstmviz reads")
    monkeypatch.setattr(fmt, "MAX_VOCAB", 3)
    monkeypatch.setattr(fmt, "MAX_UNITS", 3)
    _expect(path, "tap 'layer0/h' declares 4 units, more than the 3 lstmviz reads")


def test_offsets_that_do_not_fit_in_memory_are_refused(tmp_path, monkeypatch):
    import lstmviz.memory

    path = _valid(tmp_path / "r.h5")
    monkeypatch.setattr(lstmviz.memory, "available_bytes", lambda: 10)
    _expect(path, "the item offsets of axis 'positions' (3 items) need 64 bytes of memory to read, more than the "
                  "10 bytes available")


# --- checksums: a flipped bit in tokens, offsets, annotations, vocabulary or provenance is found on open ---


CHECKSUMMED = {
    "token id in range": (lambda f: f["tokens"].__setitem__(4, 0), "the token ids ('/tokens') do not match"),
    "vocabulary entry": (lambda f: _replace(f, "vocab", np.array(["a", "B", "c"], dtype=object)),
                         "the vocabulary ('/vocab') do not match"),
    "numeric annotation": (lambda f: f["annotations/depth/values"].__setitem__(8, 0.5),
                           "the values of annotation 'depth'"),
    "categorical annotation": (lambda f: f["annotations/pos/values"].__setitem__(0, 1),
                               "the values of annotation 'pos'"),
    "labels": (lambda f: _replace(f, "annotations/pos/labels", np.array(["x", "z"], dtype=object)),
               "the labels of annotation 'pos'"),
    "item offsets": (lambda f: f["axes/half/item_offsets"].__setitem__(1, 2),  # [0, 1, 3, 5] -> [0, 2, 3, 5]
                     "the item offsets of axis 'half'"),
    "provenance": (lambda f: _replace(f, "provenance", '{"engine": "y"}'), "the provenance ('/provenance')"),
}


TEXT_ATTRIBUTES = {
    "tap description": ("taps/layer0/h", "description", "the cell state"),
    "tap signal": ("taps/pool", "signal", "c"),
    "axis description": ("axes/half", "description", "every third position"),
    "annotation description": ("annotations/depth", "description", "from another parser"),
}


@pytest.mark.parametrize("case", TEXT_ATTRIBUTES, ids=list(TEXT_ATTRIBUTES))
def test_a_changed_text_attribute_is_found_by_the_root_checksum(tmp_path, case):
    """Variable-length strings live outside HDF5's checksummed headers: a flipped bit there is silent."""
    name, attribute, value = TEXT_ATTRIBUTES[case]
    path = _valid(tmp_path / "r.h5")
    _edit(lambda f: f[name].attrs.__setitem__(attribute, value))(path)
    _expect(path, "the text attributes (names, descriptions, checkpoint paths and metrics) do not match their "
                  "checksum")


def test_attributes_the_format_does_not_define_are_free(tmp_path):
    path = _valid(tmp_path / "r.h5")
    _edit(lambda f: (f.attrs.__setitem__("made_by", "a script"), f["taps/pool"].attrs.__setitem__("note", "x")))(path)
    with open_recording(path) as rec:
        assert rec.taps["pool"].units == 2


@pytest.mark.parametrize("case", CHECKSUMMED, ids=list(CHECKSUMMED))
def test_a_changed_value_that_is_still_valid_is_found_by_its_checksum(tmp_path, case):
    edit, fragment = CHECKSUMMED[case]
    path = _valid(tmp_path / "r.h5")
    _edit(edit)(path)
    error = _expect(path)
    assert fragment in error.problem and "checksum" in error.problem and "damaged" in error.problem, error.problem


def test_a_file_without_checksums_opens(tmp_path):
    """Files written before checksums existed (every tests/data fixture) open as they are."""
    path = _valid(tmp_path / "r.h5")
    with h5py.File(path, "r+") as f:
        def drop(name, obj):
            if isinstance(obj, h5py.Dataset) and "crc32" in obj.attrs:
                del obj.attrs["crc32"]
        f.visititems(drop)
        del f.attrs["attributes_crc32"]
        f["taps/pool"].attrs["description"] = "edited"
        f["tokens"][4] = 0  # nothing can tell this change without the checksum
    with open_recording(path) as rec:
        assert rec.token_ids(0, 9).tolist() == [0, 1, 0, 1, 0, 0, 1, 2, 0]


def test_every_checksummed_dataset_carries_a_checksum(tmp_path):
    path = _valid(tmp_path / "r.h5")
    with h5py.File(path, "r") as f:
        names = sorted(n for n, o in _datasets(f) if "crc32" in o.attrs)
    assert names == ["annotations/depth/values", "annotations/pos/labels", "annotations/pos/values",
                     "annotations/src/labels", "annotations/src/values", "axes/half/item_offsets",
                     "axes/positions/item_offsets", "provenance", "tokens", "vocab"]


def _datasets(f: h5py.File):
    out = []
    f.visititems(lambda name, obj: out.append((name, obj)) if isinstance(obj, h5py.Dataset) else None)
    return out
