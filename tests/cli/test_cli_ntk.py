"""`lstmviz ntk` and lstmviz.analysis.ntk_recording on real (tiny) runs: a language model recorded at three
checkpoints (alignment and effective rank per layer at each, equal to the kernel computed directly on each
checkpoint's model; cached), and a CNN image recording (the NTK spectrum with the label energy)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from lstmviz.cli import main

DATA = ["--dataset-option", "tokens=1500", "--dataset-option", "item_length=16"]


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ntk-lm")
    out = folder / "lstm.pt"
    assert main(["train", "lstm", "--dataset", "parens", "--steps", "20", "--out", str(out), "--quiet",
                 "--train", "batch_size=4", "--train", "bptt=16", "--train", "checkpoint_every=10",
                 "--train", "keep_checkpoints=1", "--set", "hidden_size=6", "--set", "embedding_dim=4", *DATA]) == 0
    rec = folder / "run.h5"
    kept = [folder / f"lstm-step{s:06d}.pt" for s in (0, 10, 20)]
    assert main(["record", *map(str, kept), "--out", str(rec), "--quiet", "--max-items", "12", "--split", "valid",
                 "--signals", "layer1/h", *DATA]) == 0
    return rec


def test_kernel_curves_at_every_checkpoint_equal_the_kernel_of_each_model(lm_run):
    from lstmviz.analysis.ntk_recording import checkpoint_model, kernel_curves, kernel_items
    from lstmviz.analysis.tangent_kernel import measures, tangent_kernel
    from lstmviz.recording import open_recording

    with open_recording(lm_run) as rec:
        curves = kernel_curves(rec, "max_depth", items=8, seed=1)
        assert curves.checkpoints == ["step-000000", "step-000010", "step-000020"]
        assert list(curves.x()) == [0.0, 10.0, 20.0]
        assert curves.layers == ["embedding", "layers.0", "layers.1", "decoder"]
        assert curves.alignment.shape == (3, 4) and np.isfinite(curves.alignment).all()
        setup = kernel_items(rec, "max_depth", items=8, seed=1)
        assert len(setup.items) == 8 and setup.family == "language-model"
        model = checkpoint_model(rec, rec.checkpoints[1])
        direct = measures(tangent_kernel(model, setup.output_of, setup.examples), setup.labels,
                          n_classes=len(setup.label_names))
        np.testing.assert_allclose(curves.alignment[1], direct.alignment, rtol=1e-9)
        np.testing.assert_allclose(curves.effective_rank[1], direct.effective_rank, rtol=1e-9)
        assert not np.allclose(curves.alignment[0], curves.alignment[2])  # the kernel moved during training
        again = kernel_curves(rec, "max_depth", items=8, seed=1)
        assert again.from_cache and np.array_equal(again.alignment, curves.alignment)
        other = kernel_curves(rec, "max_depth", items=8, seed=2, cache=False)
        assert not other.from_cache
        table = curves.table()
        assert len(table["layer"]) == 3 * 5 and table["layer"][4] == "all" and table["step"][5] == 10


def test_cli_ntk_over_training_and_spectrum(lm_run, tmp_path, capsys):
    out, spectrum = tmp_path / "curves.csv", tmp_path / "spectrum.csv"
    assert main(["ntk", str(lm_run), "--label", "max_depth", "--items", "8", "--seed", "1", "--over-training",
                 "--quiet", "--out", str(out), "--spectrum-out", str(spectrum)]) == 0
    text = capsys.readouterr().out
    assert "step-000010" in text and "layers.0" in text and "(from the cache)" in text
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 15 and {r["checkpoint"] for r in rows} == {"step-000000", "step-000010", "step-000020"}
    spec = list(csv.DictReader(open(spectrum)))
    assert len(spec) == 8
    energy = [k for k in spec[0] if k.startswith("energy[")]
    for name in energy:
        assert sum(float(r[name]) for r in spec) == pytest.approx(1.0, abs=1e-9)


def test_cli_ntk_refuses_what_it_cannot_use(lm_run, tmp_path, capsys):
    assert main(["ntk", str(lm_run), "--label", "depthh"]) == 2
    assert "--label must be a categorical annotation" in capsys.readouterr().err
    assert main(["ntk", str(lm_run), "--label", "max_depth", "--out", str(tmp_path / "t.txt")]) == 2
    assert "--out must end in" in capsys.readouterr().err
    assert main(["ntk", str(lm_run), "--label", "max_depth", "--items", "1"]) == 2
    assert "--items must be at least 2" in capsys.readouterr().err
    assert main(["ntk", str(tmp_path / "none.h5"), "--label", "x"]) == 2


def test_image_recording_spectrum_and_one_state_refuses_over_training(tmp_path, capsys):
    from lstmviz.analysis.ntk_recording import kernel_spectrum
    from lstmviz.recording import open_recording

    ckpt = tmp_path / "cnn.pt"
    assert main(["train", "cnn", "--dataset", "digits", "--steps", "3", "--out", str(ckpt), "--quiet",
                 "--set", "hidden_size=4", "--set", "num_layers=2"]) == 0
    rec_path = tmp_path / "cnn.h5"
    assert main(["record", str(ckpt), "--out", str(rec_path), "--quiet", "--max-items", "30"]) == 0
    with open_recording(rec_path) as rec:
        label = next(n for n, a in rec.annotations.items() if a.kind == "categorical" and a.level == "item")
        result = kernel_spectrum(rec, label, items=12)
        assert result.items == 12 and "class logits" in result.output
        assert result.layers == ["convs.0", "convs.1", "head"]
        s = result.spectrum
        assert s.eigenvalues.shape == (12,) and np.all(np.diff(s.eigenvalues) <= 1e-9)
        np.testing.assert_allclose(s.energy.sum(0), 1.0, atol=1e-9)
    capsys.readouterr()
    assert main(["ntk", str(rec_path), "--label", label, "--over-training"]) == 2
    assert "needs a recording of several checkpoints" in capsys.readouterr().err
