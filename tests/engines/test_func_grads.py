"""The per-example gradient service (engines/func_grads.py): vmap equals a loop over single examples, the
per-example gradients sum to the batch gradient, Jacobians equal jacrev on the batch, and a model vmap
cannot map falls back to the loop (or refuses with method="vmap")."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev

from lstmviz.engines import func_grads as fg


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()


def _examples(n=9, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def _loss_of(call, example):
    x, y = example
    return nn.functional.cross_entropy(call(x[None]), y[None])


def test_vmap_equals_loop_and_sums_to_the_batch_gradient():
    model = _mlp()
    x, y = _examples()
    vm = fg.per_example_grads(model, _loss_of, (x, y), chunk=4)
    assert fg.last_method() == "vmap"
    lp = fg.per_example_grads(model, _loss_of, (x, y), method="loop")
    assert fg.last_method() == "loop"
    for name, p in model.named_parameters():
        assert vm[name].shape == (len(x), *p.shape)
        torch.testing.assert_close(vm[name], lp[name], rtol=0, atol=1e-12)
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y, reduction="sum").backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(vm[name].sum(0), p.grad, rtol=0, atol=1e-12)
        assert vm[name][0].abs().sum() > 0


def test_a_subset_of_parameters_and_no_grad_written():
    model = _mlp()
    x, y = _examples(4)
    g = fg.per_example_grads(model, _loss_of, (x, y), params=["2.weight"])
    assert list(g) == ["2.weight"]
    full = fg.per_example_grads(model, _loss_of, (x, y))
    torch.testing.assert_close(g["2.weight"], full["2.weight"], rtol=0, atol=0)
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="no parameter 'nope'"):
        fg.per_example_grads(model, _loss_of, (x, y), params=["nope"])


def test_jacobians_equal_jacrev_on_the_batch():
    model = _mlp()
    x, _ = _examples(6)
    jac = fg.per_example_jacobians(model, lambda call, ex: call(ex[None])[0], x, chunk=4)
    params = {k: v.detach() for k, v in model.named_parameters()}
    batch = jacrev(lambda p: functional_call(model, p, (x,)))(params)  # [B, O, *param]: row b reads only x_b
    for name in params:
        torch.testing.assert_close(jac[name], batch[name], rtol=0, atol=1e-12)
    looped = fg.per_example_jacobians(model, lambda call, ex: call(ex[None])[0], x, method="loop")
    flat, flat_loop = fg.flatten_jacobians(jac), fg.flatten_jacobians(looped)
    assert flat.shape == (6, 3, sum(p.numel() for p in model.parameters()))
    torch.testing.assert_close(flat, flat_loop, rtol=0, atol=1e-12)


class _DataDependent(nn.Module):
    """A model whose control flow reads a value: vmap cannot map it."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 3).double()

    def forward(self, x):
        out = self.lin(x)
        if out.sum().item() > 0:
            out = 2 * out
        return out


def test_unmappable_model_falls_back_to_the_loop_or_refuses():
    model = _DataDependent()
    x, y = _examples(5)
    g = fg.per_example_grads(model, _loss_of, (x, y))
    assert fg.last_method() == "loop"
    reference = [torch.autograd.grad(_loss_of(model, (x[i], y[i])), model.lin.weight)[0] for i in range(5)]
    torch.testing.assert_close(g["lin.weight"], torch.stack(reference), rtol=0, atol=1e-12)
    with pytest.raises(RuntimeError, match="method='loop'"):
        fg.per_example_grads(model, _loss_of, (x, y), method="vmap")


def test_recurrent_engine_per_example_grads(tiny_model):
    model, _ = tiny_model("lstm")
    tokens = torch.randint(0, 7, (4, 6))

    def loss_of(call, ex):
        logits = call(ex[None, :-1])
        logits = logits[0] if isinstance(logits, tuple) else logits
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ex[1:])

    vm = fg.per_example_grads(model, loss_of, tokens)
    assert fg.last_method() == "vmap"  # the token check reads no value under torch.func (check_token_ids)
    lp = fg.per_example_grads(model, loss_of, tokens, method="loop")
    for name in vm:
        torch.testing.assert_close(vm[name], lp[name], rtol=0, atol=1e-10)


def test_bad_inputs_are_named():
    model = _mlp()
    with pytest.raises(ValueError, match="same leading"):
        fg.per_example_grads(model, _loss_of, (torch.zeros(3, 5, dtype=torch.float64), torch.zeros(2, dtype=torch.long)))
    with pytest.raises(ValueError, match="method"):
        fg.per_example_grads(model, _loss_of, _examples(2), method="fast")
    with pytest.raises(ValueError, match="1-D"):
        fg.per_example_jacobians(model, lambda call, ex: call(ex[None]), _examples(2)[0])
    assert fg.group_by_layer(["a.b.weight", "a.b.bias", "c.weight", "w"]) == {"a.b": ["a.b.weight", "a.b.bias"],
                                                                            "c": ["c.weight"], "": ["w"]}
