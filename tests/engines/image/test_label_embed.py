"""label-embed: PMI of label co-occurrence, SVD label embeddings, the cosine loss, decoding, the saved table."""

import math

import numpy as np
import pytest
import torch

from lstmviz.engines.spec import ConfigError
from lstmviz.engines.vision.label_embed import (build, cooccurrence, cosine_loss, label_embeddings, label_matrix,
                                                normalize_rows, pmi_matrix, svd_embeddings, top_count_sets)
from lstmviz.hooks import HookScope, find_taps

# 6 images, 3 labels; every pair co-occurs at least once, so the unsmoothed PMI is finite
Y = np.array([[1, 1, 0], [1, 0, 1], [1, 1, 1], [0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=float)


def _blocks(groups=((0, 1, 2), (3, 4, 5), (6, 7, 8)), per=40, seed=0):
    """Images holding 2 labels of one group (labels of different groups never co-occur)."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in groups:
        for _ in range(per):
            row = np.zeros(sum(len(x) for x in groups))
            row[rng.choice(g, 2, replace=False)] = 1
            rows.append(row)
    return np.array(rows)


def test_pmi_of_a_hand_made_table_equals_the_formula():
    counts, n = cooccurrence(Y)
    assert n == 6 and np.array_equal(counts, [[4, 2, 2], [2, 3, 1], [2, 1, 3]])
    p = np.diag(counts) / n  # P(i); P(i, i) = P(i) on the diagonal
    raw = pmi_matrix(counts, n, smoothing=0.0)
    for i in range(3):
        for j in range(3):
            assert raw[i, j] == pytest.approx(math.log((counts[i, j] / n) / (p[i] * p[j])), abs=1e-12)
    assert raw[0, 1] == pytest.approx(0.0, abs=1e-12)  # by hand: P(0,1) = 2/6 = P(0) P(1) = 4/6 * 3/6
    assert raw[1, 2] == pytest.approx(math.log((1 / 6) / (1 / 4)))
    assert raw[1, 1] == pytest.approx(-math.log(3 / 6))  # self-information
    smooth = pmi_matrix(counts, n, smoothing=1.0)
    assert smooth[1, 2] == pytest.approx(math.log((1 + 1) * 6 / ((3 + 1) * (3 + 1))))
    positive = pmi_matrix(counts, n, smoothing=1.0, positive=True)
    assert np.array_equal(positive, np.maximum(smooth, 0)) and (smooth < 0).any()
    with pytest.raises(ValueError, match="smoothing"):
        pmi_matrix(np.array([[2.0, 0.0], [0.0, 2.0]]), 4, smoothing=0.0)  # never together: log 0


@pytest.mark.parametrize("positive", [False, True])
def test_svd_embeddings_reproduce_the_pmi_at_full_rank(positive):
    y = _blocks()
    counts, n = cooccurrence(y)
    m = pmi_matrix(counts, n, smoothing=1.0, positive=positive)
    e, f, s = svd_embeddings(m, m.shape[0])
    np.testing.assert_allclose(e @ f.T, m, atol=1e-10)  # U Σ^½ (V Σ^½)ᵀ = U Σ Vᵀ
    eig = np.linalg.eigvalsh(m)
    np.testing.assert_allclose(np.sort(s), np.sort(np.abs(eig)), atol=1e-10)
    if eig.min() > 1e-9:  # positive semi-definite: E Eᵀ alone is the matrix
        np.testing.assert_allclose(e @ e.T, m, atol=1e-10)
    else:  # E Eᵀ puts |λ| where λ < 0: not the matrix
        assert np.abs(e @ e.T - m).max() > 1e-3
    # truncated at rank d: the best rank-d approximation (Eckart-Young): error = the next singular values
    d = 4
    e4, f4, _ = svd_embeddings(m, d)
    assert np.linalg.norm(e4 @ f4.T - m) == pytest.approx(np.sqrt((s[d:] ** 2).sum()), rel=1e-9)
    # d larger than the number of labels: zero columns
    wide, _, _ = svd_embeddings(m, 12)
    assert wide.shape == (9, 12) and np.all(wide[:, 9:] == 0)


def test_block_cooccurrence_gives_within_group_neighbours_and_group_level_decoding():
    y = _blocks()
    e, _, _ = label_embeddings(y, 6)
    assert np.allclose(np.linalg.norm(e, axis=1), 1)
    cos = e @ e.T
    group = np.repeat(np.arange(3), 3)
    same = group[:, None] == group[None, :]
    np.fill_diagonal(same, False)
    other = group[:, None] != group[None, :]
    assert cos[same].min() > cos[other].max()
    # the normalised sum of any within-group pair ranks its whole group above every other label
    for g in range(3):
        labels = np.flatnonzero(group == g)
        for a in range(3):
            for b in range(a + 1, 3):
                t = e[labels[a]] + e[labels[b]]
                scores = e @ (t / np.linalg.norm(t))
                assert scores[labels].min() > np.delete(scores, labels).max()


def test_cosine_loss_gradient_vanishes_when_outputs_equal_targets_and_is_scale_invariant():
    g = torch.Generator().manual_seed(0)
    t = torch.nn.functional.normalize(torch.randn(5, 6, generator=g, dtype=torch.float64), dim=1)
    for scale in (1.0, 0.3, 7.0):  # outputs equal (or proportional to) the targets: zero loss and gradient
        out = (scale * t).clone().requires_grad_(True)
        loss = cosine_loss(out, t).sum()
        loss.backward()
        assert loss.item() == pytest.approx(0, abs=1e-12)
        assert out.grad.abs().max() < 1e-12
    out = torch.randn(5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    loss = cosine_loss(out, t)
    loss.sum().backward()
    assert out.grad.abs().max() > 1e-3  # not at the target: a gradient ...
    torch.testing.assert_close((out.grad * out).sum(1), torch.zeros(5, dtype=torch.float64), atol=1e-12, rtol=0)
    # ... orthogonal to the output; and the loss does not change with the output's scale
    torch.testing.assert_close(cosine_loss(4.5 * out, t), loss)
    assert cosine_loss(-t, t).sub(2).abs().max() < 1e-12  # opposite: the maximum, 2


def test_model_loss_is_invariant_to_the_scale_of_the_head_and_zero_at_the_target():
    torch.manual_seed(0)
    model = build(1, 8, 8, 4, "multilabel", hidden_size=4, num_layers=2, embed_size=3).double().eval()
    targets = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 0], [0, 1, 0, 1]], dtype=torch.float64)
    model.fit_labels(targets)
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    batch = {"target": targets.argmax(1), "targets": targets}
    before, count = model.loss(x, batch)
    assert count == 3
    with torch.no_grad():
        model.head.weight.mul_(3.0)
        model.head.bias.mul_(3.0)
    torch.testing.assert_close(model.loss(x, batch)[0], before)
    # a head that outputs exactly the targets (zero weight, bias = t) for a batch of one label set
    one = {"target": targets[:1].argmax(1), "targets": targets[:1].expand(3, -1)}
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(2.0 * model.targets(one)[0])
    assert model.loss(x, one)[0].item() == pytest.approx(0, abs=1e-12)


def test_outputs_are_the_cosines_of_the_embedding_tap_with_every_label_and_taps_fire():
    torch.manual_seed(1)
    model = build(1, 16, 16, 10, "multilabel", hidden_size=4, num_layers=3, embed_size=5).double().eval()
    model.fit_labels(_blocks(groups=((0, 6, 8, 9), (1, 4, 7), (2, 3, 5)), per=10))
    seen = {}
    taps = find_taps(model)
    assert set(taps) == {"conv0", "conv1", "conv2", "pooled", "embedding", "logits"}
    with HookScope() as hooks:
        for tap in taps.values():
            hooks.read(tap, lambda module, args, kwargs, out: seen.__setitem__(module.name, out.detach().clone()))
        with torch.no_grad():
            scores = model(torch.rand(4, 1, 16, 16, dtype=torch.float64))
    e = model.label_embeddings()
    assert e.shape == (10, 5) and torch.allclose(e.norm(dim=1), torch.ones(10, dtype=torch.float64))
    y = seen["embedding"]
    expected = (y @ e.t()) / y.norm(dim=1, keepdim=True)
    torch.testing.assert_close(scores, expected)
    torch.testing.assert_close(seen["logits"], scores)


def test_top_count_sets_keeps_the_count_highest_labels():
    scores = torch.tensor([[0.1, 0.9, 0.5, -0.2], [0.7, 0.6, 0.65, 0.0]])
    sets = top_count_sets(scores, torch.tensor([2, 1]))
    assert sets.tolist() == [[0, 1, 1, 0], [1, 0, 0, 0]]


def test_class_task_uses_one_hot_labels_and_an_unfitted_model_fits_on_its_first_batch():
    torch.manual_seed(2)
    model = build(1, 8, 8, 4, "class", hidden_size=4, num_layers=2, embed_size=4).double()
    assert not bool(model.fitted)
    target = torch.arange(40) % 4  # balanced classes, one label per image
    model.loss(torch.rand(40, 1, 8, 8, dtype=torch.float64), {"target": target, "targets": None})
    assert bool(model.fitted)
    expected, _, _ = label_embeddings(np.eye(4)[target.numpy()], 4)
    np.testing.assert_allclose(model.label_embeddings().numpy(), expected, atol=1e-12)
    e = model.label_embeddings()
    off = (e @ e.t())[~torch.eye(4, dtype=bool)]
    assert off.max() - off.min() < 1e-9 and off.max() < 1 - 1e-3  # symmetric labels: one common angle
    assert torch.equal((e @ e.t()).argmax(1), torch.arange(4))  # decoding a class's target gives the class


def test_bad_config_is_refused_in_words():
    with pytest.raises(ConfigError, match="embed_size"):
        build(1, 8, 8, 4, embed_size=0)
    with pytest.raises(ConfigError, match="smoothing"):
        build(1, 8, 8, 4, smoothing=-1.0)
    model = build(1, 8, 8, 4, hidden_size=4, num_layers=2)
    with pytest.raises(ValueError, match=r"labels \[images, 4\]"):
        model.fit_labels(np.ones((3, 5)))


def test_training_fits_the_table_on_the_training_labels_and_the_checkpoint_keeps_it(tmp_path):
    from lstmviz.datasets import load_dataset
    from lstmviz.engines.checkpoint import load_checkpoint
    from lstmviz.engines.training import train

    data = load_dataset("digits-themes", "train", max_images=96)
    train("label-embed", data, out=tmp_path / "m.pt", steps=2, batch_size=16,
          config={"hidden_size": 4, "num_layers": 2, "embed_size": 6}, eval_every=0)
    model, meta = load_checkpoint(tmp_path / "m.pt")
    assert meta["engine"] == "label-embed" and bool(model.fitted)
    y = label_matrix(data)
    assert y.shape == (96, 10)
    expected, m, _ = label_embeddings(y, 6)
    np.testing.assert_allclose(model.label_embeddings().numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(model.pmi.numpy(), m, atol=1e-5)
    assert np.allclose(normalize_rows(expected), expected)
