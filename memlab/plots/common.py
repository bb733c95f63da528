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


PAPER_RC = {"axes.grid": False, "axes.edgecolor": "black"}


def is_small(spec: dict) -> bool:
    figsize = option(spec, "figsize")
    return figsize is not None and float(figsize[0]) < 4.0


def rc(spec: dict) -> dict:
    theme = PAPER_RC if option(spec, "theme") == "paper" else {}
    return {**BASE_RC, **(SMALL_FIGURE_RC if is_small(spec) else {}), **theme}


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
    """A value as an axis or legend label: 0.15 not 0.15000000000000002, 500 not 500.0,
    1000000 not 1e+06."""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, numbers.Real):
        f = float(v)
        return str(int(f)) if f.is_integer() and abs(f) < 1e15 else f"{f:g}"
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


def is_binary(values) -> bool:
    """True for a 0/1 (or bool) quantity: each value is one success or failure."""
    v = pd.Series(values).dropna()
    return v.dtype == bool or (len(v) > 0 and bool(v.isin([0, 1]).all()))


def value_bounds(values, bounds="auto") -> tuple[float, float]:
    """The range a quantity can take: `bounds` as given, or inferred from its values.

    "auto": [0, 1] when every value lies in [0, 1] (probabilities, accuracies, fractions),
    [0, inf) when none is negative (widths, losses, norms, IPR), else unbounded.  None: unbounded.
    """
    if bounds is None:
        return -np.inf, np.inf
    if bounds != "auto":
        if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
            raise ConfigError(f"bounds must be \"auto\", null or [lo, hi], not {bounds!r}", key="bounds",
                              fix='write e.g. "bounds": [0, 1] or "bounds": [0, null]')
        lo, hi = bounds
        return (-np.inf if lo is None else float(lo)), (np.inf if hi is None else float(hi))
    v = pd.Series(values).dropna().astype(float)
    if v.empty or v.min() < 0:
        return -np.inf, np.inf
    return 0.0, 1.0 if v.max() <= 1 else np.inf


def wilson(successes: np.ndarray, n: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score interval of a proportion: inside [0, 1], sensible at 0 % and 100 %."""
    z = stats.norm.ppf(0.5 + level / 2)
    n = np.maximum(np.asarray(n, dtype=float), 1)
    p = np.asarray(successes, dtype=float) / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return mid - half, mid + half


BAND_KINDS = ("ci", "std", "none")
# summarize()'s columns, named so that no results column (an "n", a "center") collides with them
CENTER, LO, HI, N, METHOD = "_center", "_lo", "_hi", "_n", "_method"


def summarize(df: pd.DataFrame, x: str, y: str, by: list[str], agg: str = "mean",
              band: str = "ci", bounds="auto", min_n: int = 5) -> pd.DataFrame:
    """One row per (by..., x): CENTER (agg of y over repeats), band LO..HI, N (trials) and METHOD.

    band "ci": a 95 % interval of the mean -- the Wilson score interval when y is 0/1 (a
    proportion), else Student's t; "std": center +- one standard deviation; "none": no band.
    Every band is clipped to the quantity's range (value_bounds), and a point with fewer than
    `min_n` repeats gets none (lo = hi = center): two restarts do not make an interval.
    """
    if band not in BAND_KINDS:
        raise ConfigError(f"unknown band '{band}'", key="band", fix=choices_hint(band, BAND_KINDS))
    d = df.assign(**{y: as_number(df[y])})
    g = d.groupby([*by, x], sort=True, dropna=False)[y]
    out = g.agg(**{CENTER: agg, "_mean": "mean", "_std": "std", N: "count"}).reset_index()
    n, std, center = out[N].to_numpy(), out["_std"].fillna(0.0).to_numpy(), out[CENTER].to_numpy()
    method = "none" if band == "none" else band
    if band == "ci" and is_binary(d[y]) and agg == "mean":
        lo, hi = wilson(out["_mean"].to_numpy() * n, n)
        method = "wilson"
    elif band == "ci":
        t = np.where(n > 1, stats.t.ppf(0.975, np.maximum(n - 1, 1)), 0.0)
        width = t * std / np.sqrt(np.maximum(n, 1))
        lo, hi = center - width, center + width
    elif band == "std":
        lo, hi = center - std, center + std
    else:
        lo, hi = center, center
    few = n < max(int(min_n), 2)
    lo, hi = np.where(few, center, lo), np.where(few, center, hi)
    vlo, vhi = value_bounds(d[y], bounds)
    out = out.assign(**{LO: np.clip(lo, vlo, vhi), HI: np.clip(hi, vlo, vhi), METHOD: method})
    return out.drop(columns=["_mean", "_std"])


def band_caption(summary: pd.DataFrame, agg: str, min_n: int = 5) -> str:
    """What a line and its band are, in words: "mean of 10 repeats; band: 95 % Wilson interval"."""
    n = summary[N][summary[N] > 0]          # a point with no values (all NaN) draws nothing
    if not len(n):
        return f"lines: {agg} (no values)"
    count = f"{int(n.min())}" if n.min() == n.max() else f"{int(n.min())} to {int(n.max())}"
    text = f"lines: {agg} of {count} trial{'s' if n.max() > 1 else ''}"
    method = summary[METHOD].iloc[0] if len(summary) else "none"
    if method == "none":
        return text
    if n.max() < max(int(min_n), 2):
        return text + f"; no band: {int(n.max())} trial{'s are' if n.max() > 1 else ' is'} too few for one"
    words = {"wilson": "95 % Wilson interval", "ci": "95 % t-interval of the mean", "std": "\u00b1 1 s.d."}
    text += f"; band: {words[method]}"
    if n.min() < max(int(min_n), 2):
        text += f" (none where fewer than {int(min_n)} trials)"
    return text


# Display names of the shipped experiments' columns; a spec's "names" overrides them.
DISPLAY_NAMES = {
    "max_bias": "max bias \u03bb", "n_iter": "first-layer width n", "second_dim_out": "second-layer width",
    "interpolated": "interpolation probability", "n_samples": "samples N", "score": "training accuracy",
    "corrupt_prob": "label corruption", "framework": "framework", "gain": "gain g",
    "train_loss": "training loss", "test_acc": "test accuracy", "train_acc": "training accuracy",
    "test_error": "test error", "init_scale": "init. scale", "gamma_factor": "\u03b3 / \u03b3_scale",
    "n_train": "training images N", "depth": "hidden layers", "width": "width",
    "ipr_mean": "mean IPR of the trained units", "ipr_init_mean": "mean IPR at initialization",
    "frac_localized": "fraction of localized units", "frac_attractors": "fraction of attractors",
    "frac_recovered": "fraction recovered", "rho_median": "median spectral radius",
    "weight_decay": "weight decay", "sparsity": "sparsity", "density": "fraction of weights kept",
    "widths": "hidden widths", "ratio": "N / d", "n_points_used": "points n", "mem_noisy": "memorization of noisy labels",
    "test_loss": "test loss", "epochs_to_fit": "epochs to fit", "lr": "learning rate",
}


def display_name(spec: dict, column: str | None) -> str | None:
    """How a column is named on axes and legends: spec["names"], then DISPLAY_NAMES, then the
    column with spaces for underscores."""
    if column is None:
        return None
    names = option(spec, "names") or {}
    return names.get(column, DISPLAY_NAMES.get(column, str(column).replace("_", " ")))


def display_value(spec: dict, column: str | None, value) -> str:
    """A value as a legend entry: spec["value_names"][column][value], else fmt(value)."""
    table = (option(spec, "value_names") or {}).get(column, {}) if column else {}
    return str(table.get(fmt(value), table.get(str(value), fmt(value))))


def add_caption(fig, text: str) -> None:
    """A sentence saying what a mark means; drawn under the figure (option `caption`) and shown
    beside it on the report page."""
    if text and text not in getattr(fig, "memlab_caption", []):
        fig.memlab_caption = [*getattr(fig, "memlab_caption", []), text]


def group_label(keys: tuple, spec: dict | None = None, by=()) -> str:
    if spec is None:
        return ", ".join(fmt(k) for k in keys)
    return ", ".join(display_value(spec, c, k) for c, k in zip(by, keys))


def draw_lines(ax, summary: pd.DataFrame, x: str, hue: str | None, style: str | None, *,
               cmap=None, markers: bool = False, band: bool = True, markersize=None,
               spec: dict | None = None, join: bool = True) -> dict:
    """One line (+ band) per (hue, style) group of a summarize() table; returns hue -> colour.

    join=False draws markers alone, for an x of categories (model names), whose order means
    nothing a line between them could show; the groups sit side by side at each category.

    Lines that coincide (the same values, e.g. a PyTorch and a JAX run of one computation) are
    drawn so that both stay visible: the later one dashed over the earlier, with open markers,
    and a caption names them.
    """
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
    # overlapping bands add up: the more lines, the lighter each band
    alpha = max(0.08, 0.3 / np.sqrt(max(1, len(hues) * len(styles))))
    drawn = []
    groups = sorted(groups, key=lambda kg: order.get(_key(kg[0], by, hue), 0))
    categories = list(pd.unique(summary[x])) if not join else []
    step = min(0.15, 0.6 / max(1, len(groups)))
    for k, (keys, g) in enumerate(groups):
        keys = keys if isinstance(keys, tuple) else (keys,)
        h = _key(keys, by, hue)
        s = keys[by.index(style)] if style else None
        if g[CENTER].isna().all():   # nothing to draw (e.g. train_acc_corrupted of clean data): no line, no legend
            continue
        if not join:   # side by side, so that equal values at one category stay visible
            g = g.assign(**{x: [categories.index(c) + (k - (len(groups) - 1) / 2) * step for c in g[x]]})
        line, = ax.plot(g[x], g[CENTER], color=colors[h],
                        linestyle=(dash[s] if style else "-") if join else "none",
                        marker=(mark[s] if style else "o") if markers or not join else None, markersize=markersize,
                        label=group_label(keys, spec, by) if by else None)
        if band and (g[HI] > g[LO]).any() and join:
            ax.fill_between(g[x], g[LO], g[HI], color=colors[h], alpha=alpha, linewidth=0)
        elif band and (g[HI] > g[LO]).any():
            ax.errorbar(g[x], g[CENTER], yerr=[g[CENTER] - g[LO], g[HI] - g[CENTER]], fmt="none",
                        ecolor=colors[h], capsize=3)
        line.memlab_keys = keys
        drawn.append(line)
    if not join:
        ax.set_xticks(range(len(categories)), [fmt(c) for c in categories])
        ax.set_xlim(-0.5, len(categories) - 0.5)
    _separate_coinciding(ax, drawn, [display_name(spec or {}, c) if spec else c for c in by])
    return colors


def _same(a, b) -> float | None:
    """The largest difference of two lines drawn at the same x values, if they coincide."""
    (xa, ya), (xb, yb) = a.get_data(), b.get_data()
    if not _same_x(np.asarray(xa), np.asarray(xb)):
        return None
    ya, yb = np.asarray(ya, dtype=float), np.asarray(yb, dtype=float)
    if not np.array_equal(np.isnan(ya), np.isnan(yb)) or np.isnan(ya).all():
        return None      # gaps in different places, or nothing drawn: not the same line
    scale = max(np.nanmax(np.abs(np.r_[ya, yb]), initial=0.0), 1e-300)
    diff = float(np.nanmax(np.abs(ya - yb), initial=0.0))
    return diff if diff <= 1e-3 * scale else None


def _same_x(xa: np.ndarray, xb: np.ndarray) -> bool:
    """The same x values: numbers within rounding, categories (model names) equal."""
    if xa.shape != xb.shape:
        return False
    try:
        return bool(np.allclose(xa.astype(float), xb.astype(float)))
    except (TypeError, ValueError):
        return bool((xa.astype(str) == xb.astype(str)).all())


def _separate_coinciding(ax, lines, by=()) -> None:
    pairs = []
    for j, b in enumerate(lines):
        for a in lines[:j]:
            diff = _same(a, b)
            if diff is not None:
                marker = b.get_marker() if b.get_marker() not in (None, "None", "") else "o"
                joined = b.get_linestyle() not in ("None", "none", "")
                b.set(linestyle=(0, (3, 3)) if joined else "none", marker=marker, markerfacecolor="none", zorder=a.get_zorder() + 1,
                      markersize=b.get_markersize() * 1.3, markevery=max(1, len(b.get_xdata()) // 10))
                b.set_gid("coincides")
                pairs.append((a, b, diff))
                break
    if pairs:
        largest = max(d for *_, d in pairs)
        who, scope = _which(pairs, by)
        how = "are identical" if largest == 0 else "coincide"
        size = "" if largest == 0 else f" (largest difference {largest:.2g})"
        add_caption(ax.figure, f"{who} {how}{scope}{size}: the later is drawn dashed over the earlier")


def _which(pairs, by) -> tuple[str, str]:
    """Name the coinciding lines: ("jax and torch (framework)", " for every corruption") when
    every pair differs in one column only and always by the same two values, else their labels."""
    keys = [(getattr(a, "memlab_keys", None), getattr(b, "memlab_keys", None)) for a, b, _ in pairs]
    if by and all(ka is not None and kb is not None for ka, kb in keys):
        differ = {tuple(i for i, (u, v) in enumerate(zip(ka, kb)) if u != v) for ka, kb in keys}
        if len(differ) == 1 and len(next(iter(differ))) == 1:
            i = next(iter(differ))[0]
            values = {(fmt(ka[i]), fmt(kb[i])) for ka, kb in keys}
            if len(values) == 1:
                u, v = next(iter(values))
                others = [c for k, c in enumerate(by) if k != i]
                scope = f" for every {' and '.join(others)}" if others and len(pairs) > 1 else ""
                return f"{u} and {v} ({by[i]})", scope
    said = [f"{a.get_label()} and {b.get_label()}" for a, b, _ in pairs]
    return "; ".join(said[:3]) + (f" (and {len(said) - 3} more pairs)" if len(said) > 3 else ""), ""


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


def legend_title(hue: str | None, style: str | None, spec: dict | None = None) -> str | None:
    if spec is not None:
        return ", ".join(display_name(spec, c) for c in (hue, style) if c) or None
    return ", ".join(c for c in (hue, style) if c) or None


MAX_DATA_TICKS = 12


def data_ticks(ax, which: str, values, *, log: bool) -> None:
    """Ticks a reader can read: on a log axis with few values, at the data's own values (128,
    256, 512, 1024, not 2x10^2, 3x10^2); on an axis of integers, at integers only."""
    from matplotlib.ticker import FixedLocator, MaxNLocator, NullFormatter, NullLocator
    axis = ax.xaxis if which == "x" else ax.yaxis
    v = pd.Series(values).dropna()
    if not pd.api.types.is_numeric_dtype(v) or pd.api.types.is_bool_dtype(v) or v.empty:
        return
    unique = np.sort(v.unique().astype(float))
    if log and len(unique) <= MAX_DATA_TICKS and (unique > 0).all():
        axis.set_major_locator(FixedLocator(unique))
        axis.set_major_formatter(_value_formatter())
        axis.set_minor_locator(NullLocator())
        axis.set_minor_formatter(NullFormatter())
    elif not log and np.allclose(unique, np.round(unique)):
        if len(unique) <= MAX_DATA_TICKS and unique[-1] - unique[0] > 0 and len(unique) <= 6:
            axis.set_major_locator(FixedLocator(unique))
        else:
            inches = size_inches(ax.figure)[0 if which == "x" else 1] * 0.7
            axis.set_major_locator(MaxNLocator(nbins=max(3, min(10, int(inches * 2.2))), integer=True))
        if np.abs(unique).max() >= 1e5:     # 100k, 1M: not matplotlib's "x 1e6" offset over the label
            from matplotlib.ticker import FuncFormatter
            axis.set_major_formatter(FuncFormatter(lambda v, _pos: compact(v)))


def compact(v: float) -> str:
    """A large round number as a tick label: 300k, 1M, 1.5M (else as fmt writes it)."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= size and round(v / size, 2) == v / size:
            return f"{v / size:g}{unit}"
    return fmt(v)


def _value_formatter():
    from matplotlib.ticker import FuncFormatter
    return FuncFormatter(lambda v, _pos: fmt(v))


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
        for legend in list(ax.figure.legends):
            legend.remove()
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
    draw_caption(fig, spec)


def draw_caption(fig, spec: dict) -> None:
    """The figure's caption sentences under it: option `caption` true draws them, false does
    not, None (default) draws them on figures 4 inches wide or more (a paper's small panels get
    their caption from the paper; the report page shows it beside every figure)."""
    lines = getattr(fig, "memlab_caption", [])
    show = option(spec, "caption")
    if not lines or show is False or (show is None and is_small(spec)):
        return
    import textwrap
    size = 7.0
    chars = max(30, int(size_inches(fig)[0] * 72 / (0.5 * size)))
    text = "\n".join(textwrap.fill(line, chars) for line in lines)
    # supxlabel: constrained layout keeps room for it under the axes and any outside legend
    below = fig._supxlabel.get_text() + "\n" if getattr(fig, "_supxlabel", None) is not None else ""
    label = fig.supxlabel(below + text, x=0.01, ha="left", fontsize=size, color="0.35", linespacing=1.3)
    label.set_gid("caption")


def size_inches(fig) -> tuple[float, float]:
    """(width, height) of a figure, or of a subfigure (memlab.plot(..., ax=...) draws into one)."""
    if hasattr(fig, "get_size_inches"):
        return tuple(fig.get_size_inches())
    dpi = fig.figure.dpi
    return fig.bbox.width / dpi, fig.bbox.height / dpi
