"""Learned weights of one trial: `receptive_fields`, each hidden unit's weights against pixel position.

    python plot.py --name receptive_fields     # which units localize, for chosen (xi, gain)
"""
from __future__ import annotations

import numpy as np

from memlab.errors import ConfigError
from memlab.plots.common import fmt, matching, new_figure, nonempty, require_column
from memlab.plots.registry import option, register


def select_trial(df, spec) -> dict:
    """The first trial (lowest _index) whose columns equal spec["where"]."""
    where = option(spec, "where") or {}
    if not isinstance(where, dict):
        raise ConfigError("'where' must be an object of column -> value", key="where",
                          fix='write e.g. "where": {"xi": 0.7, "gain": 3}')
    for col in where:
        require_column(df, spec, col, f"where.{col}")
        df = df[matching(df[col], where[col], key=f"where.{col}", spec=spec)]
    nonempty(df, spec)
    if "_index" in df:
        df = df.sort_values("_index")
    return df.iloc[0].to_dict()


def chosen_units(W: np.ndarray, units) -> list[int]:
    if isinstance(units, (list, tuple)):
        bad = [u for u in units if not 0 <= int(u) < W.shape[0]]
        if bad:
            raise ConfigError(f"unit {bad[0]} does not exist: the trial has {W.shape[0]} hidden units",
                              key="units", fix=f"choose units in 0..{W.shape[0] - 1}")
        return [int(u) for u in units]
    return list(range(min(int(units), W.shape[0])))


@register("receptive_fields", options={"where": None, "units": 6, "artifact": "W", "cols": 3})
def receptive_fields(df, spec, ctx):
    """The first-layer weights of one trial, one small panel per hidden unit.

    The trial is the first row (lowest _index) that matches `where` (and `query`); its weights
    come from its artifact file results/NAME/artifacts/<_key>.npz.

    where    -- {column: value} choosing the trial (default None: the first trial)
    units    -- how many units (the first ones), or a list of unit indices (default 6)
    artifact -- the array's name in the artifact file, shape (units, pixels) (default "W")
    cols     -- panels per row (default 3)
    """
    row = select_trial(df, spec)
    arrays = ctx.artifact(row["_key"])
    name = option(spec, "artifact")
    if name not in arrays:
        raise ConfigError(f"the artifact of trial {row['_key']} has no array '{name}'", key="artifact",
                          fix=f"arrays there: {', '.join(sorted(arrays))}")
    W = np.atleast_2d(arrays[name])
    units = chosen_units(W, option(spec, "units"))
    cols = max(1, min(int(option(spec, "cols")), len(units)))
    rows = int(np.ceil(len(units) / cols))
    figsize = option(spec, "figsize") or (2.0 * cols, 1.4 * rows + 0.3)
    fig, axs = new_figure({**spec, "figsize": figsize}, rows, cols, squeeze=False, sharex=True)
    pixels = np.arange(W.shape[1])
    for ax in axs.flat[len(units):]:
        ax.axis("off")
    for ax, u in zip(axs.flat, units):
        ax.plot(pixels, W[u], color="C0", linewidth=0.8, gid="unit")
        ax.axhline(0.0, color="0.6", linewidth=0.5)
        ax.set_title(f"unit {u}")
    for ax in axs[-1]:
        ax.set_xlabel("pixel")
    for ax in axs[:, 0]:
        ax.set_ylabel("weight")
    where = option(spec, "where") or {}
    fig.suptitle(", ".join(f"{k} = {fmt(v)}" for k, v in where.items()) or f"trial {row['_key']}")
    return fig
