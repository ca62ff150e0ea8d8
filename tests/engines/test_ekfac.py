"""K-FAC / EKFAC preconditioning (engines/ekfac.py): the re-estimated diagonal is diag(Uᵀ F U) of the true
per-example Fisher, it approximates F at least as well as K-FAC's S_G ⊗ S_A, K-FAC's reconstruction is G ⊗ A,
and on a rank-one Fisher the EKFAC step is the exact damped natural-gradient step; the training option runs on
an image engine and a recurrent language model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lstmviz.engines import func_grads
from lstmviz.engines.ekfac import KroneckerPreconditioner
from lstmviz.engines.spec import ConfigError


def _correlated(n: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mixing = torch.randn(d, d, generator=g, dtype=torch.float64)
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ mixing + 0.5


def _fisher_and_layer_grads(model, x, y, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(F = mean_i vec∇_i vec∇_iᵀ of the layer's [W | b], the per-example bias gradients g_i [N, out])."""
    def loss_of(call, example):
        xi, yi = example
        return nn.functional.cross_entropy(call(xi[None]), yi[None])

    grads = func_grads.per_example_grads(model, loss_of, (x, y), method="loop")
    prefix = f"{layer}." if layer else ""
    w, b = grads[f"{prefix}weight"], grads[f"{prefix}bias"]
    per_example = torch.cat([w, b[:, :, None]], dim=2).reshape(len(x), -1)  # row-major vec of [out, in+1]
    return per_example.T @ per_example / len(x), b


def _step_statistics(model, x, y, mode="ekfac") -> KroneckerPreconditioner:
    pre = KroneckerPreconditioner(model, mode=mode)
    nn.functional.cross_entropy(model(x), y).backward()  # the mean over the batch, as the training losses are
    pre.update()
    pre.remove()
    return pre


def _layer(pre, name):
    return next(layer for layer in pre.layers if layer.name == name)


def test_ekfac_diagonal_is_the_diagonal_of_the_fisher_in_the_eigenbasis():
    torch.manual_seed(0)
    model = nn.Linear(6, 4).double()
    x = _correlated(256, 6)
    y = torch.randint(0, 4, (256,))
    pre = _step_statistics(model, x, y)
    layer = _layer(pre, "")
    fisher, _ = _fisher_and_layer_grads(model, x, y, "")
    u = torch.kron(layer.UG, layer.UA)
    torch.testing.assert_close(layer.s.reshape(-1), torch.diagonal(u.T @ fisher @ u), rtol=1e-10, atol=1e-14)


def test_kfac_factors_are_the_per_example_second_moments_and_reconstruct_g_kron_a():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
    x = _correlated(128, 5, seed=1)
    y = torch.randint(0, 3, (128,))
    pre = _step_statistics(model, x, y, mode="kfac")
    for name, inputs in (("0", x), ("2", torch.tanh(model[0](x)).detach())):
        layer = _layer(pre, name)
        homogeneous = torch.cat([inputs, torch.ones(len(inputs), 1, dtype=inputs.dtype)], dim=1)
        torch.testing.assert_close(layer.A, homogeneous.T @ homogeneous / len(x), rtol=1e-10, atol=1e-12)
        _, g = _fisher_and_layer_grads(model, x, y, name)  # the bias gradient of an example is its g
        torch.testing.assert_close(layer.G, g.T @ g / len(x), rtol=1e-10, atol=1e-14)  # the batch-size scaling
        u = torch.kron(layer.UG, layer.UA)
        reconstruction = u @ torch.diag(torch.kron(layer.SG, layer.SA)) @ u.T
        torch.testing.assert_close(reconstruction, torch.kron(layer.G, layer.A), rtol=1e-9, atol=1e-12)


def test_ekfac_approximates_the_fisher_at_least_as_well_as_kfac_on_a_small_mlp():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 4)).double()
    x = _correlated(256, 8, seed=2)
    y = torch.randint(0, 4, (256,))
    pre = _step_statistics(model, x, y)
    for name in ("0", "2"):
        layer = _layer(pre, name)
        fisher, _ = _fisher_and_layer_grads(model, x, y, name)
        u = torch.kron(layer.UG, layer.UA)
        ekfac_error = torch.linalg.norm(fisher - u @ torch.diag(layer.s.reshape(-1)) @ u.T)
        kfac_error = torch.linalg.norm(fisher - u @ torch.diag(torch.kron(layer.SG, layer.SA)) @ u.T)
        assert ekfac_error <= kfac_error
        assert kfac_error > 1.05 * ekfac_error  # not a tie: K-FAC's independence assumption costs here


def test_one_example_scalar_output_gives_the_exact_damped_natural_gradient_step():
    torch.manual_seed(3)
    model = nn.Linear(5, 1).double()
    x = torch.randn(1, 5, dtype=torch.float64)
    damping = 1e-2
    pre = KroneckerPreconditioner(model, mode="ekfac", damping=damping)
    (0.5 * (model(x) - 2.0) ** 2).mean().backward()
    v = torch.cat([model.weight.grad.reshape(-1), model.bias.grad]).clone()
    pre.step()
    pre.remove()
    fisher = torch.outer(v, v)  # one example: the Fisher is rank one
    natural = torch.linalg.solve(fisher + damping * torch.eye(6, dtype=torch.float64), v)
    got = torch.cat([model.weight.grad.reshape(-1), model.bias.grad])
    torch.testing.assert_close(got, natural, rtol=1e-9, atol=1e-12)
    assert not torch.allclose(got, v / damping)  # the curvature did something


def test_weights_shared_over_time_sum_the_per_step_gradients_per_example():
    """A Linear applied at every step of a sequence: s* is built from each sequence's summed gradient."""
    torch.manual_seed(4)
    layer = nn.Linear(3, 2).double()
    x = torch.randn(16, 5, 3, dtype=torch.float64)  # [examples, time, in]
    target = torch.randn(16, 5, 2, dtype=torch.float64)
    pre = KroneckerPreconditioner(layer, mode="ekfac")
    ((layer(x) - target) ** 2).sum(dim=(1, 2)).mean().backward()
    pre.update()
    pre.remove()

    def loss_of(call, example):
        xi, ti = example
        return ((call(xi[None]) - ti[None]) ** 2).sum()

    grads = func_grads.per_example_grads(layer, loss_of, (x, target), method="loop")
    per_example = torch.cat([grads["weight"], grads["bias"][:, :, None]], dim=2)
    state = pre.layers[0]
    coordinates = state.UG.T @ per_example @ state.UA
    torch.testing.assert_close(state.s, (coordinates ** 2).mean(0), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------- the training option


def _train(engine, dataset, tmp_path, options=None, config=None, **settings):
    from lstmviz.datasets import load_dataset
    from lstmviz.engines.checkpoint import load_checkpoint
    from lstmviz.engines.training import train

    options = options or {}
    out = tmp_path / f"{engine}-{settings.get('optimizer', 'x')}.pt"
    metrics = train(engine, load_dataset(dataset, "train", **options), None, out=out, config=config, **settings)
    return metrics, load_checkpoint(out)[0]


def test_ekfac_trains_an_image_engine_and_says_which_parameters_it_preconditioned(tmp_path):
    common = dict(steps=4, batch_size=16, lr=0.05, eval_every=0, clip=0)
    metrics, model = _train("cnn", "digits", tmp_path, config={"hidden_size": 4, "num_layers": 2}, optimizer="ekfac", **common)
    info = metrics["preconditioner"]
    assert info["mode"] == "ekfac" and info["fisher"] == "empirical"
    linear = {n for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    assert linear and {p.rpartition(".")[0] for p in info["preconditioned"]} == linear
    assert any(p.startswith("convs") for p in info["plain_sgd"])
    _, sgd_model = _train("cnn", "digits", tmp_path, config={"hidden_size": 4, "num_layers": 2}, optimizer="sgd", **common)
    for name in info["preconditioned"]:  # same seed and data: only the preconditioning differs
        assert not torch.equal(model.state_dict()[name], sgd_model.state_dict()[name])


@pytest.mark.parametrize("fisher", ["empirical", "sampled"])
def test_ekfac_trains_a_recurrent_language_model(tmp_path, fisher):
    metrics, _ = _train("lstm", "parens", tmp_path, options={"tokens": 3000, "item_length": 100},
                        config={"hidden_size": 12, "embedding_dim": 8}, optimizer="ekfac", ekfac_fisher=fisher,
                        ekfac_refresh=2, steps=5, batch_size=4, bptt=10, lr=0.05, eval_every=0)
    info = metrics["preconditioner"]
    assert info["fisher"] == fisher and info["eigenbasis_refreshes"] == 3
    assert "decoder.weight" in info["preconditioned"]
    assert "layers.0.weight_hh" in info["plain_sgd"]  # recurrent weights are no nn.Linear: plain SGD
    assert torch.isfinite(torch.tensor(metrics["train_loss"]))


def test_sampled_fisher_is_refused_in_words_where_labels_cannot_be_sampled(tmp_path):
    with pytest.raises(ConfigError, match="ekfac_fisher.*empirical"):
        _train("cnn", "digits-multi", tmp_path, config={"hidden_size": 4, "num_layers": 2}, optimizer="kfac", ekfac_fisher="sampled",
               steps=1, batch_size=4, eval_every=0)


def test_a_layer_too_large_to_factor_is_left_to_plain_sgd():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 10))
    pre = KroneckerPreconditioner(model, max_factor=8)
    assert pre.preconditioned == ["0.weight", "0.bias"] and pre.plain == ["2.weight", "2.bias"]
    x = torch.randn(6, 3)
    nn.functional.cross_entropy(model(x), torch.randint(0, 10, (6,))).backward()
    raw = model[2].weight.grad.clone()
    pre.step()
    pre.remove()
    assert torch.equal(model[2].weight.grad, raw)
