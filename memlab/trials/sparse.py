"""Trial `sparse`: the price of sparsity, memorizing noisy labels against generalizing.

    python run.py --name sparse      # memorization and test accuracy against sparsity, three pruning methods

A fully connected ReLU network is trained on a dataset whose training labels are partly noisy
(memlab's `partial_labels` corruption: each training label is, with probability corrupt_prob,
replaced by a uniformly random class).  A fraction `sparsity` of its weights is removed (set
to 0 and kept there) by one of three methods:

    random     a random mask drawn at initialization; the sparse network is trained from scratch
    magnitude  train the dense network, remove the smallest-magnitude weights (one shot), fine-tune
    iterative  train the dense network, then prune_rounds rounds of (remove the smallest weights,
               fine-tune): the kept fraction shrinks geometrically to 1 - sparsity

Every method trains for epochs + finetune_epochs in all (random: all of it sparse), so the
sparsity level is the only difference at equal cost.  Pruning is per layer (each weight
matrix loses the same fraction; biases are kept).  The noisy-labelled training examples are
found by comparing the corrupted labels with the clean ones (load_dataset(name, split="train")):
a corrupted label that happens to equal the true one counts as clean.

Reported: mem_noisy (training accuracy on the noisy-labelled subset measured against its noisy
labels: memorization), noisy_true_acc (the same subset against its true labels), clean_train_acc
(the correctly labelled training examples), train_acc (all, against the labels trained on),
test_acc (the clean test split), the achieved sparsity and the number of nonzero weights, and
per-epoch series (loss, train_acc, mem_noisy, test_acc and the current sparsity, sparsity_now,
every record_every epochs).
"""
from __future__ import annotations

import time

import numpy as np
import torch

from memlab.datasets import DATASET_PARAMS, load_dataset
from memlab.params import Param, resolve, trial_seed
from memlab.trials._torch import torch_threads

METHODS = ("random", "magnitude", "iterative")

RETURNS = ("train_acc", "mem_noisy", "noisy_true_acc", "clean_train_acc", "test_*", "n_noisy", "frac_noisy", "sparsity_*", "n_nonzero", "n_weights", "density", "epochs_total", "fit_time", "epoch", "loss")  # noqa: E501
PARAMS = {
    **{k: v for k, v in DATASET_PARAMS.items() if k != "split"},    # train on the train split, test on test
    "dataset": Param("digits", help="a dataset with an official train/test split"),
    "corruption": Param("partial_labels", choices=("none", "partial_labels", "random_labels")),
    "corrupt_prob": Param(0.4, help="probability that a training label is replaced by a random class"),
    "sparsity": Param(0.0, help="fraction of weights removed, in [0, 1)"),
    "method": Param("magnitude", choices=METHODS),
    "width": Param(512, help="hidden units per layer"),
    "depth": Param(2, help="hidden layers"),
    "lr": Param(1e-3, help="Adam learning rate"),
    "batch_size": Param(128),
    "epochs": Param(100, help="dense training before pruning (random: sparse training)"),
    "finetune_epochs": Param(50, help="training after pruning (all rounds together)"),
    "prune_rounds": Param(5, help="iterative: rounds of prune + fine-tune"),
    "record_every": Param(10, help="record loss and accuracies every N epochs (0: only the end)"),
    "threads": Param(1, help="torch CPU threads for this trial"),
    "restart": Param(0, help="repetition number: only changes the seed"),
    "seed": Param(None, help="explicit seed (default: a hash of the other parameters)"),
}


def mlp(d: int, width: int, depth: int, n_classes: int) -> torch.nn.Sequential:
    dims = [d] + [width] * depth
    layers = []
    for n_in, n_out in zip(dims[:-1], dims[1:]):
        layers += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(dims[-1], n_classes))
    return torch.nn.Sequential(*layers)


def weights(model) -> list[torch.Tensor]:
    """The weight matrices that pruning acts on (biases are kept)."""
    return [m.weight for m in model if isinstance(m, torch.nn.Linear)]


def random_masks(model, sparsity: float, gen: torch.Generator) -> list[torch.Tensor]:
    """Per layer, exactly round(sparsity * size) weights removed, chosen uniformly at random."""
    masks = []
    for W in weights(model):
        n_drop = int(round(sparsity * W.numel()))
        mask = torch.ones(W.numel())
        mask[torch.randperm(W.numel(), generator=gen)[:n_drop]] = 0.0
        masks.append(mask.view_as(W))
    return masks


def magnitude_masks(model, sparsity: float, masks: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Per layer, keep the (1 - sparsity) fraction of largest-magnitude weights.

    Weights already pruned (masks) count as the smallest, so iterated pruning only removes more.
    """
    out = []
    for i, W in enumerate(weights(model)):
        score = W.detach().abs().flatten().clone()
        if masks is not None:
            score[masks[i].flatten() == 0] = -1.0
        n_drop = int(round(sparsity * W.numel()))
        mask = torch.ones(W.numel())
        mask[torch.argsort(score, stable=True)[:n_drop]] = 0.0
        out.append(mask.view_as(W))
    return out


@torch.no_grad()
def apply_masks(model, masks) -> None:
    if masks is None:
        return
    for W, m in zip(weights(model), masks):
        W.mul_(m)


@torch.no_grad()
def accuracy(model, X, y) -> float:
    return float((model(X).argmax(1) == y).float().mean()) if len(y) else float("nan")


class Trainer:
    """Mini-batch Adam on the cross-entropy, keeping masked weights at zero after every step."""

    def __init__(self, model, data: dict, p: dict, gen: torch.Generator):
        self.model, self.data, self.gen = model, data, gen
        self.batch_size = int(p["batch_size"])
        self.record_every = int(p["record_every"])
        # One optimizer for the whole run: pruning only zeroes weights (and keeps them zero), so with
        # sparsity 0 every method is the same training run.
        self.opt = torch.optim.Adam(model.parameters(), lr=float(p["lr"]))
        self.epoch = 0
        self.series = {"epoch": [], "loss": [], "train_acc": [], "mem_noisy": [], "test_acc": [], "sparsity_now": []}

    def run(self, n_epochs: int, masks) -> None:
        opt = self.opt
        X, y = self.data["X"], self.data["y"]
        apply_masks(self.model, masks)
        for _ in range(n_epochs):
            order = torch.randperm(len(y), generator=self.gen)
            total = 0.0
            for start in range(0, len(y), self.batch_size):
                idx = order[start:start + self.batch_size]
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(self.model(X[idx]), y[idx])
                loss.backward()
                opt.step()
                apply_masks(self.model, masks)
                total += loss.item() * len(idx)
            self.epoch += 1
            if self.record_every and self.epoch % self.record_every == 0:
                self.record(total / len(y))

    def record(self, loss: float) -> None:
        s = self.series
        s["epoch"].append(self.epoch)
        s["loss"].append(loss)
        s["train_acc"].append(accuracy(self.model, self.data["X"], self.data["y"]))
        noisy = self.data["noisy"]
        s["mem_noisy"].append(accuracy(self.model, self.data["X"][noisy], self.data["y"][noisy]))
        s["test_acc"].append(accuracy(self.model, self.data["X_test"], self.data["y_test"]))
        s["sparsity_now"].append(achieved_sparsity(self.model))   # not "sparsity": that is a parameter column


def achieved_sparsity(model) -> float:
    Ws = weights(model)
    return float(sum(int((W == 0).sum()) for W in Ws) / sum(W.numel() for W in Ws))


def load(p: dict) -> dict:
    """Train rows with the trained-on (corrupted) labels and the clean ones; the clean test split."""
    corrupt = {k: p[k] for k in ("corruption", "corrupt_prob", "corrupt_seed")}
    train = load_dataset(p["dataset"], split="train", **corrupt)
    clean = load_dataset(p["dataset"], split="train")
    test = load_dataset(p["dataset"], split="test")
    as_t = lambda a, dt: torch.tensor(np.asarray(a), dtype=dt)   # noqa: E731
    return {"X": as_t(train.X, torch.float32), "y": as_t(train.y, torch.long),
            "y_clean": as_t(clean.y, torch.long), "noisy": as_t(train.y != clean.y, torch.bool),
            "X_test": as_t(test.X, torch.float32), "y_test": as_t(test.y, torch.long),
            "n_classes": train.n_classes}


def prune_and_train(model, trainer: Trainer, p: dict, gen: torch.Generator) -> None:
    s, method = float(p["sparsity"]), p["method"]
    epochs, finetune = int(p["epochs"]), int(p["finetune_epochs"])
    if method == "random":
        masks = random_masks(model, s, gen) if s > 0 else None
        trainer.run(epochs + finetune, masks)
        return
    trainer.run(epochs, None)                                   # dense training
    if method == "magnitude":
        trainer.run(finetune, magnitude_masks(model, s) if s > 0 else None)
        return
    rounds = max(1, int(p["prune_rounds"]))
    masks = None
    for r in range(1, rounds + 1):
        level = 1.0 - (1.0 - s) ** (r / rounds)                 # kept fraction shrinks geometrically
        masks = magnitude_masks(model, level, masks) if s > 0 else None
        n = finetune * r // rounds - finetune * (r - 1) // rounds
        trainer.run(n, masks)


def trial(params: dict) -> dict:
    p = resolve(PARAMS, params)
    if not 0.0 <= float(p["sparsity"]) < 1.0:
        raise ValueError(f"sparse: sparsity must lie in [0, 1), got {p['sparsity']}")
    with torch_threads(int(p["threads"])):
        return _trial(p, trial_seed(params))


def _trial(p: dict, seed: int) -> dict:
    data = load(p)
    gen = torch.Generator().manual_seed(seed % 2**63)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = mlp(data["X"].shape[1], int(p["width"]), int(p["depth"]), data["n_classes"])
    trainer = Trainer(model, data, p, gen)
    start = time.process_time()
    prune_and_train(model, trainer, p, gen)
    fit_time = time.process_time() - start

    X, y, noisy = data["X"], data["y"], data["noisy"]
    out = {"train_acc": accuracy(model, X, y),
           "mem_noisy": accuracy(model, X[noisy], y[noisy]),
           "noisy_true_acc": accuracy(model, X[noisy], data["y_clean"][noisy]),
           "clean_train_acc": accuracy(model, X[~noisy], y[~noisy]),
           "test_acc": accuracy(model, data["X_test"], data["y_test"]),
           "n_noisy": int(noisy.sum()), "frac_noisy": float(noisy.float().mean()),
           "sparsity_achieved": achieved_sparsity(model),
           "n_nonzero": int(sum(int((W != 0).sum()) for W in weights(model))),
           "n_weights": int(sum(W.numel() for W in weights(model))),
           "density": 1.0 - float(p["sparsity"]), "epochs_total": trainer.epoch, "fit_time": fit_time}
    out["test_error"] = 1.0 - out["test_acc"]
    if trainer.series["epoch"]:
        out["series"] = trainer.series
    return out
