"""Trial sparse: the masks (exact sparsity per layer or over the network, smallest weights first,
nested rounds), pruned weights stay zero, the phases of each method (Sol-D/F/S, lottery), the
shared dense run, the clean-vs-corrupted series, a reduced-scale ResNet-32, and the measured
direction of the results (docs/lectures.md)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from memlab import config
from memlab.datasets import load_dataset
from memlab.trials import sparse as sp
from memlab.trials._torch import torch_threads

EXPERIMENTS = Path(__file__).parents[1] / "experiments"
TINY = {"width": 64, "epochs": 3, "finetune_epochs": 3, "prune_rounds": 3, "record_every": 2,
        "curvature_points": 32, "hessian_probes": 2}


@pytest.fixture(autouse=True, scope="module")
def study_root(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MEMLAB_ROOT", str(tmp_path_factory.mktemp("sparse")))
    yield
    mp.undo()


def _model():
    return sp.mlp(20, 30, 2, 4, seed=0)


def test_random_masks_remove_the_exact_fraction_per_layer_or_overall():
    model = _model()
    masks = sp.random_masks(model, 0.7, torch.Generator().manual_seed(0))
    for W, m in zip(sp.weights(model), masks):
        assert m.shape == W.shape and int((m == 0).sum()) == round(0.7 * W.numel())
    masks = sp.random_masks(model, 0.7, torch.Generator().manual_seed(0), scope="global")
    total = sum(W.numel() for W in sp.weights(model))
    assert sum(int((m == 0).sum()) for m in masks) == round(0.7 * total)


def test_magnitude_masks_remove_the_smallest_weights():
    model = _model()
    for W, m in zip(sp.weights(model), sp.magnitude_masks(model, 0.5)):
        kept, dropped = W.detach().abs()[m == 1], W.detach().abs()[m == 0]
        assert kept.min() >= dropped.max()
        assert int((m == 0).sum()) == round(0.5 * W.numel())


def test_global_magnitude_masks_rank_every_weight_together():
    model = _model()
    with torch.no_grad():
        sp.weights(model)[0].mul_(10.0)                     # the first layer's weights all large
    masks = sp.magnitude_masks(model, 0.6, scope="global")
    Ws = sp.weights(model)
    kept = torch.cat([W.detach().abs()[m == 1] for W, m in zip(Ws, masks)])
    dropped = torch.cat([W.detach().abs()[m == 0] for W, m in zip(Ws, masks)])
    assert kept.min() >= dropped.max()
    assert int(dropped.numel()) == round(0.6 * sum(W.numel() for W in Ws))
    fractions = [float((m == 0).float().mean()) for m in masks]
    assert fractions[0] < 0.2 < 0.6 < fractions[1]          # unlike per layer, layers lose unequally


def test_iterated_magnitude_masks_are_nested():
    model = _model()
    for scope in ("layer", "global"):
        first = sp.magnitude_masks(model, 0.3, scope=scope)
        sp.apply_masks(model, first)
        with torch.no_grad():                               # the survivors move: pruning must not revive
            for W in sp.weights(model):
                W.add_(0.01 * torch.randn_like(W))
        second = sp.magnitude_masks(model, 0.6, first, scope=scope)
        for a, b in zip(first, second):
            assert torch.all(b <= a)


def test_lr_schedule_is_multistep():
    p = {"lr": 0.1, "lr_gamma": 0.1, "lr_milestones": [2, 4]}
    assert [round(sp.lr_schedule(e, p), 6) for e in range(1, 7)] == [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]


def test_noisy_subset_is_the_labels_that_changed():
    data = sp.load(sp.resolve(sp.PARAMS, {"corruption": "symmetric", "corrupt_prob": 0.3}))
    clean = load_dataset("digits", split="train").y
    corrupted = load_dataset("digits", split="train", corruption="symmetric", corrupt_prob=0.3).y
    assert np.array_equal(data["noisy"].numpy(), corrupted != clean)
    assert data["noisy"].float().mean().item() == pytest.approx(0.3, abs=0.04)   # every flip changes
    assert np.array_equal(data["y_test"].numpy(), load_dataset("digits", split="test").y)


EPOCHS = {"finetune": 6, "magnitude": 6, "iterative": 6, "random": 6, "scratch": 3, "lottery": 3}


@pytest.mark.parametrize("method", EPOCHS)
def test_pruned_weights_stay_zero_and_each_method_trains_its_phases(method):
    out = sp.trial({**TINY, "method": method, "sparsity": 0.9})
    assert out["sparsity_achieved"] == pytest.approx(0.9, abs=1e-3)
    assert out["n_nonzero"] == pytest.approx(0.1 * out["n_weights"], rel=0.01)
    assert out["epochs_total"] == EPOCHS[method]
    assert out["series"]["epoch"] == list(range(2, EPOCHS[method] + 1, 2))
    if method != "finetune":    # finetune: the series starts with the dense epochs
        assert out["series"]["sparsity_now"][-1] == pytest.approx(0.9, abs=1e-3)
    for k in ("train_acc", "clean_acc", "noisy_correct", "noisy_memorized", "test_acc", "train_entropy"):
        assert 0 <= out[k] <= (1 if k != "train_entropy" else np.log(10))
        assert len(out["series"][k]) == len(out["series"]["epoch"])
    f = out["frac_noisy"]       # the training accuracy is the clean part's plus the memorized part's
    assert out["train_acc"] == pytest.approx((1 - f) * out["clean_acc"] + f * out["noisy_memorized"], abs=1e-6)
    assert out["fisher_trace"] > 0 and out["fisher_trace_se"] > 0 and out["jacobian_norm"] > 0


def test_dense_run_is_shared_and_the_same_training_at_sparsity_zero():
    a = sp.trial({**TINY, "method": "random", "sparsity": 0.0, "seed": 5})
    b = sp.trial({**TINY, "method": "iterative", "sparsity": 0.0, "seed": 5})
    assert a["train_acc"] == b["train_acc"] and a["test_acc"] == b["test_acc"] and a["sparsity_achieved"] == 0.0
    dense = sp.trial({**TINY, "method": "dense", "record_every": 1})
    ft = sp.trial({**TINY, "method": "finetune", "sparsity": 0.5, "record_every": 1})
    assert ft["series"]["test_acc"][:3] == dense["series"]["test_acc"]          # the same dense network
    sp._DENSE.clear()                                                          # the cache only saves time
    assert sp.trial({**TINY, "method": "finetune", "sparsity": 0.5, "record_every": 1}) == {
        **ft, "fit_time": pytest.approx(ft["fit_time"], abs=1e9), "measure_time": pytest.approx(0, abs=1e9)}
    with pytest.raises(ValueError, match="dense"):
        sp.trial({**TINY, "method": "dense", "sparsity": 0.5})


def test_scratch_and_lottery_reuse_the_finetune_mask_with_other_weights():
    p = sp.resolve(sp.PARAMS, {**TINY, "sparsity": 0.8, "record_every": 0})
    data = sp.load(p)
    points = torch.arange(16)
    with torch_threads(1):
        runs = {m: sp.prune_and_train({**p, "method": m}, data, 7, 11, points)
                for m in ("finetune", "scratch", "lottery")}
    for m in ("scratch", "lottery"):
        assert all(torch.equal(a, b) for a, b in zip(runs["finetune"].masks, runs[m].masks))
    init = sp.network(p, data, 7)                   # lottery rewinds to the dense run's initialization;
    fresh = sp.network(p, data, 11, stream=1)       # scratch draws new weights
    assert not torch.equal(sp.weights(init)[0], sp.weights(fresh)[0])
    assert runs["scratch"].metrics() != runs["lottery"].metrics()


def test_measure_every_adds_the_measures_to_the_series():
    out = sp.trial({**TINY, "method": "scratch", "sparsity": 0.5, "record_every": 1, "measure_every": 2})
    s = out["series"]
    assert s["epoch"] == [1, 2, 3]
    assert s["fisher_trace"][0] is None and s["fisher_trace"][1] > 0 and s["hessian_trace"][2] is None


def test_threads_are_restored_and_bad_parameters_rejected():
    before = torch.get_num_threads()
    sp.trial({**TINY, "epochs": 1, "finetune_epochs": 0, "record_every": 0, "measure": False})
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="sparsity"):
        sp.trial({**TINY, "sparsity": 1.0})
    with pytest.raises(ValueError, match="augment"):
        sp.trial({**TINY, "augment": True})


@pytest.mark.slow
def test_resnet32_at_reduced_scale():
    """memlab.models' ResNet-32 (first stage 4 channels, batch norm) on 128 digits: global pruning
    reaches the sparsity over its conv and dense kernels, and Sol-S trains with augmentation."""
    out = sp.trial({"model": "resnet32", "width": 4, "batchnorm": True, "method": "scratch", "sparsity": 0.9,
                    "n_train": 128, "epochs": 2, "finetune_epochs": 0, "record_every": 1, "optimizer": "sgd",
                    "lr": 0.05, "augment": True, "curvature_points": 16, "hessian_probes": 2})
    assert out["n_weights"] == 29_156     # 31 3x3 convolutions, 2 1x1 projections, the 16 -> 10 classifier
    assert out["sparsity_achieved"] == pytest.approx(0.9, abs=1e-4) and out["n_train_used"] == 128
    assert out["series"]["epoch"] == [1, 2] and np.isfinite(out["hessian_trace"])


def _grid_params(name: str, **match) -> dict:
    """One trial's parameters exactly as run.py passes them, the runner's `_seed` included, so the
    draws are those of the experiment's results (called without `_seed`, a trial hashes its own)."""
    for t in config.load_experiment(str(EXPERIMENTS / f"{name}.json")).trials():
        if all(t.params.get(k) == v for k, v in match.items()):
            return {**t.params, "_seed": t.seed}
    raise LookupError(match)


@pytest.mark.slow
def test_sol_s_memorizes_fewer_noisy_labels_than_sol_d():
    """sparsity_noisy_labels, restart 0 (docs/sparsity.md): under 30 % symmetric flips the dense
    network memorizes most noisy labels; the 95 %-sparse network trained from scratch on the same
    mask memorizes far fewer, predicts more of them correctly and tests better."""
    with torch_threads(1):
        dense = sp.trial(_grid_params("sparsity_noisy_labels", method="dense", restart=0))
        scratch = sp.trial(_grid_params("sparsity_noisy_labels", method="scratch", sparsity=0.95, restart=0))
    assert dense["noisy_memorized"] > 0.8 and scratch["noisy_memorized"] < 0.1
    assert scratch["noisy_correct"] > dense["noisy_correct"] + 0.3
    assert scratch["test_acc"] > dense["test_acc"]


@pytest.mark.slow
def test_fisher_and_hessian_traces_grow_with_sparsity_for_sol_f():
    """sparsity_regimes, restart 0 (docs/sparsity.md, as in the paper's Table 2)."""
    with torch_threads(1):
        runs = [sp.trial(_grid_params("sparsity_regimes", method="dense", restart=0))]
        runs += [sp.trial(_grid_params("sparsity_regimes", method="finetune", sparsity=s, restart=0))
                 for s in (0.9, 0.97)]
    for k in ("fisher_trace", "hessian_trace"):
        values = [r[k] for r in runs]
        assert values == sorted(values) and values[2] > 5 * values[1] > 5 * values[0], (k, values)


@pytest.mark.parametrize("name", ["sparse", "sparsity_regimes", "sparsity_noisy_labels",
                                  "sparsity_regimes_paper", "sparsity_noisy_labels_paper"])
def test_experiment_files_declare_valid_parameters(name):
    path = EXPERIMENTS / f"{name}.json"
    raw = json.loads(path.read_text())
    config.check_params(sp, config.expand_grid(raw["param_grid"], path), path, raw["trial"])
