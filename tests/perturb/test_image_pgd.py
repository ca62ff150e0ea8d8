"""Batched PGD on images (lstmviz.perturb.image_pgd): the ball and the box hold, the loss rises, and on a linear
model the attack reaches the closed-form worst case."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lstmviz.perturb.image_pgd import pgd_images, task_loss


class LinearBinary(nn.Module):
    """logits = [0, wᵀx + b]: class 0's loss is softplus(wᵀx + b), increasing along w."""

    def __init__(self, w, b=0.1):
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.tensor(b, dtype=w.dtype))

    def forward(self, x):
        z = x.flatten(1) @ self.w.flatten() + self.b
        return torch.stack([torch.zeros_like(z), z], dim=1)


def small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3)).double()


def test_l2_pgd_on_a_linear_binary_model_reaches_the_closed_form_worst_case():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(1, 1, 6, 6, generator=g, dtype=torch.float64)
    model = LinearBinary(w)
    x = 0.5 + 0.05 * torch.rand(4, 1, 6, 6, generator=g, dtype=torch.float64)  # far from the box's faces
    y = torch.zeros(4, dtype=torch.long)
    eps = 0.3
    adv = pgd_images(model, x, y, eps=eps, norm="l2", steps=10, random_start=False)
    expected = x + eps * w / w.norm()  # argmax over the l2 ball of wᵀ(x + δ): δ = ε w/‖w‖
    torch.testing.assert_close(adv, expected, atol=1e-12, rtol=0)
    with torch.no_grad():
        worst = F.softplus(x.flatten(1) @ w.flatten() + 0.1 + eps * w.norm())
        torch.testing.assert_close(task_loss(model(adv), y), worst)
    # from a random start the part orthogonal to w shrinks at every projection onto the ball (a geometric
    # rate with steps as large as the ball); the loss gets within a hair of the worst case
    adv = pgd_images(model, x, y, eps=eps, norm="l2", steps=40, step_size=eps, random_start=True,
                     generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (task_loss(model(adv), y) <= worst + 1e-12).all()
        assert (task_loss(model(adv), y) >= worst - 1e-6).all()


def test_linf_pgd_on_a_linear_model_reaches_the_box_clipped_corner():
    g = torch.Generator().manual_seed(2)
    w = torch.randn(1, 1, 5, 5, generator=g, dtype=torch.float64)
    model = LinearBinary(w)
    x = torch.rand(3, 1, 5, 5, generator=g, dtype=torch.float64)
    x[0, 0, 0, :] = 0.0  # pixels on the box's faces: the clip binds there
    x[1, 0, 1, :] = 1.0
    y = torch.zeros(3, dtype=torch.long)
    eps = 0.2
    adv = pgd_images(model, x, y, eps=eps, norm="linf", steps=8, random_start=True,
                     generator=torch.Generator().manual_seed(3))
    expected = (x + eps * w.sign()).clamp(0, 1)  # the best corner of the cube, clipped to [0, 1]
    torch.testing.assert_close(adv, expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_pgd_stays_in_the_ball_and_the_box_and_raises_the_loss(norm):
    model = small_cnn()
    g = torch.Generator().manual_seed(4)
    x = torch.rand(16, 1, 6, 6, generator=g, dtype=torch.float64)
    x[:, :, :2] = 0.0  # dark rows, as on digits
    y = torch.randint(3, (16,), generator=g)
    eps = 0.5 if norm == "l2" else 0.1
    adv = pgd_images(model, x, y, eps=eps, norm=norm, steps=10, generator=torch.Generator().manual_seed(5))
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert adv.min() >= 0 and adv.max() <= 1
    d = (adv - x).flatten(1)
    size = d.norm(dim=1) if norm == "l2" else d.abs().max(dim=1).values
    assert (size <= eps * (1 + 1e-9)).all()
    assert (size > 0.5 * eps).all()  # it does move
    with torch.no_grad():
        clean, attacked = task_loss(model(x), y), task_loss(model(adv), y)
    assert (attacked >= clean).all() and attacked.mean() > clean.mean() * 1.05


def test_pgd_writes_no_parameter_grad_restores_the_mode_and_is_seeded():
    model = small_cnn().train()
    x = torch.rand(5, 1, 6, 6, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1])
    a = pgd_images(model, x, y, eps=0.3, steps=3, generator=torch.Generator().manual_seed(7))
    b = pgd_images(model, x, y, eps=0.3, steps=3, generator=torch.Generator().manual_seed(7))
    c = pgd_images(model, x, y, eps=0.3, steps=3, generator=torch.Generator().manual_seed(8))
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(a, b) and not torch.equal(a, c)
    model.eval()
    pgd_images(model, x, y, eps=0.3, steps=1)
    assert not model.training


def test_pgd_multilabel_targets_use_bce():
    torch.manual_seed(0)
    model = small_cnn()
    x = torch.rand(4, 1, 6, 6, dtype=torch.float64)
    t = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.float64)
    adv = pgd_images(model, x, t, eps=0.5, steps=5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (task_loss(model(adv), t) > task_loss(model(x), t)).all()


def test_bad_arguments_are_refused_in_one_sentence():
    model = small_cnn()
    x = torch.rand(2, 1, 6, 6, dtype=torch.float64)
    y = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="norm"):
        pgd_images(model, x, y, eps=0.1, norm="l1")
    with pytest.raises(ValueError, match="eps"):
        pgd_images(model, x, y, eps=-1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pgd_images(model, x * 3, y, eps=0.1)
    with pytest.raises(ValueError, match="batch"):
        pgd_images(model, x[0], y, eps=0.1)
    assert torch.equal(pgd_images(model, x, y, eps=0.0), x)
