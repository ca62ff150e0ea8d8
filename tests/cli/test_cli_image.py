"""`lstmviz train cnn --dataset digits` and `lstmviz record CHECKPOINT` for the image family."""

from __future__ import annotations

import numpy as np
import pytest

from lstmviz.cli import main
from lstmviz.recording.reader import open_recording


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("cnn") / "cnn.pt"
    code = main(["train", "cnn", "--dataset", "digits", "--steps", "20", "--out", str(out), "--quiet",
                 "--set", "hidden_size=4", "--train", "eval_every=20", "--train", "batch_size=32"])
    assert code == 0 and out.is_file()
    return out


def test_train_reports_images_and_accuracy(checkpoint, capsys):
    import torch

    payload = torch.load(checkpoint, weights_only=False, map_location="cpu")
    metrics = payload["metrics"]
    assert metrics["images"] == 20 * 32
    assert metrics["train_loss"] < metrics["first_train_loss"]  # 20 Adam steps already learn something
    assert 0.0 <= metrics["valid_accuracy"] <= 1.0
    assert payload["data"] == {"channels": 1, "height": 8, "width": 8, "num_classes": 10, "task": "class"}


def test_record_rebuilds_the_dataset_from_the_checkpoint(checkpoint, tmp_path):
    out = tmp_path / "cnn.h5"
    code = main(["record", str(checkpoint), "--split", "valid", "--out", str(out), "--quiet", "--max-items", "7",
                 "--batch-size", "3"])
    assert code == 0
    with open_recording(out) as rec:
        assert rec.n_items == 7 and rec.n_positions == 7 * 64
        assert rec.provenance["dataset"] == "digits" and rec.provenance["split"] == "valid"
        assert rec.provenance["engine"] == "cnn"
        assert {"input", "conv0", "conv1", "conv2", "conv3", "pooled", "logits"} == set(rec.taps)
        assert [rec.axis_geometry(a).kind for a in ("positions", "conv1", "image")] == ["image", "image", "scalar"]
        assert rec.axis_length("conv1") == 7 * 16
        logits = rec.states("logits")
        assert np.array_equal(rec.annotation("prediction"), logits.argmax(1))


def test_record_refuses_a_dataset_of_another_size(checkpoint, tmp_path, capsys):
    code = main(["record", str(checkpoint), "--out", str(tmp_path / "x.h5"), "--quiet", "--max-items", "2",
                 "--dataset-option", "size=16"])
    err = capsys.readouterr().err
    assert code == 2 and "trained on other data" in err and "height 8 vs 16" in err
    assert not (tmp_path / "x.h5").exists()
