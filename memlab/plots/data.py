"""Pictures of a dataset itself (no results needed): 2-D scatter, sample images, 1-D signals.

    python plot.py --name moons     # plots/moons/dataset.pdf: the two moons, by class
"""
from __future__ import annotations

import itertools

import numpy as np

from memlab.errors import ConfigError, choices_hint
from memlab.plots.common import MARKERS, new_figure
from memlab.plots.registry import option, register

# The paper draws class 0 as red circles (X+) and class 1 as blue triangles (X-).
BINARY_STYLE = ({"color": "red", "marker": "o", "label": r"$\mathcal{X}^+$"},
                {"color": "blue", "marker": "^", "label": r"$\mathcal{X}^-$"})


def load(ctx, spec: dict):
    kw = {"split": option(spec, "split")} if option(spec, "split") not in (None, "all") else {}
    return ctx.load_dataset(spec["dataset"], **kw)


def class_styles(ds) -> list[dict]:
    """Colour, marker and legend label per class index."""
    classes = ds.meta.get("classes") or [str(c) for c in range(int(ds.y.max()) + 1)]
    if len(classes) == 2:
        return list(BINARY_STYLE)
    colors = itertools.cycle([f"C{i}" for i in range(10)])
    return [{"color": c, "marker": m, "label": str(name)}
            for name, c, m in zip(classes, colors, itertools.cycle(MARKERS))]


def scatter_classes(ax, X, y, styles, markersize, zorder=2) -> None:
    """One scatter collection per class, in class order; markersize None: 2 points, or 5 for a
    dataset of at most 200 points (a handful of dots must stay visible)."""
    markersize = markersize if markersize is not None else (2 if len(X) > 200 else 5)
    for c in np.unique(y):
        pts = X[y == c]
        ax.scatter(pts[:, 0], pts[:, 1], s=markersize ** 2, linewidths=0, zorder=zorder,
                   gid=f"class_{int(c)}", **styles[int(c)])


MAX_EQUAL_RATIO = 3.0


def window(X, spec: dict) -> tuple[float, float]:
    """Width and height of what is drawn: the data's extent, or the spec's xlim / ylim where given
    (the reference's lines.json widens a 0.1-high strip to ylim [-0.55, 0.55])."""
    lo, hi = np.min(X, axis=0).astype(float), np.max(X, axis=0).astype(float)
    for i, key in enumerate(("xlim", "ylim")):
        if option(spec, key) is not None:
            lo[i], hi[i] = sorted(float(v) for v in option(spec, key))
    w, h = (float(v) for v in np.maximum(hi - lo, 1e-12))
    return w, h


def set_aspect(ax, X, spec: dict) -> None:
    """Equal axis scales (a circle stays round) unless the window drawn (the data, or xlim / ylim)
    is more than 3 times wider than tall (or taller than wide): then each axis gets its own
    scale, or the plot is a thin strip."""
    equal = option(spec, "equal_aspect")
    if equal is None:
        w, h = window(X, spec)
        equal = max(w / h, h / w) <= MAX_EQUAL_RATIO
    if equal:
        ax.set_aspect("equal")
    else:   # points on the edge of a strip would touch the frame
        ax.margins(x=0.05, y=0.4)


def fitted_figsize(spec: dict, X, width: float = 6.4, axes_share: float = 0.5) -> dict:
    """The spec with a figure height that fits equal-aspect data (no empty band above and below)."""
    if option(spec, "figsize") is not None:
        return spec
    w, h = window(X, spec)
    ratio = h / w if max(w / h, h / w) <= MAX_EQUAL_RATIO else 0.5
    return {**spec, "figsize": (width, min(8.0, width * axes_share * ratio + 1.1))}


def check_2d(ds, spec) -> None:
    if ds.X.ndim != 2 or ds.X.shape[1] != 2:
        raise ConfigError(f"plot '{spec['name']}' ({spec['type']}) needs a 2-D dataset; "
                          f"'{ds.name}' has {ds.X.shape[1]} features", key="dataset",
                          fix="use e.g. moons or lines, or plot images with dataset_images")


@register("dataset_2d", required=("dataset",), uses_results=False,
          options={"markersize": None, "split": "all", "equal_aspect": None})
def dataset_2d(df, spec, ctx):
    """A 2-D dataset as a scatter plot, one colour and marker per class.

    dataset    -- dataset name (required)
    split      -- "all", "train" or "test" (default "all")
    markersize -- marker size in points (default None: 2, or 5 for at most 200 points)
    equal_aspect -- the same scale on both axes (default None: yes, unless the data are more
                  than 3 times wider than tall or taller than wide)
    legend     -- false hides the class legend; {"title": ..., "labels": [...]} renames it
                  (default: shown beside the axes)
    """
    ds = load(ctx, spec)
    check_2d(ds, spec)
    fig, ax = new_figure(fitted_figsize(spec, ds.X, axes_share=0.75))
    scatter_classes(ax, ds.X, ds.y, class_styles(ds), option(spec, "markersize"))
    set_aspect(ax, ds.X, spec)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title="class")
    return fig


def normalize_images(spec: dict) -> dict:
    """The reference spelling: a rows x cols grid of the first image of each listed class."""
    if ("rows" in spec or "cols" in spec) and "n_per_class" not in spec:
        spec["n_per_class"] = 1
    return spec


def pick(y: np.ndarray, c: int, n: int, seed) -> np.ndarray:
    """n indices of class c: the first n, or n drawn with `seed`."""
    idx = np.flatnonzero(y == c)
    if seed is None or n >= len(idx):
        return idx[:n]
    return np.sort(np.random.default_rng(seed).choice(idx, size=n, replace=False))


def chosen_classes(ds, spec) -> list[int]:
    present = [int(c) for c in np.unique(ds.y)]
    classes = option(spec, "classes")
    if classes is None:
        return present
    for c in classes:
        if int(c) not in present:
            raise ConfigError(f"plot '{spec['name']}': dataset '{ds.name}' has no class {c}",
                              key="classes", fix=choices_hint(str(c), [str(p) for p in present]))
    return [int(c) for c in classes]


def image_shape(ds, spec) -> tuple[int, int, int]:
    shape = ds.image_shape
    if option(spec, "img_height") is not None:   # the reference spelling, used when meta lacks it
        shape = (spec["img_height"], spec.get("img_width", spec["img_height"]), spec.get("img_channels", 1))
    if shape is None:
        raise ConfigError(f"plot '{spec['name']}': dataset '{ds.name}' is not an image dataset "
                          f"(no image_shape in its metadata)", key="dataset",
                          fix="use an image dataset, or give img_height / img_width / img_channels")
    h, w, c = (tuple(shape) + (1,))[:3]
    if h * w * c != ds.X.shape[1]:
        raise ConfigError(f"plot '{spec['name']}': image shape {h}x{w}x{c} does not match "
                          f"{ds.X.shape[1]} features", key="dataset", fix="check the dataset's image_shape")
    return h, w, c


def as_image(x: np.ndarray, shape) -> np.ndarray:
    """One row of X as an (H, W) or (H, W, 3) image with values in [0, 1]."""
    img = np.asarray(x, dtype=float).reshape(shape)
    if img.min() < 0 or img.max() > 1:   # standardized data: stretch to the displayable range
        img = (img - img.min()) / max(img.max() - img.min(), 1e-12)
    return img[..., 0] if shape[2] == 1 else img


@register("dataset_images", required=("dataset",), uses_results=False, normalize=normalize_images,
          options={"n_per_class": 8, "classes": None, "seed": None, "split": "all", "rows": None,
                   "cols": None, "img_width": None, "img_height": None, "img_channels": None})
def dataset_images(df, spec, ctx):
    """Sample images of an image dataset: one row per class, n_per_class images in each.

    dataset      -- dataset name (required)
    n_per_class  -- images per class (default 8; 1 when rows/cols are given)
    classes      -- class indices to show, in this order (default None: all)
    seed         -- None takes the first images of each class, an integer draws them at random
                    (default None)
    split        -- "all", "train" or "test" (default "all")
    rows, cols   -- lay the images out row by row on this grid instead (default None: one row
                    per class; with one image per class, a grid of at most two rows, each
                    image titled with its class)
    img_height, img_width, img_channels -- the image shape, when the dataset's metadata lacks
                    it (default None: the dataset's image_shape)
    One-channel images use the gray colour map (0 black, 1 white).
    """
    ds = load(ctx, spec)
    shape = image_shape(ds, spec)
    n, seed = int(option(spec, "n_per_class")), option(spec, "seed")
    classes = chosen_classes(ds, spec)
    picks = [(c, i) for c in classes for i in pick(ds.y, c, n, seed)]
    rows, cols = option(spec, "rows"), option(spec, "cols")
    titled = n == 1   # one image per class: a grid of classes, each titled with its name
    if titled and rows is None and cols is None:
        cols = len(classes) if len(classes) <= 6 else int(np.ceil(len(classes) / 2))
    if rows is None and cols is None:
        rows, cols = len(classes), n
        cells = [(classes.index(c), j) for c, j in _rank(picks)]
    else:
        rows = rows or int(np.ceil(len(picks) / cols))
        cols = cols or int(np.ceil(len(picks) / rows))
        cells = [divmod(k, cols) for k in range(len(picks))][: rows * cols]
    spec = {**spec, "figsize": option(spec, "figsize") or (0.6 * cols + (0.2 if titled else 0.6),
                                                              (0.75 if titled else 0.6) * rows + 0.2)}
    fig, axs = new_figure(spec, rows, cols, squeeze=False)
    for ax in axs.flat:
        ax.axis("off")
    names = ds.meta.get("classes") or [str(c) for c in range(int(ds.y.max()) + 1)]
    for (c, i), (r, k) in zip(picks, cells):
        ax = axs[r, k]
        ax.imshow(as_image(ds.X[i], shape), cmap="gray" if shape[2] == 1 else None, vmin=0, vmax=1,
                  interpolation="nearest")
        if titled:
            ax.set_title(str(names[c]), fontsize="small", pad=2)
        elif option(spec, "rows") is None and k == 0:
            ax.text(-0.1, 0.5, str(names[c]), transform=ax.transAxes, ha="right", va="center")
    return fig


def _rank(picks):
    """(class, position within its class) for each pick, in order."""
    seen: dict[int, int] = {}
    for c, _ in picks:
        seen[c] = seen.get(c, -1) + 1
        yield c, seen[c]


@register("samples_1d", required=("dataset",), uses_results=False,
          options={"n_per_class": 3, "classes": None, "seed": 0, "split": "all"})
def samples_1d(df, spec, ctx):
    """A few samples of each class of a 1-D-signal dataset, each a line against pixel position.

    dataset     -- dataset name (required)
    n_per_class -- samples drawn per class (default 3)
    classes     -- class indices to show (default None: all), one panel each
    seed        -- which samples: an integer draws them at random, None takes the first
                   (default 0)
    split       -- "all", "train" or "test" (default "all")
    """
    ds = load(ctx, spec)
    classes = chosen_classes(ds, spec)
    n, seed = int(option(spec, "n_per_class")), option(spec, "seed")
    names = ds.meta.get("classes") or [str(c) for c in range(int(ds.y.max()) + 1)]
    figsize = option(spec, "figsize") or (3.0 * len(classes), 2.4)
    fig, axs = new_figure({**spec, "figsize": figsize}, 1, len(classes), squeeze=False, sharey=True)
    pixels = np.arange(ds.X.shape[1])
    for ax, c in zip(axs[0], classes):
        for j, i in enumerate(pick(ds.y, c, n, seed)):
            ax.plot(pixels, ds.X[i], color=f"C{j}", linewidth=1.0, gid=f"class_{c}")
        ax.set_title(f"{names[c]}: {n} samples")
        ax.set_xlabel("pixel")
    axs[0, 0].set_ylabel("value")
    return fig
