"""Pictures of the lecture experiments, drawn from one trial's artifacts: the `autoencoder`'s
iterations from noise (`iterates`) and its training images marked by attractor status (`attractors`).

    python plot.py --name autoencoder     # plots/autoencoder/iterates.pdf, attractors.pdf, ...
"""
from __future__ import annotations

import numpy as np

from memlab.errors import ConfigError
from memlab.plots.common import fmt, new_figure
from memlab.plots.data import as_image
from memlab.plots.registry import option, register
from memlab.plots.weights import select_trial


def _arrays(ctx, row: dict, names: tuple) -> dict:
    arrays = ctx.artifact(row["_key"])
    missing = [n for n in names if n not in arrays]
    if missing:
        raise ConfigError(f"the artifact of trial {row['_key']} has no array '{missing[0]}'", key="where",
                          fix="choose a trial of the autoencoder experiment (arrays there: "
                              f"{', '.join(sorted(arrays))})")
    return arrays


def _shape(arrays: dict) -> tuple:
    shape = tuple(int(s) for s in arrays["image_shape"])
    return (shape + (1, 1))[:3] if len(shape) < 3 else shape


def _show(ax, x, shape, cmap) -> None:
    if len(shape) == 3 and int(np.prod(shape)) == len(x):
        ax.imshow(as_image(x, shape), cmap=cmap if shape[2] == 1 else None, vmin=0, vmax=1,
                  interpolation="nearest")
    else:   # not an image: the vector as a strip
        ax.imshow(np.asarray(x)[None, :], cmap=cmap, aspect="auto", interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def _title(spec, row) -> str:
    where = option(spec, "where") or {}
    return ", ".join(f"{k} = {fmt(v)}" for k, v in where.items()) or f"trial {row['_key']}"


@register("iterates", options={"where": None, "chains": 6, "steps": None, "nearest": True, "cmap": "gray"})
def iterates(df, spec, ctx):
    """Iterations x <- f(x) of a trained autoencoder from uniform noise: one row per start, one
    column per step, and last the training image nearest to the final iterate.

    The trial is the first row (lowest _index) matching `where` (and `query`); the iterates come
    from its artifact (arrays chains, chain_steps, chain_nearest, chain_at_train, train).

    where   -- {column: value} choosing the trial (default None: the first trial)
    chains  -- how many starts (rows), at most those saved (default 6)
    steps   -- the iteration steps to show, a subset of the saved ones (default None: all saved)
    nearest -- add a column with the training image nearest to the final iterate, titled
               "reached" when the iterate is within recover_tol of it, "nearest: missed" when
               not (the iteration ended elsewhere: a spurious state or not yet converged)
               (default True)
    cmap    -- colour map for one-channel images (default "gray")
    """
    row = select_trial(df, spec)
    a = _arrays(ctx, row, ("chains", "chain_steps", "train", "image_shape"))
    chains, steps = a["chains"], [int(s) for s in a["chain_steps"]]
    wanted = option(spec, "steps")
    if wanted is not None:
        bad = [s for s in wanted if int(s) not in steps]
        if bad:
            raise ConfigError(f"step {bad[0]} was not saved", key="steps",
                              fix=f"saved steps: {', '.join(map(str, steps))}")
        cols = [steps.index(int(s)) for s in wanted]
    else:
        cols = list(range(len(steps)))
    n = max(1, min(int(option(spec, "chains")), len(chains)))
    show_nearest = bool(option(spec, "nearest")) and "chain_nearest" in a
    ncols = len(cols) + show_nearest
    figsize = option(spec, "figsize") or (0.75 * ncols + 0.3, 0.8 * n + 0.5)
    fig, axs = new_figure({**spec, "figsize": figsize}, n, ncols, squeeze=False)
    shape, cmap = _shape(a), option(spec, "cmap")
    for r in range(n):
        for c, k in enumerate(cols):
            _show(axs[r, c], chains[r, k], shape, cmap)
            if r == 0:
                axs[r, c].set_title(f"step {steps[k]}", fontsize=7)
        if show_nearest:
            ax = axs[r, -1]
            _show(ax, a["train"][int(a["chain_nearest"][r])], shape, cmap)
            hit = bool(a["chain_at_train"][r]) if "chain_at_train" in a else None
            ax.set_title({True: "reached", False: "nearest: missed", None: "nearest"}[hit], fontsize=7,
                         color={True: "C2", False: "C3", None: "black"}[hit])
    fig.suptitle(_title(spec, row))
    return fig


@register("attractors", options={"where": None, "images": 20, "cols": 10, "cmap": "gray"})
def attractors(df, spec, ctx):
    """A trained autoencoder's training images, each titled with the spectral radius of the
    Jacobian there, framed green when it is an attractor and red when it is not.

    where  -- {column: value} choosing the trial (default None: the first trial)
    images -- how many training images (the first ones) (default 20)
    cols   -- images per row (default 10)
    cmap   -- colour map for one-channel images (default "gray")
    """
    row = select_trial(df, spec)
    a = _arrays(ctx, row, ("train", "rho", "attractor", "image_shape"))
    n = max(1, min(int(option(spec, "images")), len(a["train"])))
    cols = max(1, min(int(option(spec, "cols")), n))
    rows = int(np.ceil(n / cols))
    figsize = option(spec, "figsize") or (0.8 * cols + 0.2, 0.9 * rows + 0.5)
    fig, axs = new_figure({**spec, "figsize": figsize}, rows, cols, squeeze=False)
    shape, cmap = _shape(a), option(spec, "cmap")
    for ax in axs.flat[n:]:
        ax.axis("off")
    for i, ax in enumerate(axs.flat[:n]):
        _show(ax, a["train"][i], shape, cmap)
        color = "C2" if a["attractor"][i] else "C3"
        ax.set_title(f"ρ = {a['rho'][i]:.3f}", fontsize=6, color=color)
        for side in ax.spines.values():
            side.set(edgecolor=color, linewidth=2)
    fig.suptitle(f"{_title(spec, row)}: {int(np.sum(a['attractor'][:n]))} of {n} are attractors")
    return fig
