"""The report page's cost for the moons grid: 127,500 finished trials (50 restarts x 50 widths x
51 biases), records and CSV written here from the real grid, then `write_report` timed.

    python benchmarks/bench_report.py              # 127,500 trials
    python benchmarks/bench_report.py --quick      # the 5,200-trial moons_demo grid

Process time (the machine is shared); the figures are not drawn here: the page only.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build(root: Path, name: str) -> tuple:
    import pandas as pd

    from memlab.config import load_experiment
    from memlab.store import Store
    exp = load_experiment(name)
    store = Store(name)
    store.records_dir.mkdir(parents=True)
    rng = random.Random(0)
    prov = {"git": "0123456789ab", "dirty": False, "host": "node01",
            "versions": {"python": "3.11.7", "numpy": "2.4.6", "sklearn": "1.9.1", "numba": "0.68.1"}}
    rows = []
    with open(store.records_dir / "w.jsonl", "w") as f:
        for t in exp.trials():
            fail = rng.random() < 0.001
            rec = {"key": t.key, "_index": t.index, "params": t.params, "seconds": 0.03,
                   "started": 1.8e9 + t.index * 0.03, "pid": 1, "prov": prov}
            if fail:
                rec.update(status="error", error={"type": "MemoryError", "message": "out of memory",
                                                  "traceback": "Traceback (most recent call last):\n  ...\nMemoryError"})
            else:
                result = {"score": 1.0 if rng.random() < 0.7 else 0.99, "fit_time": 0.02, "score_time": 0.001,
                          "first_dim_in": 2, "first_dim_out": t.params["n_iter"], "second_dim_in": t.params["n_iter"],
                          "second_dim_out": rng.randint(1, 30)}
                rec.update(status="ok", result=result)
                rows.append({**t.params, "_index": t.index, "_key": t.key, **result})
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")
    pd.DataFrame(rows).to_csv(store.csv_path, index=False)
    return exp, store


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    name = "moons_demo" if ap.parse_args().quick else "moons"
    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "experiments").mkdir()
        (root / "experiments" / f"{name}.json").write_text((repo / "experiments" / f"{name}.json").read_text())
        os.environ["MEMLAB_ROOT"] = str(root)
        exp, store = build(root, name)
        from memlab.plotting import load_tables
        from memlab.plots.report import write_report
        t0, w0 = time.process_time(), time.perf_counter()
        df, _ = load_tables(exp, store, needed=True)
        t1 = time.process_time()
        page = write_report(exp, store, [], root / "plots" / name, df)
        t2, w2 = time.process_time(), time.perf_counter()
        size = page.stat().st_size / 2**20
    print(f"The report page of `{name}` ({len(exp):,} trials, 0.1 % failed), figures not included; "
          f"process time.\n")
    print("| step | seconds |\n|---|---:|")
    print(f"| read results/NAME.csv + derived columns | {t1 - t0:.2f} |")
    print(f"| write_report: records, status, table, failures, provenance | {t2 - t1:.2f} |")
    print(f"| total (wall {w2 - w0:.2f} s on a shared machine) | {t2 - t0:.2f} |")
    print(f"\nindex.html: {size:.1f} MiB (one row per grid point above 20,000 trials).")


if __name__ == "__main__":
    main()
