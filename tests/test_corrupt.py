"""Randomization tests (Zhang et al. 2017): the statistics of each corruption, its determinism,
and the consistency of the train / test / all views that load_dataset returns.

    python -m pytest -q tests/test_corrupt.py
"""
from __future__ import annotations

import types

import numpy as np
import pytest

from memlab import config
from memlab.datasets import DATASET_PARAMS, corrupt, load_dataset, registry
from memlab.datasets.registry import Dataset, DatasetSpec
from memlab.errors import ConfigError, DatasetError

K = 10


def make_images(n=3000, shape=(8, 8, 1), n_test=1000, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    X = rng.random((n, int(np.prod(shape))), dtype=np.float32)
    y = rng.integers(0, K, n)
    return {"X": X, "y": y, "is_test": np.arange(n) >= n - n_test,
            "meta": {"image_shape": list(shape), "classes": [str(c) for c in range(K)]}}


@pytest.fixture
def name(tmp_path, monkeypatch):
    """A registered image dataset in a fresh root: 3,000 8x8 images, the last 1,000 the test set."""
    monkeypatch.setenv("MEMLAB_ROOT", str(tmp_path))
    monkeypatch.setitem(registry.DATASETS, "toy_images", DatasetSpec(
        "toy_images", lambda source=None: make_images(), "image", True, True, (3000, 64), "toy"))
    return "toy_images"


def as_dataset(arrays, name="toy") -> Dataset:
    return Dataset(name, arrays["X"], np.asarray(arrays["y"], dtype=np.uint8), arrays.get("is_test"),
                   arrays.get("meta", {}))


# ---- labels ----------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_partial_labels_change_the_expected_fraction_of_training_labels(p):
    ds = as_dataset(make_images(n=40_000, shape=(2, 2, 1), n_test=10_000))
    out = corrupt.apply(ds, "partial_labels", prob=p, seed=1)
    train = ~ds.is_test
    changed = out.y[train] != ds.y[train]
    expected = p * (1 - 1 / K)
    sigma = np.sqrt(expected * (1 - expected) / train.sum())
    assert abs(changed.mean() - expected) < 4 * sigma
    np.testing.assert_array_equal(out.y[ds.is_test], ds.y[ds.is_test])   # test labels stay true
    assert out.y.max() < K
    # the new labels of changed rows are uniform over the classes
    counts = np.bincount(out.y[train][changed], minlength=K)
    chi2 = np.sum((counts - counts.mean()) ** 2 / counts.mean())
    assert chi2 < 40, "chi-square with 9 degrees of freedom: 40 is far beyond p = 1e-5"


def test_random_labels_are_independent_of_the_truth():
    ds = as_dataset(make_images(n=40_000, shape=(2, 2, 1), n_test=10_000))
    out = corrupt.apply(ds, "random_labels", seed=3)
    train = ~ds.is_test
    agree = np.mean(out.y[train] == ds.y[train])
    assert abs(agree - 1 / K) < 4 * np.sqrt(0.1 * 0.9 / train.sum())
    np.testing.assert_array_equal(out.y[ds.is_test], ds.y[ds.is_test])
    # random_labels is partial_labels with probability 1, draw for draw
    np.testing.assert_array_equal(out.y, corrupt.apply(ds, "partial_labels", prob=1.0, seed=3).y)


def test_without_a_test_mask_every_label_is_training_data():
    arrays = make_images(n=5000, shape=(2, 2, 1))
    arrays["is_test"] = None
    out = corrupt.apply(as_dataset(arrays), "random_labels", seed=0)
    assert abs(np.mean(out.y != arrays["y"]) - 0.9) < 0.03


def test_label_corruptions_through_load_dataset(name):
    full = load_dataset(name)
    test = load_dataset(name, split="test", corruption="random_labels", corrupt_seed=2)
    np.testing.assert_array_equal(test.y, full.y[full.is_test])        # true labels
    train = load_dataset(name, split="train", corruption="random_labels", corrupt_seed=2)
    corrupted_all = load_dataset(name, corruption="random_labels", corrupt_seed=2)
    np.testing.assert_array_equal(train.y, corrupted_all.y[~full.is_test])
    assert np.mean(train.y != full.y[~full.is_test]) > 0.8
    np.testing.assert_array_equal(train.X, full.X[~full.is_test])      # images untouched


# ---- pixels ----------------------------------------------------------------------------------

def numbered(n, P, C=1):
    """Image i, pixel j, channel c holds i*10000 + j*10 + c: every value says where it came from."""
    i, j, c = np.meshgrid(np.arange(n), np.arange(P), np.arange(C), indexing="ij")
    return (i * 10_000 + j * 10 + c).reshape(n, P * C).astype(np.float32)


def test_shuffled_pixels_is_one_permutation_for_every_image():
    ds = as_dataset({"X": numbered(2500, 64), "y": np.zeros(2500), "is_test": np.arange(2500) >= 2000,
                     "meta": {"image_shape": [8, 8, 1]}})
    out = corrupt.apply(ds, "shuffled_pixels", seed=4)
    perms = (out.X - np.arange(2500)[:, None] * 10_000) / 10
    assert np.all(perms == perms[0]), "the same permutation in every image, train and test"
    assert sorted(perms[0]) == list(range(64)) and np.any(perms[0] != np.arange(64))
    np.testing.assert_array_equal(np.sort(out.X, axis=1), np.sort(ds.X, axis=1))
    again = corrupt.apply(ds, "shuffled_pixels", seed=4)
    np.testing.assert_array_equal(out.X, again.X)
    assert np.any(corrupt.apply(ds, "shuffled_pixels", seed=5).X != out.X)
    np.testing.assert_array_equal(out.y, ds.y)


def test_shuffled_pixels_moves_the_channels_of_a_pixel_together():
    ds = as_dataset({"X": numbered(20, 16, 3), "y": np.zeros(20), "meta": {"image_shape": [4, 4, 3]}})
    out = corrupt.apply(ds, "shuffled_pixels", seed=0).X.reshape(20, 16, 3)
    source_pixel = (out % 10_000) // 10          # which pixel each value came from
    assert np.all(source_pixel == source_pixel[:, :, :1]), "r, g, b of one position stay together"
    np.testing.assert_array_equal(out % 10, np.broadcast_to([0, 1, 2], out.shape))


def test_random_pixels_permutes_each_image_independently():
    n, P = 3000, 64
    ds = as_dataset({"X": numbered(n, P), "y": np.zeros(n), "is_test": np.arange(n) >= 2000,
                     "meta": {"image_shape": [8, 8, 1]}})
    out = corrupt.apply(ds, "random_pixels", seed=7)
    perms = ((out.X - np.arange(n)[:, None] * 10_000) / 10).astype(int)
    np.testing.assert_array_equal(np.sort(perms, axis=1), np.broadcast_to(np.arange(P), (n, P)))
    assert len({p.tobytes() for p in perms}) == n, "no two images share a permutation"
    # where pixel 0 lands is uniform over the 64 positions
    counts = np.bincount(np.argmax(perms == 0, axis=1), minlength=P)
    chi2 = np.sum((counts - n / P) ** 2 / (n / P))
    assert chi2 < 130, "chi-square with 63 degrees of freedom"
    np.testing.assert_array_equal(out.X, corrupt.apply(ds, "random_pixels", seed=7).X)
    assert np.mean(corrupt.apply(ds, "random_pixels", seed=8).X != out.X) > 0.9


def test_pixel_corruptions_agree_between_splits(name):
    full = load_dataset(name)
    for kind in ("shuffled_pixels", "random_pixels", "gaussian"):
        all_view = load_dataset(name, corruption=kind, corrupt_seed=1)
        test = load_dataset(name, split="test", corruption=kind, corrupt_seed=1)
        train = load_dataset(name, split="train", corruption=kind, corrupt_seed=1)
        np.testing.assert_array_equal(test.X, all_view.X[full.is_test])
        np.testing.assert_array_equal(train.X, all_view.X[~full.is_test])
        assert np.mean(test.X != full.X[full.is_test]) > 0.9, "test images are corrupted too"
        np.testing.assert_array_equal(test.y, full.y[full.is_test])


def test_gaussian_matches_the_datasets_mean_and_variance():
    rng = np.random.default_rng(0)
    X = rng.gamma(2.0, 0.1, (4000, 64)).astype(np.float32)   # skewed, mean 0.2, variance 0.02
    ds = as_dataset({"X": X, "y": np.zeros(4000), "meta": {"image_shape": [8, 8, 1]}})
    out = corrupt.apply(ds, "gaussian", seed=0).X
    assert out.dtype == np.float32 and out.shape == X.shape
    n = out.size
    assert abs(out.mean() - X.mean()) < 5 * X.std() / np.sqrt(n)
    assert abs(out.var() / X.var() - 1) < 5 * np.sqrt(2 / n)
    z = (out - out.mean()) / out.std()
    assert abs(np.mean(z ** 3)) < 0.03 and abs(np.mean(z ** 4) - 3) < 0.06   # Gaussian, not gamma
    assert abs(np.corrcoef(out.ravel(), X.ravel())[0, 1]) < 0.01
    np.testing.assert_array_equal(out, corrupt.apply(ds, "gaussian", seed=0).X)
    assert not np.array_equal(out, corrupt.apply(ds, "gaussian", seed=1).X)


# ---- the contract ----------------------------------------------------------------------------

def test_results_are_read_only_copies():
    arrays = make_images(n=100, shape=(2, 2, 1), n_test=20)
    ds = as_dataset(arrays)
    X0, y0 = ds.X.copy(), ds.y.copy()
    for kind in corrupt.CORRUPTIONS[1:]:
        out = corrupt.apply(ds, kind, prob=0.5, seed=0)
        assert not out.X.flags.writeable and not out.y.flags.writeable
        assert out.meta["corruption"] == {"type": kind, "prob": 0.5, "seed": 0}
        assert out.image_shape == ds.image_shape
    np.testing.assert_array_equal(ds.X, X0)
    np.testing.assert_array_equal(ds.y, y0)
    assert corrupt.apply(ds, "none") is ds


def test_bad_arguments_are_clear_errors(name):
    with pytest.raises(DatasetError) as e:
        corrupt.apply(as_dataset(make_images(n=10)), "random_label")
    assert "did you mean 'random_labels'" in str(e.value)
    with pytest.raises(DatasetError, match="corrupt_prob"):
        load_dataset(name, corruption="partial_labels", corrupt_prob=1.5)
    with pytest.raises(DatasetError, match="corrupt_seed"):
        load_dataset(name, corruption="gaussian", corrupt_seed=-1)
    with pytest.raises(DatasetError, match="split"):
        load_dataset(name, split="valid")


def test_a_misspelt_corruption_in_a_grid_fails_before_running():
    module = types.SimpleNamespace(PARAMS={**DATASET_PARAMS, "n_iter": 10}, trial=lambda p: {})
    config.check_params(module, [{"dataset": ["mnist"], "corruption": ["none", "random_labels"]}],
                        "x.json", "t")
    with pytest.raises(ConfigError) as e:
        config.check_params(module, [{"dataset": ["mnist"], "corruption": ["shuffle_pixels"]}], "x.json", "t")
    assert "did you mean 'shuffled_pixels'" in str(e.value)
