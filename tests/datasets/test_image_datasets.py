"""The image datasets: digits (sizes, resizing), digits-color, digits-multi, photos."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from lstmviz.datasets import load_dataset
from lstmviz.datasets.base import DatasetError, MissingDependency
from lstmviz.datasets.image_base import check_image
from lstmviz.datasets.images import photos
from lstmviz.datasets.images.common import resize
from lstmviz.datasets.images.digits import load_digits


def test_digits_splits_are_disjoint_deterministic_and_cover_the_set():
    splits = {s: load_dataset("digits", s) for s in ("train", "valid", "test")}
    assert [len(d) for d in splits.values()] == [1078, 359, 360]
    images, labels = load_digits()
    seen = []
    for d in splits.values():
        # each image is one of sklearn's, labelled as sklearn labels it
        flat = images.reshape(len(images), -1)
        for k in (0, len(d) - 1):
            matches = np.flatnonzero((flat == d[k].image.reshape(-1)).all(1))
            assert len(matches) >= 1 and labels[matches[0]] == d[k].target == d[k].item_annotations["class"]
        seen.append(d.images.reshape(len(d), -1))
    assert sum(len(s) for s in seen) == 1797
    again = load_dataset("digits", "valid")
    assert np.array_equal(again.images, splits["valid"].images)
    assert not np.array_equal(load_dataset("digits", "valid", seed=1).images, again.images)


def test_digits_items_pass_check_image_and_carry_their_annotations():
    d = load_dataset("digits", "train", max_images=20)
    assert (d.channels, d.height, d.width, d.num_classes, d.task) == (1, 8, 8, 10, "class")
    item = d[3]
    check_image(item.image, channels=1, height=8, width=8)
    assert item.image.min() >= 0 and item.image.max() <= 1
    assert np.array_equal(item.annotations["stroke"], (item.image.reshape(-1) > 0.25).astype(int))
    assert item.annotations["quadrant"][[0, 7, 56, 63]].tolist() == [0, 1, 2, 3]
    assert item.annotations["row"][9] == 1 and item.annotations["col"][9] == 1
    assert len(item.tokens) == 64 and item.tokens.max() < len(d.vocab)


def test_nearest_upsampling_repeats_pixels_and_bilinear_keeps_the_mean_and_range():
    d8 = load_dataset("digits", "test", max_images=5)
    d16 = load_dataset("digits", "test", max_images=5, size=16)
    assert np.array_equal(d16.images, d8.images.repeat(2, axis=2).repeat(2, axis=3))
    b32 = load_dataset("digits", "test", max_images=5, size=32, resize="bilinear")
    assert b32.images.shape == (5, 1, 32, 32)
    assert b32.images.min() >= 0 and b32.images.max() <= 1
    np.testing.assert_allclose(b32.images.mean(axis=(2, 3)), d8.images.mean(axis=(2, 3)), atol=0.03)
    ramp = np.arange(4, dtype=np.float32).reshape(1, 1, 1, 4).repeat(4, axis=2)
    up = resize(ramp, 8, "bilinear")[0, 0, 0]
    assert np.all(np.diff(up) >= 0) and up[0] == 0 and up[-1] == 3  # monotone, edges clamped
    with pytest.raises(DatasetError, match="size"):
        load_dataset("digits", size=12)


def test_digits_color_paints_fg_and_bg_colours():
    from lstmviz.datasets.images.digits import COLORS

    d = load_dataset("digits-color", "train", max_images=10)
    gray = load_dataset("digits", "train", max_images=10)
    palette = np.array(list(COLORS.values()), np.float32)
    assert d.channels == 3
    for k in range(10):
        item = d[k]
        fg, bg = item.item_annotations["fg_color"], item.item_annotations["bg_color"]
        assert fg != bg
        v = gray[k].image
        expected = palette[bg][:, None, None] * (1 - v) + palette[fg][:, None, None] * v
        np.testing.assert_allclose(item.image, expected, atol=1e-6)


def test_digits_multi_targets_are_the_digits_placed_and_digit_here_marks_their_strokes():
    d = load_dataset("digits-multi", "valid", max_images=30)
    assert (d.height, d.width, d.task) == (16, 16, "multilabel")
    for k in range(30):
        item = d[k]
        here = item.annotations["digit_here"].reshape(16, 16)
        assert item.item_annotations["digits"] in (2, 3)
        present = set(np.flatnonzero(item.targets).tolist())
        assert set(np.unique(here[here < 10]).tolist()) <= present and 1 <= len(present) <= 3
        assert item.target == min(present)
        stroke = item.image[0] > 0.25
        assert np.array_equal(here < 10, stroke)  # every stroke pixel belongs to a digit, and only those


def test_photos_patches_and_annotations():
    pytest.importorskip("PIL", reason="the photos dataset needs Pillow (the vision extra)")
    d = load_dataset("photos", "train", max_images=12, size=8)
    assert (d.channels, d.height, d.width, d.class_names) == (3, 8, 8, ("china", "flower"))
    item = d[0]
    check_image(item.image, channels=3, height=8, width=8)
    flat = item.image.reshape(3, -1)
    assert np.array_equal(item.annotations["dominant"], flat.argmax(0))
    assert np.array_equal(item.annotations["brightness"], np.minimum((flat.mean(0) * 4).astype(int), 3))
    full = photos.load_photos()
    assert full.shape == (2, 3, 427, 640)


def test_photos_without_pillow_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_pil(name, *args, **kwargs):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("No module named 'PIL'")
        return real_import(name, *args, **kwargs)

    photos.load_photos.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_pil)
    try:
        with pytest.raises(MissingDependency, match=r"lstmviz\[vision\]"):
            load_dataset("photos", "train")
    finally:
        monkeypatch.undo()
        photos.load_photos.cache_clear()


def test_digits_themes_draw_the_digits_of_an_image_from_its_theme_except_strays():
    from lstmviz.datasets.images.digits import THEMES

    strict = load_dataset("digits-themes", "train", stray=0.0)
    assert (strict.height, strict.width, strict.task) == (16, 16, "multilabel")
    theme = strict.item["theme"]
    for k in range(len(strict)):
        present = set(np.flatnonzero(strict.multi[k]).tolist())
        assert present and present <= set(THEMES[theme[k]])  # no stray: only the theme's digits
        here = strict[k].annotations["digit_here"]
        assert set(np.unique(here[here < 10]).tolist()) <= present
    # labels of different themes never co-occur (a structured co-occurrence, unlike digits-multi)
    together = strict.multi.T @ strict.multi
    for a, group in enumerate(THEMES):
        for b, other in enumerate(THEMES):
            if a != b:
                assert together[np.ix_(group, other)].sum() == 0
    loose = load_dataset("digits-themes", "train")  # stray 0.1: some digits outside the theme
    outside = sum(not set(np.flatnonzero(loose.multi[k]).tolist()) <= set(THEMES[loose.item["theme"][k]])
                  for k in range(len(loose)))
    assert 0 < outside < 0.35 * len(loose)
    with pytest.raises(DatasetError, match="stray"):
        load_dataset("digits-themes", "train", stray=1.5)
