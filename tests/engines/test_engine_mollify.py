"""Mollifying networks (engines/recurrent/mollify.py; Gulcehre et al. 2017, arXiv:1608.04980): §19 (c)."""

import pytest
import torch

from lstmviz.engines import registry
from lstmviz.engines.recurrent import mollify
from lstmviz.engines.spec import ConfigError
from lstmviz.engines.training import train


def _model(engine, *, embedding_dim=8, layers=3, seed=0):
    torch.manual_seed(seed)
    spec = registry.get(engine)
    model = spec.build(vocab_size=7, embedding_dim=embedding_dim, hidden_size=8, num_layers=layers, dropout=0.0)
    return model.double().train()


def _tokens(seed=1):
    return torch.randint(0, 7, (3, 6), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("engine", ["lstm", "gru"])
def test_fully_annealed_forward_is_the_plain_engine_bit_for_bit(engine):
    model, x = _model(engine), _tokens()
    plain, plain_state = model(x)
    with mollify.mollifying(mollify.Mollifier(mollify.schedule(11, 10, 3))):  # step N+1: p = 0
        annealed, annealed_state = model(x)
    assert torch.equal(plain, annealed)
    assert all(torch.equal(a, b) for a, b in zip(plain_state, annealed_state))
    with mollify.mollifying(mollify.Mollifier((0.3, 0.3, 0.3))):  # a partly mollified model differs
        assert not torch.allclose(model(x)[0], plain)


@pytest.mark.parametrize("engine", ["lstm", "gru"])
def test_start_of_annealing_is_identity_layers_and_eval_is_plain(engine):
    model, x = _model(engine), _tokens()
    embedded = model.embedding(x)
    with mollify.mollifying(mollify.Mollifier(mollify.schedule(1, 10, 3))):  # p = 1 in every layer
        top, _ = model.layers(embedded)
        assert torch.equal(top, embedded)  # every layer passes its input through: embedding -> decoder
        model.eval()  # validation and recording see the plain model
        evaluated = model(x)[0]
    assert torch.equal(evaluated, model(x)[0])


def test_psi_interpolates_between_nonlinearity_and_linearisation():
    x = torch.linspace(-6, 6, 201, dtype=torch.float64)
    for kind, f, u in (("sigmoid", torch.sigmoid, (0.5 + x / 4).clamp(0, 1)), ("tanh", torch.tanh, x.clamp(-1, 1))):
        assert torch.equal(mollify.psi(x, kind, 0.0, 1.0), f(x))
        torch.manual_seed(0)
        out = mollify.psi(x, kind, 1.0, 1.0)
        low, high = torch.minimum(f(x), u), torch.maximum(f(x), u)
        assert bool(((out >= low - 1e-12) & (out <= high + 1e-12)).all())  # never past the linearisation
        assert not torch.equal(out, f(x))
        torch.manual_seed(0)
        assert torch.allclose(mollify.psi(x, kind, 1.0, 1e6), u)  # large noise: the (clipped) linear unit


def test_schedule_is_monotone_in_time_and_depth():
    rows = [mollify.schedule(t, 50, 4) for t in range(1, 60)]
    assert rows[0] == (1.0,) * 4 and rows[50] == (0.0,) * 4
    for a, b in zip(rows, rows[1:]):
        assert all(x >= y for x, y in zip(a, b))
    for row in rows:
        assert list(row) == sorted(row)  # deeper layers are skipped more


def test_training_records_the_annealing_state(tmp_path):
    from lstmviz.datasets import load_dataset

    data = load_dataset("parens", "train", tokens=2000)
    common = dict(steps=6, batch_size=4, bptt=8, eval_every=0, config={"embedding_dim": 8, "hidden_size": 8})
    metrics = train("lstm", data, out=tmp_path / "m.pt", mollify=4, **common)
    assert metrics["mollify"]["annealed"] and metrics["mollify"]["p"] == [0.0, 0.0]
    saved = torch.load(tmp_path / "m.pt", weights_only=False)
    assert saved["train_settings"]["mollify"] == 4
    partial = train("lstm", data, out=tmp_path / "p.pt", mollify=100, **common)
    assert not partial["mollify"]["annealed"] and 0 < partial["mollify"]["p"][-1] < 1
    plain = train("lstm", data, out=tmp_path / "q.pt", **common)
    assert "mollify" not in plain and plain["train_loss"] != metrics["train_loss"]


def test_mollify_setting_is_checked(tmp_path):
    from lstmviz.datasets import load_dataset

    data = load_dataset("parens", "train", tokens=500)
    with pytest.raises(ConfigError, match="mollify"):
        train("lstm", data, out=tmp_path / "m.pt", steps=1, mollify=-1)


@pytest.mark.parametrize("engine", ["lstm", "gru"])
def test_noisy_activations_act_inside_the_cell_step(engine):
    model, x = _model(engine, embedding_dim=5, layers=1), _tokens()  # 5 != 8: no skip, only the noise
    with torch.no_grad():  # weights large enough that the units saturate (init_range 0.1 keeps them linear)
        for p in model.parameters():
            p.uniform_(-2, 2)
    plain = model(x)[0]
    torch.manual_seed(3)
    with mollify.mollifying(mollify.Mollifier((1.0,), c=1e6)):
        linear = model(x)[0]
    assert not torch.allclose(linear, plain, atol=1e-3)
    assert torch.isfinite(linear).all()


@pytest.mark.parametrize("kind", ["sigmoid", "tanh"])
def test_psi_is_the_papers_formula_clipped_to_the_range_of_f(kind):
    """psi computes f + clip(u - f, -|s|, |s|); check it against sgn(u*) min(|u*|, |f* + sgn(u*)|s||) + u(0)."""
    x = torch.linspace(-8, 8, 401, dtype=torch.float64)
    p, c = 0.7, 2.0
    got = mollify.psi(x, kind, p, c, generator=torch.Generator().manual_seed(5))
    xi = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(5))
    f, u0, slope = (torch.sigmoid, 0.5, 0.25) if kind == "sigmoid" else (torch.tanh, 0.0, 1.0)
    f_star, u_star, s = f(x) - u0, slope * x, p * c * torch.sigmoid(x) * xi
    sign = torch.sign(u_star)
    paper = sign * torch.minimum(u_star.abs(), (f_star + sign * s.abs()).abs()) + u0
    low, high = (0.0, 1.0) if kind == "sigmoid" else (-1.0, 1.0)
    assert torch.allclose(got, paper.clamp(low, high), atol=1e-12)
    assert (paper.clamp(low, high) != paper).any()  # the clip is active somewhere at this noise level
