"""The Perturb panel's "Prune model" action (Laurent et al.'s loss models): it shows what prune_live_model
computes (predicted vs measured Δloss per step, the effect of the pruned weights on the item), exports the
figure and the table, saves the pruned checkpoint with its masks, keeps its settings in the workspace and
can be cancelled."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from conftest import make_window

from lstmviz.engines.checkpoint import load_checkpoint
from lstmviz.perturb import load_live_model
from lstmviz.perturb.prune_live import prune_live_model
from lstmviz.qt.perturb.jobs import PRUNE_ITEMS
from lstmviz.recording import open_recording

TIMEOUT = 120000  # ms: the first run imports torch and loads the model
TAP = "layer0/c"


def _cli(*argv):
    from lstmviz.cli import main

    assert main([str(a) for a in argv]) == 0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 16-unit LSTM trained 30 steps on parens, and a float32 recording of 4 test items made with it."""
    root = tmp_path_factory.mktemp("prune-panel")
    ckpt = root / "tiny.pt"
    _cli("train", "lstm", "--dataset", "parens", "--steps", 30, "--set", "hidden_size=16", "--set", "num_layers=1",
         "--set", "embedding_dim=16", "--no-valid", "--quiet", "--out", ckpt)
    rec = root / "tiny.h5"
    _cli("record", ckpt, "--out", rec, "--max-items", 4, "--dtype", "float32", "--quiet")
    return {"root": root, "checkpoint": ckpt, "recording": rec}


@pytest.fixture
def panel(qtbot, tiny):
    window = make_window(qtbot)
    assert window.open_file(tiny["recording"])
    window.workspace.set_tap(TAP)
    yield window.panels["perturb"]
    window.workspace.shutdown()


def _settings(panel, method="qm", percent=60, steps=3, lam=0.001, curvature="fisher"):
    panel.prune_method_combo.setCurrentIndex(panel.prune_method_combo.findData(method))
    panel.prune_sparsity_slider.setValue(percent)
    panel.prune_steps_spin.setValue(steps)
    panel.prune_lambda_spin.setValue(lam)
    panel.prune_curvature_combo.setCurrentIndex(panel.prune_curvature_combo.findData(curvature))


def test_prune_model_shows_the_api_s_steps_and_the_effect_downstream(qtbot, panel, tiny, tmp_path):
    _settings(panel)
    assert panel.prune_sparsity_label.text() == "60%"
    with qtbot.waitSignal(panel.results_ready, timeout=TIMEOUT) as ready:
        assert panel.run("prune"), panel.status_text()
        assert panel.busy and not panel.progress.isHidden()
    kind, result = ready.args
    assert kind == "prune" and panel.tabs.currentIndex() == 4

    rec = open_recording(tiny["recording"])
    live = load_live_model(rec)
    before = {k: v.clone() for k, v in live.model.state_dict().items()}
    want = prune_live_model(live, rec, result.effect.item, method="qm", sparsity=0.6, steps=3, lam=0.001,
                            curvature="fisher", items=PRUNE_ITEMS)
    assert all(torch.equal(before[k], v) for k, v in live.model.state_dict().items())  # a copy was pruned
    got = result.pruning
    assert [s.sparsity for s in got.steps] == [s.sparsity for s in want.pruning.steps]
    assert got.achieved == want.pruning.achieved and got.steps[-1].sparsity == got.achieved
    np.testing.assert_allclose([s.measured for s in got.steps], [s.measured for s in want.pruning.steps], atol=1e-6)
    view = panel.loss_pruning_view
    np.testing.assert_allclose(view.measured.getData()[1], [s.measured for s in want.pruning.steps], atol=1e-6)
    for key in ("lm", "qm", "obd"):
        np.testing.assert_allclose(view.predicted[key].getData()[1], [s.predicted[key] for s in want.pruning.steps],
                                   rtol=1e-5, atol=1e-9)
    # the effect of the pruned weights on the item is what the Effect tab shows
    assert panel.effect is result.effect
    np.testing.assert_allclose(result.effect.dnll, want.effect.dnll, atol=1e-5, equal_nan=True)
    assert set(result.effect.delta) == set(want.effect.delta) and np.abs(result.effect.delta[TAP]).max() > 0
    assert "QM (quadratic), 3 step(s)" in panel.status_text() and "Effect tab" in panel.status_text()

    for suffix in (".png", ".svg", ".pdf"):
        assert panel.export_view(tmp_path / f"prune{suffix}", "prune").stat().st_size > 1000
    with open(panel.export_table(tmp_path / "prune.csv", "prune"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and float(rows[-1]["sparsity"]) == pytest.approx(got.achieved)

    out = panel.save_pruned_checkpoint(tmp_path / "pruned.pt")
    model, meta = load_checkpoint(out)
    masks = meta["pruning"]["masks"]
    assert meta["pruning"]["info"]["method"] == "qm" and meta["pruning"]["info"]["lambda"] == 0.001
    assert sum(int((~m).sum()) for m in masks.values()) == round(got.achieved * sum(got.sizes.values()))
    assert all(torch.all(model.get_parameter(n).detach()[~m] == 0) for n, m in masks.items())
    assert meta["pruning"]["info"]["source_checkpoint"]["sha256"] == load_checkpoint(tiny["checkpoint"])[1]["sha256"]

    state = panel.state()
    assert state.shown == "prune" and state.prune_sparsity == 0.6 and state.prune_steps == 3
    assert state.prune_method == "qm" and state.prune_lambda == 0.001


def test_a_restored_state_sets_the_controls_and_a_prune_can_be_cancelled(qtbot, panel):
    from dataclasses import replace

    state = replace(panel.state(), prune_method="obd", prune_sparsity=0.8, prune_steps=50, prune_lambda=0.1,
                    prune_curvature="sampled-fisher")
    panel._show_state(state)
    assert panel.prune_method_combo.currentData() == "obd" and panel.prune_sparsity_slider.value() == 80
    assert panel.prune_steps_spin.value() == 50 and panel.prune_lambda_spin.value() == 0.1
    assert panel.prune_curvature_combo.currentData() == "sampled-fisher"
    with qtbot.waitSignal(panel.run_cancelled, timeout=TIMEOUT):
        assert panel.run("prune")
        panel.cancel()
    assert panel.loss_pruning is None and not panel.save_pruned_button.isEnabled()
    with pytest.raises(ValueError, match="press Prune model first"):
        panel.save_pruned_checkpoint("x.pt")
