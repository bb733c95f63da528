"""Synthetic 2-D datasets of the paper: two moons (and its size series) and two lines."""
from __future__ import annotations

import functools

import numpy as np

from memlab.datasets.registry import register


def make_moons(n: int, **kw):
    """sklearn's make_moons, imported on first use: sklearn costs ~1.5 s to import."""
    from sklearn.datasets import make_moons
    return make_moons(n, **kw)


def scale_to_unit_ball(X: np.ndarray) -> np.ndarray:
    """Divide by the largest Euclidean norm so every point lies in the unit ball."""
    X = np.asarray(X, dtype=np.float32)
    return X / np.float32(np.linalg.norm(X, axis=1).max())


@register("moons", shape=(1000, 2))
def moons(source=None) -> dict:
    """make_moons(1000, noise=0.05, random_state=0), scaled to the unit ball."""
    X, y = make_moons(1000, noise=0.05, random_state=0)
    return {"X": scale_to_unit_ball(X), "y": y, "meta": {"classes": ["0", "1"]}}


MOONS_SIZES = {"100": 100, "1k": 1_000, "5k": 5_000, "10k": 10_000,
               **{f"{k}00k": k * 100_000 for k in range(1, 11)}}
MOONS_DRAW = 1_000_000


@functools.lru_cache(maxsize=1)
def moons_draw(total: int = MOONS_DRAW) -> tuple[np.ndarray, np.ndarray]:
    """One make_moons(total, noise=0.05, random_state=0) draw, scaled once by its own largest norm.

    The paper's moons_size_* sets are prefixes of this one scaled draw, so a prefix's points are
    exactly the full set's (its largest norm is <= 1, not 1).  Cached: building all 14 sizes
    draws once per process (~1 s).
    """
    X, y = make_moons(total, noise=0.05, random_state=0)
    X, y = scale_to_unit_ball(X), y.astype(np.uint8)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def _moons_prefix(n: int):
    def build(source=None) -> dict:
        X, y = moons_draw()
        return {"X": X[:n], "y": y[:n], "meta": {"classes": ["0", "1"]}}
    build.__doc__ = (f"The first {n:,} points of one 1,000,000-point moons draw (noise 0.05, seed 0), "
                     f"scaled once as a whole to the unit ball.")
    return build


for _label, _n in MOONS_SIZES.items():
    register(f"moons_size_{_label}", shape=(_n, 2))(_moons_prefix(_n))


@register("lines", shape=(20, 2))
def lines(source=None) -> dict:
    """Two horizontal segments x in [-1, 1], 10 points each: y = -0.05 (label 1), y = +0.05 (label 0)."""
    x = np.linspace(-1, 1, 10)
    X = np.concatenate([np.stack([x, np.full(10, -0.05)], 1), np.stack([x, np.full(10, 0.05)], 1)])
    y = np.repeat([1, 0], 10)
    return {"X": X.astype(np.float32), "y": y, "meta": {"classes": ["0", "1"]}}
