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
    as_number, draw_lines, fmt, legend_title, matching, new_figure, nonempty, require_columns,
    round_columns, summarize, value_limits)
from memlab.plots.registry import option, register

pd = lazy("pandas")
ndimage = lazy("scipy.ndimage")

REGION_COLOR = "blueviolet"
MAX_TICK_LABELS = 11


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


def _thin(n: int) -> np.ndarray:
    """At most MAX_TICK_LABELS evenly spaced positions of n cells (labels would overlap otherwise)."""
    step = max(1, int(np.ceil(n / MAX_TICK_LABELS)))
    return np.arange(0, n, step)


def _smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    # Empty cells (grid points without results) take the mean so the filter does not spread NaN.
    filled = np.where(np.isnan(values), np.nanmean(values), values)
    return ndimage.gaussian_filter(filled, sigma) if sigma else filled


def draw_contours(ax, table: pd.DataFrame, spec: dict) -> None:
    """Contour lines of the Gaussian-smoothed cell values (the paper smooths with sigma 0.8)."""
    z = _smooth(table.to_numpy(dtype=float), option(spec, "smooth"))
    if min(z.shape) < 2 or not z.max() > z.min():
        return   # a flat or one-line grid has no contours
    levels = option(spec, "levels")
    ax.contour(z, levels=None if levels == "auto" else levels, cmap="viridis", linewidths=0.75,
               vmin=option(spec, "contour_vmin"), vmax=option(spec, "contour_vmax"))


def draw_region(ax, region: pd.DataFrame, threshold: float, sigma: float) -> bool:
    """Dashed contour around the cells whose (smoothed) interpolation probability >= threshold."""
    z = _smooth(region.to_numpy(dtype=float), sigma)
    if min(z.shape) < 2 or not (z.max() >= threshold > z.min()):
        return False   # nothing, or everything, interpolates: no boundary to draw
    cs = ax.contour(z, levels=[threshold], colors=[REGION_COLOR], linestyles="dashed", linewidths=1.5)
    cs.set_gid("interpolation_region")
    return True


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
    cmap          -- colour map (default "magma")
    square        -- square cells (default True)
    colorbar      -- draw a colour bar (default True)
    levels        -- contour lines of the Gaussian-smoothed values: a number of levels, a list
                     of values, or "auto" (default None: no contour lines)
    smooth        -- the contour lines' Gaussian smoothing sigma, in cells (default 0.8)
    contour_vmin, contour_vmax -- colour range of the contour lines (default: the data's)
    interpolation_region -- draw the dashed boundary of the region where the (smoothed) mean of
                     `interpolated` is >= region_threshold (default None: whenever the table
                     has an `interpolated` column, as in the paper)
    region_threshold -- (default 0.99)
    region_smooth -- Gaussian sigma of the region, in cells (default 1.0)
    xticks, yticks -- false hides the numbers; a list of values puts ticks there (default:
                     about 10 labelled cells per axis)
    """
    idx, col, val = spec["idx"], spec["col"], spec["val"]
    require_columns(df, spec, "idx", "col", "val")
    nonempty(df, spec)
    agg, decimals = option(spec, "agg"), option(spec, "round")
    table = pivot(df, idx, col, val, agg, decimals)
    fig, ax = new_figure(spec)
    im = ax.imshow(table.to_numpy(dtype=float), origin="lower", cmap=option(spec, "cmap"),
                   vmin=option(spec, "vmin"), vmax=option(spec, "vmax"), interpolation="nearest",
                   aspect="equal" if option(spec, "square") else "auto")
    ax.grid(False)
    ax.memlab_axis_values = {"x": list(table.columns), "y": list(table.index)}   # for xticks/xlim
    xs, ys = _thin(table.shape[1]), _thin(table.shape[0])
    ax.set_xticks(xs, [fmt(table.columns[i]) for i in xs], rotation=90)
    ax.set_yticks(ys, [fmt(table.index[i]) for i in ys])
    ax.set_xlabel(col)
    ax.set_ylabel(idx)
    if option(spec, "levels") is not None:
        draw_contours(ax, table, spec)
    region = option(spec, "interpolation_region")
    if region is None:
        region = "interpolated" in df.columns
    if region:
        if "interpolated" not in df.columns:
            raise ConfigError(f"plot '{spec['name']}': interpolation_region needs an 'interpolated' "
                              f"column (derived from 'score')", key="interpolation_region",
                              fix="set \"interpolation_region\": false, or plot a trial that returns 'score'")
        draw_region(ax, pivot(df, idx, col, "interpolated", "mean", decimals),
                    option(spec, "region_threshold"), option(spec, "region_smooth"))
    if option(spec, "colorbar"):
        fig.colorbar(im, ax=ax)
    return fig


@register("slices", required=("x", "y", "hue"), normalize=normalize_slices, options={
    "values": None, "agg": "mean", "round": None, "band": "ci", "marker_threshold": 0.99,
    "mark_every": 1, "cmap": None})
def slices(df, spec, ctx):
    """Lines of `y` against `x`, one per chosen value of `hue`: slices through a heatmap.

    x, y, hue        -- columns of the results table (required)
    values           -- which values of `hue` get a line (default None: all)
    agg              -- how repeats combine into the line (default "mean")
    round            -- round float x/hue values to this many decimals first (default None)
    band             -- "ci" (95% confidence interval of the mean), "std" or "none" (default "ci")
    marker_threshold -- mark the points whose mean of `interpolated` exceeds this (default 0.99;
                        None: no markers; needs an `interpolated` column)
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
    summary = summarize(df, x, y, [hue], option(spec, "agg"), option(spec, "band"))
    fig, ax = new_figure(spec)
    colors = draw_lines(ax, summary, x, hue, None, cmap=option(spec, "cmap"))
    threshold = option(spec, "marker_threshold")
    if threshold is not None and "interpolated" in df.columns:
        _mark_interpolating(ax, df, summary, x, hue, colors, threshold, option(spec, "mark_every"))
    elif "marker_threshold" in spec and threshold is not None:
        raise ConfigError(f"plot '{spec['name']}': marker_threshold needs an 'interpolated' column",
                          key="marker_threshold", fix="remove it, or plot a trial that returns 'score'")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.legend(title=legend_title(hue, None))
    value_limits(ax, spec)
    return fig


def _mark_interpolating(ax, df, summary, x, hue, colors, threshold, every) -> None:
    """Dots on each line where the interpolation probability at that x exceeds `threshold`."""
    prob = df.assign(interpolated=as_number(df["interpolated"])).groupby([hue, x])["interpolated"].mean()
    kept_x = set(np.sort(summary[x].unique())[::max(1, int(every))])
    for h, g in summary.groupby(hue, sort=False):
        g = g[g[x].isin(kept_x)]
        mask = prob.loc[h].reindex(g[x]).to_numpy() > threshold
        ax.scatter(g[x][mask], g["center"][mask], color=colors[h], s=15, zorder=100,
                   edgecolors="none", gid="interpolation_markers")
