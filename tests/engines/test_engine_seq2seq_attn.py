"""seq2seq-attn beyond the family contract: beam search against exhaustive search, batching of beams,
the objective (pads ignored, exact-match metric) and a short training run on ``reverse``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from lstmviz.datasets import load_dataset
from lstmviz.engines import registry
from lstmviz.engines.families.seq2seq import Seq2SeqData
from lstmviz.engines.families.seq2seq.api import batch_pairs
from lstmviz.engines.families.seq2seq.objective import evaluate_pairs, nll

EOS = 2


def tiny(vocab_size=5, seed=0, init_range=1.0, **config):
    torch.manual_seed(seed)
    spec = registry.get("seq2seq-attn")
    config = {"embedding_size": 4, "hidden_size": 6, "num_layers": 2, "init_range": init_range, **config}
    return spec.build_model(Seq2SeqData(vocab_size=vocab_size), **config).double().eval()


def log_prob(model, src, out, terminated: bool) -> float:
    """log p(out [+ <eos>] | src) under teacher forcing, with <pad> and <bos> impossible (as when decoding)."""
    b = batch_pairs([(src, out)])
    with torch.no_grad():
        logits = model(b.src, b.src_lengths, b.tgt_in)[0]
    logits[:, [0, 1]] = float("-inf")
    logp = torch.log_softmax(logits, -1)
    targets = out + ([EOS] if terminated else [])
    return float(sum(logp[t, y] for t, y in enumerate(targets)))


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_a_wide_beam_finds_the_best_sequence_of_an_exhaustive_search(alpha):
    model = tiny(vocab_size=5, init_range=1.5)  # real tokens 3 and 4
    max_len = 3
    sources = [[3, 4, 4], [4], [3, 3, 4, 3]]
    b = batch_pairs([(s, [3]) for s in sources])
    with torch.no_grad():
        found = model.beam_search(b.src, b.src_lengths, beam=64, max_len=max_len, length_penalty=alpha)
    lp = (lambda n: ((5 + n) / 6) ** alpha) if alpha else (lambda n: 1.0)
    for src, got in zip(sources, found):
        scored = []
        for n in range(max_len + 1):
            for out in itertools.product([3, 4], repeat=n):
                out = list(out)
                if n < max_len:  # <eos> emitted as one of the max_len decoder steps
                    scored.append((log_prob(model, src, out, True) / lp(n + 1), out))
                else:  # cut after max_len steps without <eos>
                    scored.append((log_prob(model, src, out, False) / lp(n), out))
        best_score, best = max(scored)
        assert got == best, (src, got, best)
    assert len({len(out) for out in found}) > 1  # outputs of several lengths: <eos> and the cut both occur


def test_beam_search_of_a_batch_equals_beam_search_of_each_item_alone():
    model = tiny(vocab_size=8, seed=1, init_range=0.8)
    pairs = [([3, 4, 5, 6, 7], [3]), ([7, 3], [3]), ([5, 5, 5], [3]), ([6], [3])]
    b = batch_pairs(pairs)
    with torch.no_grad():
        together = model.beam_search(b.src, b.src_lengths, beam=4, max_len=9, length_penalty=0.6)
        for (src, _), out in zip(pairs, together):
            one = batch_pairs([(src, [3])])
            assert model.beam_search(one.src, one.src_lengths, beam=4, max_len=9, length_penalty=0.6) == [out]
            assert model.greedy(one.src, one.src_lengths, max_len=9) == model.beam_search(
                one.src, one.src_lengths, beam=1, max_len=9)


def test_a_wider_beam_never_scores_worse_than_greedy_here():
    model = tiny(vocab_size=7, seed=2, init_range=1.0)
    rng = np.random.default_rng(0)
    pairs = [(rng.integers(3, 7, size=int(rng.integers(1, 6))).tolist(), [3]) for _ in range(12)]
    b = batch_pairs(pairs)
    with torch.no_grad():
        greedy = model.greedy(b.src, b.src_lengths, max_len=6)
        beam = model.beam_search(b.src, b.src_lengths, beam=6, max_len=6)
    for (src, _), g, o in zip(pairs, greedy, beam):
        score = lambda out: log_prob(model, src, out, len(out) < 6)  # noqa: E731
        assert score(o) >= score(g) - 1e-9


def test_the_nll_ignores_pads_and_the_objective_measures_exact_matches():
    model = tiny(vocab_size=6, seed=3, init_range=0.3)
    pairs = [(np.array([3, 4, 5]), np.array([5, 4])), (np.array([4]), np.array([3, 3, 5, 4]))]
    with torch.no_grad():
        together, _ = nll(model, batch_pairs(pairs), reduction="sum")
        alone = sum(float(nll(model, batch_pairs([p]), reduction="sum")[0]) for p in pairs)
    assert float(together) == pytest.approx(alone, rel=1e-12)

    class Oracle(torch.nn.Module):  # teacher-forced logits and greedy outputs equal to the reference
        def __init__(self, right: bool):
            super().__init__()
            self.right = right

        def forward(self, src, src_lengths, tgt_in):
            return torch.zeros(*tgt_in.shape, 6, dtype=torch.float64)

        def greedy(self, src, src_lengths, max_len):
            outs = [p[1].tolist() for p in pairs if len(p[0]) == int(src_lengths[0])] if len(src) == 1 else \
                [p[1].tolist() for p in pairs]
            return outs if self.right else [o + [3] for o in outs]

    assert evaluate_pairs(Oracle(True), pairs, 8, "cpu")["exact"] == 1.0
    assert evaluate_pairs(Oracle(False), pairs, 8, "cpu")["exact"] == 0.0
    assert evaluate_pairs(Oracle(True), pairs, 8, "cpu")["loss"] == pytest.approx(np.log(6))


def test_training_on_reverse_lowers_the_loss_and_reports_accuracies(tmp_path):
    from lstmviz.engines.checkpoint import load_checkpoint
    from lstmviz.engines.training import train

    train_data = load_dataset("reverse", "train", items=400, max_length=6)
    valid_data = load_dataset("reverse", "valid", items=40, max_length=6)
    metrics = train("seq2seq-attn", train_data, valid_data, out=tmp_path / "m.pt", steps=60, batch_size=16,
                    lr=0.01, eval_every=0, config={"hidden_size": 16, "embedding_size": 8, "num_layers": 1})
    assert metrics["valid_loss"] < metrics["first_train_loss"] - 0.3
    assert 0 <= metrics["valid_exact"] <= metrics["valid_token_accuracy"] <= 1
    model, meta = load_checkpoint(tmp_path / "m.pt")
    assert meta["family"] == "seq2seq" and meta["vocab"][:3] == ["<pad>", "<bos>", "<eos>"]
    assert meta["metrics"]["valid_exact"] == metrics["valid_exact"]


def test_without_input_feeding_the_attentional_state_does_not_enter_the_next_step():
    from lstmviz.hooks import HookScope, find_taps

    b = batch_pairs([([3, 4, 5], [5, 4, 3]), ([4, 4], [4, 3])])
    results = {}
    for feeding in (True, False):
        model = tiny(vocab_size=6, seed=4, init_range=0.5, input_feeding=feeding)
        assert model.decoder_layers[0].input_size == (4 + 6 if feeding else 4)
        taps = find_taps(model)
        for edit in (False, True):
            seen = {}
            with HookScope() as hooks, torch.no_grad():
                if edit:
                    hooks.write(taps["decoder/attn_hidden"], lambda m, a, k, out: out + 0.5 if k["step"] == 0 else None)
                hooks.read(taps["decoder/layer0/h"], lambda m, a, k, out: seen.__setitem__(k["step"], out.clone()))
                model(b.src, b.src_lengths, b.tgt_in)
            results[feeding, edit] = seen[1]
    assert not torch.allclose(results[True, False], results[True, True])
    assert torch.equal(results[False, False], results[False, True])
