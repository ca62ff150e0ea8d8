"""Checkpoints: atomic writes, safe loading of untrusted files, and an error for every bad file."""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import struct
import threading
import zipfile

import numpy as np
import pytest
import torch

from lstmviz.engines import checkpoint as checkpoint_module
from lstmviz.engines.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lstmviz.memory import format_bytes

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


# --- files that are not regular files, and sizes beyond the memory available ----------------------------


def _load_or_unblock(path, fifo=None) -> CheckpointError:
    """``load_checkpoint(path)`` on a thread; if it blocks on ``fifo``, unblock it and fail the test."""
    outcome = {}

    def run():
        try:
            load_checkpoint(path)
            outcome["loaded"] = True
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    if thread.is_alive():
        if fifo is not None:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(30)
        pytest.fail(f"load_checkpoint({path}) blocked")
    error = outcome.get("error")
    assert isinstance(error, CheckpointError) and error.path == str(path), outcome
    return error


def test_a_fifo_is_refused_without_blocking(tmp_path):
    path = tmp_path / "model.pt"
    os.mkfifo(path)
    assert "is a FIFO (named pipe), not a regular file" in _load_or_unblock(path, fifo=path).problem


def test_a_symlink_to_dev_zero_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    path.symlink_to("/dev/zero")  # reading it would never end
    assert "is a character device, not a regular file" in _load_or_unblock(path).problem


def test_a_file_larger_than_the_memory_available_is_refused_before_reading(saved, monkeypatch):
    path, _, _ = saved
    monkeypatch.setattr(checkpoint_module, "available_bytes", lambda: 2000)
    monkeypatch.setattr(checkpoint_module.torch, "load", lambda *a, **k: pytest.fail("the file was unpickled"))
    size = path.stat().st_size
    _expect_error(path, f"the file is {format_bytes(size)}; loading it needs about twice that (its bytes, then the "
                        f"tensors), more than the 2 KB of memory available")


def test_an_archive_that_unpacks_to_more_than_the_memory_available_is_refused(tmp_path, monkeypatch):
    """torch reads compressed entries too: a small file can declare gigabytes (here 4 MB of zeros)."""
    plain, packed = tmp_path / "plain.pt", tmp_path / "packed.pt"
    torch.save({"w": torch.zeros(1_000_000)}, plain)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
    assert packed.stat().st_size < 20_000
    monkeypatch.setattr(checkpoint_module, "available_bytes", lambda: 1_000_000)
    monkeypatch.setattr(checkpoint_module.torch, "load", lambda *a, **k: pytest.fail("the archive was unpacked"))
    _expect_error(packed, "the archive unpacks to 4 MB", "more than the 1 MB of memory available")


@pytest.mark.parametrize("change, fragment", [
    ({"hidden_size": 2 ** 20}, "hidden_size=1048576, num_layers=2 needs about 53 TB of memory (1.32e+13 float32 "
                               "parameters and the activations of 1024 positions), more than the"),
    ({"embedding_dim": 10 ** 9}, "embedding_dim=1000000000, hidden_size=8, num_layers=2 needs about 4.3 TB of "
                                 "memory (3.9e+10 float32 parameters"),
    ({"embedding_dim": 1e9}, "expected embedding_dim to be a positive int, got 1000000000.0"),
    ({"num_layers": 10 ** 6}, "expected num_layers to be at most 1024, got 1000000"),
    ({"num_layers": 1e6}, "expected num_layers to be a positive int, got 1000000.0"),
    ({"hidden_size": -8}, "expected hidden_size to be a positive int, got -8"),
    ({"hidden_size": "8"}, "expected hidden_size to be a positive int, got '8'"),
    ({"hidden_size": True}, "expected hidden_size to be a positive int, got True"),
])
def test_a_config_asking_for_absurd_sizes_is_refused_before_building(saved, monkeypatch, change, fragment):
    path, _, config = saved
    payload = _payload(path)
    payload["config"] = {**config, **change}
    torch.save(payload, path)
    built = []
    real_init = torch.nn.Embedding.__init__
    monkeypatch.setattr(torch.nn.Embedding, "__init__", lambda self, *a, **k: (built.append(a), real_init(self, *a, **k)))
    _expect_error(path, "config does not build engine 'lstm': ", fragment)
    assert built == []  # refused before the first layer was built


# --- where checkpoints are written: never onto a device, FIFO or directory ------------------------------


def _special(tmp_path, kind):
    path = tmp_path / "model.pt"
    if kind == "fifo":
        os.mkfifo(path)
        return path, lambda: stat.S_ISFIFO(os.lstat(path).st_mode)
    if kind == "directory":
        path.mkdir()
        return path, path.is_dir
    path.symlink_to(os.devnull)  # never /dev/null itself: a failing test must not replace it
    return path, lambda: os.readlink(path) == os.devnull and stat.S_ISCHR(os.stat(os.devnull).st_mode)


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink to /dev/null"])
def test_a_checkpoint_is_never_written_onto_a_special_file(tiny_model, tmp_path, kind):
    model, config = tiny_model("lstm")
    path, untouched = _special(tmp_path, kind)
    with pytest.raises((ValueError, IsADirectoryError), match="not a regular file|is a directory"):
        save_checkpoint(path, model, engine="lstm", config=config, vocab=VOCAB, dataset=None, step=0, metrics={})
    assert untouched() and sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_train_refuses_a_special_output_before_any_work(tmp_path, pattern_dataset, monkeypatch):
    from lstmviz.engines import training
    from lstmviz.engines.families.language_model import objective

    path, untouched = _special(tmp_path, "symlink to /dev/null")
    monkeypatch.setattr(objective, "token_stream", lambda *a, **k: pytest.fail("training data was prepared"))
    with pytest.raises(ValueError, match="character device, not a regular file"):
        training.train("lstm", pattern_dataset(400), out=path, steps=1)
    assert untouched()


def test_a_flipped_bit_in_the_weights_is_refused(saved):
    """torch itself loads such a file without a word: the zip's CRC-32 of every entry is verified."""
    path, _, _ = saved
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        entry = next(i for i in archive.infolist() if "/data/" in i.filename and i.file_size >= 8)
    name_len, extra_len = struct.unpack("<HH", data[entry.header_offset + 26:entry.header_offset + 30])  # local header
    data[entry.header_offset + 30 + name_len + extra_len + 5] ^= 0x04  # a bit in the middle of a weight
    path.write_bytes(bytes(data))
    assert torch.load(path, weights_only=True)["state_dict"]  # torch alone: loads, with a changed weight
    _expect_error(path, f"damaged PyTorch file: the archive entry {entry.filename!r} does not match its CRC-32")
