"""Kim & Rush's knowledge distillation (engines/seq2seq/distill.py), defining tests of models_recurrent.md
§15 (c): word-KD equals NLL under a one-hot teacher; the seq-KD builder returns the teacher's beam
outputs, not the references; and both modes wired into the seq2seq family's training settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lstmviz.datasets import load_dataset
from lstmviz.engines import registry
from lstmviz.engines.checkpoint import save_checkpoint
from lstmviz.engines.families import registry as families
from lstmviz.engines.families.seq2seq import Seq2SeqData
from lstmviz.engines.families.seq2seq.api import batch_pairs
from lstmviz.engines.seq2seq.distill import seq_kd_pairs, teacher_distribution, word_kd_loss
from lstmviz.engines.spec import ConfigError
from lstmviz.engines.training import resolve_train_settings, train

PAD = 0


def _logits_and_targets(seed=0, B=3, T=5, V=7):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=g, dtype=torch.float64)
    tgt = torch.randint(3, V, (B, T), generator=g)
    tgt[0, 3:] = PAD  # ragged: pads are not scored
    tgt[1, 4:] = PAD
    return logits, tgt


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_word_kd_equals_nll_when_the_teacher_is_one_hot(alpha):
    logits, tgt = _logits_and_targets()
    one_hot = F.one_hot(tgt, logits.shape[-1]).to(logits.dtype)
    loss, nll, kd = word_kd_loss(logits, one_hot, tgt, alpha)
    reference = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=PAD)
    assert torch.allclose(nll, reference, atol=1e-12) and torch.allclose(kd, reference, atol=1e-12)
    assert torch.allclose(loss, reference, atol=1e-12)


def test_word_kd_is_the_cross_entropy_to_the_teacher_and_interpolates():
    logits, tgt = _logits_and_targets(seed=1)
    q = torch.softmax(torch.randn_like(logits), -1)
    loss, nll, kd = word_kd_loss(logits, q, tgt, 0.25)
    scored = tgt != PAD
    expected_kd = -(q * torch.log_softmax(logits, -1)).sum(-1)[scored].mean()
    assert torch.allclose(kd, expected_kd, atol=1e-12)
    assert not torch.allclose(kd, nll)  # a soft teacher is not the reference
    assert torch.allclose(loss, 0.75 * nll + 0.25 * kd, atol=1e-12)
    with pytest.raises(ValueError, match="alpha"):
        word_kd_loss(logits, q, tgt, 1.5)


class StubTeacher:
    """A deterministic 'teacher': its beam output is the source reversed, then token 3 (never a reference)."""

    def __init__(self):
        self.beams = []

    def beam_search(self, src, src_lengths, beam=5, max_len=None):
        self.beams.append(beam)
        return [src[b, : int(n)].flip(0).tolist() + [3] for b, n in enumerate(src_lengths)]


def test_the_seq_kd_builder_returns_the_teachers_beam_outputs_not_the_references():
    pairs = [([4, 5, 6], [7, 7]), ([5], [8, 9, 4]), ([6, 4], [])]
    teacher = StubTeacher()
    got = seq_kd_pairs(teacher, pairs, beam=5, batch_size=2)
    assert [s.tolist() for s, _ in got] == [[4, 5, 6], [5], [6, 4]]
    assert [t.tolist() for _, t in got] == [[6, 5, 4, 3], [5, 3], [4, 6, 3]]
    assert all(t.tolist() != list(ref) for (_, t), (_, ref) in zip(got, pairs))
    assert teacher.beams == [5, 5]  # beam 5, two batches


CONFIG = {"embedding_size": 4, "hidden_size": 6, "num_layers": 1, "init_range": 0.5}


def _tiny_model(dataset, **config):
    torch.manual_seed(3)
    config = {**CONFIG, **config}
    return registry.get("seq2seq-attn").build_model(Seq2SeqData(vocab_size=len(dataset.vocab)), **config), config


def _tiny_teacher(tmp_path, dataset):
    model, config = _tiny_model(dataset)
    path = tmp_path / "teacher.pt"
    save_checkpoint(path, model, engine="seq2seq-attn", config=config, vocab=list(dataset.vocab), dataset="reverse",
                    step=0, metrics={}, family="seq2seq")
    return model.eval(), path


def _objective(settings_overrides, dataset):
    family = families.get("seq2seq")
    settings = resolve_train_settings(family, {}, {"batch_size": 4, **settings_overrides})
    objective = family.make_objective()
    objective.prepare(dataset, None, settings, torch.device("cpu"))
    return objective


def test_distill_seq_trains_on_the_real_teachers_beam_outputs(tmp_path):
    data = load_dataset("reverse", "train", items=6, symbols=4, max_length=5)
    teacher, path = _tiny_teacher(tmp_path, data)
    objective = _objective({"distill": "seq", "teacher": str(path), "distill_beam": 3}, data)
    batch = batch_pairs(data.pairs())
    with torch.no_grad():
        expected = teacher.beam_search(batch.src, batch.src_lengths, beam=3)
    assert [t.tolist() for _, t in objective.train_pairs] == expected
    assert expected != [list(t) for _, t in data.pairs()]  # an untrained teacher does not reverse


def test_distill_word_steps_on_the_teachers_distribution(tmp_path):
    data = load_dataset("reverse", "train", items=4, symbols=4, max_length=5)
    teacher, path = _tiny_teacher(tmp_path, data)
    objective = _objective({"distill": "word", "teacher": str(path), "distill_alpha": 0.4, "batch_size": 4}, data)
    student = _tiny_model(data, hidden_size=5)[0].train()
    state = np.random.default_rng(0).bit_generator.state
    objective.rng.bit_generator.state = state
    loss, count = objective.train_step(student)
    objective.rng.bit_generator.state = state
    objective.order = []
    batch = objective._next_batch()
    q = teacher_distribution(teacher, batch.src, batch.src_lengths, batch.tgt_in)
    expected, _, _ = word_kd_loss(student(batch.src, batch.src_lengths, batch.tgt_in), q, batch.tgt_out, 0.4)
    assert torch.allclose(loss, expected) and count == int((batch.tgt_out != PAD).sum())
    assert loss.requires_grad and all(not p.requires_grad for p in objective.teacher.parameters())


def test_distillation_settings_are_checked(tmp_path):
    family = families.get("seq2seq")
    with pytest.raises(ConfigError, match="needs a teacher"):
        resolve_train_settings(family, {}, {"distill": "seq"})
    with pytest.raises(ConfigError, match="none, word or seq"):
        resolve_train_settings(family, {}, {"distill": "sentence", "teacher": "t.pt"})
    with pytest.raises(ConfigError, match="distill_alpha"):
        resolve_train_settings(family, {}, {"distill": "word", "teacher": "t.pt", "distill_alpha": 2})
    data = load_dataset("translit", "train", items=4)
    _, path = _tiny_teacher(tmp_path, load_dataset("reverse", "train", items=4))
    with pytest.raises(ValueError, match="another vocabulary"):
        _objective({"distill": "word", "teacher": str(path)}, data)


def test_train_with_word_kd_writes_the_teacher_into_the_checkpoint(tmp_path):
    data = load_dataset("reverse", "train", items=8, symbols=4, max_length=5)
    valid = load_dataset("reverse", "valid", items=4, symbols=4, max_length=5)
    _, path = _tiny_teacher(tmp_path, data)
    metrics = train("seq2seq-attn", data, valid, out=tmp_path / "student.pt", steps=3, batch_size=4,
                    config={"embedding_size": 4, "hidden_size": 5, "num_layers": 1}, distill="word",
                    teacher=str(path))
    assert len(metrics["distill_teacher_sha256"]) == 64 and metrics["valid_exact"] is not None
    payload = torch.load(tmp_path / "student.pt", weights_only=True)
    assert payload["train_settings"]["distill"] == "word" and payload["train_settings"]["teacher"] == str(path)


def test_per_step_kl_is_zero_for_the_teacher_itself_and_positive_otherwise():
    from lstmviz.engines.seq2seq.distill import per_step_kl

    logits, _ = _logits_and_targets(seed=2)
    q = torch.softmax(logits, -1)
    assert torch.allclose(per_step_kl(logits, q), torch.zeros(logits.shape[:2], dtype=logits.dtype), atol=1e-12)
    kl = per_step_kl(logits + torch.randn_like(logits), q)
    assert kl.shape == logits.shape[:2] and bool((kl > 0).all())
