"""The Image panel's Perturb tab offers a model's switches (issue 17) once the model is loaded: on a CLI-trained
hemis, one combo per modality; dropping one re-runs the image with it never read and draws what changed."""

import numpy as np
import pytest

from lstmviz.cli import main


@pytest.fixture(scope="module")
def hemis_recording(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hemis-switches")
    ckpt, out = folder / "hemis.pt", folder / "hemis.h5"
    assert main(["train", "hemis", "--steps", "5", "--set", "hidden_size=4", "--set", "front_size=4",
                 "--dataset-option", "max_images=40", "-o", str(ckpt), "--quiet"]) == 0
    assert main(["record", str(ckpt), "-o", str(out), "--split", "test", "--max-items", "3", "--quiet"]) == 0
    return out


@pytest.fixture
def panel(window, hemis_recording):
    assert window.open_file(hemis_recording)
    window.show_panel("image")
    return window.panels["image"]


def test_loading_the_model_offers_its_switches_and_dropping_a_modality_shows_the_change(qtbot, panel):
    box = panel.perturb_box
    assert box.switch_load_button.isVisibleTo(box) and not box.switch_combos
    assert panel.load_switches()
    qtbot.waitUntil(lambda: bool(box.switch_combos), timeout=20000)
    assert list(box.switch_combos) == ["modality0", "modality1", "modality2", "modality3"]
    assert box.switch_settings() == {f"modality{k}": "on" for k in range(4)}
    assert box.switch_button.isVisibleTo(box) and not box.switch_load_button.isVisibleTo(box)
    box.switch_combos["modality1"].setCurrentText("off")
    with qtbot.waitSignal(panel.perturbed, timeout=20000) as caught:
        assert panel.perturb_switched()
    effect = caught.args[0]
    assert effect.extra["switches"] == {"modality1": "off"}
    assert not np.any(effect.edited["backend_1"]) and not effect.changed("backend_0").any()
    assert "modality1=off" in box.summary.text() and "the model itself was switched" in box.summary.text()
    assert panel.tabs.currentWidget() is box
    assert list(box.map_views) == effect.map_taps and len(box.mask_views) == 3  # masks before / after, Δ


def test_running_switched_before_loading_the_model_says_what_to_do(panel):
    assert not panel.perturb_switched()
    assert "Load the model first" in panel.status_text()
