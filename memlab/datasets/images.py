"""Image datasets: MNIST, Fashion-MNIST, CIFAR-10, CIFAR-100 and the paper's derived sets.

    python data.py --name mnist mnist_original          # download, verify, cache, build
    python data.py --name cifar10 --source ~/archives   # from already-downloaded archives

Rows are images flattened in (H, W, C) order, so `X[i].reshape(meta["image_shape"])` is image i;
the official training images come first, the official test images last (marked by `is_test`).
`NAME_original` holds pixels / 255; `NAME` is that divided by the largest Euclidean norm, so every
image lies in the unit ball (the paper's scaling).  Every name built from one set of archives
parses them once per process.
"""
from __future__ import annotations

import gzip
import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from memlab.datasets.download import RemoteFile, fetch, fetch_all
from memlab.datasets.registry import register
from memlab.errors import DatasetError

# ---- the published files ---------------------------------------------------------------------

MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
FASHION_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/")
CIFAR_URLS = ("https://www.cs.toronto.edu/~kriz/",)


def _idx_files(group: str, bases: tuple[str, ...], md5s: dict) -> dict[str, RemoteFile]:
    return {part: RemoteFile(group, name, md5, tuple(b + name for b in bases))
            for part, (name, md5) in md5s.items()}


MNIST_FILES = _idx_files("mnist", MNIST_URLS, {
    "train_images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
})
FASHION_FILES = _idx_files("fashion_mnist", FASHION_URLS, {
    "train_images": ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
})
CIFAR10_FILE = RemoteFile("cifar10", "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                          tuple(b + "cifar-10-python.tar.gz" for b in CIFAR_URLS))
CIFAR100_FILE = RemoteFile("cifar100", "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                           tuple(b + "cifar-100-python.tar.gz" for b in CIFAR_URLS))

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _damaged(path: Path, what: str, dataset: str) -> DatasetError:
    return DatasetError(f"cannot read {path.name}: {what}", file=path,
                        fix=f"the file is damaged or not the published one: delete {path} and run "
                            f"`python data.py --name {dataset}` again (add --source DIR to copy it from DIR)")


# ---- MNIST-style IDX files -------------------------------------------------------------------

def read_idx(path: Path, dataset: str) -> np.ndarray:
    """An IDX file (gzip-compressed): 2 zero bytes, a type byte (0x08 = uint8), the number of
    dimensions, one big-endian int32 per dimension, then the values."""
    try:
        with gzip.open(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError, zlib.error) as e:
        raise _damaged(path, f"not a whole gzip file ({e})", dataset) from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise _damaged(path, "not an IDX file of unsigned bytes", dataset)
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(data[4:header], dtype=">i4"))
    if len(dims) != ndim or len(data) - header != int(np.prod(dims)):
        raise _damaged(path, f"header says {dims} but the file holds {len(data) - header} values", dataset)
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


_parsed: dict = {}   # the last two parses: {key: arrays}; mnist, mnist_original, ... share one


def _once(key, parse):
    """parse() once per key (the files' paths, sizes and mtimes): `data.py --name mnist
    mnist_original mnist_1v9_size_10 ...` reads the archives once."""
    if key not in _parsed:
        while len(_parsed) >= 2:
            _parsed.pop(next(iter(_parsed)))      # the least recently used
        _parsed[key] = parse()
    _parsed[key] = _parsed.pop(key)               # now the most recently used
    return _parsed[key]


def _parse_idx_set(paths: tuple[Path, ...], dataset: str) -> dict:
    """(pixels, labels, is_test, image shape) of train + test, uint8."""
    train_x, train_y, test_x, test_y = (read_idx(p, dataset) for p in paths)
    for x, y, px, py in ((train_x, train_y, paths[0], paths[1]), (test_x, test_y, paths[2], paths[3])):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise _damaged(px, f"{x.shape} images do not match {y.shape} labels in {py.name}", dataset)
    if train_x.shape[1:] != test_x.shape[1:]:
        raise _damaged(paths[2], f"test images are {test_x.shape[1:]}, training images {train_x.shape[1:]}",
                       dataset)
    n_train, n_test = len(train_y), len(test_y)
    return {"pixels": np.concatenate([train_x, test_x]).reshape(n_train + n_test, -1),
            "y": np.concatenate([train_y, test_y]),
            "is_test": np.repeat([False, True], [n_train, n_test]),
            "image_shape": [*train_x.shape[1:], 1]}


def _stamps(paths) -> tuple:
    return tuple((p.stat().st_size, p.stat().st_mtime_ns) for p in paths)


def idx_set(files: dict[str, RemoteFile], source: Path | None, dataset: str) -> dict:
    parts = ("train_images", "train_labels", "test_images", "test_labels")
    paths = tuple(fetch_all([files[k] for k in parts], source, dataset=dataset))
    key = ("idx", paths, _stamps(paths))
    return _once(key, lambda: {**_parse_idx_set(paths, dataset), "key": key})


# ---- CIFAR "python version" archives ---------------------------------------------------------

class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batches (dicts of bytes, lists and numpy arrays) and nothing else."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("copy_reg", "_reconstructor"),
               ("copyreg", "_reconstructor"), ("__builtin__", "object"), ("builtins", "object"),
               ("_codecs", "encode")}     # how Python 3 writes bytes at protocol 2

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        return super().find_class(module, name)


def _unpickle(tar: tarfile.TarFile, member: str, path: Path, dataset: str) -> dict:
    try:
        fh = tar.extractfile(member)
    except KeyError:
        raise _damaged(path, f"the archive has no {member}", dataset) from None
    try:
        d = _ArrayUnpickler(io.BytesIO(fh.read()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise _damaged(path, f"{member} is not a CIFAR batch ({e})", dataset) from None
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}


def _hwc(data, path: Path, member: str, dataset: str) -> np.ndarray:
    """CIFAR rows (1024 red, 1024 green, 1024 blue values) -> rows in (H, W, C) order."""
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise _damaged(path, f"{member} holds data of shape {data.shape}, expected (n, 3072)", dataset)
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).reshape(len(data), 3072)


def _names(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _parse_cifar(path: Path, hundred: bool, dataset: str) -> dict:
    """(pixels, labels, is_test, class names) of a CIFAR-10 or CIFAR-100 python archive."""
    folder, train, test, meta = (("cifar-100-python", ["train"], "test", "meta") if hundred else
                                 ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)],
                                  "test_batch", "batches.meta"))
    label_keys = ("fine_labels", "coarse_labels") if hundred else ("labels",)
    try:
        with tarfile.open(path, "r:gz") as tar:
            batches = [_unpickle(tar, f"{folder}/{m}", path, dataset) for m in [*train, test]]
            names = _unpickle(tar, f"{folder}/{meta}", path, dataset)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise _damaged(path, f"not a whole tar.gz archive ({e})", dataset) from None
    out = {"pixels": [], "is_test": []}
    for i, b in enumerate(batches):
        member = [*train, test][i]
        if "data" not in b or any(k not in b for k in label_keys):
            raise _damaged(path, f"{member} lacks 'data' or {label_keys}", dataset)
        out["pixels"].append(_hwc(b["data"], path, member, dataset))
        out["is_test"].append(np.full(len(out["pixels"][-1]), member == test))
        for k in label_keys:
            out.setdefault(k, []).append(np.asarray(b[k], dtype=np.int64))
    out = {k: np.concatenate(v) for k, v in out.items()}
    for k in label_keys:
        if len(out[k]) != len(out["pixels"]):
            raise _damaged(path, f"{len(out[k])} {k} for {len(out['pixels'])} images", dataset)
    for k in ("fine_label_names", "coarse_label_names") if hundred else ("label_names",):
        out[k] = _names(names.get(k, []))
    return out


def cifar_set(f: RemoteFile, source: Path | None, dataset: str, hundred: bool) -> dict:
    path = fetch(f, source, dataset=dataset)
    return _once(("cifar", path, _stamps([path])), lambda: _parse_cifar(path, hundred, dataset))


# ---- building the registered arrays ----------------------------------------------------------

def as_unit(pixels: np.ndarray) -> np.ndarray:
    """pixels / 255 as float32 (one float32 array, no float64 temporary)."""
    X = pixels.astype(np.float32)
    X /= np.float32(255)
    return X


def to_unit_ball(X: np.ndarray) -> tuple[np.ndarray, float]:
    """X divided (in place) by its largest row norm, and that norm."""
    norm = max(float(np.sqrt(np.einsum("ij,ij->i", block, block, dtype=np.float64).max()))
               for block in np.array_split(X, max(1, len(X) // 8192)))
    X /= np.float32(norm)
    return X, norm


def image_arrays(pixels, y, is_test, image_shape, classes, source, scaled: bool, **meta) -> dict:
    X = as_unit(pixels)
    meta = {"image_shape": list(image_shape), "classes": list(classes), "source": source, **meta}
    if scaled:
        X, norm = to_unit_ball(X)
        meta.update(scaling=f"pixels / 255 / {norm:.6g} (the largest norm): the unit ball", max_norm=norm)
    else:
        meta.update(scaling="pixels / 255")
    return {"X": X, "y": y, "is_test": is_test, "meta": meta}


def _files(family: str):
    """The file table, looked up when a build runs (tests point it at tiny files)."""
    return {"mnist": MNIST_FILES, "fashion_mnist": FASHION_FILES,
            "cifar10": CIFAR10_FILE, "cifar100": CIFAR100_FILE}[family]


def _idx_builder(dataset: str, family: str, classes, scaled: bool, url: str):
    def build(source=None) -> dict:
        d = idx_set(_files(family), source, dataset)
        return image_arrays(d["pixels"], d["y"], d["is_test"], d["image_shape"], classes, url, scaled)
    return build


def _cifar_builder(dataset: str, family: str, scaled: bool, labels: str = "labels"):
    def build(source=None) -> dict:
        f = _files(family)
        d = cifar_set(f, source, dataset, hundred=family == "cifar100")
        names = d[{"labels": "label_names", "fine_labels": "fine_label_names",
                   "coarse_labels": "coarse_label_names"}[labels]]
        n_classes = int(d[labels].max()) + 1
        classes = names if len(names) >= n_classes else [str(c) for c in range(n_classes)]
        return image_arrays(d["pixels"], d[labels], d["is_test"], [32, 32, 3], classes, f.urls[0], scaled,
                            labels=labels)
    return build


def _register_images(name: str, build, shape, what: str) -> None:
    build.__doc__ = what
    register(name, kind="image", on_demand=False, default=False, shape=shape)(build)


MNIST_SOURCE = MNIST_URLS[0]
DIGITS = [str(c) for c in range(10)]
for _scaled, _name in ((True, "mnist"), (False, "mnist_original")):
    _register_images(_name, _idx_builder(_name, "mnist", DIGITS, _scaled, MNIST_SOURCE), (70_000, 784),
                     f"MNIST, 60,000 + 10,000 test images 28x28, pixels / 255{', unit ball' * _scaled}.")
for _scaled, _name in ((True, "fashion_mnist"), (False, "fashion_mnist_original")):
    _register_images(_name, _idx_builder(_name, "fashion_mnist", FASHION_CLASSES, _scaled, FASHION_URLS[0]),
                     (70_000, 784), f"Fashion-MNIST, 60,000 + 10,000 test images 28x28, pixels / 255"
                                    f"{', unit ball' * _scaled}.")
for _scaled, _name in ((True, "cifar10"), (False, "cifar10_original")):
    _register_images(_name, _cifar_builder(_name, "cifar10", _scaled), (60_000, 3072),
                     f"CIFAR-10, 50,000 + 10,000 test images 32x32x3, pixels / 255{', unit ball' * _scaled}.")
for _scaled, _name, _labels in ((True, "cifar100", "fine_labels"), (False, "cifar100_original", "fine_labels"),
                                (True, "cifar100_coarse", "coarse_labels")):
    _register_images(_name, _cifar_builder(_name, "cifar100", _scaled, _labels), (60_000, 3072),
                     f"CIFAR-100 ({'100 fine' if _labels == 'fine_labels' else '20 coarse'} classes), "
                     f"50,000 + 10,000 test images 32x32x3, pixels / 255{', unit ball' * _scaled}.")


# ---- the paper's binary MNIST sub-problems as nested subsets ---------------------------------

PERCENTS = tuple(range(10, 101, 10))
BINARY_PAIRS = ((1, 9), (1, 8))
# Images of each digit in MNIST (train + test): the sizes of the subsets, for --list.
MNIST_COUNTS = {1: 6742 + 1135, 8: 5851 + 974, 9: 5949 + 1009}


def nested_order(y: np.ndarray, seed: int = 0) -> np.ndarray:
    """A seeded order of the rows whose every prefix holds each class in its overall proportion
    (within one row): prefixes of it are nested, stratified subsets."""
    rng = np.random.default_rng(seed)
    rank = np.empty(len(y))
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        rank[idx] = (np.arange(len(idx)) + 0.5) / len(idx)     # the row's quantile within its class
    return np.lexsort((rng.random(len(y)), rank))            # ties between classes: random


def _binary(first: int, second: int, source: Path | None, dataset: str) -> dict:
    d = idx_set(MNIST_FILES, source, dataset)
    return _once(("binary", first, second, d["key"]), lambda: _binary_arrays(d, first, second))


def _binary_arrays(d: dict, first: int, second: int) -> dict:
    keep = np.flatnonzero((d["y"] == first) | (d["y"] == second))
    # The paper's labels: the first digit is class 1, the second class 0.
    y = (d["y"][keep] == first).astype(np.uint8)
    arrays = image_arrays(d["pixels"][keep], y, d["is_test"][keep], d["image_shape"],
                          [str(second), str(first)], MNIST_SOURCE, scaled=True)
    return {**arrays, "order": nested_order(y, seed=0)}


def _binary_builder(first: int, second: int, percent: int, dataset: str):
    def build(source=None) -> dict:
        d = _binary(first, second, None if source is None else Path(source), dataset)
        n = len(d["y"]) * percent // 100
        rows = np.sort(d["order"][:n])      # nested: a smaller percentage takes a prefix of the order
        meta = {**d["meta"], "subset": f"{percent}% of the {len(d['y']):,} images of digits {first} and "
                                        f"{second}, stratified, nested (seed 0)"}
        return {"X": d["X"][rows], "y": d["y"][rows], "is_test": d["is_test"][rows], "meta": meta}
    build.__doc__ = (f"MNIST {first} (label 1) vs {second} (label 0): a nested stratified {percent}% "
                     f"subset, unit ball.")
    return build


for _a, _b in BINARY_PAIRS:
    for _p in PERCENTS:
        _name = f"mnist_{_a}v{_b}_size_{_p}"
        _n = (MNIST_COUNTS[_a] + MNIST_COUNTS[_b]) * _p // 100
        register(_name, kind="image", on_demand=False, default=False, shape=(_n, 784))(
            _binary_builder(_a, _b, _p, _name))

