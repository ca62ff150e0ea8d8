"""colorization-codec (Baig & Torresani): best-of-K gradient routing, K = 1 is plain L2, the loss against explicit
per-pixel / per-region arg-min masks, a lossless side channel with R·⌈log2 K⌉ bits, honest tap geometry; and the
colour-digits data whose luminance cannot tell the two colours of a class apart."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lstmviz.engines.families.image.api import cell_box
from lstmviz.engines.vision.colorization_codec import SPEC, best_of_k_loss, build, region_ids
from lstmviz.hooks import HookScope, find_taps


def _model(K=3, region=4, h=16, w=16, seed=0, **kw):
    torch.manual_seed(seed)
    return build(1, h, w, 2, K=K, region=region, hidden_size=kw.pop("hidden_size", 4),
                 num_layers=kw.pop("num_layers", 2), **kw).double()


def test_best_of_k_routes_the_gradient_only_to_the_arg_min_linear_branch():
    """One pixel, K = 3 linear branches ĉ_k = W_k x + b_k: after one backward only the branch with the smallest
    squared error has a non-zero gradient; the others' gradients are exactly zero."""
    torch.manual_seed(0)
    branches = [torch.nn.Linear(3, 2).double() for _ in range(3)]
    x = torch.randn(3, dtype=torch.float64)
    target = torch.randn(1, 2, 1, 1, dtype=torch.float64)
    with torch.no_grad():
        errors = [float((b(x) - target.flatten()).pow(2).sum()) for b in branches]
    winner = int(np.argmin(errors))
    hyp = torch.stack([b(x) for b in branches]).reshape(1, 3, 2, 1, 1)
    loss, winners = best_of_k_loss(hyp, target, region=1)
    loss.backward()
    assert winners.tolist() == [[winner]]
    assert loss.item() == pytest.approx(errors[winner] / 2)
    for k, b in enumerate(branches):
        if k == winner:
            assert b.weight.grad.abs().sum() > 0 and b.bias.grad.abs().sum() > 0
        else:
            assert torch.equal(b.weight.grad, torch.zeros_like(b.weight)), k
            assert torch.equal(b.bias.grad, torch.zeros_like(b.bias)), k


def test_in_the_model_the_losing_branches_get_exactly_zero_gradient_and_relax_gives_them_some():
    model = _model(K=3, region=1, h=1, w=1)
    x = torch.rand(1, 1, 1, 1, dtype=torch.float64)
    target = torch.rand(1, 2, 1, 1, dtype=torch.float64)
    with torch.no_grad():
        winner = int((model.hypotheses(x)[0, :, :, 0, 0] - target[0, :, 0, 0]).pow(2).sum(1).argmin())
    model.loss(x, {"target_map": target})[0].backward()
    for k in range(3):
        grads = [p.grad for p in [*model.branch_convs[k].parameters(), *model.branch_heads[k].parameters()]]
        if k == winner:
            assert model.branch_heads[k].bias.grad.abs().sum() > 0
        else:
            assert all(g is None or torch.equal(g, torch.zeros_like(g)) for g in grads), k
    model.zero_grad()
    model.relax = 0.05
    model.loss(x, {"target_map": target})[0].backward()
    assert all(model.branch_heads[k].bias.grad.abs().sum() > 0 for k in range(3))


def test_k1_is_plain_l2_regression():
    for region in (1, 3, 4):
        model = _model(K=1, region=region, h=9, w=11)
        x, c = torch.rand(2, 1, 9, 11, dtype=torch.float64), torch.rand(2, 2, 9, 11, dtype=torch.float64)
        loss, count = model.loss(x, {"target_map": c})
        assert count == 2
        torch.testing.assert_close(loss, F.mse_loss(model(x), c), rtol=1e-12, atol=0)
    assert _model(K=1).side_bits() == 0


def _brute_force(hyp: np.ndarray, target: np.ndarray, region: int, relax: float) -> tuple[float, np.ndarray]:
    """Explicit loops: for every cell, the per-pixel masks of its pixels, each branch's error, the min."""
    b, k, c, h, w = hyp.shape
    ny, nx = math.ceil(h / region), math.ceil(w / region)
    total, winners = 0.0, np.zeros((b, ny * nx), dtype=np.int64)
    for i in range(b):
        for cy in range(ny):
            for cx in range(nx):
                mask = np.zeros((h, w), dtype=bool)
                mask[cy * region:(cy + 1) * region, cx * region:(cx + 1) * region] = True
                errs = [float(((hyp[i, j] - target[i]) ** 2 * mask).sum()) for j in range(k)]
                best = int(np.argmin(errs))
                winners[i, cy * nx + cx] = best
                total += errs[best] + relax * (sum(errs) - errs[best])
    return total / target.size, winners


@pytest.mark.parametrize("region,relax", [(1, 0.0), (4, 0.0), (3, 0.0), (5, 0.05)])
def test_loss_equals_the_brute_force_over_explicit_arg_min_masks(region, relax):
    gen = torch.Generator().manual_seed(region)
    hyp = torch.rand(2, 4, 2, 10, 9, dtype=torch.float64, generator=gen)
    target = torch.rand(2, 2, 10, 9, dtype=torch.float64, generator=gen)
    loss, winners = best_of_k_loss(hyp, target, region, relax)
    expected, expected_winners = _brute_force(hyp.numpy(), target.numpy(), region, relax)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert np.array_equal(winners.numpy(), expected_winners)


def test_side_channel_is_lossless_and_costs_r_times_ceil_log2_k_bits():
    model = _model(K=3, region=4).eval()
    gen = torch.Generator().manual_seed(1)
    y = torch.rand(3, 1, 16, 16, dtype=torch.float64, generator=gen)
    c = torch.rand(3, 2, 16, 16, dtype=torch.float64, generator=gen)
    indices = model.encode(y, c)
    assert indices.shape == (3, 16) and indices.dtype == torch.int64
    # the encoder-side choice, computed independently: per cell the branch of least summed error
    with torch.no_grad():
        hyp = model.hypotheses(y)
        ids, r = region_ids(16, 16, 4)
        err = (hyp - c[:, None]).pow(2).sum(2).reshape(3, 3, 256)
        cell_err = torch.stack([err[:, :, ids == j].sum(2) for j in range(r)], 2)
        chosen = cell_err.argmin(1)
        expected = torch.stack([hyp[i, chosen[i, ids]].reshape(256, 2, 256)[torch.arange(256), :, torch.arange(256)]
                                for i in range(3)]).transpose(1, 2).reshape(3, 2, 16, 16)
        decoded = model.decode(y, indices)
    assert torch.equal(indices, chosen)
    assert torch.equal(decoded, expected)  # exactly: the decoder re-runs the same network
    assert len(set(indices.flatten().tolist())) > 1  # the map really selects different branches
    model.indices = indices
    with torch.no_grad():
        assert torch.equal(model(y), decoded)
    model.indices = 2
    with torch.no_grad():
        assert torch.equal(model(y), hyp[:, 2])
    model.indices = None
    with torch.no_grad():
        torch.testing.assert_close(model(y), hyp.mean(1))
    assert model.side_bits() == 16 * 2
    assert _model(K=4, region=4).side_bits() == 16 * 2
    assert _model(K=5, region=5).side_bits() == 16 * 3  # ⌈16/5⌉² = 16 cells, ⌈log2 5⌉ = 3
    assert _model(K=2, region=16).side_bits() == 1
    assert _model(K=4).side_bits(16, 16, region=1) == 256 * 2
    with pytest.raises(ValueError, match="expected indices"):
        model.decode(y, indices[:, :3])
    with pytest.raises(ValueError, match="branch indices"):
        model.decode(y, indices + 5)


def test_taps_fire_on_described_axes_and_receptive_fields_are_honest():
    model = _model(K=2, region=4, h=20, w=20, num_layers=3).eval()
    axes = model.image_axes(20, 20)
    assert set(axes) == {"trunk0", "trunk1", "trunk2", "branches", "hypotheses", "branch"}
    assert axes["branch"].geometry.kind == "set" and axes["branch"].geometry.members == ("b0", "b1")
    assert [axes[f"trunk{i}"].geometry.receptive_field[0] for i in range(3)] == [3, 7, 15]
    assert axes["branches"].geometry.receptive_field == (17, 17)
    assert axes["hypotheses"].geometry.receptive_field == (17, 17)
    x = torch.rand(1, 1, 20, 20, dtype=torch.float64, requires_grad=True)
    seen = {}
    with HookScope() as hooks:
        for tap in find_taps(model).values():
            hooks.read(tap, lambda module, args, kwargs, value: seen.__setitem__(module.name, value))
        model(x)
    assert set(seen) == {"trunk0", "trunk1", "trunk2", "branch0", "branch1", "hypotheses", "chroma", "branches_mean"}
    assert seen["hypotheses"].shape == (1, 4, 20, 20) and seen["branch1"].shape == (1, 4, 20, 20)
    assert seen["branches_mean"].shape == (1, 2, 3)  # [B, K, C_t + 1] on the set axis
    taps = find_taps(model)
    for name, value in seen.items():
        if name != "branches_mean":
            assert taps[name].axis in axes and value.shape[2:] == (20, 20), name
    for name in ("trunk1", "branch0", "hypotheses"):
        x.grad = None
        seen[name][0, :, 10, 9].sum().backward(retain_graph=True)
        support = (x.grad[0, 0] != 0).nonzero()
        y0, x0, y1, x1 = cell_box(axes[taps[name].axis], 10, 9)
        assert support[:, 0].min() >= y0 and support[:, 0].max() < y1, name
        assert support[:, 1].min() >= x0 and support[:, 1].max() < x1, name
    import fnmatch
    patterns = [p.replace("{layer}", "*") for p in SPEC.taps]
    assert all(any(fnmatch.fnmatchcase(n, p) for p in patterns) for n in taps)


def test_branches_start_at_different_colours_and_bad_settings_are_refused():
    model = _model(K=4)
    biases = torch.stack([h.bias for h in model.branch_heads]).detach()
    assert len({tuple(b.tolist()) for b in biases}) == 4
    torch.testing.assert_close(biases.mean(0), torch.full((2,), 0.5, dtype=torch.float64))
    with pytest.raises(ValueError, match="regression task"):
        build(1, 16, 16, 2, task="segmentation")
    with pytest.raises(ValueError, match="region"):
        build(1, 16, 16, 2, region=0)


def test_colour_digits_two_colours_of_a_class_share_the_luminance():
    from lstmviz.datasets.images.colour_digits import chroma_split, class_colours, rgb_to_ycbcr

    ycc = rgb_to_ycbcr(class_colours().reshape(20, 3, 1, 1))[:, :, 0, 0].reshape(10, 2, 3)
    assert np.allclose(ycc[:, :, 0], 0.5, atol=1e-9)  # equal luminance, every class, both colours
    assert np.allclose(ycc[:, 0, 1:] + ycc[:, 1, 1:], 1.0)  # opposite chroma: the pair's mean is colourless
    assert np.min(np.linalg.norm(ycc[:, 0, 1:] - ycc[:, 1, 1:], axis=1)) > 0.45
    data = chroma_split("train")
    assert data["images"].shape[1:] == (1, 16, 16) and data["target_maps"].shape[1:] == (2, 16, 16)
    assert 0.3 < data["sign"].mean() < 0.7
    # same digit image, the other colour: identical Y, different chroma
    v = data["intensity"][0]
    other = v[None] * class_colours()[data["label"][0], 1 - data["sign"][0]][:, None, None]
    other_ycc = rgb_to_ycbcr(other)
    assert np.allclose(other_ycc[0], data["images"][0, 0], atol=1e-6)
    assert np.abs(other_ycc[1:] - data["target_maps"][0]).max() > 0.2
    from PIL import Image  # Pillow's JPEG YCbCr is the same conversion
    rgb8 = (data["rgb"][0].transpose(1, 2, 0) * 255).round().astype(np.uint8)
    pil = np.asarray(Image.fromarray(rgb8).convert("YCbCr"), dtype=np.float64) / 255
    ours = rgb_to_ycbcr(rgb8.transpose(2, 0, 1) / 255.0).transpose(1, 2, 0)
    assert np.abs(pil - ours).max() <= 1.5 / 255


def _branches_mean(model, x):
    seen = {}
    with HookScope() as hooks, torch.no_grad():
        hooks.read(find_taps(model)["branches_mean"],
                   lambda module, args, kwargs, value: seen.__setitem__("v", value.clone()))
        model(x)
    return seen["v"]


def test_branches_mean_holds_each_branch_mean_chroma_and_its_share_of_the_output():
    model = _model(K=3, region=4, h=8, w=8).eval()
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        hyp = model.hypotheses(x)  # [B, K, C, H, W]
    v = _branches_mean(model, x)
    assert v.shape == (2, 3, 3)
    torch.testing.assert_close(v[:, :, :2], hyp.mean(dim=(3, 4)))  # row k = branch k, in order
    assert torch.equal(v[:, :, 2], torch.full((2, 3), 1 / 3, dtype=torch.float64))  # the mean: 1/K each
    with model.switched({"branch": "2"}):
        forced = _branches_mean(model, x)
    assert forced[:, :, 2].tolist() == [[0.0, 0.0, 1.0]] * 2
    # region indices: 4 cells of 4x4; branch 0 in one cell, branch 1 in three, branch 2 in none
    model.indices = torch.tensor([[0, 1, 1, 1], [2, 2, 2, 2]])
    chosen = _branches_mean(model, x)
    model.indices = None
    torch.testing.assert_close(chosen[:, :, 2], torch.tensor([[0.25, 0.75, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64))


def test_branches_mean_records_on_a_set_axis_named_b0_to_bk(tmp_path):
    from lstmviz.engines.families.image import ImageData, SampleImages
    from lstmviz.recording.image_recorder import record_images
    from lstmviz.recording.reader import open_recording

    model = _model(K=3, region=4, h=8, w=8).float().eval()
    data = SampleImages(ImageData(channels=1, height=8, width=8, num_classes=2, task="regression"), images=3, seed=0)
    path = record_images(model, data, tmp_path / "c.h5", signals=["branches_mean", "chroma"])
    x = torch.from_numpy(np.stack([data[i].image for i in range(3)]))
    expected = _branches_mean(model, x).numpy()
    with open_recording(path) as rec:
        assert rec.axis_geometry("branch").members == ("b0", "b1", "b2")
        for i in range(3):
            assert rec.item_geometry(i, "branch").member.tolist() == [0, 1, 2]
            np.testing.assert_allclose(rec.item_states("branches_mean", i), expected[i], rtol=1e-6)
