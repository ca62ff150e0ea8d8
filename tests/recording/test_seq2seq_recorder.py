"""Recording a seq2seq model: source tokens on the main axis, decoder steps (with their own tokens) on the
axis ``decoder``, the attention tap whose units are source positions, decoding modes, annotations, the
optional ``/axes/<axis>/tokens`` dataset (writer, reader, validation) and ``attention_matrix``."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from lstmviz.analysis.attention import attention_matrix
from lstmviz.datasets import load_dataset
from lstmviz.engines import registry
from lstmviz.engines.families.seq2seq import Seq2SeqData
from lstmviz.engines.families.seq2seq.api import batch_pairs
from lstmviz.hooks import HookScope, find_taps
from lstmviz.recording import open_recording
from lstmviz.recording.format import RecordingError
from lstmviz.recording.seq2seq_recorder import record_seq2seq
from lstmviz.recording.writer import RecordingWriter

EOS = 2


@pytest.fixture(scope="module")
def data():
    return load_dataset("reverse", "test", items=9, max_length=7)


def model_for(dataset, seed=0, init_range=0.5):
    torch.manual_seed(seed)
    spec = registry.get("seq2seq-attn")
    config = {"embedding_size": 6, "hidden_size": 8, "num_layers": 2, "init_range": init_range}
    return spec.build_model(Seq2SeqData(vocab_size=len(dataset.vocab)), **config).eval()


def alone(model, src, feed):
    """Every tap of one pair run alone, teacher forced on <bos> + feed: {tap: [rows, units]}."""
    b = batch_pairs([(src, feed)])
    taps = find_taps(model)
    seen = {name: [] for name in taps}
    with HookScope() as hooks, torch.no_grad():
        for name, tap in taps.items():
            hooks.read(tap, lambda m, a, k, out: seen[m.name].append(out[0].clone()))
        model(b.src, b.src_lengths, b.tgt_in)
    return {name: torch.stack(v).numpy() for name, v in seen.items()}


def test_teacher_forced_recording_holds_the_reference_and_the_states_of_each_pair(data, tmp_path):
    model = model_for(data)
    out = record_seq2seq(model, data, tmp_path / "r.h5", batch_size=4)
    s_max = max(len(item) for item in data)
    with open_recording(out) as rec:
        assert list(rec.axes) == ["positions", "decoder"]
        assert rec.axis_has_tokens("decoder") and rec.axis_geometry("decoder").kind == "tokens"
        info = rec.taps["decoder/attention"]
        assert info.axis == "decoder" and info.units == s_max and info.units_are == "positions"
        assert rec.taps["encoder/layer1/h"].axis == "positions" and rec.taps["encoder/layer1/h"].units_are == ""
        assert rec.provenance["decode"]["mode"] == "teacher-forced"
        for i, item in enumerate(data):
            assert rec.item_token_ids(i).tolist() == item.tokens.tolist()
            assert rec.item_token_ids(i, "decoder").tolist() == item.target.tolist() + [EOS]
            states = alone(model, item.tokens, item.target)
            for name in ("encoder/layer0/c", "encoder/layer1/h"):
                np.testing.assert_allclose(rec.item_states(name, i), states[name], atol=1e-6)
            for name in ("decoder/layer1/h", "decoder/attn_hidden"):
                np.testing.assert_allclose(rec.item_states(name, i), states[name], atol=1e-6)
            a = rec.item_states("decoder/attention", i)
            n = len(item)
            assert a.shape == (len(item.target) + 1, s_max)
            np.testing.assert_allclose(a[:, :n].sum(1), 1.0, atol=1e-6)
            assert not a[:, n:].any()
            np.testing.assert_allclose(a[:, :n], states["decoder/attention"], atol=1e-6)
        assert rec.annotation("source_length").tolist() == [len(item) for item in data]
        assert {"from_end", "symbol", "exact"} <= set(rec.annotations)
        matrix, source, decoder = attention_matrix(rec, 2)
        assert matrix.shape == (len(data[2].target) + 1, len(data[2]))
        assert source == data.decode(data[2].tokens) and decoder == data.decode(data[2].target) + ["<eos>"]


def test_greedy_and_beam_recordings_hold_the_decoded_outputs_and_exact_agrees_with_teacher_forcing(data, tmp_path):
    model = model_for(data, seed=1, init_range=1.5)
    b = batch_pairs((item.tokens, item.target) for item in data)
    with torch.no_grad():
        greedy = model.greedy(b.src, b.src_lengths, max_len=6)
        beam = model.beam_search(b.src, b.src_lengths, beam=3, max_len=6)
    assert {0, 6} <= {len(o) for o in greedy + beam}  # both endings occur, and an empty output
    for mode, outputs in (("greedy", greedy), ("beam", beam)):
        out = record_seq2seq(model, data, tmp_path / f"{mode}.h5", decode=mode, beam=3, max_len=6, batch_size=4)
        with open_recording(out) as rec:
            assert rec.provenance["decode"]["max_len"] == 6
            for i, (item, o) in enumerate(zip(data, outputs)):
                ended = len(o) < 6
                assert rec.item_token_ids(i, "decoder").tolist() == o + ([EOS] if ended else [])
                states = alone(model, item.tokens, o if ended else o[:-1])
                np.testing.assert_allclose(rec.item_states("decoder/layer0/h", i), states["decoder/layer0/h"],
                                           atol=1e-6)
            assert rec.annotation("exact").tolist() == [int(o == item.target.tolist()) for item, o in
                                                        zip(data, outputs)]
    # a model that reverses correctly: teacher-forced `exact` is 1 exactly where greedy reproduces the reference
    tf = record_seq2seq(model, data, tmp_path / "tf.h5", max_len=6)
    with open_recording(tf) as rec:
        full = model.greedy(b.src, b.src_lengths, max_len=20)
        assert rec.annotation("exact").tolist() == [int(o == item.target.tolist()) for item, o in zip(data, full)]


def test_a_recording_of_a_trained_reverser_shows_the_known_answer(tmp_path):
    """Trained a little on short strings: greedy output == reference for most pairs, and `exact` says which."""
    from lstmviz.engines.training import train

    train_data = load_dataset("reverse", "train", items=600, symbols=4, min_length=2, max_length=4)
    test = load_dataset("reverse", "test", items=30, symbols=4, min_length=2, max_length=4)
    metrics = train("seq2seq-attn", train_data, None, out=tmp_path / "m.pt", steps=300, batch_size=32, lr=0.01,
                    config={"hidden_size": 24, "embedding_size": 8, "num_layers": 1})
    assert metrics["train_loss"] < 0.1
    from lstmviz.engines.checkpoint import load_checkpoint

    model, _ = load_checkpoint(tmp_path / "m.pt")
    out = record_seq2seq(model, test, tmp_path / "g.h5", decode="greedy")
    with open_recording(out) as rec:
        exact = rec.annotation("exact")
        assert exact.mean() > 0.5
        for i in np.flatnonzero(exact)[:5]:
            assert rec.item_token_ids(int(i), "decoder").tolist() == test[int(i)].target.tolist() + [EOS]


def test_the_cli_records_a_seq2seq_engine_with_each_decoder(tmp_path, capsys):
    from lstmviz.cli import main

    for mode in ("teacher-forced", "beam"):
        out = tmp_path / f"{mode}.h5"
        assert main(["record", "seq2seq-attn", "--dataset", "reverse", "--dataset-option", "items=6",
                     "--set", "hidden_size=8", "--set", "embedding_size=4", "--decode", mode, "--beam", "2",
                     "--max-len", "5", "-o", str(out), "--quiet"]) == 0
        with open_recording(out) as rec:
            assert rec.n_items == 6 and rec.provenance["decode"]["mode"] == mode
    assert "decoder: beam" in capsys.readouterr().out
    refused = tmp_path / "big.h5"
    assert main(["record", "seq2seq-attn", "--dataset", "reverse", "--dataset-option", "items=6", "--max-size", "1K",
                 "-o", str(refused), "--quiet"]) == 2
    assert not refused.exists() and "more than --max-size" in capsys.readouterr().err
    assert main(["record", "lstm", "--dataset", "parens", "--dataset-option", "tokens=200", "--decode", "greedy",
                 "-o", str(tmp_path / "x.h5"), "--quiet"]) == 2


def _writer(path, *, tokens=True):
    w = RecordingWriter(path, vocab=["<pad>", "<bos>", "<eos>", "a", "b"])
    w.add_axis("decoder", geometry="tokens", tokens=tokens)
    w.add_tap("enc", 2)
    w.add_tap("att", 3, axis="decoder", units_are="positions")
    return w


def test_axis_tokens_are_checked_when_written_and_when_read(tmp_path):
    w = _writer(tmp_path / "ok.h5")
    w.append_item([3, 4], {"enc": np.zeros((2, 2)), "att": np.zeros((3, 3))}, axis_tokens={"decoder": [4, 3, 2]})
    with pytest.raises(ValueError, match="expected 3 token ids"):
        w.append_item([3], {"enc": np.zeros((1, 2)), "att": np.zeros((3, 3))}, axis_tokens={"decoder": [4, 2]})
    with pytest.raises(ValueError, match="missing"):
        w.append_item([3], {"enc": np.zeros((1, 2)), "att": np.zeros((1, 3))})
    with pytest.raises(ValueError, match="0..4"):
        w.append_item([3], {"enc": np.zeros((1, 2)), "att": np.zeros((1, 3))}, axis_tokens={"decoder": [7]})
    with pytest.raises(ValueError, match="units are the item's positions"):
        w.append_item([3, 3, 3, 3], {"enc": np.zeros((4, 2)), "att": np.zeros((1, 3))}, axis_tokens={"decoder": [2]})
    w.append_item([3], {"enc": np.zeros((1, 2)), "att": np.zeros((1, 3))}, axis_tokens={"decoder": [2]})
    path = w.close()
    with open_recording(path) as rec:
        assert rec.token_ids(0, 4, axis="decoder").tolist() == [4, 3, 2, 2]
        assert rec.tokens(0, 3, axis="decoder") == ["b", "a", "<eos>"]
        assert rec.item_token_ids(1, "decoder").tolist() == [2]
    with pytest.raises(ValueError, match="geometry 'tokens'"):
        RecordingWriter(tmp_path / "g.h5").add_axis("x", geometry="scalar", tokens=True)
    plain = _writer(tmp_path / "plain.h5", tokens=False)
    plain.append_item([3], {"enc": np.zeros((1, 2)), "att": np.zeros((2, 3))})
    with open_recording(plain.close()) as rec:
        assert not rec.axis_has_tokens("decoder") and rec.axis_has_tokens("positions")
        with pytest.raises(KeyError, match="no tokens of its own"):
            rec.token_ids(0, 1, axis="decoder")
    # damage: an id outside the vocabulary, a changed id (checksum), a wrong length
    for damage, message in ((lambda ds: ds.__setitem__(0, 9), "outside the vocabulary"),
                            (lambda ds: ds.__setitem__(0, 3), "checksum"),
                            (lambda ds: ds.resize((3,)), "has 3 token ids")):
        bad = tmp_path / "bad.h5"
        bad.write_bytes(path.read_bytes())
        with h5py.File(bad, "r+") as f:
            damage(f["axes/decoder/tokens"])
        with pytest.raises(RecordingError, match=message):
            open_recording(bad)
    bad.write_bytes(path.read_bytes())
    with h5py.File(bad, "r+") as f:
        f["taps/att"].attrs["units_are"] = "neurons"
    with pytest.raises(RecordingError, match="units_are"):
        open_recording(bad)


def test_append_ragged_writes_the_same_file_as_one_append_item_per_item(tmp_path):
    rng = np.random.default_rng(0)
    items = []
    for n, t in ((2, 3), (1, 1), (3, 2)):
        items.append(dict(tokens=rng.integers(3, 5, n), enc=rng.normal(size=(n, 2)), att=rng.normal(size=(t, 3)),
                          dec=rng.integers(2, 5, t), pos=rng.normal(size=n), kind=int(rng.integers(0, 2))))

    def writer(name):
        w = _writer(tmp_path / name)
        w.add_annotation("pos", kind="numeric")
        w.add_annotation("kind", kind="categorical", level="item", labels=["x", "y"])
        return w

    one = writer("one.h5")
    for it in items:
        one.append_item(it["tokens"], {"enc": it["enc"], "att": it["att"]}, {"pos": it["pos"]}, {"kind": it["kind"]},
                        axis_tokens={"decoder": it["dec"]})
    ragged = writer("ragged.h5")
    cat = lambda key: np.concatenate([it[key] for it in items])  # noqa: E731
    with pytest.raises(ValueError, match="lengths sum to"):
        ragged.append_ragged(cat("tokens"), [2, 1, 3], {"enc": cat("enc"), "att": cat("att")}, {"pos": cat("pos")},
                             {"kind": [it["kind"] for it in items]}, axis_lengths={"decoder": [3, 1, 1]},
                             axis_tokens={"decoder": cat("dec")})
    ragged.append_ragged(cat("tokens"), [2, 1, 3], {"enc": cat("enc"), "att": cat("att")}, {"pos": cat("pos")},
                         {"kind": [it["kind"] for it in items]}, axis_lengths={"decoder": [3, 1, 2]},
                         axis_tokens={"decoder": cat("dec")})
    with open_recording(one.close()) as a, open_recording(ragged.close()) as b:
        for axis in ("positions", "decoder"):
            assert a.axis_offsets(axis).tolist() == b.axis_offsets(axis).tolist()
            assert a.token_ids(0, a.axis_length(axis), axis).tolist() == b.token_ids(0, b.axis_length(axis), axis).tolist()
        for tap in ("enc", "att"):
            np.testing.assert_array_equal(a.states(tap), b.states(tap))
        for name in ("pos", "kind"):
            np.testing.assert_array_equal(a.annotation(name), b.annotation(name))
