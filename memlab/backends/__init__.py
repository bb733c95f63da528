"""Backends run pending trials somewhere and report each finished one.

A backend is a function `run(exp, pending, store, opts, report)` that makes every trial in
`pending` run through memlab.worker (which writes its record) and calls `report(summary)` as
each one finishes.  Adding a backend is one module plus one entry in BACKENDS.
"""
from __future__ import annotations

import importlib

BACKENDS = {  # name -> module with a run() function
    "joblib": "memlab.backends.local",
    "sge": "memlab.backends.sge",
    "slurm": "memlab.backends.slurm",
}


def get(name: str):
    return importlib.import_module(BACKENDS[name]).run


class Incomplete(Exception):
    """A backend stopped with trials that did not run (e.g. an array task died); says which."""


def in_flight(store) -> dict:
    """Trials (key -> job) that a queued or running cluster job of this experiment will run."""
    if not (store.dir / "manifests").exists():
        return {}
    from memlab.backends import cluster
    return cluster.in_flight(store)


def describe(flying: dict) -> str:
    """'3 in sge job 12, 1 in slurm job 40' for the trials in flight."""
    counts = {}
    for job in flying.values():
        counts[str(job)] = counts.get(str(job), 0) + 1
    return ", ".join(f"{n} in {job}" for job, n in counts.items())


def report_jobs(store, flying: dict) -> None:
    """For --collect: print what cluster jobs still run, and which of their tasks died."""
    if (store.dir / "manifests").exists():
        from memlab.backends import cluster
        cluster.collect_report(store, flying)
