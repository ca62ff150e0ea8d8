"""record() decides the token layout without ambiguity: a wrong batch_first is refused even when the batch is
square (batch size == padded length), for nn.LSTM signals, module outputs, taps and custom forwards."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstmviz.recording.reader import open_recording
from lstmviz.recording.recorder import record
from lstmviz.recording.taps import Tap

V = 11


class LM(nn.Module):
    """Embedding -> nn.LSTM -> Linear, in the given layout, with a tap on the LSTM's output (batch-first by contract)."""

    def __init__(self, batch_first: bool, mix_items: bool = False, noisy: bool = False):
        super().__init__()
        self.batch_first, self.mix_items, self.noisy = batch_first, mix_items, noisy
        self.embedding = nn.Embedding(V, 4)
        self.lstm = nn.LSTM(4, 5, batch_first=batch_first)
        self.tap = Tap("top/h")
        self.decoder = nn.Linear(5, V)

    def forward(self, tokens):
        x = self.embedding(tokens)
        if self.mix_items:  # subtracts the batch mean: every item's states depend on the others
            x = x - x.mean(dim=0 if self.batch_first else 1, keepdim=True)
        if self.noisy:  # dropout left on in eval mode: repeated runs differ
            x = F.dropout(x, 0.5, training=True)
        out = self.lstm(x)[0]
        self.tap(out if self.batch_first else out.transpose(0, 1))
        return self.decoder(out)


def _model(batch_first: bool, **kw) -> LM:
    torch.manual_seed(0)
    return LM(batch_first, **kw).eval()


def _square(n: int = 4, seed: int = 0) -> list[list[int]]:
    """n items of n tokens: with batch_size=n the padded batch is square."""
    rng = np.random.default_rng(seed)
    return rng.integers(1, V, (n, n)).tolist()


def _alone(model: LM, tokens, name: str) -> np.ndarray:
    """What item ``tokens`` gives run alone in the model's own layout, for signal ``name``."""
    t = torch.as_tensor(tokens)[None] if model.batch_first else torch.as_tensor(tokens)[:, None]
    with torch.no_grad():
        x = model.embedding(t)
        h = model.lstm(x)[0]
        h = h[0] if model.batch_first else h[:, 0]
        return (model.decoder(h) if name == "decoder" else h).numpy()


SIGNALS = {"rnn": ["lstm/layer0/h", "lstm/layer0/c"], "module": ["decoder"], "tap": ["top/h"]}


@pytest.mark.parametrize("kind", sorted(SIGNALS))
@pytest.mark.parametrize("model_batch_first", [True, False])
def test_wrong_layout_of_a_square_batch_is_refused(tmp_path, kind, model_batch_first):
    model = _model(model_batch_first)
    wrong = not model_batch_first
    with pytest.raises(ValueError, match=rf"does not read token ids as .*\(batch_first={wrong}\).* changing one token "
                                         rf"of item 0 .*Pass batch_first={model_batch_first}$"):
        record(model, _square(4), tmp_path / "w.h5", signals=SIGNALS[kind], batch_size=4, batch_first=wrong,
               progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("model_batch_first", [True, False])
def test_wrong_layout_of_module_outputs_is_refused_for_any_batch_shape(tmp_path, model_batch_first):
    # module outputs are laid out as batch_first says, so their shape fits any batch: only the probe sees it
    data = [[1, 2, 3, 4, 5, 6], [7, 8, 9], [10, 1, 2, 3, 4], [5, 6], [7, 8, 9, 10, 1, 2, 3]]
    with pytest.raises(ValueError, match=f"Pass batch_first={model_batch_first}$"):
        record(_model(model_batch_first), data, tmp_path / "w.h5", signals=["decoder"], batch_size=5,
               batch_first=not model_batch_first, progress=False)


def test_wrong_layout_with_a_custom_packing_forward_is_refused(tmp_path):
    def packed_forward(model, tokens, lengths):  # written for [B, T] token ids
        packed = pack_padded_sequence(model.embedding(tokens), lengths, batch_first=True, enforce_sorted=False)
        return model.decoder(pad_packed_sequence(model.lstm(packed)[0], batch_first=True)[0])

    with pytest.raises(ValueError, match="Pass batch_first=True$"):
        record(_model(True), _square(3), tmp_path / "w.h5", signals=["lstm/*", "decoder"], batch_size=3,
               batch_first=False, forward=packed_forward, progress=False)


@pytest.mark.parametrize("model_batch_first", [True, False])
def test_right_layout_of_a_square_batch_records_each_item_as_alone(tmp_path, model_batch_first):
    data = _square(4)
    path = record(_model(model_batch_first), data, tmp_path / "r.h5", signals=["lstm/layer0/h", "decoder"],
                  batch_size=4, batch_first=model_batch_first, progress=False)
    model = _model(model_batch_first)
    with open_recording(path) as rec:
        for i, tokens in enumerate(data):
            for name in ("lstm/layer0/h", "decoder"):
                np.testing.assert_allclose(rec.item_states(name, i), _alone(model, tokens, name), atol=1e-6, rtol=0)


def test_a_model_that_mixes_the_items_of_a_batch_is_refused(tmp_path):
    data = [[1, 2, 3, 4], [5, 6, 7], [8, 9, 10, 1, 2]]
    with pytest.raises(ValueError, match=r"mixes the items of a batch: changing one token of item 2 .*Pass batch_size=1"):
        record(_model(True, mix_items=True), data, tmp_path / "m.h5", signals=["lstm/layer0/h"], batch_size=3,
               progress=False)
    assert list(tmp_path.iterdir()) == []


def test_the_check_is_skipped_for_one_item_per_batch(tmp_path):
    # one item per batch: the mean of a batch is that item, so the mixing model records each item as alone
    data = [[1, 2, 3, 4], [5, 6, 7]]
    model = _model(True, mix_items=True)
    path = record(model, data, tmp_path / "one.h5", signals=["lstm/layer0/h"], batch_size=1, progress=False)
    with open_recording(path) as rec:
        for i, tokens in enumerate(data):
            t = torch.as_tensor(tokens)[None]
            with torch.no_grad():
                expected = model.lstm(model.embedding(t) - model.embedding(t))[0][0].numpy()
            np.testing.assert_allclose(rec.item_states("lstm/layer0/h", i), expected, atol=1e-6, rtol=0)


def test_short_other_items_and_a_single_token_id_still_get_checked(tmp_path):
    # item 1 would be 1 token: the probe uses a copy of the longest item instead; all ids equal: the next
    # id of the vocabulary is swapped in
    data = [[3, 3, 3, 3, 3], [3], [3]]
    with pytest.raises(ValueError, match=r"other items in its batch \(a copy of item 0\).*Pass batch_first=False$"):
        record(_model(False), data, tmp_path / "w.h5", signals=["decoder"], vocab=[f"w{i}" for i in range(V)],
               batch_size=3, batch_first=True, progress=False)


def test_a_random_model_is_not_refused_and_the_random_stream_is_untouched(tmp_path):
    # dropout in eval mode: the probe cannot tell a change from noise, so it skips; and it leaves the random
    # number generator as it found it, so the recording is what one seeded forward pass gives
    data = [[1, 2, 3], [4, 5, 6]]
    model = _model(True, noisy=True)
    torch.manual_seed(7)
    path = record(model, data, tmp_path / "n.h5", signals=["decoder"], batch_size=2, progress=False)
    torch.manual_seed(7)
    with torch.no_grad():
        expected = model(torch.tensor(data)).numpy()
    with open_recording(path) as rec:
        for i in range(2):
            np.testing.assert_array_equal(rec.item_states("decoder", i), expected[i])
