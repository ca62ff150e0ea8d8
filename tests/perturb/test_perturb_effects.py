"""Effects of a perturbation: dnll, KL, top-k and Δ per tap; sweeps; batches equal to per-item runs; tasks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmviz.perturb import Perturbation, PerturbError, perturb_item, perturb_items, run_item, sweep_alpha
from lstmviz.tasks import Cancelled, Task

ABLATE = Perturbation("layer0/c", "ablate", units=(1, 4, 7), positions=tuple(range(3, 12)))


def test_dnll_kl_topk_and_delta_follow_their_definitions(lstm_live, lstm_rec):
    effect = perturb_item(lstm_live, lstm_rec, 1, [ABLATE], taps=["layer0/c", "layer1/h"], k=3)
    clean = run_item(lstm_live, lstm_rec, 1, taps=["layer0/c", "layer1/h"])
    edited = run_item(lstm_live, lstm_rec, 1, [ABLATE], taps=["layer0/c", "layer1/h"])
    assert np.allclose(effect.clean.logits, clean.logits, atol=1e-5)
    assert np.allclose(effect.edited.logits, edited.logits, atol=1e-5)
    lp_c = torch.log_softmax(torch.from_numpy(clean.logits).double(), -1).numpy()
    lp_e = torch.log_softmax(torch.from_numpy(edited.logits).double(), -1).numpy()
    assert np.allclose(effect.kl, (np.exp(lp_c) * (lp_c - lp_e)).sum(-1), atol=1e-5)
    assert np.allclose(effect.dnll[:-1], edited.nll[:-1] - clean.nll[:-1], atol=1e-5) and np.isnan(effect.dnll[-1])
    assert np.all(effect.dnll[:3] == 0) and np.all(effect.kl[:3] == 0)  # before the first edited position
    assert np.abs(effect.dnll[3:-1]).max() > 0
    assert np.array_equal(effect.topk_clean, np.argsort(-lp_c, axis=1, kind="stable")[:, :3])
    assert np.allclose(effect.topk_edited_p, np.sort(np.exp(lp_e), 1)[:, ::-1][:, :3], atol=1e-6)
    for tap in ("layer0/c", "layer1/h"):
        d = edited.states[tap] - clean.states[tap]
        assert np.allclose(effect.delta[tap], d, atol=1e-6)
        assert np.allclose(effect.delta_norm[tap], np.linalg.norm(d, axis=1), atol=1e-6)
    s = effect.summary()
    assert s["positions_edited"] == 9 and s["first_edited"] == 3
    assert np.isclose(s["mean_dnll"], np.nanmean(effect.dnll))
    rows = effect.to_table()
    assert len(rows) == len(clean.tokens) and rows[3]["edited"] == 1 and rows[2]["edited"] == 0
    assert rows[5]["dnll"] == pytest.approx(float(effect.dnll[5]))


def test_a_sweep_of_alpha_matches_single_runs(lstm_live, lstm_rec):
    p = Perturbation("layer1/h", "add", units=(2, 3), positions=(10, 11), direction="random", seed=1)
    sweep = sweep_alpha(lstm_live, lstm_rec, 0, p, [-3.0, 0.0, 2.0])
    assert np.all(sweep.per_position_dnll[1][np.isfinite(sweep.per_position_dnll[1])] == 0)
    single = perturb_item(lstm_live, lstm_rec, 0, [Perturbation(**{**p.to_dict(), "alpha": 2.0, "units": (2, 3),
                                                                     "positions": (10, 11)})], taps=())
    assert np.allclose(sweep.per_position_dnll[2], single.dnll, atol=1e-5, equal_nan=True)
    assert sweep.mean_dnll[2] == pytest.approx(single.summary()["mean_dnll"], abs=1e-6)
    assert sweep.mean_kl[0] > 0 and sweep.mean_kl[1] == 0
    with pytest.raises(PerturbError, match="alpha must be a finite number"):
        sweep_alpha(lstm_live, lstm_rec, 0, p, [1.0, float("inf")])
    with pytest.raises(PerturbError, match="needs the add action"):
        sweep_alpha(lstm_live, lstm_rec, 0, ABLATE, [1.0])


def test_a_batch_over_items_equals_per_item_runs(lstm_live, lstm_rec):
    batch = perturb_items(lstm_live, lstm_rec, ABLATE, batch_size=4)  # 6 items: two padded batches
    assert list(batch.items) == list(range(lstm_rec.n_items))
    for r, item in enumerate(batch.items):
        s = perturb_item(lstm_live, lstm_rec, int(item), [ABLATE], taps=()).summary()
        assert batch.mean_dnll[r] == pytest.approx(s["mean_dnll"], abs=1e-5)
        assert batch.max_dnll[r] == pytest.approx(s["max_dnll"], abs=1e-5)
        assert batch.mean_kl[r] == pytest.approx(s["mean_kl"], abs=1e-6)
    order = batch.ranking()
    assert np.abs(batch.mean_dnll[order[0]]) == np.abs(batch.mean_dnll).max()
    assert len(batch.to_table()) == lstm_rec.n_items


def test_a_batch_skips_positions_beyond_an_items_end(lstm_live, lstm_rec):
    lengths = np.diff(lstm_rec.item_offsets)
    short, cut = int(np.argmin(lengths)), int(lengths.min())
    p = Perturbation("layer0/h", "clamp", units=(0,), positions=(cut - 2, cut - 1, cut, cut + 1), value=1.0)
    batch = perturb_items(lstm_live, lstm_rec, p)
    for r, item in enumerate(batch.items):
        inside = tuple(q for q in p.positions if q < lengths[item])
        s = perturb_item(lstm_live, lstm_rec, int(item), [p.with_positions(inside)], taps=()).summary()
        assert batch.mean_kl[r] == pytest.approx(s["mean_kl"], abs=1e-6)
    with pytest.raises(PerturbError, match=f"is beyond item {short}"):
        perturb_items(lstm_live, lstm_rec, p, where=[(short, cut, cut + 2)])


def test_a_batch_over_matches_edits_each_match(lstm_live, lstm_rec):
    where = [(0, 5, 8), (3, 20, 22), (0, 30, 31)]
    p = Perturbation("layer1/c", "clamp", units=(0, 1), value=2.0)
    batch = perturb_items(lstm_live, lstm_rec, p, where=where)
    assert list(batch.items) == [0, 3, 0] and list(batch.starts) == [5, 20, 30]
    for r, (item, start, stop) in enumerate(where):
        s = perturb_item(lstm_live, lstm_rec, item, [p.with_positions(range(start, stop))], taps=()).summary()
        assert batch.mean_dnll[r] == pytest.approx(s["mean_dnll"], abs=1e-5)
        assert batch.mean_kl[r] == pytest.approx(s["mean_kl"], abs=1e-6)
    with pytest.raises(PerturbError, match="item 99 does not exist"):
        perturb_items(lstm_live, lstm_rec, p, where=[(99, 0, 1)])


def test_a_batch_with_a_patch_from_another_item(lstm_live, lstm_rec):
    p = Perturbation("layer1/h", "patch", positions=(4, 5), source_item=1, source_start=2)
    batch = perturb_items(lstm_live, lstm_rec, p, items=[0, 2])
    for r, item in enumerate((0, 2)):
        s = perturb_item(lstm_live, lstm_rec, item, [p], taps=()).summary()
        assert batch.mean_dnll[r] == pytest.approx(s["mean_dnll"], abs=1e-5)


def test_progress_and_cancel(lstm_live, lstm_rec):
    seen = []
    perturb_items(lstm_live, lstm_rec, ABLATE, batch_size=2, task=Task(lambda d, t, m: seen.append((d, t))))
    assert seen[0] == (0, 6) and seen[-1] == (6, 6) and len(seen) == 4
    task = Task(lambda d, t, m: task.cancel() if d >= 2 else None)
    with pytest.raises(Cancelled):
        perturb_items(lstm_live, lstm_rec, ABLATE, batch_size=2, task=task)
    task = Task()
    task.cancel()
    with pytest.raises(Cancelled):
        perturb_item(lstm_live, lstm_rec, 0, [ABLATE], task=task)
