"""`lstmviz prune CKPT --method ...`: global loss-model pruning of a language model and an image classifier
from the command line (predicted vs measured Δloss per step, a checkpoint with its masks), and clear errors
for mixing it with the seq2seq `--scheme` form."""

from __future__ import annotations

import pytest
import torch

from lstmviz.cli import main
from lstmviz.engines.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("loss-prune")
    lm, cnn = root / "lm.pt", root / "cnn.pt"
    assert main(["train", "lstm", "--dataset", "parens", "--steps", "20", "--out", str(lm), "--quiet", "--no-valid",
                 "--train", "batch_size=4", "--train", "bptt=20", "--dataset-option", "tokens=3000",
                 "--dataset-option", "item_length=60", "--set", "hidden_size=8", "--set", "embedding_dim=8"]) == 0
    assert main(["train", "cnn", "--dataset", "digits", "--steps", "10", "--out", str(cnn), "--quiet", "--no-valid",
                 "--set", "hidden_size=4", "--set", "num_layers=2"]) == 0
    return {"lm": lm, "cnn": cnn}


def _prunable(model):
    return {n: p for n, p in model.named_parameters() if p.dim() >= 2}


def test_a_language_model_is_pruned_in_steps_and_saved_with_its_masks(checkpoints, tmp_path, capsys):
    out = tmp_path / "lm-pruned.pt"
    assert main(["prune", str(checkpoints["lm"]), "--method", "qm", "--sparsity", "0.6", "--steps", "3", "--lambda",
                 "1e-3", "--curvature", "sampled-fisher", "--items", "6", "--valid-items", "3",
                 "--dataset-option", "tokens=3000", "--dataset-option", "item_length=60", "--quiet",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "QM (quadratic), 3 step(s) to 60.0%" in text and "true Fisher (sampled labels)" in text
    rows = [line.split() for line in text.splitlines() if line.strip()[:1].isdigit()]
    model, meta = load_checkpoint(out)
    info, masks = meta["pruning"]["info"], meta["pruning"]["masks"]
    weights = _prunable(model)
    assert set(masks) == set(weights)
    size = sum(p.numel() for p in weights.values())
    assert sum(int((~m).sum()) for m in masks.values()) == int(0.6 * size + 0.5)
    assert [r[0] for r in rows] == ["1", "2", "3"] and rows[-1][1] == f"{int(0.6 * size + 0.5) / size:.2%}"
    assert all(torch.all(weights[n].detach()[~m] == 0) for n, m in masks.items())
    assert info["method"] == "qm" and info["curvature"] == "sampled-fisher" and info["lambda"] == 1e-3
    assert len(info["table"]) == 3 and info["table"][0]["predicted"] == info["table"][0]["predicted_qm"]
    assert meta["metrics"]["pruned_fraction"] == pytest.approx(info["removed_fraction"])


def test_an_image_classifier_with_the_exact_ggn_and_a_fine_tune(checkpoints, tmp_path, capsys):
    out = tmp_path / "cnn-pruned.pt"
    assert main(["prune", str(checkpoints["cnn"]), "--method", "obd", "--sparsity", "0.5", "--curvature", "ggn",
                 "--items", "40", "--valid-items", "20", "--retrain-epochs", "1", "--batch-size", "20", "--quiet",
                 "--param", "*.weight", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "OBD, 1 step(s) to 50.0%" in text and "fine-tuned 2 steps" in text and "fine-tuned valid loss" in text
    model, meta = load_checkpoint(out)
    masks = meta["pruning"]["masks"]
    assert meta["pruning"]["info"]["fine_tune"]["steps"] == 2
    assert all(torch.all(model.get_parameter(n).detach()[~m] == 0) for n, m in masks.items())


@pytest.mark.parametrize("argv, words", [
    (["--method", "qm", "--scheme", "class-blind", "--sparsity", "0.5"], "two forms of prune; give one"),
    (["--method", "qm", "--fraction", "0.5"], "--fraction belongs to --scheme"),
    (["--scheme", "class-blind", "--fraction", "0.5", "--steps", "3"], "--steps belongs to loss-model pruning"),
    (["--scheme", "class-blind"], "--scheme needs --fraction"),
    ([], "give --method"),
    (["--method", "lm"], "--method needs --sparsity"),
    (["--method", "lm", "--sparsity", "1.0"], "not including"),
    (["--method", "lm", "--sparsity", "0.5", "--steps", "0"], "--steps must be a whole number of at least 1"),
    (["--method", "lm", "--sparsity", "0.5", "--lambda", "-1"], "--lambda must be a number of at least 0"),
])
def test_mixing_or_missing_options_is_a_usage_error(checkpoints, tmp_path, capsys, argv, words):
    assert main(["prune", str(checkpoints["lm"]), *argv, "--out", str(tmp_path / "p.pt")]) == 2
    err = capsys.readouterr().err
    assert "usage: lstmviz prune" in err and words in err
    assert not (tmp_path / "p.pt").exists()


def test_what_the_model_cannot_take_is_one_sentence(checkpoints, tmp_path, capsys):
    assert main(["prune", str(checkpoints["lm"]), "--method", "qm", "--sparsity", "0.5", "--curvature", "ggn",
                 "--items", "2", "--valid-items", "0", "--dataset-option", "tokens=3000", "--quiet",
                 "--out", str(tmp_path / "p.pt")]) == 1
    assert "use sampled-fisher" in capsys.readouterr().err
    assert main(["prune", str(checkpoints["lm"]), "--method", "mp", "--sparsity", "0.5", "--param", "nothing*",
                 "--items", "2", "--valid-items", "0", "--dataset-option", "tokens=3000", "--quiet",
                 "--out", str(tmp_path / "p.pt")]) == 1
    assert "no parameter of the model matches 'nothing*'" in capsys.readouterr().err
    assert not (tmp_path / "p.pt").exists()
