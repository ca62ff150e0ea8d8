"""rkhs-reg (Bietti, Mialon, Chen, Mairal): the regularisers compute what they say.

Conv operator norms by power iteration equal the top singular value of the dense operator (and not the reshaped
kernel's); the gradient penalty equals the finite-difference one; reg=none is the plain objective; the adversarial
penalty is the loss at the PGD images; the spectral constraint holds after `lstmviz train`."""

import pytest
import torch
import torch.nn.functional as F

from lstmviz.engines.families.image import ImageData, SampleImages
from lstmviz.engines.vision.rkhs_reg import (RKHSRegCNN, build, conv_adjoint, conv_apply, conv_operator_norm,
                                             gradient_penalty, linear_operator_norm, logit_input_gradients,
                                             parse_reg)

DATA = ImageData(channels=1, height=8, width=8, num_classes=3)


def dense_conv_matrix(weight, height, width, padding=1):
    """The matrix of x ↦ conv2d(x, weight, padding) on [C_in, H, W] inputs, column j = A e_j."""
    cin = weight.shape[1]
    eye = torch.eye(cin * height * width, dtype=weight.dtype).view(-1, cin, height, width)
    return F.conv2d(eye, weight, padding=padding).flatten(1).T


def tiny(reg="none", seed=0, **kw):
    torch.manual_seed(seed)
    return build(1, 8, 8, 3, hidden_size=2, num_layers=3, reg=reg, **kw).double()


def batch_of(n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g, dtype=torch.float64)
    return x, {"target": torch.randint(3, (n,), generator=g), "targets": None}


def test_conv_operator_norm_is_the_top_singular_value_of_the_dense_operator_not_of_the_reshaped_kernel():
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(1, 1, 3, 3, generator=g, dtype=torch.float64)
    dense = dense_conv_matrix(weight, 6, 6)
    assert dense.shape == (36, 36)
    top = torch.linalg.matrix_norm(dense, ord=2)
    sigma, _ = conv_operator_norm(weight, 6, 6, iters=500, generator=g)
    assert abs(float(sigma) - float(top)) < 1e-4
    reshaped = torch.linalg.matrix_norm(weight.view(1, 9), ord=2)  # what torch's spectral_norm normalises
    assert abs(float(reshaped) - float(top)) > 1e-2
    # several channels, on a non-square map
    weight = torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64)
    top = torch.linalg.matrix_norm(dense_conv_matrix(weight, 5, 4), ord=2)
    sigma, v = conv_operator_norm(weight, 5, 4, iters=500, generator=g)
    assert v.shape == (1, 2, 5, 4)
    assert abs(float(sigma) - float(top)) < 1e-4


def test_the_adjoint_is_the_transpose_and_the_norm_gradient_is_the_top_singular_value_s():
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(2, 3, 3, 3, generator=g, dtype=torch.float64)
    v = torch.randn(1, 3, 4, 5, generator=g, dtype=torch.float64)
    u = torch.randn(1, 2, 4, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close((conv_apply(v, weight) * u).sum(), (v * conv_adjoint(u, weight)).sum())
    # d‖A‖_σ/dW by autograd through ‖A v‖ equals the finite difference of the dense SVD's top singular value
    w = weight.clone().requires_grad_(True)
    sigma, _ = conv_operator_norm(w, 4, 5, iters=500, generator=g)
    (grad,) = torch.autograd.grad(sigma, w)
    h = 1e-6
    for index in [(0, 0, 1, 1), (1, 2, 0, 2), (0, 1, 2, 0)]:
        up, down = weight.clone(), weight.clone()
        up[index] += h
        down[index] -= h
        fd = (torch.linalg.matrix_norm(dense_conv_matrix(up, 4, 5), ord=2)
              - torch.linalg.matrix_norm(dense_conv_matrix(down, 4, 5), ord=2)) / (2 * h)
        assert abs(float(grad[index]) - float(fd)) < 1e-5, index


def test_linear_operator_norm():
    g = torch.Generator().manual_seed(2)
    w = torch.randn(5, 7, generator=g, dtype=torch.float64)
    sigma, _ = linear_operator_norm(w, iters=500, generator=g)
    assert abs(float(sigma) - float(torch.linalg.matrix_norm(w, ord=2))) < 1e-8


def test_model_layer_norms_use_each_layers_feature_map_size_and_the_lipschitz_bound_holds():
    model = tiny(power_iters=3000)
    norms = [float(s.detach()) for s in model.layer_norms()]
    sizes = [(8, 8), (4, 4), (2, 2)]
    assert model.layer_inputs == sizes
    for conv, (h, w), sigma in zip(model.convs, sizes, norms):
        top = torch.linalg.matrix_norm(dense_conv_matrix(conv.weight.detach(), h, w), ord=2)
        assert abs(sigma - float(top)) < 1e-4 * float(top)
    assert abs(norms[-1] - float(torch.linalg.matrix_norm(model.head.weight.detach(), ord=2))) < 1e-6
    bound = model.lipschitz_bound()
    x, _ = batch_of(20, seed=3)
    xp = (x + 0.01 * torch.randn_like(x)).clamp(0, 1)
    with torch.no_grad():
        ratio = (model(x) - model(xp)).norm(dim=1) / (x - xp).flatten(1).norm(dim=1)
    assert (ratio <= bound).all() and ratio.max() > 0


def test_gradient_penalty_equals_the_finite_difference_penalty():
    model = tiny("grad", seed=1).eval()
    x, batch = batch_of(3, seed=4)
    logits, grads = logit_input_gradients(model, x)
    assert grads.shape == (3, 3, 1, 8, 8)
    h = 1e-6
    fd = torch.zeros_like(grads)
    with torch.no_grad():
        for p in range(64):
            e = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
            e.view(-1)[p] = h
            fd[:, :, 0].flatten(2)[:, :, p] = ((model(x + e) - model(x - e)) / (2 * h)).T
    torch.testing.assert_close(grads, fd, atol=1e-6, rtol=1e-5)
    expected = sum(max(float(fd[k, i].pow(2).sum()) for i in range(3)) for k in range(3))
    assert abs(float(gradient_penalty(grads)) - expected) < 1e-5 * expected
    # the training loss adds λ times it (dropout is off, so training and eval forwards agree)
    model.train()
    loss, count = model.loss(x, batch)
    clean = F.cross_entropy(model(x), batch["target"])
    assert count == 3
    torch.testing.assert_close(loss, clean + 0.1 * expected, atol=1e-6, rtol=1e-6)


def test_grad_l2_is_the_mean_squared_loss_gradient():
    model = tiny("grad-l2", lam=0.5, seed=2).train()
    x, batch = batch_of(4, seed=5)
    clean, penalty = model.regulariser(x, batch)
    expected = 0.0
    for i in range(4):
        xi = x[i:i + 1].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(xi), batch["target"][i:i + 1]), xi)
        expected += float(g.pow(2).sum()) / 4
    assert abs(float(penalty.detach()) - expected) < 1e-10
    assert penalty.requires_grad  # double back-propagation: the penalty trains the weights


def test_reg_none_is_the_plain_objective_and_eval_mode_is_plain_for_every_reg():
    x, batch = batch_of(5, seed=6)
    for reg in ("none", "grad", "grad-l2", "adv", "spectral-penalty", "spectral-constraint",
                "adv+spectral-constraint"):
        model = tiny(reg, seed=3)
        plain = F.cross_entropy(model(x), batch["target"])
        if reg == "none":
            loss, _ = model.train().loss(x, batch)
            assert torch.equal(loss, plain)
        loss, _ = model.eval().loss(x, batch)
        assert torch.equal(loss, plain), reg
        if reg not in ("none", "spectral-constraint"):
            loss, _ = model.train().loss(x, batch)
            assert loss > plain, reg  # every penalty is positive here


def test_adversarial_penalty_is_the_loss_at_the_pgd_images():
    from lstmviz.perturb.image_pgd import pgd_images

    for norm, eps in (("l2", 0.5), ("linf", 0.1)):
        model = tiny("adv", lam=2.0, eps=eps, adv_norm=norm, adv_steps=3, seed=4).train()
        x, batch = batch_of(6, seed=7)
        torch.manual_seed(11)
        loss, _ = model.loss(x, batch)
        torch.manual_seed(11)
        adv = pgd_images(model, x, batch["target"], eps=eps, norm=norm, steps=3)
        expected = F.cross_entropy(model(x), batch["target"]) + 2.0 * F.cross_entropy(model(adv), batch["target"])
        torch.testing.assert_close(loss, expected)
        assert model.training


def test_spectral_penalty_is_the_sum_of_squared_operator_norms():
    model = tiny("spectral-penalty", lam=0.01, power_iters=3000, seed=5).train()
    x, batch = batch_of(4, seed=8)
    _, penalty = model.regulariser(x, batch)
    dense = [torch.linalg.matrix_norm(dense_conv_matrix(c.weight.detach(), h, w), ord=2)
             for c, (h, w) in zip(model.convs, model.layer_inputs)]
    dense.append(torch.linalg.matrix_norm(model.head.weight.detach(), ord=2))
    expected = float(sum(s ** 2 for s in dense))
    assert abs(float(penalty.detach()) - expected) < 2e-4 * expected
    penalty.backward()
    assert all(c.weight.grad is not None and c.weight.grad.abs().sum() > 0 for c in model.convs)


def test_projection_puts_every_layer_in_the_ball_and_leaves_small_layers_alone():
    model = tiny("spectral-constraint", tau=0.5, power_iters=200, seed=6)
    before = [p.detach().clone() for p in model.parameters()]
    model.project_()
    for conv, (h, w) in zip(model.convs, model.layer_inputs):
        assert torch.linalg.matrix_norm(dense_conv_matrix(conv.weight.detach(), h, w), ord=2) <= 0.5 + 1e-6
    assert torch.linalg.matrix_norm(model.head.weight.detach(), ord=2) <= 0.5 + 1e-6
    again = [p.detach().clone() for p in model.parameters()]
    model.project_(tau=100.0)
    assert all(torch.equal(a, p) for a, p in zip(again, model.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before, again))


def test_lstmviz_train_applies_the_constraint_after_every_step(tmp_path):
    from lstmviz.engines.checkpoint import load_checkpoint
    from lstmviz.engines.training import train

    data = ImageData(channels=3, height=8, width=8, num_classes=4)
    images = SampleImages(data, images=16, seed=1)
    out = tmp_path / "c.pt"
    train("rkhs-reg", images, images, out=out, steps=15, config={"reg": "spectral-constraint", "tau": 0.7,
                                                                   "hidden_size": 4, "num_layers": 3},
          lr=0.05)
    model, meta = load_checkpoint(out)
    assert meta["config"]["reg"] == "spectral-constraint"
    for conv, (h, w) in zip(model.convs, model.layer_inputs):
        sigma = torch.linalg.matrix_norm(dense_conv_matrix(conv.weight.detach().double(), h, w), ord=2)
        assert sigma <= 0.7 * 1.02, float(sigma)  # 5 warm-started power iterations a step: a slight underestimate
    assert torch.linalg.matrix_norm(model.head.weight.detach().double(), ord=2) <= 0.7 * 1.02
    # without the constraint the same run leaves the ball: the check above is not vacuous
    train("rkhs-reg", images, images, out=out, steps=15, config={"reg": "none", "hidden_size": 4, "num_layers": 3},
          lr=0.05)
    model, _ = load_checkpoint(out)
    with torch.no_grad():
        norms = model.layer_norms(200)
    assert max(float(s) for s in norms) > 0.7 * 1.1


def test_bad_config_is_refused_in_one_sentence():
    assert parse_reg("grad+spectral-constraint") == ("grad", True)
    assert parse_reg("spectral-constraint") == ("none", True)
    assert parse_reg("adv") == ("adv", False)
    for bad in ("grad+adv", "l2", "spectral-constraint+spectral-constraint", ""):
        with pytest.raises(ValueError, match="reg"):
            tiny(bad)
    with pytest.raises(ValueError, match="tau"):
        tiny("spectral-constraint", tau=0.0)
    with pytest.raises(ValueError, match="adv_norm"):
        tiny("adv", adv_norm="l1")
    with pytest.raises(ValueError, match="adv_steps"):
        tiny("adv", adv_steps=0)
    assert isinstance(tiny(), RKHSRegCNN)
