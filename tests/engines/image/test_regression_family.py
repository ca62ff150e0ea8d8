"""The image family's regression task: target maps on items (checked in words), the objective's mean squared
error and the split's RMSE against numpy, the batch's target_map for an engine's own loss (which still gets
valid_rmse), the refusal of a classifier on regression data, the contract's data, and the recorder's numeric
per-pixel target / prediction annotations."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

from lstmviz.datasets.image_base import TASKS, ImageError, ImageItem, check_target_map
from lstmviz.engines.families.image import ImageData, SampleImages
from lstmviz.engines.families.image.contract import TARGET_CHANNELS, data_for, output_shape, supported_tasks
from lstmviz.engines.families.image.objective import ImageObjective, check_logits, stack_target_maps
from lstmviz.recording.image_recorder import record_images, regression_names
from lstmviz.recording.reader import open_recording

CT, H, W = 2, 5, 6


def reg_data(ct=CT, channels=1) -> ImageData:
    return ImageData(channels=channels, height=H, width=W, num_classes=ct, task="regression")


class PixelLinear(nn.Module):
    """A 1x1 convolution: per-pixel values ``[B, Ct, H, W]``."""

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


class MappedImages(SampleImages):
    """SampleImages whose target maps are replaced."""

    def __init__(self, data, maps, seed=1):
        super().__init__(data, images=len(maps), seed=seed)
        for item, m in zip(self._items, maps):
            item.target_map = np.asarray(m, np.float32)


def test_regression_is_a_task_whose_num_classes_counts_target_channels():
    assert "regression" in TASKS
    data = ImageData(channels=4, height=8, width=8, num_classes=1, task="regression")
    assert data.task == "regression" and data.num_classes == 1
    images = SampleImages(reg_data(), images=3)
    assert images.num_classes == CT and images.class_names == ("c0", "c1")
    for it in images:
        assert it.target_map.shape == (CT, H, W) and it.target_map.dtype == np.float32
        np.testing.assert_allclose(it.target_map[1], 0.5 * it.image[0] + 0.25, rtol=1e-6)


def test_a_target_map_of_the_wrong_shape_or_non_finite_is_refused_in_one_sentence():
    image = np.zeros((1, H, W), np.float32)
    tokens = np.zeros(H * W, np.int64)
    item = ImageItem(image=image, tokens=tokens, target_map=np.zeros((1, H, W), np.float64))
    assert item.target_map.dtype == np.float32
    nan = np.zeros((CT, H, W))
    nan[0, 1, 1] = np.nan
    bad = {
        "width": (np.zeros((CT, H, W + 1)), "7 width"),
        "ndim": (np.zeros((H, W)), r"expected \[target channels, height, width\]"),
        "nan": (nan, "1 non-finite value"),
        "inf": (np.full((CT, H, W), np.inf), "60 non-finite value"),
        "bool": (np.zeros((CT, H, W), bool), "expected real numbers"),
    }
    for name, (target_map, message) in bad.items():
        with pytest.raises(ImageError, match=message) as info:
            ImageItem(image=image, tokens=tokens, target_map=target_map)
        text = str(info.value)
        assert "\n" not in text and not re.search(r"\.\s+[A-Z]", text), (name, text)  # one sentence
    with pytest.raises(ImageError, match="3 target channels"):
        check_target_map(np.zeros((3, H, W)), channels=CT)
    with pytest.raises(ImageError, match="missing"):
        check_target_map(None)


def test_a_bad_target_map_in_a_split_names_the_image():
    data = reg_data()
    maps = [np.zeros((CT, H, W)) for _ in range(3)]
    maps[2] = np.zeros((1, H, W))
    with pytest.raises(ImageError, match="training image 2's target map has 1 target channels"):
        ImageObjective().prepare(MappedImages(data, maps), None, {"batch_size": 2, "seed": 0}, torch.device("cpu"))


def test_default_loss_is_the_mse_and_valid_rmse_the_root_of_the_splits_mse():
    data = reg_data()
    rng = np.random.default_rng(0)
    maps = [rng.normal(size=(CT, H, W)) for _ in range(5)]
    images = MappedImages(data, maps)
    obj = ImageObjective()
    obj.prepare(images, images, {"batch_size": 5, "seed": 0}, torch.device("cpu"))
    model = PixelLinear(data).double()
    x = np.stack([it.image for it in images]).astype(np.float64)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).numpy()
    mse = ((y - np.stack(maps)) ** 2).mean()
    assert obj.evaluate(model) == pytest.approx(mse, rel=1e-6)
    metrics = obj.metrics()
    assert metrics["valid_accuracy"] is None and metrics["valid_rmse"] == pytest.approx(np.sqrt(mse), rel=1e-6)
    loss, count = obj.train_step(model)
    assert count == 5 and float(loss.detach()) == pytest.approx(mse, rel=1e-6) and loss.requires_grad
    assert np.array_equal(stack_target_maps(images, data, "training"), np.stack(maps).astype(np.float32))


def test_valid_rmse_pools_the_split_over_chunks(monkeypatch):
    from lstmviz.engines.families.image import objective

    monkeypatch.setattr(objective, "EVAL_CHUNK", 2)  # chunks of 2, 2, 1: a mean of per-chunk roots would differ
    data = reg_data(ct=1)
    maps = [np.full((1, H, W), v) for v in (0.0, 0.0, 0.0, 0.0, 3.0)]
    images = MappedImages(data, maps)
    obj = ImageObjective()
    obj.prepare(images, images, {"batch_size": 2, "seed": 0}, torch.device("cpu"))
    model = PixelLinear(data).double()
    nn.init.zeros_(model.conv.weight)
    nn.init.zeros_(model.conv.bias)
    obj.evaluate(model)
    assert obj.metrics()["valid_rmse"] == pytest.approx(np.sqrt(9.0 / 5))


def test_an_own_loss_gets_the_target_map_and_still_gets_valid_rmse():
    data = reg_data()
    images = SampleImages(data, images=4, seed=0)
    obj = ImageObjective()
    obj.prepare(images, images, {"batch_size": 2, "seed": 0}, torch.device("cpu"))
    model = PixelLinear(data, seed=3).double()
    seen = []
    model.loss = lambda x, batch: (seen.append(batch) or (x.sum() * 0 + 2.5, len(x)))
    obj.train_step(model)
    tm = seen[0]["target_map"]
    assert tm.dtype == torch.float64 and tuple(tm.shape) == (2, CT, H, W) and seen[0]["mask"] is None
    stacked = np.stack([it.target_map for it in images])
    assert any(np.allclose(tm[0].numpy(), s) for s in stacked)
    assert obj.evaluate(model) == pytest.approx(2.5)
    x = torch.from_numpy(np.stack([it.image for it in images])).double()
    with torch.no_grad():
        rmse = float(((model(x).numpy() - stacked) ** 2).mean() ** 0.5)
    assert obj.metrics() == {"valid_accuracy": None, "valid_rmse": pytest.approx(rmse)}
    cls = ImageData(channels=1, height=H, width=W, num_classes=3)
    obj2 = ImageObjective()
    obj2.prepare(SampleImages(cls, images=4), None, {"batch_size": 2, "seed": 0}, torch.device("cpu"))
    plain = ImageLinear(cls)
    plain.loss = lambda x, batch: (seen.append(batch) or (x.sum() * 0 + 1.0, len(x)))
    obj2.train_step(plain)
    assert seen[-1]["target_map"] is None


def test_a_classifier_on_regression_data_is_refused_in_words():
    data = reg_data()
    obj = ImageObjective()
    obj.prepare(SampleImages(data, images=4), None, {"batch_size": 2, "seed": 0}, torch.device("cpu"))
    with pytest.raises(ValueError, match=r"does not predict per pixel.*\[images, target channels, height, width\]"):
        obj.train_step(ImageLinear(data))
    with pytest.raises(ValueError, match="regression task needs"):
        check_logits(torch.zeros(2, CT + 1, H, W), "regression", 2, CT, H, W)


def test_the_contract_data_for_regression_has_two_target_channels():
    data = data_for("regression")
    assert data.task == "regression" and data.num_classes == TARGET_CHANNELS == 2
    assert output_shape("regression", 3) == (3, 2, data.height, data.width)

    class Dense:  # a per-pixel model that refuses the image-level tasks
        default_config: dict = {}

        @staticmethod
        def build_model(data, **config):
            if data.task in ("class", "multilabel"):
                raise ValueError("per pixel only")
            return PixelLinear(data)

    class Images(Dense):  # an image classifier built for every task: [B, K] does not count as dense
        @staticmethod
        def build_model(data, **config):
            return ImageLinear(data)

    assert supported_tasks(Dense) == ["segmentation", "regression"]
    assert supported_tasks(Images) == ["class", "multilabel"]


@pytest.mark.parametrize("ct", [1, 2])
def test_the_recorder_writes_numeric_per_pixel_target_and_prediction(ct, tmp_path):
    from lstmviz.engines.families.image.api import ConvStep, conv_chain
    from lstmviz.hooks import IMAGE, Tap

    data = reg_data(ct=ct)

    class Model(PixelLinear):
        def __init__(self, data, seed=0):
            super().__init__(data, seed)
            self.tap = Tap("out", signal="out", layout=IMAGE, axis="out", description="the 1x1 conv")

        def forward(self, x):
            return self.tap(self.conv(x))

        def image_axes(self, height, width):
            return {"out": conv_chain(height, width, [ConvStep(1)])}

    model = Model(data, seed=1).double()
    images = SampleImages(data, images=3, seed=4)
    path = record_images(model, images, tmp_path / "r.h5", chunk=2)
    names = regression_names(ct)
    assert names == ([("target", "prediction")] if ct == 1 else [("target_c0", "prediction_c0"),
                                                                  ("target_c1", "prediction_c1")])
    x = torch.from_numpy(np.stack([it.image for it in images])).double()
    with torch.no_grad():
        y = model(x).numpy()
    maps = np.stack([it.target_map for it in images])
    with open_recording(path) as rec:
        for k, (t, p) in enumerate(names):
            for name in (t, p):
                info = rec.annotations[name]
                assert info.kind == "numeric" and info.level == "position", name
            np.testing.assert_allclose(rec.annotation(t), maps[:, k].reshape(-1), rtol=1e-6)
            np.testing.assert_allclose(rec.annotation(p), y[:, k].reshape(-1), rtol=1e-5, atol=1e-6)
        assert rec.annotations["class"].level == "item"


def test_the_recorder_refuses_a_classifier_on_regression_data(tmp_path):
    data = reg_data()

    from lstmviz.hooks import SCALAR, Tap

    class Model(ImageLinear):
        def __init__(self, data):
            super().__init__(data)
            self.tap = Tap("out", signal="out", layout=SCALAR, axis="out", description="the logits")

        def forward(self, x):
            return self.tap(self.fc(x.flatten(1)))

        def image_axes(self, height, width):
            from lstmviz.engines.families.image.api import SCALAR_AXIS
            return {"out": SCALAR_AXIS}

    with pytest.raises(ValueError, match="regression dataset"):
        record_images(Model(data), SampleImages(data, images=2), tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()
