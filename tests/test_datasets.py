"""Synthetic datasets built as the paper's reference code builds them, and a user's own npz files.

    python -m pytest -q tests/test_datasets.py
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from memlab import datasets
from memlab.datasets import synthetic
from memlab.errors import DatasetError


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A fresh project root: datasets/ is empty."""
    monkeypatch.setenv("MEMLAB_ROOT", str(tmp_path))
    return tmp_path


# ---- moons_size_*: prefixes of one scaled draw -----------------------------------------------

def test_moons_sizes_are_prefixes_of_one_scaled_draw(root):
    """The reference scales the 1,000,000-point draw once, then slices; a prefix is not rescaled."""
    from sklearn.datasets import make_moons
    X, y = make_moons(1_000_000, noise=0.05, random_state=0)
    X = X.astype(np.float32)
    X /= np.linalg.norm(X, axis=1).max()                         # the whole draw, once
    full = datasets.load_dataset("moons_size_1000k")
    np.testing.assert_array_equal(full.X, X)
    np.testing.assert_array_equal(full.y, y)
    assert np.linalg.norm(full.X, axis=1).max() == pytest.approx(1.0, abs=1e-6)
    for label in ("100", "1k", "10k", "100k", "200k"):
        n = synthetic.MOONS_SIZES[label]
        part = datasets.load_dataset(f"moons_size_{label}")
        assert part.X.shape == (n, 2) and part.X.dtype == np.float32
        np.testing.assert_array_equal(part.X, full.X[:n])          # the same points, not x1.01 larger
        np.testing.assert_array_equal(part.y, full.y[:n])
        assert np.linalg.norm(part.X, axis=1).max() <= 1.0
    # the smaller prefixes really do stop short of the unit sphere (a rescale would reach it)
    assert np.linalg.norm(datasets.load_dataset("moons_size_100k").X, axis=1).max() < 0.99


# ---- your own data: datasets/NAME.npz ------------------------------------------------------------

def three_blobs(n=30, seed=0):
    """Three well separated 2-D clusters in the unit ball, labels 0, 1, 2."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.5, 0.0], [-0.3, 0.4], [-0.3, -0.4]])
    y = np.resize(np.arange(3), n)
    X = centres[y] + 0.05 * rng.standard_normal((n, 2))
    return X, y


@pytest.mark.slow   # two CLI processes: ~6 s on a quiet 2-core machine
def test_user_file_runs_by_name_through_the_cli(study):
    """No registration: datasets/blobs.npz is the dataset 'blobs' for run.py and data.py --list."""
    X, y = three_blobs()
    (study.path / "datasets").mkdir()
    np.savez(study.path / "datasets" / "blobs.npz", X=X, y=y.astype(np.int64))   # float64, int64: as users save
    study.experiment("mine", {"trial": "algorithm",
                              "param_grid": {"dataset": ["blobs"], "n_iter": [100], "max_bias": [0.0, 0.5],
                                             "restart": [0, 1]},
                              "plots": []})
    r = study.cli("run.py", "--name", "mine")
    assert r.returncode == 0, r.stdout + r.stderr
    import pandas as pd
    df = pd.read_csv(study.path / "results" / "mine.csv")
    assert len(df) == 4 and set(df["dataset"]) == {"blobs"}
    assert (df["first_dim_in"] == 2).all() and (df["second_dim_in"] == 3 * 100).all()   # three classes
    assert {"second_dim_out_0", "second_dim_out_1", "second_dim_out_2"} <= set(df.columns)
    assert (df["score"] > 0.9).all()          # the clusters are easy: Algorithm 2 memorizes them
    r = study.cli("data.py", "--list")
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("blobs "))
    assert "user" in line and "30x2" in line and "user file" in line


def test_user_file_is_read_like_a_registered_one(root):
    X, y = three_blobs(12)
    (root / "datasets").mkdir()
    is_test = np.arange(12) >= 9
    np.savez(root / "datasets" / "mine.npz", X=X, y=y.astype(np.float64), is_test=is_test,
             meta=np.array(json.dumps({"classes": ["a", "b", "c"]})), notes=np.arange(3))
    assert datasets.status("mine") == "user file" and datasets.spec("mine").kind == "user"
    assert "mine" in datasets.user_files() and "moons" not in datasets.user_files()
    ds = datasets.load_dataset("mine")
    assert ds.X.dtype == np.float32 and ds.y.dtype == np.uint8 and not ds.X.flags.writeable
    np.testing.assert_array_equal(ds.X, X.astype(np.float32))
    np.testing.assert_array_equal(ds.y, y)
    assert ds.n_classes == 3 and len(datasets.load_dataset("mine", split="test").y) == 3
    datasets.require(["mine"])
    import matplotlib
    matplotlib.use("Agg")
    from memlab.plots import PlotContext, render
    fig = render({"type": "dataset_2d", "name": "d", "dataset": "mine"}, None, PlotContext("e", None, None, root))
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == 12     # plots load it too
    with pytest.raises(DatasetError, match="nothing to build"):
        datasets.materialize("mine", force=True)
    # a rewritten file is read again, not served from the process's cache
    np.savez(root / "datasets" / "mine.npz", X=X[:6], y=y[:6])
    st = (root / "datasets" / "mine.npz").stat()
    os.utime(root / "datasets" / "mine.npz", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert len(datasets.load_dataset("mine").y) == 6


BAD_FILES = {   # name: (arrays, the key the error names, words of the message)
    "no_x": ({"features": np.zeros((4, 2)), "y": np.zeros(4)}, "X", "has no array 'X' (it holds: features, y)"),
    "no_y": ({"X": np.zeros((4, 2)), "labels": np.zeros(4)}, "y", "has no array 'y'"),
    "x_1d": ({"X": np.zeros(4), "y": np.zeros(4)}, "X", "X must be 2-D"),
    "x_3d": ({"X": np.zeros((4, 2, 2)), "y": np.zeros(4)}, "X", "reshape(len(X), -1)"),
    "x_text": ({"X": np.array([["a", "b"]] * 4), "y": np.zeros(4)}, "X", "must be numeric"),
    "x_nan": ({"X": np.array([[0, 0], [0, np.nan], [1, 1]]), "y": np.zeros(3)}, "X", "NaN, first in row 1"),
    "x_object": ({"X": np.array([[0, 1], [1, None]], dtype=object), "y": np.zeros(2)}, "X", "object array"),
    "y_2d": ({"X": np.zeros((4, 2)), "y": np.zeros((4, 1))}, "y", "y = y.ravel()"),
    "y_short": ({"X": np.zeros((4, 2)), "y": np.zeros(3)}, "y", "y has 3 labels but X has 4 rows"),
    "y_float": ({"X": np.zeros((3, 2)), "y": np.array([0.0, 1.0, 0.5])}, "y", "integer-valued"),
    "y_nan": ({"X": np.zeros((3, 2)), "y": np.array([0.0, np.nan, 1.0])}, "y", "y holds NaN"),
    "y_text": ({"X": np.zeros((2, 2)), "y": np.array(["cat", "dog"])}, "y", "np.unique(y, return_inverse=True)"),
    "y_negative": ({"X": np.zeros((2, 2)), "y": np.array([-1, 1])}, "y", "0..255"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_user_file_is_refused_with_file_key_and_fix(root, name):
    arrays, key, words = BAD_FILES[name]
    (root / "datasets").mkdir()
    np.savez(root / "datasets" / f"{name}.npz", **arrays)      # an object array is pickled into the file
    with pytest.raises(DatasetError) as e:
        datasets.require([name])
    err = e.value
    assert str(err.file).endswith(f"datasets/{name}.npz") and err.key == key and err.fix
    assert words in str(err)


def test_bad_user_file_stops_run_py_before_any_trial(study, capsys):
    """run.py's and data.py's own main() in this process (the same code the scripts call)."""
    from memlab.cli import data, run
    (study.path / "datasets").mkdir()
    np.savez(study.path / "datasets" / "broken.npz", X=np.zeros((5, 2)), y=np.array([0, 1, 0, 1, 0.5]))
    study.experiment("b", {"trial": "algorithm", "param_grid": {"dataset": ["broken"], "n_iter": [5]}})
    for args in (["--name", "b"], ["--name", "b", "--dry-run"]):
        assert run.main(args) == 2
        err = capsys.readouterr().err
        assert "datasets/broken.npz" in err and "key 'y'" in err and "0.5 at row 4" in err and "fix:" in err
    assert not (study.path / "results").exists() or not list((study.path / "results").rglob("*.jsonl"))
    assert data.main(["--list"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("broken "))
    assert "user file, invalid" in line and "integer-valued" in line


def test_unknown_name_points_at_the_user_file_rule(root):
    with pytest.raises(DatasetError, match=r"datasets/nope\.npz holding X and y"):
        datasets.spec("nope")
    with pytest.raises(DatasetError, match="unknown dataset"):
        datasets.spec("../nope")
