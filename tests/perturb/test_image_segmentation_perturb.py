"""Perturbing a segmentation model (seg-cnn): the effect reports the per-pixel prediction change, the geometry
bounds where it shows, the image-level prediction and the attacks are refused in words, and `lstmviz perturb`
on a digits-seg recording writes the number of changed pixels."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from lstmviz.cli import main
from lstmviz.engines.vision.seg_cnn import build
from lstmviz.errors import ExpectedError
from lstmviz.perturb import PerturbError
from lstmviz.perturb.image import perturb_image, probabilities
from lstmviz.perturb.image_attack import lbfgs_image_attack, pgd_image_attack
from lstmviz.perturb.image_live import load_image_model, perturb_recorded_image
from lstmviz.recording import open_recording

K, H, W = 4, 12, 12


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build(1, H, W, K, hidden_size=4, num_layers=2).double().eval()


def test_the_effect_reports_the_per_pixel_prediction_change(model):
    image = np.random.default_rng(1).random((1, H, W)).astype(np.float32)
    effect = perturb_image(model, image, occlude=((0, 0, 3, 3), 1.0))
    edited = image.copy()
    edited[:, :3, :3] = 1.0
    with torch.no_grad():
        z0 = model(torch.from_numpy(image[None]).double())[0].numpy()
        z1 = model(torch.from_numpy(edited[None]).double())[0].numpy()
    assert effect.dense and effect.logits_clean.shape == (K, H, W)
    assert np.array_equal(effect.mask_clean, z0.argmax(0)) and np.array_equal(effect.mask_edited, z1.argmax(0))
    assert effect.pixels_changed() == int((z0.argmax(0) != z1.argmax(0)).sum())
    np.testing.assert_allclose(effect.logit_delta_map(), np.sqrt(((z1 - z0) ** 2).sum(0)), rtol=1e-5, atol=1e-6)
    # the logits change only where their receptive field (two dilated blocks: 7 px) reaches the box
    changed = effect.logit_delta_map() > 0
    assert changed[:3, :3].all() and not changed[7:, :].any() and not changed[:, 7:].any()
    assert all(effect.outside(tap) == 0 for tap in effect.map_taps)
    assert effect.prediction_changed() == (effect.pixels_changed() > 0)
    p = effect.probabilities_clean
    assert p.shape == (K, H, W) and np.allclose(p.sum(0), 1.0)
    np.testing.assert_allclose(p, probabilities(z0, "segmentation"), rtol=1e-5)
    with pytest.raises(PerturbError, match="a class per pixel"):
        effect.prediction_clean


def test_an_image_classifier_effect_has_no_masks():
    from lstmviz.engines.vision.cnn import build as build_cnn

    torch.manual_seed(0)
    cnn = build_cnn(1, 8, 8, 3, hidden_size=2, num_layers=2).eval()
    effect = perturb_image(cnn, np.zeros((1, 8, 8), np.float32), occlude=((0, 0, 2, 2), 1.0))
    assert not effect.dense and effect.prediction_changed() == (effect.prediction_clean != effect.prediction_edited)
    with pytest.raises(PerturbError, match="one class per image"):
        effect.mask_clean


def test_the_attacks_refuse_a_segmentation_model_in_words(model):
    image = np.random.default_rng(2).random((1, H, W))
    for attack in (lambda: lbfgs_image_attack(model, image), lambda: pgd_image_attack(model, image, eps=0.1)):
        with pytest.raises(ExpectedError, match="one class per pixel"):
            attack()


def test_cli_perturb_on_a_digits_seg_recording_counts_changed_pixels(tmp_path, capsys):
    ckpt, rec_path, table = tmp_path / "s.pt", tmp_path / "s.h5", tmp_path / "p.csv"
    assert main(["train", "seg-cnn", "--dataset", "digits-seg", "--steps", "5", "--set", "hidden_size=4",
                 "--set", "num_layers=2", "--dataset-option", "max_images=30", "-o", str(ckpt), "--quiet"]) == 0
    assert main(["record", str(ckpt), "-o", str(rec_path), "--dtype", "float32", "--max-items", "4", "--quiet"]) == 0
    assert main(["perturb", str(rec_path), "--occlude", "0,0,8,8", "--fill", "1", "--items", "1,2",
                 "--out", str(table), "--quiet"]) == 0
    said = capsys.readouterr()
    assert "0 cells changed outside" in said.out + said.err
    rows = list(csv.DictReader(open(table)))
    assert rows and "pixels_changed" in rows[0] and "prediction_clean" not in rows[0]
    with open_recording(rec_path) as rec:
        effect = perturb_recorded_image(load_image_model(rec), rec, 2, occlude=((0, 0, 8, 8), 1.0))
    assert int(next(r for r in rows if r["item"] == "2")["pixels_changed"]) == effect.pixels_changed()
