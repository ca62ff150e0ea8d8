"""The Embedding geometry panel (issue 20): loads a table (a recording's class means, its checkpoint's tables, a
file) on the worker, shows nearest neighbours, answers analogies with the chosen method and exclusion, runs
every method over relations with chance, draws the PCA map, exports every tab as figure and table, keeps its
settings in the workspace, and shows hostile names as text."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from lstmviz.analysis.analogy import nearest_neighbours, query
from lstmviz.analysis.embedding_projection import pca_2d
from lstmviz.analysis.embedding_tables import class_means, write_table
from lstmviz.qt.embedding.state import EmbeddingState
from lstmviz.recording import open_recording
from window_helpers import write_recording

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "assets" / "demo" / "parens-lstm.h5"


def _tables():
    spec = importlib.util.spec_from_file_location("qt_analogy_tables", ROOT / "tests" / "analysis" / "analogy_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def panel(window, tmp_path):
    assert window.open_file(write_recording(tmp_path / "small.h5"))
    window.show_panel("embedding")
    return window.panels["embedding"]


@pytest.fixture
def offsets(panel, qtbot, tmp_path):
    path = write_table(_tables().offset_table(n_classes=6), tmp_path / "offsets.csv")
    with qtbot.waitSignal(panel.table_loaded, timeout=20000):
        panel.load_file(path)
    return panel


def test_class_means_are_loaded_on_the_worker_and_their_neighbours_shown(qtbot, panel, window):
    panel.source_combo.setCurrentIndex(panel.source_combo.findData("class-means"))
    panel.tap_combo.setCurrentText("layer1/c")
    panel.annotation_combo.setCurrentText("depth")
    assert panel.class_box.isVisible() and not panel.parameter_box.isVisible()
    with qtbot.waitSignal(panel.table_loaded, timeout=20000) as loaded:
        panel.load()
    with open_recording(window.workspace.recording.path) as rec:
        expected = class_means(rec, "layer1/c", "depth")
    table = loaded.args[0]
    assert table.names == expected.names == ("0", "1", "2", "3")
    np.testing.assert_allclose(table.vectors, expected.vectors)
    assert "class means of layer1/c by depth" in panel.summary.text()
    with qtbot.waitSignal(panel.neighbours_shown) as shown:
        panel.token_edit.setText("2")
        panel.token_edit.returnPressed.emit()
    assert shown.args[0] == nearest_neighbours(table, "2", 10)
    model = panel.neighbours_model
    assert model.rowCount() == 3 and [model.item(r, 1).text() for r in range(3)] == [n for n, _ in shown.args[0]]


def test_analogies_follow_the_method_and_the_exclusion(qtbot, offsets):
    panel = offsets
    with qtbot.waitSignal(panel.answers_shown) as shown:
        panel.ask("c0_r0", "c0_r1", "c3_r0")
    assert shown.args[0][0][0] == "c3_r1" and panel.answers_model.item(0, 1).text() == "c3_r1"
    assert shown.args[0] == query(panel.table, "c0_r0", "c0_r1", "c3_r0", "3cosadd", k=10)
    panel.method_combo.setCurrentIndex(panel.method_combo.findData("only-b"))
    panel.exclude_check.setChecked(False)
    assert panel.ask("c0_r0", "c0_r1", "c3_r0")[0][0] == "c3_r0"  # ONLY-B without exclusion: b itself
    assert "ONLY-B, premises not excluded" in panel.status_text()
    assert panel.ask("c0_r0", "c0_r1", "nope") == [] and "'nope' is not in the table" in panel.status_text()


def test_relations_of_a_file_give_every_method_with_chance(qtbot, offsets, tmp_path):
    panel = offsets
    path = tmp_path / "rel.txt"
    path.write_text(": r0-r2\n" + "".join(f"c{i}_r0 c{i}_r2 c{j}_r0 c{j}_r2\n" for i in range(6) for j in range(6) if i != j))
    panel.relations_file = str(path)
    panel.relations_combo.setCurrentIndex(panel.relations_combo.findData("file"))
    with qtbot.waitSignal(panel.report_ready, timeout=20000) as ready:
        panel.run_relations()
    report = ready.args[0]
    model = panel.report_model
    headers = [model.horizontalHeaderItem(c).text() for c in range(model.columnCount())]
    assert headers[:3] == ["relation", "questions", "3CosAdd"] and headers[-1] == "chance" and "ADD-OPPOSITE" in headers
    assert [model.item(0, c).text() for c in range(3)] == ["r0-r2", "30", "100.0 %"]
    assert model.item(0, headers.index("ADD-OPPOSITE")).text() == "0.0 %"
    assert model.item(0, len(headers) - 1).text() == f"{100 / 15:.3f} %"  # 18 rows less 3 premises
    assert report.exclude and "premises excluded" in panel.relations_note.text()


def test_the_map_is_the_pca_of_the_unit_rows_with_every_name(qtbot, offsets):
    panel = offsets
    panel.show_neighbours("c1_r1")
    with qtbot.waitSignal(panel.projection_ready, timeout=20000):
        panel.draw_map()
    expected = pca_2d(panel.table.unit).xy
    x, y = panel.map.scatter.getData()
    np.testing.assert_allclose(np.c_[x, y], expected, atol=1e-6)
    assert sorted(panel.map.labelled()) == sorted(panel.table.names)  # 18 rows: all labelled
    assert panel.table.index("c1_r1") in panel.map.marked
    assert "PC1" in panel.map.plot.getAxis("bottom").labelText


def test_every_tab_exports_a_figure_and_a_table(qtbot, offsets, tmp_path):
    panel = offsets
    panel.show_neighbours("c0_r0")
    panel.ask("c0_r0", "c0_r1", "c3_r0")
    panel.relations_combo.setCurrentIndex(panel.relations_combo.findData("file"))
    rel = tmp_path / "rel.txt"
    rel.write_text(": r\nc0_r0 c0_r1 c3_r0 c3_r1\n")
    panel.relations_file = str(rel)
    with qtbot.waitSignal(panel.report_ready, timeout=20000):
        panel.run_relations()
    with qtbot.waitSignal(panel.projection_ready, timeout=20000):
        panel.draw_map()
    for tab in ("neighbours", "analogy", "relations", "map"):
        for suffix in (".png", ".svg", ".pdf"):
            out = panel.export_view(tmp_path / f"{tab}{suffix}", tab)
            assert out.stat().st_size > 500
        rows = list(csv.DictReader(panel.export_table(tmp_path / f"{tab}.csv", tab).open()))
        assert rows
    neighbours = list(csv.DictReader((tmp_path / "neighbours.csv").open()))
    assert [r["name"] for r in neighbours] == [n for n, _ in panel.neighbours]
    assert list(csv.DictReader((tmp_path / "analogy.csv").open()))[0]["answer"] == "c3_r1"
    assert list(csv.DictReader((tmp_path / "relations.csv").open()))[0]["3cosadd"] == "1.0"
    assert len(list(csv.DictReader((tmp_path / "map.csv").open()))) == len(panel.table)
    with pytest.raises(ValueError, match="PNG"):
        panel.export_view(tmp_path / "x.gif", "map")


def test_nothing_to_export_or_to_load_is_said_in_words(qtbot, panel, tmp_path, captured_errors):
    with pytest.raises(ValueError, match="load one first"):
        panel.export_view(tmp_path / "x.png")
    panel.source_combo.setCurrentIndex(panel.source_combo.findData("file"))
    with qtbot.waitSignal(panel.failed, timeout=20000) as failed:
        panel.load()
    assert "Choose a table file first" in failed.args[0] and "Choose a table file" in panel.status_text()
    bad = tmp_path / "bad.csv"
    bad.write_text("a,1,2\nb,3\n")
    with qtbot.waitSignal(panel.failed, timeout=20000) as failed:
        panel.load_file(bad)
    assert "line 2 has 2 fields" in failed.args[0]
    panel.source_combo.setCurrentIndex(panel.source_combo.findData("checkpoint"))
    with qtbot.waitSignal(panel.failed, timeout=20000) as failed:
        panel.load()  # the small recording names no checkpoint
    assert "names no checkpoint" in failed.args[0]
    assert [title for title, _ in captured_errors] == ["Cannot load the embedding table"] * 3
    assert not any(message.startswith("Something went wrong") for _, message in captured_errors)


def test_a_recordings_checkpoint_offers_each_of_its_tables(qtbot, window):
    assert window.open_file(DEMO)
    window.show_panel("embedding")
    panel = window.panels["embedding"]
    assert panel.source_combo.currentData() == "checkpoint" and panel.parameter_box.isVisible()
    with qtbot.waitSignal(panel.table_loaded, timeout=60000) as loaded:
        panel.load()
    assert loaded.args[0].source.endswith("embedding.weight")
    offered = [panel.parameter_combo.itemData(i) for i in range(panel.parameter_combo.count())]
    assert offered == ["embedding.weight", "decoder.weight"]
    with qtbot.waitSignal(panel.table_loaded) as loaded:
        panel.parameter_combo.setCurrentIndex(1)
    assert loaded.args[0].source.endswith("decoder.weight") and len(loaded.args[0]) == 8
    assert window.workspace.panel_state("embedding").parameter == "decoder.weight"


def test_the_settings_live_in_the_workspace_both_ways(panel, window):
    panel.method_combo.setCurrentIndex(panel.method_combo.findData("3cosmul"))
    panel.exclude_check.setChecked(False)
    panel.k_spin.setValue(25)
    state = window.workspace.panel_state("embedding")
    assert (state.method, state.exclude, state.k) == ("3cosmul", False, 25)
    window.workspace.set_panel_state("embedding", EmbeddingState(source="class-means", tap="layer0/h",
                                                                 annotation="depth", method="ignore-a",
                                                                 relations="crossed", k=7))
    assert panel.source_combo.currentData() == "class-means" and panel.tap_combo.currentText() == "layer0/h"
    assert panel.method_combo.currentData() == "ignore-a" and panel.k_spin.value() == 7
    assert panel.exclude_check.isChecked() and panel.relations_combo.currentData() == "crossed"


@pytest.fixture
def fifo(tmp_path, monkeypatch):
    from hostile_recordings import FifoWatch

    monkeypatch.chdir(tmp_path)
    watch = FifoWatch(tmp_path)
    yield watch
    watch.stop()


def test_hostile_names_are_shown_as_text_and_open_nothing(qtbot, window, tmp_path, fifo):
    from hostile_recordings import HOSTILE, HOSTILE_TAP, write_hostile_recording

    assert window.open_file(write_hostile_recording(tmp_path / "hostile.h5"))
    window.show_panel("embedding")
    panel = window.panels["embedding"]
    panel.source_combo.setCurrentIndex(panel.source_combo.findData("class-means"))
    panel.tap_combo.setCurrentText(HOSTILE_TAP)
    panel.annotation_combo.setCurrentText(HOSTILE)
    with qtbot.waitSignal(panel.table_loaded, timeout=20000) as loaded:
        panel.load()
    assert loaded.args[0].names == (HOSTILE, "b")
    panel.show_neighbours("b")
    assert panel.neighbours_model.item(0, 1).text() == HOSTILE
    with qtbot.waitSignal(panel.projection_ready, timeout=20000):
        panel.draw_map()
    assert HOSTILE in panel.map.labelled()
    panel.ask(HOSTILE, "b", HOSTILE)
    panel.tabs.setCurrentIndex(3)
    panel.grab()
    window.grab()
    assert fifo.stop() == 0  # nothing opened the FIFO
