"""The ``tagger`` engine's defining properties (Greff et al. 2016): masks sum to 1 over the groups at every pixel,
the mapping is permutation-equivariant over the groups, K = 1 is a plain denoiser, δz is the likelihood gradient,
the cost reads the clean image; and the objective / recorder report its per-iteration grouping AMI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmviz.engines import registry
from lstmviz.engines.families.image import ImageData
from lstmviz.engines.vision.grouping import adjusted_mutual_info, grouping_ami
from lstmviz.engines.vision.tagger import Tagger, binary_nll
from lstmviz.hooks import HookScope, find_taps

H = W = 6


def _model(groups=3, channels=1, iterations=2, seed=0, **kw) -> Tagger:
    torch.manual_seed(seed)
    model = Tagger(channels, H, W, groups, iterations=iterations, hidden_size=16, top_size=8, **kw).double()
    # a few training-mode passes give the BN layers non-trivial running statistics
    with torch.no_grad():
        for _ in range(3):
            model.train()(_images(8, channels, seed + 1))
    return model.eval()


def _images(n=4, channels=1, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, channels, H, W, generator=g, dtype=torch.float64) < 0.4).double()


def _taps(model, images, **kw) -> dict[str, torch.Tensor]:
    """Every tap's value in one forward."""
    values = {}
    with HookScope() as hooks:
        for name, tap in find_taps(model).items():
            hooks.read(tap, lambda module, args, kwargs, out: values.__setitem__(module.name, out.detach().clone()))
        with torch.no_grad():
            values["output"] = model(images, **kw)
    return values


def _init(groups, n=4, channels=1, seed=3):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, groups, H, W, generator=g, dtype=torch.float64)
    z = torch.rand(n, groups, channels, H, W, generator=g, dtype=torch.float64)
    return logits, z


def _group_rows(name: str, value: torch.Tensor, groups: int) -> torch.Tensor:
    """The value with the groups as dimension 1: [B, K, ...] (``z``/``dz`` taps hold K·C units)."""
    if name.endswith("/recon") or name == "input":
        return None
    return value.reshape(value.shape[0], groups, -1)


def equivariance_error(model, groups, channels=1) -> float:
    """The largest difference between permuting the groups of the initial state and permuting every output."""
    x = _images(4, channels, seed=5)
    logits, z = _init(groups, channels=channels)
    perm = torch.roll(torch.arange(groups), 1)
    torch.manual_seed(11)
    a = _taps(model, x, init_logits=logits, init_z=z)
    torch.manual_seed(11)
    b = _taps(model, x, init_logits=logits[:, perm], init_z=z[:, perm])
    worst = 0.0
    for name in a:
        ra = _group_rows(name, a[name], groups)
        if ra is None:  # the mixture Σ_k m_k z_k does not depend on the group order at all
            worst = max(worst, float((a[name] - b[name]).abs().max()))
            continue
        worst = max(worst, float((ra[:, perm] - _group_rows(name, b[name], groups)).abs().max()))
    return worst


def test_masks_sum_to_one_over_the_groups_at_every_pixel_in_every_iteration():
    model = _model(groups=4, iterations=3)
    values = _taps(model, _images())
    masks = [values[f"iter{t}/mask"] for t in range(4)]
    for t, m in enumerate(masks):
        assert m.shape == (4, 4, H, W)
        torch.testing.assert_close(m.sum(dim=1), torch.ones(4, H, W, dtype=torch.float64), rtol=0, atol=1e-12)
        assert (m > 0).all()
    for t in range(3):  # the mask likelihood m^ is a distribution over the groups too
        torch.testing.assert_close(values[f"iter{t}/mask_lh"].sum(dim=1), torch.ones(4, H, W, dtype=torch.float64))
    torch.testing.assert_close(values["output"].exp(), masks[-1])
    assert not torch.allclose(masks[1], masks[2])  # the iterations do change the masks


def test_a_per_group_sigmoid_in_place_of_the_softmax_breaks_the_mask_sum():
    model = _model(groups=4)

    class SigmoidMasks(Tagger):
        """Not Tagger: each group's mask from its own sigmoid, no competition between the groups."""

        @staticmethod
        def masks_from_logits(m_logit):
            return torch.sigmoid(m_logit)

    broken = SigmoidMasks(1, H, W, 4, iterations=2, hidden_size=16, top_size=8).double().eval()
    broken.load_state_dict(model.state_dict())
    with torch.no_grad():
        out = broken.run(_images())
    sums = out["masks"][1].sum(dim=1)
    assert (sums - 1).abs().max() > 0.05  # what the mask test would catch


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_permuting_the_initial_groups_permutes_every_output_the_same_way(mode):
    model = _model(groups=3, channels=2)
    model.train(mode == "train")  # training mode: batch statistics over the groups and images, and bit flips
    assert equivariance_error(model, 3, channels=2) < 1e-10


def test_a_group_specific_parameter_breaks_the_equivariance():
    class PerGroupBias(Tagger):
        """Not Tagger: each group's mask logits get their own bias, so the groups are no longer exchangeable."""

        def _map(self, inputs, batch):
            z_logit, m_logit, top = super()._map(inputs, batch)
            bias = torch.arange(self.groups, dtype=m_logit.dtype)[None, :, None]
            return z_logit, m_logit + bias, top

    torch.manual_seed(0)
    plain = PerGroupBias(1, H, W, 3, iterations=2, hidden_size=16, top_size=8).double().eval()
    assert equivariance_error(plain, 3) > 1e-3


def test_one_group_is_a_plain_denoiser_whose_mask_is_one_and_ignores_the_mask_init():
    model = _model(groups=1, iterations=3)
    x = _images()
    a = _taps(model, x, init_logits=torch.full((4, 1, H, W), -3.0, dtype=torch.float64))
    b = _taps(model, x, init_logits=torch.full((4, 1, H, W), 5.0, dtype=torch.float64))
    for t in range(4):
        assert torch.equal(a[f"iter{t}/mask"], torch.ones(4, 1, H, W, dtype=torch.float64))
        torch.testing.assert_close(a[f"iter{t}/recon"], a[f"iter{t}/z"])  # the mixture is the one group's z
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
    assert torch.equal(a["output"], torch.zeros_like(a["output"]))  # log 1


def test_dz_is_the_gradient_of_the_mixture_log_likelihood_and_mask_lh_its_normalised_group_likelihood():
    eta = 0.2
    model = _model(groups=3, channels=2, noise=eta)
    x = _images(4, channels=2)
    logits, z = _init(3, channels=2)
    values = _taps(model, x, init_logits=logits, init_z=z)
    m = logits.softmax(dim=1)[:, :, None]  # [B, K, 1, H, W]
    zz = z.clone().requires_grad_(True)
    xi_k = eta + (1 - 2 * eta) * zz
    xi = (m * xi_k).sum(dim=1)
    log_lik = (x * xi.log() + (1 - x) * (1 - xi).log()).sum()
    (grad,) = torch.autograd.grad(log_lik, zz)
    torch.testing.assert_close(values["iter0/dz"], grad.reshape(4, 6, H, W))
    group_lik = torch.exp(-binary_nll(xi_k.detach(), x[:, None]).sum(dim=2))  # channels multiply
    torch.testing.assert_close(values["iter0/mask_lh"], group_lik / group_lik.sum(dim=1, keepdim=True))


def test_the_cost_is_the_cross_entropy_of_the_mixture_against_the_clean_image_not_the_noisy_one():
    model = _model(groups=3).train()
    x = _images()
    torch.manual_seed(4)
    loss, count = model.loss(x)
    torch.manual_seed(4)
    out = model.run(x)  # the same draws: the same bit flips and initial masks
    assert count == 4
    clean, noisy = out["clean"], out["noisy"]
    assert torch.equal(clean, x.reshape(4, 1, -1)) and (noisy != clean).any()  # the mapping read flipped bits
    assert torch.equal(noisy, clean + (noisy != clean) * (1 - 2 * clean))  # flips, nothing else
    against = lambda target: torch.stack([binary_nll(r, target).mean() for r in out["recons"][1:]]).mean()  # noqa: E731
    torch.testing.assert_close(loss.detach(), against(clean).detach())
    assert (loss - against(noisy)).abs().item() > 1e-3


def test_eval_mode_starts_from_the_saved_init_logits_and_training_draws_fresh_ones():
    model = _model(groups=3)
    x = _images()
    with torch.no_grad():
        first, again = model(x), model(x)
    assert torch.equal(first, again)
    expected = model.init_logits.reshape(1, 3, H, W).expand(4, -1, -1, -1)
    torch.testing.assert_close(first, model(x, init_logits=expected))
    model.train()
    torch.manual_seed(1)
    a = model.run(x, corrupt=False)["masks"][0]
    torch.manual_seed(2)
    b = model.run(x, corrupt=False)["masks"][0]
    assert not torch.allclose(a, b)
    other = Tagger(1, H, W, 3, hidden_size=4, top_size=4, init_seed=1)
    assert not torch.equal(other.init_logits, Tagger(1, H, W, 3, hidden_size=4, top_size=4).init_logits)


def test_bad_configuration_is_refused_in_words():
    with pytest.raises(ValueError, match="segmentation task"):
        Tagger(1, H, W, 3, task="class")
    with pytest.raises(ValueError, match="noise"):
        Tagger(1, H, W, 3, noise=0.5)
    with pytest.raises(ValueError, match="iterations"):
        Tagger(1, H, W, 3, iterations=0)
    with pytest.raises(ValueError, match=r"init_logits \[B, K, H, W\]"):
        _model()(_images(), init_logits=torch.zeros(4, 2, H, W))
    with pytest.raises(ValueError, match="expected images"):
        _model()(torch.zeros(2, 1, H + 1, W))


# -- grouping accuracy ----------------------------------------------------------------------------------------
def test_ami_equals_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for n in (2, 3, 7, 40, 300):
        for r in (1, 2, 4):
            for c in (1, 3, 5):
                t, p = rng.integers(0, r, n), rng.integers(0, c, n)
                assert adjusted_mutual_info(t, p) == pytest.approx(metrics.adjusted_mutual_info_score(t, p), abs=1e-9)
                assert adjusted_mutual_info(t, t) == pytest.approx(metrics.adjusted_mutual_info_score(t, t), abs=1e-9)


def test_grouping_ami_scores_only_object_pixels_and_ignores_group_names():
    truth = np.array([[0, 1, 1, 2, 2, -1, 0, 3, 3]])
    perfect = np.zeros((1, 4, 9))
    perfect[0, [2, 0, 0, 3, 3, 1, 1, 1, 1], np.arange(9)] = 1  # renamed groups; background and -1 anywhere
    assert grouping_ami(perfect, truth)[0] == pytest.approx(1.0)
    merged = np.zeros((1, 4, 9))
    merged[0, 0] = 1  # every pixel in one group: no information about the objects
    assert grouping_ami(merged, truth)[0] == pytest.approx(0.0)
    assert np.isnan(grouping_ami(perfect, np.array([[0, 0, -1, 0, 0, 0, 0, 0, 0]])))[0]


def test_validation_reports_the_ami_per_iteration_instead_of_a_class_accuracy():
    from lstmviz.datasets.images.shapes import build
    from lstmviz.engines.families.image.objective import ImageObjective

    data = build("valid", images=40)
    objective = ImageObjective()
    objective.prepare(data, data, {"batch_size": 8, "seed": 0}, torch.device("cpu"))
    torch.manual_seed(0)
    model = registry.get("tagger").build_model(ImageData(1, 20, 20, 4, "segmentation"), iterations=2,
                                               hidden_size=16, top_size=8)
    loss = objective.evaluate(model)
    metrics = objective.metrics()
    assert metrics["valid_accuracy"] is None and "valid_dice" not in metrics
    assert {f"valid_ami_iter{t}" for t in range(3)} | {f"valid_cost_iter{t}" for t in range(3)} <= set(metrics)
    masks = np.stack([data[i].mask for i in range(len(data))])
    with torch.no_grad():
        measured = model.eval().item_measures(torch.from_numpy(data.images.copy()), {"mask": torch.from_numpy(masks)})
    assert metrics["valid_ami_iter1"] == pytest.approx(np.nanmean(measured["ami_iter1"]))
    assert loss == pytest.approx(float(np.mean([measured[f"cost_iter{t}"] for t in (1, 2)])), rel=1e-5)


def test_a_recording_holds_the_ami_and_cost_of_every_iteration_per_image(tmp_path):
    from lstmviz.datasets.images.shapes import build
    from lstmviz.recording.image_recorder import record_images
    from lstmviz.recording.reader import open_recording

    data = build("test", images=20)
    torch.manual_seed(0)
    model = Tagger(1, 20, 20, 4, iterations=2, hidden_size=16, top_size=8).eval()
    path = record_images(model, data, tmp_path / "tagger.h5", chunk=3)
    masks = torch.from_numpy(np.stack([data[i].mask for i in range(len(data))]))
    measured = model.item_measures(torch.from_numpy(data.images.copy()), {"mask": masks})
    with open_recording(path) as rec:
        assert rec.axis_geometry("groups").members == ("group 0", "group 1", "group 2", "group 3")
        assert rec.states("iter1/top").shape == (4 * len(data), 8)
        assert rec.states("iter2/mask").shape == (400 * len(data), 4)
        for t in range(3):
            spec = rec.annotations[f"ami_iter{t}"]
            assert spec.kind == "numeric" and spec.level == "item"
            np.testing.assert_allclose(rec.annotation(f"ami_iter{t}"), measured[f"ami_iter{t}"], rtol=1e-5)
            np.testing.assert_allclose(rec.annotation(f"cost_iter{t}"), measured[f"cost_iter{t}"], rtol=1e-5)
        assert "object" in rec.annotations and "overlap" in rec.annotations
