"""A seq2seq recording (source on the main axis, a decoder axis with its own tokens) opens in the window."""

import numpy as np
import torch

from lstmviz.datasets import load_dataset
from lstmviz.engines import registry
from lstmviz.engines.families.seq2seq import Seq2SeqData
from lstmviz.recording.reader import open_recording
from lstmviz.recording.seq2seq_recorder import record_seq2seq


def test_a_seq2seq_recording_opens_on_an_encoder_tap(window, captured_errors, tmp_path):
    data = load_dataset("reverse", "test", items=5, max_length=6)
    torch.manual_seed(0)
    model = registry.get("seq2seq-attn").build_model(Seq2SeqData(vocab_size=len(data.vocab)), hidden_size=6,
                                                      embedding_size=4, num_layers=1)
    path = record_seq2seq(model, data, tmp_path / "s2s.h5", decode="greedy", max_len=8)
    assert window.open_file(path)
    ws = window.workspace
    assert ws.tap.startswith("encoder/")
    with open_recording(path) as rec:
        start, stop = ws.window_range()
        expected = np.asarray(rec.states(ws.tap, start, stop), dtype=np.float32)
    shown = np.asarray(ws.values(), dtype=np.float32)
    np.testing.assert_allclose(shown, expected if ws.transform == "raw" else np.tanh(expected), atol=1e-6)
    assert captured_errors == []
