"""Crafted and damaged checkpoints: refused in one sentence, never run code, hang, or load wrong weights.

A seeded generator makes about 150 checkpoint files from one small valid one: pickles that would
run code if unpickled, payloads with wrong types, configs asking for absurd sizes, wrong tensors,
truncated archives and bit flips. Each is loaded with ``load_checkpoint`` under an alarm. Allowed:

* a ``CheckpointError`` whose text is ``"<path>: <problem>"`` — no other exception;
* for bit flips only: a model whose weights and metadata equal the original's (the flip hit bytes
  nothing reads; the archive's CRC-32 of every entry is verified, so a flip in a weight is refused).

No case may create the marker file the payloads try to write (code ran), or outlast the alarm.
torch parses these files in Python and C++ that returns to the interpreter often, so an in-process
``SIGALRM`` interrupts a loop; opening a FIFO, the one C call that would block, is refused first.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import signal
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmviz.engines.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

SEED = 20240611
CASE_TIMEOUT_S = 20
VOCAB = ["<pad>", "(", ")", "a", "b", "c", "d"]
CONFIG = {"embedding_dim": 6, "hidden_size": 8, "num_layers": 2, "dropout": 0.0, "init_range": 0.1}


# --- payloads that run code when unpickled ------------------------------------------------------------


class _Reduce:
    """Unpickles as ``func(*args)``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _global_call(module: str, name: str, arg: str, protocol: int) -> bytes:
    """A hand-written pickle calling ``module.name(arg)`` (GLOBAL opcode for 0-3, STACK_GLOBAL for 4-5)."""
    if protocol < 4:
        body = f"c{module}\n{name}\n(V{arg}\ntR.".encode()
        return (b"\x80" + bytes([protocol]) if protocol >= 2 else b"") + body
    text = pickle.dumps(None, protocol=protocol)[:2]
    parts = [pickle.SHORT_BINUNICODE + bytes([len(module)]) + module.encode(),
             pickle.SHORT_BINUNICODE + bytes([len(name)]) + name.encode(), pickle.STACK_GLOBAL,
             pickle.SHORT_BINUNICODE + bytes([len(arg)]) + arg.encode(), pickle.TUPLE1, pickle.REDUCE, pickle.STOP]
    data = text + b"".join(parts)
    pickletools.dis(data, out=io.StringIO())  # well-formed
    return data


def _zip_with_pickle(valid: bytes, pkl: bytes) -> bytes:
    """A copy of a torch archive whose ``data.pkl`` is ``pkl``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(valid)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, pkl if info.filename.endswith("data.pkl") else src.read(info.filename))
    return out.getvalue()


def code_cases(valid: bytes, marker: Path) -> dict[str, bytes]:
    touch = f"import pathlib; pathlib.Path({str(marker)!r}).touch()"
    shell = f"touch {marker}"
    cases = {}
    for protocol in range(0, 6):
        cases[f"os.system, protocol {protocol}"] = _global_call("os", "system", shell, protocol)
        cases[f"builtins.exec, protocol {protocol}"] = _global_call("builtins", "exec", touch, protocol)
    cases["posix.system"] = _global_call("posix", "system", shell, 2)
    cases["subprocess.getoutput"] = _global_call("subprocess", "getoutput", shell, 4)
    cases["builtins.eval"] = _global_call("builtins", "eval", f"exec({touch!r})", 2)
    cases["builtins.open for writing"] = pickle.dumps(_Reduce(open, str(marker), "w"), protocol=2)
    cases["torch.load of another file"] = _global_call("torch", "load", str(marker), 2)
    cases["os.system in a torch archive"] = _zip_with_pickle(valid, _global_call("os", "system", shell, 2))
    for where in ("top level", "config", "state_dict", "metrics"):
        payload = torch.load(io.BytesIO(valid), weights_only=True)
        evil = _Reduce(exec, touch)
        if where == "top level":
            payload = evil
        elif where == "state_dict":
            payload["state_dict"]["decoder.bias"] = evil
        else:
            payload[where]["x"] = evil
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        cases[f"code in the {where} of a torch archive"] = buffer.getvalue()
    legacy = io.BytesIO()
    torch.save({"format": "lstmviz-checkpoint", "x": _Reduce(exec, touch)}, legacy, _use_new_zipfile_serialization=False)
    cases["code in a legacy (pre-zip) torch file"] = legacy.getvalue()
    script = io.BytesIO()
    with warnings.catch_warnings():  # TorchScript is deprecated; its archives still exist and are refused
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), script)
    cases["a TorchScript archive"] = script.getvalue()
    return cases


# --- payloads with wrong contents ---------------------------------------------------------------------


def edited(valid: bytes, edit) -> bytes:
    payload = torch.load(io.BytesIO(valid), weights_only=True)
    payload = edit(payload) or payload
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def _set(key, value):
    return lambda p: p.__setitem__(key, value)


def _config(**change):
    return lambda p: p["config"].update(change)


def _tensor(name, value):
    return lambda p: p["state_dict"].__setitem__(name, value)


def _short(value) -> str:
    return f"2**{value.bit_length() - 1}+" if isinstance(value, int) and value > 10 ** 15 else repr(value)


CONTENT_CASES = {
    "a list": lambda p: [1, 2, 3],
    "a bare state_dict": lambda p: p["state_dict"],
    "no format marker": _set("format", "something-else"),
    "version a string": _set("version", "1"),
    "version a bool": _set("version", True),
    "version 99": _set("version", 99),
    "no vocab": lambda p: (p.pop("vocab"), None)[1],
    "no state_dict": lambda p: (p.pop("state_dict"), None)[1],
    "engine an int": _set("engine", 3),
    "engine unknown": _set("engine", "../lstm"),
    "config a list": _set("config", [1, 2]),
    "config None": _set("config", None),
    "config with int keys": _set("config", {1: 2}),
    "vocab a dict": _set("vocab", {"a": 1}),
    "vocab of ints": _set("vocab", list(range(7))),
    "vocab empty": _set("vocab", []),
    "vocab nested": _set("vocab", [["a"]] * 7),
    "vocab longer than the model's": _set("vocab", VOCAB + ["e"]),
    "step a string": _set("step", "10"),
    "step a float": _set("step", 10.0),
    "step a bool": _set("step", True),
    "step negative": _set("step", -3),
    "metrics a list": _set("metrics", [1]),
    "dataset a list": _set("dataset", ["parens"]),
    "train_settings a list": _set("train_settings", [("steps", 3)]),
    "versions a string": _set("versions", "2.0"),
    "run an int": _set("run", 7),
    "created a dict": _set("created", {"y": 2026}),
    "state_dict a list": _set("state_dict", [1]),
    "state_dict with a string": _tensor("decoder.bias", "zeros"),
    "state_dict with an int key": lambda p: p["state_dict"].__setitem__(5, torch.zeros(1)),
    "a missing weight": lambda p: (p["state_dict"].pop("decoder.bias"), None)[1],
    "an extra weight": _tensor("decoder.extra", torch.zeros(3)),
    "a weight of the wrong shape": _tensor("decoder.bias", torch.zeros(8)),
    "a weight with a wrong number of dimensions": _tensor("decoder.weight", torch.zeros(7 * 8)),
    "a complex weight": _tensor("decoder.bias", torch.zeros(7, dtype=torch.complex64)),
    "a sparse weight": _tensor("decoder.bias", torch.zeros(7).to_sparse()),
    "a scalar weight": _tensor("decoder.bias", torch.tensor(1.0)),
    # configs asking for absurd sizes
    **{f"config {k}={_short(v)}": _config(**{k: v}) for k, v in [
        ("hidden_size", 2 ** 20), ("hidden_size", 2 ** 40), ("hidden_size", 10 ** 100), ("hidden_size", 10 ** 5000),
        ("embedding_dim", 10 ** 9),
        ("embedding_dim", 1e9), ("num_layers", 10 ** 6), ("num_layers", 1e6), ("num_layers", 0),
        ("hidden_size", -1), ("hidden_size", "128"), ("hidden_size", None), ("hidden_size", [8]),
        ("hidden_size", {"n": 8}), ("embedding_dim", float("inf")), ("embedding_dim", float("nan")),
        ("dropout", 5.0), ("dropout", "0.1"), ("init_range", -1.0), ("init_range", float("nan")),
        ("attention_heads", 4)]},
}


# --- running the cases --------------------------------------------------------------------------------


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def outcome(path: Path, truth) -> dict:
    """Load ``path`` under an alarm and classify the result."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_TIMEOUT_S)
    try:
        model, meta = load_checkpoint(path)
    except _Timeout:
        return {"outcome": "hang"}
    except CheckpointError as e:
        well_formed = type(e) is CheckpointError and e.problem.strip() and str(e) == f"{path}: {e.problem}"
        return {"outcome": "refused" if well_formed else "badly refused", "message": str(e)}
    except BaseException as e:  # noqa: BLE001 - what the test exists to find
        return {"outcome": "crash", "message": f"{type(e).__name__}: {e}"}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    true_state, true_meta = truth
    state = model.state_dict()
    same_weights = state.keys() == true_state.keys() and all(torch.equal(state[k], true_state[k]) for k in state)
    same_meta = {k: v for k, v in meta.items() if k not in ("path", "sha256")} == true_meta
    return {"outcome": "same" if same_weights and same_meta else "wrong",
            "message": f"weights equal: {same_weights}, metadata equal: {same_meta}"}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    from lstmviz.engines import build_engine

    torch.manual_seed(0)
    model = build_engine("lstm", vocab_size=len(VOCAB), **CONFIG)
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt", model, engine="lstm", config=CONFIG,
                           vocab=VOCAB, dataset="parens", step=3, metrics={"train_loss": 1.5})
    model, meta = load_checkpoint(path)
    truth = (model.state_dict(), {k: v for k, v in meta.items() if k not in ("path", "sha256")})
    return path.read_bytes(), truth


def _run(cases: dict[str, bytes], tmp_path, truth) -> dict[str, dict]:
    results = {}
    for i, (name, data) in enumerate(cases.items()):
        path = tmp_path / f"case{i}.pt"
        path.write_bytes(data)
        results[name] = outcome(path, truth)
        path.unlink()
    return results


def test_pickles_that_would_run_code_are_refused_and_never_run(base, tmp_path):
    valid, truth = base
    marker = tmp_path / "code-ran"
    results = _run(code_cases(valid, marker), tmp_path, truth)
    assert len(results) >= 20
    assert not marker.exists(), "a payload ran"
    bad = {k: v for k, v in results.items() if v["outcome"] != "refused"}
    assert bad == {}
    said = ("not unpickled for safety", "neither a torch zip archive nor a pickle", "a TorchScript archive")
    assert all(any(words in v["message"] for words in said) for v in results.values()), results


def test_payloads_with_wrong_contents_are_refused(base, tmp_path):
    valid, truth = base
    cases = {name: edited(valid, edit) for name, edit in CONTENT_CASES.items()}
    results = _run(cases, tmp_path, truth)
    bad = {k: v for k, v in results.items() if v["outcome"] != "refused"}
    assert bad == {}
    assert "needs about 53 TB of memory" in results["config hidden_size=1048576"]["message"]
    assert "expected hidden_size to be at most 2**40, got about 2**332" in results["config hidden_size=2**332+"][
        "message"]
    assert all("weights_only" not in r["message"] for r in results.values())  # never torch's advice to turn it off


def test_truncated_archives_are_refused(base, tmp_path):
    valid, truth = base
    rng = np.random.default_rng(SEED)
    cuts = sorted({0, 1, 4, 30, len(valid) - 1, len(valid) - 22, *rng.integers(1, len(valid), 24).tolist()})
    results = _run({f"cut at {c}": valid[:c] for c in cuts}, tmp_path, truth)
    bad = {k: v for k, v in results.items() if v["outcome"] != "refused"}
    assert len(results) >= 25 and bad == {}


def test_bit_flips_are_refused_or_change_nothing_that_is_read(base, tmp_path):
    valid, truth = base
    rng = np.random.default_rng(SEED + 1)
    cases = {}
    for i in range(60):
        data = bytearray(valid)
        for p in rng.integers(0, len(data), int(rng.integers(1, 6))):
            data[int(p)] ^= 1 << int(rng.integers(0, 8))
        cases[f"flips #{i}"] = bytes(data)
    results = _run(cases, tmp_path, truth)
    bad = {k: v for k, v in results.items() if v["outcome"] not in ("refused", "same")}
    assert bad == {}
    assert sum(v["outcome"] == "refused" for v in results.values()) >= 40  # most flips hit something read
