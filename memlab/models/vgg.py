"""VGG-11 (Simonyan & Zisserman 2015, configuration A), as layers of memlab.models.architectures.

    python run.py --name criticality      # the KTH practical's optional task: vgg11, clean labels

Configuration A: conv3x3 64, pool, 128, pool, 256, 256, pool, 512, 512, pool, 512, 512, pool
(every conv -> [bn] -> relu, 2x2/2 max-pools), then the CIFAR-style classifier: flatten and one
dense layer (on 32x32 images the features are 1x1x512).  `width` sets the first convolution's
channels (64) and the others scale with it (x 1, 2, 4, 4, 8, 8, 8, 8); `widen` multiplies them.
A max-pool that would take images below 1x1 (8x8 digits, 28x28 MNIST) is left out, so the
network keeps its eight convolutions on small images.  Layers are named conv1 ... conv8 and fc.
"""
from __future__ import annotations

from memlab.models.architectures import _Builder

CONFIG_A = (1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M")   # channels in units of `width`


def vgg11(shape, n_classes, *, width=None, widen=1, batchnorm=False, activation="relu", dropout=0.0,
          **_) -> tuple:
    w = (64 if width is None else int(width)) * widen
    if w < 1:
        raise ValueError(f"vgg11: width must be positive, got {w}")
    b = _Builder(shape)
    n = 0
    for item in CONFIG_A:
        if item == "M":
            if min(b.shape[:2]) >= 2:
                b.maxpool(2, 2)
            continue
        n += 1
        b.add("conv", int(item * w), 3, 1, 1, name=f"conv{n}")
        if batchnorm:
            b.add("bn", name=f"conv{n}_bn")
        b.add("act", activation)
    b.add("flatten")
    if dropout:
        b.add("dropout", float(dropout))
    return tuple(b.add("dense", n_classes, name="fc").layers)
