"""The architectures of memlab.models.architectures as plain PyTorch modules.

    net = TorchNet(layers, init_params(layers, shape, rng))     # images go in as NCHW

Weights come in the canonical (flax) layout and are converted once: dense (in, out) -> torch's
(out, in), conv (kh, kw, in, out) -> (out, in, kh, kw).  Flattening permutes NCHW to NHWC first,
so a dense layer after convolutions reads features in the same order as in JAX.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from memlab.models.architectures import Layer, output_shape


class TorchNet(nn.Module):
    def __init__(self, layers: tuple, params: dict, input_shape: tuple):
        super().__init__()
        self.layers = layers
        self.mods = nn.ModuleDict()
        self._make(layers, tuple(input_shape), params)

    def _make(self, layers, shape, params):
        for layer in layers:
            p = params.get(layer.name)
            if layer.kind == "dense":
                m = nn.Linear(*p["w"].shape)
                _set(m.weight, p["w"].T)
                _set(m.bias, p["b"])
            elif layer.kind == "conv":
                c, k, stride, pad = layer.args
                m = nn.Conv2d(shape[-1], c, k, stride=stride, padding=pad)
                _set(m.weight, p["w"].transpose(3, 2, 0, 1))
                _set(m.bias, p["b"])
            elif layer.kind == "bn":
                # Momentum 0.1 here is flax's 0.9: running = 0.9 * running + 0.1 * batch.
                m = (nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d)(shape[-1], eps=1e-5, momentum=0.1)
                for attr, key in (("weight", "scale"), ("bias", "bias"), ("running_mean", "mean"),
                                  ("running_var", "var")):
                    _set(getattr(m, attr), p[key])
            elif layer.kind in ("concat", "residual"):
                for branch in layer.args:
                    self._make(branch, shape, params)
                m = None
            else:
                m = None
            if m is not None:
                self.mods[layer.name] = m
            shape = output_shape(layer, shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(self.layers, x)

    def _run(self, layers: tuple, x: torch.Tensor) -> torch.Tensor:
        for layer in layers:
            x = self._step(layer, x)
        return x

    def _step(self, layer: Layer, x: torch.Tensor) -> torch.Tensor:
        kind, args = layer.kind, layer.args
        if kind in ("dense", "conv", "bn"):
            return self.mods[layer.name](x)
        if kind == "act":
            return torch.relu(x) if args[0] == "relu" else torch.tanh(x)
        if kind == "maxpool":
            k, stride, ((top, bottom), (left, right)) = args
            if top or bottom or left or right:   # TF-style 'SAME': pad with -inf, unevenly
                x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
            return F.max_pool2d(x, k, stride)
        if kind == "avgpool":
            return x.mean(dim=(2, 3))
        if kind == "flatten":
            return x.permute(0, 2, 3, 1).flatten(1) if x.dim() == 4 else x.flatten(1)
        if kind == "dropout":
            return F.dropout(x, args[0], self.training)
        if kind == "lrn":
            return local_response_norm(x, *args)
        if kind == "concat":
            return torch.cat([self._run(branch, x) for branch in args], dim=1)
        if kind == "residual":
            body, shortcut = args
            return self._run(body, x) + self._run(shortcut, x)
        raise ValueError(f"unknown layer kind '{kind}'")

    def load_canonical(self, params: dict) -> None:
        """Copy weights in the canonical layout into this network, in place (the inverse of
        canonical_params; every layer of `params` must exist here with the same shapes)."""
        for name, p in params.items():
            m = self.mods[name]
            if isinstance(m, nn.Linear):
                _set(m.weight, p["w"].T)
                _set(m.bias, p["b"])
            elif isinstance(m, nn.Conv2d):
                _set(m.weight, p["w"].transpose(3, 2, 0, 1))
                _set(m.bias, p["b"])
            else:
                for attr, key in (("weight", "scale"), ("bias", "bias"), ("running_mean", "mean"),
                                  ("running_var", "var")):
                    _set(getattr(m, attr), p[key])

    def canonical_params(self) -> dict:
        """The weights back in the canonical layout of architectures.init_params (numpy)."""
        out = {}
        for name, m in self.mods.items():
            if isinstance(m, nn.Linear):
                out[name] = {"w": _np(m.weight).T, "b": _np(m.bias)}
            elif isinstance(m, nn.Conv2d):
                out[name] = {"w": _np(m.weight).transpose(2, 3, 1, 0), "b": _np(m.bias)}
            else:
                out[name] = {"scale": _np(m.weight), "bias": _np(m.bias), "mean": _np(m.running_mean),
                             "var": _np(m.running_var)}
        return out


def local_response_norm(x: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """F.local_response_norm over NCHW channels, as shifted sums: its avg_pool3d has a
    nondeterministic CUDA backward, and same seed + same GPU must give the same result."""
    sq = F.pad(x * x, (0, 0, 0, 0, size // 2, (size - 1) // 2))
    window = sum(sq[:, i:i + x.shape[1]] for i in range(size))
    return x / (k + alpha / size * window) ** beta


def _set(tensor: torch.Tensor, value: np.ndarray) -> None:
    with torch.no_grad():
        tensor.copy_(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()
