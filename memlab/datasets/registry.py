"""The dataset registry: a name -> how to build it, and loading with a per-process cache.

    python data.py --list           # every name, its shape, whether it is materialized
    python data.py --name moons     # build datasets/moons.npz

A dataset file `datasets/NAME.npz` holds `X` (float32, n x d), `y` (uint8, n), optionally
`is_test` (bool, n: the official test split) and `meta` (a JSON string: image_shape as
[H, W, C], classes, source, ...).  Adding a dataset is one function plus one `@register`, or
no code at all: any other `datasets/NAME.npz` with `X` and `y` is the user's dataset NAME
(memlab/datasets/user.py checks and reads it).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from memlab import io
from memlab.datasets import corrupt, user
from memlab.errors import DatasetError, choices_hint
from memlab.params import Param
from memlab.paths import DATASETS_DIR

SPLITS = ("all", "train", "test")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    build: Callable[..., dict]      # build(source: Path | None) -> {"X", "y", ["is_test"], ["meta"]}
    kind: str                       # "synthetic" | "image" | "user" (an unregistered datasets/NAME.npz)
    on_demand: bool                 # cheap and offline: built the first time a trial loads it
    default: bool                   # built by a bare `python data.py`
    shape: tuple | None             # (n, d), known without building, for --list
    description: str


DATASETS: dict[str, DatasetSpec] = {}


def register(name: str, *, kind: str = "synthetic", on_demand: bool = True, default: bool = True,
             shape: tuple | None = None, description: str = ""):
    """Decorator: `@register("moons", shape=(1000, 2))` over a build(source) function."""
    def deco(build):
        DATASETS[name] = DatasetSpec(name, build, kind, on_demand, default, shape,
                                     description or (build.__doc__ or name).strip().splitlines()[0])
        return build
    return deco


@dataclass
class Dataset:
    """Arrays plus metadata.  X is float32 (n, d); y holds class indices (n,).

    `corrupted` (bool, n) marks the rows whose label a label corruption changed (None: no label
    corruption applied); it follows the rows through `split`.
    """
    name: str
    X: np.ndarray
    y: np.ndarray
    is_test: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    corrupted: np.ndarray | None = None

    @property
    def n_classes(self) -> int:
        return len(self.meta.get("classes") or np.unique(self.y))

    @property
    def image_shape(self) -> tuple | None:
        shape = self.meta.get("image_shape")
        return tuple(shape) if shape else None

    def split(self, which: str) -> "Dataset":
        """The official `train` or `test` part (`all` is everything)."""
        if which not in SPLITS:
            raise DatasetError(f"unknown split '{which}'", key="split", fix=choices_hint(which, SPLITS))
        if which == "all":
            return self
        if self.is_test is None:
            raise DatasetError(f"dataset '{self.name}' has no official train/test split", key="split",
                               fix="use split 'all', or a dataset with a split (mnist, cifar10, digits)")
        mask = self.is_test if which == "test" else ~self.is_test
        corrupted = None if self.corrupted is None else self.corrupted[mask]
        return Dataset(f"{self.name}[{which}]", self.X[mask], self.y[mask], None, self.meta, corrupted)


def spec(name: str) -> DatasetSpec:
    if name in DATASETS:
        return DATASETS[name]
    if is_user_file(name):
        return _user_spec(name)
    known = [*DATASETS, *user_files()]
    raise DatasetError(f"unknown dataset '{name}'", key="dataset",
                       fix=f"{choices_hint(name, known)}; `python data.py --list` lists them, and any "
                           f"{DATASETS_DIR() / (str(name) + '.npz')} holding X and y is one")


def is_user_file(name) -> bool:
    """NAME is no registered dataset, and datasets/NAME.npz exists: the user's own data."""
    name = str(name)
    return (name not in DATASETS and "/" not in name and not name.startswith(".")
            and path(name).is_file())


def user_files() -> list[str]:
    """The names of the user's own dataset files in datasets/ (unregistered NAME.npz)."""
    folder = DATASETS_DIR()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.npz") if is_user_file(p.stem))


def _user_spec(name: str) -> DatasetSpec:
    def build(source=None):
        raise DatasetError(f"'{name}' is your own file {path(name)}, not a registered dataset: "
                           f"there is nothing to build", key="dataset", fix="leave out --force for it")
    return DatasetSpec(name, build, "user", on_demand=False, default=False, shape=None,
                       description=f"your own file datasets/{name}.npz")


def path(name: str) -> Path:
    return DATASETS_DIR() / f"{name}.npz"


_FINGERPRINTS: dict = {}


def fingerprint(name: str) -> str | None:
    """What datasets/NAME.npz holds, in 12 hex digits (None while it does not exist).

    Read from the npz's zip directory, not its data: each array's CRC-32 and size, which
    np.savez writes, so it costs microseconds on a 200 MB file and is the same for a file
    rebuilt with the same contents.  Recorded with each result (memlab.worker), so results
    computed on other data count as stale (memlab.runner.match).
    """
    target = path(name)
    try:
        st = os.stat(target)
    except OSError:
        return None
    stamp = (str(target), st.st_size, st.st_mtime_ns)
    if stamp not in _FINGERPRINTS:
        try:
            with zipfile.ZipFile(target) as z:
                members = sorted((i.filename, i.CRC, i.file_size) for i in z.infolist())
        except (OSError, zipfile.BadZipFile):
            return None
        _FINGERPRINTS[stamp] = "npz-" + hashlib.sha256(json.dumps(members).encode()).hexdigest()[:12]
    return _FINGERPRINTS[stamp]


def status(name: str) -> str:
    """'materialized', 'on demand' (cheap synthetic, built when loaded), 'missing' or 'user file'."""
    if spec(name).kind == "user":
        return "user file"
    if path(name).exists():
        return "materialized"
    return "on demand" if spec(name).on_demand else "missing"


def make_command(names) -> str:
    return "python data.py --name " + " ".join(sorted(set(names)))


def require(names) -> None:
    """Raise one DatasetError naming every dataset that is unknown or must be fetched first."""
    names = sorted(set(names))
    for n in names:
        if spec(n).kind == "user":
            user.read(path(n))        # checked before any trial runs: the file, the key, the fix
    missing = [n for n in names if status(n) == "missing"]
    if missing:
        raise DatasetError(f"dataset(s) not materialized: {', '.join(missing)}", key="dataset",
                           fix=f"run `{make_command(missing)}` (add --source DIR on a machine "
                               f"without internet, DIR holding the downloaded archives)")


def materialize(name: str, *, source: Path | None = None, force: bool = False) -> Path:
    """Build datasets/NAME.npz (atomically) unless it exists; return its path."""
    target = path(name)
    if target.exists() and not force:
        return target
    arrays = spec(name).build(source)
    save(target, arrays)
    return target


def save(target: Path, arrays: dict) -> None:
    X = np.ascontiguousarray(arrays["X"], dtype=np.float32)
    y = np.asarray(arrays["y"])
    if y.min(initial=0) < 0 or y.max(initial=0) > 255:
        raise ValueError(f"{target.name}: labels must fit uint8, got range [{y.min()}, {y.max()}]")
    out = {"X": X, "y": y.astype(np.uint8), "meta": np.array(json.dumps(arrays.get("meta", {})))}
    if arrays.get("is_test") is not None:
        out["is_test"] = np.asarray(arrays["is_test"], dtype=bool)
    with io.atomic_path(target, suffix=".npz") as tmp:
        np.savez(tmp, **out)


def _read(name: str) -> Dataset:
    if spec(name).kind == "user":
        a = user.read(path(name))
        X, y, is_test, meta = a["X"], a["y"], a["is_test"], a["meta"]
    else:
        X, y, is_test, meta = _read_registered(name)
    for a in (X, y, is_test):
        if a is not None:
            a.setflags(write=False)  # shared by every trial of this process: nobody may mutate it
    return Dataset(name, X, y, is_test, meta)


def _read_registered(name: str):
    if status(name) == "on demand":
        materialize(name)
    elif status(name) == "missing":
        require([name])
    with np.load(path(name), allow_pickle=False) as f:
        meta = json.loads(str(f["meta"][()])) if "meta" in f else {}
        is_test = f["is_test"] if "is_test" in f else None
        X, y = f["X"], f["y"]
    return X, y, is_test, meta


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, split: str, corruption: str, corrupt_prob: float, corrupt_seed: int,
                 folder: str, stamp: int) -> Dataset:
    if split != "all":
        # Corrupt the whole dataset, then split: the train and test views share one pixel
        # permutation, and test rows keep their true labels (corrupt.apply spares is_test rows).
        return _load_cached(name, "all", corruption, corrupt_prob, corrupt_seed, folder, stamp).split(split)
    if corruption == "none":
        return _read(name)
    clean = _load_cached(name, "all", "none", 0.0, 0, folder, stamp)     # read once, shared
    return corrupt.apply(clean, corruption, prob=corrupt_prob, seed=corrupt_seed)


def load_dataset(name: str, *, split: str = "all", corruption: str = "none",
                 corrupt_prob: float = 0.0, corrupt_seed: int = 0) -> Dataset:
    """Load NAME once per process (later calls hit the cache); arrays are read-only.

    `corruption` (with `corrupt_prob`, `corrupt_seed`) is one of corrupt.CORRUPTIONS, applied to
    the whole dataset before the split is taken (see memlab/datasets/corrupt.py).
    """
    spec(name)
    if split not in SPLITS:
        raise DatasetError(f"unknown split '{split}'", key="split", fix=choices_hint(split, SPLITS))
    corrupt.check(corruption, corrupt_prob, corrupt_seed)
    # The folder is part of the key: a process that changes MEMLAB_ROOT (tests, notebooks) must
    # not get another root's arrays; so is a user file's modification time: a notebook that
    # rewrites datasets/NAME.npz gets the new arrays.
    stamp = path(name).stat().st_mtime_ns if spec(name).kind == "user" else 0
    return _load_cached(name, split, corruption, float(corrupt_prob), int(corrupt_seed), str(DATASETS_DIR()), stamp)


# The parameters every dataset-consuming trial accepts; a trial module merges them into PARAMS.
DATASET_PARAMS = {"dataset": None, "split": Param("all", choices=SPLITS),
                  "corruption": Param("none", choices=corrupt.CORRUPTIONS),
                  "corrupt_prob": 0.0, "corrupt_seed": 0}


def dataset_from_params(params: dict) -> Dataset:
    """The dataset a trial's parameters ask for (name, split and corruption)."""
    return load_dataset(params["dataset"], **{k: params[k] for k in
                        ("split", "corruption", "corrupt_prob", "corrupt_seed") if k in params})


def n_samples(name: str) -> int:
    """Rows of dataset NAME without loading X (reads the npz header, or the declared shape)."""
    if path(name).exists():
        with np.load(path(name), allow_pickle=False) as f:
            return int(f["y"].shape[0])
    shape = spec(name).shape
    if shape is None:
        return int(_read(name).y.shape[0])
    return int(shape[0])
