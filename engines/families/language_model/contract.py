"""The contract every engine of the ``language-model`` family satisfies.

``CHECKS`` are plain functions ``check(spec, tmp_path)`` that raise ``AssertionError`` when an engine
breaks the contract; ``tests/engines/test_engine_contract.py`` runs each of them for every registered
engine of the family, so a new engine is covered by being registered. They use only torch and the hook
layer (no pytest), so a plugin's family can ship its own suite the same way. Recording every tap of
every engine into a file is tested in ``tests/engines/test_engine_recording.py`` (the engines package
does not import the recording package), opening it in the window in ``tests/qt/test_engines_in_window.py``.
"""

from __future__ import annotations

import re

import torch

from lstmviz.hooks import Edit, HookScope, find_taps, intervene
from lstmviz.hooks.layout import STEP

from . import FAMILY, TokenData

VOCAB_SIZE = 7
B, T = 3, 5
#: hyperparameters that keep every engine tiny; only the keys an engine's build() accepts are used
TINY_CONFIG = {"embedding_dim": 6, "hidden_size": 8, "num_layers": 2, "init_range": 0.3}


def tiny_model(spec, seed: int = 0, **overrides):
    """``(model, config)``: the engine built tiny, float64, in eval mode."""
    config = {k: v for k, v in TINY_CONFIG.items() if k in spec.config_keys()}
    config = spec.resolve_config({**config, **overrides})
    torch.manual_seed(seed)
    model = spec.build_model(TokenData(vocab_size=VOCAB_SIZE), **config).double().eval()
    return model, config


def tokens(seed: int = 0, batch: int = B, steps: int = T):
    return FAMILY.sample_inputs(TokenData(vocab_size=VOCAB_SIZE), batch=batch, length=steps, seed=seed)


def _raises(kind: type[Exception], pattern: str, fn, *args) -> None:
    try:
        fn(*args)
    except kind as e:
        assert re.search(pattern, str(e)), f"{kind.__name__}({str(e)!r}) does not match {pattern!r}"
        return
    raise AssertionError(f"expected {kind.__name__} matching {pattern!r}; nothing was raised")


def spec_describes_paper_taps_config_and_training(spec, tmp_path) -> None:
    from lstmviz.datasets import registry as datasets
    from lstmviz.engines.training import train_settings_for

    assert spec.description and spec.family == FAMILY.name
    assert spec.paper.title and spec.paper.authors and 2000 < spec.paper.year < 2100
    assert re.fullmatch(r"\d{4}\.\d{4,5}", spec.paper.arxiv)
    assert spec.training_dataset() in datasets.names()
    assert spec.taps and all("{layer}" in p for p in spec.taps)
    required = {"steps", "batch_size", "bptt", "lr", "optimizer", "clip", "dropout", "eval_every", "seed"}
    assert required <= set(spec.train_defaults) <= set(train_settings_for(FAMILY))
    assert "vocab_size" not in spec.config_keys()  # the data's, not a hyperparameter
    model = spec.build_model(TokenData(vocab_size=VOCAB_SIZE), **spec.default_config)  # the defaults build
    assert model.num_layers == spec.default_config["num_layers"]
    assert model.__doc__ and "h" in model.__doc__ and ("sigma" in model.__doc__ or "tanh" in model.__doc__)


def output_and_state_shapes(spec, tmp_path) -> None:
    model, config = tiny_model(spec)
    assert model.vocab_size == VOCAB_SIZE
    logits, state = model(tokens())
    assert logits.shape == (B, T, VOCAB_SIZE) and logits.dtype == torch.float64
    expected = (config["num_layers"], B, config["hidden_size"])
    assert isinstance(state, tuple) and len(state) == len(model.state_names)
    assert all(s.shape == expected for s in state)
    init = model.init_state(B)
    assert len(init) == len(model.state_names) and all(s.shape == expected and not s.any() for s in init)
    assert torch.equal(model(tokens(), init)[0], logits)  # an explicit zero state is the same as no state


def batch_rows_are_independent(spec, tmp_path) -> None:
    model, _ = tiny_model(spec)
    x = tokens(seed=1)
    with torch.no_grad():
        logits, state = model(x)
        for b in range(B):
            alone, alone_state = model(x[b : b + 1])
            torch.testing.assert_close(alone[0], logits[b], rtol=0, atol=1e-12)
            for s_alone, s_batch in zip(alone_state, state):
                torch.testing.assert_close(s_alone[:, 0], s_batch[:, b], rtol=0, atol=1e-12)


def every_declared_tap_fires_once_per_step_with_batch_by_units(spec, tmp_path) -> None:
    model, config = tiny_model(spec)
    declared = spec.tap_names(config["num_layers"])
    taps = find_taps(model)
    assert sorted(taps) == sorted(declared)  # declared == present
    calls: dict[str, list] = {n: [] for n in declared}

    def seen(module, args, kwargs, output):
        calls[module.name].append((kwargs.get("step"), tuple(output.shape)))

    with HookScope() as hooks:
        for name in declared:
            hooks.read(taps[name], seen)
        model(tokens())
    for name in declared:
        assert calls[name] == [(t, (B, config["hidden_size"])) for t in range(T)], name
        assert taps[name].description, name
        assert taps[name].layout == STEP, name  # one [batch, units] value per step: the recorder never guesses


def one_step_at_a_time_equals_one_unrolled_call(spec, tmp_path) -> None:
    model, _ = tiny_model(spec)
    x = tokens(seed=2)
    with torch.no_grad():
        unrolled, final = model(x)
        state, pieces = None, []
        for t in range(T):
            logits, state = model(x[:, t : t + 1], state)
            pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), unrolled, rtol=0, atol=1e-12)
    for a, b in zip(state, final):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def checkpoint_round_trip_gives_identical_outputs(spec, tmp_path) -> None:
    from lstmviz.engines.checkpoint import load_checkpoint, save_checkpoint

    model, config = tiny_model(spec, seed=3)
    vocab = [f"w{i}" for i in range(VOCAB_SIZE)]
    path = save_checkpoint(tmp_path / f"{spec.name}.pt", model, engine=spec.name, config=config, vocab=vocab,
                           dataset="tiny", step=7, metrics={"train_loss": 1.5}, family=spec.family)
    loaded, meta = load_checkpoint(path)
    assert type(loaded) is type(model) and not loaded.training
    assert meta["engine"] == spec.name and meta["config"] == config and meta["vocab"] == vocab
    assert meta["family"] == FAMILY.name
    assert meta["step"] == 7 and meta["metrics"] == {"train_loss": 1.5} and meta["dataset"] == "tiny"
    with torch.no_grad():
        x = tokens(seed=4)
        expected, expected_state = model(x)
        got, got_state = loaded(x)
    assert got.dtype == torch.float64
    assert torch.equal(got, expected)
    assert all(torch.equal(a, b) for a, b in zip(got_state, expected_state))


def reset_parameters_is_deterministic_under_a_seed_and_respects_init_range(spec, tmp_path) -> None:
    """Every parameter is re-drawn in U(-init_range, init_range), except those the model's ``constant_init()``
    names (e.g. batch-norm scales a paper initialises to a constant), which reset sets back to that constant."""
    model, config = tiny_model(spec, seed=5)
    fixed = dict(model.constant_init()) if hasattr(model, "constant_init") else {}
    names = [name for name, _ in model.named_parameters()]
    assert set(fixed) <= set(names), sorted(set(fixed) - set(names))
    drawn = [k for k, name in enumerate(names) if name not in fixed]
    before = [p.detach().clone() for p in model.parameters()]

    def reset(seed):
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in fixed:
                    p.add_(0.5)  # reset must set these back, not leave them as they were
        torch.manual_seed(seed)
        model.reset_parameters()
        return [p.detach().clone() for p in model.parameters()]

    first, again, other = reset(11), reset(11), reset(12)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert all(not torch.equal(first[k], before[k]) for k in drawn)  # every drawn parameter is re-drawn
    assert all(not torch.equal(first[k], other[k]) for k in drawn)
    assert all(first[k].abs().max() <= config["init_range"] for k in drawn)
    for k, name in enumerate(names):
        if name in fixed:
            assert torch.all(first[k] == fixed[name]), name


def extra_repr_names_the_hyperparameters(spec, tmp_path) -> None:
    model, config = tiny_model(spec, dropout=0.25)
    text = model.extra_repr()
    assert f"vocab_size={VOCAB_SIZE}" in text
    for key, value in config.items():
        assert f"{key}={value}" in text, key


def bad_inputs_say_expected_and_got(spec, tmp_path) -> None:
    model, config = tiny_model(spec)
    L, H = config["num_layers"], config["hidden_size"]
    _raises(TypeError, r"expected integer token ids.*got dtype torch.float32", model, torch.zeros(B, T))
    _raises(TypeError, r"expected tokens as a torch.LongTensor.*got list", model, [[1, 2, 3]])
    _raises(ValueError, r"expected tokens of shape \[batch, time\], got shape \(5,\)", model,
            torch.zeros(5, dtype=torch.long))
    _raises(ValueError, rf"expected token ids in \[0, {VOCAB_SIZE}\).*got ids from 0 to {VOCAB_SIZE}", model,
            torch.tensor([[0, VOCAB_SIZE]]))
    _raises(ValueError, r"got ids from -1 to 2", model, torch.tensor([[-1, 2]]))
    wrong_batch = tuple(s[:, :2] for s in model.init_state(B))
    _raises(ValueError, rf"expected state h of shape .*\({L}, {B}, {H}\), got \({L}, 2, {H}\)", model, tokens(),
            wrong_batch)
    _raises(TypeError, r"expected state as a tuple", model, tokens(), model.init_state(B) + (torch.zeros(L, B, H),))
    _raises(TypeError, r"expected state h of dtype torch.float64.*got torch.float32", model, tokens(),
            tuple(s.float() for s in model.init_state(B)))
    data = TokenData(vocab_size=VOCAB_SIZE)
    _raises(ValueError, r"expected hidden_size to be a positive int, got 0", lambda: spec.build_model(data, hidden_size=0))
    _raises(ValueError, r"expected dropout to be a probability in \[0, 1\), got 1.0",
            lambda: spec.build_model(data, dropout=1.0))


def replacing_a_tap_value_changes_the_rest_of_the_recurrence(spec, tmp_path) -> None:
    """Taps are intervention points: zeroing layer0/h at step 2 changes everything from step 2 on."""
    model, _ = tiny_model(spec)
    x = tokens(seed=6)
    tap = find_taps(model)["layer0/h"]

    def h_trace():
        seen = []
        with torch.no_grad(), HookScope() as hooks:
            hooks.read(tap, lambda module, args, kwargs, out: seen.append(out.detach().clone()))
            logits, _ = model(x)
        return torch.stack(seen), logits

    base_h, base_logits = h_trace()
    with intervene(model, Edit("layer0/h", "replace", 0.0, positions=[2])) as edit:
        new_h, new_logits = h_trace()  # the reader runs after the edit and sees its value
    assert edit.applied == [1]
    assert torch.equal(new_h[:2], base_h[:2]) and torch.equal(new_logits[:, :2], base_logits[:, :2])
    assert not new_h[2].any()
    for t in range(2, T):
        assert not torch.allclose(new_logits[:, t], base_logits[:, t]), t
    assert not torch.allclose(new_h[3], base_h[3])  # the recurrence itself carried the change


def a_few_training_steps_lower_the_loss(spec, tmp_path) -> None:
    """The engine trains: 60 Adam steps in training mode on one repeating batch cut the loss by a fifth."""
    model, _ = tiny_model(spec, seed=3)
    model.train()
    pattern = torch.arange(T + 1) % 3 + 1  # 1 2 3 1 2 3 ...: the next token is always predictable
    x = pattern.repeat(B, 1)
    inputs, targets = x[:, :-1], x[:, 1:]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)

    def loss_now():
        logits, _ = model(inputs)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    torch.manual_seed(0)
    first = float(loss_now().detach())
    for _ in range(60):
        optimizer.zero_grad()
        loss = loss_now()
        loss.backward()
        optimizer.step()
    last = float(loss_now().detach())
    assert last < 0.8 * first, f"{spec.name}: loss {first:.3f} -> {last:.3f} after 60 steps"


CHECKS = (
    spec_describes_paper_taps_config_and_training,
    output_and_state_shapes,
    batch_rows_are_independent,
    every_declared_tap_fires_once_per_step_with_batch_by_units,
    one_step_at_a_time_equals_one_unrolled_call,
    checkpoint_round_trip_gives_identical_outputs,
    reset_parameters_is_deterministic_under_a_seed_and_respects_init_range,
    extra_repr_names_the_hyperparameters,
    bad_inputs_say_expected_and_got,
    replacing_a_tap_value_changes_the_rest_of_the_recurrence,
    a_few_training_steps_lower_the_loss,
)
