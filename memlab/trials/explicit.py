"""Trial `explicit`: Zhang et al.'s explicit memorizer, a two-layer ReLU network with 2n + d weights.

    python run.py --name explicit_vs_algorithm     # its size against Algorithm 2's, moons and digits

Zhang, Bengio, Hardt, Recht, Vinyals, "Understanding deep learning requires rethinking
generalization" (ICLR 2017), Theorem 1: there exists a two-layer neural network with ReLU
activations and 2n + d weights that can represent any function on a sample of size n in d
dimensions.  The proof is a construction, implemented here line by line:

    [Line 1] draw a random direction a in R^d (d weights); project: z_i = <a, x_i>
             (distinct for distinct points, with probability 1)
    [Line 2] sort the projections: z_(1) < z_(2) < ... < z_(n)
    [Line 3] choose n biases that interleave them: b_1 < z_(1) < b_2 < z_(2) < ... < b_n < z_(n)
             (here b_i = z_(i-1) + theta (z_(i) - z_(i-1)), theta = bias_offset in (0, 1))
    [Line 4] the hidden layer computes h_j(x) = max(<a, x> - b_j, 0); on the training points the
             matrix A_ij = h_j(x_(i)) = max(z_(i) - b_j, 0) is lower triangular with a positive
             diagonal (z_(i) > b_i, and z_(i) <= b_j for j > i), hence invertible
    [Line 5] solve A w = y for the n output weights w; the network c(x) = sum_j w_j h_j(x)
             then takes the value y_i at every training point x_i

c is piecewise linear in z = <a, x> with a kink at each b_j, so the triangular solve is a
forward recursion on slopes (solve_slopes), O(n) instead of O(n^2): the slope S_i of c on
(b_i, b_(i+1)) is S_(i-1) corrected so that c climbs from y_(i-1) at z_(i-1) to y_i at z_(i);
w_i = S_i - S_(i-1).  `triangular_weights` is the plain O(n^2) solve, kept as the oracle
the tests compare against.

Where the biases sit matters numerically, not in exact arithmetic: the slopes obey
S_i = (dy_i / g_i - theta S_(i-1)) / (1 - theta), so for theta > 1/2 the exact weights grow like
(theta / (1 - theta))^i (1e30 and more after 60 points at theta = 0.8) and the fit is lost in
rounding; at the midpoints (theta = 1/2, the default) they grow at most linearly in n, and for
theta < 1/2 they stay of the order of the largest |dy| / gap.

Estimators (scikit-learn conventions):
    ExplicitRegressor     real targets, one output or several (n x k weights)
    ExplicitClassifier    labels; coding "value" fits the class index with one output (2n + d
                          weights, predict rounds), coding "onehot" fits one output per class
                          (n + d + n k weights, predict takes the argmax)

The trial fits the classifier to a dataset (optionally a seeded subsample of n_points rows, and
the label corruptions of memlab.datasets) and reports its training score (1.0 when the
projections are distinct), its width n, its weight count and its numerical margin.  With
method "algorithm2" it fits Algorithm 2 (algorithm.py) to the same rows instead, so that one
experiment can compare the two constructions' sizes.
"""
from __future__ import annotations

import time

import numpy as np
from scipy.linalg import solve_triangular
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from memlab.datasets import DATASET_PARAMS, dataset_from_params
from memlab.params import REQUIRED, Param, resolve, trial_seed

CODINGS = ("value", "onehot")
METHODS = ("zhang", "algorithm2")
PREDICT_CHUNK = 4096     # rows per block in predict: the hidden layer is (rows x n)

RETURNS = ("n_points_used", "d", "n_classes", "score", "fit_time", "width", "n_weights", "margin", "min_gap", "max_abs_weight", "distinct")  # noqa: E501
PARAMS = {
    **DATASET_PARAMS,
    "dataset": REQUIRED,
    "n_points": Param(0, help="fit a seeded random subset of this many rows (0: all rows)"),
    "method": Param("zhang", choices=METHODS, help="zhang: Theorem 1's network; algorithm2: algorithm.py"),
    "coding": Param("value", choices=CODINGS, help="zhang: one output (class index) or one per class"),
    "bias_offset": Param(0.5, help="zhang: theta in (0, 1), where each bias sits between two "
                                   "projections (> 0.5: the weights explode)"),
    "n_iter": Param(100, help="algorithm2: first-layer width"),
    "max_bias": Param(0.0, help="algorithm2: maximal first-layer bias"),
    "activation": Param("thres", choices=("thres", "relu"), help="algorithm2: first-layer activation"),
    "restart": Param(0, help="repetition number: only changes the seed"),
    "seed": Param(None, help="explicit seed (default: a hash of the other parameters)"),
}


# ---------------------------------------------------------------------------- the construction

def interleaving_biases(z_sorted: np.ndarray, theta: float) -> np.ndarray:
    """[Line 3] b_i = z_(i-1) + theta (z_(i) - z_(i-1)); b_1 = z_(1) - theta g with g the first gap."""
    n = len(z_sorted)
    b = np.empty(n)
    first_gap = z_sorted[1] - z_sorted[0] if n > 1 else 1.0
    b[0] = z_sorted[0] - theta * first_gap
    b[1:] = z_sorted[:-1] + theta * np.diff(z_sorted)
    return b


def solve_slopes(z: np.ndarray, b: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """[Line 5] The output weights w (n, k) with sum_j w_j max(z_i - b_j, 0) = Y_i, in O(n k).

    Between z_(i-1) and z_(i) the network has slope S_(i-1) up to b_i and S_i after it, so
        Y_i - Y_(i-1) = S_(i-1) (b_i - z_(i-1)) + S_i (z_(i) - b_i).
    Each step starts from the exact target Y_(i-1), so rounding errors do not accumulate in
    the values.  At the first point only h_1 is active: S_1 = Y_1 / (z_(1) - b_1).
    """
    n = len(z)
    S = np.empty_like(Y)
    S[0] = Y[0] / (z[0] - b[0])
    for i in range(1, n):
        S[i] = (Y[i] - Y[i - 1] - S[i - 1] * (b[i] - z[i - 1])) / (z[i] - b[i])
    w = S.copy()
    w[1:] -= S[:-1]
    return w


def triangular_weights(z: np.ndarray, b: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """The oracle for solve_slopes: build A_ij = max(z_i - b_j, 0) and solve the lower-triangular system."""
    A = np.maximum(z[:, None] - b[None, :], 0.0)              # [Line 4]
    return solve_triangular(A, Y, lower=True)                  # [Line 5]


class ExplicitRegressor(RegressorMixin, BaseEstimator):
    """Theorem 1's network c(x) = sum_j w_j max(<a, x> - b_j, 0), fitted to real targets.

    bias_offset: theta in (0, 1), where each bias sits between two consecutive projections.
    random_state: int, numpy Generator or None; it draws the direction a.

    Fitted: a_ (d,), b_ (n,), w_ (n,) or (n, k), z_sorted_ (the sorted distinct projections),
    n_distinct_ (the width n), min_gap_ (the smallest gap between consecutive projections,
    relative to their range).  Points with equal projections get the target of the first of
    them: identical inputs cannot have different outputs.
    """

    def __init__(self, bias_offset: float = 0.5, random_state=None):
        self.bias_offset = bias_offset
        self.random_state = random_state

    def fit(self, X, y):
        X = np.asarray(X, dtype=np.float64)
        Y = np.asarray(y, dtype=np.float64)
        if X.ndim != 2 or len(X) != len(Y) or len(X) == 0:
            raise ValueError(f"X must be (n, d) and y (n,) or (n, k) with n > 0; got {X.shape} and {Y.shape}")
        if not 0.0 < self.bias_offset < 1.0:
            raise ValueError(f"bias_offset must lie in (0, 1), got {self.bias_offset}")
        rng = np.random.default_rng(self.random_state)
        self.n_features_in_ = X.shape[1]
        self.a_ = rng.standard_normal(X.shape[1])                          # [Line 1]
        z = X @ self.a_
        z_sorted, first = np.unique(z, return_index=True)                  # [Line 2] (sorted, distinct)
        self.z_sorted_ = z_sorted
        self.n_distinct_ = len(z_sorted)
        self.b_ = interleaving_biases(z_sorted, float(self.bias_offset))   # [Line 3]
        self.w_ = solve_slopes(z_sorted, self.b_, Y[first])                # [Lines 4-5]
        span = z_sorted[-1] - z_sorted[0]
        self.min_gap_ = float(np.diff(z_sorted).min() / span) if len(z_sorted) > 1 else 1.0
        return self

    @property
    def n_weights_(self) -> int:
        """d + n + n k: the direction, the biases, the output weights (2n + d for one output)."""
        check_is_fitted(self, "w_")
        k = 1 if self.w_.ndim == 1 else self.w_.shape[1]
        return int(self.n_features_in_ + self.n_distinct_ + self.n_distinct_ * k)

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "w_")
        z = np.asarray(X, dtype=np.float64) @ self.a_
        out = np.empty((len(z),) + self.w_.shape[1:])
        for start in range(0, len(z), PREDICT_CHUNK):
            h = np.maximum(z[start:start + PREDICT_CHUNK, None] - self.b_[None, :], 0.0)
            out[start:start + PREDICT_CHUNK] = h @ self.w_
        return out


class ExplicitClassifier(ClassifierMixin, BaseEstimator):
    """Theorem 1's network as a classifier.

    coding "value": one output fitted to the class index 0..K-1; predict rounds it (2n + d weights).
    coding "onehot": one output per class fitted to the one-hot targets; predict takes the argmax.
    Fitted: classes_, net_ (the ExplicitRegressor), and the regressor's attributes through it.
    """

    def __init__(self, coding: str = "value", bias_offset: float = 0.5, random_state=None):
        self.coding = coding
        self.bias_offset = bias_offset
        self.random_state = random_state

    def fit(self, X, y):
        if self.coding not in CODINGS:
            raise ValueError(f"coding must be one of {CODINGS}, got {self.coding!r}")
        self.classes_, y_idx = np.unique(np.asarray(y), return_inverse=True)
        targets = y_idx.astype(np.float64) if self.coding == "value" else np.eye(len(self.classes_))[y_idx]
        self.net_ = ExplicitRegressor(self.bias_offset, self.random_state).fit(X, targets)
        self.n_features_in_ = self.net_.n_features_in_
        return self

    def decision_function(self, X) -> np.ndarray:
        check_is_fitted(self, "net_")
        return self.net_.predict(X)

    def predict(self, X) -> np.ndarray:
        out = self.decision_function(X)
        if self.coding == "value":
            idx = np.clip(np.rint(out), 0, len(self.classes_) - 1).astype(int)
        else:
            idx = out.argmax(1)
        return self.classes_[idx]

    def margin(self, X, y) -> float:
        """How far the outputs at (X, y) are from a wrong decision; negative: some point is wrong.

        value: 0.5 - max |c(x_i) - index(y_i)| (exact fit: 0.5).
        onehot: min_i (c_(y_i)(x_i) - max over other classes c_k(x_i)) (exact fit: 1).
        """
        out = self.decision_function(X)
        idx = np.searchsorted(self.classes_, np.asarray(y))
        if self.coding == "value":
            return float(0.5 - np.abs(out - idx).max())
        rows = np.arange(len(idx))
        own = out[rows, idx]
        others = out.copy()
        others[rows, idx] = -np.inf
        return float((own - others.max(1)).min())


# ---------------------------------------------------------------------------- the trial

def subsample(X, y, n_points: int, rng: np.random.Generator):
    if not n_points or n_points >= len(y):
        return X, y
    idx = np.sort(rng.choice(len(y), size=int(n_points), replace=False))
    return X[idx], y[idx]


def trial(params: dict) -> dict:
    """Fit the explicit network (or Algorithm 2) to the rows and score it on the same rows."""
    p = resolve(PARAMS, params)
    seed = trial_seed(params)
    ds = dataset_from_params(p)
    X, y = subsample(ds.X, ds.y, int(p["n_points"]), np.random.default_rng([seed, 1]))
    fit = fit_zhang if p["method"] == "zhang" else fit_algorithm2
    out = fit(p, X, y, seed)
    return {"n_points_used": int(len(y)), "d": int(X.shape[1]), "n_classes": int(len(np.unique(y))), **out}


def fit_zhang(p: dict, X, y, seed: int) -> dict:
    model = ExplicitClassifier(p["coding"], float(p["bias_offset"]), random_state=seed)
    start = time.process_time()
    model.fit(X, y)
    fit_time = time.process_time() - start
    net = model.net_
    return {"score": float(model.score(X, y)), "fit_time": fit_time,
            "width": int(net.n_distinct_), "n_weights": net.n_weights_,
            "margin": model.margin(X, y), "min_gap": net.min_gap_,
            "max_abs_weight": float(np.abs(net.w_).max()),
            "distinct": bool(net.n_distinct_ == len(np.unique(X, axis=0)))}


def fit_algorithm2(p: dict, X, y, seed: int) -> dict:
    """Algorithm 2 on the same rows: its width is the second layer's (summed over classes)."""
    from memlab import algorithm   # imported here: only this method needs it

    model = algorithm.Memorizer(n_iter=int(p["n_iter"]), max_bias=float(p["max_bias"]),
                                activation=p["activation"], random_state=seed)
    start = time.process_time()
    model.fit(X, y)
    fit_time = time.process_time() - start
    n, m, d = int(p["n_iter"]), int(model.n_neurons_), X.shape[1]
    # first layer d x n + n biases; each second-layer neuron n weights + a threshold (the OR is fixed)
    return {"score": float(model.score(X, y)), "fit_time": fit_time, "width": m,
            "n_weights": d * n + n + m * (n + 1)}
