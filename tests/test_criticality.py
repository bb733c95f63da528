"""The KTH practical "Model Capacity": noisy labels, the sgd trial's new options, the
criticality trial (Zhang, Bengio & Singer 2019) and its plots, at reduced scale on digits.

    python -m pytest -q tests/test_criticality.py              # everything (about 2 minutes)
    python -m pytest -q tests/test_criticality.py -m "not slow"
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from memlab.datasets import corrupt
from memlab.datasets.registry import Dataset
from memlab.models import build, init_params, n_params, shapes_through
from memlab.trials import criticality, sgd
from memlab.trials._train import CHECKPOINT_ENV, CHECKPOINT_SECONDS_ENV, lr_at

K = 10
# digits pixels are in [0, 1] already: the thresholds below were set on them as stored
DIGITS = {"dataset": "digits", "seed": 0, "lr": 0.05, "lr_decay": 1.0, "device": "cpu", "preprocess": "none"}


@pytest.fixture(autouse=True)
def _scratch_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMLAB_ROOT", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv(CHECKPOINT_ENV, raising=False)


def toy(n=20_000, n_test=5_000, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n).astype(np.uint8)
    return Dataset("toy", rng.random((n, 4), dtype=np.float32), y, np.arange(n) >= n - n_test,
                   {"classes": [str(c) for c in range(K)]})


# ------------------------------------------------------------ noisy labels ---
@pytest.mark.parametrize("p", [0.0, 0.2, 0.37, 0.8, 1.0])
def test_noisy_labels_change_exactly_the_fraction_and_never_keep_the_true_label(p):
    ds = toy()
    out = corrupt.apply(ds, "noisy_labels", prob=p, seed=3)
    train = ~ds.is_test
    changed = out.y[train] != ds.y[train]
    assert changed.sum() == round(p * train.sum())                       # exact, not in expectation
    np.testing.assert_array_equal(out.y[ds.is_test], ds.y[ds.is_test])   # the test set keeps its labels
    if p >= 0.8:   # the new class is uniform over the K - 1 others: (new - old) mod K uniform on 1..K-1
        shift = (out.y[train][changed].astype(int) - ds.y[train][changed]) % K
        counts = np.bincount(shift, minlength=K)
        assert counts[0] == 0
        chi2 = np.sum((counts[1:] - counts[1:].mean()) ** 2 / counts[1:].mean())
        assert chi2 < 35, "chi-square with 8 degrees of freedom: 35 is beyond p = 1e-4"
    np.testing.assert_array_equal(out.y, corrupt.apply(ds, "noisy_labels", prob=p, seed=3).y)
    assert p in (0.0, 1.0) or not np.array_equal(out.y, corrupt.apply(ds, "noisy_labels", prob=p, seed=4).y)


def test_partial_labels_may_keep_the_true_label_noisy_labels_never_do():
    """Zhang et al.'s partial_labels resample: about p / K of the labels are redrawn as themselves."""
    ds, p = toy(), 0.5
    train = ~ds.is_test
    partial = (corrupt.apply(ds, "partial_labels", prob=p, seed=1).y != ds.y)[train].mean()
    noisy = (corrupt.apply(ds, "noisy_labels", prob=p, seed=1).y != ds.y)[train].mean()
    assert abs(partial - p * (1 - 1 / K)) < 0.015 and noisy == p


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_all_labels_noisy_are_memorized_with_test_accuracy_at_chance(framework):
    """The practical's own check, at noise ratio 1.0.  Every training label is wrong, so the net
    learns to avoid the true class: test accuracy is at chance or below it (measured 0.03-0.08)."""
    r = sgd.trial({**DIGITS, "framework": framework, "corruption": "noisy_labels", "corrupt_prob": 1.0,
                   "n_train": 256, "widths": [512], "epochs": 400, "stop_at_acc": 1.0})
    assert r["train_acc"] == 1.0 and r["epochs_run"] < 400
    assert r["test_acc"] <= 1 / K + 0.03


# ------------------------------------------------------------ sgd options ---
def test_piecewise_constant_schedule():
    lrs = [lr_at(e, 0.01, 1.0, [30, 60, 90], 0.5) for e in (1, 30, 31, 60, 61, 91, 100)]
    assert lrs == pytest.approx([0.01, 0.01, 0.005, 0.005, 0.0025, 0.00125, 0.00125])
    assert lr_at(3, 0.1, 0.95) == pytest.approx(0.1 * 0.95 ** 2)


def test_stop_at_acc_and_target_loss_end_training():
    r = sgd.trial({**DIGITS, "widths": [64], "epochs": 50, "target_loss": 0.3})
    s = r["series"]
    assert r["epochs_run"] < 50 and s["train_loss"][-1] <= 0.3 < s["train_loss"][-2]
    r = sgd.trial({**DIGITS, "widths": [64], "epochs": 50, "stop_at_acc": 0.95})
    assert r["epochs_run"] < 50 and r["train_acc"] >= 0.95 > r["series"]["train_acc"][-2]
    assert r["series"]["learning_rate"] == [0.05] * r["epochs_run"]


def test_kernel_only_weight_decay_agrees_across_frameworks_and_spares_biases():
    import torch

    from memlab.trials import _torch
    groups = _torch.decay_groups(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)), 0.1)
    assert [tuple(q.dim() for q in g["params"]) for g in groups] == [(2,), (1, 1, 1)]
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    p = {**DIGITS, "widths": [64], "epochs": 3, "weight_decay": 0.05, "lr_milestones": [1], "lr_gamma": 0.5}
    runs = {(fw, scope): sgd.trial({**p, "framework": fw, "weight_decay_scope": scope})["series"]
            for fw, scope in (("torch", "all"), ("torch", "kernels"), ("jax", "kernels"))}
    np.testing.assert_allclose(runs["torch", "kernels"]["train_loss"], runs["jax", "kernels"]["train_loss"], rtol=1e-4)
    assert runs["torch", "kernels"]["train_loss"] != runs["torch", "all"]["train_loss"]
    assert runs["jax", "kernels"]["learning_rate"] == [0.05, 0.025, 0.025]


def test_checkpoints_are_artifacts_and_survive_a_resume(tmp_path, monkeypatch):
    p = {**DIGITS, "widths": [32], "epochs": 5, "checkpoint_every": 2, "_key": "k"}
    full = sgd.train(p)
    snaps = sgd.snapshots_from_artifacts(full["artifacts"])
    assert list(snaps) == [0, 2, 4, 5]
    layers = build("mlp", (64,), 10, widths=[32])
    init = init_params(layers, (64,), np.random.default_rng([0, 0]))   # stream INIT of seed 0
    np.testing.assert_array_equal(snaps[0]["dense0"]["w"], init["dense0"]["w"])
    assert not np.allclose(snaps[4]["dense0"]["w"], snaps[5]["dense0"]["w"])

    monkeypatch.setenv(CHECKPOINT_ENV, str(tmp_path / "ck"))
    monkeypatch.setenv(CHECKPOINT_SECONDS_ENV, "0")

    class Stop(Exception):
        pass

    def crash(epoch, history):
        if epoch == 3:
            raise Stop
    with pytest.raises(Stop):
        sgd.train(p, on_epoch=crash)
    resumed = sgd.train(p)
    assert resumed["resumed_from"] == 3
    assert resumed["artifacts"].keys() == full["artifacts"].keys()
    for k, a in full["artifacts"].items():
        np.testing.assert_allclose(resumed["artifacts"][k], a, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------- criticality ---
def table(result) -> pd.DataFrame:
    return pd.DataFrame(result["series"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One thin ResNet-18 (width 8) trained on 512 digits, studied and pruned (torch)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MEMLAB_ROOT", str(tmp_path_factory.mktemp("root")))
    mp.setenv("OMP_NUM_THREADS", "1")
    mp.delenv(CHECKPOINT_ENV, raising=False)
    try:
        return criticality.trial({**DIGITS, "model": "resnet18_thin", "width": 8, "n_train": 512, "epochs": 20,
                                  "lr_decay": 0.95, "checkpoint_every": 5, "prune_noncritical": True})
    finally:
        mp.undo()


@pytest.mark.slow
def test_resetting_to_the_final_checkpoint_changes_nothing_and_to_init_gives_chance(trained):
    df = table(trained)
    last = df[(df["reset"] == "checkpoint") & (df["checkpoint_epoch"] == trained["epochs_run"])]
    assert len(last) == 2 * trained["n_layers"] and (last["loss_drop"] == 0).all() and (last["acc_drop"] == 0).all()
    assert trained["test_acc"] > 0.8
    assert trained["all_reset_test_acc"] < 0.2      # chance is 0.1
    assert set(df.columns) >= {"layer", "layer_index", "checkpoint_epoch", "split", "loss_drop", "acc_drop",
                               "l2_from_init", "reset"}
    rand = df[df["reset"] == "rerandomize"]
    assert len(rand) == 2 * trained["n_layers"] and (rand["checkpoint_epoch"] == -1).all()


@pytest.mark.slow
def test_distance_from_initialization_grows_with_the_checkpoint_epoch(trained):
    df = table(trained)
    rows = df[(df["reset"] == "checkpoint") & (df["split"] == "train")]
    for layer, g in rows.groupby("layer"):
        d = g.sort_values("checkpoint_epoch")["l2_from_init"].to_numpy()
        assert d[0] == 0 and (np.diff(d) > 0).all(), (layer, d)


@pytest.mark.slow
def test_the_first_layer_is_critical_later_layers_are_robust(trained):
    """Zhang-Bengio-Singer at reduced scale: resetting the stem to initialization costs test
    accuracy; most convolutions of the last two stages can be reset for almost nothing."""
    df = table(trained)
    at_init = df[(df["reset"] == "checkpoint") & (df["checkpoint_epoch"] == 0) & (df["split"] == "test")]
    drop = dict(zip(at_init["layer"], at_init["acc_drop"], strict=True))
    later = [d for name, d in drop.items() if name.startswith(("s3", "s4"))]
    assert drop["stem"] > 0.05 and trained["first_layer_acc_drop"] == drop["stem"]
    assert np.mean(np.array(later) < 0.05) >= 0.75 and np.median(later) < drop["stem"] / 2
    assert trained["spearman_l2_vs_acc_drop"] is not None and -1 <= trained["spearman_l2_vs_acc_drop"] <= 1
    assert 1 <= trained["n_critical_layers"] < trained["n_layers"]


@pytest.mark.slow
def test_pruning_removes_noncritical_blocks_and_retrains(trained):
    assert 0 < trained["n_pruned_layers"] and trained["pruned_n_params"] < trained["n_params"]
    assert "stem" not in trained["pruned_layers"] and "proj" not in trained["pruned_layers"]
    assert trained["pruned_test_acc"] > 0.5


def test_prunable_spans_keep_shapes():
    resnet = build("resnet18_thin", (8, 8, 1), 10, width=4, batchnorm=True)
    everything = [name for name, _ in criticality.layer_units(resnet)]
    spans = criticality.prunable(resnet, (8, 8, 1), everything)
    names = [n for _, _, ns in spans for n in ns]
    # the second block of each stage has an identity shortcut; the first blocks of stages 2-4 project
    assert names == [f"s{s}b{b}_conv{c}" for s, b in ((1, 1), (1, 2), (2, 2), (3, 2), (4, 2)) for c in (1, 2)]
    assert criticality.prunable(resnet, (8, 8, 1), ["s1b2_conv1"]) == []     # half a block cannot go
    vgg = build("vgg11", (32, 32, 3), 10, width=4, batchnorm=True)
    spans = criticality.prunable(vgg, (32, 32, 3), [f"conv{i}" for i in range(1, 9)])
    assert [ns[0] for _, _, ns in spans] == ["conv4", "conv6", "conv7", "conv8"]   # same-shape convs
    drop = {j for start, stop, _ in spans for j in range(start, stop)}
    pruned = tuple(layer for j, layer in enumerate(vgg) if j not in drop)
    assert shapes_through(pruned, (32, 32, 3)) == (10,)
    assert not [layer for layer in pruned if layer.name.startswith("conv4")]      # its batch norm went too
    small = n_params(init_params(pruned, (32, 32, 3), np.random.default_rng(0)))
    assert small < n_params(init_params(vgg, (32, 32, 3), np.random.default_rng(0)))


def test_layer_units_group_batch_norm_with_its_convolution():
    units = dict(criticality.layer_units(build("resnet18_thin", (8, 8, 1), 10, width=4, batchnorm=True)))
    assert units["stem"] == ["stem", "stem_bn"] and units["s2b1_proj"] == ["s2b1_proj", "s2b1_proj_bn"]
    assert list(units)[0] == "stem" and list(units)[-1] == "fc" and len(units) == 21


@pytest.mark.slow
def test_criticality_agrees_across_frameworks():
    p = {**DIGITS, "model": "mlp", "widths": [32, 32], "n_train": 256, "epochs": 6, "checkpoint_every": 3,
         "prune_noncritical": False}
    t, j = (criticality.trial({**p, "framework": fw}) for fw in ("torch", "jax"))
    assert t["series"]["layer"] == j["series"]["layer"] == [n for n in t["series"]["layer"]]
    np.testing.assert_allclose(t["series"]["loss"], j["series"]["loss"], rtol=1e-4)
    np.testing.assert_allclose(t["series"]["l2_from_init"], j["series"]["l2_from_init"], rtol=1e-4)
    assert t["n_critical_layers"] == j["n_critical_layers"]


# ------------------------------------------------------------------ plots ---
def test_plots_render_from_the_trials_tables(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    from memlab.plots import PlotContext, render
    r = criticality.trial({**DIGITS, "model": "mlp", "widths": [16, 16], "n_train": 128, "epochs": 4,
                           "checkpoint_every": 2})
    series = table(r).assign(framework="torch")
    ctx = PlotContext("exp", None, series, tmp_path)
    fig = render({"type": "layer_heatmap", "name": "h", "query": "framework == 'torch'"}, None, ctx)
    assert len(fig.axes) == 8                                   # 2 metrics x 2 splits, each with a colorbar
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0", "2", "4", "rand"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["dense0", "dense1", "dense2"]
    fig = render({"type": "layer_heatmap", "name": "l2", "metrics": ["l2_from_init"], "rerandomize": False},
                 None, ctx)
    assert len(fig.axes) == 2 and fig.axes[0].images[0].get_array()[:, 0].tolist() == [0, 0, 0]
    two = pd.concat([series.assign(model="a"), series.assign(model="b")])
    fig = render({"type": "layer_heatmap", "name": "l2", "metrics": ["l2_from_init"], "by": "model"}, None,
                 PlotContext("exp", None, two, tmp_path))
    left, right = (ax for ax in fig.axes if ax.images)            # one panel per model: side by side
    assert left.get_position().y0 == right.get_position().y0 and left.get_position().x1 < right.get_position().x0
    assert right.get_title() == "model=b: L2 distance from init"
    curves = pd.concat([pd.DataFrame({**sgd.trial({**DIGITS, "widths": [16], "epochs": 3, "lr_decay": 0.5,
                                                   "corruption": "noisy_labels", "corrupt_prob": q})["series"],
                                      "corrupt_prob": q}) for q in (0.0, 0.5)])
    fig = render({"type": "training_panels", "name": "t", "hue": "corrupt_prob"}, None,
                 PlotContext("exp", None, curves, tmp_path))
    assert len(fig.axes) == 3 and fig.axes[2].get_ylabel() == "learning rate"
    assert len(fig.axes[0].lines) == 2 * 2 + 2                 # train + test per noise level, legend keys
    np.testing.assert_allclose(fig.axes[2].lines[0].get_ydata(), [0.05, 0.025, 0.0125])
    assert len(fig.axes[2].lines) == 1                         # one schedule for both: drawn once
    fig = render({"type": "training_panels", "name": "t", "hue": "corrupt_prob", "logy_loss": True,
                  "names": {"corrupt_prob": "noise"}, "value_names": {"corrupt_prob": {"0": "clean"}}}, None,
                 PlotContext("exp", None, curves, tmp_path))
    fig.canvas.draw()
    legend = fig.axes[2].get_legend()
    assert legend.get_title().get_text() == "noise" and [t.get_text() for t in legend.get_texts()] == ["clean", "0.5"]
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels(minor=True) + fig.axes[0].get_yticklabels()]
    assert any(labels) and not any("^" in t or "times" in t for t in labels)   # 2, 1, 0.5: no 2x10^0
    fig.savefig(tmp_path / "t.png")


@pytest.mark.parametrize("name, trial", [("practical_noisy_labels", "sgd"), ("practical_target_loss", "sgd"),
                                         ("criticality", "criticality")])
def test_shipped_experiments_are_valid(name, trial):
    import json
    from pathlib import Path

    from memlab import config, plots
    path = Path(__file__).resolve().parent.parent / "experiments" / f"{name}.json"
    raw = json.loads(path.read_text())
    assert raw["trial"] == trial and "cifar10" in raw["description"]
    grid = config.expand_grid(raw["param_grid"], path)
    config.check_params(config.import_trial(trial, path), grid, path, trial)
    for spec in raw["plots"]:
        plots.validate(spec, file=path)
