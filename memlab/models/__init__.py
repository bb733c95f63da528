"""Networks in PyTorch and in JAX from one definition (memlab.models.architectures).

    from memlab.models import build, init_params
    layers = build("alexnet_small", (28, 28, 3), 10)
    params = init_params(layers, (28, 28, 3), np.random.default_rng(0))
    memlab.models.torch_models.TorchNet(layers, params, (28, 28, 3))     # imports torch
    memlab.models.jax_models.FlaxNet(layers)                             # imports jax and flax

Importing this package imports neither framework.  The ResNets (memlab.models.resnet) and VGG-11
(memlab.models.vgg) join the registry here, so every importer sees the whole model zoo.
"""
from memlab.models.architectures import (  # noqa: F401
    ACTIVATIONS, ARCHITECTURES, Layer, build, init_params, is_convolutional, n_params, shapes_through)
from memlab.models.resnet import resnet18_thin, resnet32
from memlab.models.vgg import vgg11

ARCHITECTURES.update({"resnet18_thin": resnet18_thin, "resnet32": resnet32, "vgg11": vgg11})
