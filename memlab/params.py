"""Trial parameters: declarations, canonical form, keys and seeds.

A trial module may declare its parameters so a misspelt key is caught before anything runs:

    PARAMS = {
        "dataset": REQUIRED,
        "n_iter": 100,
        "activation": Param("thres", choices=("thres", "relu")),
    }

A trial's key and seed come from its trial module and its *fully resolved* parameters (the
grid's values plus the module's declared defaults), not from its grid position: extending a grid
keeps every finished trial valid, a result never depends on the order, the backend or the number
of tasks, and changing a declared default makes the affected trials new ones.

Types are checked at load: a declared default's type is the parameter's type unless `type` says
otherwise (an int default takes whole numbers, a float default any real number but NaN, a str
default strings...); `None` is accepted only where the default is None or `nullable=True`;
`min`/`max` bound numbers.
"""
from __future__ import annotations

import hashlib
import json
import math
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
    type: type | tuple | None = None     # None: inferred from the default (no check for None/REQUIRED)
    min: float | None = None
    max: float | None = None
    nullable: bool = False               # None accepted too (always when the default is None)

    def types(self) -> tuple:
        """The Python types a value may have (empty: anything)."""
        if self.type is not None:
            return self.type if isinstance(self.type, tuple) else (self.type,)
        d = self.default
        if d is REQUIRED or d is None:
            return ()
        if isinstance(d, bool):
            return (bool,)
        if isinstance(d, int):
            return (int,)
        if isinstance(d, float):
            return (float,)
        if isinstance(d, (list, tuple)):
            return (list,)
        return (type(d),)

    def check(self, value) -> tuple[object, str | None]:
        """(the value as the trial gets it, None) or (value, why it is refused)."""
        if value is None:
            ok = self.nullable or self.default is None or (self.type is not None and type(None) in self.types())
            return value, None if ok else "null is not accepted (the parameter needs a value)"
        types = self.types()
        if types:
            value, why = _coerce(value, types)
            if why:
                return value, why
        if isinstance(value, float) and math.isnan(value):
            return value, "NaN is not a valid value"
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            if self.min is not None and value < self.min:
                return value, f"{value} is below the minimum {self.min}"
            if self.max is not None and value > self.max:
                return value, f"{value} is above the maximum {self.max}"
        return value, None


_TYPE_NAMES = {bool: "true/false", int: "a whole number", float: "a number", str: "a string",
               list: "a list", dict: "an object"}


def _coerce(value, types: tuple) -> tuple[object, str | None]:
    """Accept `value` for `types`: an int for a float, a whole float (10.0 from linspace) for an int."""
    is_bool = isinstance(value, bool)
    for t in types:
        if t is bool and is_bool:
            return value, None
        if is_bool:
            continue
        if t is int and isinstance(value, numbers.Integral):
            return int(value), None
        if t is int and isinstance(value, float) and value.is_integer():
            return int(value), None
        if t is float and isinstance(value, numbers.Real):
            return float(value), None
        if t not in (int, float) and isinstance(value, t):
            return value, None
    want = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
    return value, f"{json.dumps(value) if _jsonable(value) else repr(value)} is not {want}"


def _jsonable(v) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


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


def fragment(key: str, value) -> str:
    """One `"key":value` of canonical(): canonical(d) == "{" + ",".join(sorted fragments) + "}"."""
    return json.dumps(key) + ":" + json.dumps(_canon(value), sort_keys=True, separators=(",", ":"))


def key_of_text(text: str, trial: str = "") -> str:
    if trial:
        text = f"trial={trial};{text}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def seed_of_text(text: str, trial: str = "") -> int:
    if trial:
        text = f"trial={trial};{text}"
    return int(hashlib.sha256(("seed:" + text).encode()).hexdigest()[:8], 16)


def explicit_seed(params: dict) -> int | None:
    seed = params.get("seed")
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return int(seed)
    return None


def trial_key(params: dict, trial: str = "") -> str:
    """The trial's identity: a hash of its trial module's name and its resolved parameters.

    `trial=""` gives the key scheme of memlab <= 0.1 (parameters alone): see `legacy_key`.
    """
    return key_of_text(canonical(params), trial)


def legacy_key(grid_point: dict) -> str:
    """The key memlab <= 0.1 gave a trial: a hash of its grid values alone (no module, no defaults)."""
    return trial_key(grid_point)


def trial_seed(params: dict, trial: str = "", not_seeded=()) -> int:
    """The trial's seed: an explicit integer `seed`, else the runner's `_seed`, else a hash.

    The runner passes every trial `_seed`, a hash of its module and resolved parameters without
    those the module lists in NOT_SEEDED (parameters that choose how, not what: a grid over them
    compares implementations on the same draws).  Called directly without `_seed`, a trial is
    seeded from a hash of the parameters it was given.
    """
    seed = explicit_seed(params)
    if seed is not None:
        return seed
    if isinstance(params.get("_seed"), int):
        return params["_seed"]
    return seed_of_text(canonical({k: v for k, v in params.items() if k not in not_seeded}), trial)


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


@dataclass(frozen=True)
class Trial:
    """One grid point, ready to run."""
    index: int          # position in the grid (`_index`, the reference code's column)
    key: str            # hash of the trial module and the resolved parameters: its identity
    params: dict        # the resolved parameters (grid values + declared defaults), plain Python values
    seed: int = 0       # derived from the same (or the explicit `seed`), passed as `_seed`

    def call_params(self) -> dict:
        """What trial(params) receives: the resolved parameters plus `_index`, `_key` and `_seed`."""
        return {**self.params, "_index": self.index, "_key": self.key, "_seed": self.seed}


def identify(trial: str, params: dict, not_seeded=()) -> tuple[str, int]:
    """(key, seed) of the trial module `trial` run with the resolved `params`."""
    return trial_key(params, trial), trial_seed(params, trial, not_seeded)
