"""Plot types: each renders a real PNG from a small synthetic table, and draws what it should.

    MPLBACKEND=Agg python -m pytest -q tests/test_plots.py
"""
from __future__ import annotations

import sys
import types

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402

from memlab import datasets  # noqa: E402
from memlab.datasets.registry import DATASETS, DatasetSpec  # noqa: E402
from memlab.errors import ConfigError, UserError  # noqa: E402
from memlab.plots import (  # noqa: E402
    PLOTS, PlotContext, add_derived_columns, describe_plots, render, validate)


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A fresh project root: datasets/ and results/ under tmp_path."""
    monkeypatch.setenv("MEMLAB_ROOT", str(tmp_path))
    return tmp_path


@pytest.fixture
def ctx(root):
    return PlotContext("exp", None, None, root / "results")


def save(fig, tmp_path, name="plot"):
    path = tmp_path / f"{name}.png"
    fig.savefig(path)
    assert path.stat().st_size > 1000
    return path


def grid_table(seed=0, restarts=4, region=True) -> pd.DataFrame:
    """A (n_iter x max_bias) grid with repeats; interpolation iff n_iter >= 300 and bias <= 1
    (when `region`), never otherwise.  max_bias carries float noise that round=2 removes."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in (100, 200, 300, 400, 500):
        for b in (0.0, 0.5, 1.0, 1.5, 2.0):
            for r in range(restarts):
                interp = region and n >= 300 and b <= 1.0
                rows.append({"n_iter": n, "max_bias": b + 1e-13 * r, "restart": r, "dataset": "moons",
                             "score": 1.0 if interp else 0.95, "width": n / 10 + b + rng.normal()})
    return add_derived_columns(pd.DataFrame(rows))


def labelled_collections(ax, gid):
    return [c for c in ax.collections if c.get_gid() == gid]


# --- derived columns and context ------------------------------------------------------------

def test_derived_columns(root):
    df = pd.DataFrame({"dataset": ["moons", "lines", "moons", "digits", "digits"],
                       "split": ["all", "all", "all", "train", "test"],
                       "score": [1.0, 0.99, 1.0, 0.5, 1.0]})
    out = add_derived_columns(df)
    assert out["interpolated"].tolist() == [True, False, True, False, True]
    n_train = int((~datasets.load_dataset("digits").is_test).sum())
    assert out["n_samples"].tolist() == [1000, 20, 1000, n_train, 1797 - n_train]
    assert "interpolated" not in df   # the input is left alone


def test_derived_columns_keep_what_the_trial_returned(root):
    df = pd.DataFrame({"dataset": ["moons"], "score": [0.5], "interpolated": [True], "n_samples": [7]})
    out = add_derived_columns(df)
    assert out["interpolated"].tolist() == [True] and out["n_samples"].tolist() == [7]


def test_artifact_round_trip_and_missing(ctx):
    path = ctx.artifact_path("abc")
    path.parent.mkdir(parents=True)
    np.savez(path, W=np.arange(6.0).reshape(2, 3))
    assert ctx.artifact("abc")["W"].tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(UserError, match="no artifact"):
        ctx.artifact("nope")


# --- heatmap ----------------------------------------------------------------------------------

def test_heatmap_cells_are_the_means_and_region_is_dashed(ctx, tmp_path):
    df = grid_table()
    spec = {"type": "heatmap", "name": "width", "idx": "n_iter", "col": "max_bias", "val": "width",
            "round": 2, "levels": 5, "xlabel": "bias", "figsize": [2.4, 1.9], "region_smooth": 0}
    fig = render(spec, df, ctx)
    save(fig, tmp_path)
    ax = fig.axes[0]
    cells = ax.images[0].get_array()
    expected = df.assign(max_bias=df["max_bias"].round(2)).groupby(["n_iter", "max_bias"])["width"].mean()
    assert cells.shape == (5, 5)
    for i, n in enumerate((100, 200, 300, 400, 500)):   # rows upward: n_iter ascending
        for j, b in enumerate((0.0, 0.5, 1.0, 1.5, 2.0)):
            assert cells[i, j] == pytest.approx(expected[(n, b)])
    region = labelled_collections(ax, "interpolation_region")
    assert len(region) == 1 and region[0].get_linestyle()[0][1] is not None   # dashed
    # the region n_iter >= 300, bias <= 1 is cells (rows 2.., columns ..2): its edge runs between
    # rows 1 and 2 and between columns 2 and 3, and touches the grid's upper left edges
    xy = np.concatenate([p.vertices for p in region[0].get_paths()])
    inner = xy[(xy[:, 0] > 0) & (xy[:, 1] < 4)]
    assert len(inner) >= 3 and ((inner[:, 0] > 2) | (inner[:, 1] < 2)).all()
    assert (inner[:, 0] < 3).all() and (inner[:, 1] > 1).all()
    assert ax.get_xlabel() == "bias" and ax.get_ylabel() == "first-layer width n"   # DISPLAY_NAMES
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "0.5", "1", "1.5", "2"]


def test_heatmap_has_no_region_when_nothing_interpolates(ctx, tmp_path):
    df = grid_table(region=False)
    fig = render({"type": "heatmap", "name": "p", "idx": "n_iter", "col": "max_bias",
                  "val": "interpolated", "round": 2}, df, ctx)
    save(fig, tmp_path)
    assert labelled_collections(fig.axes[0], "interpolation_region") == []


def test_heatmap_reference_spelling_draws_the_same_cells(ctx):
    df = grid_table()
    flat = {"type": "heatmap", "name": "a", "idx": "n_iter", "col": "max_bias", "val": "interpolated",
            "agg": "mean", "round": 2, "smooth": 0.8, "levels": 15, "vmin": 0.0, "vmax": 1.0}
    nested = {"type": "heatmap", "name": "a", "vmin": 0.0, "vmax": 1.0,
              "pivot": {"idx": "n_iter", "col": "max_bias", "val": "interpolated", "agg": "mean", "round": 2},
              "contours": {"smoothing": 0.8, "levels": 15}}
    a, b = render(flat, df, ctx).axes[0], render(nested, df, ctx).axes[0]
    np.testing.assert_array_equal(a.images[0].get_array(), b.images[0].get_array())
    assert a.images[0].get_array()[-1, 0] == 1.0 and a.images[0].get_array()[0, -1] == 0.0
    assert len(a.collections) == len(b.collections) >= 2   # contour lines + region


def test_heatmap_ticks_and_limits_are_in_values(ctx):
    df = grid_table()
    fig = render({"type": "heatmap", "name": "a", "idx": "n_iter", "col": "max_bias", "val": "width",
                  "round": 2, "xticks": [0.5, 1.5], "ylim": [200, 400]}, df, ctx)
    ax = fig.axes[0]
    assert list(ax.get_xticks()) == [1.0, 3.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "1.5"]
    assert ax.get_ylim() == (0.5, 3.5)


# --- slices -----------------------------------------------------------------------------------

def test_slices_one_line_per_value_with_markers(ctx, tmp_path):
    df = grid_table()
    spec = {"type": "slices", "name": "s", "x": "n_iter", "y": "width", "hue": "max_bias",
            "values": [0.5, 2.0], "round": 2, "legend": {"title": "bias"}, "vmin": 0, "vmax": 60}
    fig = render(spec, df, ctx)
    save(fig, tmp_path)
    ax = fig.axes[0]
    assert len(ax.lines) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["0.5", "2"]
    assert ax.get_legend().get_title().get_text() == "bias"
    line = ax.lines[0]   # bias 0.5: its y values are the means over restarts
    means = df[df["max_bias"].round(2) == 0.5].groupby("n_iter")["width"].mean()
    np.testing.assert_allclose(line.get_ydata(), means.to_numpy())
    markers = labelled_collections(ax, "interpolation_markers")
    marked = np.concatenate([m.get_offsets() for m in markers])
    # bias 0.5 interpolates from n_iter 300 on; bias 2.0 never does
    assert sorted(marked[:, 0].tolist()) == [300, 400, 500]
    assert ax.get_ylim() == pytest.approx((-3, 63))


def test_slices_reference_spelling(ctx, tmp_path):
    df = grid_table()
    spec = {"type": "slices", "name": "interpolation_iter", "vmin": 0.0, "vmax": 1.0,
            "pivot": {"idx": "max_bias", "col": "n_iter", "val": "interpolated", "agg": "mean", "round": 2},
            "slices": [100, 300, 500], "legend": {"title": "width $n$"},
            "xlabel": "maximal bias", "ylabel": "", "figsize": [2.15, 0.95]}
    validate(spec)
    fig = render(spec, df, ctx)
    save(fig, tmp_path)
    ax = fig.axes[0]
    assert len(ax.lines) == 3 and ax.get_xlabel() == "maximal bias"
    assert labelled_collections(ax, "interpolation_markers") == []   # the reference: no markers unless asked
    np.testing.assert_allclose(ax.lines[2].get_ydata(), [1, 1, 1, 0, 0])


def test_slices_unknown_value_is_a_clear_error(ctx):
    spec = {"type": "slices", "name": "s", "x": "n_iter", "y": "width", "hue": "max_bias", "values": [0.7],
            "round": 2}
    with pytest.raises(ConfigError, match=r"max_bias = 0.7.*\n.*0.5"):
        render(spec, grid_table(), ctx)


def test_ci_band_contains_the_mean_and_std_band_matches(ctx):
    df = grid_table(restarts=6)
    sub = df[(df["max_bias"].round(2) == 1.0) & (df["n_iter"] == 300)]["width"]
    for band, half in (("std", sub.std()), ("ci", 2.5706 * sub.std() / np.sqrt(6))):
        fig = render({"type": "slices", "name": "s", "x": "n_iter", "y": "width", "hue": "max_bias",
                      "values": [1.0], "round": 2, "band": band}, df, ctx)
        poly = fig.axes[0].collections[0].get_paths()[0].vertices
        at = poly[np.isclose(poly[:, 0], 300)][:, 1]
        assert at.max() - at.min() == pytest.approx(2 * half, rel=1e-3)


# --- query and validation ---------------------------------------------------------------------

def test_query_selects_rows_and_unknown_column_is_a_clear_error(ctx):
    df = grid_table()
    fig = render({"type": "heatmap", "name": "q", "idx": "n_iter", "col": "max_bias", "val": "width",
                  "round": 2, "query": "n_iter >= 300"}, df, ctx)
    assert fig.axes[0].images[0].get_array().shape == (3, 5)
    with pytest.raises(ConfigError, match=r"max_bais.*not a column(.|\n)*did you mean 'max_bias'"):
        render({"type": "heatmap", "name": "q", "idx": "n_iter", "col": "max_bias", "val": "width",
                "query": "max_bais > 1"}, df, ctx)
    with pytest.raises(ConfigError, match="selects no rows"):
        render({"type": "heatmap", "name": "q", "idx": "n_iter", "col": "max_bias", "val": "width",
                "query": "n_iter > 10000"}, df, ctx)


def test_unknown_column_option_is_a_clear_error(ctx):
    with pytest.raises(ConfigError, match=r"'val' names column 'widht'(.|\n)*did you mean 'width'"):
        render({"type": "heatmap", "name": "q", "idx": "n_iter", "col": "max_bias", "val": "widht"},
               grid_table(), ctx)


def test_validate_nested_reference_keys():
    validate({"type": "heatmap", "name": "a", "pivot": {"idx": "a", "col": "b", "val": "c"}})
    with pytest.raises(ConfigError, match=r"plots\[3\]\.pivot\.vall"):
        validate({"type": "heatmap", "name": "a", "pivot": {"idx": "a", "col": "b", "vall": "c"}},
                 where="plots[3]")
    with pytest.raises(ConfigError, match="needs option 'val'"):
        validate({"type": "heatmap", "name": "a", "pivot": {"idx": "a", "col": "b"}})
    with pytest.raises(ConfigError, match="has no option 'smoth'"):
        validate({"type": "heatmap", "name": "a", "idx": "a", "col": "b", "val": "c", "smoth": 1})


REFERENCE_SPECS = [   # plot specs as the paper's reference experiment files write them
    {"type": "dataset_2d", "name": "d", "dataset": "moons_size_100", "xlabel": "$N = 100$",
     "xticks": False, "yticks": False, "legend": False, "figsize": [2.5, 1.5]},
    {"type": "dataset_images", "name": "i", "dataset": "digits", "rows": 2, "cols": 5,
     "classes": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "img_width": 8, "img_height": 8, "img_channels": 1,
     "figsize": [3.0, 1.2]},
    {"type": "heatmap", "name": "w", "vmin": 0, "vmax": 26,
     "pivot": {"idx": "n_iter", "col": "max_bias", "val": "second_dim_out", "agg": "mean", "round": 2},
     "contours": {"smoothing": 0.8, "levels": 15}, "xlabel": "x", "ylabel": "y", "figsize": [2.38, 1.9]},
    {"type": "slices", "name": "s", "vmin": 0, "vmax": 26,
     "pivot": {"idx": "max_bias", "col": "n_iter", "val": "second_dim_out", "agg": "mean", "round": 2},
     "slices": [50, 200, 500], "marker_threshold": 0.99, "mark_every": 2,
     "legend": {"title": "width $n$"}, "xlabel": "x", "ylabel": "", "figsize": [2.15, 0.95]},
    {"type": "boundary_2d", "name": "b", "dataset": "moons",
     "model": {"n_iter": 100, "max_bias": 0.0, "activation": "thres"}, "xticks": False, "yticks": False,
     "legend": False, "xlabel": "$\\lambda = 0.0$", "ylabel": "$n = 100$", "figsize": [3.0, 1.5],
     "outline": False},
]


@pytest.mark.parametrize("spec", REFERENCE_SPECS, ids=lambda s: s["type"])
def test_reference_specs_validate(spec):
    validate(spec)


def test_render_leaves_pyplot_alone(ctx):
    import matplotlib.pyplot as plt
    before = plt.get_fignums()
    render({"type": "dataset_2d", "name": "d", "dataset": "lines"}, None, ctx)
    assert plt.get_fignums() == before


def test_describe_plots_lists_every_type_and_its_options():
    text = describe_plots()
    for name, pt in PLOTS.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{name}` |"))
        for k in (*pt.required, *pt.options):
            assert f"`{k}`" in row
    assert '`region_threshold` (0.99)' in text


def test_every_option_is_documented():
    for name, pt in PLOTS.items():
        for k in (*pt.required, *pt.options):
            assert k in pt.fn.__doc__, f"{name}'s docstring does not mention option '{k}'"


# --- dataset pictures -------------------------------------------------------------------------

def test_dataset_2d_one_scatter_per_class(ctx, tmp_path):
    fig = render({"type": "dataset_2d", "name": "d", "dataset": "moons", "figsize": [2.7, 2.0],
                  "xticks": False, "legend": {"title": None}}, None, ctx)
    save(fig, tmp_path)
    ax = fig.axes[0]
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    y = datasets.load_dataset("moons").y
    assert [len(c.get_offsets()) for c in scatters] == [int((y == 0).sum()), int((y == 1).sum())]
    assert len(ax.get_legend().get_texts()) == 2
    assert ax.xaxis.get_tick_params()["labelbottom"] is False
    assert ax.yaxis.get_tick_params().get("labelleft", True) is True


def test_dataset_images_grid(ctx, tmp_path):
    fig = render({"type": "dataset_images", "name": "d", "dataset": "digits", "n_per_class": 3,
                  "classes": [0, 7]}, None, ctx)
    save(fig, tmp_path)
    shown = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(fig.axes) == 6 and len(shown) == 6
    ds = datasets.load_dataset("digits")
    first_seven = np.flatnonzero(ds.y == 7)[0]
    np.testing.assert_allclose(fig.axes[3].images[0].get_array(), ds.X[first_seven].reshape(8, 8))
    assert shown[0].get_cmap().name == "gray"
    # the reference spelling: a rows x cols grid of the first image of each class
    fig = render({"type": "dataset_images", "name": "r", "dataset": "digits", "rows": 2, "cols": 5,
                  "classes": list(range(10)), "img_width": 8, "img_height": 8, "figsize": [3.0, 1.2]},
                 None, ctx)
    assert sum(1 for ax in fig.axes if ax.images) == 10


@pytest.fixture
def signals(root, monkeypatch):
    """A tiny registered 1-D-signal dataset (built and saved like any other)."""
    def build(source=None):
        rng = np.random.default_rng(0)
        return {"X": rng.normal(size=(10, 16)).astype(np.float32), "y": np.repeat([0, 1], 5),
                "meta": {"classes": ["gp", "nlgp"]}}
    monkeypatch.setitem(DATASETS, "test_signals", DatasetSpec("test_signals", build, "synthetic", True,
                                                              False, (10, 16), "test"))
    return datasets.load_dataset("test_signals")


def test_samples_1d(ctx, tmp_path, signals):
    fig = render({"type": "samples_1d", "name": "s", "dataset": "test_signals", "n_per_class": 2,
                  "seed": None}, None, ctx)
    save(fig, tmp_path)
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]
    assert [ax.get_title() for ax in fig.axes] == ["gp: 2 samples", "nlgp: 2 samples"]
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), signals.X[5])


# --- curves, lines, receptive fields ----------------------------------------------------------

def series_table() -> pd.DataFrame:
    rows = []
    for lr in (0.1, 0.01):
        for seed in range(3):
            for epoch in range(5):
                rows.append({"_key": f"{lr}-{seed}", "lr": lr, "seed": seed, "epoch": epoch,
                             "train_loss": (1 + seed) * lr * np.exp(-epoch)})
    return pd.DataFrame(rows)


def test_curves_from_series(root, tmp_path):
    ctx = PlotContext("exp", None, series_table(), root / "results")
    fig = render({"type": "curves", "name": "c", "y": "train_loss", "hue": "lr", "logy": True,
                  "band": "std", "min_n": 3}, None, ctx)
    save(fig, tmp_path)
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and ax.get_yscale() == "log" and ax.get_xlabel() == "epoch"
    lr01 = next(line for line in ax.lines if line.get_label() == "0.1")
    np.testing.assert_allclose(lr01.get_ydata(), 0.2 * np.exp(-np.arange(5)))
    assert len(ax.collections) == 2   # one band per line


def test_curves_without_series_is_a_clear_error(ctx):
    with pytest.raises(ConfigError, match="series"):
        render({"type": "curves", "name": "c", "y": "train_loss"}, grid_table(), ctx)


def test_lines_from_results(ctx, tmp_path):
    df = pd.DataFrame({"corrupt_prob": np.repeat([0.0, 0.5, 1.0], 4), "seed": np.tile(range(4), 3),
                       "model": np.tile(["mlp", "mlp", "cnn", "cnn"], 3),
                       "test_error": np.repeat([0.1, 0.5, 0.9], 4) + np.tile([0, 0.02, 0.1, 0.12], 3)})
    fig = render({"type": "lines", "name": "l", "x": "corrupt_prob", "y": "test_error", "style": "model",
                  "ylim": [0, 1]}, df, ctx)
    save(fig, tmp_path)
    ax = fig.axes[0]
    assert sorted(line.get_label() for line in ax.lines) == ["cnn", "mlp"]
    mlp = next(line for line in ax.lines if line.get_label() == "mlp")
    np.testing.assert_allclose(mlp.get_ydata(), [0.11, 0.51, 0.91])
    assert ax.get_ylim() == (0, 1) and mlp.get_marker() not in (None, "None", "")


def test_lines_over_categories_are_markers_side_by_side(ctx, tmp_path):
    df = pd.DataFrame({"model": ["resnet", "resnet", "vgg", "vgg"], "framework": ["jax", "torch"] * 2,
                       "acc": [0.92, 0.92, 0.86, 0.87]})
    fig = render({"type": "lines", "name": "l", "x": "model", "y": "acc", "hue": "framework"}, df, ctx)
    save(fig, tmp_path)
    ax = fig.axes[0]
    assert all(line.get_linestyle() == "None" and line.get_marker() == "o" for line in ax.lines)
    jax, torch = (next(line for line in ax.lines if line.get_label() == f) for f in ("jax", "torch"))
    assert (jax.get_xdata() < torch.get_xdata()).all()          # equal values at one model stay apart
    assert np.allclose(np.round(jax.get_xdata()), [0, 1])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["resnet", "vgg"]


def test_receptive_fields(ctx, tmp_path):
    df = pd.DataFrame({"_index": [0, 1, 2], "_key": ["k0", "k1", "k2"], "xi": [0.3, 0.7, 0.7],
                       "gain": [1, 3, 3]})
    W = np.random.default_rng(0).normal(size=(8, 20))
    path = ctx.artifact_path("k1")
    path.parent.mkdir(parents=True)
    np.savez(path, W=W)
    fig = render({"type": "receptive_fields", "name": "rf", "where": {"xi": 0.7, "gain": 3},
                  "units": [2, 5]}, df, ctx)
    save(fig, tmp_path)
    panels = [ax for ax in fig.axes if ax.lines]
    assert len(panels) == 2
    np.testing.assert_allclose(panels[1].get_lines()[0].get_ydata(), W[5])
    with pytest.raises(ConfigError, match="xi = 0.5"):
        render({"type": "receptive_fields", "name": "rf", "where": {"xi": 0.5}}, df, ctx)


# --- common options ---------------------------------------------------------------------------

def test_common_options(ctx):
    fig = render({"type": "slices", "name": "s", "x": "n_iter", "y": "width", "hue": "max_bias",
                  "round": 2, "title": "T", "xlabel": "X", "ylabel": "Y", "xlim": [150, 450],
                  "legend": False, "outline": True, "figsize": [3, 2]}, grid_table(), ctx)
    ax = fig.axes[0]
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("T", "X", "Y")
    assert ax.get_xlim() == (150, 450) and ax.get_legend() is None
    assert tuple(fig.get_size_inches()) == (3, 2) and ax.patch.get_linestyle() == "--"
    fig = render({"type": "slices", "name": "s", "x": "n_iter", "y": "width", "hue": "max_bias",
                  "round": 2, "values": [0.0, 1.0], "legend": {"labels": ["none", "one"]}}, grid_table(), ctx)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["none", "one"]


# --- boundary_2d ------------------------------------------------------------------------------
# TODO(lead): FakeAlgorithm stands in for the top-level `algorithm` module until algorithm.py is
# merged.  Then delete FakeAlgorithm and the fallback in `algorithm_module`, so this test runs
# against the real Algorithm 2 (it uses only get_model, fit, anchor_, neuron_outputs, predict).

class FakeModel:
    """Stand-in: neuron j fires within `radius` of training point anchor_[j] (a class-1 point)."""

    def __init__(self, n_neurons=3, radius=0.3):
        self.n_neurons, self.radius = n_neurons, radius

    def fit(self, X, y):
        self.centers_ = X[np.flatnonzero(y == 1)[:: max(1, (y == 1).sum() // self.n_neurons)][: self.n_neurons]]
        self.anchor_ = np.array([int(np.flatnonzero((X == c).all(1))[0]) for c in self.centers_])
        return self

    def neuron_outputs(self, X):
        return np.linalg.norm(X[:, None, :] - self.centers_[None], axis=2) < self.radius

    def predict(self, X):
        return self.neuron_outputs(X).any(1).astype(int)


def _fake_algorithm():
    module = types.ModuleType("algorithm")
    module.get_model = lambda params, random_state: FakeModel()
    return module


@pytest.fixture
def algorithm_module(monkeypatch):
    try:
        import algorithm
        if hasattr(algorithm, "get_model"):
            return algorithm
    except ImportError:
        pass
    module = _fake_algorithm()
    monkeypatch.setitem(sys.modules, "algorithm", module)
    return module


def test_boundary_2d(ctx, tmp_path, algorithm_module):
    spec = {"type": "boundary_2d", "name": "b", "dataset": "lines", "ylim": [-0.3, 0.3],
            "model": {"n_iter": 200, "max_bias": 1.0, "activation": "thres"}, "resolution": 80,
            "figsize": [3.7, 2.0]}
    validate(spec)
    fig = render(spec, None, ctx)
    save(fig, tmp_path)
    ax = fig.axes[0]
    ds = datasets.load_dataset("lines")
    model = algorithm_module.get_model({"n_iter": 200, "max_bias": 1.0, "activation": "thres"},
                                       random_state=0).fit(np.array(ds.X), np.array(ds.y))
    stars = [line for line in ax.lines if line.get_gid() == "anchor"]
    assert len(stars) == len(model.anchor_) >= 1
    np.testing.assert_allclose([s.get_xydata()[0] for s in stars], ds.X[model.anchor_])
    assert len(labelled_collections(ax, "decision_boundary")) == 1
    scatters = [c for c in ax.collections if c.get_gid() in ("class_0", "class_1")]
    assert len(scatters) == 2 and all(c.get_zorder() > 2 for c in scatters)
    assert ax.get_ylim() == (-0.3, 0.3) and ax.get_legend() is not None


# --- bands stay inside the range of their quantity (issue 14) ---------------------------------

def band_polygons(ax):
    """The (x, y) vertices of every band drawn on ax."""
    return [c.get_paths()[0].vertices for c in ax.collections
            if c.get_gid() is None and type(c).__name__ in ("FillBetweenPolyCollection", "PolyCollection")]


def proportion_table(n=10) -> pd.DataFrame:
    """interpolated (0/1) over n restarts: p = 0, 0.1, 0.5, 0.9, 1.0 at x = 1..5."""
    rows = []
    for x, k in zip(range(1, 6), (0, 1, 5, 9, 10)):
        rows += [{"x": x, "interpolated": r < k, "restart": r} for r in range(n)]
    return pd.DataFrame(rows)


def test_wilson_band_of_a_proportion_stays_in_0_1(ctx):
    df = proportion_table()
    fig = render({"type": "lines", "name": "p", "x": "x", "y": "interpolated"}, df, ctx)
    (poly,) = band_polygons(fig.axes[0])
    assert poly[:, 1].min() >= 0.0 and poly[:, 1].max() <= 1.0
    # Wilson's 95 % interval at 10 of 10: [0.722, 1]; at 0 of 10: [0, 0.278] (a t-interval is 0 wide there)
    at = {x: poly[np.isclose(poly[:, 0], x), 1] for x in (1, 5)}
    assert at[1].min() == pytest.approx(0.0, abs=1e-12) and at[1].max() == pytest.approx(0.2775, abs=1e-3)
    assert at[5].min() == pytest.approx(0.7225, abs=1e-3) and at[5].max() == pytest.approx(1.0, abs=1e-12)
    assert "95 % Wilson interval" in " ".join(fig.memlab_caption)


def test_t_band_is_clipped_to_the_quantity_range(ctx):
    rng = np.random.default_rng(1)
    # a fraction near 1 with spread (frac_localized, accuracy) and a small positive quantity (IPR)
    df = pd.DataFrame({"gain": np.repeat([0, 1, 2], 6), "frac": np.clip(rng.normal(0.9, 0.3, 18), 0, 1),
                       "ipr": np.abs(rng.normal(0.02, 0.05, 18))})
    for y, lo, hi in (("frac", 0.0, 1.0), ("ipr", 0.0, np.inf)):
        fig = render({"type": "lines", "name": y, "x": "gain", "y": y}, df, ctx)
        (poly,) = band_polygons(fig.axes[0])
        assert poly[:, 1].min() >= lo and poly[:, 1].max() <= hi
        # unclipped, the same t-interval leaves the range: the clipping did something
        raw = render({"type": "lines", "name": y, "x": "gain", "y": y, "bounds": None}, df, ctx)
        (raw_poly,) = band_polygons(raw.axes[0])
        assert raw_poly[:, 1].min() < lo or raw_poly[:, 1].max() > hi
    fig = render({"type": "lines", "name": "b", "x": "gain", "y": "frac", "bounds": [0.5, 0.95]}, df, ctx)
    (poly,) = band_polygons(fig.axes[0])
    assert poly[:, 1].min() >= 0.5 and poly[:, 1].max() <= 0.95


def test_too_few_trials_get_no_band_and_the_caption_says_so(ctx):
    df = proportion_table(n=3)
    fig = render({"type": "slices", "name": "s", "x": "x", "y": "interpolated", "hue": "h",
                  "values": [0]}, df.assign(h=0), ctx)
    assert band_polygons(fig.axes[0]) == []
    assert "no band: 3 trials are too few" in " ".join(fig.memlab_caption)
    fig = render({"type": "lines", "name": "l", "x": "x", "y": "interpolated", "min_n": 3}, df, ctx)
    assert len(band_polygons(fig.axes[0])) == 1


def test_caption_drawn_under_large_figures_only(ctx):
    df = proportion_table()
    big = render({"type": "lines", "name": "p", "x": "x", "y": "interpolated"}, df, ctx)
    small = render({"type": "lines", "name": "p", "x": "x", "y": "interpolated", "figsize": [2, 1.2]}, df, ctx)
    off = render({"type": "lines", "name": "p", "x": "x", "y": "interpolated", "caption": False}, df, ctx)
    texts = [[t for t in f.texts if t.get_gid() == "caption"] for f in (big, small, off)]
    assert [len(t) for t in texts] == [1, 0, 0]
    assert "lines: mean of 10 trials" in texts[0][0].get_text()
    assert small.memlab_caption == big.memlab_caption   # kept for the report page all the same


# --- labels and names -------------------------------------------------------------------------

def test_display_names_and_value_names(ctx):
    df = grid_table()
    fig = render({"type": "slices", "name": "s", "x": "n_iter", "y": "width", "hue": "max_bias",
                  "values": [0.0, 2.0], "round": 2}, df, ctx)
    ax = fig.axes[0]
    assert ax.get_legend().get_title().get_text() == "max bias λ" and ax.get_xlabel() == "first-layer width n"
    fig = render({"type": "slices", "name": "s", "x": "n_iter", "y": "width", "hue": "max_bias", "round": 2,
                  "values": [0.0, 2.0], "names": {"max_bias": "λ", "width": "W"},
                  "value_names": {"max_bias": {"0": "no bias"}}}, df, ctx)
    ax = fig.axes[0]
    assert ax.get_legend().get_title().get_text() == "λ" and ax.get_ylabel() == "W"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:2] == ["no bias", "2"] and "interpolates in > 99 % of trials" in labels   # the dots, explained
    with pytest.raises(ConfigError, match="'names' must be an object"):
        validate({"type": "lines", "name": "l", "x": "a", "y": "b", "names": ["a"]})


def test_heatmap_marks_are_explained(ctx):
    df = grid_table()
    fig = render({"type": "heatmap", "name": "h", "idx": "n_iter", "col": "max_bias", "val": "interpolated",
                  "round": 2, "levels": [0.25, 0.5, 0.75], "smooth": 0.8}, df, ctx)
    ax = fig.axes[0]
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["interpolates in ≥ 99 % of trials"]
    contour_labels = {t.get_text() for t in ax.texts}
    assert contour_labels and contour_labels <= {"0.25", "0.5", "0.75"}   # each line says its level
    caption = " ".join(fig.memlab_caption)
    assert "3 contours of interpolation probability" in caption and "mean of 4 trials" in caption
    (cbar,) = ax.child_axes   # the colour bar: beside the cells, exactly as tall
    assert cbar.get_ylabel() == "interpolation probability"
    assert cbar.get_position().height == pytest.approx(ax.get_position().height, rel=1e-6)
    fig = render({"type": "heatmap", "name": "h", "idx": "n_iter", "col": "max_bias", "val": "width",
                  "round": 2, "legend": False}, df, ctx)
    assert fig.legends == []


def test_paper_theme_draws_seaborn_heatmap_with_rocket(ctx, tmp_path):
    pytest.importorskip("seaborn", reason="seaborn is in requirements.txt; install it")
    df = grid_table()
    spec = {"type": "heatmap", "name": "h", "idx": "n_iter", "col": "max_bias", "val": "interpolated",
            "round": 2, "levels": 3, "theme": "paper", "figsize": [2.4, 1.9]}
    fig = render(spec, df, ctx)
    save(fig, tmp_path)
    ax = fig.axes[0]
    mesh = ax.collections[0]
    assert mesh.get_cmap().name == "rocket" and len(ax.images) == 0
    cells = np.asarray(mesh.get_array()).reshape(5, 5)
    own = render({**spec, "theme": "memlab"}, df, ctx).axes[0].images[0].get_array()
    np.testing.assert_allclose(cells, own)   # the same cells, n growing upward
    assert not ax.yaxis_inverted()
    assert [t.get_text() for t in ax.get_yticklabels()][0] == "100"
    with pytest.raises(ConfigError, match="unknown theme 'papr'(.|\n)*did you mean 'paper'"):
        validate({**spec, "theme": "papr"})


# --- ticks and layouts ------------------------------------------------------------------------

def test_log_axis_ticks_at_the_data_values(ctx, tmp_path):
    df = pd.DataFrame({"width": np.tile([128, 256, 512, 1024], 3), "depth": np.repeat([1, 2, 5], 4),
                       "frac": np.linspace(0, 1, 12)})
    fig = render({"type": "lines", "name": "l", "x": "width", "y": "frac", "hue": "depth", "logx": True}, df, ctx)
    save(fig, tmp_path)
    ax = fig.axes[0]
    fig.canvas.draw()
    assert list(ax.get_xticks()) == [128, 256, 512, 1024]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["128", "256", "512", "1024"]
    assert ax.xaxis.get_minor_ticks() == [] or not any(t.label1.get_text() for t in ax.xaxis.get_minor_ticks())


def test_integer_axis_has_integer_ticks(ctx):
    df = pd.DataFrame({"depth": np.repeat([1, 2, 3, 5], 3), "rho": np.linspace(0.5, 2, 12)})
    fig = render({"type": "lines", "name": "l", "x": "depth", "y": "rho"}, df, ctx)
    ax = fig.axes[0]
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks == [1, 2, 3, 5]
    df = pd.DataFrame({"n": np.arange(0, 500, 10), "v": np.arange(50.0)})
    ax = render({"type": "lines", "name": "l", "x": "n", "y": "v"}, df, ctx).axes[0]
    assert all(float(t).is_integer() for t in ax.get_xticks()) and len(ax.get_xticks()) <= 12


def test_coinciding_lines_stay_visible(ctx):
    df = pd.DataFrame({"gain": np.tile([0, 1, 2, 3], 2), "framework": np.repeat(["torch", "jax"], 4),
                       "acc": np.tile([0.5, 0.6, 0.7, 0.8], 2) + np.repeat([0, 1e-7], 4)})
    fig = render({"type": "lines", "name": "l", "x": "gain", "y": "acc", "hue": "framework"}, df, ctx)
    ax = fig.axes[0]
    over = [line for line in ax.lines if line.get_gid() == "coincides"]
    assert len(over) == 1 and over[0].get_linestyle() == "--" and over[0].get_markerfacecolor() == "none"
    assert "jax and torch (framework) coincide (largest difference 1e-07)" in " ".join(fig.memlab_caption)
    df.loc[df["framework"] == "jax", "acc"] += 0.1   # apart: nothing to say
    fig = render({"type": "lines", "name": "l", "x": "gain", "y": "acc", "hue": "framework"}, df, ctx)
    assert not [line for line in fig.axes[0].lines if line.get_gid() == "coincides"]


def test_a_group_without_values_draws_no_line_and_coincides_with_none(root):
    """E.g. train_acc_corrupted over a grid whose corrupt_prob 0 has no corrupted rows (NaN)."""
    df = pd.DataFrame({"epoch": np.tile([1, 2, 3], 3), "p": np.repeat([0.0, 0.5, 1.0], 3),
                       "acc": [np.nan] * 3 + [0.2, 0.5, 0.9] + [0.2, 0.5, 0.9]})
    spec = {"type": "curves", "name": "c", "y": "acc", "hue": "p"}
    fig = render(spec, None, PlotContext("exp", None, df, root / "results"))
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["0.5", "1"]
    assert "0.5 and 1 (p) are identical" in " ".join(fig.memlab_caption)    # but the empty 0 is not
    assert "lines: mean of 1 trial" in " ".join(fig.memlab_caption)         # not "0 to 1"
    df.loc[df["p"] == 1.0, "acc"] = [np.nan, 0.5, 0.9]   # a gap where the other has a value: apart
    fig = render(spec, None, PlotContext("exp", None, df, root / "results"))
    assert not [line for line in fig.axes[0].lines if line.get_gid() == "coincides"]


def test_strip_shaped_2d_data_are_not_squashed(ctx, tmp_path):
    fig = render({"type": "dataset_2d", "name": "d", "dataset": "lines"}, None, ctx)
    path = save(fig, tmp_path)
    ax = fig.axes[0]
    assert ax.get_aspect() == "auto"
    from matplotlib.image import imread
    h, w = imread(path).shape[:2]
    assert h > 0.25 * w    # not a 30-pixel strip
    moons = render({"type": "dataset_2d", "name": "d", "dataset": "moons"}, None, ctx).axes[0]
    assert moons.get_aspect() == 1.0 and moons.get_legend() is not None


def test_one_image_per_class_is_a_titled_grid(ctx, tmp_path):
    fig = render({"type": "dataset_images", "name": "d", "dataset": "digits", "n_per_class": 1,
                  "figsize": [3.0, 1.2]}, None, ctx)
    save(fig, tmp_path)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 10 and [ax.get_title() for ax in shown] == [str(c) for c in range(10)]
    rows = {round(ax.get_position().y0, 3) for ax in shown}
    assert len(rows) == 2    # two rows of five, not ten rows of one


# --- the shipped copies of the reference's files keep its plot options (issue 12) -------------

def shipped_plot(experiment: str, name: str) -> dict:
    import json
    from pathlib import Path
    raw = json.loads((Path(__file__).resolve().parents[1] / "experiments" / f"{experiment}.json").read_text())
    return next(p for p in raw["plots"] if p["name"] == name)


def test_lines_boundary_keeps_the_reference_window_and_is_no_strip(ctx, tmp_path, algorithm_module):
    """lines.json's boundary: ylim [-0.55, 0.55] and figsize 4 x 3 as the reference's file has
    them; the 0.1-high data then sit in an equal-aspect window, not a 30-pixel strip."""
    spec = shipped_plot("lines", "boundary")
    assert spec["ylim"] == [-0.55, 0.55] and spec["figsize"] == [4.0, 3.0] and spec["markersize"] == 2.75
    validate(dict(spec))
    fig = render({**spec, "resolution": 60}, None, ctx)
    path = tmp_path / "boundary.png"
    fig.savefig(path, dpi=100)
    from matplotlib.image import imread
    h, w = imread(str(path)).shape[:2]
    assert h >= 250 and w >= 350                       # about 4 x 3 inches at 100 dpi, not a strip
    ax = fig.axes[0]
    assert ax.get_ylim() == (-0.55, 0.55) and ax.get_aspect() == 1.0
    box = ax.get_window_extent()
    assert box.height >= 100 and box.width >= 2 * box.height * 0.9     # the 2.2 x 1.1 window, drawn to scale
    samples = [c for c in ax.collections if c.get_gid() in ("class_0", "class_1")]
    assert all(c.get_sizes()[0] == pytest.approx(2.75 ** 2) for c in samples)
    stars = [line for line in ax.lines if line.get_gid() == "anchor"]
    assert stars and min(c.get_zorder() for c in samples) > max(s.get_zorder() for s in stars)  # samples_on_top


def test_shipped_reference_files_keep_scales_and_layouts():
    """Spot checks of options the copies had lost: colour and value scales, image grids, sizes."""
    assert (shipped_plot("mnist", "width")["vmax"], shipped_plot("cifar10", "width_bias")["vmax"]) == (49418, 57076)
    assert shipped_plot("mnist_ext_iter", "width_iter")["vmin"] == 0
    assert shipped_plot("mnist_1vs8_size", "width_iter")["vmax"] == 83
    grid = shipped_plot("cifar10", "dataset")
    assert (grid["rows"], grid["cols"], grid["img_channels"]) == (2, 5, 3)
    assert shipped_plot("mnist", "interpolation")["figsize"] == [2.3, 1.9]
    moons = shipped_plot("moons", "interpolation")
    assert (moons["idx"], moons["col"], moons["smooth"], moons["levels"]) == ("n_iter", "max_bias", 0.8, 15)
    assert shipped_plot("moons", "boundary_250_05")["outline"] is True
    assert shipped_plot("moons_size", "width")["smooth"] == 1.0
    assert shipped_plot("moons_size", "dataset_1k")["figsize"] == [2.5, 1.25]


def test_window_decides_the_aspect_and_large_ticks_are_compact(ctx, tmp_path):
    strip = render({"type": "dataset_2d", "name": "d", "dataset": "lines"}, None, ctx).axes[0]
    framed = render({"type": "dataset_2d", "name": "d", "dataset": "lines", "ylim": [-0.55, 0.55]}, None, ctx).axes[0]
    assert strip.get_aspect() == "auto" and framed.get_aspect() == 1.0
    from memlab.plots.common import compact, fmt
    assert [compact(v) for v in (100_000, 300_000, 1_000_000, 1_500_000, 1_234)] == \
        ["100k", "300k", "1M", "1.5M", "1234"]
    assert fmt(1_000_000.0) == "1000000" and fmt(0.15000000000000002) == "0.15"
