"""Grouping accuracy: the adjusted mutual information (AMI) between a predicted and a true partition of pixels.

For two labelings ``U`` (true, ``R`` clusters of sizes ``a_i``) and ``V`` (predicted, ``C`` clusters of sizes
``b_j``) of the same ``N`` items, with contingency counts ``n_ij``:

    MI(U, V)  = Σ_ij (n_ij / N) log(N n_ij / (a_i b_j))
    H(U)      = −Σ_i (a_i / N) log(a_i / N)                         (natural logarithms)
    E[MI]     = Σ_ij Σ_{n = max(1, a_i + b_j − N)}^{min(a_i, b_j)} (n / N) log(N n / (a_i b_j))
                · a_i! b_j! (N − a_i)! (N − b_j)! / (N! n! (a_i − n)! (b_j − n)! (N − a_i − b_j + n)!)
                (the expected MI of two random labelings with the same cluster sizes, hypergeometric model;
                Vinh, Epps & Bailey 2010)
    AMI       = (MI − E[MI]) / (½ (H(U) + H(V)) − E[MI])

(the arithmetic-mean normaliser, scikit-learn's default since 0.22; a denominator closer to 0 than machine
epsilon is replaced by ±epsilon, the numerator ``MI − E[MI]`` too, so a perfect match whose E[MI] equals its MI
scores 1; two labelings that each have a single cluster, or no items, score 1, and one labeling with a single
cluster against one with several scores 0 — scikit-learn's conventions, so that :func:`adjusted_mutual_info` equals
``sklearn.metrics.adjusted_mutual_info_score``; the tests check it). AMI is 1 for identical partitions (up to
renaming the clusters), about 0 for independent ones, and can be slightly negative.

Tagger's score (:func:`grouping_ami`): per image, the AMI between ``argmax_k m_k`` and the true object id over
the pixels that belong to exactly one object — the background (class 0) and ignored pixels (−1, the shapes
dataset's overlaps) are left out, as in the Tagger reference code (``nn.py``, its AMI op scores only pixels
whose true mask is one object). Numpy only.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

_EPS = np.finfo(np.float64).eps


def _entropy(counts: np.ndarray, n: int) -> float:
    p = counts[counts > 0] / n
    return float(-(p * np.log(p)).sum())


def expected_mutual_information(a: np.ndarray, b: np.ndarray, n: int) -> float:
    """E[MI] of two random labelings of ``n`` items with cluster sizes ``a`` and ``b`` (module docstring)."""
    total = 0.0
    log_fact = gammaln(np.arange(n + 2) + 1.0)  # log k! for k = 0 .. n + 1
    for ai in a:
        for bj in b:
            lo, hi = max(1, ai + bj - n), min(ai, bj)
            if lo > hi:
                continue
            nij = np.arange(lo, hi + 1)
            log_p = (log_fact[ai] + log_fact[bj] + log_fact[n - ai] + log_fact[n - bj] - log_fact[n]
                     - log_fact[nij] - log_fact[ai - nij] - log_fact[bj - nij] - log_fact[n - ai - bj + nij])
            total += float(np.sum(nij / n * np.log(n * nij / (ai * bj)) * np.exp(log_p)))
    return total


def adjusted_mutual_info(labels_true, labels_pred) -> float:
    """AMI between two labelings of the same items (module docstring); equals scikit-learn's
    ``adjusted_mutual_info_score`` with its default arithmetic normaliser."""
    t = np.asarray(labels_true).reshape(-1)
    p = np.asarray(labels_pred).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"expected two labelings of the same items, got {t.size} and {p.size} labels")
    n = t.size
    _, ti = np.unique(t, return_inverse=True)
    _, pi = np.unique(p, return_inverse=True)
    r, c = int(ti.max(initial=-1)) + 1, int(pi.max(initial=-1)) + 1
    if (r == c == 1) or n == 0:
        return 1.0
    if r == 1 or c == 1:
        return 0.0
    table = np.zeros((r, c), np.int64)
    np.add.at(table, (ti, pi), 1)
    a, b = table.sum(1), table.sum(0)
    nz = table > 0
    nij = table[nz]
    outer = np.outer(a, b)[nz]
    mi = float(np.sum(nij / n * (np.log(nij) + np.log(n) - np.log(outer))))
    emi = expected_mutual_information(a, b, n)
    normaliser = 0.5 * (_entropy(a, n) + _entropy(b, n))
    denominator = normaliser - emi
    denominator = min(denominator, -_EPS) if denominator < 0 else max(denominator, _EPS)
    numerator = mi - emi
    numerator = min(numerator, -_EPS) if numerator < 0 else max(numerator, _EPS)
    return numerator / denominator


def grouping_ami(masks, truth) -> np.ndarray:
    """Per image, the AMI between the predicted groups and the true objects over the scored pixels.

    ``masks``: ``[B, K, P]`` (or ``[B, K, H, W]``) group masks (or any scores whose arg-max over ``K`` is a
    pixel's group); ``truth``: ``[B, P]`` (or ``[B, H, W]``) object ids, 0 = background and −1 = ignored, both
    left out. An image with no scored pixel gets NaN. Returns float64 ``[B]``.
    """
    m = np.asarray(masks)
    t = np.asarray(truth)
    m = m.reshape(m.shape[0], m.shape[1], -1)
    t = t.reshape(t.shape[0], -1)
    if t.shape[0] != m.shape[0] or t.shape[1] != m.shape[2]:
        raise ValueError(f"expected truth [B, pixels] = {[m.shape[0], m.shape[2]]} like the masks, "
                         f"got {list(t.shape)}")
    groups = m.argmax(axis=1)
    out = np.full(len(t), np.nan)
    for i in range(len(t)):
        scored = t[i] > 0
        if scored.any():
            out[i] = adjusted_mutual_info(t[i][scored], groups[i][scored])
    return out


__all__ = ["adjusted_mutual_info", "expected_mutual_information", "grouping_ami"]
