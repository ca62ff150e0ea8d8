"""bnn-cnn / qnn-cnn: the XNOR-popcount identity, an XNOR inference path equal to the float path, binary and
k-bit activations in the recorded taps, latent weights clipped to [-1, 1]."""

import numpy as np
import pytest
import torch

from lstmviz.engines import registry
from lstmviz.engines.families.image import ImageData, sample_inputs
from lstmviz.engines.vision.bnn_cnn import QNNConv2d
from lstmviz.engines.vision.quantize import pack_signs, xnor_dot
from lstmviz.hooks import HookScope, find_taps

DATA = ImageData(channels=1, height=8, width=8, num_classes=10)


def _build(name, **config):
    torch.manual_seed(0)
    spec = registry.get(name)
    return spec.build_model(DATA, **{**spec.default_config, "conv_channels": [8, 16, 16], **config})


def _record(model, images, forward=None):
    values = {}
    with HookScope() as hooks:
        for name, tap in find_taps(model).items():
            hooks.read(tap, lambda mod, args, kwargs, out, name=name: values.__setitem__(name, out.detach()))
        logits = (forward or model)(images)
    return logits, values


@pytest.mark.parametrize("n", [1, 7, 63, 64, 65, 200, 576])
def test_xnor_popcount_equals_the_dot_product_of_plus_minus_one_vectors(n):
    rng = np.random.default_rng(n)
    a = rng.choice([-1, 1], size=(33, n))
    w = rng.choice([-1, 1], size=(9, n))
    packed_a, packed_w = pack_signs(a), pack_signs(w)
    assert packed_a.dtype == np.uint64 and packed_a.shape == (33, -(-n // 64))
    assert np.array_equal(xnor_dot(packed_a, packed_w, n), a @ w.T)


def test_pack_signs_refuses_values_other_than_plus_minus_one():
    with pytest.raises(ValueError, match="-1 and \\+1"):
        pack_signs(np.array([[1, 0, -1]]))


def test_xnor_conv_layer_equals_the_float_conv_exactly():
    torch.manual_seed(1)
    conv = QNNConv2d(5, 7, bits=1, pad_value=-1.0).double()
    x = torch.where(torch.rand(3, 5, 6, 6) < 0.5, -1.0, 1.0).double()
    with torch.no_grad():
        dense = conv(x)
    fast = conv.forward_xnor(x)
    assert torch.equal(fast, dense)
    assert dense.abs().max() <= 45 and torch.equal(dense, dense.round())  # integer sums of 45 ±1 products


def _trained_a_little(name, **config):
    model = _build(name, **config)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for step in range(3):
        images = sample_inputs(DATA, batch=16, seed=step)
        loss = torch.nn.functional.cross_entropy(model(images), torch.arange(16) % 10)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.clip_latent_()
    return model.eval()


def test_xnor_inference_path_equals_the_float_path_exactly_with_the_same_taps():
    model = _trained_a_little("bnn-cnn")
    images = sample_inputs(DATA, batch=12, seed=9)
    with torch.no_grad():
        float_logits, float_taps = _record(model, images)
    xnor_logits, xnor_taps = _record(model, images, model.forward_xnor)
    assert torch.equal(xnor_logits, float_logits)
    for name in float_taps:
        assert torch.equal(xnor_taps[name], float_taps[name]), name
    assert model.head_norm.running_var.ne(1).any()  # BatchNorm statistics are not the identity


def test_xnor_path_refuses_k_bit_models():
    with pytest.raises(ValueError, match="bits=1"):
        _build("qnn-cnn", bits=2).forward_xnor(sample_inputs(DATA, batch=2))


@pytest.mark.parametrize("name, bits", [("bnn-cnn", 1), ("qnn-cnn", 2), ("qnn-cnn", 3)])
def test_recorded_activations_take_exactly_2_to_the_bits_values(name, bits):
    model = _build(name, **({"bits": bits} if name == "qnn-cnn" else {}))
    _, values = _record(model, sample_inputs(DATA, batch=16, seed=4))
    n = 2 ** (bits - 1)
    expected = torch.tensor([-1.0, 1.0]) if bits == 1 else torch.arange(-n, n) / n
    for tap in ("conv0", "conv1", "conv2"):
        assert torch.equal(torch.unique(values[tap]), expected), tap
    axes = model.image_axes(8, 8)
    for tap in ("conv0", "conv1", "conv2"):
        assert values[tap].shape[2:] == (axes[tap].size.height, axes[tap].size.width)


def test_every_layer_uses_binary_weights_and_latent_weights_stay_in_minus_one_one():
    model = _build("bnn-cnn")
    for layer in list(model.convs) + [model.head]:
        assert torch.equal(torch.unique(layer.quantized_weight().detach()), torch.tensor([-1.0, 1.0]))
    opt = torch.optim.SGD(model.parameters(), lr=100.0)  # a huge step pushes latent weights far outside
    images = sample_inputs(DATA, batch=8)
    model(images).logsumexp(1).sum().backward()
    grads = [layer.weight.grad.abs().sum() for layer in list(model.convs) + [model.head]]
    assert all(g > 0 for g in grads)  # the STE reaches every latent weight
    opt.step()
    assert max(layer.weight.abs().max() for layer in model.convs) > 1
    model(images)  # a training forward clips before it quantises
    for layer in list(model.convs) + [model.head]:
        assert layer.weight.abs().max() <= 1.0


def test_full_precision_twin_is_not_quantised():
    model = _build("qnn-cnn", bits=32)
    _, values = _record(model, sample_inputs(DATA, batch=8, seed=5))
    assert len(torch.unique(values["conv1"])) > 50 and values["conv1"].abs().max() <= 1.0
