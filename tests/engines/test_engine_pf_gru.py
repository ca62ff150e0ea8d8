"""Professor forcing (engine ``pf-gru``): the defining properties of Lamb et al. 2016 (reference §12 (c))."""

import pytest
import torch

from lstmviz.engines import registry
from lstmviz.engines.families.language_model import TokenData
from lstmviz.engines.families.language_model.free_running import sampler, teacher, unroll
from lstmviz.engines.recurrent.pf_gru import BehaviourDiscriminator
from lstmviz.hooks.taps import find_taps

V, B, T, H, L = 6, 4, 7, 8, 2


def model(seed=0, **overrides):
    torch.manual_seed(seed)
    spec = registry.get("pf-gru")
    config = {**spec.default_config, "embedding_dim": 5, "hidden_size": H, "num_layers": L, "disc_hidden": 6,
              **overrides}
    return spec.build_model(TokenData(vocab_size=V), **config).double()


def batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    s = torch.randint(0, V, (B, T + 1), generator=g)
    return s[:, :-1], s[:, 1:]


def test_discriminator_reads_hidden_state_sequences_not_tokens():
    m = model()
    calls = []
    m.discriminator.register_forward_hook(lambda mod, args, out: calls.append(args[0]))
    x, y = batch()
    m.pf_terms(x, y)
    assert calls and all(a.dtype == torch.float64 and a.shape == (T, B, L * H) for a in calls)
    tf = unroll(m, x[:, 0], T, teacher(x))
    assert torch.equal(calls[0], tf.hidden)  # D's first input is exactly B_TF = every layer's h per step
    with pytest.raises(ValueError, match=r"expected a behaviour sequence \[time, batch, 16\]"):
        m.discriminator(x.double())  # token ids [B, T] are refused
    with_logits = model(disc_logits=True)
    assert with_logits.discriminator.features == L * H + V


def test_free_running_with_a_ground_truth_sampler_reproduces_teacher_forcing_exactly():
    m = model().eval()
    x, _ = batch()
    captured = {}
    for name, tap in find_taps(m).items():
        if name.endswith("/h"):
            tap.register_forward_hook(lambda mod, args, out, name=name: captured.setdefault(name, []).append(out))
    with torch.no_grad():
        logits, _ = m(x)  # the ordinary teacher-forced forward (one unrolled call)
        h_tf = torch.cat([torch.stack(captured[f"layer{l}/h"], 0) for l in range(L)], dim=2)  # [T, B, L*H]
        fr = unroll(m, x[:, 0], T, lambda logits_t, t: x[:, t + 1])  # free-running, "sampler" = ground truth
    assert torch.equal(fr.tokens, x)
    assert torch.allclose(fr.hidden, h_tf, atol=1e-12, rtol=0)
    assert torch.allclose(fr.logits, logits, atol=1e-12, rtol=0)
    with torch.no_grad():  # and a real sampler departs from it
        sampled = unroll(m, x[:, 0], T, sampler(torch.Generator().manual_seed(0)))
    assert not torch.equal(sampled.tokens, x)


def test_c_f_reaches_the_generator_and_no_gradient_reaches_the_sampler():
    m = model()
    x, y = batch()
    seen = []

    def spy(logits_t, t):
        seen.append(logits_t)
        return sampler(torch.Generator().manual_seed(t))(logits_t, t)

    terms = m.pf_terms(x, y, next_token=spy)
    assert seen and all(not s.requires_grad for s in seen)  # the sampling op is cut from the graph
    assert not terms["fr"].tokens.requires_grad
    generator = m.generator_parameters()
    grads = torch.autograd.grad(terms["c_f"], generator + list(m.discriminator.parameters()), allow_unused=True)
    g_grads, d_grads = grads[: len(generator)], grads[len(generator):]
    recurrent = [g for (name, _), g in zip(m.named_parameters(), g_grads) if name.startswith("layers.")]
    assert all(g is not None and g.abs().sum() > 0 for g in recurrent)  # through the free-running hidden states
    assert all(g is None for g in d_grads)  # C_f holds D fixed


def test_generator_and_discriminator_objectives_do_not_mix():
    m = model()
    m.adversary_gate, m.disc_gate = 0.0, 1.0  # both gates open, so the sum holds all three terms
    x, y = batch()
    torch.manual_seed(5)
    total, _ = m.loss(x, y)
    total.backward()
    got = {name: p.grad.clone() for name, p in m.named_parameters()}

    torch.manual_seed(5)  # the same sampled tokens
    terms = m.pf_terms(x, y)
    gen = m.generator_parameters()
    want_g = torch.autograd.grad(terms["nll"] + m.pf_weight * terms["c_f"], gen, retain_graph=True)
    want_d = torch.autograd.grad(terms["d_loss"], list(m.discriminator.parameters()))
    names = [n for n, _ in m.named_parameters() if not n.startswith("discriminator.")]
    for name, want in zip(names, want_g):
        assert torch.allclose(got[name], want, atol=1e-10), name
    for (name, _), want in zip(m.discriminator.named_parameters(), want_d):
        assert torch.allclose(got["discriminator." + name], want, atol=1e-10), name
    assert any(w.abs().sum() > 0 for w in want_d)


def test_gates_switch_the_adversarial_term_and_the_discriminator_update():
    x, y = batch()
    m = model()
    m.adversary_gate, m.disc_gate = 1.0, 0.0  # accuracy never above 1: no C_f; always above 0: D frozen
    torch.manual_seed(5)
    total, _ = m.loss(x, y)
    torch.manual_seed(5)
    assert torch.allclose(total, m.pf_terms(x, y)["nll"])
    total.backward()
    assert all(p.grad is None for p in m.discriminator.parameters())  # Adam then skips D: no update


def test_pf_weight_zero_is_plain_teacher_forcing_and_both_modes_start_equal():
    x, y = batch()
    tf_only, pf = model(seed=3, pf_weight=0.0), model(seed=3, pf_weight=1.0)
    assert all(torch.equal(a, b) for a, b in zip(tf_only.state_dict().values(), pf.state_dict().values()))
    loss, _ = tf_only.loss(x, y)
    logits, _ = tf_only(x)
    assert torch.equal(loss, torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1)))


def test_discriminator_middle_layer_reads_time_backwards():
    torch.manual_seed(0)
    d = BehaviourDiscriminator(3, 4).double()
    b = torch.randn(5, 2, 3, dtype=torch.float64)
    out = d(b)
    assert out.shape == (2,)
    b2 = b.clone()
    b2[-1] += 1.0  # a change at the last step reaches D's output; so does the time order
    assert not torch.allclose(d(b2), out)
    assert not torch.allclose(d(b.flip(0)), out)


def test_the_shared_loop_clips_each_player_by_its_own_norm():
    from lstmviz.engines.training import clip_groups

    m = model()
    groups = clip_groups(m)
    assert len(groups) == 2 and {id(p) for p in groups[1]} == {id(p) for p in m.discriminator.parameters()}
    assert {id(p) for g in groups for p in g} == {id(p) for p in m.parameters()}


def test_pf_start_zero_runs_the_behaviours_from_the_zero_state_and_carries_the_nll_state():
    x, y = batch()
    m = model(pf_start="zero")
    carried = (torch.randn(L, B, H, dtype=torch.float64),)
    seen = []
    m.discriminator.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    terms = m.pf_terms(x, y, carried)
    from_zero, from_carried = unroll(m, x[:, 0], T, teacher(x)), unroll(m, x[:, 0], T, teacher(x), carried)
    assert torch.equal(seen[0], from_zero.hidden) and not torch.allclose(seen[0], from_carried.hidden)
    assert torch.equal(terms["state"][0], from_carried.state[0])  # truncated BPTT carries the NLL run's state
    logits, _ = m(x, carried)
    assert torch.allclose(terms["nll"], torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1)))
    with pytest.raises(ValueError, match="pf_start to be one of carried, zero"):
        model(pf_start="data")
