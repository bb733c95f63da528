"""Input preprocessing for trained networks: what SGD sees, fitted on the training set.

    "param_grid": {"dataset": ["cifar10"], "crop": [28], "preprocess": ["whiten_per_image"], ...}

none              -- the dataset's values as stored.  The unit-ball sets (mnist, mnist_5k,
                     cifar10, ...) are scaled for Algorithm 2: their pixels are ~0.01-0.07, and SGD
                     on them crawls (Preprocess.warning says so).
standardize       -- subtract the training set's mean and divide by its standard deviation, per
                     channel for images (torchvision's Normalize), per feature for flat data
                     (scikit-learn's StandardScaler).  Invariant to the dataset's scale, so a
                     unit-ball set and its `_original` twin train alike.
whiten_per_image  -- Zhang et al.'s per-image whitening (TensorFlow's per_image_standardization):
                     each image minus its mean, divided by max(its std, 1/sqrt(d)), d = values per
                     image.  The floor 1/sqrt(d) is in units of the training set's largest
                     absolute value: exactly TensorFlow's formula on pixels / 255, and the same
                     result on the unit-ball twin.

Both frameworks get the same float32 arrays: the transform runs in numpy, on exactly what the
network sees (after centre-cropping and augmentation).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memlab.params import Param

PREPROCESSINGS = ("none", "standardize", "whiten_per_image")
# The parameter a trial that trains on images declares: "preprocess": PREPROCESS_PARAM.
PREPROCESS_PARAM = Param("standardize", choices=PREPROCESSINGS,
                         help="standardize: the training set's mean and std per channel (per feature for "
                              "flat data); whiten_per_image: each image to mean 0, std 1 (Zhang et al.); "
                              "none: the stored values (the unit-ball sets' are tiny: SGD crawls)")
# Root-mean-square input values outside this range make SGD at the usual learning rates crawl
# (tiny inputs: a first-layer step scales with |x|^2) or diverge (huge ones).
SANE_RMS = (0.05, 20.0)


@dataclass
class Preprocess:
    """A fitted transform: `fit(kind, x_train)`, then `transform(x)` on any split or batch."""
    kind: str
    mean: np.ndarray | float = 0.0     # standardize: per channel / feature
    std: np.ndarray | float = 1.0
    floor: float = 0.0                 # whiten_per_image: the smallest divisor
    rms: float = 1.0                   # of the training inputs as stored (for the warning)

    @classmethod
    def fit(cls, kind: str, x_train: np.ndarray, *, images: bool) -> Preprocess:
        """Statistics of `x_train` (NHWC images when `images`, else rows of features)."""
        if kind not in PREPROCESSINGS:
            raise ValueError(f"unknown preprocess '{kind}' ({', '.join(PREPROCESSINGS)})")
        x = np.asarray(x_train, dtype=np.float32)
        rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 1.0
        if kind == "standardize":
            axes = tuple(range(x.ndim - 1)) if images else (0,)
            mean = x.mean(axis=axes, dtype=np.float64)
            std = x.std(axis=axes, dtype=np.float64)
            std = np.where(std > 1e-12 * max(rms, 1e-30), std, 1.0)     # a constant feature stays put
            return cls(kind, mean.astype(np.float32), std.astype(np.float32), rms=rms)
        if kind == "whiten_per_image":
            if not images:
                raise ValueError("preprocess 'whiten_per_image' needs an image dataset (meta.image_shape)")
            d = int(np.prod(x.shape[1:]))
            scale = float(np.abs(x).max()) if x.size else 1.0
            return cls(kind, floor=scale / np.sqrt(d) if scale > 0 else 1.0, rms=rms)
        return cls(kind, rms=rms)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """x transformed, float32 (a new array; x is left alone)."""
        x = np.asarray(x, dtype=np.float32)
        if self.kind == "standardize":
            return ((x - self.mean) / self.std).astype(np.float32)
        if self.kind == "whiten_per_image":
            axes = tuple(range(1, x.ndim))
            mean = x.mean(axis=axes, keepdims=True, dtype=np.float64)
            std = x.std(axis=axes, keepdims=True, dtype=np.float64)
            return ((x - mean) / np.maximum(std, self.floor)).astype(np.float32)
        return x

    def warning(self, dataset: str) -> str | None:
        """A sentence when inputs fed as they are would stall (or blow up) SGD, else None."""
        low, high = SANE_RMS
        if self.kind != "none" or low <= self.rms <= high:
            return None
        from memlab.datasets.registry import DATASETS
        what = "tiny" if self.rms < low else "huge"
        twin = f"{dataset}_original"
        hint = (f" (scaled to the unit ball for Algorithm 2; '{twin}' holds pixels / 255)"
                if self.rms < low and twin in DATASETS else "")
        return (f"inputs of dataset '{dataset}' are {what} (root mean square {self.rms:.3g}){hint}: SGD at the "
                f"usual learning rates will {'crawl' if self.rms < low else 'diverge'}; set preprocess "
                f"'standardize' (or 'whiten_per_image', as Zhang et al.)")
