"""The Graph panel's Perturb tab on a CLI-trained ChebNet (karate): the selected units of brushed nodes are
edited by the live model, the canvas shows ‖Δ‖, and the hop profile stays within K − 1 hops per layer."""

import numpy as np
import pytest

from lstmviz.cli import main


@pytest.fixture(scope="module")
def karate_chebnet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("karate-chebnet")
    ckpt, out = folder / "k.pt", folder / "k.h5"
    assert main(["train", "chebnet", "--dataset", "karate", "--steps", "20", "-o", str(ckpt), "--quiet"]) == 0
    assert main(["record", str(ckpt), "-o", str(out), "--dtype", "float32", "--quiet"]) == 0
    return out


@pytest.fixture
def panel(window, karate_chebnet):
    assert window.open_file(karate_chebnet)
    window.show_panel("graph")
    return window.panels["graph"]


def test_perturbing_a_node_shows_the_change_hop_by_hop_within_the_bound(qtbot, window, panel):
    window.workspace.active_pane.set_tap("layer0/h")
    panel.set_brushed([0])  # the node-set rule selects units; here the units are chosen by hand after it
    window.workspace.set_highlighted_units([0, 1, 2, 3])
    panel.perturb_box.action_combo.setCurrentIndex(2)  # clamp
    panel.perturb_box.value_spin.setValue(5.0)
    with qtbot.waitSignal(panel.perturbed, timeout=20000) as caught:
        assert panel.perturb()
    effect = caught.args[0]
    assert panel.perturb_box.shown_tap == "layer1/h"
    bound = effect.bounds["layer1/h"]
    assert bound == 2  # K = 3 terms: 2 hops per layer
    assert 0 < effect.reach("layer1/h") <= bound
    profile = effect.hop_profile("layer1/h")
    assert (profile["changed"][bound + 1:] == 0).all()
    assert "within the engine's bound of 2 hops" in panel.perturb_box.summary.text()
    assert panel.legend_label.text().startswith("Colour: ‖Δ‖ of layer1/h")
    # the edited node's own state is the clamp value at the edited units
    panel.perturb_box.tap_combo.setCurrentIndex(panel.perturb_box.tap_combo.findData("layer0/h"))
    edited = effect.edited["layer0/h"][0]
    units = np.asarray(window.workspace.highlighted_units)
    assert np.allclose(edited[units], 5.0)
    # brushing anew forgets the effect: the nodes are coloured by the units again
    panel.set_brushed([33])
    assert panel.effect is None and not panel.legend_label.text().startswith("Colour: ‖Δ‖")


def test_perturb_without_brushed_nodes_says_what_to_do(window, panel):
    panel.set_brushed([])
    assert not panel.perturb()
    assert "Brush nodes" in panel.perturb_box.summary.text()



def test_a_missing_checkpoint_is_said_and_can_be_located(qtbot, window, tmp_path, captured_errors):
    ckpt, out = tmp_path / "gone.pt", tmp_path / "gone.h5"
    assert main(["train", "chebnet", "--dataset", "karate", "--steps", "5", "-o", str(ckpt), "--quiet"]) == 0
    assert main(["record", str(ckpt), "-o", str(out), "--quiet"]) == 0
    moved = tmp_path / "moved" / "elsewhere.pt"
    moved.parent.mkdir()
    ckpt.rename(moved)
    assert window.open_file(out)
    window.show_panel("graph")
    panel = window.panels["graph"]
    panel.set_brushed([0])
    window.workspace.set_highlighted_units([0, 1])
    assert panel.perturb()
    qtbot.waitUntil(lambda: not panel.busy, timeout=20000)
    assert panel.effect is None
    summary = panel.perturb_box.summary.text()
    assert summary.startswith("Cannot perturb:") and "gone.pt" in summary
    assert [title for title, _ in captured_errors] == ["Cannot perturb the nodes"]
    assert "gone.pt" in captured_errors[0][1]
    # Locate checkpoint… is offered; the moved checkpoint is used once located
    assert panel.perturb_box.locate_button.isVisibleTo(panel.perturb_box)
    assert "Locate checkpoint… beside the Perturb button" in summary
    with qtbot.waitSignal(panel.perturbed, timeout=20000):
        assert panel.locate_checkpoint(str(moved))
    assert panel.effect is not None and not panel.perturb_box.locate_button.isVisibleTo(panel.perturb_box)
