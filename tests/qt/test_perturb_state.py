"""The Perturb panel's saved state without Qt: typed index lists, the schema, fit() against a recording."""

from dataclasses import replace

import pytest
from conftest import write_recording

from lstmviz.qt.perturb.state import PERTURB_STATE, IndexListError, PerturbState, format_indices, parse_indices
from lstmviz.recording import open_recording
from lstmviz.workspace.schema import Invalid


def test_typed_lists_are_read_in_order_without_repeats_and_written_back_as_ranges():
    assert parse_indices("3, 17, 40-45") == (3, 17, 40, 41, 42, 43, 44, 45)
    assert parse_indices(" 5 2;2  7-7 ") == (5, 2, 7)
    assert format_indices((45, 3, 40, 41, 42, 17, 43, 44)) == "3, 17, 40-45"
    assert parse_indices(format_indices(range(0, 30, 3))) == tuple(range(0, 30, 3))
    for text, words in [("3, x", "cannot read 'x'"), ("4-", "cannot read '4-'"), ("-2", "cannot read '-2'"),
                        ("9-4", "runs backwards"), ("", "type at least one unit"), ("1, 48", "there is no unit 48")]:
        with pytest.raises(IndexListError, match=words):
            parse_indices(text, "unit", 48)


def test_the_state_is_written_and_read_back_and_checked():
    state = PerturbState(tap="layer0/c", action="add", units_from="typed", units_text="1-3", direction="means",
                         alpha=-2.5, means_label="depth", means_a="2", means_b="0", sweep_range=(-1.0, 3.0),
                         sweep_steps=11, shown="sweep", heatmap_tap="layer1/c")
    written = PERTURB_STATE.write(state)
    assert written["version"] == 2 and written["sweep_range"] == [-1.0, 3.0]
    assert PERTURB_STATE.read(written, "perturb") == state
    assert PERTURB_STATE.read({"version": 1}, "perturb") == PerturbState()
    # version 1 had no loss-model pruning settings: they take their defaults; version 2 keeps them
    old = {k: v for k, v in written.items() if not k.startswith("prune_")}
    assert PERTURB_STATE.read({**old, "version": 1}, "perturb") == state
    pruning = replace(state, prune_method="obd", prune_sparsity=0.9, prune_steps=10, prune_lambda=1e-3,
                      prune_curvature="sampled-fisher", shown="prune")
    assert PERTURB_STATE.read(PERTURB_STATE.write(pruning), "perturb") == pruning
    assert pruning.prune_fields() == {"method": "obd", "sparsity": 0.9, "steps": 10, "lam": 1e-3,
                                      "curvature": "sampled-fisher"}
    for bad, words in [({"action": "explode"}, "not one of"), ({"alpha": "big"}, "finite number"),
                       ({"sweep_range": [2.0, 1.0]}, "smaller alpha"), ({"version": 3}, "newer lstmviz"),
                       ({"prune_method": "snip"}, "not one of"), ({"prune_sparsity": 1.0}, "prune_sparsity"),
                       ({"prune_steps": 0}, "prune_steps")]:
        with pytest.raises(Invalid, match=words):
            PERTURB_STATE.read(bad, "perturb")
    assert state.perturbation_fields() == {"action": "add", "direction": "means", "alpha": -2.5, "seed": 0,
                                           "means_label": "depth", "means_classes": ("2", "0")}


def test_fit_drops_what_the_recording_lacks_and_clips_typed_units(tmp_path):
    rec = open_recording(write_recording(tmp_path / "r.h5", n_items=2, units=(8, 8, 12)))
    problems = []
    state = PerturbState(tap="layer0/c", units_text="2, 6-10", heatmap_tap="layer9/h", probe_label="depth",
                         probe_class="7", item=5, shown="effect")
    fitted = PERTURB_STATE.fit(state, rec, problems)
    assert fitted.units_text == "2, 6-7" and fitted.heatmap_tap is None and fitted.probe_class is None
    assert fitted.probe_label == "depth" and fitted.item is None and fitted.shown == "effect"
    assert any("8 units" in p for p in problems) and any("layer9/h" in p for p in problems)
    problems = []
    gone = PERTURB_STATE.fit(PerturbState(tap="layer7/c", shown="effect", means_label="pos"), rec, problems)
    assert gone.tap is None and gone.shown == "none" and gone.means_label is None
    assert any("no tap 'layer7/c'" in p for p in problems) and any("'pos'" in p for p in problems)
    assert PERTURB_STATE.fit(PerturbState(tap="layer1/c", units_text="0-11"), rec, problems := []) == \
        PerturbState(tap="layer1/c", units_text="0-11") and problems == []
