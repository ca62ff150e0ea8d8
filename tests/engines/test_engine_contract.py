"""The contract every registered engine satisfies (a new engine is covered by being registered)."""

from __future__ import annotations

import re

import pytest
import torch

from lstmviz.engines import registry
from lstmviz.engines.checkpoint import load_checkpoint, save_checkpoint
from lstmviz.engines.training import TRAIN_SETTINGS
from lstmviz.recording.taps import find_taps

ENGINES = registry.names()
B, T = 3, 5
VOCAB_SIZE = 7  # the tiny_model fixture's vocabulary


def test_the_built_in_engines_are_registered():
    assert {"lstm", "gru"} <= set(ENGINES)


def _tokens(seed=0, batch=B, steps=T):
    return torch.randint(0, VOCAB_SIZE, (batch, steps), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ENGINES)
def test_spec_describes_paper_taps_config_and_training(name):
    spec = registry.get(name)
    assert spec.name == name and spec.description and spec.family == "recurrent"
    assert spec.paper.title and spec.paper.authors and 2000 < spec.paper.year < 2100
    assert re.fullmatch(r"\d{4}\.\d{4,5}", spec.paper.arxiv)
    assert spec.default_dataset == "parens"
    assert spec.taps and all("{layer}" in p for p in spec.taps)
    required = {"steps", "batch_size", "bptt", "lr", "optimizer", "clip", "dropout", "eval_every", "seed"}
    assert required <= set(spec.train_defaults) <= set(TRAIN_SETTINGS)
    model = spec.build(vocab_size=VOCAB_SIZE, **spec.default_config)  # the defaults build
    assert model.num_layers == spec.default_config["num_layers"]
    assert model.__doc__ and "h" in model.__doc__ and ("sigma" in model.__doc__ or "tanh" in model.__doc__)


@pytest.mark.parametrize("name", ENGINES)
def test_output_and_state_shapes(name, tiny_model):
    model, config = tiny_model(name)
    assert model.vocab_size == VOCAB_SIZE
    logits, state = model(_tokens())
    assert logits.shape == (B, T, VOCAB_SIZE) and logits.dtype == torch.float64
    expected = (config["num_layers"], B, config["hidden_size"])
    assert isinstance(state, tuple) and len(state) == len(model.state_names)
    assert all(s.shape == expected for s in state)
    init = model.init_state(B)
    assert len(init) == len(model.state_names) and all(s.shape == expected and not s.any() for s in init)
    # an explicit zero state is the same as no state
    assert torch.equal(model(_tokens(), init)[0], logits)


@pytest.mark.parametrize("name", ENGINES)
def test_batch_rows_are_independent(name, tiny_model):
    model, _ = tiny_model(name)
    tokens = _tokens(seed=1)
    with torch.no_grad():
        logits, state = model(tokens)
        for b in range(B):
            alone, alone_state = model(tokens[b : b + 1])
            torch.testing.assert_close(alone[0], logits[b], rtol=0, atol=1e-12)
            for s_alone, s_batch in zip(alone_state, state):
                torch.testing.assert_close(s_alone[:, 0], s_batch[:, b], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ENGINES)
def test_every_declared_tap_fires_once_per_step_with_batch_by_units(name, tiny_model):
    model, config = tiny_model(name)
    spec = registry.get(name)
    declared = spec.tap_names(config["num_layers"])
    taps = find_taps(model)
    assert sorted(taps) == sorted(declared)  # declared == present
    calls: dict[str, list] = {n: [] for n in declared}

    def hook(module, args, kwargs, output):
        calls[module.name].append((kwargs.get("step"), tuple(output.shape)))

    handles = [taps[n].register_forward_hook(hook, with_kwargs=True) for n in declared]
    try:
        model(_tokens())
    finally:
        for h in handles:
            h.remove()
    for tap_name in declared:
        assert calls[tap_name] == [(t, (B, config["hidden_size"])) for t in range(T)], tap_name
        assert taps[tap_name].description, tap_name


@pytest.mark.parametrize("name", ENGINES)
def test_one_step_at_a_time_equals_one_unrolled_call(name, tiny_model):
    model, _ = tiny_model(name)
    tokens = _tokens(seed=2)
    with torch.no_grad():
        unrolled, final = model(tokens)
        state, pieces = None, []
        for t in range(T):
            logits, state = model(tokens[:, t : t + 1], state)
            pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), unrolled, rtol=0, atol=1e-12)
    for a, b in zip(state, final):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ENGINES)
def test_checkpoint_round_trip_gives_identical_outputs(name, tiny_model, tmp_path):
    model, config = tiny_model(name, seed=3)
    vocab = [f"w{i}" for i in range(VOCAB_SIZE)]
    path = save_checkpoint(tmp_path / "m.pt", model, engine=name, config=config, vocab=vocab, dataset="tiny",
                           step=7, metrics={"train_loss": 1.5})
    loaded, meta = load_checkpoint(path)
    assert type(loaded) is type(model) and not loaded.training
    assert meta["engine"] == name and meta["config"] == config and meta["vocab"] == vocab
    assert meta["step"] == 7 and meta["metrics"] == {"train_loss": 1.5} and meta["dataset"] == "tiny"
    with torch.no_grad():
        tokens = _tokens(seed=4)
        expected, expected_state = model(tokens)
        got, got_state = loaded(tokens)
    assert got.dtype == torch.float64
    assert torch.equal(got, expected)
    assert all(torch.equal(a, b) for a, b in zip(got_state, expected_state))


@pytest.mark.parametrize("name", ENGINES)
def test_reset_parameters_is_deterministic_under_a_seed_and_respects_init_range(name, tiny_model):
    model, config = tiny_model(name, seed=5)
    before = [p.detach().clone() for p in model.parameters()]

    def reset(seed):
        torch.manual_seed(seed)
        model.reset_parameters()
        return [p.detach().clone() for p in model.parameters()]

    first, again, other = reset(11), reset(11), reset(12)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert all(not torch.equal(a, b) for a, b in zip(first, before))  # every parameter is re-drawn
    assert all(not torch.equal(a, b) for a, b in zip(first, other))
    assert all(p.abs().max() <= config["init_range"] for p in first)


@pytest.mark.parametrize("name", ENGINES)
def test_extra_repr_names_the_hyperparameters(name, tiny_model):
    model, config = tiny_model(name, dropout=0.25)
    text = model.extra_repr()
    assert f"vocab_size={VOCAB_SIZE}" in text
    for key, value in config.items():
        assert f"{key}={value}" in text, key


@pytest.mark.parametrize("name", ENGINES)
def test_bad_inputs_say_expected_and_got(name, tiny_model):
    model, config = tiny_model(name)
    L, H = config["num_layers"], config["hidden_size"]
    with pytest.raises(TypeError, match=r"expected integer token ids.*got dtype torch.float32"):
        model(torch.zeros(B, T))
    with pytest.raises(TypeError, match=r"expected tokens as a torch.LongTensor.*got list"):
        model([[1, 2, 3]])
    with pytest.raises(ValueError, match=r"expected tokens of shape \[batch, time\], got shape \(5,\)"):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=rf"expected token ids in \[0, {VOCAB_SIZE}\).*got ids from 0 to {VOCAB_SIZE}"):
        model(torch.tensor([[0, VOCAB_SIZE]]))
    with pytest.raises(ValueError, match=r"got ids from -1 to 2"):
        model(torch.tensor([[-1, 2]]))
    wrong_batch = tuple(s[:, :2] for s in model.init_state(B))
    with pytest.raises(ValueError, match=rf"expected state h of shape .*\({L}, {B}, {H}\), got \({L}, 2, {H}\)"):
        model(_tokens(), wrong_batch)
    with pytest.raises(TypeError, match=r"expected state as a tuple"):
        model(_tokens(), model.init_state(B) + (torch.zeros(L, B, H),))
    with pytest.raises(TypeError, match=r"expected state h of dtype torch.float64.*got torch.float32"):
        model(_tokens(), tuple(s.float() for s in model.init_state(B)))
    spec = registry.get(name)
    with pytest.raises(ValueError, match=r"expected hidden_size to be a positive int, got 0"):
        spec.build(vocab_size=VOCAB_SIZE, hidden_size=0)
    with pytest.raises(ValueError, match=r"expected dropout to be a probability in \[0, 1\), got 1.0"):
        spec.build(vocab_size=VOCAB_SIZE, dropout=1.0)


@pytest.mark.parametrize("name", ENGINES)
def test_replacing_a_tap_value_changes_the_rest_of_the_recurrence(name, tiny_model):
    """Taps are intervention points: zeroing layer0/h at step 2 changes everything from step 2 on."""
    model, _ = tiny_model(name)
    tokens = _tokens(seed=6)
    tap = find_taps(model)["layer0/h"]

    def h_trace():
        seen = []
        handle = tap.register_forward_hook(lambda m, a, out: seen.append(out.detach().clone()))
        try:
            with torch.no_grad():
                logits, _ = model(tokens)
        finally:
            handle.remove()
        return torch.stack(seen), logits

    base_h, base_logits = h_trace()
    ablate = tap.register_forward_hook(
        lambda m, a, kw, out: torch.zeros_like(out) if kw["step"] == 2 else None, with_kwargs=True
    )
    try:
        new_h, new_logits = h_trace()  # the recording hook runs after the ablation and sees its value
    finally:
        ablate.remove()
    assert torch.equal(new_h[:2], base_h[:2]) and torch.equal(new_logits[:, :2], base_logits[:, :2])
    assert not new_h[2].any()
    for t in range(2, T):
        assert not torch.allclose(new_logits[:, t], base_logits[:, t]), t
    assert not torch.allclose(new_h[3], base_h[3])  # the recurrence itself carried the change
