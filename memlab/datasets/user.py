"""Your own data: any `datasets/NAME.npz` holding `X` and `y` is the dataset NAME, unregistered.

    import numpy as np
    np.savez("datasets/mine.npz", X=X, y=y)     # X: (n, d) numbers, y: (n,) class indices 0..255
    python data.py --list                       # mine   user   n x d   user file   ...
    # experiments/e.json: {"trial": "algorithm", "param_grid": {"dataset": ["mine"], ...}}

The file is checked before any trial runs (`run.py` refuses it with the file, the key and the
fix): `X` 2-D, numeric, finite; `y` 1-D, as long as `X`, integer-valued class indices that fit
the registry's uint8 labels.  Optional `is_test` (bool, n: the official test split, for `split`)
and `meta` (a JSON object string, e.g. `{"classes": [...], "image_shape": [H, W, C]}`) are read
and checked too; other arrays in the file are ignored.  `X` is read as float32, `y` as uint8, as
every registered dataset is stored; nothing is rescaled (scale it yourself if the trial expects
the unit ball, as Algorithm 2's bias range does).
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from memlab.errors import DatasetError

SAVE_HINT = "save it as np.savez('{path}', X=X, y=y) with X of shape (n, d) and y of shape (n,)"
RELABEL = "map the labels to class indices 0..K-1: classes, y = np.unique(y, return_inverse=True)"


def read(path: Path) -> dict:
    """The arrays of a user's dataset file, checked and converted: {"X", "y", "is_test", "meta"}."""
    def fail(message, key=None, fix=None):
        raise DatasetError(message, file=path, key=key, fix=fix or SAVE_HINT.format(path=path))

    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        fail(f"not a readable .npz file ({e})")
    if not isinstance(f, np.lib.npyio.NpzFile):
        fail("holds a single array (a .npy), not the named arrays X and y of an .npz")
    with f:
        for key in ("X", "y"):
            if key not in f.files:
                held = ", ".join(f.files) or "nothing"
                fail(f"has no array '{key}' (it holds: {held})", key)
        arrays = {key: _array(f, key, fail) for key in ("X", "y", "is_test", "meta") if key in f.files}
    X, y = arrays["X"], arrays["y"]
    out = {"X": _features(X, fail), "y": _labels(y, len(X), fail), "is_test": None, "meta": {}}
    if "is_test" in arrays:
        out["is_test"] = _is_test(arrays["is_test"], len(X), fail)
    if "meta" in arrays:
        out["meta"] = _meta(arrays["meta"], fail)
    return out


def _array(f, key, fail) -> np.ndarray:
    try:
        return f[key]
    except ValueError:      # numpy refuses pickled (object) arrays when allow_pickle is False
        fail(f"'{key}' is an object array (dtype object): it would need pickle to load", key,
             f"save a numeric array: {key}=np.asarray({key}, dtype=np.float32)"
             + ("" if key != "y" else f"; or {RELABEL}"))


def _features(X: np.ndarray, fail) -> np.ndarray:
    if X.ndim != 2:
        fail(f"X must be 2-D (n samples x d features), got shape {X.shape}", "X",
             "flatten each sample: X = X.reshape(len(X), -1)" if X.ndim > 2 else
             "one sample per row: X = X.reshape(-1, 1) for a single feature")
    if X.dtype.kind not in "biuf":
        fail(f"X must be numeric, got dtype {X.dtype}", "X", "save X = np.asarray(X, dtype=np.float32)")
    if X.shape[0] == 0 or X.shape[1] == 0:
        fail(f"X is empty (shape {X.shape})", "X")
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    bad = ~np.isfinite(X32)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        what = "NaN" if np.isnan(X32).any() else "inf (or a value beyond float32's range)"
        fail(f"X holds {what}, first in row {row} ({int(bad.any(axis=1).sum())} rows in all)", "X",
             "drop or impute those rows before saving")
    return X32


def _labels(y: np.ndarray, n: int, fail) -> np.ndarray:
    if y.ndim != 1:
        fail(f"y must be 1-D (one label per row of X), got shape {y.shape}", "y",
             "y = y.ravel()" if y.size == n else "one class index per sample (not one-hot)")
    if len(y) != n:
        fail(f"y has {len(y)} labels but X has {n} rows", "y", "one label per row of X, in the same order")
    if y.dtype.kind not in "biuf":
        fail(f"y must hold integer class indices, got dtype {y.dtype}", "y", RELABEL)
    if y.dtype.kind == "f":
        if np.isnan(y).any():
            fail(f"y holds NaN, first at row {int(np.argmax(np.isnan(y)))}", "y",
                 "drop those rows, or give them a class")
        frac = y != np.round(y)
        if frac.any():
            i = int(np.argmax(frac))
            fail(f"y must be integer-valued class labels, got {float(y[i])} at row {i} (float dtype {y.dtype})", "y",
                 f"{RELABEL}; float labels are fine when whole numbers (0.0, 1.0)")
    if len(y) and (y.min() < 0 or y.max() > 255):
        fail(f"y must be class indices in 0..255, got range [{y.min()}, {y.max()}]", "y", RELABEL)
    return y.astype(np.uint8)


def _is_test(is_test: np.ndarray, n: int, fail) -> np.ndarray:
    if is_test.shape != (n,) or is_test.dtype.kind not in "biu" or not np.isin(is_test, (0, 1)).all():
        fail(f"is_test must be a boolean array of shape ({n},), got {is_test.dtype} {is_test.shape}", "is_test",
             "is_test = np.asarray(mask, dtype=bool) (True: the row is in the test split), or leave it out")
    return is_test.astype(bool)


def _meta(meta: np.ndarray, fail) -> dict:
    try:
        value = json.loads(str(meta[()]))
    except (ValueError, TypeError, IndexError):
        value = None
    if not isinstance(value, dict):
        fail("meta must be a JSON object string", "meta",
             "meta=json.dumps({'classes': [...], 'image_shape': [H, W, C]}), or leave it out")
    return value
