"""The Image panel's Perturb tab on a CLI-trained cnn (8x8 digits): occluding the brushed box and editing the
selected units at its cells re-run the live model in a worker; the tab draws a Δ map per layer on one scale,
the input before and after, and the probabilities; a missing checkpoint is said and can be located."""

import numpy as np
import pytest

from lstmviz.cli import main


def _train_and_record(folder, steps=10):
    ckpt, out = folder / "cnn.pt", folder / "cnn.h5"
    assert main(["train", "cnn", "--dataset", "digits", "--steps", str(steps), "--set", "hidden_size=4",
                 "--set", "num_layers=3", "-o", str(ckpt), "--quiet"]) == 0
    assert main(["record", str(ckpt), "-o", str(out), "--dtype", "float32", "--max-items", "6", "--quiet"]) == 0
    return ckpt, out


@pytest.fixture(scope="module")
def digits_cnn(tmp_path_factory):
    return _train_and_record(tmp_path_factory.mktemp("digits-cnn"))[1]


@pytest.fixture
def panel(window, digits_cnn):
    assert window.open_file(digits_cnn)
    window.show_panel("image")
    return window.panels["image"]


def _choose(box, label):
    from lstmviz.qt.image.perturb_box import ACTIONS

    box.action_combo.setCurrentIndex([name for name, _ in ACTIONS].index(label))


def test_occluding_the_box_draws_a_delta_map_per_layer_on_one_scale(qtbot, panel):
    panel.set_box((0.0, 0.0, 4.0, 4.0))
    _choose(panel.perturb_box, "occlude: zero")
    with qtbot.waitSignal(panel.perturbed, timeout=20000) as caught:
        assert panel.perturb()
    effect = caught.args[0]
    assert np.all(effect.image_edited[:, :4, :4] == 0.0)
    assert np.array_equal(effect.image_edited[:, 4:, :], effect.image_clean[:, 4:, :])
    box = panel.perturb_box
    assert list(box.map_views) == ["conv0", "conv1", "conv2"] == effect.map_taps
    top = max(float(effect.delta_map(t).max()) for t in effect.map_taps)
    for view in box.map_views.values():  # one scale for every layer
        assert tuple(view.item.levels) == (0.0, pytest.approx(top))
    for tap, view in box.map_views.items():
        np.testing.assert_allclose(view.item.image, effect.delta_map(tap), rtol=1e-6)
        assert effect.outside(tap) == 0
    assert effect.delta_map("conv0")[6:, 6:].max() == 0.0  # far from the box: unchanged
    assert "within the receptive-field region" in box.summary.text()
    assert panel.tabs.currentWidget() is box
    assert f"{top:.3g}" in box.scale_label.text()


def test_the_summary_stays_within_the_dock_and_delta_maps_wrap_when_they_do_not_fit(qtbot, window, panel,
                                                                                    monkeypatch):
    from lstmviz.qt.image.perturb_box import MAP_SIZE

    window.resize(1400, 850)
    panel.set_box((0.0, 0.0, 4.0, 4.0))
    _choose(panel.perturb_box, "occlude: zero")
    with qtbot.waitSignal(panel.perturbed, timeout=20000):
        assert panel.perturb()  # drawn while the tab was hidden, then shown
    box = panel.perturb_box
    qtbot.waitUntil(lambda: box.summary.width() <= box.scroll.viewport().width())
    assert box.maps.height() == MAP_SIZE + 70  # three maps fit: one row
    monkeypatch.setattr(box, "_maps_per_row", lambda: 2)  # a tab with room for two maps only
    box._fit_to_width()
    assert box.maps.height() == 2 * (MAP_SIZE + 70) and list(box.map_views) == ["conv0", "conv1", "conv2"]
    y = {tap: view.mapToScene(view.boundingRect().topLeft()).y() for tap, view in box.map_views.items()}
    assert y["conv0"] == y["conv1"] < y["conv2"]


def test_editing_the_shown_units_at_the_box_cells(qtbot, window, panel):
    panel.tap_combo.setCurrentIndex(panel.tap_combo.findData("conv1"))
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("unit"))  # the overlay's unit is edited
    panel.unit_spin.setValue(2)
    panel.set_box((0.0, 0.0, 4.0, 4.0))  # conv1 (stride 2, offset 0.5): cells (0,0), (0,1), (1,0), (1,1)
    cells = panel.box_cells()
    assert cells.tolist() == [0, 1, 4, 5]
    _choose(panel.perturb_box, "units: clamp to value")
    panel.perturb_box.value_spin.setValue(3.0)
    with qtbot.waitSignal(panel.perturbed, timeout=20000) as caught:
        assert panel.perturb()
    effect = caught.args[0]
    expected = effect.clean["conv1"].copy()
    expected[np.ix_(cells, [2])] = 3.0
    np.testing.assert_allclose(effect.edited["conv1"], expected, atol=1e-6)
    assert np.array_equal(effect.clean["conv0"], effect.edited["conv0"])
    assert "conv0" in panel.perturb_box.map_views and panel.perturb_box.map_views["conv0"].item.image.max() == 0.0
    # another image forgets the effect
    panel.step_item(1)
    assert panel.perturb_box.effect is None


def test_perturb_without_a_box_or_units_says_what_to_do(window, panel):
    panel.set_box(None)
    assert not panel.perturb()
    assert "Brush a box" in panel.perturb_box.summary.text()
    panel.set_box((0.0, 0.0, 4.0, 4.0))
    panel.threshold_spin.setValue(1e5)  # the box rule selects no unit, none is highlighted
    _choose(panel.perturb_box, "units: ablate to 0")
    assert not panel.perturb()
    assert "Select units first" in panel.perturb_box.summary.text()
    _choose(panel.perturb_box, "occlude: value")
    panel.perturb_box.value_spin.setValue(2.0)
    assert not panel.perturb()
    assert "outside the pixel range" in panel.perturb_box.summary.text()


def test_a_missing_checkpoint_is_said_and_can_be_located(qtbot, window, tmp_path, captured_errors):
    ckpt, out = _train_and_record(tmp_path, steps=2)
    moved = tmp_path / "moved" / "elsewhere.pt"
    moved.parent.mkdir()
    ckpt.rename(moved)
    assert window.open_file(out)
    window.show_panel("image")
    panel = window.panels["image"]
    panel.set_box((2.0, 2.0, 5.0, 5.0))
    _choose(panel.perturb_box, "occlude: blur")
    assert panel.perturb()
    qtbot.waitUntil(lambda: not panel.busy, timeout=20000)
    summary = panel.perturb_box.summary.text()
    assert summary.startswith("Cannot perturb:") and "cnn.pt" in summary
    assert "Locate checkpoint… beside the Perturb button" in summary
    assert [title for title, _ in captured_errors] == ["Cannot perturb the image"]
    assert panel.perturb_box.locate_button.isVisibleTo(panel.perturb_box)
    with qtbot.waitSignal(panel.perturbed, timeout=20000):
        assert panel.locate_checkpoint(str(moved))
    assert panel.perturb_box.effect is not None
    assert not panel.perturb_box.locate_button.isVisibleTo(panel.perturb_box)


def test_an_attack_shows_the_adversarial_image_r_and_the_delta_maps(qtbot, panel):
    box = panel.perturb_box
    assert box.attack_row.isVisibleTo(box)  # lstmviz.perturb.image_attack is there
    box.attack_combo.setCurrentIndex(box.attack_combo.findData("pgd-l2"))
    box.eps_spin.setValue(2.0)
    with qtbot.waitSignal(panel.perturbed, timeout=30000) as caught:
        assert panel.attack()
    effect = caught.args[0]
    attack = effect.extra["attack"]
    np.testing.assert_allclose(effect.image_edited - effect.image_clean, attack.r, atol=1e-6)
    assert attack.l2 <= 2.0 + 1e-6
    assert list(box.map_views) == effect.map_taps and box.summary.text().startswith("PGD (l2, eps 2) attack")
    assert panel.status_text().startswith(f"Attacked image {panel.item}")


def test_an_attack_can_be_cancelled(qtbot, panel):
    box = panel.perturb_box
    box.attack_combo.setCurrentIndex(box.attack_combo.findData("lbfgs"))
    assert panel.attack()
    panel.cancel()
    qtbot.waitUntil(lambda: not panel.busy, timeout=30000)
    assert panel.status_text() == "Attack cancelled."
    assert box.effect is None
    box.target_spin.setValue(12)  # no such class: said, nothing runs
    assert not panel.attack()
    assert "There is no class 12" in box.summary.text()
