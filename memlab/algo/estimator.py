"""The Algorithm 2 estimator (Memorizer) and its numba warm-up: the module docstring of
memlab/algorithm.py describes both.  Kept apart from the trial's declarations so that reading
an experiment (`run.py --status`, `--dry-run`) imports neither scikit-learn nor numba;
`from memlab.algorithm import Memorizer` still works (a lazy attribute of that module)."""
from __future__ import annotations

import numpy as np
from memlab.algo import fast, first_layer, kernels, oracle
from memlab.algo.base import LightClassifier
from memlab.algorithm import ACTIVATIONS, DEVICES, METHODS, PREDICT_CHUNK_BYTES, RULES  # noqa: F401


class Memorizer(LightClassifier):
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
        est = self.clone()
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


_WARM = set()


def warm_up(activation: str = "thres", n_iter: int = 0) -> None:
    """Load (or, the first time on a machine, compile) the numba kernels a trial of this
    activation runs, once per process, on a tiny read-only data set, so that fit_time and
    score_time count the algorithm only.  With numba's cache warm (memlab/algo/__init__.py
    says where it lives) this takes some tens of milliseconds; numba's own start-up, about
    0.5 s of process time, is paid when this module is imported (below).  n_iter: the trial's
    width; past 16,384 units (fast.unit_list_dtype) the bit-sliced path's int64 unit lists are
    loaded too, which costs every other process ~0.1 s, so only then."""
    wide = activation == "thres" and fast.unit_list_dtype(n_iter) != np.uint16
    if activation in _WARM and (not wide or "thres-int64" in _WARM):
        return
    rng = np.random.default_rng(0)
    dense = rng.standard_normal((60, 5)).astype(np.float32)
    dense /= np.linalg.norm(dense, axis=1).max()
    sparse = np.where(rng.random((60, 10)) < 0.2, rng.random((60, 10)), 0).astype(np.float32)
    y = np.arange(60) % 3
    for X in (dense, sparse):
        X.setflags(write=False)                     # as a trial gets its data set
    if activation not in _WARM:
        for X in (dense, sparse):                   # BLAS and sparse first layers (first_layer)
            for width in (20, 70, 300):             # narrow first layer, one and two words;
                                                    # BLAS or sparse, bit-sliced (fast)
                net = Memorizer(n_iter=width, max_bias=0.5, activation=activation, rule="margin",
                                random_state=0).fit(X, y)
                net.score(X, y)
                net.predict(X.copy())
                if activation == "relu":
                    break
        _WARM.add(activation)
    if wide and "thres-int64" not in _WARM:
        Memorizer(n_iter=16_400, max_bias=0.5, rule="margin", random_state=0).fit(dense, y).score(dense, y)
        _WARM.add("thres-int64")


kernels.row_popcounts(np.zeros((1, 1), np.uint64))   # numba's one-time start-up, not in a trial


