"""bnn-prior (Vladimirova et al.): the unit priors of a Gaussian-weight ReLU network against their closed forms
(width 1: every absolute moment; any width: second and fourth moments, kurtosis 3 (1 + 5/n)^(l-1)), the
direction of the claim (heavier tails with depth, lighter with width), the forward's equations, the draw
fixed by the seed, and training that leaves the hidden layers at their prior draw."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lstmviz.engines.families.image import SampleImages, ImageData
from lstmviz.engines.spec import ConfigError
from lstmviz.engines.vision.bnn_prior import (
    BNNPrior, build, excess_kurtosis, first_layer_var, kurtosis_closed_form, moment_slope, moments_closed_form,
    prior_unit_samples, prior_weights, tail_statistics, weibull_tail_theta, width1_abs_moment, width1_moment_slope,
)
from lstmviz.hooks import HookScope, find_taps


def an_image(seed=0, channels=1, size=8):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((channels, size, size), generator=g, dtype=torch.float64)


def taps_of(model, x):
    out = {}
    with HookScope() as hooks, torch.no_grad():
        for tap in find_taps(model).values():
            hooks.read(tap, lambda module, args, kwargs, value: out.__setitem__(module.name, value.clone()))
        logits = model(x)
    return logits, out


@pytest.mark.parametrize("method", ["weights", "rows"])
def test_width_one_chain_has_the_closed_form_absolute_moments(method):
    """Width 1: E|h^(l)|^k = s1^k σ^{k(l-1)} (E|g|^k)^l / 2^{l-1}; Monte Carlo within 4 exact standard errors."""
    model = build(1, 8, 8, 3, hidden_size=1, num_layers=3, prior_var=1.7)
    x = an_image(1)
    draws = 200_000
    samples = prior_unit_samples(model, x, draws, seed=11, method=method)
    assert list(samples) == ["pre0", "pre1", "pre2", "output"]
    s1 = first_layer_var(model, x)
    assert s1 == pytest.approx(1.7 * float((x ** 2).mean()))
    for layer, (name, values) in enumerate(samples.items(), start=1):
        assert values.shape == ((draws, 1) if name != "output" else (draws, 3))
        a = values.abs().numpy().reshape(-1) if name != "output" else values[:, 0].abs().numpy()
        for k in (1, 2, 3, 4) if layer <= 3 else (1, 2):
            exact = width1_abs_moment(k, layer, prior_var=1.7, first_var=s1)
            se = math.sqrt((width1_abs_moment(2 * k, layer, prior_var=1.7, first_var=s1) - exact ** 2) / len(a))
            assert abs(np.mean(a ** k) - exact) < 4 * se, (name, k, np.mean(a ** k), exact, se)


def test_the_closed_form_width_one_moments_match_the_reference_numbers():
    # σ = 1, x = 1: E|h^(l)|^k = (E|g|^k)^l / 2^(l-1); E g² = 1, E g⁴ = 3 -> fourth moments 3, 9/2, 27/4
    assert [width1_abs_moment(4, layer) for layer in (1, 2, 3)] == pytest.approx([3, 4.5, 6.75])
    assert width1_abs_moment(1, 1) == pytest.approx(math.sqrt(2 / math.pi))
    # the kurtosis of the width-1 chain, 3 · 6^(l-1), is the general width-n formula at n = 1
    for layer in (1, 2, 3, 4):
        assert width1_abs_moment(4, layer) / width1_abs_moment(2, layer) ** 2 == pytest.approx(
            kurtosis_closed_form(layer, 1))
    # the log-moment slope tends to the tail parameter l/2 at high orders
    for layer in (1, 2, 3, 4):
        assert abs(width1_moment_slope(layer, ks=range(400, 801, 50)) - layer / 2) < 0.02 * layer


@pytest.mark.parametrize("width,method", [(3, "weights"), (3, "rows"), (10, "rows")])
def test_finite_width_second_and_fourth_moments_and_kurtosis(width, method):
    """E h² = (σ²/2)^{l-1} s1², E h⁴ = 3 Q_l with Q_{l+1} = σ⁴ (n+5)/(4n) Q_l: per-draw unit means within
    4.5 standard errors (the draws are independent; units of one draw are not)."""
    model = build(1, 8, 8, 2, hidden_size=width, num_layers=3, prior_var=2.0)
    x = an_image(2)
    s1 = first_layer_var(model, x)
    draws = 60_000 if method == "weights" else 150_000
    samples = prior_unit_samples(model, x, draws, seed=5, method=method, include_output=False)
    for layer, values in enumerate(samples.values(), start=1):
        v = values.numpy()
        m2, m4 = moments_closed_form(layer, width, prior_var=2.0, first_var=s1)
        for power, exact in ((2, m2), (4, m4)):
            per_draw = (v ** power).mean(1)
            se = per_draw.std(ddof=1) / math.sqrt(len(per_draw))
            assert abs(per_draw.mean() - exact) < 4.5 * se, (layer, power, per_draw.mean(), exact, se)
        if layer <= 2:
            assert m4 / m2 ** 2 == pytest.approx(kurtosis_closed_form(layer, width))


def test_tails_grow_heavier_with_depth_and_lighter_with_width():
    x = an_image(3)
    excess = {}
    for width, draws in ((1, 40_000), (10, 20_000), (100, 10_000)):
        model = build(1, 8, 8, 2, hidden_size=width, num_layers=4)
        samples = prior_unit_samples(model, x, draws, seed=1, method="rows", include_output=False)
        excess[width] = [excess_kurtosis(v.numpy())[0] for v in samples.values()]
        assert abs(excess[width][0]) < 0.1  # layer 1 is Gaussian for a fixed input
        assert all(b > a for a, b in zip(excess[width], excess[width][1:])), (width, excess[width])
        if width == 1:
            slopes = [moment_slope(v.numpy()) for v in samples.values()]
            assert all(b > a for a, b in zip(slopes, slopes[1:])), slopes
    for layer in (1, 2, 3):
        assert excess[1][layer] > excess[10][layer] > excess[100][layer], layer


def test_tail_estimators_on_known_laws():
    g = np.random.default_rng(0).standard_normal((3, 200_000))
    assert abs(excess_kurtosis(g[0])[0]) < 0.05
    lap = g[0] * g[1]  # a product of two Gaussians: sub-exponential (θ = 1), excess kurtosis 6
    assert excess_kurtosis(lap)[0] == pytest.approx(6, abs=0.6)
    thetas = [weibull_tail_theta(g[0]), weibull_tail_theta(lap), weibull_tail_theta(g[0] * g[1] * g[2])]
    assert thetas[0] < thetas[1] < thetas[2]
    assert 0.45 < thetas[0] < 0.75  # the Weibull plot of a Gaussian at moderate quantiles
    assert moment_slope(g[0]) == pytest.approx(width1_moment_slope(1), abs=0.03)
    rows = tail_statistics({"a": torch.from_numpy(g[0][:, None]), "b": torch.from_numpy(lap[:, None])})
    assert [r["layer"] for r in rows] == [1, 2] and [r["theta"] for r in rows] == [0.5, 1.0]


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_the_sampler_computes_the_network_of_each_drawn_weight_set(arch):
    """prior_unit_samples' draws are the model's forward with prior_weights' weights loaded (grouped conv
    and batched matmul against the module), and a batch of images sees the same draws as one image."""
    model = build(2, 6, 6, 3, hidden_size=4, num_layers=3, arch=arch, prior_seed=4).double().eval()
    x = torch.stack([an_image(5, 2, 6), an_image(6, 2, 6)])
    samples = prior_unit_samples(model, x, 3, seed=9)
    single = prior_unit_samples(model, x[1], 3, seed=9)
    weights = prior_weights(model, 3, seed=9)
    for d in range(3):
        with torch.no_grad():
            for p, w in zip([*model.weights, model.head.weight], weights):
                p.copy_(w[d])
        _, taps = taps_of(model, x)
        for i in range(3):
            torch.testing.assert_close(samples[f"pre{i}"][d], taps[f"pre{i}"].flatten(1))
            torch.testing.assert_close(single[f"pre{i}"][d], taps[f"pre{i}"][1].flatten())
        last = taps["pre2"].relu()
        feats = last if arch == "mlp" else last.mean(dim=(2, 3))
        torch.testing.assert_close(samples["output"][d], feats @ weights[-1][d].T)


def test_cnn_first_layer_variance_is_the_patch_energy():
    model = build(1, 5, 5, 2, hidden_size=2, num_layers=1, arch="cnn")
    x = an_image(7, 1, 5)
    v = prior_unit_samples(model, x, 40_000, seed=2, include_output=False)["pre0"].numpy().reshape(-1, 2, 5, 5)
    patch = F.unfold(x[None], 3, padding=1)[0].square().sum(0).reshape(5, 5).numpy()  # Σ x² over each 3x3 patch
    exact = 2.0 / 9 * patch
    got = (v ** 2).mean(0)
    se = np.sqrt(2 * exact ** 2 / len(v))  # Var(h²) = 2 var² for a Gaussian
    assert np.all(np.abs(got - exact) < 4.5 * se)


def test_forward_is_the_docstrings_equations_and_the_weights_are_the_seeded_draw():
    model = build(1, 8, 8, 4, hidden_size=5, num_layers=3, prior_seed=2, draw=3).double().eval()
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    logits, taps = taps_of(model, x)
    a = x.flatten(1)
    for i, w in enumerate(model.weights):
        h = a @ w.T
        torch.testing.assert_close(taps[f"pre{i}"], h)
        a = h.relu()
    u = a / a.square().mean(1, keepdim=True).sqrt()
    torch.testing.assert_close(logits, u @ model.head.weight.T + model.head.bias)
    assert torch.equal(model.head.bias, torch.zeros(4, dtype=torch.float64))
    # the draw is a function of (prior_seed, draw) only, not of the global RNG
    torch.manual_seed(123)
    again = build(1, 8, 8, 4, hidden_size=5, num_layers=3, prior_seed=2, draw=3).double()
    other = build(1, 8, 8, 4, hidden_size=5, num_layers=3, prior_seed=2, draw=4)
    assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), again.state_dict().values()))
    assert not torch.equal(model.weights[0], other.weights[0].double())
    other.resample(3)  # float32, like the model before .double()
    assert all(torch.equal(p, q.double()) for p, q in zip(model.state_dict().values(), other.state_dict().values()))


def test_weights_have_the_prior_variance():
    model = build(1, 16, 16, 10, hidden_size=256, num_layers=3, prior_var=2.0)
    for w in model.weights:
        fan_in = w.shape[1]
        var = float(w.double().var())
        se = 2.0 / fan_in * math.sqrt(2 / w.numel())
        assert abs(var - 2.0 / fan_in) < 4 * se and abs(float(w.double().mean())) < 4 * math.sqrt(2 / fan_in / w.numel())


def test_training_fits_the_head_and_keeps_the_hidden_layers_at_the_prior_draw(tmp_path):
    from lstmviz.engines.checkpoint import load_checkpoint
    from lstmviz.engines.training import train

    data = ImageData(channels=1, height=8, width=8, num_classes=3)
    images = SampleImages(data, images=24, seed=1)
    for train_hidden in (False, True):
        out = tmp_path / f"m{train_hidden}.pt"
        train("bnn-prior", images, images, out=out, steps=5, batch_size=8, eval_every=0,
              config={"hidden_size": 6, "num_layers": 2, "train_hidden": train_hidden})
        model, meta = load_checkpoint(out)
        prior = build(1, 8, 8, 3, hidden_size=6, num_layers=2)
        same = [torch.equal(p, q) for p, q in zip(model.weights, prior.weights)]
        assert same == [not train_hidden] * 2
        assert not torch.equal(model.head.weight, prior.head.weight)


def test_bad_input_and_config_are_refused_in_words():
    model = build(1, 8, 8, 2, hidden_size=3, num_layers=2)
    with pytest.raises(ValueError, match="expected an image"):
        prior_unit_samples(model, torch.zeros(2, 8, 8), 10)
    with pytest.raises(ValueError, match="finite"):
        prior_unit_samples(model, torch.full((1, 8, 8), float("nan")), 10)
    with pytest.raises(ValueError, match="one image"):
        prior_unit_samples(model, torch.zeros(2, 1, 8, 8), 10, method="rows")
    cnn = build(1, 8, 8, 2, hidden_size=3, num_layers=2, arch="cnn")
    with pytest.raises(ValueError, match="CNN"):
        prior_unit_samples(cnn, torch.zeros(1, 8, 8), 10, method="rows")
    with pytest.raises(ConfigError, match="arch"):
        build(1, 8, 8, 2, arch="resnet")
    with pytest.raises(ConfigError, match="prior_var"):
        build(1, 8, 8, 2, prior_var=0.0)
    with pytest.raises(ConfigError, match="hidden_size"):
        build(1, 8, 8, 2, hidden_size=0)
    assert isinstance(model, BNNPrior)
