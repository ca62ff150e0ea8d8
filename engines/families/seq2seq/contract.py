"""The contract every engine of the ``seq2seq`` family satisfies.

``CHECKS`` are plain functions ``check(spec, tmp_path)`` raising ``AssertionError``;
``tests/engines/test_engine_contract.py`` runs each for every registered seq2seq engine, on tiny float64
models and random pairs of varied lengths (:func:`~lstmviz.engines.families.seq2seq.sample_inputs`).
An engine: ``model(src, src_lengths, tgt_in) -> logits [B, T, V]``, ``model.encode(src, src_lengths)``,
``model.initial_state(memory)``, ``model.decode_step(memory, y_prev, state, step) -> (logits [B, V], state,
attention [B, S])``, ``model.greedy``, ``model.beam_search``; taps on the main axis (encoder, source
positions) and on the axis ``decoder`` (decoder steps), among them ``decoder/attention``. A model with
``reads_reference = True`` (a critic that reads the target, ``seq2seq-ac``) is called with ``reference=``
(the target ids per item) where its taps are checked, and a tap with a ``units`` attribute has that width.
"""

from __future__ import annotations

import torch

from lstmviz.hooks import HookScope, find_taps

from . import FAMILY, SamplePairs, Seq2SeqData, sample_inputs
from .api import batch_pairs

VOCAB_SIZE = 9
B, LENGTH = 3, 5
DECODER_AXIS = "decoder"
#: hyperparameters that keep every engine tiny; only the keys an engine's build() accepts are used
TINY_CONFIG = {"embedding_size": 6, "hidden_size": 8, "num_layers": 2, "init_range": 0.5}
DATA = Seq2SeqData(vocab_size=VOCAB_SIZE)


def tiny_model(spec, seed: int = 0, **overrides):
    """``(model, config)``: the engine built tiny, float64, in eval mode."""
    config = {k: v for k, v in TINY_CONFIG.items() if k in spec.config_keys()}
    config = spec.resolve_config({**config, **overrides})
    torch.manual_seed(seed)
    model = spec.build_model(DATA, **config).double().eval()
    return model, config


def batch(seed: int = 0, size: int = B, length: int = LENGTH):
    return sample_inputs(DATA, batch=size, length=length, seed=seed)


def spec_describes_paper_taps_config_and_training(spec, tmp_path) -> None:
    from lstmviz.datasets import registry as datasets
    from lstmviz.engines.training import train_settings_for

    assert spec.description and spec.family == FAMILY.name
    assert spec.paper.title and spec.paper.authors and 2000 < spec.paper.year < 2100
    assert spec.training_dataset() in datasets.names()
    assert spec.taps and "decoder/attention" in spec.taps
    assert set(spec.train_defaults) <= set(train_settings_for(FAMILY))
    assert "vocab_size" not in spec.config_keys()  # the data's
    model = spec.build_model(DATA, **spec.default_config)
    assert model.__doc__
    for name in ("encode", "initial_state", "decode_step", "greedy", "beam_search"):
        assert callable(getattr(model, name, None)), name


def output_shapes_and_padding(spec, tmp_path) -> None:
    model, _ = tiny_model(spec)
    x = batch()
    assert int(x.src_lengths.min()) < x.src.shape[1]  # the sample pads some sources
    with torch.no_grad():
        logits = model(x.src, x.src_lengths, x.tgt_in)
    assert logits.shape == (B, x.tgt_in.shape[1], VOCAB_SIZE) and logits.dtype == torch.float64
    assert torch.isfinite(logits).all()


def batch_rows_are_independent_of_padding(spec, tmp_path) -> None:
    """An item padded into a longer batch gives the same logits (on its own target steps) as alone."""
    model, _ = tiny_model(spec)
    x = batch(seed=1)
    with torch.no_grad():
        together = model(x.src, x.src_lengths, x.tgt_in)
        for b in range(B):
            s, t = int(x.src_lengths[b]), int(x.tgt_lengths[b])
            alone = model(x.src[b : b + 1, :s], x.src_lengths[b : b + 1], x.tgt_in[b : b + 1, :t])
            torch.testing.assert_close(alone[0], together[b, :t], rtol=0, atol=1e-12)
        # a pad token value never matters: other ids at pad positions give the same logits
        noisy = x.src.clone()
        pads = torch.arange(x.src.shape[1]).unsqueeze(0) >= x.src_lengths.unsqueeze(1)
        noisy[pads] = 3
        torch.testing.assert_close(model(noisy, x.src_lengths, x.tgt_in), together, rtol=0, atol=1e-12)


def every_declared_tap_fires_on_its_axis(spec, tmp_path) -> None:
    model, config = tiny_model(spec)
    declared = spec.tap_names(config["num_layers"])
    taps = find_taps(model)
    assert sorted(taps) == sorted(declared)
    calls: dict[str, list] = {n: [] for n in declared}

    def seen(module, args, kwargs, output):
        calls[module.name].append((kwargs.get("step"), tuple(output.shape)))

    x = batch(seed=2)
    S, T = x.src.shape[1], x.tgt_in.shape[1]
    # a model that also reads the reference (a critic: reads_reference = True) gets it, as the recorder gives it
    extra = {"reference": x.references()} if getattr(model, "reads_reference", False) else {}
    with HookScope() as hooks:
        for name in declared:
            hooks.read(taps[name], seen)
        with torch.no_grad():
            model(x.src, x.src_lengths, x.tgt_in, **extra)
    for name in declared:
        tap = taps[name]
        assert tap.description, name
        if tap.axis == DECODER_AXIS:
            # a tap may declare its width (``units``: a scalar per step); else the hidden size
            units = S if name == "decoder/attention" else getattr(tap, "units", None) or config["hidden_size"]
            assert calls[name] == [(t, (B, units)) for t in range(T)], name
        else:
            assert tap.axis == "positions", name
            assert calls[name] == [(s, (B, config["hidden_size"])) for s in range(S)], name
    assert any(taps[n].axis == DECODER_AXIS for n in declared) and any(taps[n].axis == "positions" for n in declared)


def one_decode_step_at_a_time_equals_teacher_forcing(spec, tmp_path) -> None:
    model, _ = tiny_model(spec)
    x = batch(seed=3)
    with torch.no_grad():
        unrolled = model(x.src, x.src_lengths, x.tgt_in)
        memory = model.encode(x.src, x.src_lengths)
        state = model.initial_state(memory)
        pieces = []
        for t in range(x.tgt_in.shape[1]):
            logits, state, attention = model.decode_step(memory, x.tgt_in[:, t], state, t)
            assert attention.shape == x.src.shape
            pieces.append(logits)
    torch.testing.assert_close(torch.stack(pieces, dim=1), unrolled, rtol=0, atol=1e-12)


def attention_sums_to_one_over_real_positions_and_is_zero_on_pads(spec, tmp_path) -> None:
    """The defining property of global attention over a padded source."""
    model, _ = tiny_model(spec)
    x = batch(seed=4, size=4, length=6)
    rows = []
    taps = find_taps(model)
    with HookScope() as hooks:
        hooks.read(taps["decoder/attention"], lambda m, a, k, out: rows.append(out.detach().clone()))
        with torch.no_grad():
            model(x.src, x.src_lengths, x.tgt_in)
    a = torch.stack(rows, dim=1)  # [B, T, S]
    real = torch.arange(x.src.shape[1]).unsqueeze(0) < x.src_lengths.unsqueeze(1)
    assert (~real).any()
    assert torch.equal(a.masked_select(~real.unsqueeze(1).expand_as(a)), torch.zeros(int((~real).sum()) * a.shape[1],
                                                                                     dtype=a.dtype))
    torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[:2], dtype=a.dtype), rtol=0, atol=1e-12)
    assert (a.masked_select(real.unsqueeze(1).expand_as(a)) > 0).all()


def input_feeding_the_attentional_state_enters_the_next_step(spec, tmp_path) -> None:
    """Changing h~_{t-1} (the ``decoder/attn_hidden`` tap at step t-1) changes the decoder's layer 0 at step t,
    and nothing at step t-1's recurrent layers."""
    model, config = tiny_model(spec)
    x = batch(seed=5)
    taps = find_taps(model)
    t_edit = 1

    def run(edit: bool):
        seen: dict[int, torch.Tensor] = {}
        with HookScope() as hooks:
            if edit:
                hooks.write(taps["decoder/attn_hidden"],
                            lambda m, a, k, out: out + 0.5 if k.get("step") == t_edit else None)
            hooks.read(taps["decoder/layer0/h"], lambda m, a, k, out: seen.__setitem__(k["step"], out.clone()))
            with torch.no_grad():
                logits = model(x.src, x.src_lengths, x.tgt_in)
        return seen, logits

    plain, plain_logits = run(False)
    edited, edited_logits = run(True)
    assert torch.equal(plain[t_edit], edited[t_edit])  # the edit comes after layer 0 of step t-1
    assert not torch.allclose(plain[t_edit + 1], edited[t_edit + 1])  # ... and enters step t through the input
    assert torch.equal(plain_logits[:, :t_edit], edited_logits[:, :t_edit])
    # the state given to decode_step carries h~_{t-1}: a different feed, with everything else equal, changes step t
    with torch.no_grad():
        memory = model.encode(x.src, x.src_lengths)
        state = model.initial_state(memory)
        assert not state.feed.any()  # h~_0 = 0
        y = x.tgt_in[:, 0]
        first, _, _ = model.decode_step(memory, y, state, 0)
        state.feed = state.feed + 0.25
        moved, _, _ = model.decode_step(memory, y, state, 0)
    assert not torch.allclose(first, moved)


def checkpoint_round_trip(spec, tmp_path) -> None:
    from lstmviz.engines.checkpoint import load_checkpoint, save_checkpoint

    model, config = tiny_model(spec)
    vocab = SamplePairs(DATA).vocab
    path = save_checkpoint(tmp_path / "m.pt", model, engine=spec.name, config=config, vocab=vocab, dataset=None,
                           step=0, metrics={}, family=FAMILY.name, data={"vocab_size": VOCAB_SIZE})
    loaded, meta = load_checkpoint(path)
    loaded = loaded.double().eval()
    assert meta["family"] == FAMILY.name
    x = batch(seed=6)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x.src, x.src_lengths, x.tgt_in), model(x.src, x.src_lengths, x.tgt_in),
                                   rtol=0, atol=0)


def greedy_and_beam_of_one_agree(spec, tmp_path) -> None:
    model, _ = tiny_model(spec, init_range=1.0)  # peaked distributions: outputs of varied lengths
    x = batch(seed=7, size=5, length=6)
    with torch.no_grad():
        greedy = model.greedy(x.src, x.src_lengths, max_len=7)
        beam1 = model.beam_search(x.src, x.src_lengths, beam=1, max_len=7)
        beam3 = model.beam_search(x.src, x.src_lengths, beam=3, max_len=7)
    assert greedy == beam1
    for outputs in (greedy, beam3):
        assert len(outputs) == 5
        for out in outputs:
            assert len(out) <= 7 and all(isinstance(t, int) and 3 <= t < VOCAB_SIZE for t in out)  # no pad/bos/eos
    # a decoded output scored again under teacher forcing: greedy picks the arg-max at every step
    with torch.no_grad():
        for b in range(5):
            s = int(x.src_lengths[b])
            out = greedy[b]
            tgt = batch_pairs([(x.src[b, :s].tolist(), out)])
            logits = model(tgt.src, tgt.src_lengths, tgt.tgt_in)[0]
            logits[:, [0, 1]] = float("-inf")
            chosen = logits.argmax(-1).tolist()
            expected = out + [2] if len(out) < 7 else out
            assert chosen[: len(expected)] == expected


CHECKS = (
    spec_describes_paper_taps_config_and_training,
    output_shapes_and_padding,
    batch_rows_are_independent_of_padding,
    every_declared_tap_fires_on_its_axis,
    one_decode_step_at_a_time_equals_teacher_forcing,
    attention_sums_to_one_over_real_positions_and_is_zero_on_pads,
    input_feeding_the_attentional_state_enters_the_next_step,
    checkpoint_round_trip,
    greedy_and_beam_of_one_agree,
)
