"""Command-line overrides of grid values: `--set KEY=VALUES`.

    python run.py --name moons_demo --set n_iter=20,40 --set max_bias=0.5 --as moons_quick
    python run.py --name sgd --set 'widths=[512],[256,256]'      # two values, each a list
    python run.py --name sgd --set dataset=moons,digits          # bare words are strings

Each `--set` replaces that parameter's values in every grid of `param_grid` (and adds it where
a grid does not list it).  VALUES is split on the commas outside brackets and quotes; each
piece is read as JSON, and a bare word that is not JSON is a string.  A single shorthand
object (`--set 'n_iter={"type_": "range", "stop": 50}'`) stands for its values, as in a file.
The result is validated exactly like the file; an error names `--set KEY` and the fix.
"""
from __future__ import annotations

import copy
import json
from contextlib import contextmanager

from memlab.errors import ConfigError, UserError, choices_hint

_OPEN, _CLOSE = "[{", "]}"


def split_values(text: str) -> list[str]:
    """'1,[2,3],"a,b"' -> ['1', '[2,3]', '"a,b"']: commas inside brackets, braces or quotes stay."""
    parts, depth, start, quoted, escaped = [], 0, 0, False, False
    for i, ch in enumerate(text):
        if quoted:                      # inside a JSON string: only its closing quote counts
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
            continue
        if ch == '"':
            quoted = True
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def parse_value(text: str, key: str):
    """One value: JSON if it reads as JSON, else (a bare word) the string itself."""
    s = text.strip()
    if not s:
        raise UserError(f"--set {key}: an empty value", fix=f"give a value between the commas, e.g. --set {key}=1,2")
    try:
        return json.loads(s)
    except json.JSONDecodeError as e:
        if s[0] in '[{"' or s[-1] in ']}"':       # meant as JSON: say where it breaks
            raise UserError(f"--set {key}: {s!r} is not valid JSON ({e.msg} at column {e.colno})",
                            fix=f"check the brackets and quotes, and quote the whole option for the shell: "
                                f"--set '{key}=[1,2],[3]'") from None
        return s


def parse_set(text: str) -> tuple[str, list | dict]:
    """'n_iter=20,40' -> ('n_iter', [20, 40]); a lone shorthand object is returned as the object."""
    key, eq, values = text.partition("=")
    key = key.strip()
    if not eq or not key:
        raise UserError(f"--set {text!r}: expected KEY=VALUES", fix="write e.g. --set n_iter=20,40 (comma = a sweep)")
    if not values.strip():
        raise UserError(f"--set {key}: no values", fix=f"write e.g. --set {key}=1,2 (comma = a sweep)")
    out = [parse_value(v, key) for v in split_values(values)]
    if len(out) == 1 and isinstance(out[0], dict) and "type_" in out[0]:
        return key, out[0]
    return key, out


def apply_sets(raw: dict, sets: list[str]) -> dict:
    """The experiment dict with each `KEY=VALUES` of `sets` set in every grid of its param_grid.

    Returns a new dict (`raw` is not changed); validation of names and values is left to
    config.build_experiment (use it with `sets=` so an error names `--set KEY`).
    """
    if not sets:
        return raw
    if "param_grid" not in raw:
        raise UserError("--set changes grid values, and this experiment has no param_grid",
                        fix="drop --set (a plot-only experiment runs no trials)")
    parsed = {}
    for text in sets:
        key, values = parse_set(text)
        if key in parsed:
            raise UserError(f"--set {key} is given twice", fix=f"give all its values in one: --set {key}=A,B")
        parsed[key] = values
    out = copy.deepcopy(raw)
    grids = out["param_grid"] if isinstance(out["param_grid"], list) else [out["param_grid"]]
    for g in grids:
        if isinstance(g, dict):
            g.update(copy.deepcopy(parsed))
    return out


def set_keys(sets) -> list[str]:
    return [parse_set(s)[0] for s in sets or ()]


@contextmanager
def blamed_on_sets(sets):
    """Re-raise a ConfigError about a parameter given with --set as an error of `--set KEY`."""
    keys = set(set_keys(sets))
    try:
        yield
    except ConfigError as e:
        where = (e.key or "").split(".")
        if len(where) < 2 or where[0] != "param_grid" or where[1] not in keys:
            raise
        key = where[1]
        if "has no parameter" in e.message:
            fix = f"write --set KEY=VALUES with a parameter of the trial: {e.fix}"
        else:
            fix = f"give --set {key} valid values: {e.fix}"
        raise ConfigError(f"--set {key}: {e.message}", fix=fix) from None


def check_undeclared(module, raw: dict, sets, path) -> None:
    """A trial that declares no PARAMS cannot say whether a new key is a typo: refuse new keys."""
    if getattr(module, "PARAMS", None) is not None:
        return
    grids = raw["param_grid"] if isinstance(raw["param_grid"], list) else [raw["param_grid"]]
    known = {k for g in grids if isinstance(g, dict) for k in g}
    for key in set_keys(sets):
        if key not in known:
            raise ConfigError(f"--set {key}: the grid has no parameter '{key}', and trial '{raw.get('trial')}' "
                              f"declares none (no PARAMS) to check it against", file=path,
                              fix=f"--set one of the grid's parameters: {choices_hint(key, known)}")
