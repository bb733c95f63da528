"""Trial `kernel`: exact Gaussian-kernel interpolation, with no regularization (Zhang et al. 2017, section 5).

    python run.py --name kernel       # digits: test error against the label noise, bandwidth, n_train

Zhang et al. point out that the minimum-norm solution of a linear model in a feature space is
a kernel interpolant: with the Gram matrix K_ij = k(x_i, x_j) of the training points, solve

    K alpha = Y          (Y: the one-hot labels, n x classes)

exactly, and predict f(x) = sum_i alpha_i k(x_i, x) (the class with the largest output).  On
the training points f = Y: training accuracy 1.0, whatever the labels, random ones included
(as long as K is invertible: distinct points and a Gaussian kernel make it positive definite).
They report that on MNIST this interpolant, with no preprocessing and no regularization, has a
test error of about 1.2 %, and that its norm sqrt(tr(alpha^T K alpha)) grows when the labels
are corrupted: a memorized labelling is "more complex" in the kernel's sense.

Kernel: k(x, x') = exp(-gamma ||x - x'||^2); gamma "scale" is scikit-learn's 1 / (d Var(X)).
Training rows are the dataset's official train split (optionally a seeded random subset of
n_train of them), with the label corruption applied; the test rows are the official test split
with their true labels.  Reported: train and test accuracy and error, the condition number of
K (from its eigenvalues), the RKHS norm of the solution and the largest residual |K alpha - Y|.
MNIST when materialized (python data.py --name mnist) works the same; K is n_train^2 float64
values (10,000 rows: 800 MB), so keep n_train moderate there.
"""
from __future__ import annotations

import time

import numpy as np
from scipy import linalg

from memlab.datasets import DATASET_PARAMS, load_dataset
from memlab.params import REQUIRED, Param, resolve, trial_seed

RETURNS = ("n_train_used", "n_test", "gamma_used", "train_*", "test_*", "score", "residual", "rkhs_norm", "alpha_norm", "solver", "fit_time", "eig_min", "condition_number")  # noqa: E501
PARAMS = {
    **{k: v for k, v in DATASET_PARAMS.items() if k != "split"},   # the trial takes both splits itself
    "dataset": REQUIRED,
    "gamma": Param("scale", help='kernel width: exp(-gamma ||x - x\'||^2); "scale" = 1 / (d Var(X_train))'),
    "gamma_factor": Param(1.0, help="multiplies gamma (a grid over bandwidths relative to 'scale')"),
    "n_train": Param(0, help="a seeded random subset of this many training rows (0: all)"),
    "condition": Param(True, choices=(True, False), help="compute K's condition number (eigenvalues: O(n^3))"),
    "restart": Param(0, help="repetition number: only changes the seed (of the n_train subset)"),
    "seed": Param(None, help="explicit seed (default: a hash of the other parameters)"),
}


def gaussian_kernel(A: np.ndarray, B: np.ndarray, gamma: float) -> np.ndarray:
    """exp(-gamma ||a - b||^2) for every pair of rows, in float64."""
    sq = (A**2).sum(1)[:, None] + (B**2).sum(1)[None, :] - 2.0 * A @ B.T
    return np.exp(-gamma * np.maximum(sq, 0.0))


def bandwidth(gamma, X: np.ndarray) -> float:
    if gamma == "scale":
        return 1.0 / (X.shape[1] * X.var())
    gamma = float(gamma)
    if gamma <= 0:
        raise ValueError(f"kernel: gamma must be positive or 'scale', got {gamma}")
    return gamma


def interpolate(K: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, str]:
    """alpha with K alpha = Y: Cholesky when K is numerically positive definite, else LU."""
    try:
        return linalg.cho_solve(linalg.cho_factor(K, lower=True), Y), "cholesky"
    except linalg.LinAlgError:
        return linalg.solve(K, Y), "lu"


def split_data(p: dict, rng: np.random.Generator):
    corrupt = {k: p[k] for k in ("corruption", "corrupt_prob", "corrupt_seed")}
    train = load_dataset(p["dataset"], split="train", **corrupt)
    test = load_dataset(p["dataset"], split="test", **corrupt)   # true labels; pixel corruptions apply
    X, y = train.X, train.y
    n = int(p["n_train"])
    if n and n < len(y):
        idx = np.sort(rng.choice(len(y), size=n, replace=False))
        X, y = X[idx], y[idx]
    return (np.asarray(X, np.float64), np.asarray(y), np.asarray(test.X, np.float64), np.asarray(test.y),
            train.n_classes)


def trial(params: dict) -> dict:
    p = resolve(PARAMS, params)
    rng = np.random.default_rng(trial_seed(params))
    X, y, X_test, y_test, n_classes = split_data(p, rng)
    gamma = bandwidth(p["gamma"], X) * float(p["gamma_factor"])
    Y = np.eye(n_classes)[y]
    start = time.process_time()
    K = gaussian_kernel(X, X, gamma)
    alpha, solver = interpolate(K, Y)
    fit_time = time.process_time() - start
    train_out = K @ alpha
    test_out = gaussian_kernel(X_test, X, gamma) @ alpha
    train_acc = float(np.mean(train_out.argmax(1) == y))
    test_acc = float(np.mean(test_out.argmax(1) == y_test))
    out = {"n_train_used": int(len(y)), "n_test": int(len(y_test)), "gamma_used": float(gamma),
           "train_acc": train_acc, "train_error": 1.0 - train_acc, "score": train_acc,
           "test_acc": test_acc, "test_error": 1.0 - test_acc,
           "residual": float(np.abs(train_out - Y).max()),
           "rkhs_norm": float(np.sqrt(max(np.sum(alpha * train_out), 0.0))),
           "alpha_norm": float(np.linalg.norm(alpha)), "solver": solver, "fit_time": fit_time}
    if p["condition"]:
        eig = np.linalg.eigvalsh(K)
        out["eig_min"] = float(eig[0])
        out["condition_number"] = float(eig[-1] / eig[0]) if eig[0] > 0 else float("inf")
    return out
