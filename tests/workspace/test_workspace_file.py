"""Saved workspaces (version 2): round trip, relative and absolute recording paths, several recordings,
every way a file can be bad, panels' parts (optional, versioned, kept when unknown); version 1 files
(the committed fixtures among them) load through the migration with the same sentences for bad entries."""

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lstmviz.qt.match.state import MATCH_STATE, MatchSettings
from lstmviz.qt.probes.state import PROBE_INPUT, PROBE_STATE, ProbeState
from lstmviz.recording import RecordingWriter, open_recording
from lstmviz.workspace.file import (
    MAX_FILE_BYTES,
    TRANSFORMS,
    WORKSPACE_VERSION,
    PaneState,
    WorkspaceFileError,
    WorkspaceState,
    load_workspace,
    restore_valid,
    save_workspace,
    validate_against,
)
from lstmviz.workspace.panel_state import PanelStateFormat, register_panel_state
from lstmviz.workspace.schema import Record, Whole

# the two panels' parts are read as the window reads them (its panels register their formats)
register_panel_state(MATCH_STATE)
register_panel_state(PROBE_STATE)
ROOT = Path(__file__).resolve().parents[2]


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


MATCH = MatchSettings(mode="scored", limit=None, min_length=2, length_weight=1.25, candidate_cap=500, left=4,
                      right=16, aggregate_annotation="depth")
PROBES = ProbeState(label="depth", shift=1, at="last", taps=("layer0/c",), control=False, baseline=True,
                    curves=False, shown=True, open_probe="layer0/c")


def full_state(recording):
    return WorkspaceState.of(
        str(recording),
        window_start=7,
        window_width=120,
        panes=[
            PaneState("layer0/c", transform="zscore", threshold=1.5, brush=(3, 8), pad_left=2, pad_right=1,
                      tolerance=0.75, direction="both", added=((1, 1), (2, -1)), removed=((5, 1),)),
            PaneState("layer0/h"),
        ],
        active_pane=1,
        annotations=["depth"],
        panels={"match": MATCH, "probes": PROBES},
    )


def v1_dict(recording, **changes):
    """A version 1 file of ``full_state`` (as lstmviz wrote it before version 2)."""
    data = {
        "lstmviz_workspace": 1,
        "recording": {"path": "../data/rec.h5", "absolute": str(recording)},
        "window": {"start": 7, "width": 120},
        "panes": [
            {"tap": "layer0/c", "transform": "zscore", "threshold": 1.5, "brush": [3, 8], "pad_left": 2,
             "pad_right": 1, "tolerance": 0.75, "direction": "both", "added": [[1, 1], [2, -1]], "removed": [[5, 1]]},
            {"tap": "layer0/h", "transform": "tanh", "threshold": 0.3, "brush": None, "pad_left": 1, "pad_right": 0,
             "tolerance": 1.0, "direction": "positive", "added": [], "removed": []},
        ],
        "active_pane": 1,
        "match": {"mode": "scored", "limit": None, "min_length": 2, "length_weight": 1.25, "candidate_cap": 500,
                  "left": 4, "right": 16},
        "annotations": ["depth"],
        "aggregate_annotation": "depth",
        "probes": {"label": "depth", "shift": 1, "at": "last", "taps": ["layer0/c"], "control": False,
                   "baseline": True, "curves": False, "shown": True, "open_probe": "layer0/c"},
    }
    data.update(changes)
    return data


def test_round_trip(layout):
    root, recording = layout
    state = full_state(recording)
    path = save_workspace(root / "ws" / "a.lstmviz.json", state)
    assert load_workspace(path) == state
    text = path.read_text()
    data = json.loads(text)
    assert data["lstmviz_workspace"] == WORKSPACE_VERSION == 2
    assert data["recordings"] == {"r0": {"path": "../data/rec.h5", "absolute": str(recording)}}
    assert data["shown"] == "r0" and [p["recording"] for p in data["panes"]] == ["r0", "r0"]
    assert data["panels"]["probes"] == {"version": 1, "label": "depth", "shift": 1, "at": "last",
                                        "taps": ["layer0/c"], "control": False, "baseline": True, "curves": False,
                                        "shown": True, "open_probe": "layer0/c"}
    assert data["panels"]["match"] == {"version": 1, "mode": "scored", "limit": None, "min_length": 2,
                                       "length_weight": 1.25, "candidate_cap": 500, "left": 4, "right": 16,
                                       "aggregate_annotation": "depth"}
    assert "\n  " in text  # pretty-printed
    assert [p.name for p in (root / "ws").iterdir()] == ["a.lstmviz.json"]  # no temporary file left
    # defaults round-trip too, and numpy scalars from the GUI are saved as plain numbers
    minimal = WorkspaceState.of(str(recording), window_start=np.int64(3),
                                panes=[PaneState("layer0/h", brush=(np.int64(1), 4))])
    loaded = load_workspace(save_workspace(root / "ws" / "b.json", minimal))
    assert loaded.window_start == 3 and loaded.panes[0].brush == (1, 4)
    assert loaded.panels == {} and loaded.annotations == []
    assert json.loads((root / "ws" / "b.json").read_text())["panels"] == {}


def test_a_version_1_file_loads_as_the_same_workspace(layout):
    root, recording = layout
    assert load_dict(layout, v1_dict(recording)) == full_state(recording)
    # parts a version 1 file may leave out: no panel state then (the panels keep their defaults)
    old = {k: v for k, v in v1_dict(recording).items() if k not in ("probes", "match", "aggregate_annotation")}
    assert load_dict(layout, old).panels == {}
    assert load_dict(layout, v1_dict(recording, probes=None)).panels == {"match": MATCH}
    assert load_dict(layout, v1_dict(recording, match=None)).panels["match"] == MatchSettings(aggregate_annotation="depth")
    assert load_dict(layout, v1_dict(recording, probes={})).panels["probes"] == ProbeState()
    partial = load_dict(layout, v1_dict(recording, probes={"label": "depth", "taps": ["layer0/h", "layer0/h"]}))
    assert partial.panels["probes"] == ProbeState(label="depth", taps=("layer0/h",))  # a tap named twice counts once
    # saved again, it is a version 2 file of the same workspace
    again = json.loads(save_workspace(root / "ws" / "again.json", load_dict(layout, v1_dict(recording))).read_text())
    assert again["lstmviz_workspace"] == 2 and load_workspace(root / "ws" / "again.json") == full_state(recording)


@pytest.mark.parametrize("name", ["main-window", "probes"])
def test_the_committed_version_1_workspaces_keep_loading(name):
    path = ROOT / "assets" / "screenshots" / f"{name}.lstmviz.json"
    assert json.loads(path.read_text())["lstmviz_workspace"] == 1
    state = load_workspace(path)
    assert state.recording == str((ROOT / "assets" / "demo" / "parens-lstm.h5").resolve())
    assert state.recordings == {"r0": state.recording} and state.shown == "r0"
    assert state.annotations == ["depth", "token_class", "match_distance"]
    assert state.panels["match"] == MatchSettings()
    if name == "main-window":
        assert [(p.tap, p.threshold, p.brush, p.direction, p.recording) for p in state.panes] == [
            ("layer0/c", 0.5, (43, 63), "positive", "r0"), ("layer1/c", 0.5, (43, 63), "negative", "r0")]
        assert (state.window_start, state.window_width) == (30, 60) and "probes" not in state.panels
    else:
        assert state.panes == [PaneState("layer0/c", added=((110, 1),), pad_right=0)]
        assert state.panels["probes"] == ProbeState(label="depth", shown=True, open_probe="layer0/c")


def test_probe_settings_are_optional_and_take_defaults(layout):
    root, recording = layout
    state = full_state(recording)
    data = json.loads(save_workspace(root / "ws" / "a.json", state).read_text())
    # a file without probe settings: everything else loads as before
    old = json.loads(json.dumps(data))
    del old["panels"]["probes"]
    assert load_dict(layout, old) == replace(state, panels={"match": MATCH})
    # every probe entry may be left out (its version too); an empty object is the Probes panel's defaults
    assert load_dict(layout, {**data, "panels": {"probes": {}}}).panels == {"probes": ProbeState()}
    assert ProbeState() == ProbeState(label=None, shift=0, at="all", taps=None, control=True, baseline=True,
                                      curves=False, shown=False, open_probe=None)
    assert ProbeState(taps=["a", "b"]).taps == ("a", "b")  # lists from a GUI become tuples
    # taps: null ticks every tap, [] none; both round-trip
    for taps in (None, ()):
        s = replace(state, panels={"probes": ProbeState(label="depth", taps=taps)})
        assert load_workspace(save_workspace(root / "ws" / "t.json", s)) == s


def test_a_part_of_a_panel_this_lstmviz_lacks_is_kept_and_written_back(layout):
    root, recording = layout
    data = json.loads(save_workspace(root / "ws" / "a.json", full_state(recording)).read_text())
    data["panels"]["saliency"] = {"version": 3, "action": "ablate", "units": [1, 2]}
    loaded = load_dict(layout, data)
    assert loaded.panels["saliency"] == {"version": 3, "action": "ablate", "units": [1, 2]}
    again = json.loads(save_workspace(root / "ws" / "b.json", loaded).read_text())
    assert again["panels"]["saliency"] == {"version": 3, "action": "ablate", "units": [1, 2]}
    # without the formats, every panel's part is kept as it is
    raw = load_workspace(root / "ws" / "b.json", formats={})
    assert raw.panels["probes"]["label"] == "depth" and raw.panels["match"]["mode"] == "scored"
    data["panels"]["saliency"] = [1]
    with pytest.raises(WorkspaceFileError, match="panels saliency must be a JSON object"):
        load_dict(layout, data)


class _Perturb(PanelStateFormat):
    """A panel's part in its second version: ``alpha`` was called ``scale`` in version 1."""

    name = "perturb"
    title = "the Perturbation panel"
    version = 2
    schema = Record({"alpha": (Whole(0, 10), 1)})

    def migrate(self, values, version):
        return {"alpha": values.get("scale", 1)} if version == 1 else values


def test_a_panel_part_is_migrated_by_its_own_version_and_a_newer_one_is_refused(layout):
    root, recording = layout
    formats = {"perturb": _Perturb()}
    data = json.loads(save_workspace(root / "ws" / "a.json", replace(full_state(recording), panels={})).read_text())
    path = root / "ws" / "p.json"
    for part, alpha in (({"version": 1, "scale": 4}, 4), ({"version": 2, "alpha": 5}, 5), ({"scale": 3}, 3)):
        path.write_text(json.dumps({**data, "panels": {"perturb": part}}))
        assert load_workspace(path, formats=formats).panels["perturb"] == {"alpha": alpha}
    path.write_text(json.dumps({**data, "panels": {"perturb": {"version": 3, "alpha": 1}}}))
    with pytest.raises(WorkspaceFileError, match="perturb was saved by a newer lstmviz .the Perturbation panel "
                                                 "version 3; this one reads up to 2."):
        load_workspace(path, formats=formats)
    path.write_text(json.dumps({**data, "panels": {"perturb": {"version": 2, "alpha": 11}}}))
    with pytest.raises(WorkspaceFileError, match="perturb alpha must be between 0 and 10, got 11"):
        load_workspace(path, formats=formats)


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


#: a bad entry of a version 1 file and the sentence that says so (version 2 files: ``V2_CASES``)
V1_CASES = [
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
]


def _v2(keys, message):
    """A version 1 case where version 2 keeps the entry: the panels' parts say the same sentence."""
    if keys[0] in ("match", "probes"):
        return ("panels", *keys), message
    if keys == ("aggregate_annotation",):
        return ("panels", "match", "aggregate_annotation"), "match " + message
    if keys[0] == "recording":
        return ("recordings", "r0", *keys[1:]), message.replace("recording", "recordings r0", 1)
    return keys, message


V2_CASES = [(*_v2(keys, message)[:1], value, _v2(keys, message)[1]) for keys, value, message in V1_CASES
            if keys[:1] != ("recording",) and keys != ("match",)] + [
    (("recordings",), DELETE, "has no 'recordings' entry"),
    (("recordings",), "rec.h5", "recordings must be a JSON object"),
    (("recordings",), {}, "recordings is empty"),
    (("recordings", "r0", "path"), 5, "recordings r0 path must be a string"),
    (("recordings", "r0"), {}, "recordings r0 has neither a 'path' nor an 'absolute' entry"),
    (("shown",), "r9", "shown is 'r9', which is not one of the recordings .'r0'."),
    (("panes", 0, "recording"), "r9", "pane 0 recording is 'r9', which is not one of the recordings"),
    (("panes", 0, "recording"), 4, "pane 0 recording must be a string"),
    (("panels",), [], "panels must be a JSON object, got list"),
    (("panels", "match"), [], "match must be a JSON object, got list"),
    (("panels", "probes", "version"), "1", "probes version must be a whole number"),
]


@pytest.mark.parametrize("keys,value,message", V1_CASES)
def test_every_bad_entry_of_a_version_1_file_is_a_sentence(layout, keys, value, message):
    data = set_key(v1_dict(layout[1]), keys, value)
    with pytest.raises(WorkspaceFileError, match=message) as e:
        load_dict(layout, data)
    assert str(e.value).startswith(str(layout[0] / "ws" / "bad.json") + ": ")


@pytest.mark.parametrize("keys,value,message", V2_CASES)
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
    data["recordings"]["r0"] = {"path": "x" * 4000 + ".h5", "absolute": None}  # longer than a file name may be
    with pytest.raises(WorkspaceFileError, match="the recording it names is missing"):
        load_dict(layout, data)
    data["recordings"]["r0"] = {"path": None, "absolute": str(ws / "fifo.json")}  # a FIFO is not a recording
    with pytest.raises(WorkspaceFileError, match="the recording it names is missing"):
        load_dict(layout, data)


def test_extra_keys_are_ignored_and_every_default_is_one_the_schema_takes(layout):
    data = valid_dict(layout)
    data["future_setting"] = {"x": [1, 2]}
    data["panes"][0]["colour"] = "red"
    data["panels"]["match"]["new"] = 1
    assert load_dict(layout, data) == full_state(layout[1])
    minimal = {"lstmviz_workspace": 1, "recording": {"absolute": str(layout[1])}, "panes": [{"tap": "layer0/c"}]}
    assert load_dict(layout, minimal) == WorkspaceState.of(str(layout[1]), panes=[PaneState("layer0/c")])
    # version 2: the shown recording and a pane's recording default to the first recording
    minimal = {"lstmviz_workspace": 2, "recordings": {"a": {"absolute": str(layout[1])}}, "panes": [{"tap": "layer0/c"}]}
    assert load_dict(layout, minimal) == WorkspaceState({"a": str(layout[1])}, shown="a",
                                                        panes=[PaneState("layer0/c", recording="a")])


def test_missing_recording_names_the_paths_tried(layout):
    root, recording = layout
    data = valid_dict(layout)
    data["recordings"]["r0"] = {"path": "../data/gone.h5", "absolute": "/nowhere/gone.h5"}
    with pytest.raises(WorkspaceFileError) as e:
        load_dict(layout, data)
    assert str(root / "data" / "gone.h5") in str(e.value) and "/nowhere/gone.h5" in str(e.value)
    data["recordings"]["r0"] = {}
    with pytest.raises(WorkspaceFileError, match="neither a 'path' nor an 'absolute'"):
        load_dict(layout, data)
    data["recordings"]["r0"] = {"path": None, "absolute": str(recording)}  # a relative path was not possible
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
    state = replace(full_state(recording), panels={"probes": ProbeState(label="depth", shift=9)})
    with pytest.raises(WorkspaceFileError, match="probes shift must be between -3 and 3"):
        save_workspace(root / "ws" / "x.json", state)
    state = replace(full_state(recording), panels={"saliency": ProbeState()})  # a state no format writes
    with pytest.raises(WorkspaceFileError, match="no panel 'saliency' is known to write its settings"):
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
        state.panels["match"] = replace(MATCH, aggregate_annotation="pos")
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
        assert restored.annotations == ["depth"] and restored.panels["match"].aggregate_annotation is None
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
    base = WorkspaceState.of(str(path), panes=[PaneState("layer0/h")])
    rec = open_recording(path)
    try:
        def check(probes):
            restored, problems = restore_valid(replace(base, panels={"probes": probes}), rec)
            assert restored.panes == base.panes  # the rest of the workspace is untouched
            assert validate_against(restored, rec) == []
            return restored.panels["probes"], "\n".join(problems)

        assert check(fits) == (fits, "")
        assert check(replace(fits, open_probe=PROBE_INPUT)) == (replace(fits, open_probe=PROBE_INPUT), "")
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
    state = WorkspaceState.of(str(path), panes=[PaneState("layer0/h", brush=(8, 12)), PaneState("layer0/c", brush=(2, 6))],
                              annotations=["kind", "depth", "depth"],
                              panels={"match": MatchSettings(aggregate_annotation="kind")})
    rec = open_recording(path)
    try:
        restored, problems = restore_valid(state, rec)
    finally:
        rec.close()
    text = "\n".join(problems)
    assert restored.annotations == ["depth"]  # named twice, shown once
    assert "the annotation 'kind' labels whole items, not positions, so it has no track" in text
    assert restored.panels["match"].aggregate_annotation == "kind"  # an item's label can be aggregated
    assert restored.panes[0].brush is None and restored.panes[1].brush == (2, 6)
    assert "pane 0: the brush [8, 12) runs past the end of its item (position 10); it was dropped" in text
    assert len(problems) == 2


def test_a_workspace_of_two_recordings_round_trips_and_each_pane_is_checked_against_its_own(tmp_path):
    first = write_recording(tmp_path / "a.h5")  # layer0/h of 4 units
    second = write_probe_recording(tmp_path / "b.h5")  # layer0/h of 4, an item annotation 'kind'
    state = WorkspaceState({"clean": str(first), "corrupted": str(second)}, shown="corrupted", panes=[
        PaneState("layer0/c", recording="clean", added=((5, 1),)),  # layer0/c of a.h5 has 6 units
        PaneState("layer0/c", recording="corrupted", added=((5, 1),)),  # ... of b.h5 only 4
    ], active_pane=1, annotations=["depth"])
    path = save_workspace(tmp_path / "two.json", state)
    data = json.loads(path.read_text())
    assert list(data["recordings"]) == ["clean", "corrupted"] and data["shown"] == "corrupted"
    assert [p["recording"] for p in data["panes"]] == ["clean", "corrupted"]
    assert load_workspace(path) == state
    with open_recording(first) as a, open_recording(second) as b:
        restored, problems = restore_valid(state, {"clean": a, "corrupted": b})
        assert problems == ["pane 1: added units 5 are not in tap 'layer0/c' (units 0-3); they were dropped"]
        assert restored.panes[0].added == ((5, 1),) and restored.panes[1].added == ()
        # given only the shown recording, a pane on another one cannot be shown
        _, problems = restore_valid(state, b)
        assert problems[0] == "pane 0: its recording 'clean' is not open; the pane was dropped"
    os.remove(first)
    with pytest.raises(WorkspaceFileError, match="its recording 'clean' is missing"):
        load_workspace(path)
