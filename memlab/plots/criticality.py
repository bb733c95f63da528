"""Pictures of the KTH practical "Model Capacity": the three-panel training plot (loss, accuracy,
learning rate against epoch) and the layer x checkpoint heatmaps of the `criticality` trial.

    python plot.py --name practical_noisy_labels     # training_panels, one line per noise ratio
    python plot.py --name criticality                # layer_heatmap: acc / loss drops, L2 from init
"""
from __future__ import annotations

import numpy as np

from memlab.errors import ConfigError
from memlab.lazy import lazy
from memlab.plots.common import (
    display_value, draw_lines, fmt, legend_title, new_figure, nonempty, require_column, require_columns, summarize)
from memlab.plots.registry import option, register

pd = lazy("pandas")

PANELS = (("loss", "cross-entropy"), ("acc", "accuracy"), ("learning_rate", "learning rate"))


@register("training_panels", table="series",
          options={"hue": None, "splits": ["train", "test"], "band": "ci", "agg": "mean", "logy_loss": False,
                   "cmap": None})
def training_panels(df, spec, ctx):
    """Three panels against epoch: train / test loss, train / test accuracy, the learning rate.

    Solid lines are the training set, dashed the test set; one colour per `hue` value, repeats
    (seeds) averaged with a band.

    hue        -- a column: one colour per value, e.g. "corrupt_prob" (default None)
    splits     -- which of "train", "test" to draw (default both)
    agg        -- how repeats combine (default "mean")
    band       -- "ci", "std" or "none" (default "ci")
    logy_loss  -- logarithmic loss axis (default False)
    cmap       -- colour map for hue (default: a ramp for numbers, tab10 otherwise)
    """
    hue, agg, band = option(spec, "hue"), option(spec, "agg"), option(spec, "band")
    require_columns(df, spec, "hue")
    require_column(df, spec, "epoch", "x")
    nonempty(df, spec)
    splits = option(spec, "splits")
    fig, axes = new_figure(spec, 1, 3, squeeze=True)
    if not isinstance(spec.get("figsize"), list | tuple):
        fig.set_size_inches(12, 3.4)
    colors = None
    for ax, (metric, label) in zip(axes, PANELS, strict=True):
        columns = ["learning_rate"] if metric == "learning_rate" else [f"{s}_{metric}" for s in splits]
        for column, dash in zip(columns, ("-", "--"), strict=False):
            require_column(df, spec, column, "splits")
            rows = df[df[column].notna()]
            if rows.empty:
                continue
            if metric == "learning_rate" and _one_schedule(rows, hue):   # drawn once, not once per hue
                summary = summarize(rows.drop_duplicates("epoch"), "epoch", column, [], agg, "none")
                draw_lines(ax, summary, "epoch", None, None)
                ax.lines[-1].set_color("black")
                continue
            summary = summarize(rows, "epoch", column, [hue] if hue else [], agg, band)
            colors = draw_lines(ax, summary, "epoch", hue, None, cmap=option(spec, "cmap"))
            for line in ax.lines[-(len(colors)):]:
                line.set_linestyle(dash)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        if metric == "loss" and option(spec, "logy_loss"):
            ax.set_yscale("log")
            _plain_log_labels(ax)
    axes[0].plot([], [], "k-", label="train")
    if "test" in splits:
        axes[0].plot([], [], "k--", label="test")
    handles, labels = axes[0].get_legend_handles_labels()
    if hue:   # beside the last panel, where it hides no curve
        axes[2].legend(*_hue_handles(colors, spec, hue), title=legend_title(hue, None, spec), loc="center left",
                       bbox_to_anchor=(1.02, 0.5), frameon=False)
    axes[0].legend([h for h, lab in zip(handles, labels) if lab in ("train", "test")],
                   [lab for lab in labels if lab in ("train", "test")])
    return fig


def _one_schedule(rows: pd.DataFrame, hue: str | None) -> bool:
    """Every hue group (and every repeat) followed the same learning-rate schedule."""
    return bool(rows.groupby("epoch")["learning_rate"].nunique().max() <= 1)


def _hue_handles(colors, spec, hue):
    from matplotlib.lines import Line2D
    keys = list(colors)
    return [Line2D([], [], color=colors[k]) for k in keys], [display_value(spec, hue, k) for k in keys]


def _plain_log_labels(ax) -> None:
    """A log loss axis labelled 0.2, 0.5, 1, 2 rather than 2x10^-1: at 1, 2 and 5 of each decade."""
    from matplotlib.ticker import FuncFormatter

    def label(v, _):
        if v <= 0:
            return ""
        mantissa = round(v / 10 ** np.floor(np.log10(v)), 6)
        return f"{v:g}" if mantissa in (1, 2, 5) else ""
    ax.yaxis.set_major_formatter(FuncFormatter(label))
    ax.yaxis.set_minor_formatter(FuncFormatter(label))


HEATMAP_METRICS = ("acc_drop", "loss_drop", "acc", "loss", "l2_from_init")


@register("layer_heatmap", table="series",
          options={"metrics": ["acc_drop", "loss_drop"], "splits": ["train", "test"], "by": None,
                   "rerandomize": True, "agg": "mean", "cmap": "magma_r", "annotate": True, "fmt": ".2f"})
def layer_heatmap(df, spec, ctx):
    """Layers x checkpoints of the criticality trial's table, one panel per metric and split.

    Rows are layers in network order, columns checkpoint epochs (Zhang, Bengio & Singer 2019).

    metrics     -- columns to show, of acc_drop, loss_drop, acc, loss, l2_from_init
                   (default ["acc_drop", "loss_drop"]; l2_from_init is drawn once, not per split)
    splits      -- of "train", "test" (default both)
    by          -- a column: one row of panels per value, e.g. "model" (default None)
    rerandomize -- add the re-randomization reset as a last column "rand" (default True)
    agg         -- how repeats (seeds) combine (default "mean")
    cmap        -- colour map (default "magma_r": dark = large drop)
    annotate    -- write the value in each cell (default True)
    fmt         -- number format of the annotations (default ".2f")
    vmin, vmax  -- colour range (default: each panel's own)
    query       -- applies to the series table, e.g. "framework == 'torch'"
    """
    for col in ("layer", "layer_index", "checkpoint_epoch", "split", "reset"):
        require_column(df, spec, col, "type")
    metrics = option(spec, "metrics")
    unknown = [m for m in metrics if m not in HEATMAP_METRICS]
    if unknown:
        raise ConfigError(f"plot '{spec['name']}': unknown metric '{unknown[0]}'", key="metrics",
                          fix="choose from " + ", ".join(HEATMAP_METRICS))
    by = option(spec, "by")
    require_columns(df, spec, "by")
    nonempty(df, spec)
    panels = [(m, s) for m in metrics for s in (["train"] if m == "l2_from_init" else option(spec, "splits"))]
    groups = [(None, df)] if by is None else list(df.groupby(by, sort=True))
    side_by_side = len(panels) == 1 and len(groups) > 1     # one panel per group: the groups as columns
    rows, cols = (1, len(groups)) if side_by_side else (len(groups), len(panels))
    fig, axes = new_figure(spec, rows, cols, squeeze=False)
    if not isinstance(spec.get("figsize"), list | tuple):
        n_layers = max(g["layer_index"].nunique() for _, g in groups)
        fig.set_size_inches(max(3.2 * cols + (0.8 * cols if side_by_side else 0), 4.8), (0.25 * n_layers + 1.2) * rows)
    for r, (key, g) in enumerate(groups):
        for c, (metric, split) in enumerate(panels):
            ax = axes[0, r] if side_by_side else axes[r, c]
            grid = heatmap_grid(g, metric, split, option(spec, "rerandomize") and metric != "l2_from_init",
                                option(spec, "agg"))
            _draw(fig, ax, grid, spec)
            title = f"{metric} ({split})" if metric != "l2_from_init" else "L2 distance from init"
            ax.set_title(title if by is None else f"{by}={fmt(key)}: {title}")
            ax.set_xlabel("checkpoint epoch")
            if c:                       # the same layers as the panel on its left
                ax.set_yticklabels([])
    return fig


def heatmap_grid(df: pd.DataFrame, metric: str, split: str, rerandomize: bool, agg: str) -> pd.DataFrame:
    """layers x checkpoint epochs of `metric` (mean over repeats), layers in network order; the
    re-randomization reset as a last column "rand" when asked and present."""
    rows = df[(df["split"] == split) & (df["reset"] == "checkpoint")]
    grid = rows.pivot_table(index=["layer_index", "layer"], columns="checkpoint_epoch", values=metric, aggfunc=agg)
    grid.columns = [fmt(int(c)) for c in grid.columns]
    rand = df[(df["split"] == split) & (df["reset"] == "rerandomize")]
    if rerandomize and not rand.empty:
        extra = rand.pivot_table(index=["layer_index", "layer"], values=metric, aggfunc=agg)[metric]
        grid = grid.join(extra.rename("rand"), how="outer") if not grid.empty else extra.rename("rand").to_frame()
    return grid.sort_index()


def _draw(fig, ax, grid: pd.DataFrame, spec: dict) -> None:
    values = grid.to_numpy(dtype=float)
    vmin, vmax = option(spec, "vmin"), option(spec, "vmax")
    im = ax.imshow(values, aspect="auto", cmap=option(spec, "cmap"), vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.grid(False)
    ax.set_xticks(range(grid.shape[1]), list(grid.columns))
    ax.set_yticks(range(grid.shape[0]), [name for _, name in grid.index])
    if "rand" in grid.columns:   # the re-randomization column is not a checkpoint: set it apart
        ax.axvline(grid.shape[1] - 1.5, color="white", linewidth=3)
    if option(spec, "annotate") and values.size <= 600:
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                r, g, b, _ = im.cmap(im.norm(v))
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5     # light text on dark cells
                text = format(v, option(spec, "fmt"))
                text = text.lstrip("-") if not any(c in "123456789" for c in text) else text   # not "-0.00"
                ax.text(j, i, text, ha="center", va="center", fontsize=6, color="white" if dark else "black")
    fig.colorbar(im, ax=ax, shrink=0.8)

