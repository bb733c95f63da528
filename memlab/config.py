"""Load and validate an experiment file, expand its grid into trials.

An experiment file (the reference code's format, run unchanged):

    {"trial": "algorithm",
     "param_grid": {"dataset": ["moons"], "n_iter": {"type_": "range", "start": 10, "stop": 510, "step": 10},
                    "max_bias": [0.0, 0.5], "restart": {"type_": "range", "stop": 50}},
     "plots": [{"type": "heatmap", "name": "interpolation", "idx": "max_bias", "col": "n_iter", ...}]}

Every check runs here, before any trial: a bad file raises ConfigError naming the file, the
key and the fix.
"""
from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import ModuleType

import numpy as np
from sklearn.model_selection import ParameterGrid

from memlab import plots as plot_registry
from memlab.errors import ConfigError, choices_hint, closest
from memlab.params import REQUIRED, as_param, plain, trial_key
from memlab.paths import EXPERIMENTS_DIR

TOP_LEVEL_KEYS = ("trial", "param_grid", "plots", "resources", "description")
RESOURCE_KEYS = ("gpus", "mem", "time", "queue", "slots", "cpus", "gpu_complex", "pe")

# Short trial names -> modules.  Any importable module path works too ("mypkg.mytrial"), and
# so does a module file beside the experiment's working directory ("mytrial").
TRIALS = {
    "algorithm": "algorithm",
    "sgd": "memlab.trials.sgd",
    "receptive_fields": "memlab.trials.receptive_fields",
    "min_norm": "memlab.trials.min_norm",
    "kernel": "memlab.trials.kernel",
    "autoencoder": "memlab.trials.autoencoder",
    "sparse": "memlab.trials.sparse",
    "explicit": "memlab.trials.explicit",
}

SHORTHANDS = {  # type_ -> (required keys, optional keys with defaults)
    "range": (("stop",), {"start": 0, "step": 1}),
    "linspace": (("start", "stop", "num"), {"endpoint": True}),
    "logspace": (("start", "stop", "num"), {"base": 10.0, "endpoint": True}),
}


@dataclass(frozen=True)
class Trial:
    index: int          # position in the grid (`_index`, the reference code's column)
    key: str            # hash of the canonical parameters: identity across grid edits
    params: dict        # the grid point, plain Python values

    def call_params(self) -> dict:
        """What trial(params) receives: the grid point plus `_index` and `_key`."""
        return {**self.params, "_index": self.index, "_key": self.key}


@dataclass
class Experiment:
    name: str
    path: Path
    trial_name: str
    module: ModuleType = field(repr=False)
    param_grid: list[dict]
    plots: list[dict]
    resources: dict
    description: str = ""

    @property
    def trial_fn(self):
        return self.module.trial

    @cached_property
    def grid(self) -> ParameterGrid:
        return ParameterGrid(self.param_grid)

    @property
    def plot_only(self) -> bool:
        return self.module is None

    def __len__(self) -> int:
        return len(self.grid)

    def trials(self) -> Iterator[Trial]:
        for i, p in enumerate(self.grid):
            p = {k: plain(v) for k, v in p.items()}
            yield Trial(i, trial_key(p), p)

    def datasets(self) -> set[str]:
        """Every dataset name a trial of this grid loads."""
        if self.plot_only:
            return set()
        keys = getattr(self.module, "DATASET_KEYS", ("dataset",))
        names = set()
        for grid in self.param_grid:
            for k in keys:
                names.update(str(v) for v in grid.get(k, []) if v is not None)
        declared = getattr(self.module, "PARAMS", {}) or {}
        for k in keys:
            if k in declared and not any(k in g for g in self.param_grid):
                default = as_param(declared[k]).default
                if isinstance(default, str):
                    names.add(default)
        return names


def experiment_path(name: str) -> Path:
    """`moons` -> experiments/moons.json; a path to a .json file is taken as it is."""
    if name.endswith(".json") or "/" in name:
        return Path(name)
    return EXPERIMENTS_DIR() / f"{name}.json"


def load_experiment(name: str) -> Experiment:
    path = experiment_path(name)
    if not path.exists():
        there = sorted(p.stem for p in EXPERIMENTS_DIR().glob("*.json"))
        raise ConfigError(f"no experiment file {path}", file=path,
                          fix=f"create it, or pick one of: {', '.join(there) or '(none)'}{closest(name, there)}")
    text = path.read_text()
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}", file=path,
                          fix="fix the syntax there (a trailing comma or a missing quote is the usual cause)") from None
    if not isinstance(raw, dict):
        raise ConfigError("the file must hold a JSON object", file=path,
                          fix='write {"trial": ..., "param_grid": ..., "plots": [...]}')
    for k in raw:
        if k not in TOP_LEVEL_KEYS:
            raise ConfigError(f"unknown top-level key '{k}'", file=path, key=k,
                              fix=choices_hint(k, TOP_LEVEL_KEYS))
    plot_only = "trial" not in raw and "param_grid" not in raw and bool(raw.get("plots"))
    for k in ("trial", "param_grid"):
        if k not in raw and not plot_only:
            raise ConfigError(f"missing '{k}'", file=path, key=k,
                              fix='add e.g. "trial": "algorithm"' if k == "trial" else 'add "param_grid": {...}')
    if plot_only:   # the reference code's lines.json: plots drawn from datasets and fitted models alone
        module, grid = None, []
    else:
        module = import_trial(raw["trial"], path)
        grid = expand_grid(raw["param_grid"], path)
        check_params(module, grid, path, raw["trial"])
    plots = raw.get("plots", [])
    if not isinstance(plots, list):
        raise ConfigError("'plots' must be a list of plot objects", file=path, key="plots", fix="wrap it in [...]")
    for i, spec in enumerate(plots):
        plot_registry.validate(spec, file=path, where=f"plots[{i}]")
    # --- issue 14 hook: a plot naming a column the trial does not produce fails here (RETURNS) ---
    columns = None if plot_only else plot_registry.trial_columns(module, grid)
    for i, spec in enumerate(plots):
        plot_registry.check_columns(spec, columns, file=path, where=f"plots[{i}]")
    # --- end of issue 14 hook ---
    names = [p["name"] for p in plots]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"plot names must be unique, repeated: {', '.join(sorted(dup))}", file=path,
                          key="plots", fix="rename one of them")
    resources = raw.get("resources", {})
    if not isinstance(resources, dict):
        raise ConfigError("'resources' must be an object", file=path, key="resources",
                          fix='write e.g. {"gpus": 1, "mem": "4G", "time": "02:00:00"}')
    for k in resources:
        if k not in RESOURCE_KEYS:
            raise ConfigError(f"unknown resource '{k}'", file=path, key=f"resources.{k}",
                              fix=choices_hint(k, RESOURCE_KEYS))
    exp = Experiment(path.stem, path, raw.get("trial"), module, grid, plots, resources, raw.get("description", ""))
    if len(exp) == 0 and not plot_only:
        raise ConfigError("the grid is empty (0 trials)", file=path, key="param_grid",
                          fix="give every parameter at least one value")
    return exp


def import_trial(name, path) -> ModuleType:
    if not isinstance(name, str) or not name:
        raise ConfigError("'trial' must be a module name", file=path, key="trial", fix='e.g. "trial": "algorithm"')
    modname = TRIALS.get(name, name)
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.append(cwd)   # the user's own trial modules beside their experiments
    try:
        module = importlib.import_module(modname)
    except ModuleNotFoundError as e:
        if e.name and modname.startswith(e.name) or e.name == modname:
            raise ConfigError(f"no trial module '{name}'", file=path, key="trial",
                              fix=f"{choices_hint(name, TRIALS)}, or a module with a trial(params) function") from None
        raise
    if not callable(getattr(module, "trial", None)):
        raise ConfigError(f"module '{modname}' has no trial(params) function", file=path, key="trial",
                          fix=f"define `def trial(params: dict) -> dict` in {getattr(module, '__file__', modname)}")
    return module


def _expand_value(key, value, path):
    where = f"param_grid.{key}"
    if isinstance(value, dict):
        kind = value.get("type_")
        if kind not in SHORTHANDS:
            raise ConfigError(f"unknown shorthand type_ '{kind}'", file=path, key=where,
                              fix=f"use a list of values, or {choices_hint(str(kind), SHORTHANDS)}")
        need, optional = SHORTHANDS[kind]
        for k in need:
            if k not in value:
                raise ConfigError(f"'{kind}' needs '{k}'", file=path, key=f"{where}.{k}",
                                  fix=f"add \"{k}\": ... ({kind} takes {', '.join([*need, *optional])})")
        for k in value:
            if k != "type_" and k not in need and k not in optional:
                raise ConfigError(f"'{kind}' has no option '{k}'", file=path, key=f"{where}.{k}",
                                  fix=choices_hint(k, [*need, *optional]))
        a = {**optional, **{k: v for k, v in value.items() if k != "type_"}}
        try:
            if kind == "range":
                values = np.arange(a["start"], a["stop"], a["step"])
            elif kind == "linspace":
                values = np.linspace(a["start"], a["stop"], int(a["num"]), endpoint=a["endpoint"])
            else:
                values = np.logspace(a["start"], a["stop"], int(a["num"]), endpoint=a["endpoint"], base=a["base"])
        except (TypeError, ValueError, ZeroDivisionError) as e:
            raise ConfigError(f"bad '{kind}': {e}", file=path, key=where, fix="use numbers for its options") from None
        return [plain(v) for v in values]
    if isinstance(value, list):
        if not value:
            raise ConfigError("the grid is empty (0 trials): a parameter has no values", file=path, key=where,
                              fix="give it at least one value, or remove it")
        return [plain(v) for v in value]
    return [plain(value)]   # a single value stands for a one-element list


def expand_grid(param_grid, path) -> list[dict]:
    grids = param_grid if isinstance(param_grid, list) else [param_grid]
    if not grids or not all(isinstance(g, dict) for g in grids):
        raise ConfigError("'param_grid' must be an object (or a list of objects) of parameter -> values",
                          file=path, key="param_grid", fix='write e.g. {"n_iter": [10, 20], "max_bias": [0.5]}')
    return [{k: _expand_value(k, v, path) for k, v in g.items()} for g in grids]


def check_params(module, grids: list[dict], path, trial_name) -> None:
    declared = getattr(module, "PARAMS", None)
    if declared is None:
        return
    declared = {k: as_param(v) for k, v in declared.items()}
    for g in grids:
        for k, values in g.items():
            if k not in declared:
                raise ConfigError(f"trial '{trial_name}' has no parameter '{k}'", file=path,
                                  key=f"param_grid.{k}", fix=choices_hint(k, declared))
            choices = declared[k].choices
            for v in values:
                if choices is not None and v not in choices:
                    raise ConfigError(f"'{v}' is not a valid value of '{k}'", file=path,
                                      key=f"param_grid.{k}", fix=choices_hint(str(v), [str(c) for c in choices]))
        for k, p in declared.items():
            if p.default is REQUIRED and k not in g:
                raise ConfigError(f"trial '{trial_name}' needs parameter '{k}'", file=path,
                                  key="param_grid", fix=f"add \"{k}\": [...]")

