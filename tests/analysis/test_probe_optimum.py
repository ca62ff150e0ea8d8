"""The probe reaches the optimum of the objective it claims, on a small real problem (the bundled demo:
states of a trained LSTM), checked against an independent float64 optimiser (torch's L-BFGS with a
strong-Wolfe line search, run to a tight gradient tolerance)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmviz.analysis.probes import _roles, fit_probe, probe_labels, split_items
from lstmviz.analysis.transforms import tap_stats
from lstmviz.recording import open_recording

DEMO = Path(str(files("lstmviz.assets") / "demo" / "parens-lstm.h5"))


def demo_path():
    return DEMO


def _training_rows(rec, tap, labels, split):
    stats = tap_stats(rec, tap, cache=False)
    z = (rec.states(tap).astype(np.float64) - stats.mean) / stats.safe_std()
    train = (_roles(rec, split) == 0) & (labels >= 0)
    return z[train], labels[train]


def objective(z, y, weights, bias, l2):
    """mean cross-entropy + l2 ||W||², in float64, over the classes present in y."""
    present = np.unique(y)
    s = z @ weights[present].T.astype(np.float64) + bias[present].astype(np.float64)
    idx = np.searchsorted(present, y)
    s_max = s.max(1, keepdims=True)
    lse = np.log(np.exp(s - s_max).sum(1)) + s_max[:, 0]
    return float(np.mean(lse - s[np.arange(len(y)), idx]) + l2 * np.sum(weights[present].astype(np.float64) ** 2))


def reference_optimum(z, y, l2):
    present = np.unique(y)
    zt = torch.from_numpy(z)
    yt = torch.from_numpy(np.searchsorted(present, y))
    w = torch.zeros(len(present), z.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(len(present), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=3000, tolerance_grad=1e-9, tolerance_change=1e-14,
                            history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(zt @ w.T + b, yt) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(zt @ w.T + b, yt) + l2 * (w * w).sum())


@pytest.mark.parametrize("tap, annotation, l2", [
    ("layer0/gates/f", "depth", 1e-3),
    ("layer1/c", "depth", 1e-4),
    ("layer0/h", "token_class", 1e-5),
])
def test_the_fitted_objective_is_the_optimum_on_real_states(tap, annotation, l2):
    with open_recording(demo_path()) as rec:
        labels = probe_labels(rec, annotation, shift=1)  # the next token's label: not trivially separable
        split = split_items(rec.n_items, seed=0)
        result = fit_probe(rec, tap, labels, split, l2_grid=(l2,), refine_grid=False)
        z, y = _training_rows(rec, tap, labels, split)
    ours = objective(z, y, result.weights, result.bias, l2)
    best = reference_optimum(z, y, l2)
    assert result.converged and result.l2 == l2
    assert abs(result.objective - ours) <= 1e-5 * ours  # the objective it reports is the one it reached
    assert best * (1 - 1e-6) <= ours <= best * (1 + 1e-3), (ours, best)
    assert ours > 0.05  # a problem with something left to fit, not a separable one


def test_classes_absent_from_training_are_never_predicted(tmp_path):
    from lstmviz.recording import RecordingWriter

    rng = np.random.default_rng(0)
    path = tmp_path / "rare.h5"
    with RecordingWriter(path, vocab=["a", "b"]) as w:
        w.add_tap("h", 4)
        w.add_annotation("tag", kind="categorical", labels=["x", "y", "never"])
        for _ in range(30):
            tag = rng.integers(0, 2, 20)
            h = rng.standard_normal((20, 4)).astype(np.float32)
            h[:, 0] += 2.0 * tag
            w.append_item(rng.integers(0, 2, 20), {"h": h}, annotations={"tag": tag})
    with open_recording(path) as rec:
        labels = probe_labels(rec, "tag")
        result = fit_probe(rec, "h", labels, split_items(rec.n_items), label_names=["x", "y", "never"])
    assert result.converged and result.accuracy > 0.7  # the Bayes rate is about 0.84
    assert result.bias[2] == -np.inf and not result.weights[2].any()
    assert result.confusion[:, 2].sum() == 0


def test_a_fit_stopped_by_the_iteration_limit_says_so():
    with open_recording(demo_path()) as rec:
        labels = probe_labels(rec, "depth", shift=1)
        result = fit_probe(rec, "layer1/c", labels, split_items(rec.n_items), l2_grid=(1e-4,), max_iter=2)
    assert not result.converged and result.iterations == 2


def test_a_warm_start_with_carried_memory_reaches_the_cold_optimum():
    """The final fit starts from another l2's solution with its curvature and L-BFGS pairs (moved to the
    new penalty); it must land on the same optimum as a fit from scratch, and the moved pairs must
    hold the new penalty's curvature (sᵀy grows by 2·Δl2·|s|² on the weights)."""
    from lstmviz.analysis.probe_solver import _Problem, fit_softmax

    rng = np.random.default_rng(0)
    n, d, k = 3000, 20, 4
    y = rng.integers(0, k, n)
    z = (rng.standard_normal((n, d)) + 0.4 * rng.standard_normal((k, d))[y]).astype(np.float32)
    chunks = [(torch.from_numpy(z[s:s + 700]), torch.from_numpy(y[s:s + 700])) for s in range(0, n, 700)]
    counts = np.bincount(y, minlength=k)
    first = fit_softmax(chunks, n, d, counts, [1e-2], tol=1e-4)
    l2 = 2e-3
    warm = fit_softmax(chunks, n, d, counts, [l2], init=(first.weights, first.bias), curvatures=first.curvatures,
                       memories=first.memories, tol=1e-9)
    cold = fit_softmax(chunks, n, d, counts, [l2], tol=1e-9)
    assert warm.converged[0] and cold.converged[0]
    assert abs(warm.objective[0] - cold.objective[0]) <= 1e-6 * cold.objective[0]
    assert cold.objective[0] > 0.3  # not a separable problem
    mask = torch.ones(k, d + 1, dtype=torch.float64)
    mask[:, d] = 0.0
    old_l2, pairs = first.memories[0]
    assert old_l2 == 1e-2 and pairs
    moved = _Problem(l2, torch.zeros(k, d + 1, dtype=torch.float64), mask, None, memory=first.memories[0]).carried
    for (s, y_old, _), (s2, y_new, rho) in zip(pairs, moved):
        assert torch.equal(s, s2)
        expected = float((s * y_old).sum()) + 2.0 * (l2 - old_l2) * float((s * s * mask).sum())
        assert abs(1.0 / rho - expected) <= 1e-9 * abs(expected)
