"""Trial `min_norm`: the implicit regularization of gradient descent on least squares.

    python run.py --name min_norm      # distance to the closed forms, norm, errors against N/d and init

Linear regression with N samples in d dimensions, X (N x d) with N(0, 1) entries, targets
t = X w* + noise (w* a random unit vector).  Gradient descent on L(w) = ||X w - t||^2 / (2N)
moves w only within the row space of X (every gradient X^T (X w - t) / N lies there), so the
component of w0 orthogonal to it never changes.  Hence, from w0, GD converges to

    w_inf = w0 + X^+ (t - X w0)          (= w0 + X^T (X X^T)^-1 (t - X w0) when N < d)

and from w0 = 0 to the minimum-norm interpolating solution X^+ t (Zhang et al. 2017, section 5;
the closed form holds for N >= d too, where it is the least-squares solution).  The trial runs
plain GD until the gradient is tiny and reports how far it ended from those closed forms, its
norm against the minimum norm, and the training and test errors.  Theory for N < d and no
noise: w_inf = P w* + (I - P) w0 with P the projection on the row space, so the test error
(mean squared, on fresh samples) is about (1 - N/d) (||w*||^2 + ||w0||^2): every bit of the
initialization that the data cannot see stays in the solution.

Step size: lr / lambda_max with lambda_max the largest eigenvalue of X^T X / N (lr < 2 is
stable; 1 is the fastest safe choice for the slowest directions).  Near N = d the smallest
nonzero eigenvalue goes to 0 and GD needs many steps; max_steps bounds them (converged says
whether the tolerance was met).
"""
from __future__ import annotations

import time

import numpy as np

from memlab.params import Param, resolve, trial_seed

RETURNS = ("N", "dist_*", "norm*", "train_mse", "test_mse*", "steps", "converged", "fit_time", "rank", "step")  # columns and series
PARAMS = {
    "d": Param(200, help="input dimension"),
    "ratio": Param(0.5, help="N / d: samples per dimension (N = round(ratio d), at least 1)"),
    "init_scale": Param(0.0, help="||w0|| (about): w0 ~ N(0, init_scale^2 / d I); 0 starts at zero"),
    "noise": Param(0.0, help="standard deviation of the label noise"),
    "lr": Param(1.0, help="step size in units of 1 / lambda_max(X^T X / N)"),
    "tol": Param(1e-10, help="stop when ||grad|| <= tol ||X^T t|| / N"),
    "max_steps": Param(200_000, help="give up after this many GD steps"),
    "n_test": Param(2000, help="fresh samples for the test error"),
    "record_points": Param(0, help="record training error and distance at about this many log-spaced steps (0: none)"),
    "restart": Param(0, help="repetition number: only changes the seed"),
    "seed": Param(None, help="explicit seed (default: a hash of the other parameters)"),
}


def problem(p: dict, rng: np.random.Generator) -> dict:
    """The data, the teacher, the initialization and the test set of one trial."""
    d = int(p["d"])
    N = max(1, int(round(float(p["ratio"]) * d)))
    w_star = rng.standard_normal(d)
    w_star /= np.linalg.norm(w_star)
    X = rng.standard_normal((N, d))
    t = X @ w_star + float(p["noise"]) * rng.standard_normal(N)
    w0 = float(p["init_scale"]) * rng.standard_normal(d) / np.sqrt(d)
    X_test = rng.standard_normal((int(p["n_test"]), d))
    t_test = X_test @ w_star + float(p["noise"]) * rng.standard_normal(len(X_test))
    return {"X": X, "t": t, "w_star": w_star, "w0": w0, "X_test": X_test, "t_test": t_test}


def closed_form(X: np.ndarray, t: np.ndarray, w0: np.ndarray) -> np.ndarray:
    """w0 + X^+ (t - X w0): where gradient descent from w0 converges."""
    return w0 + np.linalg.pinv(X) @ (t - X @ w0)


def gradient_descent(X, t, w0, *, lr: float, tol: float, max_steps: int, record_points: int = 0,
                     target: np.ndarray | None = None) -> dict:
    """Plain full-batch GD on ||X w - t||^2 / (2N) from w0.

    Returns w, the number of steps, converged, and (with record_points) the training MSE and the
    relative distance to `target` at step 0, about record_points log-spaced steps and the last one.
    """
    N = len(X)
    lam_max = np.linalg.norm(X, 2) ** 2 / N
    eta = lr / lam_max
    stop = tol * np.linalg.norm(X.T @ t) / N
    w = w0.copy()
    history = {"step": [], "train_mse": [], "dist": []}

    def record(step):
        history["step"].append(step)
        history["train_mse"].append(float(np.mean((X @ w - t) ** 2)))
        if target is not None:
            history["dist"].append(float(np.linalg.norm(w - target) / max(np.linalg.norm(target), 1e-300)))

    marks = set(np.unique(np.geomspace(1, max(max_steps, 1), record_points).astype(int))) if record_points else set()
    marks.add(0)
    step, converged = 0, False
    while step < max_steps:
        if record_points and step in marks:
            record(step)
        grad = X.T @ (X @ w - t) / N
        if np.linalg.norm(grad) <= stop:
            converged = True
            break
        w -= eta * grad
        step += 1
    if record_points and (not history["step"] or history["step"][-1] != step):
        record(step)
    return {"w": w, "steps": step, "converged": converged, "history": history}


def relative(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / ||b|| (the absolute distance when b = 0)."""
    nb = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / (nb if nb > 0 else 1.0))


def test_mse_theory(N: int, d: int, norm_w0: float, noise: float) -> float:
    """The expected test MSE of w0 + X^+ (t - X w0) over Gaussian X, for ||w*|| = 1 and this ||w0||.

    N < d - 1: the unseen part of w* - w0 costs (1 - N/d)(1 + ||w0||^2) and the fitted noise
    sigma^2 N / (d - N - 1); N > d + 1: only the noise, sigma^2 d / (N - d - 1); plus the test
    labels' own noise sigma^2.  Near N = d the noise term diverges (the double-descent peak).
    """
    s2 = noise**2
    if N < d - 1:
        return (1 - N / d) * (1 + norm_w0**2) + s2 * N / (d - N - 1) + s2
    if N > d + 1:
        return s2 * d / (N - d - 1) + s2
    return float("inf") if s2 > 0 else (1 - min(N, d) / d) * (1 + norm_w0**2)


def trial(params: dict) -> dict:
    p = resolve(PARAMS, params)
    if int(p["d"]) < 1 or float(p["ratio"]) <= 0 or float(p["lr"]) <= 0:
        raise ValueError("min_norm: d >= 1, ratio > 0 and lr > 0 are required")
    rng = np.random.default_rng(trial_seed(params))
    pr = problem(p, rng)
    X, t, w0 = pr["X"], pr["t"], pr["w0"]
    w_closed = closed_form(X, t, w0)
    w_min = np.linalg.pinv(X) @ t
    start = time.process_time()
    run = gradient_descent(X, t, w0, lr=float(p["lr"]), tol=float(p["tol"]), max_steps=int(p["max_steps"]),
                           record_points=int(p["record_points"]), target=w_closed)
    fit_time = time.process_time() - start
    w = run["w"]
    N, d = X.shape
    out = {"N": N, "dist_closed_form": relative(w, w_closed), "dist_min_norm": relative(w, w_min),
           "norm": float(np.linalg.norm(w)), "norm_min_norm": float(np.linalg.norm(w_min)),
           "norm_closed_form": float(np.linalg.norm(w_closed)), "norm_w0": float(np.linalg.norm(w0)),
           "norm_ratio": float(np.linalg.norm(w) / max(np.linalg.norm(w_min), 1e-300)),
           "train_mse": float(np.mean((X @ w - t) ** 2)),
           "test_mse": float(np.mean((pr["X_test"] @ w - pr["t_test"]) ** 2)),
           "test_mse_min_norm": float(np.mean((pr["X_test"] @ w_min - pr["t_test"]) ** 2)),
           "test_mse_theory": test_mse_theory(N, d, float(np.linalg.norm(w0)), float(p["noise"])),
           "dist_teacher": relative(w, pr["w_star"]),
           "steps": run["steps"], "converged": run["converged"], "fit_time": fit_time,
           "rank": int(np.linalg.matrix_rank(X))}
    if p["record_points"]:
        h = run["history"]
        out["series"] = {"step": h["step"], "train_mse": h["train_mse"], "dist_closed_form": h["dist"]}
    return out
