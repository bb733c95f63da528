"""Trial receptive_fields: IPR, gradients (torch by hand vs autograd vs jax), sampling, the trial's
output, and the paper's qualitative result (NLGP localizes, GP does not)."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from memlab import config
from memlab.datasets import gp
from memlab.trials import receptive_fields as rf

SMALL = {"D": 40, "K": 6, "steps": 50, "batch_size": 16, "n_test": 200, "lr": 50.0}


def test_ipr_extremes():
    W = np.zeros((3, 50))
    W[0, 7] = -2.0                  # one pixel: IPR 1
    W[1] = 0.3                      # flat: IPR 1/D
    W[2, :2] = 1.0                  # two pixels: 1/2
    assert rf.ipr(W) == pytest.approx([1.0, 1 / 50, 0.5])
    G = np.random.default_rng(0).standard_normal((4000, 50))
    assert rf.ipr(G).mean() == pytest.approx(3 / 52, rel=0.02)   # exact mean for Gaussian vectors


def _batch(seed=0, n=9, K=5, D=12):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(K, D, generator=g, dtype=torch.float64)
    b = 0.3 * torch.randn(K, generator=g, dtype=torch.float64)
    x = torch.randn(n, D, generator=g, dtype=torch.float64)
    y = torch.sign(torch.randn(n, generator=g, dtype=torch.float64))
    return W, b, x, y


def test_hand_written_gradients_match_autograd():
    W, b, x, y = _batch()
    gW, gb = rf.torch_grads(W, b, x, y)
    W.requires_grad_(True)
    b.requires_grad_(True)
    _, out = rf.torch_forward(W, b, x)
    (0.5 * ((out - y) ** 2).mean()).backward()
    assert torch.allclose(gW, W.grad, atol=1e-12) and torch.allclose(gb, b.grad, atol=1e-12)


def test_jax_gradients_match_torch():
    J = rf.jax_impl()
    W, b, x, y = _batch(seed=1)
    gW, gb = rf.torch_grads(W, b, x, y)
    jnp = J.jnp
    jW, jb = J.jax.grad(J.loss, argnums=(0, 1))(*(jnp.asarray(t.numpy(), dtype=jnp.float32) for t in (W, b, x, y)))
    assert np.allclose(np.asarray(jW), gW.numpy(), atol=1e-5)
    assert np.allclose(np.asarray(jb), gb.numpy(), atol=1e-5)


def _check_fields(x, y, D, gain):
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y)
    assert x.shape == (len(y), D) and sorted(np.unique(y)) == [-1.0, 1.0]
    assert np.sum(y == 1) == len(y) - len(y) // 2
    assert x.var() == pytest.approx(1.0, abs=0.03)
    for label, xi in ((-1, 1.0), (1, 3.0)):
        xc = x[y == label]
        neighbour = np.mean(xc[:, :-1] * xc[:, 1:])
        c = math.exp(-1 / xi**2)
        if gain:
            c = 2 / math.pi * math.asin(2 * gain**2 * c / (1 + 2 * gain**2)) / gp.nlgp_scale(gain) ** 2
        assert neighbour == pytest.approx(c, abs=0.03), (label, gain)


@pytest.mark.parametrize("gain", [0.0, 3.0])
def test_torch_and_jax_samplers_have_the_right_statistics(gain):
    p = {"D": 30, "xi0": 1.0, "xi1": 3.0}
    g, Z = rf.saturation(gain)
    filt = rf.class_filters(p)
    x, y = rf.torch_sample(torch.Generator().manual_seed(0), 6001, 30,
                           torch.tensor(filt, dtype=torch.float32), g, Z)
    _check_fields(x, y, 30, gain)
    J = rf.jax_impl()
    x, y = J.sample(J.jax.random.PRNGKey(0), 6001, 30, J.jnp.asarray(filt, dtype=J.jnp.float32), g, Z)
    _check_fields(x, y, 30, gain)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_trial_output_and_determinism(framework):
    params = {**SMALL, "framework": framework, "record_every": 20}
    a, b = rf.trial(params), rf.trial(params)
    c = rf.trial({**params, "restart": 1})
    for k in ("test_acc", "ipr_mean", "ipr_median", "ipr_max", "ipr_init_mean", "ipr_q10", "ipr_q90",
              "frac_localized", "test_loss"):
        assert isinstance(a[k], float) and a[k] == b[k], k
    assert a["ipr_init_mean"] != c["ipr_init_mean"]
    W = a["artifacts"]["W"]
    assert W.dtype == np.float32 and W.shape == (6, 40)
    assert np.array_equal(W, b["artifacts"]["W"])
    s = a["series"]
    assert s["step"] == [0, 20, 40, 50]
    assert {len(v) for v in s.values()} == {4}
    assert s["ipr_mean"][0] == pytest.approx(a["ipr_init_mean"])
    assert s["ipr_mean"][-1] == pytest.approx(a["ipr_mean"])
    assert "series" not in rf.trial({**params, "record_every": 0})


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_fixed_training_set(framework):
    out = rf.trial({**SMALL, "framework": framework, "online": False, "n_train": 300, "steps": 300})
    assert 0.0 <= out["train_acc"] <= 1.0
    assert out["train_acc"] > 0.6    # the task is learnable from 300 samples


def test_without_biases_an_odd_network_cannot_beat_chance():
    """yhat(-x) = -yhat(x) and both classes are symmetric under x -> -x: accuracy stays at 0.5."""
    out = rf.trial({**SMALL, "train_bias": False, "steps": 1000, "n_test": 4000})
    assert out["test_acc"] == pytest.approx(0.5, abs=0.04)      # 5 standard errors
    trained = rf.trial({**SMALL, "steps": 1000, "n_test": 4000})
    assert trained["test_acc"] > 0.68                           # measured 0.75-0.77


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="batch_size"):
        rf.trial({**SMALL, "batch_size": 1})
    with pytest.raises(ValueError, match="gain"):
        rf.trial({**SMALL, "gain": -1.0})


@pytest.mark.parametrize("name", ["receptive_fields", "receptive_fields_dynamics"])
def test_experiment_files_declare_valid_parameters(name):
    path = Path(__file__).parents[1] / "experiments" / f"{name}.json"
    raw = json.loads(path.read_text())
    assert raw["trial"] == "receptive_fields"
    grid = config.expand_grid(raw["param_grid"], path)
    config.check_params(rf, grid, path, raw["trial"])
    assert {p["type"] for p in raw["plots"]} <= {"samples_1d", "receptive_fields", "lines", "curves"}


def _localization(framework: str, gain: float, restart: int, steps: int) -> dict:
    return rf.trial({"gain": gain, "framework": framework, "restart": restart, "steps": steps})


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_nlgp_localizes_and_gp_does_not(framework):
    """The paper's result at D=100, K=30: the NLGP (gain 3) fields localize, the GP's do not."""
    nlgp = [_localization(framework, 3.0, r, 5000) for r in range(2)]
    gauss = [_localization(framework, 0.0, r, 5000) for r in range(2)]
    for run in nlgp + gauss:
        assert run["test_acc"] > 0.85                         # both learn the task
    ipr_nlgp = np.mean([r["ipr_mean"] for r in nlgp])
    ipr_gp = np.mean([r["ipr_mean"] for r in gauss])
    ipr_init = np.mean([r["ipr_init_mean"] for r in nlgp + gauss])
    assert ipr_nlgp > 2.5 * ipr_gp and ipr_nlgp > 2.5 * ipr_init
    assert ipr_gp < 1.1 * ipr_init                           # GP: no localization at all
    assert min(r["ipr_max"] for r in nlgp) > 0.15             # single units: a few pixels wide
    assert max(r["frac_localized"] for r in gauss) == 0.0
