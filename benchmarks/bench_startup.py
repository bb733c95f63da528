"""How long the command-line tools take to start: the commands that run no trial.

    python benchmarks/bench_startup.py [--repeat 5]

Each command runs in a scratch study folder holding only experiments/moons_demo.json.  Cold:
the first call with an empty bytecode cache (`python -X pycache_prefix=EMPTY_DIR`, so every
module, memlab's and the libraries', is compiled from source again); warm: the median of
`--repeat` calls after it.  CPU is user + system time of the process, which a busy machine
inflates less than wall time.  Then, for `run.py --status`, which heavy libraries it imports
and their cumulative import time (`python -X importtime`).

Then a local run's start: how long a pool of 2 workers takes until both are ready for trials
(memlab.pool: the trial module imported and its prepare() done), for a trivial trial and for
`algorithm`, and a one-trial `run.py` of moons_demo (`--set` to
one grid point, `--as` a new name each time) with an empty numba cache (the kernels compiled)
and again with that cache (what every later run pays): compilation is paid once per machine,
not per run.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMMANDS = [
    ("python run.py --name moons_demo --status", ["run.py", "--name", "moons_demo", "--status"]),
    ("python run.py --name moons_demo --dry-run", ["run.py", "--name", "moons_demo", "--dry-run"]),
    ("python data.py --list", ["data.py", "--list"]),
    ("python plot.py --help", ["plot.py", "--help"]),
    ("python -c 'import memlab'", ["-c", "import memlab"]),
]
HEAVY = ("numpy", "scipy", "sklearn", "pandas", "matplotlib", "numba", "joblib", "torch", "jax")


def timed(argv, cwd, env, extra=()) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `python [extra] argv`."""
    args = [sys.executable, *extra, *[str(REPO / a) if a.endswith(".py") else a for a in argv]]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def import_costs(argv, cwd, env) -> dict[str, float]:
    """Cumulative import time (s) of each heavy library the command imports."""
    args = [sys.executable, "-X", "importtime", *[str(REPO / a) if a.endswith(".py") else a for a in argv]]
    err = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=True).stderr
    costs = {}
    for m in re.finditer(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", err):
        name = m.group(3)
        if name in HEAVY:
            costs[name] = max(costs.get(name, 0.0), int(m.group(1)) / 1e6)
    return costs


def pool_ready(study: str, env: dict, trial: str, workers: int = 2) -> float:
    """Wall seconds from starting `workers` supervised workers until all say ready (the trial
    module imported and its prepare() done)."""
    code = ("import time, uuid\nfrom memlab.pool import Pool\nfrom memlab.worker import Job\n"
            f"job = Job('moons_demo', {trial!r}, 'results', 'local', {study!r}, run_id=uuid.uuid4().hex)\n"
            f"pool = Pool(job, n_workers={workers})\nt0 = time.perf_counter()\n"
            f"ws = [pool._start() for _ in range({workers})]\n"
            "for w in ws:\n    pool._receive(w, None)\n    assert w.ready\n"
            "print(time.perf_counter() - t0)\npool.close()")
    out = subprocess.run([sys.executable, "-c", code], cwd=study, env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


ONE_TRIAL = ["run.py", "--name", "moons_demo", "--set", "restart=0", "--set", "n_iter=100",
             "--set", "max_bias=0.5", "--tasks", "1", "-q"]


def run_start(study: str, env: dict, repeat: int) -> list[tuple[str, float, float]]:
    with tempfile.TemporaryDirectory() as numba_cache:
        env = {**env, "NUMBA_CACHE_DIR": numba_cache}
        compiled = timed([*ONE_TRIAL, "--as", "one_cold"], study, env)
        cached = [timed([*ONE_TRIAL, "--as", f"one_warm{i}"], study, env) for i in range(repeat)]
        shutil.copy(REPO / "benchmarks" / "trivial.py", Path(study, "bench_trivial.py"))
        rows = [(f"2 workers ready, trial {name}", statistics.median(pool_ready(study, env, t) for _ in range(repeat)), None)
                for name, t in (("`trivial` (the worker alone)", "bench_trivial"),
                                ("`algorithm` (+ prepare: numba, kernels loaded)", "algorithm"))]
    rows.append(("one-trial run, empty numba cache (kernels compiled)", *compiled))
    rows.append(("one-trial run, numba cache from the run before", statistics.median(w for w, _ in cached),
                 statistics.median(c for _, c in cached)))
    return rows


def main(repeat: int) -> str:
    with tempfile.TemporaryDirectory() as study, tempfile.TemporaryDirectory() as cold_cache:
        Path(study, "experiments").mkdir()
        shutil.copy(REPO / "experiments" / "moons_demo.json", Path(study, "experiments"))
        env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
        env.pop("MEMLAB_ROOT", None)
        rows = []
        for label, argv in COMMANDS:
            cold = timed(argv, study, env, ("-X", f"pycache_prefix={cold_cache}/{len(rows)}"))
            warm = [timed(argv, study, env) for _ in range(repeat)]
            rows.append((label, cold, statistics.median(w for w, _ in warm), statistics.median(c for _, c in warm)))
        costs = import_costs(COMMANDS[0][1], study, env)
        starts = run_start(study, env, repeat)
    out = [f"Commands that run no trial, from a study folder holding only `experiments/moons_demo.json`; "
           f"cold = first call with an empty bytecode cache, warm = median of {repeat}.", "",
           "| command | cold wall (s) | cold CPU (s) | warm wall (s) | warm CPU (s) |", "|---|---:|---:|---:|---:|"]
    for label, (cw, cc), ww, wc in rows:
        out.append(f"| `{label}` | {cw:.2f} | {cc:.2f} | {ww:.2f} | {wc:.2f} |")
    shown = ", ".join(f"{k} {v:.2f} s" for k, v in sorted(costs.items(), key=lambda kv: -kv[1])) or "none"
    out += ["", "Heavy libraries `run.py --status` imports (cumulative import time, warm; nested ones "
                f"overlap): {shown}."]
    out += ["", f"A local run's start (median of {repeat}; CPU of the run and its workers):", "",
            "| what | wall (s) | CPU (s) |", "|---|---:|---:|"]
    for label, wall, cpu in starts:
        out.append(f"| {label} | {wall:.2f} | {'' if cpu is None else f'{cpu:.2f}'} |")
    return "\n".join(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    print(main(ap.parse_args().repeat))
