"""Trial sparse: the masks (exact sparsity, smallest weights first, nested rounds), that pruned
weights stay zero through training, that the noisy-labelled subset is found, and the measured
direction of the trade-off (sparsity lowers memorization of noisy labels and raises test accuracy)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from memlab import config
from memlab.datasets import load_dataset
from memlab.trials import sparse as sp

EXPERIMENT = Path(__file__).parents[1] / "experiments" / "sparse.json"
TINY = {"width": 64, "epochs": 3, "finetune_epochs": 3, "prune_rounds": 3, "record_every": 2}


@pytest.fixture(autouse=True, scope="module")
def study_root(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MEMLAB_ROOT", str(tmp_path_factory.mktemp("sparse")))
    yield
    mp.undo()


def _model():
    torch.manual_seed(0)
    return sp.mlp(20, 30, 2, 4)


def test_random_masks_remove_the_exact_fraction_per_layer():
    model = _model()
    masks = sp.random_masks(model, 0.7, torch.Generator().manual_seed(0))
    for W, m in zip(sp.weights(model), masks):
        assert m.shape == W.shape and int((m == 0).sum()) == round(0.7 * W.numel())


def test_magnitude_masks_remove_the_smallest_weights():
    model = _model()
    masks = sp.magnitude_masks(model, 0.5)
    for W, m in zip(sp.weights(model), masks):
        kept, dropped = W.detach().abs()[m == 1], W.detach().abs()[m == 0]
        assert kept.min() >= dropped.max()
        assert int((m == 0).sum()) == round(0.5 * W.numel())


def test_iterated_magnitude_masks_are_nested():
    model = _model()
    first = sp.magnitude_masks(model, 0.3)
    sp.apply_masks(model, first)
    with torch.no_grad():                               # the survivors move: pruning must not revive
        for W in sp.weights(model):
            W.add_(0.01 * torch.randn_like(W))
    second = sp.magnitude_masks(model, 0.6, first)
    for a, b in zip(first, second):
        assert torch.all(b <= a) and int((b == 0).sum()) == round(0.6 * a.numel())


def test_noisy_subset_is_the_labels_that_changed():
    data = sp.load(sp.resolve(sp.PARAMS, {"corrupt_prob": 0.4}))
    clean = load_dataset("digits", split="train").y
    corrupted = load_dataset("digits", split="train", corruption="partial_labels", corrupt_prob=0.4).y
    assert np.array_equal(data["noisy"].numpy(), corrupted != clean)
    # partial_labels resamples 40% of the labels uniformly: 9 in 10 of them change
    assert data["noisy"].float().mean().item() == pytest.approx(0.4 * 0.9, abs=0.04)
    assert np.array_equal(data["y_test"].numpy(), load_dataset("digits", split="test").y)


@pytest.mark.parametrize("method", sp.METHODS)
def test_pruned_weights_stay_zero_and_the_budget_is_equal(method):
    out = sp.trial({**TINY, "method": method, "sparsity": 0.9})
    assert out["sparsity_achieved"] == pytest.approx(0.9, abs=1e-3)
    assert out["n_nonzero"] == pytest.approx(0.1 * out["n_weights"], rel=0.01)
    assert out["epochs_total"] == 6 and out["series"]["epoch"] == [2, 4, 6]
    assert 0 <= out["mem_noisy"] <= 1 and out["n_noisy"] > 0
    if method != "magnitude":    # iterative: pruned at epoch 3 (30%), 4 (78%), 5 (90%)
        assert out["series"]["sparsity_now"][-1] == pytest.approx(0.9, abs=1e-3)


def test_dense_is_the_same_for_every_method_and_deterministic():
    a = sp.trial({**TINY, "method": "random", "sparsity": 0.0, "seed": 5})
    b = sp.trial({**TINY, "method": "iterative", "sparsity": 0.0, "seed": 5})
    assert a["train_acc"] == b["train_acc"] and a["test_acc"] == b["test_acc"]
    assert a["sparsity_achieved"] == 0.0


def test_threads_are_restored_and_bad_sparsity_rejected():
    before = torch.get_num_threads()
    sp.trial({**TINY, "epochs": 1, "finetune_epochs": 0, "record_every": 0})
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="sparsity"):
        sp.trial({**TINY, "sparsity": 1.0})


@pytest.mark.slow
def test_sparsity_trades_memorization_for_test_accuracy():
    """The measured direction (docs/lectures.md): the dense network memorizes the noisy labels
    and generalizes worse than a 90%-sparse one, which memorizes few of them."""
    base = {"corrupt_prob": 0.4, "epochs": 100, "finetune_epochs": 50, "record_every": 0}
    dense = sp.trial({**base, "sparsity": 0.0})
    for method in ("random", "magnitude"):
        pruned = sp.trial({**base, "method": method, "sparsity": 0.9})
        assert dense["mem_noisy"] > 0.9 > 0.5 > pruned["mem_noisy"]
        assert pruned["test_acc"] > dense["test_acc"] + 0.05
        assert pruned["noisy_true_acc"] > dense["noisy_true_acc"] + 0.3


def test_experiment_file_declares_valid_parameters():
    raw = json.loads(EXPERIMENT.read_text())
    config.check_params(sp, config.expand_grid(raw["param_grid"], EXPERIMENT), EXPERIMENT, raw["trial"])
