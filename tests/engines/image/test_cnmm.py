"""cnmm (Ruiz & Verbeek 2019, reconstruction): the properties only a mixture over the sub-networks of a gated DAG has.

1. Hard gates (θ = ±∞, or explicit 0/1 gates) give exactly the deterministic CNN of the active edges, built here
   independently from the same weights with plain conv2d / layer_norm (group_norm).
2. An edge with p_e = 0 can be deleted from the DAG without changing the output bitwise; FLOPs count only edges
   reachable from the input and reaching the output.
3. With linear blocks the expectation-propagated logits are the exact mean of the logits of the 2^E sub-networks
   (3-edge DAG: 8 networks; the dense 12-edge backbone: 4096); with ReLU/normalised blocks they are not (the fast
   output is then an approximation).
4. Pruning at a threshold gives the expected mask (dead edges removed); bad configs are refused in one sentence.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from lstmviz.engines.checkpoint import load_checkpoint, save_checkpoint
from lstmviz.engines.vision.cnmm import CNMM, DAG, build, dense_dag

# dense_dag(3): nodes 0 in, 1 (1,0), 2 (1,1), 3 (2,0), 4 (2,1), 5 out (3,1)
EDGES = ((0, 1), (0, 2), (0, 3), (1, 3), (0, 4), (1, 4), (2, 4), (0, 5), (1, 5), (2, 5), (3, 5), (4, 5))


def tiny(seed=0, **kw):
    torch.manual_seed(seed)
    kw.setdefault("hidden_size", 4)
    return CNMM(2, 8, 8, 5, **kw).double().eval()


def images(n=3, seed=1, channels=2):
    return torch.rand(n, channels, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def set_logits(model, theta):
    with torch.no_grad():
        model.gate_param.copy_(torch.as_tensor(theta, dtype=torch.float64) / model.logit_scale)


def reference_cnn(model, active, x):
    """The deterministic CNN of the active edges, computed from the model's weights without the model's forward:
    each node the sum (in edge order) of ReLU(norm(conv)) over its active incoming edges whose source was computed."""
    nodes = {0: x}
    for j in range(1, len(model.dag.nodes)):
        acc = None
        for e, (a, b) in enumerate(model.dag.edges):
            if b != j or not active[e] or a not in nodes:
                continue
            blk = model.blocks[e]
            y = F.conv2d(nodes[a], blk.conv.weight, None, blk.stride, 1)
            if model.block_kind == "conv-gn-relu":
                y = F.group_norm(y, blk.groups, blk.gamma, None)
            else:  # LayerNorm over the channels of each cell
                y = F.layer_norm(y.permute(0, 2, 3, 1), (y.shape[1],), blk.gamma, None, 1e-5).permute(0, 3, 1, 2)
            y = y.relu()
            acc = y if acc is None else acc + y
        if acc is not None:
            nodes[j] = acc
    out = nodes.get(len(model.dag.nodes) - 1)
    pooled = torch.zeros(x.shape[0], model.head.in_features, dtype=x.dtype) if out is None else out.mean(dim=(2, 3))
    return F.linear(pooled, model.head.weight, model.head.bias)


def test_dense_backbone_has_the_documented_edges_and_flops():
    model = tiny()
    assert model.dag.edges == EDGES and dense_dag(3).edges == EDGES
    # multiply-adds: out cells x C_out x C_in x 9; scale 0: 4 channels 8x8, scale 1: 8 channels 4x4, input 2 channels
    assert model.edge_flops[0] == 64 * 4 * 2 * 9 and model.edge_flops[1] == 16 * 8 * 2 * 9
    assert model.edge_flops[3] == 64 * 4 * 4 * 9 and model.edge_flops[5] == 16 * 8 * 4 * 9
    assert model.edge_flops[11] == 16 * 8 * 8 * 9
    assert model.flops() == sum(model.edge_flops) + 8 * 5


# ---------------------------------------------------------------------------------------------- 1. hard gates
@pytest.mark.parametrize("block", ["conv-ln-relu", "conv-gn-relu"])
@pytest.mark.parametrize("pattern", [(1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 1), (0, 1, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0),
                                     (1,) * 12, (0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0)])
def test_hard_gates_are_exactly_the_cnn_of_the_active_edges(pattern, block):
    model = tiny(seed=sum(pattern), block=block)
    x = images()
    with torch.no_grad():
        want = reference_cnn(model, pattern, x)
        set_logits(model, [float("inf") if z else float("-inf") for z in pattern])
        assert torch.equal(model.edge_probs(), torch.tensor(pattern, dtype=torch.float64))
        assert torch.equal(model(x), want)  # eval: gates p_e ∈ {0, 1}
        assert torch.equal(model(x, gates=torch.tensor(pattern, dtype=torch.float64)), want)
        model.set_mask(pattern, hard=True)  # the pruned CNN: only the live edges run
        assert torch.equal(model(x), want)
    # and it is a different network from the full mixture
    if sum(pattern) < 12:
        with torch.no_grad():
            assert not torch.allclose(want, reference_cnn(model, (1,) * 12, x))


def test_training_mode_samples_relaxed_gates_per_image_with_gradients():
    model = tiny(temperature=0.5, min_temperature=0.5).train()
    gates = model._gates(images(4), None)
    assert gates.shape == (4, 12) and ((gates > 0) & (gates < 1)).all()
    assert not torch.equal(gates[0], gates[1])
    batch = {"target": torch.tensor([0, 1, 2, 3]), "targets": None}
    loss, count = model.loss(images(4), batch)
    loss.backward()
    assert count == 4 and model.gate_param.grad is not None and model.gate_param.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------ 2. deletion and dead edges
def test_an_edge_with_zero_probability_can_be_deleted_bitwise():
    model = tiny(seed=4)
    theta = torch.randn(12, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    gone = 5  # (1 -> 4): a middle edge
    theta[gone] = float("-inf")
    set_logits(model, theta)
    x = images()
    with torch.no_grad():
        full = model(x)
    # a model whose DAG does not have the edge at all, with the same weights for the others
    keep = [e for e in range(12) if e != gone]
    torch.manual_seed(99)
    small = CNMM(2, 8, 8, 5, hidden_size=4, dag=DAG(dense_dag(3).nodes, tuple(EDGES[e] for e in keep))).double().eval()
    with torch.no_grad():
        for new, old in enumerate(keep):
            small.blocks[new].load_state_dict(model.blocks[old].state_dict())
        small.head.load_state_dict(model.head.state_dict())
        small.gate_param.copy_(model.gate_param[keep])
        assert torch.equal(small(x), full)
        # pruning it away (threshold just above 0) is bitwise the same too, and it is then not computed
        mask = model.prune(1e-300)
        assert mask.tolist() == [e != gone for e in range(12)]
        assert torch.equal(model(x), full)
        assert float(model(x, gates=None).sum()) == float(full.sum())


def test_flops_count_only_edges_reachable_from_the_input_and_reaching_the_output():
    model = tiny()
    macs, head = model.edge_flops, 8 * 5

    def mask(*on):
        return [e in on for e in range(12)]

    # (1 -> 3) and (3 -> 5) kept but node 1 gets no input: both dead, only (0 -> 5) counts
    assert model.dag.live(mask(3, 10, 7)) == mask(7)
    assert model.flops(mask(3, 10, 7)) == macs[7] + head
    # (0 -> 1) and (1 -> 3) kept but node 3 reaches nothing: dead
    assert model.dag.live(mask(0, 3, 7)) == mask(7)
    assert model.flops(mask(0, 3, 7)) == macs[7] + head
    # a full chain 0 -> 1 -> 3 -> 5 is live
    assert model.dag.live(mask(0, 3, 10)) == mask(0, 3, 10)
    assert model.flops(mask(0, 3, 10)) == macs[0] + macs[3] + macs[10] + head
    assert model.flops(mask()) == head
    # the model's own cost after pruning is the live edges'; a dead edge is not computed (its norm tap is 0)
    model.set_mask(mask(0, 3, 10, 6))  # (2 -> 4): node 2 has no input
    assert model.live.tolist() == mask(0, 3, 10) and model.flops() == macs[0] + macs[3] + macs[10] + head


# --------------------------------------------------------------------------------- 3. the mixture mean of logits
def mixture_mean(model, x, probs):
    """Σ_z π(z) logits(x; z) over every z ∈ {0,1}^E, the sub-networks batched."""
    E = len(probs)
    zs = torch.tensor(list(itertools.product((0.0, 1.0), repeat=E)), dtype=torch.float64)  # [2^E, E]
    weights = torch.where(zs > 0, probs, 1 - probs).prod(1)  # [2^E]
    total = torch.zeros(x.shape[0], model.head.out_features, dtype=torch.float64)
    for i in range(x.shape[0]):
        xi = x[i:i + 1].expand(len(zs), -1, -1, -1)
        with torch.no_grad():
            total[i] = (weights[:, None] * model(xi, gates=zs)).sum(0)
    assert abs(float(weights.sum()) - 1) < 1e-12
    return total


THREE = DAG(((0, 0), (1, 0), (2, 1)), ((0, 1), (1, 2), (0, 2)))


@pytest.mark.parametrize("dag", [THREE, None], ids=["3-edges", "dense-12-edges"])
def test_linear_blocks_expectation_propagation_is_the_exact_mixture_mean_of_logits(dag):
    torch.manual_seed(5)
    model = CNMM(2, 8, 8, 5, hidden_size=3, block="linear", dag=dag).double().eval()
    E = len(model.dag.edges)
    set_logits(model, torch.randn(E, generator=torch.Generator().manual_seed(7), dtype=torch.float64))
    x = images(2)
    with torch.no_grad():
        fast = model(x)
    exact = mixture_mean(model, x, model.edge_probs().detach())
    torch.testing.assert_close(fast, exact, rtol=1e-10, atol=1e-12)
    # the probabilities are not in {0, 1}, so this is a genuine mixture: it differs from the full network
    with torch.no_grad():
        assert (fast - model(x, gates=torch.ones(E, dtype=torch.float64))).abs().max() > 1e-3


def test_relu_blocks_expectation_propagation_only_approximates_the_mixture_mean():
    torch.manual_seed(5)
    model = CNMM(2, 8, 8, 5, hidden_size=3, dag=THREE).double().eval()
    set_logits(model, torch.tensor([0.3, -0.4, 0.1], dtype=torch.float64))
    x = images(2)
    with torch.no_grad():
        fast = model(x)
    exact = mixture_mean(model, x, model.edge_probs().detach())
    assert (fast - exact).abs().max() > 1e-4


# ------------------------------------------------------------------------------------------ 4. pruning, configs
def test_pruning_at_a_threshold_gives_the_expected_mask_and_survives_a_checkpoint(tmp_path):
    model = tiny()
    p = torch.tensor([0.9, 0.2, 0.6, 0.8, 0.1, 0.3, 0.95, 0.7, 0.4, 0.05, 0.85, 0.5], dtype=torch.float64)
    set_logits(model, torch.log(p / (1 - p)))
    assert model.prune(0.0).tolist() == [True] * 12
    # keep p >= 0.6: edges 0 (0->1), 2 (0->3), 3 (1->3), 6 (2->4), 7 (0->5), 10 (3->5); 6 has a dead source (2)
    want = [True, False, True, True, False, False, False, True, False, False, True, False]
    assert model.prune(0.6).tolist() == want and model.live.tolist() == want
    assert model.flops() == sum(m for m, w in zip(model.edge_flops, want) if w) + 8 * 5
    # keep p >= 0.8: 0, 3, 6, 10 -> 0->1->3->5 live, 6 dead
    assert model.prune(0.8).tolist() == [e in (0, 3, 10) for e in range(12)]
    assert model.prune(0.99).tolist() == [False] * 12 and model.flops() == 8 * 5
    model.prune(0.6, hard=True)
    x = images()
    with torch.no_grad():
        hard = model(x)
        assert torch.equal(hard, reference_cnn(model, want, x))
    path = save_checkpoint(tmp_path / "c.pt", model, engine="cnmm", config={"hidden_size": 4}, vocab=[], dataset="t",
                           step=1, metrics={}, family="image",
                           data={"channels": 2, "height": 8, "width": 8, "num_classes": 5, "task": "class"})
    loaded, _ = load_checkpoint(path)
    assert loaded.live.tolist() == want and bool(loaded.hard)
    with torch.no_grad():
        assert torch.equal(loaded.double()(x), hard)
    model.unprune()
    assert model.live.tolist() == [True] * 12 and not bool(model.hard)


@pytest.mark.parametrize("kwargs, words", [
    ({"hidden_size": 0}, "hidden_size"), ({"num_layers": 1}, "num_layers"), ({"block": "batchnorm"}, "block"),
    ({"cost": -1.0}, "cost"), ({"temperature": 0.0}, "temperature"),
    ({"temperature": 0.5, "min_temperature": 0.9}, "min_temperature"), ({"anneal_steps": -3}, "anneal_steps"),
])
def test_bad_configs_are_refused_in_one_sentence(kwargs, words):
    with pytest.raises(ValueError) as err:
        build(1, 8, 8, 10, **kwargs)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_bad_sizes_thresholds_and_dags_are_refused_in_one_sentence():
    for call, words in [(lambda: build(1, 3, 8, 10), "at least 4x4"),
                        (lambda: tiny().prune(1.5), "threshold"),
                        (lambda: tiny().prune(-0.1), "threshold"),
                        (lambda: DAG(((0, 0), (1, 0)), ((1, 0),)), "greater depth"),
                        (lambda: DAG(((0, 0), (1, 0), (2, 0)), ((0, 2),)).live([True, False]), "mask of 1 edges"),
                        (lambda: tiny()(images(2), gates=torch.ones(5)), "gates of shape")]:
        with pytest.raises(ValueError) as err:
            call()
        assert words in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_temperature_anneals_geometrically_and_the_penalty_is_the_expected_flops():
    model = tiny(temperature=1.0, min_temperature=0.25, anneal_steps=10, cost=0.7).train()
    assert model.current_temperature() == 1.0
    batch = {"target": torch.tensor([0, 1, 2]), "targets": None}
    for _ in range(5):
        model.loss(images(), batch)
    assert int(model.steps_seen) == 5 and abs(model.current_temperature() - 0.5) < 1e-12
    for _ in range(10):
        model.loss(images(), batch)
    assert abs(model.current_temperature() - 0.25) < 1e-12
    # the same sample with cost 0 and cost 0.7: the difference is 0.7 · Σ p_e flops_e / Σ flops_e
    torch.manual_seed(3)
    with_cost, _ = model.loss(images(), batch)
    model.cost = 0.0
    torch.manual_seed(3)
    without, _ = model.loss(images(), batch)
    p = model.edge_probs().detach()
    macs = torch.tensor(model.edge_flops, dtype=torch.float64)
    assert abs(float((with_cost - without).detach()) - 0.7 * float((p * macs).sum() / macs.sum())) < 1e-12
    # eval mode: the plain task loss of the expectation-propagated logits
    model.eval()
    with torch.no_grad():
        loss, _ = model.loss(images(), batch)
        assert abs(float(loss) - float(F.cross_entropy(model(images()), batch["target"]))) < 1e-12
