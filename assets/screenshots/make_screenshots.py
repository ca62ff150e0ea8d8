"""Regenerates the README's screenshots with lstmviz's own window, offscreen (a few minutes on 2 cores).

    python assets/screenshots/make_screenshots.py [--curves RUN.h5]

- main-window.png: ``lstmviz --screenshot main-window.png --workspace main-window.lstmviz.json --size 1600x1150``
- probes.png: ``lstmviz --screenshot probes.png --workspace probes.lstmviz.json --size 1600x1000``
- perturb.png: ``lstmviz --screenshot perturb.png --workspace perturb.lstmviz.json --size 1600x1150``
  (the demo's bundled checkpoint is re-run)
- prune-loss-models.png: ``lstmviz --screenshot prune-loss-models.png --workspace prune-loss-models.lstmviz.json
  --size 1600x1150`` (the demo's checkpoint pruned by QM to 90 % in 5 steps, λ 1e-3, empirical Fisher, on the
  first 128 items; the Pruning tab of the Perturb panel)
- match-view.png: Match > Export Match View of main-window.lstmviz.json's matches, drawn with its best 12 rows
- graph.png: the bundled graph demo (``assets/demo/karate-chebnet.h5``, ChebNet on Zachary's karate
  club): pane on layer1/h at θ 0.5, the 1-hop ball around node 16 brushed in the Graph panel, its units
  matched over the graph; graph-perturb.png: the same nodes on layer0/h at θ 0.3, their units clamped
  to 3 by the live model (Perturb tab), the change drawn per node and hop by hop
- image.png: the bundled image demo (``assets/demo/digits-cnn.h5``, the baseline CNN on 8x8 digits): test
  digit 5 on conv1 (stride 2, field 8), the bottom-left quarter brushed (θ 0.2, ring 1, tolerance 0.5),
  its units' heatmap, and the top-activating digits for them; image-perturb.png: the same digit with the
  box over its upper-middle (rows 1-5, columns 2-6) occluded by zeros by the live model (Perturb tab): the Δ
  map of every layer on one scale, the input before and after, and the class probabilities
- image-set.png: the Image panel's Sets tab on a HeMIS model (``lstmviz train hemis --steps 300 --set
  modality_names=noisy,blurred,edges,inverted``, trained here into a temporary folder, about a minute, then
  ``lstmviz record ... --split test --max-items 60``): test image 3's ``modalities`` tap, the four modalities'
  mean-pooled back-end embeddings side by side as heat strips on one colour scale
- attention.png: the Attention dock on a seq2seq-attn model of the ``reverse`` task (``lstmviz train
  seq2seq-attn --dataset reverse --steps 1200``, trained here into a temporary folder, then ``lstmviz record
  ... --split test --max-items 60``): test pair 4's attention matrix (decoder steps × source tokens), decoder
  step 2's row, and ``decoder/layer1/h`` beside the matrix
- tagger.png: the whole window on a Tagger model of the ``shapes`` data (``lstmviz train tagger --steps 2000``,
  trained here into a temporary folder, ~5 min on a free core, then ``lstmviz record ... --max-items 100``; the
  same as ``lstmviz --screenshot tagger.png t.h5 --size 1600x1100``): test image 0, the Image dock's Unit maps
  tab in front (an iterative recording opens on it) with the masks of the 4 groups after each iteration
- embedding.png, embedding-relations.png: the Embedding geometry dock on the bundled demo: class means of
  ``layer1/h`` per ``depth`` label crossed with ``token_class`` (13 rows ``depth|class``: no ``0|open``, no ``4|close``), the 3 nearest
  neighbours of ``2|open``, the PCA map (embedding.png) and every method's accuracy on the relations made from the crossed
  annotations (embedding-relations.png)
- probe-curves.png (only with ``--curves RUN.h5``, the recording of 9 checkpoints that the README's
  ``lstmviz train ... --train checkpoint_every=100`` and ``lstmviz record run-step*.pt ...`` commands make):
  the Probes dock on label ``depth`` with "over training" ticked, then Analysis > Export Probe Curves.

It prints how long the probes took (the README quotes it).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _wait(app, busy, timeout_s: float = 1800.0) -> None:
    deadline = time.monotonic() + timeout_s
    while busy() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    if busy():
        raise SystemExit(f"still busy after {timeout_s:g} s")
    for _ in range(3):
        app.processEvents()


def _window(app, size):
    from lstmviz.qt.main_window import MainWindow

    window = MainWindow(settings=None)
    window.resize(*size)
    return window


def match_view(app, png: Path) -> None:
    from lstmviz.workspace.file import load_workspace

    window = _window(app, (1600, 1150))
    window.workspace.restore(load_workspace(HERE / "main-window.lstmviz.json"), None)
    window.show()
    panel = window.panels["match"]
    panel.match()
    _wait(app, lambda: panel.busy or window.workspace.runner.is_busy("aggregate"))
    panel.export_view(png, max_rows=12)
    _close(app, window)


def graph_windows(app, png: Path, perturb_png: Path) -> None:
    from lstmviz.analysis.graph_selection import k_hop_ball

    window = _window(app, (1600, 1000))
    window.open_file(HERE.parent / "demo" / "karate-chebnet.h5")
    window.show()
    pane = window.workspace.active_pane
    pane.set_tap("layer1/h")
    pane.set_threshold(0.5)
    panel = window.panels["graph"]
    panel.set_brushed(k_hop_ball(panel.geometry, 16, 1))
    panel.match()
    _wait(app, lambda: panel.busy)
    window.grab().save(str(png))
    # perturb layer 0 (its change spreads through layer 1): the units that the same nodes select there,
    # clamped to 3 at those nodes
    pane.set_tap("layer0/h")
    pane.set_threshold(0.3)
    panel.set_brushed(k_hop_ball(panel.geometry, 16, 1))
    panel.perturb_box.action_combo.setCurrentIndex(2)
    panel.perturb_box.value_spin.setValue(3.0)
    panel.perturb()
    _wait(app, lambda: panel.busy)
    window.grab().save(str(perturb_png))
    _close(app, window)


def image_window(app, png: Path) -> None:
    window = _window(app, (1600, 1000))
    window.open_file(HERE.parent / "demo" / "digits-cnn.h5")
    window.show()
    panel = window.panels["image"]
    window.workspace.go_to_item(5)
    panel.set_item(5)
    panel.tap_combo.setCurrentIndex(panel.tap_combo.findData("conv1"))
    panel.threshold_spin.setValue(0.2)
    panel.tolerance_spin.setValue(0.5)
    panel.set_box((4.0, 0.0, 8.0, 4.0))  # the digit's bottom-left quarter: on there, off on the ring
    _wait(app, lambda: window.workspace.tap_stats.busy)  # the heatmap's scale: the tap's statistics
    panel.find_top()
    _wait(app, lambda: panel.busy)
    window.grab().save(str(png))
    _close(app, window)


def image_perturb_window(app, png: Path) -> None:
    from lstmviz.qt.image.perturb_box import ACTIONS

    window = _window(app, (1600, 1150))
    window.open_file(HERE.parent / "demo" / "digits-cnn.h5")
    window.show()
    panel = window.panels["image"]
    window.workspace.go_to_item(5)
    panel.set_item(5)
    panel.tap_combo.setCurrentIndex(panel.tap_combo.findData("conv1"))
    panel.set_box((1.0, 2.0, 5.0, 6.0))
    panel.perturb_box.action_combo.setCurrentIndex([label for label, _ in ACTIONS].index("occlude: zero"))
    panel.perturb()
    _wait(app, lambda: panel.busy)
    window.grab().save(str(png))
    _close(app, window)


def image_set_window(app, png: Path) -> None:
    import tempfile

    from lstmviz.cli import main as lstmviz_main

    with tempfile.TemporaryDirectory() as folder:
        checkpoint, recording = Path(folder) / "hemis.pt", Path(folder) / "hemis.h5"
        for argv in (["train", "hemis", "--steps", "300", "--set", "modality_names=noisy,blurred,edges,inverted",
                      "--out", str(checkpoint), "--quiet"],
                     ["record", str(checkpoint), "--split", "test", "--max-items", "60", "--out", str(recording)]):
            if lstmviz_main(argv) != 0:
                raise SystemExit(f"lstmviz {' '.join(argv)} failed")
        window = _window(app, (1600, 1000))
        window.open_file(recording)
        window.show()
        panel = window.panels["image"]
        window.workspace.go_to_item(3)
        panel.set_item(3)
        panel.show_set_tap("modalities")
        app.processEvents()
        panel.grab().save(str(png))
        _close(app, window)


def attention_window(app, png: Path) -> None:
    import tempfile

    from lstmviz.cli import main as lstmviz_main

    with tempfile.TemporaryDirectory() as folder:
        checkpoint, recording = Path(folder) / "reverse.pt", Path(folder) / "reverse.h5"
        for argv in (["train", "seq2seq-attn", "--dataset", "reverse", "--steps", "1200", "--out", str(checkpoint),
                      "--quiet"],
                     ["record", str(checkpoint), "--split", "test", "--max-items", "60", "--out", str(recording)]):
            if lstmviz_main(argv) != 0:
                raise SystemExit(f"lstmviz {' '.join(argv)} failed")
        window = _window(app, (1600, 1000))
        window.open_file(recording)
        window.show()
        panel = window.panels["attention"]
        window.workspace.go_to_item(4)
        panel.set_step(2)
        app.processEvents()
        panel.grab().save(str(png))
        _close(app, window)


def tagger_window(png: Path) -> None:
    import tempfile

    from lstmviz.cli import main as lstmviz_main
    from lstmviz.qt import app as lstmviz_app

    with tempfile.TemporaryDirectory() as folder:
        checkpoint, recording = Path(folder) / "tagger.pt", Path(folder) / "tagger.h5"
        for argv in (["train", "tagger", "--steps", "2000", "--out", str(checkpoint), "--quiet"],
                     ["record", str(checkpoint), "--max-items", "100", "--out", str(recording)]):
            if lstmviz_main(argv) != 0:
                raise SystemExit(f"lstmviz {' '.join(argv)} failed")
        lstmviz_app.screenshot(str(png), str(recording), size=(1600, 1100))
def embedding_windows(app, png: Path, relations_png: Path) -> None:
    window = _window(app, (1600, 1500))
    window.open_file(HERE.parent / "demo" / "parens-lstm.h5")
    window.show()
    window.show_panel("embedding")
    panel = window.panels["embedding"]
    panel.source_combo.setCurrentIndex(panel.source_combo.findData("class-means"))
    panel.tap_combo.setCurrentText("layer1/h")
    panel.annotation_combo.setCurrentText("depth")
    panel.by_combo.setCurrentText("token_class")
    panel.load()
    _wait(app, lambda: panel.busy)
    panel.relations_combo.setCurrentIndex(panel.relations_combo.findData("crossed"))
    panel.run_relations()
    _wait(app, lambda: panel.busy)
    panel.k_spin.setValue(3)
    panel.show_neighbours("2|open")
    panel.draw_map()
    _wait(app, lambda: panel.busy)
    panel.tabs.setCurrentIndex(3)
    app.processEvents()
    panel.grab().save(str(png))
    panel.tabs.setCurrentIndex(2)
    app.processEvents()
    panel.grab().save(str(relations_png))
    _close(app, window)


def probe_curves(app, recording: Path, png: Path) -> None:
    window = _window(app, (1600, 1000))
    window.open_file(recording)
    window.show()
    panel = window.panels["probes"]
    panel.set_label("depth")
    panel.curves_check.setChecked(True)
    started = time.monotonic()
    panel.run()
    _wait(app, lambda: panel.busy)
    print(f"probes over training: {time.monotonic() - started:.1f} s ({panel.status_text()})")
    panel.export_curves(png)
    _close(app, window)


def _close(app, window) -> None:
    window.workspace.shutdown()
    window.close()
    window.deleteLater()
    app.processEvents()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--curves", type=Path, help="a recording of several checkpoints (see the docstring)")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from lstmviz.qt import app as lstmviz_app

    for name, size in (("main-window", (1600, 1150)), ("probes", (1600, 1000)), ("perturb", (1600, 1150)),
                       ("prune-loss-models", (1600, 1150))):
        started = time.monotonic()
        lstmviz_app.screenshot(str(HERE / f"{name}.png"), None, size=size,
                               workspace=str(HERE / f"{name}.lstmviz.json"))
        print(f"wrote {name}.png ({time.monotonic() - started:.1f} s)")
    app = lstmviz_app._application(None)
    match_view(app, HERE / "match-view.png")
    print("wrote match-view.png")
    graph_windows(app, HERE / "graph.png", HERE / "graph-perturb.png")
    print("wrote graph.png, graph-perturb.png")
    image_window(app, HERE / "image.png")
    print("wrote image.png")
    image_perturb_window(app, HERE / "image-perturb.png")
    print("wrote image-perturb.png")
    image_set_window(app, HERE / "image-set.png")
    print("wrote image-set.png")
    attention_window(app, HERE / "attention.png")
    print("wrote attention.png")
    tagger_window(HERE / "tagger.png")
    print("wrote tagger.png")
    embedding_windows(app, HERE / "embedding.png", HERE / "embedding-relations.png")
    print("wrote embedding.png, embedding-relations.png")
    if args.curves is not None:
        probe_curves(app, args.curves, HERE / "probe-curves.png")
        print("wrote probe-curves.png")


if __name__ == "__main__":
    main()
