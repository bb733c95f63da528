"""The `criticality` trial: are all layers created equal?  (Zhang, Bengio & Singer 2019; the KTH
practical "Model Capacity: Learning and Memorization", Part II.)

    python run.py --name criticality      # resnet18_thin and vgg11 on digits, both frameworks
    python plot.py --name criticality     # layer x checkpoint heatmaps

Train a network exactly as the `sgd` trial does (any model of the zoo, any dataset, either
framework), keeping its weights at initialization, every `checkpoint_every` epochs and at the
end.  Then, for each layer l and each checkpoint t, put layer l alone back to its weights at t
(the rest stays trained) and measure on the training and the test set

    loss_drop = (loss_reset - loss_final) / loss_final      the relative rise of the cross-entropy
    acc_drop  = (acc_final - acc_reset) / acc_final         the relative fall of the accuracy

With `resets` including "rerandomize", layer l is also reset to a fresh draw from the initial
distribution (Zhang-Bengio-Singer's re-randomization; checkpoint_epoch -1 in the table).

A "layer" is a convolution or dense layer together with the batch norm that follows it (its
running statistics reset with it; `reset_batchnorm: false` leaves the batch norm trained).  The series is the long table, one row per (reset, layer,
checkpoint, split): `reset`, `layer`, `layer_index`, `checkpoint_epoch`, `split`, `loss`, `acc`,
`loss_drop`, `acc_drop`, `l2_from_init` (||W_t - W_0|| of the layer's kernel, biases ignored).
Scalars: the sgd trial's, plus `spearman_l2_vs_acc_drop` (over layers: the final kernel's distance
from initialization against the test acc_drop of a reset to initialization), `n_critical_layers`
(layers whose reset to initialization costs more than `prune_threshold` relative test accuracy),
`all_reset_test_acc` (every layer at initialization: chance).

`prune_noncritical` (the practical's optional task) then removes the non-critical layers where
the architecture allows it -- a residual block with an identity shortcut whose convolutions are
all non-critical becomes the identity; a stride-1 convolution with as many output as input
channels is dropped with its batch norm and activation -- trains the pruned network from scratch
with the same settings and reports `pruned_train_acc`, `pruned_test_acc`, `pruned_n_params`,
`n_pruned_layers` and `pruned_layers` (their names, comma-separated).

The training curves (epoch, train/test loss and accuracy, learning rate) come back as artifacts
`curve.<column>`, the checkpoints as `epoch0010.<layer>.<array>` (memlab.trials.sgd.Snapshots).
"""
from __future__ import annotations

import time

import numpy as np

from memlab.models import build, init_params, n_params
from memlab.models.architectures import output_shape
from memlab.params import Param, resolve, trial_seed
from memlab.trials import sgd
from memlab.trials._train import INIT, Checkpoint, rng, run_epochs

RERANDOMIZE = 100   # the numpy stream (of the trial's seed) of the fresh draws
RESETS = ("checkpoint", "rerandomize")

# The sgd trial's parameters without `split` (a test set is always used, and the long table has
# a column of that name), with the practical's checkpoints every 10 epochs.
RETURNS = ("train_*", "test_*", "*_to_fit", "epochs_run", "n_train_used", "n_params", "seconds", "examples_per_s",
           "resumed_from", "device_used", "epoch", "frac_corrupted", "spearman_*", "n_critical_layers", "n_layers",
           "first_layer_acc_drop", "median_later_acc_drop", "all_reset_*", "pruned_*", "n_pruned_layers",
           # the long table (series): one row per reset layer x checkpoint x split
           "reset", "layer", "layer_index", "checkpoint_epoch", "split", "loss", "acc", "loss_drop", "acc_drop",
           "l2_from_init", "learning_rate")
PARAMS = {k: v for k, v in sgd.PARAMS.items() if k != "split"}
PARAMS.update({
    "checkpoint_every": Param(10, help="checkpoints at initialization, every this many epochs and at the end"),
    "resets": Param(["checkpoint", "rerandomize"],
                    help="checkpoint: reset a layer to each checkpoint; rerandomize: to a fresh initial draw"),
    "reset_batchnorm": Param(True, choices=(True, False),
                             help="a layer's reset takes the batch norm after it along (scale, shift and "
                                  "running statistics); False: only the convolution / dense weights"),
    "prune_noncritical": Param(False, choices=(False, True), help="remove non-critical layers and retrain"),
    "prune_threshold": Param(0.1, help="a layer is critical when its reset to initialization costs more "
                                       "than this relative test accuracy"),
})


def trial(params: dict) -> dict:
    p = {**resolve(PARAMS, params), "split": "train"}
    check(p)
    seed = trial_seed(params)
    data = sgd.prepare_data(p, seed)
    layers = sgd_layers(p, data)
    init = init_params(layers, data.input_shape, rng(seed, INIT), p["activation"])
    trainer = sgd.make_trainer(p, layers, init, data, seed)
    t0 = time.perf_counter()
    history = run_epochs(trainer, epochs=p["epochs"], eval_every=p["eval_every"], stop=sgd.stopper(p),
                         checkpoint=Checkpoint.from_env(params.get("_key")))
    snaps = trainer.finish(history.epochs)
    result = sgd.summarize(history, data, p, n_params=n_params(init), seconds=time.perf_counter() - t0,
                           device=trainer.device_name)
    curves = result.pop("series")

    units = layer_units(layers)
    if not p["reset_batchnorm"]:
        units = [(name, groups[:1]) for name, groups in units]
    fresh = init_params(layers, data.input_shape, rng(seed, RERANDOMIZE), p["activation"])
    table = study(trainer, units, snaps, fresh if "rerandomize" in p["resets"] else None,
                  "checkpoint" in p["resets"])
    result.update(summary(table, units, snaps, p["prune_threshold"]))
    trainer.trainer.set_canonical_params(snaps[0])
    result["all_reset_test_acc"] = trainer.evaluate()["test_acc"]
    if p["prune_noncritical"]:
        result.update(prune_and_retrain(p, layers, units, result.pop("_noncritical"), data, seed))
    result.pop("_noncritical", None)
    result["series"] = table
    result["artifacts"] = {**{f"curve.{k}": np.asarray(v, dtype=float) for k, v in curves.items()
                              if all(x is not None for x in v)},
                           **sgd.snapshot_artifacts(snaps)}
    return result


def check(p: dict) -> None:
    sgd.check(p)
    if p["checkpoint_every"] < 1:
        raise ValueError(f"criticality needs checkpoints: checkpoint_every must be >= 1, got {p['checkpoint_every']}")
    unknown = [r for r in p["resets"] if r not in RESETS]
    if unknown or not p["resets"]:
        raise ValueError(f"resets must be a non-empty list of {RESETS}, got {p['resets']!r}")


def sgd_layers(p: dict, data) -> tuple:
    return build(p["model"], data.input_shape, data.n_classes, widths=p["widths"], width=p["width"],
                 widen=p["widen"], activation=p["activation"], batchnorm=p["batchnorm"], dropout=p["dropout"])


# ------------------------------------------------------------------- layers ---
def layer_units(layers: tuple) -> list[tuple[str, list[str]]]:
    """[(layer, [its parameter groups])] in network order: each conv / dense with the batch norms
    that follow it (inside residual bodies and shortcuts too)."""
    units: list[tuple[str, list[str]]] = []

    def walk(seq):
        for layer in seq:
            if layer.kind in ("conv", "dense"):
                units.append((layer.name, [layer.name]))
            elif layer.kind == "bn" and units:
                units[-1][1].append(layer.name)
            elif layer.kind in ("concat", "residual"):
                for branch in layer.args:
                    walk(branch)
    walk(layers)
    return units


def with_reset(final: dict, source: dict, groups: list[str]) -> dict:
    """`final` with the parameter groups `groups` taken from `source`."""
    return {**final, **{g: source[g] for g in groups}}


# -------------------------------------------------------------------- study ---
def study(trainer, units, snaps: dict, fresh: dict | None, checkpoints: bool) -> dict:
    """The long table (see the module docstring) for every layer and reset."""
    epochs = list(snaps)
    final, first = snaps[epochs[-1]], snaps[epochs[0]]
    base = evaluate(trainer, final)
    rows: dict[str, list] = {k: [] for k in ("reset", "layer", "layer_index", "checkpoint_epoch", "split", "loss",
                                             "acc", "loss_drop", "acc_drop", "l2_from_init")}

    def add(reset, i, name, epoch, metrics, l2):
        for split in ("train", "test"):
            loss, acc = metrics[f"{split}_loss"], metrics[f"{split}_acc"]
            b_loss, b_acc = base[f"{split}_loss"], base[f"{split}_acc"]
            for k, v in (("reset", reset), ("layer", name), ("layer_index", i), ("checkpoint_epoch", epoch),
                         ("split", split), ("loss", loss), ("acc", acc),
                         ("loss_drop", (loss - b_loss) / max(b_loss, 1e-12)),
                         ("acc_drop", (b_acc - acc) / max(b_acc, 1e-12)), ("l2_from_init", l2)):
                rows[k].append(v)

    for i, (name, groups) in enumerate(units):
        if checkpoints:
            for epoch in epochs:
                l2 = float(np.linalg.norm(snaps[epoch][name]["w"] - first[name]["w"]))
                add("checkpoint", i, name, epoch, evaluate(trainer, with_reset(final, snaps[epoch], groups)), l2)
        if fresh is not None:
            l2 = float(np.linalg.norm(fresh[name]["w"] - first[name]["w"]))
            add("rerandomize", i, name, -1, evaluate(trainer, with_reset(final, fresh, groups)), l2)
    trainer.trainer.set_canonical_params(final)
    return rows


def evaluate(trainer, params: dict) -> dict:
    trainer.trainer.set_canonical_params(params)
    return trainer.evaluate()


def summary(table: dict, units, snaps: dict, threshold: float) -> dict:
    """Spearman correlation, critical layers, and the non-critical ones (for pruning)."""
    from scipy.stats import spearmanr
    epochs = list(snaps)
    drop = {}   # test acc_drop of each layer reset to initialization
    for reset, name, epoch, split, d in zip(table["reset"], table["layer"], table["checkpoint_epoch"],
                                            table["split"], table["acc_drop"], strict=True):
        if split == "test" and ((reset == "checkpoint" and epoch == epochs[0]) or
                                (reset == "rerandomize" and name not in drop)):
            drop[name] = d   # reset to initialization if measured, else to a fresh draw
    names = [n for n, _ in units]
    l2 = [float(np.linalg.norm(snaps[epochs[-1]][n]["w"] - snaps[epochs[0]][n]["w"])) for n in names]
    drops = [drop[n] for n in names]
    rho = spearmanr(l2, drops).statistic if len(names) > 2 and np.ptp(drops) > 0 and np.ptp(l2) > 0 else None
    return {"spearman_l2_vs_acc_drop": None if rho is None else float(rho),
            "n_critical_layers": int(sum(d > threshold for d in drops)), "n_layers": len(names),
            "first_layer_acc_drop": drops[0], "median_later_acc_drop": float(np.median(drops[1:])),
            "_noncritical": [n for n, d in zip(names, drops) if d <= threshold]}


# ------------------------------------------------------------------ pruning ---
def prunable(layers: tuple, input_shape: tuple, noncritical: list[str]) -> list[tuple[int, int, list[str]]]:
    """(start, stop, layer names) of the top-level spans that can go: residual blocks with an
    identity shortcut and all their convolutions non-critical (with the activation after them),
    and shape-keeping stride-1 convolutions (with their batch norm and activation)."""
    spans, shape, i = [], tuple(input_shape), 0
    off = set(noncritical)
    while i < len(layers):
        layer, stop = layers[i], i + 1
        if layer.kind == "residual" and not layer.args[1]:
            names = [n for n, _ in layer_units(layer.args[0])]
            if names and set(names) <= off:
                stop += int(stop < len(layers) and layers[stop].kind == "act")
                spans.append((i, stop, names))
        elif layer.kind == "conv" and layer.name in off and layer.args[2] == 1 and layer.args[0] == shape[-1]:
            while stop < len(layers) and layers[stop].kind in ("bn", "act"):
                stop += 1
            spans.append((i, stop, [layer.name]))
        for j in range(i, stop):
            shape = output_shape(layers[j], shape)
        i = stop
    return spans


def prune_and_retrain(p: dict, layers: tuple, units, noncritical: list[str], data, seed: int) -> dict:
    spans = prunable(layers, data.input_shape, noncritical)
    drop = {j for start, stop, _ in spans for j in range(start, stop)}
    pruned = tuple(layer for j, layer in enumerate(layers) if j not in drop)
    names = [n for _, _, ns in spans for n in ns]
    out = {"n_pruned_layers": len(names), "pruned_layers": ",".join(names)}
    init = init_params(pruned, data.input_shape, rng(seed, INIT), p["activation"])
    out["pruned_n_params"] = n_params(init)
    trainer = sgd.make_trainer({**p, "checkpoint_every": 0}, pruned, init, data, seed)
    history = run_epochs(trainer, epochs=p["epochs"], eval_every=p["eval_every"], stop=sgd.stopper(p))
    out.update({"pruned_train_acc": history.last["train_acc"], "pruned_test_acc": history.last["test_acc"],
                "pruned_epochs_run": history.epochs})
    return out
