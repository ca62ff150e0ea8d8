"""Szegedy et al.'s tools run on every registered image engine (the vision issue asks for it): PGD and the box
L-BFGS attack give an image in the box whose reported prediction is the model's own on it, with a Δ for every
tap; units vs random directions ranks the images of a recording of that engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmviz.analysis.image_directions import purity_units_vs_random
from lstmviz.engines import registry
from lstmviz.engines.families.image import SampleImages
from lstmviz.engines.families.image.contract import CHANNELS, HEIGHT, WIDTH, data_for, supported_tasks, tiny_model
from lstmviz.hooks import find_taps
from lstmviz.perturb.image_attack import lbfgs_image_attack, pgd_image_attack
from lstmviz.recording.image_recorder import record_images
from lstmviz.recording.reader import open_recording

CLASS_ENGINES = sorted(name for name, spec in registry.all().items()
                       if spec.family == "image" and "class" in supported_tasks(spec))


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_image_engine_builds_for_the_class_task():
    """...except the dense-prediction engines, which build only for segmentation or regression (the attacks
    refuse them)."""
    dense = {name for name, spec in registry.all().items()
             if spec.family == "image" and supported_tasks(spec) in (["segmentation"], ["regression"])}
    assert "seg-cnn" in dense and "depth-sr" in dense and "cnn" in CLASS_ENGINES
    assert set(CLASS_ENGINES) | dense == {name for name, spec in registry.all().items() if spec.family == "image"}


def _checked(model, attack, taps, image):
    adversarial = torch.from_numpy(attack.adversarial)
    assert adversarial.min() >= 0.0 and adversarial.max() <= 1.0
    np.testing.assert_allclose(attack.adversarial - image, attack.r, atol=1e-12)
    with torch.no_grad():
        z = model(adversarial[None].to(torch.float64))[0]
    assert attack.adversarial_prediction == int(z.argmax())
    assert attack.flipped == (attack.adversarial_prediction != attack.clean_prediction)
    assert set(attack.deltas) == set(taps)
    for name, delta in attack.deltas.items():
        assert delta.ndim == 2 and np.isfinite(delta).all(), name


@pytest.mark.parametrize("engine", CLASS_ENGINES)
def test_attacks_run_on_every_image_engine(engine):
    spec = registry.get(engine)
    model, _ = tiny_model(spec, "class")
    taps = list(find_taps(model))
    image = np.random.default_rng(3).uniform(0.2, 0.8, (CHANNELS, HEIGHT, WIDTH))
    pgd = pgd_image_attack(model, image, eps=0.5, norm="l2", steps=10, taps=taps)
    assert pgd.l2 <= 0.5 + 1e-9
    _checked(model, pgd, taps, image)
    lbfgs = lbfgs_image_attack(model, image, c_grid=(0.01, 1.0), bisect_steps=2, maxiter=15, taps=taps)
    _checked(model, lbfgs, taps, image)


@pytest.mark.parametrize("engine", CLASS_ENGINES)
def test_units_vs_random_directions_run_on_a_recording_of_every_image_engine(engine, tmp_path):
    spec = registry.get(engine)
    model, _ = tiny_model(spec, "class")
    path = record_images(model, SampleImages(data_for("class"), images=6, seed=4), tmp_path / "r.h5")
    with open_recording(path) as rec:
        for tap in (t for t in rec.taps if t != "input"):
            result = purity_units_vs_random(rec, tap, "target", n=3, k=2)
            assert len(result.unit_purity) == min(3, rec.taps[tap].units) and len(result.random_purity) == 3
            assert np.all((result.unit_purity >= 0.5) & (result.unit_purity <= 1.0)), tap  # k = 2: 1/2 or 1
            assert np.all((result.random_purity >= 0.5) & (result.random_purity <= 1.0)), tap
