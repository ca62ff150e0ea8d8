"""lowrank-cnn: the factorised evaluation is the convolution with the reconstructed kernel (Denton et al.)."""

import pytest
import torch
import torch.nn.functional as F

from lstmviz.engines.spec import ConfigError
from lstmviz.engines.vision.lowrank_cnn import (BiclusterConv, MonochromaticConv, SVDLinear, build, count_macs,
                                               factorise, kmeans)
from lstmviz.hooks import IMAGE, SCALAR, find_taps


def _random(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_monochromatic_pipeline_equals_conv_with_reconstructed_kernel():
    w = _random(8, 3, 5, 5)
    layer = MonochromaticConv(w, 2)
    x = _random(4, 3, 11, 9, seed=1)
    dense = F.conv2d(x, layer.reconstructed_weight(), None, 1, 2)
    assert torch.allclose(layer(x), dense, atol=1e-5)
    # each reconstructed filter is rank 1 and its colour is one of the 2 centres
    rec = layer.reconstructed_weight().detach().reshape(8, 3, 25)
    assert all(torch.linalg.matrix_rank(rec[f], rtol=1e-5) == 1 for f in range(8))
    assert set(layer.assignment.tolist()) == {0, 1}


def test_monochromatic_without_clustering_is_the_per_filter_rank1_svd():
    w = _random(6, 3, 3, 3, seed=2).double()
    layer = MonochromaticConv(w, 6)  # C' = F: every filter its own colour
    u, s, vh = torch.linalg.svd(w.reshape(6, 3, 9), full_matrices=False)
    rank1 = (s[:, :1, None] * u[:, :, :1] @ vh[:, :1, :]).reshape(6, 3, 3, 3)
    assert torch.allclose(layer.reconstructed_weight(), rank1, atol=1e-10)


@pytest.mark.parametrize("groups,rank", [((2, 2), 3), ((3, 2), 1), ((1, 1), 2)])
def test_bicluster_pipeline_equals_conv_with_reconstructed_kernel(groups, rank):
    w = _random(12, 8, 3, 3, seed=3)
    layer = BiclusterConv(w, groups[0], groups[1], rank)
    x = _random(2, 8, 7, 6, seed=4)
    dense = F.conv2d(x, layer.reconstructed_weight(), None, 1, 1)
    assert torch.allclose(layer(x), dense, atol=1e-5)
    err = (layer.reconstructed_weight() - w).norm()
    assert err > 1e-3  # a real approximation at low rank


def test_bicluster_at_full_rank_is_exact_and_error_falls_with_rank():
    w = _random(12, 8, 3, 3, seed=5).double()
    full = BiclusterConv(w, 2, 2, rank=100)
    assert torch.allclose(full.reconstructed_weight(), w, atol=1e-10)
    errs = [(BiclusterConv(w, 2, 2, rank=r).reconstructed_weight() - w).norm().item() for r in (1, 2, 4)]
    assert errs[0] > errs[1] > errs[2]


def test_svd_linear_is_the_truncated_svd():
    lin = torch.nn.Linear(20, 10).double()
    layer = SVDLinear(lin, 3)
    u, s, vh = torch.linalg.svd(lin.weight.detach(), full_matrices=False)
    assert torch.allclose(layer.reconstructed_weight(), (u[:, :3] * s[:3]) @ vh[:3], atol=1e-10)
    x = _random(5, 20, seed=6).double()
    assert torch.allclose(layer(x), F.linear(x, layer.reconstructed_weight(), lin.bias), atol=1e-10)


def test_kmeans_is_seeded_and_finds_separated_clusters():
    pts = torch.cat([_random(10, 2, seed=7) * 0.1 + 5, _random(10, 2, seed=8) * 0.1 - 5])
    a = kmeans(pts, 2, seed=3)
    assert torch.equal(a, kmeans(pts, 2, seed=3))
    assert len(set(a[:10].tolist())) == 1 and len(set(a[10:].tolist())) == 1 and a[0] != a[10]


@pytest.mark.parametrize("approx,fc_rank", [("none", None), ("mono", None), ("bicluster", 5), ("both", 8)])
def test_mac_formula_matches_the_multiply_adds_actually_run(approx, fc_rank):
    model = build(3, 8, 8, 10, conv_channels=(8, 12, 12), fc_size=16, approx=approx, fc_rank=fc_rank, rank=2)
    formula = sum(model.macs().values())
    assert count_macs(model, torch.rand(2, 3, 8, 8)) == formula
    if approx == "none":
        assert formula == 8 * 3 * 9 * 64 + 12 * 8 * 9 * 64 + 12 * 12 * 9 * 16 + 12 * 4 * 16 + 16 * 10


def test_factorise_keeps_the_model_and_matches_dense_network_with_reconstructed_kernels():
    torch.manual_seed(0)
    model = build(3, 8, 8, 10, conv_channels=(8, 12, 12), fc_size=16).eval()
    approx = factorise(model, approx="both", mono_colours=2, rank=2, fc_rank=4)
    assert isinstance(model.convs[0].weight, torch.nn.Parameter)  # original unchanged
    # the same network, dense, with the reconstructed kernels
    dense = build(3, 8, 8, 10, conv_channels=(8, 12, 12), fc_size=16).eval()
    dense.load_state_dict(model.state_dict())
    with torch.no_grad():
        for i, conv in enumerate(approx.convs):
            dense.convs[i].weight.copy_(conv.reconstructed_weight())
        dense.fc.weight.copy_(approx.fc.reconstructed_weight())
    x = torch.rand(5, 3, 8, 8)
    assert torch.allclose(approx(x), dense(x), atol=1e-5)
    # no retraining: the head and norms are the trained ones
    assert torch.equal(approx.head.weight, model.head.weight)


def test_finetune_trains_only_the_unapproximated_parameters():
    torch.manual_seed(0)
    model = build(3, 8, 8, 10, conv_channels=(8, 12, 12), fc_size=16).eval()
    x, y = torch.rand(64, 3, 8, 8), torch.randint(10, (64,))
    tuned = factorise(model, approx="mono", mono_colours=2, finetune=(x, y), finetune_steps=3, batch_size=16)
    plain = factorise(model, approx="mono", mono_colours=2)
    assert torch.equal(tuned.convs[0].spatial, plain.convs[0].spatial)
    assert not torch.equal(tuned.head.weight, plain.head.weight)


def test_taps_axes_and_bad_config():
    model = build(1, 8, 8, 10)
    taps = find_taps(model)
    assert sorted(taps) == ["conv0", "conv1", "conv2", "fc", "logits"]
    axes = model.image_axes(8, 8)
    for name in ("conv0", "conv1", "conv2"):
        assert taps[name].layout is IMAGE and taps[name].axis == name
    assert taps["logits"].layout is SCALAR and taps["logits"].axis == "image"
    seen = {}
    hooks = [t.register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o.shape)) for n, t in taps.items()]
    model(torch.rand(2, 1, 8, 8))
    for h in hooks:
        h.remove()
    for name in ("conv0", "conv1", "conv2"):
        assert tuple(seen[name][2:]) == (axes[name].size.height, axes[name].size.width)
    with pytest.raises(ConfigError, match="approx"):
        build(1, 8, 8, 10, approx="tucker")
    with pytest.raises(ConfigError, match="mono_colours"):
        build(3, 8, 8, 10, approx="mono", mono_colours=99)


def test_a_factorised_model_round_trips_through_its_config_and_state_dict():
    torch.manual_seed(0)
    model = build(3, 8, 8, 10, conv_channels=(8, 12, 12), fc_size=16).eval()
    with torch.no_grad():  # a kernel whose k-means clusters differ from a fresh build's
        for conv in model.convs:
            conv.weight.mul_(torch.linspace(0.1, 3, conv.weight.shape[0])[:, None, None, None])
    approx = factorise(model, approx="both", mono_colours=3, bicluster_out=3, bicluster_in=2, rank=2, fc_rank=4)
    again = build(3, 8, 8, 10, conv_channels=(8, 12, 12), fc_size=16, **approx.settings)
    again.load_state_dict(approx.state_dict())
    again.eval()
    x = torch.rand(4, 3, 8, 8)
    assert torch.equal(again(x), approx(x))
