"""Algorithm 2 of arXiv 2310.00327 ("Memorization with neural nets: going beyond the worst case")
as scikit-learn estimators, and the trial that runs it on one grid point.

    python run.py --name moons      # an experiment whose "trial" is "algorithm"

Algorithm 2, as transcribed here from the paper's pseudo-code (the `# [Line N]` comments in
this file and in memlab/algo/ cite the lines of this transcription):

    Input: the two classes X- and X+, n = n_iter first-layer neurons, lambda = max_bias
     1: W <- n x d matrix of standard Gaussians; b <- n values uniform in [-lambda, lambda]
     2: Phi(x) := sigma(W x + b), sigma = Thres (Heaviside, Thres(0) = 0) or ReLU
     3: C <- X+ (candidates); U <- X+ (the universe: points not yet covered)
     4: while C is not empty and U is not empty:
     5:     draw x from C uniformly at random
     6:     I <- {i : Phi(x)_i = 0}                        the units inactive at x
     7:     m <- min over z in X- of <Phi(z), 1_I>
     8:     if m > 0:
     9:         add the second-layer neuron z -> Thres(m - <Phi(z), 1_I>): it fires iff
                <Phi(z), 1_I> < m, so at x (sum 0) and at no point of X- (sum >= m)
    10:         U <- U minus the points of X+ it fires at (covers)
    11:         C <- C minus the points of X+ it covers
    12:     C <- C minus {x}
    13: third layer: x is in X+ iff some second-layer neuron fires (an OR)

The network interpolates (score 1.0 on its training set) iff U ends empty: no neuron ever fires
at a point of X-.  "A random remaining candidate" (line 5) is drawn by walking one uniformly
random permutation of X+ and skipping the points already covered or tried: the same
distribution, and a walk that every path (oracle, fast, torch) can share.  More than two
classes: one second layer per class against the rest (one-vs-rest), all on one first layer.

Estimator (Memorizer), fitted attributes:
    classes_          the labels seen in fit
    n_features_in_    d
    W_ (n_iter, d), b_ (n_iter,)    the first layer, float32
  binary (two classes; the separated class X+ is classes_[1]):
    anchor_ (k,)      index into the training X of each second-layer neuron's drawn point x
    m_ (k,)           each neuron's threshold m (float64; integers for thres)
    U_bits_ (k, w)    each neuron's set I, packed 64 units per uint64 word
    U_ (k, n_iter)    the same as a bool matrix (a property)
    neuron_outputs(X) -> (n, k) bool: which second-layer neurons fire
    predict(X), decision_function(X) (max_j (m_j - <Phi(x), 1_I_j>) / m_j, > 0 iff some
    neuron fires; -inf without neurons), score(X, y) (accuracy)
    n_draws_          how many times line 5 ran (None for the oracle and torch paths)
  more than two classes:
    estimators_       one binary Memorizer per class (classes_ [0, 1] = [rest, that class];
                      same W_ and b_), with the attributes above
    predict(X): the class whose second layer fires; where none or several do, by `rule`:
    "reference" (default, as the paper's code) the first class that fires, else classes_[0];
    "margin" the class with the largest decision_function.
  both: unit_order_ (n_iter,), the order in which scoring packs the units (most informative
    first, for speed; any order gives the same answers); n_neurons_, the second-layer width.

Implementations (`method`): "fast" (numba kernels on the CPU; PyTorch when `device` is "cuda",
or "auto" on a machine with a GPU), "torch" (PyTorch on `device`, "cpu" included), "oracle"
(memlab/algo/oracle.py, plain and slow).  For the same random_state all choose exactly the same
neurons: every sum they compare is exact (integers for thres; float64 multiples of 2**-24 for
relu) and the first layer's outputs are canonical (memlab/algo/first_layer.py).  Memory: the
threshold path keeps the first layer as packed bits (n * n_iter / 8 bytes: 70,000 x 10,000 is
88 MB); the ReLU path keeps dense float64 outputs up to 1 GiB (fast.DENSE_RELU_BYTES) and
beyond that a compressed store of its nonzero outputs (first_layer.ReluStore, about 4 bytes
per nonzero output, half of them on average), expanded a chunk of rows at a time.

Predicting the very array the model was fitted on (the same read-only object, as a trial does
with its cached dataset) takes the answer from fit: a training point of class c lies in X- of
every other class's layer, where no neuron fires, so exactly class c's layer fires where fit
covered the point and none fires elsewhere.  A trial's score_time is then milliseconds.

Trial: `trial(params)` with PARAMS below; returns the reference code's columns with its
meanings (see trial()), plus n_neurons, the true second-layer width.  Compilation is not in
fit_time or score_time: numba's kernels are loaded (or compiled) by warm_up() before the clock.
"""
from __future__ import annotations

import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from memlab.algo import fast, first_layer, kernels, oracle
from memlab.datasets import DATASET_PARAMS, dataset_from_params
from memlab.params import REQUIRED, Param, resolve, trial_seed

ACTIVATIONS = ("thres", "relu")
METHODS = ("fast", "torch", "oracle")
RULES = ("reference", "margin")
DEVICES = ("cpu", "cuda", "auto")
PREDICT_CHUNK_BYTES = 64 << 20

RETURNS = ("score", "fit_time", "score_time", "first_dim_*", "second_dim_*")   # columns (memlab.plots.columns)
PARAMS = {
    **DATASET_PARAMS,
    "dataset": REQUIRED,
    "n_iter": Param(100, min=0, help="first-layer neurons"),
    "max_bias": Param(0.0, min=0, help="first-layer biases are uniform in [-max_bias, max_bias]"),
    "activation": Param("thres", choices=ACTIVATIONS, help="first-layer activation"),
    "restart": Param(0, help="repetition number: only changes the seed"),
    "seed": Param(None, help="explicit seed (default: a hash of the other parameters)"),
    "method": Param("fast", choices=METHODS, help="implementation; all give the same network"),
    "device": Param("cpu", choices=DEVICES, help="cpu, cuda, or auto (cuda when available)"),
    "rule": Param("reference", choices=RULES,
                  help="more than two classes, where no class or several fire: reference = the first "
                       "firing class, else the first class (as the paper's code); margin = the largest "
                       "decision_function"),
}
# Parameters that choose how, not what: they do not enter the seed, so a grid over them
# compares implementations on the same networks.
NOT_SEEDED = ("method", "device", "rule")


class Memorizer(ClassifierMixin, BaseEstimator):
    """Algorithm 2: a random first layer, a greedy second layer, an OR (see the module docstring).

    random_state: int, numpy Generator or None; it draws W, b and the candidates' order.
    rule: how predict labels a point where no class or several fire (more than two classes):
      "reference" the first class that fires, else classes_[0] (the paper's code: scikit-learn's
                  OneVsRestClassifier over 0/1 outputs);
      "margin"    the class with the largest decision_function.
    """

    def __init__(self, n_iter: int = 100, max_bias: float = 0.0, activation: str = "thres",
                 method: str = "fast", device: str = "cpu", rule: str = "reference", random_state=None):
        self.n_iter = n_iter
        self.max_bias = max_bias
        self.activation = activation
        self.method = method
        self.device = device
        self.rule = rule
        self.random_state = random_state

    # ------------------------------------------------------------------ fit

    def fit(self, X, y):
        self._check_params()
        X = first_layer.as_rows(X)
        y = np.asarray(y)
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)} labels")
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("Algorithm 2 needs points of at least two classes")
        self.n_features_in_ = X.shape[1]
        rng = np.random.default_rng(self.random_state)
        self.W_, self.b_ = first_layer.draw(rng, self.n_iter, X.shape[1], self.max_bias)  # [Line 1]
        targets = [1] if len(self.classes_) == 2 else list(range(len(self.classes_)))
        walks = [rng.permutation(np.flatnonzero(y_idx == t)) for t in targets]            # [Line 5]
        fitted = self._second_layers(X, y_idx, targets, walks)
        self.unit_order_ = fitted.get("order", np.arange(self.n_iter))
        draws = fitted.get("draws") or [None] * len(targets)
        for key in [k for k in self.__dict__ if k == "_train" or k.startswith("_cache")]:
            del self.__dict__[key]                 # a refit invalidates everything cached
        if "covered" in fitted and not X.flags.writeable:
            # Predicting this very (read-only, so unchanged) array reuses what fit found: which
            # points each class's second layer covers, and the packed first layer.
            self.__dict__["_train"] = (X, fitted.get("packed"), fitted["covered"])
        if len(self.classes_) == 2:
            self._set_second_layer(*fitted["layers"][0], draws[0])
        else:
            self.estimators_ = [self._binary(*layer, n) for layer, n in zip(fitted["layers"], draws)]
        for est, U in zip(getattr(self, "estimators_", [self]), fitted.get("ordered_U", [])):
            est.__dict__["_cache_U"] = U          # U_bits_ in unit_order_, as scoring reads it
        return self

    def _check_params(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {self.rule!r}")
        if int(self.n_iter) != self.n_iter or self.n_iter < 1:
            raise ValueError(f"n_iter must be a positive integer, got {self.n_iter!r}")
        if not self.max_bias >= 0:
            raise ValueError(f"max_bias must be >= 0, got {self.max_bias!r}")

    def _torch_device(self) -> str | None:
        """The torch device to fit on, or None for the numpy/numba paths."""
        if self.method == "oracle":
            return None
        if self.device == "auto":
            try:
                import torch
            except ImportError:
                return "cpu" if self.method == "torch" else None
            cuda = torch.cuda.is_available()
            return "cuda" if cuda else ("cpu" if self.method == "torch" else None)
        if self.method == "torch" or self.device == "cuda":
            return self.device
        return None

    def _second_layers(self, X, y_idx, targets, walks) -> dict:
        """{"layers": per target class (anchors, m, U_bits), optional "draws", "activity"}."""
        W, b, n_iter = self.W_, self.b_, int(self.n_iter)
        device = self._torch_device()
        if device is not None:
            from memlab.algo import torch_path
            return torch_path.fit(X, W, b, self.activation, y_idx, targets, walks, device)
        if self.method == "oracle":
            A = first_layer.dense_outputs(X, W, b, self.activation)              # [Line 2]
            layers = []
            for t, walk in zip(targets, walks):
                anchors, U, m = oracle.greedy(A, y_idx == t, walk)
                U = kernels.from_bool(np.array(U, bool).reshape(len(U), n_iter))
                layers.append((np.array(anchors, np.int64), np.array(m, np.float64), U))
            return {"layers": layers}
        if self.activation == "thres":
            return fast.fit_threshold(X, W, b, y_idx, targets, walks)
        return fast.fit_relu(X, W, b, y_idx, targets, walks)

    def _set_second_layer(self, anchors, m, U_bits, draws=None):
        self.anchor_ = np.asarray(anchors, np.int64)
        self.m_ = np.asarray(m, np.float64)
        self.U_bits_ = np.ascontiguousarray(U_bits, np.uint64).reshape(len(self.m_), kernels.n_words(int(self.n_iter)))
        self.n_draws_ = draws

    def _binary(self, anchors, m, U_bits, draws=None) -> "Memorizer":
        est = clone(self)
        est.classes_ = np.array([0, 1])
        est.n_features_in_ = self.n_features_in_
        est.W_, est.b_, est.unit_order_ = self.W_, self.b_, self.unit_order_
        est._set_second_layer(anchors, m, U_bits, draws)
        return est

    # ------------------------------------------------------------------ second layer

    @property
    def U_(self) -> np.ndarray:
        """(k, n_iter) bool: the units each second-layer neuron sums (its set I)."""
        return kernels.to_bool(self.U_bits_, int(self.n_iter))

    @property
    def n_neurons_(self) -> int:
        """Second-layer width: one binary network's neurons, or the sum over classes."""
        if hasattr(self, "estimators_"):
            return sum(e.n_neurons_ for e in self.estimators_)
        return len(self.m_)

    # Scoring.  Threshold networks (fast and torch fits) are scored on packed bits with the
    # units in unit_order_ (the most informative first: see fast.informative_order); the
    # oracle scores the way the reference code does, with the dense second-layer transform;
    # ReLU networks with a dense (exact, quantized) product.

    def _packed(self) -> bool:
        return self.activation == "thres" and self.method != "oracle"

    def _cached(self, name, make):
        if name not in self.__dict__:
            self.__dict__[name] = make()
        return self.__dict__[name]

    def _features(self, X) -> np.ndarray:
        """Phi(X) in the representation _fires and _sums read."""
        if self._packed():
            W, b = self._cached("_cache_layer", lambda: (np.ascontiguousarray(self.W_[self.unit_order_]),
                                                           self.b_[self.unit_order_]))
            return first_layer.threshold_bits(X, W, b)
        return first_layer.dense_outputs(X, self.W_, self.b_, self.activation)

    def _ordered_U(self) -> np.ndarray:
        return self._cached("_cache_U", lambda: kernels.select(
            self.U_bits_, self.unit_order_, np.empty_like(self.U_bits_)))

    def _sums(self, F) -> np.ndarray:
        """(n, k) <Phi(x), 1_I_j>, exact."""
        if self._packed():
            return kernels.neuron_sums(F, self._ordered_U())
        return F @ self.U_.astype(F.dtype).T

    def _fires(self, F) -> np.ndarray:
        """(n,) bool: some second-layer neuron fires [Line 13]."""
        if len(self.m_) == 0:
            return np.zeros(len(F), bool)
        if self._packed():
            return kernels.any_fires(F, *self._scoring_layer())
        return oracle.second_layer_fires(F, list(self.U_), list(self.m_)).any(axis=1)

    def _best_class(self, F) -> np.ndarray:
        """argmax over classes of the margins (more than two classes)."""
        if not self._packed():
            return np.stack([e._margin(F) for e in self.estimators_], axis=1).argmax(axis=1)

        def make():
            layers = [e._margin_layer() for e in self.estimators_]
            UT = np.concatenate([L[0] for L in layers], axis=1)
            m = np.concatenate([L[1] for L in layers])
            offsets = np.cumsum([0] + [L[0].shape[1] for L in layers])
            starts = np.concatenate([L[2][:-1] + o for L, o in zip(layers, offsets)] + [[offsets[-1]]])
            class_runs = np.cumsum([0] + [len(L[2]) - 1 for L in layers])
            return np.ascontiguousarray(UT.T), m, starts.astype(np.int64), class_runs.astype(np.int64)
        return kernels.best_class(np.ascontiguousarray(F), *self._cached("_cache_classes", make))

    def _margin_layer(self):
        """(U word-major, m, run starts) with the neurons sorted by m (see kernels.best_margin)."""
        def make():
            order = np.argsort(self.m_, kind="stable")
            m = self.m_[order]
            starts = np.concatenate([[0], np.flatnonzero(np.diff(m)) + 1, [len(m)]]) if len(m) else np.zeros(1)
            return np.ascontiguousarray(self._ordered_U()[order].T), m, starts.astype(np.int64)
        return self._cached("_cache_margin", make)

    def _scoring_layer(self):
        """(U, m, reach) with the neurons by decreasing reach (see kernels.any_fires)."""
        def make():
            U = self._ordered_U()
            reach = kernels.row_popcounts(kernels.complement(U, int(self.n_iter))) + self.m_.astype(np.int64)
            order = np.argsort(-reach, kind="stable")
            return np.ascontiguousarray(U[order]), self.m_[order].astype(np.int64), reach[order]
        return self._cached("_cache_scoring", make)

    def _margin(self, F) -> np.ndarray:
        if len(self.m_) == 0:
            return np.full(len(F), -np.inf)
        if self._packed():
            UT, m, starts = self._margin_layer()
            return kernels.best_margin(F, UT, m, starts)
        return ((self.m_ - self._sums(F)) / self.m_).max(axis=1)

    def _feature_chunks(self, X):
        """Phi(X) chunk by chunk (bounded memory); for the training array itself, from fit."""
        train = self.__dict__.get("_train")
        if train is not None and X is train[0] and train[1] is not None:
            yield train[1]
            return
        X = first_layer.as_rows(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model was fitted on {self.n_features_in_}")
        widest = max(int(self.n_iter), self.n_neurons_ if not self._packed() else 0)   # dense sums: (rows, k)
        rows = max(256, PREDICT_CHUNK_BYTES // (8 * widest))
        for start in range(0, len(X), rows):
            yield self._features(X[start:start + rows])

    def __getstate__(self):
        state = super().__getstate__()
        return {k: v for k, v in state.items() if not (k == "_train" or k.startswith("_cache"))}

    def neuron_outputs(self, X) -> np.ndarray:
        """(n, k) bool: which second-layer neurons fire at each point (binary models)."""
        parts = [self._sums(F) < self.m_ for F in self._feature_chunks(X)]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.m_)), bool)

    # ------------------------------------------------------------------ predict

    def decision_function(self, X) -> np.ndarray:
        """Binary: (n,) max_j (m_j - sum_j) / m_j; more classes: (n, n_classes) of those."""
        parts = []
        for F in self._feature_chunks(X):
            if hasattr(self, "estimators_"):
                parts.append(np.stack([e._margin(F) for e in self.estimators_], axis=1))
            else:
                parts.append(self._margin(F))
        return np.concatenate(parts)

    def predict(self, X) -> np.ndarray:
        train = self.__dict__.get("_train")
        if train is not None and X is train[0]:
            return self.classes_[self._train_labels(*train)]
        parts = []
        for F in self._feature_chunks(X):
            if not hasattr(self, "estimators_"):
                parts.append(self._fires(F).astype(np.int64))
                continue
            fires = np.stack([e._fires(F) for e in self.estimators_], axis=1)
            label = fires.argmax(axis=1)              # the first class that fires, else class 0
            if self.rule == "margin":
                unclear = np.flatnonzero(fires.sum(axis=1) != 1)
                if len(unclear):
                    label[unclear] = self._best_class(F[unclear])
            parts.append(label)
        label = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return self.classes_[label]

    def _train_labels(self, X, packed, covered) -> np.ndarray:
        """predict(X) for the training array, from what fit knows: a training point of class c
        is in X- of every other class's layer, where no neuron fires (m is X-'s minimum), so
        exactly class c's layer fires where it covered the point, and none elsewhere."""
        label = np.full(len(X), -1, np.int64)
        if not hasattr(self, "estimators_"):
            label[:] = 0
            label[covered[0]] = 1
            return label
        for c, points in enumerate(covered):
            label[points] = c
        unclear = np.flatnonzero(label < 0)
        if self.rule == "reference" or not len(unclear):
            label[unclear] = 0
        elif packed is not None:
            label[unclear] = self._best_class(packed[unclear])
        else:
            label[unclear] = np.concatenate([self._best_class(F) for F in self._feature_chunks(X[unclear])])
        return label


# ---------------------------------------------------------------------- trial

def get_model(params: dict, random_state=None) -> Memorizer:
    """The unfitted estimator for a trial's parameters."""
    p = resolve(PARAMS, {"dataset": None, **params})
    return Memorizer(n_iter=int(p["n_iter"]), max_bias=float(p["max_bias"]), activation=p["activation"],
                     method=p["method"], device=p["device"], rule=p["rule"], random_state=random_state)


def seed_of(params: dict) -> int:
    """The trial's seed: its parameters' hash (or explicit `seed`), ignoring method, device, rule."""
    return trial_seed({k: v for k, v in params.items() if k not in NOT_SEEDED})


_WARM = set()


def warm_up(activation: str = "thres") -> None:
    """Load (or, the first time on a machine, compile) the numba kernels a trial of this
    activation runs, once per process, on a tiny read-only data set, so that fit_time and
    score_time count the algorithm only.  With numba's cache warm (memlab/algo/__init__.py
    says where it lives) this takes some tens of milliseconds; numba's own start-up, about
    0.5 s of process time, is paid when this module is imported (below)."""
    if activation in _WARM:
        return
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1).max()
    X.setflags(write=False)                         # as a trial gets its data set
    y = np.arange(60) % 3
    for n_iter in (20, 70, 300):                    # one word; one candidate at a time; batches
        net = Memorizer(n_iter=n_iter, max_bias=0.5, activation=activation, rule="margin",
                        random_state=0).fit(X, y)
        net.score(X, y)
        net.predict(X.copy())
        if activation == "relu":
            break
    _WARM.add(activation)


kernels.row_popcounts(np.zeros((1, 1), np.uint64))   # numba's one-time start-up, not in a trial


def trial(params: dict) -> dict:
    """Fit Algorithm 2 to the dataset and score it on the same points (interpolation: 1.0).

    Columns as in the reference code's results: per second layer (binary data: one, named after
    classes_[0] as the reference names it; else one per class, in class order)
    second_dim_in_<c> = n_iter and second_dim_out_<c> = its width, counted as at least 1 (the
    reference adds a dummy neuron that never fires to an empty layer); second_dim_in and
    second_dim_out are their sums; n_neurons is the true total width (empty layers count 0).
    """
    p = resolve(PARAMS, params)
    ds = dataset_from_params(p)
    model = get_model(p, seed_of(params))
    if model._torch_device() is None:
        warm_up(model.activation)                   # compilation is not the algorithm's time
    start = time.process_time()
    model.fit(ds.X, ds.y)
    fit_time = time.process_time() - start
    start = time.process_time()
    score = model.score(ds.X, ds.y)
    score_time = time.process_time() - start
    out = {"score": float(score), "fit_time": fit_time, "score_time": score_time,
           "first_dim_in": int(ds.X.shape[1]), "first_dim_out": int(model.n_iter)}
    if hasattr(model, "estimators_"):
        layers = list(zip(model.classes_, model.estimators_))
    else:
        layers = [(model.classes_[0], model)]
    for c, est in layers:
        out[f"second_dim_in_{c}"] = int(model.n_iter)
        out[f"second_dim_out_{c}"] = max(1, int(est.n_neurons_))
    out["second_dim_in"] = int(model.n_iter) * len(layers)
    out["second_dim_out"] = sum(out[f"second_dim_out_{c}"] for c, _ in layers)
    out["n_neurons"] = int(model.n_neurons_)
    return out
