"""Render an experiment's declared plots to files, or its report page (what plot.py calls).

    python plot.py --name moons                    # plots/moons/*.pdf
    python plot.py --name moons --format html      # plots/moons/index.html + one PNG per plot

One plot that fails (a bad spec, a column the results lack) does not stop the others: each
failure is returned beside the files written, and plot.py names it and exits 1.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from memlab import io
from memlab.config import load_experiment
from memlab.errors import ConfigError, UserError, choices_hint
from memlab.paths import PLOTS_DIR
from memlab.store import Store

FORMATS = ("pdf", "png", "svg", "html")
PRINT_DPI = 300      # raster output fit for print; vector formats ignore it
PAGE_DPI = 150       # the report page's PNGs: sharp on a laptop screen, small to copy


@dataclass
class Figure:
    """One plot's outcome: the file written, or the error; and its caption sentences."""
    spec: dict
    path: Path | None = None
    error: str | None = None
    caption: list = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Rendered:
    experiment: object
    figures: list[Figure]
    page: Path | None = None

    @property
    def written(self) -> list[Path]:
        return [f.path for f in self.figures if f.path] + ([self.page] if self.page else [])

    @property
    def failed(self) -> list[Figure]:
        return [f for f in self.figures if f.error]


def select(exp, only=None) -> list[dict]:
    """The experiment's plot specs, or those named in `only` (in the file's order)."""
    specs = exp.plots
    if only:
        names = [s["name"] for s in specs]
        for n in only:
            if n not in names:
                raise ConfigError(f"no plot named '{n}'", file=exp.path, key="plots", fix=choices_hint(n, names))
        specs = [s for s in specs if s["name"] in only]
    return specs


def load_tables(exp, store: Store, needed: bool):
    """(results, series) with the derived columns, or (None, None) when there are no results."""
    import pandas as pd

    from memlab import plots
    if not store.csv_path.exists():
        if needed:
            raise ConfigError(f"no results yet: {store.csv_path} does not exist", file=exp.path,
                              fix=f"run `python run.py --name {exp.name}` first")
        return None, None
    df = plots.add_derived_columns(pd.read_csv(store.csv_path))
    series = pd.read_csv(store.series_path) if store.series_path.exists() else None
    return df, series


def draw(spec: dict, df, ctx, path: Path, fmt: str, dpi: int | None, caption: bool | None = None) -> Figure:
    """Render one spec to `path`; any error becomes the Figure's `error`, not an exception."""
    import matplotlib.pyplot as plt

    from memlab import plots
    out = Figure(spec)
    t0 = time.perf_counter()
    try:
        effective = spec if caption is None else {**spec, "caption": caption}
        fig = plots.render(effective, df, ctx)
        out.caption = list(getattr(fig, "memlab_caption", []))
        dpi = dpi or spec.get("dpi") or (PRINT_DPI if fmt == "png" else None)
        with io.atomic_path(path, suffix=f".{fmt}") as tmp:
            fig.savefig(tmp, format=fmt, bbox_inches="tight", dpi=dpi or "figure")
        plt.close(fig)
        out.path = path
    except UserError as e:
        out.error = str(e)
    except Exception as e:   # a bug in one plot type must not cost the others
        import traceback
        out.error = f"{type(e).__name__}: {e}\n" + "".join(traceback.format_exception(e)[-6:])
    out.seconds = time.perf_counter() - t0
    return out


def tables(exp, specs: list[dict]):
    """(results table or None, PlotContext): what the plot functions of `specs` draw from."""
    from memlab import plots
    store = Store(exp.name)
    needs_results = any(plots.PLOTS[s["type"]].uses_results for s in specs)
    df, series = load_tables(exp, store, needed=needs_results)
    return df, plots.PlotContext(name=exp.name, experiment=exp, series=series, results_dir=store.base)


def figures(exp, specs: list[dict], axes=None) -> list:
    """One figure per spec (memlab.plot); with `axes` (one subplot per spec), each plot is drawn
    in its subplot's place and its figure is a subfigure of that subplot's figure."""
    from memlab import plots
    df, ctx = tables(exp, specs)
    axes = [None] * len(specs) if axes is None else list(axes)
    return [plots.render(spec, df, ctx, ax=ax) for spec, ax in zip(specs, axes)]


def render_experiment(name, *, fmt: str = "pdf", only=None, dpi: int | None = None) -> Rendered:
    """Render every selected plot of experiments/NAME.json into plots/NAME/ (`name`: a name, a
    path or a loaded Experiment); fmt "html" also writes plots/NAME/index.html (memlab.plots.report)."""
    from memlab import plots
    exp = load_experiment(str(name)) if isinstance(name, (str, Path)) else name
    specs = select(exp, only)
    if not specs and fmt != "html":
        raise ConfigError("no plots declared", file=exp.path, key="plots",
                          fix='add e.g. "plots": [{"type": "heatmap", "name": "interpolation", ...}]')
    store = Store(exp.name)
    needs_results = any(plots.PLOTS[s["type"]].uses_results for s in specs)
    df, series = load_tables(exp, store, needed=needs_results and fmt != "html")
    ctx = plots.PlotContext(name=exp.name, experiment=exp, series=series, results_dir=store.base)
    out_dir = PLOTS_DIR() / exp.name
    out_dir.mkdir(parents=True, exist_ok=True)
    image = "png" if fmt == "html" else fmt
    figures = []
    for spec in specs:
        if df is None and plots.PLOTS[spec["type"]].uses_results:
            figures.append(Figure(spec, error="no results yet: run the experiment first"))
            continue
        figures.append(draw(spec, df, ctx, out_dir / f"{spec['name']}.{image}", image,
                            dpi or (PAGE_DPI if fmt == "html" else None), caption=False if fmt == "html" else None))
    rendered = Rendered(exp, figures)
    if fmt == "html":
        from memlab.plots.report import write_report
        rendered.page = write_report(exp, store, figures, out_dir, df)
    return rendered
