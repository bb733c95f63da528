"""The `sgd` trial: train a network with SGD or Adam and report how well it fits and generalizes.

    python run.py --name random_labels        # Zhang et al. 2017, Fig. 1a
    python run.py --name label_corruption     # Fig. 1b/1c: time to fit, test error vs corruption
    python run.py --name regularizers         # Table 1: weight decay, dropout, augmentation, batch norm
    python run.py --name cnn_vs_mlp           # the lecture's exercise: CNN (relu/tanh, sgd/adam) vs MLP

One code path, two frameworks: PyTorch (plain modules) and JAX (flax + optax, a jit-compiled
step) build the same network (memlab.models) from the same numpy-drawn weights and see the same
batches in the same order (numpy, from the trial's seed), so their results agree closely.

Inputs are preprocessed in numpy before either framework sees them (`preprocess`: standardized
per channel by default, Zhang et al.'s per-image whitening, or as stored; see
memlab/datasets/preprocess.py).  Training labels carry the corruption; test labels stay true.  A pixel corruption (shuffled or
random pixels, Gaussian) is applied to the test images too, as in Zhang et al.

Under a label corruption the training accuracy is also reported on the clean and on the
corrupted examples apart (`train_acc_clean`, `train_acc_corrupted`, every evaluation and at the
end; the corruption's per-example `corrupted` mask says which is which), as Zhang et al. do:
the corrupted examples are the ones memorized.  Without one the two columns are absent.
"""
from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from memlab.datasets import DATASET_PARAMS, PREPROCESS_PARAM, Preprocess, corrupt, load_dataset
from memlab.models import ACTIVATIONS, ARCHITECTURES, build, init_params, is_convolutional, n_params
from memlab.params import REQUIRED, Param, resolve, trial_seed
from memlab.trials import _noisy
from memlab.trials._train import (
    INIT, Augment, Checkpoint, batch_slices, center_crop, epoch_batches, epoch_order, lr_at, rng, run_epochs,
    subset)

# Flat results and series columns (plot specs are checked against them; * globs).  train_* holds
# train_acc_clean and train_acc_corrupted (label corruptions only, see metrics()).
RETURNS = ("train_*", "test_*", "*_to_fit", "epochs_run", "n_train_used", "n_params", "seconds", "examples_per_s",
           "resumed_from", "device_used", "epoch", "frac_corrupted", "learning_rate")
PARAMS = {
    **DATASET_PARAMS,
    "dataset": REQUIRED,
    "split": Param("train", choices=("train", "all"),
                   help="train: train on the train split, test on the test split; all: train on "
                        "everything, no test set (memorization only)"),
    "corrupt_seed": Param(None, help="seed of the corruption; default: the trial's seed, so repeats "
                                     "over seeds also draw different corruptions"),
    "n_train": Param(None, help="a seeded random subset of this many training examples (None: all)"),
    "crop": Param(None, help="center-crop images to crop x crop (Zhang et al.: 28 on CIFAR-10)"),
    "preprocess": PREPROCESS_PARAM,
    "framework": Param("torch", choices=("torch", "jax")),
    "model": Param("mlp", choices=tuple(ARCHITECTURES)),
    "widths": Param([512], help="hidden layer widths of the mlp, e.g. [512] or [512, 512, 512]"),
    "width": Param(None, help="channels of the first stage of resnet18_thin / resnet32 (16) and vgg11 (64); "
                              "None: the model's own"),
    "widen": Param(1, help="widen factor of resnet18_thin, resnet32 and vgg11: every width times this"),
    "activation": Param("relu", choices=ACTIVATIONS),
    "batchnorm": Param(False, choices=(False, True)),
    "dropout": Param(0.0, help="dropout rate after each hidden layer (CNNs: after their dense layers)"),
    "optimizer": Param("sgd", choices=("sgd", "adam")),
    "lr": 0.01,
    "momentum": Param(0.9, help="sgd only"),
    "lr_decay": Param(0.95, help="learning rate factor per epoch (Zhang et al.: 0.95)"),
    "lr_milestones": Param([], help="epochs after which the rate is multiplied by lr_gamma (piecewise "
                                    "constant, e.g. [30, 60, 90]; set lr_decay 1.0 for that alone)"),
    "lr_gamma": Param(0.1, help="the factor at each of lr_milestones (the KTH practical's VGG: 0.5)"),
    "weight_decay": 0.0,
    "weight_decay_scope": Param("all", choices=("all", "kernels"),
                                help="all: every parameter (torch's weight_decay); kernels: tensors of "
                                     "ndim > 1 only, the KTH practical's 1/2 * wd * sum W^2"),
    "augment": Param(False, choices=(False, True, "crop"),
                     help="random crops and horizontal flips (true), crops alone (\"crop\"), or none"),
    "epochs": 100,
    "batch_size": 128,
    "stop_at_fit": Param(False, choices=(False, True), help="stop at 100 % training accuracy"),
    "stop_at_acc": Param(None, help="stop once training accuracy reaches this (the KTH practical: 0.999)"),
    "target_loss": Param(None, help="stop once the training cross-entropy is at most this (e.g. 0.19)"),
    "checkpoint_every": Param(0, help="keep the weights at initialization, every this many epochs and at "
                                      "the end as the trial's artifacts (0: none)"),
    "eval_every": Param(1, help="evaluate train/test metrics every this many epochs (0: at the end)"),
    "seed": Param(None, help="an int; default: a hash of the other parameters"),
    "device": Param("auto", choices=("cpu", "cuda", "auto")),
}

# Corruptions of the labels alone: the test set keeps its true labels and its images.
LABEL_CORRUPTIONS = corrupt.LABEL_CORRUPTIONS


def trial(params: dict) -> dict:
    return train(params)


def train(params: dict, *, on_epoch=None) -> dict:
    """The trial, with a hook called after each epoch (tests use it to interrupt a run)."""
    p = resolve(PARAMS, params)
    check(p)
    seed = trial_seed(params)
    data = prepare_data(p, seed)
    layers = build(p["model"], data.input_shape, data.n_classes, widths=p["widths"], width=p["width"],
                   widen=p["widen"], activation=p["activation"], batchnorm=p["batchnorm"], dropout=p["dropout"])
    init = init_params(layers, data.input_shape, rng(seed, INIT), p["activation"])
    trainer = make_trainer(p, layers, init, data, seed)
    t0 = time.perf_counter()
    history = run_epochs(trainer, epochs=p["epochs"], eval_every=p["eval_every"], stop=stopper(p),
                         checkpoint=Checkpoint.from_env(params.get("_key")), on_epoch=on_epoch)
    seconds = time.perf_counter() - t0
    result = summarize(history, data, p, n_params=n_params(init), seconds=seconds, device=trainer.device_name)
    if isinstance(trainer, Snapshots):
        result["artifacts"] = snapshot_artifacts(trainer.finish(history.epochs))
    return result


def make_trainer(p: dict, layers: tuple, init: dict, data: Data, seed: int):
    """The framework's trainer, wrapped in Snapshots when checkpoint_every asks for them."""
    trainer = (TorchTrainer if p["framework"] == "torch" else JaxTrainer)(p, layers, init, data, seed)
    return Snapshots(trainer, p["checkpoint_every"]) if p["checkpoint_every"] else trainer


def stopper(p: dict):
    """The early stop the parameters ask for (None: train all epochs)."""
    acc = 1.0 if p["stop_at_fit"] else p["stop_at_acc"]
    loss = p["target_loss"]
    if acc is None and loss is None:
        return None
    return lambda m: (acc is not None and m["train_acc"] >= acc) or (loss is not None and m["train_loss"] <= loss)


def check(p: dict) -> None:
    for k in ("epochs", "batch_size"):
        if not isinstance(p[k], int) or p[k] < 1:
            raise ValueError(f"{k} must be a positive integer, got {p[k]!r}")
    if p["model"] == "mlp" and not all(isinstance(w, int) and w > 0 for w in p["widths"]):
        raise ValueError(f"widths must be a list of positive integers, got {p['widths']!r}")
    if not 0.0 <= p["dropout"] < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {p['dropout']!r}")
    if p["n_train"] is not None and (not isinstance(p["n_train"], int) or p["n_train"] < 1):
        raise ValueError(f"n_train must be a positive integer or null, got {p['n_train']!r}")
    if not isinstance(p["checkpoint_every"], int) or p["checkpoint_every"] < 0:
        raise ValueError(f"checkpoint_every must be an integer >= 0, got {p['checkpoint_every']!r}")
    if not all(isinstance(m, int) and m > 0 for m in p["lr_milestones"]):
        raise ValueError(f"lr_milestones must be a list of positive epochs, got {p['lr_milestones']!r}")


# ---------------------------------------------------------------------- data ---
@dataclass
class Data:
    """What a trainer needs, as numpy: images NHWC (or flat rows), labels as ints."""
    x_source: np.ndarray          # what training batches are cut from (uncropped when augmenting)
    x_train: np.ndarray           # the training set as evaluated (center-cropped)
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    n_classes: int
    input_shape: tuple            # one example as the network sees it
    augment: Augment | None
    transform: Callable | None = None   # the preprocessing, for augmented batches (x_source is raw then)
    corrupted: np.ndarray | None = None  # rows of y_train a label corruption changed (None: no label corruption)


def prepare_data(p: dict, seed: int) -> Data:
    corrupt_seed = seed if p["corrupt_seed"] is None else p["corrupt_seed"]
    train = _load(p["dataset"], p["split"], p["corruption"], p["corrupt_prob"], corrupt_seed)
    test = None
    if p["split"] == "train":
        test_corruption = "none" if p["corruption"] in LABEL_CORRUPTIONS else p["corruption"]
        test = _load(p["dataset"], "test", test_corruption, p["corrupt_prob"], corrupt_seed)
    keep = subset(len(train.y), p["n_train"], seed)
    shape = train.image_shape
    if shape is None and (p["crop"] is not None or p["augment"]):
        raise ValueError(f"crop and augment need an image dataset; '{p['dataset']}' has flat examples")

    def images(ds, rows=slice(None)):
        x = np.asarray(ds.X[rows], dtype=np.float32)
        return x.reshape(len(x), *shape) if shape else x

    x_source = images(train, keep)
    x_train = center_crop(x_source, p["crop"]) if shape else x_source
    x_test = None
    if test is not None:
        x_test = center_crop(images(test), p["crop"]) if shape else images(test)
    # Fitted on the training set as evaluated; applied to what the network sees (after cropping).
    pre = Preprocess.fit(p["preprocess"], x_train, images=shape is not None)
    if message := pre.warning(p["dataset"]):
        warnings.warn(message, stacklevel=3)
    augment = Augment.for_images(shape, p["crop"], flip=p["augment"] is True) if p["augment"] else None
    x_train = pre.transform(x_train)
    x_test = None if x_test is None else pre.transform(x_test)
    return Data(x_source if augment else x_train, x_train, np.asarray(train.y[keep], dtype=np.int64),
                x_test, None if test is None else np.asarray(test.y, dtype=np.int64),
                max(train.n_classes, int(train.y.max()) + 1), x_train.shape[1:], augment,
                pre.transform if augment else None,
                None if train.corrupted is None else np.asarray(train.corrupted[keep], dtype=bool))


def _load(name: str, split: str, corruption: str, prob: float, seed: int):
    if corruption == "none":   # one cached clean copy, whatever the grid's corrupt_prob and seed
        prob, seed = 0.0, 0
    return load_dataset(name, split=split, corruption=corruption, corrupt_prob=prob, corrupt_seed=seed)


def network_input(x: np.ndarray, convolutional: bool, channels_first: bool) -> np.ndarray:
    """Images for a CNN (NCHW for torch, NHWC for flax), flat rows for an MLP."""
    if not convolutional:
        return np.ascontiguousarray(x.reshape(len(x), -1))
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if channels_first else x)


# ------------------------------------------------------------------ trainers ---
def epoch_lr(p: dict, epoch: int) -> float:
    return lr_at(epoch, p["lr"], p["lr_decay"], p["lr_milestones"], p["lr_gamma"])


def metrics(train: dict, test: dict, data: Data, lr: float) -> dict:
    """One evaluation's row of the series.  Under a label corruption the training set's predictions
    (from the pass that gave train_acc) split its accuracy into the clean and the corrupted rows;
    without one there is no split, and no columns for it."""
    return {"train_loss": train["loss"], "train_acc": train["acc"],
            **_noisy.split_accuracy(train.get("pred"), data.y_train, data.corrupted),
            "test_loss": test["loss"], "test_acc": test["acc"], "learning_rate": lr}


class TorchTrainer:
    def __init__(self, p, layers, init, data: Data, seed: int):
        import torch

        from memlab.models.torch_models import TorchNet
        from memlab.trials import _torch
        self.torch, self._torch = torch, _torch
        self.p, self.data, self.seed = p, data, seed
        self.dev = _torch.setup(p["device"], seed)
        self.device_name = str(self.dev)
        self.conv = is_convolutional(layers)
        self.net = TorchNet(layers, init, data.input_shape).to(self.dev)
        params = (self.net.parameters() if p["weight_decay_scope"] == "all"
                  else _torch.decay_groups(self.net, p["weight_decay"]))
        self.opt = _torch.optimizer(params, p["optimizer"], p["lr"], p["momentum"], p["weight_decay"])
        self.lr = p["lr"]
        self.x_source = self._tensor(data.x_source)
        self.x_train = self.x_source if data.x_train is data.x_source else self._tensor(data.x_train)
        self.y_train = self._labels(data.y_train)
        self.x_test = None if data.x_test is None else self._tensor(data.x_test)
        self.y_test = None if data.y_test is None else self._labels(data.y_test)

    def _tensor(self, x):
        return self.torch.from_numpy(network_input(x, self.conv, channels_first=True)).to(self.dev)

    def _labels(self, y):
        return self.torch.from_numpy(y).to(self.dev)

    def batches(self, epoch: int):
        torch, d = self.torch, self.data
        if d.augment is None:       # the epoch's order goes to the device once, not one copy per step
            order = torch.from_numpy(epoch_order(len(d.y_train), self.seed, epoch)).to(self.dev)
            for s in batch_slices(len(d.y_train), self.p["batch_size"]):
                idx = order[s]
                yield self.x_source[idx], self.y_train[idx]
            return
        for idx, augmented in epoch_batches(len(d.y_train), self.p["batch_size"], self.seed, epoch,
                                            d.augment, d.x_source, d.transform):
            idx = torch.from_numpy(idx).to(self.dev)
            x = self.x_source[idx] if augmented is None else self._tensor(augmented)
            yield x, self.y_train[idx]

    def train_epoch(self, epoch: int) -> None:
        self.lr = epoch_lr(self.p, epoch)
        self._torch.set_lr(self.opt, self.lr)
        self._torch.train_epoch(self.net, self.opt, self.batches(epoch), self.torch.nn.functional.cross_entropy)

    def evaluate(self) -> dict:
        train = self._torch.evaluate(self.net, self.x_train, self.y_train, predict=self.data.corrupted is not None)
        test = {"loss": None, "acc": None}
        if self.x_test is not None:
            test = self._torch.evaluate(self.net, self.x_test, self.y_test)
        return metrics(train, test, self.data, self.lr)

    def canonical_params(self) -> dict:
        return self.net.canonical_params()

    def set_canonical_params(self, params: dict) -> None:
        """Overwrite the network's weights in place (the optimizer's state stays: for evaluation)."""
        self.net.load_canonical(params)

    def state_arrays(self):
        return self._torch.state_arrays(self.net, self.opt)

    def load_state_arrays(self, arrays) -> None:
        self._torch.load_state_arrays(self.net, self.opt, arrays)


class JaxTrainer:
    def __init__(self, p, layers, init, data: Data, seed: int):
        import jax

        from memlab.models.jax_models import flax_variables
        from memlab.trials import _jax
        self.jax, self._jax = jax, _jax
        self.p, self.data, self.seed = p, data, seed
        self.dev = _jax.device(p["device"])
        self.device_name = f"{self.dev.platform}:{self.dev.id}"
        self.conv = is_convolutional(layers)
        variables = flax_variables(init)
        tx, self.step, self._evaluate = _jax_functions(layers, p["optimizer"], p["momentum"], p["weight_decay"],
                                                       p["weight_decay_scope"] == "kernels", self.dev)
        self.lr = p["lr"]
        self.state = jax.device_put((variables["params"], variables["batch_stats"],
                                     tx.init(variables["params"])), self.dev)
        self.key = jax.random.PRNGKey(seed % 2**32)
        self.x_source = self._array(data.x_source)
        self.x_train = self.x_source if data.x_train is data.x_source else self._array(data.x_train)
        self.y_train = self._labels(data.y_train)
        self.x_test = None if data.x_test is None else self._array(data.x_test)
        self.y_test = None if data.y_test is None else self._labels(data.y_test)
        self.steps_per_epoch = len(batch_slices(len(data.y_train), p["batch_size"]))
        # One evaluation batch shape for the training and the test set: one compilation.
        self.eval_batch = min(1024, max(len(data.y_train), 0 if data.y_test is None else len(data.y_test)))

    def _array(self, x):
        return self.jax.device_put(network_input(x, self.conv, channels_first=False), self.dev)

    def _labels(self, y):
        return self.jax.device_put(y.astype(np.int32), self.dev)

    def train_epoch(self, epoch: int) -> None:
        d = self.data
        self.lr = epoch_lr(self.p, epoch)
        self._jax.set_lr(self.state[2], self.lr)
        first = (epoch - 1) * self.steps_per_epoch
        for i, (idx, augmented) in enumerate(epoch_batches(len(d.y_train), self.p["batch_size"], self.seed,
                                                           epoch, d.augment, d.x_source, d.transform)):
            if augmented is None:
                x, y = self.x_source, self.y_train
            else:   # the step indexes its inputs: give it the batch and positions 0..b-1
                x, y = self._array(augmented), self._labels(d.y_train[idx])
                idx = np.arange(len(idx))
            self.state, _ = self.step(self.state, x, y, idx.astype(np.int32), self.key, first + i)
        self.jax.block_until_ready(self.state)   # dispatch is asynchronous: time the work, not the queueing

    def evaluate(self) -> dict:
        train = self._evaluate(self.state, self.x_train, self.y_train, self.eval_batch,
                               predict=self.data.corrupted is not None)
        test = {"loss": None, "acc": None}
        if self.x_test is not None:
            test = self._evaluate(self.state, self.x_test, self.y_test, self.eval_batch)
        return metrics(train, test, self.data, self.lr)

    def canonical_params(self) -> dict:
        from memlab.models.jax_models import canonical_params
        return canonical_params({"params": self.state[0], "batch_stats": self.state[1]})

    def set_canonical_params(self, params: dict) -> None:
        """Replace the network's weights (the optimizer state stays: for evaluation only)."""
        from memlab.models.jax_models import flax_variables
        v = flax_variables(params)
        self.state = self.jax.device_put((v["params"], v["batch_stats"], self.state[2]), self.dev)

    def state_arrays(self):
        return self._jax.state_arrays(self.state)

    def load_state_arrays(self, arrays) -> None:
        self.state = self._jax.load_state_arrays(self.state, arrays, self.dev)


@functools.lru_cache(maxsize=8)
def _jax_functions(layers, optimizer, momentum, weight_decay, kernels_only, dev):
    """Optimizer, jit-compiled step and evaluation for one network, kept per worker process, so
    the trials of a grid that differ in seed, data or learning rate compile once (the learning
    rate lives in the optimizer state)."""
    from memlab.models.jax_models import FlaxNet
    from memlab.trials import _jax
    net = FlaxNet(layers)
    tx = _jax.optimizer(optimizer, 0.0, momentum, weight_decay, kernels_only)
    return tx, _jax.make_train_step(net, tx, _jax.cross_entropy, dev), _jax.make_evaluate(net)


# --------------------------------------------------------------- snapshots ---
class Snapshots:
    """A trainer that also keeps the weights (canonical layout) at initialization, after every
    `every` epochs and at the end: the KTH practical's checkpoints, kept in memory and returned as
    artifacts.  They travel inside the resume checkpoint (memlab.trials._train.Checkpoint), so an
    interrupted trial resumes with them."""

    PREFIX = "snapshot."

    def __init__(self, trainer, every: int):
        self.trainer, self.every = trainer, every
        self.device_name = trainer.device_name
        self.snaps = {0: trainer.canonical_params()}

    def train_epoch(self, epoch: int) -> None:
        self.trainer.train_epoch(epoch)
        if epoch % self.every == 0:
            self.snaps[epoch] = self.trainer.canonical_params()

    def evaluate(self) -> dict:
        return self.trainer.evaluate()

    def canonical_params(self) -> dict:
        return self.trainer.canonical_params()

    def finish(self, epoch: int) -> dict:
        """{epoch: weights} with the final state under the last epoch trained."""
        self.snaps[epoch] = self.trainer.canonical_params()
        return dict(sorted(self.snaps.items()))

    def state_arrays(self):
        own = {self.PREFIX + k: v for k, v in snapshot_artifacts(self.snaps).items()}
        return {**self.trainer.state_arrays(), **own}

    def load_state_arrays(self, arrays) -> None:
        n = len(self.PREFIX)
        self.snaps = snapshots_from_artifacts({k[n:]: v for k, v in arrays.items() if k.startswith(self.PREFIX)})
        self.trainer.load_state_arrays({k: v for k, v in arrays.items() if not k.startswith(self.PREFIX)})


def snapshot_artifacts(snaps: dict) -> dict:
    """{epoch: {layer: {array: a}}} -> flat artifact names "epoch0010.s1b1_conv1.w"."""
    return {f"epoch{epoch:04d}.{layer}.{name}": a for epoch, params in snaps.items()
            for layer, arrays in params.items() for name, a in arrays.items()}


def snapshots_from_artifacts(arrays: dict) -> dict:
    """The inverse of snapshot_artifacts (other artifact names are ignored)."""
    snaps: dict = {}
    for key, a in arrays.items():
        if key.startswith("epoch") and key.count(".") == 2:
            epoch, layer, name = key.split(".")
            snaps.setdefault(int(epoch[5:]), {}).setdefault(layer, {})[name] = np.asarray(a)
    return dict(sorted(snaps.items()))


# ------------------------------------------------------------------- results ---
def summarize(history, data: Data, p: dict, *, n_params: int, seconds: float, device: str) -> dict:
    s, last = history.series, history.last
    fit = next((i for i, acc in enumerate(s["train_acc"]) if acc >= 1.0), None)
    steps_per_epoch = len(batch_slices(len(data.y_train), p["batch_size"]))
    trained = (history.epochs - history.resumed_from) * len(data.y_train)
    split = {}
    if data.corrupted is not None:
        split = {"train_acc_clean": last["train_acc_clean"], "train_acc_corrupted": last["train_acc_corrupted"],
                 "frac_corrupted": float(data.corrupted.mean()) if data.corrupted.size else float("nan")}
    return {
        "train_acc": last["train_acc"], "train_loss": last["train_loss"], **split,
        "test_acc": last["test_acc"], "test_loss": last["test_loss"],
        "test_error": None if last["test_acc"] is None else 1.0 - last["test_acc"],
        "epochs_to_fit": None if fit is None else s["epoch"][fit],
        "steps_to_fit": None if fit is None else s["epoch"][fit] * steps_per_epoch,
        "seconds_to_fit": None if fit is None else s["seconds"][fit],
        "epochs_run": history.epochs, "n_train_used": len(data.y_train), "n_params": n_params,
        "train_seconds": history.train_seconds, "seconds": seconds,
        "examples_per_s": trained / max(history.train_seconds - history.resumed_seconds, 1e-9),
        "resumed_from": history.resumed_from, "device_used": device,
        "series": dict(s),
    }
