"""The constructive network on a 2-D dataset: each second-layer neuron's region and the boundary.

    python plot.py --name moons     # plots/moons/boundary*.pdf (the paper's Figure 3)

The model is fitted here, from the plot's options (no results table): algorithm.get_model(params,
random_state).fit(X, y), then read through its fitted attributes `anchor_` (index into X of the
point each second-layer neuron was built around), `neuron_outputs(X)` and `predict(X)`.
"""
from __future__ import annotations

import itertools

import numpy as np

from memlab.errors import ConfigError
from memlab.lazy import lazy
from memlab.plots.common import add_caption, new_figure, size_inches
from memlab.plots.data import check_2d, class_styles, fitted_figsize, load, scatter_classes, set_aspect
from memlab.plots.registry import option, register

MODEL_KEYS = ("n_iter", "max_bias", "activation")

mlines = lazy("matplotlib.lines")
mpatches = lazy("matplotlib.patches")


def normalize_boundary(spec: dict) -> dict:
    """The reference spelling: "model": {"n_iter": ..., "max_bias": ..., "activation": ...}."""
    model = spec.get("model")
    if isinstance(model, dict):
        rest = dict(model)
        for k in MODEL_KEYS:
            if k in rest:
                spec.setdefault(k, rest.pop(k))
        spec["model"] = rest
    elif model is not None:
        raise ConfigError("'model' must be an object of the algorithm's parameters", key="model",
                          fix='write e.g. "model": {"n_iter": 500, "max_bias": 1.0}')
    return spec


def fit_model(X, y, spec: dict):
    from memlab import algorithm   # here: numba and scikit-learn load only when a boundary is drawn
    params = {**(option(spec, "model") or {}), **{k: option(spec, k) for k in MODEL_KEYS}}
    return algorithm.get_model(params, random_state=option(spec, "seed")).fit(np.array(X), np.array(y))


def grid_over(ax, resolution: int):
    """A resolution x resolution grid of points spanning the axes' current limits."""
    xs = np.linspace(*ax.get_xlim(), num=resolution)
    ys = np.linspace(*ax.get_ylim(), num=resolution)
    xx, yy = np.meshgrid(xs, ys)
    return xx, yy, np.c_[xx.ravel(), yy.ravel()].astype(np.float32)


@register("boundary_2d", required=("dataset",), uses_results=False, normalize=normalize_boundary,
          options={"n_iter": 100, "max_bias": 1.0, "activation": "thres", "model": {}, "seed": 0,
                   "resolution": 150, "samples_on_top": False, "markersize": None, "split": "all",
                   "equal_aspect": None})
def boundary_2d(df, spec, ctx):
    """The fitted network's decision regions on a 2-D binary dataset.

    Each second-layer neuron's region (where it fires) is filled in its own colour with a solid
    edge, the network's decision boundary is dashed black, and the point each neuron was built
    around is a star in the neuron's colour.

    dataset        -- dataset name (required; two classes, two features)
    n_iter         -- width of the first layer n (default 100)
    max_bias       -- maximal bias lambda (default 1.0)
    activation     -- "thres" or "relu" (default "thres")
    model          -- further parameters for algorithm.get_model (default {}); the reference
                      spelling {"n_iter", "max_bias", "activation"} works too
    seed           -- the model's random_state (default 0)
    resolution     -- grid points per axis where the regions are evaluated (default 150)
    samples_on_top -- draw the samples over the stars too (default False: over the regions and
                      the boundary, under the stars, as the reference code draws them)
    markersize     -- sample marker size in points (default None: 2, or 5 for at most 200 points)
    split          -- "all", "train" or "test" (default "all")
    equal_aspect   -- the same scale on both axes (default None: yes, unless the data are more
                      than 3 times wider than tall or taller than wide)
    xlim, ylim     -- the drawn window, also where the regions are evaluated (default: the data's)
    legend         -- false hides the legend of classes and marks (default: shown, beside the axes)
    """
    ds = load(ctx, spec)
    check_2d(ds, spec)
    labels = np.unique(ds.y)
    if len(labels) != 2:
        raise ConfigError(f"plot '{spec['name']}': boundary_2d needs two classes, '{ds.name}' has "
                          f"{len(labels)}", key="dataset", fix="use a binary dataset (moons, lines)")
    model = fit_model(ds.X, ds.y, spec)
    fig, ax = new_figure(fitted_figsize(spec, ds.X))
    ax.grid(False)
    scatter_classes(ax, ds.X, ds.y, class_styles(ds), option(spec, "markersize"),
                    zorder=5 if option(spec, "samples_on_top") else 3)
    set_aspect(ax, ds.X, spec)
    if option(spec, "xlim") is not None:
        ax.set_xlim(*option(spec, "xlim"))
    if option(spec, "ylim") is not None:
        ax.set_ylim(*option(spec, "ylim"))
    xx, yy, points = grid_over(ax, int(option(spec, "resolution")))
    fires = np.asarray(model.neuron_outputs(points), dtype=bool)
    colors = [c for _, c in zip(range(fires.shape[1]), itertools.cycle(f"C{i}" for i in range(10)))]
    for j, color in enumerate(colors):
        draw_region(ax, xx, yy, fires[:, j].reshape(xx.shape), color)
    predicted = (np.asarray(model.predict(points)) == labels[1]).reshape(xx.shape)
    if predicted.any() and not predicted.all():
        cs = ax.contour(xx, yy, predicted.astype(float), levels=[0.5], colors="black",
                        linestyles="dashed", linewidths=1.0, zorder=2)
        cs.set_gid("decision_boundary")
    for j, color in enumerate(colors):
        a = int(model.anchor_[j])
        ax.plot(ds.X[a, 0], ds.X[a, 1], "*", markersize=12, markerfacecolor=color, markeredgewidth=1.0,
                markeredgecolor="black", zorder=4, gid="anchor")
    handles = ax.get_legend_handles_labels()[0] + legend_marks(colors, predicted.any() and not predicted.all())
    # Beside the axes takes ~2 inches: under them on a strip, or in a figure under 5 inches wide
    # (the reference's 4 x 3 lines figure), where beside would squeeze the axes to a sliver.
    below = not ax.get_aspect() == 1.0 or size_inches(fig)[0] < 5.0
    ax.legend(handles=handles, frameon=False, fontsize="small",
              **({"loc": "upper center", "bbox_to_anchor": (0.5, -0.12),
                  "ncols": 3 if size_inches(fig)[0] >= 5.0 else 1} if below else
                 {"loc": "center left", "bbox_to_anchor": (1.0, 0.5)}))
    add_caption(fig, f"{len(colors)} second-layer neurons: each fires in its coloured region, built "
                     f"around the point marked by the star in its colour")
    return fig


def legend_marks(colors, boundary: bool) -> list:
    """Legend entries for what boundary_2d draws besides the classes."""
    marks = [mpatches.Patch(facecolor=colors[0] if colors else "C0", alpha=0.5, edgecolor=colors[0] if colors else "C0",
                   label="a neuron's region (one colour each)"),
             mlines.Line2D([], [], marker="*", linestyle="none", markersize=9, markerfacecolor="0.8",
                    markeredgecolor="black", label="the point it was built around")]
    if boundary:
        marks.append(mlines.Line2D([], [], color="black", linestyle="dashed", linewidth=1.0, label="decision boundary"))
    return marks


def draw_region(ax, xx, yy, inside: np.ndarray, color) -> None:
    """Fill where a neuron fires, half transparent, and outline it."""
    if not inside.any():
        return
    z = inside.astype(float)
    ax.contourf(xx, yy, z, levels=[0.5, 1.5], colors=[color], alpha=0.5, zorder=1)
    if not inside.all():
        ax.contour(xx, yy, z, levels=[0.5], colors=[color], linewidths=0.75, zorder=1.5)
