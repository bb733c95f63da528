"""The Python API: run an experiment, read its results and draw its plots from a notebook.

    import memlab
    r = memlab.run("moons_demo", set={"n_iter": [20, 40], "restart": [0, 1]}, name="moons_quick")
    r.table.groupby("n_iter")["score"].mean()     # the results, one row per trial
    fig = memlab.plot("moons_quick", only="interpolation")

Everything goes through what the command line uses (memlab.config.load_experiment,
memlab.runner.run, memlab.store.Store), so an experiment given as a name, a path or a dict is
validated exactly like a file, and its results land in the same results/NAME.csv that
`python run.py` and `python plot.py` read.  See docs/api.md.
"""
from __future__ import annotations

import atexit
import copy
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

from memlab.errors import ConfigError, UserError, choices_hint

__all__ = ["run", "results", "plot", "load", "Run", "Status"]


@dataclass(frozen=True)
class Status:
    """Where an experiment stands: how many of its trials are done, failed, pending."""
    trials: int
    done: int
    failed: int
    pending: int

    def __str__(self) -> str:
        return f"{self.trials} trials: {self.done} done, {self.failed} failed, {self.pending} pending"


class Run:
    """An experiment and its results on disk; what memlab.run returns.

    Every attribute reads the results folder when asked, so it is current even while a
    cluster job (run with wait=False) is still adding records.
    """

    def __init__(self, experiment, exit_code: int | None = None):
        self.experiment = experiment
        self.exit_code = exit_code          # the CLI's exit status: 0 every trial done, 1 otherwise

    @property
    def name(self) -> str:
        return self.experiment.name

    @property
    def table(self):
        """The results DataFrame (results/NAME.csv), list parameters as lists; empty before any result."""
        import pandas as pd
        try:
            return results(self.name)
        except UserError:
            return pd.DataFrame()

    @property
    def series(self):
        """The per-epoch series in long form (results/NAME_series.csv), or None."""
        try:
            return results(self.name, series=True)
        except UserError:
            return None

    @property
    def failed(self):
        """One row per failed trial of the grid: its parameters, `_index`, `_key`, `error`, `traceback`."""
        import pandas as pd
        p = self._plan()
        rows = []
        for t in p.failed:
            err = p.state.failed[t.key].get("error") or {}
            rows.append({**t.params, "_index": t.index, "_key": t.key,
                         "error": f"{err.get('type')}: {err.get('message')}", "traceback": err.get("traceback")})
        return pd.DataFrame(rows, columns=None if rows else ["_index", "_key", "error", "traceback"])

    @property
    def status(self) -> Status:
        p = self._plan()
        done, failed = p.done, len(p.failed)
        return Status(len(p.trials), done, failed, len(p.trials) - done - failed)

    def plot(self, only=None, ax=None):
        """memlab.plot for this run's experiment (see there)."""
        return plot(self.experiment, only=only, ax=ax)

    def _plan(self):
        from memlab import runner
        from memlab.store import Store
        return runner.plan(self.experiment, Store(self.name))

    def __repr__(self) -> str:
        if self.experiment.plot_only:
            return f"<memlab.Run {self.name}: plots only>"
        return f"<memlab.Run {self.name}: {self.status}>"


def load(experiment, *, set: dict | None = None, name: str | None = None):
    """The validated experiment: `experiment` is a name (experiments/NAME.json), a path to a
    .json file, or a dict in the file's format (then `name` is required: it names the results).

    `set` replaces grid values, {parameter: values} with values as the file writes them (a
    list is a sweep: {"n_iter": [20, 40]}; one value stands for itself; a list parameter's
    values are lists: {"widths": [[512], [256, 256]]}); every sub-grid of a list of grids
    gets it.  `name` stores the run under another name, so a variant never mixes with the
    experiment's own table.  Raises memlab.errors.ConfigError for a bad experiment.
    """
    from memlab.config import experiment_path, load_experiment
    if isinstance(experiment, dict):
        if not name:
            raise UserError("an experiment given as a dict needs a name (its results go to results/NAME.csv)",
                            fix='call e.g. memlab.run({...}, name="my_grid")')
        raw, label = experiment, f"<dict {name}>"
    elif not isinstance(experiment, (str, Path)):   # already an Experiment
        if set is not None or name is not None:
            raise UserError("set= and name= apply to an experiment's name, path or dict, not to a loaded one",
                            fix="pass the name (or the dict) instead")
        return experiment
    elif set is None and name is None:
        return load_experiment(str(experiment))
    else:
        path = experiment_path(str(experiment))
        if not path.exists():
            return load_experiment(str(experiment))   # its "no experiment file" error, with the choices
        raw, label = json.loads(path.read_text()), str(path)
        name = name or path.stem
    raw = with_values(raw, set, label) if set else raw
    return _load_dict(raw, name, label)


def with_values(raw: dict, values: dict, label: str) -> dict:
    """A copy of the experiment `raw` with `values` replacing those parameters' grid values."""
    if not isinstance(values, dict):
        raise ConfigError("set must be a dict of parameter -> values", file=label, key="set",
                          fix='e.g. set={"n_iter": [20, 40], "max_bias": 0.5}')
    raw = copy.deepcopy(raw)
    grid = raw.get("param_grid")
    grids = grid if isinstance(grid, list) else [grid]
    if not all(isinstance(g, dict) for g in grids):
        raise ConfigError("'param_grid' must be an object (or a list of objects)", file=label, key="param_grid",
                          fix='write e.g. {"n_iter": [10, 20]}')
    for g in grids:
        g.update(copy.deepcopy(values))
    return raw


_scratch: list[Path] = []


def _load_dict(raw: dict, name: str, label: str):
    """Validate a dict by loading it as the file NAME.json (a private scratch copy), so it is
    checked by exactly the code that checks experiment files."""
    from memlab.config import load_experiment
    if not _scratch:
        _scratch.append(Path(tempfile.mkdtemp(prefix="memlab-api-")))
        atexit.register(shutil.rmtree, _scratch[0], True)
    folder = Path(tempfile.mkdtemp(dir=_scratch[0]))
    path = folder / f"{name}.json"
    try:
        path.write_text(json.dumps(raw, indent=1))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"the experiment is not JSON data: {e}", file=label,
                          fix="use only dicts, lists, strings, numbers, booleans and None") from None
    try:
        exp = load_experiment(str(path))
    except UserError as e:
        if e.file is not None and Path(e.file) == path:
            e.file = label   # name what the user gave, not the scratch copy
        raise
    exp.name = name
    return exp


def run(experiment, *, backend: str = "joblib", tasks: int = 1, set: dict | None = None,
        name: str | None = None, retry_failed: bool = False, fail_fast: bool = False,
        progress: bool | None = None, wait: bool = True, resources: dict | None = None,
        scheduler_args: list | None = None, **options) -> Run:
    """Run every pending trial of an experiment, as `python run.py` does, and return its Run.

    `experiment`, `set` and `name` are as in memlab.load.  backend "joblib" (this machine,
    `tasks` worker processes, -1 = every core), "sge" or "slurm" (an array job of `tasks`
    tasks; `resources` such as {"gpus": 1, "mem": "4G"}; `scheduler_args` passed to
    qsub/sbatch).  Finished trials are skipped, so the same call resumes.  A failed trial does
    not raise: see `Run.failed`.  Bad input raises memlab.errors.UserError before any trial.
    """
    from memlab import backends, runner
    if backend not in backends.BACKENDS:
        raise UserError(f"unknown backend '{backend}'", fix=choices_hint(backend, backends.BACKENDS))
    if not isinstance(tasks, int) or tasks == 0 or tasks < -1:
        raise UserError(f"tasks must be a positive number or -1, got {tasks!r}", fix="e.g. tasks=2")
    known = {f.name for f in fields(runner.RunOptions)}
    for k in options:
        if k not in known:
            raise UserError(f"memlab.run() has no option '{k}'", fix=choices_hint(k, known))
    exp = load(experiment, set=set, name=name)
    opts = runner.RunOptions(backend=backend, tasks=tasks, retry_failed=retry_failed, fail_fast=fail_fast,
                             wait=wait, progress=sys.stderr.isatty() if progress is None else progress,
                             resources=dict(resources or {}), scheduler_args=list(scheduler_args or []), **options)
    return Run(exp, runner.run(exp, opts))


def results(name: str, *, series: bool = False):
    """The results table of experiment NAME (results/NAME.csv) as a DataFrame, list and dict
    parameters decoded back from their JSON text; `series=True`: the per-epoch table."""
    import pandas as pd

    from memlab.export import decode_json_columns
    from memlab.store import Store
    store = Store(name)
    path = store.series_path if series else store.csv_path
    if not path.exists():
        raise UserError(f"no results yet: {path} does not exist", file=path,
                        fix=f"run it first: memlab.run({name!r}) or `python run.py --name {name}`")
    return decode_json_columns(pd.read_csv(path))


def plot(experiment, *, only=None, ax=None, set: dict | None = None, name: str | None = None):
    """The experiment's declared plots as matplotlib figures, drawn from its results.

    `only`: a plot name (returns that one figure) or a list of names (returns a list, as
    without `only`).  `ax`: a subplot of a figure of yours (or one per plot, for a list), so
    panels from several plots, or several experiments, compose into one figure; each plot is
    drawn in its subplot's place and ax's figure is returned.  `experiment`, `set` and `name`
    are as in memlab.load (plot a run stored under another name with name=...).
    """
    from memlab.plotting import figures, select
    exp = load(experiment, set=set, name=name)
    single = isinstance(only, str)
    specs = select(exp, [only] if single else only)
    axes = None
    if ax is not None:
        axes = [ax] if single or not _is_sequence(ax) else _flat(ax)
        if len(axes) != len(specs):
            raise UserError(f"{len(axes)} axes for {len(specs)} plots ({', '.join(s['name'] for s in specs)})",
                            fix="give one subplot per plot, or choose the plots with only=[...]")
    figs = figures(exp, specs, axes)
    if axes is not None:
        figs = [_root(f) for f in figs]   # the user's figure, not the subfigure drawn in ax's place
    return figs[0] if single else figs


def _root(fig):
    while fig.figure is not fig:
        fig = fig.figure
    return fig


def _is_sequence(ax) -> bool:
    return hasattr(ax, "__len__") and not hasattr(ax, "get_subplotspec")


def _flat(ax) -> list:
    import numpy as np
    return list(np.asarray(ax, dtype=object).ravel())
