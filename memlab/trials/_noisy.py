"""Clean-vs-corrupted metrics for training on noisy labels, shared by the trials that train on them.

    python run.py --name sparsity_noisy_labels     # the sparse trial records these every epoch

A label corruption (memlab.datasets.corrupt) keeps a per-example mask `corrupted` of the
training rows whose label it changed.  Given a network's predictions on the training set:

    train_acc        against the labels trained on (the noisy ones), all examples
    clean_acc        the correctly labelled examples, against their (true) labels
    noisy_correct    the corrupted examples: fraction predicted as their *true* label
    noisy_memorized  the corrupted examples: fraction predicted as their *noisy* label

(Ye et al. 2022, "The price of sparsity", Fig. 4: "correct" and "memorized"; Zhang et al. 2017
report the training accuracy on the corrupted and the clean examples separately, `split_accuracy`).
An empty subset gives NaN.
"""
from __future__ import annotations

import numpy as np


def _mean(a: np.ndarray) -> float:
    return float(a.mean()) if a.size else float("nan")


def label_noise_metrics(pred, y_trained, y_true) -> dict[str, float]:
    """The four metrics above from predicted classes, the labels trained on and the true labels."""
    pred, y, t = (np.asarray(a).astype(np.int64).ravel() for a in (pred, y_trained, y_true))
    noisy = y != t
    return {"train_acc": _mean(pred == y), "clean_acc": _mean(pred[~noisy] == y[~noisy]),
            "noisy_correct": _mean(pred[noisy] == t[noisy]),
            "noisy_memorized": _mean(pred[noisy] == y[noisy])}


def split_accuracy(pred, y_trained, corrupted) -> dict[str, float]:
    """Training accuracy (against the labels trained on) on the clean and on the corrupted rows;
    {} when the dataset carries no `corrupted` mask (no label corruption)."""
    if corrupted is None:
        return {}
    pred, y = np.asarray(pred).ravel(), np.asarray(y_trained).ravel()
    c = np.asarray(corrupted, dtype=bool).ravel()
    hit = pred == y
    return {"train_acc_clean": _mean(hit[~c]), "train_acc_corrupted": _mean(hit[c])}


def torch_predict(model, X, batch_size: int = 1024) -> np.ndarray:
    """Predicted classes of a torch classifier on X, in eval mode (the mode is restored)."""
    import torch
    was = model.training
    model.eval()
    with torch.inference_mode():
        out = [model(X[i:i + batch_size]).argmax(1) for i in range(0, len(X), batch_size)]
    model.train(was)
    return torch.cat(out).cpu().numpy() if out else np.zeros(0, np.int64)
