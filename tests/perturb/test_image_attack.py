"""Adversarial images: Szegedy's box L-BFGS and PGD on image models (defining test: a linear softmax model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lstmviz.errors import ExpectedError
from lstmviz.hooks import SCALAR, Tap
from lstmviz.perturb.image_attack import lbfgs_image_attack, pgd_image_attack
from lstmviz.tasks import Cancelled, Task

SHAPE = (1, 4, 5)  # 20 pixels


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class LinearSoftmax(nn.Module):
    """``z = W vec(x) + b`` in float64, with taps on the input vector and the logits."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.linear = nn.Linear(weight.shape[1], weight.shape[0]).double()
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            self.linear.bias.copy_(bias)
        self.input_tap = Tap("input", layout=SCALAR, axis="image")
        self.logits_tap = Tap("logits", layout=SCALAR, axis="image")

    def forward(self, images):
        return self.logits_tap(self.linear(self.input_tap(images.flatten(1))))


def linear_case(seed: int, distance: float = 0.1, classes: int = 2):
    """A linear model, an image inside (0.3, 0.7) classified as 0, and the closed-form distance to class 1."""
    g = torch.Generator().manual_seed(seed)
    d = int(np.prod(SHAPE))
    w = torch.randn(classes, d, generator=g, dtype=torch.float64) * 2.0
    x = 0.3 + 0.4 * torch.rand(SHAPE, generator=g, dtype=torch.float64)
    dw = w[1] - w[0]
    b = torch.zeros(classes, dtype=torch.float64)
    b[1] = -(dw @ x.flatten()) - distance * dw.norm()  # margin of class 0 over 1 is distance * |dw|
    model = LinearSoftmax(w, b)
    closed = float(abs(dw @ x.flatten() + (b[1] - b[0])) / dw.norm())
    return model, x, closed


@pytest.mark.parametrize("seed", range(5))
def test_lbfgs_reaches_the_closed_form_distance_on_a_linear_model(seed):
    """Szegedy V2 (c): box inactive, 2 classes: |r| within 1% of |(w_t-w_o).x + b_t-b_o| / |w_t-w_o|."""
    model, x, closed = linear_case(seed)
    assert closed == pytest.approx(0.1)
    with torch.no_grad():
        assert int(model(x[None]).argmax()) == 0
    out = lbfgs_image_attack(model, x, target=1, bisect_steps=20)
    assert out.flipped and out.adversarial_prediction == 1 and out.clean_prediction == 0
    assert out.l2 == pytest.approx(closed, rel=0.01)
    assert out.l2 >= closed * (1 - 1e-6)  # nothing below the minimum reaches the target
    # the box [0, 1] holds exactly and adversarial = image + r
    assert out.adversarial.min() >= 0.0 and out.adversarial.max() <= 1.0
    np.testing.assert_array_equal(out.image + out.r, out.adversarial)
    # the minimiser points along w_t - w_o
    dw = (model.linear.weight[1] - model.linear.weight[0]).detach().numpy()
    cos = out.r.ravel() @ dw / (np.linalg.norm(out.r) * np.linalg.norm(dw))
    assert cos > 0.9999
    assert out.details["c"] is not None and len(out.details["trace"]) > 20


def test_few_bisection_steps_overshoot_the_minimum():
    """The pitfall: with no bisection, the grid's c pushes past the boundary (ratio clearly > 1)."""
    model, x, closed = linear_case(0)
    coarse = lbfgs_image_attack(model, x, target=1, c_grid=(1e-3, 1e0, 1e3), bisect_steps=0)
    fine = lbfgs_image_attack(model, x, target=1, c_grid=(1e-3, 1e0, 1e3), bisect_steps=25)
    assert coarse.flipped and fine.flipped
    assert coarse.l2 > 1.05 * closed
    assert fine.l2 == pytest.approx(closed, rel=0.01)


def test_lbfgs_box_active_holds_exactly_and_still_reaches_the_target():
    """Pixels near the upper face where the free direction goes up: the box cuts it, and holds exactly."""
    model, x, closed = linear_case(1, distance=0.3)
    dw = (model.linear.weight[1] - model.linear.weight[0]).detach()
    x = torch.where(dw.view(SHAPE) > 0, torch.tensor(0.97, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64))
    b1 = -(dw @ x.flatten()) - 0.3 * dw.norm()
    with torch.no_grad():
        model.linear.bias[1] = b1
    out = lbfgs_image_attack(model, x, target=1, bisect_steps=15)
    assert out.flipped
    assert out.adversarial.min() >= 0.0 and out.adversarial.max() <= 1.0
    assert (out.adversarial == 1.0).sum() >= 1  # the box binds: pixels sit exactly on the upper face
    assert out.l2 > 0.3 * 1.001  # the unconstrained minimum is out of reach


def test_tap_deltas_and_amplification_are_exact_on_a_linear_model():
    model, x, _ = linear_case(2)
    out = lbfgs_image_attack(model, x, target=1, bisect_steps=6, taps=["input", "logits"])
    w = model.linear.weight.detach().numpy()
    assert out.deltas["input"].shape == (1, 20) and out.deltas["logits"].shape == (1, 2)
    np.testing.assert_allclose(out.deltas["input"][0], out.r.ravel(), atol=1e-12)
    np.testing.assert_allclose(out.deltas["logits"][0], w @ out.r.ravel(), atol=1e-12)
    assert out.amplification["input"] == pytest.approx(1.0)
    assert out.amplification["logits"] == pytest.approx(np.linalg.norm(w @ out.r.ravel()) / out.l2)
    assert out.amplification["logits"] <= np.linalg.norm(w, 2) + 1e-12  # below the operator norm


def test_untargeted_lbfgs_flips_to_the_nearest_boundary():
    model, x, _ = linear_case(3, classes=4)
    with torch.no_grad():
        z = model(x[None])[0]
    clean = int(z.argmax())
    out = lbfgs_image_attack(model, x, n_targets=3, bisect_steps=12)
    assert out.flipped and out.adversarial_prediction != clean and out.target is None
    w, b = model.linear.weight.detach(), model.linear.bias.detach()
    distances = [float(abs((w[t] - w[clean]) @ x.flatten() + b[t] - b[clean]) / (w[t] - w[clean]).norm())
                 for t in range(4) if t != clean]
    # the nearest of the linear boundaries (unconstrained, the box is far) bounds the flip from below
    assert out.l2 >= min(distances) * (1 - 1e-6)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_pgd_flips_iff_the_budget_covers_the_boundary(norm):
    model, x, closed = linear_case(4)
    dw = (model.linear.weight[1] - model.linear.weight[0]).detach()
    # the minimal linf distance to a linear boundary is the margin over |dw|_1
    need = closed if norm == "l2" else closed * float(dw.norm()) / float(dw.abs().sum())
    above = pgd_image_attack(model, x, eps=1.05 * need, norm=norm, target=1, steps=60)
    below = pgd_image_attack(model, x, eps=0.95 * need, norm=norm, target=1, steps=60)
    assert above.flipped and above.adversarial_prediction == 1
    assert not below.flipped and below.adversarial_prediction == 0
    for out, eps in ((above, 1.05 * need), (below, 0.95 * need)):
        size = out.l2 if norm == "l2" else out.linf
        assert size <= eps * (1 + 1e-9)
        assert out.adversarial.min() >= 0.0 and out.adversarial.max() <= 1.0


def test_pgd_untargeted_with_random_start_is_seeded():
    model, x, closed = linear_case(0)
    a = pgd_image_attack(model, x, eps=2 * closed, random_start=True, seed=3, steps=10)
    b = pgd_image_attack(model, x, eps=2 * closed, random_start=True, seed=3, steps=10)
    np.testing.assert_array_equal(a.r, b.r)
    assert a.flipped and a.adversarial_prediction == 1


def test_cnn_engine_float32_attack_and_conv_tap_deltas():
    """A (random) cnn engine: the float32 path, an IMAGE tap's [positions, units] delta."""
    from lstmviz.engines import build_engine

    # seed 3: the runner-up class is reachable inside the [0, 1] box by a clear logit margin (0.045, by projected
    # Adam); seed 0's was reachable by 3e-4 at best, which one CPU's arithmetic (and scipy's L-BFGS-B) found and
    # another's did not
    torch.manual_seed(3)
    model = build_engine("cnn", channels=1, height=8, width=8, num_classes=10, task="class", hidden_size=4,
                         num_layers=2)
    image = torch.rand(1, 8, 8)
    with torch.no_grad():
        z = model(image[None])[0]
    target = int(z.argsort()[-2])
    out = lbfgs_image_attack(model, image, target=target, bisect_steps=4, taps=["conv0", "logits"])
    assert out.flipped and out.adversarial_prediction == target
    assert out.adversarial.min() >= 0.0 and out.adversarial.max() <= 1.0
    assert out.deltas["conv0"].shape == (64, 4) and out.deltas["logits"].shape == (1, 10)
    with torch.no_grad():
        dz = model(torch.as_tensor(out.adversarial, dtype=torch.float32)[None])[0] - z
    np.testing.assert_allclose(out.deltas["logits"][0], dz.numpy(), atol=1e-5)
    assert model.training  # the model's own flag is back


def test_refusals_and_cancel():
    model, x, _ = linear_case(0)
    with pytest.raises(ExpectedError, match="target class"):
        lbfgs_image_attack(model, x, target=5)
    with pytest.raises(ExpectedError, match="already classified as class 0"):
        lbfgs_image_attack(model, x, target=0)
    with pytest.raises(ExpectedError, match="one image"):
        lbfgs_image_attack(model, x[0], target=1)
    with pytest.raises(ExpectedError, match="eps"):
        pgd_image_attack(model, x, eps=0.0)
    with pytest.raises(ExpectedError, match="c_grid"):
        lbfgs_image_attack(model, x, target=1, c_grid=())
    model.task = "multilabel"
    with pytest.raises(ExpectedError, match="multilabel"):
        lbfgs_image_attack(model, x, target=1)
    model.task = "class"
    task = Task()
    task.cancel()
    with pytest.raises(Cancelled):
        lbfgs_image_attack(model, x, target=1, task=task)
    seen = []
    lbfgs_image_attack(model, x, target=1, bisect_steps=2, task=Task(lambda d, t, m: seen.append((d, t))))
    assert seen and seen[-1][0] == len(seen) and all(t == 6 + 2 for _, t in seen)
