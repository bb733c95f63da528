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
