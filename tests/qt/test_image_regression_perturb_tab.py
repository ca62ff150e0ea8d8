"""The Image panel's Perturb tab on a CLI-trained depth-sr (depth-synth, 16x16): occluding the brushed box shows
the predicted depth before and after and |Δ prediction| per pixel in place of the probability bars, a sentence
counting the pixels that changed; the attack is refused in words."""

import numpy as np
import pytest

from lstmviz.cli import main


@pytest.fixture(scope="module")
def depth_recording(tmp_path_factory):
    folder = tmp_path_factory.mktemp("depth-synth")
    ckpt, out = folder / "d.pt", folder / "d.h5"
    assert main(["train", "depth-sr", "--dataset", "depth-synth", "--steps", "20", "--set", "hidden_size=4",
                 "--set", "num_layers=2", "--set", "refine_lambda=2.0", "--dataset-option", "size=16",
                 "--dataset-option", "images=40", "-o", str(ckpt), "--quiet"]) == 0
    assert main(["record", str(ckpt), "-o", str(out), "--dtype", "float32", "--max-items", "4",
                 "--dataset-option", "size=16", "--dataset-option", "images=40", "--quiet"]) == 0
    return out


@pytest.fixture
def panel(window, depth_recording):
    assert window.open_file(depth_recording)
    window.show_panel("image")
    return window.panels["image"]


def test_occluding_shows_the_prediction_before_and_after(qtbot, panel, tmp_path):
    from lstmviz.qt.image.perturb_box import ACTIONS

    box = panel.perturb_box
    panel.set_box((0.0, 0.0, 6.0, 6.0))
    box.action_combo.setCurrentIndex([name for name, _ in ACTIONS].index("occlude: value"))
    box.value_spin.setValue(1.0)
    with qtbot.waitSignal(panel.perturbed, timeout=20000) as caught:
        assert panel.perturb()
    effect = caught.args[0]
    assert effect.regression and effect.prediction_map_clean.shape == (1, 16, 16)
    assert box.masks.isVisibleTo(box) and not box.plot.isVisibleTo(box)
    shown = box.mask_views
    assert len(shown) == 3
    np.testing.assert_allclose(shown[0].item.image, effect.prediction_map_clean[0], rtol=1e-6)
    np.testing.assert_allclose(shown[1].item.image, effect.prediction_map_edited[0], rtol=1e-6)
    np.testing.assert_allclose(shown[2].item.image, effect.logit_delta_map(), rtol=1e-6)
    text = box.summary.text()
    assert f"the prediction changed at {effect.pixels_changed()} of 256 pixels" in text
    assert "within the receptive-field region" in text
    assert "one scale before and after" in box.mask_legend.text()
    box.resize(700, 520)
    assert box.grab().save(str(tmp_path / "depth-perturb.png"))


def test_the_attack_is_refused_in_words(panel):
    assert not panel.attack()
    assert "values per pixel" in panel.perturb_box.summary.text()
