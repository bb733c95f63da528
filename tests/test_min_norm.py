"""Trials min_norm and kernel (Zhang et al. 2017, section 5): gradient descent on least squares ends
at the closed forms (the minimum-norm interpolant from zero), and a Gaussian kernel interpolates
any labelling of digits exactly while generalizing from the true labels."""
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics.pairwise import rbf_kernel

from memlab import config
from memlab.trials import kernel, min_norm

EXPERIMENTS = Path(__file__).parents[1] / "experiments"


@pytest.fixture(autouse=True, scope="module")
def study_root(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MEMLAB_ROOT", str(tmp_path_factory.mktemp("min_norm")))
    yield
    mp.undo()


def _problem(N, d, seed, init_scale=0.0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, d))
    t = rng.standard_normal(N)
    w0 = init_scale * rng.standard_normal(d) / np.sqrt(d)
    return X, t, w0


def _gd(X, t, w0):
    run = min_norm.gradient_descent(X, t, w0, lr=1.0, tol=1e-10, max_steps=200_000)
    assert run["converged"]
    return run["w"]


@pytest.mark.parametrize("N,d", [(5, 50), (20, 100), (50, 100), (90, 100)])
@pytest.mark.parametrize("seed", [0, 1])
def test_gd_from_zero_is_the_pseudo_inverse_solution(N, d, seed):
    X, t, w0 = _problem(N, d, seed)
    w = _gd(X, t, w0)
    w_pinv = np.linalg.pinv(X) @ t
    assert np.linalg.norm(w - w_pinv) <= 1e-6 * np.linalg.norm(w_pinv)
    assert np.allclose(X @ w, t, atol=1e-6)                                     # it interpolates


@pytest.mark.parametrize("N,d", [(10, 60), (40, 60)])
def test_gd_from_w0_keeps_the_part_of_w0_the_data_cannot_see(N, d):
    X, t, w0 = _problem(N, d, seed=3, init_scale=2.0)
    w = _gd(X, t, w0)
    # the closed form written without a pseudo-inverse: w0 + X^T (X X^T)^-1 (t - X w0)
    w_closed = w0 + X.T @ np.linalg.solve(X @ X.T, t - X @ w0)
    assert np.linalg.norm(w - w_closed) <= 1e-6 * np.linalg.norm(w_closed)
    P = X.T @ np.linalg.solve(X @ X.T, X)                                       # projection on the row space
    assert np.allclose((np.eye(d) - P) @ w, (np.eye(d) - P) @ w0, atol=1e-8)
    w_pinv = np.linalg.pinv(X) @ t
    assert np.linalg.norm(w - w_pinv) > 0.3 * np.linalg.norm(w_pinv)             # not the min-norm one
    assert np.linalg.norm(w) > np.linalg.norm(w_pinv)                            # which is the smallest


def test_trial_reports_the_closed_forms_and_the_theory():
    out = min_norm.trial({"d": 100, "ratio": 0.5, "init_scale": 1.0, "record_points": 30})
    assert out["N"] == 50 and out["converged"] and out["rank"] == 50
    assert out["dist_closed_form"] < 1e-6 and out["dist_min_norm"] > 0.3
    assert out["norm"] > out["norm_min_norm"] and out["train_mse"] < 1e-12
    s = out["series"]
    assert s["step"][0] == 0 and s["step"][-1] == out["steps"] and s["dist_closed_form"][-1] < 1e-6
    zero = min_norm.trial({"d": 100, "ratio": 0.5, "init_scale": 0.0})
    assert zero["dist_min_norm"] < 1e-6 and zero["norm_ratio"] == pytest.approx(1.0, abs=1e-6)
    again = min_norm.trial({"d": 100, "ratio": 0.5, "init_scale": 0.0})
    assert {k: v for k, v in again.items() if k != "fit_time"} == {k: v for k, v in zero.items() if k != "fit_time"}


def test_test_error_follows_the_theory():
    """(1 - N/d)(1 + ||w0||^2) without noise: the unseen part of the teacher and of w0."""
    for ratio, scale in [(0.3, 0.0), (0.5, 2.0)]:
        runs = [min_norm.trial({"d": 200, "ratio": ratio, "init_scale": scale, "restart": r}) for r in range(4)]
        measured = np.mean([r["test_mse"] for r in runs])
        theory = np.mean([r["test_mse_theory"] for r in runs])
        assert measured == pytest.approx(theory, rel=0.25)
    assert min_norm.test_mse_theory(300, 200, 0.0, 0.5) == pytest.approx(0.25 * 200 / 99 + 0.25)


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="ratio"):
        min_norm.trial({"ratio": 0.0})


# ---------------------------------------------------------------------------- kernel

def test_gaussian_kernel_matches_sklearn():
    X = np.random.default_rng(0).standard_normal((30, 7))
    assert np.allclose(kernel.gaussian_kernel(X, X[:9], 0.3), rbf_kernel(X, X[:9], gamma=0.3))


def test_kernel_interpolation_generalizes_on_digits():
    out = kernel.trial({"dataset": "digits"})
    assert out["train_acc"] == 1.0 and out["residual"] < 1e-6
    assert out["test_acc"] > 0.97 and out["n_test"] == 359
    assert out["solver"] == "cholesky" and np.isfinite(out["condition_number"])


def test_kernel_interpolates_random_labels_at_chance_on_the_test_set():
    clean = kernel.trial({"dataset": "digits", "n_train": 500})
    rand = kernel.trial({"dataset": "digits", "n_train": 500, "corruption": "random_labels"})
    assert rand["train_acc"] == 1.0                               # memorized
    assert rand["test_acc"] < 0.2 < 0.9 < clean["test_acc"]       # nothing learned
    assert rand["rkhs_norm"] > 3 * clean["rkhs_norm"]             # a more complex function


def test_shuffled_pixels_change_nothing_for_a_gaussian_kernel():
    """One permutation of the pixels keeps every distance, so Zhang et al.'s shuffled-pixels test
    is invisible to this kernel: the same interpolant, the same test error."""
    clean = kernel.trial({"dataset": "digits", "n_train": 300, "condition": False, "seed": 0})
    shuffled = kernel.trial({"dataset": "digits", "n_train": 300, "condition": False, "seed": 0,
                             "corruption": "shuffled_pixels"})
    assert shuffled["test_acc"] == clean["test_acc"]
    assert shuffled["rkhs_norm"] == pytest.approx(clean["rkhs_norm"], rel=1e-9)


def test_kernel_subset_and_bandwidth():
    out = kernel.trial({"dataset": "digits", "n_train": 200, "gamma": 0.05, "gamma_factor": 2.0})
    assert out["n_train_used"] == 200 and out["gamma_used"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="gamma"):
        kernel.trial({"dataset": "digits", "n_train": 50, "gamma": -1.0})


@pytest.mark.parametrize("name,module", [("min_norm", min_norm), ("kernel", kernel)])
def test_experiment_files_declare_valid_parameters(name, module):
    path = EXPERIMENTS / f"{name}.json"
    raw = json.loads(path.read_text())
    assert raw["trial"] == name
    config.check_params(module, config.expand_grid(raw["param_grid"], path), path, raw["trial"])
