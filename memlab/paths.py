"""Where experiments, datasets, results and plots live.

Everything hangs off one root: $MEMLAB_ROOT if set, else the current working directory
(the reference code's convention: run the scripts from the study's folder).  The values are
read on every call, so tests and job scripts can change directory or environment freely.
"""
from __future__ import annotations

import os
from pathlib import Path


def root() -> Path:
    return Path(os.environ.get("MEMLAB_ROOT") or os.getcwd())


def _sub(name: str):
    def get() -> Path:
        return root() / name
    get.__name__ = f"{name}_dir"
    get.__doc__ = f"The `{name}/` folder under the root."
    return get


EXPERIMENTS_DIR = _sub("experiments")
DATASETS_DIR = _sub("datasets")
RESULTS_DIR = _sub("results")
PLOTS_DIR = _sub("plots")
