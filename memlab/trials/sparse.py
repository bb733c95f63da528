"""Trial `sparse`: the price of sparsity, memorizing noisy labels against generalizing.

    python run.py --name sparsity_regimes --tasks 2       # Sol-D / Sol-F / Sol-S against sparsity
    python run.py --name sparsity_noisy_labels --tasks 2  # per-epoch "correct" vs "memorized" curves
    python run.py --name sparse --tasks 2                 # random / magnitude / iterative, per layer

A network (memlab.models: the mlp, resnet32 with a widen factor, ...) is trained on a dataset
whose training labels may be noisy (a label corruption of memlab.datasets.corrupt: symmetric,
asymmetric, partial_labels, random_labels).  A fraction `sparsity` of its weights (every dense
and conv kernel; biases and batch norm are kept) is removed, set to 0 and kept there.  Methods,
after Ye, Wang, Ding and Chen, "The Price of Sparsity: Generalization and Memorization in Sparse
Neural Networks" (SNN workshop 2022):

    dense      Sol-D: the dense network, trained `epochs` (sparsity must be 0)
    finetune   Sol-F: train dense `epochs`, one-shot L1-magnitude pruning, fine-tune `finetune_epochs`
    scratch    Sol-S: the same mask, weights re-initialized, trained from scratch for `epochs`
    lottery    the same mask, weights rewound to the dense network's initialization, `epochs`
    random     a random mask drawn at initialization, sparse training for epochs + finetune_epochs
    magnitude  finetune under its older name
    iterative  train dense, then prune_rounds rounds of (prune, fine-tune) over finetune_epochs: the
               kept fraction shrinks geometrically to 1 - sparsity

`prune_scope` global ranks every weight of the network together (the paper's), layer removes
the same fraction from each layer.  finetune, scratch, lottery and iterative start from one
dense run whose seed leaves out the pruning parameters, so at one restart they share the dense
network and its mask (and the process keeps its last dense runs, so a grid trains each once).
The learning rate is `lr` times lr_gamma at each of `lr_milestones` (MultiStepLR); fine-tuning
runs at `finetune_lr` (None: the rate of the last dense epoch).

Reported (memlab.trials._noisy): train_acc (against the noisy labels trained on), clean_acc,
noisy_correct (noisy subset predicted as its true label), noisy_memorized (as its noisy label),
test_acc, train_entropy (mean prediction entropy on the training set), and at the end (and every
`measure_every` epochs) on `curvature_points` training examples (memlab.trials._curvature):
fisher_trace (Monte Carlo, fisher_samples labels per point), hessian_trace (Hutchinson,
hessian_probes probes), each with its standard error, and jacobian_norm; the achieved sparsity,
per-epoch series every record_every epochs.
"""
from __future__ import annotations

import collections
import copy
import os
import time

import numpy as np
import torch
from torch import nn

from memlab.datasets import DATASET_PARAMS, load_dataset
from memlab.datasets.corrupt import LABEL_CORRUPTIONS
from memlab.models import ARCHITECTURES, build, init_params
from memlab.models.torch_models import TorchNet
from memlab.params import Param, canonical, resolve, trial_seed
from memlab.trials import _curvature, _noisy
from memlab.trials._torch import device as torch_device
from memlab.trials._torch import optimizer as make_optimizer
from memlab.trials._torch import set_lr, torch_threads
from memlab.trials._train import INIT, SUBSET, Augment, epoch_batches, rng, subset

METHODS = ("dense", "finetune", "scratch", "lottery", "random", "magnitude", "iterative")

# Flat results and series columns (plot specs are checked against them; * globs).
RETURNS = ("train_acc", "clean_acc", "noisy_correct", "noisy_memorized", "test_*", "train_entropy", "gen_gap",
           "fisher_trace*", "hessian_trace*", "jacobian_norm", "n_noisy", "frac_noisy", "sparsity_*", "n_nonzero",
           "n_weights", "density", "epochs_total", "n_train_used", "fit_time", "measure_time", "device_used",
           "epoch", "loss", "lr")
PARAMS = {
    **{k: v for k, v in DATASET_PARAMS.items() if k != "split"},    # train on the train split, test on test
    "dataset": Param("digits", help="a dataset with an official train/test split"),
    "corruption": Param("partial_labels", choices=("none", *LABEL_CORRUPTIONS)),
    "corrupt_prob": Param(0.4, help="probability that a training label is corrupted"),
    "n_train": Param(None, help="a seeded random subset of this many training examples (None: all)"),
    "sparsity": Param(0.0, help="fraction of weights removed, in [0, 1)"),
    "method": Param("magnitude", choices=METHODS),
    "prune_scope": Param("global", choices=("global", "layer")),
    "model": Param("mlp", choices=tuple(ARCHITECTURES)),
    "width": Param(None, help="mlp: hidden units per layer (None: 512); ResNets: first-stage channels"),
    "depth": Param(2, help="mlp: hidden layers"),
    "widen": Param(1, help="widen factor of the ResNets (and vgg11)"),
    "batchnorm": Param(False, choices=(False, True)),
    "optimizer": Param("adam", choices=("adam", "sgd")),
    "lr": Param(1e-3, help="learning rate"),
    "momentum": Param(0.9, help="sgd only"),
    "weight_decay": 0.0,
    "lr_milestones": Param([], help="epochs after which the learning rate is multiplied by lr_gamma"),
    "lr_gamma": 0.1,
    "finetune_lr": Param(None, help="fine-tuning learning rate (None: the last dense epoch's)"),
    "augment": Param(False, choices=(False, True), help="random crops and flips (image models)"),
    "batch_size": Param(128),
    "epochs": Param(100, help="dense training (scratch, lottery: sparse training; random: + finetune_epochs)"),
    "finetune_epochs": Param(50, help="training after pruning (all rounds together)"),
    "prune_rounds": Param(5, help="iterative: rounds of prune + fine-tune"),
    "record_every": Param(10, help="record the series every N epochs (0: only the end)"),
    "measure": Param(True, choices=(True, False), help="Fisher, Hessian, Jacobian at the end"),
    "measure_every": Param(0, help="also measure them every N epochs into the series (0: only the end)"),
    "curvature_points": Param(256, help="training examples the curvature measures use"),
    "fisher_samples": Param(1, help="labels drawn per point for the Monte-Carlo Fisher trace"),
    "hessian_probes": Param(10, help="Rademacher probes of Hutchinson's Hessian trace"),
    "jacobian_output": Param("probs", choices=("probs", "logits")),
    "threads": Param(None, help="torch CPU threads (None: $MEMLAB_THREADS, else 1)"),
    "device": Param("cpu", choices=("cpu", "cuda", "auto")),
    "restart": Param(0, help="repetition number: only changes the seed"),
    "seed": Param(None, help="explicit seed (default: a hash of the other parameters)"),
}
# Parameters that only matter after the dense run (or not to the result): left out of the dense
# run's seed and of its cache key, so every method and sparsity of a restart shares one dense network.
PRUNING_PARAMS = ("method", "sparsity", "prune_scope", "finetune_epochs", "finetune_lr", "prune_rounds",
                  "threads", "device")
NOT_SEEDED = ("threads", "device")     # how a trial runs, not what it draws
MEASURES = ("fisher_trace", "fisher_trace_se", "hessian_trace", "hessian_trace_se", "jacobian_norm")


# ------------------------------------------------------------------ network ---
def make_layers(p: dict, input_shape: tuple, n_classes: int) -> tuple:
    if p["model"] == "mlp":
        width = 512 if p["width"] is None else int(p["width"])
        return build("mlp", input_shape, n_classes, widths=[width] * int(p["depth"]), batchnorm=p["batchnorm"])
    return build(p["model"], input_shape, n_classes, width=p["width"], widen=p["widen"], batchnorm=p["batchnorm"])


def mlp(d: int, width: int, depth: int, n_classes: int, seed: int = 0) -> TorchNet:
    """A d-width^depth-n_classes ReLU network with memlab.models' initialization (tests use it)."""
    layers = build("mlp", (d,), n_classes, widths=[width] * depth)
    return TorchNet(layers, init_params(layers, (d,), rng(seed, INIT)), (d,))


def weights(model: nn.Module) -> list[torch.Tensor]:
    """The kernels that pruning acts on: every dense and conv weight (biases, batch norm kept)."""
    return [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def random_masks(model, sparsity: float, gen: torch.Generator, scope: str = "layer") -> list[torch.Tensor]:
    """Exactly round(sparsity * size) weights removed, uniformly at random, per layer or over all."""
    Ws = weights(model)
    if scope == "global":
        return _split(_drop(torch.rand(_total(Ws), generator=gen), sparsity), Ws)
    return [_drop(torch.rand(W.numel(), generator=gen), sparsity).view_as(W) for W in Ws]


def magnitude_masks(model, sparsity: float, masks: list[torch.Tensor] | None = None,
                    scope: str = "layer") -> list[torch.Tensor]:
    """Keep the (1 - sparsity) fraction of largest-magnitude weights, per layer or over the network
    (global L1 pruning).  Weights already pruned (masks) count as the smallest, so iterated pruning
    only removes more."""
    Ws = weights(model)
    scores = []
    for i, W in enumerate(Ws):
        s = W.detach().abs().flatten().cpu().clone()
        if masks is not None:
            s[masks[i].flatten().cpu() == 0] = -1.0
        scores.append(s)
    if scope == "global":
        return [m.to(W.device) for m, W in zip(_split(_drop(torch.cat(scores), sparsity), Ws), Ws)]
    return [_drop(s, sparsity).view_as(W).to(W.device) for s, W in zip(scores, Ws)]


def _drop(score: torch.Tensor, sparsity: float) -> torch.Tensor:
    """A 0/1 mask over `score` with the round(sparsity * n) lowest scores set to 0 (ties: first)."""
    mask = torch.ones(score.numel())
    mask[torch.argsort(score, stable=True)[:int(round(sparsity * score.numel()))]] = 0.0
    return mask


def _total(Ws) -> int:
    return sum(W.numel() for W in Ws)


def _split(flat: torch.Tensor, Ws) -> list[torch.Tensor]:
    out, i = [], 0
    for W in Ws:
        out.append(flat[i:i + W.numel()].view_as(W).to(W.device))
        i += W.numel()
    return out


@torch.no_grad()
def apply_masks(model, masks) -> None:
    if masks is None:
        return
    for W, m in zip(weights(model), masks):
        W.mul_(m)


def achieved_sparsity(model) -> float:
    Ws = weights(model)
    return float(sum(int((W == 0).sum()) for W in Ws) / _total(Ws))


def lr_schedule(epoch: int, p: dict) -> float:
    """MultiStepLR: lr * lr_gamma ** (milestones passed before this 1-based epoch)."""
    return float(p["lr"]) * float(p["lr_gamma"]) ** sum(int(m) < epoch for m in p["lr_milestones"])


# --------------------------------------------------------------------- data ---
def nchw(images: torch.Tensor) -> torch.Tensor:
    """NHWC -> NCHW, copied into canonical strides.  A permuted one-channel batch counts as
    contiguous with strides (HW, 1, W, 1) -- both layouts at once -- and the CPU backward of the
    ResNets on such a batch corrupts the heap (measured, torch 2.13: "corrupted double-linked list")."""
    x = images.permute(0, 3, 1, 2)
    return torch.empty(x.shape, dtype=x.dtype).copy_(x)


def load(p: dict, seed: int = 0, dev: torch.device | str = "cpu", conv: bool = False) -> dict:
    """Train rows with the trained-on (corrupted) labels and the true ones; the clean test split.

    The corruption's `corrupted` mask (the labels it changed) is the noisy subset; a seeded subset
    of n_train training rows when asked."""
    corrupt = {k: p[k] for k in ("corruption", "corrupt_prob", "corrupt_seed")}
    if p["corruption"] == "none":
        corrupt = {"corruption": "none"}
    train = load_dataset(p["dataset"], split="train", **corrupt)
    clean = load_dataset(p["dataset"], split="train")
    test = load_dataset(p["dataset"], split="test")
    keep = subset(len(train.y), p["n_train"], seed)
    shape = train.image_shape if conv else None

    def x(ds, rows=slice(None)):
        a = np.asarray(ds.X[rows], dtype=np.float32)
        return a.reshape(len(a), *shape) if shape else a          # NHWC images for conv models

    noisy = np.zeros(len(keep), bool) if train.corrupted is None else np.asarray(train.corrupted)[keep]
    images = x(train, keep)
    def t(a, dtype=torch.float32):
        a = torch.tensor(np.asarray(a), dtype=dtype)
        return (nchw(a) if a.dim() == 4 else a).to(dev)

    return {"X": t(images), "y": t(np.asarray(train.y)[keep], torch.long),
            "y_clean": t(np.asarray(clean.y)[keep], torch.long), "noisy": t(noisy, torch.bool),
            "X_test": t(x(test)), "y_test": t(np.asarray(test.y), torch.long), "images": images,
            "n_classes": max(train.n_classes, int(np.asarray(train.y).max()) + 1),
            "input_shape": images.shape[1:]}


# ------------------------------------------------------------------ training ---
class Run:
    """One network through its phases: mini-batch steps that keep masked weights at zero, the
    per-epoch series, the measurements."""

    def __init__(self, model: TorchNet, data: dict, p: dict, seed: int, measure_points: torch.Tensor):
        self.model, self.data, self.p, self.seed = model, data, p, seed
        self.dev = data["X"].device
        self.opt = make_optimizer(model.parameters(), p["optimizer"], float(p["lr"]), float(p["momentum"]),
                                  float(p["weight_decay"]))
        self.augment = Augment.for_images(data["images"].shape[1:], None) if p["augment"] else None
        self.points = measure_points
        self.epoch = 0
        self.masks = None
        self.series = collections.defaultdict(list)
        self.lr = float(p["lr"])

    def train(self, n_epochs: int, masks, lr=None) -> None:
        """n_epochs more epochs with `masks` (None: dense); lr None: the schedule, else constant."""
        self.masks = masks
        apply_masks(self.model, masks)
        d, every = self.data, int(self.p["record_every"])
        for _ in range(n_epochs):
            self.epoch += 1
            self.lr = lr_schedule(self.epoch, self.p) if lr is None else float(lr)
            set_lr(self.opt, self.lr)
            loss = self._epoch(d)
            if every and self.epoch % every == 0:
                self.record(loss)

    def _epoch(self, d) -> float:
        self.model.train()
        total, n = torch.zeros((), device=self.dev), len(d["y"])
        for idx, aug in epoch_batches(n, int(self.p["batch_size"]), self.seed, self.epoch, self.augment,
                                      d["images"] if self.augment else None):
            idx = torch.from_numpy(idx).to(self.dev)
            xb = d["X"][idx] if aug is None else nchw(torch.from_numpy(aug)).to(self.dev)
            self.opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(self.model(xb), d["y"][idx])
            loss.backward()
            self.opt.step()
            apply_masks(self.model, self.masks)
            total += loss.detach() * len(idx)
        return float(total) / n

    def metrics(self) -> dict:
        d = self.data
        out = _noisy.label_noise_metrics(_noisy.torch_predict(self.model, d["X"]), d["y"].cpu(), d["y_clean"].cpu())
        out["test_acc"] = float((_noisy.torch_predict(self.model, d["X_test"]) == d["y_test"].cpu().numpy()).mean())
        out["train_entropy"] = _curvature.prediction_entropy(self.model, d["X"])
        return out

    def record(self, loss: float) -> None:
        row = {"epoch": self.epoch, "loss": loss, "lr": self.lr, **self.metrics(),
               "sparsity_now": achieved_sparsity(self.model)}   # not "sparsity": that is a parameter column
        every = int(self.p["measure_every"])
        if every and self.p["measure"]:
            row.update(self.measure() if self.epoch % every == 0 else dict.fromkeys(MEASURES))
        for k, v in row.items():
            self.series[k].append(v)

    def measure(self) -> dict:
        """Fisher and Hessian traces (over the free weights) and the Jacobian norm on the points."""
        p, d, idx = self.p, self.data, self.points
        X, y = d["X"][idx], d["y"][idx]
        params = list(self.model.parameters())
        by_id = {id(W): m for W, m in zip(weights(self.model), self.masks or [])}
        masks = [by_id.get(id(q)) for q in params] if self.masks else None
        gen = torch.Generator().manual_seed((self.seed + self.epoch) % 2**63)
        fisher, fisher_se = _curvature.fisher_trace(self.model, X, params, masks,
                                                    n_samples=int(p["fisher_samples"]), generator=gen)
        hess, hess_se = _curvature.hessian_trace(self.model, X, y, params, masks,
                                                 n_probes=int(p["hessian_probes"]), generator=gen)
        return {"fisher_trace": fisher, "fisher_trace_se": fisher_se, "hessian_trace": hess,
                "hessian_trace_se": hess_se,
                "jacobian_norm": _curvature.jacobian_norm(self.model, X, output=p["jacobian_output"])}

    # state for the dense-run cache
    def snapshot(self) -> dict:
        return {"model": copy.deepcopy(self.model.state_dict()), "opt": copy.deepcopy(self.opt.state_dict()),
                "series": {k: list(v) for k, v in self.series.items()}, "epoch": self.epoch, "lr": self.lr}

    def restore(self, snap: dict) -> None:
        self.model.load_state_dict(snap["model"])
        self.opt.load_state_dict(copy.deepcopy(snap["opt"]))
        self.series = collections.defaultdict(list, {k: list(v) for k, v in snap["series"].items()})
        self.epoch, self.lr = snap["epoch"], snap["lr"]


# Last dense runs of this process, by their parameters: a sweep over sparsity and method trains
# each dense network once per worker.  Pure memoization: a hit returns what training would.
_DENSE: collections.OrderedDict = collections.OrderedDict()
DENSE_CACHE = 2


def network(p: dict, data: dict, seed: int, stream: int | None = None) -> TorchNet:
    """The network with its initial weights from (seed, INIT[, stream])."""
    layers = make_layers(p, data["input_shape"], data["n_classes"])
    r = rng(seed, INIT) if stream is None else rng(seed, INIT, stream)
    return TorchNet(layers, init_params(layers, data["input_shape"], r), data["input_shape"]).to(data["X"].device)


def dense_run(p: dict, data: dict, dense_seed: int, points) -> Run:
    """The dense network trained `epochs`, as a Run that can go on (fine-tuning)."""
    key = canonical({k: v for k, v in p.items() if k not in PRUNING_PARAMS}) + f"|{data['X'].device}"
    run = Run(network(p, data, dense_seed), data, p, dense_seed, points)
    if key in _DENSE:
        _DENSE.move_to_end(key)
        run.restore(_DENSE[key])
        return run
    run.train(int(p["epochs"]), None)
    _DENSE[key] = run.snapshot()
    while len(_DENSE) > DENSE_CACHE:
        _DENSE.popitem(last=False)
    return run


def prune_and_train(p: dict, data: dict, dense_seed: int, seed: int, points) -> Run:
    """The trained network of `method` (see the module docstring)."""
    s, method, scope = float(p["sparsity"]), p["method"], p["prune_scope"]
    epochs, finetune = int(p["epochs"]), int(p["finetune_epochs"])
    if method == "random":
        run = Run(network(p, data, dense_seed), data, p, dense_seed, points)
        gen = torch.Generator().manual_seed(dense_seed % 2**63)
        run.train(epochs + finetune, random_masks(run.model, s, gen, scope) if s > 0 else None)
        return run
    run = dense_run(p, data, dense_seed, points)
    if method == "dense":
        return run
    ft_lr = run.lr if p["finetune_lr"] is None else float(p["finetune_lr"])
    if method in ("finetune", "magnitude"):
        run.train(finetune, magnitude_masks(run.model, s, scope=scope) if s > 0 else None, lr=ft_lr)
        return run
    if method == "iterative":
        rounds, masks = max(1, int(p["prune_rounds"])), None
        for r in range(1, rounds + 1):
            level = 1.0 - (1.0 - s) ** (r / rounds)                 # kept fraction shrinks geometrically
            masks = magnitude_masks(run.model, level, masks, scope) if s > 0 else None
            run.train(finetune * r // rounds - finetune * (r - 1) // rounds, masks, lr=ft_lr)
        return run
    masks = magnitude_masks(run.model, s, scope=scope) if s > 0 else None
    # scratch: fresh weights from a stream of their own; lottery: the dense run's initial weights
    model = network(p, data, seed, stream=1) if method == "scratch" else network(p, data, dense_seed)
    sparse = Run(model, data, p, seed, points)
    sparse.train(epochs, masks)
    return sparse


def check(p: dict) -> None:
    if not 0.0 <= float(p["sparsity"]) < 1.0:
        raise ValueError(f"sparse: sparsity must lie in [0, 1), got {p['sparsity']}")
    if p["augment"] and p["model"] == "mlp":
        raise ValueError("sparse: augment needs an image model (the mlp takes flat rows)")
    if p["method"] == "dense" and float(p["sparsity"]) != 0.0:
        raise ValueError("sparse: method 'dense' is the unpruned network; give it sparsity 0")
    for k in ("epochs", "finetune_epochs", "batch_size", "curvature_points", "hessian_probes", "fisher_samples"):
        if not isinstance(p[k], int) or p[k] < (1 if k in ("batch_size", "hessian_probes", "fisher_samples") else 0):
            raise ValueError(f"sparse: {k} must be a {'positive' if k == 'batch_size' else 'non-negative'} "
                             f"integer, got {p[k]!r}")


def trial(params: dict) -> dict:
    p = resolve(PARAMS, params)
    check(p)
    threads = p["threads"] or int(os.environ.get("MEMLAB_THREADS") or 1)
    with torch_threads(int(threads)):
        return _trial(p, trial_seed(p), dense_seed(p))


def dense_seed(p: dict) -> int:
    """The dense run's seed: an explicit `seed`, else a hash of the parameters that shape the dense
    run (not the runner's per-trial `_seed`, which differs between methods and sparsities)."""
    return trial_seed({k: v for k, v in p.items() if k not in PRUNING_PARAMS and not k.startswith("_")}, "sparse")


def _trial(p: dict, seed: int, dense_seed: int) -> dict:
    dev = torch_device(p["device"])
    data = load(p, dense_seed, dev, conv=p["model"] != "mlp")     # every other architecture takes images
    n = len(data["y"])
    points = torch.from_numpy(np.sort(rng(dense_seed, SUBSET, 1).choice(
        n, min(int(p["curvature_points"]), n), replace=False))).to(dev)
    start = time.process_time()
    run = prune_and_train(p, data, dense_seed, seed, points)
    fit_time = time.process_time() - start

    model = run.model
    out = run.metrics()
    out["test_error"] = 1.0 - out["test_acc"]
    out["gen_gap"] = out["train_acc"] - out["test_acc"]
    start = time.process_time()
    if p["measure"]:
        out.update(run.measure())
    Ws = weights(model)
    out.update({"n_noisy": int(data["noisy"].sum()), "frac_noisy": float(data["noisy"].float().mean()),
                "sparsity_achieved": achieved_sparsity(model),
                "n_nonzero": int(sum(int((W != 0).sum()) for W in Ws)), "n_weights": _total(Ws),
                "density": 1.0 - float(p["sparsity"]), "epochs_total": run.epoch, "n_train_used": n,
                "fit_time": fit_time, "measure_time": time.process_time() - start, "device_used": str(dev)})
    if run.series.get("epoch"):
        out["series"] = dict(run.series)
    return out
