"""spectral-gcn (Bruna et al.): the spectral layer is U diag(theta) U^T x; smooth multipliers localise."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch
from scipy.interpolate import BSpline

from lstmviz.datasets.graph_base import GraphItem
from lstmviz.engines.graph.spectral_gcn import (SpectralConv, SpectralGCN, eigenbasis, laplacian_eigenbasis,
                                                normalized_laplacian)
from lstmviz.engines.graph.spline import bspline_basis, spline_knots
from lstmviz.geometry import GraphGeometry

@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():  # these are identities of forward passes
        yield


def _basis(w):
    lam, u = laplacian_eigenbasis(w)
    return np.array(lam), np.array(u)  # the cache's arrays are read-only


def _random_weights(n=12, seed=0):
    rng = np.random.default_rng(seed)
    w = np.triu(rng.uniform(0.2, 2.0, (n, n)) * (rng.random((n, n)) < 0.4), 1)
    w[np.arange(n - 1), np.arange(1, n)] = 1.0  # a path keeps it connected
    return w + w.T


def _numpy_laplacian(w):
    d = w.sum(1)
    return np.eye(len(w)) - w / np.sqrt(np.outer(d, d))


def _layer(theta, multipliers="full", **kw):
    conv = SpectralConv(theta.shape[1], theta.shape[2], multipliers=multipliers, bias=False, **kw).double()
    with torch.no_grad():
        conv.weight.copy_(torch.as_tensor(theta))
    return conv


def _item(w, features, coordinates=None, target=0):
    a, b = np.nonzero(np.triu(w, 1))
    geo = GraphGeometry.from_edges(len(w), np.stack([a, b], 1), weights=w[a, b], coordinates=coordinates)
    return GraphItem(geo, features.astype(np.float32), np.zeros(len(w), dtype=np.int64),
                     node_target=np.zeros(len(w), dtype=np.int64), graph_target=target)


def test_laplacian_is_the_normalised_one_and_the_spectrum_lies_in_0_2():
    w = _random_weights()
    g = nx.from_numpy_array(w)
    expected = nx.normalized_laplacian_matrix(g, nodelist=range(12), weight="weight").toarray()
    assert np.allclose(normalized_laplacian(w), expected, atol=1e-14)
    lam, u = eigenbasis(normalized_laplacian(w))
    assert lam[0] == pytest.approx(0, abs=1e-12) and lam[-1] <= 2 + 1e-12
    assert np.allclose(u.T @ u, np.eye(12), atol=1e-12)
    assert (u[np.argmax(np.abs(u), 0), np.arange(12)] > 0).all()  # the sign convention
    isolated = np.zeros((3, 3))
    isolated[0, 1] = isolated[1, 0] = 1
    assert normalized_laplacian(isolated)[2, 2] == 1.0


def test_full_layer_equals_dense_product_from_numpy_eigh():
    w = _random_weights()
    lam, u_np = np.linalg.eigh(_numpy_laplacian(w))
    rng = np.random.default_rng(1)
    theta = rng.normal(size=(12, 1, 1))
    x = rng.normal(size=(12, 1))
    _, u = _basis(w)
    y = _layer(theta, eigenvectors=12)(torch.as_tensor(x), torch.as_tensor(u))
    expected = u_np @ np.diag(theta[:, 0, 0]) @ u_np.T @ x
    assert np.allclose(y.numpy(), expected, atol=1e-12, rtol=0)
    # several channels: y_j = sum_i U diag(theta_ij) U^T x_i; d = 5 keeps the 5 lowest frequencies
    theta = rng.normal(size=(5, 3, 2))
    x = rng.normal(size=(12, 3))
    y = _layer(theta, eigenvectors=5)(torch.as_tensor(x), torch.as_tensor(u)).numpy()
    for j in range(2):
        expected = sum(u_np[:, :5] @ np.diag(theta[:5, i, j]) @ u_np[:, :5].T @ x[:, i] for i in range(3))
        assert np.allclose(y[:, j], expected, atol=1e-12, rtol=0)


def test_spline_layer_equals_dense_product_with_theta_of_lambda():
    w = _random_weights(seed=3)
    lam, u_np = np.linalg.eigh(_numpy_laplacian(w))
    alpha = np.random.default_rng(2).normal(size=(6, 1, 1))
    x = np.random.default_rng(3).normal(size=(12, 1))
    theta = BSpline(spline_knots(6), alpha[:, 0, 0], 3)(np.clip(lam, 0, 2))  # scipy's own evaluation
    lam_ours, u = _basis(w)
    conv = _layer(alpha, "spline", knots=6)
    y = conv(torch.as_tensor(x), torch.as_tensor(u), torch.as_tensor(bspline_basis(lam_ours, 6)))
    assert np.allclose(y.numpy(), u_np @ np.diag(theta) @ u_np.T @ x, atol=1e-12, rtol=0)


def test_spline_basis_is_a_partition_of_unity_and_refuses_too_few_knots():
    b = bspline_basis(np.linspace(-1e-15, 2 + 1e-15, 101), 7)
    assert b.shape == (101, 7) and (b >= 0).all() and np.allclose(b.sum(1), 1)
    assert b[0, 0] == 1 and b[-1, -1] == 1
    with pytest.raises(ValueError, match="spline_knots"):
        bspline_basis([0.5], 3)


def test_layer_is_permutation_equivariant_with_u_permuted_not_rediagonalised():
    w = _random_weights(seed=5)
    _, u = _basis(w)
    rng = np.random.default_rng(4)
    perm = rng.permutation(12)
    theta = rng.normal(size=(12, 2, 3))
    x = rng.normal(size=(12, 2))
    conv = _layer(theta, eigenvectors=12)
    y = conv(torch.as_tensor(x), torch.as_tensor(u)).numpy()
    y_perm = conv(torch.as_tensor(x[perm]), torch.as_tensor(u[perm])).numpy()
    assert np.allclose(y_perm, y[perm], atol=1e-12)


def test_model_is_permutation_equivariant_even_when_rediagonalised_with_spline_multipliers():
    w = _random_weights(seed=6)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(12, 3))
    perm = rng.permutation(12)
    torch.manual_seed(0)
    model = SpectralGCN(3, 4, "node", variant="spectral-spline", hidden_size=5, num_layers=2).double()
    out = model(model.prepare(_item(w, x))).detach().numpy()
    out_perm = model(model.prepare(_item(w[np.ix_(perm, perm)], x[perm]))).detach().numpy()
    assert np.allclose(out_perm, out[perm], atol=1e-10)


def _rotate_within_eigenspaces(lam, u, rng):
    u = u.copy()
    start = 0
    while start < len(lam):
        stop = start + 1
        while stop < len(lam) and abs(lam[stop] - lam[start]) < 1e-9:
            stop += 1
        q, _ = np.linalg.qr(rng.normal(size=(stop - start, stop - start)))
        u[:, start:stop] = u[:, start:stop] @ q
        start = stop
    return u


def test_spline_filter_does_not_depend_on_the_eigenbasis_inside_degenerate_eigenspaces_full_does():
    w = nx.to_numpy_array(nx.cycle_graph(10))  # eigenvalue pairs
    lam, u = _basis(w)
    u2 = _rotate_within_eigenspaces(lam, u, np.random.default_rng(0))
    x = torch.as_tensor(np.random.default_rng(1).normal(size=(10, 1)))
    alpha = np.random.default_rng(2).normal(size=(6, 1, 1))
    spline, basis = _layer(alpha, "spline", knots=6), torch.as_tensor(bspline_basis(lam, 6))
    assert torch.allclose(spline(x, torch.as_tensor(u), basis), spline(x, torch.as_tensor(u2), basis), atol=1e-12)
    full = _layer(np.random.default_rng(3).normal(size=(10, 1, 1)), eigenvectors=10)
    assert not torch.allclose(full(x, torch.as_tensor(u)), full(x, torch.as_tensor(u2)), atol=1e-3)


def _energy_share_within(response, hops, radius):
    e = response ** 2
    return e[hops <= radius].sum() / e.sum()


def test_smooth_multipliers_localise_random_ones_do_not_on_a_16x16_grid():
    side = 16
    g = nx.grid_2d_graph(side, side)
    w = nx.to_numpy_array(g, nodelist=sorted(g.nodes()))
    lam, u = _basis(w)
    centre = (side // 2) * side + side // 2
    hops = np.array([abs(i // side - side // 2) + abs(i % side - side // 2) for i in range(side * side)])
    basis = bspline_basis(lam, 6)
    spline_share, random_share = [], []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        theta_spline = basis @ rng.normal(size=6)
        theta_random = rng.normal(size=len(lam))
        theta_random *= np.linalg.norm(theta_spline) / np.linalg.norm(theta_random)
        for theta, shares in ((theta_spline, spline_share), (theta_random, random_share)):
            conv = _layer(theta[:, None, None], eigenvectors=len(lam))
            delta = torch.zeros(side * side, 1, dtype=torch.float64)
            delta[centre] = 1
            response = conv(delta, torch.as_tensor(u))[:, 0].numpy()
            shares.append(_energy_share_within(response, hops, 4))
    assert np.median(spline_share) > 0.8
    assert np.median(random_share) < 0.4


def test_on_a_cycle_a_filter_of_lambda_is_a_circular_convolution_with_a_symmetric_kernel():
    n = 16
    w = nx.to_numpy_array(nx.cycle_graph(n))
    lam, u = _basis(w)
    conv = _layer(np.random.default_rng(0).normal(size=(6, 1, 1)), "spline", knots=6)
    basis, u = torch.as_tensor(bspline_basis(lam, 6)), torch.as_tensor(u)
    delta = torch.zeros(n, 1, dtype=torch.float64)
    delta[0] = 1
    kernel = conv(delta, u, basis)[:, 0].numpy()
    assert np.allclose(kernel[1:], kernel[1:][::-1], atol=1e-12)  # k[m] == k[-m]
    x = np.random.default_rng(1).normal(size=n)
    y = conv(torch.as_tensor(x[:, None]), u, basis)[:, 0].numpy()
    circular = np.array([sum(kernel[(i - m) % n] * x[m] for m in range(n)) for i in range(n)])
    assert np.allclose(y, circular, atol=1e-12)
    shifted = conv(torch.as_tensor(np.roll(x, 3)[:, None]), u, basis)[:, 0].numpy()
    assert np.allclose(shifted, np.roll(y, 3), atol=1e-12)


def test_forward_never_rediagonalises(monkeypatch):
    w = _random_weights(seed=8)
    model = SpectralGCN(2, 3, "node", variant="spectral-full", num_nodes=12, hidden_size=4)
    prepared = model.prepare(_item(w, np.random.default_rng(0).normal(size=(12, 2))))
    first = model(prepared)

    def no_eigh(*args, **kwargs):
        raise AssertionError("eigh called after prepare")

    monkeypatch.setattr(np.linalg, "eigh", no_eigh)
    monkeypatch.setattr(torch.linalg, "eigh", no_eigh)
    assert torch.equal(model(prepared), first)
    assert model.prepare(_item(w, np.zeros((12, 2)))).tensors["eigenvectors0"].shape == (12, 12)  # cached


def test_spectrum_tap_is_u_transpose_h_and_an_edit_there_reaches_the_output():
    from lstmviz.hooks import HookScope, find_taps

    w = _random_weights(seed=9)
    torch.manual_seed(0)
    model = SpectralGCN(2, 3, "node", variant="spectral-spline", hidden_size=4, num_layers=2,
                        tap_spectrum=True).double()
    prepared = model.prepare(_item(w, np.random.default_rng(0).normal(size=(12, 2))))
    taps = find_taps(model)
    assert taps["layer0/spectrum"].axis == "spectrum" and taps["layer0/h"].axis == "positions"
    seen = {}
    with torch.no_grad(), HookScope() as hooks:
        for name in ("layer0/h", "layer0/spectrum"):
            hooks.read(taps[name], lambda module, args, kwargs, out: seen.__setitem__(module.name, out.clone()))
        base = model(prepared)
    u = prepared.tensors["eigenvectors0"]
    assert torch.allclose(seen["layer0/spectrum"], u.T @ seen["layer0/h"], atol=1e-12)
    handle = taps["layer0/spectrum"].register_forward_hook(lambda m, a, out: out * 0)
    try:
        with torch.no_grad():
            zeroed = model(prepared)
    finally:
        handle.remove()
    assert not torch.allclose(zeroed, base)


@pytest.mark.parametrize("variant", ["spectral-full", "spectral-spline"])
def test_filter_bank_gives_the_multipliers_the_layer_applies(variant):
    w = _random_weights(seed=10)
    torch.manual_seed(0)
    model = SpectralGCN(2, 3, "node", variant=variant, hidden_size=3, num_layers=2, num_nodes=12,
                        eigenvectors=8).double()
    prepared = model.prepare(_item(w, np.zeros((12, 2))))
    lam, theta = model.filter_bank(prepared, 1)
    assert lam.shape == (8,) and theta.shape == (8, 3, 3)
    assert torch.equal(lam, prepared.tensors["eigenvalues0"][:8])
    u = prepared.tensors["eigenvectors0"][:, :8]
    x = torch.randn(12, 3, dtype=torch.float64)
    y = model.layers[1](x, prepared.tensors["eigenvectors0"], prepared.tensors.get("basis0")) - model.layers[1].bias
    expected = torch.stack([sum(u @ torch.diag(theta[:, i, j]) @ u.T @ x[:, i] for i in range(3)) for j in range(3)], 1)
    assert torch.allclose(y, expected, atol=1e-12)
    if variant == "spectral-spline":  # theta(lambda) = B(lambda) alpha
        basis = torch.as_tensor(bspline_basis(lam.numpy(), 6))
        assert torch.allclose(theta, torch.einsum("mq,qio->mio", basis, model.layers[1].weight), atol=1e-12)
    with pytest.raises(ValueError, match="layer"):
        model.filter_bank(prepared, 2)
    with pytest.raises(ValueError, match="no spectral multipliers"):
        SpectralGCN(2, 3, "node", variant="local", num_nodes=12).filter_bank(prepared, 0)
