"""Randomization tests (Zhang et al. 2017, "Understanding deep learning requires rethinking
generalization"): corrupt a dataset's labels or pixels, as parameters of loading.

    "param_grid": {"dataset": ["mnist"], "corruption": ["none", "partial_labels"],
                   "corrupt_prob": [0.2, 0.5, 0.8], "corrupt_seed": [0, 1, 2], ...}

registry.load_dataset applies `apply(ds, corruption, prob=corrupt_prob, seed=corrupt_seed)` to the
whole dataset and only then takes the train or test split, so the views agree with each other:

- label corruptions change training labels only: rows marked `is_test` keep their true labels (a
  dataset without the mask counts as all training data); the result's `corrupted` mask marks the
  rows whose label changed (a resampled label equal to the true one is not corrupted);
- pixel corruptions change train and test images alike, as in the paper: `shuffled_pixels` uses one
  permutation for every image, `random_pixels` and `gaussian` draw per image from a stream fixed by
  (seed, the image's row in the full dataset).

For images with several channels a "pixel" is a position (its channel values move together).
"""
from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from memlab.errors import DatasetError, choices_hint

CORRUPTIONS = ("none", "partial_labels", "noisy_labels", "random_labels", "symmetric", "asymmetric",
               "shuffled_pixels", "random_pixels", "gaussian")
# Corruptions of the labels alone: the test set keeps its labels, the result a `corrupted` mask.
LABEL_CORRUPTIONS = ("partial_labels", "noisy_labels", "random_labels", "symmetric", "asymmetric")

# Asymmetric noise between similar classes (Patrini et al. 2017, as in the code of Ye et al. 2022,
# "The price of sparsity"): truck -> automobile, bird -> airplane, cat <-> dog, deer -> horse.
CIFAR10_MAP = {"truck": "automobile", "bird": "airplane", "cat": "dog", "dog": "cat", "deer": "horse"}
# Declared maps by dataset name (class name -> class name); a dataset may also declare its own in
# meta["asymmetric_map"].  Any other dataset flips class c to c + 1 (mod the number of classes).
ASYMMETRIC_MAPS = {"cifar10": CIFAR10_MAP, "cifar10_original": CIFAR10_MAP}
ROWS_PER_STREAM = 1024   # per-image draws come from one random stream per block of this many rows


def check(corruption: str, prob: float = 0.0, seed: int = 0) -> None:
    """Raise DatasetError for an unknown corruption, a probability outside [0, 1] or a negative seed."""
    if corruption not in CORRUPTIONS:
        raise DatasetError(f"unknown corruption '{corruption}'", key="corruption",
                           fix=choices_hint(corruption, CORRUPTIONS))
    if not 0.0 <= float(prob) <= 1.0:
        raise DatasetError(f"corrupt_prob must lie in [0, 1], got {prob}", key="corrupt_prob",
                           fix="give a probability, e.g. 0.5")
    if int(seed) < 0:
        raise DatasetError(f"corrupt_seed must be >= 0, got {seed}", key="corrupt_seed", fix="use 0, 1, 2, ...")


def apply(ds, corruption: str, *, prob: float = 0.0, seed: int = 0):
    """A copy of Dataset `ds` with `corruption` applied (read-only arrays; `ds` is left alone).

    none            -- `ds` itself
    partial_labels  -- each training label, with probability `prob`, becomes a uniformly random class
                       (which may be the old one: a fraction prob * (1 - 1/K) changes)
    noisy_labels    -- the KTH practical's corrupt_labels: exactly round(prob * n) of the n training
                       labels, chosen at random, each become a uniformly random *other* class
    random_labels   -- every training label becomes a uniformly random class (`prob` is ignored)
    symmetric       -- each training label, with probability `prob`, becomes one of the *other*
                       classes, uniformly (a fraction prob changes: "30 % symmetric flips")
    asymmetric      -- each training label, with probability `prob`, becomes its class's image
                       under `asymmetric_map(ds)` (classes the map leaves alone never change)
    shuffled_pixels -- one random permutation of the pixels, applied to every image
    random_pixels   -- an independent random permutation of the pixels of each image
    gaussian        -- every image replaced by Gaussian noise with the dataset's mean and variance
    """
    check(corruption, prob, seed)
    if corruption == "none":
        return ds
    X, y = ds.X, ds.y
    if corruption == "partial_labels":
        y = _random_labels(ds, prob, seed)
    elif corruption == "noisy_labels":
        y = _noisy_labels(ds, prob, seed)
    elif corruption == "random_labels":
        y = _random_labels(ds, 1.0, seed)
    elif corruption == "symmetric":
        y = _flip_labels(ds, prob, seed, "symmetric")
    elif corruption == "asymmetric":
        y = _flip_labels(ds, prob, seed, "asymmetric")
    elif corruption == "shuffled_pixels":
        X = _shuffled_pixels(ds, seed)
    elif corruption == "random_pixels":
        X = _random_pixels(ds, seed)
    else:
        X = _gaussian(ds.X, seed)
    for a in (X, y):
        a.setflags(write=False)
    meta = {**ds.meta, "corruption": {"type": corruption, "prob": float(prob), "seed": int(seed)}}
    corrupted = ds.corrupted
    if corruption in LABEL_CORRUPTIONS:
        corrupted = y != ds.y
        corrupted.setflags(write=False)
    return dataclasses.replace(ds, X=X, y=y, meta=meta, corrupted=corrupted)


def _rng(seed: int, purpose: str, *block: int) -> np.random.Generator:
    """An independent, reproducible stream for (seed, purpose[, block])."""
    return np.random.default_rng([int(seed), zlib.crc32(purpose.encode()), *block])


def _random_labels(ds, prob: float, seed: int) -> np.ndarray:
    n = len(ds.y)
    rng = _rng(seed, "labels")
    # Draw for every row, then keep the training rows: row i's draw does not depend on the mask.
    flip = rng.random(n) < prob
    new = rng.integers(0, ds.n_classes, n)
    if ds.is_test is not None:
        flip &= ~ds.is_test
    y = ds.y.copy()
    y[flip] = new[flip].astype(y.dtype)
    return y


def asymmetric_map(ds) -> np.ndarray:
    """target[c]: the class that asymmetric noise turns class c into (c itself: never flipped).

    meta["asymmetric_map"] if the dataset declares one, else ASYMMETRIC_MAPS[name], both by
    class name (or index); otherwise the next class cyclically, c -> c + 1 mod K.
    """
    k = ds.n_classes
    declared = ds.meta.get("asymmetric_map") or ASYMMETRIC_MAPS.get(ds.name.split("[")[0])
    if declared is None:
        return (np.arange(k) + 1) % k
    names = [str(c) for c in ds.meta.get("classes") or range(k)]

    def index(c) -> int:
        c = str(c)
        if c in names:
            return names.index(c)
        if c.isdigit() and int(c) < k:
            return int(c)
        raise DatasetError(f"asymmetric map of '{ds.name}' names an unknown class '{c}'", key="corruption",
                           fix=f"classes are {names}")

    target = np.arange(k)
    for src, dst in declared.items():
        target[index(src)] = index(dst)
    return target


def _flip_labels(ds, prob: float, seed: int, kind: str) -> np.ndarray:
    n, k = len(ds.y), ds.n_classes
    rng = _rng(seed, kind)
    flip = rng.random(n) < prob
    if kind == "symmetric":        # one of the k - 1 other classes, uniformly
        new = (ds.y.astype(np.int64) + rng.integers(1, k, n)) % k
    else:
        new = asymmetric_map(ds)[ds.y.astype(np.int64)]
    if ds.is_test is not None:
        flip &= ~ds.is_test
    y = ds.y.copy()
    y[flip] = new[flip].astype(y.dtype)
    return y


def _noisy_labels(ds, prob: float, seed: int) -> np.ndarray:
    rng = _rng(seed, "noisy_labels")
    rows = np.flatnonzero(np.ones(len(ds.y), bool) if ds.is_test is None else ~ds.is_test)
    chosen = rng.choice(rows, int(round(prob * len(rows))), replace=False)
    k = ds.n_classes
    # Adding 1 .. K-1 (mod K) reaches every other class with equal probability, never the true one.
    y = ds.y.copy()
    y[chosen] = ((ds.y[chosen].astype(np.int64) + rng.integers(1, k, len(chosen))) % k).astype(y.dtype)
    return y


def _pixels(ds) -> tuple[int, int]:
    """(pixels per image, values per pixel): channels of one position move together."""
    shape = ds.image_shape
    if shape and len(shape) == 3 and shape[2] > 1 and shape[0] * shape[1] * shape[2] == ds.X.shape[1]:
        return shape[0] * shape[1], shape[2]
    return ds.X.shape[1], 1


def _shuffled_pixels(ds, seed: int) -> np.ndarray:
    P, C = _pixels(ds)
    perm = _rng(seed, "shuffled_pixels").permutation(P)
    n = len(ds.X)
    return np.ascontiguousarray(ds.X.reshape(n, P, C)[:, perm, :].reshape(n, P * C))


def _random_pixels(ds, seed: int) -> np.ndarray:
    P, C = _pixels(ds)
    n = len(ds.X)
    images = ds.X.reshape(n, P, C)
    out = np.empty_like(images)
    for start in range(0, n, ROWS_PER_STREAM):
        stop = min(start + ROWS_PER_STREAM, n)
        rng = _rng(seed, "random_pixels", start // ROWS_PER_STREAM)
        perms = rng.permuted(np.broadcast_to(np.arange(P), (stop - start, P)), axis=1)
        out[start:stop] = np.take_along_axis(images[start:stop], perms[:, :, None], axis=1)
    return out.reshape(n, P * C)


def _gaussian(X: np.ndarray, seed: int) -> np.ndarray:
    mean, std = float(X.mean(dtype=np.float64)), float(X.std(dtype=np.float64))
    out = np.empty(X.shape, dtype=np.float32)
    for start in range(0, len(X), ROWS_PER_STREAM):
        stop = min(start + ROWS_PER_STREAM, len(X))
        rng = _rng(seed, "gaussian", start // ROWS_PER_STREAM)
        out[start:stop] = rng.normal(mean, std, (stop - start, X.shape[1]))
    return out
