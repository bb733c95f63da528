"""The plot registry: a plot type is one function (table, spec, ctx) -> matplotlib Figure.

    @register("heatmap", required=("idx", "col", "val"), options={"agg": "mean", ...})
    def heatmap(df, spec, ctx): ...

`required` and `options` (with their defaults) are checked when the experiment file is
loaded, so an unknown plot type, a missing required option or a misspelt one is an error
before any trial runs.  Options every plot accepts are in COMMON_OPTIONS.

A plot type may also declare `normalize(spec) -> spec`, which rewrites an older spelling of its
options (the paper's reference files nest them: "pivot": {"idx": ...}) into the flat one; it
runs before validation and before drawing, so both spellings work everywhere.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from memlab.errors import ConfigError, choices_hint

COMMON_OPTIONS = {
    "figsize": None, "xlabel": None, "ylabel": None, "title": None, "xticks": None, "yticks": None,
    "xlim": None, "ylim": None, "vmin": None, "vmax": None, "legend": None, "outline": None,
    "markersize": None, "query": None, "names": None, "value_names": None, "caption": None,
    "theme": "memlab", "dpi": None,
}
THEMES = ("memlab", "paper")

TABLES = ("results", "series", "none")


@dataclass(frozen=True)
class PlotType:
    name: str
    fn: Callable
    required: tuple = ()
    options: dict = field(default_factory=dict)
    uses_results: bool = True     # False: draws from the dataset/model alone (dataset_2d, boundary_2d)
    normalize: Callable | None = None   # spec -> spec: older option spellings -> the current ones
    table: str = "results"        # what `df` is: "results" (NAME.csv), "series" (NAME_series.csv), "none"


PLOTS: dict[str, PlotType] = {}


def register(name: str, *, required=(), options=None, uses_results: bool = True,
             normalize: Callable | None = None, table: str | None = None):
    if table is None:
        table = "results" if uses_results else "none"
    assert table in TABLES, table

    def deco(fn):
        PLOTS[name] = PlotType(name, fn, tuple(required), dict(options or {}), uses_results,
                               normalize, table)
        return fn
    return deco


def normalized(spec: dict) -> dict:
    """The spec in its current spelling (a copy; the caller's dict is left alone)."""
    pt = PLOTS.get(spec.get("type")) if isinstance(spec, dict) else None
    if pt is None or pt.normalize is None:
        return spec
    return pt.normalize(dict(spec))


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
    try:
        spec = normalized(spec)
    except ConfigError as e:   # add the file and the plot's position to the normalizer's message
        raise ConfigError(e.message, file=file, key=f"{where}.{e.key}" if e.key else where, fix=e.fix) from None
    for k in pt.required:
        if k not in spec:
            raise ConfigError(f"plot '{spec['name']}' ({kind}) needs option '{k}'", file=file,
                              key=f"{where}.{k}", fix=f"add \"{k}\": ... (see the README's plot table)")
    known = {"type", "name", *pt.required, *pt.options, *COMMON_OPTIONS}
    for k in spec:
        if k not in known:
            raise ConfigError(f"plot '{spec['name']}' ({kind}) has no option '{k}'", file=file,
                              key=f"{where}.{k}", fix=choices_hint(k, known))
    theme = spec.get("theme", "memlab")
    if theme not in THEMES:
        raise ConfigError(f"plot '{spec['name']}': unknown theme '{theme}'", file=file, key=f"{where}.theme",
                          fix=choices_hint(str(theme), THEMES))
    for k in ("names", "value_names"):
        if spec.get(k) is not None and not isinstance(spec[k], dict):
            raise ConfigError(f"plot '{spec['name']}': '{k}' must be an object", file=file, key=f"{where}.{k}",
                              fix='write e.g. "names": {"max_bias": "max bias λ"}' if k == "names" else
                              'write e.g. "value_names": {"corruption": {"none": "true labels"}}')


def option(spec: dict, key: str):
    """spec[key], else the plot type's declared default, else the common default."""
    if key in spec:
        return spec[key]
    pt = PLOTS[spec["type"]]
    return pt.options.get(key, COMMON_OPTIONS.get(key))
