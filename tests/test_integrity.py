"""Nothing wrong, nothing lost: crash isolation, time limits, trial identity, bad input, files.

Every crash here is real: a segfault through ctypes, SIGKILL, os._exit, a memory limit set on
the worker process, a trial that sleeps past its time limit.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO
from memlab import runner
from memlab.config import load_experiment
from memlab.errors import ConfigError
from memlab.params import legacy_key
from memlab.store import Store

CRASHY = """
import collections, ctypes, os, resource, signal, sys, time
from memlab.params import REQUIRED, Param, resolve

PARAMS = {"x": Param(REQUIRED, type=int, min=0), "how": "none", "at": 3, "sleep": 0.0, "log": None,
          "offset": 0}

def trial(params):
    p = resolve(PARAMS, params)
    if p["log"]:
        with open(p["log"], "a") as f:
            f.write(params["_key"] + "\\n")
    how = p["how"] if p["x"] == p["at"] else "none"
    if how == "segv":
        ctypes.string_at(0)
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "exit":
        os._exit(1)
    if how == "sysexit":
        sys.exit(3)
    if how == "hang":
        time.sleep(600)
    if how == "oom":                    # a real memory limit on this worker process
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, hard))
        try:
            bytearray(2 << 30)
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    time.sleep(p["sleep"])
    out = {"z": p["x"] + p["offset"]}
    bad = {"set": {1, 2}, "bytes": b"ab", "complex": 1j, "object": object(), "collide": None,
           "index": None}
    if how in bad:
        out["bad"] = bad[how]
    if how == "collide":
        out["x"] = 0
    if how == "index":
        out["_index"] = 0
    return out
"""


@pytest.fixture
def crashy(study):
    study.module("crashy", CRASHY)
    return study


def run(name, **kw):
    return runner.run(load_experiment(name), runner.RunOptions(progress=False, **kw))


def log_counts(log: Path) -> dict:
    keys = log.read_text().split() if log.exists() else []
    return {k: keys.count(k) for k in set(keys)}


def failed_records(name):
    return {r["params"]["x"]: r for r in Store(name).state().failed.values()}


# ---------------------------------------------------------------- crash isolation ---
CRASHES = {
    "segv": "killed by signal SIGSEGV",
    "kill": "killed by signal SIGKILL",
    "exit": "exited with status 1",
    "sysexit": "sys.exit(3)",
    "oom": "MemoryError",
    "set": "'bad' as set",
    "bytes": "'bad' as bytes",
    "complex": "'bad' as complex",
    "object": "'bad' as object",
    "collide": "'x', which is the name of a parameter",
    "index": "'_index', which is the name of a column memlab writes itself",
}


@pytest.mark.parametrize("tasks", [1, 2])
def test_every_way_a_trial_can_end_its_process_is_recorded_and_the_grid_goes_on(crashy, tasks, capsys):
    log = crashy.path / "ran.log"
    hows = list(CRASHES)
    crashy.experiment("c", {"trial": "crashy", "param_grid": {"x": list(range(6)), "how": hows, "log": [str(log)]}})
    assert run("c", tasks=tasks) == 1
    out = capsys.readouterr().out
    df = pd.read_csv(crashy.path / "results" / "c.csv")
    assert len(df) == 6 * len(hows) - len(hows)                     # every other trial, in the same run
    assert f"{len(hows)} failed trials" in out
    failed = {r["params"]["how"]: r for r in Store("c").state().failed.values()}
    assert set(failed) == set(hows)
    for how, text in CRASHES.items():
        rec = failed[how]
        assert text in rec["error"]["message"] or text in rec["error"]["type"], (how, rec["error"])
        assert rec["params"]["x"] == 3 and rec["_index"] == hows.index(how) * 6 + 3    # grid order: how, log, x
        assert f"_index {rec['_index']} " in out
    # a rerun runs none of them again; --retry-failed runs exactly those
    before = log_counts(log)
    assert run("c", tasks=tasks) == 1 and log_counts(log) == before
    assert run("c", tasks=tasks, retry_failed=True) == 1
    again = log_counts(log)
    assert sum(again.values()) - sum(before.values()) == len(hows)


def test_a_crash_inside_an_array_task_is_recorded_and_the_task_goes_on(crashy):
    """memlab.task as a scheduler runs it: the segfaulting trial is recorded, the rest finish."""
    crashy.experiment("a", {"trial": "crashy", "param_grid": {"x": list(range(5)), "how": ["segv"]}})
    exp = load_experiment("a")
    from memlab.backends import cluster
    store = Store("a")
    trials = list(exp.trials())
    m = cluster.write_manifest(store, exp, "sge", [trials], {}, timeout=None)
    env = {**os.environ, "PYTHONPATH": str(REPO), "JOB_ID": "77"}
    r = subprocess.run([sys.executable, "-m", "memlab.task", str(m), "1"], cwd=crashy.path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    state = Store("a").state()
    assert len(state.ok) == 4
    (rec,) = state.failed.values()
    assert "SIGSEGV" in rec["error"]["message"] and rec["params"]["x"] == 3
    assert all(p.name.startswith("sge-77-1-") for p in store.records_dir.glob("*.jsonl"))


def test_a_trial_past_its_time_limit_is_stopped_and_recorded(crashy, capsys, monkeypatch):
    monkeypatch.setenv("MEMLAB_SLOW_AFTER", "0.5")
    crashy.experiment("h", {"trial": "crashy", "timeout": "3s",
                            "param_grid": {"x": list(range(5)), "how": ["hang"], "sleep": [0.01]}})
    t0 = time.perf_counter()
    assert run("h", tasks=2) == 1
    assert time.perf_counter() - t0 < 60
    captured = capsys.readouterr()
    (rec,) = failed_records("h").values()
    assert rec["error"]["type"] == "Timeout" and rec["error"]["message"] == "timed out after 3 s"
    assert len(Store("h").state().ok) == 4
    # named on screen while it ran far longer than the others
    assert "still running: trial _index 3" in captured.err
    # the command line's limit overrides the file's
    crashy.experiment("h2", {"trial": "crashy", "param_grid": {"x": [3], "how": ["hang"]}})
    r = crashy.cli("run.py", "--name", "h2", "--trial-timeout", "2s")
    assert r.returncode == 1 and "timed out after 2 s" in r.stdout


def test_fail_fast_stops_within_one_trial_per_worker(crashy):
    log = crashy.path / "ran.log"
    crashy.experiment("f", {"trial": "crashy", "param_grid": {
        "x": list(range(200)), "how": ["segv"], "at": [2], "sleep": [0.02], "log": [str(log)]}})
    assert run("f", tasks=2, fail_fast=True) == 1
    ran = sum(log_counts(log).values())
    assert 3 <= ran <= 3 + 2 + 1, ran          # the failure, then at most one more per worker


# ---------------------------------------------------------------- identity ---
def test_changing_a_declared_default_or_the_trial_makes_new_trials(crashy):
    crashy.experiment("d", {"trial": "crashy", "param_grid": {"x": [1, 2]}})
    assert run("d") == 0
    df = pd.read_csv(crashy.path / "results" / "d.csv")
    assert list(df["z"]) == [1, 2] and "offset" in df.columns and (df["offset"] == 0).all()
    src = (crashy.path / "crashy.py").read_text()
    crashy.module("crashy", src.replace('"offset": 0}', '"offset": 100}'))
    exp = load_experiment("d")
    p = runner.plan(exp, Store("d"))
    assert p.done == 0 and len(p.pending) == 2                      # the old results are not these trials
    assert run("d") == 0
    df = pd.read_csv(crashy.path / "results" / "d.csv")
    assert list(df["z"]) == [101, 102] and (df["offset"] == 100).all()
    # the same module under another name in "trial" is another computation too
    crashy.module("crashy2", src)
    crashy.experiment("d", {"trial": "crashy2", "param_grid": {"x": [1, 2]}})
    assert runner.plan(load_experiment("d"), Store("d")).done == 0


def test_results_of_changed_code_are_reported_stale_and_rerun_on_request(crashy, capsys):
    log = crashy.path / "ran.log"
    crashy.experiment("s", {"trial": "crashy", "param_grid": {"x": [1, 2, 3], "log": [str(log)]}})
    assert run("s") == 0
    code = pd.read_csv(crashy.path / "results" / "s.csv")["_code"].unique()
    assert len(code) == 1 and code[0].startswith("src-")
    crashy.module("crashy", CRASHY + "\n# a comment is a code change too\n")
    capsys.readouterr()
    assert run("s") == 0 and sum(log_counts(log).values()) == 3      # not rerun by default...
    out = capsys.readouterr().out
    assert "3 finished results were computed by other trial code" in out and "--rerun-stale" in out
    r = crashy.cli("run.py", "--name", "s", "--status")
    assert "3 finished results were computed by other trial code" in r.stdout
    assert run("s", rerun_stale=True) == 0 and sum(log_counts(log).values()) == 6
    df = pd.read_csv(crashy.path / "results" / "s.csv")
    assert df["_code"].nunique() == 1 and df["_code"][0] != code[0]
    assert runner.plan(load_experiment("s"), Store("s")).stale == set()
    # a declared VERSION stands for the code
    crashy.module("crashy", CRASHY + "\nVERSION = '2.1'\n")
    assert load_experiment("s").code == "v2.1"


def test_records_of_the_old_key_scheme_are_adopted_as_stale(crashy):
    crashy.experiment("old", {"trial": "crashy", "param_grid": {"x": [1, 2]}})
    rec_dir = crashy.path / "results" / "old" / "records"
    rec_dir.mkdir(parents=True)
    (rec_dir / "local-h-1-abc.jsonl").write_text(json.dumps(
        {"key": legacy_key({"x": 1}), "_index": 0, "params": {"x": 1}, "status": "ok", "result": {"z": 1},
         "started": 1.0}) + "\n")
    p = runner.plan(load_experiment("old"), Store("old"))
    assert p.done == 1 and p.legacy == 1 and len(p.stale) == 1 and len(p.pending) == 1
    assert run("old") == 0
    df = pd.read_csv(crashy.path / "results" / "old.csv")
    assert list(df["z"]) == [1, 2] and list(df["_code"])[0] == "unknown"


def test_reserved_parameter_names_are_refused(crashy):
    crashy.experiment("u", {"trial": "crashy", "param_grid": {"x": [1], "_seed": [1, 2, 3]}})
    with pytest.raises(ConfigError) as e:
        load_experiment("u")
    assert e.value.key == "param_grid._seed" and "reserved" in str(e.value)


def test_the_effective_experiment_and_the_commit_are_saved_with_the_results(crashy):
    crashy.experiment("e", {"trial": "crashy", "param_grid": {"x": [1]}, "timeout": "1h"})
    assert run("e") == 0
    doc = json.loads((crashy.path / "results" / "e" / "experiment.json").read_text())
    assert doc["defaults"]["offset"] == 0 and doc["trial_id"] == "crashy" and doc["timeout_s"] == 3600
    assert doc["experiment_file"]["param_grid"] == {"x": [1]} and doc["code"].startswith("src-")
    assert "git" in doc["run"] and "dirty" in doc["run"]
    assert len(list((crashy.path / "results" / "e" / "runs").glob("*.json"))) == 1
    df = pd.read_csv(crashy.path / "results" / "e.csv")
    assert "_git" in df.columns


def test_an_untracked_file_makes_the_tree_dirty(tmp_path):
    from memlab.store import git_state
    repo = tmp_path / "r"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "a.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "a.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "a"], check=True)
    assert git_state(str(repo))["dirty"] is False
    (repo / "mytrial.py").write_text("def trial(p): return {}\n")
    git_state.cache_clear()
    assert git_state(str(repo))["dirty"] is True


# ---------------------------------------------------------------- bad input ---
ALGO_BAD = [
    ({"n_iter": ["ten"]}, "param_grid.n_iter", "is not a whole number"),
    ({"n_iter": [True]}, "param_grid.n_iter", "is not a whole number"),
    ({"n_iter": [-5]}, "param_grid.n_iter", "below the minimum"),
    ({"max_bias": [float("nan")]}, "param_grid.max_bias", "NaN"),
    ({"dataset": [None]}, "param_grid.dataset", "null is not accepted"),
    ({"n_iter": {"type_": "range", "stop": 0}}, "param_grid.n_iter", "the grid is empty"),
]


@pytest.mark.parametrize("grid, key, text", ALGO_BAD)
def test_bad_parameter_values_are_refused_at_load(study, grid, key, text):
    study.experiment("b", json.dumps({"trial": "algorithm", "param_grid": {"dataset": ["moons"], **grid}}))
    with pytest.raises(ConfigError) as e:
        load_experiment("b")
    assert e.value.key == key and text in str(e.value) and e.value.fix


def test_whole_floats_from_a_linspace_become_ints(study):
    study.experiment("w", {"trial": "algorithm", "param_grid": {
        "dataset": ["moons"], "n_iter": {"type_": "linspace", "start": 10, "stop": 30, "num": 3}}})
    assert [t.params["n_iter"] for t in load_experiment("w").trials()] == [10, 20, 30]
    assert all(type(t.params["n_iter"]) is int for t in load_experiment("w").trials())


@pytest.mark.parametrize("setup, text", [
    (lambda s: s.experiment("b", {"trial": "algorithm", "param_grid": {"dataset": ["moons"]},
                                  "resources": {"gpus": "two"}}), "'gpus' must be a whole number"),
    (lambda s: (s.path / "experiments" / "b.json").write_bytes(b'{"trial": "algorithm", "x": "\xff"}'),
     "not UTF-8"),
    (lambda s: s.experiment("b", {"trial": "../../tmp/evil", "param_grid": {"x": [1]}}), "must be a module name"),
    (lambda s: s.experiment("b", {"trial": "algorithm", "param_grid": {"dataset": ["moons"]}, "timeout": "soon"}),
     "cannot read time limit"),
])
def test_bad_files_exit_2_with_the_fix(study, setup, text):
    setup(study)
    r = study.cli("run.py", "--name", "b")
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("error: ") and text in r.stderr and "fix:" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("name, text", [("experiments/", "is a folder"), ("...json", "not a usable experiment name")])
def test_bad_names_exit_2(study, name, text):
    if name == "...json":
        (study.path / "...json").write_text("{}")
    r = study.cli("run.py", "--name", name)
    assert r.returncode == 2 and text in r.stderr and "Traceback" not in r.stderr


def test_a_huge_grid_is_counted_not_built(crashy):
    crashy.experiment("big", {"trial": "crashy", "param_grid": {
        "x": {"type_": "range", "stop": 1000}, "at": {"type_": "range", "stop": 1000},
        "offset": {"type_": "range", "stop": 1000}}})
    t0 = time.perf_counter()
    r = crashy.cli("run.py", "--name", "big", "--dry-run")
    assert r.returncode == 0 and "1,000,000,000 trials" in r.stdout and "over the limit" in r.stdout
    r = crashy.cli("run.py", "--name", "big")
    assert r.returncode == 2 and "more than a run takes" in r.stderr and "--max-trials" in r.stderr
    assert time.perf_counter() - t0 < 60
    assert not (crashy.path / "results" / "big" / "records").exists()


def test_iter_grid_matches_scikit_learn(study):
    from sklearn.model_selection import ParameterGrid

    from memlab.config import grid_size, iter_grid
    grids = [{"b": [1, 2], "a": ["x", "y", "z"]}, {}, {"c": [[1], [2, 3]]}]
    assert list(iter_grid(grids)) == list(ParameterGrid(grids)) and grid_size(grids) == len(ParameterGrid(grids))


# ---------------------------------------------------------------- record files ---
def test_unreadable_record_lines_are_skipped_with_one_warning(crashy):
    crashy.experiment("r", {"trial": "crashy", "param_grid": {"x": [1, 2, 3]}})
    assert run("r") == 0
    (f,) = (crashy.path / "results" / "r" / "records").glob("*.jsonl")
    with open(f, "ab") as fh:
        fh.write(b"\xff\xfe not utf-8\n[1, 2, 3]\n{\"no\": \"fields\"}\n\"a string\"\n")
    with pytest.warns(UserWarning, match=r"lines 4, 5, 6, 7 \(4 lines\)") as w:
        assert len(Store("r").state().ok) == 3
    assert len(w) == 1 and f.name in str(w[0].message)
    for args in (["--status"], ["--collect"], []):
        r = crashy.cli("run.py", "--name", "r", *args)
        assert r.returncode == 0 and "Traceback" not in r.stderr, (args, r.stdout, r.stderr)


def test_object_array_artifacts_are_refused(study):
    study.module("objart", """
        import numpy as np
        def trial(params):
            return {"s": 1, "artifacts": {"ragged": np.array([[1], [2, 3]], dtype=object)}}
    """)
    study.experiment("o", {"trial": "objart", "param_grid": {"v": [1]}})
    assert run("o") == 1
    (rec,) = Store("o").state().failed.values()
    assert "without pickle" in rec["error"]["message"] and "ragged" in rec["error"]["message"]
    assert not (study.path / "results" / "o" / "artifacts").exists()


# ---------------------------------------------------------------- disks, folders, modes ---
@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)])


def test_a_full_disk_stops_the_run_with_the_path_and_loses_nothing(crashy, small_disk):
    (small_disk / "experiments").mkdir()
    (small_disk / "crashy.py").write_text((crashy.path / "crashy.py").read_text())
    big = "y" * 4000
    (small_disk / "experiments" / "full.json").write_text(json.dumps(
        {"trial": "crashy", "param_grid": {"x": list(range(400)), "how": [big]}}))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, str(REPO / "run.py"), "--name", "full", "--no-progress"]
    r = subprocess.run(cmd, cwd=small_disk, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "No space left on device" in r.stdout + r.stderr and "fix:" in r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert str(small_disk / "results") in r.stdout + r.stderr
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        done = len(Store("full", small_disk / "results").state().ok)
    assert done > 0
    # room again: the same command finishes the rest, and nothing finished is run twice
    for p in (small_disk / "results").rglob("*.csv"):
        p.unlink()
    (small_disk / "experiments" / "full.json").write_text(json.dumps(
        {"trial": "crashy", "param_grid": {"x": list(range(400)), "how": [big]}}))
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    r = subprocess.run(cmd, cwd=small_disk, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{400 - done} to run" in r.stdout
    assert Store("full", small_disk / "results").state().duplicates == 0


def test_an_unusable_results_folder_is_one_message(crashy):
    crashy.experiment("n", {"trial": "crashy", "param_grid": {"x": [1]}})
    (crashy.path / "results").write_text("a file where the folder should be")
    r = crashy.cli("run.py", "--name", "n")
    assert r.returncode == 1 and "results" in r.stderr and "fix:" in r.stderr and "Traceback" not in r.stderr


def test_files_follow_the_umask(crashy):
    crashy.module("arty", """
        import numpy as np
        def trial(params):
            return {"s": 1, "artifacts": {"a": np.zeros(3)}}
    """)
    crashy.experiment("m", {"trial": "arty", "param_grid": {"v": [1]}})
    old = os.umask(0o022)
    try:
        assert run("m") == 0
    finally:
        os.umask(old)
    res = crashy.path / "results"
    for p in [res / "m.csv", res / "m" / "experiment.json", *(res / "m" / "artifacts").glob("*.npz"),
              *(res / "m" / "records").glob("*.jsonl")]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p


def test_exit_1_while_trials_are_still_in_flight_elsewhere(crashy, monkeypatch, capsys):
    """A joblib run that leaves trials to a queued cluster job is not done: exit 1, say so."""
    crashy.experiment("q", {"trial": "crashy", "param_grid": {"x": [1, 2, 3]}})
    exp = load_experiment("q")
    trials = list(exp.trials())
    from memlab import backends
    monkeypatch.setattr(backends, "in_flight", lambda store: {trials[0].key: "sge job 12"})
    assert run("q") == 1
    out = capsys.readouterr().out
    assert "1 trials are not done: 1 are queued or running (1 in sge job 12)" in out


# ---------------------------------------------------------------- GPU locks ---
def test_gpu_locks_never_follow_links_or_chmod_and_stay_private(tmp_path, monkeypatch):
    from memlab import task
    target = tmp_path / "victim"
    target.write_text("secret")
    target.chmod(0o600)
    folder = tmp_path / "locks"
    monkeypatch.setenv("MEMLAB_GPU_LOCK_DIR", str(folder))
    assert task.gpu_lock_dir() == str(folder) and stat.S_IMODE(folder.stat().st_mode) == 0o700
    (folder / "gpu-0.lock").symlink_to(target)                  # planted by someone
    try:
        assert task.claim_gpus(1, [("0", 0.0), ("1", 5.0)]) == ["1"]  # the link is not opened
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        assert stat.S_IMODE((folder / "gpu-1.lock").stat().st_mode) == 0o600
        # a folder open to others (or a link, or not ours) is not used for locks
        folder.chmod(0o777)
        assert task.gpu_lock_dir() is None
        folder.chmod(0o700)
        # a forked child does not keep the task's lock once the task lets go
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:                    # the fork hooks have run once os.fork() returns here
            os.write(w, b"x")
            time.sleep(30)
            os._exit(0)
        assert os.read(r, 1) == b"x"
        held = list(task._held_locks)
        for fd in held:
            os.close(fd)
        task._held_locks.clear()
        assert task.claim_gpus(1, [("1", 0.0)]) == ["1"] and task._held_locks   # free although the child lives
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    finally:
        while task._held_locks:
            os.close(task._held_locks.pop())


def test_planned_keys_and_seeds_are_identify_of_the_resolved_parameters(study):
    """The fast planning path gives exactly memlab.params.identify() (NOT_SEEDED, explicit seed)."""
    from memlab.params import identify
    study.experiment("k", {"trial": "algorithm", "param_grid": [
        {"dataset": ["moons"], "n_iter": [10, 20.0], "method": ["fast", "oracle"]},
        {"dataset": ["moons"], "seed": [5, 6]}, {"dataset": ["lines"]}]})
    exp = load_experiment("k")
    import algorithm
    trials = list(exp.trials())
    assert len(trials) == 7
    for t in trials:
        assert (t.key, t.seed) == identify("algorithm", t.params, algorithm.NOT_SEEDED)
    assert [exp.trial_at(i) for i in range(7)] == trials           # one trial without the others
    fast, oracle = (next(t for t in trials if t.params.get("method") == m and t.params["n_iter"] == 10)
                    for m in ("fast", "oracle"))
    assert fast.params["method"] != oracle.params["method"] and fast.seed == oracle.seed and fast.key != oracle.key
    assert {t.seed for t in trials if "seed" in t.params and t.params["seed"] in (5, 6)} >= {5, 6}


PREPARED = """
import os, time
from memlab.params import Param, resolve
PARAMS = {"x": Param(0), "fail": Param(False)}
PREPARED = []

def prepare():
    PREPARED.append(os.getpid())
    if os.environ.get("PREPARE_FAILS"):
        raise RuntimeError("no kernels today")
    time.sleep(0.5)

def trial(params):
    p = resolve(PARAMS, params)
    return {"prepared": PREPARED == [os.getpid()]}
"""


@pytest.mark.parametrize("fails", [False, True])
def test_a_trials_prepare_runs_once_per_worker_before_its_trials_and_in_no_trials_time(study, monkeypatch, fails):
    study.module("prepared", PREPARED)
    study.experiment("prep", {"trial": "prepared", "param_grid": {"x": list(range(4))}})
    if fails:
        monkeypatch.setenv("PREPARE_FAILS", "1")
    run("prep", tasks=2)
    records = list(Store("prep").state().ok.values())
    assert len(records) == 4
    assert all(r["result"]["prepared"] for r in records)         # once per process, before its trials
    assert max(r["seconds"] for r in records) < 0.4              # the 0.5 s of prepare is in none


READS = """
from memlab.datasets import load_dataset
from memlab.params import Param, resolve
PARAMS = {"dataset": Param("mine"), "x": Param(0)}

def trial(params):
    p = resolve(PARAMS, params)
    return {"s": float(load_dataset(p["dataset"]).X.sum()) + p["x"]}
"""


def test_results_computed_on_a_dataset_file_that_changed_are_stale(study, capsys):
    import numpy as np
    (study.path / "datasets").mkdir()
    X, y = np.arange(12, dtype=np.float32).reshape(6, 2), np.array([0, 1, 0, 1, 0, 1])
    np.savez(study.path / "datasets" / "mine.npz", X=X, y=y)
    study.module("reads", READS)
    study.experiment("d", {"trial": "reads", "param_grid": {"x": [0, 1]}})
    assert run("d") == 0
    assert all(r["data"] == {"mine": r["data"]["mine"]} for r in Store("d").state().ok.values())
    np.savez(study.path / "datasets" / "mine.npz", X=X, y=y)        # rebuilt, the same contents
    assert runner.plan(load_experiment("d"), Store("d")).stale == set()
    np.savez(study.path / "datasets" / "mine.npz", X=2 * X, y=y)    # other contents
    p = runner.plan(load_experiment("d"), Store("d"))
    assert len(p.stale) == 2 and "on a dataset file that has changed since" in runner.stale_note(p, "d")
    shown = study.cli("run.py", "--name", "d", "--show", "0").stdout
    assert "data: datasets/mine.npz npz-" in shown and "now: stale)" in shown
    capsys.readouterr()
    assert run("d", rerun_stale=True) == 0
    assert sorted(pd.read_csv(study.path / "results" / "d.csv")["s"]) == [2 * X.sum(), 2 * X.sum() + 1]
    assert runner.plan(load_experiment("d"), Store("d")).stale == set()
