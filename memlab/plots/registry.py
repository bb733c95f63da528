"""The plot registry: a plot type is one function (table, spec, ctx) -> matplotlib Figure.

    @register("heatmap", required=("idx", "col", "val"), options={"agg": "mean", ...})
    def heatmap(df, spec, ctx): ...

`required` and `options` (with their defaults) are checked when the experiment file is
loaded, so an unknown plot type, a missing required option or a misspelt one is an error
before any trial runs.  Options every plot accepts are in COMMON_OPTIONS.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from memlab.errors import ConfigError, choices_hint

COMMON_OPTIONS = {
    "figsize": None, "xlabel": None, "ylabel": None, "title": None, "xticks": None, "yticks": None,
    "xlim": None, "ylim": None, "vmin": None, "vmax": None, "legend": None, "outline": None,
    "markersize": None, "query": None,
}


@dataclass(frozen=True)
class PlotType:
    name: str
    fn: Callable
    required: tuple = ()
    options: dict = field(default_factory=dict)
    uses_results: bool = True     # False: draws from the dataset/model alone (dataset_2d, boundary_2d)


PLOTS: dict[str, PlotType] = {}


def register(name: str, *, required=(), options=None, uses_results: bool = True):
    def deco(fn):
        PLOTS[name] = PlotType(name, fn, tuple(required), dict(options or {}), uses_results)
        return fn
    return deco


def validate(spec, *, file=None, where: str = "plots") -> None:
    """Raise ConfigError unless `spec` is a known plot type with its required options."""
    if not isinstance(spec, dict):
        raise ConfigError("a plot must be an object with 'type' and 'name'", file=file, key=where,
                          fix='write e.g. {"type": "heatmap", "name": "interpolation", ...}')
    for k in ("type", "name"):
        if k not in spec:
            raise ConfigError(f"plot has no '{k}'", file=file, key=where, fix=f"add \"{k}\": ...")
    kind = spec["type"]
    if kind not in PLOTS:
        raise ConfigError(f"unknown plot type '{kind}'", file=file, key=f"{where}.type",
                          fix=choices_hint(kind, PLOTS))
    pt = PLOTS[kind]
    for k in pt.required:
        if k not in spec:
            raise ConfigError(f"plot '{spec['name']}' ({kind}) needs option '{k}'", file=file,
                              key=f"{where}.{k}", fix=f"add \"{k}\": ... (see the README's plot table)")
    known = {"type", "name", *pt.required, *pt.options, *COMMON_OPTIONS}
    for k in spec:
        if k not in known:
            raise ConfigError(f"plot '{spec['name']}' ({kind}) has no option '{k}'", file=file,
                              key=f"{where}.{k}", fix=choices_hint(k, known))


def option(spec: dict, key: str):
    """spec[key], else the plot type's declared default, else the common default."""
    if key in spec:
        return spec[key]
    pt = PLOTS[spec["type"]]
    return pt.options.get(key, COMMON_OPTIONS.get(key))
