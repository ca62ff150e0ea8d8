"""melody-gru (Colombo et al.): the defining properties of parallel rhythm and melody networks.

- the rhythm network is pitch-blind: changing only pitches leaves P(next duration) unchanged;
- the melody network is conditioned on the upcoming duration: P(next pitch | d) differs between d;
- the two networks share no parameter: each one's loss reaches only its own parameters;
- a plain GRU language model over the same note tokens fails the first property.
"""

from __future__ import annotations

import pytest
import torch

from lstmviz.engines.recurrent.gru import GRULanguageModel
from lstmviz.engines.recurrent.melody_gru import MelodyGRU, sample

P, D = 5, 4
V = P * D


def model(seed=0):
    torch.manual_seed(seed)
    return MelodyGRU(vocab_size=V, num_durations=D, embedding_dim=6, hidden_size=8, num_layers=2,
                     init_range=0.5).double().eval()


def notes(pitches, durations):
    return torch.tensor([[p * D + d for p, d in zip(pitches, durations)]])


def test_rhythm_is_pitch_blind_and_a_plain_gru_is_not():
    m = model()
    durations = [1, 2, 1, 3, 0, 2]
    a, b = notes([0, 1, 2, 3, 4, 0], durations), notes([4, 4, 0, 1, 2, 3], durations)
    with torch.no_grad():
        log_d_a, log_p_a, _ = m.run(a)
        log_d_b, log_p_b, _ = m.run(b)
        # the joint logits give the same marginal over the next duration
        marg_a = m(a)[0].view(1, 6, P, D).logsumexp(2)
        marg_b = m(b)[0].view(1, 6, P, D).logsumexp(2)
    assert torch.equal(log_d_a, log_d_b)
    torch.testing.assert_close(marg_a, marg_b, rtol=0, atol=1e-12)
    torch.testing.assert_close(marg_a, log_d_a, rtol=0, atol=1e-12)
    assert not torch.allclose(log_p_a, log_p_b)  # the melody net does read the pitches

    torch.manual_seed(0)
    plain = GRULanguageModel(vocab_size=V, embedding_dim=6, hidden_size=8, num_layers=2, init_range=0.5).double()
    with torch.no_grad():
        pa = torch.log_softmax(plain(a)[0], -1).view(1, 6, P, D).logsumexp(2)
        pb = torch.log_softmax(plain(b)[0], -1).view(1, 6, P, D).logsumexp(2)
    assert not torch.allclose(pa, pb)


def test_melody_is_conditioned_on_the_upcoming_duration():
    m = model(1)
    x = notes([0, 1, 2, 3], [1, 2, 1, 3])
    with torch.no_grad():
        logits, _ = m(x)
        _, log_p, _ = m.run(x)
    joint = logits.view(1, 4, P, D)
    for t in range(4):
        # P(p | d) = P(p, d) / P(d) read from the joint, and it differs between durations
        cond = joint[0, t] - joint[0, t].logsumexp(0, keepdim=True)
        torch.testing.assert_close(cond.t(), log_p[0, t], rtol=0, atol=1e-12)
        assert not torch.allclose(cond[:, 0], cond[:, 1])
    torch.testing.assert_close(logits.exp().sum(-1), torch.ones(1, 4, dtype=torch.float64), rtol=0, atol=1e-12)
    # a changed upcoming duration only: the next step's pitch distribution changes, nothing before it
    y1, y2 = notes([0, 1, 2, 3], [1, 2, 1, 3]), notes([0, 1, 2, 3], [1, 2, 1, 1])
    with torch.no_grad():
        _, p1, _ = m.run(y1)
        _, p2, _ = m.run(y2)
    assert torch.equal(p1[:, :3], p2[:, :3]) and not torch.allclose(p1[:, 3], p2[:, 3])


def test_the_ablation_drops_only_the_upcoming_duration_input():
    torch.manual_seed(1)
    m = MelodyGRU(vocab_size=V, num_durations=D, embedding_dim=6, hidden_size=8, num_layers=2, init_range=0.5,
                  upcoming_duration=False).double().eval()
    assert m.upcoming_duration is None and m.config["upcoming_duration"] is False
    full = model(1)
    assert sum(p.numel() for p in full.parameters()) - sum(p.numel() for p in m.parameters()) == D * 8
    x = notes([0, 1, 2, 3], [1, 2, 1, 3])
    with torch.no_grad():
        logits, _ = m(x)
        _, log_p, _ = m.run(x)
    joint = logits.view(1, 4, P, D)
    for t in range(4):
        cond = joint[0, t] - joint[0, t].logsumexp(0, keepdim=True)
        # P(p | d) is one distribution for every d: the next pitch ignores the next duration
        for d in range(1, D):
            torch.testing.assert_close(cond[:, d], cond[:, 0], rtol=0, atol=1e-12)
        torch.testing.assert_close(cond.t(), log_p[0, t], rtol=0, atol=1e-12)
    with torch.no_grad():  # the melody net still reads the current durations
        _, other, _ = m.run(notes([0, 1, 2, 3], [1, 2, 0, 3]))
    assert not torch.allclose(other[:, 2], log_p[:, 2])
    with pytest.raises(ValueError, match="upcoming_duration"):
        MelodyGRU(vocab_size=V, num_durations=D, upcoming_duration="no")


def test_the_networks_share_no_parameters():
    m = model(2)
    x, y = notes([0, 1, 2, 3, 4], [1, 2, 1, 3, 0]), notes([1, 2, 3, 4, 0], [2, 1, 3, 0, 1])
    pitch, duration = m.split(y)
    rhythm_ids = {id(p) for p in m.rhythm_parameters()}
    assert 0 < len(rhythm_ids) < len(list(m.parameters()))
    for which in ("rhythm", "melody"):
        m.zero_grad(set_to_none=True)
        log_d, log_p, _ = m.run(x)
        if which == "rhythm":
            loss = -log_d.gather(-1, duration.unsqueeze(-1)).sum()
        else:
            chosen = log_p.gather(2, duration[..., None, None].expand(-1, -1, 1, P)).squeeze(2)
            loss = -chosen.gather(-1, pitch.unsqueeze(-1)).sum()
        loss.backward()
        for p in m.parameters():
            touched = p.grad is not None and bool(p.grad.abs().sum() > 0)
            assert touched == ((id(p) in rhythm_ids) == (which == "rhythm")), which


def test_sample_draws_durations_then_pitches_and_stops_at_end():
    m = model(3)
    end = 2 * D + 0
    melodies = sample(m, count=3, max_notes=20, start=end, end=end, seed=0)
    assert len(melodies) == 3 and all(len(t) <= 20 for t in melodies)
    assert all(0 <= tok < V and tok != end for t in melodies for tok in t)
    assert melodies == sample(m, count=3, max_notes=20, start=end, end=end, seed=0)  # reproducible by seed
    with pytest.raises(ValueError, match="expected a start token"):
        sample(MelodyGRU(vocab_size=7, num_durations=4), count=1)
