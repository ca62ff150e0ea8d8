"""Laurent et al.'s loss models (lstmviz.perturb.loss_models / curvature / global_pruning): on an exactly
quadratic loss the QM saliency is the loss change, LM and OBD are its truncations; global masks reach the
sparsity exactly and keep pruned weights pruned; MP is OBD with H = I; the diagonal Fisher from func_grads
equals a loop over single examples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lstmviz.errors import ExpectedError
from lstmviz.perturb.curvature import local_model
from lstmviz.perturb.global_pruning import fine_tune, prune_by_loss_model
from lstmviz.perturb.loss_data import image_class_data
from lstmviz.perturb.loss_models import (count_for, global_masks, prunable_parameters, ranks, saliency,
                                         sparsity_schedule)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Quadratic(nn.Module):
    """θ (a 3 x 4 weight matrix) and L(θ) = ½ θᵀHθ + bᵀθ with a diagonal H (some curvatures negative)."""

    def __init__(self, seed=3):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.theta = nn.Parameter(torch.randn(3, 4, generator=g, dtype=torch.float64))
        self.h = torch.randn(12, generator=g, dtype=torch.float64) * 2
        self.b = torch.randn(12, generator=g, dtype=torch.float64)

    def loss_at(self, theta: torch.Tensor) -> torch.Tensor:
        t = theta.reshape(-1)
        return 0.5 * (self.h * t * t).sum() + (self.b * t).sum()


class QuadraticData:
    """Duck-typed LossData whose loss is the model's quadratic (one 'example', n = 1)."""

    total = 1.0

    def __len__(self):
        return 1

    def summed_loss(self, model, start, stop):
        return model.loss_at(model.theta)

    def evaluate(self, model):
        with torch.no_grad():
            return float(model.loss_at(model.theta)), float("nan")


def test_qm_saliency_is_the_exact_loss_change_and_lm_obd_are_its_truncations():
    model = Quadratic()
    local = local_model(model, QuadraticData(), ["theta"], "hessian")
    theta = model.theta.detach()
    torch.testing.assert_close(local.gradient["theta"].reshape(-1), model.h * theta.reshape(-1) + model.b,
                               rtol=0, atol=1e-14)
    torch.testing.assert_close(local.curvature["theta"].reshape(-1), model.h, rtol=0, atol=1e-14)
    g, h = local.gradient, local.curvature
    qm = saliency("qm", theta, g["theta"], h["theta"]).reshape(-1)
    lm = saliency("lm", theta, g["theta"], h["theta"]).reshape(-1)
    obd = saliency("obd", theta, g["theta"], h["theta"]).reshape(-1)
    base = float(model.loss_at(theta))
    for j in range(12):
        pruned = theta.clone().reshape(-1)
        pruned[j] = 0
        change = float(model.loss_at(pruned)) - base
        assert float(qm[j]) == pytest.approx(abs(change), abs=1e-12)
        second = 0.5 * float(model.h[j]) * float(theta.reshape(-1)[j]) ** 2
        assert float(lm[j]) == pytest.approx(abs(change - second), abs=1e-12)  # first-order truncation
        assert float(obd[j]) == pytest.approx(second, abs=1e-12)  # g dropped: the second-order term
    assert not torch.allclose(qm, lm) and not torch.allclose(qm, obd.abs())


def test_hutchinson_is_exact_for_a_diagonal_hessian():
    model = Quadratic()
    local = local_model(model, QuadraticData(), ["theta"], "hutchinson", samples=3, seed=5)
    torch.testing.assert_close(local.curvature["theta"].reshape(-1), model.h, rtol=0, atol=1e-14)


def test_steps_reach_each_sparsity_exactly_keep_pruned_weights_and_qm_predicts_every_step():
    model = Quadratic()
    seen = []
    result = prune_by_loss_model(model, QuadraticData(), method="qm", sparsity=0.75, steps=5, curvature="hessian",
                                 parameters=["theta"], schedule="linear",
                                 on_step=lambda step, masks: seen.append(masks["theta"]))
    schedule = sparsity_schedule(0.75, 5, "linear")
    before = torch.ones(3, 4, dtype=torch.bool)
    for step, kappa, kept in zip(result.steps, schedule, seen):
        assert step.sparsity == count_for(kappa, 12) / 12 == int((~kept).sum()) / 12
        assert step.pruned == count_for(kappa, 12) - int((~before).sum())
        assert not torch.any(kept & ~before)  # pruned before: still pruned
        # cross terms vanish for a diagonal H: the quadratic model predicts each step's change exactly
        assert step.predicted["qm"] == pytest.approx(step.measured, abs=1e-12)
        before = kept
    assert result.achieved == 9 / 12 and int((model.theta == 0).sum()) == 9
    # a pruned weight ranks -inf whatever its saliency would be, so the next step cannot revive it
    masks = result.masks
    r = ranks("qm", {"theta": model.theta.detach() + 5.0}, {"theta": torch.ones(3, 4)}, {"theta": torch.ones(3, 4)},
              masks)
    assert torch.all(r["theta"][~masks["theta"]] == -float("inf"))
    assert torch.all(torch.isfinite(r["theta"][masks["theta"]]))


def _mlp(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 9), nn.Tanh(), nn.Linear(9, 4)).to(dtype)


def _data(n=24, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 2, 3, generator=g, dtype=dtype)
    y = torch.randint(0, 4, (n,), generator=g)
    data = image_class_data(x.numpy(), y.numpy())
    data.inputs = data.inputs.to(dtype)
    return data


class Flat(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x.flatten(1))


def test_global_masks_across_parameters_are_exact_nested_and_leave_biases():
    model = Flat(_mlp())
    data = _data()
    names = prunable_parameters(model)
    assert names == ["body.0.weight", "body.2.weight"]  # biases are not pruned by default
    biases = {n: p.detach().clone() for n, p in model.named_parameters() if n.endswith("bias")}
    size = sum(model.get_parameter(n).numel() for n in names)
    seen = []
    result = prune_by_loss_model(model, data, method="lm", sparsity=0.9, steps=4, curvature="fisher",
                                 on_step=lambda step, masks: seen.append(masks))
    previous = {n: torch.ones_like(m) for n, m in result.masks.items()}
    for step, kappa, kept in zip(result.steps, sparsity_schedule(0.9, 4), seen):
        assert step.sparsity == count_for(kappa, size) / size
        assert all(not torch.any(kept[n] & ~previous[n]) for n in names)
        assert np.isfinite(step.predicted["qm"]) and np.isfinite(step.predicted["lm"])
        previous = kept
    pruned_now = {n: ~m for n, m in result.masks.items()}
    assert sum(int(m.sum()) for m in pruned_now.values()) == count_for(0.9, size)
    assert all(torch.all(model.get_parameter(n).detach()[pruned_now[n]] == 0) for n in names)
    assert all(torch.equal(biases[n], model.get_parameter(n).detach()) for n in biases)
    # both weight matrices lose weights: one global threshold, not one per layer
    assert all(int(m.sum()) > 0 for m in pruned_now.values())


def test_mp_is_obd_with_identity_curvature_and_ranks_by_magnitude():
    model = Flat(_mlp(seed=4))
    theta = {n: model.get_parameter(n).detach() for n in prunable_parameters(model)}
    ones = {n: torch.ones_like(t) for n, t in theta.items()}
    mp, obd = ranks("mp", theta, None, None), ranks("obd", theta, None, ones)
    for n in theta:
        torch.testing.assert_close(obd[n], 0.5 * mp[n], rtol=0, atol=0)
    masks = global_masks(mp, 0.5)
    flat = torch.cat([t.reshape(-1).abs() for t in theta.values()])
    cut = torch.sort(flat).values[count_for(0.5, flat.numel()) - 1]
    for n, t in theta.items():
        assert torch.all(t.abs()[~masks[n]] <= cut) and torch.all(t.abs()[masks[n]] >= cut)
    # the locality term adds ½λθ² to every saliency
    lam = saliency("lm", theta["body.0.weight"], ones["body.0.weight"], None, lam=0.2)
    torch.testing.assert_close(lam, (theta["body.0.weight"]).abs() + 0.1 * theta["body.0.weight"] ** 2)


def _loss(model, x, y):
    return nn.functional.cross_entropy(model(x[None]), y[None], reduction="sum")


def test_the_diagonal_fisher_from_func_grads_equals_a_loop_and_the_ggn_its_definition():
    model = Flat(_mlp())
    data = _data()
    names = [n for n, _ in model.named_parameters()]
    fisher = local_model(model, data, names, "fisher", chunk=7)
    assert fisher.grads_method == "vmap"
    looped = local_model(model, data, names, "fisher", chunk=7, method="loop")
    assert looped.grads_method == "loop"
    g_sum = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in model.named_parameters()}
    f_sum = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in model.named_parameters()}
    ggn = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in model.named_parameters()}
    params = list(model.parameters())
    for x, y in zip(data.inputs, data.targets[:, 0]):
        gs = torch.autograd.grad(_loss(model, x, y), params)
        for n, gi in zip(names, gs):
            g_sum[n] += gi
            f_sum[n] += gi ** 2
        logp = torch.log_softmax(model(x[None])[0], -1)
        for k in range(4):
            gk = torch.autograd.grad(logp[k], params, retain_graph=True)
            for n, gi in zip(names, gk):
                ggn[n] += float(logp[k].detach().exp()) * gi ** 2
    for n in names:
        torch.testing.assert_close(fisher.gradient[n], g_sum[n] / 24, rtol=0, atol=1e-13)
        torch.testing.assert_close(fisher.curvature[n], f_sum[n] / 24, rtol=0, atol=1e-13)
        torch.testing.assert_close(looped.curvature[n], fisher.curvature[n], rtol=0, atol=1e-13)
    exact = local_model(model, data, names, "ggn", chunk=10)
    sampled = local_model(model, data, names, "sampled-fisher", samples=400, seed=2)
    for n in names:
        torch.testing.assert_close(exact.curvature[n], ggn[n] / 24, rtol=0, atol=1e-13)
        assert not torch.allclose(exact.curvature[n], fisher.curvature[n], rtol=1e-3)  # true vs empirical
    total = lambda d: sum(float(v.sum()) for v in d.values())  # noqa: E731
    assert total(sampled.curvature) == pytest.approx(total(exact.curvature), rel=0.05)
    assert all(p.grad is None for p in model.parameters())


def test_fine_tune_keeps_pruned_weights_at_zero_and_lowers_the_loss():
    model = Flat(_mlp())
    data = _data(n=48)
    result = prune_by_loss_model(model, data, method="qm", sparsity=0.6, steps=2, curvature="ggn", lam=1e-3)
    before, _ = data.evaluate(model)
    report = fine_tune(model, data, result.masks, epochs=20, lr=0.05, batch_size=16)
    after, _ = data.evaluate(model)
    assert after < before and report["steps"] == 60
    for n, keep in result.masks.items():
        assert torch.all(model.get_parameter(n).detach()[~keep] == 0)
        assert torch.any(model.get_parameter(n).detach()[keep] != 0)


def test_mistakes_are_sentences():
    model = Flat(_mlp())
    data = _data()
    for kwargs, words in [({"method": "snip"}, "loss model 'snip' is not known"),
                          ({"method": "qm", "curvature": None}, "needs a curvature"),
                          ({"method": "mp", "sparsity": 1.0}, "up to \\(not including\\) 1"),
                          ({"method": "mp", "steps": 0}, "at least 1"),
                          ({"method": "mp", "lam": -1.0}, "at least 0"),
                          ({"method": "mp", "curvature": "kfac"}, "curvature 'kfac' is not known"),
                          ({"method": "mp", "parameters": ["nope.*"]}, "no parameter of the model matches"),
                          ({"method": "mp", "schedule": "cubic"}, "schedule 'cubic' is not known")]:
        kwargs = {"sparsity": 0.5, **kwargs}
        with pytest.raises(ExpectedError, match=words):
            prune_by_loss_model(model, data, **kwargs)
    with pytest.raises(ExpectedError, match="exact Hessian diagonal takes one backward pass per weight"):
        big = nn.Sequential(nn.Flatten(), nn.Linear(6, 1000), nn.Linear(1000, 4))
        local_model(big, _data(dtype=torch.float32), ["1.weight", "2.weight"], "hessian")


def test_schedules_end_at_the_target():
    exp, lin = sparsity_schedule(0.98, 10), sparsity_schedule(0.98, 10, "linear")
    assert exp[-1] == lin[-1] == 0.98 and np.all(np.diff(exp) > 0) and np.all(np.diff(lin) > 0)
    np.testing.assert_allclose(1 - exp[1:], (1 - exp[:-1]) * (1 - exp[0]), rtol=1e-12)  # same share each step
    np.testing.assert_allclose(np.diff(lin), 0.098, rtol=1e-12)
