"""The runner's overhead per trial, against a plain Python loop over the same trial function.

    python benchmarks/bench_runner.py [--trials 20000]

Runs a trivial trial over N grid points in a scratch folder through `runner.run` (config
load, planning, one flushed record per trial, merge into the CSV) with 1 and 2 workers.
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


def bench(n: int) -> list[dict]:
    import trivial
    rows = []
    t0 = time.perf_counter()
    for i in range(n):
        trivial.trial({"x": i, "_index": i, "_key": ""})
    loop = time.perf_counter() - t0
    rows.append({"how": "plain Python loop", "seconds": loop})
    for tasks in (1, 2):
        with tempfile.TemporaryDirectory() as d:
            os.chdir(d)
            Path("experiments").mkdir()
            Path("experiments/bench.json").write_text(json.dumps(
                {"trial": "trivial",
                 "param_grid": {"x": {"type_": "range", "stop": n}}}))
            t0 = time.perf_counter()
            code = runner.run(load_experiment("bench"), runner.RunOptions(tasks=tasks, progress=False))
            seconds = time.perf_counter() - t0
            assert code == 0
            rows.append({"how": f"run.py, joblib, {tasks} worker{'s' * (tasks > 1)}", "seconds": seconds})
            os.chdir(HERE)
    for r in rows:
        r["trials/s"] = n / r["seconds"]
        r["overhead ms/trial"] = 1000 * (r["seconds"] - loop) / n
    return rows


def table(rows, n) -> str:
    out = [f"Trivial trial, {n:,} trials (whole run: config, plan, records, CSV merge).", "",
           "| how | seconds | trials/s | overhead per trial |", "|---|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['how']} | {r['seconds']:.2f} | {r['trials/s']:,.0f} | {r['overhead ms/trial']:.3f} ms |")
    return "\n".join(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20_000)
    a = ap.parse_args()
    import io
    import contextlib
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rows = bench(a.trials)
    print(table(rows, a.trials))
