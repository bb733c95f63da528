"""Line plots of results: `curves` (a metric per epoch, from the series table) and `lines`
(any column against any other, from the results table), averaged over repeats with a band.

    python plot.py --name sgd_corrupt     # e.g. training loss per epoch, test error vs corrupt_prob
"""
from __future__ import annotations

import numpy as np

from memlab.errors import ConfigError
from memlab.lazy import lazy
from memlab.plots.common import (
    add_caption, as_number, band_caption, data_ticks, display_name, draw_lines, legend_title, new_figure, nonempty,
    require_columns, summarize, value_limits)
from memlab.plots.registry import option, register

pd = lazy("pandas")


def relative_to(df, spec, x: str, y: str, groups: list[str], at):
    """df with y divided by the mean y of the rows at x == `at` in the same (hue, style) group."""
    xs = df[x]
    at_ref = np.isclose(pd.to_numeric(xs, errors="coerce"), float(at)) if isinstance(at, (int, float)) else (xs.astype(str) == str(at))
    if not at_ref.any():
        raise ConfigError(f"plot '{spec['name']}': relative_to {at!r}: no row has {x} == {at!r}",
                          key="relative_to", fix=f"give one of the values of {x}")
    d = df.assign(**{y: as_number(df[y])})
    if not groups:
        return d.assign(**{y: d[y] / d.loc[at_ref, y].mean()})
    ref = d[at_ref].groupby(groups, dropna=False)[y].mean().rename("_reference")
    d = d.join(ref, on=groups)
    return d.assign(**{y: d[y] / d.pop("_reference")})


def _line_plot(df, spec, *, markers: bool):
    x, y, hue, style = option(spec, "x"), spec["y"], option(spec, "hue"), option(spec, "style")
    require_columns(df, spec, "x", "y", "hue", "style")
    nonempty(df, spec)
    if spec.get("relative_to") is not None:
        df = relative_to(df, spec, x, y, [c for c in (hue, style) if c], spec["relative_to"])
    agg = option(spec, "agg")
    summary = summarize(df, x, y, [c for c in (hue, style) if c], agg, option(spec, "band"),
                        option(spec, "bounds"), option(spec, "min_n"))
    fig, ax = new_figure(spec)
    categorical = not (pd.api.types.is_numeric_dtype(summary[x]) or pd.api.types.is_bool_dtype(summary[x]))
    draw_lines(ax, summary, x, hue, style, cmap=option(spec, "cmap"), markers=markers,
               markersize=option(spec, "markersize"), spec=spec, join=not categorical)
    if option(spec, "logx"):
        ax.set_xscale("log")
    if option(spec, "logy"):
        ax.set_yscale("log")
    data_ticks(ax, "x", summary[x], log=bool(option(spec, "logx")))
    ax.set_xlabel(display_name(spec, x))
    ax.set_ylabel(display_name(spec, y))
    if hue or style:
        ax.legend(title=legend_title(hue, style, spec))
    add_caption(fig, band_caption(summary, agg, option(spec, "min_n")))
    value_limits(ax, spec)
    return fig


LINE_OPTIONS = {"hue": None, "style": None, "band": "ci", "agg": "mean", "bounds": "auto", "min_n": 5,
                "logx": False, "logy": False, "cmap": None}


# The options both line plots take, documented once (appended to each docstring below).
LINE_OPTIONS_DOC = """
    hue        -- a column: one colour per value (default None)
    agg        -- how repeats combine (default "mean")
    band       -- "ci" (a 95 % interval of the mean: Wilson's for a 0/1 column, Student's t
                  otherwise), "std" (+- one standard deviation) or "none" (default "ci")
    bounds     -- the range y can take, [lo, hi] (either may be null); bands are clipped to
                  it (default "auto": [0, 1] when every value is in [0, 1], [0, inf) when none
                  is negative; null: unbounded)
    min_n      -- points with fewer trials than this get no band, and the caption says so
                  (default 5)
    logx, logy -- logarithmic axes (default False)
    cmap       -- colour map for hue (default: a light-to-dark ramp for numbers, tab10 otherwise)
    vmin, vmax -- the y range (default: the data's)
"""


@register("curves", required=("y",), table="series", options={"x": "epoch", **LINE_OPTIONS, "markers": False})
def curves(df, spec, ctx):
    """A metric against epoch (or step), one line per group, from results/NAME_series.csv.

    Rows that share (hue, style, x) are averaged: repeats over restarts or seeds become the band.

    y          -- the metric column (required), e.g. "train_loss"
    x          -- (default "epoch")
    style      -- a column: one dash pattern per value (default None)
    markers    -- a marker at each point (default False)
    query      -- applies to the series table here"""
    return _line_plot(df, spec, markers=option(spec, "markers"))


@register("lines", required=("x", "y"), options={**LINE_OPTIONS, "markers": True, "relative_to": None})
def lines(df, spec, ctx):
    """`y` against `x` from the results table, e.g. test error against corrupt_prob.

    Rows that share (hue, style, x) are aggregated: repeats over restarts or seeds become the band.

    x, y       -- columns (required)
    style      -- a column: one dash pattern and marker per value (default None)
    markers    -- a marker at each point (default True)
    relative_to -- an x value: each row's y is divided by the mean y at that x in its (hue,
                  style) group, e.g. 0.0 for time to fit relative to true labels, as Zhang et
                  al. draw Fig. 1b (default None: y as it is)"""
    return _line_plot(df, spec, markers=option(spec, "markers"))


for _fn in (curves, lines):
    if _fn.__doc__:                   # None under python -OO
        _fn.__doc__ += LINE_OPTIONS_DOC
