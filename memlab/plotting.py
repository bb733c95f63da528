"""Render an experiment's declared plots: to files (what plot.py calls) or to figures (memlab.plot)."""
from __future__ import annotations

from pathlib import Path

from memlab import io
from memlab.config import load_experiment
from memlab.errors import ConfigError, choices_hint
from memlab.paths import PLOTS_DIR
from memlab.store import Store


def select(exp, only=None) -> list[dict]:
    """The experiment's plot specs, or those named in `only` (in the file's order)."""
    specs = exp.plots
    if only:
        names = [s["name"] for s in specs]
        for n in only:
            if n not in names:
                raise ConfigError(f"no plot named '{n}'", file=exp.path, key="plots",
                                  fix=choices_hint(n, names))
        specs = [s for s in specs if s["name"] in only]
    if not specs:
        raise ConfigError("no plots declared", file=exp.path, key="plots",
                          fix='add e.g. "plots": [{"type": "heatmap", "name": "interpolation", ...}]')
    return specs


def tables(exp, specs: list[dict]):
    """(results table or None, PlotContext): what the plot functions of `specs` draw from."""
    import pandas as pd

    from memlab import plots
    store = Store(exp.name)
    df = series = None
    if any(plots.PLOTS[s["type"]].uses_results for s in specs):
        if not store.csv_path.exists():
            raise ConfigError(f"no results yet: {store.csv_path} does not exist", file=exp.path,
                              fix=f"run `python run.py --name {exp.name}` first")
        df = plots.add_derived_columns(pd.read_csv(store.csv_path))
        if store.series_path.exists():
            series = pd.read_csv(store.series_path)
    return df, plots.PlotContext(name=exp.name, experiment=exp, series=series, results_dir=store.base)


def figures(exp, specs: list[dict], axes=None) -> list:
    """One figure per spec; with `axes` (one subplot per spec), each plot is drawn in its
    subplot's place and its figure is a subfigure of that subplot's figure."""
    from memlab import plots
    df, ctx = tables(exp, specs)
    axes = [None] * len(specs) if axes is None else list(axes)
    return [plots.render(spec, df, ctx, ax=ax) for spec, ax in zip(specs, axes)]


def render_experiment(name, *, fmt: str = "pdf", only=None) -> list[Path]:
    """Write plots/NAME/PLOT.FMT for each declared plot; `name` is a name, a path or an Experiment."""
    import matplotlib.pyplot as plt

    from memlab import plots
    exp = load_experiment(str(name)) if isinstance(name, (str, Path)) else name
    specs = select(exp, only)
    df, ctx = tables(exp, specs)
    out_dir = PLOTS_DIR() / exp.name
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in specs:
        fig = plots.render(spec, df, ctx)   # one at a time: never every figure in memory
        path = out_dir / f"{spec['name']}.{fmt}"
        with io.atomic_path(path, suffix=f".{fmt}") as tmp:
            fig.savefig(tmp, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written
