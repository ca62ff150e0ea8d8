"""The Attention panel: on a seq2seq recording it opens and draws the current item's attention matrix
(decoder steps × source tokens, labelled with their tokens), follows the window's item, selects a decoder step
by click, box and keys, marks the hovered source token; on a recording without attention it says so."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6 import QtCore

from lstmviz.datasets import load_dataset
from lstmviz.engines import registry
from lstmviz.engines.families.seq2seq import Seq2SeqData
from lstmviz.recording import open_recording
from lstmviz.recording.seq2seq_recorder import record_seq2seq
from window_helpers import write_recording


@pytest.fixture(scope="module")
def seq2seq_path(tmp_path_factory):
    data = load_dataset("reverse", "test", items=6, max_length=7)
    torch.manual_seed(0)
    model = registry.get("seq2seq-attn").build_model(
        Seq2SeqData(vocab_size=len(data.vocab)), embedding_size=6, hidden_size=8, num_layers=1, init_range=0.8).eval()
    return record_seq2seq(model, data, tmp_path_factory.mktemp("attention") / "rev.h5", batch_size=4)


@pytest.fixture
def attention_window(window, seq2seq_path):
    assert window.open_file(seq2seq_path)
    window.show_panel("attention")
    return window


def expected(path, item):
    with open_recording(path) as rec:
        a, b = rec.item_range(item, "decoder")
        s, e = rec.item_range(item)
        return (rec.states("decoder/attention", a, b)[:, : e - s], rec.tokens(s, e),
                rec.tokens(a, b, axis="decoder"))


def test_draws_the_items_matrix_with_its_tokens(attention_window, seq2seq_path):
    panel = attention_window.panels["attention"]
    assert panel.stack.currentIndex() == 1 and panel.tap == "decoder/attention"
    matrix, source, decoder = expected(seq2seq_path, 0)
    np.testing.assert_array_equal(panel.matrix, matrix)
    np.testing.assert_array_equal(panel.image.image, matrix)
    assert panel.image.levels.tolist() == [0.0, 1.0]  # one fixed scale: weights are probabilities
    ticks = panel.matrix_plot.getAxis("bottom")._tickLevels[0]
    assert [label for _x, label in ticks] == source
    assert [label for _x, label in panel.matrix_plot.getAxis("left")._tickLevels[0]] == decoder
    np.testing.assert_allclose(panel.matrix.sum(axis=1), 1.0, atol=2e-3)  # float16 storage


def test_follows_the_windows_item(qtbot, attention_window, seq2seq_path):
    panel = attention_window.panels["attention"]
    with qtbot.waitSignal(panel.shown) as shown:
        attention_window.workspace.go_to_item(3)
    assert shown.args == [3] and panel.item == 3 and panel.item_spin.value() == 3
    np.testing.assert_array_equal(panel.matrix, expected(seq2seq_path, 3)[0])
    with qtbot.waitSignal(attention_window.workspace.item_changed):  # the panel's box moves the window too
        panel.item_spin.setValue(1)
    assert attention_window.workspace.item == 1 and panel.item == 1


def test_a_decoder_step_is_chosen_by_click_box_and_keys(qtbot, attention_window):
    panel = attention_window.panels["attention"]
    qtbot.waitUntil(lambda: panel.plots.isVisible() and panel.matrix_plot.width() > 100)
    steps, width = panel.matrix.shape
    assert steps >= 3
    last = steps - 1
    scene = panel.matrix_plot.vb.mapViewToScene(QtCore.QPointF(width / 2, last + 0.5))
    assert panel.step_at(scene) == last
    assert panel.step_at(panel.matrix_plot.vb.mapViewToScene(QtCore.QPointF(width + 3, 0.5))) is None
    with qtbot.waitSignal(panel.step_changed) as changed:
        panel.set_step(panel.step_at(scene))
    assert changed.args == [last]
    heights = panel.bars.opts["height"]
    np.testing.assert_array_equal(heights, panel.matrix[last])
    assert panel.frame.rect().top() == last and panel.frame.rect().width() == width
    top = int(np.argmax(panel.matrix[last]))
    assert f"step {last} emits" in panel.summary.text() and f"source {top}" in panel.summary.text()
    with qtbot.waitSignal(panel.step_changed) as changed:
        qtbot.keyClick(panel, QtCore.Qt.Key_Up)
    assert changed.args == [last - 1] and panel.step_spin.value() == last - 1
    with qtbot.waitSignal(panel.step_changed) as changed:
        panel.step_spin.setValue(0)
    assert changed.args == [0] and panel.frame.rect().top() == 0


def test_hovering_a_source_token_marks_its_column(attention_window):
    panel = attention_window.panels["attention"]
    ws = attention_window.workspace
    start, _stop = ws.recording.item_range(0)
    ws.set_hover(start + 2)
    assert panel.hover_column == 2 and panel.matrix_hover.isVisible() and panel.matrix_hover.value() == 2.5
    ws.set_hover(None)
    assert panel.hover_column is None and not panel.matrix_hover.isVisible()


def test_a_recording_without_attention_is_said_in_words(window, tmp_path):
    assert window.open_file(write_recording(tmp_path / "lm.h5"))
    panel = window.panels["attention"]
    assert panel.stack.currentIndex() == 0 and "no attention tap" in panel.message.text()


def test_the_decoders_states_are_drawn_beside_the_matrix_on_its_rows(qtbot, attention_window, seq2seq_path):
    panel = attention_window.panels["attention"]
    names = [panel.state_combo.itemText(i) for i in range(panel.state_combo.count())]
    with open_recording(seq2seq_path) as rec:
        on_decoder = [n for n, info in rec.taps.items() if info.axis == "decoder" and n != "decoder/attention"]
        assert names == on_decoder and panel.state_combo.currentText() == "decoder/layer0/h"
        attention_window.workspace.go_to_item(2)
        np.testing.assert_array_equal(panel.states, rec.item_states("decoder/layer0/h", 2))
        assert panel.states.shape[0] == panel.matrix.shape[0]  # one row per decoder step, as the matrix
        np.testing.assert_array_equal(panel.states_image.image, panel.states)
        bound = float(np.abs(panel.states).max())
        assert panel.states_image.levels.tolist() == [-bound, bound]  # symmetric around 0
        panel.state_combo.setCurrentText("decoder/attn_hidden")
        np.testing.assert_array_equal(panel.states, rec.item_states("decoder/attn_hidden", 2))
    panel.set_step(1)
    assert panel.states_frame.rect().top() == 1 and panel.states_frame.rect().width() == panel.states.shape[1]


@pytest.fixture
def fifo(tmp_path, monkeypatch):
    from hostile_recordings import FifoWatch

    monkeypatch.chdir(tmp_path)  # Qt resolves <img src=x.fifo> against the working directory
    watch = FifoWatch(tmp_path)
    yield watch
    watch.stop()


def test_hostile_tokens_and_tap_names_are_shown_as_text_and_open_nothing(qtbot, window, tmp_path, fifo):
    from hostile_recordings import HOSTILE

    from lstmviz.recording import RecordingWriter

    path = tmp_path / "hostile-s2s.h5"
    vocab = ["<pad>", "<bos>", "<eos>", HOSTILE, "a"]
    with RecordingWriter(path, vocab=vocab) as w:
        w.add_axis("decoder", tokens=True)
        w.add_tap("enc", 2)
        w.add_tap("decoder/attention", 3, axis="decoder", units_are="positions")
        w.add_tap(f"{HOSTILE}/h", 2, axis="decoder", description=HOSTILE)
        attention = np.array([[0.1, 0.8, 0.1], [0.5, 0.25, 0.25]], np.float32)
        w.append_item(np.array([3, 4, 3]), {"enc": np.zeros((3, 2), np.float32), "decoder/attention": attention,
                                            f"{HOSTILE}/h": np.ones((2, 2), np.float32)},
                      axis_tokens={"decoder": np.array([3, 2])})
    assert window.open_file(path)
    window.show_panel("attention")
    panel = window.panels["attention"]
    assert panel.decoder == [HOSTILE, "<eos>"] and panel.state_combo.currentText() == f"{HOSTILE}/h"
    panel.set_step(1)
    panel.set_step(0)
    assert HOSTILE not in panel.summary.text() and "&lt;img" in panel.summary.text()
    panel.grab()
    assert fifo.stop() == 0  # nothing opened the FIFO
