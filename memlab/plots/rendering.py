"""render(spec, table, ctx) -> Figure, the one entry point plot.py calls per plot spec, and the
README's table of plot types.

    python plot.py --name moons     # for each spec in experiments/moons.json: render, then save
"""
from __future__ import annotations

import contextlib
import json
import re

from memlab.errors import ConfigError, choices_hint
from memlab.lazy import lazy
from memlab.plots.common import apply_common, drawing_into, rc
from memlab.plots.registry import COMMON_OPTIONS, PLOTS, normalized, option, validate

plt = lazy("matplotlib.pyplot")
pd = lazy("pandas")


def apply_query(df: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """df.query(spec["query"]), with an error that names the unknown column and the valid ones."""
    query = option(spec, "query")
    if not query:
        return df
    columns = [c for c in df.columns if not str(c).startswith("_")]
    try:
        out = df.query(query)
    except (pd.errors.UndefinedVariableError, NameError, KeyError) as e:
        found = re.search(r"'([^']+)'", str(e))
        word = found.group(1) if found else str(e)
        raise ConfigError(f"plot '{spec['name']}': query '{query}' uses '{word}', which is not a column",
                          key="query", fix=choices_hint(word, columns)) from None
    except (SyntaxError, ValueError, TypeError) as e:
        raise ConfigError(f"plot '{spec['name']}': query '{query}' is not a valid pandas query ({e})",
                          key="query", fix='write e.g. "query": "max_bias <= 1.0 and dataset == \'moons\'"') from None
    if out.empty:
        raise ConfigError(f"plot '{spec['name']}': query '{query}' selects no rows", key="query",
                          fix="loosen the query; the table has columns " + ", ".join(columns))
    return out


def table_for(spec: dict, df, ctx):
    """What the plot function gets as `df`: the results, the series table, or nothing."""
    pt = PLOTS[spec["type"]]
    if pt.table == "series":
        if ctx is None or ctx.series is None:
            raise ConfigError(f"plot '{spec['name']}' ({pt.name}) needs the per-epoch series table, "
                              f"and this experiment has none", key="type",
                              fix="its trial must return a \"series\" dict; or plot columns of the "
                                  "results table with type \"lines\"")
        return ctx.series
    if pt.table == "none":
        if option(spec, "query"):
            raise ConfigError(f"plot '{spec['name']}' ({pt.name}) draws no results, so 'query' has "
                              f"nothing to select", key="query", fix="remove it")
        return df
    if df is None:
        raise ConfigError(f"plot '{spec['name']}' ({pt.name}) needs results", key="type",
                          fix=f"run the experiment first (`python run.py --name {getattr(ctx, 'name', 'NAME')}`)")
    return df


def render(spec: dict, df: pd.DataFrame | None, ctx, ax=None) -> plt.Figure:
    """Draw one plot: normalize and check the spec, select rows by `query`, call the plot type,
    then apply the options every plot shares.  The figure is not registered with pyplot.

    With `ax` (a subplot of a figure of yours), the plot is drawn in ax's place and the
    returned figure is a subfigure of ax's figure."""
    validate(spec)
    spec = normalized(spec)
    table = table_for(spec, df, ctx)
    if table is not None and PLOTS[spec["type"]].table != "none":
        table = apply_query(table, spec)
    with plt.rc_context(rc(spec)), (drawing_into(ax) if ax is not None else contextlib.nullcontext()):
        fig = PLOTS[spec["type"]].fn(table, spec, ctx)
        apply_common(fig, spec)
    return fig


def _first_line(fn) -> str:
    """The docstring's first paragraph, on one line."""
    paragraph = (fn.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(paragraph.split()).rstrip(".")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def describe_plots() -> str:
    """A markdown table of every plot type: what it draws, its required options, its options."""
    lines = ["| type | draws | required | options (default) |", "|---|---|---|---|"]
    for name in sorted(PLOTS):
        pt = PLOTS[name]
        required = ", ".join(f"`{k}`" for k in pt.required) or "-"
        options = ", ".join(f"`{k}` ({json.dumps(v)})" for k, v in pt.options.items()) or "-"
        source = {"results": "", "series": " (series table)", "none": " (no results needed)"}[pt.table]
        lines.append(f"| `{name}` | {_cell(_first_line(pt.fn))}{source} | {required} | {_cell(options)} |")
    common = ", ".join(f"`{k}`" for k in COMMON_OPTIONS)
    lines += ["", f"Every plot also accepts {common}. Each plot function's docstring "
                  f"(memlab/plots/) explains every option."]
    return "\n".join(lines)
