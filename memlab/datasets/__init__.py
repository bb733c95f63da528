"""Datasets: a registry of names, built by `python data.py`, loaded once per process.

Importing this package registers every built-in dataset.
"""
from memlab.datasets import bundled, gp, images, synthetic, user  # noqa: F401  (registers; user: your npz files)
from memlab.datasets.corrupt import CORRUPTIONS  # noqa: F401
from memlab.datasets.preprocess import PREPROCESS_PARAM, PREPROCESSINGS, Preprocess  # noqa: F401
from memlab.datasets.registry import (  # noqa: F401
    DATASET_PARAMS, DATASETS, SPLITS, Dataset, dataset_from_params, fingerprint, load_dataset, make_command,
    is_user_file, materialize, n_samples, path, register, require, spec, status, user_files)
