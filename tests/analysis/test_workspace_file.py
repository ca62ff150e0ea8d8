"""Saved workspaces: round trip, relative and absolute recording paths, every way a file can be bad,
the optional probe settings (files without them load unchanged)."""

import json
import os
import shutil
from dataclasses import replace

import numpy as np
import pytest

from lstmviz.analysis.workspace_file import (
    MAX_FILE_BYTES,
    PROBE_INPUT,
    TRANSFORMS,
    WORKSPACE_VERSION,
    MatchSettings,
    PaneState,
    ProbeState,
    WorkspaceFileError,
    WorkspaceState,
    load_workspace,
    restore_valid,
    save_workspace,
    validate_against,
)
from lstmviz.recording import RecordingWriter, open_recording


def write_recording(path):
    with RecordingWriter(path, vocab=["<pad>", "x"]) as w:
        w.add_tap("layer0/h", 4)
        w.add_tap("layer0/c", 6)
        w.add_annotation("depth", kind="categorical", labels=["0", "1"])
        for n in (10, 15):
            w.append_item(np.ones(n, np.int64), {"layer0/h": np.zeros((n, 4), np.float32),
                                                "layer0/c": np.zeros((n, 6), np.float32)},
                          annotations={"depth": np.zeros(n, np.int64)})
    return path


@pytest.fixture
def layout(tmp_path):
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (root / "ws").mkdir()
    return root, write_recording(root / "data" / "rec.h5")


def full_state(recording):
    return WorkspaceState(
        recording=str(recording),
        window_start=7,
        window_width=120,
        panes=[
            PaneState("layer0/c", transform="zscore", threshold=1.5, brush=(3, 8), pad_left=2, pad_right=1,
                      tolerance=0.75, direction="both", added=((1, 1), (2, -1)), removed=((5, 1),)),
            PaneState("layer0/h"),
        ],
        active_pane=1,
        match=MatchSettings(mode="scored", limit=None, min_length=2, length_weight=1.25, candidate_cap=500,
                            left=4, right=16),
        annotations=["depth"],
        aggregate_annotation="depth",
        probes=ProbeState(label="depth", shift=1, at="last", taps=("layer0/c",), control=False, baseline=True,
                          curves=False, shown=True, open_probe="layer0/c"),
    )


def test_round_trip(layout):
    root, recording = layout
    state = full_state(recording)
    path = save_workspace(root / "ws" / "a.lstmviz.json", state)
    assert load_workspace(path) == state
    text = path.read_text()
    data = json.loads(text)
    assert data["lstmviz_workspace"] == WORKSPACE_VERSION
    assert data["recording"] == {"path": "../data/rec.h5", "absolute": str(recording)}
    assert data["probes"] == {"label": "depth", "shift": 1, "at": "last", "taps": ["layer0/c"], "control": False,
                              "baseline": True, "curves": False, "shown": True, "open_probe": "layer0/c"}
    assert "\n  " in text  # pretty-printed
    assert [p.name for p in (root / "ws").iterdir()] == ["a.lstmviz.json"]  # no temporary file left
    # defaults round-trip too, and numpy scalars from the GUI are saved as plain numbers
    minimal = WorkspaceState(str(recording), window_start=np.int64(3), panes=[PaneState("layer0/h", brush=(np.int64(1), 4))])
    loaded = load_workspace(save_workspace(root / "ws" / "b.json", minimal))
    assert loaded.window_start == 3 and loaded.panes[0].brush == (1, 4)
    assert loaded.match == MatchSettings() and loaded.annotations == [] and loaded.aggregate_annotation is None
    assert loaded.probes is None and "probes" not in json.loads((root / "ws" / "b.json").read_text())


def test_probe_settings_are_optional_and_take_defaults(layout):
    root, recording = layout
    state = full_state(recording)
    data = json.loads(save_workspace(root / "ws" / "a.json", state).read_text())
    # a file written before probe settings were saved: everything else loads as before
    old = {k: v for k, v in data.items() if k != "probes"}
    assert load_dict(layout, old) == replace(state, probes=None)
    assert load_dict(layout, {**data, "probes": None}).probes is None
    # every probe entry may be left out; an empty object is the Probes panel's defaults
    assert load_dict(layout, {**data, "probes": {}}).probes == ProbeState()
    assert ProbeState() == ProbeState(label=None, shift=0, at="all", taps=None, control=True, baseline=True,
                                      curves=False, shown=False, open_probe=None)
    partial = load_dict(layout, {**data, "probes": {"label": "depth", "taps": ["layer0/h", "layer0/h"]}}).probes
    assert partial == ProbeState(label="depth", taps=("layer0/h",))  # a tap named twice counts once
    assert ProbeState(taps=["a", "b"]).taps == ("a", "b")  # lists from a GUI become tuples
    # taps: null ticks every tap, [] none; both round-trip
    for taps in (None, ()):
        s = replace(state, probes=ProbeState(label="depth", taps=taps))
        assert load_workspace(save_workspace(root / "ws" / "t.json", s)) == s


def test_relative_path_survives_moving_the_folder_and_absolute_is_the_fallback(layout):
    root, recording = layout
    save_workspace(root / "ws" / "a.json", full_state(recording))
    moved = root.parent / "moved"
    shutil.move(str(root), str(moved))
    loaded = load_workspace(moved / "ws" / "a.json")
    assert loaded.recording == str(moved / "data" / "rec.h5")  # found via the relative path
    # the JSON alone moved one level deeper: the relative path breaks, and the absolute one is gone
    (moved / "ws" / "deeper").mkdir()
    shutil.copy(moved / "ws" / "a.json", moved / "ws" / "deeper" / "a.json")
    with pytest.raises(WorkspaceFileError) as e:
        load_workspace(moved / "ws" / "deeper" / "a.json")
    assert "recording it names is missing" in str(e.value)
    assert str(moved / "ws" / "data" / "rec.h5") in str(e.value)  # the relative path it tried
    assert str(root / "data" / "rec.h5") in str(e.value)  # and the absolute one
    # with the recording back at the absolute path, the fallback finds it
    (root / "data").mkdir(parents=True)
    shutil.copy(moved / "data" / "rec.h5", root / "data" / "rec.h5")
    assert load_workspace(moved / "ws" / "deeper" / "a.json").recording == str(root / "data" / "rec.h5")


def valid_dict(layout):
    root, recording = layout
    path = save_workspace(root / "ws" / "v.json", full_state(recording))
    return json.loads(path.read_text())


def load_dict(layout, data, name="bad.json"):
    path = layout[0] / "ws" / name
    path.write_text(json.dumps(data))
    return load_workspace(path)


def set_key(data, keys, value):
    obj = data
    for k in keys[:-1]:
        obj = obj[k]
    if value is DELETE:
        del obj[keys[-1]]
    else:
        obj[keys[-1]] = value
    return data


DELETE = object()


@pytest.mark.parametrize("keys,value,message", [
    (("lstmviz_workspace",), WORKSPACE_VERSION + 1, "newer lstmviz"),
    (("lstmviz_workspace",), "1", "version must be a whole number"),
    (("lstmviz_workspace",), 0, "version must be a whole number >= 1"),
    (("lstmviz_workspace",), DELETE, "not an lstmviz workspace"),
    (("recording",), DELETE, "has no 'recording' entry"),
    (("recording",), "rec.h5", "recording must be a JSON object"),
    (("recording", "path"), 5, "recording path must be a string"),
    (("panes",), DELETE, "has no 'panes' entry"),
    (("panes",), {}, "panes must be a list"),
    (("panes", 0), "layer0/c", "pane 0 must be a JSON object"),
    (("panes", 0, "tap"), DELETE, "pane 0 has no 'tap' entry"),
    (("panes", 0, "tap"), 3, "pane 0 tap must be a string"),
    (("panes", 0, "transform"), "log", "pane 0 transform is 'log', which is not one of raw, tanh, zscore"),
    (("panes", 0, "direction"), "up", "pane 0 direction is 'up'"),
    (("panes", 0, "threshold"), "high", "pane 0 threshold must be a finite number"),
    (("panes", 0, "threshold"), True, "pane 0 threshold must be a finite number"),
    (("panes", 0, "brush"), [5, 2], r"pane 0 brush \[5, 2\) is empty"),
    (("panes", 0, "brush"), [5], "pane 0 brush must be"),
    (("panes", 0, "brush"), [1.5, 3], "pane 0 brush start must be a whole number"),
    (("panes", 0, "pad_left"), -1, "pane 0 pad_left must be between 0 and 999, got -1"),
    (("panes", 0, "pad_right"), 2**63, "pane 0 pad_right must be between 0 and 999, got a number of 19 digits"),
    (("panes", 0, "threshold"), 1e308, "pane 0 threshold must be between 0 and 1,000,000, got 1e[+]308"),
    (("panes", 0, "threshold"), -1e308, "pane 0 threshold must be between 0 and 1,000,000"),
    (("panes", 0, "threshold"), -5, "pane 0 threshold must be between 0 and 1,000,000, got -5"),
    (("panes", 0, "threshold"), 10**400, "pane 0 threshold must be a finite number, got a number of 401 digits"),
    (("panes", 0, "tap"), "x" * 5000, "pane 0 tap is 5,000 characters long; at most 1,024 are allowed"),
    (("panes", 0, "tap"), "layer0\x00/c", "pane 0 tap contains a NUL character"),
    (("panes", 0, "tap"), "\ud800", "pane 0 tap is not valid text"),
    (("panes", 0, "brush"), [0, 2**63], "pane 0 brush stop must be between 0 and 9,007,199,254,740,992"),
    (("panes", 0, "tolerance"), 0, r"pane 0 tolerance must be in \(0, 1\]"),
    (("panes", 0, "added"), [[1, 2]], r"pane 0 added\[0\] sign must be 1 or -1"),
    (("panes", 0, "added"), [1], r"pane 0 added\[0\] must be \[unit, sign\]"),
    (("panes", 0, "removed"), [[-1, 1]], r"pane 0 removed\[0\] unit must be between 0 and 2,147,483,647"),
    (("panes", 0, "added"), [[1, 1]] * 70000, "pane 0 added has 70,000 entries; at most 65,536 are allowed"),
    (("panes",), [{"tap": "layer0/c"}] * 17, "panes has 17 entries; at most 16 are allowed"),
    (("active_pane",), 2, "active_pane is 2 but the workspace has 2 pane"),
    (("window",), [0, 100], "window must be a JSON object"),
    (("window", "width"), 0, "window width must be between 1 and 10,000, got 0"),
    (("window", "start"), -1, "window start must be between 0 and"),
    (("match", "mode"), "fast", "match mode is 'fast', which is not one of lstmvis, scored"),
    (("match", "limit"), 0, "match limit must be between 1 and 10,000,000, got 0"),
    (("match", "limit"), 2**63, "match limit must be between 1 and 10,000,000, got a number of 19 digits"),
    (("match", "min_length"), 2**63, "match min_length must be between 1 and 100,000"),
    (("match", "candidate_cap"), 2**63, "match candidate_cap must be between 1 and 100,000,000"),
    (("match", "left"), 10**9, "match left must be between 0 and 200, got 1,000,000,000"),
    (("match", "right"), 10**9, "match right must be between 0 and 500"),
    (("match", "length_weight"), -1, "match length_weight must be between 0 and 10, got -1"),
    (("match",), [], "match must be a JSON object, got list"),
    (("annotations",), "depth", "annotations must be a list"),
    (("annotations",), [1], r"annotations\[0\] must be a string"),
    (("aggregate_annotation",), 1, "aggregate_annotation must be a string"),
    (("probes",), [1], "probes must be a JSON object, got list"),
    (("probes", "label"), 3, "probes label must be a string"),
    (("probes", "shift"), 1.5, "probes shift must be a whole number"),
    (("probes", "shift"), True, "probes shift must be a whole number"),
    (("probes", "shift"), 4, "probes shift must be between -3 and 3, got 4"),
    (("probes", "at"), "first", "probes at is 'first', which is not one of all, last"),
    (("probes", "taps"), "layer0/c", "probes taps must be a list"),
    (("probes", "taps"), ["layer0/c", 2], r"probes taps\[1\] must be a string"),
    (("probes", "control"), 1, "probes control must be true or false, got 1"),
    (("probes", "baseline"), "no", "probes baseline must be true or false"),
    (("probes", "curves"), None, "probes curves must be true or false, got null"),
    (("probes", "shown"), "yes", "probes shown must be true or false"),
    (("probes", "open_probe"), 5, "probes open_probe must be a string"),
])
def test_every_bad_entry_is_a_sentence(layout, keys, value, message):
    data = set_key(valid_dict(layout), keys, value)
    with pytest.raises(WorkspaceFileError, match=message) as e:
        load_dict(layout, data)
    assert str(e.value).startswith(str(layout[0] / "ws" / "bad.json") + ": ")


def test_files_that_are_not_workspaces(layout):
    ws = layout[0] / "ws"
    cases = {
        "missing.json": (None, "no such file"),
        "text.json": ("not json {", r"not valid JSON \(Expecting value at line 1, column 1\)"),
        "binary.json": (b"\xff\xfe\x00garbage", "not UTF-8"),
        "list.json": ("[1, 2]", "not an lstmviz workspace"),
    }
    for name, (content, message) in cases.items():
        if isinstance(content, bytes):
            (ws / name).write_bytes(content)
        elif content is not None:
            (ws / name).write_text(content)
        with pytest.raises(WorkspaceFileError, match=message):
            load_workspace(ws / name)
    with pytest.raises(WorkspaceFileError, match="is a folder"):
        load_workspace(ws)
    assert issubclass(WorkspaceFileError, ValueError)


def test_files_that_would_hang_or_exhaust_the_reader_are_refused_before_parsing(layout):
    ws = layout[0] / "ws"
    os.mkfifo(ws / "fifo.json")  # reading it would block until a writer came
    with pytest.raises(WorkspaceFileError, match="is not a regular file"):
        load_workspace(ws / "fifo.json")
    with pytest.raises(WorkspaceFileError, match="is not a regular file"):
        load_workspace("/dev/zero")  # would never end
    big = ws / "big.json"
    with open(big, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(WorkspaceFileError, match=f"is {MAX_FILE_BYTES + 1:,} bytes"):
        load_workspace(big)
    deep = ws / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(WorkspaceFileError, match="nested too deeply"):
        load_workspace(deep)
    digits = ws / "digits.json"
    digits.write_text('{"lstmviz_workspace": 1' + "0" * 5000 + "}")
    with pytest.raises(WorkspaceFileError, match="not valid JSON"):
        load_workspace(digits)
    data = valid_dict(layout)
    data["panes"][0]["threshold"] = float("nan")  # json writes NaN, which Python reads back
    with pytest.raises(WorkspaceFileError, match="pane 0 threshold must be a finite number, got NaN"):
        load_dict(layout, data)
    data = valid_dict(layout)
    data["recording"] = {"path": "x" * 4000 + ".h5", "absolute": None}  # longer than a file name may be
    with pytest.raises(WorkspaceFileError, match="the recording it names is missing"):
        load_dict(layout, data)
    data["recording"] = {"path": None, "absolute": str(ws / "fifo.json")}  # a FIFO is not a recording
    with pytest.raises(WorkspaceFileError, match="the recording it names is missing"):
        load_dict(layout, data)


def test_extra_keys_are_ignored_and_every_default_is_one_the_schema_takes(layout):
    data = valid_dict(layout)
    data["future_setting"] = {"x": [1, 2]}
    data["panes"][0]["colour"] = "red"
    data["match"]["new"] = 1
    assert load_dict(layout, data) == full_state(layout[1])
    minimal = {"lstmviz_workspace": 1, "recording": {"absolute": str(layout[1])}, "panes": [{"tap": "layer0/c"}]}
    assert load_dict(layout, minimal) == WorkspaceState(str(layout[1]), panes=[PaneState("layer0/c")])


def test_missing_recording_names_the_paths_tried(layout):
    root, recording = layout
    data = valid_dict(layout)
    data["recording"] = {"path": "../data/gone.h5", "absolute": "/nowhere/gone.h5"}
    with pytest.raises(WorkspaceFileError) as e:
        load_dict(layout, data)
    assert str(root / "data" / "gone.h5") in str(e.value) and "/nowhere/gone.h5" in str(e.value)
    data["recording"] = {}
    with pytest.raises(WorkspaceFileError, match="neither a 'path' nor an 'absolute'"):
        load_dict(layout, data)
    data["recording"] = {"path": None, "absolute": str(recording)}  # a relative path was not possible
    assert load_dict(layout, data).recording == str(recording)


def test_saving_an_invalid_state_is_refused(layout):
    root, recording = layout
    state = full_state(recording)
    state.panes[0].direction = "sideways"
    with pytest.raises(WorkspaceFileError, match="direction is 'sideways'"):
        save_workspace(root / "ws" / "x.json", state)
    state = full_state(recording)
    state.panes[0].threshold = float("nan")
    with pytest.raises(WorkspaceFileError, match="threshold must be a finite number"):
        save_workspace(root / "ws" / "x.json", state)
    state = replace(full_state(recording), probes=ProbeState(label="depth", shift=9))
    with pytest.raises(WorkspaceFileError, match="probes shift must be between -3 and 3"):
        save_workspace(root / "ws" / "x.json", state)
    assert not (root / "ws" / "x.json").exists()


def test_validate_against_a_recording(layout):
    _, recording = layout
    state = full_state(recording)
    rec = open_recording(recording)
    try:
        assert validate_against(state, rec) == []
        state.panes.append(PaneState("layer9/c"))
        state.panes[0].brush = (20, 26)  # the corpus has 25 positions
        state.panes[1].added = ((4, 1), (1, -1))  # layer0/h has units 0-3
        state.annotations = ["depth", "pos"]
        state.aggregate_annotation = "pos"
        state.window_start = 25
        state.active_pane = 2
        restored, problems = restore_valid(state, rec)
        assert len(problems) == 6
        text = "\n".join(problems)
        assert "no tap 'layer9/c'" in text and "brush [20, 26) is outside the corpus of 25 positions" in text
        assert "added units 4 are not in tap 'layer0/h' (units 0-3)" in text
        assert "no annotation 'pos'; its track" in text and "no annotation 'pos' to aggregate" in text
        assert "window start 25" in text
        assert [p.tap for p in restored.panes] == ["layer0/c", "layer0/h"]
        assert restored.panes[0].brush is None and restored.panes[1].added == ((1, -1),)
        assert restored.annotations == ["depth"] and restored.aggregate_annotation is None
        assert restored.active_pane == 0 and restored.window_start == 0
        assert validate_against(state, rec) == problems
        assert validate_against(restored, rec) == []
    finally:
        rec.close()


def test_pane_selection_spec():
    pane = PaneState("t", threshold=0.4, brush=(3, 9), pad_left=0, pad_right=2, tolerance=0.5,
                     direction="negative", added=((1, -1),), removed=((2, -1),))
    spec = pane.selection_spec()
    assert (spec.brush_start, spec.brush_stop, spec.threshold, spec.pad_left, spec.pad_right) == (3, 9, 0.4, 0, 2)
    assert spec.tolerance == 0.5 and spec.direction == "negative"
    assert spec.added == ((1, -1),) and spec.removed == ((2, -1),)
    assert PaneState("t").selection_spec() is None


def test_transforms_agree_with_the_analysis_module():
    transforms = pytest.importorskip("lstmviz.analysis.transforms")
    assert tuple(transforms.TRANSFORMS) == TRANSFORMS


def write_probe_recording(path, checkpoints=False):
    """Taps layer0/h (positions), a categorical per-position 'depth', a numeric 'score', a categorical
    per-item 'kind', and a categorical 'empty' without labels."""
    with RecordingWriter(path, vocab=["<pad>", "x"]) as w:
        w.add_tap("layer0/h", 4)
        w.add_tap("layer0/c", 4)
        w.add_annotation("depth", kind="categorical", labels=["0", "1"])
        w.add_annotation("score", kind="numeric")
        w.add_annotation("kind", kind="categorical", level="item", labels=["a", "b"])
        for n in (10, 15):
            w.append_item(np.ones(n, np.int64), {"layer0/h": np.zeros((n, 4), np.float32),
                                                "layer0/c": np.zeros((n, 4), np.float32)},
                          annotations={"depth": np.zeros(n, np.int64), "score": np.zeros(n)},
                          item_annotations={"kind": 1})
    return path


def test_probe_settings_that_do_not_fit_the_recording_are_said_and_the_rest_kept(tmp_path):
    path = write_probe_recording(tmp_path / "probes.h5")
    fits = ProbeState(label="depth", shift=-2, at="all", taps=("layer0/c", "layer0/h"), control=False,
                      shown=True, open_probe="layer0/h")
    base = WorkspaceState(str(path), panes=[PaneState("layer0/h")])
    rec = open_recording(path)
    try:
        def check(probes):
            restored, problems = restore_valid(replace(base, probes=probes), rec)
            assert restored.panes == base.panes  # the rest of the workspace is untouched
            assert validate_against(restored, rec) == []
            return restored.probes, "\n".join(problems)

        assert check(fits) == (fits, "")
        assert check(replace(fits, open_probe=PROBE_INPUT)) == (replace(fits, open_probe=PROBE_INPUT), "")
        assert check(None) == (None, "")
        # a label that is not there, or not categorical: the panel keeps its default label, nothing runs
        for label, said in (("pos", "the recording has no annotation 'pos' to probe"),
                            ("score", "the annotation 'score' is not categorical, so it cannot be probed")):
            probes, text = check(replace(fits, label=label))
            assert probes == replace(fits, label=None, shown=False, open_probe=None)
            assert said in text and "was not computed again (its label did not fit)" in text
        # taps the recording lacks are left out; the probe to reopen must be one that runs
        probes, text = check(replace(fits, taps=("layer0/c", "layer9/c"), open_probe="layer9/c"))
        assert probes == replace(fits, taps=("layer0/c",), open_probe=None)
        assert "no tap 'layer9/c' over positions to probe; it was left out" in text
        assert "the probe of 'layer9/c' cannot be reopened" in text
        probes, text = check(replace(fits, taps=("layer8/c", "layer9/c")))
        assert probes == replace(fits, taps=None, shown=False, open_probe=None)
        assert "no taps 'layer8/c', 'layer9/c' over positions" in text and "every tap is ticked instead" in text
        assert "not computed again (its taps did not fit)" in text
        # an item's label has no shift; one model state has no curves; no baseline, no baseline probe
        probes, text = check(replace(fits, label="kind", at="last", curves=True))
        assert probes == replace(fits, label="kind", at="last", shift=0)
        assert "'kind' labels whole items, so its shift -2 was set to 0" in text
        assert "one model only, so the curves over training were left out" in text
        probes, text = check(replace(fits, baseline=False, open_probe=PROBE_INPUT))
        assert probes == replace(fits, baseline=False, open_probe=None)
        assert "input-token baseline is not computed" in text
        # nothing was shown: there is nothing to reopen, and nothing to say about it
        assert check(replace(fits, shown=False)) == (replace(fits, shown=False, open_probe=None), "")
    finally:
        rec.close()


def test_item_annotations_as_tracks_and_brushes_across_items_are_dropped_with_a_sentence(tmp_path):
    path = write_probe_recording(tmp_path / "probes.h5")  # items of 10 and 15 positions
    state = WorkspaceState(str(path), panes=[PaneState("layer0/h", brush=(8, 12)), PaneState("layer0/c", brush=(2, 6))],
                           annotations=["kind", "depth", "depth"], aggregate_annotation="kind")
    rec = open_recording(path)
    try:
        restored, problems = restore_valid(state, rec)
    finally:
        rec.close()
    text = "\n".join(problems)
    assert restored.annotations == ["depth"]  # named twice, shown once
    assert "the annotation 'kind' labels whole items, not positions, so it has no track" in text
    assert restored.aggregate_annotation == "kind"  # an item's label can be aggregated
    assert restored.panes[0].brush is None and restored.panes[1].brush == (2, 6)
    assert "pane 0: the brush [8, 12) runs past the end of its item (position 10); it was dropped" in text
    assert len(problems) == 2
