"""The pair datasets (datasets/pairs.py): shared vocabulary with <pad> <bos> <eos>, targets, annotations,
determinism, splits, bad options; translit's two spellings per digit."""

import numpy as np
import pytest

from lstmviz.datasets import DatasetError, load_dataset, registry
from lstmviz.datasets.pairs_base import BOS, EOS, PAD, SPECIALS, PairDataset, PairItem, is_pair_dataset


def _check(ds):
    assert isinstance(ds, PairDataset) and is_pair_dataset(ds)
    assert tuple(ds.vocab[:3]) == SPECIALS and (PAD, BOS, EOS) == (0, 1, 2)
    spec = registry.get(ds.name)
    assert {s.name for s in ds.annotation_specs} == set(spec.annotations)
    for item in ds:
        assert isinstance(item, PairItem)
        assert item.tokens.dtype == np.int64 and item.target.dtype == np.int64
        assert item.tokens.min() >= 3 and item.target.min() >= 3  # no specials inside a pair
        assert item.tokens.max() < len(ds.vocab) and item.target.max() < len(ds.vocab)
        for a in ds.annotation_specs:
            if a.level == "position":
                assert item.annotations[a.name].shape == (len(item),), a.name
            else:
                assert a.name in item.item_annotations


def test_reverse_targets_are_the_reversed_sources_and_annotations_say_when_each_token_is_emitted():
    ds = load_dataset("reverse", "train", items=200, min_length=3, max_length=12)
    _check(ds)
    lengths = {len(item) for item in ds}
    assert min(lengths) == 3 and max(lengths) == 12
    for item in ds:
        assert np.array_equal(item.target, item.tokens[::-1])
        n = len(item)
        assert np.array_equal(item.annotations["from_end"], np.arange(n - 1, -1, -1))
        # from_end[i] is the target position that holds source token i
        assert all(item.target[int(item.annotations["from_end"][i])] == item.tokens[i] for i in range(n))
        assert item.item_annotations["source_length"] == n
        assert np.array_equal(item.annotations["symbol"] + 3, item.tokens)
    assert ds.decode(ds[0].tokens) == ds[0].text.split()


def test_splits_differ_and_a_seed_reproduces():
    a = load_dataset("reverse", "train", items=30)
    again = load_dataset("reverse", "train", items=30)
    valid = load_dataset("reverse", "valid", items=30)
    other = load_dataset("reverse", "train", items=30, seed=1)
    assert all(np.array_equal(x.tokens, y.tokens) for x, y in zip(a, again))
    assert a.vocab == valid.vocab == other.vocab
    assert not all(np.array_equal(x.tokens, y.tokens) for x, y in zip(a, valid))
    assert not all(np.array_equal(x.tokens, y.tokens) for x, y in zip(a, other))
    assert len(load_dataset("reverse", "valid")) == 500


def test_translit_spells_every_digit_one_of_two_ways_chosen_per_occurrence():
    ds = load_dataset("translit", "train", items=300)
    _check(ds)
    table = ds.table
    spellings = [s for pair in table for s in pair]
    assert len(set(spellings)) == 20 and all(1 <= len(s) <= 3 for s in spellings)
    used = {d: set() for d in range(10)}
    for item in ds:
        digits = item.annotations["digit"]
        assert np.array_equal(digits + ds.digit0, item.tokens)
        rebuilt = []
        for j, (d, v) in enumerate(zip(digits.tolist(), item.annotations["variant"].tolist())):
            assert item.annotations["target_start"][j] == len(rebuilt)
            rebuilt.extend(ds.letter0 + x for x in table[d][v])
            used[d].add(v)
        assert rebuilt == item.target.tolist()
        assert item.target.tolist() in ds.references(digits)
        assert item.item_annotations["target_length"] == len(item.target)
    assert all(v == {0, 1} for v in used.values())  # both spellings occur for every digit
    # multimodal: the same source has several references
    assert len(ds.references([1, 2, 3])) > 1
    # the table is the same in every split and seed; the pairs are not
    other = load_dataset("translit", "valid", items=20, seed=3)
    assert other.table == table and other.vocab == ds.vocab


def test_bad_options_are_named():
    with pytest.raises(DatasetError, match="max_length"):
        load_dataset("reverse", max_length=2, min_length=5)
    with pytest.raises(DatasetError, match="symbols"):
        load_dataset("reverse", symbols=40)
    with pytest.raises(DatasetError, match="items"):
        load_dataset("translit", items=0)
    with pytest.raises(DatasetError, match="no split"):
        load_dataset("translit", "dev")
