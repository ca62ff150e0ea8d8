"""perturb_image: an edit or an occlusion changes later layers only inside the receptive-field-propagated
region (exactly), nothing changes when nothing is changed, and the edited tap's Δ is the edit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmviz.hooks import Edit
from lstmviz.perturb import PerturbError
from lstmviz.perturb.image import box_blur, occluded, perturb_image, pixels_in_box

SIZE = 16


@pytest.fixture(scope="module")
def cnn():
    from lstmviz.engines.vision.cnn import build

    torch.manual_seed(0)
    return build(1, SIZE, SIZE, 10, hidden_size=4, num_layers=4).eval()


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).random((1, SIZE, SIZE)).astype(np.float32)


def _cells(rows, cols, width):
    return sorted(int(y * width + x) for y in rows for x in cols)


def test_an_edit_at_a_cell_changes_later_layers_only_inside_its_receptive_field_region(cnn, image):
    cell = 3 * SIZE + 4  # conv0 cell (3, 4)
    effect = perturb_image(cnn, image, edits=[Edit("conv0", "add", 5.0, positions=[cell])])
    # conv0 cell c feeds conv1 cell i (after a 2x2 pool and a 3x3 conv) iff 2i - 2 <= c <= 2i + 3
    assert np.flatnonzero(effect.region("conv1")).tolist() == _cells([0, 1, 2], [1, 2, 3], SIZE // 2)
    for tap in effect.map_taps:
        region = effect.region(tap)
        norm = effect.delta_norm(tap)
        assert np.all(norm[~region] == 0.0), tap  # exactly unchanged outside
        assert effect.outside(tap) == 0
        assert norm[region].max() > 0, tap  # and the change does reach the region
    # a strong edit of every unit reaches (nearly) every cell of the region one layer up
    assert effect.changed("conv1").sum() >= 0.8 * effect.region("conv1").sum()
    assert effect.delta_norm("logits")[0] > 0


def test_an_edit_leaves_the_taps_before_it_unchanged(cnn, image):
    effect = perturb_image(cnn, image, edits=[Edit("conv2", "replace", 0.0, positions=[5, 6])])
    assert not effect.region("conv0").any() and not effect.region("conv1").any()
    assert np.array_equal(effect.clean["conv0"], effect.edited["conv0"])
    assert np.array_equal(effect.clean["conv1"], effect.edited["conv1"])


def test_the_edited_taps_delta_equals_the_edit(cnn, image):
    cells, units = [0, 17, 40], [1, 3]
    effect = perturb_image(cnn, image, edits=[Edit("conv1", "replace", 2.5, positions=cells, units=units)])
    delta = effect.delta("conv1")
    expected = np.zeros_like(delta)
    expected[np.ix_(cells, units)] = 2.5 - effect.clean["conv1"][np.ix_(cells, units)]
    np.testing.assert_allclose(delta, expected, atol=1e-6)
    assert effect.amplification("conv1") == pytest.approx(1.0)


def test_occluding_nothing_changes_nothing(cnn, image):
    flat = image.copy()
    flat[:, 4:9, 2:6] = 0.0  # the box is already black: a zero fill changes no pixel
    effect = perturb_image(cnn, flat, occlude=((4, 2, 9, 6), "zero"))
    assert np.array_equal(effect.image_clean, effect.image_edited)
    for tap in effect.taps:
        assert np.array_equal(effect.clean[tap], effect.edited[tap]), tap
    assert effect.output_change() == 0.0
    assert np.isnan(effect.amplification("conv0"))
    nothing = perturb_image(cnn, image, edits=[Edit("conv0", "add", 0.0, positions=[3])])
    assert all(np.array_equal(nothing.clean[t], nothing.edited[t]) for t in nothing.taps)


def test_an_occlusion_changes_only_cells_whose_receptive_field_overlaps_the_box(cnn, image):
    box = (2, 2, 6, 7)
    effect = perturb_image(cnn, image, occlude=(box, "zero"))
    changed_pixels = np.flatnonzero(np.any(effect.image_edited != effect.image_clean, axis=0).reshape(-1))
    assert set(changed_pixels) <= set(_cells(range(2, 6), range(2, 7), SIZE))
    # conv0 (3x3, padding 1): the box grown by one pixel on each side
    assert np.flatnonzero(effect.region("conv0")).tolist() == _cells(range(1, 7), range(1, 8), SIZE)
    for tap in effect.map_taps:
        assert effect.outside(tap) == 0, tap
        assert effect.changed(tap).any(), tap
    probs = effect.probabilities_clean
    assert probs.sum() == pytest.approx(1.0) and effect.probabilities_edited.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("fill", ["mean", "blur", 0.5])
def test_every_fill_changes_only_the_boxed_pixels(image, fill):
    out, (rows, cols) = occluded(image, (3.2, 1.0, 7.0, 5.4), fill)
    assert (rows, cols) == (slice(3, 7), slice(1, 5))  # pixels whose centre lies in the box
    outside = np.ones(image.shape[1:], dtype=bool)
    outside[rows, cols] = False
    assert np.array_equal(out[:, outside], image[:, outside])
    assert not np.array_equal(out[:, rows, cols], image[:, rows, cols])
    if fill == "mean":
        assert np.allclose(out[:, rows, cols], image.mean())


def test_the_blur_is_a_box_mean_and_keeps_a_flat_image():
    flat = np.full((2, 9, 9), 0.3, dtype=np.float32)
    assert np.allclose(box_blur(flat), 0.3)
    rng = np.random.default_rng(1).random((1, 9, 9)).astype(np.float32)
    assert box_blur(rng)[0, 4, 4] == pytest.approx(rng[0, 2:7, 2:7].mean(), abs=1e-6)


def test_bad_requests_are_refused_in_words(cnn, image):
    with pytest.raises(PerturbError, match="nothing to perturb"):
        perturb_image(cnn, image)
    with pytest.raises(PerturbError, match="cell 64 does not exist"):
        perturb_image(cnn, image, edits=[Edit("conv1", "add", 1.0, positions=[64])])
    with pytest.raises(PerturbError, match="names no cells"):
        perturb_image(cnn, image, edits=[Edit("conv1", "add", 1.0)])
    with pytest.raises(PerturbError, match="no tap 'conv9'"):
        perturb_image(cnn, image, edits=[Edit("conv9", "add", 1.0, positions=[0])])
    with pytest.raises(PerturbError, match="unit 99 does not exist"):
        perturb_image(cnn, image, edits=[Edit("conv1", "add", 1.0, positions=[0], units=[99])])
    with pytest.raises(PerturbError, match="channel"):
        perturb_image(cnn, np.zeros((3, SIZE, SIZE)), occlude=((0, 0, 2, 2), "zero"))
    bad = image.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(PerturbError, match="non-finite"):
        perturb_image(cnn, bad, occlude=((0, 0, 2, 2), "zero"))
    with pytest.raises(PerturbError, match="empty"):
        pixels_in_box((3, 3, 3, 5), SIZE, SIZE)
    with pytest.raises(PerturbError, match="covers no pixel"):
        pixels_in_box((20, 20, 30, 30), SIZE, SIZE)
    with pytest.raises(PerturbError, match="fill"):
        occluded(image, (0, 0, 2, 2), "purple")
    with pytest.raises(PerturbError, match="outside the pixel range"):
        occluded(image, (0, 0, 2, 2), 3.0)


def _image_engines():
    """Every registered image engine with its default config, plus the variants that change which taps are
    feature maps (``bnn-prior``'s ``arch``)."""
    from lstmviz.engines import registry

    names = sorted(name for name, spec in registry.all().items() if spec.family == "image")
    variants = [(name, {}) for name in names]
    if "bnn-prior" in names:
        variants += [("bnn-prior", {"arch": "cnn"})]
    return variants


@pytest.mark.parametrize(("engine", "overrides"), _image_engines(),
                         ids=lambda v: v if isinstance(v, str) else ",".join(f"{k}={x}" for k, x in v.items()))
def test_every_image_engine_changes_only_inside_the_region_its_geometry_states(engine, overrides):
    """The stated stride / receptive field of every registered image engine bounds where an edit or an
    occlusion can show (the perturbation tab's Δ maps rely on it)."""
    from lstmviz.engines import registry
    from lstmviz.engines.families.image.contract import CHANNELS, HEIGHT, WIDTH, supported_tasks, tiny_model

    spec = registry.get(engine)
    torch.manual_seed(1)
    model, _ = tiny_model(spec, supported_tasks(spec)[0], **overrides)
    model.eval()
    image = np.random.default_rng(2).random((CHANNELS, HEIGHT, WIDTH)).astype(np.float32)
    occluded_effect = perturb_image(model, image, occlude=((0, 0, 2, 2), 0.5))
    if not occluded_effect.map_taps:  # no feature map (an MLP): nothing has a region to stay inside
        assert all(axis.size is None for axis in model.image_axes(HEIGHT, WIDTH).values()), engine
        return
    # the first feature map the image reaches (tagger's iter0 maps are its input-free initial groups)
    reached = [tap for tap in occluded_effect.map_taps if occluded_effect.changed(tap).any()]
    assert reached, engine
    first = reached[0]
    edited_effect = perturb_image(model, image, edits=[Edit(first, "add", 3.0, positions=[0])])
    assert occluded_effect.changed(first).any() and edited_effect.changed(first).any()
    for effect in (occluded_effect, edited_effect):
        for tap in effect.map_taps:
            assert effect.outside(tap) == 0, (engine, tap, effect.described)
