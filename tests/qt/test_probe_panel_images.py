"""The Probes panel on an image recording (the bundled digits CNN): every tap is listed, the chart labels
each bar with the rows it was fitted on, the detail names them, a per-pixel label skips per-image taps."""

from pathlib import Path

import pytest
from PySide6 import QtCore, QtGui

from lstmviz.qt.probes.panel import ProbePanel
from lstmviz.qt.widget_export import export_widget

DEMO = Path(__file__).resolve().parents[2] / "assets" / "demo" / "digits-cnn.h5"
TIMEOUT = 120000


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LSTMVIZ_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def panel(qtbot):
    from PySide6 import QtWidgets

    from lstmviz.qt.workspace import Workspace

    owner = QtWidgets.QWidget()
    qtbot.addWidget(owner)
    ws = Workspace(parent=owner)
    ws.owner = owner
    ws.open(DEMO)
    p = ProbePanel(ws)
    qtbot.addWidget(p)
    p.resize(1400, 460)
    p.show()
    qtbot.waitExposed(p)
    yield p
    p.shutdown()
    ws.shutdown()
    ws.close()


def run(qtbot, panel):
    with qtbot.waitSignal(panel.results_ready, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(panel.run_button, QtCore.Qt.MouseButton.LeftButton)
    return blocker.args[0]


def test_class_rows_in_the_chart_and_detail(qtbot, panel, tmp_path):
    assert panel.taps() == ["input", "conv0", "conv1", "conv2", "conv3", "pooled", "logits"]
    panel.set_label("class")
    run(qtbot, panel)
    report = panel.report
    assert report.rows["conv2"] == "mean over cells" and report.rows["logits"] == "one row per image"
    ticks = [text for _, text in panel.chart.tap_axis._tickLevels[0]]
    assert ticks == ["input (pixels)", "conv0 (mean)", "conv1 (mean)", "conv2 (mean)", "conv3 (mean)",
                     "pooled (per image)", "logits (per image)"]
    panel.open_probe("conv2")
    header = panel.detail.header.text()
    assert "test images (conv2: mean over cells)" in header
    assert report.probes["logits"].accuracy >= 0.9
    axis = panel.chart.tap_axis  # the labels are staggered on rows; the axis grows after a paint
    qtbot.waitUntil(lambda: axis.drawn_labels == ticks  # every label drawn in full
                    and (axis.rows == 1 or (axis._base_height is not None and axis.height() > axis._base_height)))
    out = export_widget(panel, tmp_path / "probes-images.png", scale=1.0)
    image = QtGui.QImage(str(out))
    assert image.width() > 500 and len({image.pixel(x, 200) for x in range(0, image.width(), 7)}) > 3


def test_pixel_label_on_cells_skips_per_image_taps(qtbot, panel):
    panel.set_label("stroke")
    run(qtbot, panel)
    report = panel.report
    assert "pooled" in report.skipped and "pooled" not in report.taps
    assert report.rows["conv1"].startswith("cells")
    assert "Not probed: pooled, logits (it lies on the scalar axis 'image'" in panel.status_label.text()
    panel.open_probe("conv1")
    assert "test cells (conv1: cells" in panel.detail.header.text()
