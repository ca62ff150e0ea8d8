"""The synthetic facts + descriptions dataset: its alignment labels are right and held-out names are unknown."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmviz.datasets import load_dataset
from lstmviz.datasets.base import DatasetError
from lstmviz.datasets.wikifacts import RELATIONS, SPECIALS, WikiFactsDataset
from lstmviz.engines.recurrent.nklm import parse_header

SMALL = {"entities": 100, "pool": 20, "seed": 3}


def test_copied_words_are_the_header_objects_the_labels_name():
    ds = WikiFactsDataset("train", **SMALL)
    copied = 0
    for item in ds:
        x = torch.as_tensor(item.tokens).unsqueeze(0)
        rel, obj, _, count, text_start = parse_header(x, 8, 8)
        ann = item.annotations
        assert count.item() == item.item_annotations["facts"]
        assert np.all(ann["source"][: text_start.item()] == 0)  # header
        for t in np.flatnonzero(ann["source"] == 2):
            k, n = int(ann["fact"][t]), int(ann["copy_pos"][t])
            assert item.tokens[t] == obj[0, k, n].item()
            assert ds.vocab[rel[0, k].item()] == RELATIONS[ann["relation"][t] - 1]
            copied += 1
        assert np.all(ann["fact"][ann["source"] != 2] == -1) and np.all(ann["copy_pos"][ann["source"] != 2] == -1)
        assert item.tokens[-1] == SPECIALS.index("<eos>")
    assert copied > len(ds)  # every document copies at least its name and an object


def test_splits_share_one_vocabulary_and_test_entities_are_held_out_and_unknown():
    train, test = (WikiFactsDataset(s, **SMALL) for s in ("train", "test"))
    assert train.vocab == test.vocab and tuple(train.vocab[:5]) == SPECIALS
    assert {i.item_annotations["entity"] for i in train}.isdisjoint({i.item_annotations["entity"] for i in test})
    K = train.closed_vocab(top=50)
    name_ids = [int(t) for item in test for t in item.tokens[2:4]]  # <fact> name w1 w2: the topic's name
    assert all(i >= K for i in name_ids)  # names of held-out entities are outside any closed vocabulary
    facts = [item.item_annotations["facts"] for item in train]
    assert min(facts) >= 3 and max(facts) <= 6 and len(set(facts)) > 1  # variable fact counts


def test_registered_deterministic_and_checked():
    a = load_dataset("wikifacts", "valid", **SMALL)
    b = load_dataset("wikifacts", "valid", **SMALL)
    assert np.array_equal(a[0].tokens, b[0].tokens) and a[0].text.startswith("<fact> name ")
    with pytest.raises(DatasetError, match="split"):
        WikiFactsDataset("dev")
    with pytest.raises(DatasetError, match="entities"):
        WikiFactsDataset("train", entities=3)
