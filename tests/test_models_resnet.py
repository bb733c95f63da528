"""The ResNet family and VGG-11: shapes, parameter counts, and PyTorch = flax on the same weights.

    python -m pytest -q tests/test_models_resnet.py
"""
from __future__ import annotations

import numpy as np
import pytest

from memlab.models import ARCHITECTURES, build, init_params, n_params, shapes_through
from memlab.models.resnet import resnet


def conv(c_in, c_out, k, bn):
    return k * k * c_in * c_out + c_out + (2 * c_out if bn else 0)


def resnet_count(c_in, stages, widths, n_classes, bn):
    """Parameters of a basic-block ResNet with projection shortcuts, counted by hand."""
    total, c = conv(c_in, widths[0], 3, bn), widths[0]
    for i, (n, w) in enumerate(zip(stages, widths)):
        for j in range(n):
            total += conv(c, w, 3, bn) + conv(w, w, 3, bn)
            if (i > 0 and j == 0) or c != w:
                total += conv(c, w, 1, bn)
            c = w
    return total + c * n_classes + n_classes


@pytest.mark.parametrize("model, options, shape, stages, widths", [
    ("resnet18_thin", {}, (32, 32, 3), (2, 2, 2, 2), (16, 32, 64, 128)),
    ("resnet18_thin", {"width": 4, "batchnorm": True}, (8, 8, 1), (2, 2, 2, 2), (4, 8, 16, 32)),
    ("resnet32", {}, (32, 32, 3), (5, 5, 5), (16, 32, 64)),
    ("resnet32", {"widen": 4, "batchnorm": True}, (32, 32, 3), (5, 5, 5), (64, 128, 256)),
])
def test_resnet_parameter_counts(model, options, shape, stages, widths):
    layers = build(model, shape, 10, **options)
    expected = resnet_count(shape[-1], stages, widths, 10, options.get("batchnorm", False))
    assert n_params(init_params(layers, shape, np.random.default_rng(0))) == expected
    assert sum(layer.kind == "residual" for layer in layers) == sum(stages)


def test_stated_parameter_counts():
    """The counts docs/criticality.md states (CIFAR-10 shapes, 10 classes)."""
    def count(model, **options):
        layers = build(model, (32, 32, 3), 10, **options)
        return n_params(init_params(layers, (32, 32, 3), np.random.default_rng(0)))
    assert count("resnet18_thin") == 700_266 and count("resnet18_thin", batchnorm=True) == 702_666
    assert count("resnet32", batchnorm=True) == 468_138 and count("resnet32", widen=4) == 7_422_986
    assert count("resnet32") == 465_674            # He et al.'s 0.46 M (option A, no biases: 464,154)
    assert count("vgg11") == 9_225_610
    assert count("vgg11", batchnorm=True) == 9_231_114


def test_shapes_through_the_networks():
    thin = build("resnet18_thin", (32, 32, 3), 10)
    assert shapes_through(thin[:3], (32, 32, 3)) == (16, 16, 16)       # stem conv + 2x2 max-pool
    assert shapes_through(thin[:-2], (32, 32, 3)) == (2, 2, 128)       # 16 -> 16 -> 8 -> 4 -> 2
    r32 = build("resnet32", (32, 32, 3), 10)
    assert shapes_through(r32[:-2], (32, 32, 3)) == (8, 8, 64)
    vgg = build("vgg11", (32, 32, 3), 10)
    assert sum(layer.kind == "conv" for layer in vgg) == 8 and sum(layer.kind == "maxpool" for layer in vgg) == 5
    assert shapes_through(vgg[:-1], (32, 32, 3)) == (512,)
    small = build("vgg11", (8, 8, 1), 10, width=4)                      # pools that would empty it are left out
    assert sum(layer.kind == "maxpool" for layer in small) == 3 and shapes_through(small, (8, 8, 1)) == (10,)
    for model in ("resnet18_thin", "resnet32", "vgg11"):
        assert model in ARCHITECTURES


def test_resnet_rejects_mismatched_stages():
    with pytest.raises(ValueError, match="one width per stage"):
        resnet((8, 8, 1), 10, stages=(2, 2), widths=(4,))


@pytest.mark.parametrize("model, shape, options", [
    ("resnet18_thin", (8, 8, 1), {"width": 4}),
    ("resnet32", (8, 8, 3), {"width": 4, "batchnorm": True}),
    ("vgg11", (8, 8, 1), {"width": 4, "batchnorm": True}),
    ("vgg11", (32, 32, 3), {"width": 2}),
])
def test_torch_and_flax_compute_the_same_network(model, shape, options):
    import jax
    import torch

    from memlab.models.jax_models import FlaxNet, canonical_params, flax_variables
    from memlab.models.torch_models import TorchNet
    layers = build(model, shape, 10, **options)
    params = init_params(layers, shape, np.random.default_rng(1))
    x = np.random.default_rng(2).random((5, *shape), dtype=np.float32)
    net, fnet, variables = TorchNet(layers, params, shape), FlaxNet(layers), flax_variables(params)
    apply = jax.jit(fnet.apply, static_argnames=("train", "mutable"))
    for train in (False, True):
        net.train(train)
        ours = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).detach().numpy()
        theirs, _ = apply(variables, x, train=train, mutable=("batch_stats",))
        np.testing.assert_allclose(ours, np.asarray(theirs), atol=1e-4, rtol=1e-3)
    assert not np.allclose(ours, 0) and np.isfinite(ours).all()
    back = net.canonical_params()
    assert back.keys() == params.keys() == canonical_params(variables).keys()
    for name in params:   # the weights round-trip through both layouts
        np.testing.assert_array_equal(back[name]["w" if "w" in back[name] else "scale"],
                                      params[name]["w" if "w" in params[name] else "scale"])
