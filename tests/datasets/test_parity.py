"""The parity task: answers are the parity of the bits, annotations agree, splits and seeds differ."""

import numpy as np
import pytest

from lstmviz.datasets import DatasetError, load_dataset


def test_answer_is_the_parity_of_the_bits_and_annotations_agree():
    data = load_dataset("parity", "valid", items=200, length=7)
    assert len(data) == 200
    odd = 0
    for item in data:
        words = item.text.split()
        assert len(words) == 9 and words[7] == "="
        bits = [int(w) for w in words[:7]]
        expected = "odd" if sum(bits) % 2 else "even"
        assert words[8] == expected
        assert item.item_annotations["parity"] == (1 if expected == "odd" else 0)
        running = [sum(bits[: k + 1]) % 2 for k in range(7)]
        assert item.annotations["running_parity"].tolist() == running + [sum(bits) % 2] * 2
        assert item.annotations["token_class"].tolist() == [0] * 7 + [1, 2]
        assert item.annotations["bits_left"].tolist() == [6, 5, 4, 3, 2, 1, 0, 0, 0]
        odd += expected == "odd"
    assert 60 < odd < 140  # both answers occur (uniform bits)


def test_stream_is_the_items_back_to_back_and_mask_marks_answers():
    data = load_dataset("parity", "train", items=50, length=5)
    stream = data.token_stream()
    assert stream.tolist() == np.concatenate([item.tokens for item in data]).tolist()
    words = data.decode(stream[data.answer_mask()])
    assert len(words) == 50 and set(words) <= {"even", "odd"}


def test_splits_and_seeds_differ_and_repeat():
    a = load_dataset("parity", "train", items=20).token_stream()
    assert np.array_equal(a, load_dataset("parity", "train", items=20).token_stream())
    assert not np.array_equal(a, load_dataset("parity", "valid", items=20).token_stream())
    assert not np.array_equal(a, load_dataset("parity", "train", items=20, seed=1).token_stream())
    with pytest.raises(DatasetError):
        load_dataset("parity", "train", length=0)
