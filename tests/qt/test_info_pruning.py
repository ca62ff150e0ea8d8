"""The Recording panel's Pruning section: a recording of a pruned seq2seq model (provenance ``pruning``) shows
the scheme, the share removed and, per LSTM layer, which units keep their recurrent weights."""

from __future__ import annotations

import numpy as np

from lstmviz.qt.info.panel import pruning_html, recording_html, sparkline
from lstmviz.recording import RecordingWriter, open_recording


def test_sparkline_maps_zero_to_the_lowest_and_one_to_the_highest_bar():
    assert sparkline([0.0, 0.5, 1.0, 1.7, -1]) == "▁▅██▁"


def test_pruning_section_lists_layers_with_their_least_kept_units():
    kept = [1.0] * 40
    kept[7], kept[33] = 0.0, 0.25
    html = pruning_html({"scheme": "class-blind", "removed_fraction": 0.4,
                         "surviving_recurrent": {"decoder/layer1": kept}})
    assert "class-blind" in html and "40.0% of the prunable weights removed" in html
    assert "decoder/layer1" in html and "fewest kept: 7 (0%), 33 (25%)" in html
    assert sparkline(kept[:32]) in html and sparkline(kept[32:]) in html  # two rows of 32 units


def test_a_pruned_recording_shows_the_section_and_an_unpruned_one_does_not(tmp_path):
    provenance = {"engine": "seq2seq-attn", "pruning": {"scheme": "class-uniform", "removed_fraction": 0.6,
                                                        "surviving_recurrent": {"encoder/layer0": [0.5, 0.25]}}}
    for name, prov in (("pruned.h5", provenance), ("plain.h5", {"engine": "lstm"})):
        with RecordingWriter(tmp_path / name, vocab=["a"], provenance=prov) as w:
            w.add_tap("h", 2)
            w.append_item(np.zeros(3, np.int64), {"h": np.zeros((3, 2), np.float32)})
    with open_recording(tmp_path / "pruned.h5") as rec:
        html = recording_html(rec)
        assert "<h4>Pruning</h4>" in html and "class-uniform" in html and "encoder/layer0" in html
        assert "surviving_recurrent" not in html  # not dumped again as a provenance row
    with open_recording(tmp_path / "plain.h5") as rec:
        assert "Pruning" not in recording_html(rec)
