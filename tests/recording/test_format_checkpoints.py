"""Format v2 /checkpoints: several checkpoints of one training run in one recording.

Writer -> reader round trip, ``Recording.checkpoints`` / ``at_checkpoint`` views, the writer's checks,
and validation of damaged /checkpoints groups.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from lstmviz.recording import CheckpointInfo, RecordingError, RecordingWriter, open_recording, summarize

LENGTHS = [4, 1, 7, 3]
NAMES = ["step-000100", "step-000200", "step-000300"]


def _states(seed: int) -> list[dict]:
    """Per item: a float32 and a float16 tap on the main axis, one tap on a coarser axis."""
    rng = np.random.default_rng(seed)
    return [{"l/h": rng.standard_normal((n, 5)).astype(np.float32),
             "l/c": rng.uniform(-1, 1, (n, 4)).astype(np.float16),
             "pool": rng.standard_normal(((n + 1) // 2, 3)).astype(np.float32)} for n in LENGTHS]


def _declare(w: RecordingWriter) -> None:
    w.add_axis("half")
    w.add_tap("l/h", 5, layer=0, signal="h", description="hidden")
    w.add_tap("l/c", 4, dtype="float16")
    w.add_tap("pool", 3, axis="half")
    w.add_annotation("pos", kind="categorical", labels=["x", "y"])


def _write(path, *, order=(200, 300, 100)) -> dict[str, list[dict]]:
    """Three checkpoints declared in ``order``; item states of checkpoint with step s use seed s."""
    states = {f"step-{s:06d}": _states(s) for s in (100, 200, 300)}
    with RecordingWriter(path, vocab=["a", "b", "c"], provenance={"engine": "lstm"}) as w:
        _declare(w)
        for s in order:
            w.add_checkpoint(f"step-{s:06d}", step=s, path=f"/runs/m-step{s:06d}.pt", sha256=f"{s:064d}",
                             metrics={"train_loss": s / 1000, "valid_ppl": None})
        assert w.checkpoints == NAMES and w.main_checkpoint == "step-000300"
        for i, n in enumerate(LENGTHS):
            w.append_item(np.arange(n) % 3, states["step-000300"][i], {"pos": np.arange(n) % 2})
            for name in ("step-000100", "step-000200"):
                assert w.append_checkpoint_item(name, states[name][i]) == i
    return states


def _cat(items: list[dict], tap: str) -> np.ndarray:
    return np.concatenate([it[tap] for it in items])


def test_round_trip_of_three_checkpoints(tmp_path):
    path = tmp_path / "r.h5"
    states = _write(path)
    with open_recording(path) as rec:
        assert rec.checkpoint is None
        cks = rec.checkpoints
        assert all(isinstance(c, CheckpointInfo) for c in cks)
        assert [c.name for c in cks] == NAMES and [c.step for c in cks] == [100, 200, 300]
        assert [c.is_main for c in cks] == [False, False, True]
        assert cks[1] == CheckpointInfo("step-000200", 200, "/runs/m-step000200.pt", f"{200:064d}",
                                        {"train_loss": 0.2, "valid_ppl": None}, False)
        for name in NAMES:
            view = rec.at_checkpoint(name)
            assert view.checkpoint == name and view.taps == rec.taps and view.path == rec.path
            assert view.n_positions == rec.n_positions and view.provenance == rec.provenance
            for tap in ("l/h", "l/c", "pool"):
                expected = _cat(states[name], tap).astype(np.float32)
                assert np.array_equal(view.states(tap), expected), (name, tap)
                assert view.raw_states(tap).dtype == rec.taps[tap].dtype
            assert np.array_equal(view.item_states("l/h", 2, units=[4, 1]), states[name][2]["l/h"][:, [4, 1]])
            assert np.array_equal(view.item_states("pool", 3), states[name][3]["pool"])
            buf = np.empty((6, 4), np.float16)
            assert view.raw_states("l/c", 3, 9, out=buf) is buf
            assert np.array_equal(buf, _cat(states[name], "l/c")[3:9])
            assert view.token_ids(0, 15).tolist() == rec.token_ids(0, 15).tolist()
            assert np.array_equal(view.annotation("pos"), rec.annotation("pos"))
        # the main states are the last checkpoint's
        for tap in ("l/h", "l/c", "pool"):
            assert np.array_equal(rec.states(tap), _cat(states["step-000300"], tap).astype(np.float32))
        assert not np.array_equal(rec.at_checkpoint(NAMES[0]).states("l/h"), rec.states("l/h"))
        assert "Checkpoints (3" in summarize(rec)


def test_the_main_checkpoint_is_hard_linked_not_copied(tmp_path):
    big = tmp_path / "big.h5"
    rows, units = 4000, 64  # 1 MB of float32 per checkpoint
    x = np.arange(rows * units, dtype=np.float32).reshape(rows, units)
    with RecordingWriter(big) as w:
        w.add_tap("t", units)
        for s in (1, 2, 3):
            w.add_checkpoint(f"c{s}", step=s)
        for a in range(0, rows, 500):
            w.append_item(np.zeros(500, int), {"t": x[a:a + 500] + 3})
            w.append_checkpoint_item("c1", {"t": x[a:a + 500] + 1})
            w.append_checkpoint_item("c2", {"t": x[a:a + 500] + 2})
    with h5py.File(big, "r") as f:
        assert f["checkpoints/c3/taps/t"].id == f["taps/t"].id  # one object under two names
        assert f["checkpoints/c1/taps/t"].id != f["taps/t"].id
        assert f["checkpoints"].attrs["main"] == "c3"
        assert f["checkpoints/c1/taps/t"].chunks == f["taps/t"].chunks  # chunked like the main taps
        assert f["checkpoints/c1/taps/t"].maxshape == (None, units)
    size = big.stat().st_size
    assert 3 * x.nbytes < size < 3.3 * x.nbytes  # three copies of the states, not four
    with open_recording(big) as rec:
        assert np.array_equal(rec.at_checkpoint("c3").states("t"), x + 3)
        assert np.array_equal(rec.at_checkpoint("c1").states("t", 100, 900, units=[0, 63]), (x + 1)[100:900, [0, 63]])


def test_views_stream_like_the_recording_for_statistics(tmp_path):
    from lstmviz.analysis.transforms import tap_stats

    path = tmp_path / "r.h5"
    states = _write(path)
    with open_recording(path) as rec:
        for name in [NAMES[0], NAMES[2], NAMES[1]]:
            view = rec.at_checkpoint(name)
            stats = tap_stats(view, "l/h")  # cached beside the file: must not serve another checkpoint's
            values = _cat(states[name], "l/h").astype(np.float64)
            assert np.allclose(stats.mean, values.mean(axis=0)) and np.allclose(stats.maximum, values.max(axis=0))
        main = tap_stats(rec, "l/h")
        assert np.allclose(main.mean, _cat(states["step-000300"], "l/h").mean(axis=0))


def test_closing(tmp_path):
    path = tmp_path / "r.h5"
    _write(path)
    rec = open_recording(path)
    a, b = rec.at_checkpoint(NAMES[0]), rec.at_checkpoint(NAMES[1])
    with a:
        a.states("l/h", 0, 2)
    assert a.closed and not b.closed and not rec.closed  # closing a view closes only that view
    with pytest.raises(ValueError, match="closed"):
        a.states("l/h", 0, 2)
    b.states("l/h", 0, 2)
    rec.states("l/h", 0, 2)
    rec.close()
    assert b.closed
    with pytest.raises(ValueError, match="closed"):
        b.states("l/h", 0, 2)  # views do not outlive the recording


def test_unknown_checkpoint_lists_the_names(tmp_path):
    path = tmp_path / "r.h5"
    _write(path)
    with open_recording(path) as rec:
        with pytest.raises(RecordingError, match="has no checkpoint 'step-000400' "
                                                 r"\(checkpoints: step-000100, step-000200, step-000300\)"):
            rec.at_checkpoint("step-000400")
        view = rec.at_checkpoint(NAMES[0]).at_checkpoint(NAMES[1])  # a view of a view is a view of the file
        assert view.checkpoint == NAMES[1]


def test_ties_keep_the_written_order_and_no_steps_means_written_order(tmp_path):
    for steps, expected in (([5, 5, 1], ["c", "a", "b"]), ([None, None, None], ["a", "b", "c"])):
        path = tmp_path / f"{steps[0]}.h5"
        with RecordingWriter(path) as w:
            w.add_tap("t", 2)
            for name, step in zip("abc", steps):
                w.add_checkpoint(name, step=step)
            w.append_item([0, 1], {"t": np.full((2, 2), ord(expected[-1]))})
            for name in expected[:-1]:
                w.append_checkpoint_item(name, {"t": np.full((2, 2), ord(name))})
        with open_recording(path) as rec:
            assert [c.name for c in rec.checkpoints] == expected
            assert [c.step for c in rec.checkpoints] == sorted(steps, key=lambda s: s or 0)
            assert rec.checkpoints[-1].is_main and rec.checkpoints[-1].metrics == {}
            for name in expected:
                assert (rec.at_checkpoint(name).states("t") == ord(name)).all()


def test_a_single_declared_checkpoint_is_the_main_one(tmp_path):
    path = tmp_path / "one.h5"
    with RecordingWriter(path) as w:
        w.add_tap("t", 2)
        w.add_checkpoint("final", step=30, metrics={"loss": 1.5})
        w.append_item([0], {"t": [[1.0, 2.0]]})
    with open_recording(path) as rec:
        assert rec.checkpoints == [CheckpointInfo("final", 30, "", "", {"loss": 1.5}, True)]
        assert rec.at_checkpoint("final").states("t").tolist() == [[1.0, 2.0]]


# --- writer checks ---------------------------------------------------------------------------------

def _writer(tmp_path) -> RecordingWriter:
    w = RecordingWriter(tmp_path / "w.h5", vocab=["a", "b", "c"])
    _declare(w)
    w.add_checkpoint("early", step=1)
    w.add_checkpoint("late", step=2)
    return w


def test_checkpoint_items_are_checked_before_anything_is_stored(tmp_path):
    w = _writer(tmp_path)
    good = _states(0)
    with pytest.raises(ValueError, match=r"checkpoint 'early': item 0 has not been appended yet \(0 items so far\); "
                                         r"append it with append_item first"):
        w.append_checkpoint_item("early", good[0])
    w.append_item(np.arange(4) % 3, good[0], {"pos": np.zeros(4, int)})
    bad_rows = {**good[0], "l/h": good[0]["l/h"][:3]}
    with pytest.raises(ValueError, match=r"checkpoint 'early', item 0: tap 'l/h': expected 4 rows \(one per token, "
                                         r"4 tokens\), got 3"):
        w.append_checkpoint_item("early", bad_rows)
    bad_axis = {**good[0], "pool": np.zeros((3, 3))}
    with pytest.raises(ValueError, match=r"checkpoint 'early', item 0: tap 'pool': expected 2 rows on axis 'half' "
                                         r"\(as the main checkpoint's item 0\), got 3"):
        w.append_checkpoint_item("early", bad_axis)
    with pytest.raises(ValueError, match=r"checkpoint 'early', item 0: tap 'l/c': expected shape \[4, 4\], got \[4, 5\]"):
        w.append_checkpoint_item("early", {**good[0], "l/c": np.zeros((4, 5))})
    with pytest.raises(ValueError, match=r"missing \['pool'\]"):
        w.append_checkpoint_item("early", {k: v for k, v in good[0].items() if k != "pool"})
    with pytest.raises(ValueError, match="'late' is the main checkpoint"):
        w.append_checkpoint_item("late", good[0])
    with pytest.raises(ValueError, match=r"checkpoint 'middle' is not declared \(declared: 'early', 'late'\)"):
        w.append_checkpoint_item("middle", good[0])
    assert w.append_checkpoint_item("early", good[0]) == 0  # the failed calls stored nothing
    with pytest.raises(RuntimeError, match="declare axes, taps and annotations before the first append_item"):
        w.add_checkpoint("later", step=3)
    w.close()
    with open_recording(tmp_path / "w.h5") as rec:
        assert np.array_equal(rec.at_checkpoint("early").states("l/h"), good[0]["l/h"])


def test_close_refuses_a_checkpoint_without_every_item_and_leaves_no_file(tmp_path):
    w = _writer(tmp_path)
    good = _states(0)
    for i, n in enumerate(LENGTHS):
        w.append_item(np.arange(n) % 3, good[i], {"pos": np.zeros(n, int)})
    w.append_checkpoint_item("early", good[0])
    with pytest.raises(ValueError, match=r"checkpoint 'early' has the states of 1 of the 4 items; every checkpoint "
                                         r"needs the states of every item"):
        w.close()
    assert list(tmp_path.iterdir()) == []  # neither the recording nor its temporary file


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "a/b"}, "checkpoint name must be a non-empty string without '/'"),
    ({"name": "early"}, "checkpoint 'early' is already declared"),
    ({"step": -1}, "step must be None or a non-negative integer, got -1"),
    ({"step": None}, "either every checkpoint has a step or none does"),
    ({"metrics": {"x": object()}}, "metrics must be JSON-serialisable"),
    ({"metrics": [1]}, "metrics must be a dict"),
])
def test_declaration_checks(tmp_path, kwargs, message):
    w = _writer(tmp_path)
    args = {"name": "new", "step": 5, **kwargs}
    with pytest.raises(ValueError, match=message):
        w.add_checkpoint(args.pop("name"), **args)
    w.abort()


def test_checkpoint_states_stream_in_bounded_blocks(tmp_path):
    path = tmp_path / "s.h5"
    with RecordingWriter(path, dtype="float16") as w:
        w._flush_bytes = 4096
        w.add_tap("t", 512)
        w.add_checkpoint("a", step=1)
        w.add_checkpoint("b", step=2)
        for k in range(5):
            w.append_item(np.zeros(20, int), {"t": np.full((20, 512), k)})
            w.append_checkpoint_item("a", {"t": np.full((20, 512), -k)})
            assert w._buffered_bytes < 4096 + 2 * 20 * 512 * 2  # written as it comes, not held until close
        assert w._datasets["checkpoints/a/taps/t"].shape[0] > 0
    with h5py.File(path, "r") as f:
        assert f["checkpoints/a/taps/t"].chunks == (64, 512)
    with open_recording(path) as rec:
        assert rec.at_checkpoint("a").states("t")[::20, 0].tolist() == [0, -1, -2, -3, -4]


# --- validation ------------------------------------------------------------------------------------

def _expect(path, *fragments) -> None:
    with pytest.raises(RecordingError) as info:
        open_recording(path)
    e = info.value
    assert e.path == str(path) and str(e) == f"{path}: {e.problem}"
    for fragment in fragments:
        assert fragment in e.problem, (fragment, e.problem)
    assert e.__cause__ is None and (e.__context__ is None or e.__suppress_context__)


def _replace(f: h5py.File, name: str, data) -> None:
    del f[name]
    f.create_dataset(name, data=data)


def _set_attr(name, key, value):
    return lambda f: f[name].attrs.__setitem__(key, value)


def _order(names):
    return lambda f: f["checkpoints"].attrs.create("order", np.array(names, dtype=object),
                                                   dtype=h5py.string_dtype("utf-8"))


BAD = {
    "rows differ": (lambda f: _replace(f, "checkpoints/step-000100/taps/l/h", np.zeros((14, 5), np.float32)),
                    ["checkpoint 'step-000100': '/checkpoints/step-000100/taps/l/h' has shape (14, 5)",
                     "tap 'l/h' ('/taps/l/h') has shape (15, 5)", "same rows and units"]),
    "units differ": (lambda f: _replace(f, "checkpoints/step-000200/taps/pool", np.zeros((9, 2), np.float32)),
                     ["'/checkpoints/step-000200/taps/pool' has shape (9, 2)", "has shape (9, 3)"]),
    "dtype differs": (lambda f: _replace(f, "checkpoints/step-000100/taps/l/c", np.zeros((15, 4), np.float32)),
                      ["dtype float32 but tap 'l/c'", "dtype float16"]),
    "states missing": (lambda f: f.__delitem__("checkpoints/step-000100/taps/pool"),
                       ["checkpoint 'step-000100' has no states of tap 'pool'"]),
    "extra states": (lambda f: f.create_dataset("checkpoints/step-000100/taps/l/z", data=np.zeros((15, 1))),
                     ["checkpoint 'step-000100' has states of 'l/z', which '/taps' does not list"]),
    "unknown main": (_set_attr("checkpoints", "main", "step-000400"),
                     ["the main checkpoint 'step-000400'", "is not one of the checkpoints listed there "
                      "(step-000100, step-000200, step-000300)"]),
    "no main attribute": (lambda f: f["checkpoints"].attrs.__delitem__("main"), ["has no 'main' attribute"]),
    "main is a copy": (lambda f: _replace(f, "checkpoints/step-000300/taps/l/h", f["taps/l/h"][()]),
                       ["checkpoint 'step-000300' is the main checkpoint, but '/checkpoints/step-000300/taps/l/h' "
                        "is not the dataset '/taps/l/h' (it must be a hard link to it)"]),
    "main named without checkpoints": (lambda f: (_order([])(f), [f.__delitem__(f"checkpoints/{n}") for n in NAMES]),
                                       ["the main checkpoint 'step-000300'", "lists no checkpoints"]),
    "listed checkpoint missing": (lambda f: f.__delitem__("checkpoints/step-000200"),
                                  ["missing required group '/checkpoints/step-000200' (checkpoint 'step-000200')"]),
    "no checkpoints group": (lambda f: f.__delitem__("checkpoints"), ["missing required group '/checkpoints'"]),
    "no order": (lambda f: f["checkpoints"].attrs.__delitem__("order"), ["'/checkpoints' has no 'order' attribute"]),
    "listed twice": (_order(NAMES + ["step-000100"]), ["lists the checkpoint 'step-000100' twice"]),
    "not in step order": (_order([NAMES[1], NAMES[0], NAMES[2]]),
                          ["checkpoint 'step-000100' (step 100) is listed after 'step-000200' (step 200)",
                           "ascending step"]),
    "step not an integer": (_set_attr("checkpoints/step-000100", "step", "100"),
                            ["checkpoint 'step-000100' must have an integer 'step' attribute"]),
    "some steps unknown": (_set_attr("checkpoints/step-000100", "step", -1),
                           ["checkpoint 'step-000100' has no step (-1) but others have one"]),
    "metrics not JSON": (_set_attr("checkpoints/step-000200", "metrics", "{loss: 1"),
                         ["the 'metrics' attribute of checkpoint 'step-000200' is not valid JSON"]),
    "metrics not an object": (_set_attr("checkpoints/step-000200", "metrics", json.dumps([1, 2])),
                              ["must hold a JSON object, got list"]),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_damaged_checkpoints_are_refused_with_file_and_problem(tmp_path, case):
    damage, fragments = BAD[case]
    path = tmp_path / "r.h5"
    _write(path)
    with h5py.File(path, "r+") as f:
        damage(f)
    _expect(path, *fragments)


def test_open_never_reads_checkpoint_states(tmp_path, monkeypatch):
    path = tmp_path / "r.h5"
    _write(path)
    read = []
    real = h5py.Dataset.__getitem__

    def spy(self, key):
        read.append(self.name)
        return real(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    with open_recording(path) as rec:
        assert len(rec.checkpoints) == 3
    assert read and not [n for n in read if n.startswith(("/taps", "/checkpoints"))]
