"""Zaremba et al. (2014): dropout on the non-recurrent connections only, and nn.LSTM equivalence."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lstmviz.engines import registry
from lstmviz.hooks import find_taps

B, T = 2, 8


def _trajectory(model, tokens, layer=0):
    """{"h": [T, B, H], "c": ...} of one layer, read from its taps during one forward pass."""
    taps = find_taps(model)
    names = [n for n in (f"layer{layer}/h", f"layer{layer}/c") if n in taps]
    seen = {n: [] for n in names}
    handles = [taps[n].register_forward_hook(lambda m, a, out: seen[m.name].append(out.detach().clone()))
               for n in names]
    try:
        with torch.no_grad():
            model(tokens)
    finally:
        for h in handles:
            h.remove()
    return {n.rsplit("/", 1)[1]: torch.stack(v) for n, v in seen.items()}


def _zero_input_model(name):
    """One layer, p=0.9, non-zero biases, and an embedding whose output is all zeros."""
    torch.manual_seed(0)
    model = registry.get(name).build(vocab_size=5, embedding_dim=4, hidden_size=6, num_layers=1,
                                     dropout=0.9, init_range=0.5).double()
    with torch.no_grad():
        model.embedding.weight.zero_()
    layer = model.layers[0]
    assert layer.bias_ih.abs().min() > 0 and layer.bias_hh.abs().min() > 0
    return model


def _train_equals_eval(model, tokens) -> tuple[bool, dict, dict]:
    model.eval()
    reference = _trajectory(model, tokens)
    model.train()
    torch.manual_seed(1)
    trained = _trajectory(model, tokens)
    model.eval()
    same = all(torch.equal(trained[k], reference[k]) for k in reference)
    return same, trained, reference


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_zero_inputs_make_train_mode_trajectory_equal_eval_exactly(name):
    """Dropout never touches h_{t-1}, c_{t-1}: with all-zero inputs nothing can be dropped."""
    model = _zero_input_model(name)
    tokens = torch.randint(0, 5, (B, T), generator=torch.Generator().manual_seed(0))
    same, trained, reference = _train_equals_eval(model, tokens)
    assert reference["h"].abs().max() > 0.05  # the recurrence carries something that dropout could hit
    assert same


def test_a_naive_lstm_that_also_drops_h_prev_fails_the_same_test(monkeypatch):
    """The test above is not vacuous: dropping the recurrent h_{t-1} diverges from step 1 on."""
    model = _zero_input_model("lstm")
    layer = model.layers[0]
    correct_step = layer.step

    def naive_step(x_t, state, t):
        h_prev, c_prev = state
        return correct_step(x_t, (F.dropout(h_prev, 0.9, training=layer.training), c_prev), t)

    monkeypatch.setattr(layer, "step", naive_step)
    tokens = torch.randint(0, 5, (B, T), generator=torch.Generator().manual_seed(0))
    same, trained, reference = _train_equals_eval(model, tokens)
    assert not same
    assert torch.equal(trained["h"][0], reference["h"][0])  # h_{-1} = 0: nothing to drop at step 0
    assert all(not torch.equal(trained["h"][t], reference["h"][t]) for t in range(1, T))


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_with_real_inputs_two_train_mode_runs_differ(name):
    torch.manual_seed(0)
    model = registry.get(name).build(vocab_size=5, embedding_dim=4, hidden_size=6, num_layers=1,
                                     dropout=0.5, init_range=0.5).double().train()
    tokens = torch.randint(0, 5, (B, T), generator=torch.Generator().manual_seed(0))
    first, second = _trajectory(model, tokens), _trajectory(model, tokens)
    assert not torch.equal(first["h"], second["h"])
    model.eval()
    assert torch.equal(_trajectory(model, tokens)["h"], _trajectory(model, tokens)["h"])


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_dropout_acts_on_embedding_output_between_layers_and_top_output_only(name, monkeypatch):
    layers = 3
    torch.manual_seed(0)
    model = registry.get(name).build(vocab_size=5, embedding_dim=4, hidden_size=6, num_layers=layers,
                                     dropout=0.5, init_range=0.5).double().train()
    dropped, embedded, decoder_input, layer_inputs = [], [], [], {}
    dropout = torch.nn.functional.dropout

    def spy(x, *args, **kwargs):  # every dropout of the forward pass (nn.Dropout calls it too)
        out = dropout(x, *args, **kwargs)
        dropped.append((x, out))
        return out

    monkeypatch.setattr(torch.nn.functional, "dropout", spy)
    model.embedding.register_forward_hook(lambda m, a, out: embedded.append(out))
    model.decoder.register_forward_pre_hook(lambda m, a: decoder_input.append(a[0]))
    for index, layer in enumerate(model.layers):
        project = layer.project_input

        def recording(x, index=index, project=project):
            layer_inputs[index] = x
            return project(x)

        monkeypatch.setattr(layer, "project_input", recording)
    h_steps = {l: [] for l in range(layers)}
    for name_, tap in find_taps(model).items():
        if name_.endswith("/h"):
            tap.register_forward_hook(lambda m, a, out: h_steps[m.layer].append(out))
    tokens = torch.randint(0, 5, (B, T), generator=torch.Generator().manual_seed(0))
    model(tokens)  # one forward pass
    outputs = {f"layer{l}": torch.stack(h_steps[l], dim=1) for l in range(layers)}
    assert len(dropped) == layers + 1
    assert torch.equal(dropped[0][0], embedded[0])  # 1. the embedding output
    for l in range(layers):
        assert torch.equal(layer_inputs[l], dropped[l][1])  # every layer reads a dropped input
        assert torch.equal(dropped[l + 1][0], outputs[f"layer{l}"])  # 2. between layers, 3. top output
    assert torch.equal(decoder_input[0], dropped[layers][1])
    for before, after in dropped:  # the masks are live: non-zero inputs became zero
        assert ((after == 0) & (before != 0)).any()


def test_the_mask_is_drawn_afresh_at_every_step_not_tied_over_time():
    """Ordinary dropout (Zaremba), not the variational mask of Gal & Ghahramani."""
    torch.manual_seed(0)
    model = registry.get("lstm").build(vocab_size=5, embedding_dim=32, hidden_size=6, num_layers=1,
                                       dropout=0.5, init_range=0.5).double().train()
    seen = []
    model.drop.register_forward_hook(lambda m, a, out: seen.append(out))
    model(torch.full((1, T), 3))  # the same token at every step: identical embedding rows
    zeros = seen[0][0] == 0  # [T, E] mask of the embedding dropout
    assert zeros.any() and not all(torch.equal(zeros[0], zeros[t]) for t in range(1, T))


def _copy_into_torch_rnn(model, rnn_class):
    rnn = rnn_class(model.embedding_dim, model.hidden_size, num_layers=model.num_layers, batch_first=True)
    rnn = rnn.double()
    with torch.no_grad():
        for l, layer in enumerate(model.layers):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(rnn, f"{name}_l{l}").copy_(getattr(layer, name))
    return rnn.eval()


@pytest.mark.parametrize("name, rnn_class", [("lstm", torch.nn.LSTM), ("gru", torch.nn.GRU)])
def test_engine_equals_torch_rnn_with_copied_weights(name, rnn_class):
    torch.manual_seed(0)
    model = registry.get(name).build(vocab_size=9, embedding_dim=5, hidden_size=7, num_layers=2,
                                     init_range=0.4).double().eval()
    rnn = _copy_into_torch_rnn(model, rnn_class)
    tokens = torch.randint(0, 9, (3, T), generator=torch.Generator().manual_seed(1))
    initial = tuple(0.3 * torch.randn(s.shape, dtype=torch.float64) for s in model.init_state(3))
    with torch.no_grad():
        logits, state = model(tokens, initial)
        ref_out, ref_state = rnn(model.embedding(tokens), initial if name == "lstm" else initial[0])
        ref_logits = model.decoder(ref_out)
    ref_state = ref_state if isinstance(ref_state, tuple) else (ref_state,)
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-10)
    for ours, theirs in zip(state, ref_state, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-10)  # every layer's last h (and c)
    top = _trajectory(model, tokens, layer=1)["h"].transpose(0, 1)
    assert top.shape == ref_out.shape  # sanity of the comparison below (zero initial state here)
    with torch.no_grad():
        torch.testing.assert_close(top, rnn(model.embedding(tokens))[0], rtol=0, atol=1e-10)


def test_zeroing_the_cell_state_at_step_2_changes_h_from_step_2_on_and_nothing_before():
    torch.manual_seed(0)
    model = registry.get("lstm").build(vocab_size=5, embedding_dim=4, hidden_size=6, num_layers=2,
                                       init_range=0.5).double().eval()
    tokens = torch.randint(0, 5, (B, T), generator=torch.Generator().manual_seed(0))
    base = {l: _trajectory(model, tokens, layer=l) for l in range(2)}
    c_tap = find_taps(model)["layer0/c"]
    c_tap.register_forward_hook(lambda m, a, kw, out: torch.zeros_like(out) if kw["step"] == 2 else None,
                                with_kwargs=True)
    ablated = {l: _trajectory(model, tokens, layer=l) for l in range(2)}
    assert not ablated[0]["c"][2].any()  # the replaced value is what the recurrence stored
    for l in range(2):
        assert torch.equal(ablated[l]["h"][:2], base[l]["h"][:2])
        assert torch.equal(ablated[l]["c"][:2], base[l]["c"][:2])
        for t in range(2, T):
            assert not torch.allclose(ablated[l]["h"][t], base[l]["h"][t]), (l, t)
