"""Model switches in the image perturbation (issue 17): drop a modality (hemis), force a branch
(colorization-codec), prune edges (cnmm). The edited run equals the model run directly under that setting, the
model is restored after, every cell counts as inside the region, and bad settings are refused in one sentence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmviz.engines import registry
from lstmviz.engines.families.image.contract import CHANNELS, HEIGHT, WIDTH, tiny_model
from lstmviz.perturb import PerturbError
from lstmviz.perturb.image import model_switches, perturb_image


def _image(seed=0):
    return np.random.default_rng(seed).random((CHANNELS, HEIGHT, WIDTH)).astype(np.float32)


def _direct(model, image):
    with torch.no_grad():
        return model(torch.from_numpy(image)[None].double())[0].float().numpy()


def test_dropping_a_modality_is_hemis_without_it_and_the_model_is_restored():
    model, _ = tiny_model(registry.get("hemis"), "segmentation")
    assert [s.name for s in model_switches(model)] == [f"modality{k}" for k in range(CHANNELS)]
    image = _image()
    effect = perturb_image(model, image, switches={"modality1": "off"})
    assert model.available is None
    model.available = (True, False, True)
    expected = _direct(model, image)
    model.available = None
    np.testing.assert_allclose(effect.logits_edited, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(effect.logits_clean, _direct(model, image), rtol=1e-6, atol=1e-6)
    assert not np.any(effect.edited["backend_1"]) and effect.changed("backend_1").any()  # dropped: never run
    assert not effect.changed("backend_0").any()
    for tap in effect.map_taps:
        assert effect.region(tap).all() and effect.outside(tap) == 0
    assert effect.extra["switches"] == {"modality1": "off"} and "modality1=off" in effect.described
    with pytest.raises(PerturbError, match="at least one modality"):
        perturb_image(model, image, switches={f"modality{k}": "off" for k in range(CHANNELS)})
    assert model.available is None


def test_forcing_a_branch_outputs_that_hypothesis_and_restores_the_indices():
    model, _ = tiny_model(registry.get("colorization-codec"), "regression")
    image = _image(1)
    effect = perturb_image(model, image, switches={"branch": "2"})
    assert model.indices is None
    with torch.no_grad():
        hyp = model.hypotheses(torch.from_numpy(image)[None].double())[0, 2].float().numpy()
    np.testing.assert_allclose(effect.logits_edited, hyp, rtol=1e-6, atol=1e-6)
    assert not np.allclose(effect.logits_clean, effect.logits_edited)  # the mean of the hypotheses before
    with pytest.raises(PerturbError, match="switch 'branch' takes mean, 0, 1"):
        perturb_image(model, image, switches={"branch": "9"})


def test_pruning_edges_equals_the_pruned_model_and_restores_the_live_mask():
    model, _ = tiny_model(registry.get("cnmm"), "class")
    with torch.no_grad():
        model.gate_param.copy_(torch.linspace(-1.0, 1.0, len(model.gate_param)))  # spread the edge probabilities
    live = model.live.clone()
    threshold = float(model.edge_probs().detach().median())
    choice = min((c for c in model.PRUNE_CHOICES if c != "none"), key=lambda c: abs(float(c) - threshold))
    image = _image(2)
    effect = perturb_image(model, image, switches={"prune": choice})
    assert torch.equal(model.live, live)
    model.prune(float(choice))
    expected = _direct(model, image)
    model.unprune()
    np.testing.assert_allclose(effect.logits_edited, expected, rtol=1e-6, atol=1e-6)
    assert not np.allclose(effect.logits_clean, effect.logits_edited)
    with pytest.raises(PerturbError, match="removes every edge"):
        perturb_image(model, image, switches={"prune": "0.99"})
    assert torch.equal(model.live, live)


def test_unknown_switches_and_models_without_switches_are_refused():
    model, _ = tiny_model(registry.get("hemis"), "segmentation")
    with pytest.raises(PerturbError, match="no switch 'branch'; it has modality0"):
        perturb_image(model, _image(), switches={"branch": "1"})
    cnn, _ = tiny_model(registry.get("cnn"), "class")
    assert model_switches(cnn) == []
    with pytest.raises(PerturbError, match="has no switches"):
        perturb_image(cnn, _image(), switches={"prune": "0.5"})
