"""pkm: the product-key top-k equals brute force over all n² keys; the memory read and its taps."""

import math

import pytest
import torch

from lstmviz.engines.spec import ConfigError
from lstmviz.engines.vision.pkm import DENSE_SLOTS, brute_topk, build, product_topk, slot_usage
from lstmviz.hooks import SCALAR, find_taps


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("n,k", [(16, 4), (16, 16), (7, 5), (4, 16)])
def test_product_topk_equals_brute_force(n, k):
    g = _gen(n + k)
    keys1, keys2 = torch.randn(n, 8, generator=g, dtype=torch.float64), torch.randn(n, 8, generator=g, dtype=torch.float64)
    q = torch.randn(50, 16, generator=g, dtype=torch.float64)
    s, idx = product_topk(q[:, :8], q[:, 8:], keys1, keys2, k)
    bs, bidx = brute_topk(q[:, :8], q[:, 8:], keys1, keys2, k)
    assert torch.allclose(s, bs, atol=1e-12)
    assert torch.equal(idx, bidx)  # random scores: no ties, so the indices are unique too


def test_product_topk_with_ties_returns_the_brute_force_scores_and_a_valid_index_set():
    # integer keys and queries: many pairs tie, also at the k-th place
    g = _gen(1)
    n, k = 8, 6
    keys1 = torch.randint(-1, 2, (n, 2), generator=g).double()
    keys2 = torch.randint(-1, 2, (n, 2), generator=g).double()
    q = torch.randint(-1, 2, (40, 4), generator=g).double()
    s, idx = product_topk(q[:, :2], q[:, 2:], keys1, keys2, k)
    bs, _ = brute_topk(q[:, :2], q[:, 2:], keys1, keys2, k)
    full = brute_topk(q[:, :2], q[:, 2:], keys1, keys2, n * n)[0]
    assert (full[:, k - 1] == full[:, k]).any()  # the test really has ties at the boundary
    assert torch.equal(s, bs)
    # every returned slot is distinct and really has the score returned for it
    i, j = idx // n, idx % n
    rescored = (q[:, None, :2] * keys1[i]).sum(-1) + (q[:, None, 2:] * keys2[j]).sum(-1)
    assert torch.equal(rescored, s)
    assert all(len(set(row.tolist())) == k for row in idx)


def _model(**kw):
    torch.manual_seed(0)
    cfg = dict(conv_channels=(4, 8), n_keys=8, topk=4, heads=2, query_size=8, value_size=6)
    cfg.update(kw)
    return build(1, 8, 8, 10, **cfg)


def test_memory_read_is_the_dense_softmax_sum_and_only_hk_value_rows_get_gradient():
    model = _model().eval()
    mem = model.memory
    x = model.features(torch.rand(1, 1, 8, 8))
    out, q, weights, slots = mem(x)
    # dense reference: score every slot, keep each head's top-k, softmax, weighted sum of values
    half = mem.query_size // 2
    expected = torch.zeros(mem.values.weight.shape[1])
    for h in range(mem.heads):
        qh = q[0, h * mem.query_size:(h + 1) * mem.query_size]
        s, idx = brute_topk(qh[None, :half], qh[None, half:], mem.keys[h, 0], mem.keys[h, 1], mem.k)
        expected = expected + s.softmax(-1)[0] @ mem.values.weight[idx[0]]
    assert torch.allclose(out[0], expected, atol=1e-6)
    out.sum().backward()
    touched = (mem.values.weight.grad.abs().sum(1) > 0).sum().item()
    assert touched == len(set(slots.flatten().tolist())) <= mem.heads * mem.k
    assert touched >= mem.k


def test_sparse_values_give_a_sparse_gradient_on_the_same_rows():
    model = _model(sparse_values=True).eval()
    images = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        _, _, slots = model.memory.lookup(model.features(images))
    model(images).sum().backward()
    grad = model.memory.values.weight.grad
    assert grad.is_sparse
    assert set(grad.coalesce().indices()[0].tolist()) == set(slots.flatten().tolist())


def _record(model, images):
    seen = {}
    taps = find_taps(model)
    hooks = [t.register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o.detach())) for n, t in taps.items()]
    model(images)
    for h in hooks:
        h.remove()
    return taps, seen


def test_memory_slots_tap_is_dense_up_to_4096_slots():
    model = _model().eval()
    taps, seen = _record(model, torch.rand(3, 1, 8, 8))
    assert sorted(taps) == ["conv0", "conv1", "logits", "memory_slots", "query", "readout"]
    slots = seen["memory_slots"]
    assert taps["memory_slots"].layout is SCALAR and slots.shape == (3, 64)
    assert torch.allclose(slots.sum(1), torch.full((3,), 2.0))  # one softmax per head
    assert ((slots > 0).sum(1) <= 2 * 4).all()
    # the read-out is the slot weights times the values
    assert torch.allclose(seen["readout"], slots @ model.memory.values.weight, atol=1e-6)


def test_memory_slots_above_4096_are_indices_and_weights():
    model = _model(n_keys=65)  # 4225 slots
    assert model.memory.num_slots > DENSE_SLOTS
    model.eval()
    taps, seen = _record(model, torch.rand(2, 1, 8, 8))
    assert "memory_slots" not in taps
    idx, w = seen["memory_slots/indices"], seen["memory_slots/weights"]
    assert idx.shape == w.shape == (2, 8)
    dense = torch.zeros(2, model.memory.num_slots).scatter_add_(1, idx.long(), w)
    assert torch.allclose(seen["readout"], dense @ model.memory.values.weight, atol=1e-6)


def test_slot_usage_and_bad_config():
    frac, kl = slot_usage(torch.tensor([1.0, 1.0, 1.0, 1.0]))
    assert frac == 1.0 and abs(kl) < 1e-12
    frac, kl = slot_usage(torch.tensor([2.0, 0.0, 0.0, 0.0]))
    assert frac == 0.25 and abs(kl - math.log(4)) < 1e-12
    with pytest.raises(ConfigError, match="query_size"):
        _model(query_size=7)
    with pytest.raises(ConfigError, match="topk"):
        _model(n_keys=2, topk=5)
    axes = _model().image_axes(8, 8)
    assert axes["conv1"].size.height == 4 and axes["image"].num_positions == 1
