"""Sharpness and sensitivity of a trained classifier (Ye et al. 2022, "The price of sparsity", Table 2).

    python run.py --name sparsity_regimes      # the sparse trial measures these at the end

    prediction_entropy   mean entropy (nats) of the softmax prediction over the points
    fisher_trace         trace of the Fisher information, E_x E_{y ~ p(y|x)} ||grad_theta log p(y|x)||^2,
                         Monte Carlo over labels drawn from the model (fisher_trace_exact sums over
                         every label instead)
    hessian_trace        trace of the Hessian of the mean cross-entropy on (X, y), Hutchinson's method:
                         E_v[v^T H v] with Rademacher probes v (hessian_trace_exact: sum_i e_i^T H e_i)
    jacobian_norm        mean over the points of the Frobenius norm of the input-output Jacobian
                         d f(x) / d x, f the softmax probabilities (Novak et al. 2018) or the logits

Everything runs in eval mode (batch norm on its running statistics; the mode is restored) and is
taken with respect to `params`, a list of the model's parameter tensors; `masks` (one per
parameter, or None) restricts it to the free coordinates of a pruned network: gradients and
probes are multiplied by the mask, so the traces are over the weights that exist.
Estimators return (estimate, standard error of the estimate).
"""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap


@contextlib.contextmanager
def eval_mode(model):
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


def _chunks(n: int, size: int):
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _masked(tensors, masks):
    return [t if m is None else t * m for t, m in zip(tensors, masks or [None] * len(tensors))]


# --------------------------------------------------------------- entropy ---
@torch.no_grad()
def prediction_entropy(model, X, batch_size: int = 1024) -> float:
    """Mean entropy (nats) of the softmax predictions on X."""
    with eval_mode(model):
        total = 0.0
        for s in _chunks(len(X), batch_size):
            logp = F.log_softmax(model(X[s]), dim=1)
            total += float(-(logp.exp() * logp).sum())
    return total / max(len(X), 1)


# ---------------------------------------------------------------- Fisher ---
def _per_example_sq_grad(model, params, masks, X, Y, chunk: int) -> torch.Tensor:
    """||mask * grad_theta log p(Y_i | X_i)||^2 for each row i (vmap over examples)."""
    named = dict(model.named_parameters())
    ids = {id(p) for p in params}
    fixed = {k: v.detach() for k, v in named.items() if id(v) not in ids}
    names = [k for k, v in named.items() if id(v) in ids]
    by_id = {id(v): k for k, v in named.items()}
    order = [by_id[id(p)] for p in params]
    buffers = dict(model.named_buffers())

    def logp(theta, x, y):
        out = functional_call(model, ({**fixed, **theta}, buffers), (x[None],))
        return F.log_softmax(out, dim=1)[0].gather(0, y.unsqueeze(0)).squeeze(0)

    theta = {k: named[k].detach() for k in names}
    g = vmap(grad(logp), in_dims=(None, 0, 0), chunk_size=chunk)(theta, X, Y)
    sq = torch.zeros(len(X), device=X.device)
    for k, m in zip(order, masks or [None] * len(order)):
        gk = g[k] if m is None else g[k] * m
        sq += gk.pow(2).flatten(1).sum(1)
    return sq


def fisher_trace(model, X, params, masks=None, *, n_samples: int = 1, generator=None,
                 batch_size: int = 128) -> tuple[float, float]:
    """Monte Carlo: n_samples labels per point drawn from the model's own predictive distribution."""
    vals = []
    with eval_mode(model):
        for s in _chunks(len(X), max(1, batch_size // n_samples)):
            x = X[s]
            with torch.no_grad():
                probs = F.softmax(model(x), dim=1).cpu()
            ys = torch.multinomial(probs, n_samples, replacement=True, generator=generator).to(X.device)
            vals.append(_per_example_sq_grad(model, params, masks, x.repeat_interleave(n_samples, 0),
                                             ys.flatten(), batch_size))
    v = torch.cat(vals).double()
    return float(v.mean()), float(v.std() / math.sqrt(len(v))) if len(v) > 1 else float("nan")


def fisher_trace_exact(model, X, params, masks=None, *, batch_size: int = 128) -> float:
    """The expectation over labels done exactly: sum_y p(y|x) ||grad log p(y|x)||^2, mean over X."""
    total = 0.0
    with eval_mode(model):
        for s in _chunks(len(X), batch_size):
            x = X[s]
            with torch.no_grad():
                probs = F.softmax(model(x), dim=1)
            k = probs.shape[1]
            y = torch.arange(k, device=X.device).repeat(len(x))         # every class for every point
            sq = _per_example_sq_grad(model, params, masks, x.repeat_interleave(k, 0), y, batch_size)
            total += float((probs.flatten() * sq).sum())
    return total / max(len(X), 1)


# --------------------------------------------------------------- Hessian ---
def _loss_grads(model, X, Y, params, batch_size):
    """Per batch: (weight n_b / n, gradient of the batch's mean loss, built with create_graph)."""
    for s in _chunks(len(X), batch_size):
        loss = F.cross_entropy(model(X[s]), Y[s])
        yield (s.stop - s.start) / len(X), torch.autograd.grad(loss, params, create_graph=True)


def hessian_quadratic_forms(model, X, Y, params, vectors: list[list[torch.Tensor]], *,
                            batch_size: int = 256) -> torch.Tensor:
    """v^T H v for each v in `vectors` (each a list shaped like params), H the Hessian of the mean
    cross-entropy over (X, Y); one gradient graph per batch serves every vector."""
    out = torch.zeros(len(vectors), dtype=torch.float64)
    with eval_mode(model):
        for w, g in _loss_grads(model, X, Y, params, batch_size):
            for j, v in enumerate(vectors):
                dot = sum((gi * vi).sum() for gi, vi in zip(g, v))
                hv = torch.autograd.grad(dot, params, retain_graph=True)
                out[j] += w * float(sum((hi * vi).sum() for hi, vi in zip(hv, v)))
    return out


def hessian_trace(model, X, Y, params, masks=None, *, n_probes: int = 10, generator=None,
                  batch_size: int = 256, probe_block: int = 8) -> tuple[float, float]:
    """Hutchinson: mean of v^T H v over n_probes Rademacher vectors (masked to the free weights);
    its standard error from the probes' spread.  Probes go in blocks of probe_block (memory)."""
    forms = []
    for start in range(0, n_probes, probe_block):
        block = []
        for _ in range(min(probe_block, n_probes - start)):
            v = [(torch.randint(0, 2, p.shape, generator=generator) * 2.0 - 1.0).to(p.device, p.dtype)
                 for p in params]
            block.append(_masked(v, masks))
        forms.append(hessian_quadratic_forms(model, X, Y, params, block, batch_size=batch_size))
    f = torch.cat(forms)
    return float(f.mean()), float(f.std() / math.sqrt(len(f))) if len(f) > 1 else float("nan")


def hessian_trace_exact(model, X, Y, params, masks=None, *, batch_size: int = 256) -> float:
    """sum_i e_i^T H e_i over every free coordinate: one Hessian-vector product each (tiny nets only)."""
    units = []
    for k, p in enumerate(params):
        m = None if masks is None or masks[k] is None else masks[k].flatten()
        for i in range(p.numel()):
            if m is not None and m[i] == 0:
                continue
            e = [torch.zeros_like(q) for q in params]
            e[k].view(-1)[i] = 1.0
            units.append(e)
    return float(hessian_quadratic_forms(model, X, Y, params, units, batch_size=batch_size).sum())


# -------------------------------------------------------------- Jacobian ---
def jacobian_norm(model, X, *, output: str = "probs", batch_size: int = 256) -> float:
    """Mean over X of ||d f(x) / d x||_F, exactly: one backward pass per output class.

    In eval mode the rows of a batch do not interact, so the gradient of sum_i f_k(x_i) with
    respect to the batch holds each row's own gradient of f_k."""
    if output not in ("probs", "logits"):
        raise ValueError(f"jacobian output must be 'probs' or 'logits', got {output!r}")
    total = 0.0
    with eval_mode(model):
        for s in _chunks(len(X), batch_size):
            x = X[s].detach().clone().requires_grad_(True)
            out = model(x)
            if output == "probs":
                out = F.softmax(out, dim=1)
            sq = torch.zeros(len(x), device=X.device)
            for c in range(out.shape[1]):
                (gx,) = torch.autograd.grad(out[:, c].sum(), x, retain_graph=c + 1 < out.shape[1])
                sq += gx.pow(2).flatten(1).sum(1)
            total += float(sq.sqrt().sum())
    return total / max(len(X), 1)
