"""depth-sr's defining properties (float64): lambda = 0 returns D_cnn exactly; the refinement satisfies
(I + lambda L_w) D = D_cnn to 1e-8; edge preservation with a two-region colour image (sigma_c = 0.05) and blurring
with a constant one; with the residual branches at zero every stage is bicubic x2 of the previous estimate
(alignment guard); plus the axes, the input split and the depth-synth dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lstmviz.engines import registry
from lstmviz.engines.families.image import ImageData
from lstmviz.engines.vision.depth_sr import DepthSR, colour_refine, edge_weights, refinement_matrix
from lstmviz.hooks import HookScope, find_taps

H = W = 16


def data(ct=1, channels=4, size=H) -> ImageData:
    return ImageData(channels=channels, height=size, width=size, num_classes=ct, task="regression")


def model(**config) -> DepthSR:
    torch.manual_seed(0)
    return registry.get("depth-sr").build_model(data(), **config).double().eval()


def random_input(b=2, seed=0, size=H):
    g = torch.Generator().manual_seed(seed)
    colour = torch.rand(b, 3, size, size, generator=g, dtype=torch.float64)
    low = torch.rand(b, 1, size // 4, size // 4, generator=g, dtype=torch.float64)
    return torch.cat([colour, low.repeat_interleave(4, 2).repeat_interleave(4, 3)], dim=1), low


def laplacian_np(guide: np.ndarray, sigma: float) -> np.ndarray:
    """The weighted 4-neighbour Laplacian of one guide [G, H, W], built pair by pair in numpy."""
    _, h, w = guide.shape
    lap = np.zeros((h * w, h * w))
    for y in range(h):
        for x in range(w):
            for yy, xx in ((y + 1, x), (y, x + 1)):
                if yy < h and xx < w:
                    wij = np.exp(-((guide[:, y, x] - guide[:, yy, xx]) ** 2).sum() / (2 * sigma ** 2))
                    p, q = y * w + x, yy * w + xx
                    lap[p, p] += wij
                    lap[q, q] += wij
                    lap[p, q] -= wij
                    lap[q, p] -= wij
    return lap


def test_lambda_zero_returns_d_cnn_exactly():
    m = model(refine_lambda=0.0)
    x, _ = random_input()
    with torch.no_grad():
        d_cnn, _ = m.cnn(x)
        out = m(x)
    assert torch.equal(out, d_cnn)
    d = torch.rand(2, 1, 5, 6, dtype=torch.float64)
    assert colour_refine(d, torch.rand(2, 3, 5, 6, dtype=torch.float64), 0.0, 0.1) is d


def test_the_refinement_satisfies_the_linear_system_to_1e_8():
    torch.manual_seed(1)
    d = torch.rand(3, 2, 6, 7, dtype=torch.float64)
    guide = torch.rand(3, 3, 6, 7, dtype=torch.float64)
    lam, sigma = 2.5, 0.3
    sparse_out = colour_refine(d, guide, lam, sigma)  # no grad needed: the sparse direct solve
    dense_out = colour_refine(d.clone().requires_grad_(True), guide, lam, sigma).detach()  # the dense autograd one
    for out in (sparse_out, dense_out):
        for b in range(3):
            a = np.eye(42) + lam * laplacian_np(guide[b].numpy(), sigma)  # an independent build of I + lambda L_w
            np.testing.assert_allclose(refinement_matrix(guide[b:b + 1], lam, sigma)[0].numpy(), a, atol=1e-14)
            for c in range(2):
                residual = a @ out[b, c].reshape(-1).numpy() - d[b, c].reshape(-1).numpy()
                assert np.abs(residual).max() < 1e-8
    assert not torch.equal(sparse_out, d)
    # and it is differentiable (autograd through the solve)
    dd = d.clone().requires_grad_(True)
    colour_refine(dd, guide, lam, sigma).sum().backward()
    assert dd.grad is not None and torch.isfinite(dd.grad).all() and dd.grad.abs().sum() > 0


def test_the_energy_tap_sums_to_the_energy_that_the_refinement_minimises():
    from lstmviz.engines.vision.depth_sr import energy_terms

    torch.manual_seed(3)
    d = torch.rand(2, 1, 6, 7, dtype=torch.float64)
    guide = torch.rand(2, 3, 6, 7, dtype=torch.float64)
    lam, sigma = 3.0, 0.2
    lap = [laplacian_np(guide[b].numpy(), sigma) for b in range(2)]

    def energy(x, b):  # ||x - d||^2 + lambda x^T L_w x (= lambda sum_pairs w (x_i - x_j)^2)
        v = x.reshape(-1)
        return float(((v - d[b, 0].reshape(-1).numpy()) ** 2).sum() + lam * v @ lap[b] @ v)

    refined = colour_refine(d, guide, lam, sigma)
    terms = energy_terms(refined, d, guide, lam, sigma)
    assert terms.shape == (2, 2, 6, 7) and (terms >= 0).all()
    rng = np.random.default_rng(0)
    for b in range(2):
        best = energy(refined[b, 0].numpy(), b)
        assert float(terms[b].sum()) == pytest.approx(best, rel=1e-12)
        for _ in range(5):  # the solve is the minimum: any nudge raises the energy
            assert energy(refined[b, 0].numpy() + 1e-3 * rng.standard_normal((6, 7)), b) > best
    m = model(refine_lambda=lam)
    x, _ = random_input()
    seen = {}
    with HookScope() as hooks:
        hooks.read(find_taps(m)["energy"], lambda module, args, kwargs, out: seen.__setitem__("e", out))
        with torch.no_grad():
            out = m(x)
            d_cnn, guide = m.cnn(x)
    torch.testing.assert_close(seen["e"], energy_terms(out, d_cnn, guide, lam, m.sigma_c))


def test_edge_preservation_with_two_flat_colour_regions_and_blurring_with_a_constant_colour():
    h, w = 8, 10
    depth = torch.zeros(1, 1, h, w, dtype=torch.float64)
    depth[..., w // 2:] = 1.0  # a depth step between columns 4 and 5
    noise = 0.05 * torch.randn(1, 1, h, w, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    d_cnn = depth + noise
    two = torch.zeros(1, 3, h, w, dtype=torch.float64)
    two[:, :, :, : w // 2] = torch.tensor([0.1, 0.2, 0.9], dtype=torch.float64)[:, None, None]
    two[:, :, :, w // 2:] = torch.tensor([0.9, 0.7, 0.1], dtype=torch.float64)[:, None, None]
    sigma = 0.05
    wy, wx = edge_weights(two, sigma)
    assert wx[0, :, w // 2 - 1].max() < 1e-80 and wx[0, :, 0].min() == 1.0  # ~e^-200 across, 1 inside
    for lam in (1.0, 50.0):  # a clean step is kept: the flat sides are already smooth, nothing crosses the edge
        kept = colour_refine(depth, two, lam, sigma)[0, 0]
        assert (kept[:, w // 2] - kept[:, w // 2 - 1] - 1.0).abs().max() < 1e-3
        flat = colour_refine(depth, torch.full_like(two, 0.5), lam, sigma)[0, 0]
        assert (flat[:, w // 2] - flat[:, w // 2 - 1]).max() < 0.5  # a constant colour image blurs it
    # a noisy step with a strong smoothness: each side goes to its own mean, the step between the means survives
    kept = colour_refine(d_cnn, two, 1e4, sigma)[0, 0]
    step_before = (d_cnn[0, 0, :, w // 2:].mean() - d_cnn[0, 0, :, : w // 2].mean()).item()
    assert (kept[:, w // 2] - kept[:, w // 2 - 1] - step_before).abs().max() < 1e-3
    assert kept[:, : w // 2].std() < 1e-3 and kept[:, w // 2:].std() < 1e-3  # and the noise is gone
    flat = colour_refine(d_cnn, torch.full_like(two, 0.5), 1e4, sigma)[0, 0]
    assert (flat[:, w // 2] - flat[:, w // 2 - 1]).abs().max() < 0.05  # constant colour: the step is gone


def test_with_the_residual_branches_at_zero_each_stage_is_bicubic_x2_of_the_previous_estimate():
    m = model(refine_lambda=0.0)
    for branch in m.branches:  # the default: the last conv starts at zero; set every conv to random first
        for conv in branch:
            torch.nn.init.normal_(conv.weight)
    x, low = random_input(seed=3)
    with torch.no_grad():
        assert not torch.allclose(m(x), F.interpolate(low, scale_factor=4, mode="bicubic", align_corners=False))
        for branch in m.branches:
            torch.nn.init.zeros_(branch[-1].weight)
            torch.nn.init.zeros_(branch[-1].bias)
        guide, d0 = m.split(x)
        torch.testing.assert_close(d0, low, rtol=0, atol=1e-15)  # the low-resolution depth, to rounding
        assert torch.equal(guide, x[:, :3])
        up1 = F.interpolate(d0, scale_factor=2, mode="bicubic", align_corners=False)
        s1 = m.stage(1, d0, guide)
        assert torch.equal(s1, up1)
        s2 = m.stage(2, s1, guide)
        assert torch.equal(s2, F.interpolate(up1, scale_factor=2, mode="bicubic", align_corners=False))
        assert torch.equal(m(x), s2)
    # half-pixel alignment: a linear ramp over the low-resolution grid stays centred on the same ramp over the input
    # pixels (away from the clamped border), where input column x sits at low-resolution coordinate (x - 1.5) / 4:
    # no systematic offset, only the symmetric ripple of torch's bicubic kernel (a = -0.75 does not reproduce
    # linear functions exactly); align_corners=True or a wrong offset would shift the mean
    ramp = torch.arange(16, dtype=torch.float64).repeat(1, 1, 16, 1)  # value = LR column index
    guide64 = torch.zeros(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        up = m.stage(2, m.stage(1, ramp, guide64), guide64)
    centre = (torch.arange(64, dtype=torch.float64) - 1.5) / 4
    error = up[0, 0, 30, 12:52] - centre[12:52]
    assert abs(float(error.mean())) < 1e-12 and abs(float(error[:20].mean())) < 1e-12
    assert float(error.abs().max()) < 0.06
    shifted = F.interpolate(F.interpolate(ramp, scale_factor=2, mode="bicubic", align_corners=True), scale_factor=2,
                            mode="bicubic", align_corners=True)
    wrong = shifted[0, 0, 30, 12:52] - centre[12:52]
    assert abs(float(wrong[:20].mean())) > 0.05 and float(wrong.abs().max()) > 0.2  # the guard would catch it


def test_a_fresh_model_is_bicubic_x4_in_two_steps_and_one_shot_differs_only_in_the_kernel():
    x, _ = random_input(seed=4)
    with torch.no_grad():
        two = model()(x)
        one = model(stages=1)(x)
        low = model().split(x)[1]
    twice = F.interpolate(F.interpolate(low, scale_factor=2, mode="bicubic", align_corners=False), scale_factor=2,
                          mode="bicubic", align_corners=False)
    assert torch.equal(two, twice)
    assert torch.equal(one, F.interpolate(low, scale_factor=4, mode="bicubic", align_corners=False))


def test_taps_fire_on_their_own_grids_and_the_axes_say_so():
    m = model(refine_lambda=1.0)
    axes = m.image_axes(H, W)
    shapes = {}
    with HookScope() as hooks:
        for name, tap in find_taps(m).items():
            hooks.read(tap, lambda module, args, kwargs, out: shapes.__setitem__(module.name, tuple(out.shape)))
        with torch.no_grad():
            m(random_input()[0])
    assert shapes["lowres"] == (2, 1, 4, 4) and shapes["s1_conv0"] == (2, 16, 8, 8) and shapes["s2_out"] == (2, 1, 16, 16)
    taps = find_taps(m)
    assert shapes["energy"] == (2, 2, 16, 16) and taps["energy"].axis == "refined"
    for name, shape in shapes.items():
        size = axes[taps[name].axis].size
        assert shape[2:] == (size.height, size.width), name
    g = {name: axes[name].geometry for name in axes}
    assert g["lowres"].stride == (4, 4) and g["lowres"].offset == (1.5, 1.5) and g["lowres"].receptive_field == (4, 4)
    assert g["s1_out"].stride == (2, 2) and g["s1_out"].offset == (0.5, 0.5)
    assert g["s2_conv0"].stride == (1, 1) and g["s2_conv0"].receptive_field > g["s1_out"].receptive_field
    assert g["refined"].receptive_field == (2 * H - 1, 2 * H - 1)


def test_the_receptive_field_bounds_the_pixels_that_change_a_cell():
    m = model(refine_lambda=0.0)
    for branch in m.branches:
        for conv in branch:
            torch.nn.init.normal_(conv.weight, std=0.3)
    size = 32
    x, _ = random_input(b=1, seed=5, size=size)
    axes = m.image_axes(size, size)
    x.requires_grad_(True)
    outs = {}
    with HookScope() as hooks:
        for name, tap in find_taps(m).items():
            hooks.read(tap, lambda module, args, kwargs, out: outs.__setitem__(module.name, out))
        m(x)
    for name in ("s1_conv1", "s1_out", "s2_conv0", "cnn"):
        axis = axes[name]
        cy = cx = axis.size.height // 2
        grad, = torch.autograd.grad(outs[name][0, :, cy, cx].sum(), x, retain_graph=True)
        ys, xs = np.nonzero(grad[0].abs().sum(0).numpy() > 0)
        from lstmviz.engines.families.image.api import cell_box
        y0, x0, y1, x1 = cell_box(axis, cy, cx)
        assert ys.min() >= y0 and ys.max() < y1 and xs.min() >= x0 and xs.max() < x1, name


def test_image_level_tasks_and_too_few_channels_are_refused():
    spec = registry.get("depth-sr")
    for task in ("class", "segmentation"):
        with pytest.raises(ValueError, match="regression task"):
            spec.build_model(ImageData(channels=4, height=8, width=8, num_classes=1, task=task))
    with pytest.raises(ValueError, match="guide channel"):
        spec.build_model(data(ct=1, channels=1))
    with pytest.raises(ValueError, match="multiple of 4"):
        spec.build_model(data(size=10))


def test_depth_synth_items():
    from lstmviz.datasets.images.depth import block_mean, build, near_discontinuity

    ds = build("valid", images=20)
    assert ds.task == "regression" and ds.class_names == ("depth",) and ds.channels == 4 and ds.height == 32
    assert len(ds) == 4
    it = ds[1]
    depth = it.target_map[0]
    assert it.target_map.shape == (1, 32, 32) and 0 <= depth.min() and depth.max() <= 1
    low = block_mean(it.image[3])
    assert np.allclose(np.repeat(np.repeat(low, 4, 0), 4, 1), it.image[3])  # replicated x4 (nearest)
    assert np.abs(low - block_mean(depth)).max() < 0.06  # block average of the depth plus small noise
    assert np.array_equal(it.annotations["edge"].reshape(32, 32), near_discontinuity(depth))
    region = it.annotations["region"].reshape(32, 32)
    for k in np.unique(region):  # one colour per region without texture
        assert np.ptp(it.image[:3][:, region == k], axis=1).max() < 1e-6
    again = build("valid", images=20)
    assert np.array_equal(again.images, ds.images)
    textured = build("valid", images=20, texture=True)
    assert np.array_equal(textured.target_maps, ds.target_maps) and not np.array_equal(textured.images, ds.images)
