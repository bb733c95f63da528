"""Network architectures as data: one definition, built in PyTorch and in JAX.

    python run.py --name cnn_vs_mlp       # the sgd trial builds these

A network is a tuple of `Layer`s.  memlab.models.torch_models and memlab.models.jax_models
each interpret the same tuple, and both start from the same weights drawn here with numpy
(`init_params`), so one seed gives one network in both frameworks.

Canonical layouts (flax's): images NHWC; dense kernels (in, out); conv kernels
(kh, kw, in, out); flattening reads H, W, C in that order.  torch_models converts.

    mlp              Flatten, widths x [Dense, (BatchNorm), act, (Dropout)], Dense(classes)
    cnn_tutorial     the PyTorch CIFAR-10 tutorial's CNN: conv(6,5) pool conv(16,5) pool fc120 fc84
    alexnet_small    Zhang et al. 2017, Appendix A: 2 x (conv 5x5/64, max-pool 3x3/2, LRN), fc384 fc192
    inception_small  Zhang et al. 2017, Appendix A (Fig. 3): the small Inception for CIFAR-10
    resnet18_thin, resnet32, vgg11    memlab.models.resnet and memlab.models.vgg (registered below)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ACTIVATIONS = ("relu", "tanh")
# Gains that keep activations' variance through a layer (torch.nn.init.calculate_gain).
GAIN = {"relu": math.sqrt(2.0), "tanh": 5.0 / 3.0}


@dataclass(frozen=True)
class Layer:
    """One step of a network.  `name` keys the weights of dense, conv and bn layers.

    dense (n_out,) | conv (c_out, k, stride, pad) | maxpool (k, stride, ((top, bottom), (left, right)))
    | avgpool () global mean | flatten () | act (relu|tanh,) | bn () | dropout (rate,)
    | lrn (size, alpha, beta, k) | concat (branch, branch, ...) each branch a tuple of Layers
    | residual (body, shortcut): body(x) + shortcut(x), two tuples of Layers (shortcut () = identity)
    """
    kind: str
    args: tuple = ()
    name: str = ""


# ------------------------------------------------------------------ shapes ---
def output_shape(layer: Layer, shape: tuple) -> tuple:
    """Shape of one example after `layer`: (H, W, C) for images, (F,) for vectors."""
    k = layer.kind
    if k == "dense":
        return (layer.args[0],)
    if k == "conv":
        c, size, stride, pad = layer.args
        h, w, _ = shape
        return ((h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1, c)
    if k == "maxpool":
        size, stride, ((top, bottom), (left, right)) = layer.args
        h, w, c = shape
        return ((h + top + bottom - size) // stride + 1, (w + left + right - size) // stride + 1, c)
    if k == "avgpool":
        return (shape[-1],)
    if k == "flatten":
        return (int(np.prod(shape)),)
    if k == "concat":
        outs = [shapes_through(branch, shape) for branch in layer.args]
        return (*outs[0][:-1], sum(o[-1] for o in outs))
    if k == "residual":
        body, shortcut = (shapes_through(branch, shape) for branch in layer.args)
        if body != shortcut:
            raise ValueError(f"residual block: the body gives {body} but the shortcut {shortcut}")
        return body
    return shape   # act, bn, dropout, lrn


def shapes_through(layers: tuple, shape: tuple) -> tuple:
    for layer in layers:
        shape = output_shape(layer, shape)
        if min(shape) < 1:
            raise ValueError(f"layer {layer.kind}{layer.args[:3]} leaves an empty output {shape}: "
                             f"the input is too small for this network")
    return shape


def same_pool_pads(size: int, k: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'SAME' padding for a pooling window: output ceil(size / stride), extra at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


# ---------------------------------------------------------------- building ---
class _Builder:
    """Appends layers while tracking the shape, so pads and fan-ins are known when a layer is added."""

    def __init__(self, shape: tuple, names: list | None = None):
        self.shape, self.layers = tuple(shape), []
        self._names = names if names is not None else [0]   # shared counter across concat branches

    def add(self, kind: str, *args, named: bool = False, name: str = "") -> _Builder:
        if named and not name:
            name = f"{kind}{self._names[0]}"
            self._names[0] += 1
        layer = Layer(kind, tuple(args), name)
        self.shape = shapes_through((layer,), self.shape)
        self.layers.append(layer)
        return self

    def branch(self) -> _Builder:
        return _Builder(self.shape, self._names)

    def concat(self, *branches: _Builder) -> _Builder:
        return self.add("concat", *(tuple(b.layers) for b in branches))

    def residual(self, body: _Builder, shortcut: _Builder) -> _Builder:
        return self.add("residual", tuple(body.layers), tuple(shortcut.layers))

    # Blocks shared by the architectures.
    def dense_block(self, n: int, activation: str, batchnorm: bool, dropout: float) -> _Builder:
        self.add("dense", n, named=True)
        if batchnorm:
            self.add("bn", named=True)
        self.add("act", activation)
        if dropout:
            self.add("dropout", float(dropout))
        return self

    def conv_block(self, c: int, k: int, activation: str, batchnorm: bool, stride: int = 1,
                   pad: int | None = None) -> _Builder:
        self.add("conv", c, k, stride, k // 2 if pad is None else pad, named=True)
        if batchnorm:
            self.add("bn", named=True)
        return self.add("act", activation)

    def maxpool(self, k: int, stride: int, same: bool = False) -> _Builder:
        pads = ((0, 0), (0, 0))
        if same:
            pads = (same_pool_pads(self.shape[0], k, stride), same_pool_pads(self.shape[1], k, stride))
        return self.add("maxpool", k, stride, pads)


def mlp(shape, n_classes, *, widths=(512,), activation="relu", batchnorm=False, dropout=0.0, **_) -> tuple:
    b = _Builder(shape).add("flatten")
    for w in widths:
        b.dense_block(int(w), activation, batchnorm, dropout)
    return tuple(b.add("dense", n_classes, named=True).layers)


def cnn_tutorial(shape, n_classes, *, activation="relu", batchnorm=False, dropout=0.0, **_) -> tuple:
    # The tutorial's 5x5 convolutions are unpadded (32 -> 28 -> 14 -> 10 -> 5); images under 16
    # pixels (8x8 digits) would vanish, so there the convolutions keep the size ('same' padding).
    pad = 0 if min(shape[:2]) >= 16 else 2
    b = _Builder(shape)
    b.conv_block(6, 5, activation, batchnorm, pad=pad).maxpool(2, 2)
    b.conv_block(16, 5, activation, batchnorm, pad=pad).maxpool(2, 2)
    b.add("flatten").dense_block(120, activation, batchnorm, dropout).dense_block(84, activation, batchnorm, dropout)
    return tuple(b.add("dense", n_classes, named=True).layers)


# TensorFlow's CIFAR-10 tutorial LRN (depth_radius 4, alpha 0.001 / 9, beta 0.75, bias 1),
# written as torch's local_response_norm(size 9, alpha = 0.001 / 9 * 9, beta, k).
LRN = (9, 0.001, 0.75, 1.0)


def alexnet_small(shape, n_classes, *, activation="relu", batchnorm=False, dropout=0.0, **_) -> tuple:
    """Zhang et al. Appendix A; on 28x28x3 inputs it has their 1,387,786 parameters."""
    b = _Builder(shape)
    for _ in range(2):   # (convolution 5x5, max-pool 3x3, local response normalization)
        b.conv_block(64, 5, activation, batchnorm).maxpool(3, 2, same=True).add("lrn", *LRN)
    b.add("flatten").dense_block(384, activation, batchnorm, dropout).dense_block(192, activation, batchnorm, dropout)
    return tuple(b.add("dense", n_classes, named=True).layers)


def inception_small(shape, n_classes, *, activation="relu", batchnorm=False, dropout=0.0, **_) -> tuple:
    """Zhang et al. Appendix A, Fig. 3: conv modules are conv -> (batch norm) -> activation."""
    b = _Builder(shape)

    def inception(ch1, ch3):      # 1x1 and 3x3 convolutions side by side, channels concatenated
        one = b.branch().conv_block(ch1, 1, activation, batchnorm)
        three = b.branch().conv_block(ch3, 3, activation, batchnorm)
        b.concat(one, three)

    def downsample(ch3):          # a stride-2 3x3 convolution beside a 3x3 max-pool
        conv = b.branch().conv_block(ch3, 3, activation, batchnorm, stride=2, pad=0)
        pool = b.branch().maxpool(3, 2)
        b.concat(conv, pool)

    b.conv_block(96, 3, activation, batchnorm)
    inception(32, 32), inception(32, 48), downsample(80)
    inception(112, 48), inception(96, 64), inception(80, 80), inception(48, 96), downsample(96)
    inception(176, 160), inception(176, 160)
    b.add("avgpool")
    if dropout:
        b.add("dropout", float(dropout))
    return tuple(b.add("dense", n_classes, named=True).layers)


ARCHITECTURES = {"mlp": mlp, "cnn_tutorial": cnn_tutorial, "alexnet_small": alexnet_small,
                 "inception_small": inception_small}


def build(model: str, input_shape: tuple, n_classes: int, **options) -> tuple:
    """The layers of `model` for examples of `input_shape` ((H, W, C) images or (d,) vectors)."""
    if model != "mlp" and len(input_shape) != 3:
        raise ValueError(f"model '{model}' needs images; this dataset has flat examples of shape "
                         f"{tuple(input_shape)} (use model 'mlp', or an image dataset)")
    return ARCHITECTURES[model](tuple(input_shape), n_classes, **options)


def is_convolutional(layers: tuple) -> bool:
    """Whether the network takes images (NHWC / NCHW) rather than flat vectors."""
    return any(layer.kind in ("conv", "maxpool", "avgpool", "lrn", "concat", "residual") for layer in layers)


# ------------------------------------------------------------------- weights ---
def init_params(layers: tuple, input_shape: tuple, rng: np.random.Generator, activation: str = "relu") -> dict:
    """Initial weights, {name: {array name: float32 array}}, the same for both frameworks.

    Kernels are uniform with the variance that keeps the activation's scale (He for relu,
    gain 5/3 for tanh: bound = gain * sqrt(3 / fan_in)); biases zero; batch norm starts as the
    identity (scale 1, shift 0, running mean 0, running variance 1).
    """
    params: dict = {}
    _init(layers, tuple(input_shape), rng, GAIN[activation], params)
    return params


def _init(layers, shape, rng, gain, params):
    for layer in layers:
        if layer.kind == "dense":
            fan_in, n = shape[-1], layer.args[0]
            params[layer.name] = {"w": _uniform(rng, (fan_in, n), gain, fan_in), "b": np.zeros(n, np.float32)}
        elif layer.kind == "conv":
            c, k, _, _ = layer.args
            fan_in = k * k * shape[-1]
            params[layer.name] = {"w": _uniform(rng, (k, k, shape[-1], c), gain, fan_in),
                                  "b": np.zeros(c, np.float32)}
        elif layer.kind == "bn":
            c = shape[-1]
            params[layer.name] = {"scale": np.ones(c, np.float32), "bias": np.zeros(c, np.float32),
                                  "mean": np.zeros(c, np.float32), "var": np.ones(c, np.float32)}
        elif layer.kind in ("concat", "residual"):
            for branch in layer.args:
                _init(branch, shape, rng, gain, params)
        shape = output_shape(layer, shape)


def _uniform(rng, shape, gain, fan_in):
    bound = gain * math.sqrt(3.0 / fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


TRAINABLE = ("w", "b", "scale", "bias")


def n_params(params: dict) -> int:
    """Trainable parameters (batch norm's running statistics are not)."""
    return int(sum(a.size for p in params.values() for k, a in p.items() if k in TRAINABLE))
