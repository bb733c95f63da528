"""`make bench`: run the benchmark scripts and write their tables into BENCHMARKS.md.

    python benchmarks/run_all.py                 # every benchmark
    python benchmarks/run_all.py runner sgd      # only these; the other sections stay as they are
    python benchmarks/run_all.py --quick         # smaller sizes, for a smoke check

Each section of BENCHMARKS.md sits between <!-- bench:NAME --> markers and names the machine
and the date it was measured on.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = HERE.parent / "BENCHMARKS.md"

BENCHES = {  # name -> (script, arguments, arguments with --quick, title)
    "runner": ("bench_runner.py", [], ["--trials", "2000"], "Runner overhead"),
    "algorithm": ("bench_algorithm.py", [], ["--quick"], "Algorithm 2: the fast path against the oracle"),
    "sgd": ("bench_sgd.py", [], ["--quick"], "SGD training throughput"),
    "report": ("bench_report.py", [], ["--quick"], "The report page (plot.py --format html)"),
    "startup": ("bench_startup.py", [], ["--repeat", "2"], "Start-up time of the commands"),
}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
        mem = f"{mem:.0f} GiB"
    except (OSError, ValueError, IndexError):
        mem = "?"
    import numpy
    return (f"{cpu}, {os.cpu_count()} cores, {mem} RAM; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}, numpy {numpy.__version__}")


def run(name: str, quick: bool) -> str:
    script, args, quick_args, title = BENCHES[name]
    cmd = [sys.executable, str(HERE / script), *(quick_args if quick else args)]
    print(f"== {name}: {' '.join(cmd)}", flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
    if out.returncode != 0:
        raise SystemExit(f"{script} failed:\n{out.stdout}\n{out.stderr}")
    print(out.stdout)
    today = datetime.date.today().isoformat()
    shown = " ".join(["python", f"benchmarks/{script}", *(quick_args if quick else args)])
    return (f"<!-- bench:{name} -->\n## {title}\n\nMeasured {today} with `{shown}` on: {machine()}.\n\n"
            f"{out.stdout.strip()}\n<!-- /bench:{name} -->")


def update(sections: dict[str, str]) -> None:
    text = TARGET.read_text() if TARGET.exists() else (
        "# Benchmarks\n\nWritten by `make bench` (benchmarks/run_all.py); every figure below was measured, "
        "on the machine named in its section.\n")
    for name, body in sections.items():
        pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
        text = pattern.sub(lambda _: body, text) if pattern.search(text) else text.rstrip() + "\n\n" + body + "\n"
    TARGET.write_text(text)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*", metavar="NAME", help=f"some of: {', '.join(BENCHES)}")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    for n in a.names:
        if n not in BENCHES:
            ap.error(f"unknown benchmark '{n}': choose from {', '.join(BENCHES)}")
    names = a.names or [n for n in BENCHES if (HERE / BENCHES[n][0]).exists()]
    update({n: run(n, a.quick) for n in names})
    print(f"wrote {TARGET}")
