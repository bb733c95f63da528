"""Trial `receptive_fields`: do a fully connected network's first-layer weights localize?

    python run.py --name receptive_fields            # IPR against the NLGP gain, with restarts
    python run.py --name receptive_fields_dynamics   # IPR against training steps

Ingrosso & Goldt, "Data-driven emergence of convolutional structure in neural networks"
(PNAS 2022), in one dimension.  Inputs are GP or NLGP fields on a ring of D pixels
(memlab.datasets.gp); the two classes differ in correlation length (xi0 -> y = -1,
xi1 -> y = +1).  The network

    yhat(x) = (1/K) sum_k erf(lambda_k / sqrt 2),   lambda_k = w_k . x / sqrt(D) + b_k

has a fixed second layer (all 1/K) and a first layer trained by SGD on the squared loss
(1/2)(y - yhat)^2, online (a fresh batch every step, the paper's setting) or on n_train fixed
samples.  The measure of localization is the inverse participation ratio of each w_k,

    IPR(w) = sum_i w_i^4 / (sum_i w_i^2)^2,

3/(D + 2) on average for a Gaussian random vector, 1 for a single pixel.  NLGP data at high
gain gives localized, space-tiling fields (high IPR); GP data gives delocalized, Fourier-like
ones (IPR at or below that of the random initial weights).

Why the biases b_k (trained, starting at 0): the activation is odd and both classes are
symmetric under x -> -x, so without them yhat(-x) = -yhat(x) and no classifier beats chance
(train_bias=false shows it: test accuracy 0.5).  The biases give each unit an even part that
can tell a wide from a narrow distribution of lambda_k.

Two implementations, the same model: a hand-written torch loop (explicit gradients, data drawn
with torch.fft) and a jax.jit'ed lax.scan of jax.grad steps (data drawn with jnp.fft).  Their
random streams differ, so they agree qualitatively, not bit for bit; their gradients agree
exactly (tests/test_receptive_fields.py).
"""
from __future__ import annotations

import functools
import math
import time
from types import SimpleNamespace

import numpy as np
import torch

from memlab.datasets import gp
from memlab.params import Param, resolve, trial_seed
from memlab.trials._torch import torch_threads

RETURNS = ("fit_time", "test_acc", "test_loss", "train_acc", "ipr_*", "frac_localized", "step")  # results and series columns
PARAMS = {
    "D": Param(100, help="input dimension: pixels on the ring"),
    "xi0": Param(1.0, help="correlation length of class y = -1"),
    "xi1": Param(3.0, help="correlation length of class y = +1"),
    "gain": Param(3.0, help="NLGP gain g; 0 is the GP"),
    "K": Param(30, help="hidden units"),
    "lr": Param(100.0, help="SGD learning rate on the loss (1/2)(y - yhat)^2, batch mean"),
    "steps": Param(10_000, help="SGD steps"),
    "batch_size": Param(64, help="samples per SGD step"),
    "online": Param(True, choices=(True, False), help="fresh samples every step, else n_train fixed ones"),
    "n_train": Param(10_000, help="training set size when online is false"),
    "n_test": Param(2_000, help="test samples (fixed per trial)"),
    "train_bias": Param(True, choices=(True, False), help="train the first-layer biases (see the docstring)"),
    "framework": Param("torch", choices=("torch", "jax")),
    "device": Param("cpu", choices=("cpu", "cuda", "auto"), help="auto: cuda when available"),
    "threads": Param(1, help="torch CPU threads for this trial (1: fastest for these sizes)"),
    "restart": Param(0, help="repetition index: enters the seed"),
    "seed": Param(None, help="explicit seed; default: a hash of the parameters"),
    "record_every": Param(0, help="record IPR and test accuracy every N steps (0: only the end)"),
}

QUANTILES = (0.1, 0.25, 0.75, 0.9)
LOCALIZED = 4.0     # frac_localized counts units whose IPR exceeds 4x that of a random vector
INV_SQRT2 = 1 / math.sqrt(2)


def trial(params: dict) -> dict:
    p = resolve(PARAMS, params)
    check(p)
    seed = trial_seed(params)
    t0 = time.perf_counter()
    run = TRAINERS[p["framework"]](p, seed)
    out = {"fit_time": time.perf_counter() - t0, "test_acc": run["test_acc"],
           "test_loss": run["test_loss"]}
    if run.get("train_acc") is not None:
        out["train_acc"] = run["train_acc"]
    out.update(ipr_summary(run["W"], run["W0"]))
    if p["record_every"]:
        steps, W_hist, accs = zip(*run["history"])
        iprs = [ipr(W) for W in W_hist]
        out["series"] = {"step": list(steps), "ipr_mean": [float(i.mean()) for i in iprs],
                         "ipr_median": [float(np.median(i)) for i in iprs],
                         "ipr_max": [float(i.max()) for i in iprs], "test_acc": list(accs)}
    out["artifacts"] = {"W": run["W"].astype(np.float32), "b": run["b"].astype(np.float32)}
    return out


def check(p: dict) -> None:
    for k in ("D", "K", "batch_size", "n_test"):
        if int(p[k]) < 2:
            raise ValueError(f"receptive_fields: {k} must be at least 2, got {p[k]}")
    if p["steps"] < 0 or p["record_every"] < 0:
        raise ValueError("receptive_fields: steps and record_every must be >= 0")
    if not p["online"] and p["n_train"] < 2:
        raise ValueError("receptive_fields: n_train must be at least 2 when online is false")
    if p["gain"] < 0:
        raise ValueError(f"receptive_fields: gain must be >= 0, got {p['gain']}")


# ---------------------------------------------------------------------------- measures

def ipr(W: np.ndarray) -> np.ndarray:
    """Inverse participation ratio of each row of W: sum w^4 / (sum w^2)^2."""
    W = np.asarray(W, dtype=np.float64)
    return (W**4).sum(1) / (W**2).sum(1) ** 2


def ipr_summary(W: np.ndarray, W0: np.ndarray) -> dict:
    """The final IPRs' mean, median, extremes and quantiles; the initial weights' mean IPR.

    ipr_random = 3 / (D + 2) is the exact mean IPR of a Gaussian random vector; a unit counts
    as localized when its IPR exceeds LOCALIZED times that (frac_localized).
    """
    i = ipr(W)
    random = 3 / (W.shape[1] + 2)
    out = {"ipr_mean": i.mean(), "ipr_median": np.median(i), "ipr_max": i.max(), "ipr_min": i.min(),
           **{f"ipr_q{round(100 * q):02d}": np.quantile(i, q) for q in QUANTILES},
           "ipr_init_mean": ipr(W0).mean(), "ipr_random": random,
           "frac_localized": np.mean(i > LOCALIZED * random)}
    return {k: float(v) for k, v in out.items()}


def class_filters(p: dict) -> np.ndarray:
    """(2, D//2 + 1): the Fourier-space filters that turn white noise into each class's GP."""
    return np.stack([gp.filter_sqrt(p["D"], p["xi0"]), gp.filter_sqrt(p["D"], p["xi1"])])


def saturation(gain: float) -> tuple[float, float]:
    """(g, Z(g)) of the NLGP map erf(g z) / Z; (0, 1) stands for the identity (the GP)."""
    return (0.0, 1.0) if gain == 0 else (float(gain), gp.nlgp_scale(gain))


# ---------------------------------------------------------------------------- torch

def torch_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def torch_sample(gen: torch.Generator, n: int, D: int, filt: torch.Tensor, gain: float, Z: float):
    """n fields, the first n // 2 of class xi0 (y = -1), the rest of class xi1 (y = +1).

    The order within a batch does not matter: a step averages the gradient over the batch.
    """
    n0 = n // 2
    noise = torch.randn(n, D, generator=gen, device=filt.device)
    f = torch.cat([filt[0].expand(n0, -1), filt[1].expand(n - n0, -1)])
    z = torch.fft.irfft(f * torch.fft.rfft(noise), n=D)
    x = torch.erf(gain * z) / Z if gain else z
    y = torch.cat([-torch.ones(n0, device=filt.device), torch.ones(n - n0, device=filt.device)])
    return x, y


def torch_forward(W: torch.Tensor, b: torch.Tensor, x: torch.Tensor):
    """(pre-activations lambda (n, K), outputs yhat (n,))."""
    pre = x @ W.T / math.sqrt(x.shape[1]) + b
    return pre, torch.erf(pre * INV_SQRT2).mean(1)


def torch_grads(W: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
    """Gradients of the batch-mean loss (1/2)(yhat - y)^2 with respect to W and b, by hand.

    d yhat / d lambda_k = (1/K) erf'(lambda_k / sqrt 2) / sqrt 2 = (1/K) sqrt(2 / pi) exp(-lambda_k^2 / 2).
    """
    pre, out = torch_forward(W, b, x)
    n, K = pre.shape
    delta = (out - y)[:, None] * torch.exp(-0.5 * pre**2) * (math.sqrt(2 / math.pi) / (K * n))
    return delta.T @ x / math.sqrt(x.shape[1]), delta.sum(0)


def torch_accuracy_loss(W, b, x, y) -> tuple[float, float]:
    _, out = torch_forward(W, b, x)
    return float((torch.sign(out) == y).float().mean()), float(0.5 * ((out - y) ** 2).mean())



def train_torch(p: dict, seed: int) -> dict:
    with torch_threads(int(p["threads"])):
        return _train_torch(p, seed)


def _train_torch(p: dict, seed: int) -> dict:
    device = torch_device(p["device"])
    gen = torch.Generator(device=device).manual_seed(seed)
    D, K, B = int(p["D"]), int(p["K"]), int(p["batch_size"])
    filt = torch.tensor(class_filters(p), dtype=torch.float32, device=device)
    gain, Z = saturation(p["gain"])

    W = torch.randn(K, D, generator=gen, device=device)   # entries N(0, 1): lambda_k = O(1)
    b = torch.zeros(K, device=device)
    W0 = W.cpu().numpy().copy()
    X_test, y_test = torch_sample(gen, int(p["n_test"]), D, filt, gain, Z)
    if not p["online"]:
        X_train, y_train = torch_sample(gen, int(p["n_train"]), D, filt, gain, Z)

    history = []
    def record(step):
        history.append((step, W.cpu().numpy().copy(), torch_accuracy_loss(W, b, X_test, y_test)[0]))

    every = int(p["record_every"])
    if every:
        record(0)
    for step in range(1, int(p["steps"]) + 1):
        if p["online"]:
            x, y = torch_sample(gen, B, D, filt, gain, Z)
        else:  # minibatches drawn with replacement from the fixed training set
            idx = torch.randint(X_train.shape[0], (B,), generator=gen, device=device)
            x, y = X_train[idx], y_train[idx]
        gW, gb = torch_grads(W, b, x, y)
        W -= p["lr"] * gW
        if p["train_bias"]:
            b -= p["lr"] * gb
        if every and (step % every == 0 or step == p["steps"]):
            record(step)

    test_acc, test_loss = torch_accuracy_loss(W, b, X_test, y_test)
    train_acc = None if p["online"] else torch_accuracy_loss(W, b, X_train, y_train)[0]
    return {"W0": W0, "W": W.cpu().numpy(), "b": b.cpu().numpy(), "test_acc": test_acc,
            "test_loss": test_loss, "train_acc": train_acc, "history": history}


# ---------------------------------------------------------------------------- jax

@functools.cache
def jax_impl():
    """The jax functions, built on first use (importing jax is slow; torch users skip it)."""
    # memlab.trials._jax sets JAX's GPU flags (allocate memory as needed, deterministic ops),
    # which only count when set before JAX starts its backend: without it a worker on a GPU
    # reserves 75 % of the GPU's memory, and the next worker sharing that GPU runs out.
    from memlab.trials import _jax  # noqa: F401
    import jax
    import jax.numpy as jnp
    from jax.scipy.special import erf

    def sample(key, n, D, filt, gain, Z):
        n0 = n // 2
        noise = jax.random.normal(key, (n, D))
        f = jnp.concatenate([jnp.broadcast_to(filt[0], (n0, filt.shape[1])),
                             jnp.broadcast_to(filt[1], (n - n0, filt.shape[1]))])
        z = jnp.fft.irfft(f * jnp.fft.rfft(noise), n=D)
        x = jnp.where(gain > 0, erf(gain * z) / Z, z)   # gain is traced: one compilation per shape
        y = jnp.concatenate([-jnp.ones(n0), jnp.ones(n - n0)])
        return x, y

    def forward(W, b, x):
        return erf((x @ W.T / jnp.sqrt(x.shape[1]) + b) * INV_SQRT2).mean(1)

    def loss(W, b, x, y):
        return 0.5 * jnp.mean((forward(W, b, x) - y) ** 2)

    @functools.partial(jax.jit, static_argnames=("n_steps", "batch_size", "online", "train_bias"))
    def run_steps(W, b, key, filt, gain, Z, lr, X_train, y_train, *, n_steps, batch_size, online, train_bias):
        """n_steps SGD steps in one compiled lax.scan."""
        def step(carry, _):
            W, b, key = carry
            key, k = jax.random.split(key)
            if online:
                x, y = sample(k, batch_size, W.shape[1], filt, gain, Z)
            else:
                idx = jax.random.randint(k, (batch_size,), 0, X_train.shape[0])
                x, y = X_train[idx], y_train[idx]
            gW, gb = jax.grad(loss, argnums=(0, 1))(W, b, x, y)
            return (W - lr * gW, b - lr * gb if train_bias else b, key), None
        (W, b, key), _ = jax.lax.scan(step, (W, b, key), None, length=n_steps)
        return W, b, key

    @jax.jit
    def accuracy_loss(W, b, x, y):
        out = forward(W, b, x)
        return jnp.mean(jnp.sign(out) == y), 0.5 * jnp.mean((out - y) ** 2)

    return SimpleNamespace(jax=jax, jnp=jnp, sample=sample, loss=loss, run_steps=run_steps,
                           accuracy_loss=accuracy_loss)


def jax_device(name: str):
    import jax
    if name == "auto":
        return jax.devices()[0]
    try:
        return jax.devices("gpu" if name == "cuda" else "cpu")[0]
    except RuntimeError as e:
        raise ValueError(f"receptive_fields: jax sees no '{name}' device ({e}); "
                         f"install jax with CUDA support or use device 'cpu' or 'auto'") from None


def train_jax(p: dict, seed: int) -> dict:
    with jax_impl().jax.default_device(jax_device(p["device"])):
        return _train_jax(p, seed)


def _train_jax(p: dict, seed: int) -> dict:
    J = jax_impl()
    jax, jnp, sample, accuracy_loss = J.jax, J.jnp, J.sample, J.accuracy_loss
    D, K, B = int(p["D"]), int(p["K"]), int(p["batch_size"])
    filt = jnp.asarray(class_filters(p), dtype=jnp.float32)
    gain, Z = saturation(p["gain"])
    key = jax.random.PRNGKey(seed % 2**32)
    key, k_init, k_test, k_train = jax.random.split(key, 4)

    W = jax.random.normal(k_init, (K, D))
    b = jnp.zeros(K)
    W0 = np.asarray(W).copy()
    X_test, y_test = sample(k_test, int(p["n_test"]), D, filt, gain, Z)
    if p["online"]:
        X_train, y_train = jnp.zeros((1, D)), jnp.zeros(1)   # unused placeholders
    else:
        X_train, y_train = sample(k_train, int(p["n_train"]), D, filt, gain, Z)

    def advance(W, b, key, n):
        return J.run_steps(W, b, key, filt, gain, Z, float(p["lr"]), X_train, y_train, n_steps=n,
                           batch_size=B, online=bool(p["online"]), train_bias=bool(p["train_bias"]))

    steps, every = int(p["steps"]), int(p["record_every"])
    history = []
    done = 0
    if every:
        history.append((0, W0, float(accuracy_loss(W, b, X_test, y_test)[0])))
    while done < steps:
        n = min(every or steps, steps - done)
        W, b, key = advance(W, b, key, n)
        done += n
        if every:
            history.append((done, np.asarray(W).copy(), float(accuracy_loss(W, b, X_test, y_test)[0])))

    test_acc, test_loss = (float(v) for v in accuracy_loss(W, b, X_test, y_test))
    train_acc = None if p["online"] else float(accuracy_loss(W, b, X_train, y_train)[0])
    return {"W0": W0, "W": np.asarray(W), "b": np.asarray(b), "test_acc": test_acc,
            "test_loss": test_loss, "train_acc": train_acc, "history": history}


TRAINERS = {"torch": train_torch, "jax": train_jax}
