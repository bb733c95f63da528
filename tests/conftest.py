"""Shared fixtures: a scratch study folder with its own experiments/, datasets/, results/."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture
def study(tmp_path, monkeypatch):
    """A study folder as cwd: write experiments and trial modules into it, run the CLIs."""
    (tmp_path / "experiments").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MEMLAB_ROOT", raising=False)
    if str(tmp_path) not in sys.path:
        monkeypatch.syspath_prepend(str(tmp_path))
    return Study(tmp_path)


class Study:
    def __init__(self, path: Path):
        self.path = path

    def experiment(self, name: str, config: dict | str) -> Path:
        p = self.path / "experiments" / f"{name}.json"
        p.write_text(config if isinstance(config, str) else json.dumps(config, indent=1))
        return p

    def module(self, name: str, source: str) -> Path:
        p = self.path / f"{name}.py"
        p.write_text(textwrap.dedent(source))
        sys.modules.pop(name, None)
        return p

    def cli(self, script: str, *args, timeout=300, **kw) -> subprocess.CompletedProcess:
        env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(REPO)}
        return subprocess.run([sys.executable, str(REPO / script), *map(str, args)], cwd=self.path,
                              capture_output=True, text=True, timeout=timeout, env=env, **kw)


TOY_TRIAL = """
import os, time
import numpy as np
from memlab.params import REQUIRED, resolve, trial_seed

PARAMS = {"x": REQUIRED, "y": 0.0, "fail_at": None, "sleep": 0.0, "log": None}

def trial(params):
    p = resolve(PARAMS, params)
    if p["log"]:                               # tests count how often each trial ran
        with open(p["log"], "a") as f:
            f.write(params["_key"] + "\\n")
    if p["fail_at"] is not None and p["x"] == p["fail_at"]:
        raise ValueError(f"x={p['x']} fails on purpose")
    time.sleep(p["sleep"])
    rng = np.random.default_rng(trial_seed(params))
    return {"z": p["x"] * 10 + p["y"], "noise": float(rng.random()),
            "series": {"epoch": [1, 2, 3], "loss": [p["x"], p["x"] / 2, p["x"] / 4]}}
"""
