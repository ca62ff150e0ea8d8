"""The depth-unit ablation of issue 13 on a planted model where the answer is known.

A one-layer LSTM of our ``lstm`` engine with hand-set weights reads the ``parens`` language. Three
cell units (``DEPTH_UNITS``) count the depth: with i = f = o ~ 1 and g = +-tanh(A) for ``(`` / ``)``,
c_t ~ tanh(A) * depth_t. The decoder's digit logits read only those units:

    logit_j = BETA * (2 x_j m - x_j^2),   m = mean of h over DEPTH_UNITS,   x_j = tanh(tanh(A) * j),

so the most likely digit is the one whose x_j is nearest m (the depth). The other units have random
weights and drive only the bracket logits. The test runs the benchmark's own procedure
(``benchmarks/perturb_claims.py``): record the model with ``record()``, find the depth units with
Select on the longest stretch at depth >= 2, zero them through ``lstmviz.hooks.intervene`` and compare
the loss change at digit positions with ablating as many random units.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmviz.datasets.registry import load_dataset
from lstmviz.engines.recurrent.lstm import LSTMLanguageModel
from lstmviz.recording import open_recording
from lstmviz.recording.recorder_run import record

ROOT = Path(__file__).resolve().parents[2]
HIDDEN = 32
DEPTH_UNITS = (3, 14, 27)
A = 0.2
BETA = 300.0
SAT = 10.0  # gate pre-activation: sigmoid(10) ~ 1


def _benchmark():
    spec = importlib.util.spec_from_file_location("perturb_claims", ROOT / "benchmarks" / "perturb_claims.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def planted_model(vocab: list[str]) -> LSTMLanguageModel:
    torch.manual_seed(0)
    v = len(vocab)
    model = LSTMLanguageModel(vocab_size=v, embedding_dim=v, hidden_size=HIDDEN, num_layers=1, dropout=0.0)
    layer = model.layers[0]
    opened, closed = vocab.index("("), vocab.index(")")
    digits = [vocab.index(str(d)) for d in range(5)]
    with torch.no_grad():
        model.embedding.weight.copy_(torch.eye(v))
        w_ih = torch.randn(4 * HIDDEN, v)  # distractors: random input and recurrent weights
        w_hh = 0.5 * torch.randn(4 * HIDDEN, HIDDEN)
        bias = torch.zeros(4 * HIDDEN)
        for u in DEPTH_UNITS:
            i, f, g, o = (k * HIDDEN + u for k in range(4))
            w_ih[[i, f, g, o]] = 0.0
            w_hh[[i, f, g, o]] = 0.0
            bias[[i, f, o]] = SAT
            w_ih[g, opened], w_ih[g, closed] = A, -A
        layer.weight_ih.copy_(w_ih)
        layer.weight_hh.copy_(w_hh)
        layer.bias_ih.copy_(bias)
        layer.bias_hh.zero_()
        dec_w = torch.zeros(v, HIDDEN)
        dec_b = torch.zeros(v)
        others = [u for u in range(HIDDEN) if u not in DEPTH_UNITS]
        dec_w[opened, others] = 0.3 * torch.randn(len(others))
        dec_w[closed, others] = 0.3 * torch.randn(len(others))
        for j, tok in enumerate(digits):
            x = math.tanh(math.tanh(A) * j)
            dec_w[tok, list(DEPTH_UNITS)] = 2 * BETA * x / len(DEPTH_UNITS)
            dec_b[tok] = -BETA * x * x
        model.decoder.weight.copy_(dec_w)
        model.decoder.bias.copy_(dec_b)
    return model.eval()


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    data = load_dataset("parens", "test", tokens=2400, item_length=100)
    model = planted_model(list(data.vocab))
    path = record(model, data, tmp_path_factory.mktemp("ablation") / "planted.h5", signals=["layer0/c"],
                  progress=False)
    return model, path


def test_select_finds_the_depth_units_and_ablating_them_costs_far_more_than_random_units(planted):
    bench = _benchmark()
    model, path = planted
    with open_recording(path) as rec:
        stretch = bench.depth_stretches(rec)[0]
        assert stretch[2] - stretch[1] >= 5
        found = bench.select_depth_units(rec, stretch, "layer0/c")
        tokens, lengths = bench.item_batch(rec)
        digits = {i for i, t in enumerate(rec.vocab) if t.isdigit()}
    assert set(found.tolist()) == set(DEPTH_UNITS)

    targets = {"digit": (digits, "nll"), "digit value": (digits, "choice")}
    n_units = {"layer0/c": HIDDEN}
    effects = bench.ablation_effect(model, tokens, lengths, targets, {"layer0/c": found}, draws=30,
                                    n_units=n_units, seed=0, choice_ids=digits)
    value = effects["digit value"]
    assert value["clean"] < 0.05  # the planted model knows the depth
    for e in effects.values():
        lo, hi = e["selected_ci"]
        assert lo > 1.0  # ablating the depth units destroys the digit prediction on every resample
        assert e["random_ci"][1] < lo / 3  # far more than as many random units
        assert e["items_selected_above_random"] == len(lengths)

    # the same number of units that are not the depth units hardly matters
    others = np.array([u for u in range(HIDDEN) if u not in DEPTH_UNITS][:len(DEPTH_UNITS)])
    wrong = bench.ablation_effect(model, tokens, lengths, targets, {"layer0/c": others}, draws=1,
                                  n_units=n_units, seed=0, choice_ids=digits)
    assert abs(wrong["digit value"]["selected_mean"]) < 0.05


def test_ablation_goes_through_the_recurrence(planted):
    """Zeroing c of the depth units at one position only changes later digit predictions too: the
    edit is carried forward by c_t = f_t c_{t-1} + i_t g_t, it does not just overwrite an output."""
    bench = _benchmark()
    model, path = planted
    with open_recording(path) as rec:
        tokens, lengths = bench.item_batch(rec)
    from lstmviz.hooks import Edit

    clean = bench.next_token_nll(model, tokens)
    edited = bench.next_token_nll(model, tokens, [Edit("layer0/c", "replace", 0.0, positions=[10],
                                                       units=list(DEPTH_UNITS))])
    np.testing.assert_array_equal(edited[:, :10], clean[:, :10])
    assert (np.abs(edited[:, 11:40] - clean[:, 11:40]) > 1e-3).any()
