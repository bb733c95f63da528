"""Training machinery shared by the trials that train networks (sgd, autoencoder, sparse, ...).

    python run.py --name random_labels      # the sgd trial trains through run_epochs

Framework-free parts live here: the data order (numpy, from the trial's seed, so PyTorch and
JAX see the same batches), augmentation, the learning-rate schedule, the epoch loop with its
per-epoch series, and opt-in checkpoints.  memlab.trials._torch and memlab.trials._jax hold
each framework's optimizer, training epoch and evaluation.

A trainer is any object with four methods (see `Trainer`); `run_epochs` drives it.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from memlab import io

# Independent numpy streams of one trial seed: each purpose and each epoch its own, so a resumed
# trial draws epoch 7's batches without replaying epochs 1-6.
INIT, SUBSET, ORDER, AUGMENT = 0, 1, 2, 3


def rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *stream])


# --------------------------------------------------------------------- data ---
def subset(n: int, n_train: int | None, seed: int) -> np.ndarray:
    """Indices of a seeded random subset of n_train of n examples (all of them for None)."""
    if n_train is None or n_train >= n:
        return np.arange(n)
    return np.sort(rng(seed, SUBSET).choice(n, int(n_train), replace=False))


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order examples are visited in during `epoch` (1-based)."""
    return rng(seed, ORDER, epoch).permutation(n)


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """Consecutive batches over n positions; the last one may be smaller (no example dropped)."""
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def center_crop(images: np.ndarray, size: int | None) -> np.ndarray:
    """The central size x size window of NHWC images (unchanged for None)."""
    if size is None:
        return images
    h, w = images.shape[1:3]
    if size > min(h, w):
        raise ValueError(f"crop {size} is larger than the images ({h}x{w})")
    top, left = (h - size) // 2, (w - size) // 2
    return images[:, top:top + size, left:left + size]


@dataclass
class Augment:
    """Random crops and horizontal flips (Zhang et al.'s "random crop" augmentation).

    With `size` smaller than the images, a training example is a random size x size window of
    it (test images take the central one: center_crop).  Otherwise the image is zero-padded by
    `pad` pixels on each side and a window of its own size is cut at a random position.
    Offsets and flips come from the trial's seed, per epoch, the same for both frameworks.
    `flip=False` keeps the crops and leaves out the flips (digits, where a mirror image can be
    another class), drawing the same offsets.
    """
    size: int
    pad: int = 0
    flip: bool = True

    @classmethod
    def for_images(cls, shape: tuple, crop: int | None, flip: bool = True) -> Augment:
        h = shape[0]
        if crop is not None and crop < h:
            return cls(size=crop, pad=0, flip=flip)
        return cls(size=h, pad=max(1, h // 8), flip=flip)     # 4 pixels on 32x32 images, 1 on 8x8

    def draw(self, images_shape: tuple, seed: int, epoch: int) -> dict:
        """This epoch's offsets and flips, one per position of the epoch's order."""
        n, h, w = images_shape[:3]
        r = rng(seed, AUGMENT, epoch)
        return {"top": r.integers(0, h + 2 * self.pad - self.size + 1, n),
                "left": r.integers(0, w + 2 * self.pad - self.size + 1, n),
                "flip": r.random(n) < 0.5}

    def apply(self, images: np.ndarray, draws: dict, where: slice) -> np.ndarray:
        """Augmented copies of NHWC `images` (already in epoch order: one batch)."""
        if self.pad:
            p = self.pad
            images = np.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))
        rows = draws["top"][where, None] + np.arange(self.size)
        cols = draws["left"][where, None] + np.arange(self.size)
        if self.flip:
            cols = np.where(draws["flip"][where, None], cols[:, ::-1], cols)
        idx = np.arange(len(images))[:, None, None]
        return np.ascontiguousarray(images[idx, rows[:, :, None], cols[:, None, :]])


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, augment: Augment | None = None,
                  images: np.ndarray | None = None, transform: Callable | None = None):
    """Yield (indices, augmented images or None) for each batch of `epoch`.

    Without augmentation a trainer indexes its own copy of the data (on its device) with the
    indices; with it, the batch's images come cropped and flipped from `images` (NHWC, numpy),
    then go through `transform` (the input preprocessing, applied to what the network sees).
    """
    order = epoch_order(n, seed, epoch)
    draws = augment.draw((n, *images.shape[1:]), seed, epoch) if augment else None
    for s in batch_slices(n, batch_size):
        idx = order[s]
        if not augment:
            yield idx, None
            continue
        batch = augment.apply(images[idx], draws, s)
        yield idx, (transform(batch) if transform else batch)


def lr_at(epoch: int, lr: float, lr_decay: float, milestones=(), gamma: float = 1.0) -> float:
    """The learning rate of `epoch` (1-based): lr * lr_decay ** (epoch - 1), as in Zhang et al.,
    times gamma for each milestone already passed (piecewise constant, as torch's MultiStepLR
    stepped per epoch: milestones [30, 60] -> epochs 1-30 at lr, 31-60 at lr * gamma, ...)."""
    passed = sum(1 for m in milestones if epoch > m)
    return float(lr * lr_decay ** (epoch - 1) * gamma ** passed)


# ------------------------------------------------------------------ threads ---
THREADS_ENV = "MEMLAB_THREADS"
# XLA's CPU backend has no thread-count flag; this one makes its matrix kernels single-threaded.
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false"


def cpu_threads() -> int:
    """The CPU threads this process may use: $MEMLAB_THREADS (the worker pool sets it to
    cores // workers in every worker), else $OMP_NUM_THREADS (cluster jobs set it), else the
    cores the process may run on (its affinity, which schedulers restrict)."""
    for var in (THREADS_ENV, "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0))


def set_threads(framework: str) -> int:
    """Give a framework cpu_threads() threads, so that N workers x threads <= cores (on 2 cores,
    a torch trial inside a 2-worker grid whose workers took every core trained at 11k
    examples/s, against 40k alone: their OpenMP threads spin while waiting for each other).

    torch: intra-op threads (every call) and inter-op threads (once per process: torch allows
    it only before its first parallel work).  jax: with one thread, XLA_FLAGS gets
    XLA_ONE_THREAD; that counts only before JAX starts its CPU backend, so memlab.trials._jax
    calls this when it is imported.  XLA has no flag for a count above one: it then keeps
    its own pool.
    """
    n = cpu_threads()
    if framework == "torch":
        import torch
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
        if torch.get_num_interop_threads() != n:
            try:
                torch.set_num_interop_threads(n)
            except RuntimeError:    # already set, or parallel work already ran: keep what is there
                pass
    elif framework == "jax":
        flags = os.environ.get("XLA_FLAGS", "")
        if n == 1 and "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} {XLA_ONE_THREAD}".strip()
    else:
        raise ValueError(f"unknown framework '{framework}' (torch, jax)")
    return n


# --------------------------------------------------------------- checkpoints ---
CHECKPOINT_ENV = "MEMLAB_CHECKPOINT_DIR"
CHECKPOINT_SECONDS_ENV = "MEMLAB_CHECKPOINT_SECONDS"
CODE_ENV = "MEMLAB_TRIAL_CODE"      # the trial code's fingerprint, set by the worker


class Checkpoint:
    """A trial's state between epochs in DIR/KEY.npz: the one file I/O a trial may do, opt-in.

    Set $MEMLAB_CHECKPOINT_DIR (the worker may point it at results/NAME/checkpoints/) and a trial
    with a `_key` saves its state after an epoch when $MEMLAB_CHECKPOINT_SECONDS (default 60)
    have passed since the last save, atomically (memlab.io), and removes the file when it
    finishes.  A rerun of the interrupted trial resumes after the last saved epoch, unless the
    trial's code changed since ($MEMLAB_TRIAL_CODE, the fingerprint the worker records with
    results): then it starts over.  The file is an npz of plain arrays plus a JSON `__meta__`: no pickle is loaded.
    """

    def __init__(self, path: Path, key: str, every_s: float = 60.0, code: str = ""):
        self.path, self.key, self.every_s, self.code = Path(path), key, every_s, code
        self._last = time.monotonic()

    @classmethod
    def from_env(cls, key: str | None) -> Checkpoint | None:
        folder = os.environ.get(CHECKPOINT_ENV)
        if not folder or not key:
            return None
        every = float(os.environ.get(CHECKPOINT_SECONDS_ENV, "60"))
        return cls(Path(folder) / f"{key}.npz", key, every, os.environ.get(CODE_ENV, ""))

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every_s

    def save(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        with io.atomic_path(self.path, suffix=".npz") as tmp:
            np.savez(tmp, __meta__=np.array(json.dumps({**meta, "key": self.key, "code": self.code})), **arrays)
        self._last = time.monotonic()

    def load(self) -> tuple[dict, dict] | None:
        """(arrays, meta) of the saved state, or None when there is none (or it is unusable)."""
        if not self.path.exists():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as f:
                meta = json.loads(str(f["__meta__"][()]))
                arrays = {k: f[k] for k in f.files if k != "__meta__"}
        except Exception as e:   # a checkpoint is a shortcut: when unreadable, start over
            warnings.warn(f"ignoring unreadable checkpoint {self.path}: {e}", stacklevel=2)
            return None
        if meta.get("key") != self.key:
            warnings.warn(f"ignoring checkpoint {self.path}: written for another trial", stacklevel=2)
            return None
        if meta.get("code", "") != self.code:
            warnings.warn(f"ignoring checkpoint {self.path}: written by other code of the trial "
                          f"({meta.get('code') or 'unknown'}, now {self.code or 'unknown'}); starting over", stacklevel=2)
            return None
        return arrays, meta

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


# --------------------------------------------------------------- epoch loop ---
class Trainer(Protocol):
    def train_epoch(self, epoch: int) -> None: ...          # one pass over the training data
    def evaluate(self) -> dict[str, float]: ...             # metrics after it, e.g. train_acc
    def state_arrays(self) -> dict[str, np.ndarray]: ...    # everything a resume needs
    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None: ...


@dataclass
class History:
    series: dict[str, list] = field(default_factory=dict)   # "epoch", the metrics, "seconds"
    epochs: int = 0               # epochs trained, resumed ones included
    train_seconds: float = 0.0    # time in train_epoch, resumed runs' included
    resumed_from: int = 0         # the epoch a checkpoint restored (0: started fresh)
    resumed_seconds: float = 0.0  # train_seconds the checkpoint brought along

    def append(self, row: dict) -> None:
        for k, v in row.items():
            self.series.setdefault(k, []).append(v)

    @property
    def last(self) -> dict:
        return {k: v[-1] for k, v in self.series.items()}


def run_epochs(trainer: Trainer, *, epochs: int, eval_every: int = 1,
               stop: Callable[[dict], bool] | None = None, checkpoint: Checkpoint | None = None,
               on_epoch: Callable[[int, History], None] | None = None) -> History:
    """Train for `epochs`, evaluating every `eval_every` epochs and after the last one.

    `stop(metrics)` ends training early after an evaluation (e.g. at 100 % training accuracy).
    `on_epoch(epoch, history)` runs after each epoch's checkpoint (tests interrupt from it).
    The last entry of the series is always the final state.
    """
    history = History()
    if checkpoint and (saved := checkpoint.load()):
        arrays, meta = saved
        trainer.load_state_arrays(arrays)
        history = History(meta["series"], meta["epoch"], meta["train_seconds"], meta["epoch"],
                          meta["train_seconds"])
    for epoch in range(history.epochs + 1, epochs + 1):
        t0 = time.perf_counter()
        trainer.train_epoch(epoch)
        history.train_seconds += time.perf_counter() - t0
        history.epochs = epoch
        done = epoch == epochs
        if done or (eval_every > 0 and epoch % eval_every == 0):
            metrics = trainer.evaluate()
            history.append({"epoch": epoch, **metrics, "seconds": round(history.train_seconds, 6)})
            done = done or bool(stop and stop(metrics))
        if checkpoint and not done and checkpoint.due():
            checkpoint.save(trainer.state_arrays(), {"epoch": epoch, "series": history.series,
                                                     "train_seconds": history.train_seconds})
        if on_epoch:
            on_epoch(epoch, history)
        if done:
            break
    if checkpoint:
        checkpoint.remove()
    return history
