"""Load and validate an experiment file, expand its grid into trials.

An experiment file (the reference code's format, run unchanged):

    {"trial": "algorithm",
     "param_grid": {"dataset": ["moons"], "n_iter": {"type_": "range", "start": 10, "stop": 510, "step": 10},
                    "max_bias": [0.0, 0.5], "restart": {"type_": "range", "stop": 50}},
     "plots": [{"type": "heatmap", "name": "interpolation", "idx": "max_bias", "col": "n_iter", ...}]}

Every check runs here, before any trial: a bad file raises ConfigError naming the file, the
key and the fix.  Grids are counted without being built, and iterated lazily in the order of
scikit-learn's ParameterGrid (the reference code's `_index`), without importing scikit-learn.
"""
from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import ModuleType

from memlab import trials as trial_registry
from memlab.errors import ConfigError, choices_hint, closest
from memlab.params import (REQUIRED, Param, Trial, as_param, explicit_seed, fragment,  # noqa: F401  (Trial)
                           key_of_text, plain, seed_of_text)
from memlab.paths import EXPERIMENTS_DIR, RESULTS_DIR
from memlab.trials import TRIALS  # noqa: F401  (re-exported: the registry of short names)

TOP_LEVEL_KEYS = ("trial", "param_grid", "plots", "resources", "timeout", "description")
RESOURCE_KEYS = ("gpus", "mem", "time", "queue", "slots", "cpus", "gpu_complex", "pe")
MAX_TRIALS = 10_000_000   # a run refuses a bigger grid (--max-trials raises it); --dry-run only counts
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")

SHORTHANDS = {  # type_ -> (required keys, optional keys with defaults)
    "range": (("stop",), {"start": 0, "step": 1}),
    "linspace": (("start", "stop", "num"), {"endpoint": True}),
    "logspace": (("start", "stop", "num"), {"base": 10.0, "endpoint": True}),
}


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
    timeout: float | None = None           # seconds a trial may run (None: no limit)
    raw: dict = field(default_factory=dict, repr=False)   # the file as read

    @property
    def trial_fn(self):
        return self.module.trial

    @property
    def plot_only(self) -> bool:
        return self.module is None

    @cached_property
    def trial_id(self) -> str:
        return trial_registry.trial_id(self.trial_name) if self.trial_name else ""

    @cached_property
    def code(self) -> str:
        """Fingerprint of the trial module's code (see memlab.trials.fingerprint)."""
        return trial_registry.fingerprint(self.module) if self.module else ""

    @cached_property
    def defaults(self) -> dict:
        """The declared parameters' defaults (those the grid does not set are columns too)."""
        declared = getattr(self.module, "PARAMS", None) or {}
        return {k: plain(as_param(v).default) for k, v in declared.items() if as_param(v).default is not REQUIRED}

    def __len__(self) -> int:
        return grid_size(self.param_grid)

    def trials(self) -> Iterator[Trial]:
        """Every trial of the grid, in ParameterGrid order, with resolved parameters.

        Keys and seeds are memlab.params.identify() of each trial, computed from canonical
        fragments made once per grid value (planning 127,500 trials costs what hashing them does).
        """
        tid, not_seeded = self.trial_id, set(getattr(self.module, "NOT_SEEDED", ()))
        index = 0
        for g in self.param_grid:
            items = sorted(g.items())
            names = [k for k, _ in items]
            fixed = {k: v for k, v in self.defaults.items() if k not in g}
            order = sorted(k for k in [*names, *fixed] if not k.startswith("_"))
            frags = {k: [fragment(k, v) for v in values] for k, values in items}
            frags.update({k: [fragment(k, v)] for k, v in fixed.items()})
            slot = {k: j for j, k in enumerate(names)}
            seeded = [k not in not_seeded for k in order]
            for choice in itertools.product(*(range(len(v)) for _, v in items)):
                p = {k: items[j][1][choice[j]] for j, k in enumerate(names)}
                p.update(fixed)                       # the grid's values first, then the defaults
                parts = [frags[k][choice[slot[k]]] if k in slot else frags[k][0] for k in order]
                text = "{" + ",".join(parts) + "}"
                seed = explicit_seed(p)
                if seed is None:
                    seed = seed_of_text(text if not not_seeded else
                                        "{" + ",".join(x for x, s in zip(parts, seeded) if s) + "}", tid)
                yield Trial(index, key_of_text(text, tid), p, seed)
                index += 1

    def trial_at(self, index: int) -> Trial:
        """The trial at grid position `index`, without building the others (same as trials())."""
        from memlab.params import identify
        for g in self.param_grid:
            items = sorted(g.items())
            size = math.prod(len(v) for _, v in items)
            if index >= size:
                index -= size
                continue
            point, rest = {}, index
            for k, values in reversed(items):          # the last key varies fastest
                rest, j = divmod(rest, len(values))
                point[k] = values[j]
            p = {k: point[k] for k, _ in items}
            p.update({k: v for k, v in self.defaults.items() if k not in g})
            key, seed = identify(self.trial_id, p, tuple(getattr(self.module, "NOT_SEEDED", ())))
            return Trial(self.index_of(g) + index, key, p, seed)
        raise IndexError(index)

    def index_of(self, grid: dict) -> int:
        """The `_index` of the first trial of one of param_grid's grids."""
        start = 0
        for g in self.param_grid:
            if g is grid:
                return start
            start += math.prod(len(v) for v in g.values())
        raise ValueError("not one of this experiment's grids")

    def grid_points(self) -> Iterator[dict]:
        """The grid's own values per trial, in the same order as trials() (for legacy keys)."""
        return iter_grid(self.param_grid)

    def effective(self) -> dict:
        """The experiment as run: the file, plus what it resolved to (saved with the results)."""
        declared = getattr(self.module, "PARAMS", None) or {}
        return {"name": self.name, "file": str(self.path.resolve()), "trial": self.trial_name,
                "trial_id": self.trial_id, "module": trial_registry.module_name(self.trial_name or ""),
                "code": self.code, "n_trials": len(self), "timeout_s": self.timeout,
                "param_grid": self.param_grid,
                "defaults": {k: v for k, v in self.defaults.items() if k not in _grid_keys(self.param_grid)},
                "declared": sorted(declared), "experiment_file": self.raw}

    def datasets(self) -> set[str]:
        """Every dataset name a trial of this grid loads."""
        if self.plot_only:
            return set()
        keys = getattr(self.module, "DATASET_KEYS", ("dataset",))
        names = set()
        for grid in self.param_grid:
            for k in keys:
                names.update(str(v) for v in grid.get(k, []) if v is not None)
        for k in keys:
            if not any(k in g for g in self.param_grid) and isinstance(self.defaults.get(k), str):
                names.add(self.defaults[k])
        return names


def _grid_keys(grids) -> set:
    return {k for g in grids for k in g}


def iter_grid(grids: list[dict]) -> Iterator[dict]:
    """The points of a list of grids, in scikit-learn ParameterGrid's order (sorted keys, product)."""
    for g in grids:
        items = sorted(g.items())
        if not items:
            yield {}
            continue
        keys = [k for k, _ in items]
        for values in itertools.product(*(v for _, v in items)):
            yield dict(zip(keys, values))


def grid_size(grids: list[dict]) -> int:
    return sum(math.prod(len(v) for v in g.values()) for g in grids)


def experiment_path(name: str) -> Path:
    """`moons` -> experiments/moons.json; a path to a .json file is taken as it is."""
    if name.endswith(".json") or "/" in name:
        return Path(name)
    return EXPERIMENTS_DIR() / f"{name}.json"


def check_name(name: str, path: Path) -> None:
    """The experiment's name becomes results/NAME.csv and plots/NAME/: it must be a plain file name."""
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, not an experiment file", file=path,
                          fix="give an experiment name (--name moons) or the path of a .json file")
    if not NAME.fullmatch(path.stem) or set(path.stem) <= {"."}:
        raise ConfigError(f"'{path.name}' is not a usable experiment name (it names results/NAME.csv)", file=path,
                          fix="name the file with letters, digits, '_', '-' or '.', e.g. experiments/my_grid.json")


def read_json(path: Path) -> dict:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"the file is not UTF-8 text (byte {e.start}: {e.reason})", file=path,
                          fix="save it as UTF-8 JSON") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}", file=path,
                          fix="fix the syntax there (a trailing comma or a missing quote is the usual cause)") from None
    if not isinstance(raw, dict):
        raise ConfigError("the file must hold a JSON object", file=path,
                          fix='write {"trial": ..., "param_grid": ..., "plots": [...]}')
    return raw


def load_experiment(name: str, overrides: dict | None = None, sets=(), store_as: str | None = None) -> Experiment:
    """Load and validate experiments/NAME.json (or a path); `overrides` replaces top-level keys,
    `sets` are command-line `KEY=VALUES` grid overrides (memlab.overrides), `store_as` the name
    its results and plots go under (default: the file's).  A NAME with no file but with saved
    results (results/NAME/experiment.json, e.g. a run with --as NAME) is that saved experiment."""
    path = experiment_path(name)
    if not path.exists() and (saved := saved_experiment(name)) is not None:
        raw, path = saved
        store_as = store_as or name
    elif not path.exists():
        there = sorted(p.stem for p in EXPERIMENTS_DIR().glob("*.json"))
        raise ConfigError(f"no experiment file {path}", file=path,
                          fix=f"create it, or pick one of: {', '.join(there) or '(none)'}{closest(name, there)}")
    else:
        check_name(name, path)
        raw = read_json(path)
    if store_as is not None:
        check_store_as(store_as, path)
    return build_experiment({**raw, **(overrides or {})}, path, name=store_as, sets=sets)


def saved_experiment(name: str) -> tuple[dict, Path] | None:
    """The experiment as last run under NAME (results/NAME/experiment.json), when there is one."""
    path = RESULTS_DIR() / name / "experiment.json"
    if not NAME.fullmatch(name) or not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8")).get("experiment_file")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(raw, dict):
        return None
    import logging
    logging.getLogger("memlab").info(f"{experiment_path(name)} does not exist: using the experiment saved with "
                                     f"its results, {path}", extra={"stderr": True})
    return raw, path


def check_store_as(store_as: str, path: Path) -> None:
    """`--as NAME`: a plain name, and not that of another experiment file (its table would mix)."""
    if not isinstance(store_as, str) or not NAME.fullmatch(store_as) or set(store_as) <= {"."}:
        raise ConfigError(f"--as {store_as!r} is not a usable name (it names results/NAME.csv)",
                          fix="use letters, digits, '_', '-' or '.', e.g. --as moons_quick")
    other = experiment_path(store_as)
    if other.exists() and other.resolve() != path.resolve():
        raise ConfigError(f"--as {store_as}: {other} is another experiment, whose results are stored under that name",
                          fix=f"pick a name without a file in {EXPERIMENTS_DIR()}/, e.g. --as {store_as}_variant")


def build_experiment(raw: dict, path: Path, name: str | None = None, sets=()) -> Experiment:
    """Validate an experiment dict (as read from `path`); `name`: where its results go (default
    the file's stem); `sets`: `--set KEY=VALUES` overrides, whose errors name `--set KEY`."""
    if sets:
        from memlab import overrides
        with overrides.blamed_on_sets(sets):
            exp = build_experiment(overrides.apply_sets(raw, sets), path, name)
        overrides.check_undeclared(exp.module, raw, sets, path)
        return exp
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
        grid = check_params(module, expand_grid(raw["param_grid"], path), path, raw["trial"])
        from memlab import extras
        extras.check(module, grid, path, raw["trial"])      # the frameworks the grid's values select
    plots = raw.get("plots", [])
    if not isinstance(plots, list):
        raise ConfigError("'plots' must be a list of plot objects", file=path, key="plots", fix="wrap it in [...]")
    from memlab import plots as plot_registry
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
    resources = check_resources(raw.get("resources", {}), path)
    timeout = None
    if raw.get("timeout") is not None:
        timeout = parse_duration(raw["timeout"], path, "timeout")
    exp = Experiment(name or path.stem, path, raw.get("trial"), module, grid, plots, resources,
                     raw.get("description", ""), timeout, raw)
    if len(exp) == 0 and not plot_only:
        raise ConfigError("the grid is empty (0 trials)", file=path, key="param_grid",
                          fix="give every parameter at least one value")
    return exp


def check_resources(resources, path) -> dict:
    """Types of the `resources` object, checked at load (a typo fails here, not at submission)."""
    if not isinstance(resources, dict):
        raise ConfigError("'resources' must be an object", file=path, key="resources",
                          fix='write e.g. {"gpus": 1, "mem": "4G", "time": "02:00:00"}')
    from memlab.units import parse_mem, parse_time
    for k, v in resources.items():
        where = f"resources.{k}"
        if k not in RESOURCE_KEYS:
            raise ConfigError(f"unknown resource '{k}'", file=path, key=where, fix=choices_hint(k, RESOURCE_KEYS))
        if k in ("gpus", "slots", "cpus"):
            if not isinstance(v, int) or isinstance(v, bool) or v < (0 if k == "gpus" else 1):
                raise ConfigError(f"'{k}' must be a whole number >= {0 if k == 'gpus' else 1}, got {json.dumps(v)}",
                                  file=path, key=where, fix=f'e.g. "{k}": 1')
        elif k == "mem":
            parse_mem(v, path)
        elif k == "time":
            parse_time(v, path)
        elif not isinstance(v, str) or not v.strip():
            raise ConfigError(f"'{k}' must be a non-empty string, got {json.dumps(v)}", file=path, key=where,
                              fix=f'e.g. "{k}": "all.q"' if k == "queue" else f'e.g. "{k}": "gpu"')
    return dict(resources)


def parse_duration(value, path=None, key="timeout") -> float:
    from memlab.units import parse_time
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        seconds = float(parse_time(value, path, key=key))
    if not seconds > 0 or math.isinf(seconds):
        raise ConfigError(f"'{key}' must be a positive duration, got {json.dumps(value)}", file=path, key=key,
                          fix='e.g. "2h", "30m", "90s" or a number of seconds')
    return seconds


def import_trial(name, path) -> ModuleType:
    if not isinstance(name, str) or not trial_registry.MODULE_NAME.fullmatch(name):
        raise ConfigError(f"'trial' must be a module name, got {json.dumps(name)}", file=path, key="trial",
                          fix=f'e.g. "trial": "algorithm" ({choices_hint(str(name), TRIALS)})')
    modname = trial_registry.module_name(name)
    try:
        module = trial_registry.load(name, str(Path.cwd()))
    except ModuleNotFoundError as e:
        from memlab import extras
        err = extras.missing(e, f"trial '{name}'", file=path, key="trial")
        if err:
            raise err from None
        if e.name and modname.startswith(e.name) or e.name == modname:
            raise ConfigError(f"no trial module '{name}'", file=path, key="trial",
                              fix=f"{choices_hint(name, TRIALS)}, or a module with a trial(params) function") from None
        raise
    if not callable(getattr(module, "trial", None)):
        raise ConfigError(f"module '{modname}' has no trial(params) function", file=path, key="trial",
                          fix=f"define `def trial(params: dict) -> dict` in {getattr(module, '__file__', modname)}")
    return module


def _shorthand_len(kind: str, a: dict) -> int:
    if kind == "range":
        start, stop, step = (float(a[k]) for k in ("start", "stop", "step"))
        if step == 0:
            raise ZeroDivisionError("step must not be 0")
        return max(0, math.ceil((stop - start) / step))
    return int(a["num"])


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
        import numpy as np
        try:
            n = _shorthand_len(kind, a)     # counted before anything is allocated
            if n > MAX_TRIALS:
                raise ConfigError(f"'{kind}' has {n:,} values, more than a grid may hold ({MAX_TRIALS:,})",
                                  file=path, key=where, fix="use a coarser step, or split the experiment")
            if kind == "range":
                values = np.arange(a["start"], a["stop"], a["step"])
            elif kind == "linspace":
                values = np.linspace(a["start"], a["stop"], int(a["num"]), endpoint=a["endpoint"])
            else:
                values = np.logspace(a["start"], a["stop"], int(a["num"]), endpoint=a["endpoint"], base=a["base"])
        except (TypeError, ValueError, ZeroDivisionError, OverflowError) as e:
            raise ConfigError(f"bad '{kind}': {e}", file=path, key=where, fix="use numbers for its options") from None
        if len(values) == 0:
            raise ConfigError(f"'{kind}' gives no values ({json.dumps(value)}): the grid is empty", file=path,
                              key=where, fix="check start, stop and step (stop is excluded)")
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
    for g in grids:
        for k in g:
            if k.startswith("_"):
                raise ConfigError(f"parameter names starting with '_' are reserved for memlab ('{k}')", file=path,
                                  key=f"param_grid.{k}", fix=f"rename it, e.g. '{k.lstrip('_') or 'x'}'")
    return [{k: _expand_value(k, v, path) for k, v in g.items()} for g in grids]


def check_params(module, grids: list[dict], path, trial_name) -> list[dict]:
    """Names, required ones, choices, types and bounds; returns the grids with values coerced
    to the declared types (10.0 from a linspace becomes 10 for an int parameter)."""
    declared = getattr(module, "PARAMS", None)
    if declared is None:
        return grids
    declared = {k: as_param(v) for k, v in declared.items()}
    out = []
    for g in grids:
        checked = {}
        for k, values in g.items():
            if k not in declared:
                raise ConfigError(f"trial '{trial_name}' has no parameter '{k}'", file=path,
                                  key=f"param_grid.{k}", fix=choices_hint(k, declared))
            checked[k] = [_check_value(declared[k], k, v, path) for v in values]
        for k, p in declared.items():
            if p.default is REQUIRED and k not in g:
                raise ConfigError(f"trial '{trial_name}' needs parameter '{k}'", file=path,
                                  key="param_grid", fix=f"add \"{k}\": [...]")
        out.append(checked)
    return out


def _check_value(param: Param, key: str, value, path):
    where = f"param_grid.{key}"
    choices = param.choices
    if choices is not None:
        if value not in choices or (isinstance(value, bool) != any(isinstance(c, bool) for c in choices if c == value)):
            raise ConfigError(f"{json.dumps(value)} is not a valid value of '{key}'", file=path, key=where,
                              fix=choices_hint(str(value), [str(c) for c in choices]))
        return value
    value, why = param.check(value)
    if why:
        hint = f"e.g. {json.dumps(param.default)}" if param.default is not REQUIRED and param.default is not None \
            else "give it a valid value"
        bounds = " and ".join(s for s in (param.min is not None and f">= {param.min}",
                                          param.max is not None and f"<= {param.max}") if s)
        raise ConfigError(f"bad value of '{key}': {why}", file=path, key=where,
                          fix=f"{hint}{f' ({bounds})' if bounds else ''}" + (f"; {param.help}" if param.help else ""))
    return value
