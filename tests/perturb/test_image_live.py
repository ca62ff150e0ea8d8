"""The live model of an image recording (CLI-trained cnn on 8x8 digits): rebuilt, checked, perturbed."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from lstmviz.cli import main
from lstmviz.hooks import Edit
from lstmviz.perturb import CheckpointProblem, PerturbError
from lstmviz.perturb.image_live import check_item, load_image_model, perturb_recorded_image, recorded_image, reproduces
from lstmviz.recording import open_recording


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits")
    ckpt, out = folder / "d.pt", folder / "d.h5"
    assert main(["train", "cnn", "--dataset", "digits", "--steps", "10", "--set", "hidden_size=4",
                 "--set", "num_layers=3", "-o", str(ckpt), "--quiet"]) == 0
    assert main(["record", str(ckpt), "-o", str(out), "--dtype", "float32", "--max-items", "12", "--quiet"]) == 0
    return ckpt, out


def test_the_live_model_reproduces_the_recorded_states(digits_run):
    _, out = digits_run
    with open_recording(out) as rec:
        live = load_image_model(rec)
        errors = reproduces(live, rec, 3)
        assert set(errors) == {"conv0", "conv1", "conv2", "pooled", "logits"}
        assert max(errors.values()) < 1e-5
        assert np.array_equal(check_item(live, rec, 3), recorded_image(rec, 3))


def test_perturbing_a_recorded_image_starts_from_its_recorded_states(digits_run):
    _, out = digits_run
    with open_recording(out) as rec:
        live = load_image_model(rec)
        effect = perturb_recorded_image(live, rec, 2, edits=[Edit("conv1", "replace", 0.0, positions=[0, 1])])
        np.testing.assert_allclose(effect.clean["conv2"], rec.item_states("conv2", 2), atol=1e-5)
        assert effect.outside("conv2") == 0 and effect.changed("conv1").sum() <= 2
        occluded = perturb_recorded_image(live, rec, 2, occlude=((0, 0, 4, 8), "mean"))
        assert occluded.changed("conv0").any() and not occluded.changed("conv0")[-8:].any()  # last row: far away


def test_a_changed_dataset_or_a_missing_checkpoint_is_refused_in_words(digits_run, tmp_path):
    ckpt, out = digits_run
    with open_recording(out) as rec:
        live = load_image_model(rec)
        with pytest.raises(PerturbError, match="image 12 does not exist"):
            check_item(live, rec, 12)
        original = live.dataset
        live.dataset = type("Flipped", (), {"__getitem__": lambda s, i: _flipped(original[i]),
                                            "__len__": lambda s: len(original)})()
        with pytest.raises(PerturbError, match="differs from the recording"):
            check_item(live, rec, 0)
        with pytest.raises(CheckpointProblem, match="not found") as caught:
            load_image_model(rec, tmp_path / "nowhere.pt")
        assert caught.value.kind == "missing"
    moved = tmp_path / "moved.h5"
    shutil.copy(out, moved)  # the checkpoint is not beside the copy, but its stored path still holds
    other = tmp_path / "other.pt"
    assert main(["train", "cnn", "--dataset", "digits", "--steps", "2", "--set", "hidden_size=4",
                 "--set", "num_layers=3", "-o", str(other), "--quiet"]) == 0
    with open_recording(moved) as rec:
        with pytest.raises(CheckpointProblem, match="another model") as caught:
            load_image_model(rec, other)
        assert caught.value.kind == "mismatch"


def test_a_recording_of_another_kind_is_refused(tmp_path):
    from lstmviz.recording import RecordingWriter

    path = tmp_path / "seq.h5"
    with RecordingWriter(path, vocab=["a", "b"]) as writer:
        writer.add_tap("h", 2)
        writer.append_item(np.array([0, 1]), {"h": np.zeros((2, 2), np.float32)})
    with open_recording(path) as rec:
        with pytest.raises(PerturbError, match="not the pixels of an image"):
            load_image_model(rec)


def _flipped(item):
    import dataclasses

    return dataclasses.replace(item, image=np.ascontiguousarray(item.image[:, ::-1]))


def test_an_attack_on_a_recorded_image_is_an_effect_of_its_adversarial_input(digits_run):
    from lstmviz.perturb.image_live import attack_recorded_image

    _, out = digits_run
    with open_recording(out) as rec:
        live = load_image_model(rec)
        effect = attack_recorded_image(live, rec, 1, method="pgd-l2", eps=2.0)
        attack = effect.extra["attack"]
        np.testing.assert_allclose(effect.image_edited, attack.adversarial, atol=1e-6)
        np.testing.assert_allclose(effect.image_edited - effect.image_clean, attack.r, atol=1e-6)
        assert effect.prediction_clean == attack.clean_prediction
        assert effect.prediction_edited == attack.adversarial_prediction
        assert attack.flipped == (effect.prediction_edited != effect.prediction_clean)
        changed = np.any(attack.r != 0, axis=0)
        assert changed.any() and effect.changed("conv0").any()
        assert effect.outside("conv0") == 0 and effect.outside("conv2") == 0
        with pytest.raises(PerturbError, match="unknown attack"):
            attack_recorded_image(live, rec, 1, method="fgsm")
