"""ImageObjective: the loss it returns, the batches it draws, its accuracy, its own-loss path, its checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lstmviz.datasets.image_base import ImageError
from lstmviz.engines.families.image import ImageData, SampleImages
from lstmviz.engines.families.image.objective import ImageObjective


class Linear(nn.Module):
    def __init__(self, data):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(data.channels * data.height * data.width, data.num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


def prepared(task="class", images=10, batch=4, seed=0):
    data = ImageData(channels=1, height=4, width=4, num_classes=3, task=task)
    ds = SampleImages(data, images=images, seed=1)
    obj = ImageObjective()
    obj.prepare(ds, ds, {"batch_size": batch, "seed": seed}, torch.device("cpu"))
    return data, ds, obj


def test_every_image_once_per_epoch_in_a_seeded_order():
    _, _, obj = prepared(images=10, batch=5)
    first = np.concatenate([obj._next_batch() for _ in range(2)])
    assert sorted(first.tolist()) == list(range(10))
    _, _, again = prepared(images=10, batch=5)
    assert np.array_equal(np.concatenate([again._next_batch() for _ in range(2)]), first)
    _, _, other = prepared(images=10, batch=5, seed=1)
    assert not np.array_equal(np.concatenate([other._next_batch() for _ in range(2)]), first)


def test_class_loss_is_the_mean_cross_entropy_and_accuracy_the_argmax_hits():
    data, ds, obj = prepared()
    model = Linear(data)
    x = torch.from_numpy(np.stack([it.image for it in ds]))
    y = torch.tensor([it.target for it in ds])
    with torch.no_grad():
        logits = model(x)
    loss = obj.evaluate(model)
    assert loss == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-6)
    assert obj.metrics()["valid_accuracy"] == pytest.approx(float((logits.argmax(1) == y).float().mean()))
    torch.manual_seed(0)
    step_loss, count = obj.train_step(model)
    assert count == 4 and step_loss.requires_grad


def test_multilabel_loss_is_per_class_bce_and_accuracy_the_exact_set():
    data, ds, obj = prepared("multilabel")
    model = Linear(data)
    x = torch.from_numpy(np.stack([it.image for it in ds]))
    t = torch.from_numpy(np.stack([it.targets for it in ds]))
    with torch.no_grad():
        logits = model(x)
    assert obj.evaluate(model) == pytest.approx(float(F.binary_cross_entropy_with_logits(logits, t)), rel=1e-6)
    exact = ((logits > 0) == (t > 0.5)).all(1).float().mean()
    assert obj.metrics()["valid_accuracy"] == pytest.approx(float(exact))


def test_a_model_with_its_own_loss_is_trained_by_it():
    data, _, obj = prepared()
    model = Linear(data)
    seen = []
    model.loss = lambda images, batch: (seen.append((images.shape, batch["target"].shape)) or
                                        (images.sum() * 0 + 7.0, len(images)))
    loss, count = obj.train_step(model)
    assert float(loss) == 7.0 and count == 4 and seen[0] == (torch.Size([4, 1, 4, 4]), torch.Size([4]))
    assert obj.evaluate(model) == pytest.approx(7.0)


def test_an_own_loss_class_model_still_gets_its_argmax_accuracy_and_a_multilabel_one_none():
    data, ds, obj = prepared()
    model = Linear(data)
    model.loss = lambda images, batch: (images.sum() * 0 + 7.0, len(images))
    assert obj.evaluate(model) == pytest.approx(7.0)
    x = torch.from_numpy(np.stack([it.image for it in ds]))
    y = torch.tensor([it.target for it in ds])
    with torch.no_grad():
        expected = float((model(x).argmax(1) == y).float().mean())
    assert obj.metrics()["valid_accuracy"] == pytest.approx(expected)
    _, _, multi = prepared("multilabel")
    assert multi.evaluate(model) == pytest.approx(7.0)
    assert multi.metrics()["valid_accuracy"] is None


def test_a_bad_image_is_named_in_one_sentence():
    data = ImageData(channels=1, height=4, width=4, num_classes=3)
    ds = SampleImages(data, images=5, seed=1)
    ds._items[3].image = np.full((1, 4, 4), np.inf, np.float32)
    with pytest.raises(ImageError, match="training image 3 has 16 non-finite"):
        ImageObjective().prepare(ds, None, {"batch_size": 2, "seed": 0}, torch.device("cpu"))
