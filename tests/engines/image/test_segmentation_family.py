"""The image family's segmentation task: masks on items (checked in words), the objective's per-pixel loss with
ignored pixels, pixel accuracy and Dice against numpy, and the refusal of a classifier on segmentation data."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

from lstmviz.datasets.image_base import IGNORE, TASKS, ImageError, ImageItem, check_mask
from lstmviz.engines.families.image import ImageData, SampleImages
from lstmviz.engines.families.image.objective import (ImageObjective, check_logits, mean_dice, segmentation_loss,
                                                      stack_masks)

K, H, W = 4, 5, 6


def seg_data(classes=K) -> ImageData:
    return ImageData(channels=1, height=H, width=W, num_classes=classes, task="segmentation")


class PixelLinear(nn.Module):
    """A 1x1 convolution: per-pixel logits ``[B, K, H, W]``."""

    def __init__(self, data, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(data.channels, data.num_classes, 1)

    def forward(self, x):
        return self.conv(x)


class ImageLinear(nn.Module):
    def __init__(self, data):
        super().__init__()
        self.fc = nn.Linear(data.channels * data.height * data.width, data.num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


class MaskedImages(SampleImages):
    """SampleImages whose masks are replaced (ignored pixels and absent classes on purpose)."""

    def __init__(self, data, masks, seed=1):
        super().__init__(data, images=len(masks), seed=seed)
        for item, mask in zip(self._items, masks):
            item.mask = np.asarray(mask, np.int64)


def log_softmax_np(z, axis):
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


# ------------------------------------------------------------------------------------------ data checks
def test_segmentation_is_a_task_of_the_family():
    assert "segmentation" in TASKS
    assert ImageData(channels=1, height=4, width=4, num_classes=11, task="segmentation").task == "segmentation"
    with pytest.raises(ValueError, match="segmentation"):
        ImageData(channels=1, height=4, width=4, num_classes=3, task="depth")


def test_a_mask_of_the_wrong_shape_or_values_is_refused_in_one_sentence():
    image = np.zeros((1, H, W), np.float32)
    tokens = np.zeros(H * W, np.int64)
    item = ImageItem(image=image, tokens=tokens, mask=np.zeros((H, W), np.int32))
    assert item.mask.dtype == np.int64 and item.mask.shape == (H, W)
    bad = {
        "shape": (np.zeros((H, W + 1), np.int64), "width 7"),
        "ndim": (np.zeros((1, H, W), np.int64), r"expected \[height, width\]"),
        "below -1": (np.full((H, W), -2, np.int64), "pixel class -2"),
        "float": (np.zeros((H, W), np.float32), "integer pixel class ids"),
    }
    for name, (mask, message) in bad.items():
        with pytest.raises(ImageError, match=message) as info:
            ImageItem(image=image, tokens=tokens, mask=mask)
        text = str(info.value)
        assert "\n" not in text and not re.search(r"\.\s+[A-Z]", text), (name, text)  # one sentence
    with pytest.raises(ImageError, match=r"pixel class 4; expected -1 \(ignored\) or a class id in 0 \.\. 3"):
        check_mask(np.full((H, W), 4), height=H, width=W, num_classes=K)
    with pytest.raises(ImageError, match="missing"):
        check_mask(None, num_classes=K)
    ok = np.full((H, W), -1)
    ok[0, 0] = K - 1
    assert np.array_equal(check_mask(ok, height=H, width=W, num_classes=K), ok)


def test_sample_images_carry_masks_with_an_ignored_pixel_and_stack():
    data = seg_data()
    images = SampleImages(data, images=5, seed=2)
    assert images.class_names[0] == "background" and len(images.class_names) == K
    masks = stack_masks(images, data, "training")
    assert masks.shape == (5, H, W) and masks.dtype == np.int64
    assert np.array_equal(masks, np.stack([it.mask for it in images]))
    assert (masks[:, 0, 0] == IGNORE).all() and (masks >= 1).any() and (masks == 0).any()
    # the rectangle (stroke) pixels are the foreground
    for it in images:
        on = it.annotations["stroke"].reshape(H, W) > 0
        assert ((it.mask > 0) == on)[1:].all()


def test_a_bad_mask_in_a_split_names_the_image():
    data = seg_data()
    masks = [np.zeros((H, W), np.int64) for _ in range(3)]
    masks[2][1, 1] = K  # out of range: K classes are 0 .. K-1
    with pytest.raises(ImageError, match="training image 2's mask has pixel class 4"):
        ImageObjective().prepare(MaskedImages(data, masks), None, {"batch_size": 2, "seed": 0}, torch.device("cpu"))


# ------------------------------------------------------------------------------------------ the objective
def test_default_loss_is_the_mean_cross_entropy_over_the_non_ignored_pixels():
    data = seg_data()
    rng = np.random.default_rng(0)
    masks = [rng.integers(-1, K, (H, W)) for _ in range(4)]
    images = MaskedImages(data, masks)
    obj = ImageObjective()
    obj.prepare(images, images, {"batch_size": 4, "seed": 0}, torch.device("cpu"))
    model = PixelLinear(data).double()
    x = np.stack([it.image for it in images]).astype(np.float64)
    with torch.no_grad():
        z = model(torch.from_numpy(x)).numpy()  # [B, K, H, W]
    m = np.stack(masks)
    logp = log_softmax_np(z, axis=1)
    b, y, xx = np.nonzero(m != IGNORE)
    hand = -logp[b, m[b, y, xx], y, xx].mean()
    assert (m == IGNORE).sum() > 5  # the ignored pixels are really there
    assert obj.evaluate(model) == pytest.approx(hand, rel=1e-10)
    loss, count = obj.train_step(model)  # the batch is all four images (in a shuffled order)
    assert count == 4 and float(loss.detach()) == pytest.approx(hand, rel=1e-10) and loss.requires_grad
    # an ignored pixel's logits get no gradient
    logits = torch.from_numpy(z).requires_grad_(True)
    segmentation_loss(logits, torch.from_numpy(m)).backward()
    assert (logits.grad.abs().sum(1).numpy()[m == IGNORE] == 0).all()
    assert (logits.grad.abs().sum(1).numpy()[m != IGNORE] > 0).all()


def test_a_batch_with_every_pixel_ignored_gives_zero_not_nan():
    logits = torch.randn(2, K, H, W, requires_grad=True)
    loss = segmentation_loss(logits, torch.full((2, H, W), IGNORE))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_pixel_accuracy_and_dice_equal_a_numpy_computation():
    data = seg_data()
    rng = np.random.default_rng(3)
    masks = [rng.choice([-1, 0, 1, 2], size=(H, W), p=[0.2, 0.4, 0.2, 0.2]) for _ in range(6)]  # class 3 absent
    images = MaskedImages(data, masks, seed=4)
    obj = ImageObjective()
    obj.prepare(images, images, {"batch_size": 3, "seed": 0}, torch.device("cpu"))
    model = PixelLinear(data, seed=2).double()
    with torch.no_grad():
        model.conv.bias.copy_(torch.tensor([0.0, 0.3, -0.2, -5.0], dtype=torch.float64))  # class 3 never predicted
    x = np.stack([it.image for it in images]).astype(np.float64)
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).numpy().argmax(1)
    m = np.stack(masks)
    valid = m != IGNORE
    obj.evaluate(model)
    metrics = obj.metrics()
    assert metrics["valid_accuracy"] == pytest.approx((pred[valid] == m[valid]).mean())
    dices = []
    for k in range(1, K):  # class 0 is the background; a class absent from both is skipped
        p, t = (pred == k) & valid, (m == k) & valid
        if p.sum() + t.sum() == 0:
            continue
        dices.append(2 * (p & t).sum() / (p.sum() + t.sum()))
    assert not (((pred == 3) & valid).any() or (m == 3).any()) and len(dices) == 2  # class 3 was skipped
    assert metrics["valid_dice"] == pytest.approx(np.mean(dices))


def test_dice_skips_a_class_absent_from_both_and_counts_one_missed_as_zero():
    #            background, absent from both, predicted only, perfect
    inter = np.array([5, 0, 0, 4])
    predicted = np.array([6, 0, 3, 4])
    actual = np.array([7, 0, 0, 4])
    assert mean_dice(inter, predicted, actual) == pytest.approx((0.0 + 1.0) / 2)
    assert mean_dice([3, 0], [3, 0], [3, 0]) is None  # only the background: nothing to average


def test_a_classifier_on_segmentation_data_is_refused_in_words():
    data = seg_data()
    images = SampleImages(data, images=4, seed=0)
    obj = ImageObjective()
    obj.prepare(images, None, {"batch_size": 2, "seed": 0}, torch.device("cpu"))
    with pytest.raises(ValueError, match=r"one class per image.*per-pixel logits \[images, classes, height, width\]"):
        obj.train_step(ImageLinear(data))
    with pytest.raises(ValueError, match=r"the class task needs \[images, classes\]"):
        check_logits(torch.zeros(2, K, H, W), "class", 2, K, H, W)


def test_an_own_loss_gets_the_masks_and_other_tasks_none():
    data = seg_data()
    images = SampleImages(data, images=4, seed=0)
    obj = ImageObjective()
    obj.prepare(images, images, {"batch_size": 2, "seed": 0}, torch.device("cpu"))
    model = PixelLinear(data)
    seen = []
    model.loss = lambda x, batch: (seen.append(batch) or (x.sum() * 0 + 1.0, len(x)))
    obj.train_step(model)
    mask = seen[0]["mask"]
    assert mask.dtype == torch.int64 and tuple(mask.shape) == (2, H, W)
    stacked = np.stack([it.mask for it in images])
    assert any(np.array_equal(mask[0].numpy(), s) for s in stacked)
    cls = ImageData(channels=1, height=H, width=W, num_classes=K)
    obj2 = ImageObjective()
    obj2.prepare(SampleImages(cls, images=4), None, {"batch_size": 2, "seed": 0}, torch.device("cpu"))
    plain = ImageLinear(cls)
    plain.loss = lambda x, batch: (seen.append(batch) or (x.sum() * 0 + 1.0, len(x)))
    obj2.train_step(plain)
    assert seen[-1]["mask"] is None


def test_an_own_loss_segmentation_model_still_gets_pixel_accuracy_and_dice():
    data = seg_data()
    images = SampleImages(data, images=6, seed=3)
    obj = ImageObjective()
    obj.prepare(images, images, {"batch_size": 2, "seed": 0}, torch.device("cpu"))
    model = PixelLinear(data, seed=5).double()
    model.loss = lambda x, batch: (x.sum() * 0 + 2.5, len(x))
    assert obj.evaluate(model) == pytest.approx(2.5)
    x = torch.from_numpy(np.stack([it.image for it in images])).double()
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    m = np.stack([it.mask for it in images])
    valid = m != IGNORE
    assert obj.metrics()["valid_accuracy"] == pytest.approx((pred[valid] == m[valid]).mean())
    assert obj.metrics()["valid_dice"] is not None
