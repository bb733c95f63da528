"""The SGE and SLURM backends against real schedulers on this machine (no mocked qsub).

    python -m pytest -q tests/test_cluster.py          # starts SGE / SLURM if needed (root)

Each test submits real array jobs to the single-node cell/cluster that
scripts/cluster/setup_sge.sh and setup_slurm.sh start (the fixtures run them when the
scheduler does not answer; without root or apt-get the tests are skipped, never in CI).
Every wait is bounded: a command that hangs fails its test with the output so far.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CHECKS = {   # the scheduler answers and its one node can run jobs
    "sge": "qconf -sh && qstat -f -q all.q | grep -q 'all.q@' && ! qstat -f -q all.q | awk 'NR>2 && NF>5' | grep -q .",
    "slurm": "scontrol ping | grep -q UP && sinfo -h -N -o %t | grep -qE '^(idle|mix|alloc)$'",
}
QUEUE = {"sge": "all.q", "slurm": "debug"}

TRIAL = """
import os, signal, time
import numpy as np
from memlab.params import REQUIRED, resolve, trial_seed

PARAMS = {"x": REQUIRED, "y": 0.0, "die_at": None, "sleep": 0.0}

def trial(params):
    p = resolve(PARAMS, params)
    # while the file DIE exists: "task" kills the array task itself (the trial's worker's parent);
    # "kill" or a number ends the trial's own worker process (a crash the task survives)
    if p["die_at"] is not None and p["x"] == p["die_at"] and os.path.exists("DIE"):
        how = open("DIE").read().strip()
        if how == "task":
            os.kill(os.getppid(), signal.SIGKILL)
            time.sleep(60)
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(int(how))
    time.sleep(p["sleep"])
    rng = np.random.default_rng(trial_seed(params))
    return {"z": p["x"] * 10 + p["y"], "noise": float(rng.random()), "fit_time": time.perf_counter(),
            "threads": os.environ.get("OMP_NUM_THREADS"), "cuda": os.environ.get("CUDA_VISIBLE_DEVICES", "none")}
"""


def scheduler_ok(name: str) -> bool:
    return subprocess.run(["bash", "-c", CHECKS[name]], capture_output=True, timeout=60).returncode == 0


@pytest.fixture(scope="session", params=["sge", "slurm"])
def backend(request):
    """The scheduler's name, once it runs here (started by our own setup script if needed)."""
    name = request.param
    if not scheduler_ok(name):
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.skip(f"{name} is not running and cannot be set up here (needs root and apt-get)")
        out = subprocess.run(["bash", str(REPO / "scripts" / "cluster" / f"setup_{name}.sh")],
                             capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, f"setup_{name}.sh failed:\n{out.stdout}\n{out.stderr}"
        assert scheduler_ok(name), f"{name} set up but not answering"
    return name


class Study:
    """A study folder (experiments/, a trial module) in which the CLIs run as subprocesses."""

    def __init__(self, path: Path):
        self.path = path
        (path / "experiments").mkdir(parents=True, exist_ok=True)
        (path / "toytrial.py").write_text(textwrap.dedent(TRIAL))
        path.chmod(0o755)   # the jobs must read it (they run as the submitting user: root here)

    def experiment(self, name: str, grid: dict, **extra) -> None:
        (self.path / "experiments" / f"{name}.json").write_text(
            json.dumps({"trial": "toytrial", "param_grid": grid, **extra}))

    def run(self, *args, timeout=150) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        try:
            out = subprocess.run([sys.executable, str(REPO / "run.py"), *map(str, args)], cwd=self.path,
                                 capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"run.py {' '.join(map(str, args))} did not finish within {timeout} s:\n{e.stdout}\n{e.stderr}")
        print(f"$ run.py {' '.join(map(str, args))}  [exit {out.returncode}]\n{out.stdout}{out.stderr}")
        return out

    def csv(self, name: str) -> pd.DataFrame:
        df = pd.read_csv(self.path / "results" / f"{name}.csv")
        return df.drop(columns=[c for c in df.columns if "time" in c]).sort_values("_index").reset_index(drop=True)

    def submissions(self, name: str) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted((self.path / "results" / name / "manifests").glob("*.job.json"))]

    def manifest_keys(self, sub: dict) -> set:
        m = json.loads(Path(sub["manifest"]).read_text())
        return {t["key"] for share in m["tasks"] for t in share}


@pytest.fixture
def study(tmp_path):
    return Study(tmp_path / "study")


GRID = {"x": [1, 2, 3, 4, 5, 6, 7], "y": [0.5, 1.5]}


def test_array_job_gives_the_same_csv_as_joblib(backend, study, tmp_path):
    study.experiment("toy", GRID)
    t0 = time.perf_counter()
    out = study.run("--name", "toy", "--backend", backend, "--tasks", 3)
    print(f"{backend}: 14 trials in 3 tasks: {time.perf_counter() - t0:.1f} s")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "14 ok, 0 failed" in out.stdout
    (sub,) = study.submissions("toy")
    assert sub["n_tasks"] == 3 and sub["ended"]
    records = sorted(p.name for p in (study.path / "results" / "toy" / "records").glob("*.jsonl"))
    assert [r.split("-")[2] for r in records] == ["1", "2", "3"]        # one record file per task
    local = Study(tmp_path / "local")
    local.experiment("toy", GRID)
    assert local.run("--name", "toy", "--tasks", 2).returncode == 0
    pd.testing.assert_frame_equal(study.csv("toy"), local.csv("toy"))
    assert set(study.csv("toy")["threads"]) == {1}


def test_dead_task_is_reported_and_only_its_trials_rerun(backend, study):
    study.experiment("toy", {**GRID, "die_at": [4]})
    (study.path / "DIE").write_text("task")          # the array task itself is killed
    out = study.run("--name", "toy", "--backend", backend, "--tasks", 3)
    assert out.returncode == 1
    (sub,) = study.submissions("toy")
    dead = [line for line in out.stdout.splitlines() if " died (" in line]
    assert dead, out.stdout
    reason = "killed by signal 9 (SIGKILL)"
    assert all(f"{backend} job {sub['job_id']} task " in line and reason in line for line in dead)
    assert f"logs/{backend}-{sub['job_id']}." in out.stdout
    assert "not run yet: run the same command again" in out.stdout
    done = set(study.csv("toy")["_key"])
    assert 0 < len(done) < 14

    (study.path / "DIE").unlink()
    out = study.run("--name", "toy", "--backend", backend, "--tasks", 3)
    assert out.returncode == 0, out.stdout + out.stderr
    first, second = study.submissions("toy")
    df = study.csv("toy")
    assert study.manifest_keys(second) == set(df["_key"]) - done        # only the missing ones
    assert len(df) == 14 and list(df["z"]) == [x * 10 + y for x in GRID["x"] for y in GRID["y"]]


def test_a_crashing_trial_inside_an_array_task_is_recorded_and_the_task_goes_on(backend, study):
    study.experiment("toy", {**GRID, "die_at": [4]})
    how = {"sge": "100", "slurm": "kill"}[backend]   # exit 100 of a *task* would hold an SGE job forever
    (study.path / "DIE").write_text(how)
    out = study.run("--name", "toy", "--backend", backend, "--tasks", 3)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "12 ok, 2 failed" in out.stdout and " died (" not in out.stdout     # no task died
    text = "exited with status 100" if how == "100" else "killed by signal SIGKILL"
    failed = [line for line in out.stdout.splitlines() if line.startswith("  _index ")]
    assert len(failed) == 2 and all("'x': 4" in line and text in line for line in failed), out.stdout
    assert len(study.csv("toy")) == 12
    out = study.run("--name", "toy", "--backend", backend, "--tasks", 3)      # not rerun without asking
    assert out.returncode == 1 and "0 to run" in out.stdout and len(study.submissions("toy")) == 1


def test_no_wait_then_collect_then_same_command_waits(backend, study):
    study.experiment("toy", {"x": [1, 2, 3, 4], "sleep": [20]})   # still running when --collect asks
    t0 = time.perf_counter()
    out = study.run("--name", "toy", "--backend", backend, "--tasks", 50, "--no-wait")
    assert out.returncode == 0 and time.perf_counter() - t0 < 30
    assert "using 4 array tasks" in out.stdout                          # clamped to the trials
    (sub,) = study.submissions("toy")
    assert f"submitted {backend} job {sub['job_id']}" in out.stdout and sub["n_tasks"] == 4
    out = study.run("--name", "toy", "--collect")
    assert out.returncode == 1 and "still queued or running" in out.stdout
    # a local run meanwhile has nothing to run, but is not done either: exit 1, naming the job
    out = study.run("--name", "toy")
    assert out.returncode == 1 and f"queued or running (4 in {backend} job {sub['job_id']})" in out.stdout
    # the same command again submits nothing new and waits for the job in flight
    out = study.run("--name", "toy", "--backend", backend, "--tasks", 50)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 to run" in out.stdout and len(study.submissions("toy")) == 1
    out = study.run("--name", "toy", "--collect")
    assert out.returncode == 0 and "4 of 4 trials done" in out.stdout
    assert len(study.csv("toy")) == 4


def read_back(backend: str, job: str) -> str:
    cmd = ["qstat", "-j", job] if backend == "sge" else ["scontrol", "show", "job", job]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout


def test_resources_reach_the_scheduler_and_the_trial(backend, study):
    study.experiment("toy", {"x": [1, 2], "sleep": [3]}, resources={"mem": "2G", "time": "00:10:00"})
    passthrough = {"sge": ["-v", "MEMLAB_GPU_IDS=0:1"], "slurm": ["--comment=memlab-test"]}[backend]
    out = study.run("--name", "toy", "--backend", backend, "--tasks", 2, "--no-wait", "--gpus", 1, "--slots", 2,
                    "--mem", "3G", "--queue", QUEUE[backend], "--", *passthrough)
    assert out.returncode == 0, out.stdout + out.stderr
    (sub,) = study.submissions("toy")
    info = read_back(backend, sub["job_id"])
    if backend == "sge":
        resources = next(line for line in info.splitlines() if line.startswith("hard resource_list"))
        assert "gpu=1" in resources and "h_vmem=1536M" in resources and "h_rt=600" in resources
        assert "smp range: 2" in info and "all.q" in info and "MEMLAB_GPU_IDS=0:1" in info
    else:
        assert "MinMemoryNode=3G" in info and "TimeLimit=00:10:00" in info and "Partition=debug" in info
        assert "CPUs/Task=2" in info and "gres:gpu:1" in info and "Comment=memlab-test" in info
    deadline = time.monotonic() + 90
    while study.run("--name", "toy", "--collect").returncode != 0:
        assert time.monotonic() < deadline, "the job did not finish within 90 s"
        time.sleep(2)
    df = study.csv("toy")
    assert list(df["threads"]) == [2, 2]
    cuda = set(df["cuda"].astype(str))
    assert cuda <= {"0", "1"}                   # SLURM's --gres, or memlab.task's claim under SGE
    recs = [json.loads(line) for p in (study.path / "results" / "toy" / "records").glob("*.jsonl")
            for line in p.read_text().splitlines()]
    (a0, a1), (b0, b1) = sorted((r["started"], r["started"] + r["seconds"]) for r in recs)
    if b0 < a1:                                 # the two tasks ran at once: never on the same GPU
        assert cuda == {"0", "1"}


def test_stuck_job_is_reported_not_waited_for(backend, study):
    # SGE puts a task whose log file cannot be opened in error state (Eqw); SLURM holds --hold jobs
    study.experiment("toy", {"x": [1, 2]})
    stuck_args = {"sge": ["-o", "/nonexistent/memlab/"], "slurm": ["--hold"]}[backend]
    t0 = time.perf_counter()
    out = study.run("--name", "toy", "--backend", backend, "--tasks", 2, "--", *stuck_args, timeout=90)
    (sub,) = study.submissions("toy")
    cancel = {"sge": "qdel", "slurm": "scancel"}[backend]
    subprocess.run([cancel, sub["job_id"]], capture_output=True, timeout=30)
    assert out.returncode == 1 and time.perf_counter() - t0 < 60
    assert "stuck in the queue" in out.stdout and f"{cancel} {sub['job_id']}" in out.stdout


def test_array_limit_is_read_from_the_scheduler(backend):
    from memlab.backends import cluster
    assert cluster.scheduler(backend).array_limit() == {"sge": 75000, "slurm": 1000}[backend]


@pytest.fixture
def sge_array_limit_3(backend, tmp_path_factory):
    """SGE's max_aj_tasks lowered to 3 for one test (setup_sge.sh restores 75000 too)."""
    if backend != "sge":
        pytest.skip("SLURM's MaxArraySize needs slurm.conf and a restart: covered by the unit tests")

    def set_limit(n):
        conf = subprocess.run(["qconf", "-sconf", "global"], capture_output=True, text=True, timeout=30).stdout
        conf = "".join(f"max_aj_tasks {n}\n" if line.startswith("max_aj_tasks ") else line
                       for line in conf.splitlines(keepends=True))
        path = tmp_path_factory.mktemp("sgeconf") / "global"     # qconf -Mconf takes the name from the file
        path.write_text(conf)
        out = subprocess.run(["qconf", "-Mconf", str(path)], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
    set_limit(3)
    yield
    set_limit(75000)


def test_one_task_per_trial_is_chunked_beyond_the_array_limit(backend, sge_array_limit_3, study):
    study.experiment("toy", {"x": [1, 2, 3, 4, 5, 6, 7]})
    out = study.run("--name", "toy", "--backend", backend, "--tasks", -1)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "using 3 array tasks (the array limit is 3)" in out.stdout
    (sub,) = study.submissions("toy")
    shares = json.loads(Path(sub["manifest"]).read_text())["tasks"]
    assert sorted(map(len, shares)) == [2, 2, 3] and len(study.csv("toy")) == 7


def test_algorithm_trial_gives_the_same_csv_as_joblib(backend, study, tmp_path):
    """The real constructive-algorithm trial on moons: same networks, same table, any backend."""
    if backend != "sge":
        pytest.skip("one scheduler is enough for the real trial: the toy tests cover both")
    if not (REPO / "algorithm.py").exists():
        pytest.skip("algorithm.py is not in this tree")
    grid = {"dataset": ["moons"], "n_iter": [20, 60], "max_bias": [0.0, 0.5], "restart": [0, 1, 2]}
    results = {}
    for where, backend_args in (("cluster", ["--backend", backend, "--tasks", 3]), ("local", ["--tasks", 1])):
        s = study if where == "cluster" else Study(tmp_path / "local")
        (s.path / "experiments" / "moons_small.json").write_text(json.dumps({"trial": "algorithm", "param_grid": grid}))
        out = subprocess.run([sys.executable, str(REPO / "data.py"), "--name", "moons"], cwd=s.path,
                             capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert out.returncode == 0, out.stdout + out.stderr
        out = s.run("--name", "moons_small", *backend_args, timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        results[where] = s.csv("moons_small")
    assert len(results["cluster"]) == 12 and "second_dim_out" in results["cluster"]
    pd.testing.assert_frame_equal(results["cluster"], results["local"])


def test_impossible_request_is_refused_at_once(backend, study):
    study.experiment("toy", {"x": [1, 2]})
    out = study.run("--name", "toy", "--backend", backend, "--gpus", 5, timeout=60)   # the node has 2
    assert out.returncode == 2 and "refused the job" in out.stderr and "gpu" in out.stderr
    assert not list((study.path / "results" / "toy" / "manifests").glob("*"))
