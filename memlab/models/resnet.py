"""Residual networks (He et al. 2016) of basic blocks, as layers of memlab.models.architectures.

    python run.py --name practical_noisy_labels   # resnet18_thin, the KTH practical's network
    "param_grid": {"model": ["resnet32"], "widen": [1, 2, 4], "batchnorm": [true], ...}

One configurable family, `resnet(...)`; two members are registered as sgd models:

    resnet18_thin  the KTH practical "Model Capacity": 3x3 stem conv (16 filters) then a 2x2/2
                   max-pool, stages [2, 2, 2, 2] of widths 16, 32, 64, 128, global mean pool, dense
    resnet32       the CIFAR ResNet of He et al. Sec. 4.2 (6n + 2 layers, n = 5): 3x3 stem conv,
                   stages [5, 5, 5] of widths 16, 32, 64, global mean pool, dense

`width` sets the first stage's channels (the stem has as many) and `widen` multiplies every width
(wide ResNets: 16k / 32k / 64k).  A basic block is

    x -> conv3x3 (stride s) -> [bn] -> relu -> conv3x3 -> [bn] -> (+ shortcut(x)) -> relu

with the identity as shortcut, or a 1x1 convolution (stride s) -> [bn] where the shape changes
(He et al.'s option B, "projection shortcuts").  Convolutions keep their bias, with or without
batch norm, as everywhere in memlab.models: parameter counts are stated in docs/criticality.md.

Layer names say where a layer sits, e.g. `s2b1_conv1` is stage 2, block 1, first convolution;
`s2b1_proj` its projection shortcut; `stem`, `fc`; a batch norm is named after its convolution
plus `_bn`.
"""
from __future__ import annotations

from memlab.models.architectures import _Builder


def resnet(shape, n_classes, *, stages=(2, 2, 2, 2), widths=(16, 32, 64, 128), stem_pool=True,
           batchnorm=False, activation="relu", widen=1) -> tuple:
    """A ResNet of basic blocks: `stages[i]` blocks of `widths[i] * widen` channels; every stage
    after the first starts with a stride-2 block.  `stem_pool` adds the 2x2/2 max-pool after the stem."""
    if len(stages) != len(widths) or not stages:
        raise ValueError(f"resnet: one width per stage, got stages {stages} and widths {widths}")
    widths = [int(w * widen) for w in widths]
    if min(widths) < 1 or min(stages) < 1:
        raise ValueError(f"resnet: widths and blocks per stage must be positive, got {widths}, {stages}")
    b = _Builder(shape)
    _conv(b, "stem", widths[0], 3, 1, activation, batchnorm)
    if stem_pool:
        b.maxpool(2, 2)
    for i, (n_blocks, width) in enumerate(zip(stages, widths), start=1):
        for j in range(1, n_blocks + 1):
            stride = 2 if i > 1 and j == 1 else 1
            basic_block(b, f"s{i}b{j}", width, stride, activation, batchnorm)
    b.add("avgpool")
    return tuple(b.add("dense", n_classes, name="fc").layers)


def basic_block(b: _Builder, name: str, width: int, stride: int, activation: str, batchnorm: bool) -> _Builder:
    body = b.branch()
    _conv(body, f"{name}_conv1", width, 3, stride, activation, batchnorm)
    _conv(body, f"{name}_conv2", width, 3, 1, None, batchnorm)
    shortcut = b.branch()
    if stride != 1 or b.shape[-1] != width:
        _conv(shortcut, f"{name}_proj", width, 1, stride, None, batchnorm)
    return b.residual(body, shortcut).add("act", activation)


def _conv(b: _Builder, name: str, c: int, k: int, stride: int, activation: str | None, batchnorm: bool):
    b.add("conv", c, k, stride, k // 2, name=name)
    if batchnorm:
        b.add("bn", name=f"{name}_bn")
    if activation:
        b.add("act", activation)
    return b


def resnet18_thin(shape, n_classes, *, width=None, widen=1, batchnorm=False, activation="relu", **_) -> tuple:
    """The KTH practical's thin ResNet-18 (16 filters, stages [2, 2, 2, 2], stem conv + 2x2 max-pool)."""
    w = 16 if width is None else int(width)
    return resnet(shape, n_classes, stages=(2, 2, 2, 2), widths=(w, 2 * w, 4 * w, 8 * w), stem_pool=True,
                  batchnorm=batchnorm, activation=activation, widen=widen)


def resnet32(shape, n_classes, *, width=None, widen=1, batchnorm=False, activation="relu", **_) -> tuple:
    """He et al.'s CIFAR ResNet-32 (stages [5, 5, 5] of 16, 32, 64 channels, times `widen`)."""
    w = 16 if width is None else int(width)
    return resnet(shape, n_classes, stages=(5, 5, 5), widths=(w, 2 * w, 4 * w), stem_pool=False,
                  batchnorm=batchnorm, activation=activation, widen=widen)
