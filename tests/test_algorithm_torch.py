"""The PyTorch path of Algorithm 2 gives the oracle's neurons (on the CPU build of torch here;
on a GPU node the same tests run with MEMLAB_TEST_DEVICE=cuda).

    python -m pytest -q tests/test_algorithm_torch.py
"""
import os

import numpy as np
import pytest

from algorithm import Memorizer
from memlab.algo import first_layer, kernels
from memlab.datasets import load_dataset

torch = pytest.importorskip("torch")
from memlab.algo import torch_path  # noqa: E402

DEVICE = os.environ.get("MEMLAB_TEST_DEVICE", "cpu")


def same_network(a, b):
    np.testing.assert_array_equal(a.W_, b.W_)
    pairs = zip(a.estimators_, b.estimators_) if hasattr(a, "estimators_") else [(a, b)]
    for ea, eb in pairs:
        np.testing.assert_array_equal(ea.anchor_, eb.anchor_)
        np.testing.assert_array_equal(ea.U_bits_, eb.U_bits_)
        np.testing.assert_array_equal(ea.m_, eb.m_)


@pytest.mark.parametrize("activation", ["thres", "relu"])
def test_first_layer_matches_the_cpu_paths(activation):
    ds = load_dataset("digits")
    W, b = first_layer.draw(np.random.default_rng(0), 300, 64, 0.7)
    got = torch_path.outputs(ds.X, W, b, activation, DEVICE).cpu().numpy()
    np.testing.assert_array_equal(got, first_layer.dense_outputs(ds.X, W, b, activation))


@pytest.mark.parametrize("activation", ["thres", "relu"])
@pytest.mark.parametrize("max_bias", [0.0, 0.5, 2.5])
def test_torch_equals_oracle_moons(activation, max_bias):
    ds = load_dataset("moons")
    for seed in range(2):
        kw = dict(n_iter=200, max_bias=max_bias, activation=activation, random_state=seed)
        same_network(Memorizer(method="oracle", **kw).fit(ds.X, ds.y),
                     Memorizer(method="torch", device=DEVICE, **kw).fit(ds.X, ds.y))


@pytest.mark.parametrize("activation", ["thres", "relu"])
def test_torch_equals_fast_digits_multiclass(activation):
    ds = load_dataset("digits")
    kw = dict(n_iter=120, max_bias=0.5, activation=activation, random_state=1)
    fast = Memorizer(**kw).fit(ds.X, ds.y)
    tor = Memorizer(method="torch", device=DEVICE, **kw).fit(ds.X, ds.y)
    same_network(fast, tor)
    assert fast.score(ds.X, ds.y) == tor.score(ds.X, ds.y)


def test_torch_empty_second_layer():
    X = np.random.default_rng(0).standard_normal((40, 3)).astype(np.float32)
    X2, y2 = np.concatenate([X, X]), np.repeat([0, 1], 40)
    net = Memorizer(n_iter=20, method="torch", device=DEVICE, random_state=0).fit(X2, y2)
    assert len(net.m_) == 0 and (net.predict(X2) == 0).all()


def test_device_auto_falls_back_to_the_cpu_kernels():
    net = Memorizer(device="auto")
    expected = "cuda" if torch.cuda.is_available() else None
    assert net._torch_device() == expected
    assert Memorizer(method="torch", device="auto")._torch_device() == (expected or "cpu")
    assert Memorizer(method="oracle", device="cuda")._torch_device() is None
    assert kernels.n_words(65) == 2
