"""PyTorch pieces of the training loop: device, optimizer, one epoch, evaluation, state.

    python run.py --name cnn_vs_mlp       # framework "torch" trains through these

Plain PyTorch: the data lives on the device as tensors and a batch is an index into them (or,
with augmentation, a numpy batch copied over); the order comes from memlab.trials._train.
"""
from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from memlab.trials._train import set_threads


def device(name: str) -> torch.device:
    """cpu | cuda | auto (cuda when available)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' asked for, but PyTorch sees no CUDA GPU (this torch build: "
                           f"{torch.__version__}); use device 'cpu' or 'auto'")
    return torch.device(name)


def setup(device_name: str, seed: int) -> torch.device:
    """Threads, determinism and the seed of torch's own generator (it only draws dropout masks)."""
    set_threads("torch")
    dev = device(device_name)
    torch.manual_seed(seed)
    if dev.type == "cuda":
        # Same seed, same GPU -> same result: deterministic cuDNN kernels, no autotuning.
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return dev


def optimizer(params, name: str, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    """sgd (with momentum) or adam; weight decay is an L2 term added to the gradient, as in optax's
    add_decayed_weights before the update."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer '{name}' (sgd, adam)")


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Parameter groups with weight decay on the tensors of ndim > 1 (kernels) only: the gradient
    of 1/2 * wd * sum W^2 over those, as the KTH practical defines its regularizer."""
    params = list(model.parameters())
    return [{"params": [q for q in params if q.dim() > 1], "weight_decay": weight_decay},
            {"params": [q for q in params if q.dim() <= 1], "weight_decay": 0.0}]


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def train_epoch(model: nn.Module, opt: torch.optim.Optimizer, batches: Iterable, loss_fn: Callable) -> float:
    """One pass: for each (inputs, targets) batch, a gradient step on loss_fn(model(inputs), targets).
    Returns the mean batch loss (one device sync per epoch, not per step)."""
    model.train()
    total, count = None, 0
    for xb, yb in batches:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        total = loss.detach() if total is None else total + loss.detach()
        count += 1
    return float(total) / count if count else float("nan")


@torch.inference_mode()
def evaluate(model: nn.Module, X: torch.Tensor, Y: torch.Tensor, batch_size: int = 1024, *,
             predict: bool = False) -> dict:
    """Mean cross-entropy and accuracy of a classifier on (X, Y), in eval mode; with `predict`,
    also "pred", the predicted classes (numpy), from the same forward pass."""
    model.eval()
    loss, correct = torch.zeros((), device=X.device), torch.zeros((), device=X.device, dtype=torch.long)
    preds = []
    for i in range(0, len(X), batch_size):
        out = model(X[i:i + batch_size])
        y = Y[i:i + batch_size]
        loss += nn.functional.cross_entropy(out, y, reduction="sum")
        pred = out.argmax(1)
        correct += (pred == y).sum()
        if predict:
            preds.append(pred)
    n = max(len(X), 1)
    result = {"loss": float(loss) / n, "acc": int(correct) / n}
    if predict:
        result["pred"] = torch.cat(preds).cpu().numpy() if preds else np.zeros(0, np.int64)
    return result


# -------------------------------------------------------------- checkpoints ---
def state_arrays(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, np.ndarray]:
    """Model, optimizer and generator state as flat numpy arrays (memlab.trials._train.Checkpoint)."""
    arrays = {f"model.{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    sd = opt.state_dict()
    for pid, state in sd["state"].items():
        for name, value in state.items():
            arrays[f"opt.{pid}.{name}"] = torch.as_tensor(value).cpu().numpy()
    arrays["opt_groups"] = np.array(json.dumps(sd["param_groups"]))
    arrays["rng.cpu"] = torch.get_rng_state().numpy()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        arrays["rng.cuda"] = torch.cuda.get_rng_state().numpy()
    return arrays


def load_state_arrays(model: nn.Module, opt: torch.optim.Optimizer, arrays: dict[str, np.ndarray]) -> None:
    model.load_state_dict({k[len("model."):]: torch.from_numpy(np.array(v)) for k, v in arrays.items()
                           if k.startswith("model.")})
    state: dict = {}
    for k, v in arrays.items():
        if k.startswith("opt."):
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = torch.from_numpy(np.array(v))
    opt.load_state_dict({"state": state, "param_groups": json.loads(str(arrays["opt_groups"][()]))})
    torch.set_rng_state(torch.from_numpy(np.array(arrays["rng.cpu"])))
    if "rng.cuda" in arrays and torch.cuda.is_available():
        torch.cuda.set_rng_state(torch.from_numpy(np.array(arrays["rng.cuda"])))


@contextlib.contextmanager
def torch_threads(n: int):
    """Run with n intra-op threads, then restore the previous setting: the matrices of the small
    trials are tiny, and on a busy machine torch's thread pool spins (30x slower, measured on 2
    shared cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
