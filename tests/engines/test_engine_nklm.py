"""The defining properties of the NKLM (Ahn et al. 2016; models_recurrent.md §14 c) and its UPP.

Vocabulary of these tests (the wikifacts layout): 0 <pad>, 1 <unk>, 2 <fact>, 3 <text>, 4 <eos>, 5..6 relations,
7..9 known words; closed_vocab = 10, so ids 10..13 are unknown words (|V_unk| = 4).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lstmviz.hooks import HookScope, find_taps
from lstmviz.engines.recurrent.nklm import NKLM, UNK, parse_header, upp

V, K = 14, 10
NAME, OTHER = 11, 13  # the topic's out-of-vocabulary name word; another unknown word in no fact
# <fact> rel5 NAME 12 <fact> rel6 8 <text> 7 NAME 9 <eos>
DOC = torch.tensor([[2, 5, NAME, 12, 2, 6, 8, 3, 7, NAME, 9, 4]])
TEXT0 = 8  # index of the first text word


def model(**kw) -> NKLM:
    torch.manual_seed(0)
    cfg = dict(vocab_size=V, closed_vocab=K, embedding_dim=5, fact_dim=4, position_dim=3, hidden_size=6,
               mlp_size=7, max_facts=3, max_positions=3, init_range=0.5)
    return NKLM(**{**cfg, **kw}).double().eval()


def taps_of(m: NKLM, x: torch.Tensor, names) -> dict:
    taps, seen = find_taps(m), {n: [] for n in names}
    with torch.no_grad(), HookScope() as hooks:
        for n in names:
            hooks.read(taps[n], lambda mod, a, k, out: seen[mod.name].append(out.clone()))
        logp, _ = m(x)
    return logp, {n: torch.stack(v, 1) for n, v in seen.items()}


def test_the_header_is_parsed_into_facts_that_appear_once_complete():
    rel, obj, visible, count, text_start = parse_header(DOC, 3, 3)
    assert count.tolist() == [2] and text_start.tolist() == [TEXT0]
    assert rel[0, :2].tolist() == [5, 6] and obj[0, 0].tolist() == [NAME, 12, 0] and obj[0, 1].tolist() == [8, 0, 0]
    assert visible[0, :2].tolist() == [4, 7]  # the token after each fact's last word


def test_the_copy_path_gives_the_exact_out_of_vocabulary_name_probability_the_vocabulary_cannot():
    m = model()
    with torch.no_grad():
        logp, _ = m(DOC)
    p = logp.exp()[0]
    for t in range(TEXT0, DOC.shape[1] - 1):
        # the vocabulary softmax gives every unknown word the same share of <unk>; copying adds to NAME only
        assert p[t, NAME] > p[t, OTHER] * (1 + 1e-3), t
        assert p[t, UNK] == 0  # <unk> itself is no output: its mass is spread (UPP)
    m.force_generate = True
    with torch.no_grad():
        gen, _ = m(DOC)
    g = gen.exp()[0]
    torch.testing.assert_close(g[:, NAME], g[:, OTHER], rtol=0, atol=1e-15)  # z = 0: no way to name it
    torch.testing.assert_close(g[:, 10:], g[:, 10:11].expand(-1, 4), rtol=0, atol=1e-15)


def test_a_plain_lstm_lm_cannot_tell_unknown_words_apart():
    base = model(knowledge=False)
    with torch.no_grad():
        p = base(DOC)[0].exp()[0]
    torch.testing.assert_close(p[:, NAME], p[:, OTHER], rtol=0, atol=1e-15)


def test_forced_to_generate_without_facts_it_is_exactly_a_plain_lstm_lm():
    m = model()
    m.force_generate = True
    x = torch.tensor([[7, 8, 9, 7, 12, 8]])  # no header: NaF is the only fact
    with torch.no_grad():
        logp, _ = m(x)
        h = c = torch.zeros(1, m.hidden_size, dtype=torch.float64)
        naf = m.naf.unsqueeze(0)
        for t in range(x.shape[1]):
            w = m.closed(x[:, t])
            inp = torch.cat([naf, m.embedding(w), torch.zeros(1, m.position_dim, dtype=torch.float64)], -1)
            h, c = m.lstm(inp, (h, c))
            closed = F.log_softmax(m.gen(torch.cat([h, naf], -1)), -1)[0]
            torch.testing.assert_close(logp[0, t, :K].exp()[[0, 2, 3, 4, 5, 6, 7, 8, 9]],
                                       closed.exp()[[0, 2, 3, 4, 5, 6, 7, 8, 9]], rtol=0, atol=1e-12)
            torch.testing.assert_close(logp[0, t, K:].exp(), closed[UNK].exp().expand(V - K) / (V - K),
                                       rtol=0, atol=1e-12)


def test_fact_probabilities_normalise_over_the_facts_read_so_far_and_naf():
    m = model()
    _, seen = taps_of(m, DOC, ["nklm/fact", "nklm/copy_z"])
    fact = seen["nklm/fact"][0]  # [T, 1 + max_facts]
    torch.testing.assert_close(fact.sum(-1), torch.ones(DOC.shape[1], dtype=torch.float64), rtol=0, atol=1e-12)
    assert torch.all(fact[:, 3] == 0)  # a third slot: no third fact
    assert torch.all(fact[:4, 1:] == 0) and torch.all(fact[4:, 1] > 0)  # fact 1 exists from step 4 on
    assert torch.all(fact[:7, 2] == 0) and torch.all(fact[7:, 2] > 0)
    assert torch.all(fact[:4, 0] == 1)
    assert torch.all(seen["nklm/copy_z"][0, :4] == 0)  # nothing to copy from before a fact is complete
    # more fact slots (no parameter depends on max_facts) change nothing: the masked softmax ignores them
    wide = model(max_facts=5)
    wide.load_state_dict(m.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(wide(DOC)[0], m(DOC)[0], rtol=0, atol=1e-14)


def test_a_fact_count_beyond_the_header_never_gets_mass_in_a_padded_batch():
    m = model()
    short = torch.tensor([[2, 5, NAME, 3, 7, NAME, 4]])
    batch = torch.zeros(2, DOC.shape[1], dtype=torch.long)
    batch[0], batch[1, : short.shape[1]] = DOC[0], short[0]
    _, seen = taps_of(m, batch, ["nklm/fact"])
    assert torch.all(seen["nklm/fact"][1, :, 2:] == 0)  # the short document has one fact


def test_upp_spreads_the_unk_mass_over_the_unknown_types_exactly():
    m = model()
    closed = torch.log_softmax(torch.tensor([0.3, 1.0, -0.2, 0.5, 0.1, 0.0, 0.7, -1.0, 0.2, 0.4],
                                            dtype=torch.float64), -1)
    full = m.full_vocab(closed)
    assert full.shape == (V,) and full[UNK].exp() == 0 and torch.isfinite(full).all()
    torch.testing.assert_close(full.exp().sum(), torch.tensor(1.0, dtype=torch.float64), rtol=0, atol=1e-14)
    torch.testing.assert_close(full[NAME], closed[UNK] - math.log(V - K), rtol=0, atol=0)
    targets = torch.tensor([7, NAME, 9])
    by_hand = math.exp(-(float(closed[7]) + float(closed[UNK]) - math.log(4) + float(closed[9])) / 3)
    assert upp(full.expand(3, V), targets) == pytest.approx(by_hand, rel=1e-12)


def test_training_with_alignment_labels_learns_to_copy_the_name():
    m = model()
    m.train()
    fact = torch.full_like(DOC, -1)
    pos = torch.full_like(DOC, -1)
    fact[0, 9], pos[0, 9] = 0, 0  # the text's NAME is fact 0's word 0
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        loss, count = m.loss(DOC, fact, pos)
        loss.backward()
        opt.step()
    assert count == DOC.shape[1] - TEXT0
    m.eval()
    logp, seen = taps_of(m, DOC, ["nklm/copy_z", "nklm/copied", "nklm/source_fact"])
    assert logp[0, 8, NAME].exp() > 0.9  # after "7" the next word is the topic's name, copied
    assert seen["nklm/copy_z"][0, 8, 0] > 0.9
    # without labels, the observed NAME at step 9 is attributed to a copy of fact 1 (0-based 0)
    assert seen["nklm/copied"][0, 9, 0] == 1 and seen["nklm/source_fact"][0, 9, 0] == 1
    assert seen["nklm/copied"][0, 8, 0] == 0


def test_an_nklm_records_every_tap_of_wikifacts_documents(tmp_path):
    from lstmviz.datasets.wikifacts import WikiFactsDataset
    from lstmviz.recording.reader import open_recording
    from lstmviz.recording.recorder import record

    ds = WikiFactsDataset("test", entities=30, pool=10, max_items=3)
    torch.manual_seed(0)
    m = NKLM(vocab_size=len(ds.vocab), closed_vocab=ds.closed_vocab(20), hidden_size=8, embedding_dim=6,
             fact_dim=4, position_dim=3, mlp_size=8).eval()
    path = record(m, ds, tmp_path / "nklm.h5", batch_size=2, progress=False)
    with open_recording(path) as rec:
        assert set(rec.taps) == set(find_taps(m)) and rec.n_items == 3
        assert rec.n_positions == sum(len(item) for item in ds)
        for name in rec.taps:
            assert torch.isfinite(torch.as_tensor(rec.states(name))).all(), name
        fact = torch.as_tensor(rec.item_states("nklm/fact", 1), dtype=torch.float64)
        torch.testing.assert_close(fact.sum(-1), torch.ones(len(ds[1]), dtype=torch.float64), rtol=0, atol=2e-3)
        seen = []
        with torch.no_grad(), HookScope() as hooks:
            hooks.read(find_taps(m)["nklm/copy_z"], lambda mod, a, k, out: seen.append(out.clone()))
            m(torch.as_tensor(ds[1].tokens)[None])
        assert torch.allclose(torch.as_tensor(rec.item_states("nklm/copy_z", 1)).float(), torch.cat(seen), atol=1e-3)


def test_the_shared_training_loop_trains_an_nklm_on_whole_documents_and_validates_upp(tmp_path):
    from lstmviz.datasets.wikifacts import WikiFactsDataset
    from lstmviz.engines.checkpoint import load_checkpoint
    from lstmviz.engines.families.knowledge_lm.objective import documents, evaluate
    from lstmviz.engines.training import train

    tr = WikiFactsDataset("train", entities=40, pool=10)
    va = WikiFactsDataset("valid", entities=40, pool=10)
    config = {"closed_vocab": tr.closed_vocab(30), "hidden_size": 12, "embedding_dim": 8, "fact_dim": 6,
              "position_dim": 4, "mlp_size": 12}
    metrics = train("nklm", tr, va, out=tmp_path / "m.pt", steps=25, config=config, batch_size=8, lr=0.02,
                    eval_every=0)
    assert metrics["train_loss"] < 0.75 * metrics["first_train_loss"]
    model, meta = load_checkpoint(tmp_path / "m.pt")
    assert meta["family"] == "knowledge-lm" and meta["vocab"] == tr.vocab
    docs = documents(va, len(va.vocab), "valid")
    assert evaluate(model, docs, 8) == pytest.approx(metrics["valid_loss"], rel=1e-6)
    assert metrics["valid_ppl"] == pytest.approx(math.exp(metrics["valid_loss"]), rel=1e-3)  # UPP
    assert metrics["words"] > 25 * 8 * 10  # text words counted, not tokens
