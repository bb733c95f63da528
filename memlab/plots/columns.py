"""Which columns a plot spec names, checked against those the trial produces, before any trial runs.

    python run.py --name moons --dry-run     # a plot naming "modle" fails here, not after the grid

A trial module declares what it returns (module level, beside PARAMS):

    RETURNS = ("score", "fit_time", "second_dim_in_*")    # flat results and series columns; * globs

The results table then has: every parameter (the grid's and the declared PARAMS defaults),
`_index`, `_key`, the RETURNS, and the derived columns (`interpolated` when there is a `score`,
`n_samples` when there is a `dataset`).  A module without RETURNS is not checked.
"""
from __future__ import annotations

import io
import keyword
import tokenize
from fnmatch import fnmatchcase

from memlab.errors import ConfigError, choices_hint
from memlab.plots.registry import PLOTS, normalized

# Options that name one column, by plot type (any type: these keys when present).
COLUMN_OPTIONS = ("x", "y", "hue", "style", "idx", "col", "val")
BOOKKEEPING = ("_index", "_key")
QUERY_WORDS = {"and", "or", "not", "in", "True", "False", "None", "index"}


def derived(columns) -> list[str]:
    """The columns add_derived_columns() adds to a table that has `columns`."""
    out = []
    if any(fnmatchcase("score", c) for c in columns):
        out.append("interpolated")
    if "dataset" in columns:
        out.append("n_samples")
    return out


def trial_columns(module, grid: list[dict]) -> list[str] | None:
    """Every column the results of `module` over `grid` can have; None when it declares no RETURNS."""
    returns = getattr(module, "RETURNS", None)
    if returns is None:
        return None
    params = list(getattr(module, "PARAMS", None) or {})
    for g in grid:
        params += [k for k in g if k not in params]
    columns = [*params, *BOOKKEEPING, *returns]
    return columns + [c for c in derived(columns) if c not in columns]


def query_names(query: str) -> list[str]:
    """The column names a pandas query uses: bare names that are not keywords, calls, attributes
    or @locals, and `backticked` names."""
    names, prev = [], None
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(query).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return names   # a malformed query is reported when it is applied
    for i, tok in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if tok.type == tokenize.NAME and tok.string not in QUERY_WORDS and not keyword.iskeyword(tok.string):
            after_dot = prev is not None and prev.string in (".", "@")
            is_call = nxt is not None and nxt.string == "("
            if not after_dot and not is_call:
                names.append(tok.string)
        prev = tok
    for part in query.split("`")[1::2]:
        names.append(part)
    return names


def named_columns(spec: dict) -> list[tuple[str, str]]:
    """(option, column) for every column the spec names: its column options, `where` keys and
    the names in its `query`."""
    spec = normalized(spec)
    out = [(k, spec[k]) for k in COLUMN_OPTIONS if isinstance(spec.get(k), str)]
    where = spec.get("where")
    if isinstance(where, dict):
        out += [(f"where.{k}", k) for k in where]
    if isinstance(spec.get("query"), str):
        out += [("query", name) for name in query_names(spec["query"])]
    return out


def _known(column: str, columns) -> bool:
    return any(column == c or fnmatchcase(column, c) for c in columns)


def check_columns(spec: dict, columns, file=None, where: str = "plots") -> None:
    """ConfigError when the plot spec names a column the trial does not produce.

    `columns`: the trial's columns (trial_columns(); patterns with * allowed), or None: unknown,
    nothing is checked.  Plots that draw no results (dataset_2d, boundary_2d, ...) are skipped.
    """
    if columns is None or not isinstance(spec, dict) or spec.get("type") not in PLOTS:
        return
    if PLOTS[spec["type"]].table == "none":
        return
    for key, column in named_columns(spec):
        if not _known(column, columns):
            plain = [c for c in columns if "*" not in c]
            raise ConfigError(f"plot '{spec.get('name')}' ({spec['type']}): {key} names column '{column}', "
                              f"which this trial does not produce", file=file, key=f"{where}.{key}",
                              fix=choices_hint(column, plain))
