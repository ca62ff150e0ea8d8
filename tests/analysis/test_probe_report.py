"""run_probes: probe + control + baselines per tap, ordered by layer, cached with the derived data."""

import numpy as np
import pytest

from lstmviz.analysis import probe_report
from lstmviz.analysis.export_data import write_table
from lstmviz.analysis.probe_report import ordered_taps, run_probes
from lstmviz.analysis.probes import INPUT_TAP
from lstmviz.recording import RecordingWriter, open_recording
from lstmviz.tasks import Cancelled, Task

UNITS = 10


@pytest.fixture(scope="module")
def layered(tmp_path_factory):
    """60 items. Taps declared out of layer order: ``layer1/h`` (the tag in units 2..4), ``layer0/h``
    (noise), ``head`` (no layer; noise). ``tag`` depends on the position, ``kind`` on the item; unit 6
    of ``layer1/h`` holds 2·kind only at the last position of each item."""
    rng = np.random.default_rng(5)
    path = tmp_path_factory.mktemp("report") / "layered.h5"
    with RecordingWriter(path, vocab=[f"w{i}" for i in range(30)]) as w:
        w.add_tap("layer1/h", UNITS, layer=1, signal="h")
        w.add_tap("layer0/h", UNITS, layer=0, signal="h")
        w.add_tap("head", UNITS)
        w.add_annotation("tag", kind="categorical", labels=["A", "B", "C"])
        w.add_annotation("kind", kind="categorical", level="item", labels=["k0", "k1"])
        w.add_annotation("depth", kind="numeric")
        for _ in range(60):
            n = int(rng.integers(10, 25))
            tag = rng.choice(3, n)
            kind = int(rng.integers(0, 2))
            top = 0.5 * rng.standard_normal((n, UNITS)).astype(np.float32)
            top[np.arange(n), 2 + tag] += 2.0
            top[-1, 6] += 3.0 * kind
            w.append_item(rng.integers(0, 30, n), {"layer1/h": top,
                                                    "layer0/h": rng.standard_normal((n, UNITS)),
                                                    "head": rng.standard_normal((n, UNITS))},
                          annotations={"tag": tag, "depth": np.arange(n, dtype=float)},
                          item_annotations={"kind": kind})
    return path


@pytest.fixture
def rec(layered):
    with open_recording(layered) as r:
        yield r


def test_taps_are_ordered_by_layer_then_declaration(rec):
    assert ordered_taps(rec) == ["layer0/h", "layer1/h", "head"]
    assert ordered_taps(rec, ["head", "layer1/h"]) == ["layer1/h", "head"]
    with pytest.raises(KeyError, match="no tap 'nope'"):
        ordered_taps(rec, ["nope"])


def test_report_finds_the_layer_that_holds_the_label(rec):
    report = run_probes(rec, "tag")
    assert report.taps == ["layer0/h", "layer1/h", "head"]
    assert report.best_tap() == "layer1/h"
    assert report.probes["layer1/h"].accuracy > 0.95
    for noisy in ("layer0/h", "head"):
        assert report.probes[noisy].accuracy < report.majority_accuracy + 0.1
    # the control task only sees token identity, which carries nothing here
    assert report.selectivity("layer1/h") > 0.4
    assert report.controls["layer1/h"].control
    assert report.baseline.tap == INPUT_TAP
    assert report.split_sizes[0] > report.split_sizes[1] > 0


def test_item_level_label_at_the_last_position(rec):
    last = run_probes(rec, "kind", ["layer1/h"], at="last", control=False, baseline=False)
    assert last.probes["layer1/h"].accuracy > 0.85
    assert last.probes["layer1/h"].n_test == last.split_sizes[2]  # one position per test item
    everywhere = run_probes(rec, "kind", ["layer1/h"], control=False, baseline=False)
    probe = everywhere.probes["layer1/h"]
    assert probe.accuracy < probe.majority_accuracy + 0.05  # only the last position carries it


def test_table_has_a_row_per_tap_and_the_baseline(rec, tmp_path):
    report = run_probes(rec, "tag", control=True)
    table = report.table()
    assert table["tap"] == ["layer0/h", "layer1/h", "head", INPUT_TAP]
    assert table["layer"] == [0, 1, -1, -1]
    assert np.isnan(table["control_accuracy"][-1])
    assert table["selectivity"][1] == pytest.approx(report.selectivity("layer1/h"))
    out = write_table(tmp_path / "probes.csv", table)
    lines = out.read_text().splitlines()
    # a recording of one model state: no checkpoint or step column (they would be empty and -1)
    assert len(lines) == 5 and lines[0].startswith("tap,layer,annotation")


def test_reports_are_cached_until_an_option_changes(rec, monkeypatch):
    first = run_probes(rec, "tag", ["layer1/h"])
    calls = []
    real_fit = probe_report.fit_probe

    def counting_fit(*args, **kwargs):
        calls.append(args[1])
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(probe_report, "fit_probe", counting_fit)
    again = run_probes(rec, "tag", ["layer1/h"])
    assert calls == [] and again.from_cache and not first.from_cache
    assert again.probes["layer1/h"].accuracy == first.probes["layer1/h"].accuracy
    np.testing.assert_array_equal(again.probes["layer1/h"].weights, first.probes["layer1/h"].weights)
    np.testing.assert_array_equal(again.probes["layer1/h"].confusion, first.probes["layer1/h"].confusion)
    assert again.controls["layer1/h"].control and again.baseline.tap == INPUT_TAP
    shifted = run_probes(rec, "tag", ["layer1/h"], shift=1)
    assert calls == ["layer1/h", "layer1/h"]  # probe and control, refitted
    assert shifted.shift == 1
    run_probes(rec, "tag", ["layer1/h"], cache=False)
    assert len(calls) == 4


def test_a_corrupt_cache_file_is_recomputed(rec):
    first = run_probes(rec, "tag", ["head"], control=False)
    key = probe_report._cache_key(rec, "tag", ["head"], 0, "all", False, True, 0,
                                  probe_report.DEFAULT_L2_GRID, None)
    path = probe_report._cache_path(rec, "tag", key)
    assert path.exists()
    path.write_bytes(b"not an npz file")
    again = run_probes(rec, "tag", ["head"], control=False)
    assert again.probes["head"].accuracy == first.probes["head"].accuracy


def test_progress_only_grows_and_ends_complete(rec):
    seen = []
    report = run_probes(rec, "tag", ["layer0/h", "layer1/h"], cache=False,
                        task=Task(on_progress=lambda d, t, m: seen.append((d, t, m))))
    done = [d for d, _, _ in seen]
    assert done == sorted(done) and seen[-1][0] == seen[-1][1]
    assert {m for _, _, m in seen} >= {"Probe layer0/h", "Probe layer1/h (control)", "Input baseline"}
    assert [report.probes[t].control for t in report.taps] == [False, False]
    assert all(r.annotation == "tag" and r.labels == ["A", "B", "C"] for r in report.probes.values())


def test_cancel_raises_and_caches_nothing(rec):
    task = Task()
    seen = []

    def cancel_soon(done, total, message):
        seen.append(message)
        if len(seen) == 2:
            task.cancel()

    task._on_progress = cancel_soon
    with pytest.raises(Cancelled):
        run_probes(rec, "tag", ["layer0/h"], shift=2, task=task)
    calls = []
    finished = run_probes(rec, "tag", ["layer0/h"], shift=2,
                          task=Task(on_progress=lambda d, t, m: calls.append(m)))
    assert "Probes (cached)" not in calls
    assert finished.shift == 2


def test_errors_are_sentences(rec):
    with pytest.raises(ValueError, match="categorical"):
        run_probes(rec, "depth")
    with pytest.raises(ValueError, match="at must be"):
        run_probes(rec, "tag", at="first")
    with pytest.raises(ValueError, match="one model only"):
        probe_report.probe_curves(rec, "tag")


@pytest.fixture(scope="module")
def training_run(tmp_path_factory):
    """Three checkpoints of one "run": the tag is planted in ``layer1/h`` with strength 0, 1 and 3 (step
    0, 100, 200); ``layer0/h`` is noise at every checkpoint. The main states are the last checkpoint's."""
    rng = np.random.default_rng(9)
    path = tmp_path_factory.mktemp("curves") / "run.h5"
    strengths = {"step-000000": 0.0, "step-000100": 1.0, "step-000200": 3.0}
    with RecordingWriter(path, vocab=[f"w{i}" for i in range(30)]) as w:
        w.add_tap("layer0/h", UNITS, layer=0, signal="h")
        w.add_tap("layer1/h", UNITS, layer=1, signal="h")
        w.add_annotation("tag", kind="categorical", labels=["A", "B", "C"])
        for name, step in (("step-000000", 0), ("step-000100", 100), ("step-000200", 200)):
            w.add_checkpoint(name, step=step)
        for _ in range(50):
            n = int(rng.integers(10, 25))
            tag = rng.choice(3, n)
            states = {}
            for name, strength in strengths.items():
                top = rng.standard_normal((n, UNITS)).astype(np.float32)
                top[np.arange(n), 2 + tag] += strength
                states[name] = {"layer0/h": rng.standard_normal((n, UNITS)).astype(np.float32),
                                "layer1/h": top}
            w.append_item(rng.integers(0, 30, n), states["step-000200"], {"tag": tag})
            for name in ("step-000000", "step-000100"):
                w.append_checkpoint_item(name, states[name])
    return path


def test_probe_curves_follow_the_label_through_training(training_run, tmp_path):
    with open_recording(training_run) as rec:
        curves = probe_report.probe_curves(rec, "tag", control=False)
        assert curves.checkpoints == ["step-000000", "step-000100", "step-000200"]
        np.testing.assert_array_equal(curves.x(), [0, 100, 200])
        acc = curves.accuracy("layer1/h")
        assert acc[0] < curves.majority_accuracy()[0] + 0.1  # nothing planted yet
        assert acc[0] < acc[1] < acc[2] and acc[2] > 0.9
        noise = curves.accuracy("layer0/h")
        assert np.all(noise < curves.majority_accuracy() + 0.1)
        low, high = curves.interval("layer1/h")
        assert np.all(low <= acc) and np.all(acc <= high)
        # each checkpoint's report equals a report on that checkpoint's own view
        direct = run_probes(rec.at_checkpoint("step-000100"), "tag", control=False, baseline=False)
        assert curves.reports[1].probes["layer1/h"].accuracy == direct.probes["layer1/h"].accuracy
        assert curves.reports[1].step == 100 and curves.reports[1].checkpoint == "step-000100"
        # the last checkpoint is the main states: a plain report gives the same accuracy
        main = run_probes(rec, "tag", control=False, baseline=False)
        assert main.probes["layer1/h"].accuracy == pytest.approx(acc[2])
        table = curves.table()
        assert table["step"][:2] == [0, 0] and len(table["tap"]) == 3 * 2 + 1  # + the input baseline
        assert table["checkpoint"][:3] == ["step-000000", "step-000000", "step-000100"]
        write_table(tmp_path / "curves.csv", table)


def test_each_checkpoint_keeps_its_own_statistics_cache(training_run):
    from lstmviz.analysis.cache import cache_dir_for
    from lstmviz.analysis.transforms import tap_stats

    with open_recording(training_run) as rec:
        first = tap_stats(rec.at_checkpoint("step-000000"), "layer1/h")
        last = tap_stats(rec.at_checkpoint("step-000200"), "layer1/h")
        main = tap_stats(rec, "layer1/h")
        assert not np.allclose(first.std, last.std)
        np.testing.assert_allclose(main.std, last.std)
        names = sorted(p.name for p in cache_dir_for(rec.path).glob("stats-layer1*"))
        assert len(names) == 3, names  # main, and one per checkpoint view: none overwrites another
        again = tap_stats(rec.at_checkpoint("step-000000"), "layer1/h")
        np.testing.assert_array_equal(again.std, first.std)


def test_the_majority_baseline_has_an_interval_too(rec):
    report = run_probes(rec, "tag", ["head"], control=False, baseline=False, cache=False)
    low, high = report.majority_interval
    assert low < report.majority_accuracy < high
    assert high - low < 0.2
    table = report.table()
    assert table["majority_ci_low"] == [low] and table["majority_ci_high"] == [high]
