"""HeMIS (issue 17): the abstraction layer's defining properties, missing modalities never read, any subset runs,
per-example subsets in one batch, the curriculum, the taps and axes, and the 4-modality digits."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lstmviz.datasets.images.modalities import MODALITIES, NUM_CLASSES, STROKE, modality_split
from lstmviz.engines.vision.hemis import SPEC, AvailabilityError, abstraction, build
from lstmviz.hooks import HookScope, find_taps

M, H, W = 4, 8, 8
SUBSETS = [s for s in itertools.product((False, True), repeat=M) if any(s)]


def model_and_input(seed=0, batch=3):
    torch.manual_seed(seed)
    model = build(M, H, W, NUM_CLASSES, hidden_size=3, front_size=5).double().eval()
    x = torch.rand(batch, M, H, W, dtype=torch.float64)
    return model, x


def taps_of(model, x, available=None):
    out = {}
    with HookScope() as hooks, torch.no_grad():
        for tap in find_taps(model).values():
            hooks.read(tap, lambda module, args, kwargs, value: out.__setitem__(module.name, value.clone()))
        logits = model(x, available)
    return logits, out


def test_fifteen_subsets_is_what_the_test_covers():
    assert len(SUBSETS) == 15


# -- the abstraction layer ------------------------------------------------------------------------------
def test_abstraction_is_bitwise_symmetric_in_the_available_embeddings():
    torch.manual_seed(0)
    f = torch.randn(2, M, 3, 5, 5) * torch.logspace(-3, 3, 5)[None, None, None, :, None]  # sums that round
    avail = torch.tensor([[True, True, True, True], [True, False, True, True]])
    mu, s2 = abstraction(f, avail)
    for perm in itertools.permutations(range(M)):
        p = list(perm)
        mu_p, s2_p = abstraction(f[:, p], avail[:, p])
        assert torch.equal(mu_p, mu) and torch.equal(s2_p, s2), perm
    # and it is the mean and the unbiased variance over the available ones
    torch.testing.assert_close(mu[1], f[1, [0, 2, 3]].mean(0))
    torch.testing.assert_close(s2[1], f[1, [0, 2, 3]].var(0, unbiased=True))


def test_a_naive_sum_is_not_symmetric_so_the_symmetry_test_has_teeth():
    torch.manual_seed(0)
    f = torch.randn(2, M, 3, 5, 5) * torch.logspace(-3, 3, 5)[None, None, None, :, None]
    naive = [f[:, list(p)].sum(1) for p in itertools.permutations(range(M))]
    assert any(not torch.equal(naive[0], other) for other in naive[1:])


def test_one_modality_gives_zero_variance_exactly_and_no_nan():
    f = torch.randn(4, M, 3, 5, 5, dtype=torch.float64)
    for k in range(M):
        avail = torch.zeros(4, M, dtype=torch.bool)
        avail[:, k] = True
        mu, s2 = abstraction(f, avail)
        assert torch.equal(mu, f[:, k])
        assert torch.equal(s2, torch.zeros_like(s2)) and not s2.isnan().any()
    with pytest.warns(UserWarning):  # the pitfall: torch's unbiased var of one element is NaN
        assert torch.isnan(f[:, :1].var(1)).all()


def test_duplicate_embeddings_give_that_embedding_and_zero_variance():
    f = torch.randn(3, M, 3, 5, 5, dtype=torch.float64)
    f[:, 2] = f[:, 0]
    avail = torch.tensor([True, False, True, False]).expand(3, -1)
    mu, s2 = abstraction(f, avail)
    assert torch.equal(mu, f[:, 0]) and torch.equal(s2, torch.zeros_like(s2))


def test_the_abstraction_ignores_whatever_a_missing_entry_holds():
    f = torch.randn(2, M, 3, 4, 4, dtype=torch.float64)
    avail = torch.tensor([[True, False, True, False], [False, True, True, True]])
    g = f.clone()
    g[~avail] = float("nan")
    mu, s2 = abstraction(f, avail)
    mu_g, s2_g = abstraction(g, avail)
    assert torch.equal(mu, mu_g) and torch.equal(s2, s2_g)


# -- the model ----------------------------------------------------------------------------------------
def test_forward_is_the_docstrings_equations():
    model, x = model_and_input(batch=2)
    avail = torch.tensor([[True, False, True, True], [False, True, False, False]])
    logits, taps = taps_of(model, x, avail)
    fs = []
    for k, (c1, c2) in enumerate(model.backends):
        fk = F.relu(F.conv2d(F.relu(F.conv2d(x[:, k:k + 1], c1.weight, c1.bias, padding=1)), c2.weight, c2.bias,
                             padding=1))
        fk = fk * avail[:, k, None, None, None]
        torch.testing.assert_close(taps[f"backend_{k}"], fk)
        fs.append(fk)
    f = torch.stack(fs, 1)
    mu0, s20 = f[0, [0, 2, 3]].mean(0), f[0, [0, 2, 3]].var(0)
    torch.testing.assert_close(taps["mu"][0], mu0)
    torch.testing.assert_close(taps["s2"][0], s20)
    torch.testing.assert_close(taps["mu"][1], f[1, 1])
    assert torch.equal(taps["s2"][1], torch.zeros_like(taps["s2"][1]))
    u = torch.cat([taps["mu"], taps["s2"]], 1)
    u = F.relu(F.conv2d(u, model.front[0].weight, model.front[0].bias, padding=2, dilation=2))
    torch.testing.assert_close(taps["front0"], u)
    u = F.relu(F.conv2d(u, model.front[1].weight, model.front[1].bias, padding=4, dilation=4))
    torch.testing.assert_close(taps["front1"], u)
    z = F.conv2d(u, model.classifier.weight, model.classifier.bias)
    torch.testing.assert_close(logits, z)
    assert tuple(logits.shape) == (2, NUM_CLASSES, H, W)


def test_missing_modalities_are_never_read():
    model, x = model_and_input(batch=4)
    for subset in SUBSETS:
        missing = [k for k in range(M) if not subset[k]]
        zeros, nans = x.clone(), x.clone()
        zeros[:, missing] = 0.0
        nans[:, missing] = float("nan")
        with torch.no_grad():
            a, b = model(zeros, subset), model(nans, subset)
        assert torch.isfinite(b).all(), subset
        assert torch.equal(a, b), subset
        # and their values do not matter either (garbage in a missing channel changes nothing)
        with torch.no_grad():
            c = model(x, subset)
        assert torch.equal(a, c), subset


def test_a_missing_back_end_never_runs():
    model, x = model_and_input(batch=2)
    ran = []
    for k, (conv1, _) in enumerate(model.backends):
        conv1.register_forward_hook(lambda module, args, out, k=k: ran.append((k, args[0].shape[0])))
    with torch.no_grad():
        model(x, torch.tensor([[True, False, False, True], [False, False, False, True]]))
    assert ran == [(0, 1), (3, 2)]


def test_every_one_of_the_fifteen_subsets_runs_and_one_modality_has_no_nan():
    model, x = model_and_input(batch=2)
    outs = {}
    with torch.no_grad():
        for subset in SUBSETS:
            out = model(x, subset)
            assert tuple(out.shape) == (2, NUM_CLASSES, H, W) and torch.isfinite(out).all(), subset
            outs[subset] = out
    assert len({o.sum().item() for o in outs.values()}) == 15  # each subset gives its own output


def test_a_batch_of_mixed_subsets_equals_each_example_alone():
    model, x = model_and_input(batch=15)
    avail = torch.tensor(SUBSETS)
    with torch.no_grad():
        batched = model(x, avail)
        for b, subset in enumerate(SUBSETS):
            torch.testing.assert_close(batched[b:b + 1], model(x[b:b + 1], subset), rtol=1e-12, atol=1e-12)


def test_the_default_subset_attribute_drops_a_modality_without_a_new_call():
    model, x = model_and_input()
    with torch.no_grad():
        full = model(x)
        model.available = (True, False, True, True)
        assert model.available == (True, False, True, True)
        dropped = model(x)
        explicit = model(x, (True, False, True, True))
        override = model(x, (True, True, True, True))
        model.available = None
        back = model(x)
    assert torch.equal(dropped, explicit) and torch.equal(override, full) and torch.equal(back, full)
    assert not torch.equal(dropped, full)


@pytest.mark.parametrize("bad, message", [
    ((False, False, False, False), "no modality"),
    ((True, True, True), r"shape \[4\]"),
    (torch.ones(2, M, dtype=torch.bool), r"shape \[4\] or \[3, 4\]"),
    ((1, 0, 1, 1), "bool mask"),
    (torch.tensor([[True, True, True, True], [False] * 4, [True] * 4]), "no modality"),
])
def test_a_bad_available_mask_is_refused_in_one_sentence(bad, message):
    model, x = model_and_input()
    with pytest.raises(AvailabilityError, match=message) as info:
        model(x, bad)
    assert "\n" not in str(info.value) and str(info.value).count(". ") == 0
    if isinstance(bad, tuple) and len(bad) == M and bad != (1, 0, 1, 1):
        with pytest.raises(AvailabilityError, match=message):
            model.available = bad
        assert model.available is None
    with pytest.raises(AvailabilityError, match="one flag per modality"):
        model.available = torch.ones(1, M, dtype=torch.bool)


def test_taps_fire_once_on_described_axes():
    model, x = model_and_input(batch=2)
    logits, taps = taps_of(model, x, (True, False, False, True))
    assert set(taps) == {f"backend_{k}" for k in range(M)} | {"mu", "s2", "front0", "front1", "logits", "modalities"}
    axes = model.image_axes(H, W)
    for name, tap in find_taps(model).items():
        assert tap.description and tap.layout.geometry == ("set" if name == "modalities" else "image")
        if name == "modalities":
            assert axes[tap.axis].geometry.members == ("m0", "m1", "m2", "m3")
            assert tuple(taps[name].shape) == (len(x), M, model.hidden_size)
            continue
        entry = axes[tap.axis]
        assert tuple(taps[name].shape[2:]) == (entry.size.height, entry.size.width), name
    assert find_taps(model)["backend_2"].axis == "backend_2"
    assert torch.equal(taps["backend_1"], torch.zeros_like(taps["backend_1"]))  # missing: zeros in the tap
    assert axes["abstraction"].geometry.receptive_field == (5, 5)
    assert axes["front1"].geometry.receptive_field == (17, 17)
    assert axes["logits"].geometry.receptive_field == (17, 17)
    import fnmatch
    patterns = [p.replace("{layer}", "*") for p in SPEC.taps]
    assert all(any(fnmatch.fnmatchcase(n, p) for p in patterns) for n in taps)


def test_a_pixel_outside_the_logits_receptive_field_does_not_change_it():
    torch.manual_seed(3)
    model = build(M, 24, 24, NUM_CLASSES, hidden_size=2, front_size=3).double().eval()
    x = torch.rand(1, M, 24, 24, dtype=torch.float64, requires_grad=True)
    model(x)[0, :, 12, 12].sum().backward()
    support = (x.grad[0].abs().sum(0) != 0).nonzero()
    assert support[:, 0].min() >= 12 - 8 and support[:, 0].max() <= 12 + 8
    assert support[:, 1].min() >= 12 - 8 and support[:, 1].max() <= 12 + 8


def test_training_loss_draws_random_subsets_with_the_curriculum():
    model, x = model_and_input(batch=6)
    model.train()
    model.curriculum_steps = 10
    assert model.drop_max == 0.5  # the default
    mask = torch.randint(-1, NUM_CLASSES, (6, H, W))
    seen = []
    original = model.forward

    def spy(images, available=None):
        seen.append(None if available is None else available.clone())
        return original(images, available)

    model.forward = spy
    torch.manual_seed(0)
    loss, count = model.loss(x, {"mask": mask})
    assert count == 6 and loss.requires_grad
    assert seen[0].all()  # step 0: every modality (the curriculum starts with all)
    model.drop_max = 0.5
    model.steps_seen.fill_(10)  # end of the ramp: drop probability drop_max = 0.5
    subsets = model.draw_subsets(30000)
    assert subsets.any(1).all()
    counts = np.bincount((subsets.long() * torch.tensor([8, 4, 2, 1])).sum(1).numpy(), minlength=16)
    assert counts[0] == 0 and counts[1:].min() > 0.85 * 30000 / 15  # uniform over the 15 non-empty subsets
    model.steps_seen.fill_(5)
    half = model.draw_subsets(20000)
    assert 0.2 < 1 - half.float().mean() < 0.3  # p = 0.25 half-way (before rejecting empty rows)
    model.eval()
    seen.clear()
    ref = F.cross_entropy(original(x), mask, ignore_index=-1)
    loss, _ = model.loss(x, {"mask": mask})
    assert seen[0] is None or seen[0].all()
    torch.testing.assert_close(loss, ref)


def test_wrong_task_and_settings_are_refused_in_words():
    with pytest.raises(ValueError, match="segmentation"):
        build(M, H, W, NUM_CLASSES, task="class")
    with pytest.raises(ValueError, match="hidden_size"):
        build(M, H, W, NUM_CLASSES, hidden_size=0)
    with pytest.raises(ValueError, match="drop_max"):
        build(M, H, W, NUM_CLASSES, drop_max=1.0)


def test_state_dict_round_trip():
    model, x = model_and_input()
    model.steps_seen.fill_(7)
    other = build(M, H, W, NUM_CLASSES, hidden_size=3, front_size=5).double().eval()
    other.load_state_dict(model.state_dict())
    assert int(other.steps_seen) == 7
    with torch.no_grad():
        assert torch.equal(other(x, (False, True, True, False)), model(x, (False, True, True, False)))


# -- the 4-modality digits ---------------------------------------------------------------------------
def test_modality_digits_shapes_ranges_masks_and_seeding():
    images, masks, targets = modality_split("valid", max_images=40)
    assert images.shape == (40, 4, 16, 16) and images.dtype == np.float32 and len(MODALITIES) == 4
    assert masks.shape == (40, 16, 16) and masks.dtype == np.int64 and targets.shape == (40,)
    assert images.min() >= 0 and images.max() <= 1 and np.isfinite(images).all()
    assert set(np.unique(masks)) <= set(range(NUM_CLASSES))
    for i in range(40):  # one digit per image: its stroke pixels carry 1 + its class
        assert set(np.unique(masks[i])) == {0, 1 + targets[i]}
    again = modality_split("valid", max_images=40)
    assert all(np.array_equal(a, b) for a, b in zip((images, masks, targets), again))
    other = modality_split("valid", max_images=40, seed=1)
    assert not np.array_equal(images, other[0])
    # the channels differ from one another and each tracks the stroke in its own way
    fg = masks > 0
    noisy, blurred, edges, inverted = (images[:, k] for k in range(4))
    assert noisy[fg].mean() > noisy[~fg].mean() + 0.3
    assert blurred[fg].mean() > blurred[~fg].mean()
    assert inverted[fg].mean() < inverted[~fg].mean()
    assert edges.max() == 1.0 and STROKE == 0.25
    with pytest.raises(ValueError, match="split"):
        modality_split("dev")


def test_modalities_rows_are_each_modalitys_pooled_embedding_and_zero_when_missing():
    model, x = model_and_input(batch=2)
    avail = torch.tensor([[True, False, True, True], [True, True, True, True]])
    _, taps = taps_of(model, x, avail)
    rows = taps["modalities"]  # [B, M, C]
    for k in range(M):
        torch.testing.assert_close(rows[:, k], taps[f"backend_{k}"].mean(dim=(2, 3)))
    assert torch.equal(rows[0, 1], torch.zeros_like(rows[0, 1]))  # the missing modality: a zero row
    assert bool((rows[1, 1] != 0).any())


def test_modality_names_name_the_set_members_and_bad_names_are_refused(tmp_path):
    from lstmviz.datasets.images.modalities import build_modalities
    from lstmviz.recording.image_recorder import record_images
    from lstmviz.recording.reader import open_recording

    data = build_modalities("valid", max_images=3)
    model = build(M, data.height, data.width, NUM_CLASSES, hidden_size=3, front_size=5,
                  modality_names=",".join(MODALITIES)).eval()
    path = record_images(model, data, tmp_path / "h.h5", signals=["modalities", "mu"])
    with open_recording(path) as rec:
        assert rec.axis_geometry("modality").members == MODALITIES
        assert rec.item_geometry(2, "modality").member.tolist() == [0, 1, 2, 3]
        assert rec.item_states("modalities", 2).shape == (M, 3)
    with pytest.raises(ValueError, match="4 distinct"):
        build(M, H, W, NUM_CLASSES, modality_names=("a", "b"))
    with pytest.raises(ValueError, match="4 distinct"):
        build(M, H, W, NUM_CLASSES, modality_names="a,a,b,c")
