"""The runner end to end on a toy trial: records, CSV, resume, failures, kill -9."""
from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import REPO, TOY_TRIAL
from memlab import runner
from memlab.config import load_experiment
from memlab.store import Store


@pytest.fixture
def toy(study):
    study.module("toytrial", TOY_TRIAL)
    return study


def run(name, **kw):
    return runner.run(load_experiment(name), runner.RunOptions(progress=False, **kw))


def ran_keys(log):
    return collections.Counter(log.read_text().split()) if log.exists() else collections.Counter()


def test_results_csv_has_params_index_and_values(toy):
    toy.experiment("t", {"trial": "toytrial", "param_grid": {"x": [3, 1, 2], "y": [0.5, 0.25]}})
    assert run("t") == 0
    df = pd.read_csv(toy.path / "results" / "t.csv")
    # every resolved parameter is a column: the grid's, then the trial's declared defaults
    assert list(df.columns[:7]) == ["x", "y", "fail_at", "sleep", "log", "_index", "_key"]
    assert list(df.columns[-2:]) == ["_code", "_git"]
    assert list(df["_index"]) == list(range(6))                  # sorted by grid position
    assert (df["z"] == df["x"] * 10 + df["y"]).all()
    series = pd.read_csv(toy.path / "results" / "t_series.csv")
    assert len(series) == 6 * 3 and set(series.columns) >= {"_index", "x", "y", "epoch", "loss"}
    rec = json.loads(next((toy.path / "results" / "t" / "records").glob("*.jsonl")).read_text().splitlines()[0])
    assert rec["status"] == "ok" and rec["prov"]["host"] and "numpy" in rec["prov"]["versions"]
    assert "git" in rec["prov"] and "dirty" in rec["prov"] and rec["seconds"] >= 0


def test_results_do_not_depend_on_workers(toy):
    grid = {"trial": "toytrial", "param_grid": {"x": list(range(12)), "y": [0.0, 1.0]}}
    toy.experiment("one", grid)
    toy.experiment("two", grid)
    assert run("one") == 0 and run("two", tasks=2) == 0
    a, b = (pd.read_csv(toy.path / "results" / f"{n}.csv") for n in ("one", "two"))
    pd.testing.assert_frame_equal(a, b)                       # `noise` is seeded from the parameters
    # one record file per worker process that ran trials (a worker slow to start may get none)
    assert 1 <= len(list((toy.path / "results" / "two" / "records").glob("*.jsonl"))) <= 2


def test_same_command_resumes_and_extending_the_grid_keeps_finished_trials(toy):
    log = toy.path / "ran.log"
    toy.experiment("t", {"trial": "toytrial", "param_grid": {"x": [1, 2], "log": [str(log)]}})
    assert run("t") == 0 and run("t") == 0
    assert sorted(ran_keys(log).values()) == [1, 1]
    toy.experiment("t", {"trial": "toytrial", "param_grid": {"x": [0, 1, 2, 3], "log": [str(log)]}})
    assert run("t") == 0
    assert sorted(ran_keys(log).values()) == [1, 1, 1, 1]
    df = pd.read_csv(toy.path / "results" / "t.csv")
    assert list(df["x"]) == [0, 1, 2, 3] and list(df["_index"]) == [0, 1, 2, 3]


def test_a_failing_trial_is_recorded_and_the_others_finish(toy, capsys):
    toy.experiment("t", {"trial": "toytrial", "param_grid": {"x": [1, 2, 3], "fail_at": [2]}})
    assert run("t") == 1
    out = capsys.readouterr().out
    assert "1 failed trials" in out and "x=2 fails on purpose" in out
    assert list(pd.read_csv(toy.path / "results" / "t.csv")["x"]) == [1, 3]
    state = Store("t").state()
    (err,) = state.failed.values()
    assert "Traceback" in err["error"]["traceback"] and "ValueError" in err["error"]["traceback"]
    # a plain rerun does not retry it; --retry-failed does (and it fails again)
    assert run("t") == 1 and len(list(Store("t").records())) == 3
    assert run("t", retry_failed=True) == 1 and len(list(Store("t").records())) == 4


def test_fail_fast_stops_at_the_first_failure(toy):
    log = toy.path / "ran.log"
    toy.experiment("t", {"trial": "toytrial", "param_grid": {"x": list(range(10)), "fail_at": [1], "log": [str(log)]}})
    assert run("t", fail_fast=True) == 1
    assert sum(ran_keys(log).values()) == 2


def test_torn_last_line_is_ignored_with_a_warning(toy):
    toy.experiment("t", {"trial": "toytrial", "param_grid": {"x": [1, 2, 3]}})
    assert run("t") == 0
    (f,) = (toy.path / "results" / "t" / "records").glob("*.jsonl")
    lines = f.read_text().splitlines(keepends=True)
    f.write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])     # a writer killed mid-line
    with pytest.warns(UserWarning, match="torn"):
        assert len(Store("t").state().ok) == 2
    with pytest.warns(UserWarning, match="torn"):
        assert run("t") == 0                                            # the torn trial reruns
    assert len(pd.read_csv(toy.path / "results" / "t.csv")) == 3


def test_dataset_is_loaded_once_per_worker(study):
    study.module("dscount", """
        import os
        from memlab.datasets import DATASET_PARAMS, dataset_from_params
        from memlab.datasets.registry import _load_cached
        PARAMS = {**DATASET_PARAMS, "i": 0}
        def trial(params):
            ds = dataset_from_params(params)
            return {"pid": os.getpid(), "loads": _load_cached.cache_info().misses, "n": len(ds.y)}
    """)
    study.experiment("d", {"trial": "dscount", "param_grid": {"dataset": ["moons"], "i": list(range(40))}})
    assert run("d", tasks=2) == 0
    df = pd.read_csv(study.path / "results" / "d.csv")
    assert (df["n"] == 1000).all()
    assert df.groupby("pid")["loads"].max().max() == 1


def test_status_and_dry_run(toy):
    toy.experiment("t", {"trial": "toytrial", "param_grid": {"x": [1, 2, 3], "fail_at": [3]}})
    run("t")
    r = toy.cli("run.py", "--name", "t", "--status")
    assert r.returncode == 0 and "3 trials: 2 done, 1 failed, 0 pending" in r.stdout
    r = toy.cli("run.py", "--name", "t", "--dry-run")
    assert r.returncode == 0 and "3 trials" in r.stdout and "[0] {'fail_at': 3, 'x': 1}" in r.stdout


def test_artifacts_are_kept_beside_the_records(study):
    study.module("arttrial", """
        import numpy as np
        def trial(params):
            return {"s": 1.0, "artifacts": {"W": np.full((2, 3), params["v"], dtype=np.float32)}}
    """)
    study.experiment("a", {"trial": "arttrial", "param_grid": {"v": [1.5, 2.5]}})
    assert run("a") == 0
    df = pd.read_csv(study.path / "results" / "a.csv")
    import numpy as np
    for _, row in df.iterrows():
        with np.load(study.path / "results" / "a" / row["_artifacts"]) as f:
            assert (f["W"] == row["v"]).all()


@pytest.mark.slow
@pytest.mark.parametrize("tasks", [1, 2])
def test_kill_9_then_rerun_loses_nothing_and_repeats_nothing(toy, tasks):
    log = toy.path / "ran.log"
    n = 60
    toy.experiment("k", {"trial": "toytrial", "param_grid": {"x": list(range(n)), "sleep": [0.05], "log": [str(log)]}})
    cmd = [sys.executable, str(REPO / "run.py"), "--name", "k", "--tasks", str(tasks), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=toy.path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    records = toy.path / "results" / "k" / "records"
    deadline = time.time() + 60
    while time.time() < deadline and sum(len(p.read_text().splitlines()) for p in records.glob("*.jsonl")) < 10:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)                 # the runner only: its workers must notice
    proc.wait()
    done_at_kill = len(Store("k").state().ok)
    assert 10 <= done_at_kill < n
    r = subprocess.run(cmd, cwd=toy.path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    df = pd.read_csv(toy.path / "results" / "k.csv")
    assert sorted(df["x"]) == list(range(n))          # every trial exactly once in the CSV
    assert Store("k").state().duplicates == 0         # no finished trial recorded twice
    counts = ran_keys(log)
    # each trial started at most twice: once more only if it was in flight at the kill
    assert len(counts) == n and sum(c > 1 for c in counts.values()) <= tasks


def test_a_series_named_like_a_parameter_does_not_break_the_merge(study):
    study.module("clash", """
        def trial(params):
            return {"s": 1, "series": {"epoch": [1, 2], "lr": [params["lr"], params["lr"] / 2]}}
    """)
    study.experiment("c", {"trial": "clash", "param_grid": {"lr": [0.1, 0.2]}})
    assert run("c") == 0
    series = pd.read_csv(study.path / "results" / "c_series.csv")
    assert list(series["lr"]) == [0.1, 0.1, 0.2, 0.2] and list(series["lr_series"]) == [0.1, 0.05, 0.2, 0.1]
