"""Graph operators shared by the spectral engines: the normalised Laplacian, its rescaling, Chebyshev terms.

For a graph with symmetric non-negative weights ``W`` (``n x n``) and degrees ``d_i = sum_j W_ij``:

- normalised Laplacian ``L = I - D^{-1/2} W D^{-1/2}``, eigenvalues in ``[0, 2]``;
- rescaled Laplacian ``L~ = 2 L / lambda_max - I``, eigenvalues in ``[-1, 1]``;
- Chebyshev terms ``T_0(L~) x = x``, ``T_1(L~) x = L~ x``, ``T_k(L~) x = 2 L~ T_{k-1}(L~) x - T_{k-2}(L~) x``
  (``K`` terms cost ``O(K |E|)`` per channel, no eigendecomposition).

Conventions (the same as PyTorch Geometric's ``ChebConv`` with ``normalization="sym"``, so the two agree
when given the same ``lambda_max``):

- self-loops are removed before the degrees are taken (a self-loop is not part of ``W``);
- an isolated node has ``d_i = 0``; its ``D^{-1/2}`` is taken as 0 (not ``1/sqrt(0)``), so its row of
  ``L`` is the identity's (``L_ii = 1``) and it exchanges nothing with the other nodes;
- a directed edge list is symmetrised: ``W = max(A, A^T)`` (an undirected edge stored once counts once);
- ``lambda_max`` is the exact largest eigenvalue of ``L`` (dense ``eigvalsh`` for small graphs,
  ``scipy.sparse.linalg.eigsh`` otherwise), or a given number (PyG's default for the sym normalisation,
  and the paper's shortcut, is 2.0). A graph without edges has ``L = I`` and ``lambda_max = 1``.

Everything here but :func:`to_torch_sparse` and :func:`chebyshev_terms` is numpy/scipy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse

from lstmviz.errors import ExpectedError

#: graphs up to this many nodes get lambda_max from a dense eigvalsh (exact and robust); larger ones from eigsh
DENSE_EIGEN_LIMIT = 600


class GraphOpError(ExpectedError, ValueError):
    """A graph the operators cannot use (negative weights); the text says what to change."""


def adjacency(num_nodes: int, edges: Any, weights: Any = None) -> sparse.csr_matrix:
    """Symmetric weighted adjacency ``W`` (float64 CSR) without self-loops; ``edges`` ``[E, 2]`` item-local."""
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    w = np.ones(len(edges)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(w) and (not np.all(np.isfinite(w)) or w.min() < 0):
        raise GraphOpError("edge weights must be finite and non-negative for the normalised Laplacian; "
                           "give weights >= 0")
    keep = edges[:, 0] != edges[:, 1]  # self-loops are not part of W (PyG's ChebConv removes them too)
    a = sparse.csr_matrix((w[keep], (edges[keep, 0], edges[keep, 1])), shape=(num_nodes, num_nodes))
    W = a.maximum(a.T).tocsr()
    W.eliminate_zeros()
    return W


def normalized_laplacian(W: sparse.spmatrix) -> sparse.csr_matrix:
    """``L = I - D^{-1/2} W D^{-1/2}`` (CSR); ``D^{-1/2} = 0`` at isolated nodes (see the module docstring)."""
    W = sparse.csr_matrix(W, dtype=np.float64)
    W.setdiag(0)
    W.eliminate_zeros()
    d = np.asarray(W.sum(axis=1)).reshape(-1)
    inv_sqrt = np.zeros_like(d)
    positive = d > 0
    inv_sqrt[positive] = 1.0 / np.sqrt(d[positive])
    Dm = sparse.diags(inv_sqrt)
    n = W.shape[0]
    return (sparse.identity(n, format="csr") - Dm @ W @ Dm).tocsr()


def lambda_max(L: sparse.spmatrix) -> float:
    """The largest eigenvalue of the symmetric ``L`` (exact; dense for small graphs, Lanczos otherwise)."""
    n = L.shape[0]
    if n <= DENSE_EIGEN_LIMIT:
        return float(np.linalg.eigvalsh(L.toarray())[-1])
    from scipy.sparse.linalg import ArpackNoConvergence, eigsh

    try:
        value = eigsh(L.astype(np.float64), k=1, which="LA", return_eigenvectors=False, tol=1e-8)
        return float(value[0])
    except ArpackNoConvergence:  # pragma: no cover - rare; fall back to the exact dense answer
        return float(np.linalg.eigvalsh(L.toarray())[-1])


def rescaled_laplacian(L: sparse.spmatrix, lmax: float) -> sparse.csr_matrix:
    """``L~ = 2 L / lambda_max - I`` (CSR)."""
    if not np.isfinite(lmax) or lmax <= 0:
        raise GraphOpError(f"lambda_max must be a positive number, got {lmax!r}")
    n = L.shape[0]
    return (L * (2.0 / lmax) - sparse.identity(n, format="csr")).tocsr()


def laplacian_of(num_nodes: int, edges: Any, weights: Any = None, *, lmax: float | str = "exact"
                 ) -> tuple[sparse.csr_matrix, float]:
    """``(L~, lambda_max)`` of a graph; ``lmax`` is ``"exact"`` or a number (e.g. 2.0, PyG's default)."""
    L = normalized_laplacian(adjacency(num_nodes, edges, weights))
    if isinstance(lmax, str):
        if lmax != "exact":
            raise GraphOpError(f"lambda_max must be 'exact' or a positive number, got {lmax!r}")
        value = lambda_max(L)
    else:
        value = float(lmax)
    return rescaled_laplacian(L, value), value


def to_torch_sparse(M: sparse.spmatrix, dtype=None):
    """``M`` as a coalesced torch sparse COO tensor (float64 unless ``dtype``)."""
    import torch

    coo = sparse.coo_matrix(M)
    index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data.astype(np.float64))
    out = torch.sparse_coo_tensor(index, values, coo.shape, check_invariants=False).coalesce()
    return out if dtype is None else out.to(dtype)


def chebyshev_terms(Lt, x, K: int):
    """``[T_0(L~) x, ..., T_{K-1}(L~) x]`` by the recurrence (``Lt`` torch sparse ``[n, n]``, ``x`` ``[n, F]``)."""
    import torch

    if K < 1:
        raise GraphOpError(f"the number of Chebyshev terms K must be >= 1, got {K}")
    terms = [x]
    if K > 1:
        terms.append(torch.sparse.mm(Lt, x))
    for _ in range(2, K):
        terms.append(2.0 * torch.sparse.mm(Lt, terms[-1]) - terms[-2])
    return terms


__all__ = ["DENSE_EIGEN_LIMIT", "GraphOpError", "adjacency", "chebyshev_terms", "lambda_max", "laplacian_of",
           "normalized_laplacian", "rescaled_laplacian", "to_torch_sparse"]
