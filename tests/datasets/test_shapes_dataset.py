"""The ``shapes`` dataset: seeded images that are the union of their outline shapes, the top-most object per pixel,
overlaps marked and ignored in the mask, and options checked in words."""

import numpy as np
import pytest

from lstmviz.datasets import DatasetError, load_dataset
from lstmviz.datasets.images.shapes import SHAPES, scene


def test_the_three_shapes_are_the_reference_outlines():
    square, up, down = SHAPES
    assert square.shape == (7, 7) and square.sum() == 49 - 9 and not square[2:5, 2:5].any()
    assert up.shape == (7, 12) and up[5:].all() and up[0].sum() == 2 and not up[3, 5:7].any()
    assert np.array_equal(down, up[::-1])


def test_an_image_is_the_union_of_its_shapes_and_each_pixel_names_its_top_most_object():
    rng = np.random.default_rng(7)
    image, obj, cover, kind = scene(rng, shapes=3)
    assert set(np.unique(image)) <= {0.0, 1.0}
    assert np.array_equal(image > 0, cover > 0) and np.array_equal(obj > 0, cover > 0)
    # painting again in order reproduces the top-most ids
    rng = np.random.default_rng(7)
    ids = np.zeros((20, 20), np.int64)
    for k in range(1, 4):
        shape = SHAPES[int(rng.integers(0, 3))]
        h, w = shape.shape
        y, x = int(rng.integers(0, 20 - h + 1)), int(rng.integers(0, 20 - w + 1))
        ids[y:y + h, x:x + w][shape] = k
    assert np.array_equal(ids, obj)


def test_splits_are_seeded_and_the_mask_ignores_overlaps():
    train = load_dataset("shapes", "train", images=200)
    again = load_dataset("shapes", "train", images=200)
    other = load_dataset("shapes", "train", images=200, seed=1)
    assert len(train) == 120 and np.array_equal(train.images, again.images)
    assert not np.array_equal(train.images, other.images)
    assert train.task == "segmentation" and train.class_names == ("background", "object 1", "object 2", "object 3")
    overlaps = 0
    for i in range(len(train)):
        item = train[i]
        obj, overlap = item.annotations["object"].reshape(20, 20), item.annotations["overlap"].reshape(20, 20)
        assert np.array_equal(item.mask, np.where(overlap > 0, -1, obj))
        assert np.array_equal(item.tokens.reshape(20, 20), item.image[0].astype(np.int64))
        assert item.item_annotations["visible"] == len(set(item.mask[item.mask > 0].tolist()))
        overlaps += int(overlap.sum())
    assert overlaps > 0  # overlaps happen and are marked


def test_bad_options_are_refused_in_words():
    with pytest.raises(DatasetError, match="'shapes' must be at most 5"):
        load_dataset("shapes", "train", shapes=9)
    with pytest.raises(DatasetError, match="has no option 'size'"):
        load_dataset("shapes", "train", size=32)
    with pytest.raises(DatasetError, match="'images' must be an integer >= 5"):
        load_dataset("shapes", "train", images=2)
