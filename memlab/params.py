"""Trial parameters: declarations, canonical form, keys and seeds.

A trial module may declare its parameters so a misspelt key is caught before anything runs:

    PARAMS = {
        "dataset": REQUIRED,
        "n_iter": 100,
        "activation": Param("thres", choices=("thres", "relu")),
    }

A trial's key and seed come from its canonical parameters (not its grid position), so
extending a grid keeps every finished trial valid and a result never depends on the order,
the backend or the number of tasks.
"""
from __future__ import annotations

import hashlib
import json
import numbers
from dataclasses import dataclass

import numpy as np


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()


@dataclass(frozen=True)
class Param:
    default: object = REQUIRED
    choices: tuple | None = None
    help: str = ""


def as_param(value) -> Param:
    return value if isinstance(value, Param) else Param(value)


def plain(value):
    """numpy scalars and arrays -> Python values; floats rounded to 12 significant digits.

    The rounding turns numpy.arange's 0.15000000000000002 into 0.15, so the value a user reads
    in the CSV is the value the trial got and the value its key was computed from.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(f"{float(value):.12g}")
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def _canon(value):
    value = plain(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)          # 1 and 1.0 name the same trial
    if isinstance(value, list):
        return [_canon(v) for v in value]
    if isinstance(value, dict):
        return {k: _canon(v) for k, v in value.items()}
    return value


def canonical(params: dict) -> str:
    """Sorted-key JSON of the user's parameters (keys starting with '_' are bookkeeping)."""
    return json.dumps({k: _canon(v) for k, v in params.items() if not k.startswith("_")},
                      sort_keys=True, separators=(",", ":"))


def trial_key(params: dict) -> str:
    return hashlib.sha256(canonical(params).encode()).hexdigest()[:20]


def trial_seed(params: dict) -> int:
    """The trial's seed: an explicit integer `seed` parameter, else a hash of its parameters."""
    seed = params.get("seed")
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return int(seed)
    return int(hashlib.sha256(("seed:" + canonical(params)).encode()).hexdigest()[:8], 16)


def resolve(declared: dict, params: dict) -> dict:
    """`params` completed with the declared defaults: what a trial reads its settings from.

    A trial calls it first (`p = resolve(PARAMS, params)`), so it also works when called
    directly with only some parameters.  Missing required ones raise KeyError.
    """
    out = {}
    for k, v in declared.items():
        d = as_param(v).default
        if d is REQUIRED and k not in params:
            raise KeyError(f"trial parameter '{k}' is required")
        out[k] = d
    out.update(params)
    return out
