"""Input-side attacks: Szegedy's box-constrained L-BFGS, PGD and HotFlip on tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lstmviz.datasets.parens import generate
from lstmviz.engines import build_engine
from lstmviz.errors import ExpectedError
from lstmviz.perturb.adversarial import embedding_box, hotflip, lbfgs_attack, pgd_attack


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def parens_model():
    """A 1-layer LSTM trained for 150 Adam steps on the parens language (8 tokens)."""
    torch.manual_seed(0)
    model = build_engine("lstm", vocab_size=8, embedding_dim=8, hidden_size=16, num_layers=1, init_range=0.3)
    stream = torch.as_tensor(generate(16 * 41 * 150, seed=1, split="train")[0]).view(150, 16, 41)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for batch in stream:
        logits, _ = model(batch[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, 8), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    model.eval()
    tokens = torch.as_tensor(generate(30, seed=7, split="test")[0])
    return model, tokens


class Toy2d(nn.Module):
    """One token, a 2-dim embedding and a fixed non-linear 3-class classifier of it: logits [1, 1, 3]."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(2, 2)
        self.hidden = nn.Linear(2, 6)
        self.out = nn.Linear(6, 3)
        g = torch.Generator().manual_seed(3)
        with torch.no_grad():
            self.embedding.weight.copy_(torch.tensor([[0.0, 0.0], [2.0, -1.5]]))
            for p in (*self.hidden.parameters(), *self.out.parameters()):
                p.copy_(torch.randn(p.shape, generator=g))

    def forward(self, tokens):
        return self.out(torch.tanh(self.hidden(self.embedding(tokens))))


def _brute_force_min_flip(model, token, box, step=0.004):
    """The smallest |r| in a grid over the box that changes the argmax of a Toy2d at ``token``."""
    x = model.embedding.weight[token].detach()
    lo, hi = box
    a = torch.arange(lo, hi + step / 2, step)
    grid = torch.stack(torch.meshgrid(a, a, indexing="ij"), -1).reshape(-1, 2)  # points x + r
    with torch.no_grad():
        clean = int(model.out(torch.tanh(model.hidden(x))).argmax())
        pred = model.out(torch.tanh(model.hidden(grid))).argmax(-1)
    norms = (grid - x).norm(dim=1)
    return float(norms[pred != clean].min())


def test_lbfgs_finds_the_minimal_flip_of_a_2d_toy_not_a_maximal_one():
    model = Toy2d().eval()
    box = (-3.0, 3.0)
    best = _brute_force_min_flip(model, 0, box)
    result = lbfgs_attack(model, torch.tensor([0]), 0, box=box, n_targets=2, bisect_steps=12)
    assert result.flipped and result.prediction_after != result.prediction_before
    # a flip is never shorter than the true minimum (grid step tolerance), and the search finds one close to
    # it; with the distance term's sign flipped (advertorch, untargeted) r would run to the box's corner
    assert best - 0.01 <= result.l2 <= 1.03 * best + 0.01
    assert result.l2 < 0.5 * np.sqrt(2) * (box[1] - box[0])


def test_lbfgs_targeted_reaches_the_target(parens_model):
    model, tokens = parens_model
    p = 20
    with torch.no_grad():
        logits = model(tokens[None])[0][0, p]
    target = int(torch.argsort(logits)[2])  # an unlikely class
    result = lbfgs_attack(model, tokens, p, target=target, c_grid=(1e-2, 1e-1, 1.0, 10.0), bisect_steps=3)
    assert result.flipped and result.prediction_after == target
    assert result.target == target and result.details["c"] is not None


def test_lbfgs_flip_is_smaller_than_pgds_at_the_same_success(parens_model):
    model, tokens = parens_model
    p = 20
    szegedy = lbfgs_attack(model, tokens, p, n_targets=1, bisect_steps=5)
    assert szegedy.flipped
    pgd = pgd_attack(model, tokens, p, eps=2.0 * szegedy.l2, steps=30)
    assert pgd.flipped
    assert szegedy.l2 < pgd.l2 <= 2.0 * szegedy.l2 * (1 + 1e-5)
    # r is zero after the position (a causal model's prediction cannot depend on later tokens)
    assert np.all(szegedy.delta[p + 1:] == 0) and np.all(pgd.delta[p + 1:] == 0)


def test_pgd_linf_stays_in_the_ball(parens_model):
    model, tokens = parens_model
    result = pgd_attack(model, tokens, 10, eps=0.05, norm="linf", steps=10, random_start=True)
    assert result.linf <= 0.05 + 1e-6
    assert result.loss_after > result.loss_before  # ascent on the clean class's loss


def test_the_box_is_respected(parens_model):
    model, tokens = parens_model
    lo, hi = (b.double().numpy() for b in embedding_box(model))
    x = model.embedding.weight.detach().double().numpy()[tokens.numpy()]
    for result in (lbfgs_attack(model, tokens, 20, c_grid=(1e-3, 1e-2), n_targets=1),
                   pgd_attack(model, tokens, 20, eps=5.0, steps=10)):
        moved = x + result.delta
        assert np.all(moved >= lo - 1e-6) and np.all(moved <= hi + 1e-6)
        assert np.any(np.isclose(moved, lo, atol=1e-5) | np.isclose(moved, hi, atol=1e-5))  # the box binds


def test_a_box_that_excludes_every_flip_gives_no_flip():
    model = Toy2d().eval()
    free = lbfgs_attack(model, torch.tensor([0]), 0, box=None)
    assert free.flipped
    radius = 0.5 * _brute_force_min_flip(model, 0, (-3.0, 3.0))  # no flip within this cube's inscribed ball...
    tight = lbfgs_attack(model, torch.tensor([0]), 0, box=(-radius / np.sqrt(2), radius / np.sqrt(2)))
    assert not tight.flipped  # ...and the cube lies inside that ball
    assert np.all(np.abs(tight.delta) <= radius / np.sqrt(2) + 1e-9)


def _all_substitutions(model, tokens, p):
    """Measured change of the clean argmax's loss at p for every single-token substitution at positions <= p."""
    with torch.no_grad():
        z0 = model(tokens[None])[0][0, p]
        clean = int(z0.argmax())
        rows, batch = [], []
        for i in range(p + 1):
            for v in range(8):
                if v != int(tokens[i]):
                    t = tokens.clone()
                    t[i] = v
                    rows.append((i, v))
                    batch.append(t)
        z = model(torch.stack(batch))[0][:, p]
        j = -torch.log_softmax(z, -1)[:, clean] + torch.log_softmax(z0, -1)[clean]
    return rows, j.numpy()


def test_hotflip_verified_best_equals_brute_force(parens_model):
    model, tokens = parens_model
    p = 12
    rows, measured = _all_substitutions(model, tokens, p)
    best = rows[int(np.argmax(measured))]
    full = hotflip(model, tokens, p, k=len(rows))
    assert (full.details["substituted_position"], full.details["substituted_token"]) == best
    assert full.details["measured"] == pytest.approx(measured.max(), abs=1e-5)
    assert full.perturbed_tokens[best[0]] == best[1] and np.sum(full.perturbed_tokens != full.clean_tokens) == 1
    # the first-order estimates rank substitutions like the real changes do
    estimates = {(i, v): e for i, v, e, _ in full.details["candidates"]}
    est = np.array([estimates[r] for r in rows])
    assert np.corrcoef(est, measured)[0, 1] > 0.5
    top = hotflip(model, tokens, p, k=10)
    assert len(top.details["candidates"]) == 10
    assert top.details["measured"] == max(c[3] for c in top.details["candidates"]) <= measured.max() + 1e-6
    assert top.details["measured"] >= np.sort(measured)[-10]  # the estimate's top 10 hold a top-10 substitution


def test_hidden_deltas_start_at_the_first_perturbed_position(parens_model):
    model, tokens = parens_model
    result = hotflip(model, tokens, 15, positions=[9], taps=["layer0/h", "layer0/c"])
    assert set(result.hidden_delta) == {"layer0/h", "layer0/c"}
    d = result.hidden_delta["layer0/c"]
    assert d.shape == (len(tokens), 16)
    assert np.all(d[:9] == 0) and np.abs(d[9:]).max() > 1e-4
    assert result.details["substituted_position"] == 9 and result.l2_per_position[9] > 0
    assert np.count_nonzero(result.l2_per_position) == 1


def test_weights_unchanged_no_grads_and_no_hooks_left(parens_model):
    model, tokens = parens_model
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lbfgs_attack(model, tokens, 5, c_grid=(0.1, 1.0))
    pgd_attack(model, tokens, 5, eps=0.1, steps=3)
    hotflip(model, tokens, 5, k=3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert model.training and model.embedding.training  # its mode is given back
    assert not model.embedding._forward_hooks
    model.eval()


def test_hooks_are_removed_after_an_exception(parens_model):
    model, tokens = parens_model

    def failing_forward(m, toks):
        m(toks)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        lbfgs_attack(model, tokens, 5, forward=failing_forward)
    assert not model.embedding._forward_hooks
    with torch.no_grad():
        assert torch.equal(model(tokens[None])[0], model(tokens[None])[0])


def test_user_mistakes_are_sentences(parens_model):
    model, tokens = parens_model
    with pytest.raises(ExpectedError, match="has no nn.Embedding"):
        lbfgs_attack(nn.Linear(3, 3), tokens, 1)
    with pytest.raises(ExpectedError, match="position 99 is not in the item"):
        hotflip(model, tokens, 99)
    with pytest.raises(ExpectedError, match="target class 8"):
        lbfgs_attack(model, tokens, 3, target=8)
    with pytest.raises(ExpectedError, match="eps must be"):
        pgd_attack(model, tokens, 3, eps=float("nan"))
    with pytest.raises(ExpectedError, match="no logits"):
        hotflip(model, tokens, 3, forward=lambda m, t: m(t)[0][:, :, 0])


def test_attack_item_on_a_cli_recording_gives_deltas_for_its_taps(lstm_live, lstm_rec):
    from lstmviz.perturb.adversarial import attack_item
    from lstmviz.perturb.run import item_tokens

    result = attack_item(lstm_live, lstm_rec, 1, 12, method="hotflip", k=4)
    assert np.array_equal(result.clean_tokens, item_tokens(lstm_rec, 1))
    assert set(result.hidden_delta) == set(lstm_rec.taps)
    i = result.details["substituted_position"]
    for delta in result.hidden_delta.values():
        assert delta.shape[0] == len(result.clean_tokens) and np.all(delta[:i] == 0)
    pgd = attack_item(lstm_live, lstm_rec, 1, 12, method="pgd", eps=0.5, steps=5, taps=())
    assert pgd.hidden_delta == {} and pgd.l2 <= 0.5 + 1e-6
    with pytest.raises(ExpectedError, match="attack 'fgsm' is not known"):
        attack_item(lstm_live, lstm_rec, 1, 12, method="fgsm")


def test_only_the_chosen_positions_move_also_without_a_box(parens_model):
    model, tokens = parens_model
    for result in (lbfgs_attack(model, tokens, 20, positions=[18, 19], box=None, c_grid=(1e-2, 1.0), n_targets=1),
                   pgd_attack(model, tokens, 20, positions=[18, 19], box=None, eps=1.0, steps=5)):
        assert np.all(np.isfinite(result.delta))
        moved = np.flatnonzero(result.l2_per_position)
        assert set(moved) <= {18, 19} and len(moved) > 0
