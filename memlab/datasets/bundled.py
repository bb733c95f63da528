"""Image datasets that ship with installed packages and so work offline."""
from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from memlab.datasets.registry import register


def stratified_test_mask(y: np.ndarray, test_fraction: float, seed: int = 0) -> np.ndarray:
    """A fixed, seeded, per-class split: the same `is_test` mask on every machine."""
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        is_test[rng.permutation(idx)[: int(round(test_fraction * len(idx)))]] = True
    return is_test


@register("digits", kind="image", shape=(1797, 64))
def digits(source=None) -> dict:
    """scikit-learn's 8x8 digits (1,797 images), pixels / 16; a fixed stratified 80/20 split."""
    d = load_digits()
    return {"X": (d.data / 16.0).astype(np.float32), "y": d.target,
            "is_test": stratified_test_mask(d.target, 0.2, seed=0),
            "meta": {"image_shape": [8, 8, 1], "classes": [str(c) for c in range(10)],
                     "source": "sklearn.datasets.load_digits"}}
