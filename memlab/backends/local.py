"""The local backend: joblib worker processes on this machine.

    python run.py --name moons               # 1 worker, in this process
    python run.py --name moons --tasks -1    # one worker per core

Results stream back as they finish (joblib's generator_unordered), so memory stays flat
however large the grid; each worker writes its own record file.
"""
from __future__ import annotations

import os
import uuid

from memlab.worker import Job, run_one


def run(exp, pending, store, opts, report) -> None:
    n_jobs = opts.tasks
    job = Job(exp.name, exp.trial_name, str(store.base), "local", os.getcwd(), watch_parent=n_jobs != 1,
              run_id=uuid.uuid4().hex)
    if n_jobs == 1:
        for t in pending:                      # in-process: no pickling, no pool
            report(run_one(job, t))
        return
    from joblib import Parallel, delayed
    # batch_size="auto": joblib groups cheap trials into growing batches (amortizing dispatch)
    # and sends costly ones singly, from the durations it measures.
    with Parallel(n_jobs=n_jobs, return_as="generator_unordered", batch_size="auto") as parallel:
        for summary in parallel(delayed(run_one)(job, t) for t in pending):
            report(summary)
