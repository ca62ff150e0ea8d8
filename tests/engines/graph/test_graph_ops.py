"""The graph operators: normalised Laplacian (self-loops, isolated nodes, components), lambda_max, Chebyshev terms."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from lstmviz.engines.graph import ops


def dense_laplacian(n, edges, weights=None):
    """L = I - D^-1/2 W D^-1/2 written out by hand (self-loops dropped, 0 for isolated nodes)."""
    W = np.zeros((n, n))
    for k, (a, b) in enumerate(edges):
        if a != b:
            W[a, b] = W[b, a] = 1.0 if weights is None else weights[k]
    d = W.sum(axis=1)
    s = np.array([1 / np.sqrt(v) if v > 0 else 0.0 for v in d])
    return np.eye(n) - s[:, None] * W * s[None, :]


def test_laplacian_matches_networkx_on_karate():
    g = nx.karate_club_graph()
    edges = np.array(g.edges())
    L = ops.normalized_laplacian(ops.adjacency(34, edges)).toarray()
    expected = nx.normalized_laplacian_matrix(g, weight=None).toarray()
    np.testing.assert_allclose(L, expected, atol=1e-12)
    np.testing.assert_allclose(ops.lambda_max(ops.normalized_laplacian(ops.adjacency(34, edges))),
                               np.linalg.eigvalsh(expected)[-1], atol=1e-10)


def test_self_loops_are_removed_before_the_degrees():
    edges = [(0, 1), (1, 2), (1, 1), (2, 2)]
    L = ops.normalized_laplacian(ops.adjacency(3, edges, [1.0, 2.0, 5.0, 7.0])).toarray()
    np.testing.assert_allclose(L, dense_laplacian(3, [(0, 1), (1, 2)], [1.0, 2.0]), atol=1e-12)
    assert np.allclose(np.diag(L), 1.0)


def test_isolated_nodes_get_an_identity_row_and_no_nan():
    L = ops.normalized_laplacian(ops.adjacency(4, [(0, 1)])).toarray()
    assert np.isfinite(L).all()
    np.testing.assert_array_equal(L[2], [0, 0, 1, 0])
    np.testing.assert_array_equal(L[3], [0, 0, 0, 1])
    Lt, lmax = ops.laplacian_of(4, [(0, 1)])
    assert lmax == pytest.approx(2.0)  # one edge: eigenvalues 0, 2 and 1 for each isolated node
    edgeless, lmax = ops.laplacian_of(3, np.zeros((0, 2), np.int64))
    assert lmax == pytest.approx(1.0) and np.allclose(edgeless.toarray(), np.eye(3))


def test_disconnected_components_are_blocks_and_zero_has_their_multiplicity():
    edges = [(0, 1), (1, 2), (3, 4)]
    L = ops.normalized_laplacian(ops.adjacency(5, edges)).toarray()
    assert not L[:3, 3:].any() and not L[3:, :3].any()
    values = np.linalg.eigvalsh(L)
    assert np.sum(np.abs(values) < 1e-12) == 2  # one zero eigenvalue per component


def test_directed_edges_are_symmetrised_and_negative_weights_refused():
    W = ops.adjacency(3, [(0, 1), (1, 0), (2, 1)]).toarray()
    np.testing.assert_array_equal(W, [[0, 1, 0], [1, 0, 1], [0, 1, 0]])
    with pytest.raises(ops.GraphOpError, match="non-negative"):
        ops.adjacency(2, [(0, 1)], [-1.0])


def test_rescaled_laplacian_spectrum_is_in_minus_one_one_and_lmax_option():
    g = nx.karate_club_graph()
    edges = np.array(g.edges())
    Lt, lmax = ops.laplacian_of(34, edges)
    values = np.linalg.eigvalsh(Lt.toarray())
    assert values[-1] == pytest.approx(1.0) and values[0] >= -1 - 1e-12
    assert 1.6 < lmax < 1.8  # the karate club's largest eigenvalue (1.71), not 2
    Lt2, two = ops.laplacian_of(34, edges, lmax=2.0)
    assert two == 2.0
    np.testing.assert_allclose(Lt2.toarray(), ops.normalized_laplacian(ops.adjacency(34, edges)).toarray()
                               - np.eye(34), atol=1e-12)


def test_chebyshev_recursion_equals_the_polynomials_of_the_dense_matrix():
    rng = np.random.default_rng(0)
    g = nx.gnm_random_graph(12, 20, seed=1)
    Lt, _ = ops.laplacian_of(12, np.array(g.edges()))
    x = rng.normal(size=(12, 3))
    terms = ops.chebyshev_terms(ops.to_torch_sparse(Lt), torch.from_numpy(x), 5)
    A = Lt.toarray()
    T = [np.eye(12), A]
    for _ in range(3):
        T.append(2 * A @ T[-1] - T[-2])
    for k in range(5):
        np.testing.assert_allclose(terms[k].numpy(), T[k] @ x, atol=1e-12)
    # T_k(cos t) = cos(k t) on the spectrum
    values, U = np.linalg.eigh(A)
    t = np.arccos(np.clip(values, -1, 1))
    np.testing.assert_allclose(T[4], U @ np.diag(np.cos(4 * t)) @ U.T, atol=1e-10)
