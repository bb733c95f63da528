"""The trial registry: short names in experiment files -> trial modules; a trial's identity and code.

    {"trial": "sgd", ...}            -> memlab.trials.sgd
    {"trial": "mypkg.mytrial", ...}  -> any importable module with a trial(params) function
    {"trial": "mytrial", ...}        -> mytrial.py beside the experiment's working directory

The trials that train networks live here too: `sgd` (Zhang et al.'s experiments) and the
lecture's others; shared training machinery: _train (framework-free), _torch, _jax.
This module stays light (no numpy): worker processes import it before any trial.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import inspect
import re
import sys
from types import ModuleType

TRIALS = {
    "algorithm": "memlab.algorithm",
    "sgd": "memlab.trials.sgd",
    "receptive_fields": "memlab.trials.receptive_fields",
    "min_norm": "memlab.trials.min_norm",
    "kernel": "memlab.trials.kernel",
    "autoencoder": "memlab.trials.autoencoder",
    "sparse": "memlab.trials.sparse",
    "explicit": "memlab.trials.explicit",
    "criticality": "memlab.trials.criticality",
}
_NAMES = {module: short for short, module in TRIALS.items()}
MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def module_name(name: str) -> str:
    """The module to import for the experiment file's `trial`."""
    return TRIALS.get(name, name)


def trial_id(name: str) -> str:
    """The name that enters a trial's key: the registry's short name when it has one.

    So "sgd" and "memlab.trials.sgd" name the same trials, and moving a registered module
    (a refactoring) does not make its finished trials new.
    """
    return _NAMES.get(module_name(name), module_name(name))


def load(name: str, cwd: str | None = None) -> ModuleType:
    if cwd and cwd not in sys.path:
        sys.path.append(cwd)   # the user's own trial modules beside their experiments
    return importlib.import_module(module_name(name))


def fingerprint(module: ModuleType) -> str:
    """The version of a trial's code recorded with each result: its VERSION, else a hash of its source.

    A result whose fingerprint differs from the current code's is *stale*: reported by
    `run.py --status` and recomputed by `--rerun-stale`.

    A trial whose code lies partly in other modules names them in `SOURCES` (module names); their
    source files enter the hash too, read from disk without importing them.
    """
    version = getattr(module, "VERSION", None)
    if version is not None:
        return f"v{version}"
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return "unknown"
    digest = hashlib.sha256(source.encode())
    for name in getattr(module, "SOURCES", ()):
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or not os.path.isfile(spec.origin):
            return "unknown"
        with open(spec.origin, "rb") as f:
            digest.update(f.read())
    return "src-" + digest.hexdigest()[:12]
