"""Run an experiment's parameter grid: every pending trial, locally or on a cluster.

    python run.py --name moons                       # local, joblib, 1 worker
    python run.py --name moons --tasks -1            # local, every core
    python run.py --name mnist --dry-run             # validate, count, list datasets; run nothing
    python run.py --name mnist --backend sge --tasks 20 -- -q all.q -l gpu=1

Reads experiments/NAME.json, skips trials already finished (so the same command resumes),
writes one record per finished trial and merges them into results/NAME.csv.
Exit status: 0 all trials done, 1 some failed or were interrupted, 2 bad input.
"""
import sys

from memlab.cli.run import main

if __name__ == "__main__":
    sys.exit(main())
