"""dorefa-cnn: quantised activations recorded through the taps take exactly 2^a_bits values, the taps' axes
match conv_chain, first/last layers stay full precision, gradients are quantised to g_bits."""

import pytest
import torch

from lstmviz.engines import registry
from lstmviz.engines.families.image import ImageData, sample_inputs
from lstmviz.engines.spec import ConfigError
from lstmviz.hooks import HookScope, find_taps

DATA = ImageData(channels=1, height=8, width=8, num_classes=10)


def _build(**config):
    torch.manual_seed(0)
    spec = registry.get("dorefa-cnn")
    return spec.build_model(DATA, **{**spec.default_config, **config})


def _record(model, images):
    values = {}
    with HookScope() as hooks:
        for name, tap in find_taps(model).items():
            hooks.read(tap, lambda mod, args, kwargs, out, name=name: values.__setitem__(name, out.detach()))
        logits = model(images)
    return logits, values


@pytest.mark.parametrize("a_bits", [1, 2, 3])
def test_recorded_activations_take_exactly_2_to_the_a_bits_values(a_bits):
    model = _build(a_bits=a_bits, w_bits=2)
    logits, values = _record(model, sample_inputs(DATA, batch=16, seed=1))
    levels = torch.arange(2 ** a_bits) / (2 ** a_bits - 1)
    for name in ("conv0", "conv1", "conv2"):
        assert torch.allclose(torch.unique(values[name]), levels), name
    assert torch.equal(values["logits"], logits.detach())


def test_full_precision_activations_are_not_quantised():
    _, values = _record(_build(a_bits=32), sample_inputs(DATA, batch=16, seed=1))
    assert len(torch.unique(values["conv0"])) > 100


def test_tap_shapes_match_the_declared_image_axes():
    model = _build()
    _, values = _record(model, sample_inputs(DATA, batch=3))
    axes = model.image_axes(8, 8)
    for name, tap in find_taps(model).items():
        axis = axes[tap.axis]
        if axis.size is None:
            assert values[name].shape == (3, 10)
        else:
            assert values[name].shape[2:] == (axis.size.height, axis.size.width)
    assert axes["conv2"].geometry.stride == (4, 4)


@pytest.mark.parametrize("w_bits", [1, 2, 3])
def test_inner_layers_use_w_bits_weights_and_first_and_last_stay_full_precision(w_bits):
    model = _build(w_bits=w_bits)
    for conv in model.convs[1:]:
        assert len(torch.unique(conv.quantized_weight().detach())) == 2 ** w_bits
    assert len(torch.unique(model.convs[0].weight.detach())) == model.convs[0].weight.numel()
    assert len(torch.unique(model.head.weight.detach())) == model.head.weight.numel()


@pytest.mark.parametrize("g_bits, most", [(2, 4), (32, None)])
def test_gradient_into_each_quantised_conv_has_g_bits_levels_per_image(g_bits, most):
    model = _build(g_bits=g_bits)
    grads = []
    handle = model.convs[1].register_forward_hook(lambda m, a, out: [out.register_hook(grads.append), None][1])
    try:
        model(sample_inputs(DATA, batch=4, seed=2)).logsumexp(1).sum().backward()
    finally:
        handle.remove()
    (grad,) = grads
    for b in range(4):
        count = len(torch.unique(grad[b]))
        assert count <= most if most else count > 50
    assert model.convs[1].weight.grad.abs().sum() > 0


def test_eval_is_batch_independent_and_the_state_dict_round_trips():
    model = _build().eval()
    images = sample_inputs(DATA, batch=5, seed=3)
    full = model(images)
    assert torch.allclose(full[2:3], model(images[2:3]), atol=1e-6)
    other = _build(w_bits=1)
    other.load_state_dict(model.state_dict())
    assert torch.equal(other.eval()(images), full)


@pytest.mark.parametrize("config", [{"w_bits": 0}, {"a_bits": 17}, {"g_bits": True}, {"conv_channels": [8]},
                                    {"g_noise": "yes"}])
def test_bad_config_says_what_is_wrong(config):
    with pytest.raises(ConfigError, match="engine 'dorefa-cnn'"):
        _build(**config)
