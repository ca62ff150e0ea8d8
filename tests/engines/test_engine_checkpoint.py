"""Checkpoints: atomic writes, safe loading of untrusted files, and an error for every bad file."""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

from lstmviz.engines import checkpoint as checkpoint_module
from lstmviz.engines.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

VOCAB = ["<pad>", "(", ")", "a", "b", "c", "d"]
EXECUTED: list[str] = []  # a malicious pickle below would append here if it were ever unpickled


def _mark_executed(what):
    EXECUTED.append(what)
    return what


class Payload:
    """An object whose unpickling runs code (a module-level function with an argument)."""

    def __reduce__(self):
        return (_mark_executed, ("pwned",))


@pytest.fixture
def saved(tiny_model, tmp_path):
    model, config = tiny_model("lstm")
    path = save_checkpoint(tmp_path / "model.pt", model, engine="lstm", config=config, vocab=VOCAB,
                           dataset="tiny", step=3, metrics={"train_loss": np.float64(1.25), "steps": np.int64(3)})
    return path, model, config


def _payload(path):
    return torch.load(path, weights_only=True)


def _expect_error(path, *fragments):
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    error = info.value
    assert error.path == str(path) and str(error) == f"{path}: {error.problem}"
    for fragment in fragments:
        assert fragment in error.problem, (fragment, error.problem)
    return error


def test_meta_has_the_file_sha256_and_plain_metrics(saved):
    path, _, config = saved
    _, meta = load_checkpoint(path)
    assert meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta["metrics"] == {"train_loss": 1.25, "steps": 3} and type(meta["metrics"]["steps"]) is int
    assert meta["config"] == config and meta["vocab"] == VOCAB and meta["format_version"] == 1
    assert meta["versions"]["torch"] == str(torch.__version__)


def test_save_writes_a_temporary_file_and_renames_it(saved, monkeypatch):
    path, model, config = saved
    renames = []
    real_replace = os.replace

    def spy(src, dst):
        renames.append((str(src), str(dst), os.path.exists(src)))
        return real_replace(src, dst)

    monkeypatch.setattr(checkpoint_module.os, "replace", spy)
    save_checkpoint(path, model, engine="lstm", config=config, vocab=VOCAB, dataset="tiny", step=4, metrics={})
    [(src, dst, existed)] = renames
    assert dst == str(path) and src != dst and os.path.dirname(src) == os.path.dirname(dst) and existed
    assert sorted(os.listdir(path.parent)) == [path.name]
    assert load_checkpoint(path)[1]["step"] == 4


def test_a_failing_save_leaves_the_previous_file_untouched_and_no_temporary_file(saved, monkeypatch):
    path, model, config = saved
    before = path.read_bytes()

    def torn_save(obj, fh, *args, **kwargs):
        fh.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", torn_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, engine="lstm", config=config, vocab=VOCAB, dataset="tiny", step=9, metrics={})
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == [path.name]


def test_values_that_are_not_plain_are_refused_before_writing(tiny_model, tmp_path):
    model, config = tiny_model("gru")
    with pytest.raises(TypeError, match=r"metrics\['when'\]: expected plain values.*got object"):
        save_checkpoint(tmp_path / "m.pt", model, engine="gru", config=config, vocab=VOCAB, dataset=None,
                        step=0, metrics={"when": object()})
    assert list(tmp_path.iterdir()) == []


def test_missing_file_and_directory(tmp_path):
    _expect_error(tmp_path / "nope.pt", "no such file")
    _expect_error(tmp_path, "is a directory")


@pytest.mark.parametrize(
    "content, fragment",
    [
        (os.urandom(256).replace(b"\x80", b"\x81").replace(b"P", b"Q"), "not a PyTorch checkpoint"),
        (b"", "empty file"),
        (b"hello, I am a text file\n", "not a PyTorch checkpoint"),
    ],
    ids=["random-bytes", "empty", "text"],
)
def test_files_that_are_not_torch_files(tmp_path, content, fragment):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    _expect_error(path, fragment)


def test_a_truncated_checkpoint_is_reported_as_damaged(saved):
    path, _, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _expect_error(path, "damaged PyTorch file")


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_a_pickle_with_code_is_refused_and_never_run(tmp_path, writer):
    path = tmp_path / "evil.pt"
    if writer == "torch.save":
        torch.save({"format": "lstmviz-checkpoint", "state_dict": {}, "x": Payload()}, path)
    else:
        path.write_bytes(pickle.dumps({"x": Payload()}, protocol=2))
    error = _expect_error(path, "contains Python objects that are not unpickled for safety", "_mark_executed")
    assert "Weights only" not in error.problem  # our words, not torch's multi-paragraph advice
    assert EXECUTED == []


def test_a_bare_state_dict_is_not_an_lstmviz_checkpoint(tiny_model, tmp_path):
    model, _ = tiny_model("lstm")
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    _expect_error(path, "not an lstmviz checkpoint", "bare state_dict")
    torch.save([1, 2, 3], path)
    _expect_error(path, "not an lstmviz checkpoint", "list")


def test_missing_keys_are_named(saved):
    path, _, _ = saved
    payload = _payload(path)
    del payload["vocab"], payload["state_dict"]
    torch.save(payload, path)
    _expect_error(path, "missing vocab, state_dict")


def test_a_newer_format_version_is_refused(saved):
    path, _, _ = saved
    payload = _payload(path)
    payload["version"] = 99
    torch.save(payload, path)
    _expect_error(path, "version 99 is newer")


def test_unknown_engine_lists_the_known_ones(saved):
    path, _, _ = saved
    payload = _payload(path)
    payload["engine"] = "transformer-xl"
    torch.save(payload, path)
    _expect_error(path, "unknown engine 'transformer-xl'", "gru", "lstm")


def test_a_state_dict_that_does_not_fit_the_config(saved):
    path, _, config = saved
    payload = _payload(path)
    payload["config"]["hidden_size"] = config["hidden_size"] + 1
    torch.save(payload, path)
    _expect_error(path, "state_dict does not match the config", "shape", "layers.0.weight_hh")
    payload["config"] = dict(config, num_layers=config["num_layers"] + 1)
    torch.save(payload, path)
    _expect_error(path, "state_dict does not match the config", "missing layers.2.weight_ih")


def test_a_config_the_engine_cannot_build(saved):
    path, _, config = saved
    payload = _payload(path)
    payload["config"] = dict(config, attention_heads=4)
    torch.save(payload, path)
    _expect_error(path, "config does not build engine 'lstm'", "attention_heads")


def test_a_zip_that_is_not_a_torch_file(tmp_path):
    path = tmp_path / "archive.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not a model")
    _expect_error(path, "damaged PyTorch file")
