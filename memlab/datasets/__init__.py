"""Datasets: a registry of names, built by `python data.py`, loaded once per process.

Importing this package registers every built-in dataset.
"""
from memlab.datasets import bundled, synthetic  # noqa: F401  (registers)
from memlab.datasets import gp  # noqa: F401  (registers)
from memlab.datasets.registry import (  # noqa: F401
    DATASET_PARAMS, DATASETS, SPLITS, Dataset, dataset_from_params, load_dataset, make_command,
    materialize, n_samples, path, register, require, spec, status)
