"""Trial `autoencoder`: overparameterized autoencoders store their training images as attractors.

    python run.py --name autoencoder      # attractors against depth, width and the number of images

Radhakrishnan, Belkin, Uhler, "Overparameterized neural networks implement associative memory"
(PNAS 2020).  A fully connected autoencoder f: R^d -> R^d is trained on N images until the
reconstruction loss is near zero, so each training image x_i is (nearly) a fixed point,
f(x_i) = x_i.  It is an *attractor* when every eigenvalue of the Jacobian J_f(x_i) has modulus
below 1: then the iteration x <- f(x) started near x_i converges to x_i, and the network works
as an associative memory (a corrupted image is cleaned by iterating the map).  The paper finds
that deeper and wider networks make more of the training images attractors, and proves that a
network trained on a single image stores it as an attractor.

The trial measures:
    frac_fixed        share of training images with max_pixel |f(x_i) - x_i| < fp_tol
    frac_attractors   share that are fixed and have spectral radius rho(J_f(x_i)) < 1 - rho_margin
                      (J by torch.autograd.functional.jacobian in float64, eigenvalues by numpy;
                      the margin, 1e-3, because a map fitted to loss 1e-8 in float32 cannot tell
                      an eigenvalue 1 from 0.9999: see the homogeneity remark below)
    frac_recovered    share of perturbed images x_i + perturb_std * noise that n_iterate steps of
                      x <- f(x) carry back to x_i (relative distance < recover_tol, x_i nearest)
    frac_noise_to_train, n_noise_targets, frac_noise_fixed
                      the same iteration from n_noise uniform-noise images: how many end at a
                      training image, at how many distinct ones, and how many end at any fixed
                      point (those not at a training image are spurious attractors)
    rho_median, rho_mean, rho_min, rho_max, final_loss, steps, converged, fit_time
and returns the loss every record_every steps (series) and, as artifacts, the training images,
each one's rho, and a few iterations from noise (snapshots at chosen steps) for the `iterates` plot.

Network: d -> width (x depth hidden layers, each followed by the activation) -> d, with biases,
PyTorch's default initialization; full-batch Adam on the mean squared error until it falls
below loss_tol.  Activations: leaky_relu (slope 0.1), relu, sin, cosid (cos z - z, as I remember
the paper's choice), tanh, selu.  Without biases a (leaky) ReLU network is positively homogeneous,
f(c x) = c f(x), so J_f(x_i) x_i = x_i: an eigenvalue exactly 1 and never an attractor; the
biases break this.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from memlab.datasets import DATASET_PARAMS, dataset_from_params
from memlab.params import Param, resolve, trial_seed
from memlab.trials._torch import torch_threads

ACTIVATIONS = {
    "leaky_relu": lambda z: torch.nn.functional.leaky_relu(z, 0.1),
    "relu": torch.relu,
    "sin": torch.sin,
    "cosid": lambda z: torch.cos(z) - z,
    "tanh": torch.tanh,
    "selu": torch.selu,
}
SNAPSHOTS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)   # iteration steps kept for the plot

RETURNS = ("n_train_used", "d", "steps", "final_loss", "converged", "fit_time", "n_params", "frac_*", "rho_*", "n_noise_targets", "step", "loss")  # noqa: E501
PARAMS = {
    **DATASET_PARAMS,
    "dataset": Param("digits", help="an image dataset; the training images are drawn from `split`"),
    "split": Param("train", choices=("all", "train", "test")),
    "n_train": Param(20, help="N: training images (a seeded random subset)"),
    "width": Param(512, help="hidden units per layer"),
    "depth": Param(3, help="hidden layers"),
    "activation": Param("leaky_relu", choices=tuple(ACTIVATIONS)),
    "bias": Param(True, choices=(True, False), help="biases in every layer (see the docstring)"),
    "lr": Param(1e-3, help="Adam learning rate"),
    "max_steps": Param(5000, help="full-batch Adam steps at most"),
    "loss_tol": Param(1e-8, help="stop when the mean squared reconstruction error is below this"),
    "fp_tol": Param(0.01, help="a fixed point: max_pixel |f(x) - x| below this"),
    "rho_margin": Param(1e-3, help="an attractor: spectral radius below 1 - rho_margin"),
    "perturb_std": Param(0.1, help="std of the Gaussian noise added to each training image"),
    "n_iterate": Param(1000, help="steps of x <- f(x) for recovery and from noise"),
    "recover_tol": Param(0.01, help="recovered: ||x_T - x_i|| / ||x_i|| below this"),
    "n_noise": Param(100, help="uniform-noise starting images"),
    "n_chains": Param(6, help="iterations from noise kept as artifacts for the plot"),
    "record_every": Param(10, help="loss recorded every N steps (0: not at all)"),
    "threads": Param(1, help="torch CPU threads for this trial"),
    "restart": Param(0, help="repetition number: only changes the seed"),
    "seed": Param(None, help="explicit seed (default: a hash of the other parameters)"),
}



class Activation(torch.nn.Module):
    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self.fn = ACTIVATIONS[name]

    def forward(self, z):
        return self.fn(z)


def autoencoder(d: int, width: int, depth: int, activation: str, bias: bool = True) -> torch.nn.Sequential:
    """d -> width -> ... -> width -> d: `depth` hidden layers, each followed by the activation."""
    dims = [d] + [width] * depth
    layers = []
    for n_in, n_out in zip(dims[:-1], dims[1:]):
        layers += [torch.nn.Linear(n_in, n_out, bias=bias), Activation(activation)]
    layers.append(torch.nn.Linear(dims[-1], d, bias=bias))
    return torch.nn.Sequential(*layers)


def train(model, X: torch.Tensor, *, lr: float, max_steps: int, loss_tol: float, record_every: int) -> dict:
    """Full-batch Adam on the mean squared reconstruction error until it is below loss_tol."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps, losses = [], []
    loss = float("inf")
    step = 0
    for step in range(1, max_steps + 1):
        opt.zero_grad()
        err = ((model(X) - X) ** 2).mean()
        err.backward()
        opt.step()
        loss = err.item()   # the loss before this step's update
        if record_every and (step % record_every == 0 or step == 1):
            steps.append(step)
            losses.append(loss)
        if loss < loss_tol:
            break
    with torch.no_grad():
        final = float(((model(X) - X) ** 2).mean())
    return {"steps": step, "final_loss": final, "converged": loss < loss_tol,
            "series": {"step": steps, "loss": losses}}


# ---------------------------------------------------------------------------- analysis of a map f

def spectral_radii(f, X: torch.Tensor) -> np.ndarray:
    """rho(J_f(x)) = max |eigenvalue| of the Jacobian at each row x of X."""
    out = np.empty(len(X))
    for i, x in enumerate(X):
        J = torch.autograd.functional.jacobian(f, x, vectorize=True)
        out[i] = np.abs(np.linalg.eigvals(J.detach().cpu().numpy())).max()
    return out


@torch.no_grad()
def iterate(f, Z: torch.Tensor, n_steps: int, keep=()) -> tuple[torch.Tensor, dict]:
    """x <- f(x) n_steps times for each row of Z; also the rows at the steps in `keep`."""
    kept = {0: Z.clone()} if 0 in keep else {}
    for step in range(1, n_steps + 1):
        Z = f(Z)
        if step in keep:
            kept[step] = Z.clone()
    return Z, kept


@torch.no_grad()
def nearest(Z: torch.Tensor, X: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """For each row of Z: the index of the nearest row of X and the distance relative to its norm."""
    dist = torch.cdist(Z, X)
    idx = dist.argmin(1)
    rel = dist.gather(1, idx[:, None])[:, 0] / X.norm(dim=1)[idx].clamp_min(1e-12)
    return idx.cpu().numpy(), rel.cpu().numpy()


@torch.no_grad()
def is_fixed(f, Z: torch.Tensor, tol: float) -> np.ndarray:
    return ((f(Z) - Z).abs().amax(1) < tol).cpu().numpy()


def analyse(f, X: torch.Tensor, p: dict, gen: torch.Generator) -> dict:
    """Fixed points, attractors, recovery from perturbations and iterations from noise."""
    fixed = is_fixed(f, X, float(p["fp_tol"]))
    rho = spectral_radii(f, X)
    attractor = fixed & (rho < 1.0 - float(p["rho_margin"]))
    n_steps, tol = int(p["n_iterate"]), float(p["recover_tol"])

    Z = X + float(p["perturb_std"]) * torch.randn(X.shape, generator=gen, dtype=X.dtype)
    Z, _ = iterate(f, Z, n_steps)
    idx, rel = nearest(Z, X)
    recovered = (idx == np.arange(len(X))) & (rel < tol)

    noise = torch.rand((int(p["n_noise"]), X.shape[1]), generator=gen, dtype=X.dtype)
    keep = [s for s in SNAPSHOTS if s <= n_steps] + ([n_steps] if n_steps not in SNAPSHOTS else [])
    U, kept = iterate(f, noise, n_steps, keep=set(keep))
    u_idx, u_rel = nearest(U, X)
    at_train = u_rel < tol
    chains = np.stack([kept[s][: int(p["n_chains"])].cpu().numpy() for s in keep], axis=1)
    return {
        "stats": {"frac_fixed": float(fixed.mean()), "frac_attractors": float(attractor.mean()),
                  "frac_recovered": float(recovered.mean()),
                  "rho_median": float(np.median(rho)), "rho_mean": float(rho.mean()),
                  "rho_min": float(rho.min()), "rho_max": float(rho.max()),
                  "frac_noise_to_train": float(at_train.mean()),
                  "n_noise_targets": int(len(np.unique(u_idx[at_train]))),
                  "frac_noise_fixed": float(is_fixed(f, U, float(p["fp_tol"])).mean())},
        "artifacts": {"rho": rho, "attractor": attractor, "recovered": recovered,
                      "chains": np.clip(chains, -1e30, 1e30).astype(np.float32), "chain_steps": np.array(keep),
                      "chain_nearest": u_idx[: int(p["n_chains"])], "chain_at_train": at_train[: int(p["n_chains"])]},
    }


# ---------------------------------------------------------------------------- the trial

def training_images(p: dict, rng: np.random.Generator):
    ds = dataset_from_params(p)
    n = int(p["n_train"])
    if not 1 <= n <= len(ds.y):
        raise ValueError(f"autoencoder: n_train must lie in 1..{len(ds.y)}, got {n}")
    idx = np.sort(rng.choice(len(ds.y), size=n, replace=False))
    return np.asarray(ds.X[idx], dtype=np.float32), ds.image_shape


def trial(params: dict) -> dict:
    p = resolve(PARAMS, params)
    if p["activation"] not in ACTIVATIONS:
        raise ValueError(f"autoencoder: unknown activation {p['activation']!r}; choose from {list(ACTIVATIONS)}")
    with torch_threads(int(p["threads"])):
        return _trial(p, trial_seed(params))


def _trial(p: dict, seed: int) -> dict:
    X_np, image_shape = training_images(p, np.random.default_rng(seed))
    X = torch.from_numpy(X_np)
    with torch.random.fork_rng(devices=[]):     # the default initialization draws from the global RNG
        torch.manual_seed(seed)
        model = autoencoder(X.shape[1], int(p["width"]), int(p["depth"]), p["activation"], bool(p["bias"]))
    start = time.process_time()
    fit = train(model, X, lr=float(p["lr"]), max_steps=int(p["max_steps"]), loss_tol=float(p["loss_tol"]),
                record_every=int(p["record_every"]))
    fit_time = time.process_time() - start

    model = model.double().eval()               # analysis in float64: eigenvalues near 1 matter
    for q in model.parameters():
        q.requires_grad_(False)
    gen = torch.Generator().manual_seed(seed % 2**63)
    res = analyse(model, X.double(), p, gen)

    out = {"n_train_used": int(len(X)), "d": int(X.shape[1]), "steps": fit["steps"],
           "final_loss": fit["final_loss"], "converged": bool(fit["converged"]),
           "fit_time": fit_time, "n_params": int(sum(q.numel() for q in model.parameters())), **res["stats"]}
    if p["record_every"]:
        out["series"] = fit["series"]
    out["artifacts"] = {**res["artifacts"], "train": X_np,
                        "image_shape": np.array(image_shape or (X.shape[1],), dtype=np.int64)}
    return out
