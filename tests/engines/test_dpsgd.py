"""DP-SGD (engines/dpsgd.py) and its RDP accountant (engines/rdp_accountant.py): clipping bounds every
example's gradient and so the sensitivity of the sum, vmap equals a loop, σ = 0 and C = ∞ is plain SGD on the
averaged loss, the noise has std σC/(qN), Poisson lots, ε against opacus and against stored constants,
batch-norm engines refused, and the option through the training loop (ε in the progress line and metrics)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lstmviz.engines import func_grads
from lstmviz.engines import rdp_accountant as rdp
from lstmviz.engines.dpsgd import DPSGD, clipped_sum, per_example_norms, privatize, refuse_batch_norm
from lstmviz.engines.spec import ConfigError


class _Rows:
    """A minimal objective: rows of a table with class labels, one example per row."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def dp_examples(self):
        return (self.x, self.y), "a row"

    def example_loss(self, call, example):
        x, y = example
        return F.cross_entropy(call(x[None]), y[None])


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def _data(n=40, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g, dtype=torch.float64) * 3, torch.randint(0, 3, (n,), generator=g)


def _settings(**kw):
    return {"batch_size": 8, "dp_rate": None, "dp_clip": 1.0, "dp_noise": 1.0, "dp_delta": 1e-5, **kw}


def _grads(model, x, y, method="auto"):
    return func_grads.per_example_grads(model, _Rows(x, y).example_loss, (x, y), method=method)


def _norm(tensors) -> float:
    return float(torch.sqrt(sum((t ** 2).sum() for t in tensors.values())))


# ------------------------------------------------------------------------------------------------ clipping


def test_every_clipped_example_gradient_is_within_the_clip():
    model = _mlp()
    x, y = _data()
    grads = _grads(model, x, y)
    clip = 0.3
    assert (per_example_norms(grads) > clip).sum() >= 10  # the bound is actually exercised
    for i in range(len(x)):
        one, _ = clipped_sum({k: g[i:i + 1] for k, g in grads.items()}, clip)
        assert _norm(one) <= clip + 1e-6


def test_one_example_changes_the_clipped_sum_by_at_most_2c_and_adding_one_by_at_most_c():
    model = _mlp()
    x, y = _data()
    clip = 0.5
    summed, _ = clipped_sum(_grads(model, x, y), clip)
    x2, y2 = x.clone(), y.clone()
    x2[0], y2[0] = 1e3, (y[0] + 1) % 3  # an outlier: its raw gradient is huge
    replaced, _ = clipped_sum(_grads(model, x2, y2), clip)
    assert _norm({k: summed[k] - replaced[k] for k in summed}) <= 2 * clip + 1e-6
    removed, _ = clipped_sum(_grads(model, x[1:], y[1:]), clip)
    assert _norm({k: summed[k] - removed[k] for k in summed}) <= clip + 1e-6


# ------------------------------------------------------------------------------------------------ the step


def _dp_step(model, x, y, method, seed=5, **settings):
    dp = DPSGD(model, _Rows(x, y), _settings(**settings), "mlp")
    dp.method = method
    torch.manual_seed(seed)
    loss, count = dp.step(model)
    return {n: p.grad.clone() for n, p in model.named_parameters()}, dp, loss, count


def test_vmap_equals_the_loop_over_single_examples():
    x, y = _data()
    by_vmap, dp, _, count = _dp_step(_mlp(), x, y, "vmap", dp_clip=0.4, dp_noise=0.8, dp_rate=0.5)
    assert dp.method_used == "vmap" and 0 < count < len(x)
    by_loop, dp, _, _ = _dp_step(_mlp(), x, y, "loop", dp_clip=0.4, dp_noise=0.8, dp_rate=0.5)
    assert dp.method_used == "loop"
    for name in by_vmap:
        torch.testing.assert_close(by_vmap[name], by_loop[name], rtol=0, atol=1e-12)


def test_no_noise_and_no_clip_with_everyone_sampled_is_plain_sgd_on_the_averaged_loss():
    x, y = _data()
    lr = 0.1
    model = _mlp()
    _, _, loss, count = _dp_step(model, x, y, "auto", dp_clip=math.inf, dp_noise=0.0, dp_rate=1.0)
    assert count == len(x)  # q = 1: Poisson sampling takes everyone, so qN is the realised lot size
    torch.optim.SGD(model.parameters(), lr=lr).step()

    reference = _mlp()  # the same start; the average of the per-example gradients, one SGD step
    mean = {k: g.sum(0) / len(x) for k, g in _grads(reference, x, y).items()}
    for name, p in reference.named_parameters():
        p.grad = mean[name]
    torch.optim.SGD(reference.parameters(), lr=lr).step()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.equal(p, q), name  # bitwise: nothing clipped, nothing added, divided by exactly N

    autograd = _mlp()  # and the batch gradient of the mean loss, up to the order of the sums
    F.cross_entropy(autograd(x), y).backward()
    torch.optim.SGD(autograd.parameters(), lr=lr).step()
    for p, q in zip(model.parameters(), autograd.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-14)
    torch.testing.assert_close(loss, F.cross_entropy(_mlp()(x), y), rtol=0, atol=1e-12)


def test_the_noise_has_std_sigma_c_over_the_expected_lot_on_the_sum():
    summed = {"w": torch.zeros(200, 500, dtype=torch.float64), "b": torch.full((7,), 3.0, dtype=torch.float64)}
    sigma, clip, lot = 1.3, 0.7, 50.0
    torch.manual_seed(0)
    out = privatize(summed, clip, sigma, lot)
    noise = out["w"].reshape(-1)
    assert abs(float(noise.std()) / (sigma * clip / lot) - 1) < 0.02  # 100k draws: ~0.2% sampling error
    assert abs(float(noise.mean())) < 4 * sigma * clip / lot / math.sqrt(noise.numel())
    assert out["b"].mean().item() == pytest.approx(3.0 / lot, abs=0.05)  # the sum itself is divided by qN


def test_lots_are_poisson_samples_of_rate_q():
    x, y = _data(n=200)
    model = _mlp()
    dp = DPSGD(model, _Rows(x, y), _settings(dp_rate=0.1, dp_noise=0.5), "mlp")
    torch.manual_seed(0)
    sizes = [dp.step(model)[1] for _ in range(60)]
    assert len(set(sizes)) > 5  # not a fixed batch size
    mean = sum(sizes) / len(sizes)
    assert abs(mean - 20) < 4 * math.sqrt(200 * 0.1 * 0.9 / 60)
    record = dp.metrics()["privacy"]
    assert record["expected_lot"] == pytest.approx(20.0) and len(record["clipped_fraction_history"]) == 20
    assert dp.metrics()["dp_epsilon"] == pytest.approx(rdp.epsilon(0.1, 0.5, 60, 1e-5))


def test_the_default_rate_is_batch_size_over_examples():
    x, y = _data(n=64)
    dp = DPSGD(_mlp(), _Rows(x, y), _settings(batch_size=16), "mlp")
    assert dp.q == 0.25 and dp.expected_lot == 16


# ------------------------------------------------------------------------------------------------ accountant

#: ε of (q, σ, T, δ), computed once by engines/rdp_accountant.py and cross-checked against opacus 1.6.0's
#: RDPAccountant (relative difference < 1e-11 for each)
STORED = [
    ((0.01, 1.1, 10000, 1e-5), 5.631992368568853),
    ((0.05, 0.7, 600, 1e-5), 20.088802141153284),
    ((0.05, 4.0, 600, 1e-5), 1.3123177918891864),
    ((0.256, 1.0, 100, 1e-5), 20.690590215032945),
    ((1.0, 2.0, 10, 1e-5), 8.079406222420491),
    ((0.001, 0.5, 1000, 1e-6), 5.329067567390163),
]


@pytest.mark.parametrize("params, expected", STORED)
def test_epsilon_equals_the_stored_constants(params, expected):
    assert rdp.epsilon(*params) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("params", [p for p, _ in STORED])
def test_epsilon_equals_opacus_rdp_accountant(params):
    pytest.importorskip("opacus")
    from opacus.accountants import RDPAccountant

    q, sigma, steps, delta = params
    accountant = RDPAccountant()
    accountant.history = [(sigma, q, steps)]
    theirs = accountant.get_epsilon(delta=delta, alphas=list(rdp.DEFAULT_ORDERS))
    assert rdp.epsilon(q, sigma, steps, delta) == pytest.approx(theirs, rel=1e-9)


def test_epsilon_grows_with_steps_and_rate_and_shrinks_with_noise():
    base = rdp.epsilon(0.05, 1.0, 200, 1e-5)
    assert rdp.epsilon(0.05, 1.0, 400, 1e-5) > base
    assert rdp.epsilon(0.1, 1.0, 200, 1e-5) > base
    assert rdp.epsilon(0.05, 2.0, 200, 1e-5) < base
    assert rdp.epsilon(0.05, 0.0, 1, 1e-5) == math.inf
    assert rdp.Accountant(0.05, 1.0, 1e-5).epsilon(200) == pytest.approx(base, rel=1e-12)


# ------------------------------------------------------------------------------------------------ refusals


def test_batch_norm_is_refused_naming_the_layer():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    with pytest.raises(ConfigError, match=r"BatchNorm1d at '1'.*LayerNorm"):
        refuse_batch_norm(model, "toy")
    refuse_batch_norm(nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)), "toy")  # per-example: fine


def test_the_projects_own_batch_norm_cells_are_refused(tmp_path):
    from lstmviz.datasets import load_dataset
    from lstmviz.engines.training import train

    data = load_dataset("parens", "train", tokens=2000, item_length=100)
    with pytest.raises(ConfigError, match=r"bn-lstm.*StepwiseBatchNorm"):
        train("bn-lstm", data, None, out=tmp_path / "x.pt", steps=1, privacy="dpsgd", batch_size=4, bptt=10,
              config={"hidden_size": 8, "embedding_dim": 4})
    assert not (tmp_path / "x.pt").exists()


# ------------------------------------------------------------------------------------------------ training loop


def test_privacy_through_the_training_loop_reports_epsilon(tmp_path):
    from lstmviz.datasets import load_dataset
    from lstmviz.engines.training import train
    from lstmviz.tasks import Task

    lines = []
    task = Task(lambda done, total, message: lines.append(message))
    data = load_dataset("digits", "train")
    metrics = train("cnn", data, None, out=tmp_path / "dp.pt", task=task, steps=3, privacy="dpsgd", dp_rate=0.02,
                    dp_noise=1.1, dp_clip=0.5, lr=0.1, optimizer="sgd", eval_every=0,
                    config={"hidden_size": 4, "num_layers": 2})
    expected = rdp.epsilon(0.02, 1.1, 3, 1e-5)
    assert metrics["dp_epsilon"] == pytest.approx(expected)
    assert metrics["privacy"]["steps"] == 3 and metrics["privacy"]["example"] == "an image"
    assert metrics["privacy"]["per_example_gradients"] == "vmap"
    assert lines[-1].endswith(f"ε {expected:.2f}")


def test_privacy_without_noise_or_clip_follows_full_batch_sgd_through_the_loop(tmp_path):
    """q = 1, σ = 0, C = ∞ through train(): the same weights as full-batch SGD (the shared clip off)."""
    from lstmviz.datasets import load_dataset
    from lstmviz.engines.checkpoint import load_checkpoint
    from lstmviz.engines.training import train

    data = load_dataset("digits", "train")
    common = dict(steps=2, lr=0.5, optimizer="sgd", eval_every=0, config={"hidden_size": 4, "num_layers": 2})
    train("cnn", data, None, out=tmp_path / "dp.pt", privacy="dpsgd", dp_rate=1.0, dp_noise=0.0, dp_clip="inf",
          **common)
    train("cnn", data, None, out=tmp_path / "sgd.pt", batch_size=len(data), clip=0, **common)
    dp, sgd = (load_checkpoint(tmp_path / f)[0].state_dict() for f in ("dp.pt", "sgd.pt"))
    for name in dp:
        torch.testing.assert_close(dp[name], sgd[name], rtol=1e-4, atol=1e-6)


def test_a_language_model_window_is_the_privacy_unit(tmp_path):
    from lstmviz.datasets import load_dataset
    from lstmviz.engines.training import train

    data = load_dataset("parens", "train", tokens=2000, item_length=100)
    metrics = train("lstm", data, None, out=tmp_path / "lm.pt", steps=2, privacy="dpsgd", dp_rate=0.05, bptt=10,
                    batch_size=4, eval_every=0, config={"hidden_size": 8, "embedding_dim": 4})
    record = metrics["privacy"]
    assert record["example"] == "a window of 11 tokens"
    assert record["examples"] == 4 * ((2000 // 4 - 1) // 10)


def test_node_classification_is_refused_in_words(tmp_path):
    from lstmviz.datasets import load_dataset
    from lstmviz.engines.training import train

    with pytest.raises(ConfigError, match="node task.*graph-classification"):
        train("chebnet", load_dataset("karate", "train"), None, out=tmp_path / "g.pt", steps=1, privacy="dpsgd")
