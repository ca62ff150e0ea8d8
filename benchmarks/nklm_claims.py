"""NKLM vs a plain LSTM LM on held-out entities (Ahn et al. 2016; docs/engines.md "nklm").

Claim [abstract]: the NKLM has a much lower perplexity on text about entities and emits far fewer ``<unk>``
than an RNN LM. Both models are engine ``nklm`` (the baseline with ``knowledge=False``: an LSTM LM over the
same closed vocabulary, reading the same header), trained here with the same settings and seed on the
wikifacts training entities, then scored on the test split (200 entities never seen in training):

- UPP: ``exp(mean −log P_upp(w))`` over the text words, ``P_upp`` spreading the ``<unk>`` mass evenly over the
  ``|V_unk|`` unknown word types (every id >= closed_vocab), exactly what ``NKLM.forward`` returns;
- UPP on the unknown words only and on the known words only;
- ``<unk>`` count: text positions where the model's most probable output is ``<unk>`` (the candidates: every
  known word, ``<unk>`` with its generation mass ``sum_k P(a=k)(1-z_k)G_k(<unk>)``, and every unknown word with
  its copy mass), out of the positions whose next word is unknown (and in total);
- copy accuracy: positions whose next word is unknown where the most probable output is that exact word.

Run: ``python benchmarks/nklm_claims.py [--steps 800]``.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from lstmviz.datasets.wikifacts import UNK, WikiFactsDataset
from lstmviz.engines.families.knowledge_lm.objective import documents, pad_documents, text_mask
from lstmviz.engines.recurrent.nklm import NKLM


def train(knowledge: bool, docs, vocab_size: int, K: int, steps: int, batch: int, seed: int) -> NKLM:
    torch.manual_seed(seed)
    model = NKLM(vocab_size=vocab_size, closed_vocab=K, knowledge=knowledge)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        pick = torch.randint(len(docs), (batch,), generator=g).tolist()
        x, f, p = pad_documents([docs[i] for i in pick])
        loss, _ = model.loss(x, f, p)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
    return model.eval()


@torch.no_grad()
def score(model: NKLM, docs, K: int) -> dict:
    V = model.vocab_size
    nll_all, nll_unk, nll_known = [], [], []
    unk_out = unk_out_at_unknown = n_unknown = copied_right = 0
    for s in range(0, len(docs), 32):
        x, _, _ = pad_documents(docs[s : s + 32])
        logp, _, kept, _ = model.run(x)
        mask = text_mask(x)
        target = torch.zeros_like(x)
        target[:, :-1] = x[:, 1:]
        nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        # P(emit <unk>) = sum_k P(a=k) (1 - z_k) G_k(<unk>), per step
        p_unk = torch.stack([torch.logsumexp(lf + lnz + lg[..., UNK], -1).exp()
                             for lf, _, lnz, lg, _ in kept], 1)  # [B, T]
        cand = logp.exp().clone()
        cand[..., K:] -= (p_unk / (V - K)).unsqueeze(-1)  # unknown ids: their copy mass only
        best_p, best = cand.max(-1)
        emits_unk = p_unk > best_p
        unknown = target >= K
        nll_all.append(nll[mask])
        nll_unk.append(nll[mask & unknown])
        nll_known.append(nll[mask & ~unknown])
        unk_out += int((emits_unk & mask).sum())
        unk_out_at_unknown += int((emits_unk & mask & unknown).sum())
        n_unknown += int((mask & unknown).sum())
        copied_right += int((~emits_unk & (best == target) & mask & unknown).sum())
    cat = torch.cat
    return {"UPP": math.exp(float(cat(nll_all).mean())), "UPP_unknown": math.exp(float(cat(nll_unk).mean())),
            "UPP_known": math.exp(float(cat(nll_known).mean())), "unk_outputs": unk_out,
            "unk_outputs_at_unknown": unk_out_at_unknown, "unknown_targets": n_unknown,
            "words": int(sum(t.numel() for t in nll_all)), "exact_unknown_word": copied_right}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--top", type=int, default=500, help="closed vocabulary: the top N training words")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train_set, test_set = WikiFactsDataset("train"), WikiFactsDataset("test")
    K, V = train_set.closed_vocab(args.top), len(train_set.vocab)
    train_docs = documents(train_set, V, "train")
    test_docs = documents(test_set, V, "test")
    print(f"wikifacts: {len(train_docs)} train / {len(test_docs)} held-out-entity test documents, vocabulary {V}, "
          f"closed vocabulary {K} (|V_unk| = {V - K}); {args.steps} steps x {args.batch} documents, seed {args.seed}", flush=True)
    rows = {}
    for name, knowledge in (("lstm-lm", False), ("nklm", True)):
        t0 = time.perf_counter()
        model = train(knowledge, train_docs, V, K, args.steps, args.batch, args.seed)
        trained = time.perf_counter() - t0
        print(f"  {name}: trained in {trained:.0f} s; scoring ...", flush=True)
        rows[name] = {**score(model, test_docs, K), "train_s": round(trained, 1)}
    keys = ["UPP", "UPP_known", "UPP_unknown", "unk_outputs", "unk_outputs_at_unknown", "unknown_targets",
            "exact_unknown_word", "words", "train_s"]
    print(f"{'model':10s}" + "".join(f"{k:>24s}" for k in keys))
    for name, r in rows.items():
        print(f"{name:10s}" + "".join(f"{r[k]:>24.2f}" if isinstance(r[k], float) else f"{r[k]:>24d}" for k in keys))
    b, n = rows["lstm-lm"], rows["nklm"]
    print(f"UPP ratio nklm / lstm-lm: {n['UPP'] / b['UPP']:.3f}; <unk> outputs nklm / lstm-lm: "
          f"{n['unk_outputs']} / {b['unk_outputs']}")


if __name__ == "__main__":
    main()
