"""Plots of a two-parameter grid: `heatmap` (one cell per grid point) and `slices` (lines through it).

    python plot.py --name moons     # the paper's Figure: interpolation probability over (n, lambda)

Both accept the paper's reference spelling too: "pivot": {"idx", "col", "val", "agg", "round"},
"contours": {"smoothing", "levels"} and, for slices, "slices": [values].
"""
from __future__ import annotations

import numpy as np

from memlab.errors import ConfigError, choices_hint
from memlab.lazy import lazy

from memlab.plots.common import (
    CENTER, add_caption, as_number, band_caption, data_ticks, display_name, draw_lines, fmt, legend_title, matching,
    new_figure, nonempty, require_columns, round_columns, size_inches, summarize, value_limits)
from memlab.plots.registry import option, register

pd = lazy("pandas")
ndimage = lazy("scipy.ndimage")

REGION_COLOR = "blueviolet"
CONTOUR_COLOR = "#1fb3d6"
MAX_TICK_LABELS = 11

mlines = lazy("matplotlib.lines")


def _lift(spec: dict, key: str, allowed: dict) -> dict:
    """Move the entries of the nested dict spec[key] to the top level under their new names."""
    nested = spec.pop(key)
    if not isinstance(nested, dict):
        raise ConfigError(f"'{key}' must be an object", key=key, fix=f"write \"{key}\": {{...}}")
    for k, v in nested.items():
        if k not in allowed:
            raise ConfigError(f"'{key}' has no option '{k}'", key=f"{key}.{k}", fix=choices_hint(k, allowed))
        spec.setdefault(allowed[k], v)
    return spec


def normalize_heatmap(spec: dict) -> dict:
    """The reference spelling: "pivot": {idx, col, val, agg, round}, "contours": {smoothing, levels}."""
    if "pivot" in spec:
        _lift(spec, "pivot", {k: k for k in ("idx", "col", "val", "agg", "round")})
    if "contours" in spec:
        contours = spec["contours"]
        _lift(spec, "contours", {"smoothing": "smooth", "levels": "levels",
                                 "vmin": "contour_vmin", "vmax": "contour_vmax"})
        if isinstance(contours, dict) and "levels" not in contours:
            spec.setdefault("levels", "auto")   # "contours": {} asks for contour lines
    return spec


def normalize_slices(spec: dict) -> dict:
    """The reference spelling: lines of pivot.val against pivot.idx, one per value of pivot.col."""
    if "pivot" in spec:
        _lift(spec, "pivot", {"idx": "x", "col": "hue", "val": "y", "agg": "agg", "round": "round"})
        # The reference drew no markers unless marker_threshold was given.
        spec.setdefault("marker_threshold", None)
    if "slices" in spec:
        spec.setdefault("values", spec.pop("slices"))
    return spec


def pivot(df: pd.DataFrame, idx: str, col: str, val: str, agg="mean", decimals=None) -> pd.DataFrame:
    """Rows: values of `idx` (ascending); columns: values of `col`; cells: agg of `val` over repeats."""
    df = round_columns(df, (idx, col), decimals)
    df = df.assign(**{val: as_number(df[val])})
    table = df.pivot_table(index=idx, columns=col, values=val, aggfunc=agg, dropna=False)
    return table.sort_index().sort_index(axis=1)


def _thin(n: int, most: int = MAX_TICK_LABELS) -> np.ndarray:
    """At most `most` evenly spaced positions of n cells (labels would overlap otherwise)."""
    step = max(1, int(np.ceil(n / most)))
    return np.arange(0, n, step)


def _paper_ticks(n: int, length_in: float, fontsize: float) -> np.ndarray:
    """seaborn's "auto" tick density: as many labels as fit without overlapping, every k-th cell."""
    fits = max(1, int(length_in * 72 / (fontsize * 1.2)))
    step = max(1, int(np.ceil(n / fits)))
    return np.arange(0, n, step)


def _smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    # Empty cells (grid points without results) take the mean so the filter does not spread NaN.
    filled = np.where(np.isnan(values), np.nanmean(values), values)
    return ndimage.gaussian_filter(filled, sigma) if sigma else filled


def _cells(ax, z):
    """(X, Y) of the cell centres in the axes' coordinates (imshow: 0, 1, ...; seaborn: 0.5, 1.5, ...)."""
    off = getattr(ax, "memlab_cell_offset", 0.0)
    return np.arange(z.shape[1]) + off, np.arange(z.shape[0]) + off


MAX_LABELLED_LEVELS = 7


def draw_contours(ax, table: pd.DataFrame, spec: dict) -> str | None:
    """Contour lines of the Gaussian-smoothed cell values (the paper smooths with sigma 0.8),
    labelled with their value; returns the caption sentence that explains them."""
    z = _smooth(table.to_numpy(dtype=float), option(spec, "smooth"))
    if min(z.shape) < 2 or not z.max() > z.min():
        return None   # a flat or one-line grid has no contours
    levels = option(spec, "levels")
    # theme memlab: one colour that shows on both ends of magma; paper: the reference's viridis lines
    colors = {"cmap": "viridis"} if option(spec, "theme") == "paper" else {"colors": CONTOUR_COLOR}
    cs = ax.contour(*_cells(ax, z), z, levels=None if levels == "auto" else levels, linewidths=0.75,
                    vmin=option(spec, "contour_vmin"), vmax=option(spec, "contour_vmax"), **colors)
    cs.set_gid("contours")
    shown = list(cs.levels)
    if not shown:
        return None
    # Label every level when there are few; otherwise every k-th, so the labels stay legible.
    step = max(1, int(np.ceil(len(shown) / MAX_LABELLED_LEVELS)))
    ax.clabel(cs, levels=shown[::step], inline=True, fontsize=6, fmt=lambda v: fmt(round(v, 3)))
    sigma = option(spec, "smooth")
    smoothed = f", smoothed over \u03c3 = {fmt(sigma)} cells" if sigma else ""
    return (f"thin lines: {len(shown)} contour{'s' if len(shown) > 1 else ''} of {display_name(spec, spec['val'])}"
            f"{smoothed} (labelled with their value)")


def draw_region(ax, region: pd.DataFrame, threshold: float, sigma: float) -> bool:
    """Dashed contour around the cells whose (smoothed) interpolation probability >= threshold."""
    z = _smooth(region.to_numpy(dtype=float), sigma)
    if min(z.shape) < 2 or not (z.max() >= threshold > z.min()):
        return False   # nothing, or everything, interpolates: no boundary to draw
    cs = ax.contour(*_cells(ax, z), z, levels=[threshold], colors=[REGION_COLOR], linestyles="dashed",
                    linewidths=1.5)
    cs.set_gid("interpolation_region")
    return True


def _percent(p: float) -> str:
    return f"{fmt(round(100 * p, 4))} %"


def region_handle(threshold: float) -> "mlines.Line2D":
    return mlines.Line2D([], [], color=REGION_COLOR, linestyle="dashed", linewidth=1.5,
                  label=f"interpolates in \u2265 {_percent(threshold)} of trials")


def _draw_cells(fig, ax, table: pd.DataFrame, spec: dict):
    """The cells: matplotlib's imshow (theme "memlab") or seaborn's heatmap (theme "paper")."""
    values = table.to_numpy(dtype=float)
    cmap, vmin, vmax = option(spec, "cmap"), option(spec, "vmin"), option(spec, "vmax")
    if option(spec, "theme") == "paper":
        try:
            import seaborn as sns
        except ImportError:
            raise ConfigError(f"plot '{spec['name']}': theme 'paper' needs seaborn, which is not installed",
                              key="theme", fix="pip install -r requirements.txt (or remove \"theme\")") from None
        w, h = size_inches(fig)
        fontsize = float(plt_rc("xtick.labelsize"))
        xs = _paper_ticks(table.shape[1], 0.7 * w, fontsize)
        ys = _paper_ticks(table.shape[0], 0.8 * h, fontsize)
        sns.heatmap(pd.DataFrame(values), ax=ax, cmap="rocket" if "cmap" not in spec else cmap, vmin=vmin,
                    vmax=vmax, square=bool(option(spec, "square")), cbar=False, xticklabels=False,
                    yticklabels=False)
        ax.invert_yaxis()   # n and lambda grow upward and rightward, as in theme memlab
        ax.memlab_cell_offset = 0.5
        mesh = ax.collections[0]
    else:
        mesh = ax.imshow(values, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest",
                         aspect="equal" if option(spec, "square") else "auto")
        xs, ys = _thin(table.shape[1]), _thin(table.shape[0])
    off = getattr(ax, "memlab_cell_offset", 0.0)
    ax.set_xticks(xs + off, [fmt(table.columns[i]) for i in xs], rotation=90)
    ax.set_yticks(ys + off, [fmt(table.index[i]) for i in ys], rotation=0)
    return mesh


def plt_rc(key: str):
    import matplotlib as mpl
    v = mpl.rcParams[key]
    if isinstance(v, str):
        from matplotlib.font_manager import FontProperties
        return FontProperties(size=v).get_size_in_points()
    return v


@register("heatmap", required=("idx", "col", "val"), normalize=normalize_heatmap, options={
    "agg": "mean", "round": None, "cmap": "magma", "square": True, "colorbar": True,
    "levels": None, "smooth": 0.8, "contour_vmin": None, "contour_vmax": None,
    "interpolation_region": None, "region_threshold": 0.99, "region_smooth": 1.0})
def heatmap(df, spec, ctx):
    """A heatmap of `val` over the grid `idx` (rows, upward) x `col` (columns).

    idx, col, val -- columns of the results table (required)
    agg           -- how repeats of a grid point combine: a pandas aggregation (default "mean")
    round         -- round float idx/col values to this many decimals first (default None)
    vmin, vmax    -- colour range (default: the data's)
    cmap          -- colour map (default "magma"; "rocket", seaborn's, in theme "paper")
    square        -- square cells (default True)
    colorbar      -- draw a colour bar, labelled with val's display name (default True)
    levels        -- contour lines of the Gaussian-smoothed values: a number of levels, a list
                     of values, or "auto" (default None: no contour lines); each is labelled
                     with its value (every k-th when there are more than 7)
    smooth        -- the contour lines' Gaussian smoothing sigma, in cells (default 0.8)
    contour_vmin, contour_vmax -- colour range of the contour lines (default: the data's)
    interpolation_region -- draw the dashed boundary of the region where the (smoothed) mean of
                     `interpolated` is >= region_threshold, with a legend entry saying so
                     (default None: whenever the table has an `interpolated` column, as in
                     the paper)
    region_threshold -- (default 0.99)
    region_smooth -- Gaussian sigma of the region, in cells (default 1.0)
    theme         -- "memlab" (imshow, about 11 labelled cells per axis) or "paper" (seaborn's
                     heatmap and rocket colour map, as many labels as fit, no grid) (default "memlab")
    xticks, yticks -- false hides the numbers; a list of values puts ticks there (default:
                     about 10 labelled cells per axis)
    """
    idx, col, val = spec["idx"], spec["col"], spec["val"]
    require_columns(df, spec, "idx", "col", "val")
    nonempty(df, spec)
    agg, decimals = option(spec, "agg"), option(spec, "round")
    table = pivot(df, idx, col, val, agg, decimals)
    fig, ax = new_figure(spec)
    im = _draw_cells(fig, ax, table, spec)
    ax.grid(False)
    ax.memlab_axis_values = {"x": list(table.columns), "y": list(table.index)}   # for xticks/xlim
    ax.set_xlabel(display_name(spec, col))
    ax.set_ylabel(display_name(spec, idx))
    if option(spec, "levels") is not None:
        add_caption(fig, draw_contours(ax, table, spec))
    region = option(spec, "interpolation_region")
    if region is None:
        region = "interpolated" in df.columns
    if region:
        if "interpolated" not in df.columns:
            raise ConfigError(f"plot '{spec['name']}': interpolation_region needs an 'interpolated' "
                              f"column (derived from 'score')", key="interpolation_region",
                              fix="set \"interpolation_region\": false, or plot a trial that returns 'score'")
        threshold = option(spec, "region_threshold")
        if draw_region(ax, pivot(df, idx, col, "interpolated", "mean", decimals), threshold,
                       option(spec, "region_smooth")):
            fig.legend(handles=[region_handle(threshold)], loc="outside upper center", frameon=False,
                       handlelength=2.5)
    n = round_columns(df, (idx, col), decimals).groupby([idx, col]).size()
    if len(n):
        count = f"{int(n.min())}" if n.min() == n.max() else f"{int(n.min())} to {int(n.max())}"
        add_caption(fig, f"cells: {agg} of {count} trial{'s' if n.max() > 1 else ''}")
    if option(spec, "colorbar"):
        # beside the cells and exactly as tall (square cells leave the axes' slot taller than they are)
        cax = ax.inset_axes([1.04, 0.0, 0.05, 1.0])
        cax.set_label("<colorbar>")
        cbar = fig.colorbar(im, cax=cax)
        cbar.set_label(display_name(spec, val), fontsize=plt_rc("ytick.labelsize"))
    return fig


@register("slices", required=("x", "y", "hue"), normalize=normalize_slices, options={
    "values": None, "agg": "mean", "round": None, "band": "ci", "bounds": "auto", "min_n": 5,
    "marker_threshold": 0.99, "mark_every": 1, "cmap": None})
def slices(df, spec, ctx):
    """Lines of `y` against `x`, one per chosen value of `hue`: slices through a heatmap.

    x, y, hue        -- columns of the results table (required)
    values           -- which values of `hue` get a line (default None: all)
    agg              -- how repeats combine into the line (default "mean")
    round            -- round float x/hue values to this many decimals first (default None)
    band             -- "ci" (a 95 % interval of the mean: Wilson's for a 0/1 column such as
                        `interpolated`, Student's t otherwise), "std" or "none" (default "ci")
    bounds           -- the range y can take, [lo, hi]; bands are clipped to it (default
                        "auto": [0, 1] when every value is in [0, 1], [0, inf) when none is
                        negative; null: unbounded)
    min_n            -- points with fewer trials get no band, and the caption says so (default 5)
    marker_threshold -- mark the points whose mean of `interpolated` exceeds this, with a legend
                        entry saying so (default 0.99; None: no markers; needs `interpolated`)
    mark_every       -- mark only every k-th x value (default 1)
    cmap             -- colour map of the lines (default: light orange to purple)
    vmin, vmax       -- the y range (default: the data's)
    legend           -- {"title": ..., "labels": [...]} or false (default: titled by `hue`)
    """
    x, y, hue = spec["x"], spec["y"], spec["hue"]
    require_columns(df, spec, "x", "y", "hue")
    df = round_columns(df, (x, hue), option(spec, "round"))
    values = option(spec, "values")
    if values is not None:
        df = df[matching(df[hue], values, key="values", spec=spec)]
    nonempty(df, spec)
    agg = option(spec, "agg")
    summary = summarize(df, x, y, [hue], agg, option(spec, "band"), option(spec, "bounds"), option(spec, "min_n"))
    fig, ax = new_figure(spec)
    colors = draw_lines(ax, summary, x, hue, None, cmap=option(spec, "cmap"), spec=spec)
    threshold = option(spec, "marker_threshold")
    handles = None
    if threshold is not None and "interpolated" in df.columns:
        if _mark_interpolating(ax, df, summary, x, hue, colors, threshold, option(spec, "mark_every")):
            handles = [*ax.get_legend_handles_labels()[0], mlines.Line2D(
                [], [], color="0.3", marker="o", linestyle="none", markersize=4,
                label=f"interpolates in > {_percent(threshold)} of trials")]
    elif "marker_threshold" in spec and threshold is not None:
        raise ConfigError(f"plot '{spec['name']}': marker_threshold needs an 'interpolated' column",
                          key="marker_threshold", fix="remove it, or plot a trial that returns 'score'")
    data_ticks(ax, "x", summary[x], log=False)
    ax.set_xlabel(display_name(spec, x))
    ax.set_ylabel(display_name(spec, y))
    ax.legend(handles=handles, title=legend_title(hue, None, spec))
    add_caption(fig, band_caption(summary, agg, option(spec, "min_n")))
    value_limits(ax, spec)
    return fig


def _mark_interpolating(ax, df, summary, x, hue, colors, threshold, every) -> bool:
    """Dots on each line where the interpolation probability at that x exceeds `threshold`."""
    prob = df.assign(interpolated=as_number(df["interpolated"])).groupby([hue, x])["interpolated"].mean()
    kept_x = set(np.sort(summary[x].unique())[::max(1, int(every))])
    marked = False
    for h, g in summary.groupby(hue, sort=False):
        g = g[g[x].isin(kept_x)]
        mask = prob.loc[h].reindex(g[x]).to_numpy() > threshold
        ax.scatter(g[x][mask], g[CENTER][mask], color=colors[h], s=15, zorder=100,
                   edgecolors="none", gid="interpolation_markers")
        marked = marked or bool(mask.any())
    return marked
