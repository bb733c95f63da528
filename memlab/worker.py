"""Run trials inside a worker process: the one place a trial function is called.

Every backend ends here: joblib workers call `run_one` per trial, and so do cluster array tasks
for each trial of their share of a frozen manifest (memlab.task).  The worker imports the trial module once,
keeps datasets cached (memlab.datasets), and writes each finished trial's record to a file
of its own before reporting back.
"""
from __future__ import annotations

import fcntl
import importlib
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from memlab.config import TRIALS, Trial
from memlab.store import RecordWriter, Store, Summary


@dataclass(frozen=True)
class Job:
    """What a worker needs to run trials of one experiment (picklable, small)."""
    name: str
    trial: str            # trial module name as written in the experiment file
    results_dir: str
    tag: str              # names the worker's record file: "local", "sge-123-4", ...
    cwd: str              # where the user's own trial modules live
    watch_parent: bool = False   # local workers stop when the run that started them is gone
    run_id: str = ""             # a new record file for every run, even in a long-lived process


_state: dict = {}         # per process: writers, stores, the parent pid, the workers' lock


def _setup(job: Job):
    key = (job.name, job.results_dir, job.tag, job.run_id)
    if key not in _state:
        if job.cwd not in sys.path:
            sys.path.append(job.cwd)
        module = importlib.import_module(TRIALS.get(job.trial, job.trial))
        store = Store(job.name, Path(job.results_dir))
        # Long trials may checkpoint per epoch here (opt-in; see memlab.trials.sgd), keyed by `_key`.
        os.environ["MEMLAB_CHECKPOINT_DIR"] = str(store.dir / "checkpoints")
        if job.watch_parent and "parent" not in _state:
            _watch_parent()
            _hold_workers_lock(store)
        _state[key] = (module.trial, store, RecordWriter(store.records_dir, job.tag))
    return _state[key]


def _watch_parent() -> None:
    """Exit when the run that started this worker is gone (killed with -9, say).

    An orphaned worker would otherwise sit idle holding the workers' lock, or finish trials a
    rerun has already started again.  Its records are flushed per trial, so nothing is lost.
    """
    parent = _state["parent"] = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(0)
    threading.Thread(target=watch, daemon=True, name="memlab-parent-watch").start()


def _hold_workers_lock(store: Store) -> None:
    """A shared lock held for the worker's life: a new run waits until orphans are gone."""
    store.dir.mkdir(parents=True, exist_ok=True)
    f = open(store.dir / "workers.lock", "a")
    fcntl.flock(f, fcntl.LOCK_SH)
    _state["workers_lock"] = f


def run_one(job: Job, trial: Trial) -> Summary:
    fn, store, writer = _setup(job)
    started, t0 = time.time(), time.perf_counter()
    try:
        outcome = fn(trial.call_params())
    except Exception as e:           # KeyboardInterrupt / SystemExit propagate: not the trial's fault
        outcome = e
    return store.record(writer, trial, outcome, time.perf_counter() - t0, started)

