"""The architectures of memlab.models.architectures as a flax.linen module.

    net = FlaxNet(layers)
    variables = flax_variables(init_params(layers, shape, rng))   # no net.init: same weights as torch
    logits = net.apply(variables, x_nhwc, train=False)

Batch norm keeps its running statistics in the "batch_stats" collection (pass
mutable=["batch_stats"] when training); dropout takes the "dropout" rng.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from memlab.models.architectures import Layer


class FlaxNet(nn.Module):
    layers: tuple

    @nn.compact
    def __call__(self, x, train: bool = False):
        def run(layers, x):
            for layer in layers:
                x = step(layer, x)
            return x

        def step(layer: Layer, x):
            kind, args = layer.kind, layer.args
            if kind == "dense":
                return nn.Dense(args[0], name=layer.name)(x)
            if kind == "conv":
                c, k, stride, pad = args
                return nn.Conv(c, (k, k), strides=(stride, stride), padding=((pad, pad), (pad, pad)),
                               name=layer.name)(x)
            if kind == "bn":
                # Same as torch: eps 1e-5, running = 0.9 * running + 0.1 * batch.  (torch's running
                # variance uses the unbiased batch variance, flax the biased one: a factor n / (n - 1).)
                return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                                    name=layer.name)(x)
            if kind == "act":
                return jax.nn.relu(x) if args[0] == "relu" else jnp.tanh(x)
            if kind == "maxpool":
                k, stride, pads = args
                return nn.max_pool(x, (k, k), strides=(stride, stride), padding=pads)
            if kind == "avgpool":
                return x.mean(axis=(1, 2))
            if kind == "flatten":
                return x.reshape(x.shape[0], -1)
            if kind == "dropout":
                return nn.Dropout(args[0], deterministic=not train)(x)
            if kind == "lrn":
                return local_response_norm(x, *args)
            if kind == "concat":
                return jnp.concatenate([run(branch, x) for branch in args], axis=-1)
            if kind == "residual":
                body, shortcut = args
                return run(body, x) + run(shortcut, x)
            raise ValueError(f"unknown layer kind '{kind}'")

        return run(self.layers, x)


def local_response_norm(x, size: int, alpha: float, beta: float, k: float):
    """torch.nn.functional.local_response_norm over the channel axis of NHWC images:
    x / (k + alpha / size * sum of x^2 over `size` neighbouring channels) ** beta."""
    sq = jnp.pad(x * x, ((0, 0), (0, 0), (0, 0), (size // 2, (size - 1) // 2)))
    window = sum(sq[..., i:i + x.shape[-1]] for i in range(size))
    return x / (k + alpha / size * window) ** beta


def flax_variables(params: dict) -> dict:
    """Canonical numpy weights (architectures.init_params) -> flax's {"params", "batch_stats"}."""
    trainable, stats = {}, {}
    for name, p in params.items():
        if "w" in p:
            trainable[name] = {"kernel": jnp.asarray(p["w"]), "bias": jnp.asarray(p["b"])}
        else:
            trainable[name] = {"scale": jnp.asarray(p["scale"]), "bias": jnp.asarray(p["bias"])}
            stats[name] = {"mean": jnp.asarray(p["mean"]), "var": jnp.asarray(p["var"])}
    return {"params": trainable, "batch_stats": stats}


def canonical_params(variables: dict) -> dict:
    """flax variables -> the canonical numpy layout (the inverse of flax_variables)."""
    out = {}
    stats = variables.get("batch_stats", {})
    for name, p in variables["params"].items():
        if "kernel" in p:
            out[name] = {"w": np.asarray(p["kernel"]), "b": np.asarray(p["bias"])}
        else:
            out[name] = {"scale": np.asarray(p["scale"]), "bias": np.asarray(p["bias"]),
                         "mean": np.asarray(stats[name]["mean"]), "var": np.asarray(stats[name]["var"])}
    return out
