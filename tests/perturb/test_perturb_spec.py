"""Every action and direction of a Perturbation does what spec.py says, and bad requests get one sentence."""

from __future__ import annotations

import numpy as np
import pytest

from lstmviz.perturb import Perturbation, PerturbError, perturb_item, run_item

TAP = "layer1/h"  # the top layer: an edit at step t shows as is in the tap at t


def _edit(live, rec, p, item=0, tap=TAP):
    effect = perturb_item(live, rec, item, [p], taps=[tap])
    return effect.delta[tap], effect


def test_ablate_to_zero_and_to_the_corpus_mean(lstm_live, lstm_rec):
    delta, effect = _edit(lstm_live, lstm_rec, Perturbation(TAP, "ablate", units=(3, 5), positions=range(4, 8)))
    after = effect.edited.states[TAP]
    assert np.all(after[4:8][:, [3, 5]] == 0)
    assert np.all(delta[:4] == 0) and np.any(delta[4:8][:, [3, 5]] != 0)
    mean = lstm_rec.states(TAP).astype(np.float64).mean(0)  # every position of the recording
    _, effect = _edit(lstm_live, lstm_rec, Perturbation(TAP, "ablate", units=(3, 5), positions=(6,), ablate_to="mean"))
    assert np.allclose(effect.edited.states[TAP][6, [3, 5]], mean[[3, 5]], atol=1e-6)
    assert effect.perturbations[0].describe() == "ablate layer1/h units 3,5 at 6 to the mean"


def test_clamp_sets_the_value(lstm_live, lstm_rec):
    _, effect = _edit(lstm_live, lstm_rec, Perturbation("layer0/c", "clamp", units=(1,), positions=(2, 3), value=2.5),
                      tap="layer0/c")
    assert np.all(effect.edited.states["layer0/c"][[2, 3], 1] == 2.5)


def test_add_a_unit_direction_and_a_random_direction_of_the_same_norm(lstm_live, lstm_rec):
    units = (0, 4, 9, 12)
    delta, _ = _edit(lstm_live, lstm_rec, Perturbation(TAP, "add", units=units, positions=(5,), alpha=0.8))
    assert np.allclose(delta[5, list(units)], 0.8 / 2, atol=1e-6)  # 1_U / ||1_U|| = 1/2 on four units
    assert np.all(delta[5, [u for u in range(16) if u not in units]] == 0)
    rand, _ = _edit(lstm_live, lstm_rec, Perturbation(TAP, "add", positions=(5,), alpha=0.8, direction="random",
                                                      seed=7))
    assert np.isclose(np.linalg.norm(rand[5]), 0.8, atol=1e-5)  # same norm, all units
    again, _ = _edit(lstm_live, lstm_rec, Perturbation(TAP, "add", positions=(5,), alpha=0.8, direction="random",
                                                       seed=7))
    other, _ = _edit(lstm_live, lstm_rec, Perturbation(TAP, "add", positions=(5,), alpha=0.8, direction="random",
                                                       seed=8))
    assert np.array_equal(rand, again) and not np.allclose(rand[5], other[5])
    expected = np.random.default_rng(7).standard_normal(16)
    assert np.allclose(rand[5], 0.8 * expected / np.linalg.norm(expected), atol=1e-6)


def test_add_a_given_vector_is_normalised(lstm_live, lstm_rec):
    delta, _ = _edit(lstm_live, lstm_rec, Perturbation(TAP, "add", units=(2, 3), positions=(7,), alpha=2.0,
                                                       direction="vector", vector=(3.0, -4.0)))
    assert np.allclose(delta[7, [2, 3]], [1.2, -1.6], atol=1e-6)


def test_add_the_difference_of_two_class_means(lstm_live, lstm_rec):
    from lstmviz.analysis.probes import probe_labels

    labels = probe_labels(lstm_rec, "token_class")
    names = lstm_rec.annotations["token_class"].labels
    x = lstm_rec.states(TAP).astype(np.float64)
    d = x[labels == names.index("open")].mean(0) - x[labels == names.index("close")].mean(0)
    delta, _ = _edit(lstm_live, lstm_rec, Perturbation(TAP, "add", positions=(9,), alpha=1.5, direction="means",
                                                       means_label="token_class", means_classes=("open", "close")))
    assert np.allclose(delta[9], 1.5 * d / np.linalg.norm(d), atol=1e-5)


def test_add_a_probe_class_direction_in_raw_units(lstm_live, lstm_rec):
    from lstmviz.analysis.probes import fit_probe, probe_labels, split_items
    from lstmviz.analysis.transforms import tap_stats

    info = lstm_rec.annotations["token_class"]
    result = fit_probe(lstm_rec, TAP, probe_labels(lstm_rec, "token_class"), split_items(lstm_rec.n_items),
                       label_names=list(info.labels))
    std = np.asarray(tap_stats(lstm_rec, TAP).std)
    d = result.weights[info.labels.index("digit")] / np.where(std > 0, std, 1)
    delta, _ = _edit(lstm_live, lstm_rec, Perturbation(TAP, "add", positions=(3,), alpha=1.0, direction="probe",
                                                       probe_label="token_class", probe_class="digit"))
    assert np.allclose(delta[3], d / np.linalg.norm(d), atol=1e-5)


def test_patch_copies_the_states_of_another_item(lstm_live, lstm_rec):
    source = run_item(lstm_live, lstm_rec, 2, taps=[TAP]).states[TAP]
    p = Perturbation(TAP, "patch", positions=(5, 6, 7), source_item=2, source_start=10)
    _, effect = _edit(lstm_live, lstm_rec, p)
    assert np.allclose(effect.edited.states[TAP][5:8], source[10:13], atol=1e-6)
    assert not np.allclose(effect.clean.states[TAP][5:8], source[10:13], atol=1e-3)


def test_to_dict_round_trips():
    p = Perturbation(TAP, "add", units=(3, 1), positions=(9, 4, 5), direction="means", means_label="depth",
                     means_classes=("1", "0"), alpha=0.5)
    assert p.positions == (4, 5, 9)
    assert Perturbation.from_dict(p.to_dict()) == p
    assert "plus 0.5 x mean(depth=1) - mean(depth=0)" in p.describe()


@pytest.mark.parametrize("p, words", [
    (Perturbation("layer7/h", "ablate"), "has no tap 'layer7/h'"),
    (Perturbation(TAP, "ablate", units=(16,)), "unit 16 does not exist"),
    (Perturbation(TAP, "add", alpha=float("nan")), "alpha must be a finite number"),
    (Perturbation(TAP, "clamp", value=float("inf")), "clamp value must be a finite number"),
    (Perturbation(TAP, "ablate", positions=(5000,)), "position 5000 is beyond item 0"),
    (Perturbation(TAP, "patch", positions=None, source_item=1, source_start=40), "has another length"),
    (Perturbation(TAP, "patch", positions=(0,), source_item=99), "source item 99 does not exist"),
    (Perturbation(TAP, "add", direction="means", means_label="depth", means_classes=("1", "9")), "has no class '9'"),
    (Perturbation(TAP, "add", direction="probe", probe_label="nope", probe_class="1"), "no annotation 'nope'"),
    (Perturbation(TAP, "add", units=(1, 2), direction="vector", vector=(1.0,)), "the vector has 1 values"),
])
def test_bad_requests_are_one_sentence(lstm_live, lstm_rec, p, words):
    before = lstm_rec.path.stat().st_mtime_ns
    with pytest.raises(PerturbError) as info:
        perturb_item(lstm_live, lstm_rec, 0, [p], taps=())
    assert words in str(info.value) and "\n" not in str(info.value)
    assert lstm_rec.path.stat().st_mtime_ns == before


def test_bad_fields_are_refused_when_made():
    with pytest.raises(PerturbError, match="unknown action"):
        Perturbation(TAP, "explode")
    with pytest.raises(PerturbError, match="units must be whole numbers"):
        Perturbation(TAP, "ablate", units=(-1,))
