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


# --- several checkpoints of one run (format v2 /checkpoints) -------------------------------------

def _weights(seed):
    torch.manual_seed(seed)
    return LM().state_dict()


def _run_of_three():
    """Three 'checkpoints' of one LM: step 10, 20, 30 (distinct random weights)."""
    return {10: _weights(10), 20: _weights(20), 30: _weights(30)}


def test_record_several_checkpoints_equals_a_recording_of_each(tmp_path):
    from lstmviz.recording.recorder import CheckpointSource

    data, weights = FakeDataset(), _run_of_three()
    model = _model().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    signals = ["lstm/layer*/c", "lstm/layer0/gates/f", "decoder"]
    loads = []
    calls = []
    task = Task(on_progress=lambda done, total, msg: calls.append((done, total, msg)))
    path = record(
        model, data, tmp_path / "run.h5", signals=signals, batch_size=2, task=task,
        checkpoints=[
            (30, weights[30], {"path": "m-30.pt", "sha256": "c" * 64, "metrics": {"valid_ppl": 3.0}}),
            CheckpointSource(lambda: loads.append(10) or weights[10], step=10, path="m-10.pt"),
            (20, _module_with(weights[20])),
        ])
    assert loads == [10]  # a loader is called once, when its checkpoint is recorded
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())  # the model's weights are back
    assert calls[0] == (0, 15, "recording") and calls[-1][:2] == (15, 15)  # 3 passes over 5 items
    direct = {}
    for step, w in weights.items():
        single = _model().eval()
        single.load_state_dict(w)
        direct[step] = record(single, data, tmp_path / f"single-{step}.h5", signals=signals, batch_size=2,
                              progress=False)
    with open_recording(path) as rec:
        assert [(c.name, c.step, c.is_main) for c in rec.checkpoints] == [
            ("step-000010", 10, False), ("step-000020", 20, False), ("step-000030", 30, True)]
        assert rec.checkpoints[0].path == "m-10.pt" and rec.checkpoints[2].metrics == {"valid_ppl": 3.0}
        prov = rec.provenance
        assert prov["checkpoint"] == "m-30.pt" and prov["sha256"] == "c" * 64 and prov["checkpoint_step"] == 30
        assert prov["train_metrics"] == {"valid_ppl": 3.0}
        assert set(rec.annotations) == {"parity", "length"}
        for step in (10, 20, 30):
            view = rec.at_checkpoint(f"step-{step:06d}")
            with open_recording(direct[step]) as alone:
                assert rec.token_ids(0, rec.n_positions).tolist() == alone.token_ids(0, alone.n_positions).tolist()
                for tap in rec.taps:
                    assert np.array_equal(view.states(tap), alone.states(tap)), (step, tap)
                    if step == 30:
                        assert np.array_equal(rec.states(tap), alone.states(tap))
        a, b = rec.at_checkpoint("step-000010"), rec.at_checkpoint("step-000020")
        for tap in rec.taps:
            assert not np.allclose(a.states(tap), b.states(tap))
            assert not np.allclose(b.states(tap), rec.states(tap))


def _module_with(weights):
    m = LM()
    m.load_state_dict(weights)
    return m


def test_one_checkpoint_is_recorded_like_a_plain_model(tmp_path):
    weights = _weights(5)
    path = record(_model(), [[1, 2, 3], [4]], tmp_path / "one.h5", signals=["lstm/layer1/h"], progress=False,
                  checkpoints=[(7, weights, {"path": "seven.pt"})])
    plain = _model()
    plain.load_state_dict(weights)
    alone = record(plain, [[1, 2, 3], [4]], tmp_path / "plain.h5", signals=["lstm/layer1/h"], progress=False)
    with open_recording(path) as rec, open_recording(alone) as ref:
        assert rec.checkpoints == []  # no curve to draw from one model state
        assert rec.provenance["checkpoint_step"] == 7 and rec.provenance["checkpoint"] == "seven.pt"
        assert np.array_equal(rec.states("lstm/layer1/h"), ref.states("lstm/layer1/h"))


@pytest.mark.parametrize(
    "data, checkpoints, message",
    [
        (iter([[1, 2], [3]]), [(1, _weights(1)), (2, _weights(2))], "data must be a dataset or a list"),
        ([[1, 2]], [(1, _weights(1)), (1, _weights(2))], "names must be unique, got 'step-000001'"),
        ([[1, 2]], [(1, _weights(1)), ("x", _weights(2))], "either every checkpoint has a step or none does"),
        ([[1, 2]], [(1, {"embedding.weight": torch.zeros(3, 3)}), (2, _weights(2))],  # fails on the 2nd pass
         r"checkpoint 'step-000001' does not fit the model: .*Missing key\(s\)"),
        ([[1, 2]], [(1, _weights(1)), (2, "weights.pt")], "expected a state_dict, an nn.Module, or a function"),
        ([[1, 2]], [(1, _weights(1), {"stepp": 3})], r"unknown meta keys \['stepp'\]"),
        ([[1, 2]], [[1, _weights(1)]], "expected a CheckpointSource or a tuple"),
        ([[1, 2]], [(-1, _weights(1))], "step must be None or a non-negative integer"),
    ],
)
def test_checkpoint_errors_leave_no_file(tmp_path, data, checkpoints, message):
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        record(model, data, tmp_path / "e.h5", signals=["lstm/layer0/h"], progress=False, checkpoints=checkpoints)
    assert list(tmp_path.iterdir()) == []
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_data_that_changes_between_passes_is_refused(tmp_path):
    class Shifty:
        """A list-like that gives other tokens every time it is read."""

        reads = 0

        def __iter__(self):
            Shifty.reads += 1
            return iter([[1, 2, 3], [Shifty.reads, 2]])

    with pytest.raises(ValueError, match="the data gave other items on the pass for checkpoint 'step-000001'"):
        record(_model(), Shifty(), tmp_path / "s.h5", signals=["lstm/layer0/h"], progress=False,
               checkpoints=[(1, _weights(1)), (2, _weights(2))])
    assert list(tmp_path.iterdir()) == []


def test_cancel_during_a_later_checkpoint_leaves_no_file(tmp_path):
    task = Task(on_progress=lambda done, total, msg: task.cancel() if msg == "recording step-000001" else None)
    with pytest.raises(Cancelled):
        record(_model(), FakeDataset(), tmp_path / "c.h5", batch_size=2, task=task, signals=["lstm/layer0/h"],
               checkpoints=[(1, _weights(1)), (2, _weights(2))])
    assert list(tmp_path.iterdir()) == []


def test_the_model_itself_as_an_earlier_checkpoint_means_its_own_weights(tmp_path):
    model = _model().eval()
    data = [[1, 2, 3], [4, 5]]
    alone = record(model, data, tmp_path / "alone.h5", signals=["lstm/layer0/c"], progress=False)
    path = record(model, data, tmp_path / "two.h5", signals=["lstm/layer0/c"], progress=False,
                  checkpoints=[(1, model), (2, _weights(2))])
    with open_recording(path) as rec, open_recording(alone) as ref:
        assert np.array_equal(rec.at_checkpoint("step-000001").states("lstm/layer0/c"), ref.states("lstm/layer0/c"))
        assert not np.allclose(rec.states("lstm/layer0/c"), ref.states("lstm/layer0/c"))
