"""Perturbing a regression model (depth-sr): the effect reports the prediction before / after and |Δ prediction|
per pixel, the stated geometry bounds where changes show (the local CNN and the global refinement), classes,
masks and probabilities and the attacks are refused in words, and `lstmviz perturb` on a depth-synth recording
writes how many pixels changed and by how much at most."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from lstmviz.cli import main
from lstmviz.engines.vision.depth_sr import build
from lstmviz.errors import ExpectedError
from lstmviz.perturb import PerturbError
from lstmviz.perturb.image import perturb_image
from lstmviz.perturb.image_attack import lbfgs_image_attack, pgd_image_attack
from lstmviz.perturb.image_live import load_image_model, perturb_recorded_image
from lstmviz.recording import open_recording

H = W = 32


def depth_model(lam=0.0):
    torch.manual_seed(0)
    m = build(4, H, W, 1, hidden_size=4, num_layers=2, refine_lambda=lam)
    for branch in m.branches:  # a non-trivial residual (the last conv starts at zero)
        torch.nn.init.normal_(branch[-1].weight, std=0.2)
    return m.double().eval()


def image(seed=1):
    from lstmviz.datasets.images.depth import build as build_depth

    return np.array(build_depth("test", images=10, seed=seed)[0].image)


def test_the_effect_reports_the_prediction_before_after_and_its_change_per_pixel():
    model = depth_model()
    x = image()
    effect = perturb_image(model, x, occlude=((0, 0, 4, 4), 1.0))
    edited = x.copy()
    edited[:, :4, :4] = 1.0
    with torch.no_grad():
        y0 = model(torch.from_numpy(x[None]).double())[0].numpy()
        y1 = model(torch.from_numpy(edited[None]).double())[0].numpy()
    assert effect.dense and effect.regression and effect.prediction_map_clean.shape == (1, H, W)
    np.testing.assert_allclose(effect.prediction_map_clean, y0, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(effect.prediction_map_edited, y1, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(effect.logit_delta_map(), np.abs(y1 - y0)[0], rtol=1e-5, atol=1e-6)
    y0f, y1f = y0.astype(np.float32), y1.astype(np.float32)  # the effect holds float32 outputs
    assert effect.pixels_changed() == int((np.abs(y1f - y0f)[0] > 0).sum()) > 0
    changed = effect.logit_delta_map() > 0
    assert changed[:4, :4].any() and not changed[20:, :].any() and not changed[:, 20:].any()  # a local CNN
    assert all(effect.outside(tap) == 0 for tap in effect.map_taps)  # the stated receptive fields bound it
    assert effect.prediction_changed()
    for ask, words in ((lambda: effect.prediction_clean, "values per pixel"), (lambda: effect.mask_clean, "no mask"),
                       (lambda: effect.probabilities_clean, "no probabilities")):
        with pytest.raises(PerturbError, match=words):
            ask()


def test_the_refinement_spreads_a_change_over_the_image_within_its_stated_geometry():
    local, refined = depth_model(0.0), depth_model(4.0)
    x = image()
    box = ((0, 0, 4, 4), 1.0)
    a, b = perturb_image(local, x, occlude=box), perturb_image(refined, x, occlude=box)
    assert (b.logit_delta_map() > 1e-12).sum() > (a.logit_delta_map() > 1e-12).sum()  # a global solve
    assert all(b.outside(tap) == 0 for tap in b.map_taps)
    assert b.region("refined").all()


def test_the_attacks_refuse_a_regression_model_in_words():
    model = depth_model()
    x = image()
    for attack in (lambda: lbfgs_image_attack(model, x), lambda: pgd_image_attack(model, x, eps=0.1)):
        with pytest.raises(ExpectedError, match="values per pixel"):
            attack()


def test_cli_perturb_on_a_depth_synth_recording_counts_changed_pixels(tmp_path, capsys):
    ckpt, rec_path, table = tmp_path / "d.pt", tmp_path / "d.h5", tmp_path / "p.csv"
    assert main(["train", "depth-sr", "--dataset", "depth-synth", "--steps", "3", "--set", "hidden_size=4",
                 "--set", "num_layers=2", "--set", "refine_lambda=1.0", "--dataset-option", "images=20",
                 "-o", str(ckpt), "--quiet"]) == 0
    assert main(["record", str(ckpt), "-o", str(rec_path), "--dtype", "float32", "--max-items", "3", "--quiet"]) == 0
    with open_recording(rec_path) as rec:
        assert rec.annotations["target"].kind == "numeric" and rec.annotations["prediction"].level == "position"
        assert {"edge", "region"} <= set(rec.annotations)
    assert main(["perturb", str(rec_path), "--occlude", "0,0,8,8", "--fill", "1", "--items", "1,2",
                 "--out", str(table), "--quiet"]) == 0
    said = capsys.readouterr()
    assert "0 cells changed outside" in said.out + said.err
    rows = list(csv.DictReader(open(table)))
    assert rows and "pixels_changed" in rows[0] and "max_prediction_change" in rows[0]
    assert "prediction_clean" not in rows[0]
    with open_recording(rec_path) as rec:
        effect = perturb_recorded_image(load_image_model(rec), rec, 2, occlude=((0, 0, 8, 8), 1.0))
    row = next(r for r in rows if r["item"] == "2")
    assert int(row["pixels_changed"]) == effect.pixels_changed()
    assert float(row["max_prediction_change"]) == pytest.approx(effect.logit_delta_map().max(), rel=1e-5)
