"""The local backend: supervised worker processes on this machine (`--backend joblib`).

    python run.py --name moons               # 1 worker process
    python run.py --name moons --tasks -1    # one worker per core

Every trial runs in a worker process (memlab.pool), never in the run's own process, so a
trial that segfaults, is OOM-killed, calls os._exit or passes its time limit is recorded as
failed and the grid goes on.  The name `joblib` is kept for the command line: this backend
replaced joblib's pool, which cannot say which trial killed a worker, stop one trial at its
time limit, or go on after a worker dies.
"""
from __future__ import annotations

import os
import uuid

from memlab.pool import Pool, cpu_count
from memlab.worker import Job


def run(exp, pending, store, opts, report) -> None:
    n = cpu_count() if opts.tasks == -1 else opts.tasks
    job = Job(exp.name, exp.trial_name, str(store.base), "local", os.getcwd(), run_id=uuid.uuid4().hex,
              hold_lock=True)
    Pool(job, n_workers=n, timeout=opts.timeout, note=report.note).run(pending, report)
