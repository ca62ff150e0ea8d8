"""Seeded damaged workspace files, opened the way the window opens them (issue 10.14).

Each case starts from a valid saved workspace (even cases: a version 1 file, as lstmviz wrote it before
version 2; odd cases: a version 2 file) and applies one to three defects drawn from generators:
a value of another JSON type, a huge, negative or non-finite number, deep nesting, a missing or an
extra key, a tap or annotation the recording lacks, text with control characters, NUL, an unpaired
surrogate or markup, a huge array, a garbled or cut file, or a valid change (another window, brush,
threshold, match setting). Every case goes through ``MainWindow.open_workspace`` (the File menu's
path: load, restore, say what was left out) under a time limit, and must end in one of two ways:

- refused: one sentence naming the file, in the dialog the window would show; the window still shows
  the workspace it showed before;
- restored: the window shows exactly what the file asks for, less what does not fit the recording
  (each such part said in a sentence), window positions clamped to the recording.

A handful of cases also run as ``lstmviz --screenshot`` subprocesses: exit 0 with a picture, or exit 1
with one line; never a traceback, never a hang.
"""

import copy
import json
import os
import random
import signal
import subprocess
import sys

import numpy as np
import pytest

from lstmviz.qt.match.state import MATCH_STATE, MatchSettings
from lstmviz.qt.probes.state import PROBE_STATE
from lstmviz.recording import RecordingWriter, open_recording
from lstmviz.workspace.file import (
    MAX_PANES,
    PaneState,
    WorkspaceState,
    load_workspace,
    restore_valid,
    save_workspace,
)
from lstmviz.workspace.panel_state import register_panel_state

register_panel_state(MATCH_STATE)  # as the window has them
register_panel_state(PROBE_STATE)

SEED = 1014
N_CASES = 120
SCREENSHOT_CASES = (3, 42, 99)  # restored; nested too deeply; a wrong type
CASE_SECONDS = 20  # far above what a case takes; reaching it means a hang
ITEM_LENGTHS = (20, 25, 30)
TAPS = {"layer0/h": 6, "layer0/c": 8}
DEEP = 100_000


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("workspaces")
    recording = root / "rec.h5"
    rng = np.random.default_rng(SEED)
    with RecordingWriter(recording, vocab=["a", "b", "c"]) as w:
        for name, units in TAPS.items():
            w.add_tap(name, units, layer=0)
        w.add_annotation("depth", kind="categorical", labels=["0", "1"])
        w.add_annotation("score", kind="numeric")
        w.add_annotation("kind", kind="categorical", level="item", labels=["x", "y"])
        for n in ITEM_LENGTHS:
            w.append_item(rng.integers(0, 3, n), {t: rng.normal(size=(n, u)).astype(np.float32) for t, u in TAPS.items()},
                          annotations={"depth": rng.integers(0, 2, n), "score": rng.normal(size=n)},
                          item_annotations={"kind": 1})
    state = WorkspaceState.of(str(recording), window_start=4, window_width=40, panes=[
        PaneState("layer0/c", transform="raw", threshold=0.5, brush=(3, 8), added=((1, 1),), removed=((2, -1),)),
        PaneState("layer0/h", transform="tanh", threshold=0.2, pad_left=2),
    ], active_pane=1, annotations=["depth"], panels={"match": MatchSettings(aggregate_annotation="kind")})
    base = json.loads(save_workspace(root / "base.json", state).read_text())
    return root, recording, {1: _as_version_1(base), 2: base}


def _as_version_1(data: dict) -> dict:
    """A version 2 file of one recording as version 1 wrote it."""
    match = {k: v for k, v in data["panels"]["match"].items() if k not in ("version", "aggregate_annotation")}
    return {"lstmviz_workspace": 1, "recording": data["recordings"]["r0"], "window": data["window"],
            "panes": [{k: v for k, v in p.items() if k != "recording"} for p in data["panes"]],
            "active_pane": data["active_pane"], "match": match, "annotations": data["annotations"],
            "aggregate_annotation": data["panels"]["match"]["aggregate_annotation"]}


#: where each version keeps the Match panel's settings, its aggregated annotation and the probe settings
WHERE = {1: {"match": ("match",), "aggregate": ("aggregate_annotation",), "probes": ("probes",)},
         2: {"match": ("panels", "match"), "aggregate": ("panels", "match", "aggregate_annotation"),
             "probes": ("panels", "probes")}}


@pytest.fixture(scope="module")
def texts(files):
    """The file text of every case (made once)."""
    return [case_text(case, files[2]) for case in range(N_CASES)]


@pytest.fixture(scope="module")
def window(qapp, files):
    from lstmviz.qt.main_window import MainWindow

    win = MainWindow(settings=None)
    win.resize(1000, 700)
    win.show()
    assert win.open_workspace(files[0] / "base.json")
    yield win
    win.close()
    win.deleteLater()
    qapp.processEvents()


@pytest.fixture
def dialogs(monkeypatch):
    """What the window would show in dialogs (a modal dialog would block the test)."""
    shown = []
    from lstmviz.qt import file_actions, main_window

    def record(parent, title, message, details=""):
        shown.append((title, message))

    monkeypatch.setattr(main_window, "show_error", record)
    monkeypatch.setattr(file_actions, "show_error", record)
    return shown


# ---------------------------------------------------------------------------------------- defects

HUGE_NUMBERS = [2**63, -2**63, 2**64 + 1, 10**400, 1e308, -1e308, -5, -1, 0, 10**9, float("nan"), float("inf"),
                -float("inf"), 0.5, 1e-300]
TEXTS = ["", "/", "layer9/c", "layer0/c/", "LAYER0/C", "<img src=x.fifo>", "a\x00b", "\x1b[2J\x07", "\u202eevil",
         "\ud800", "x" * 5000, "ü" * 40, "depth", "kind", "score", "null", "0"]
VALUES = [None, True, False, "x", 3, -2, 2.5, [], {}, [1, 2], {"a": 1}, [[1, 1]], "1"]


def _paths(obj, prefix=()):
    """Every key path of a JSON value (objects and lists), parents before children."""
    out = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.append((*prefix, key))
            out += _paths(value, (*prefix, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            out.append((*prefix, i))
            out += _paths(value, (*prefix, i))
    return out


def _parent(data, path):
    obj = data
    for key in path[:-1]:
        obj = obj[key]
    return obj


def _set(data, path, value):
    _parent(data, path)[path[-1]] = value


def _put(data, path, value):
    """Set a value at a key path, making the objects on the way (an earlier defect may have removed them)."""
    obj = data
    for key in path[:-1]:
        if not isinstance(obj.get(key), dict):
            obj[key] = {}
        obj = obj[key]
    obj[path[-1]] = value


def type_swap(rng, data, where):
    _set(data, rng.choice(_paths(data)), copy.deepcopy(rng.choice(VALUES)))


def bad_number(rng, data, where):
    numeric = [p for p in _paths(data) if isinstance(_parent(data, p)[p[-1]], (int, float))
               and not isinstance(_parent(data, p)[p[-1]], bool)]
    _set(data, rng.choice(numeric), rng.choice(HUGE_NUMBERS))


def deep(rng, data, where):
    _set(data, rng.choice(_paths(data)), "__DEEP__")  # replaced by DEEP nested lists in the text


def missing_key(rng, data, where):
    keyed = [p for p in _paths(data) if isinstance(_parent(data, p), dict)]
    path = rng.choice(keyed)
    del _parent(data, path)[path[-1]]


def extra_key(rng, data, where):
    objects = [()] + [p for p in _paths(data) if isinstance(_parent(data, p)[p[-1]], dict)]
    path = rng.choice(objects)
    target = data if path == () else _parent(data, path)[path[-1]]
    target[rng.choice(["future", "colour", "tap2", "\u00e9t\u00e9", ""])] = copy.deepcopy(rng.choice(VALUES))


def wrong_name(rng, data, where):
    key = rng.choice([("panes", 0, "tap"), ("panes", 1, "tap"), ("annotations",), where["aggregate"],
                      where["probes"]])
    name = rng.choice(TEXTS)
    if key == ("annotations",):
        data["annotations"] = [name, *rng.sample(["depth", "score", "kind"], rng.randint(0, 3))]
    elif key == where["probes"]:
        _put(data, key, {"label": name, "taps": [name, "layer0/c"], "open_probe": name, "shift": rng.randint(-3, 3)})
    elif key == where["aggregate"]:
        _put(data, key, name)
    else:
        _set(data, key, name)


def text_junk(rng, data, where):
    strings = [p for p in _paths(data) if isinstance(_parent(data, p)[p[-1]], str)]
    _set(data, rng.choice(strings), rng.choice(TEXTS))


def huge_array(rng, data, where):
    n = rng.choice([17, 1000, 70_000, 5_000])  # 70,000 is past every list's limit
    kind = rng.choice(["panes", "added", "annotations"])
    if kind == "panes":
        data["panes"] = [{"tap": "layer0/c"}] * min(n, 5000)
    elif kind == "added":
        data["panes"][0]["added"] = [[rng.randint(0, 20), rng.choice([1, -1])] for _ in range(n)]
    else:
        data["annotations"] = ["depth"] * n


def valid_change(rng, data, where):
    """A change the recording can take (or that restore_valid clamps or drops with a sentence)."""
    pane = rng.choice(data["panes"])
    change = rng.choice(["window", "brush", "threshold", "match", "units", "pane", "probes"])
    if change == "window":
        data["window"] = {"start": rng.choice([0, 7, 74, 75, 10**6, 2**53]), "width": rng.choice([1, 10, 77, 400, 10_000])}
    elif change == "brush":
        start = rng.randint(0, 80)
        pane["brush"] = [start, start + rng.randint(1, 12)]
    elif change == "threshold":
        pane["threshold"] = rng.choice([0, 0.001, 0.75, 3, 9999.5, 1e6])
        pane["transform"] = rng.choice(["raw", "tanh", "zscore"])
    elif change == "match":
        old = data.get("panels", {}).get("match") if isinstance(data.get("panels"), dict) else None
        aggregate = old.get("aggregate_annotation") if isinstance(old, dict) else None
        _put(data, where["match"], {"mode": rng.choice(["lstmvis", "scored"]), "limit": rng.choice([None, 1, 10_000_000]),
                         "min_length": rng.randint(1, 100_000), "length_weight": rng.uniform(0, 10),
                         "candidate_cap": rng.choice([None, 1, 100_000_000]), "left": rng.randint(0, 200),
                         "right": rng.randint(0, 500)})
        if where["aggregate"][0] == "panels":  # version 2 keeps it with the match settings
            data["panels"]["match"]["aggregate_annotation"] = aggregate
    elif change == "units":
        pane["added"] = [[rng.randint(0, 12), rng.choice([1, -1])] for _ in range(rng.randint(0, 5))]
        pane["direction"] = rng.choice(["positive", "negative", "both"])
        pane["tolerance"] = rng.choice([0.01, 0.5, 1.0])
        pane["pad_left"], pane["pad_right"] = rng.randint(0, 999), rng.randint(0, 999)
    elif change == "pane":
        more = rng.choice([0, 1, 2, MAX_PANES - 1])  # up to the most a file may hold
        data["panes"] = data["panes"][:1] + [{"tap": rng.choice(list(TAPS))} for _ in range(more)]
        data["active_pane"] = rng.randint(0, len(data["panes"]) - 1)
    else:
        _put(data, where["probes"], {"label": rng.choice([None, "depth", "kind", "score", "nope"]),
                                     "shift": rng.randint(-3, 3), "at": rng.choice(["all", "last"]),
                                     "taps": rng.choice([None, ["layer0/h"], ["layer9/c"]]),
                                     "control": rng.random() < 0.5, "curves": rng.random() < 0.2})


DEFECTS = [type_swap, bad_number, deep, missing_key, extra_key, wrong_name, text_junk, huge_array,
           valid_change, valid_change, valid_change]


def case_text(case: int, bases: dict) -> str:
    """The file of one case: a base workspace (version 1 for even cases, 2 for odd ones) with 1-3 defects,
    or (1 in 12) not JSON at all."""
    version = 1 if case % 2 == 0 else 2
    base, where = bases[version], WHERE[version]
    rng = random.Random(SEED * 10_000 + case)
    text = json.dumps(base)
    if rng.random() < 1 / 12:
        return rng.choice([text[: rng.randint(0, len(text) - 1)], "\ufeff" + text, text.replace('"', "'"), "[]",
                           "null", '{"lstmviz_workspace": 1e999}', "\x00" * 100, text + "}" * 3])
    data = copy.deepcopy(base)
    for defect in rng.sample(DEFECTS, rng.randint(1, 3)):
        defect(rng, data, where)
    text = json.dumps(data)
    return text.replace('"__DEEP__"', "[" * DEEP + "]" * DEEP, 1)


# ---------------------------------------------------------------------------------------- checks

class Hung(Exception):
    pass


def _alarm(signum, frame):
    raise Hung(f"a case ran past {CASE_SECONDS} s")


def _sentence(text: str) -> bool:
    return bool(text.strip()) and "Traceback" not in text and len(text) < 2000


def _expected(path, recording) -> tuple[WorkspaceState, list[str]]:
    with open_recording(recording) as rec:
        return restore_valid(load_workspace(path), rec)


def _shows(window, expected: WorkspaceState, problems: list[str]) -> None:
    """The window shows ``expected`` (less panes that ``problems`` say were left out)."""
    ws = window.workspace
    left_out = {i for i in range(len(expected.panes)) if any(p.startswith(f"pane {i}: ") and "left out" in p
                                                             for p in problems)}
    panes = [p for i, p in enumerate(expected.panes) if i not in left_out]
    if panes:
        assert [pane.state() for pane in ws.panes] == panes
    else:
        assert len(ws.panes) == 1  # the default pane, and a sentence saying so
    assert ws.panel_state("match") == expected.panels.get("match")
    assert ws.visible_annotations == expected.annotations
    assert ws.window_width == int(np.clip(expected.window_width, 10, 400))
    assert ws.window_start == min(expected.window_start, ws.max_window_start())
    probes = expected.panels.get("probes")
    if probes is not None:
        shown = ws.panel_state("probes")
        assert (shown.shift, shown.at, shown.control, shown.baseline, shown.curves) == (
            probes.shift, probes.at, probes.control, probes.baseline, probes.curves)
        assert probes.label is None or shown.label == probes.label
        assert probes.taps is None or tuple(shown.taps) == tuple(probes.taps)


@pytest.mark.parametrize("case", range(N_CASES))
def test_a_damaged_workspace_is_refused_in_a_sentence_or_restored_faithfully(case, files, texts, window, dialogs):
    root, recording, _ = files
    path = root / f"case{case:03d}.lstmviz.json"
    path.write_text(texts[case], encoding="utf-8")
    before = window.workspace.state()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    try:
        opened = window.open_workspace(path)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if not opened:
        assert len(dialogs) == 1
        title, message = dialogs[0]
        assert title == "Cannot open workspace" and _sentence(message) and path.name in message
        assert window.workspace.state() == before  # nothing changed
        return
    expected, problems = _expected(path, recording)
    said = [m for t, m in dialogs if t == "Parts of the workspace were left out"]
    assert len(dialogs) == len(said) <= 1 and all(_sentence(m) for m in said)
    assert bool(said) == bool(problems or len(window.workspace.panes) < len(expected.panes))
    _shows(window, expected, problems)


def test_the_cases_cover_refusals_and_restores(files, texts):
    """The generator is not vacuous: both outcomes occur often (checked on the texts, without the window)."""
    root = files[0]
    refused = restored = 0
    for case in range(N_CASES):
        path = root / f"count{case:03d}.json"
        path.write_text(texts[case], encoding="utf-8")
        try:
            load_workspace(path)
            restored += 1
        except ValueError:
            refused += 1
    assert refused >= N_CASES // 4 and restored >= N_CASES // 4


@pytest.mark.parametrize("case", SCREENSHOT_CASES)
def test_a_damaged_workspace_as_a_screenshot_is_a_picture_or_one_line(case, files, texts):
    root = files[0]
    path = root / f"shot{case:03d}.lstmviz.json"
    path.write_text(texts[case], encoding="utf-8")
    png = root / f"shot{case:03d}.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "LSTMVIZ_CACHE_DIR": str(root / "cache")}
    proc = subprocess.run([sys.executable, "-m", "lstmviz.cli", "--screenshot", str(png), "--size", "900x600",
                           "--workspace", str(path)], capture_output=True, text=True, timeout=120, env=env)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    if proc.returncode == 0:
        assert png.stat().st_size > 1000 and all(line.startswith("lstmviz: note: ") for line in lines)
    else:
        assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("lstmviz: error: ")
        assert not png.exists()


def test_case_texts_are_deterministic(files, texts):
    assert case_text(5, files[2]) == texts[5]
    assert len(set(texts)) > N_CASES * 0.9
