"""Linear probes on planted recordings: decodable labels are found, the rest stay at baseline."""

import numpy as np
import pytest

from lstmviz.analysis.probes import (
    INPUT_TAP,
    bootstrap_ci,
    fit_probe,
    input_baseline,
    probe_labels,
    split_items,
    top_units,
)
from lstmviz.recording import RecordingWriter, open_recording

UNITS = 12
VOCAB = 40
TAGS = ["A", "B", "C"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """80 items of 15..35 tokens.

    - ``tag`` (position, 3 classes, independent of the token): tap ``planted`` holds 2.0 · one-hot(tag)
      in units 3..5 plus unit noise everywhere; tap ``noise`` is pure noise.
    - ``xor`` (position, 2 classes) = sign(u0) XOR sign(u1) of tap ``xorbits`` (not linearly decodable).
    - ``kind`` (item, 2 classes): tap ``planted`` unit 7 holds 2.0 · kind.
    - ``count`` (numeric).
    """
    rng = np.random.default_rng(1)
    path = tmp_path_factory.mktemp("probes") / "planted.h5"
    with RecordingWriter(path, vocab=[f"w{i}" for i in range(VOCAB)]) as w:
        for name in ("planted", "noise", "xorbits"):
            w.add_tap(name, UNITS)
        w.add_annotation("tag", kind="categorical", labels=TAGS)
        w.add_annotation("xor", kind="categorical", labels=["same", "different"])
        w.add_annotation("kind", kind="categorical", level="item", labels=["k0", "k1"])
        w.add_annotation("count", kind="numeric")
        for _ in range(80):
            n = int(rng.integers(15, 36))
            tokens = rng.integers(0, VOCAB, n)
            tag = rng.choice(3, n, p=[0.5, 0.3, 0.2])
            kind = int(rng.integers(0, 2))
            planted_tap = 0.5 * rng.standard_normal((n, UNITS)).astype(np.float32)
            planted_tap[np.arange(n), 3 + tag] += 2.0
            planted_tap[:, 7] += 2.0 * kind
            xorbits = rng.standard_normal((n, UNITS)).astype(np.float32)
            xor = ((xorbits[:, 0] > 0) ^ (xorbits[:, 1] > 0)).astype(np.int64)
            w.append_item(tokens, {"planted": planted_tap, "noise": rng.standard_normal((n, UNITS)),
                                   "xorbits": xorbits},
                          annotations={"tag": tag, "xor": xor, "count": np.arange(n, dtype=float)},
                          item_annotations={"kind": kind})
    return path


@pytest.fixture
def rec(planted):
    with open_recording(planted) as r:
        yield r


def _fit(rec, tap, annotation, **kw):
    labels = probe_labels(rec, annotation)
    split = split_items(rec.n_items, seed=0)
    names = list(rec.annotations[annotation].labels)
    return fit_probe(rec, tap, labels, split, annotation=annotation, label_names=names, **kw)


def test_split_items_is_disjoint_and_covers_every_item(rec):
    train, valid, test = split_items(rec.n_items, seed=3)
    assert len(set(train) | set(valid) | set(test)) == rec.n_items
    assert not (set(train) & set(valid) or set(train) & set(test) or set(valid) & set(test))
    assert len(train) > len(valid) > 0 and len(test) > 0
    # every position lies in exactly one side, decided by its item
    items = rec.item_of(np.arange(rec.n_positions))
    side = np.select([np.isin(items, train), np.isin(items, valid), np.isin(items, test)], [0, 1, 2], -1)
    for item in range(rec.n_items):
        assert len(set(side[items == item])) == 1
    assert (side >= 0).all()
    assert not np.array_equal(split_items(rec.n_items, seed=4)[2], test)
    with pytest.raises(ValueError, match="at least 3 items"):
        split_items(2)


def test_planted_label_is_decoded_and_the_control_task_is_not(rec):
    real = _fit(rec, "planted", "tag")
    control = _fit(rec, "planted", "tag", control=True)
    assert real.accuracy > 0.97
    assert real.majority_accuracy < 0.6
    assert control.control and not real.control
    # the planted tap carries no token identity: the control probe cannot beat the majority by much
    assert control.accuracy < control.majority_accuracy + 0.08
    assert real.accuracy - control.accuracy > 0.3  # selectivity
    assert real.weights.shape == (3, UNITS) and real.bias.shape == (3,)
    assert real.confusion.shape == (3, 3) and real.confusion.sum() == real.n_test
    assert np.trace(real.confusion) / real.n_test == pytest.approx(real.accuracy)
    assert np.all(real.per_class_accuracy > 0.9)
    assert real.l2 in (1e-4, 1e-3, 1e-2, 1e-1)
    assert real.ci_low <= real.accuracy <= real.ci_high
    # the units with the largest weight per class are the planted ones
    top = top_units(real, k=1)
    assert [top[name][0][0] for name in TAGS] == [3, 4, 5]


def test_noise_tap_and_xor_label_stay_at_baseline(rec):
    noise = _fit(rec, "noise", "tag")
    assert abs(noise.accuracy - noise.majority_accuracy) < 0.08
    xor = _fit(rec, "xorbits", "xor")
    assert xor.accuracy < 0.62  # chance is 0.5; a linear probe cannot express XOR
    assert xor.ci_low < 0.6


def test_split_is_respected_by_the_fit(rec):
    labels = probe_labels(rec, "tag")
    train, valid, test = split_items(rec.n_items, seed=0)
    result = fit_probe(rec, "planted", labels, (train, valid, test))
    in_test = np.isin(rec.item_of(np.arange(rec.n_positions)), test)
    in_train = np.isin(rec.item_of(np.arange(rec.n_positions)), train)
    assert result.n_test == int(np.count_nonzero(in_test & (labels >= 0)))
    assert result.n_train == int(np.count_nonzero(in_train & (labels >= 0)))
    with pytest.raises(ValueError, match="overlap"):
        fit_probe(rec, "planted", labels, (train, np.concatenate([valid, test[:1]]), test))


def test_shifted_labels_are_the_next_token_within_the_item(rec):
    tag = probe_labels(rec, "tag")
    nxt = probe_labels(rec, "tag", shift=1)
    prev = probe_labels(rec, "tag", shift=-1)
    offsets = rec.item_offsets
    for i in range(rec.n_items):
        a, b = offsets[i], offsets[i + 1]
        np.testing.assert_array_equal(nxt[a:b - 1], tag[a + 1:b])
        assert nxt[b - 1] == -1
        np.testing.assert_array_equal(prev[a + 1:b], tag[a:b - 1])
        assert prev[a] == -1
    # the planted tap encodes the current tag, not the next one
    labels = nxt
    result = fit_probe(rec, "planted", labels, split_items(rec.n_items), label_names=TAGS)
    assert result.accuracy < result.majority_accuracy + 0.08
    assert result.n_test + result.n_train < np.count_nonzero(tag >= 0)


def test_item_level_labels_are_broadcast(rec):
    kind = probe_labels(rec, "kind")
    per_item = rec.annotation("kind")
    for i in range(rec.n_items):
        a, b = rec.item_range(i)
        assert (kind[a:b] == per_item[i]).all()
    result = _fit(rec, "planted", "kind")
    assert result.accuracy > 0.97
    assert result.labels == ["k0", "k1"]


def test_bad_annotation_is_a_sentence(rec):
    with pytest.raises(ValueError, match="categorical"):
        probe_labels(rec, "count")
    with pytest.raises(Exception, match="tag"):  # an unknown name lists the annotations the file has
        probe_labels(rec, "nope")


def test_bootstrap_ci_is_over_items_and_narrows_with_more_items():
    rng = np.random.default_rng(0)

    def width(n_items):
        items = np.repeat(np.arange(n_items), 20)
        # whole items right or wrong: positions are correlated within an item
        correct = np.repeat(rng.random(n_items) < 0.7, 20)
        low, high = bootstrap_ci(items, correct)
        assert low <= correct.mean() <= high
        return high - low

    few, many = width(20), width(500)
    assert many < few / 2
    # positions of one item are not independent samples: with 20 items of 20 identical outcomes the
    # interval is as wide as for 20 independent positions, not 400
    assert few > 0.2


def test_input_baseline_is_the_per_token_majority(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "tokens.h5"
    with RecordingWriter(path, vocab=[f"w{i}" for i in range(6)]) as w:
        w.add_tap("h", 4)
        w.add_annotation("parity", kind="categorical", labels=["even", "odd"])
        for _ in range(30):
            tokens = rng.integers(0, 6, 20)
            w.append_item(tokens, {"h": rng.standard_normal((20, 4))}, annotations={"parity": tokens % 2})
    with open_recording(path) as r:
        labels = probe_labels(r, "parity")
        split = split_items(r.n_items)
        base = input_baseline(r, labels, split, annotation="parity", label_names=["even", "odd"])
        assert base.tap == INPUT_TAP
        assert base.accuracy == 1.0
        assert base.weights.shape == (2, 6)
        np.testing.assert_array_equal(base.weights.argmax(0), np.arange(6) % 2)
        # the noise tap knows nothing of the tokens
        probe = fit_probe(r, "h", labels, split)
        assert probe.accuracy < 0.65


@pytest.mark.parametrize("memory_bytes", [None, 0, 1500 * 2 * UNITS])
@pytest.mark.parametrize("select_rows", [None, 200])
def test_every_data_path_finds_the_planted_tag(rec, monkeypatch, memory_bytes, select_rows):
    """In memory, streamed every epoch (memory_bytes=0), training rows in memory with evaluation
    streamed; with l2 chosen on all training rows or on a subset then refitted on all."""
    from lstmviz.analysis import probes

    if select_rows is not None:
        monkeypatch.setattr(probes, "SELECT_ROWS", select_rows)
    fit = _fit(rec, "planted", "tag", memory_bytes=memory_bytes)
    assert fit.accuracy > 0.97
    noise = _fit(rec, "noise", "tag", memory_bytes=memory_bytes)
    assert noise.accuracy < noise.majority_accuracy + 0.08
    assert set(fit.valid_accuracy) >= set(probes.DEFAULT_L2_GRID)  # and the decades refined around the best
    assert fit.converged and noise.converged
    # chosen on a subset, l2 is rescaled to the whole training set (the same C = 1 / (2 l2 n))
    scale = select_rows / fit.n_train if select_rows else 1.0
    best = max(fit.valid_accuracy.values())
    assert any(np.isclose(fit.l2, v * scale) for v, a in fit.valid_accuracy.items() if a == best)


def test_same_result_in_memory_and_streamed(rec):
    """The data path changes batch composition only: both fits land on the same accuracy."""
    a = _fit(rec, "planted", "tag")
    b = _fit(rec, "planted", "tag", memory_bytes=0)
    assert abs(a.accuracy - b.accuracy) < 0.02
    assert a.n_train == b.n_train and a.n_test == b.n_test


def test_standardised_stored_and_streamed_rows_give_the_same_fit(rec, monkeypatch):
    """The three ways of holding the training rows (standardised once in memory; as stored, standardised
    on every pass; read from the file on every pass) feed the optimiser the same numbers: at one l2,
    fitted tightly, they reach the same probe."""
    from lstmviz.analysis import probes
    from lstmviz.analysis.probes import _roles

    labels = probe_labels(rec, "tag")
    split = split_items(rec.n_items, seed=0)
    n_train = int(np.count_nonzero((_roles(rec, split) == 0) & (labels >= 0)))
    paths = []
    collect = probes._ProbeData.collect

    def spy(self, progress):
        collect(self, progress)
        paths.append((type(self.train).__name__, getattr(self.train, "standardised", None), self.eval_in_memory))

    monkeypatch.setattr(probes._ProbeData, "collect", spy)
    monkeypatch.setattr(probes, "MIN_KEPT_ROWS", 100)  # so that a small budget streams the training rows
    fits = [fit_probe(rec, "planted", labels, split, l2_grid=(1e-2,), refine_grid=False, tol=1e-9,
                      memory_bytes=budget)
            for budget in (None, n_train * 4 * UNITS, 0)]
    assert paths == [("_InMemoryRows", True, True), ("_InMemoryRows", False, False), ("_StreamedRows", None, False)]
    for other in fits[1:]:
        assert other.converged and other.l2 == fits[0].l2 == 1e-2
        assert abs(other.objective - fits[0].objective) <= 1e-7 * fits[0].objective  # the optimum, to 1e-7
        np.testing.assert_allclose(other.weights, fits[0].weights, rtol=0, atol=1e-4 * np.abs(fits[0].weights).max())
        np.testing.assert_allclose(other.bias, fits[0].bias, rtol=0, atol=1e-4 * np.abs(fits[0].bias).max())
        np.testing.assert_array_equal(other.confusion, fits[0].confusion)


def test_subsampled_fit(rec):
    sub = _fit(rec, "planted", "tag", max_positions=300)
    assert sub.n_train == 300
    assert sub.accuracy > 0.9


def test_control_probe_reuses_the_rows_of_the_probe(rec, monkeypatch):
    """``shared`` carries the standardised rows from a probe to its control: the tap is read once,
    and the control's result is the same as a control fitted on its own."""
    reads = []
    original = rec.raw_states

    def counting(tap, *args, **kw):
        reads.append(tap)
        return original(tap, *args, **kw)

    labels = probe_labels(rec, "tag")
    split = split_items(rec.n_items, seed=0)
    alone = fit_probe(rec, "planted", labels, split, control=True)
    monkeypatch.setattr(rec, "raw_states", counting)
    shared = {}
    fit_probe(rec, "planted", labels, split, shared=shared)
    first = len(reads)
    control = fit_probe(rec, "planted", labels, split, control=True, shared=shared)
    assert first > 0 and len(reads) == first  # the control read nothing
    assert control.accuracy == alone.accuracy
    np.testing.assert_allclose(control.weights, alone.weights, rtol=1e-5, atol=1e-6)


def test_standard_error_of_the_validation_accuracy_counts_items_and_never_vanishes():
    from lstmviz.analysis.probes import _clustered_se

    totals = np.full(10, 50)
    # the same 80% accuracy: spread evenly over items, or all-or-nothing per item (items are the unit)
    even = _clustered_se(np.full(10, 40), totals)
    lumpy = _clustered_se(np.array([50] * 8 + [0] * 2), totals)
    assert even == pytest.approx(np.sqrt((401 / 502) * (101 / 502) / 500))  # the binomial floor
    assert lumpy > 3 * even
    assert _clustered_se(totals.copy(), totals) > 0  # a perfect score still has an error
