"""The shared training loop: it learns, it is deterministic, it cancels cleanly, it says what is wrong."""

from __future__ import annotations

import math
import os

import pytest
import torch

from lstmviz.engines import ConfigError, UnknownName
from lstmviz.engines.checkpoint import load_checkpoint
from lstmviz.engines.families.language_model.objective import batchify, evaluate
from lstmviz.engines.training import train
from lstmviz.tasks import Cancelled, Task

TINY = {"embedding_dim": 8, "hidden_size": 16, "num_layers": 1}
FAST = {"batch_size": 4, "bptt": 10, "lr": 1e-2, "dropout": 0.0, "eval_every": 0}


def test_loss_falls_far_below_the_initial_loss_on_a_repeating_pattern(pattern_dataset, tmp_path):
    train_set, valid_set = pattern_dataset(2000), pattern_dataset(400, split="valid")
    metrics = train("lstm", train_set, valid_set, out=tmp_path / "m.pt", steps=150, config=TINY, **FAST)
    chance = math.log(len(train_set.vocab))
    assert metrics["first_train_loss"] == pytest.approx(chance, rel=0.1)
    assert metrics["train_loss"] < 0.2 * metrics["first_train_loss"]
    assert metrics["best_valid_loss"] < 0.2 * chance and metrics["best_valid_ppl"] < 1.5
    assert metrics["steps"] == 150 and metrics["tokens"] == 150 * 4 * 10 and metrics["tokens_per_s"] > 0


def test_sgd_learns_too(pattern_dataset, tmp_path):
    metrics = train("gru", pattern_dataset(2000), out=tmp_path / "m.pt", steps=60, config=TINY,
                    **{**FAST, "optimizer": "sgd", "lr": 1.0})
    assert metrics["train_loss"] < 0.7 * metrics["first_train_loss"]
    assert metrics["best_valid_loss"] is None and metrics["valid_ppl"] is None


def test_the_checkpoint_holds_the_trained_model(pattern_dataset, tmp_path):
    train_set, valid_set = pattern_dataset(600), pattern_dataset(200, split="valid")
    out = tmp_path / "sub" / "m.pt"
    metrics = train("lstm", train_set, valid_set, out=out, steps=6, config=TINY, **{**FAST, "dropout": 0.2})
    model, meta = load_checkpoint(out)
    assert meta["engine"] == "lstm" and meta["step"] == 6 and meta["dataset"] == "pattern"
    assert meta["vocab"] == train_set.vocab and meta["metrics"] == metrics
    assert meta["config"] == {**TINY, "init_range": 0.1, "embedding_dim": 8, "dropout": 0.2}
    assert meta["train_settings"]["bptt"] == 10 and meta["train_settings"]["optimizer"] == "adam"
    valid = batchify(torch.as_tensor(valid_set.token_stream()), 4)
    assert evaluate(model, valid, 10) == metrics["valid_loss"]  # the very weights that were validated
    assert sorted(os.listdir(out.parent)) == ["m.pt"]


def test_state_is_carried_detached_between_segments_and_reset_at_each_epoch(pattern_dataset, tmp_path, monkeypatch):
    """Stateful truncated BPTT: 600 tokens in 4 rows of 150 = 14 segments of bptt 10 per epoch."""
    from lstmviz.engines.recurrent.language_model import RecurrentLanguageModel

    calls = []
    forward = RecurrentLanguageModel.forward

    def spy(self, tokens, state=None):
        logits, new_state = forward(self, tokens, state)
        calls.append((tokens, state, new_state))
        return logits, new_state

    monkeypatch.setattr(RecurrentLanguageModel, "forward", spy)
    data = pattern_dataset(600)
    train("gru", data, out=tmp_path / "m.pt", steps=16, config=TINY, **FAST)
    assert len(calls) == 16
    rows = torch.as_tensor(data.ids).reshape(4, 150)
    for k, (tokens, state, _) in enumerate(calls):
        epoch_step = k % 14
        assert torch.equal(tokens, rows[:, 10 * epoch_step : 10 * epoch_step + 10])
        if epoch_step == 0:
            assert state is None  # a new epoch starts from a zero state
        else:
            previous = calls[k - 1][2]
            assert all(torch.equal(a, b) for a, b in zip(state, previous, strict=True))  # carried
            assert all(s.grad_fn is None and not s.requires_grad for s in state)  # and detached
            assert previous[0].grad_fn is not None


def test_same_seed_same_weights_other_seed_other_weights_and_caller_rng_untouched(pattern_dataset, tmp_path):
    data = pattern_dataset(600)
    settings = {**FAST, "dropout": 0.3}
    torch.manual_seed(123)
    rng_before = torch.get_rng_state()
    runs = [train("lstm", data, out=tmp_path / f"{i}.pt", steps=5, seed=s, config=TINY, **settings)
            for i, s in enumerate((7, 7, 8))]
    assert torch.equal(torch.get_rng_state(), rng_before)
    weights = [load_checkpoint(tmp_path / f"{i}.pt")[0].state_dict() for i in range(3)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert runs[0]["train_loss"] == runs[1]["train_loss"]
    assert not torch.equal(weights[0]["decoder.weight"], weights[2]["decoder.weight"])


def test_threads_setting_applies_during_training_only(pattern_dataset, tmp_path, monkeypatch):
    from lstmviz.engines.recurrent.language_model import RecurrentLanguageModel

    seen = []
    forward = RecurrentLanguageModel.forward
    monkeypatch.setattr(RecurrentLanguageModel, "forward",
                        lambda self, *a: (seen.append(torch.get_num_threads()), forward(self, *a))[1])
    torch.set_num_threads(2)
    train("lstm", pattern_dataset(600), out=tmp_path / "m.pt", steps=2, config=TINY, **{**FAST, "threads": 1})
    assert seen == [1, 1] and torch.get_num_threads() == 2


def test_progress_reports_every_step_with_the_loss(pattern_dataset, tmp_path):
    calls = []
    task = Task(on_progress=lambda done, total, message: calls.append((done, total, message)))
    train("gru", pattern_dataset(600), pattern_dataset(200), out=tmp_path / "m.pt", steps=4, task=task,
          config=TINY, **{**FAST, "eval_every": 2})
    assert [(d, t) for d, t, _ in calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(m.startswith("loss ") for _, _, m in calls)
    assert "valid ppl" not in calls[0][2] and "valid ppl" in calls[1][2]


def _cancel_at(step):
    task = Task(on_progress=lambda done, total, message: task.cancel() if done == step else None)
    return task


def test_cancel_writes_nothing_and_keeps_a_previous_file(pattern_dataset, tmp_path):
    out = tmp_path / "m.pt"
    with pytest.raises(Cancelled):
        train("lstm", pattern_dataset(600), out=out, steps=50, task=_cancel_at(3), config=TINY, **FAST)
    assert list(tmp_path.iterdir()) == []
    out.write_bytes(b"the previous checkpoint")
    with pytest.raises(Cancelled):
        train("lstm", pattern_dataset(600), out=out, steps=50, task=_cancel_at(3), config=TINY, **FAST)
    assert out.read_bytes() == b"the previous checkpoint" and sorted(os.listdir(tmp_path)) == ["m.pt"]


def test_cancel_after_a_periodic_checkpoint_leaves_that_complete_checkpoint(pattern_dataset, tmp_path):
    out = tmp_path / "m.pt"
    calls = []
    task = Task(on_progress=lambda done, total, message: (calls.append(done), done == 5 and task.cancel()))
    with pytest.raises(Cancelled):
        train("lstm", pattern_dataset(600), out=out, steps=50, task=task, config=TINY,
              **{**FAST, "checkpoint_every": 2})
    assert calls == [1, 2, 3, 4, 5]
    _, meta = load_checkpoint(out)
    assert meta["step"] == 4 and meta["metrics"]["steps"] == 4
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]


def test_an_already_cancelled_task_stops_before_any_step(pattern_dataset, tmp_path):
    task = Task()
    task.cancel()
    with pytest.raises(Cancelled):
        train("lstm", pattern_dataset(600), out=tmp_path / "m.pt", steps=5, task=task, config=TINY, **FAST)
    assert task.done == 0 and list(tmp_path.iterdir()) == []


def test_clear_errors(pattern_dataset, tmp_path):
    data, out = pattern_dataset(600), tmp_path / "m.pt"
    with pytest.raises(UnknownName, match=r"unknown engine 'lstn'; available: (.*, )?gru, (.*, )?lstm"):
        train("lstn", data, out=out)
    with pytest.raises(ValueError, match=r"training data too small: 40 tokens.*batch_size=4 x \(bptt=10 \+ 1\) = 44"):
        train("lstm", pattern_dataset(40), out=out, steps=1, config=TINY, **FAST)
    with pytest.raises(ConfigError, match=r"unknown training setting 'learning_rate'; known: .*batch_size.*lr"):
        train("lstm", data, out=out, learning_rate=0.1)
    with pytest.raises(ConfigError, match=r"unknown hyperparameter 'hidden'.*known: .*hidden_size"):
        train("lstm", data, out=out, config={"hidden": 3})
    with pytest.raises(ConfigError, match=r"dropout is a training setting"):
        train("lstm", data, out=out, config={"dropout": 0.5})
    with pytest.raises(ConfigError, match=r"'optimizer': expected one of adam, sgd, kfac, ekfac, got 'rmsprop'"):
        train("lstm", data, out=out, optimizer="rmsprop")
    with pytest.raises(ConfigError, match=r"'batch_size': expected a positive int, got 0"):
        train("lstm", data, out=out, batch_size=0)
    data.ids[5] = 99
    with pytest.raises(ValueError, match=r"expected token ids in \[0, 6\).*got ids from 1 to 99"):
        train("lstm", data, out=out, steps=1, config=TINY, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_keep_checkpoints_keeps_the_initial_every_periodic_and_the_final_checkpoint(pattern_dataset, tmp_path):
    from lstmviz.engines.training import kept_checkpoint_path

    out = tmp_path / "run.pt"
    metrics = train("lstm", pattern_dataset(600), out=out, steps=5, config=TINY,
                    **{**FAST, "checkpoint_every": 2, "keep_checkpoints": 1})
    assert sorted(os.listdir(tmp_path)) == ["run-step000000.pt", "run-step000002.pt", "run-step000004.pt",
                                            "run-step000005.pt", "run.pt"]
    assert kept_checkpoint_path(out, 2) == tmp_path / "run-step000002.pt"
    models = {}
    for step in (0, 2, 4, 5):
        models[step], meta = load_checkpoint(tmp_path / f"run-step{step:06d}.pt")
        assert meta["step"] == step and meta["metrics"]["steps"] == step
        assert meta["train_settings"]["keep_checkpoints"] is True
    assert load_checkpoint(tmp_path / "run-step000000.pt")[1]["metrics"]["train_loss"] is None  # before training
    final, meta = load_checkpoint(out)
    assert meta["step"] == 5 and meta["metrics"] == metrics
    runs = {load_checkpoint(tmp_path / name)[1]["run"] for name in os.listdir(tmp_path)}
    assert len(runs) == 1 and len(runs.pop()) == 32  # one run id on every checkpoint of the run
    train("lstm", pattern_dataset(600), out=tmp_path / "again.pt", steps=1, config=TINY, **FAST)
    assert load_checkpoint(tmp_path / "again.pt")[1]["run"] != meta["run"]  # another run, another id
    weights = {step: m.state_dict()["decoder.weight"] for step, m in models.items()}
    assert torch.equal(weights[5], final.state_dict()["decoder.weight"])
    assert not torch.equal(weights[0], weights[2]) and not torch.equal(weights[2], weights[4])


def test_keep_checkpoints_is_off_by_default_and_checked(pattern_dataset, tmp_path):
    train("lstm", pattern_dataset(600), out=tmp_path / "m.pt", steps=2, config=TINY, **{**FAST, "checkpoint_every": 1})
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]
    with pytest.raises(ConfigError, match=r"'keep_checkpoints': expected a bool \(true/false or 1/0\), got 2"):
        train("lstm", pattern_dataset(600), out=tmp_path / "m.pt", steps=2, config=TINY, **{**FAST, "keep_checkpoints": 2})


def test_a_classification_objective_reports_its_loss_not_a_perplexity(tmp_path):
    """exp(loss) is a perplexity only for next-token prediction: the graph family's progress says
    "valid loss", and its metrics have no perplexity."""
    from datasets import load_dataset

    messages = []
    task = Task(on_progress=lambda done, total, message: messages.append(message))
    metrics = train("chebnet", load_dataset("karate", "train"), load_dataset("karate", "valid"),
                    out=tmp_path / "k.pt", task=task, steps=3, eval_every=1)
    assert metrics["valid_loss"] is not None and metrics["valid_ppl"] is None and metrics["best_valid_ppl"] is None
    assert any("valid loss" in m for m in messages) and not any("ppl" in m for m in messages)
