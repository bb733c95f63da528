"""Trial explicit: Zhang et al.'s Theorem 1 network fits every labelling exactly (2n + d weights),
its O(n) solve agrees with the triangular-system oracle, and the trial and experiment file work."""
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import linalg
from sklearn.base import clone

from memlab import config
from memlab.trials import explicit as ex

EXPERIMENT = Path(__file__).parents[1] / "experiments" / "explicit_vs_algorithm.json"


@pytest.fixture(autouse=True, scope="module")
def study_root(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MEMLAB_ROOT", str(tmp_path_factory.mktemp("explicit")))
    yield
    mp.undo()


def _points(rng, n, d):
    return rng.standard_normal((n, d))


@pytest.mark.parametrize("theta", [0.05, 0.5, 0.95])
def test_biases_interleave_and_the_system_is_lower_triangular(theta):
    rng = np.random.default_rng(0)
    z = np.sort(rng.standard_normal(30))
    b = ex.interleaving_biases(z, theta)
    assert np.all(b < z) and np.all(z[:-1] < b[1:])           # b_1 < z_1 < b_2 < z_2 < ...
    A = np.maximum(z[:, None] - b[None, :], 0.0)
    assert np.all(np.triu(A, 1) == 0) and np.all(np.diag(A) > 0)


@pytest.mark.parametrize("theta", [0.1, 0.3, 0.5])
def test_slope_recursion_matches_the_triangular_solve(theta):
    rng = np.random.default_rng(1)
    z = np.sort(rng.uniform(-3, 3, 200))
    b = ex.interleaving_biases(z, theta)
    Y = rng.standard_normal((200, 3))
    w = ex.solve_slopes(z, b, Y)
    oracle = ex.triangular_weights(z, b, Y)
    A = np.maximum(z[:, None] - b[None, :], 0.0)
    assert np.allclose(A @ w, Y, atol=1e-9)
    assert np.allclose(w, oracle, rtol=1e-7, atol=1e-7 * np.abs(oracle).max())
    assert np.allclose(oracle, linalg.solve(A, Y), rtol=1e-6, atol=1e-6 * np.abs(oracle).max())


def test_biases_past_the_midpoint_make_the_weights_explode():
    """The exact solution's slopes obey S_i = (dy_i / g_i - theta S_(i-1)) / (1 - theta): they grow
    like (theta / (1 - theta))^i for theta > 1/2, linearly at 1/2, and stay bounded below it."""
    rng = np.random.default_rng(6)
    z = np.sort(rng.uniform(0, 1, 60))
    y = rng.integers(0, 2, 60).astype(float)
    big = {t: np.abs(ex.triangular_weights(z, ex.interleaving_biases(z, t), y)).max() for t in (0.2, 0.5, 0.8)}
    scale = 1 / np.diff(z).min()
    assert big[0.2] < 10 * scale and big[0.5] < 200 * scale
    assert big[0.8] > 1e30


def test_regression_targets_are_fit_exactly_with_2n_plus_d_weights():
    rng = np.random.default_rng(2)
    for trial in range(50):
        n, d = rng.integers(1, 300), rng.integers(1, 20)
        X, y = _points(rng, n, d), rng.standard_normal(n) * 10
        net = ex.ExplicitRegressor(random_state=trial).fit(X, y)
        assert net.n_weights_ == 2 * n + d
        assert net.a_.shape == (d,) and net.b_.shape == (n,) and net.w_.shape == (n,)
        assert np.allclose(net.predict(X), y, atol=1e-6 * max(1.0, np.abs(y).max()))
        assert net.score(X, y) == pytest.approx(1.0, abs=1e-9) or n == 1


def test_several_outputs_at_once():
    rng = np.random.default_rng(3)
    X, Y = _points(rng, 100, 5), rng.standard_normal((100, 4))
    net = ex.ExplicitRegressor(random_state=0).fit(X, Y)
    assert net.n_weights_ == 5 + 100 + 4 * 100
    assert np.allclose(net.predict(X), Y, atol=1e-7)


@pytest.mark.parametrize("coding", ex.CODINGS)
@pytest.mark.parametrize("n_classes", [2, 3, 10])
def test_every_random_labelling_scores_one(coding, n_classes):
    """Theorem 1: any labelling of n distinct points is represented; checked on 100 labellings."""
    rng = np.random.default_rng(n_classes)
    for trial in range(100):
        n, d = rng.integers(n_classes, 400), rng.integers(1, 30)
        X = _points(rng, n, d)
        y = rng.integers(0, n_classes, n)
        clf = ex.ExplicitClassifier(coding, random_state=trial).fit(X, y)
        assert clf.score(X, y) == 1.0
        ideal = 0.5 if coding == "value" else 1.0
        assert clf.margin(X, y) > ideal - 1e-3
        if coding == "value":
            assert clf.net_.n_weights_ == 2 * n + d


def test_labels_need_not_be_integers():
    rng = np.random.default_rng(4)
    X = _points(rng, 60, 3)
    y = rng.choice(np.array(["cat", "dog", "eel"]), 60)
    clf = ex.ExplicitClassifier(random_state=0).fit(X, y)
    assert (clf.predict(X) == y).all()


def test_identical_inputs_with_different_labels_cannot_both_be_fit():
    X = np.array([[0.0, 1.0], [0.0, 1.0], [2.0, 3.0], [4.0, -1.0]])
    y = np.array([0, 1, 1, 0])
    clf = ex.ExplicitClassifier(random_state=0).fit(X, y)
    assert clf.net_.n_distinct_ == 3
    assert clf.score(X, y) == 0.75


def test_sklearn_conventions():
    clf = ex.ExplicitClassifier(coding="onehot", bias_offset=0.3, random_state=7)
    assert clf.get_params() == {"coding": "onehot", "bias_offset": 0.3, "random_state": 7}
    assert not hasattr(clf, "net_")                              # __init__ only stores
    X, y = _points(np.random.default_rng(5), 40, 4), np.arange(40) % 4
    assert clf.fit(X, y) is clf
    again = clone(clf).fit(X, y)
    assert np.array_equal(again.net_.a_, clf.net_.a_)            # randomness from random_state only
    with pytest.raises(ValueError, match="bias_offset"):
        ex.ExplicitRegressor(bias_offset=1.0).fit(X, y.astype(float))


def test_trial_on_digits_interpolates_random_labels():
    out = ex.trial({"dataset": "digits", "corruption": "random_labels", "coding": "value"})
    assert out["score"] == 1.0 and out["distinct"]
    assert out["width"] == 1797 and out["n_weights"] == 2 * 1797 + 64
    assert 0.49 < out["margin"] <= 0.5
    again = ex.trial({"dataset": "digits", "corruption": "random_labels", "coding": "value"})
    assert again["max_abs_weight"] == out["max_abs_weight"]


def test_trial_subsamples_and_compares_with_algorithm2():
    zhang = ex.trial({"dataset": "moons", "n_points": 300})
    alg = ex.trial({"dataset": "moons", "n_points": 300, "method": "algorithm2", "n_iter": 200, "max_bias": 0.5})
    assert zhang["n_points_used"] == alg["n_points_used"] == 300
    assert zhang["score"] == alg["score"] == 1.0
    assert zhang["width"] == 300 and alg["width"] < 30      # moons needs few second-layer neurons


def test_experiment_file_declares_valid_parameters():
    raw = json.loads(EXPERIMENT.read_text())
    grid = config.expand_grid(raw["param_grid"], EXPERIMENT)
    config.check_params(ex, grid, EXPERIMENT, raw["trial"])
    assert {m for g in grid for m in g["method"]} == {"zhang", "algorithm2"}
