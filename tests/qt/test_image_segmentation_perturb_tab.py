"""The Image panel's Perturb tab on a CLI-trained seg-cnn (digits-seg, 8x8): occluding the brushed box shows
the predicted masks before and after and ‖Δ logits‖ per pixel in place of the probability bars, a sentence
counting the pixels whose class changed; the attack is refused in words."""

import numpy as np
import pytest

from lstmviz.cli import main


@pytest.fixture(scope="module")
def seg_recording(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits-seg")
    ckpt, out = folder / "seg.pt", folder / "seg.h5"
    assert main(["train", "seg-cnn", "--dataset", "digits-seg", "--steps", "30", "--set", "hidden_size=4",
                 "--set", "num_layers=3", "--dataset-option", "size=8", "--dataset-option", "max_images=60",
                 "-o", str(ckpt), "--quiet"]) == 0
    assert main(["record", str(ckpt), "-o", str(out), "--dtype", "float32", "--max-items", "6",
                 "--dataset-option", "size=8", "--quiet"]) == 0
    return out


@pytest.fixture
def panel(window, seg_recording):
    assert window.open_file(seg_recording)
    window.show_panel("image")
    return window.panels["image"]


def test_occluding_shows_the_masks_before_and_after(qtbot, panel, tmp_path):
    from lstmviz.qt.image.perturb_box import ACTIONS, mask_rgb

    box = panel.perturb_box
    panel.set_box((0.0, 0.0, 5.0, 5.0))
    box.action_combo.setCurrentIndex([name for name, _ in ACTIONS].index("occlude: value"))
    box.value_spin.setValue(1.0)
    with qtbot.waitSignal(panel.perturbed, timeout=20000) as caught:
        assert panel.perturb()
    effect = caught.args[0]
    assert effect.dense and effect.mask_clean.shape == (8, 8)
    assert box.masks.isVisibleTo(box) and not box.plot.isVisibleTo(box)
    shown = box.mask_views
    assert len(shown) == 3
    assert np.array_equal(shown[0].item.image, mask_rgb(effect.mask_clean, 11))
    assert np.array_equal(shown[1].item.image, mask_rgb(effect.mask_edited, 11))
    np.testing.assert_allclose(shown[2].item.image, effect.logit_delta_map(), rtol=1e-6)
    text = box.summary.text()
    assert f"{effect.pixels_changed()} of 64 pixels changed class" in text
    assert "within the receptive-field region" in text
    assert "background" in box.mask_legend.text()
    box.resize(700, 520)
    assert box.grab().save(str(tmp_path / "seg-perturb.png"))


def test_the_attack_is_refused_in_words(panel):
    assert not panel.attack()
    assert "one class per pixel" in panel.perturb_box.summary.text()
