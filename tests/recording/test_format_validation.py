"""open_recording refuses every kind of bad file with a RecordingError "<path>: <problem>"."""

from __future__ import annotations

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
                      ["written by a newer lstmviz", "format version 7", "reads versions up to 2", "upgrade lstmviz"]),
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


def test_token_outside_vocabulary_is_reported_on_read(tmp_path):
    path = _valid(tmp_path / "r.h5")
    with h5py.File(path, "r+") as f:
        f["tokens"][3] = 99
    with open_recording(path) as rec:
        assert rec.tokens(0, 3) == ["a", "b", "a"]
        with pytest.raises(RecordingError, match=r"token id 99 at position 3 is outside the vocabulary \(3 entries\)"):
            rec.tokens(0, 5)


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
