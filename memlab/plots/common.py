"""Shared pieces of the plot types: figure style, column checks, colours, aggregation, lines.

    python plot.py --name moons     # every plot type draws through these helpers
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import itertools
import numbers

import numpy as np

from memlab.errors import ConfigError, choices_hint
from memlab.lazy import lazy
from memlab.plots.registry import option

# Imported on first use: loading an experiment file registers every plot type, and
# `run.py --status` should not pay for matplotlib, pandas and scipy to do it.
plt = lazy("matplotlib.pyplot")
pd = lazy("pandas")
stats = lazy("scipy.stats")
mpl_figure = lazy("matplotlib.figure")

# The paper's figures are a few centimetres wide; at that size matplotlib's default fonts
# would swallow the picture, so small figures get the small fonts of the reference code.
SMALL_FIGURE_RC = {
    "font.size": 6, "axes.titlesize": 6, "axes.labelsize": 8, "xtick.labelsize": 6,
    "ytick.labelsize": 6, "legend.fontsize": 6, "legend.title_fontsize": 6, "figure.titlesize": 10,
    "xtick.major.pad": 1.5, "ytick.major.pad": 1.5, "lines.linewidth": 1.0,
    "figure.dpi": 200,   # a PNG of a 2-inch figure is still legible
}
BASE_RC = {
    "axes.grid": True, "grid.color": "#e6e6e6", "grid.linewidth": 0.6, "axes.axisbelow": True,
    "axes.edgecolor": "#bbbbbb", "figure.dpi": 100,
}

# Light orange -> red -> purple: a sequential palette for numeric hues (lines ordered by value).
SEQUENTIAL_COLORS = ("#eda06d", "#d9566b", "#8f2f6e", "#44205a")


@functools.cache
def sequential():
    from matplotlib.colors import LinearSegmentedColormap
    return LinearSegmentedColormap.from_list("memlab_seq", list(SEQUENTIAL_COLORS))


def __getattr__(name):   # `common.SEQUENTIAL`, built when first asked for
    if name == "SEQUENTIAL":
        return sequential()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
DASHES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def rc(spec: dict) -> dict:
    figsize = option(spec, "figsize")
    small = figsize is not None and float(figsize[0]) < 4.0
    return {**BASE_RC, **(SMALL_FIGURE_RC if small else {})}


_TARGET = contextvars.ContextVar("memlab_plot_target", default=None)


@contextlib.contextmanager
def drawing_into(ax):
    """Within this block, the next new_figure draws in the place of `ax` (a subplot of a
    figure of yours) instead of creating a figure: memlab.plot(name, ax=ax) composes panels."""
    token = _TARGET.set(ax)
    try:
        yield
    finally:
        _TARGET.reset(token)


def new_figure(spec: dict, nrows: int = 1, ncols: int = 1, **kw):
    """(fig, axes) like plt.subplots with the spec's figsize, but outside pyplot's registry, so
    rendering hundreds of plots neither leaks figures nor needs plt.close.

    Inside drawing_into(ax), `fig` is instead a subfigure over ax's cell of ax's figure: the
    plot's own panels, colour bar and titles stay in that cell, and ax itself is replaced."""
    target = _TARGET.get()
    if target is not None:
        _TARGET.set(None)   # one plot, one cell
        spot = target.get_subplotspec()
        if spot is None:
            raise ConfigError("ax must be a subplot (from fig.subplots or fig.add_subplot), not a free axes",
                              key="ax", fix="create the panels with fig.subplots(rows, cols)")
        fig = target.figure.add_subfigure(spot)
        target.remove()
        return fig, fig.subplots(nrows, ncols, **kw)
    figsize = option(spec, "figsize")
    fig = mpl_figure.Figure(figsize=tuple(figsize) if figsize else None, layout="constrained")
    return fig, fig.subplots(nrows, ncols, **kw)


def fmt(v) -> str:
    """A value as an axis or legend label: 0.15 not 0.15000000000000002, 500 not 500.0."""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, numbers.Real):
        return f"{float(v):g}"
    return str(v)


def require_column(df: pd.DataFrame, spec: dict, column: str, key: str) -> None:
    """ConfigError unless `column` (the value of option `key`) is a column of df."""
    if column not in df.columns:
        raise ConfigError(f"plot '{spec['name']}': option '{key}' names column '{column}', "
                          f"which the table does not have", key=key,
                          fix=choices_hint(column, [c for c in df.columns if not str(c).startswith("_")]))


def require_columns(df: pd.DataFrame, spec: dict, *keys: str) -> None:
    """ConfigError unless each option in `keys` that is set names a column of df."""
    for key in keys:
        if option(spec, key) is not None:
            require_column(df, spec, option(spec, key), key)


def nonempty(df: pd.DataFrame, spec: dict) -> pd.DataFrame:
    if df.empty:
        raise ConfigError(f"plot '{spec['name']}': no rows to plot", key="query",
                          fix="check the query / where options, or run the experiment first")
    return df


def matching(column: pd.Series, values, *, key: str, spec: dict) -> np.ndarray:
    """Rows whose value is one of `values` (floats compared with a tolerance); every value must occur."""
    values = values if isinstance(values, (list, tuple)) else [values]
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    mask = np.zeros(len(column), dtype=bool)
    for v in values:
        hit = (np.isclose(column.to_numpy(dtype=float), float(v), rtol=1e-9, atol=1e-12)
               if numeric and isinstance(v, numbers.Real) else (column == v).to_numpy())
        if not hit.any():
            present = ", ".join(fmt(u) for u in sorted(column.dropna().unique())[:20])
            raise ConfigError(f"plot '{spec['name']}': {key} asks for {column.name} = {fmt(v)}, "
                              f"which no row has", key=key, fix=f"values present: {present}")
        mask |= hit
    return mask


def as_number(s: pd.Series) -> pd.Series:
    return s.astype(float) if s.dtype == bool else s


def round_columns(df: pd.DataFrame, columns, decimals: int | None) -> pd.DataFrame:
    """Round float columns so that 0.15000000000000002 and 0.15 fall in the same cell."""
    if decimals is None:
        return df
    df = df.copy()
    for c in columns:
        if c is not None and pd.api.types.is_float_dtype(df[c]):
            df[c] = df[c].round(decimals)
    return df


def colors_for(values, cmap=None) -> dict:
    """value -> colour: a sequential ramp for numbers (ordered), a qualitative cycle otherwise."""
    values = list(values)
    if cmap is None and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        cmap = sequential()
    if cmap is not None:
        cm = plt.get_cmap(cmap) if isinstance(cmap, str) else cmap
        pos = np.linspace(0.1, 0.9, len(values)) if len(values) > 1 else [0.5]
        return {v: cm(p) for v, p in zip(values, pos)}
    cycle = itertools.cycle(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    return dict(zip(values, cycle))


def summarize(df: pd.DataFrame, x: str, y: str, by: list[str], agg: str = "mean",
              band: str = "ci") -> pd.DataFrame:
    """One row per (by..., x): `center` (agg of y over repeats), band `lo`..`hi` and `n`.

    band "ci": the 95% confidence interval of the mean (Student t); "std": center +- one
    standard deviation; "none": no band (lo = hi = center).
    """
    if band not in ("ci", "std", "none"):
        raise ConfigError(f"unknown band '{band}'", key="band", fix=choices_hint(band, ("ci", "std", "none")))
    d = df.assign(**{y: as_number(df[y])})
    g = d.groupby([*by, x], sort=True, dropna=False)[y]
    out = g.agg(center=agg, std="std", n="count").reset_index()
    std = out["std"].fillna(0.0)
    if band == "ci":
        n = out["n"].to_numpy()
        t = np.where(n > 1, stats.t.ppf(0.975, np.maximum(n - 1, 1)), 0.0)
        width = t * std / np.sqrt(np.maximum(n, 1))
    elif band == "std":
        width = std
    else:
        width = 0.0 * std
    return out.assign(lo=out["center"] - width, hi=out["center"] + width)


def group_label(keys: tuple) -> str:
    return ", ".join(fmt(k) for k in keys)


def draw_lines(ax, summary: pd.DataFrame, x: str, hue: str | None, style: str | None, *,
               cmap=None, markers: bool = False, band: bool = True, markersize=None) -> dict:
    """One line (+ band) per (hue, style) group of a summarize() table; returns hue -> colour."""
    hues = list(pd.unique(summary[hue])) if hue else [None]
    if hue and all(isinstance(h, numbers.Real) for h in hues):
        hues = sorted(hues)
    colors = colors_for(hues, cmap) if hue else {None: "C0"}
    styles = list(pd.unique(summary[style])) if style else [None]
    dash = dict(zip(styles, itertools.cycle(DASHES)))
    mark = dict(zip(styles, itertools.cycle(MARKERS)))
    by = [c for c in (hue, style) if c]
    groups = summary.groupby(by, sort=False, dropna=False) if by else [((), summary)]
    order = {h: i for i, h in enumerate(hues)}
    for keys, g in sorted(groups, key=lambda kg: order.get(_key(kg[0], by, hue), 0)):
        keys = keys if isinstance(keys, tuple) else (keys,)
        h = _key(keys, by, hue)
        s = keys[by.index(style)] if style else None
        ax.plot(g[x], g["center"], color=colors[h], linestyle=dash[s] if style else "-",
                marker=(mark[s] if style else "o") if markers else None, markersize=markersize,
                label=group_label(keys) if by else None)
        if band and (g["hi"] > g["lo"]).any():
            ax.fill_between(g[x], g["lo"], g["hi"], color=colors[h], alpha=0.2, linewidth=0)
    return colors


def _key(keys, by, hue):
    keys = keys if isinstance(keys, tuple) else (keys,)
    return keys[by.index(hue)] if hue else None


def value_limits(ax, spec: dict) -> None:
    """vmin / vmax on a line plot: the value (y) range, with matplotlib's 5% margin around it."""
    vmin, vmax = option(spec, "vmin"), option(spec, "vmax")
    if vmin is None and vmax is None:
        return
    lo, hi = ax.get_ylim()
    lo = lo if vmin is None else vmin
    hi = hi if vmax is None else vmax
    pad = 0.05 * (hi - lo)
    ax.set_ylim(lo - (pad if vmin is not None else 0), hi + (pad if vmax is not None else 0))


def legend_title(hue: str | None, style: str | None) -> str | None:
    return ", ".join(c for c in (hue, style) if c) or None


# --- the common options, applied by render() after the plot function ---------------------------

def main_axes(fig) -> list:
    """The figure's data axes (colorbars excluded)."""
    return [ax for ax in fig.axes if not hasattr(ax, "_colorbar") and ax.get_label() != "<colorbar>"]


def _to_position(ax, which: str, values):
    """Data values -> axis positions: a heatmap's axis is indexed by cell, not by value."""
    table = getattr(ax, "memlab_axis_values", {}).get(which)
    values = np.asarray(values, dtype=float)
    if table is None:
        return values
    return np.interp(values, np.asarray(table, dtype=float), np.arange(len(table)))


def _ticks(ax, which: str, value) -> None:
    if value is None or value is True:
        return
    if value is False:   # the reference code's meaning: keep the axis, hide its numbers
        ax.tick_params(**({"labelbottom": False} if which == "x" else {"labelleft": False}))
        return
    pos = _to_position(ax, which, value)
    (ax.set_xticks if which == "x" else ax.set_yticks)(pos, [fmt(v) for v in value])


def _limits(ax, which: str, value) -> None:
    if value is None:
        return
    lo, hi = _to_position(ax, which, value)
    if getattr(ax, "memlab_axis_values", {}).get(which) is not None:
        lo, hi = lo - 0.5, hi + 0.5   # whole cells
    (ax.set_xlim if which == "x" else ax.set_ylim)(lo, hi)


def _legend(ax, spec: dict) -> None:
    value = option(spec, "legend")
    current = ax.get_legend()
    if value is None:
        return
    if value is False:
        if current is not None:
            current.remove()
        return
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    settings = value if isinstance(value, dict) else {}
    unknown = set(settings) - {"title", "labels", "loc"}
    if unknown:
        raise ConfigError(f"plot '{spec['name']}': legend has no option '{sorted(unknown)[0]}'",
                          key="legend", fix=choices_hint(sorted(unknown)[0], ("title", "labels", "loc")))
    title = settings.get("title", current.get_title().get_text() if current else None)
    labels = settings.get("labels", labels)
    if "loc" in settings or not isinstance(value, dict):
        ax.legend(handles, labels, title=title, loc=settings.get("loc", "best"))
    else:   # the reference code's placement: beside the axes, no frame
        ax.legend(handles, labels, title=title, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)


def apply_common(fig, spec: dict) -> None:
    """figsize, labels, title, ticks, limits, legend and outline, the same way for every plot.

    vmin / vmax are not here: what they bound (colour or value axis) is the plot type's business.
    """
    figsize = option(spec, "figsize")
    if figsize and fig.figure is fig:   # a subfigure (drawing_into) keeps its cell's size
        fig.set_size_inches(*figsize)
    axes = main_axes(fig)
    single = len(axes) == 1
    xlabel, ylabel, title = option(spec, "xlabel"), option(spec, "ylabel"), option(spec, "title")
    if single:
        ax = axes[0]
        if xlabel is not None:
            ax.set_xlabel(xlabel)
        if ylabel is not None:
            ax.set_ylabel(ylabel)
        if title is not None:
            ax.set_title(title)
        _ticks(ax, "x", option(spec, "xticks"))
        _ticks(ax, "y", option(spec, "yticks"))
        _limits(ax, "x", option(spec, "xlim"))
        _limits(ax, "y", option(spec, "ylim"))
        _legend(ax, spec)
    else:   # a grid of panels: labels go on the figure; ticks and limits stay per panel
        if xlabel is not None:
            fig.supxlabel(xlabel)
        if ylabel is not None:
            fig.supylabel(ylabel)
        if title is not None:
            fig.suptitle(title)
    if option(spec, "outline"):
        for ax in axes:
            ax.patch.set(edgecolor="black", linestyle="--", linewidth=3)
