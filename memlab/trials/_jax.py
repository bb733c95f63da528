"""JAX pieces of the training loop: device, optax optimizer, a jit-compiled step, evaluation, state.

    python run.py --name random_labels    # framework "jax" trains through these

The training state is the tuple (params, batch_stats, opt_state).  A step takes the whole
training set (on the device) and the batch's indices, so only the indices cross from the host.
The learning rate lives in the optimizer state (optax.inject_hyperparams): changing it per
epoch does not recompile.
"""
from __future__ import annotations

import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from memlab.trials._train import set_threads

# Before JAX's CPU backend starts (its first use): one XLA thread when the worker may use one.
set_threads("jax")

# Workers may share one GPU: take memory as needed, not 75 % up front.  Read when JAX starts
# its GPU backend (first use), so setting it after the import still counts.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# Same seed, same GPU -> same result: no nondeterministic reductions or autotuned algorithms.
if "xla_gpu_deterministic_ops" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_gpu_deterministic_ops=true").strip()


def device(name: str) -> jax.Device:
    """cpu | cuda | auto (a GPU when JAX has one)."""
    if name in ("cuda", "auto"):
        try:
            return jax.devices("gpu")[0]
        except RuntimeError:
            if name == "cuda":
                raise RuntimeError("device 'cuda' asked for, but JAX sees no GPU (install jax[cuda12] "
                                   "on a GPU machine); use device 'cpu' or 'auto'") from None
    return jax.devices("cpu")[0]


def optimizer(name: str, lr: float, momentum: float, weight_decay: float,
              kernels_only: bool = False) -> optax.GradientTransformation:
    """The same updates as torch.optim.SGD / Adam with their (L2, coupled) weight_decay; with
    `kernels_only` the decay reaches only tensors of ndim > 1 (as _torch.decay_groups)."""
    mask = (lambda params: jax.tree_util.tree_map(lambda a: a.ndim > 1, params)) if kernels_only else None
    def make(learning_rate):
        if name == "sgd":
            step = optax.sgd(learning_rate, momentum=momentum or None)
        elif name == "adam":
            step = optax.adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8)
        else:
            raise ValueError(f"unknown optimizer '{name}' (sgd, adam)")
        return optax.chain(optax.add_decayed_weights(weight_decay, mask), step) if weight_decay else step
    return optax.inject_hyperparams(make)(learning_rate=lr)


def set_lr(opt_state, lr: float):
    opt_state.hyperparams["learning_rate"] = jnp.asarray(lr, dtype=jnp.float32)
    return opt_state


def make_train_step(net, tx: optax.GradientTransformation, loss_fn: Callable, dev: jax.Device):
    """step(state, X, Y, idx, key, step_number) -> (state, loss): one jit-compiled SGD step on X[idx].

    loss_fn(outputs, targets) -> scalar.  Dropout's key is folded from (key, step_number), so a
    resumed run draws the same masks without carrying a generator.
    """
    def step(state, X, Y, idx, key, step_number):
        params, stats, opt_state = state
        x, y = X[idx], Y[idx]

        def objective(params):
            out, updates = net.apply({"params": params, "batch_stats": stats}, x, train=True,
                                     rngs={"dropout": jax.random.fold_in(key, step_number)},
                                     mutable=["batch_stats"])
            return loss_fn(out, y), updates.get("batch_stats", stats)

        (loss, stats), grads = jax.value_and_grad(objective, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), stats, opt_state), loss

    # The old state is dead after a step: let XLA reuse its buffers (CPU ignores donation).
    return jax.jit(step, donate_argnums=(0,) if dev.platform != "cpu" else ())


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def make_evaluate(net):
    """evaluate(state, X, Y, batch_size, predict=False) -> {"loss", "acc"} of a classifier in eval
    mode (with `predict`, also "pred": the predicted classes, numpy, from the same forward pass);
    the last batch is zero-padded to full size and masked, so one compiled shape serves every batch."""
    @jax.jit
    def sums(params, stats, x, y, mask):
        out = net.apply({"params": params, "batch_stats": stats}, x, train=False)
        ce = optax.softmax_cross_entropy_with_integer_labels(out, y)
        pred = out.argmax(-1)
        return (ce * mask).sum(), ((pred == y) * mask).sum(), pred

    def evaluate(state, X, Y, batch_size: int, predict: bool = False) -> dict:
        params, stats, _ = state
        n, bs = len(X), batch_size
        loss = correct = 0.0
        preds = []
        for i in range(0, n, bs):
            x, y = X[i:i + bs], Y[i:i + bs]
            m = len(x)
            mask = jnp.ones(bs, jnp.float32)
            if m < bs:
                pad = bs - m
                mask = mask.at[m:].set(0.0)
                x = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)])
                y = jnp.concatenate([y, jnp.zeros(pad, y.dtype)])
            batch_loss, batch_correct, pred = sums(params, stats, x, y, mask)
            loss, correct = loss + float(batch_loss), correct + float(batch_correct)
            if predict:
                preds.append(np.asarray(pred)[:m])
        result = {"loss": loss / max(n, 1), "acc": correct / max(n, 1)}
        if predict:
            result["pred"] = np.concatenate(preds) if preds else np.zeros(0, np.int64)
        return result
    return evaluate


# -------------------------------------------------------------- checkpoints ---
def state_arrays(state) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_leaves(state)
    return {f"leaf.{i:05d}": np.asarray(leaf) for i, leaf in enumerate(leaves)}


def load_state_arrays(state, arrays: dict[str, np.ndarray], dev: jax.Device):
    """`state` (freshly built, same structure) with its leaves replaced by the saved ones."""
    leaves, treedef = jax.tree_util.tree_flatten(state)
    saved = [arrays[f"leaf.{i:05d}"] for i in range(len(leaves))]
    if len(arrays) != len(leaves) or any(np.shape(a) != np.shape(b) for a, b in zip(saved, leaves, strict=False)):
        raise ValueError("checkpoint does not match this trial's network and optimizer")
    return jax.tree_util.tree_unflatten(treedef, [jax.device_put(jnp.asarray(a), dev) for a in saved])
