"""The runner's overhead per trial, against a plain Python loop over the same trial function.

    python benchmarks/bench_runner.py [--trials 20000]

Runs a trivial trial over N grid points in a scratch folder through `runner.run` (config
load, planning, one flushed record per trial, merge into the CSV) with 1 and 2 supervised
worker processes (memlab.pool: every trial runs in a child that may crash without harm), and
times planning the paper's 127,500-trial moons grid and counting a 10^9-trial grid.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from memlab import runner  # noqa: E402
from memlab.config import load_experiment  # noqa: E402


def bench_planning() -> list[dict]:
    """Load + plan experiments/moons.json (127,500 trials) with no results; count a 10^9 grid."""
    from memlab.store import Store
    rows = []
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        Path("experiments").mkdir()
        Path("experiments/moons.json").write_text((HERE.parent / "experiments" / "moons.json").read_text())
        Path("experiments/huge.json").write_text(json.dumps({"trial": "trivial", "param_grid": {
            "x": {"type_": "range", "stop": 1000}, "a": {"type_": "range", "stop": 1000},
            "b": {"type_": "range", "stop": 1000}}}))
        t0 = time.perf_counter()
        exp = load_experiment("moons")
        p = runner.plan(exp, Store("moons"))
        rows.append({"what": f"load + plan moons.json ({len(p.trials):,} trials)",
                     "seconds": time.perf_counter() - t0})
        t0 = time.perf_counter()
        n = len(load_experiment("huge"))
        rows.append({"what": f"load + count a {n:,}-trial grid", "seconds": time.perf_counter() - t0})
        os.chdir(HERE)
    return rows


def timed_run(tasks: int, n: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        Path("experiments").mkdir()
        Path("experiments/bench.json").write_text(json.dumps(
            {"trial": "trivial", "param_grid": {"x": {"type_": "range", "stop": n}}}))
        t0 = time.perf_counter()
        code = runner.run(load_experiment("bench"), runner.RunOptions(tasks=tasks, progress=False))
        seconds = time.perf_counter() - t0
        assert code == 0
        os.chdir(HERE)
    return seconds


def bench(n: int) -> list[dict]:
    """Whole runs of n and n/10 trials: the difference is the cost per trial without the fixed
    costs (config, starting the workers, which import numpy and the trial module once)."""
    import trivial
    rows = []
    t0 = time.perf_counter()
    for i in range(n):
        trivial.trial({"x": i, "_index": i, "_key": ""})
    loop = time.perf_counter() - t0
    rows.append({"how": "plain Python loop", "seconds": loop, "marginal": loop / n})
    for tasks in (1, 2):
        small, full = timed_run(tasks, n // 10), timed_run(tasks, n)
        rows.append({"how": f"run.py, {tasks} supervised worker{'s' * (tasks > 1)}", "seconds": full,
                     "marginal": (full - small) / (n - n // 10)})
    for r in rows:
        r["trials/s"] = n / r["seconds"]
        r["overhead ms/trial"] = 1000 * (r["marginal"] - loop / n)
    return rows


def table(rows, n, planning=()) -> str:
    out = [f"Trivial trial, {n:,} trials (whole run: config, plan, worker start, records, CSV merge); "
           f"overhead per trial = (time of {n:,} trials - time of {n // 10:,}) / {n - n // 10:,} - the loop's.", "",
           "| how | seconds | trials/s | overhead per trial |", "|---|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['how']} | {r['seconds']:.2f} | {r['trials/s']:,.0f} | {r['overhead ms/trial']:.3f} ms |")
    if planning:
        out += ["", "| planning | seconds |", "|---|---:|"]
        out += [f"| {r['what']} | {r['seconds']:.2f} |" for r in planning]
    return "\n".join(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20_000)
    a = ap.parse_args()
    import io
    import contextlib
    buf = io.StringIO()
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    with contextlib.redirect_stdout(buf):
        rows = bench(a.trials)
        planning = bench_planning()
    print(table(rows, a.trials, planning))
