"""Finding the checkpoint of a recording: stored path, then beside the recording, checked by sha256; problems in words."""

from __future__ import annotations

import shutil

import pytest
import torch
from torch import nn

import lstmviz
from lstmviz.perturb import CheckpointProblem, PerturbError, find_checkpoint, live_model, load_live_model, run_item
from lstmviz.recording import open_recording

from conftest import SCRIPT_VOCAB, script_items, train_and_record


@pytest.fixture(scope="module")
def own_files(tmp_path_factory):
    """A checkpoint and recording this module may move and damage."""
    return train_and_record(tmp_path_factory.mktemp("own"), "lstm", items=2)


def test_the_stored_path_is_used_first(own_files):
    ckpt, path = own_files
    with open_recording(path) as rec:
        assert find_checkpoint(rec) == ckpt
        assert load_live_model(rec).checkpoint == ckpt


def test_a_file_of_the_same_name_beside_the_recording(own_files, tmp_path):
    ckpt, path = own_files
    shutil.copy(path, tmp_path / "moved.h5")
    shutil.copy(ckpt, tmp_path / ckpt.name)
    hidden = ckpt.with_suffix(".away")
    ckpt.rename(hidden)
    try:
        with open_recording(tmp_path / "moved.h5") as rec:
            assert find_checkpoint(rec) == tmp_path / ckpt.name
        (tmp_path / ckpt.name).unlink()
        with open_recording(tmp_path / "moved.h5") as rec:
            with pytest.raises(CheckpointProblem) as info:
                load_live_model(rec)
    finally:
        hidden.rename(ckpt)
    e = info.value
    assert e.kind == "missing" and e.path == ckpt
    assert str(e) == (f"the recording's checkpoint {ckpt} was not found, nor {ckpt.name} beside the recording; "
                      f"locate it (File > Locate checkpoint, or --checkpoint PATH)")


def test_a_changed_checkpoint_is_another_model(own_files, gru_files, tmp_path):
    ckpt, path = own_files
    with open_recording(path) as rec:
        with pytest.raises(CheckpointProblem) as info:
            load_live_model(rec, gru_files[0])  # given, but another model
        assert info.value.kind == "mismatch" and info.value.path == gru_files[0]
        assert "has sha256" in str(info.value) and "it is another model" in str(info.value)
        assert rec.provenance["sha256"][:12] in str(info.value)
        missing = tmp_path / "nowhere.pt"
        with pytest.raises(CheckpointProblem, match="nowhere.pt was not found") as info:
            load_live_model(rec, missing)
        assert info.value.kind == "missing"


def test_an_unloadable_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    model = nn.Sequential(nn.Embedding(7, 4), nn.Linear(4, 7))
    out = lstmviz.record(model, script_items()[:2], tmp_path / "r.h5", vocab=SCRIPT_VOCAB, signals=["1"],
                         progress=False, provenance={"checkpoint": str(bad)})
    with open_recording(out) as rec:
        with pytest.raises(CheckpointProblem) as info:
            load_live_model(rec)
    assert info.value.kind == "unloadable" and info.value.path == bad
    assert str(info.value).startswith("the checkpoint does not load: ") and "\n" not in str(info.value)


def test_a_script_recording_names_no_checkpoint(script_rec):
    with pytest.raises(CheckpointProblem, match="names no checkpoint") as info:
        load_live_model(script_rec)
    assert info.value.kind == "missing" and info.value.path is None


class Hidden(nn.Module):
    def __init__(self, out):
        super().__init__()
        self.emb = nn.Embedding(7, 5)
        self.out = out

    def forward(self, tokens):
        x = self.emb(tokens)
        return {"x": x} if self.out == "dict" else x


@pytest.mark.parametrize("out, words", [("dict", "got a dict"), ("states", "it has 5 values per position")])
def test_a_model_without_logits(script_rec, out, words):
    live = live_model(Hidden(out), vocab=SCRIPT_VOCAB)
    with pytest.raises(PerturbError, match="the model's output has no logits") as info:
        run_item(live, script_rec, 0, taps=())
    assert words in str(info.value)


def test_a_custom_forward_gives_the_logits(script_files, script_rec):
    model = script_files[0]
    live = live_model(model, vocab=SCRIPT_VOCAB, forward=lambda m, tokens: (m(tokens), "extra"))
    run = run_item(live, script_rec, 0, taps=())
    with torch.no_grad():
        expected = model(torch.from_numpy(run.tokens)[None])[0].numpy()
    assert (run.logits == expected).all()
