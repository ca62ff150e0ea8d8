"""The Perturb panel on a tiny trained model: a run on the worker shows what lstmviz.perturb computes
(Δloss, KL, the Δ heatmap, top-k), the alpha sweep and the batch over items; a missing checkpoint is a
sentence with Locate checkpoint…; a bad unit list is a sentence; the panel's state survives a saved
workspace and its result is computed again; exports write files."""

import csv
import json
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from conftest import make_window
from PySide6 import QtWidgets

from lstmviz.perturb import Perturbation, load_live_model, perturb_item, perturb_items, sweep_alpha
from lstmviz.qt.perturb.state import PerturbState
from lstmviz.recording import open_recording
from lstmviz.workspace.file import load_workspace

TIMEOUT = 60000  # ms: the first run imports torch and loads the model
TAP = "layer0/c"


def _cli(*argv):
    from lstmviz.cli import main

    assert main([str(a) for a in argv]) == 0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 16-unit LSTM trained 30 steps on parens, and a float32 recording of 5 test items made with it."""
    root = tmp_path_factory.mktemp("perturb-panel")
    ckpt = root / "tiny.pt"
    _cli("train", "lstm", "--dataset", "parens", "--steps", 30, "--set", "hidden_size=16", "--set", "num_layers=1",
         "--set", "embedding_dim=16", "--no-valid", "--quiet", "--out", ckpt)
    rec = root / "tiny.h5"
    _cli("record", ckpt, "--out", rec, "--max-items", 5, "--dtype", "float32", "--quiet")
    return {"root": root, "checkpoint": ckpt, "recording": rec}


@pytest.fixture
def opened(qtbot, tiny):
    window = make_window(qtbot)
    assert window.open_file(tiny["recording"])
    window.workspace.set_tap(TAP)
    yield window
    window.workspace.shutdown()


def _target(panel, units="0-5", positions="5-9", action="ablate"):
    panel.units_combo.setCurrentIndex(panel.units_combo.findData("typed"))
    panel.units_edit.setText(units)
    panel.positions_combo.setCurrentIndex(panel.positions_combo.findData("typed"))
    panel.positions_edit.setText(positions)
    panel.action_combo.setCurrentIndex(panel.action_combo.findData(action))
    panel.binding.push()


def _run(qtbot, panel, kind="effect"):
    with qtbot.waitSignal(panel.results_ready, timeout=TIMEOUT) as ready:
        assert panel.run(kind), panel.status_text()
        assert panel.busy and not panel.progress.isHidden()  # on the worker: the window did not block
    assert ready.args[0] == kind
    return ready.args[1]


def _expected(tiny, item, **fields):
    rec = open_recording(tiny["recording"])
    live = load_live_model(rec)
    return rec, live, Perturbation(TAP, **fields)


def test_an_ablation_shows_perturb_items_curves_heatmap_and_top_tokens(qtbot, opened, tiny):
    panel = opened.panels["perturb"]
    assert panel.tap_combo.currentData() == TAP  # the target follows the active pane's tap
    opened.workspace.go_to_item(2)
    _target(panel, units="0-5", positions="5-9")
    panel.ablate_combo.setCurrentIndex(panel.ablate_combo.findData("mean"))
    effect = _run(qtbot, panel)
    rec, live, p = _expected(tiny, 2, action="ablate", units=tuple(range(6)), positions=tuple(range(5, 10)),
                             ablate_to="mean")
    want = perturb_item(live, rec, 2, [p])
    assert effect.item == 2 and effect.perturbations == [p]
    # the curves hold the per-position Δloss and KL of the same run
    x, dnll = panel.effect_view.dnll_curve.getData()
    finite = np.isfinite(want.dnll)
    np.testing.assert_array_equal(x, np.arange(len(want.dnll))[finite])
    np.testing.assert_allclose(dnll, want.dnll[finite], atol=1e-5)
    assert np.abs(dnll).max() > 1e-4  # the ablation changed something
    _, kl = panel.effect_view.kl_curve.getData()
    np.testing.assert_allclose(kl, want.kl, atol=1e-6)
    assert np.allclose(kl[:5], 0.0, atol=1e-7)  # nothing changes before the first edited position
    # the heatmap: edited − clean of the chosen tap, [positions, units] drawn as x, y, centred at 0
    panel.show_heatmap("layer0/h")
    image = panel.effect_view.image.image
    np.testing.assert_allclose(image, want.delta["layer0/h"], atol=1e-5)
    low, high = panel.effect_view.image.getLevels()
    assert low == pytest.approx(-high) and high == pytest.approx(np.abs(want.delta["layer0/h"]).max(), rel=1e-5)
    # ‖Δ‖ per tap: one curve per tap
    assert set(panel.effect_view.norm_curves) == set(want.delta_norm)
    np.testing.assert_allclose(panel.effect_view.norm_curves[TAP].getData()[1], want.delta_norm[TAP], atol=1e-5)
    # hovering a position of this item in the select view shows its top tokens before / after
    start = int(rec.item_range(2)[0])
    opened.workspace.set_hover(start + 7)
    assert panel.topk.position == 7
    vocab = rec.vocab
    rows = panel.topk.rows()
    assert [r[0] for r in rows] == [vocab[i] for i in want.topk_clean[7]]
    assert [r[2] for r in rows] == [vocab[i] for i in want.topk_edited[7]]
    assert "mean Δ loss" in panel.status_text()


def test_sweep_and_all_items_show_the_apis_numbers_and_a_row_opens_its_item(qtbot, opened, tiny):
    panel = opened.panels["perturb"]
    _target(panel, units="1, 3, 5", positions="4-8", action="add")
    panel.sweep_from.setValue(-2.0)
    panel.sweep_to.setValue(2.0)
    panel.sweep_steps.setValue(5)
    sweep = _run(qtbot, panel, "sweep")
    rec, live, p = _expected(tiny, 0, action="add", units=(1, 3, 5), positions=(4, 5, 6, 7, 8))
    want = sweep_alpha(live, rec, 0, p, [-2, -1, 0, 1, 2])
    np.testing.assert_allclose(panel.sweep_view.mean_curve.getData()[1], want.mean_dnll, atol=1e-5)
    np.testing.assert_allclose(panel.sweep_view.kl_curve.getData()[0], [-2, -1, 0, 1, 2])
    assert sweep.mean_dnll[2] == pytest.approx(0.0, abs=1e-7)  # alpha 0 changes nothing

    _target(panel, units="0-15", positions="3-12", action="ablate")
    batch = _run(qtbot, panel, "items")
    want = perturb_items(live, rec, Perturbation(TAP, "ablate", units=tuple(range(16)), positions=tuple(range(3, 13))))
    np.testing.assert_allclose(batch.mean_dnll, want.mean_dnll, atol=1e-5)
    rows = panel.batch_view.shown_rows()
    assert [r[0] for r in rows] == [int(i) for i in want.ranked_items()]
    assert panel.batch_view.table.rowCount() == rec.n_items
    _, counts = panel.batch_view.bars.getData()
    assert counts.sum() == rec.n_items
    # double-clicking the row of the item that changes most opens it in the select view
    last = panel.batch_view.table.rowCount() - 1
    panel.batch_view.table.cellDoubleClicked.emit(last, 0)
    assert opened.workspace.item == rows[last][0]


def test_a_missing_checkpoint_is_said_and_locate_runs_again(qtbot, tiny, tmp_path, monkeypatch):
    moved = tmp_path / "model.pt"
    shutil.copy(tiny["checkpoint"], moved)
    rec = tmp_path / "moved.h5"
    _cli("record", moved, "--out", rec, "--max-items", 2, "--dtype", "float32", "--quiet")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(moved, elsewhere / "renamed.pt")

    window = make_window(qtbot)
    assert window.open_file(rec)
    panel = window.panels["perturb"]
    _target(panel)
    with qtbot.waitSignal(panel.checkpoint_missing, timeout=TIMEOUT) as missing:
        assert panel.run()
    sentence = missing.args[0]
    assert "model.pt" in sentence and "not found" in sentence
    assert panel.checkpoint_row.isVisibleTo(panel) and panel.checkpoint_label.text() == sentence
    assert panel.effect is None and not panel.busy and "Traceback" not in sentence
    # the rest of the window is untouched: the panes still draw the recording
    assert window.workspace.recording is not None and window.workspace.values().size

    asked = []

    def choose(parent, title, start, filters):
        asked.append(title)
        return str(elsewhere / "renamed.pt"), filters

    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName", staticmethod(choose))
    with qtbot.waitSignal(panel.results_ready, timeout=TIMEOUT):
        assert panel.locate_checkpoint()
    assert asked and not panel.checkpoint_row.isVisibleTo(panel)
    assert panel.state().checkpoint == str(elsewhere / "renamed.pt")
    window.workspace.shutdown()


@pytest.mark.parametrize("typed, words", [("3, x", "cannot read 'x'"), ("2, 16", "there is no unit 16"),
                                         ("9-4", "runs backwards"), ("", "type at least one unit")])
def test_a_bad_unit_list_is_one_sentence(qtbot, opened, typed, words):
    panel = opened.panels["perturb"]
    _target(panel, units=typed)
    with qtbot.waitSignal(panel.run_failed, timeout=1000) as failed:
        assert not panel.run()
    assert words in failed.args[0] and words in panel.status_text()
    assert not panel.busy and panel.effect is None


def test_the_panel_state_round_trips_through_a_workspace_file_and_reruns(qtbot, opened, tiny, tmp_path):
    panel = opened.panels["perturb"]
    _target(panel, units="2, 4-6", positions="3-7", action="clamp")
    panel.value_spin.setValue(0.75)
    effect = _run(qtbot, panel)
    panel.show_heatmap("layer0/gates/o")
    path = tmp_path / "session.lstmviz.json"
    assert opened.save_workspace(path)
    saved = opened.workspace.panel_state("perturb")
    assert saved.action == "clamp" and saved.value == 0.75 and saved.units_text == "2, 4-6"
    assert saved.shown == "effect" and saved.heatmap_tap == "layer0/gates/o" and saved.tap == TAP
    section = json.loads(path.read_text())["panels"]["perturb"]
    assert section["version"] == 2 and section["units_text"] == "2, 4-6"
    assert load_workspace(path).panels["perturb"] == saved

    other = make_window(qtbot)
    again = other.panels["perturb"]
    with qtbot.waitSignal(again.results_ready, timeout=TIMEOUT) as ready:
        assert other.open_workspace(path)
    restored = ready.args[1]
    assert again.action_combo.currentData() == "clamp" and again.value_spin.value() == 0.75
    assert again.units_edit.text() == "2, 4-6" and again.positions_edit.text() == "3-7"
    np.testing.assert_allclose(restored.dnll, effect.dnll, atol=1e-6, equal_nan=True)
    assert again.effect_view.heatmap_tap == "layer0/gates/o"
    assert other.workspace.panel_state("perturb") == saved
    other.workspace.shutdown()


def test_exports_write_figures_tables_and_the_heatmap(qtbot, opened, tmp_path):
    panel = opened.panels["perturb"]
    with pytest.raises(ValueError, match="press Run first"):
        panel.export_view(tmp_path / "none.png")
    _target(panel)
    effect = _run(qtbot, panel)
    for suffix in (".png", ".svg", ".pdf"):
        written = panel.export_view(tmp_path / f"effect{suffix}")
        assert written.stat().st_size > 1000
    ET.parse(tmp_path / "effect.svg")
    assert (tmp_path / "effect.pdf").read_bytes().startswith(b"%PDF")
    table = panel.export_table(tmp_path / "effect.csv")
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(effect.dnll) and float(rows[7]["kl"]) == pytest.approx(effect.kl[7], abs=1e-6)
    heat = np.load(panel.export_heatmap(tmp_path / "delta.npy"))
    tap = panel.effect_view.heatmap_tap
    np.testing.assert_allclose(heat, effect.delta[tap].T, atol=1e-6)  # [units, positions]
    with pytest.raises(ValueError, match=".npy"):
        panel.export_heatmap(tmp_path / "delta.csv")


def test_state_defaults_are_what_a_fresh_panel_saves(qtbot, opened):
    state = opened.panels["perturb"].state()
    assert isinstance(state, PerturbState) and state.tap == TAP and state.shown == "none"


def test_an_input_attack_and_a_pruning_curve_show_what_the_api_computes(qtbot, opened, tiny, tmp_path):
    from lstmviz.perturb.adversarial import attack_item
    from lstmviz.perturb.pruning import pruning_curve_items

    panel = opened.panels["perturb"]
    panel.attack_combo.setCurrentIndex(panel.attack_combo.findData("hotflip"))
    panel.attack_position_spin.setValue(30)
    attack = _run(qtbot, panel, "attack")
    rec = open_recording(tiny["recording"])
    live = load_live_model(rec)
    want = attack_item(live, rec, 0, 30, method="hotflip")
    np.testing.assert_array_equal(attack.perturbed_tokens, want.perturbed_tokens)
    assert attack.flipped == want.flipped and attack.l2 == pytest.approx(want.l2, rel=1e-5)
    _, heights = panel.attack_view.input_bars.opts["x"], panel.attack_view.input_bars.opts["height"]
    np.testing.assert_allclose(heights, want.l2_per_position, atol=1e-6)
    assert set(panel.attack_view.hidden_curves) == set(want.hidden_delta)
    assert "hotflip at position 30" in panel.attack_label.text() and "→" in panel.attack_label.text()
    assert panel.export_view(tmp_path / "attack.png", "attack").stat().st_size > 1000

    panel.attack_position_spin.setValue(5000)
    assert not panel.run("attack") and "choose an attack position" in panel.status_text()

    curve = _run(qtbot, panel, "pruning")
    want = pruning_curve_items(live, rec, None, TAP)
    assert curve.methods == want.methods
    for method in want.methods:
        measured, predicted = panel.pruning_view.items[method]
        np.testing.assert_allclose(measured.getData()[1], want.measured[method], atol=1e-5)
        np.testing.assert_allclose(predicted.getData()[1], want.predicted[method], atol=1e-5)
    for suffix in (".png", ".svg"):  # the plot sits in a plain container: a bare PlotWidget did not render
        assert panel.export_view(tmp_path / f"pruning{suffix}", "pruning").stat().st_size > 1000
    with open(panel.export_table(tmp_path / "pruning.csv", "pruning"), newline="") as f:
        assert len(list(csv.DictReader(f))) == len(want.methods) * len(want.fractions)


def test_units_from_a_probe_are_its_largest_weights_of_the_class(qtbot, opened, tiny):
    from lstmviz.perturb.spec import probe_direction

    panel = opened.panels["perturb"]
    _target(panel)
    panel.units_combo.setCurrentIndex(panel.units_combo.findData("probe"))
    assert not panel.probe_box.isHidden()
    panel.probe_label_combo.setCurrentIndex(panel.probe_label_combo.findData("depth"))
    panel.probe_class_combo.setCurrentIndex(panel.probe_class_combo.findData("1"))
    effect = _run(qtbot, panel)
    rec = open_recording(tiny["recording"])
    weights = np.abs(probe_direction(rec, TAP, "depth", "1"))
    units = effect.perturbations[0].units
    assert len(units) == 10 and set(units) == set(np.argsort(-weights)[:10].tolist())
    assert weights[list(units)].min() >= np.delete(weights, list(units)).max()
