"""memlab.trials._curvature against exact values on networks small enough to compute them directly:
the full Hessian (torch.autograd.functional.hessian), per-class gradients for the Fisher, the full
input-output Jacobian; Hutchinson's and the Monte-Carlo estimates within their stated error."""
import numpy as np
import pytest
import torch
from torch.func import functional_call

from memlab.models import build, init_params
from memlab.models.torch_models import TorchNet
from memlab.trials import _curvature as C
from memlab.trials._torch import torch_threads


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):     # tiny matrices: a spinning thread pool is 30x slower on shared cores
        yield


@pytest.fixture
def tiny():
    """A 5-8-3 tanh network (75 parameters), 40 points, and masks pruning ~30 % of its kernels."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    X, Y = torch.randn(40, 5), torch.randint(0, 3, (40,))
    params = list(net.parameters())
    masks = [(torch.rand_like(p) > 0.3).float() if p.dim() > 1 else None for p in params]
    return net, X, Y, params, masks


def full_hessian(net, X, Y, params):
    names = [n for n, _ in net.named_parameters()]

    def loss(flat):
        d, i = {}, 0
        for n, p in zip(names, params):
            d[n] = flat[i:i + p.numel()].view_as(p)
            i += p.numel()
        return torch.nn.functional.cross_entropy(functional_call(net, d, (X,)), Y)

    return torch.autograd.functional.hessian(loss, torch.cat([p.detach().flatten() for p in params]))


def flat_mask(params, masks):
    return torch.cat([(torch.ones_like(p) if m is None else m).flatten() for p, m in zip(params, masks)])


def test_exact_hessian_trace_is_the_diagonal_of_the_full_hessian(tiny):
    net, X, Y, params, masks = tiny
    H = full_hessian(net, X, Y, params)
    assert C.hessian_trace_exact(net, X, Y, params, batch_size=16) == pytest.approx(float(H.diag().sum()), rel=1e-5)
    m = flat_mask(params, masks)
    assert C.hessian_trace_exact(net, X, Y, params, masks, batch_size=16) == pytest.approx(
        float((H.diag() * m).sum()), rel=1e-5)


def test_hutchinson_is_within_its_stated_error_of_the_exact_trace(tiny):
    net, X, Y, params, masks = tiny
    H = full_hessian(net, X, Y, params)
    m = flat_mask(params, masks)
    Hm = H * m[:, None] * m[None, :]
    exact = float(Hm.diag().sum())
    n = 100
    est, se = C.hessian_trace(net, X, Y, params, masks, n_probes=n, generator=torch.Generator().manual_seed(1),
                              batch_size=16)
    # Rademacher probes: Var[v^T H v] = 2 (||H||_F^2 - sum_i H_ii^2); the stated error estimates it
    sd = float((2 * (Hm.pow(2).sum() - Hm.diag().pow(2).sum()) / n).sqrt())
    assert se == pytest.approx(sd, rel=0.4)
    assert abs(est - exact) < 3 * se


def test_fisher_exact_and_monte_carlo(tiny):
    net, X, Y, params, masks = tiny
    brute = 0.0
    for i in range(len(X)):
        probs = torch.softmax(net(X[i:i + 1]), 1)[0].detach()
        for c in range(3):
            g = torch.autograd.grad(torch.log_softmax(net(X[i:i + 1]), 1)[0, c], params)
            brute += float(probs[c]) * sum(float(((gi if m is None else gi * m) ** 2).sum())
                                           for gi, m in zip(g, masks))
    brute /= len(X)
    assert C.fisher_trace_exact(net, X, params, masks, batch_size=16) == pytest.approx(brute, rel=1e-5)
    est, se = C.fisher_trace(net, X, params, masks, n_samples=20, generator=torch.Generator().manual_seed(2),
                             batch_size=16)
    assert 0 < se < 0.1 * brute and abs(est - brute) < 3 * se


def test_jacobian_norm_and_entropy_against_autograd(tiny):
    net, X, *_ = tiny
    for output, f in (("probs", lambda x: torch.softmax(net(x[None]), 1)[0]), ("logits", lambda x: net(x[None])[0])):
        J = torch.stack([torch.autograd.functional.jacobian(f, x) for x in X])
        assert C.jacobian_norm(net, X, output=output, batch_size=16) == pytest.approx(
            float(J.flatten(1).norm(dim=1).mean()), rel=1e-5)
    p = torch.softmax(net(X), 1).detach()
    assert C.prediction_entropy(net, X) == pytest.approx(float(-(p * p.log()).sum(1).mean()), rel=1e-5)


def test_conv_network_with_batch_norm_in_eval_mode():
    """vmap'd per-example gradients through TorchNet convolutions and batch norm (running
    statistics): the Monte-Carlo Fisher agrees with its exact sum, the Jacobian with autograd."""
    layers = build("cnn_tutorial", (8, 8, 1), 4, batchnorm=True)
    net = TorchNet(layers, init_params(layers, (8, 8, 1), np.random.default_rng(0)), (8, 8, 1))
    net.train()
    X = torch.rand(12, 1, 8, 8)
    with torch.no_grad():
        net(X)                                   # move the running statistics off their start
    params = list(net.parameters())
    exact = C.fisher_trace_exact(net, X, params)
    est, se = C.fisher_trace(net, X, params, n_samples=30, generator=torch.Generator().manual_seed(0))
    assert abs(est - exact) < 3 * se
    assert net.training                          # the mode is restored
    net.eval()
    J = torch.stack([torch.autograd.functional.jacobian(lambda x: torch.softmax(net(x[None]), 1)[0], x) for x in X])
    assert C.jacobian_norm(net, X) == pytest.approx(float(J.flatten(1).norm(dim=1).mean()), rel=1e-4)
