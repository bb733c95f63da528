"""Synthetic datasets built as the paper's reference code builds them, and a user's own npz files.

    python -m pytest -q tests/test_datasets.py
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from memlab import datasets
from memlab.datasets import synthetic


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A fresh project root: datasets/ is empty."""
    monkeypatch.setenv("MEMLAB_ROOT", str(tmp_path))
    return tmp_path


# ---- moons_size_*: prefixes of one scaled draw -----------------------------------------------

def test_moons_sizes_are_prefixes_of_one_scaled_draw(root):
    """The reference scales the 1,000,000-point draw once, then slices; a prefix is not rescaled."""
    from sklearn.datasets import make_moons
    X, y = make_moons(1_000_000, noise=0.05, random_state=0)
    X = X.astype(np.float32)
    X /= np.linalg.norm(X, axis=1).max()                         # the whole draw, once
    full = datasets.load_dataset("moons_size_1000k")
    np.testing.assert_array_equal(full.X, X)
    np.testing.assert_array_equal(full.y, y)
    assert np.linalg.norm(full.X, axis=1).max() == pytest.approx(1.0, abs=1e-6)
    for label in ("100", "1k", "10k", "100k", "200k"):
        n = synthetic.MOONS_SIZES[label]
        part = datasets.load_dataset(f"moons_size_{label}")
        assert part.X.shape == (n, 2) and part.X.dtype == np.float32
        np.testing.assert_array_equal(part.X, full.X[:n])          # the same points, not x1.01 larger
        np.testing.assert_array_equal(part.y, full.y[:n])
        assert np.linalg.norm(part.X, axis=1).max() <= 1.0
    # the smaller prefixes really do stop short of the unit sphere (a rescale would reach it)
    assert np.linalg.norm(datasets.load_dataset("moons_size_100k").X, axis=1).max() < 0.99
