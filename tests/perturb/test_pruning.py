"""Pruning: saliencies, predicted against measured loss change, and the model given back unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lstmviz.datasets.parens import generate
from lstmviz.engines import build_engine
from lstmviz.errors import ExpectedError
from lstmviz.hooks import Edit, Tap, intervene
from lstmviz.perturb.pruning import prune, pruning_curve, saliency
from lstmviz.recording.recorder_context import Recorder

HH = "layers.0.weight_hh"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def lstm():
    """A random float64 1-layer LSTM on parens and four items of 40 tokens."""
    torch.manual_seed(0)
    model = build_engine("lstm", vocab_size=8, embedding_dim=8, hidden_size=16, num_layers=1, init_range=0.3)
    tokens = torch.as_tensor(generate(4 * 40, seed=1, split="test")[0]).view(4, 40)
    return model.double().eval(), tokens


class QuadraticToy(nn.Module):
    """y = tap(x * w): with loss sum (y - t)^2 the loss is exactly quadratic, with a diagonal Hessian, both in
    the weights w and in a mask on the tap's units."""

    def __init__(self, units=6):
        super().__init__()
        g = torch.Generator().manual_seed(5)
        self.w = nn.Parameter(torch.randn(units, generator=g, dtype=torch.float64))
        self.x = torch.randn(3, 4, units, generator=g, dtype=torch.float64)
        self.t = torch.randn(3, 4, units, generator=g, dtype=torch.float64)
        self.tap = Tap("toy/y")

    def forward(self, tokens):
        return self.tap(self.x * self.w, step=None)


def _toy_loss(model, tokens):
    return ((model(tokens) - model.t) ** 2).sum()


@pytest.mark.parametrize("where", [{"parameter": "w"}, {"tap": "toy/y"}])
@pytest.mark.parametrize("hessian", ["exact", "hutchinson"])
def test_qm_predicts_a_quadratic_loss_exactly(where, hessian):
    model = QuadraticToy()
    curve = pruning_curve(model, torch.zeros(1, 1, dtype=torch.long), **where, loss=_toy_loss, hessian=hessian,
                          samples=3, fractions=(1 / 6, 0.5, 1.0), methods=("magnitude", "qm"))
    for m in ("magnitude", "qm"):
        assert np.allclose(curve.quadratic[m], curve.measured[m], rtol=1e-9, atol=1e-9)
        assert np.all(curve.measured[m][1:] != 0)
    # the linear model misses the curvature: it is not exact here
    assert not np.allclose(curve.linear["qm"], curve.measured["qm"], rtol=1e-3)


def test_taylor_first_order_matches_measured_for_tiny_fractions(lstm):
    model, tokens = lstm
    n = model.get_parameter(HH).numel()
    curve = pruning_curve(model, tokens, parameter=HH, methods=("magnitude",), fractions=(1 / n, 4 / n, 16 / n),
                          hessian=None)
    measured, linear = curve.measured["magnitude"], curve.linear["magnitude"]
    assert np.all(np.abs(measured) > 1e-10)
    assert np.allclose(linear, measured, rtol=0.03, atol=0)
    assert list(curve.counts) == [1, 4, 16]


def test_exact_hessian_of_the_unit_mask_matches_finite_differences(lstm):
    model, tokens = lstm
    sal = saliency(model, tokens, tap="layer0/c", hessian="exact")
    assert sal.theta.shape == (16,) and np.all(sal.theta == 1)

    def loss_with(mask):
        with intervene(model, Edit("layer0/c", "scale", mask)), torch.no_grad():
            logits, _ = model(tokens)
            return float(nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 8), tokens[:, 1:].reshape(-1)))

    eps = 1e-3
    for i in (0, 7):
        up, down = torch.ones(16, dtype=torch.float64), torch.ones(16, dtype=torch.float64)
        up[i] += eps
        down[i] -= eps
        fd_h = (loss_with(up) + loss_with(down) - 2 * sal.baseline) / eps ** 2
        fd_g = (loss_with(up) - loss_with(down)) / (2 * eps)
        assert sal.gradient[i] == pytest.approx(fd_g, rel=1e-5, abs=1e-9)
        assert sal.hessian_diag[i] == pytest.approx(fd_h, rel=1e-3, abs=1e-7)
    assert sal.baseline == pytest.approx(loss_with(torch.ones(16, dtype=torch.float64)), rel=1e-12)


def test_pruned_units_are_zero_in_the_recurrence_and_the_model_is_given_back(lstm):
    model, tokens = lstm
    with torch.no_grad():
        clean = model(tokens)[0]
    with prune(model, tokens, tap="layer0/c", method="taylor", fraction=0.25) as pruned:
        assert len(pruned.indices) == 4
        with Recorder(model, ["layer0/c", "layer0/h"]) as rec, torch.no_grad():
            model(tokens)
            states = rec.collect()
        assert torch.all(states["layer0/c"][..., pruned.indices] == 0)
        assert torch.all(states["layer0/h"][..., pruned.indices] == 0)  # h = o * tanh(c) carries it
        measured = pruned.measure(model, tokens)
        assert measured != 0 and np.isfinite(pruned.predicted_linear)
    with torch.no_grad():
        assert torch.equal(model(tokens)[0], clean)
    assert not model.layers[0].c_tap._forward_hooks


def test_weights_are_restored_also_after_an_error(lstm):
    model, tokens = lstm
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.get_parameter(HH).requires_grad_(False)
    with pytest.raises(RuntimeError, match="inside"):
        with prune(model, tokens, parameter=HH, method="qm", fraction=0.5) as pruned:
            w = model.get_parameter(HH).detach().flatten()
            assert torch.all(w[pruned.indices] == 0) and int((w == 0).sum()) == len(pruned.indices)
            raise RuntimeError("inside")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert not model.get_parameter(HH).requires_grad
    model.get_parameter(HH).requires_grad_(True)


def test_rankings_differ_by_method(lstm):
    model, tokens = lstm
    sal = saliency(model, tokens, parameter="decoder.weight", hessian="hutchinson", samples=4)
    w = model.decoder.weight.detach().flatten().numpy()
    assert np.array_equal(sal.order("magnitude"), np.argsort(np.abs(w), kind="stable"))
    assert np.allclose(sal.scores("taylor"), np.abs(sal.gradient * w))
    assert not np.array_equal(sal.order("magnitude")[:20], sal.order("taylor")[:20])


def test_qm_and_obd_are_laurent_et_al_s_definitions(lstm):
    """qm keeps the gradient term, obd is ½hθ² alone (before issue 20 'obd' named what is now 'qm')."""
    model, tokens = lstm
    sal = saliency(model, tokens, tap="layer0/c", hessian="exact")
    g, h, t = sal.gradient, sal.hessian_diag, sal.theta
    assert np.allclose(sal.scores("qm"), np.abs(-g * t + 0.5 * h * t ** 2), rtol=0, atol=1e-15)
    assert np.allclose(sal.scores("obd"), 0.5 * h * t ** 2, rtol=0, atol=1e-15)
    assert not np.array_equal(sal.order("qm"), sal.order("obd"))
    curve = pruning_curve(model, tokens, tap="layer0/c", methods=("qm", "obd"), fractions=(0.25,),
                          hessian="exact")
    assert curve.predicted["qm"][0] == curve.quadratic["qm"][0]
    assert curve.predicted["obd"][0] == pytest.approx(curve.quadratic["obd"][0] - curve.linear["obd"][0])


def test_user_mistakes_are_sentences(lstm):
    model, tokens = lstm
    with pytest.raises(ExpectedError, match="no tap 'layer9/c'"):
        pruning_curve(model, tokens, tap="layer9/c")
    with pytest.raises(ExpectedError, match="no parameter 'w'"):
        pruning_curve(model, tokens, parameter="w")
    with pytest.raises(ExpectedError, match="method 'random' is not known"):
        pruning_curve(model, tokens, tap="layer0/c", methods=("random",))
    with pytest.raises(ExpectedError, match="between 0 and 1"):
        pruning_curve(model, tokens, tap="layer0/c", fractions=(1.5,))
    with pytest.raises(ExpectedError, match="either a tap"):
        pruning_curve(model, tokens)


def test_pruning_curve_items_masks_the_padding_and_reports_progress(lstm_live, lstm_rec):
    from lstmviz.perturb.pruning import pruning_curve_items
    from lstmviz.perturb.run import run_item
    from lstmviz.tasks import Cancelled, Task

    items = [0, 1, 2]
    lengths = {len(run_item(lstm_live, lstm_rec, i, taps=()).tokens) for i in items}
    assert len(lengths) > 1  # padded batches
    nll = np.concatenate([run_item(lstm_live, lstm_rec, i, taps=()).nll[:-1] for i in items])
    seen = []
    task = Task(lambda done, total, what: seen.append((done, total)))
    curve = pruning_curve_items(lstm_live, lstm_rec, items, "layer0/h", methods=("taylor",),
                                fractions=(0.0, 0.25), task=task, hessian=None, batch_size=2)
    assert curve.baseline == pytest.approx(float(nll.mean()), rel=1e-5)
    assert curve.measured["taylor"][0] == 0 and curve.measured["taylor"][1] != 0
    assert seen and seen[-1][0] == seen[-1][1]
    task = Task()
    task.cancel()
    with pytest.raises(Cancelled):
        pruning_curve_items(lstm_live, lstm_rec, items, "decoder.bias", task=task, hessian=None)


class StockLM(nn.Module):
    """A script's model around a stock nn.LSTM (its signals are reached through the recovery layer)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.emb = nn.Embedding(7, 5)
        self.lstm = nn.LSTM(5, 6, batch_first=True)
        self.head = nn.Linear(6, 7)

    def forward(self, tokens):
        return self.head(self.lstm(self.emb(tokens))[0])


def test_units_of_a_stock_lstm_are_pruned_inside_its_recurrence():
    model = StockLM().double().eval()
    tokens = torch.randint(0, 7, (3, 10), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        clean = model(tokens)
    with prune(model, tokens, tap="lstm/layer0/c", method="qm", fraction=0.5) as pruned:
        with Recorder(model, ["lstm/layer0/c", "lstm/layer0/h"]) as rec, torch.no_grad():
            model(tokens)
            states = rec.collect()
        assert len(pruned.indices) == 3
        assert torch.all(states["lstm/layer0/c"][..., pruned.indices] == 0)
        assert torch.all(states["lstm/layer0/h"][..., pruned.indices] == 0)
        assert pruned.measure(model, tokens) != 0
    with torch.no_grad():
        assert torch.equal(model(tokens), clean)
