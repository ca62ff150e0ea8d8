"""See, Luong & Manning's magnitude pruning by weight class (engines/seq2seq/prune.py), defining tests of
models_recurrent.md §15 (c): class-blind removes exactly x% with one threshold, class-uniform x% of each
class, class-distribution thresholds equal λσ_c, and masked weights stay exactly zero through optimizer
steps; the checkpoint carries the masks and a recording of it the surviving recurrent weights."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from lstmviz.cli import main
from lstmviz.datasets import load_dataset
from lstmviz.engines import registry
from lstmviz.engines.checkpoint import load_checkpoint, save_checkpoint
from lstmviz.engines.families.seq2seq import Seq2SeqData
from lstmviz.engines.families.seq2seq.api import batch_pairs
from lstmviz.engines.families.seq2seq.objective import nll
from lstmviz.engines.seq2seq.prune import (apply_masks, magnitude_masks, masked_step, retrain, surviving_recurrent,
                                           weight_classes)

CONFIG = {"embedding_size": 5, "hidden_size": 7, "num_layers": 2, "init_range": 0.5}


def tiny(vocab_size=9, seed=0):
    torch.manual_seed(seed)
    return registry.get("seq2seq-attn").build_model(Seq2SeqData(vocab_size=vocab_size), **CONFIG).double()


def magnitudes(model, names):
    params = dict(model.named_parameters())
    return np.concatenate([params[n].detach().abs().reshape(-1).numpy() for n in names])


def removed_flags(plan, names):
    return np.concatenate([(~plan.masks[n]).reshape(-1).numpy() for n in names])


def test_the_class_partition_is_explicit_and_covers_every_weight_matrix_but_no_bias():
    model = tiny()
    classes = weight_classes(model)
    assert list(classes) == ["embedding", "encoder.layer0", "encoder.layer1", "decoder.layer0", "decoder.layer1",
                             "attention", "softmax"]
    assert classes["attention"] == ["attn_W.weight", "attn_combine.weight"]
    assert classes["decoder.layer1"] == ["decoder_layers.1.weight_ih", "decoder_layers.1.weight_hh"]
    grouped = [n for names in classes.values() for n in names]
    weights = {n for n, p in model.named_parameters() if "bias" not in n}
    assert sorted(grouped) == sorted(weights) and len(grouped) == len(set(grouped))


@pytest.mark.parametrize("fraction", [0.0, 0.37, 0.8])
def test_class_blind_removes_exactly_the_fraction_with_one_threshold(fraction):
    model = tiny()
    plan = magnitude_masks(model, "class-blind", fraction)
    names = [n for ns in plan.classes.values() for n in ns]
    mags, gone = magnitudes(model, names), removed_flags(plan, names)
    assert gone.sum() == round(fraction * mags.size) == plan.removed_total
    if fraction:
        t = plan.thresholds["softmax"]
        assert set(plan.thresholds.values()) == {t}  # one threshold for every class
        assert mags[gone].max() == t <= mags[~gone].min()
    # class-blind is not class-uniform: the classes lose different fractions
    if fraction == 0.8:
        shares = [plan.removed[c] / plan.sizes[c] for c in plan.classes]
        assert max(shares) - min(shares) > 0.05


def test_class_uniform_removes_the_fraction_of_every_class():
    model = tiny()
    plan = magnitude_masks(model, "class-uniform", 0.45)
    for cls, names in plan.classes.items():
        mags, gone = magnitudes(model, names), removed_flags(plan, names)
        assert gone.sum() == round(0.45 * mags.size) == plan.removed[cls]
        assert mags[gone].max() == plan.thresholds[cls] <= mags[~gone].min()


def test_class_distribution_thresholds_are_lambda_sigma_and_remove_the_fraction_overall():
    model = tiny()
    plan = magnitude_masks(model, "class-distribution", 0.6)
    params = dict(model.named_parameters())
    total = sum(plan.sizes.values())
    assert plan.removed_total == round(0.6 * total)
    assert plan.lam is not None and plan.lam > 0
    for cls, names in plan.classes.items():
        values = np.concatenate([params[n].detach().reshape(-1).numpy() for n in names])
        sigma = values.std()  # population std of the class's weights
        assert plan.sigma[cls] == pytest.approx(sigma, rel=1e-12)
        t = plan.thresholds[cls]
        assert t == pytest.approx(plan.lam * sigma, rel=1e-12)
        mags, gone = np.abs(values), removed_flags(plan, names)
        assert (mags[gone] <= t * (1 + 1e-12)).all() and (mags[~gone] >= t * (1 - 1e-12)).all()
    assert len({round(v, 9) for v in plan.thresholds.values()}) > 1  # per-class thresholds differ


def test_masked_weights_stay_exactly_zero_through_optimizer_steps():
    model = tiny()
    plan = magnitude_masks(model, "class-blind", 0.5)
    apply_masks(model, plan.masks)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    batch = batch_pairs([([3, 4, 5], [6, 7]), ([8, 3], [4, 4, 5])])
    params = dict(model.named_parameters())
    for _ in range(3):
        optimizer.zero_grad()
        nll(model, batch)[0].backward()
        assert any(bool((params[n].grad[~m] != 0).any()) for n, m in plan.masks.items())  # gradients reach them
        masked_step(model, optimizer, plan.masks, clip=1.0)
        for name, mask in plan.masks.items():
            assert bool((params[name][~mask] == 0).all())
            assert bool((params[name][mask] != 0).all())
    # without the masks the same step revives pruned weights: the test above is not vacuous
    optimizer.zero_grad()
    nll(model, batch)[0].backward()
    optimizer.step()
    assert any(bool((params[n][~m] != 0).any()) for n, m in plan.masks.items())


def test_retrain_keeps_the_masks_and_lowers_the_loss():
    data = load_dataset("reverse", "train", items=16, symbols=4, max_length=5)
    model = tiny(vocab_size=len(data.vocab))
    plan = magnitude_masks(model, "class-uniform", 0.5)
    result = retrain(model, plan.masks, data, epochs=6, batch_size=8, lr=0.01)
    assert result["steps"] == 12 and result["last_loss"] < result["first_loss"]
    params = dict(model.named_parameters())
    assert all(bool((params[n][~m] == 0).all()) for n, m in plan.masks.items())


def test_surviving_recurrent_fraction_counts_each_units_incoming_recurrent_rows():
    model = tiny()
    H = CONFIG["hidden_size"]
    masks = {"encoder_layers.1.weight_hh": torch.ones(4 * H, H, dtype=torch.bool)}
    masks["encoder_layers.1.weight_hh"][[2, H + 2, 2 * H + 2, 3 * H + 2], :] = False  # unit 2 loses all
    masks["encoder_layers.1.weight_hh"][3, :4] = False  # unit 3 loses 4 of its 4H incoming weights
    got = surviving_recurrent(model, masks)
    assert set(got) == {"encoder/layer0", "encoder/layer1", "decoder/layer0", "decoder/layer1"}
    expected = np.ones(H)
    expected[2], expected[3] = 0.0, 1 - 4 / (4 * H)
    np.testing.assert_allclose(got["encoder/layer1"], expected)
    np.testing.assert_allclose(got["decoder/layer0"], np.ones(H))


def test_lstmviz_prune_writes_masks_and_a_recording_carries_the_surviving_units(tmp_path, capsys):
    data = load_dataset("reverse", "train", items=16, symbols=4, max_length=5)
    model = tiny(vocab_size=len(data.vocab)).float()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, engine="seq2seq-attn", config=CONFIG, vocab=list(data.vocab), dataset="reverse",
                    step=10, metrics={}, family="seq2seq", train_settings={"batch_size": 8},
                    dataset_options={"items": 16, "symbols": 4, "max_length": 5})
    out = tmp_path / "p.pt"
    assert main(["prune", str(path), "--scheme", "class-distribution", "--fraction", "0.4", "--retrain-epochs", "1",
                 "--valid-items", "4", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "removed 40.0%" in printed and "retrained" in printed
    pruned, meta = load_checkpoint(out)
    info, masks = meta["pruning"]["info"], meta["pruning"]["masks"]
    assert info["scheme"] == "class-distribution" and info["retrain"]["steps"] == 2 and meta["step"] == 12
    params = dict(pruned.named_parameters())
    assert sum(int((~m).sum()) for m in masks.values()) == round(0.4 * sum(info["sizes"].values()))
    assert all(bool((params[n][~m] == 0).all()) for n, m in masks.items())
    rec = tmp_path / "p.h5"
    assert main(["record", str(out), "--max-items", "3", "--out", str(rec), "--quiet"]) == 0
    with h5py.File(rec) as f:
        provenance = json.loads(f["provenance"].asstr()[()])
    surviving = provenance["pruning"]["surviving_recurrent"]
    np.testing.assert_allclose(surviving["decoder/layer1"], surviving_recurrent(pruned, masks)["decoder/layer1"])
    assert provenance["pruning"]["lambda"] == pytest.approx(info["lambda"])
    assert main(["prune", str(out), "--scheme", "class-blind", "--fraction", "0.1", "--out",
                 str(tmp_path / "q.pt"), "--quiet", "--valid-items", "0"]) == 2  # already pruned: refused


def test_a_checkpoint_with_bad_pruning_masks_is_refused(tmp_path):
    from lstmviz.engines.checkpoint import CheckpointError

    model = tiny().float()
    plan = magnitude_masks(model, "class-blind", 0.3)
    path = tmp_path / "p.pt"
    vocab = ["<pad>", "<bos>", "<eos>"] + list("abcdef")
    save_checkpoint(path, model, engine="seq2seq-attn", config=CONFIG, vocab=vocab, dataset=None, step=0, metrics={},
                    family="seq2seq", pruning={"info": plan.info(), "masks": plan.masks})
    _, meta = load_checkpoint(path)
    assert set(meta["pruning"]["masks"]) == set(plan.masks) and meta["pruning"]["info"]["scheme"] == "class-blind"
    payload = torch.load(path, weights_only=True)
    for bad in ({"output.weight": torch.ones(2, 2, dtype=torch.bool)}, {"output.weight": torch.ones(9, 7)}):
        payload["pruning"]["masks"] = bad
        torch.save(payload, tmp_path / "bad.pt")
        with pytest.raises(CheckpointError, match="pruning"):
            load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="pruning mask"):
        save_checkpoint(tmp_path / "x.pt", model, engine="seq2seq-attn", config=CONFIG, vocab=[], dataset=None, step=0,
                        metrics={}, family="seq2seq", pruning={"info": {}, "masks": {"nope": torch.ones(1).bool()}})
