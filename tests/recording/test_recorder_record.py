"""record(): a model over a dataset into a recording file, read back with open_recording."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstmviz.recording.reader import open_recording
from lstmviz.recording.recorder import Recorder, record
from lstmviz.tasks import Cancelled, Task

V = 13


class LM(nn.Module):
    def __init__(self, batch_first=True, bidirectional=False):
        super().__init__()
        self.embedding = nn.Embedding(V, 4)
        self.lstm = nn.LSTM(4, 5, num_layers=2, batch_first=batch_first, bidirectional=bidirectional)
        self.decoder = nn.Linear(10 if bidirectional else 5, V)

    def forward(self, tokens):
        return self.decoder(self.lstm(self.embedding(tokens))[0])


def _packed_forward(model, tokens, lengths):
    packed = pack_padded_sequence(model.embedding(tokens), lengths, batch_first=True, enforce_sorted=False)
    out, _ = model.lstm(packed)
    return model.decoder(pad_packed_sequence(out, batch_first=True)[0])


@dataclass(frozen=True)
class Spec:
    name: str
    kind: str
    level: str = "position"
    labels: tuple | None = None
    description: str = ""


@dataclass
class FakeItem:
    tokens: np.ndarray
    annotations: dict = field(default_factory=dict)
    item_annotations: dict = field(default_factory=dict)


class FakeDataset:
    """Duck-typed like lstmviz.datasets.base.SequenceDataset."""

    name, split = "fake", "test"

    def __init__(self, lengths=(5, 2, 7, 1, 4), seed=0):
        rng = np.random.default_rng(seed)
        self.vocab = [f"w{i}" for i in range(V)]
        self.annotation_specs = [
            Spec("parity", "categorical", labels=("even", "odd"), description="token id parity"),
            Spec("length", "numeric", level="item"),
        ]
        self.items = []
        for n in lengths:
            t = rng.integers(1, V, n)
            self.items.append(FakeItem(t, {"parity": t % 2}, {"length": float(n)}))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def provenance(self):
        return {"name": self.name, "split": self.split, "options": {"seed": 0}, "source": "test"}


def _model(**kw):
    torch.manual_seed(0)
    return LM(**kw)


def _alone(model, tokens, signals, forward=None):
    """States of one item run alone (batch of 1, no padding)."""
    with torch.no_grad(), Recorder(model, signals) as rec:
        t = torch.as_tensor(tokens)[None]
        model(t) if forward is None else forward(model, t, torch.tensor([len(tokens)]))
    return {k: v[0].numpy() for k, v in rec.collect().items()}


def test_end_to_end_items_boundaries_annotations_and_no_padding_leak(tmp_path):
    data = FakeDataset()
    model = _model().train()
    signals = ["lstm/layer*/h", "lstm/layer1/c", "lstm/layer0/gates/f", "decoder"]
    path = record(model, data, tmp_path / "r.h5", signals=signals, batch_size=3, progress=False,
                  provenance={"engine": "mine"})
    assert model.training and model.lstm.training  # modes restored
    model.eval()
    with open_recording(path) as rec:
        assert rec.n_items == 5 and rec.n_positions == sum(len(it.tokens) for it in data.items)
        assert list(np.diff(rec.item_offsets)) == [5, 2, 7, 1, 4]
        assert rec.vocab == data.vocab
        assert list(rec.taps) == ["lstm/layer0/h", "lstm/layer0/gates/f", "lstm/layer1/h", "lstm/layer1/c", "decoder"]
        tap = rec.taps["lstm/layer1/c"]
        assert (tap.units, tap.layer, tap.signal) == (5, 1, "c") and "cell state" in tap.description
        assert rec.taps["decoder"].units == V
        assert rec.provenance["engine"] == "mine" and rec.provenance["dataset"] == "fake"
        assert rec.provenance["split"] == "test" and rec.provenance["model"].endswith("LM")
        assert "torch" in rec.provenance["versions"]
        assert set(rec.annotations) == {"parity", "length"}
        assert rec.annotations["parity"].labels == ["even", "odd"]
        for i, item in enumerate(data.items):
            start, stop = rec.item_range(i)
            np.testing.assert_array_equal(rec.token_ids(start, stop), item.tokens)
            np.testing.assert_array_equal(rec.annotation("parity", start, stop), item.tokens % 2)
            alone = _alone(model, item.tokens, signals)
            assert set(alone) == set(rec.taps)
            for name in alone:
                np.testing.assert_allclose(rec.item_states(name, i), alone[name], atol=1e-6, rtol=0)
        np.testing.assert_array_equal(rec.annotation("length"), [5, 2, 7, 1, 4])


def test_bidirectional_with_a_packing_forward_is_batch_independent(tmp_path):
    data = FakeDataset(lengths=(6, 2, 4))
    model = _model(bidirectional=True).eval()
    path = record(model, data, tmp_path / "b.h5", signals=["lstm/layer1_reverse/*"], batch_size=3,
                  forward=_packed_forward, progress=False)
    with open_recording(path) as rec:
        for i, item in enumerate(data.items):
            alone = _alone(model, item.tokens, ["lstm/layer1_reverse/*"], _packed_forward)
            for name, values in alone.items():
                np.testing.assert_allclose(rec.item_states(name, i), values, atol=1e-6, rtol=0)


def test_bidirectional_without_forward_warns():
    with pytest.warns(UserWarning, match="reads the padding"):
        with pytest.raises(ValueError, match="empty"):
            record(_model(bidirectional=True), [], "unused.h5", progress=False)


def test_plain_sequences_time_major_and_max_items(tmp_path):
    seqs = [[1, 2, 3], np.array([4, 5]), torch.tensor([6, 7, 8, 9]), [1]]
    model = _model(batch_first=False).eval()
    path = record(model, seqs, tmp_path / "s.h5", signals=["lstm/layer0/c"], batch_first=False, batch_size=2,
                  max_items=3, progress=False, dtype="float16")
    with open_recording(path) as rec:
        assert rec.n_items == 3 and rec.vocab == [] and rec.annotations == {}
        with torch.no_grad(), Recorder(model, ["lstm/layer0/c"]) as r:
            model(seqs[2][:, None])
        np.testing.assert_allclose(rec.item_states("lstm/layer0/c", 2), r.collect()["lstm/layer0/c"][0], atol=1e-3)


def test_progress_reported_and_cancel_leaves_no_file(tmp_path):
    calls = []
    task = Task(on_progress=lambda done, total, msg: calls.append((done, total)))
    record(_model(), FakeDataset(), tmp_path / "p.h5", batch_size=2, task=task, signals=["lstm/layer0/h"])
    assert calls[0] == (0, 5) and calls[-1] == (5, 5) and (2, 5) in calls

    def cancel_after_first_batch(done, total, msg):
        if done >= 2:
            task.cancel()

    task = Task(on_progress=cancel_after_first_batch)
    with pytest.raises(Cancelled):
        record(_model(), FakeDataset(), tmp_path / "c.h5", batch_size=2, task=task)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.h5"]  # no output, no temporary file


def test_tqdm_bar_when_asked(tmp_path, capsys):
    record(_model(), [[1, 2], [3]], tmp_path / "t.h5", signals=["lstm/layer0/h"], progress=True)
    assert "recording" in capsys.readouterr().err


@pytest.mark.parametrize(
    "data, kwargs, message",
    [
        ([], {}, "no items to record"),
        ([[1, 2], []], {}, "item 1 is empty"),
        ([[1, 2], [3, V + 5]], {}, r"index error.*go up to 18 \(item 1\).*'embedding' has 13 rows"),
        ([[1, 2], [3, 20]], {"vocab": [str(i) for i in range(V)]}, "item 1: token id 20 is outside the vocabulary"),
        ([[1, -2]], {}, "token id -2 is negative"),
        ([[[1, 2]]], {}, "expected a 1-D sequence"),
        ([[1.5]], {}, "integer token ids"),
        ([[1, 2, 3]], {"signals": ["lstm/layer0/h"], "batch_first": False},
         r"shape \[3, 1, 5\] for a batch of 1 items padded to 3 tokens"),
    ],
)
def test_clear_errors_and_no_file(tmp_path, data, kwargs, message):
    with pytest.raises(ValueError, match=message):
        record(_model(), data, tmp_path / "e.h5", progress=False, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_signal_that_never_fires(tmp_path):
    model = _model()
    forward = lambda m, tokens, lengths: m.lstm(m.embedding(tokens))  # noqa: E731 -- skips the decoder
    with pytest.raises(ValueError, match="no values were recorded for 'decoder'"):
        record(model, [[1, 2]], tmp_path / "n.h5", signals=["decoder"], forward=forward, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_model_on_another_device_is_named(tmp_path):
    with pytest.raises(ValueError, match="is on cpu but record"):
        record(_model(), [[1]], tmp_path / "d.h5", device="meta", progress=False)
