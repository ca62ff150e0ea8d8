"""Tangent kernels in the window, on a real tiny run (a language model recorded at three checkpoints): the
Probes panel's "tangent kernel" option draws alignment and effective rank per layer under the probe
curves on the same step axis, and the NTK spectrum panel shows the spectrum with the label energy; both
export figures and tables."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PySide6 import QtGui, QtWidgets

from lstmviz.cli import main

TIMEOUT = 240000  # ms: the kernels of three checkpoints' models (torch.func imports on first use)
DATA = ["--dataset-option", "tokens=1500", "--dataset-option", "item_length=16"]


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kernel-gui")
    out = folder / "lstm.pt"
    assert main(["train", "lstm", "--dataset", "parens", "--steps", "20", "--out", str(out), "--quiet",
                 "--train", "batch_size=4", "--train", "bptt=16", "--train", "checkpoint_every=10",
                 "--train", "keep_checkpoints=1", "--set", "hidden_size=6", "--set", "embedding_dim=4", *DATA]) == 0
    rec = folder / "run.h5"
    kept = [folder / f"lstm-step{s:06d}.pt" for s in (0, 10, 20)]
    assert main(["record", *map(str, kept), "--out", str(rec), "--quiet", "--max-items", "10", "--split", "valid",
                 "--signals", "layer1/h", "layer0/h", *DATA]) == 0
    return rec


def _workspace(qtbot, path):
    from lstmviz.qt.workspace import Workspace

    owner = QtWidgets.QWidget()
    qtbot.addWidget(owner)
    ws = Workspace(parent=owner)
    ws.owner = owner
    ws.open(path)
    return ws


def _colors(image: QtGui.QImage) -> int:
    return len({image.pixel(x, y) for x in range(0, image.width(), 4) for y in range(0, image.height(), 4)})


def test_probe_panel_draws_tangent_kernel_curves_under_the_probe_curves(qtbot, lm_run, tmp_path):
    from lstmviz.qt.probes.panel import ProbePanel

    ws = _workspace(qtbot, lm_run)
    try:
        p = ProbePanel(ws)
        qtbot.addWidget(p)
        p.resize(1300, 700)
        p.show()
        qtbot.waitExposed(p)
        assert p.kernel_check.isVisibleTo(p) and not p.kernel_check.isEnabled()  # only with "over training"
        p.set_label("max_depth")
        p.curves_check.setChecked(True)
        assert p.kernel_check.isEnabled()
        p.kernel_check.setChecked(True)
        assert p.settings().kernel and p.state().kernel
        with qtbot.waitSignal(p.results_ready, timeout=TIMEOUT):
            p.run()
        k = p.kernel_curves
        assert k is not None and p.kernel_view.curves is k and p.kernel_view.isVisibleTo(p.training_view)
        p.tabs.setCurrentWidget(p.training_view)
        assert k.checkpoints == p.curves.checkpoints and list(k.x()) == list(p.curves.x()) == [0.0, 10.0, 20.0]
        drawn = p.kernel_view.series["all layers (K)"]
        np.testing.assert_array_equal(drawn["alignment"], k.total_alignment)
        assert set(p.kernel_view.series) == {*k.layers, "all layers (K)"}
        assert "tangent-kernel alignment" in p.status_text()
        # one x axis: the probe curves and the kernel curves show the same range
        assert p.kernel_view.plots[0].viewRange()[0] == pytest.approx(p.curves_view.plot.viewRange()[0])
        rows = list(csv.DictReader(open(p.export_kernel_table(tmp_path / "k.csv"), encoding="utf-8")))
        assert len(rows) == 3 * (len(k.layers) + 1)
        image = QtGui.QImage(str(p.export_kernel_curves(tmp_path / "k.png")))
        assert _colors(image) > 10
        p.shutdown()
    finally:
        ws.shutdown()
        ws.close()


def test_kernel_panel_shows_the_spectrum_with_label_energy(qtbot, lm_run, tmp_path):
    from lstmviz.qt.kernel.panel import KernelPanel

    ws = _workspace(qtbot, lm_run)
    try:
        p = KernelPanel(ws)
        qtbot.addWidget(p)
        p.resize(1000, 500)
        p.show()
        qtbot.waitExposed(p)
        assert p.label_combo.currentData() == "max_depth"  # the item label first
        assert not p.export_view_action.isEnabled()
        with pytest.raises(ValueError, match="press Run first"):
            p.export_table(tmp_path / "none.csv")
        with qtbot.waitSignal(p.result_changed, timeout=TIMEOUT, check_params_cb=lambda r: r is not None):
            p.run()
        r = p.result
        assert r.items == 10 and p.view.result is r
        np.testing.assert_allclose(r.spectrum.energy.sum(0), 1.0, atol=1e-9)
        assert "label energy" in p.status_text() and "embedding: A" in p.status_text()
        assert all(name in p.view.legend_text() for name in r.spectrum.labels)
        rows = list(csv.DictReader(open(p.export_table(tmp_path / "s.csv"), encoding="utf-8")))
        assert len(rows) == 10 and "eigenvalue" in rows[0]
        layers = list(csv.DictReader(open(p.export_layer_table(tmp_path / "l.csv"), encoding="utf-8")))
        assert [row["layer"] for row in layers] == [*r.layers, "all"]
        image = QtGui.QImage(str(p.export_view(tmp_path / "s.png")))
        assert _colors(image) > 10
        p.shutdown()
    finally:
        ws.shutdown()
        ws.close()
