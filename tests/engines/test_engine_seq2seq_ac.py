"""seq2seq-ac (Bahdanau et al.'s actor-critic) beyond the family contract: the defining properties of
models_recurrent.md §13 (c) — rewards telescope to the sentence's BLEU, only the critic reads Y, the
all-actions gradient w.r.t. the logits, masking after <eos> — plus the critic targets, the training
phases and soft updates, ``init=`` from an LL checkpoint, greedy decoding and recording."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
import torch

from lstmviz.datasets import load_dataset
from lstmviz.engines import registry
from lstmviz.engines.families.seq2seq import Seq2SeqData
from lstmviz.engines.families.seq2seq.api import batch_pairs
from lstmviz.engines.seq2seq.actor_critic import (actor_loss, critic_loss, critic_targets, edit_score, policy,
                                                  prefix_rewards, row_mask, sentence_bleu)
from lstmviz.hooks import HookScope, find_taps

PAD, BOS, EOS = 0, 1, 2
V = 7


def tiny(seed=0, **config):
    torch.manual_seed(seed)
    spec = registry.get("seq2seq-ac")
    config = {**spec.default_config, "embedding_size": 5, "hidden_size": 6, "num_layers": 1, "init_range": 0.8,
              **config}
    return spec.build_model(Seq2SeqData(vocab_size=V), **config).double()


def pairs_batch():
    return batch_pairs([([3, 4, 5, 6], [6, 5, 4, 3]), ([4, 4], [3, 5, 6]), ([5, 3, 6], [5])])


# ------------------------------------------------------------------------------------------ rewards


def test_smoothed_bleu_known_values():
    assert sentence_bleu([3, 4, 5, 6, 3], [3, 4, 5, 6, 3]) == pytest.approx(1.0)
    assert sentence_bleu([], [3, 4]) == 0.0
    assert sentence_bleu([5, 5], [3, 4]) == 0.0  # no unigram match
    # hyp [3, 4] vs ref [3, 4, 5]: p1 = 2/2, p2 = (1+1)/(1+1), p3 = (0+1)/(0+1), p4 = 1; BP = exp(1 - 3/2)
    assert sentence_bleu([3, 4], [3, 4, 5]) == pytest.approx(math.exp(1 - 1.5))
    # hyp [3, 5, 4] vs ref [3, 4]: p1 = 2/3, p2 = (0+1)/(2+1), p3 = 1/2, p4 = 1/1; BP = 1 (longer)
    expected = math.exp((math.log(2 / 3) + math.log(1 / 3) + math.log(1 / 2) + 0.0) / 4)
    assert sentence_bleu([3, 5, 4], [3, 4]) == pytest.approx(expected)
    assert edit_score([3, 4], [3, 4, 5]) == pytest.approx(1 - 1 / 3)


@pytest.mark.parametrize("reward", ["bleu", "edit"])
def test_rewards_telescope_to_the_score_of_the_hypothesis(reward):
    rng = np.random.default_rng(0)
    for _ in range(50):
        ref = rng.integers(3, V, size=int(rng.integers(0, 7))).tolist()
        hyp = rng.integers(3, V, size=int(rng.integers(1, 9))).tolist()
        emitted = hyp + [EOS, PAD, PAD]
        r = prefix_rewards(emitted, ref, reward)
        assert len(r) == len(emitted) and r[len(hyp):] == [0.0, 0.0, 0.0]
        final = sentence_bleu(hyp, ref) if reward == "bleu" else edit_score(hyp, ref)
        assert sum(r) == pytest.approx(final, abs=1e-12)


def test_the_reward_tap_sums_to_the_bleu_of_each_hypothesis():
    """The engine's own reward path (the critic/reward tap of a teacher-forced call with a reference)."""
    model = tiny().eval()
    hyps = [[3, 4, 5], [6], [5, 5, 3, 4, 6]]
    refs = [[3, 4, 6, 5], [6, 3], [5, 3, 4]]
    b = batch_pairs([([3, 4], h) for h in hyps])
    rows = []
    with HookScope() as hooks:
        hooks.read(find_taps(model)["critic/reward"], lambda m, a, k, out: rows.append(out[:, 0].clone()))
        with torch.no_grad():
            model(b.src, b.src_lengths, b.tgt_in, reference=refs)
    rewards = torch.stack(rows, dim=1)  # [B, T]
    for i, (h, r) in enumerate(zip(hyps, refs)):
        assert float(rewards[i].sum()) == pytest.approx(sentence_bleu(h, r), abs=1e-12)
        assert float(rewards[i, len(h)]) == 0.0  # the <eos> row


# ------------------------------------------------------------------------------------------ only the critic reads Y


def test_only_the_critic_reads_the_reference():
    model = tiny().eval()
    b = pairs_batch()
    refs = b.references()
    other = [[3, 3, 3], [6, 6], [4, 5, 6, 3]]
    taps = find_taps(model)

    def run(reference):
        q = []
        with HookScope() as hooks:
            hooks.read(taps["critic/q"], lambda m, a, k, out: q.append(out.clone()))
            with torch.no_grad():
                logits = model(b.src, b.src_lengths, b.tgt_in, reference=reference)
        return logits, torch.cat(q, dim=1)

    logits, q = run(refs)
    logits2, q2 = run(other)
    assert torch.equal(logits, logits2)  # p does not move
    assert not torch.allclose(q, q2)  # Q̂ does
    with torch.no_grad():
        assert torch.equal(model(b.src, b.src_lengths, b.tgt_in), logits)  # the actor runs without Y at all
        full_q = model.q_values(b.tgt_in, refs)
        full_q2 = model.q_values(b.tgt_in, other)
    assert not torch.allclose(full_q, full_q2)
    # the training step's actor gradient: Y enters only through the (detached) critic values
    model.train()
    model.critic_pretrain_steps = 0
    torch.manual_seed(1)
    loss, _ = model.loss(b)
    loss.backward()
    assert all(p.grad is not None for p in model.actor.parameters() if p.requires_grad)


# ------------------------------------------------------------------------------------------ all-actions gradient


def test_the_all_actions_gradient_wrt_the_logits():
    torch.manual_seed(0)
    B, T = 3, 5
    logits = torch.randn(B, T, V, dtype=torch.float64, requires_grad=True)
    q = torch.randn(B, T, V, dtype=torch.float64, requires_grad=True)
    emitted = torch.tensor([[3, 4, EOS, 5, 6], [3, 3, 3, 3, 3], [EOS, 4, 4, PAD, PAD]])
    loss = actor_loss(logits, q, emitted)
    loss.backward()
    p = policy(logits.detach())
    qd = q.detach()
    expected = -p * (qd - (p * qd).sum(-1, keepdim=True))
    mask = row_mask(emitted).unsqueeze(-1).to(expected.dtype)
    torch.testing.assert_close(logits.grad, expected * mask, rtol=0, atol=1e-12)
    assert q.grad is None  # Q̂ is detached in the actor's loss
    assert torch.equal(logits.grad[..., [PAD, BOS]], torch.zeros(B, T, 2, dtype=torch.float64))
    assert (logits.grad[0, 3:] == 0).all() and (logits.grad[2, 1:] == 0).all()  # after <eos>: masked


# ------------------------------------------------------------------------------------------ masking, targets


def test_rows_after_eos_are_masked_in_every_loss():
    torch.manual_seed(0)
    B, T = 2, 6
    emitted = torch.tensor([[3, EOS, 5, 6, 3, 4], [4, 5, 6, EOS, PAD, PAD]])
    assert row_mask(emitted).tolist() == [[True, True, False, False, False, False],
                                          [True, True, True, True, False, False]]
    logits = torch.randn(B, T, V, dtype=torch.float64)
    q = torch.randn(B, T, V, dtype=torch.float64)
    rewards = torch.randn(B, T, dtype=torch.float64)
    tp, tq = policy(torch.randn(B, T, V, dtype=torch.float64)), torch.randn(B, T, V, dtype=torch.float64)
    targets = critic_targets(rewards, tp, tq, emitted)
    base = (actor_loss(logits, q, emitted), critic_loss(q, emitted, targets, 0.1)[0])
    junk = ~row_mask(emitted)
    logits2, q2 = logits.clone(), q.clone()
    logits2[junk] = 50.0
    q2[junk] = -30.0
    r2, tq2 = rewards.clone(), tq.clone()
    r2[junk] = 9.0
    tq2[junk] = 9.0
    targets2 = critic_targets(r2, tp, tq2, emitted)
    assert torch.equal(targets2[~junk], targets[~junk])  # nothing after <eos> is bootstrapped
    assert torch.equal(actor_loss(logits2, q2, emitted), base[0])
    assert torch.equal(critic_loss(q2, emitted, targets2, 0.1)[0], base[1])


def test_critic_targets_bootstrap_from_the_delayed_actor_and_target_critic():
    emitted = torch.tensor([[3, 4, EOS], [5, 6, 3]])  # the second is cut (no <eos>): its last row is terminal
    rewards = torch.tensor([[0.1, 0.2, 0.0], [0.3, -0.1, 0.05]], dtype=torch.float64)
    tp = policy(torch.randn(2, 3, V, dtype=torch.float64))
    tq = torch.randn(2, 3, V, dtype=torch.float64)
    value = (tp * tq).sum(-1)
    got = critic_targets(rewards, tp, tq, emitted)
    expected = torch.tensor([[0.1 + value[0, 1], 0.2 + value[0, 2], 0.0],
                             [0.3 + value[1, 1], -0.1 + value[1, 2], 0.05]], dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    # the critic loss: squared TD error on the chosen token plus λ times the spread of Q̂ over the actions
    q = torch.randn(2, 3, V, dtype=torch.float64)
    loss, rows = critic_loss(q, emitted, got, 0.5)
    chosen = q.gather(2, emitted.unsqueeze(2)).squeeze(2)
    qa = q[..., 2:]
    spread = ((qa - qa.mean(-1, keepdim=True)) ** 2).sum(-1)
    assert int(rows) == 6
    assert float(loss) == pytest.approx(float(((chosen - got) ** 2).sum() + 0.5 * spread.sum()))


# ------------------------------------------------------------------------------------------ phases, soft updates


def _step(model, batch, lr=0.05):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    opt.zero_grad(set_to_none=True)
    loss, rows = model.loss(batch)
    loss.backward()
    opt.step()
    model.after_optimizer_step()
    return loss


def test_critic_pretraining_keeps_the_actor_then_joint_training_moves_it_and_targets_follow_softly():
    model = tiny(critic_pretrain_steps=1, tau=0.25).train()
    b = pairs_batch()
    actor0 = {k: v.clone() for k, v in model.actor.state_dict().items()}
    critic0 = {k: v.clone() for k, v in model.critic.state_dict().items()}
    assert model.phase == "critic"
    torch.manual_seed(0)
    _step(model, b)
    assert all(torch.equal(v, model.actor.state_dict()[k]) for k, v in actor0.items())  # the actor is fixed
    assert any(not torch.equal(v, model.critic.state_dict()[k]) for k, v in critic0.items())
    for name, p in model.critic.named_parameters():  # φ' = φ'_0 + τ (φ - φ'_0)
        expected = critic0[name] + 0.25 * (p.detach() - critic0[name])
        torch.testing.assert_close(getattr(model, model._buffer_name("critic", name)), expected, rtol=0, atol=1e-12)
    assert model.phase == "joint" and int(model.updates) == 1
    torch.manual_seed(1)
    _step(model, b)
    assert any(not torch.equal(v, model.actor.state_dict()[k]) for k, v in actor0.items())
    delayed = getattr(model, model._buffer_name("actor", "output.weight"))
    assert not torch.equal(delayed, actor0["output.weight"]) and not torch.equal(delayed, model.actor.output.weight)


def test_the_delayed_nets_are_saved_and_loaded_with_the_checkpoint(tmp_path):
    from lstmviz.engines.checkpoint import load_checkpoint, save_checkpoint

    model = tiny(tau=0.5).train()
    torch.manual_seed(0)
    _step(model, pairs_batch())
    config = {**registry.get("seq2seq-ac").default_config, "embedding_size": 5, "hidden_size": 6, "num_layers": 1,
              "init_range": 0.8, "tau": 0.5}
    path = save_checkpoint(tmp_path / "ac.pt", model, engine="seq2seq-ac", config=config,
                           vocab=["<pad>", "<bos>", "<eos>", *"abcd"], dataset=None, step=1, metrics={},
                           family="seq2seq", data={"vocab_size": V})
    loaded, _ = load_checkpoint(path)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name].to(value.dtype), value, rtol=0, atol=0)
    assert int(loaded.updates) == 1


# ------------------------------------------------------------------------------------------ init, decoding, recording


def test_init_loads_an_ll_trained_actor_and_refuses_other_sizes(tmp_path):
    from lstmviz.engines.training import train

    opts = dict(items=40, words=10, letters=5, min_length=2, max_length=4)
    train_set = load_dataset("spelling", split="train", **opts)
    config = {"embedding_size": 4, "hidden_size": 5, "num_layers": 1}
    ll = tmp_path / "ll.pt"
    train("seq2seq-attn", train_set, out=ll, steps=3, batch_size=8, config=config, valid_decode=False)
    ll_state = torch.load(ll, weights_only=True)["state_dict"]
    torch.manual_seed(0)
    model = registry.get("seq2seq-ac").build_model(Seq2SeqData(vocab_size=len(train_set.vocab)),
                                                   **{**registry.get("seq2seq-ac").default_config, **config,
                                                      "init": str(ll)})
    model.prepare_training(train_set)
    for name, value in ll_state.items():
        assert torch.equal(model.actor.state_dict()[name], value)
        assert torch.equal(getattr(model, model._buffer_name("actor", name)), value)  # p' starts as p
    # critic_init=actor: the critic reads like the LL actor, its value head (output layer) stays fresh
    torch.manual_seed(0)
    copied = registry.get("seq2seq-ac").build_model(Seq2SeqData(vocab_size=len(train_set.vocab)),
                                                    **{**registry.get("seq2seq-ac").default_config, **config,
                                                       "init": str(ll), "critic_init": "actor"})
    head = {k: v.clone() for k, v in copied.critic.state_dict().items() if k.startswith("output.")}
    copied.prepare_training(train_set)
    for name, value in copied.critic.state_dict().items():
        assert torch.equal(value, head[name] if name.startswith("output.") else ll_state[name]), name
    assert not torch.equal(head["output.weight"], ll_state["output.weight"])
    wrong = registry.get("seq2seq-ac").build_model(Seq2SeqData(vocab_size=len(train_set.vocab)),
                                                   **{**registry.get("seq2seq-ac").default_config, **config,
                                                      "hidden_size": 7, "init": str(ll)})
    with pytest.raises(ValueError, match="hidden_size=5"):
        wrong.prepare_training(train_set)
    # the whole path: `train seq2seq-ac ... init=` keeps the actor fixed while only the critic trains
    out = tmp_path / "ac.pt"
    train("seq2seq-ac", train_set, out=out, steps=2, batch_size=8, valid_decode=False,
          config={**config, "init": str(ll), "critic_pretrain_steps": 5})
    ac_state = torch.load(out, weights_only=True)["state_dict"]
    for name, value in ll_state.items():
        assert torch.equal(ac_state[f"actor.{name}"], value)


def test_greedy_is_the_actors_greedy_and_the_critic_reads_its_output():
    from lstmviz.engines.seq2seq.attention import Seq2SeqAttention

    model = tiny(init_range=1.0).eval()
    b = pairs_batch()
    plain = Seq2SeqAttention(V, 5, 6, 1).double().eval()
    plain.load_state_dict(model.actor.state_dict())
    refs = b.references()
    rewards = []
    with HookScope() as hooks:
        hooks.read(find_taps(model)["critic/reward"], lambda m, a, k, out: rewards.append(out[:, 0].clone()))
        with torch.no_grad():
            out = model.greedy(b.src, b.src_lengths, max_len=6, reference=refs)
    with torch.no_grad():
        assert out == plain.greedy(b.src, b.src_lengths, max_len=6) == model.greedy(b.src, b.src_lengths, max_len=6)
    got = torch.stack(rewards, dim=1)
    for i, (o, r) in enumerate(zip(out, refs)):
        assert float(got[i].sum()) == pytest.approx(sentence_bleu(o, r), abs=1e-12)


def test_recording_carries_the_critic_taps_on_the_decoder_axis(tmp_path):
    from lstmviz.recording.seq2seq_recorder import record_seq2seq

    data = load_dataset("spelling", split="valid", items=5, words=10, letters=5, min_length=2, max_length=4)
    torch.manual_seed(0)
    model = registry.get("seq2seq-ac").build_model(
        Seq2SeqData(vocab_size=len(data.vocab)),
        **{**registry.get("seq2seq-ac").default_config, "embedding_size": 4, "hidden_size": 5, "num_layers": 1,
           "init_range": 1.0})
    path = record_seq2seq(model, data, tmp_path / "ac.h5", decode="greedy", max_len=6, batch_size=3)
    with h5py.File(path) as f:
        for name, units in (("critic/h", 5), ("critic/q", 1), ("critic/reward", 1), ("critic/advantage", 1),
                            ("decoder/layer0/h", 5)):
            assert f[f"taps/{name}"].shape[1] == units
            assert f[f"taps/{name}"].shape[0] == f["taps/decoder/layer0/h"].shape[0]
        assert np.isfinite(f["taps/critic/q"][:]).all()


# ------------------------------------------------------------------------------------------ the dataset


def test_spelling_pairs_are_noisy_lexicon_words():
    opts = dict(items=2000, words=50, letters=10, min_length=3, max_length=6)
    a = load_dataset("spelling", split="train", **opts)
    again = load_dataset("spelling", split="train", **opts)
    valid = load_dataset("spelling", split="valid", **opts)
    assert a.lexicon == valid.lexicon and len(set(a.lexicon)) == 50
    lex = {tuple(np.asarray(w) + 3) for w in a.lexicon}
    changed = 0
    for i in range(len(a)):
        x, y = a[i], again[i]
        assert np.array_equal(x.tokens, y.tokens) and np.array_equal(x.target, y.target)
        assert tuple(x.target.tolist()) in lex
        assert len(x.annotations["edit"]) == len(x.tokens)
        changed += x.item_annotations["edits"]
    chars = sum(len(a[i].target) for i in range(len(a)))
    assert 0.17 < changed / chars < 0.23  # 20% of the characters are edited
    clean = load_dataset("spelling", split="train", noise=0.0, **opts)
    assert all(np.array_equal(it.tokens, it.target) for it in clean)
