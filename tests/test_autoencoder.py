"""Trial autoencoder: the attractor analysis on maps whose answer is known, the paper's claims on
trained networks (a single image is an attractor; depth and width make more attractors), the
homogeneity of bias-free ReLU networks, and agreement of the Jacobian test with the iteration."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from memlab import config
from memlab.trials import autoencoder as ae

EXPERIMENT = Path(__file__).parents[1] / "experiments" / "autoencoder.json"
FAST = {"n_noise": 20, "n_iterate": 300, "record_every": 0}


@pytest.fixture(autouse=True, scope="module")
def study_root(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MEMLAB_ROOT", str(tmp_path_factory.mktemp("autoencoder")))
    yield
    mp.undo()


def _snap_map(X: torch.Tensor, factor: float):
    """f(x) = x_k + factor (x - x_k), x_k the nearest row of X: J = factor * I at every x_k."""
    def f(Z):
        single = Z.ndim == 1
        Z2 = Z[None] if single else Z
        k = torch.cdist(Z2.detach(), X).argmin(1)
        out = X[k] + factor * (Z2 - X[k])
        return out[0] if single else out
    return f


def _params(**kw):
    return ae.resolve(ae.PARAMS, {**FAST, **kw})


def test_spectral_radius_of_a_known_linear_map():
    A = torch.tensor([[0.5, 2.0, 0.0], [0.0, -0.9, 0.0], [0.0, 0.0, 0.3]], dtype=torch.float64)
    f = lambda x: x @ A.T + 1.0   # noqa: E731   eigenvalues 0.5, -0.9, 0.3 (triangular)
    rho = ae.spectral_radii(f, torch.zeros((2, 3), dtype=torch.float64))
    assert rho == pytest.approx([0.9, 0.9])


@pytest.mark.parametrize("factor,attract", [(0.5, True), (1.5, False)])
def test_analysis_of_a_map_with_known_attractors(factor, attract):
    X = torch.tensor(np.random.default_rng(0).uniform(0, 1, (5, 16)), dtype=torch.float64)
    res = ae.analyse(_snap_map(X, factor), X, _params(perturb_std=0.01), torch.Generator().manual_seed(0))
    s = res["stats"]
    assert s["frac_fixed"] == 1.0
    assert res["artifacts"]["rho"] == pytest.approx([factor] * 5)
    assert s["frac_attractors"] == s["frac_recovered"] == (1.0 if attract else 0.0)
    assert (s["frac_noise_to_train"] == 1.0) is attract
    chains = res["artifacts"]["chains"]
    assert chains.shape[0] == 6 and chains.shape[2] == 16
    assert list(res["artifacts"]["chain_steps"]) == [0, 1, 2, 5, 10, 20, 50, 100, 200, 300]


@pytest.mark.parametrize("activation,depth", [("leaky_relu", 1), ("leaky_relu", 3), ("sin", 2), ("tanh", 2)])
def test_a_single_training_image_is_an_attractor(activation, depth):
    """The paper's theorem: trained on one example, the autoencoder stores it as an attractor."""
    out = ae.trial({**FAST, "n_train": 1, "width": 256, "depth": depth, "activation": activation})
    assert out["converged"] and out["frac_fixed"] == 1.0
    assert out["frac_attractors"] == 1.0 and out["rho_max"] < 0.99
    assert out["frac_recovered"] == 1.0 and out["frac_noise_to_train"] == 1.0


def test_without_biases_a_relu_network_has_eigenvalue_one():
    """f(c x) = c f(x) for a bias-free leaky-ReLU network, so J(x_i) x_i = f(x_i) = x_i."""
    out = ae.trial({**FAST, "n_train": 5, "width": 256, "depth": 2, "bias": False})
    assert out["converged"]
    assert out["rho_min"] > 0.995 and out["frac_attractors"] == 0.0


def test_jacobian_test_agrees_with_the_iteration():
    """Training images with rho clearly below 1 are recovered from small perturbations; those
    with rho clearly above 1 are not."""
    out = ae.trial({**FAST, "n_train": 20, "width": 512, "depth": 3, "perturb_std": 0.02, "restart": 1})
    rho, recovered = out["artifacts"]["rho"], out["artifacts"]["recovered"]
    assert recovered[rho < 0.97].all()
    assert not recovered[rho > 1.03].any()
    assert (rho < 0.97).any()


def test_trial_output_series_artifacts_and_threads():
    before = torch.get_num_threads()
    out = ae.trial({"n_train": 4, "width": 64, "depth": 1, "n_noise": 5, "n_iterate": 20, "record_every": 5})
    assert torch.get_num_threads() == before
    assert out["n_params"] == 64 * 64 + 64 + 64 * 64 + 64
    assert out["series"]["step"][0] == 1 and len(out["series"]["loss"]) == len(out["series"]["step"])
    art = out["artifacts"]
    assert art["train"].shape == (4, 64) and list(art["image_shape"]) == [8, 8, 1]
    again = ae.trial({"n_train": 4, "width": 64, "depth": 1, "n_noise": 5, "n_iterate": 20, "record_every": 5})
    assert again["final_loss"] == out["final_loss"] and np.array_equal(again["artifacts"]["rho"], art["rho"])
    with pytest.raises(ValueError, match="n_train"):
        ae.trial({"n_train": 0})


def _frac(depth, width, restarts=3):
    return np.mean([ae.trial({**FAST, "n_train": 20, "depth": depth, "width": width, "restart": r})["frac_attractors"]
                    for r in range(restarts)])


@pytest.mark.slow
def test_depth_and_width_make_more_attractors():
    """The paper's finding, at N = 20 digits: deep and wide networks store most training images as
    attractors, a one-hidden-layer network few (measured 0.82 against 0.25 with 3 restarts)."""
    deep = _frac(5, 512)
    shallow = _frac(1, 512)
    narrow = _frac(3, 128)
    wide = _frac(3, 1024, restarts=2)
    assert deep >= 0.65 and shallow <= 0.45 and deep > shallow + 0.3
    assert wide > narrow + 0.3


def test_experiment_file_declares_valid_parameters():
    raw = json.loads(EXPERIMENT.read_text())
    config.check_params(ae, config.expand_grid(raw["param_grid"], EXPERIMENT), EXPERIMENT, raw["trial"])
    assert {"iterates", "attractors"} <= {p["type"] for p in raw["plots"]}
