"""Every registered image engine records a few images (record_images) and the file reads back: one axis per
tap axis with the positions image_axes() gives, the input image on the main axis."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmviz.engines import registry
from lstmviz.engines.families.image import SampleImages
from lstmviz.engines.families.image.api import INPUT_AXIS
from lstmviz.engines.families.image.contract import CHANNELS, HEIGHT, WIDTH, data_for, supported_tasks, tiny_model
from lstmviz.hooks import find_taps
from lstmviz.recording.image_recorder import record_images
from lstmviz.recording.reader import open_recording

IMAGE_ENGINES = sorted(name for name, spec in registry.all().items() if spec.family == "image")


def test_cnn_is_an_image_engine():
    assert "cnn" in IMAGE_ENGINES


@pytest.mark.parametrize("engine", IMAGE_ENGINES)
def test_records_a_few_images_and_reads_them_back(engine, tmp_path):
    spec = registry.get(engine)
    for task in supported_tasks(spec):
        model, _ = tiny_model(spec, task)
        images = SampleImages(data_for(task), images=3, seed=7)
        path = record_images(model, images, tmp_path / f"{task}.h5", chunk=2)
        taps = find_taps(model)
        axes = model.image_axes(HEIGHT, WIDTH)
        with open_recording(path) as rec:
            assert rec.n_items == 3 and rec.n_positions == 3 * HEIGHT * WIDTH
            assert set(rec.taps) == {"input", *taps}
            for name, tap in taps.items():
                positions = HEIGHT * WIDTH if tap.axis == INPUT_AXIS else axes[tap.axis].num_positions
                assert rec.axis_length(tap.axis) == 3 * positions, name
                assert np.isfinite(rec.states(name)).all(), name
            assert np.array_equal(rec.states("input", 0, HEIGHT * WIDTH), images[0].image.reshape(CHANNELS, -1).T)
            if task == "segmentation":  # the mask and the predicted mask per pixel, the ignored pixel missing
                masks = np.stack([it.mask for it in images]).reshape(-1)
                assert rec.annotations["target"].level == "position"
                assert np.array_equal(rec.annotation("target"), masks) and (masks == -1).any()
                with torch.no_grad():
                    x = torch.from_numpy(np.stack([it.image for it in images])).double()
                    predicted = model(x).argmax(1).reshape(-1).numpy()
                assert np.array_equal(rec.annotation("prediction"), predicted)
            elif task == "regression":  # the target map and the prediction per pixel and channel, numeric
                ct = data_for(task).num_classes
                maps = np.stack([it.target_map for it in images])  # [n, Ct, H, W]
                with torch.no_grad():
                    x = torch.from_numpy(np.stack([it.image for it in images])).double()
                    predicted = model(x).numpy()
                for k in range(ct):
                    assert rec.annotations[f"target_c{k}"].kind == "numeric"
                    assert rec.annotations[f"prediction_c{k}"].level == "position"
                    np.testing.assert_allclose(rec.annotation(f"target_c{k}"), maps[:, k].reshape(-1), rtol=1e-6)
                    np.testing.assert_allclose(rec.annotation(f"prediction_c{k}"), predicted[:, k].reshape(-1),
                                               rtol=1e-5, atol=1e-6)
            else:
                assert rec.annotations["target"].level == "item"
