"""The empirical tangent kernel (lstmviz.analysis.tangent_kernel, Baratin et al.): K from the per-example
Jacobian service equals J Jᵀ from jacrev on the batch and its per-layer blocks sum to it (every path: the
exact Linear shortcut, one pass, item blocks, per-class), K is symmetric PSD, a linear model's kernel is
X Xᵀ at every checkpoint (alignment change 0), alignment ignores the kernel's scale, and the spectrum's
label energy is a distribution over eigendirections."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev

from lstmviz.analysis import tangent_kernel as tk
from lstmviz.tasks import Cancelled, Task


def _mlp(seed=0, bias=True):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7, bias=bias), nn.Tanh(), nn.Linear(7, 6), nn.ReLU(),
                         nn.Linear(6, 3)).double()


def _x(n=13, seed=1):
    return torch.randn(n, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _out(call, x):
    return call(x[None])[0]


def _reference(model, x):
    """Σ_o J_o J_oᵀ with J from jacrev of the batched model, per parameter."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    jac = jacrev(lambda p: functional_call(model, p, (x,)))(params)
    per = {k: torch.einsum("iop,jop->ij", j.reshape(len(x), j.shape[1], -1), j.reshape(len(x), j.shape[1], -1))
           for k, j in jac.items()}
    return per


@pytest.mark.parametrize("options, shortcut", [
    ({}, [False, True, True]),  # layer 0 has no bias: always the generic path
    ({"factored": False}, [False, False, False]),
    ({"factored": False, "max_bytes": 700}, [False, False, False]),  # item blocks
    ({"max_bytes": 2000}, [False, True, False]),  # only layer 2's bias Jacobian fits beside nothing else
    ({"method": "loop"}, [False, True, True]),
])
def test_kernel_equals_jacobian_gram_and_layers_sum_to_it(options, shortcut):
    model, x = _mlp(bias=False), _x()
    with torch.no_grad():
        model[0].weight.mul_(1.5)
    per = _reference(model, x)
    kernel = tk.tangent_kernel(model, _out, x, **options)
    assert kernel.layers == ["0", "2", "4"]
    assert kernel.params == [35, 48, 21]
    for layer in kernel.layers:
        expected = sum(v for k, v in per.items() if k.startswith(layer + ".")).numpy()
        np.testing.assert_allclose(kernel.layer(layer), expected, rtol=0, atol=1e-11)
    total = sum(per.values()).numpy()
    np.testing.assert_allclose(kernel.total(), total, rtol=0, atol=1e-11)
    np.testing.assert_allclose(kernel.blocks.sum(0), kernel.total(), rtol=0, atol=1e-12)
    assert kernel.factored == shortcut


def test_per_class_kernels_sum_to_the_trace_kernel():
    model, x = _mlp(), _x(7)
    trace = tk.tangent_kernel(model, _out, x)
    for factored in (True, False):
        per = tk.tangent_kernel(model, _out, x, kind="per-class", factored=factored)
        assert per.blocks.shape == (3, 3, 7, 7)
        np.testing.assert_allclose(per.total(), trace.total(), rtol=0, atol=1e-11)
        assert not np.allclose(per.blocks[:, 0], per.blocks[:, 1])  # one kernel per output
    with pytest.raises(ValueError, match="kind: expected one of trace, per-class"):
        tk.tangent_kernel(model, _out, x, kind="full")


def test_kernel_is_symmetric_positive_semidefinite():
    kernel = tk.tangent_kernel(_mlp(3), _out, _x(20, 4))
    for k in (*kernel.layer_kernels(), kernel.total()):
        np.testing.assert_allclose(k, k.T, rtol=0, atol=1e-12)
        assert np.linalg.eigvalsh(k).min() > -1e-10 * np.abs(k).max()


def test_a_linear_model_has_kernel_x_xt_at_every_checkpoint_so_its_alignment_never_moves():
    x, labels = _x(24, 5), np.arange(24) % 3
    linear = nn.Linear(5, 3, bias=False).double()
    mlp = _mlp(2)
    opt = torch.optim.SGD([*linear.parameters(), *mlp.parameters()], lr=0.5)
    target = torch.as_tensor(labels)
    expected = 3 * (x @ x.T).numpy()  # Σ over the 3 outputs of x_iᵀ x_j
    alignments, mlp_kernels = [], []
    for step in range(4):
        k = tk.tangent_kernel(linear, _out, x).total()
        np.testing.assert_allclose(k, expected, rtol=1e-12, atol=1e-12)
        alignments.append(tk.centered_alignment(k, labels))
        mlp_kernels.append(tk.tangent_kernel(mlp, _out, x).total())
        opt.zero_grad()
        loss = nn.functional.cross_entropy(linear(x), target) + nn.functional.cross_entropy(mlp(x), target)
        loss.backward()
        opt.step()
    assert np.ptp(alignments) == 0.0
    assert np.abs(mlp_kernels[-1] - mlp_kernels[0]).max() > 1e-3 * np.abs(mlp_kernels[0]).max()  # features moved


def test_alignment_is_scale_invariant_and_one_for_the_label_kernel():
    kernel = tk.tangent_kernel(_mlp(), _out, _x(15)).total()
    labels = np.arange(15) % 3
    a = tk.centered_alignment(kernel, labels)
    assert -1 <= a <= 1
    for scale in (1e-6, 3.0, 1e6):
        assert tk.centered_alignment(scale * kernel, labels) == pytest.approx(a, rel=1e-12)
    y = tk.one_hot(labels)
    assert tk.centered_alignment(y @ y.T, labels) == pytest.approx(1.0)
    assert tk.centered_alignment(2 * (y @ y.T) + 5.0, y) == pytest.approx(1.0)  # centring removes the constant
    with pytest.raises(ValueError, match="n×n kernel and n labels"):
        tk.centered_alignment(kernel, labels[:4])


def test_effective_rank_definitions():
    assert tk.effective_rank(np.eye(6)) == pytest.approx(6.0)
    assert tk.effective_rank(np.eye(6), "trace") == pytest.approx(6.0)
    v = np.arange(1.0, 5.0)[:, None]
    assert tk.effective_rank(v @ v.T) == pytest.approx(1.0)
    assert tk.effective_rank(np.array([3.0, 1.0, 0.0]), "trace") == pytest.approx(4 / 3)
    with pytest.raises(ValueError, match="definition"):
        tk.effective_rank(np.eye(2), "stable")


def test_label_energy_is_a_distribution_over_eigendirections():
    labels = np.array([0, 0, 1, 1, 2, 2, 2, 0, 1])
    kernel = tk.tangent_kernel(_mlp(), _out, _x(9)).total()
    sb = tk.spectral_bias(kernel, labels, ["a", "b", "c"])
    assert np.all(np.diff(sb.eigenvalues) <= 1e-12)
    np.testing.assert_allclose(sb.energy.sum(0), 1.0, atol=1e-12)
    assert list(sb.counts) == [3, 3, 3]
    # the label kernel itself: all of each class's energy on its top 3 directions
    y = tk.one_hot(labels)
    ideal = tk.spectral_bias(y @ y.T + 1e-9 * np.eye(9), labels)
    np.testing.assert_allclose(ideal.cumulative()[2], 1.0, atol=1e-9)
    assert np.all(ideal.directions_for(0.99) <= 3)
    table = sb.table()
    assert table["direction"][0] == 1 and set(table) >= {"eigenvalue", "share", "energy[a]", "energy[c]"}


def test_cancel_stops_the_computation():
    task = Task()
    task.cancel()
    with pytest.raises(Cancelled):
        tk.tangent_kernel(_mlp(), _out, _x(), task=task)


def test_measures_per_layer():
    kernel = tk.tangent_kernel(_mlp(), _out, _x(12))
    m = tk.measures(kernel, np.arange(12) % 3)
    assert m.layers == ["0", "2", "4"] and m.alignment.shape == (3,) and m.effective_rank.shape == (3,)
    assert np.all((m.effective_rank >= 1) & (m.effective_rank <= 12))
    assert m.total_alignment == pytest.approx(tk.centered_alignment(kernel.total(), np.arange(12) % 3))
