"""Teacher-forced and free-running items of one language model in one recording (recording/free_running.py)."""

import numpy as np
import pytest
import torch

from lstmviz.cli import main
from lstmviz.datasets import load_dataset
from lstmviz.engines import registry
from lstmviz.engines.families.language_model import TokenData
from lstmviz.engines.families.language_model.free_running import sampler, unroll
from lstmviz.recording import open_recording
from lstmviz.recording.free_running import ModesDataset, parse_modes
from lstmviz.recording.recorder import record

TINY_DATA = ["--dataset-option", "tokens=3000", "--dataset-option", "item_length=40"]


def _gru(seed=0):
    torch.manual_seed(seed)  # any engine of the family: the plain GRU LM, untrained
    return registry.get("gru").build_model(TokenData(vocab_size=8), embedding_dim=6, hidden_size=10,
                                           num_layers=2).eval()


def test_both_modes_of_one_model_in_one_recording(tmp_path):
    base = load_dataset("parens", "valid", tokens=600, item_length=30)
    model = _gru()
    wrapped = ModesDataset(base, model, seed=3, max_items=5, batch_size=2)
    out = record(model, wrapped, tmp_path / "modes.h5", dtype="float32", progress=False)
    with open_recording(out) as rec:
        assert rec.n_items == 10
        modes = rec.annotation("mode")
        pairs = rec.annotation("pair")
        assert list(rec.annotations["mode"].labels) == ["teacher-forced", "free-running"]
        assert modes.tolist() == [0, 1] * 5 and pairs.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
        for source in range(5):
            tf, fr = 2 * source, 2 * source + 1
            (a, b), (c, d) = rec.item_range(tf), rec.item_range(fr)
            data = base[source].tokens
            assert rec.token_ids(a, b).tolist() == data.tolist()  # teacher-forced items read the data
            assert b - a == d - c and rec.token_ids(c, d)[0] == data[0]  # same length, same first token
            assert not np.array_equal(rec.token_ids(c, d), data)  # the model's own samples
            # the recorded free-running states are the free-running unroll's (every layer's h)
            with torch.no_grad():
                x = torch.as_tensor(data)[None]
                tf_run = unroll(model, x[0, :1], len(data), lambda logits, t: x[0, t + 1 : t + 2])
                fr_tokens = torch.as_tensor(rec.token_ids(c, d))[None]
                fr_run = unroll(model, fr_tokens[0, :1], len(data), lambda logits, t: fr_tokens[0, t + 1 : t + 2])
            h_fr = np.concatenate([rec.states(f"layer{l}/h", c, d) for l in range(2)], axis=1)
            assert np.allclose(h_fr, fr_run.hidden[:, 0].numpy(), atol=1e-5)
            want = (tf_run.hidden - fr_run.hidden)[:, 0].norm(dim=1).numpy()
            assert np.allclose(rec.annotation("tf_fr_distance", a, b), want, atol=1e-5)
            assert np.array_equal(rec.annotation("tf_fr_distance", a, b), rec.annotation("tf_fr_distance", c, d))
            assert np.all(rec.annotation("depth", c, d) == -1)  # the data's labels do not describe samples
            assert np.array_equal(rec.annotation("depth", a, b), base[source].annotations["depth"])


def test_free_running_samples_are_seeded_and_sampled_not_argmax():
    base = load_dataset("parens", "valid", tokens=600, item_length=30)
    model = _gru()
    one, again = (ModesDataset(base, model, ("free-running",), seed=1, max_items=4) for _ in range(2))
    other = ModesDataset(base, model, ("free-running",), seed=2, max_items=4)
    assert len(one) == 4 and all(np.array_equal(one[i].tokens, again[i].tokens) for i in range(4))
    assert any(not np.array_equal(one[i].tokens, other[i].tokens) for i in range(4))
    with torch.no_grad():  # an argmax decoder gives one answer per first token; the samples differ from it
        first = torch.as_tensor([one[i].tokens[0] for i in range(4)])
        greedy = unroll(model, first, 30, lambda logits, t: logits.argmax(-1)).tokens.numpy()
        seeded = unroll(model, first, 30, sampler(torch.Generator().manual_seed(1))).tokens.numpy()
    assert not np.array_equal(greedy, np.stack([one[i].tokens[:30] for i in range(4)]))
    assert seeded.shape == greedy.shape


def test_parse_modes_names_the_known_ones():
    assert parse_modes("teacher-forced, free-running") == ("teacher-forced", "free-running")
    with pytest.raises(ValueError, match="teacher-forced, free-running"):
        parse_modes("teacher,free")


def test_train_pf_gru_then_record_both_modes_from_the_command_line(tmp_path):
    ckpt = tmp_path / "pf.pt"
    assert main(["train", "pf-gru", "--dataset", "parens", "--steps", "4", "--out", str(ckpt), "--quiet",
                 "--train", "batch_size=4", "--train", "bptt=10", *TINY_DATA,
                 "--set", "hidden_size=8", "--set", "embedding_dim=4", "--set", "disc_hidden=4",
                 "--set", "adversary_gate=0"]) == 0
    out = tmp_path / "pf.h5"
    assert main(["record", str(ckpt), "--modes", "teacher-forced,free-running", "--max-items", "3", "--out",
                 str(out), "--quiet", "--split", "valid", *TINY_DATA]) == 0
    data = load_dataset("parens", "valid", tokens=3000, item_length=40)
    with open_recording(out) as rec:
        assert rec.n_items == 6 and sorted(rec.taps) == ["layer0/gates/n", "layer0/gates/r", "layer0/gates/z",
                                                          "layer0/h"]  # no discriminator signals
        assert rec.annotation("mode").tolist() == [0, 1, 0, 1, 0, 1]
        for source in range(3):
            a, b = rec.item_range(2 * source)
            assert rec.token_ids(a, b).tolist() == data[source].tokens.tolist()
        assert rec.provenance["dataset_details"]["modes"]["modes"] == ["teacher-forced", "free-running"]
    assert main(["record", str(ckpt), "--modes", "greedy", "--out", str(tmp_path / "x.h5"), "--quiet",
                 *TINY_DATA]) == 2


def test_modes_on_a_model_that_is_no_language_model_is_refused_in_words(tmp_path, capsys):
    out = tmp_path / "s2s.h5"
    assert main(["record", "seq2seq-attn", "--dataset", "reverse", "--modes", "teacher-forced,free-running",
                 "--out", str(out), "--quiet", "--max-items", "2"]) == 2
    err = capsys.readouterr().err
    assert "--modes applies to language models" in err and "seq2seq" in err and not out.exists()
