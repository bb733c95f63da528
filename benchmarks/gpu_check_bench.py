"""The GPU benchmarks of benchmarks/gpu_check.sh, one subcommand per section; JSON lines out.

    python benchmarks/gpu_check_bench.py env
    python benchmarks/gpu_check_bench.py algorithm --device cuda     # Algorithm 2, 70,000 x 784
    python benchmarks/gpu_check_bench.py sgd --device cuda           # trial vs hand-written loops
    python benchmarks/gpu_check_bench.py utilisation --device cuda   # host syncs, JAX compiles, GPU busy
    python benchmarks/gpu_check_bench.py sgd --device cpu --quick    # the dry run's sizes

Each measurement is printed as one JSON line the moment it is made, so a step stopped at its
time limit keeps what it measured (gpu_check.py reads the lines and writes the tables).
Wall-clock times: on a GPU the work is asynchronous and process time means nothing; every
timed region ends in a device synchronisation.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

ALGORITHM_SETTINGS = [(100, 1.0), (500, 1.0), (2000, 0.5), (5000, 0.5)]   # issue 17's (n_iter, max_bias)
QUICK_ALGORITHM_SETTINGS = [(100, 1.0), (500, 1.0)]
CIFAR_TRAIN = 50_000          # CIFAR-10's training set: an epoch of Zhang et al.'s runs


def emit(**row) -> None:
    print(json.dumps(row, default=float), flush=True)


def sync(device: str) -> None:
    if device == "cuda":
        import torch
        torch.cuda.synchronize()


# ----------------------------------------------------------------------- env ---
def env(args) -> None:
    """Versions and devices, so every figure can name the machine it was measured on."""
    row = {"python": platform.python_version(), "executable": sys.executable, "cores": os.cpu_count(),
           "cpu": cpu_name()}
    for name in ("numpy", "torch", "jax", "jaxlib", "flax", "optax", "numba", "sklearn", "scipy", "mlxtend"):
        try:
            row[name] = __import__(name).__version__
        except Exception as e:      # noqa: BLE001 - report whatever is missing, do not stop
            row[name] = f"missing ({type(e).__name__})"
    try:
        import torch
        row["torch_cuda"] = torch.version.cuda
        row["torch_sees_cuda"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            row["gpu"] = torch.cuda.get_device_name(0)
            row["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
            row["cudnn"] = torch.backends.cudnn.version()
    except ImportError:
        pass
    try:
        import jax
        row["jax_devices"] = [f"{d.platform}:{d.id} {getattr(d, 'device_kind', '')}".strip() for d in jax.devices()]
    except Exception as e:          # noqa: BLE001
        row["jax_devices"] = f"error: {e}"
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
        row["nvidia_smi"] = out.stdout.strip() or out.stderr.strip()
    except (OSError, subprocess.SubprocessError) as e:
        row["nvidia_smi"] = f"unavailable ({type(e).__name__})"
    emit(kind="env", **row)


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ----------------------------------------------------------------- algorithm ---
def standin(n: int, seed: int = 0, workers: int | None = None):
    """bench_algorithm's MNIST-shaped stand-in, bit for bit, with the affine copies made by
    `workers` processes (the sequential build takes over a minute; the check has six), then
    cached where bench_algorithm.mnist_like looks for it.  Returns (X, y, name)."""
    import bench_algorithm as ba
    cache = Path(tempfile.gettempdir()) / f"memlab_mnist_standin_{n}_{seed}.npz"
    if cache.exists():
        return ba.mnist_like(n, seed)
    X, y, name = build_standin_parallel(n, seed, workers)
    from memlab import io
    with io.atomic_path(cache, suffix=".npz") as tmp:
        np.savez(tmp, X=X, y=y, name=np.array(name))
    return X, y, name


def build_standin_parallel(n: int, seed: int, workers: int | None = None):
    """bench_algorithm.build_standin with the transforms spread over processes: the same draws
    from the same generator in the same order, so the same array (tests/test_gpu.py checks)."""
    import multiprocessing as mp

    import bench_algorithm as ba
    base, labels, name = ba.base_images()
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(len(base), n):      # exactly build_standin's sequence of draws
        j = rng.integers(len(base))
        angle = np.deg2rad(rng.uniform(-15, 15))
        scale = rng.uniform(0.85, 1.15)
        shear = rng.uniform(-0.2, 0.2)
        shift = rng.uniform(-2, 2, size=2)
        draws.append((int(j), angle, scale, shear, shift))
    order = rng.permutation(n)
    images = np.empty((n, 28, 28), np.float32)
    images[: len(base)] = base
    y = np.empty(n, np.int64)
    y[: len(base)] = labels
    chunks = [draws[i:i + 2000] for i in range(0, len(draws), 2000)]
    workers = workers or min(len(os.sched_getaffinity(0)), 16)
    with mp.get_context("spawn").Pool(max(1, workers), initializer=_init_base, initargs=(base,)) as pool:
        done = pool.map(_transform_chunk, chunks)
    at = len(base)
    for chunk, out in zip(chunks, done):
        images[at:at + len(out)] = out
        y[at:at + len(out)] = labels[[d[0] for d in chunk]]
        at += len(out)
    X = images.reshape(n, -1)[order]
    y = y[order]
    np.clip(X, 0, 1, out=X)
    X /= np.float32(np.linalg.norm(X, axis=1).max())
    return X, y, f"stand-in: {name} + random affine copies"


_BASE = None


def _init_base(base):
    global _BASE
    _BASE = base


def _transform_chunk(chunk):
    from scipy.ndimage import affine_transform
    center = np.array([13.5, 13.5])
    out = np.empty((len(chunk), 28, 28), np.float32)
    for k, (j, angle, scale, shear, shift) in enumerate(chunk):
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        M = rot @ np.array([[1.0, shear], [0.0, 1.0]]) / scale
        offset = center - M @ center + shift
        out[k] = affine_transform(_BASE[j], M, offset=offset, order=1, mode="constant")
    return out


def algorithm(args) -> None:
    """Algorithm 2 on the 70,000 x 784 stand-in: the torch path on `device` against the numba
    path on this machine's CPU (same neurons?), and the paper's MNIST grid from a sample."""
    import algorithm as alg
    import bench_algorithm as ba
    n = 8_000 if args.quick else 70_000
    t0 = time.perf_counter()
    X, y, source = standin(n)
    X.setflags(write=False)
    emit(kind="algorithm_data", n=n, source=source, seconds=time.perf_counter() - t0)
    t0 = time.perf_counter()
    ba.warm_up(X, y)                                                    # numba kernels (scoring, CPU path)
    alg.Memorizer(n_iter=70, max_bias=0.5, method="torch", device=args.device).fit(X[::140], y[::140])
    sync(args.device)
    emit(kind="algorithm_warmup", seconds=time.perf_counter() - t0)
    settings = QUICK_ALGORITHM_SETTINGS if args.quick else ALGORITHM_SETTINGS
    fit_settings(args, X, y, settings[:2])
    grid_sample(args, X, y)                      # before the long settings: the figure the issue asks for
    fit_settings(args, X, y, settings[2:])


def fit_settings(args, X, y, settings) -> None:
    """Each setting fit on `device` (torch path) and on the CPU (numba path): time, same neurons."""
    import torch

    import algorithm as alg
    import bench_algorithm as ba
    for n_iter, max_bias in settings:
        kw = dict(n_iter=n_iter, max_bias=max_bias, random_state=0)
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        dev = alg.Memorizer(method="torch", device=args.device, **kw).fit(X, y)
        sync(args.device)
        fit = time.perf_counter() - start
        start = time.perf_counter()
        acc = dev.score(X, y)
        score = time.perf_counter() - start
        start, cpu_start = time.perf_counter(), time.process_time()
        cpu = alg.Memorizer(**kw).fit(X, y)
        cpu_wall, cpu_proc = time.perf_counter() - start, time.process_time() - cpu_start
        emit(kind="algorithm", n_iter=n_iter, max_bias=max_bias, width=int(dev.n_neurons_), fit_s=fit,
             score_s=score, acc=float(acc), cpu_fit_wall_s=cpu_wall, cpu_fit_process_s=cpu_proc,
             same_neurons=ba.digest(dev) == ba.digest(cpu) and dev.n_neurons_ == cpu.n_neurons_,
             peak_gpu_gib=torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else None)


def grid_sample(args, X, y) -> None:
    """The paper's 16,250-trial MNIST grid, estimated from k of its settings drawn uniformly
    (seed 0, as bench_algorithm.grid_estimate), each fit on `device` and scored, one after another."""
    import algorithm as alg
    import bench_algorithm as ba
    grid = ba.PAPER_GRID
    total = len(grid["n_iter"]) * len(grid["max_bias"]) * grid["restarts"]
    rnd = random.Random(0)
    k = 4 if args.quick else args.grid
    points = [(rnd.choice(grid["n_iter"]), rnd.choice(grid["max_bias"])) for _ in range(k)]
    times, fits = [], []
    for i, (n_iter, max_bias) in enumerate(points):
        start = time.perf_counter()
        model = alg.Memorizer(n_iter=n_iter, max_bias=max_bias, method="torch", device=args.device,
                              random_state=i).fit(X, y)
        sync(args.device)
        fits.append(time.perf_counter() - start)
        model.score(X, y)
        times.append(time.perf_counter() - start)
        mean = statistics.mean(times)
        emit(kind="algorithm_grid", trials=len(times), of=k, grid_trials=total, mean_s=mean,
             mean_fit_s=statistics.mean(fits), max_s=max(times), device_hours=mean * total / 3600)


# ----------------------------------------------------------------------- sgd ---
def register_images() -> None:
    """Random images of the shapes the issue asks for, as registered datasets (built in
    MEMLAB_ROOT on first use): 28x28x3 (Zhang et al.'s crop), and 32x32x3 (CIFAR-10's own)."""
    from memlab.datasets.registry import DATASETS, register
    from memlab.datasets.bundled import stratified_test_mask
    for side in (28, 32):
        name = f"gpu_check_{side}x{side}x3"
        if name in DATASETS:
            continue

        def build(source=None, side=side):
            rng = np.random.default_rng(side)
            n = 11_000 if side == 28 else 5_500
            y = rng.integers(0, 10, n)
            return {"X": rng.random((n, side * side * 3), dtype=np.float32), "y": y,
                    "is_test": stratified_test_mask(y, 1 / 11, seed=0),
                    "meta": {"image_shape": [side, side, 3], "classes": [str(c) for c in range(10)],
                             "source": "uniform random pixels (gpu_check_bench)"}}
        register(name, kind="image", default=False, shape=(11_000 if side == 28 else 5_500, side * side * 3),
                 description=f"random {side}x{side}x3 images for the GPU benchmarks")(build)


def sgd_params(model: str, framework: str, device: str, epochs: int, n_train: int, **extra) -> dict:
    # split "all": the throughput of training; the final evaluation then only sees the n_train examples
    return {"dataset": "gpu_check_28x28x3", "split": "all", "model": model, "widths": [512], "framework": framework,
            "epochs": epochs, "eval_every": 0, "batch_size": 128, "lr": 0.01, "momentum": 0.9,
            "lr_decay": 1.0, "seed": 0, "device": device, "n_train": n_train, **extra}


def trial_rate(p: dict) -> float:
    from memlab.trials import sgd
    return sgd.trial(p)["examples_per_s"]


def network(model: str, shape: tuple):
    from memlab.models import build, init_params
    from memlab.trials._train import INIT, rng
    layers = build(model, shape, 10, widths=[512])
    return layers, init_params(layers, shape, rng(0, INIT), "relu")


def training_data(n_train: int, shape=(28, 28, 3)):
    from memlab.datasets import load_dataset
    ds = load_dataset("gpu_check_28x28x3", split="train")
    return ds.X[:n_train].reshape(n_train, *shape), ds.y[:n_train].astype(np.int64)


def hand_torch(model: str, device: str, epochs: int, n_train: int) -> float:
    """A plain PyTorch loop over the same network: data on the device, randperm batches,
    SGD with momentum; the same cuDNN flags as the trial (deterministic, no autotuning)."""
    import torch

    from memlab.models import is_convolutional
    from memlab.models.torch_models import TorchNet
    from memlab.trials.sgd import network_input
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    x, y = training_data(n_train)
    layers, init = network(model, x.shape[1:])
    net = TorchNet(layers, init, x.shape[1:]).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    X = torch.from_numpy(network_input(x, is_convolutional(layers), channels_first=True)).to(device)
    Y = torch.from_numpy(y).to(device)
    net.train()

    def epoch():
        perm = torch.randperm(len(X), device=device)
        for i in range(0, len(X), 128):
            idx = perm[i:i + 128]
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(X[idx]), Y[idx]).backward()
            opt.step()
    epoch()                                      # warm-up: cuDNN handles, allocator
    sync(device)
    start = time.perf_counter()
    for _ in range(epochs):
        epoch()
    sync(device)
    return len(X) * epochs / (time.perf_counter() - start)


def hand_jax(model: str, device: str, epochs: int, n_train: int) -> float:
    """A plain JAX loop over the same network (flax + optax): data on the device, a jitted step
    on gathered batches, a permutation per epoch."""
    import jax
    import jax.numpy as jnp
    import optax

    from memlab.models import is_convolutional
    from memlab.models.jax_models import FlaxNet, flax_variables
    from memlab.trials.sgd import network_input
    dev = jax.devices("gpu" if device == "cuda" else "cpu")[0]
    x, y = training_data(n_train)
    layers, init = network(model, x.shape[1:])
    net, variables = FlaxNet(layers), flax_variables(init)
    tx = optax.sgd(0.01, momentum=0.9)
    state = jax.device_put((variables["params"], variables["batch_stats"], tx.init(variables["params"])), dev)
    X = jax.device_put(network_input(x, is_convolutional(layers), channels_first=False), dev)
    Y = jax.device_put(y.astype(np.int32), dev)
    key = jax.random.PRNGKey(0)

    @jax.jit
    def step(state, x, y):
        params, stats, opt_state = state

        def loss(params):
            out, upd = net.apply({"params": params, "batch_stats": stats}, x, train=True,
                                 mutable=["batch_stats"], rngs={"dropout": key})
            return optax.softmax_cross_entropy_with_integer_labels(out, y).mean(), upd.get("batch_stats", stats)
        (_, stats), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), stats, opt_state

    full = len(X) // 128 * 128                   # full batches only: one compiled shape

    def epoch(state, k):
        perm = jax.random.permutation(k, len(X))
        for i in range(0, full, 128):
            idx = perm[i:i + 128]
            state = step(state, X[idx], Y[idx])
        return state
    state = jax.block_until_ready(epoch(state, jax.random.PRNGKey(1)))      # compile
    start = time.perf_counter()
    for e in range(epochs):
        state = epoch(state, jax.random.PRNGKey(2 + e))
    jax.block_until_ready(state)
    return full * epochs / (time.perf_counter() - start)


def sgd(args) -> None:
    """examples/s of the sgd trial against the hand loops, mlp (1x512) and inception_small on
    28x28x3, batch 128, both frameworks; Inception's epoch on CIFAR-10-shaped data."""
    register_images()
    quick = args.quick
    sizes = {"mlp": (1_000 if quick else 10_000, 2 if quick else 10),
             "inception_small": (256 if quick else 10_000, 1 if quick else 3)}
    rates = {}
    for model, (n_train, epochs) in sizes.items():
        for framework in ("torch", "jax"):
            p = sgd_params(model, framework, args.device, epochs, n_train)
            t0 = time.perf_counter()
            trial_rate({**p, "epochs": 1})                                 # compile / warm up, as in a grid
            warm = time.perf_counter() - t0
            hand_fn = hand_torch if framework == "torch" else hand_jax
            trial_best, hand_best = 0.0, 0.0
            for _ in range(2 if model == "mlp" and not quick else 1):        # interleaved, best kept
                trial_best = max(trial_best, trial_rate(p))
                hand_best = max(hand_best, hand_fn(model, args.device, epochs, n_train))
            rates[model, framework] = trial_best
            emit(kind="sgd", model=model, framework=framework, n_train=n_train, epochs=epochs,
                 trial_ex_s=trial_best, hand_ex_s=hand_best, ratio=trial_best / hand_best, first_trial_s=warm)
    for framework in ("torch", "jax"):
        rate = rates["inception_small", framework]
        emit(kind="sgd_epoch", what="inception_small, 50,000 images 28x28x3 (CIFAR-10 cropped), no augmentation",
             framework=framework, epoch_s=CIFAR_TRAIN / rate, trial_100_epochs_min=100 * CIFAR_TRAIN / rate / 60)
    for framework in ("torch", "jax"):                                     # the augmented variant of Table 1
        p = {**sgd_params("inception_small", framework, args.device, 1 if quick else 2, 256 if quick else 5_000),
             "dataset": "gpu_check_32x32x3", "crop": 28, "augment": True}
        trial_rate({**p, "epochs": 1})
        rate = trial_rate(p)
        emit(kind="sgd_epoch", what="inception_small, 50,000 images 32x32x3, random 28x28 crops + flips",
             framework=framework, epoch_s=CIFAR_TRAIN / rate, trial_100_epochs_min=100 * CIFAR_TRAIN / rate / 60,
             ex_s=rate)


# --------------------------------------------------------------- utilisation ---
@contextlib.contextmanager
def count_syncs():
    """Count PyTorch's synchronizing CUDA calls (torch.cuda.set_sync_debug_mode) in the block."""
    import torch
    seen: list = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield seen
        finally:
            torch.cuda.set_sync_debug_mode("default")
    seen.extend(w for w in caught if "synchroniz" in str(w.message))


@contextlib.contextmanager
def count_compiles():
    """Count XLA backend compilations in the block (jax.monitoring's compile event)."""
    import jax
    seen: list = []

    def listener(event, duration, **kw):
        if event.endswith("backend_compile_duration"):
            seen.append(duration)
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield seen
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def torch_syncs_per_epoch(device: str, n_train: int) -> tuple[int, int]:
    """(synchronizing calls, training steps) in epoch 2 of a 3-epoch torch trial: model and data
    are on the device by then, and no evaluation runs in it (eval_every 0)."""
    from memlab.trials import sgd as sgd_trial
    register_images()
    counter: dict = {}

    def on_epoch(epoch, history):
        if epoch == 1:
            counter["cm"] = count_syncs()
            counter["seen"] = counter["cm"].__enter__()
        elif epoch == 2:
            counter["cm"].__exit__(None, None, None)
    sgd_trial.train(sgd_params("mlp", "torch", device, 3, n_train), on_epoch=on_epoch)
    return len(counter["seen"]), -(-n_train // 128)


def gpu_busy(fn, seconds_hint: float = 0.0) -> float | None:
    """Mean GPU utilisation (%) that nvidia-smi samples every 100 ms while fn() runs."""
    try:
        smi = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                "-lms", "100"], stdout=subprocess.PIPE, text=True)
    except OSError:
        fn()
        return None
    try:
        time.sleep(0.3)
        fn()
    finally:
        smi.terminate()
        out, _ = smi.communicate(timeout=10)
    values = [float(v) for v in out.split() if v.replace(".", "", 1).isdigit()]
    return statistics.mean(values[3:]) if len(values) > 3 else None


def utilisation(args) -> None:
    register_images()
    n_train = 1_000 if args.quick else 10_000
    if args.device == "cuda":
        syncs, steps = torch_syncs_per_epoch(args.device, n_train)
        emit(kind="util_syncs", framework="torch", syncs=syncs, steps=steps)
    with count_compiles() as compiles:
        per_trial = []
        for seed, lr in ((0, 0.01), (1, 0.02), (2, 0.05)):       # a grid of same-shaped trials
            before = len(compiles)
            trial_rate(sgd_params("mlp", "jax", args.device, 1, n_train, seed=seed, lr=lr))
            per_trial.append(len(compiles) - before)
    emit(kind="util_compiles", framework="jax", compiles_per_trial=per_trial)
    if args.device == "cuda":
        for framework in ("torch", "jax"):
            for model, epochs in (("mlp", 40), ("inception_small", 3)):
                p = sgd_params(model, framework, args.device, epochs, n_train)
                trial_rate({**p, "epochs": 1})
                busy = gpu_busy(lambda p=p: trial_rate(p))
                emit(kind="util_busy", framework=framework, model=model, gpu_busy_pct=busy)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("section", choices=("env", "algorithm", "sgd", "utilisation"))
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--quick", action="store_true", help="small sizes (the CPU dry run)")
    ap.add_argument("--grid", type=int, default=16, help="sampled settings of the paper's MNIST grid")
    args = ap.parse_args(argv)
    os.environ.setdefault("MEMLAB_ROOT", tempfile.mkdtemp(prefix="memlab-gpu-check-"))
    {"env": env, "algorithm": algorithm, "sgd": sgd, "utilisation": utilisation}[args.section](args)


if __name__ == "__main__":
    main()
