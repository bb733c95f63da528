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

# The estimator lives in memlab/algo/estimator.py, imported on first use: reading an experiment
# whose trial is "algorithm" then costs neither scikit-learn nor numba (about 3 s of start-up).
_LAZY = ("Memorizer", "warm_up")
SOURCES = ("memlab.algo.estimator",)   # its code enters this trial's fingerprint (memlab.trials.fingerprint)


def __getattr__(name: str):
    if name in _LAZY:
        from memlab.algo import estimator
        return getattr(estimator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------- trial

def get_model(params: dict, random_state=None) -> Memorizer:  # noqa: F821
    """The unfitted estimator for a trial's parameters."""
    from memlab.algo.estimator import Memorizer
    p = resolve(PARAMS, {"dataset": None, **params})
    return Memorizer(n_iter=int(p["n_iter"]), max_bias=float(p["max_bias"]), activation=p["activation"],
                     method=p["method"], device=p["device"], rule=p["rule"], random_state=random_state)


def seed_of(params: dict) -> int:
    """The trial's seed: its parameters' hash (or explicit `seed`), ignoring method, device, rule."""
    return trial_seed({k: v for k, v in params.items() if k not in NOT_SEEDED})


def prepare() -> None:
    """Called by each worker process before its first trial (memlab.worker.prepare): imports the
    estimator and loads numba's threshold kernels, so no trial's `seconds` pays for them."""
    from memlab.algo.estimator import warm_up
    warm_up("thres")


def trial(params: dict) -> dict:
    """Fit Algorithm 2 to the dataset and score it on the same points (interpolation: 1.0).

    Columns as in the reference code's results: per second layer (binary data: one, named after
    classes_[0] as the reference names it; else one per class, in class order)
    second_dim_in_<c> = n_iter and second_dim_out_<c> = its width, counted as at least 1 (the
    reference adds a dummy neuron that never fires to an empty layer); second_dim_in and
    second_dim_out are their sums; n_neurons is the true total width (empty layers count 0).
    """
    from memlab.algo.estimator import warm_up
    p = resolve(PARAMS, params)
    ds = dataset_from_params(p)
    model = get_model(p, seed_of(params))
    if model._torch_device() is None:
        warm_up(model.activation, model.n_iter)     # compilation is not the algorithm's time
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
