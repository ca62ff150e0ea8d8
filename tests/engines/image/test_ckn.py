"""ckn: the Nyström kernel map is exact on the anchors; exact shift and rot90 invariance where the theory
says so (float64); the docstring's equations, axes, taps and the k-means anchors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lstmviz.engines.families.image.api import cell_box
from lstmviz.engines.spec import ConfigError
from lstmviz.engines.vision.ckn import (build, exp_kernel, gaussian_filter, inverse_sqrt, nystrom_map,
                                        spherical_kmeans)
from lstmviz.hooks import HookScope, find_taps

D = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _separated_anchors(p, d, seed):
    """``p`` unit vectors in R^d with pairwise cosines well below 1 (orthonormal mixed with a little noise)."""
    g = _gen(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=D))
    z = q[:p] + 0.3 * torch.randn(p, d, generator=g, dtype=D) / d ** 0.5
    return F.normalize(z, dim=1)


def taps_of(model, x):
    out = {}
    with HookScope() as hooks, torch.no_grad():
        for tap in find_taps(model).values():
            hooks.read(tap, lambda module, args, kwargs, value: out.__setitem__(module.name, value.clone()))
        logits = model(x)
    return logits, out


# ------------------------------------------------------------------------------------------- Nyström map
@pytest.mark.parametrize("alpha", [1.0, 4.0])
def test_nystrom_map_reproduces_the_kernel_on_scaled_anchors(alpha):
    z = _separated_anchors(6, 12, seed=1)
    a = torch.tensor([0.5, 1.0, 2.0, 3.0, 0.7, 1.3], dtype=D)
    psi = nystrom_map(a[:, None] * z, z, alpha)
    gram = psi @ psi.T
    expected = a[:, None] * a[None, :] * exp_kernel(z @ z.T, alpha)
    torch.testing.assert_close(gram, expected, rtol=0, atol=1e-10)
    # ... and only on the anchors' span: a random patch's map has a smaller norm than its kernel norm ‖u‖
    u = torch.randn(50, 12, generator=_gen(2), dtype=D)
    norms = nystrom_map(u, z, alpha).norm(dim=1)
    assert (norms <= u.norm(dim=1) + 1e-12).all() and (norms < 0.999 * u.norm(dim=1)).any()


def test_inverse_sqrt_is_the_inverse_square_root():
    z = _separated_anchors(5, 9, seed=3)
    k = exp_kernel(z @ z.T, 2.0)
    m = inverse_sqrt(k)
    torch.testing.assert_close(m @ k @ m, torch.eye(5, dtype=D), rtol=0, atol=1e-10)


def test_the_convolutional_kernel_map_is_the_nystrom_map_of_every_patch():
    torch.manual_seed(0)
    model = build(2, 7, 7, 3, hidden_size=5, num_layers=2, patch_size=3).double().eval()
    x = torch.rand(2, 2, 7, 7, dtype=D)
    layer = model.layers[0]
    psi, norm = layer.kernel_map(x)
    ref = nystrom_map(layer.patches(x), layer.unit_anchors().flatten(1), layer.alpha)
    torch.testing.assert_close(psi.permute(0, 2, 3, 1).reshape(-1, 5), ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(norm.flatten(), layer.patches(x).norm(dim=1), rtol=0, atol=1e-12)


def test_the_layer_is_exact_on_an_image_whose_centre_patch_is_an_anchor():
    """Through the convolutions: the centre cell's map of ``a z_i`` and ``b z_j`` gives ``a b κ(z_iᵀ z_j)``."""
    torch.manual_seed(0)
    model = build(2, 3, 3, 3, hidden_size=4, num_layers=1, patch_size=3, subsampling=1).double().eval()
    layer = model.layers[0]
    with torch.no_grad():
        layer.anchors.copy_(_separated_anchors(4, 18, seed=4).view_as(layer.anchors))
    z = layer.unit_anchors()
    images = torch.stack([1.5 * z[0], 0.5 * z[2], 2.0 * z[3]])  # each 3x3 image is its own centre patch
    psi = layer.kernel_map(images)[0][:, :, 1, 1]
    zf = z.flatten(1)[[0, 2, 3]]
    scale = torch.tensor([1.5, 0.5, 2.0], dtype=D)
    torch.testing.assert_close(psi @ psi.T, scale[:, None] * scale * exp_kernel(zf @ zf.T, layer.alpha),
                               rtol=0, atol=1e-10)


# ----------------------------------------------------------------------------------- exact invariances
def _shifted(x, dy, dx):
    return torch.roll(x, (dy, dx), (-2, -1))


def test_circular_padding_makes_every_layer_equivariant_and_global_pooling_invariant_to_shifts():
    torch.manual_seed(1)
    x = torch.rand(2, 1, 16, 16, dtype=D)
    # subsampling 2 per layer: a shift by 4 pixels shifts layer 1's map by 2 cells and layer 2's by 1, exactly
    model = build(1, 16, 16, 3, hidden_size=6, num_layers=2, padding="circular", readout="mean").double().eval()
    a, b = model.representations(x), model.representations(_shifted(x, 4, -4))
    torch.testing.assert_close(b[0], _shifted(a[0], 2, -2), rtol=0, atol=1e-14)
    torch.testing.assert_close(b[1], _shifted(a[1], 1, -1), rtol=0, atol=1e-14)
    torch.testing.assert_close(b[2], a[2], rtol=0, atol=1e-14)
    # a shift that is not a multiple of the subsampling is not exactly invariant (aliasing)
    c = model.representations(_shifted(x, 1, 0))[2]
    assert (c - a[2]).abs().max() > 1e-8
    # without subsampling every integer shift is exactly invariant
    model1 = build(1, 16, 16, 3, hidden_size=6, num_layers=2, padding="circular", readout="mean",
                   subsampling=1).double().eval()
    torch.testing.assert_close(model1.representations(_shifted(x, 3, 5))[2], model1.representations(x)[2],
                               rtol=0, atol=1e-14)
    # zero padding breaks it at the borders
    model0 = build(1, 16, 16, 3, hidden_size=6, num_layers=2, readout="mean", subsampling=1).double().eval()
    assert (model0.representations(_shifted(x, 3, 5))[2] - model0.representations(x)[2]).abs().max() > 1e-6


def _rotate_group_map(m):
    """``ρ roll_r(m, +1)``: the action of rot90 on a map on the roto-translation group (orientation-major)."""
    b, c, h, w = m.shape
    return torch.rot90(torch.roll(m.view(b, 4, c // 4, h, w), 1, dims=1), 1, (-2, -1)).reshape(b, c, h, w)


@pytest.mark.parametrize("size,layers", [(9, 2), (17, 3)])
def test_rot90_group_layers_are_equivariant_and_the_group_pooled_representation_invariant(size, layers):
    torch.manual_seed(2)
    model = build(2, size, size, 3, hidden_size=5, num_layers=layers, group="rot90", readout="mean",
                  pool_sigma=1.0, subsampling=2).double().eval()
    x = torch.rand(3, 2, size, size, dtype=D)
    logits, taps = taps_of(model, x)
    rlogits, rtaps = taps_of(model, torch.rot90(x, 1, (-2, -1)))
    for i in range(layers):
        for name in (f"kernel{i}", f"pooled{i}"):
            torch.testing.assert_close(rtaps[name], _rotate_group_map(taps[name]), rtol=0, atol=1e-12)
        torch.testing.assert_close(rtaps[f"norm{i}"], torch.rot90(taps[f"norm{i}"], 1, (-2, -1)), rtol=0, atol=1e-12)
    torch.testing.assert_close(rtaps["features"], taps["features"], rtol=0, atol=1e-12)
    torch.testing.assert_close(rlogits, logits, rtol=0, atol=1e-12)
    assert taps[f"kernel{layers - 1}"].shape[1] == 4 * 5


def test_without_the_group_the_representation_is_not_rotation_invariant():
    torch.manual_seed(2)
    model = build(2, 9, 9, 3, hidden_size=5, num_layers=2, group="none", readout="mean").double().eval()
    x = torch.rand(3, 2, 9, 9, dtype=D)
    a, b = model.representations(x)[-1], model.representations(torch.rot90(x, 1, (-2, -1)))[-1]
    assert (a - b).abs().max() > 1e-4 * a.abs().max()


# ----------------------------------------------------------------------- equations, pooling, axes, taps
def test_forward_is_the_docstrings_equations():
    torch.manual_seed(3)
    model = build(1, 8, 8, 4, hidden_size=4, num_layers=2, pool_sigma=1.0, subsampling=2).double().eval()
    x = torch.rand(2, 1, 8, 8, dtype=D)
    logits, taps = taps_of(model, x)
    h = x
    for i, layer in enumerate(model.layers):
        hp = F.pad(h, (1, 1, 1, 1))
        u = F.unfold(hp, 3).transpose(1, 2)  # [B, HW, d]
        n = h.shape[-1]
        psi = nystrom_map(u.reshape(-1, u.shape[-1]), layer.unit_anchors().flatten(1), layer.alpha)
        psi = psi.view(2, n, n, -1).permute(0, 3, 1, 2)
        torch.testing.assert_close(taps[f"kernel{i}"], psi, rtol=0, atol=1e-12)
        g = gaussian_filter(1.0, D)
        assert g.shape == (7, 7) and abs(float(g.sum()) - 1) < 1e-12  # radius ⌈3σ⌉ = 3
        pooled = F.conv2d(F.pad(psi, (3, 3, 3, 3)), g.expand(4, 1, 7, 7), groups=4)[..., ::2, ::2]
        torch.testing.assert_close(taps[f"pooled{i}"], pooled, rtol=0, atol=1e-12)
        h = pooled
    assert taps["pooled1"].shape == (2, 4, 2, 2)
    torch.testing.assert_close(taps["features"], h.flatten(1))
    torch.testing.assert_close(logits, h.flatten(1) @ model.head.weight.T + model.head.bias)  # μ = 0, s = 1
    with torch.no_grad():
        model.feature_mean.normal_()
        model.feature_scale.fill_(2.5)
        torch.testing.assert_close(model(x), (h.flatten(1) - model.feature_mean) / 2.5 @ model.head.weight.T
                                   + model.head.bias)


def test_a_pixel_outside_a_cells_box_does_not_change_it():
    torch.manual_seed(4)
    model = build(1, 16, 16, 3, hidden_size=3, num_layers=2, pool_sigma=0.7).double().eval()
    axes = model.image_axes(16, 16)
    assert axes["kernel0"].geometry.receptive_field == (3, 3)
    # 3 + (5 - 1) = 7, then layer 1: + 2 * 2 = 11, + 4 * 2 = 19 (pool radius ⌈2.1⌉ = 3: 7x7 filter)
    assert axes["pooled0"].geometry.receptive_field == (9, 9) and axes["pooled0"].geometry.stride == (2, 2)
    assert axes["pooled1"].size.height == 4 and axes["pooled1"].geometry.stride == (4, 4)
    for name, (y, xx) in (("kernel1", (3, 4)), ("pooled1", (1, 2))):
        x = torch.rand(1, 1, 16, 16, dtype=D, requires_grad=True)
        taps = {}
        with HookScope() as hooks:
            for tap in find_taps(model).values():
                hooks.read(tap, lambda module, args, kwargs, value: taps.__setitem__(module.name, value))
            model(x)
        taps[name][0, :, y, xx].sum().backward()
        support = (x.grad[0, 0] != 0).nonzero()
        y0, x0, y1, x1 = cell_box(axes[name], y, xx)
        assert support[:, 0].min() >= y0 and support[:, 0].max() < y1, name
        assert support[:, 1].min() >= x0 and support[:, 1].max() < x1, name
        lo, hi = max(y0, 0), min(y1, 16)  # the box is not too large: the support reaches its clipped edges
        assert support[:, 0].min() < lo + 1 and support[:, 0].max() >= hi - 1, name


# ---------------------------------------------------------------------------------------------- anchors
def test_spherical_kmeans_recovers_well_separated_directions():
    z = _separated_anchors(4, 10, seed=5)
    g = _gen(6)
    points = z.repeat(50, 1) + 0.01 * torch.randn(200, 10, generator=g, dtype=D)
    centres = spherical_kmeans(F.normalize(points, dim=1), 4, generator=_gen(7))
    cos = centres @ z.T
    assert torch.allclose(centres.norm(dim=1), torch.ones(4, dtype=D))
    assert (cos.max(dim=0).values > 0.999).all()  # every direction has a centre on it


def test_anchors_are_fitted_on_the_first_training_batch_and_then_kept():
    torch.manual_seed(5)
    model = build(1, 8, 8, 3, hidden_size=12, num_layers=2).double()
    x = torch.zeros(6, 1, 8, 8, dtype=D)
    for i in range(6):
        x[i, 0, 1 + i, 2 + i % 3] = 1.0  # single pixels: the non-empty patches are the 9 one-hot shapes
    before = [layer.anchors.detach().clone() for layer in model.layers]
    model.eval()(x)
    assert not bool(model.anchors_fitted)  # evaluation never fits
    model.train()(x)
    assert bool(model.anchors_fitted)
    after = [layer.anchors.detach().clone() for layer in model.layers]
    assert all(not torch.equal(a, b) for a, b in zip(before, after))
    # more anchors than distinct non-empty patch shapes: every anchor is one of the normalised patches
    layer = model.layers[0]
    u = layer.patches(x)
    u = F.normalize(u[u.norm(dim=1) > 0], dim=1)
    assert ((layer.anchors.flatten(1) @ u.T).max(dim=1).values > 1 - 1e-9).all()
    phi = model.representations(x)[-1]
    torch.testing.assert_close(model.feature_mean, phi.mean(0))  # the classifier's centring and scale
    torch.testing.assert_close(model.feature_scale, (phi - phi.mean(0)).pow(2).sum(1).mean().sqrt())
    model(torch.rand(6, 1, 8, 8, dtype=D))
    assert all(torch.equal(a, layer.anchors) for a, layer in zip(after, model.layers))  # fitted once


def test_anchors_are_fixed_unless_train_anchors():
    x = torch.rand(4, 1, 8, 8)
    for train_anchors in (False, True):
        torch.manual_seed(0)
        model = build(1, 8, 8, 3, hidden_size=4, num_layers=2, train_anchors=train_anchors).eval()
        model(x).sum().backward()
        grads = [layer.anchors.grad for layer in model.layers]
        if train_anchors:
            assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)
        else:
            assert all(g is None for g in grads) and model.head.weight.grad is not None


@pytest.mark.parametrize("key,value", [("patch_size", 2), ("group", "rot45"), ("padding", "reflect"),
                                       ("readout", "max"), ("pool_sigma", -1.0), ("subsampling", 0),
                                       ("train_anchors", "no")])
def test_bad_configs_are_refused_in_words(key, value):
    with pytest.raises(ConfigError, match=key):
        build(1, 8, 8, 3, **{key: value})
