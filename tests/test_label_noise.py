"""Symmetric and asymmetric label noise (memlab.datasets.corrupt), the `corrupted` mask a label
corruption keeps, and the clean-vs-corrupted metrics of memlab.trials._noisy."""
import numpy as np
import pytest

from memlab.datasets import corrupt
from memlab.datasets.registry import Dataset
from memlab.trials import _noisy

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def dataset(name="toy", n=20_000, k=10, classes=None, n_test=5_000, seed=0, **meta) -> Dataset:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n).astype(np.uint8)
    return Dataset(name, np.zeros((n, 1), np.float32), y, np.arange(n) >= n - n_test,
                   {"classes": classes or [str(c) for c in range(k)], **meta})


def test_symmetric_noise_flips_the_fraction_to_other_classes_uniformly():
    ds = dataset()
    out = corrupt.apply(ds, "symmetric", prob=0.3, seed=4)
    train = ~ds.is_test
    changed = out.y != ds.y
    assert not changed[ds.is_test].any()                                  # test labels stay true
    sigma = np.sqrt(0.3 * 0.7 / train.sum())
    assert abs(changed[train].mean() - 0.3) < 4 * sigma                    # every flip changes the label
    np.testing.assert_array_equal(out.corrupted, changed)
    offset = (out.y[changed].astype(int) - ds.y[changed]) % 10             # 1..9, uniformly
    counts = np.bincount(offset, minlength=10)
    assert counts[0] == 0 and np.sum((counts[1:] - counts[1:].mean()) ** 2 / counts[1:].mean()) < 35


def test_asymmetric_noise_uses_the_cifar10_class_map():
    ds = dataset("cifar10", classes=CIFAR10)
    out = corrupt.apply(ds, "asymmetric", prob=0.4, seed=0)
    expected = {"truck": "automobile", "bird": "airplane", "cat": "dog", "dog": "cat", "deer": "horse"}
    train = ~ds.is_test
    for c, name in enumerate(CIFAR10):
        rows = train & (ds.y == c)
        flipped = out.y[rows] != c
        if name in expected:
            assert set(out.y[rows][flipped]) == {CIFAR10.index(expected[name])}
            assert abs(flipped.mean() - 0.4) < 0.05
        else:
            assert not flipped.any()
    np.testing.assert_array_equal(out.corrupted, out.y != ds.y)


def test_asymmetric_noise_elsewhere_declared_or_cyclic():
    cyclic = corrupt.apply(dataset(k=4), "asymmetric", prob=1.0)
    train = ~cyclic.is_test
    base = dataset(k=4)
    np.testing.assert_array_equal(cyclic.y[train], (base.y[train] + 1) % 4)
    declared = dataset(k=3, classes=["a", "b", "c"], asymmetric_map={"a": "c"})
    out = corrupt.apply(declared, "asymmetric", prob=1.0)
    np.testing.assert_array_equal(out.y[train & (declared.y == 0)], 2)
    assert (out.y[declared.y != 0] == declared.y[declared.y != 0]).all()
    with pytest.raises(Exception, match="unknown class"):
        corrupt.apply(dataset(k=3, asymmetric_map={"z": "0"}), "asymmetric", prob=1.0)


def test_corrupted_mask_follows_the_split_and_pixel_corruptions_leave_it_alone():
    ds = dataset(n=1000, n_test=200)
    out = corrupt.apply(ds, "partial_labels", prob=0.5, seed=1)
    train = out.split("train")
    np.testing.assert_array_equal(train.corrupted, out.y[~ds.is_test] != ds.y[~ds.is_test])
    assert not out.split("test").corrupted.any()
    assert corrupt.apply(ds, "gaussian", seed=1).corrupted is None
    assert ds.corrupted is None


def test_label_noise_metrics_partition_the_training_accuracy():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 5, 500)
    noisy = np.where(rng.random(500) < 0.3, (true + rng.integers(1, 5, 500)) % 5, true)
    pred = np.where(rng.random(500) < 0.5, noisy, np.where(rng.random(500) < 0.5, true, rng.integers(0, 5, 500)))
    m = _noisy.label_noise_metrics(pred, noisy, true)
    c = noisy != true
    assert m["noisy_memorized"] == pytest.approx((pred[c] == noisy[c]).mean())
    assert m["noisy_correct"] == pytest.approx((pred[c] == true[c]).mean())
    assert m["noisy_correct"] + m["noisy_memorized"] <= 1
    assert m["train_acc"] == pytest.approx((1 - c.mean()) * m["clean_acc"] + c.mean() * m["noisy_memorized"])
    s = _noisy.split_accuracy(pred, noisy, c)
    assert s == {"train_acc_clean": pytest.approx(m["clean_acc"]),
                 "train_acc_corrupted": pytest.approx(m["noisy_memorized"])}
    assert _noisy.split_accuracy(pred, noisy, None) == {}
    assert np.isnan(_noisy.label_noise_metrics(true, true, true)["noisy_correct"])
